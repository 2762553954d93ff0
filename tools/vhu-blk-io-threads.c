/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The threads engine: a few worker threads take requests from one queue,
 * carry them out with blocking system calls (vhu-blk-exec.c) and put them on
 * a completion list; an eventfd wakes the device's context, which hands the
 * whole list back. The lists are intrusive (VhuBlkRequest.next): nothing is
 * allocated per request.
 */

#include "config.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>
#include <gio/gio.h>

#include "vhu-blk-io-private.h"

typedef struct
{
  VhuBlkRequest *head;
  VhuBlkRequest **tail;
} RequestList;

typedef struct
{
  VhuBlkIo parent;

  GMutex lock;
  GCond cond;
  RequestList todo;    /* under lock */
  RequestList done;    /* under lock */
  gboolean quit;       /* under lock */
  RequestList staged;  /* the context's thread: submitted, not yet kicked */

  int efd;             /* written when @done goes from empty to not empty */
  GSource *source;
  GThread **threads;
  guint n_threads;
} Threads;

static void
list_init (RequestList *list)
{
  list->head = NULL;
  list->tail = &list->head;
}

static void
list_append (RequestList *list, VhuBlkRequest *req)
{
  req->next = NULL;
  *list->tail = req;
  list->tail = &req->next;
}

static void
list_concat (RequestList *list, RequestList *other)
{
  if (other->head == NULL)
    return;
  *list->tail = other->head;
  list->tail = other->tail;
  list_init (other);
}

static VhuBlkRequest *
list_pop (RequestList *list)
{
  VhuBlkRequest *req = list->head;

  if (req != NULL)
    {
      list->head = req->next;
      if (list->head == NULL)
        list->tail = &list->head;
      req->next = NULL;
    }
  return req;
}

static gpointer
worker_main (gpointer data)
{
  Threads *self = data;

  g_mutex_lock (&self->lock);
  for (;;)
    {
      VhuBlkRequest *req;
      gboolean was_empty;

      while (!self->quit && self->todo.head == NULL)
        g_cond_wait (&self->cond, &self->lock);
      req = list_pop (&self->todo);
      if (req == NULL)
        break; /* quitting with nothing left to do */
      g_mutex_unlock (&self->lock);

      vhu_blk_exec (&self->parent.file, req);

      g_mutex_lock (&self->lock);
      was_empty = self->done.head == NULL;
      list_append (&self->done, req);
      if (was_empty)
        eventfd_write (self->efd, 1);
    }
  g_mutex_unlock (&self->lock);
  return NULL;
}

/* Hands back every finished request; returns how many. */
static guint
threads_process (VhuBlkIo *io)
{
  Threads *self = (Threads *) io;
  RequestList done;
  VhuBlkRequest *req;
  eventfd_t value;
  guint n = 0;

  eventfd_read (self->efd, &value);
  list_init (&done);
  g_mutex_lock (&self->lock);
  list_concat (&done, &self->done);
  g_mutex_unlock (&self->lock);

  while ((req = list_pop (&done)) != NULL)
    {
      vhu_blk_io_complete (&self->parent, req);
      n++;
    }
  if (n > 0)
    self->parent.batch_done (self->parent.user_data);
  return n;
}

static gboolean
on_done (gint fd, GIOCondition condition, gpointer user_data)
{
  threads_process (user_data);
  return G_SOURCE_CONTINUE;
}

static void
threads_submit (VhuBlkIo *io, VhuBlkRequest *req)
{
  list_append (&((Threads *) io)->staged, req);
}

static void
threads_kick (VhuBlkIo *io)
{
  Threads *self = (Threads *) io;

  if (self->staged.head == NULL)
    return;
  g_mutex_lock (&self->lock);
  list_concat (&self->todo, &self->staged);
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

static void
threads_free (VhuBlkIo *io)
{
  Threads *self = (Threads *) io;

  g_mutex_lock (&self->lock);
  self->quit = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  for (guint i = 0; i < self->n_threads; i++)
    g_thread_join (self->threads[i]);
  g_free (self->threads);

  g_source_destroy (self->source);
  g_source_unref (self->source);
  close (self->efd);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  g_free (self);
}

static const VhuBlkIoClass threads_class = {
  .name = "threads",
  .submit = threads_submit,
  .kick = threads_kick,
  .process = threads_process,
  .free = threads_free,
};

VhuBlkIo *
vhu_blk_io_threads_new (const VhuBlkFile *file,
                        guint n_threads,
                        GMainContext *context,
                        VhuBlkIoDoneFunc done,
                        VhuBlkIoBatchFunc batch_done,
                        gpointer user_data,
                        GError **error)
{
  Threads *self;
  int efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);

  if (efd < 0)
    {
      int e = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), _("Cannot create an eventfd: %s"),
                   g_strerror (e));
      return NULL;
    }

  self = g_new0 (Threads, 1);
  vhu_blk_io_init (&self->parent, &threads_class, file, context, done, batch_done, user_data);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  list_init (&self->todo);
  list_init (&self->done);
  list_init (&self->staged);
  self->efd = efd;
  self->parent.wait_fd = efd;

  self->source = g_unix_fd_source_new (efd, G_IO_IN);
  g_source_set_static_name (self->source, "[vhost-user-blk] worker completions");
  /* Nothing here iterates the context inside the callback; a source that
   * may not recurse costs GLib two wakeups of the context per dispatch. */
  g_source_set_can_recurse (self->source, TRUE);
  g_source_set_callback (self->source, G_SOURCE_FUNC (on_done), self, NULL);
  g_source_attach (self->source, context);

  self->n_threads = MAX (n_threads, 1);
  self->threads = g_new0 (GThread *, self->n_threads);
  for (guint i = 0; i < self->n_threads; i++)
    self->threads[i] = g_thread_new ("vhu-blk-io", worker_main, self);
  return &self->parent;
}
