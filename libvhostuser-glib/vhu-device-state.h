/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Device state transfer for migration (SET_DEVICE_STATE_FD,
 * CHECK_DEVICE_STATE): the back-end's state goes through a pipe-like fd,
 * written or read without blocking on the device's main context.
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* A loaded state larger than this is refused (a front-end must not make us
 * buffer without bound). */
#define VHU_DEVICE_STATE_MAX_SIZE (64u * 1024 * 1024)

typedef struct _VhuStateTransfer VhuStateTransfer;
typedef void (*VhuStateTransferDoneFunc) (VhuStateTransfer *transfer, gpointer user_data);

VhuStateTransfer *vhu_state_transfer_new_save (int fd, GBytes *state, GMainContext *context);
VhuStateTransfer *vhu_state_transfer_new_load (int fd, GMainContext *context);
void vhu_state_transfer_free (VhuStateTransfer *transfer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuStateTransfer, vhu_state_transfer_free)

gboolean vhu_state_transfer_is_done (VhuStateTransfer *transfer);
void vhu_state_transfer_set_done_func (VhuStateTransfer *transfer,
                                       VhuStateTransferDoneFunc func,
                                       gpointer user_data);
gboolean vhu_state_transfer_finish (VhuStateTransfer *transfer, GBytes **loaded, GError **error);

G_END_DECLS
