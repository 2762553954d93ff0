/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Small helpers the C tests share: the default main context, eventfds, fd
 * and mapping counts for the leak checks, a worker thread running its own
 * GMainContext, taking an element from a queue, Unix sockets, and the knobs the tests read from the
 * environment. They g_assert on failure (for tests, not for library code).
 */

#pragma once

#include <glib.h>
#include <libvhostuser-glib/libvhostuser-glib.h>

G_BEGIN_DECLS

/* Main contexts */

/* Iterates the global default main context until it has nothing more to
 * dispatch (failing if it never goes idle). */
void vhu_test_drain_default_context (void);

/* A thread iterating its own GMainContext (pushed as its thread-default)
 * until vhu_test_worker_free(). */
typedef struct
{
  GMainContext *context;
  GThread *thread;
  gint quit;
} VhuTestWorker;

VhuTestWorker *vhu_test_worker_new (const char *thread_name);
/* Stops the thread, waits for it, and frees the worker and its context. */
void vhu_test_worker_free (VhuTestWorker *w);

/* Queues */

/* Pops the next element of @queue (owned by the caller), failing the test
 * on an error or when there is none. */
VhostUserVirtqElement *vhu_test_pop (VhostUserVirtqueue *queue);

/* Eventfds and fds */

/* Closes *@fd if it is open (>= 0) and sets it to -1. */
void vhu_test_close_fd (int *fd);
/* A new eventfd, non-blocking and close-on-exec, counter 0. */
int vhu_test_new_eventfd (void);
/* Reads (and so resets) the counter of the non-blocking eventfd @fd: 0 if
 * it was not signalled. */
guint64 vhu_test_read_eventfd (int fd);

/* Leak checks */

/* /proc/self/fd entries (the directory's own fd not counted). */
guint vhu_test_count_fds (void);
/* Every open fd and what it is, as test messages: when a count is off. */
void vhu_test_dump_fds (void);
/* Fails the test unless vhu_test_count_fds() is @expected, after dumping
 * the fds when it is not. */
void vhu_test_assert_fds (guint expected);
/* Mappings of memfds in this process (guest RAM, logs, in-flight
 * buffers): the lines of /proc/self/maps that name one. Other mappings come
 * and go with malloc (or valgrind) and are not counted. */
guint vhu_test_count_memfd_mappings (void);

/* Unix stream sockets */

/* A socket listening on @path (which must not exist), backlog 4. */
int vhu_test_unix_listen (const char *path);
/* A socket connected to @path, or -1 if nobody listens there. */
int vhu_test_unix_connect (const char *path);

/* Knobs */

/* VHU_TEST_VRING_REQUESTS (at least 1) when set and not empty, else
 * @fallback: how many requests the data path tests make. */
guint vhu_test_requests_wanted (guint fallback);

G_END_DECLS
