/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <gio/gio.h>

#include "vhost-user-error.h"
#include "vhu-connection.h"

/* Messages handled per wakeup before yielding to other sources (a flooding
 * front-end must not starve the queues). */
#define VHU_CONNECTION_BUDGET 64
/* Replies queued for a front-end that stopped reading, before we give up. */
#define VHU_CONNECTION_MAX_QUEUED (256 * 1024)

typedef struct
{
  guint8 *bytes;
  gsize len;
  gsize sent;
  int fds[VHU_MAX_FDS];
  guint n_fds;
} VhuOutgoing;

typedef struct
{
  GSource source;
  VhuConnection *conn;
} VhuConnectionSource;

struct _VhuConnection
{
  gint ref_count;
  int fd;
  gboolean receives_replies;
  gboolean paused;
  gboolean closed;

  GMainContext *context;
  GSource *source;
  gpointer tag;

  VhuMessage rx;
  gsize rx_have; /* header + payload bytes received so far */

  GQueue tx; /* of VhuOutgoing */
  gsize tx_queued;

  VhuConnectionMessageFunc message_func;
  VhuConnectionClosedFunc closed_func;
  gpointer user_data;
};

static void
vhu_outgoing_free (VhuOutgoing *out)
{
  for (guint i = 0; i < out->n_fds; i++)
    close (out->fds[i]);
  g_free (out->bytes);
  g_free (out);
}

static void
update_events (VhuConnection *conn)
{
  GIOCondition events = 0;

  if (conn->closed || conn->source == NULL)
    return;
  if (!conn->paused)
    events |= G_IO_IN;
  if (!g_queue_is_empty (&conn->tx))
    events |= G_IO_OUT;
  g_source_modify_unix_fd (conn->source, conn->tag, events);
}

static void
shutdown_connection (VhuConnection *conn)
{
  VhuOutgoing *out;

  if (conn->closed)
    return;
  conn->closed = TRUE;

  if (conn->source != NULL)
    {
      g_source_destroy (conn->source);
      g_clear_pointer (&conn->source, g_source_unref);
    }
  while ((out = g_queue_pop_head (&conn->tx)) != NULL)
    vhu_outgoing_free (out);
  conn->tx_queued = 0;
  vhu_message_clear (&conn->rx);
  conn->rx_have = 0;
  if (conn->fd >= 0)
    {
      close (conn->fd);
      conn->fd = -1;
    }
}

static void
fail (VhuConnection *conn, GError *error)
{
  VhuConnectionClosedFunc closed_func = conn->closed_func;
  gpointer user_data = conn->user_data;

  if (conn->closed)
    {
      g_error_free (error);
      return;
    }
  g_debug ("connection closed: %s", error->message);
  shutdown_connection (conn);
  if (closed_func != NULL)
    closed_func (conn, error, user_data);
  g_error_free (error);
}

/* Collects the SCM_RIGHTS fds of one recvmsg into the message being
 * received. Returns FALSE (all fds of this call closed) when there are too
 * many or they were truncated. */
static gboolean
collect_fds (VhuConnection *conn, struct msghdr *mh, GError **error)
{
  int fds[VHU_MAX_FDS * 2];
  guint n = 0;
  gboolean overflow = FALSE;

  for (struct cmsghdr *cmsg = CMSG_FIRSTHDR (mh); cmsg != NULL; cmsg = CMSG_NXTHDR (mh, cmsg))
    {
      gsize count;
      const guint8 *data;

      if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
        continue;
      count = (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      data = CMSG_DATA (cmsg);
      for (gsize i = 0; i < count; i++)
        {
          int fd;

          memcpy (&fd, data + i * sizeof (int), sizeof (int));
          if (n < G_N_ELEMENTS (fds))
            fds[n++] = fd;
          else
            {
              close (fd);
              overflow = TRUE;
            }
        }
    }

  if (overflow || (mh->msg_flags & MSG_CTRUNC))
    {
      for (guint i = 0; i < n; i++)
        close (fds[i]);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("More file descriptors than a message may carry (%u)"), VHU_MAX_FDS);
      return FALSE;
    }

  if (n == 0)
    return TRUE;
  return vhu_message_take_fds (&conn->rx, fds, n, error);
}

typedef enum
{
  RECV_MESSAGE,
  RECV_AGAIN,
  RECV_FAILED,
} RecvResult;

static RecvResult
receive_some (VhuConnection *conn, GError **error)
{
  union
  {
    char buf[CMSG_SPACE (sizeof (int) * VHU_MAX_FDS)];
    struct cmsghdr align;
  } control;
  struct iovec iov;
  struct msghdr mh = { 0 };
  gssize n;

  for (;;)
    {
      if (conn->rx_have < VHU_HEADER_SIZE)
        {
          iov.iov_base = (guint8 *) &conn->rx.hdr + conn->rx_have;
          iov.iov_len = VHU_HEADER_SIZE - conn->rx_have;
        }
      else
        {
          gsize got = conn->rx_have - VHU_HEADER_SIZE;

          if (got == conn->rx.hdr.size)
            return RECV_MESSAGE;
          iov.iov_base = conn->rx.payload.bytes + got;
          iov.iov_len = conn->rx.hdr.size - got;
        }

      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      mh.msg_control = control.buf;
      mh.msg_controllen = sizeof control.buf;
      mh.msg_flags = 0;

      n = recvmsg (conn->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (n < 0)
        {
          int errsv = errno;

          if (errsv == EINTR)
            continue;
          if (errsv == EAGAIN || errsv == EWOULDBLOCK)
            return RECV_AGAIN;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("Error receiving a message: %s"), g_strerror (errsv));
          return RECV_FAILED;
        }

      if (!collect_fds (conn, &mh, error))
        return RECV_FAILED;

      if (n == 0)
        {
          if (conn->rx_have > 0)
            g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                         _("The peer closed the connection in the middle of a message"));
          else
            g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                         _("The peer closed the connection"));
          return RECV_FAILED;
        }

      conn->rx_have += n;
      if (conn->rx_have == VHU_HEADER_SIZE)
        {
          /* Refuse a bad header before reading a byte of its payload. */
          if (!vhu_header_validate (&conn->rx.hdr, conn->receives_replies, error))
            return RECV_FAILED;
        }
    }
}

static void
receive_messages (VhuConnection *conn)
{
  for (guint budget = VHU_CONNECTION_BUDGET; budget > 0; budget--)
    {
      GError *error = NULL;

      if (conn->closed || conn->paused)
        return;

      switch (receive_some (conn, &error))
        {
        case RECV_AGAIN:
          return;
        case RECV_FAILED:
          fail (conn, error);
          return;
        case RECV_MESSAGE:
          break;
        }

      conn->rx_have = 0;
      if (conn->message_func != NULL)
        conn->message_func (conn, &conn->rx, conn->user_data);
      vhu_message_clear (&conn->rx);
    }

  /* Budget spent: come back on the next iteration even if no new byte
   * arrives (level-triggered poll takes care of that). */
}

static gboolean
flush_output (VhuConnection *conn, GError **error)
{
  VhuOutgoing *out;

  while ((out = g_queue_peek_head (&conn->tx)) != NULL)
    {
      union
      {
        char buf[CMSG_SPACE (sizeof (int) * VHU_MAX_FDS)];
        struct cmsghdr align;
      } control;
      struct iovec iov = { out->bytes + out->sent, out->len - out->sent };
      struct msghdr mh = { 0 };
      gssize n;

      mh.msg_iov = &iov;
      mh.msg_iovlen = 1;
      if (out->n_fds > 0)
        {
          struct cmsghdr *cmsg;

          memset (&control, 0, sizeof control);
          mh.msg_control = control.buf;
          mh.msg_controllen = CMSG_SPACE (sizeof (int) * out->n_fds);
          cmsg = CMSG_FIRSTHDR (&mh);
          cmsg->cmsg_level = SOL_SOCKET;
          cmsg->cmsg_type = SCM_RIGHTS;
          cmsg->cmsg_len = CMSG_LEN (sizeof (int) * out->n_fds);
          memcpy (CMSG_DATA (cmsg), out->fds, sizeof (int) * out->n_fds);
        }

      n = sendmsg (conn->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0)
        {
          int errsv = errno;

          if (errsv == EINTR)
            continue;
          if (errsv == EAGAIN || errsv == EWOULDBLOCK)
            return TRUE;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                       _("Error sending a message: %s"), g_strerror (errsv));
          return FALSE;
        }

      /* The fds went with the first byte. */
      for (guint i = 0; i < out->n_fds; i++)
        close (out->fds[i]);
      out->n_fds = 0;

      out->sent += n;
      conn->tx_queued -= n;
      if (out->sent == out->len)
        vhu_outgoing_free (g_queue_pop_head (&conn->tx));
    }

  return TRUE;
}

static gboolean
vhu_connection_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  VhuConnection *conn = ((VhuConnectionSource *) source)->conn;
  g_autoptr (VhuConnection) hold = vhu_connection_ref (conn);
  GIOCondition revents;
  GError *error = NULL;

  if (conn->closed)
    return G_SOURCE_REMOVE;

  revents = g_source_query_unix_fd (source, conn->tag);

  if (revents & G_IO_OUT)
    {
      if (!flush_output (conn, &error))
        {
          fail (conn, error);
          return G_SOURCE_REMOVE;
        }
    }

  if (revents & (G_IO_IN | G_IO_HUP | G_IO_ERR))
    {
      if (!conn->paused)
        receive_messages (conn);
      else if (revents & (G_IO_HUP | G_IO_ERR))
        {
          /* Paused with nothing to read: only a hang-up wakes us here. */
          g_set_error (&error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                       _("The peer closed the connection"));
          fail (conn, error);
        }
    }

  update_events (conn);
  return conn->closed ? G_SOURCE_REMOVE : G_SOURCE_CONTINUE;
}

static GSourceFuncs vhu_connection_source_funcs = {
  .dispatch = vhu_connection_source_dispatch,
};

VhuConnection *
vhu_connection_new (int fd, GMainContext *context, gboolean receives_replies)
{
  VhuConnection *conn;
  VhuConnectionSource *source;

  g_return_val_if_fail (fd >= 0, NULL);

  conn = g_new0 (VhuConnection, 1);
  conn->ref_count = 1;
  conn->fd = fd;
  conn->receives_replies = receives_replies;
  conn->context = context != NULL ? g_main_context_ref (context) : g_main_context_ref_thread_default ();
  vhu_message_init (&conn->rx);
  g_queue_init (&conn->tx);

  source = (VhuConnectionSource *) g_source_new (&vhu_connection_source_funcs,
                                                 sizeof (VhuConnectionSource));
  source->conn = conn;
  g_source_set_static_name ((GSource *) source, "[libvhostuser-glib] connection");
  conn->tag = g_source_add_unix_fd ((GSource *) source, fd, G_IO_IN);
  conn->source = (GSource *) source;
  g_source_attach (conn->source, conn->context);

  return conn;
}

VhuConnection *
vhu_connection_ref (VhuConnection *conn)
{
  g_atomic_int_inc (&conn->ref_count);
  return conn;
}

void
vhu_connection_unref (VhuConnection *conn)
{
  if (!g_atomic_int_dec_and_test (&conn->ref_count))
    return;
  shutdown_connection (conn);
  g_main_context_unref (conn->context);
  g_free (conn);
}

void
vhu_connection_set_handlers (VhuConnection *conn,
                             VhuConnectionMessageFunc message_func,
                             VhuConnectionClosedFunc closed_func,
                             gpointer user_data)
{
  conn->message_func = message_func;
  conn->closed_func = closed_func;
  conn->user_data = user_data;
}

/* Sends @msg, taking its fds (they are closed once sent, or on failure).
 * What the socket does not take at once is queued and sent when writable. */
gboolean
vhu_connection_send (VhuConnection *conn, VhuMessage *msg, GError **error)
{
  g_autoptr (VhuConnection) hold = vhu_connection_ref (conn);
  GError *local_error = NULL;
  VhuOutgoing *out;
  gsize len;

  if (conn->closed)
    {
      vhu_message_clear (msg);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
                   _("The connection is closed"));
      return FALSE;
    }

  len = VHU_HEADER_SIZE + msg->hdr.size;
  if (msg->hdr.size > VHU_MAX_PAYLOAD || conn->tx_queued + len > VHU_CONNECTION_MAX_QUEUED)
    {
      vhu_message_clear (msg);
      g_set_error (&local_error, VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED,
                   _("The peer does not read its messages"));
      fail (conn, g_error_copy (local_error));
      g_propagate_error (error, local_error);
      return FALSE;
    }

  out = g_new0 (VhuOutgoing, 1);
  out->bytes = g_malloc (len);
  out->len = len;
  memcpy (out->bytes, &msg->hdr, VHU_HEADER_SIZE);
  memcpy (out->bytes + VHU_HEADER_SIZE, msg->payload.bytes, msg->hdr.size);
  for (guint i = 0; i < msg->n_fds; i++)
    {
      int fd = vhu_message_steal_fd (msg, i);

      if (fd >= 0)
        out->fds[out->n_fds++] = fd;
    }
  msg->n_fds = 0;

  g_queue_push_tail (&conn->tx, out);
  conn->tx_queued += len;

  if (!flush_output (conn, &local_error))
    {
      fail (conn, g_error_copy (local_error));
      g_propagate_error (error, local_error);
      return FALSE;
    }
  update_events (conn);
  return TRUE;
}

void
vhu_connection_pause (VhuConnection *conn)
{
  conn->paused = TRUE;
  update_events (conn);
}

void
vhu_connection_resume (VhuConnection *conn)
{
  conn->paused = FALSE;
  update_events (conn);
}

void
vhu_connection_close (VhuConnection *conn)
{
  shutdown_connection (conn);
}

gboolean
vhu_connection_is_closed (VhuConnection *conn)
{
  return conn->closed;
}
