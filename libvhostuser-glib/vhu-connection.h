/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * One vhost-user stream socket in a GSource: non-blocking recvmsg/sendmsg
 * with SCM_RIGHTS, messages framed by their header, fds owned until a
 * handler takes them. Used for the control socket (receives requests) and
 * for the back-end channel (receives replies).
 */

#pragma once

#include <glib.h>

#include "vhu-message.h"

G_BEGIN_DECLS

typedef struct _VhuConnection VhuConnection;

/* A whole, framed message whose header passed vhu_header_validate(). The
 * handler takes the fds it keeps; the others are closed after it returns. */
typedef void (*VhuConnectionMessageFunc) (VhuConnection *conn, VhuMessage *msg, gpointer user_data);

/* The connection died: peer closed it, or it can no longer be trusted.
 * Called once, never after vhu_connection_close(). */
typedef void (*VhuConnectionClosedFunc) (VhuConnection *conn, const GError *error, gpointer user_data);

VhuConnection *vhu_connection_new (int fd, GMainContext *context, gboolean receives_replies);
VhuConnection *vhu_connection_ref (VhuConnection *conn);
void vhu_connection_unref (VhuConnection *conn);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuConnection, vhu_connection_unref)

void vhu_connection_set_handlers (VhuConnection *conn,
                                  VhuConnectionMessageFunc message_func,
                                  VhuConnectionClosedFunc closed_func,
                                  gpointer user_data);

gboolean vhu_connection_send (VhuConnection *conn, VhuMessage *msg, GError **error);

void vhu_connection_pause (VhuConnection *conn);
void vhu_connection_resume (VhuConnection *conn);
void vhu_connection_close (VhuConnection *conn);
gboolean vhu_connection_is_closed (VhuConnection *conn);

G_END_DECLS
