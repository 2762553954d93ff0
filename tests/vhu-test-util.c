/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "VhuTestUtil"
#endif

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vhu-test-util.h"

/* More iterations than any test needs to go idle: a source that is always
 * ready is a bug. */
#define DRAIN_MAX_ITERATIONS 1000000u

/* Main contexts */

void
vhu_test_drain_default_context (void)
{
  guint n = 0;

  while (g_main_context_iteration (NULL, FALSE))
    g_assert_cmpuint (++n, <, DRAIN_MAX_ITERATIONS);
}

static gpointer
worker_main (gpointer data)
{
  VhuTestWorker *w = data;

  g_main_context_push_thread_default (w->context);
  while (!g_atomic_int_get (&w->quit))
    g_main_context_iteration (w->context, TRUE);
  g_main_context_pop_thread_default (w->context);
  return NULL;
}

VhuTestWorker *
vhu_test_worker_new (const char *thread_name)
{
  VhuTestWorker *w = g_new0 (VhuTestWorker, 1);

  w->context = g_main_context_new ();
  w->thread = g_thread_new (thread_name, worker_main, w);
  return w;
}

void
vhu_test_worker_free (VhuTestWorker *w)
{
  g_atomic_int_set (&w->quit, 1);
  g_main_context_wakeup (w->context);
  g_thread_join (w->thread);
  g_main_context_unref (w->context);
  g_free (w);
}

/* Queues */

VhostUserVirtqElement *
vhu_test_pop (VhostUserVirtqueue *queue)
{
  g_autoptr (GError) error = NULL;
  VhostUserVirtqElement *elem = vhost_user_virtqueue_pop (queue, &error);

  g_assert_no_error (error);
  g_assert_nonnull (elem);
  return elem;
}

/* Eventfds and fds */

void
vhu_test_close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

int
vhu_test_new_eventfd (void)
{
  int fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

guint64
vhu_test_read_eventfd (int fd)
{
  eventfd_t value = 0;

  g_assert_cmpint (fd, >=, 0);
  if (eventfd_read (fd, &value) < 0)
    {
      g_assert_cmpint (errno, ==, EAGAIN);
      return 0;
    }
  return value;
}

/* Leak checks */

guint
vhu_test_count_fds (void)
{
  DIR *dir;
  struct dirent *entry;
  guint n = 0;
  int self;

  dir = opendir ("/proc/self/fd");
  if (dir == NULL)
    g_error ("opendir /proc/self/fd: %s", g_strerror (errno));
  self = dirfd (dir);

  while ((entry = readdir (dir)) != NULL)
    {
      if (entry->d_name[0] == '.')
        continue;
      if (atoi (entry->d_name) == self)
        continue;
      n++;
    }
  closedir (dir);

  return n;
}

void
vhu_test_dump_fds (void)
{
  g_autoptr (GDir) dir = g_dir_open ("/proc/self/fd", 0, NULL);
  const char *name;

  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);

      g_test_message ("fd %s: %s", name, target != NULL ? target : "?");
    }
}

void
vhu_test_assert_fds (guint expected)
{
  if (vhu_test_count_fds () != expected)
    vhu_test_dump_fds ();
  g_assert_cmpuint (vhu_test_count_fds (), ==, expected);
}

guint
vhu_test_count_memfd_mappings (void)
{
  g_autofree char *maps = NULL;
  guint n = 0;

  g_assert_true (g_file_get_contents ("/proc/self/maps", &maps, NULL, NULL));
  for (const char *p = maps; (p = strstr (p, "/memfd:")) != NULL; p++)
    n++;
  return n;
}

/* Unix stream sockets */

/* A new stream socket, and @path as its address in @addr. */
static int
unix_socket (const char *path, struct sockaddr_un *addr)
{
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  memset (addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  g_assert_cmpuint (strlen (path), <, sizeof addr->sun_path);
  strcpy (addr->sun_path, path);
  return fd;
}

int
vhu_test_unix_listen (const char *path)
{
  struct sockaddr_un addr;
  int fd = unix_socket (path, &addr);

  g_assert_no_errno (bind (fd, (struct sockaddr *) &addr, sizeof addr));
  g_assert_no_errno (listen (fd, 4));
  return fd;
}

int
vhu_test_unix_connect (const char *path)
{
  struct sockaddr_un addr;
  int fd = unix_socket (path, &addr);

  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      close (fd);
      return -1;
    }
  return fd;
}

/* Knobs */

guint
vhu_test_requests_wanted (guint fallback)
{
  const char *env = g_getenv ("VHU_TEST_VRING_REQUESTS");

  if (env != NULL && *env != '\0')
    return MAX (1, (guint) g_ascii_strtoull (env, NULL, 10));
  return fallback;
}
