/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "vhost-user-error.h"
#include "vhu-backend-channel.h"
#include "vhu-connection.h"

typedef struct
{
  guint32 request;
  GTask *task;
} VhuPending;

struct _VhuBackendChannel
{
  VhuConnection *conn;
  GMainContext *context;
  GQueue pending; /* of VhuPending, oldest first */
  GSource *timeout;
  guint timeout_ms;
};

static void
pending_fail (VhuPending *pending, GError *error)
{
  g_task_return_error (pending->task, error);
  g_object_unref (pending->task);
  g_free (pending);
}

static void
cancel_timeout (VhuBackendChannel *channel)
{
  if (channel->timeout != NULL)
    {
      g_source_destroy (channel->timeout);
      g_clear_pointer (&channel->timeout, g_source_unref);
    }
}

/* Fails every request still waiting, and closes the channel: once a reply is
 * missing or wrong, later replies can no longer be matched. */
static void
channel_break (VhuBackendChannel *channel, const GError *error)
{
  VhuPending *pending;

  cancel_timeout (channel);
  vhu_connection_close (channel->conn);
  while ((pending = g_queue_pop_head (&channel->pending)) != NULL)
    pending_fail (pending, g_error_copy (error));
}

static gboolean
on_timeout (gpointer user_data)
{
  VhuBackendChannel *channel = user_data;
  g_autoptr (GError) error = NULL;
  VhuPending *pending = g_queue_peek_head (&channel->pending);

  g_clear_pointer (&channel->timeout, g_source_unref);
  g_set_error (&error, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMED_OUT,
               _("The front-end did not answer %s within %u ms"),
               vhu_backend_request_name (pending != NULL ? pending->request : 0),
               channel->timeout_ms);
  channel_break (channel, error);
  return G_SOURCE_REMOVE;
}

static void
arm_timeout (VhuBackendChannel *channel)
{
  cancel_timeout (channel);
  if (g_queue_is_empty (&channel->pending))
    return;
  channel->timeout = g_timeout_source_new (channel->timeout_ms);
  g_source_set_static_name (channel->timeout, "[libvhostuser-glib] back-end reply timeout");
  g_source_set_callback (channel->timeout, on_timeout, channel, NULL);
  g_source_attach (channel->timeout, channel->context);
}

static void
on_reply (VhuConnection *conn, VhuMessage *msg, gpointer user_data)
{
  VhuBackendChannel *channel = user_data;
  g_autoptr (GError) error = NULL;
  VhuPending *pending = g_queue_pop_head (&channel->pending);

  if (pending == NULL)
    {
      g_set_error (&error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("The front-end sent %s on the back-end channel without being asked"),
                   vhu_backend_request_name (msg->hdr.request));
      channel_break (channel, error);
      return;
    }

  if (!vhu_message_validate_backend_reply (msg, pending->request, &error))
    {
      pending_fail (pending, g_error_copy (error));
      channel_break (channel, error);
      return;
    }

  if (msg->payload.u64 != 0)
    {
      pending_fail (pending,
                    g_error_new (VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED,
                                 _("The front-end refused %s (status %" G_GUINT64_FORMAT ")"),
                                 vhu_backend_request_name (pending->request), msg->payload.u64));
    }
  else
    {
      int fd = vhu_message_steal_fd (msg, 0);

      if (fd >= 0)
        g_task_return_int (pending->task, fd);
      else
        g_task_return_int (pending->task, -1);
      g_object_unref (pending->task);
      g_free (pending);
    }
  arm_timeout (channel);
}

static void
on_closed (VhuConnection *conn, const GError *error, gpointer user_data)
{
  channel_break (user_data, error);
}

/* Takes @fd. */
VhuBackendChannel *
vhu_backend_channel_new (int fd, GMainContext *context)
{
  VhuBackendChannel *channel = g_new0 (VhuBackendChannel, 1);

  channel->context = g_main_context_ref (context);
  channel->timeout_ms = VHU_BACKEND_REPLY_TIMEOUT_MS;
  g_queue_init (&channel->pending);
  channel->conn = vhu_connection_new (fd, context, TRUE);
  vhu_connection_set_handlers (channel->conn, on_reply, on_closed, channel);
  return channel;
}

void
vhu_backend_channel_free (VhuBackendChannel *channel)
{
  g_autoptr (GError) error = NULL;

  g_set_error (&error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
               _("The back-end channel was closed"));
  channel_break (channel, error);
  vhu_connection_unref (channel->conn);
  g_main_context_unref (channel->context);
  g_free (channel);
}

void
vhu_backend_channel_set_reply_timeout (VhuBackendChannel *channel, guint timeout_ms)
{
  channel->timeout_ms = timeout_ms;
}

/* Sends @msg (taking its fds). @task returns an int: the fd the reply
 * carried, or -1; or the error. Without @need_reply it returns -1 once the
 * message is handed to the socket. */
void
vhu_backend_channel_request (VhuBackendChannel *channel,
                             VhuMessage *msg,
                             gboolean need_reply,
                             GTask *task)
{
  GError *error = NULL;

  if (need_reply)
    msg->hdr.flags |= VHU_FLAG_NEED_REPLY;
  else
    msg->hdr.flags &= ~VHU_FLAG_NEED_REPLY;

  if (!vhu_connection_send (channel->conn, msg, &error))
    {
      g_task_return_error (task, error);
      return;
    }

  if (!need_reply)
    {
      g_task_return_int (task, -1);
      return;
    }

  VhuPending *pending = g_new (VhuPending, 1);
  pending->request = msg->hdr.request;
  pending->task = g_object_ref (task);
  g_queue_push_tail (&channel->pending, pending);
  if (channel->timeout == NULL)
    arm_timeout (channel);
}
