/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>
#include <gio/gio.h>

#include "vhost-user-error.h"
#include "vhu-device-state.h"

struct _VhuStateTransfer
{
  int fd;
  gboolean save;
  GBytes *state;      /* save: what is written */
  gsize written;
  GByteArray *loaded; /* load: what was read */
  GSource *source;
  gboolean done;
  GError *error;
  VhuStateTransferDoneFunc done_func;
  gpointer done_data;
};

static void
finish_transfer (VhuStateTransfer *transfer, GError *error)
{
  transfer->done = TRUE;
  transfer->error = error;
  if (transfer->source != NULL)
    {
      g_source_destroy (transfer->source);
      g_clear_pointer (&transfer->source, g_source_unref);
    }
  if (transfer->fd >= 0)
    {
      close (transfer->fd);
      transfer->fd = -1;
    }
  if (transfer->done_func != NULL)
    transfer->done_func (transfer, transfer->done_data);
}

static GError *
errno_error (int errsv, gboolean save)
{
  return g_error_new (G_IO_ERROR, g_io_error_from_errno (errsv),
                      save ? _("Error writing the device state: %s")
                           : _("Error reading the device state: %s"),
                      g_strerror (errsv));
}

/* write() to a pipe whose reader is gone raises SIGPIPE, which would kill
 * the process: send() says so with EPIPE instead on a socket, and for a pipe
 * the signal is blocked on this thread and consumed if it was raised. */
static gssize
write_no_sigpipe (int fd, const void *data, gsize len)
{
  sigset_t pipe_set, old_set;
  struct timespec zero = { 0, 0 };
  gssize n;
  int errsv;

  n = send (fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n >= 0 || errno != ENOTSOCK)
    return n;

  sigemptyset (&pipe_set);
  sigaddset (&pipe_set, SIGPIPE);
  pthread_sigmask (SIG_BLOCK, &pipe_set, &old_set);
  n = write (fd, data, len);
  errsv = errno;
  if (n < 0 && errsv == EPIPE && !sigismember (&old_set, SIGPIPE))
    while (sigtimedwait (&pipe_set, NULL, &zero) < 0 && errno == EINTR)
      ;
  pthread_sigmask (SIG_SETMASK, &old_set, NULL);
  errno = errsv;
  return n;
}

static gboolean
on_fd_ready (gint fd, GIOCondition condition, gpointer user_data)
{
  VhuStateTransfer *transfer = user_data;

  if (transfer->save && (condition & (G_IO_ERR | G_IO_HUP)))
    {
      finish_transfer (transfer, errno_error (EPIPE, TRUE));
      return G_SOURCE_REMOVE;
    }

  for (;;)
    {
      gssize n;

      if (transfer->save)
        {
          gsize len;
          const guint8 *data = g_bytes_get_data (transfer->state, &len);

          if (transfer->written == len)
            {
              finish_transfer (transfer, NULL);
              return G_SOURCE_REMOVE;
            }
          n = write_no_sigpipe (fd, data + transfer->written, len - transfer->written);
          if (n > 0)
            transfer->written += n;
        }
      else
        {
          guint8 buf[16384];

          n = read (fd, buf, sizeof buf);
          if (n == 0)
            {
              finish_transfer (transfer, NULL);
              return G_SOURCE_REMOVE;
            }
          if (n > 0)
            {
              if (transfer->loaded->len + n > VHU_DEVICE_STATE_MAX_SIZE)
                {
                  finish_transfer (transfer,
                                   g_error_new (VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                                                _("The device state is larger than %u bytes"),
                                                VHU_DEVICE_STATE_MAX_SIZE));
                  return G_SOURCE_REMOVE;
                }
              g_byte_array_append (transfer->loaded, buf, n);
            }
        }

      if (n < 0)
        {
          int errsv = errno;

          if (errsv == EINTR)
            continue;
          if (errsv == EAGAIN || errsv == EWOULDBLOCK)
            return G_SOURCE_CONTINUE;
          finish_transfer (transfer, errno_error (errsv, transfer->save));
          return G_SOURCE_REMOVE;
        }
    }
}

static VhuStateTransfer *
transfer_new (int fd, gboolean save, GMainContext *context)
{
  VhuStateTransfer *transfer = g_new0 (VhuStateTransfer, 1);

  transfer->fd = fd;
  transfer->save = save;
  g_unix_set_fd_nonblocking (fd, TRUE, NULL);
  transfer->source = g_unix_fd_source_new (fd, save ? G_IO_OUT : G_IO_IN);
  g_source_set_static_name (transfer->source, "[libvhostuser-glib] device state");
  g_source_set_callback (transfer->source, G_SOURCE_FUNC (on_fd_ready), transfer, NULL);
  g_source_attach (transfer->source, context);
  return transfer;
}

/* Takes @fd; writes @state to it, then closes it (end of transfer). */
VhuStateTransfer *
vhu_state_transfer_new_save (int fd, GBytes *state, GMainContext *context)
{
  VhuStateTransfer *transfer = transfer_new (fd, TRUE, context);

  transfer->state = g_bytes_ref (state);
  return transfer;
}

/* Takes @fd; reads it to its end. */
VhuStateTransfer *
vhu_state_transfer_new_load (int fd, GMainContext *context)
{
  VhuStateTransfer *transfer = transfer_new (fd, FALSE, context);

  transfer->loaded = g_byte_array_new ();
  return transfer;
}

void
vhu_state_transfer_free (VhuStateTransfer *transfer)
{
  transfer->done_func = NULL;
  if (!transfer->done)
    finish_transfer (transfer, NULL);
  g_clear_pointer (&transfer->state, g_bytes_unref);
  g_clear_pointer (&transfer->loaded, g_byte_array_unref);
  g_clear_error (&transfer->error);
  g_free (transfer);
}

gboolean
vhu_state_transfer_is_done (VhuStateTransfer *transfer)
{
  return transfer->done;
}

void
vhu_state_transfer_set_done_func (VhuStateTransfer *transfer,
                                  VhuStateTransferDoneFunc func,
                                  gpointer user_data)
{
  transfer->done_func = func;
  transfer->done_data = user_data;
}

/* Once done: the outcome, and for a load the bytes read. */
gboolean
vhu_state_transfer_finish (VhuStateTransfer *transfer, GBytes **loaded, GError **error)
{
  if (!transfer->done)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("The device state transfer has not finished"));
      return FALSE;
    }
  if (transfer->error != NULL)
    {
      g_propagate_error (error, g_error_copy (transfer->error));
      return FALSE;
    }
  if (loaded != NULL)
    *loaded = transfer->loaded != NULL
                ? g_bytes_new (transfer->loaded->data, transfer->loaded->len)
                : NULL;
  return TRUE;
}
