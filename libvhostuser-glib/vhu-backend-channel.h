/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The back-end channel (SET_BACKEND_REQ_FD): requests the back-end sends to
 * the front-end, with their replies matched in order, checked, and timed out.
 * Nothing here ever blocks.
 */

#pragma once

#include <gio/gio.h>

#include "vhu-message.h"

G_BEGIN_DECLS

#define VHU_BACKEND_REPLY_TIMEOUT_MS 5000

typedef struct _VhuBackendChannel VhuBackendChannel;

VhuBackendChannel *vhu_backend_channel_new (int fd, GMainContext *context);
void vhu_backend_channel_free (VhuBackendChannel *channel);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuBackendChannel, vhu_backend_channel_free)

void vhu_backend_channel_set_reply_timeout (VhuBackendChannel *channel, guint timeout_ms);

void vhu_backend_channel_request (VhuBackendChannel *channel,
                                  VhuMessage *msg,
                                  gboolean need_reply,
                                  GTask *task);

G_END_DECLS
