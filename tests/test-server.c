/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * VhostUserServer: listening (stale and live sockets), adopting fds,
 * connecting as a client with retries, one front-end at a time, and serving
 * the next front-end after a disconnection.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <glib-unix.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vhu-test-device.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

typedef struct
{
  char *dir;
  char *path;
  VhostUserDevice *device;
  VhostUserServer *server;
  guint fds_before;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  /* The default main context holds a wakeup fd from its first use on. */
  g_main_context_iteration (NULL, FALSE);
  f->fds_before = vhu_test_count_fds ();
  f->dir = g_dir_make_tmp ("vhu-server-XXXXXX", NULL);
  g_assert_nonnull (f->dir);
  f->path = g_build_filename (f->dir, "sock", NULL);
  f->device = vhu_test_plain_device_new ();
  f->server = vhost_user_server_new (f->device);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  g_clear_object (&f->server);
  g_assert_finalize_object (f->device);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_unlink (f->path);
  g_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
  vhu_test_assert_fds (f->fds_before);
}

static void
wait_for_connected (VhostUserDevice *device, gboolean connected)
{
  gint64 deadline = g_get_monotonic_time () + VHU_TEST_TIMEOUT_MS * 1000;

  while (vhost_user_device_get_connected (device) != connected)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
}

/* A front-end on @fd negotiates: the device answers GET_FEATURES. */
static void
assert_served (Fixture *f, int fd)
{
  g_autoptr (VhuTestFrontend) fe = vhu_test_frontend_new (fd, NULL);
  guint64 features = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_FEATURES);

  g_assert_true (features & (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_PROTOCOL_FEATURES));
  g_assert_true (vhost_user_device_get_connected (f->device));
}

static void
test_listen_serves_one_after_another (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int first, second;

  g_assert_true (vhost_user_server_listen (f->server, f->path, &error));
  g_assert_no_error (error);

  first = vhu_test_unix_connect (f->path);
  g_assert_cmpint (first, >=, 0);
  wait_for_connected (f->device, TRUE);

  /* A second front-end waits in the backlog while the first is served. */
  second = vhu_test_unix_connect (f->path);
  g_assert_cmpint (second, >=, 0);
  {
    g_autoptr (VhuTestFrontend) waiting = vhu_test_frontend_new (second, NULL);
    guint64 version = VHU_VERSION;

    g_assert_true (vhu_test_frontend_send (waiting, VHOST_USER_REQUEST_GET_FEATURES, 0, NULL, 0,
                                           NULL, 0));
    g_assert_true (vhu_test_frontend_expect_silence (waiting, 200));

    /* The first one goes; the second is served, with its request. */
    assert_served (f, first);
    wait_for_connected (f->device, FALSE);
    {
      VhuMessage reply;

      vhu_message_init (&reply);
      g_assert_true (vhu_test_frontend_recv (waiting, &reply, VHU_TEST_TIMEOUT_MS));
      g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_FEATURES);
      g_assert_cmpuint (reply.hdr.flags, ==, version | VHU_FLAG_REPLY);
      vhu_message_clear (&reply);
    }
  }
  wait_for_connected (f->device, FALSE);

  vhost_user_server_stop (f->server);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
}

static void
test_listen_replaces_stale_socket (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int fd;

  /* A socket file whose owner is gone. */
  close (vhu_test_unix_listen (f->path));
  g_assert_true (g_file_test (f->path, G_FILE_TEST_EXISTS));

  g_assert_true (vhost_user_server_listen (f->server, f->path, &error));
  g_assert_no_error (error);
  fd = vhu_test_unix_connect (f->path);
  g_assert_cmpint (fd, >=, 0);
  wait_for_connected (f->device, TRUE);
  assert_served (f, fd);
  vhost_user_server_stop (f->server);
}

static void
test_listen_refuses_live_socket (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int other = vhu_test_unix_listen (f->path);
  struct stat before, after;

  g_assert_no_errno (stat (f->path, &before));
  g_assert_false (vhost_user_server_listen (f->server, f->path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  g_assert_no_errno (stat (f->path, &after));
  g_assert_cmpuint (before.st_ino, ==, after.st_ino);

  /* Stopping a server that never listened leaves the other one's socket. */
  vhost_user_server_stop (f->server);
  g_assert_true (g_file_test (f->path, G_FILE_TEST_EXISTS));
  close (other);
}

static void
test_listen_refuses_non_socket (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *contents = NULL;

  g_assert_true (g_file_set_contents (f->path, "precious", -1, NULL));
  g_assert_false (vhost_user_server_listen (f->server, f->path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_assert_true (g_file_get_contents (f->path, &contents, NULL, NULL));
  g_assert_cmpstr (contents, ==, "precious");
}

static void
test_listen_twice_refused (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *other = g_build_filename (f->dir, "other", NULL);

  g_assert_true (vhost_user_server_listen (f->server, f->path, NULL));
  g_assert_false (vhost_user_server_listen (f->server, other, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE);
  g_assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
  vhost_user_server_stop (f->server);
}

static void
test_listen_path_too_long (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_strnfill (200, 'x');
  g_autofree char *path = g_build_filename (f->dir, name, NULL);

  g_assert_false (vhost_user_server_listen (f->server, path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

static void
test_stop_keeps_replaced_socket (Fixture *f, gconstpointer data)
{
  int other;

  g_assert_true (vhost_user_server_listen (f->server, f->path, NULL));
  /* Someone else removes our socket and listens on the same path. */
  g_assert_no_errno (g_unlink (f->path));
  other = vhu_test_unix_listen (f->path);
  vhost_user_server_stop (f->server);
  g_assert_true (g_file_test (f->path, G_FILE_TEST_EXISTS));
  close (other);
}

static void
test_adopt_listening_fd (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int fd;

  g_assert_true (vhost_user_server_adopt_fd (f->server, vhu_test_unix_listen (f->path), &error));
  g_assert_no_error (error);
  for (guint round = 0; round < 2; round++)
    {
      fd = vhu_test_unix_connect (f->path);
      g_assert_cmpint (fd, >=, 0);
      wait_for_connected (f->device, TRUE);
      assert_served (f, fd);
      wait_for_connected (f->device, FALSE);
    }
  vhost_user_server_stop (f->server);
}

static void
test_adopt_connected_fd (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int pair[2];

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
  g_assert_true (vhost_user_server_adopt_fd (f->server, pair[1], &error));
  g_assert_no_error (error);
  g_assert_true (vhost_user_device_get_connected (f->device));
  assert_served (f, pair[0]);
  wait_for_connected (f->device, FALSE);
}

static void
test_adopt_bad_fd (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  int pipe_fds[2];

  g_assert_no_errno (pipe2 (pipe_fds, O_CLOEXEC));
  g_assert_false (vhost_user_server_adopt_fd (f->server, pipe_fds[0], &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  /* The fd was taken and closed. */
  g_assert_cmpint (fcntl (pipe_fds[0], F_GETFD), ==, -1);
  close (pipe_fds[1]);
}

static void
test_not_activated (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *other_pid = g_strdup_printf ("%d", (int) getpid () + 1);

  g_unsetenv ("LISTEN_PID");
  g_assert_false (vhost_user_server_adopt_activation (f->server, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Variables meant for another process are not ours. */
  g_setenv ("LISTEN_PID", other_pid, TRUE);
  g_setenv ("LISTEN_FDS", "1", TRUE);
  g_assert_false (vhost_user_server_adopt_activation (f->server, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_unsetenv ("LISTEN_PID");
  g_unsetenv ("LISTEN_FDS");
}

static int
accept_within (int listen_fd, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + timeout_ms * 1000;

  g_unix_set_fd_nonblocking (listen_fd, TRUE, NULL);
  while (g_get_monotonic_time () < deadline)
    {
      int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);

      if (fd >= 0)
        return fd;
      g_main_context_iteration (NULL, FALSE);
      g_usleep (1000);
    }
  return -1;
}

static void
test_connect_retries_and_reconnects (Fixture *f, gconstpointer data)
{
  int listener, fd;

  /* Nobody listens yet: the server keeps retrying. */
  vhost_user_server_connect_to (f->server, f->path);
  for (guint i = 0; i < 50; i++)
    {
      g_main_context_iteration (NULL, FALSE);
      g_usleep (2000);
    }
  g_assert_false (vhost_user_device_get_connected (f->device));

  listener = vhu_test_unix_listen (f->path);
  fd = accept_within (listener, VHU_TEST_TIMEOUT_MS);
  g_assert_cmpint (fd, >=, 0);
  wait_for_connected (f->device, TRUE);
  assert_served (f, fd);
  wait_for_connected (f->device, FALSE);

  /* After the front-end went away the server connects again. */
  fd = accept_within (listener, VHU_TEST_TIMEOUT_MS);
  g_assert_cmpint (fd, >=, 0);
  wait_for_connected (f->device, TRUE);
  assert_served (f, fd);
  wait_for_connected (f->device, FALSE);

  vhost_user_server_stop (f->server);
  close (listener);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, func) \
  g_test_add ("/vhost-user/server/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
  ADD ("listen/one-after-another", test_listen_serves_one_after_another);
  ADD ("listen/stale-socket", test_listen_replaces_stale_socket);
  ADD ("listen/live-socket", test_listen_refuses_live_socket);
  ADD ("listen/non-socket", test_listen_refuses_non_socket);
  ADD ("listen/twice", test_listen_twice_refused);
  ADD ("listen/path-too-long", test_listen_path_too_long);
  ADD ("stop/replaced-socket", test_stop_keeps_replaced_socket);
  ADD ("adopt/listening", test_adopt_listening_fd);
  ADD ("adopt/connected", test_adopt_connected_fd);
  ADD ("adopt/not-a-socket", test_adopt_bad_fd);
  ADD ("adopt/not-activated", test_not_activated);
  ADD ("connect/retry-and-reconnect", test_connect_retries_and_reconnects);
#undef ADD

  return g_test_run ();
}
