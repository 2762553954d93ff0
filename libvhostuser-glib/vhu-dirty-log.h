/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The dirty-page log of live migration (SET_LOG_BASE with LOG_SHMFD): a
 * shared bitmap, one bit per 4 KiB guest page, set atomically.
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VHU_LOG_PAGE 0x1000u

typedef struct _VhuDirtyLog VhuDirtyLog;

VhuDirtyLog *vhu_dirty_log_new (int fd, guint64 size, guint64 offset, GError **error);
VhuDirtyLog *vhu_dirty_log_ref (VhuDirtyLog *log);
void vhu_dirty_log_unref (VhuDirtyLog *log);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuDirtyLog, vhu_dirty_log_unref)

guint64 vhu_dirty_log_get_size (const VhuDirtyLog *log);
gboolean vhu_dirty_log_covers (const VhuDirtyLog *log, guint64 gpa, guint64 len);
void vhu_dirty_log_mark (VhuDirtyLog *log, guint64 gpa, guint64 len);

G_END_DECLS
