/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <poll.h>

#include <glib/gi18n-lib.h>
#include <gio/gio.h>

#include "vhu-blk-io-private.h"

#ifndef HAVE_LIBURING
VhuBlkIo *
vhu_blk_io_uring_new (const VhuBlkFile *file,
                      guint entries,
                      GMainContext *context,
                      VhuBlkIoDoneFunc done,
                      VhuBlkIoBatchFunc batch_done,
                      gpointer user_data,
                      GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
               _("This build has no io_uring support (liburing was missing)"));
  return NULL;
}
#endif

/* Worker threads of the threads engine: enough to keep a few requests of
 * each queue going on two cores without flooding the disk. */
#define N_WORKER_THREADS 4u
/* io_uring submission queue entries (the completion queue has twice as
 * many): more than two full rings of 128 descriptors. */
#define URING_ENTRIES 256u

void
vhu_blk_io_init (VhuBlkIo *io,
                 const VhuBlkIoClass *klass,
                 const VhuBlkFile *file,
                 GMainContext *context,
                 VhuBlkIoDoneFunc done,
                 VhuBlkIoBatchFunc batch_done,
                 gpointer user_data)
{
  io->klass = klass;
  io->file = *file;
  io->context = g_main_context_ref (context);
  io->done = done;
  io->batch_done = batch_done;
  io->user_data = user_data;
  io->in_flight = 0;
  io->wait_fd = -1;
  io->helper = NULL;
}

void
vhu_blk_io_complete (VhuBlkIo *io, VhuBlkRequest *req)
{
  g_assert (io->in_flight > 0);
  io->in_flight--;
  io->done (req, io->user_data);
}

VhuBlkIo *
vhu_blk_io_new (VhuBlkAio aio,
                const VhuBlkFile *file,
                GMainContext *context,
                VhuBlkIoDoneFunc done,
                VhuBlkIoBatchFunc batch_done,
                gpointer user_data,
                GError **error)
{
  g_autoptr (GError) local_error = NULL;
  VhuBlkIo *io;

  g_return_val_if_fail (file != NULL && file->fd >= 0, NULL);
  g_return_val_if_fail (done != NULL && batch_done != NULL, NULL);

  if (context == NULL)
    context = g_main_context_default ();

  switch (aio)
    {
    case VHU_BLK_AIO_IO_URING:
      return vhu_blk_io_uring_new (file, URING_ENTRIES, context, done, batch_done, user_data,
                                   error);
    case VHU_BLK_AIO_THREADS:
      return vhu_blk_io_threads_new (file, N_WORKER_THREADS, context, done, batch_done, user_data,
                                     error);
    case VHU_BLK_AIO_AUTO:
    default:
      io = vhu_blk_io_uring_new (file, URING_ENTRIES, context, done, batch_done, user_data,
                                 &local_error);
      if (io != NULL)
        return io;
      g_debug ("io_uring is not available (%s): using worker threads", local_error->message);
      return vhu_blk_io_threads_new (file, N_WORKER_THREADS, context, done, batch_done, user_data,
                                     error);
    }
}

const char *
vhu_blk_io_get_name (VhuBlkIo *io)
{
  return io->klass->name;
}

void
vhu_blk_io_submit (VhuBlkIo *io, VhuBlkRequest *req)
{
  io->in_flight++;
  io->klass->submit (io, req);
}

void
vhu_blk_io_kick (VhuBlkIo *io)
{
  io->klass->kick (io);
}

guint
vhu_blk_io_get_in_flight (VhuBlkIo *io)
{
  return io->in_flight;
}

void
vhu_blk_io_drain (VhuBlkIo *io)
{
  io->klass->kick (io);
  while (io->in_flight > 0)
    {
      struct pollfd pfds[2] = {
        { .fd = io->wait_fd, .events = POLLIN },
        { .fd = io->helper != NULL ? io->helper->wait_fd : -1, .events = POLLIN },
      };
      guint n = io->klass->process (io);

      if (io->helper != NULL)
        n += io->helper->klass->process (io->helper);
      if (n > 0)
        continue;
      if (poll (pfds, G_N_ELEMENTS (pfds), -1) < 0 && errno != EINTR)
        g_error ("poll: %s", g_strerror (errno));
    }
}

void
vhu_blk_io_free (VhuBlkIo *io)
{
  GMainContext *context;

  if (io == NULL)
    return;
  vhu_blk_io_drain (io);
  context = io->context;
  io->klass->free (io);
  g_main_context_unref (context);
}
