/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The back-end program conventions (VhostUserBackendProgram) and the
 * vhost-user-rng program built on them.
 *
 * In process: option parsing (the common options, the program's own,
 * mutual exclusion, a missing socket, unknown options refused or kept,
 * socket activation detected), the capabilities JSON, run() printing the
 * capabilities, serving until quit(), and refusing a path it cannot use.
 *
 * Against the vhost-user-rng executable (VHU_TOOLS_DIR): --print-capabilities
 * does nothing else, SIGTERM and SIGINT exit 0 and remove the socket, --fd
 * with a listening and with a connected socket, systemd socket activation,
 * a live socket path refused with status 1, bad command lines; and the
 * device itself, driven through the test front-end and driver in guest RAM
 * shared by memfd: every writable buffer of several-descriptor chains
 * filled with random bytes, used lengths right, and the --max-bytes/--period
 * rate limit (what is beyond the quota stays in the ring; the next period
 * serves it without a kick), and a ring the guest breaks.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "vhu-test-device.h"
#include "vhu-test-driver.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

#define WAIT_MS 10000

/* Guest RAM for the rng tests: the ring at RING_OFFSET, the driver's data
 * area after it (64 descriptors: a slot of 128 KiB per chain). */
#define RAM_SIZE (16u * 1024 * 1024)
#define RAM_GPA G_GUINT64_CONSTANT (0)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f1000000000)
#define RING_OFFSET 0x10000u
#define RING_NUM 64u
#define DATA_GPA (RAM_GPA + 1024 * 1024)
#define DATA_SIZE (8u * 1024 * 1024)

/* The rng's request size limit (tools/vhost-user-rng.c), and a request
 * larger than that: two buffers, the second starting 100 bytes before the
 * limit. */
#define RNG_BUFFER_SIZE (64u * 1024u)
#define BIG_IN_SIZE (RNG_BUFFER_SIZE - 100 + 4096)

static pid_t test_pid;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static char *
make_tmp_dir (void)
{
  g_autoptr (GError) error = NULL;
  char *dir = g_dir_make_tmp ("vhu-program-XXXXXX", &error);

  g_assert_no_error (error);
  return dir;
}

static void
remove_tmp_dir (char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
  g_free (dir);
}

static guint
count_dir_entries (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;

  g_assert_nonnull (d);
  while (g_dir_read_name (d) != NULL)
    n++;
  return n;
}

static const char *
rng_program (void)
{
  static char *path;

  if (path == NULL)
    {
      const char *dir = g_getenv ("VHU_TOOLS_DIR");

      g_assert_nonnull (dir);
      path = g_build_filename (dir, "vhost-user-rng", NULL);
    }
  return path;
}

/* A child process: one of the programs, its output in pipes. */
typedef struct
{
  GSubprocess *proc;
  gboolean exited;
  char *out;
  char *err;
} Child;

static void
child_setup (gpointer user_data)
{
  /* Dies with the test, whatever ends it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != test_pid)
    _exit (127);
}

/* Spawns @argv (NULL-terminated). @fd, if not -1, becomes the child's fd 3
 * (taken). @env_pairs: NAME, VALUE, ..., NULL set in the child's
 * environment. */
static Child *
child_spawn (const char *const *argv, int fd, const char *const *env_pairs)
{
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *command = g_strjoinv (" ", (char **) argv);
  Child *c = g_new0 (Child, 1);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE
                                        | G_SUBPROCESS_FLAGS_STDERR_PIPE);
  g_subprocess_launcher_unsetenv (launcher, "LISTEN_PID");
  g_subprocess_launcher_unsetenv (launcher, "LISTEN_FDS");
  g_subprocess_launcher_unsetenv (launcher, "LISTEN_FDNAMES");
  for (guint i = 0; env_pairs != NULL && env_pairs[i] != NULL; i += 2)
    g_subprocess_launcher_setenv (launcher, env_pairs[i], env_pairs[i + 1], TRUE);
  if (fd >= 0)
    g_subprocess_launcher_take_fd (launcher, fd, 3);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);

  g_test_message ("spawning: %s", command);
  c->proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  return c;
}

static Child *
rng_spawn (const char *first_arg, ...) G_GNUC_NULL_TERMINATED;

/* The rng program with the given arguments. */
static Child *
rng_spawn (const char *first_arg, ...)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  va_list args;

  g_ptr_array_add (argv, (char *) rng_program ());
  va_start (args, first_arg);
  for (const char *a = first_arg; a != NULL; a = va_arg (args, const char *))
    g_ptr_array_add (argv, (char *) a);
  va_end (args);
  g_ptr_array_add (argv, NULL);
  return child_spawn ((const char *const *) argv->pdata, -1, NULL);
}

static void
on_child_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  gboolean *done = user_data;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, NULL);
  *done = TRUE;
}

/* Waits for the child to exit (failing after WAIT_MS) and collects its
 * output. */
static void
child_wait (Child *c)
{
  g_autoptr (GError) error = NULL;
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  gboolean done = FALSE;

  if (c->exited)
    return;
  g_subprocess_wait_async (c->proc, NULL, on_child_exited, &done);
  while (!done && g_get_monotonic_time () < deadline)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  if (!done)
    {
      g_subprocess_force_exit (c->proc);
      while (!done)
        g_main_context_iteration (NULL, TRUE);
      g_error ("the child did not exit within %d ms", WAIT_MS);
    }
  c->exited = TRUE;
  g_subprocess_communicate_utf8 (c->proc, NULL, NULL, &c->out, &c->err, &error);
  g_assert_no_error (error);
  g_test_message ("child stdout: %s", c->out);
  g_test_message ("child stderr: %s", c->err);
}

static gboolean
child_has_exited (Child *c)
{
  return c->exited || g_subprocess_get_identifier (c->proc) == NULL;
}

/* Waits for the child to exit; asserts it exited normally with @status. */
static void
child_assert_exit (Child *c, int status)
{
  child_wait (c);
  if (!g_subprocess_get_if_exited (c->proc))
    g_error ("the child was killed by signal %d; stderr: %s",
             g_subprocess_get_term_sig (c->proc), c->err);
  g_assert_cmpint (g_subprocess_get_exit_status (c->proc), ==, status);
}

static void
child_signal (Child *c, int signum)
{
  g_assert_false (child_has_exited (c));
  g_subprocess_send_signal (c->proc, signum);
}

static void
child_free (Child *c)
{
  if (!c->exited)
    {
      g_subprocess_force_exit (c->proc);
      child_wait (c);
    }
  g_object_unref (c->proc);
  g_free (c->out);
  g_free (c->err);
  g_free (c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Child, child_free)

/* Connects to @path once the child listens there (failing if it exits
 * first or WAIT_MS pass). */
static int
connect_when_ready (Child *c, const char *path)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  int fd;

  while ((fd = vhu_test_unix_connect (path)) < 0)
    {
      if (g_subprocess_get_identifier (c->proc) == NULL)
        {
          child_wait (c);
          g_error ("the program exited before listening on %s: %s", path, c->err);
        }
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (2000);
    }
  return fd;
}

/* GET_FEATURES through a front-end on @fd (taken): what a virtio-rng device
 * offers, the library's transport bits and no device bits. */
static void
assert_rng_features (int fd)
{
  g_autoptr (VhuTestFrontend) fe = vhu_test_frontend_new (fd, NULL);
  guint64 features = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_FEATURES);

  g_assert_cmphex (features & (VF (VERSION_1) | VF (PROTOCOL_FEATURES)), ==,
                   VF (VERSION_1) | VF (PROTOCOL_FEATURES));
  /* virtio-rng defines no feature bits (0 to 23 are the device's). */
  g_assert_cmphex (features & 0xffffffu, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* In process: VhostUserBackendProgram                                       */

/* parse_full() parses "test-program FIRST ..." (NULL-terminated) into @args,
 * which keeps what is left; parse() asserts it succeeds. */
static gboolean
parse_valist (VhostUserBackendProgram *program,
              GStrv *args,
              GError **error,
              const char *first,
              va_list ap)
{
  g_autoptr (GStrvBuilder) builder = g_strv_builder_new ();

  g_strv_builder_add (builder, "test-program");
  for (const char *a = first; a != NULL; a = va_arg (ap, const char *))
    g_strv_builder_add (builder, a);
  g_strfreev (*args);
  *args = g_strv_builder_end (builder);
  return vhost_user_backend_program_parse (program, args, error);
}

static gboolean
parse_full (VhostUserBackendProgram *program, GStrv *args, GError **error, const char *first, ...)
{
  va_list ap;
  gboolean ok;

  va_start (ap, first);
  ok = parse_valist (program, args, error, first, ap);
  va_end (ap);
  return ok;
}

/* Parses and asserts success. */
static gboolean
parse (VhostUserBackendProgram *program, GStrv *args, const char *first, ...)
{
  g_autoptr (GError) error = NULL;
  va_list ap;
  gboolean ok;

  va_start (ap, first);
  ok = parse_valist (program, args, &error, first, ap);
  va_end (ap);
  g_assert_no_error (error);
  g_assert_true (ok);
  return ok;
}

static void
test_parse_socket_path (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
  g_auto (GStrv) args = NULL;

  g_assert_cmpstr (vhost_user_backend_program_get_device_type (program), ==, "rng");
  parse (program, &args, "--socket-path=/run/x.sock", NULL);
  g_assert_false (vhost_user_backend_program_get_print_capabilities (program));
  g_assert_cmpuint (g_strv_length (args), ==, 1);
  g_assert_cmpstr (args[0], ==, "test-program");

  /* Separate argument form, and --fd. */
  parse (program, &args, "--socket-path", "/run/y.sock", NULL);
  g_assert_cmpuint (g_strv_length (args), ==, 1);
  parse (program, &args, "--fd=5", NULL);
  g_assert_cmpuint (g_strv_length (args), ==, 1);
  parse (program, &args, "--fd", "0", NULL);
}

static void
test_parse_exclusive (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
  g_auto (GStrv) args = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_false (parse_full (program, &args, &error, "--socket-path=/x", "--fd=3", NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "--socket-path"));
  g_assert_nonnull (strstr (error->message, "--fd"));
  g_assert_nonnull (strstr (error->message, "mutually exclusive"));
  g_clear_error (&error);

  /* Whatever the order, and with --print-capabilities too. */
  g_assert_false (parse_full (program, &args, &error, "--fd=3", "--print-capabilities",
                              "--socket-path=/x", NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "mutually exclusive"));
}

static void
test_parse_missing_socket (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
  g_auto (GStrv) args = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *other_pid = g_strdup_printf ("%d", (int) getpid () + 1);

  g_assert_false (parse_full (program, &args, &error, NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "--socket-path"));
  g_assert_nonnull (strstr (error->message, "--fd"));
  g_clear_error (&error);

  /* Activation variables meant for another process do not count. */
  g_setenv ("LISTEN_PID", other_pid, TRUE);
  g_setenv ("LISTEN_FDS", "1", TRUE);
  g_assert_false (parse_full (program, &args, &error, NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
  g_clear_error (&error);
  g_unsetenv ("LISTEN_PID");
  g_unsetenv ("LISTEN_FDS");
}

static void
test_parse_activation (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("net");
  g_auto (GStrv) args = NULL;
  g_autoptr (GError) error = NULL;
  g_autofree char *pid = g_strdup_printf ("%d", (int) getpid ());

  g_setenv ("LISTEN_PID", pid, TRUE);
  g_setenv ("LISTEN_FDS", "1", TRUE);
  parse (program, &args, NULL);
  /* Parsing does not consume them: run() does, when it adopts the socket. */
  g_assert_cmpstr (g_getenv ("LISTEN_PID"), ==, pid);

  g_setenv ("LISTEN_FDS", "0", TRUE);
  g_assert_false (parse_full (program, &args, &error, NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
  g_unsetenv ("LISTEN_PID");
  g_unsetenv ("LISTEN_FDS");
}

static void
test_parse_bad_values (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
  g_auto (GStrv) args = NULL;
  const char *bad_fds[] = { "--fd=abc", "--fd=-1", "--fd=", "--fd=3x", "--fd=99999999999" };

  for (guint i = 0; i < G_N_ELEMENTS (bad_fds); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (parse_full (program, &args, &error, bad_fds[i], NULL));
      g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
    }
  {
    g_autoptr (GError) error = NULL;

    g_assert_false (parse_full (program, &args, &error, "--socket-path=", NULL));
    g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE);
  }
}

static void
test_parse_unknown (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("block");
  g_auto (GStrv) args = NULL;
  g_autoptr (GError) error = NULL;

  g_assert_false (vhost_user_backend_program_get_ignore_unknown_options (program));
  g_assert_false (parse_full (program, &args, &error, "--socket-path=/x", "--bogus", NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION);
  g_assert_nonnull (strstr (error->message, "--bogus"));
  g_clear_error (&error);

  /* A stray argument is refused too. */
  g_assert_false (parse_full (program, &args, &error, "--socket-path=/x", "stray", NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
  g_assert_nonnull (strstr (error->message, "stray"));
}

static void
test_parse_ignore_unknown (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("block");
  g_auto (GStrv) args = NULL;
  g_autoptr (GError) error = NULL;
  gboolean ignore = FALSE;

  g_object_set (program, "ignore-unknown-options", TRUE, NULL);
  g_object_get (program, "ignore-unknown-options", &ignore, NULL);
  g_assert_true (ignore);
  g_assert_true (vhost_user_backend_program_get_ignore_unknown_options (program));

  parse (program, &args, "--blk-file=/img", "--socket-path=/x", "-v", "--read-only", "extra",
         NULL);
  g_assert_cmpuint (g_strv_length (args), ==, 5);
  g_assert_cmpstr (args[0], ==, "test-program");
  g_assert_cmpstr (args[1], ==, "--blk-file=/img");
  g_assert_cmpstr (args[2], ==, "-v");
  g_assert_cmpstr (args[3], ==, "--read-only");
  g_assert_cmpstr (args[4], ==, "extra");

  /* The common rules still hold. */
  g_assert_false (parse_full (program, &args, &error, "--x", NULL));
  g_assert_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED);
}

static gboolean callback_seen;

static gboolean
on_test_option (const char *name, const char *value, gpointer data, GError **error)
{
  g_assert_true (VHOST_USER_IS_BACKEND_PROGRAM (data));
  g_assert_cmpstr (value, ==, "cb");
  callback_seen = TRUE;
  return TRUE;
}

static void
test_parse_main_entries (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("block");
  g_auto (GStrv) args = NULL;
  g_autofree char *blk_file = NULL;
  gboolean read_only = FALSE;
  gint num = 0;
  const GOptionEntry entries[] = {
    { "blk-file", 0, 0, G_OPTION_ARG_FILENAME, &blk_file, "The image", "PATH" },
    { "read-only", 0, 0, G_OPTION_ARG_NONE, &read_only, "Read only", NULL },
    { "num-queues", 0, 0, G_OPTION_ARG_INT, &num, "Queues", "N" },
    { "callback", 0, 0, G_OPTION_ARG_CALLBACK, on_test_option, "A callback", "X" },
    { NULL },
  };

  vhost_user_backend_program_add_main_entries (program, entries);
  vhost_user_backend_program_set_summary (program, "A test program.");
  parse (program, &args, "--blk-file=/img", "--socket-path=/x", "--read-only",
         "--num-queues=4", "--callback=cb", NULL);
  g_assert_cmpstr (blk_file, ==, "/img");
  g_assert_true (read_only);
  g_assert_cmpint (num, ==, 4);
  g_assert_true (callback_seen);
  g_assert_cmpuint (g_strv_length (args), ==, 1);
}

static void
test_capabilities_json (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("block");
  g_autoptr (VhostUserBackendProgram) odd = vhost_user_backend_program_new ("x\"y\\");
  g_autofree char *empty = vhost_user_backend_program_get_capabilities_json (program);
  g_autofree char *json = NULL;
  g_autofree char *odd_json = NULL;
  g_auto (GStrv) args = NULL;

  g_assert_cmpstr (empty, ==, "{\"type\": \"block\", \"features\": []}");
  vhost_user_backend_program_add_capability (program, "blk-file");
  vhost_user_backend_program_add_capability (program, "read-only");
  vhost_user_backend_program_add_capability (program, "blk-file");
  json = vhost_user_backend_program_get_capabilities_json (program);
  g_assert_cmpstr (json, ==, "{\"type\": \"block\", \"features\": [\"blk-file\", \"read-only\"]}");

  vhost_user_backend_program_add_capability (odd, "a\nb");
  odd_json = vhost_user_backend_program_get_capabilities_json (odd);
  g_assert_cmpstr (odd_json, ==, "{\"type\": \"x\\\"y\\\\\", \"features\": [\"a\\nb\"]}");

  /* --print-capabilities needs no socket. */
  g_assert_false (vhost_user_backend_program_get_print_capabilities (program));
  parse (program, &args, "--print-capabilities", NULL);
  g_assert_true (vhost_user_backend_program_get_print_capabilities (program));
}

static void
test_run_print_capabilities (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("block");
      g_auto (GStrv) args = NULL;

      vhost_user_backend_program_add_capability (program, "read-only");
      parse (program, &args, "--print-capabilities", NULL);
      exit (vhost_user_backend_program_run (program, NULL));
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_passed ();
  g_test_trap_assert_stdout ("{\"type\": \"block\", \"features\": [\"read-only\"]}\n");
  g_test_trap_assert_stderr ("");
}

typedef struct
{
  VhostUserBackendProgram *program;
  const char *path;
  gboolean saw_socket;
  guint64 features;
} QuitCheck;

/* Runs from run()'s main loop: the socket is there and serves; quit. */
static gboolean
check_and_quit (gpointer user_data)
{
  QuitCheck *qc = user_data;
  int fd = vhu_test_unix_connect (qc->path);

  qc->saw_socket = fd >= 0;
  if (fd >= 0)
    close (fd);
  vhost_user_backend_program_quit (qc->program);
  return G_SOURCE_REMOVE;
}

static void
test_run_quit (void)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
  g_autoptr (VhostUserDevice) device = vhu_test_plain_device_new ();
  g_autofree char *dir = make_tmp_dir ();
  g_autofree char *path = g_build_filename (dir, "sock", NULL);
  g_autofree char *arg = g_strconcat ("--socket-path=", path, NULL);
  g_auto (GStrv) args = NULL;
  QuitCheck qc = { program, path, FALSE, 0 };
  GSource *source;

  parse (program, &args, arg, NULL);
  source = g_timeout_source_new (0);
  g_source_set_callback (source, check_and_quit, &qc, NULL);
  g_source_attach (source, vhost_user_device_get_context (device));
  g_source_unref (source);

  g_assert_cmpint (vhost_user_backend_program_run (program, device), ==, 0);
  g_assert_true (qc.saw_socket);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  remove_tmp_dir (g_steal_pointer (&dir));
}

static void
test_run_bad_path (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
      g_autoptr (VhostUserDevice) device = vhu_test_plain_device_new ();
      g_autofree char *dir = make_tmp_dir ();
      g_autofree char *path = g_build_filename (dir, "file", NULL);
      g_autofree char *arg = g_strconcat ("--socket-path=", path, NULL);
      g_auto (GStrv) args = NULL;
      int status;

      g_set_prgname ("test-prog");
      g_assert_true (g_file_set_contents (path, "not a socket", -1, NULL));
      parse (program, &args, arg, NULL);
      status = vhost_user_backend_program_run (program, device);
      /* Not touched. */
      g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
      remove_tmp_dir (g_steal_pointer (&dir));
      exit (status);
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("test-prog: *exists and is not a socket*");
  g_test_trap_assert_stdout ("");
}

/* ------------------------------------------------------------------------ */
/* The rng program: conventions                                              */

typedef struct
{
  char *dir;
  char *path;
  char *path_arg;
} ProgFixture;

static void
prog_setup (ProgFixture *f, gconstpointer data)
{
  f->dir = make_tmp_dir ();
  f->path = g_build_filename (f->dir, "rng.sock", NULL);
  f->path_arg = g_strconcat ("--socket-path=", f->path, NULL);
}

static void
prog_teardown (ProgFixture *f, gconstpointer data)
{
  remove_tmp_dir (f->dir);
  g_free (f->path);
  g_free (f->path_arg);
}

static void
test_rng_print_capabilities (ProgFixture *f, gconstpointer data)
{
  /* With a socket path too: it must do nothing but print. */
  g_autoptr (Child) c = rng_spawn ("--print-capabilities", f->path_arg, "--max-bytes=10", NULL);

  child_assert_exit (c, 0);
  g_assert_cmpstr (c->out, ==, "{\"type\": \"rng\", \"features\": []}\n");
  g_assert_cmpstr (c->err, ==, "");
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (count_dir_entries (f->dir), ==, 0);
}

static void
test_rng_signal (ProgFixture *f, gconstpointer data)
{
  int signum = GPOINTER_TO_INT (data);
  g_autoptr (Child) c = rng_spawn (f->path_arg, NULL);
  int fd = connect_when_ready (c, f->path);

  /* It serves... */
  assert_rng_features (fd);
  g_assert_true (g_file_test (f->path, G_FILE_TEST_EXISTS));

  /* ... and stops cleanly, a front-end connected or not. */
  fd = connect_when_ready (c, f->path);
  child_signal (c, signum);
  child_assert_exit (c, 0);
  close (fd);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
  g_assert_cmpstr (c->err, ==, "");
}

static void
test_rng_fd_listening (ProgFixture *f, gconstpointer data)
{
  const char *argv[] = { rng_program (), "--fd=3", NULL };
  g_autoptr (Child) c = child_spawn (argv, vhu_test_unix_listen (f->path), NULL);

  /* Front-ends one after the other, through the socket it was handed. */
  for (guint i = 0; i < 2; i++)
    {
      int fd = vhu_test_unix_connect (f->path);

      g_assert_cmpint (fd, >=, 0);
      assert_rng_features (fd);
    }
  child_signal (c, SIGTERM);
  child_assert_exit (c, 0);
  g_assert_cmpstr (c->err, ==, "");
  /* Not its socket file: left alone. */
  g_assert_true (g_file_test (f->path, G_FILE_TEST_EXISTS));
}

static void
test_rng_fd_connected (ProgFixture *f, gconstpointer data)
{
  const char *argv[] = { rng_program (), "--fd=3", NULL };
  g_autoptr (Child) c = NULL;
  int sv[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  c = child_spawn (argv, sv[1], NULL);
  /* That front-end alone: the program exits when it goes. */
  assert_rng_features (sv[0]);
  child_assert_exit (c, 0);
  g_assert_cmpstr (c->err, ==, "");
}

static void
test_rng_fd_bad (ProgFixture *f, gconstpointer data)
{
  int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
  const char *argv[] = { rng_program (), "--fd=3", NULL };
  g_autoptr (Child) c = NULL;
  g_autoptr (Child) none = NULL;

  g_assert_cmpint (fd, >=, 0);
  c = child_spawn (argv, fd, NULL);
  child_assert_exit (c, 1);
  g_assert_true (g_str_has_prefix (c->err, "vhost-user-rng: "));
  g_assert_nonnull (strstr (c->err, "not a stream socket"));

  /* An fd that is not open at all. */
  none = rng_spawn ("--fd=42", NULL);
  child_assert_exit (none, 1);
  g_assert_true (g_str_has_prefix (none->err, "vhost-user-rng: "));
}

static void
test_rng_activation (ProgFixture *f, gconstpointer data)
{
  /* As systemd does it: the socket as fd 3, LISTEN_PID the program's own
   * pid (the shell execs the program, keeping its pid). */
  const char *argv[] = { "/bin/sh", "-c",
                         "LISTEN_PID=$$; LISTEN_FDS=1; export LISTEN_PID LISTEN_FDS; exec \"$0\"",
                         rng_program (), NULL };
  g_autoptr (Child) c = child_spawn (argv, vhu_test_unix_listen (f->path), NULL);
  int fd = vhu_test_unix_connect (f->path);

  g_assert_cmpint (fd, >=, 0);
  assert_rng_features (fd);
  child_signal (c, SIGTERM);
  child_assert_exit (c, 0);
  g_assert_cmpstr (c->err, ==, "");
}

static void
test_rng_activation_other_pid (ProgFixture *f, gconstpointer data)
{
  /* Variables meant for another process: not socket-activated. */
  const char *argv[] = { rng_program (), NULL };
  const char *env[] = { "LISTEN_PID", "1", "LISTEN_FDS", "1", NULL };
  g_autoptr (Child) c = child_spawn (argv, vhu_test_unix_listen (f->path), env);

  child_assert_exit (c, 1);
  g_assert_true (g_str_has_prefix (c->err, "vhost-user-rng: "));
  g_assert_nonnull (strstr (c->err, "--socket-path"));
}

static void
test_rng_live_socket (ProgFixture *f, gconstpointer data)
{
  g_autoptr (Child) first = rng_spawn (f->path_arg, NULL);
  g_autoptr (Child) second = NULL;
  int fd = connect_when_ready (first, f->path);

  close (fd);
  second = rng_spawn (f->path_arg, NULL);
  child_assert_exit (second, 1);
  g_assert_true (g_str_has_prefix (second->err, "vhost-user-rng: "));
  g_assert_nonnull (strstr (second->err, f->path));
  g_assert_cmpstr (second->out, ==, "");

  /* The first one still serves, on its socket. */
  fd = connect_when_ready (first, f->path);
  assert_rng_features (fd);
  child_signal (first, SIGTERM);
  child_assert_exit (first, 0);
  g_assert_false (g_file_test (f->path, G_FILE_TEST_EXISTS));
}

static void
test_rng_stale_socket (ProgFixture *f, gconstpointer data)
{
  /* A socket file nobody listens on (its program died) is replaced. */
  g_autoptr (Child) c = NULL;

  close (vhu_test_unix_listen (f->path));
  g_assert_true (g_file_test (f->path, G_FILE_TEST_EXISTS));
  c = rng_spawn (f->path_arg, NULL);
  assert_rng_features (connect_when_ready (c, f->path));
  child_signal (c, SIGTERM);
  child_assert_exit (c, 0);
}

static void
test_rng_bad_command_lines (ProgFixture *f, gconstpointer data)
{
  g_autofree char *fd_arg = g_strdup ("--fd=3");
  const struct
  {
    const char *args[4];
    const char *message;
  } cases[] = {
    { { "--socket-path=/nonexistent/x", "--fd=3", NULL }, "mutually exclusive" },
    { { NULL }, "--socket-path" },
    { { "--socket-path=/nonexistent/x", "--bogus", NULL }, "--bogus" },
    { { "--socket-path=/nonexistent/x", "stray", NULL }, "stray" },
    { { "--socket-path=/nonexistent/x", "--max-bytes=0", NULL }, "--max-bytes" },
    { { "--socket-path=/nonexistent/x", "--max-bytes=-5", NULL }, "--max-bytes" },
    { { "--socket-path=/nonexistent/x", "--period=100", NULL }, "--max-bytes" },
    { { "--socket-path=/nonexistent/x", "--max-bytes=1", "--period=0", NULL }, "--period" },
    { { "--socket-path=/nonexistent/x", "--max-bytes=x", NULL }, "--max-bytes" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const char *argv[6] = { rng_program () };
      g_autoptr (Child) c = NULL;

      for (guint k = 0; cases[i].args[k] != NULL; k++)
        argv[k + 1] = cases[i].args[k];
      c = child_spawn (argv, -1, NULL);
      child_assert_exit (c, 1);
      g_assert_true (g_str_has_prefix (c->err, "vhost-user-rng: "));
      if (strstr (c->err, cases[i].message) == NULL)
        g_error ("case %u: “%s” does not mention “%s”", i, c->err, cases[i].message);
      g_assert_cmpstr (c->out, ==, "");
    }
  /* Nothing was created anywhere. */
  g_assert_false (g_file_test ("/nonexistent/x", G_FILE_TEST_EXISTS));
}

/* ------------------------------------------------------------------------ */
/* The rng device                                                            */

typedef struct
{
  char *dir;
  char *path;
  Child *child;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  VhuTestDriver *drv;
  int kick;
  int call;
  int err;
} RngFixture;

static void
rng_setup (RngFixture *f, gconstpointer data)
{
  f->dir = make_tmp_dir ();
  f->path = g_build_filename (f->dir, "rng.sock", NULL);
  f->kick = f->call = f->err = -1;
}

static void
rng_teardown (RngFixture *f, gconstpointer data)
{
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  if (f->child != NULL)
    {
      child_signal (f->child, SIGTERM);
      child_assert_exit (f->child, 0);
      g_assert_cmpstr (f->child->err, ==, "");
      g_clear_pointer (&f->child, child_free);
    }
  g_clear_pointer (&f->drv, vhu_test_driver_free);
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  vhu_test_close_fd (&f->kick);
  vhu_test_close_fd (&f->call);
  vhu_test_close_fd (&f->err);
  remove_tmp_dir (f->dir);
  g_free (f->path);
}

/* Starts the rng with @extra_arg (may be NULL) and brings its queue up as
 * QEMU would: features, memory, ring 0. */
static void
rng_start (RngFixture *f, const char *extra_arg, const char *extra_arg2)
{
  g_autofree char *path_arg = g_strconcat ("--socket-path=", f->path, NULL);
  const guint64 protocol = PF (REPLY_ACK) | PF (MQ);
  guint64 features = VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VF (RING_INDIRECT_DESC);
  guint64 offered;

  f->child = rng_spawn (path_arg, extra_arg, extra_arg2, NULL);
  f->fe = vhu_test_frontend_new (connect_when_ready (f->child, f->path), NULL);

  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmphex (offered & features, ==, features);
  g_assert_cmphex (offered & 0xffffffu, ==, 0);
  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  g_assert_cmphex (offered & protocol, ==, protocol);
  /* No config space. */
  g_assert_cmphex (offered & PF (CONFIG), ==, 0);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, protocol);
  /* One queue. */
  g_assert_cmpuint (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_QUEUE_NUM), ==, 1);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &features, sizeof features,
                             NULL, 0);

  f->ram = vhu_test_guest_ram_new (RAM_SIZE, RAM_GPA, RAM_UVA);
  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, &f->ram, 1), ==, 0);
  f->drv = vhu_test_driver_new (f->ram, RING_OFFSET, RING_NUM);
  vhu_test_driver_set_data_area (f->drv, DATA_GPA, DATA_SIZE);

  g_assert_cmpuint (
    vhu_test_driver_start_ring (f->drv, f->fe, 0, 0, 0, &f->kick, &f->call, &f->err), ==, 0);
}

static void
rng_kick (RngFixture *f)
{
  g_assert_cmpint (eventfd_write (f->kick, 1), ==, 0);
}

static guint
used_pending (RngFixture *f)
{
  return (guint16) (vhu_test_driver_get_used_idx (f->drv) - vhu_test_driver_get_last_used (f->drv));
}

/* Waits until the device has returned @n entries the driver has not taken. */
static void
wait_used (RngFixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;

  while (used_pending (f) < n)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("%u used entries did not come (%u did)", n, used_pending (f));
      g_usleep (500);
    }
}

typedef struct
{
  VhuTestDriver *drv;
  guint n_buffers;
} CheckIn;

static gboolean
all_bytes (const guint8 *buf, gsize len, guint8 value)
{
  for (gsize i = 0; i < len; i++)
    if (buf[i] != value)
      return FALSE;
  return TRUE;
}

/* Every writable buffer got random bytes: not the canary the driver put
 * there, not zeros (for buffers of 8 bytes and more, the chance that
 * random bytes are all 0xee or all 0 is below 2^-60). */
static void
check_in_buffer (guint64 gpa, guint32 len, gpointer user_data)
{
  CheckIn *ci = user_data;
  g_autofree guint8 *buf = g_malloc (len);

  vhu_test_driver_read (ci->drv, gpa, buf, len);
  g_assert_cmpuint (len, >=, 8);
  g_assert_false (all_bytes (buf, len, VHU_TEST_DRIVER_CANARY));
  g_assert_false (all_bytes (buf, len, 0));
  ci->n_buffers++;
}

static void
test_rng_fill (RngFixture *f, gconstpointer data)
{
  const guint32 chains[][4] = {
    /* writable buffer sizes, 0-terminated */
    { 16, 0 },
    { 64, 100, 8, 0 },
    { 4096, 0 },
    { 32, 32, 32, 0 },
    { 1000, 24, 0 },
  };
  const guint8 out_data[16] = { 1, 2, 3 };
  gint heads[G_N_ELEMENTS (chains) * 2];
  guint n_chains = 0;
  guint64 total_in[G_N_ELEMENTS (chains) * 2];
  gint readonly_head, big_head;
  g_autofree guint8 *first = NULL;
  g_autofree guint8 *second = NULL;
  guint taken = 0;

  rng_start (f, NULL, NULL);

  /* Each chain twice: direct and indirect. */
  for (guint indirect = 0; indirect < 2; indirect++)
    for (guint i = 0; i < G_N_ELEMENTS (chains); i++)
      {
        VhuTestBuffer bufs[4];
        guint n = 0;

        total_in[n_chains] = 0;
        for (; chains[i][n] != 0; n++)
          {
            bufs[n] = VHU_TEST_IN (chains[i][n]);
            total_in[n_chains] += chains[i][n];
          }
        heads[n_chains] = vhu_test_driver_add (f->drv, bufs, n, indirect);
        g_assert_cmpint (heads[n_chains], >=, 0);
        n_chains++;
      }
  /* A request with nothing to write into: completed with 0 bytes. */
  {
    VhuTestBuffer buf = VHU_TEST_OUT (out_data, sizeof out_data);

    readonly_head = vhu_test_driver_add (f->drv, &buf, 1, FALSE);
    g_assert_cmpint (readonly_head, >=, 0);
  }
  /* More than a request gets (RNG_BUFFER_SIZE): filled up to that. */
  {
    VhuTestBuffer bufs[2] = { VHU_TEST_IN (RNG_BUFFER_SIZE - 100), VHU_TEST_IN (4096) };

    big_head = vhu_test_driver_add (f->drv, bufs, 2, FALSE);
    g_assert_cmpint (big_head, >=, 0);
  }
  vhu_test_driver_publish (f->drv);
  rng_kick (f);
  wait_used (f, n_chains + 2);

  while (taken < n_chains + 2)
    {
      guint head;
      guint32 len;

      g_assert_true (vhu_test_driver_get_used (f->drv, &head, &len));
      /* In the order they were offered. */
      if (taken < n_chains)
        {
          CheckIn ci = { f->drv, 0 };

          g_assert_cmpint (head, ==, heads[taken]);
          g_assert_cmpuint (len, ==, total_in[taken]);
          g_assert_cmpuint (vhu_test_driver_get_in_size (f->drv, head), ==, len);
          vhu_test_driver_foreach_in (f->drv, head, check_in_buffer, &ci);
          g_assert_cmpuint (ci.n_buffers, >=, 1);
        }
      else if (taken == n_chains)
        {
          g_assert_cmpint (head, ==, readonly_head);
          g_assert_cmpuint (len, ==, 0);
        }
      else
        {
          const gsize in_size = BIG_IN_SIZE;
          g_autofree guint8 *buf = g_malloc (in_size);

          g_assert_cmpint (head, ==, big_head);
          g_assert_cmpuint (len, ==, RNG_BUFFER_SIZE);
          g_assert_cmpuint (vhu_test_driver_read_in (f->drv, head, buf, in_size), ==, in_size);
          /* Both buffers got bytes (the end of the first, the start of the
           * second)... */
          g_assert_false (all_bytes (buf + RNG_BUFFER_SIZE - 200, 64, 0));
          g_assert_false (all_bytes (buf + RNG_BUFFER_SIZE - 200, 64, VHU_TEST_DRIVER_CANARY));
          g_assert_false (all_bytes (buf + RNG_BUFFER_SIZE - 64, 64, 0));
          g_assert_false (all_bytes (buf + RNG_BUFFER_SIZE - 64, 64, VHU_TEST_DRIVER_CANARY));
          /* ... and past what it got, the second is untouched. */
          g_assert_true (all_bytes (buf + RNG_BUFFER_SIZE, in_size - RNG_BUFFER_SIZE,
                                    VHU_TEST_DRIVER_CANARY));
        }
      taken++;
    }
  g_assert_false (vhu_test_driver_get_used (f->drv, NULL, NULL));

  /* Two requests get different bytes. */
  first = g_malloc (4096);
  second = g_malloc (4096);
  g_assert_cmpuint (vhu_test_driver_read_in (f->drv, heads[2], first, 4096), ==, 4096);
  g_assert_cmpuint (vhu_test_driver_read_in (f->drv, heads[2 + G_N_ELEMENTS (chains)], second,
                                             4096),
                    ==, 4096);
  g_assert_true (memcmp (first, second, 4096) != 0);

  /* The driver was told. */
  {
    eventfd_t calls = 0;

    g_assert_cmpint (eventfd_read (f->call, &calls), ==, 0);
    g_assert_cmpuint (calls, >=, 1);
  }
  /* And the ring is consistent: everything offered was consumed. */
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, n_chains + 2);
}

static void
test_rng_rate_limit (RngFixture *f, gconstpointer data)
{
  /* 64 bytes per minute: the test never sees a second period. */
  const guint32 sizes[] = { 16, 16, 16, 100, 16, 16 };
  gint heads[G_N_ELEMENTS (sizes)];
  guint n_served = 0;
  guint32 bytes = 0;

  rng_start (f, "--max-bytes=64", "--period=60000");
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      VhuTestBuffer buf = VHU_TEST_IN (sizes[i]);

      heads[i] = vhu_test_driver_add (f->drv, &buf, 1, FALSE);
      g_assert_cmpint (heads[i], >=, 0);
    }
  vhu_test_driver_publish (f->drv);
  rng_kick (f);

  /* 16 + 16 + 16, and 16 of the 100-byte request: the quota. */
  wait_used (f, 4);
  for (guint i = 0; i < 4; i++)
    {
      guint head;
      guint32 len;

      g_assert_true (vhu_test_driver_get_used (f->drv, &head, &len));
      g_assert_cmpint (head, ==, heads[i]);
      g_assert_cmpuint (len, ==, 16);
      bytes += len;
      n_served++;
    }
  g_assert_cmpuint (bytes, ==, 64);

  /* The rest waits: more kicks and messages change nothing. */
  for (guint i = 0; i < 3; i++)
    {
      rng_kick (f);
      vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
    }
  g_assert_cmpuint (used_pending (f), ==, 0);
  g_assert_true (vhu_test_driver_is_in_flight (f->drv, heads[4]));
  g_assert_true (vhu_test_driver_is_in_flight (f->drv, heads[5]));
  /* The device took exactly four requests from the ring. */
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, n_served);
}

static void
test_rng_rate_periods (RngFixture *f, gconstpointer data)
{
  /* 32 bytes per 20 ms period: twelve 16-byte requests take six periods,
   * served by the period timer without another kick. */
  const guint n = 12;
  gint heads[12];

  rng_start (f, "--max-bytes=32", "--period=20");
  for (guint i = 0; i < n; i++)
    {
      VhuTestBuffer buf = VHU_TEST_IN (16);

      heads[i] = vhu_test_driver_add (f->drv, &buf, 1, FALSE);
      g_assert_cmpint (heads[i], >=, 0);
    }
  vhu_test_driver_publish (f->drv);
  rng_kick (f);

  wait_used (f, n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree guint8 *buf = g_malloc (16);
      guint head;
      guint32 len;

      g_assert_true (vhu_test_driver_get_used (f->drv, &head, &len));
      g_assert_cmpint (head, ==, heads[i]);
      g_assert_cmpuint (len, ==, 16);
      g_assert_cmpuint (vhu_test_driver_read_in (f->drv, head, buf, 16), ==, 16);
      g_assert_false (all_bytes (buf, 16, VHU_TEST_DRIVER_CANARY));
    }

  /* Kicks work again once the queue is drained. */
  {
    VhuTestBuffer buf = VHU_TEST_IN (8);
    gint head = vhu_test_driver_add (f->drv, &buf, 1, FALSE);

    g_assert_cmpint (head, >=, 0);
    /* No kick asked for: the device is between periods and its timer
     * serves the request. */
    if (vhu_test_driver_publish (f->drv))
      rng_kick (f);
    wait_used (f, 1);
  }
}

static gboolean
wait_eventfd (int fd)
{
  struct pollfd pfd = { .fd = fd, .events = POLLIN };
  eventfd_t value = 0;

  if (poll (&pfd, 1, WAIT_MS) != 1)
    return FALSE;
  return eventfd_read (fd, &value) == 0 && value > 0;
}

static void
test_rng_broken_ring (RngFixture *f, gconstpointer data)
{
  VhuTestBuffer buf = VHU_TEST_IN (16);
  VhuVringDesc *desc;
  gint head;

  rng_start (f, NULL, NULL);
  /* A request that points outside guest memory. */
  head = vhu_test_driver_add (f->drv, &buf, 1, FALSE);
  g_assert_cmpint (head, >=, 0);
  desc = &vhu_test_driver_get_desc (f->drv)[head];
  desc->addr = GUINT64_TO_LE (G_GUINT64_CONSTANT (0x7000000000000000));
  vhu_test_driver_publish (f->drv);
  rng_kick (f);

  /* The queue breaks, the front-end is told, nothing is written... */
  g_assert_true (wait_eventfd (f->err));
  g_assert_cmpuint (used_pending (f), ==, 0);
  /* ... and the program goes on serving (the teardown checks that it
   * still exits cleanly). */
  g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES)
                     & VF (VERSION_1),
                   ==, VF (VERSION_1));
}

int
main (int argc, char **argv)
{
  test_pid = getpid ();
  signal (SIGPIPE, SIG_IGN);
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/vhost-user/program/parse/socket-path", test_parse_socket_path);
  g_test_add_func ("/vhost-user/program/parse/exclusive", test_parse_exclusive);
  g_test_add_func ("/vhost-user/program/parse/missing-socket", test_parse_missing_socket);
  g_test_add_func ("/vhost-user/program/parse/activation", test_parse_activation);
  g_test_add_func ("/vhost-user/program/parse/bad-values", test_parse_bad_values);
  g_test_add_func ("/vhost-user/program/parse/unknown", test_parse_unknown);
  g_test_add_func ("/vhost-user/program/parse/ignore-unknown", test_parse_ignore_unknown);
  g_test_add_func ("/vhost-user/program/parse/main-entries", test_parse_main_entries);
  g_test_add_func ("/vhost-user/program/capabilities-json", test_capabilities_json);
  g_test_add_func ("/vhost-user/program/run/print-capabilities", test_run_print_capabilities);
  g_test_add_func ("/vhost-user/program/run/quit", test_run_quit);
  g_test_add_func ("/vhost-user/program/run/bad-path", test_run_bad_path);

#define ADD_PROG(path, func, data)                                                                 \
  g_test_add ("/vhost-user/program/rng/" path, ProgFixture, data, prog_setup, func, prog_teardown)
  ADD_PROG ("print-capabilities", test_rng_print_capabilities, NULL);
  ADD_PROG ("sigterm", test_rng_signal, GINT_TO_POINTER (SIGTERM));
  ADD_PROG ("sigint", test_rng_signal, GINT_TO_POINTER (SIGINT));
  ADD_PROG ("fd-listening", test_rng_fd_listening, NULL);
  ADD_PROG ("fd-connected", test_rng_fd_connected, NULL);
  ADD_PROG ("fd-bad", test_rng_fd_bad, NULL);
  ADD_PROG ("activation", test_rng_activation, NULL);
  ADD_PROG ("activation-other-pid", test_rng_activation_other_pid, NULL);
  ADD_PROG ("live-socket", test_rng_live_socket, NULL);
  ADD_PROG ("stale-socket", test_rng_stale_socket, NULL);
  ADD_PROG ("bad-command-lines", test_rng_bad_command_lines, NULL);

#define ADD_RNG(path, func)                                                                        \
  g_test_add ("/vhost-user/rng/" path, RngFixture, NULL, rng_setup, func, rng_teardown)
  ADD_RNG ("fill", test_rng_fill);
  ADD_RNG ("rate-limit", test_rng_rate_limit);
  ADD_RNG ("rate-periods", test_rng_rate_periods);
  ADD_RNG ("broken-ring", test_rng_broken_ring);

  return g_test_run ();
}
