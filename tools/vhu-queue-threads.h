/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * How the queues of a back-end program run, shared by tools/vhost-user-net
 * and tools/vhost-user-blk:
 *
 * - the options --queue-mode=event|adaptive|poll, --poll-us=N (the adaptive
 *   budget) and --threads=N, with their checks;
 * - the worker threads of --threads=N: each runs a GMainLoop on a
 *   GMainContext of its own, from before the first front-end connects until
 *   the program stops them (after vhost_user_backend_program_run() has
 *   returned, when the connection is gone and no queue runs any more).
 *
 * Which queue goes to which worker is the device's business (a network
 * device keeps a receive queue and its transmit queue together).
 */

#pragma once

#include <libvhostuser-glib/libvhostuser-glib.h>

G_BEGIN_DECLS

/* The most worker threads --threads takes. */
#define VHU_MAX_THREADS 64

typedef struct
{
  /* Set by the options (see vhu_queue_options_get_entries()). */
  gchar *mode_name;
  gint poll_us; /* -1: the library's default */
  gint threads;

  /* What vhu_queue_options_check() made of them. */
  VhostUserQueueMode mode;
  guint64 poll_ns; /* 0 with poll_us == -1: leave the library's */
} VhuQueueOptions;

/* Defaults: event mode, the library's adaptive budget, no worker thread. */
void vhu_queue_options_init (VhuQueueOptions *options);
void vhu_queue_options_clear (VhuQueueOptions *options);

/* The three options, for vhost_user_backend_program_add_main_entries()
 * (they store into @options, which must outlive the program object). */
const GOptionEntry *vhu_queue_options_get_entries (VhuQueueOptions *options);

/* Checks what was given (a mode name, a budget, a number of threads) and
 * fills in @mode and @poll_ns. */
gboolean vhu_queue_options_check (VhuQueueOptions *options, GError **error);

/* Sets the mode and, if given, the adaptive budget of @queue. */
void vhu_queue_options_apply (const VhuQueueOptions *options, VhostUserVirtqueue *queue);

typedef struct _VhuWorkers VhuWorkers;

/* Starts @n threads (1 to VHU_MAX_THREADS) named @name-0, @name-1, ...; each
 * runs its own context's main loop before this returns. */
VhuWorkers *vhu_workers_new (guint n, const char *name);
guint vhu_workers_get_size (VhuWorkers *workers);
/* The context worker @i runs (owned by @workers; ref it to keep it). */
GMainContext *vhu_workers_get_context (VhuWorkers *workers, guint i);
/* Quits every loop and joins the threads; never waits for anything else. A
 * callback that was queued on a worker's context and not dispatched is not
 * run (attach it somewhere else first if it matters). */
void vhu_workers_free (VhuWorkers *workers);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuWorkers, vhu_workers_free)

G_END_DECLS
