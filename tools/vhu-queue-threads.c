/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "vhu-queue-threads.h"

/* ------------------------------------------------------------------------ */
/* Options                                                                  */

/* The longest adaptive budget: one second. */
#define MAX_POLL_US 1000000

void
vhu_queue_options_init (VhuQueueOptions *options)
{
  options->mode_name = NULL;
  options->poll_us = -1;
  options->threads = 0;
  options->mode = VHOST_USER_QUEUE_MODE_EVENT;
  options->poll_ns = 0;
}

void
vhu_queue_options_clear (VhuQueueOptions *options)
{
  g_clear_pointer (&options->mode_name, g_free);
}

const GOptionEntry *
vhu_queue_options_get_entries (VhuQueueOptions *options)
{
  /* One program, one set of options: the table is filled in once. */
  static GOptionEntry entries[4];

  entries[0] = (GOptionEntry) {
    "queue-mode", 0, 0, G_OPTION_ARG_STRING, &options->mode_name,
    N_("How the queues learn of new buffers: event (wait for the driver's kicks; the "
       "default), adaptive (after work, poll the ring for --poll-us before waiting again) "
       "or poll (poll all the time: each thread keeps a CPU busy; see --threads)"),
    N_("MODE")
  };
  entries[1] = (GOptionEntry) {
    "poll-us", 0, 0, G_OPTION_ARG_INT, &options->poll_us,
    N_("With --queue-mode=adaptive, how long a queue polls its ring after work, in "
       "microseconds (0 to 1000000; default 50)"),
    N_("N")
  };
  entries[2] = (GOptionEntry) {
    "threads", 0, 0, G_OPTION_ARG_INT, &options->threads,
    N_("Run the queues on N worker threads, spread round-robin (default 0: on the main "
       "thread, with the control messages)"),
    N_("N")
  };
  entries[3] = (GOptionEntry) { NULL };
  return entries;
}

gboolean
vhu_queue_options_check (VhuQueueOptions *options, GError **error)
{
  const char *name = options->mode_name;

  if (name == NULL || g_str_equal (name, "event"))
    options->mode = VHOST_USER_QUEUE_MODE_EVENT;
  else if (g_str_equal (name, "adaptive"))
    options->mode = VHOST_USER_QUEUE_MODE_ADAPTIVE;
  else if (g_str_equal (name, "poll"))
    options->mode = VHOST_USER_QUEUE_MODE_POLL;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--queue-mode must be event, adaptive or poll, not “%s”"), name);
      return FALSE;
    }
  if (options->poll_us != -1 && (options->poll_us < 0 || options->poll_us > MAX_POLL_US))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--poll-us=%d: the budget must be from 0 to %d microseconds"),
                   options->poll_us, MAX_POLL_US);
      return FALSE;
    }
  if (options->poll_us != -1 && options->mode != VHOST_USER_QUEUE_MODE_ADAPTIVE)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("--poll-us only applies to --queue-mode=adaptive"));
      return FALSE;
    }
  if (options->threads < 0 || options->threads > VHU_MAX_THREADS)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--threads=%d: the number of worker threads must be from 0 to %d"),
                   options->threads, VHU_MAX_THREADS);
      return FALSE;
    }
  options->poll_ns = options->poll_us >= 0 ? (guint64) options->poll_us * 1000 : 0;
  return TRUE;
}

void
vhu_queue_options_apply (const VhuQueueOptions *options, VhostUserVirtqueue *queue)
{
  if (options->poll_us >= 0)
    vhost_user_virtqueue_set_poll_ns (queue, options->poll_ns);
  vhost_user_virtqueue_set_mode (queue, options->mode);
}

/* ------------------------------------------------------------------------ */
/* Worker threads                                                           */

typedef struct
{
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  GMutex lock;
  GCond cond;
  gboolean running;
} Worker;

struct _VhuWorkers
{
  guint n;
  Worker *workers;
};

/* Dispatched once the loop runs: from then on a quit is never lost (a
 * g_main_loop_quit() before g_main_loop_run() would be). */
static gboolean
worker_running (gpointer data)
{
  Worker *w = data;

  g_mutex_lock (&w->lock);
  w->running = TRUE;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->lock);
  return G_SOURCE_REMOVE;
}

static gpointer
worker_main (gpointer data)
{
  Worker *w = data;
  GSource *idle = g_idle_source_new ();

  g_main_context_push_thread_default (w->context);
  g_source_set_priority (idle, G_PRIORITY_HIGH);
  g_source_set_callback (idle, worker_running, w, NULL);
  g_source_set_static_name (idle, "[vhu-workers] running");
  g_source_attach (idle, w->context);
  g_source_unref (idle);
  g_main_loop_run (w->loop);
  g_main_context_pop_thread_default (w->context);
  return NULL;
}

VhuWorkers *
vhu_workers_new (guint n, const char *name)
{
  VhuWorkers *workers;

  g_return_val_if_fail (n >= 1 && n <= VHU_MAX_THREADS, NULL);

  workers = g_new0 (VhuWorkers, 1);
  workers->n = n;
  workers->workers = g_new0 (Worker, n);
  for (guint i = 0; i < n; i++)
    {
      Worker *w = &workers->workers[i];
      g_autofree char *thread_name = g_strdup_printf ("%s-%u", name, i);

      w->context = g_main_context_new ();
      w->loop = g_main_loop_new (w->context, FALSE);
      g_mutex_init (&w->lock);
      g_cond_init (&w->cond);
      w->thread = g_thread_new (thread_name, worker_main, w);
    }
  for (guint i = 0; i < n; i++)
    {
      Worker *w = &workers->workers[i];

      g_mutex_lock (&w->lock);
      while (!w->running)
        g_cond_wait (&w->cond, &w->lock);
      g_mutex_unlock (&w->lock);
    }
  return workers;
}

guint
vhu_workers_get_size (VhuWorkers *workers)
{
  return workers->n;
}

GMainContext *
vhu_workers_get_context (VhuWorkers *workers, guint i)
{
  g_return_val_if_fail (i < workers->n, NULL);
  return workers->workers[i].context;
}

void
vhu_workers_free (VhuWorkers *workers)
{
  if (workers == NULL)
    return;
  for (guint i = 0; i < workers->n; i++)
    g_main_loop_quit (workers->workers[i].loop);
  for (guint i = 0; i < workers->n; i++)
    {
      Worker *w = &workers->workers[i];

      g_thread_join (w->thread);
      g_main_loop_unref (w->loop);
      g_main_context_unref (w->context);
      g_mutex_clear (&w->lock);
      g_cond_clear (&w->cond);
    }
  g_free (workers->workers);
  g_free (workers);
}
