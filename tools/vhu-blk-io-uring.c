/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The io_uring engine: reads and writes go to the kernel as readv/writev
 * straight into and out of the guest's buffers, flushes as fdatasync; one
 * io_uring_submit per kick. The ring's own fd, readable while completions
 * wait, is watched on the device's context (an eventfd would cost a read
 * per wakeup, and the kernel a write). Never more requests in the kernel
 * than the completion queue holds; the rest wait on an intrusive list.
 * Short transfers are continued where they stopped. Discards and
 * write-zeroes (several steps, ioctls) go to a worker thread engine made
 * on first use.
 */

#include "config.h"

#include <errno.h>
#include <liburing.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>
#include <gio/gio.h>

#include "vhu-blk-io-private.h"


typedef struct
{
  VhuBlkIo parent;

  struct io_uring ring;
  GSource *source;
  guint in_kernel;       /* submitted, completion not yet seen */
  guint prepared;        /* SQEs prepared, not yet submitted */
  guint max_in_kernel;   /* the completion queue's size */
  VhuBlkRequest *waiting; /* no room in the rings yet (FIFO) */
  VhuBlkRequest **waiting_tail;
  /* parent.helper: a worker thread for DISCARD and WRITE_ZEROES, made on
   * first use. */
} Uring;

/* Prepares an SQE for @req; FALSE when the rings are full. */
static gboolean
prepare (Uring *self, VhuBlkRequest *req)
{
  struct io_uring_sqe *sqe;

  if (self->in_kernel + self->prepared >= self->max_in_kernel)
    return FALSE;
  sqe = io_uring_get_sqe (&self->ring);
  if (sqe == NULL)
    return FALSE;

  switch (req->op)
    {
    case VHU_BLK_OP_READ:
      io_uring_prep_readv (sqe, self->parent.file.fd, req->iov, req->n_iov, req->offset);
      break;
    case VHU_BLK_OP_WRITE:
      io_uring_prep_writev (sqe, self->parent.file.fd, req->iov, req->n_iov, req->offset);
      if (req->dsync)
        sqe->rw_flags = RWF_DSYNC;
      break;
    case VHU_BLK_OP_FLUSH:
    default:
      io_uring_prep_fsync (sqe, self->parent.file.fd, IORING_FSYNC_DATASYNC);
      break;
    }
  io_uring_sqe_set_data (sqe, req);
  self->prepared++;
  return TRUE;
}

static void
enqueue (Uring *self, VhuBlkRequest *req)
{
  /* Keep the order: nothing overtakes a request that is waiting. */
  if (self->waiting == NULL && prepare (self, req))
    return;
  req->next = NULL;
  *self->waiting_tail = req;
  self->waiting_tail = &req->next;
}

static void
prepare_waiting (Uring *self)
{
  while (self->waiting != NULL && prepare (self, self->waiting))
    {
      self->waiting = self->waiting->next;
      if (self->waiting == NULL)
        self->waiting_tail = &self->waiting;
    }
}

static void
submit_prepared (Uring *self)
{
  while (self->prepared > 0)
    {
      int n = io_uring_submit (&self->ring);

      if (n == -EINTR)
        continue;
      if (n <= 0)
        {
          /* -EAGAIN/-EBUSY: the kernel is short of resources; what is
           * prepared goes with the next submission, after a completion.
           * Completions are pending whenever this happens. */
          if (self->in_kernel == 0)
            g_warning ("io_uring_submit: %s", g_strerror (-n));
          return;
        }
      self->prepared -= MIN ((guint) n, self->prepared);
      self->in_kernel += n;
    }
}

static void helper_done (VhuBlkRequest *req, gpointer user_data);
static void helper_batch_done (gpointer user_data);

static void
uring_submit (VhuBlkIo *io, VhuBlkRequest *req)
{
  Uring *self = (Uring *) io;

  if (req->op == VHU_BLK_OP_DISCARD || req->op == VHU_BLK_OP_WRITE_ZEROES)
    {
      /* Made on first use: until then, its completion fd is not in every
       * poll() of the context. */
      if (io->helper == NULL)
        {
          g_autoptr (GError) error = NULL;

          io->helper = vhu_blk_io_threads_new (&io->file, 1, io->context, helper_done,
                                               helper_batch_done, io, &error);
          if (io->helper == NULL)
            {
              g_warning ("%s", error->message);
              req->status = VHU_BLK_S_IOERR;
              vhu_blk_io_complete (io, req);
              return;
            }
        }
      vhu_blk_io_submit (io->helper, req);
      return;
    }
  enqueue (self, req);
}

static guint uring_process (VhuBlkIo *io);

static void
uring_kick (VhuBlkIo *io)
{
  Uring *self = (Uring *) io;

  submit_prepared (self);
  if (io->helper != NULL)
    vhu_blk_io_kick (io->helper);
  /* A read from the page cache completes inside the submission: answered
   * now, rather than after another trip through poll(). */
  if (self->in_kernel > 0 && io_uring_cq_ready (&self->ring) > 0)
    uring_process (io);
}

/* One completion: the request is handed back, or goes on (the rest of a
 * short transfer, or a retry). Returns TRUE if handed back. */
static gboolean
handle_cqe (Uring *self, VhuBlkRequest *req, int res)
{
  if (res == -EINTR || res == -EAGAIN)
    {
      enqueue (self, req);
      return FALSE;
    }
  if (res < 0)
    req->status = VHU_BLK_S_IOERR;
  else if (req->op == VHU_BLK_OP_FLUSH)
    req->status = VHU_BLK_S_OK;
  else if (res == 0)
    req->status = VHU_BLK_S_IOERR; /* the image shrank under the request */
  else if (!vhu_blk_request_advance (req, res))
    {
      enqueue (self, req);
      return FALSE;
    }
  else
    req->status = VHU_BLK_S_OK;

  vhu_blk_io_complete (&self->parent, req);
  return TRUE;
}

static guint
uring_process (VhuBlkIo *io)
{
  Uring *self = (Uring *) io;
  struct io_uring_cqe *cqe;
  guint n = 0;

  while (io_uring_peek_cqe (&self->ring, &cqe) == 0)
    {
      VhuBlkRequest *req = io_uring_cqe_get_data (cqe);
      int res = cqe->res;

      io_uring_cqe_seen (&self->ring, cqe);
      self->in_kernel--;
      if (handle_cqe (self, req, res))
        n++;
    }
  prepare_waiting (self);
  submit_prepared (self);
  if (n > 0)
    self->parent.batch_done (self->parent.user_data);
  return n;
}

static gboolean
on_completion (gint fd, GIOCondition condition, gpointer user_data)
{
  uring_process (user_data);
  return G_SOURCE_CONTINUE;
}

/* The helper's completions are the engine's. */
static void
helper_done (VhuBlkRequest *req, gpointer user_data)
{
  vhu_blk_io_complete (user_data, req);
}

static void
helper_batch_done (gpointer user_data)
{
  VhuBlkIo *io = user_data;

  io->batch_done (io->user_data);
}

static void
uring_free (VhuBlkIo *io)
{
  Uring *self = (Uring *) io;

  vhu_blk_io_free (io->helper);
  g_source_destroy (self->source);
  g_source_unref (self->source);
  io_uring_queue_exit (&self->ring);
  g_free (self);
}

static const VhuBlkIoClass uring_class = {
  .name = "io_uring",
  .submit = uring_submit,
  .kick = uring_kick,
  .process = uring_process,
  .free = uring_free,
};

static gboolean
probe_opcodes (struct io_uring *ring, GError **error)
{
  static const struct
  {
    int op;
    const char *name;
  } needed[] = {
    { IORING_OP_READV, "READV" },
    { IORING_OP_WRITEV, "WRITEV" },
    { IORING_OP_FSYNC, "FSYNC" },
  };
  struct io_uring_probe *probe = io_uring_get_probe_ring (ring);

  if (probe == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("The kernel cannot say which io_uring operations it supports"));
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (needed); i++)
    if (!io_uring_opcode_supported (probe, needed[i].op))
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                     _("The kernel's io_uring has no %s operation"), needed[i].name);
        io_uring_free_probe (probe);
        return FALSE;
      }
  io_uring_free_probe (probe);
  return TRUE;
}

VhuBlkIo *
vhu_blk_io_uring_new (const VhuBlkFile *file,
                      guint entries,
                      GMainContext *context,
                      VhuBlkIoDoneFunc done,
                      VhuBlkIoBatchFunc batch_done,
                      gpointer user_data,
                      GError **error)
{
  g_autofree Uring *self = g_new0 (Uring, 1);
  int r;

  r = io_uring_queue_init (entries, &self->ring, 0);
  if (r < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (-r),
                   _("Cannot set up an io_uring: %s"), g_strerror (-r));
      return NULL;
    }
  if (!probe_opcodes (&self->ring, error))
    {
      io_uring_queue_exit (&self->ring);
      return NULL;
    }
  vhu_blk_io_init (&self->parent, &uring_class, file, context, done, batch_done, user_data);
  self->max_in_kernel = self->ring.cq.ring_entries;
  self->waiting_tail = &self->waiting;
  self->parent.wait_fd = self->ring.ring_fd;

  self->source = g_unix_fd_source_new (self->ring.ring_fd, G_IO_IN);
  g_source_set_static_name (self->source, "[vhost-user-blk] io_uring completions");
  /* Nothing here iterates the context inside the callback; a source that
   * may not recurse costs GLib two wakeups of the context per dispatch. */
  g_source_set_can_recurse (self->source, TRUE);
  g_source_set_callback (self->source, G_SOURCE_FUNC (on_completion), self, NULL);
  g_source_attach (self->source, context);
  return &g_steal_pointer (&self)->parent;
}
