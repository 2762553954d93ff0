/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Real front-ends against a VhuTestDevice served in this process (on the
 * default main context, through a VhostUserServer listening in a temporary
 * directory): QEMU 7.2 realizing a vhost-user-blk-pci device while paused
 * (-S: no guest runs, but QEMU negotiates), and DPDK 22.11's testpmd with a
 * virtio-user port, which starts the rings as a driver does.
 *
 * The programs come from Debian packages that .ci/install-deps installs; a
 * missing one fails the test. Each child's stdout and stderr go to files in
 * the temporary directory and are printed when a test fails. Children die
 * with this process (PR_SET_PDEATHSIG), are killed and reaped when an
 * assertion fails or the test crashes (a fatal-signal handler, which also
 * prints their output), and are killed and reaped in the fixture's teardown.
 *
 * While a front-end waits for the device, this process must keep iterating
 * the default main context: every wait below does.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <gio/gio.h>

#include "vhu-test-device.h"
#include "vhu-test-frontend.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)
#define BIT(n) (G_GUINT64_CONSTANT (1) << (n))

/* How long a front-end may take for one step (start-up, a command, exit). */
#define STEP_TIMEOUT_S 30

#define QEMU_BINARY "qemu-system-x86_64"
#define TESTPMD_BINARY "dpdk-testpmd"

/* virtio-net feature bits for the testpmd device. */
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define NET_DEVICE_FEATURES                                                                        \
  (BIT (VIRTIO_NET_F_MAC) | BIT (VIRTIO_NET_F_MRG_RXBUF) | BIT (VIRTIO_NET_F_STATUS))

/* What virtio-user (without packed_vq=1) must and may set in SET_FEATURES
 * with that device (PROTOCOL_FEATURES is added by it for vhost-user). */
#define VIRTIO_USER_REQUIRED_FEATURES                                                              \
  (VF (VERSION_1) | VF (PROTOCOL_FEATURES) | BIT (VIRTIO_NET_F_MRG_RXBUF))
#define VIRTIO_USER_ALLOWED_FEATURES                                                               \
  (VIRTIO_USER_REQUIRED_FEATURES | VF (RING_INDIRECT_DESC) | VF (IN_ORDER))

#define DRIVER_OK_STATUS                                                                           \
  (VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE | VHOST_USER_DEVICE_STATUS_DRIVER                          \
   | VHOST_USER_DEVICE_STATUS_FEATURES_OK | VHOST_USER_DEVICE_STATUS_DRIVER_OK)

#define TESTPMD_PROMPT "testpmd> "

/* ------------------------------------------------------------------------ */
/* GET_CONFIG spy                                                           */

/* VhuTestDevice records signals, not vfunc calls: its get_config is wrapped
 * (in the class structure, for the whole program) to see what a front-end
 * read. */
static GBytes *(*test_device_get_config) (VhostUserDevice *self,
                                          guint offset,
                                          guint size,
                                          GError **error);
static guint n_get_config;
static guint last_get_config_offset;
static guint last_get_config_size;
static guint64 last_get_config_capacity; /* in the answer, if it held it */

static GBytes *
spy_get_config (VhostUserDevice *self, guint offset, guint size, GError **error)
{
  GBytes *bytes = test_device_get_config (self, offset, size, error);

  n_get_config++;
  last_get_config_offset = offset;
  last_get_config_size = size;
  last_get_config_capacity = 0;
  if (bytes != NULL && offset == 0 && g_bytes_get_size (bytes) >= sizeof (guint64))
    {
      memcpy (&last_get_config_capacity, g_bytes_get_data (bytes, NULL), sizeof (guint64));
      last_get_config_capacity = GUINT64_FROM_LE (last_get_config_capacity);
    }
  return bytes;
}

static void
install_get_config_spy (void)
{
  VhostUserDeviceClass *klass = g_type_class_ref (VHU_TYPE_TEST_DEVICE);

  test_device_get_config = klass->get_config;
  klass->get_config = spy_get_config;
  /* The class stays referenced for the whole program. */
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */

typedef struct
{
  char *name;
  char *out_path;
  char *err_path;
  GSubprocess *proc;
  gboolean exited;

  /* QEMU's QMP monitor */
  char *qmp_path;
  int qmp_fd;
  GString *qmp_buf;
} Child;

typedef struct
{
  char *dir;
  char *sock_path;
  VhuTestDevice *device;
  VhostUserServer *server;
  GPtrArray *children; /* of Child, one reference each */
  guint n_spawned;
  guint fds_before;
  char *fds_before_desc;
  char *dpdk_runtime_dir;   /* testpmd's, removed in the teardown */
  guint n_stopped_disabled; /* queue-stopped on a ring the front-end disabled */
} Fixture;

/* What the fatal-signal handler reports: fixed-size records, so that it needs
 * neither locks nor allocation. */
#define MAX_CHILDREN 8

typedef struct
{
  gboolean in_use;
  volatile pid_t pid; /* 0 once reaped */
  char name[64];
  char out_path[512];
  char err_path[512];
} AbortRecord;

static AbortRecord abort_records[MAX_CHILDREN];
static VhuTestDevice *abort_device;
static char abort_dpdk_runtime_dir[512]; /* removed if empty */
static pid_t test_pid;

static void
write_all (const char *data, size_t len)
{
  while (len > 0)
    {
      ssize_t n = write (STDERR_FILENO, data, len);

      if (n <= 0)
        return;
      data += n;
      len -= n;
    }
}

static void
write_str (const char *s)
{
  write_all (s, strlen (s));
}

static void
dump_file_raw (const char *path)
{
  char buf[4096];
  ssize_t n;
  int fd = open (path, O_RDONLY | O_CLOEXEC);

  if (fd < 0)
    return;
  while ((n = read (fd, buf, sizeof buf)) > 0)
    write_all (buf, n);
  close (fd);
}

/* An assertion failed (SIGABRT, or SIGTRAP from a fatal log message) or the
 * test crashed: kill the front-ends, show what they printed and what the
 * device saw, and die of the same signal. Only async-signal-safe calls. */
static const int fatal_signals[] = { SIGABRT, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE, SIGILL };

static void
on_fatal_signal (int signum)
{
  signal (signum, SIG_DFL);
  if (getpid () != test_pid)
    {
      raise (signum);
      return;
    }

  /* Killed and reaped (unless GLib's worker thread reaps one first). */
  for (guint i = 0; i < MAX_CHILDREN; i++)
    if (abort_records[i].in_use && abort_records[i].pid > 0)
      kill (abort_records[i].pid, SIGKILL);
  for (guint i = 0; i < MAX_CHILDREN; i++)
    if (abort_records[i].in_use && abort_records[i].pid > 0)
      waitpid (abort_records[i].pid, NULL, 0);

  for (guint i = 0; i < MAX_CHILDREN; i++)
    {
      if (!abort_records[i].in_use)
        continue;
      write_str ("\n=== stdout of ");
      write_str (abort_records[i].name);
      write_str (" ===\n");
      dump_file_raw (abort_records[i].out_path);
      write_str ("\n=== stderr of ");
      write_str (abort_records[i].name);
      write_str (" ===\n");
      dump_file_raw (abort_records[i].err_path);
    }
  if (abort_device != NULL)
    {
      write_str ("\n=== device events ===\n");
      write_str (vhu_test_device_get_events (abort_device));
    }
  write_str ("\n");
  if (abort_dpdk_runtime_dir[0] != '\0')
    rmdir (abort_dpdk_runtime_dir);
  raise (signum);
}

static void
child_setup (gpointer user_data)
{
  /* Dies with the test, whatever ends it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL);
  if (getppid () != test_pid)
    _exit (127);
}

static void
child_free (Child *c)
{
  g_assert_true (c->exited);
  if (c->qmp_fd >= 0)
    close (c->qmp_fd);
  if (c->qmp_buf != NULL)
    g_string_free (c->qmp_buf, TRUE);
  g_free (c->qmp_path);
  g_clear_object (&c->proc);
  g_free (c->name);
  g_free (c->out_path);
  g_free (c->err_path);
}

static void
child_unref (Child *c)
{
  g_rc_box_release_full (c, (GDestroyNotify) child_free);
}

static void
forget_abort_record (Child *c)
{
  for (guint i = 0; i < MAX_CHILDREN; i++)
    if (abort_records[i].in_use && strcmp (abort_records[i].name, c->name) == 0)
      abort_records[i].pid = 0;
}

static void
on_child_exited (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Child *c = user_data;
  g_autoptr (GError) error = NULL;

  g_subprocess_wait_finish (G_SUBPROCESS (source), result, &error);
  g_assert_no_error (error);
  c->exited = TRUE;
  forget_abort_record (c);
  child_unref (c);
}

static char *
child_describe_exit (Child *c)
{
  g_assert_true (c->exited);
  if (g_subprocess_get_if_exited (c->proc))
    return g_strdup_printf ("exited with status %d", g_subprocess_get_exit_status (c->proc));
  if (g_subprocess_get_if_signaled (c->proc))
    return g_strdup_printf ("was killed by signal %d (%s)", g_subprocess_get_term_sig (c->proc),
                            g_strsignal (g_subprocess_get_term_sig (c->proc)));
  return g_strdup ("ended");
}

static char *
read_text (const char *path)
{
  char *text = NULL;

  if (!g_file_get_contents (path, &text, NULL, NULL))
    return g_strdup ("");
  return text;
}

static char *
child_get_stdout (Child *c)
{
  return read_text (c->out_path);
}

static char *
child_get_stderr (Child *c)
{
  return read_text (c->err_path);
}

static void
child_show_output (Child *c)
{
  g_autofree char *out = child_get_stdout (c);
  g_autofree char *err = child_get_stderr (c);

  g_test_message ("=== stdout of %s ===\n%s", c->name, out);
  g_test_message ("=== stderr of %s ===\n%s", c->name, err);
}

static Child *
spawn_child (Fixture *f, const char *program, int stdin_fd, const char *const *argv)
{
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_autoptr (GError) error = NULL;
  g_autofree char *command = g_strjoinv (" ", (char **) argv);
  Child *c = g_rc_box_new0 (Child);
  AbortRecord *record = NULL;
  const char *pid;

  c->qmp_fd = -1;
  c->name = g_strdup_printf ("%s-%u", program, f->n_spawned++);
  c->out_path = g_strdup_printf ("%s/%s.out", f->dir, c->name);
  c->err_path = g_strdup_printf ("%s/%s.err", f->dir, c->name);

  g_subprocess_launcher_set_stdout_file_path (launcher, c->out_path);
  g_subprocess_launcher_set_stderr_file_path (launcher, c->err_path);
  if (stdin_fd >= 0)
    g_subprocess_launcher_take_stdin_fd (launcher, stdin_fd);
  g_subprocess_launcher_set_child_setup (launcher, child_setup, NULL, NULL);

  g_test_message ("%s: %s", c->name, command);
  c->proc = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);

  for (guint i = 0; i < MAX_CHILDREN && record == NULL; i++)
    if (!abort_records[i].in_use)
      record = &abort_records[i];
  g_assert_nonnull (record);
  pid = g_subprocess_get_identifier (c->proc);
  g_assert_nonnull (pid);
  g_strlcpy (record->name, c->name, sizeof record->name);
  g_strlcpy (record->out_path, c->out_path, sizeof record->out_path);
  g_strlcpy (record->err_path, c->err_path, sizeof record->err_path);
  record->pid = atoi (pid);
  record->in_use = TRUE;

  g_subprocess_wait_async (c->proc, NULL, on_child_exited, g_rc_box_acquire (c));
  g_ptr_array_add (f->children, c);
  return c;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */

static void
iterate (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_usleep (1000);
}

/* Fails the test with a message (through g_assertion_message(), so that the
 * SIGABRT handler reports the front-ends). */
#define FAIL(...)                                                                                  \
  G_STMT_START                                                                                     \
  {                                                                                                \
    g_autofree char *fail_msg_ = g_strdup_printf (__VA_ARGS__);                                    \
    g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, fail_msg_);                  \
  }                                                                                                \
  G_STMT_END

/* Iterates the default main context until @cond holds; after
 * STEP_TIMEOUT_S, fails the test. */
#define WAIT_UNTIL(cond)                                                                           \
  G_STMT_START                                                                                     \
  {                                                                                                \
    gint64 deadline_ = g_get_monotonic_time () + STEP_TIMEOUT_S * G_USEC_PER_SEC;                  \
    while (!(cond) && g_get_monotonic_time () < deadline_)                                         \
      iterate ();                                                                                  \
    if (!(cond))                                                                                   \
      FAIL ("timed out after %d s waiting for %s", STEP_TIMEOUT_S, #cond);                         \
  }                                                                                                \
  G_STMT_END

static void
wait_child_exited (Child *c)
{
  WAIT_UNTIL (c->exited);
}

/* A front-end that exits must leave the device disconnected and as new. */
static void
assert_device_clean (VhostUserDevice *device)
{
  guint n = vhost_user_device_get_num_queues (device);

  g_assert_false (vhost_user_device_get_connected (device));
  g_assert_cmphex (vhost_user_device_get_acked_features (device), ==, 0);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (device), ==, 0);
  g_assert_cmphex (vhost_user_device_get_status (device), ==, 0);
  for (guint i = 0; i < n; i++)
    {
      VhostUserVirtqueue *queue = vhost_user_device_get_queue (device, i);

      g_assert_false (vhost_user_virtqueue_get_started (queue));
      g_assert_false (vhost_user_virtqueue_get_enabled (queue));
    }
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

static char *
describe_fds (void)
{
  g_autoptr (GDir) d = g_dir_open ("/proc/self/fd", 0, NULL);
  GString *s = g_string_new (NULL);
  const char *name;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename ("/proc/self/fd", name, NULL);
      g_autofree char *target = g_file_read_link (path, NULL);

      g_string_append_printf (s, " %s->%s", name, target != NULL ? target : "?");
    }
  return g_string_free (s, FALSE);
}

static gboolean
has_pidfd (void)
{
  g_autofree char *fds = describe_fds ();

  return strstr (fds, "[pidfd]") != NULL;
}

/* The number of open fds once GLib's worker thread has let go of the child
 * watches (pidfds) of reaped children: it closes them some time after the
 * exit was reported. */
static guint
count_fds_settled (void)
{
  gint64 deadline = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;

  while (has_pidfd () && g_get_monotonic_time () < deadline)
    iterate ();
  return vhu_test_count_fds ();
}

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_main_context_iteration (NULL, FALSE);
  f->fds_before = count_fds_settled ();
  f->fds_before_desc = describe_fds ();
  f->dir = g_dir_make_tmp ("vhu-real-XXXXXX", NULL);
  g_assert_nonnull (f->dir);
  f->sock_path = g_build_filename (f->dir, "vhost-user.sock", NULL);
  f->children = g_ptr_array_new_with_free_func ((GDestroyNotify) child_unref);
  n_get_config = 0;
  last_get_config_offset = last_get_config_size = 0;
  last_get_config_capacity = 0;
}

/* Serves @device (taken) on the fixture's socket. */
static void
serve (Fixture *f, VhuTestDevice *device)
{
  g_autoptr (GError) error = NULL;

  f->device = device;
  abort_device = device;
  f->server = vhost_user_server_new (VHOST_USER_DEVICE (device));
  g_assert_true (vhost_user_server_listen (f->server, f->sock_path, &error));
  g_assert_no_error (error);
}

static void
remove_tree (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;

  if (d == NULL)
    return;
  while ((name = g_dir_read_name (d)) != NULL)
    {
      g_autofree char *path = g_build_filename (dir, name, NULL);

      g_unlink (path);
    }
  g_rmdir (dir);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  guint fds_after;

  /* Every front-end still running is killed, and all are reaped. */
  for (guint i = 0; i < f->children->len; i++)
    {
      Child *c = g_ptr_array_index (f->children, i);

      if (!c->exited)
        {
          g_test_message ("killing %s", c->name);
          g_subprocess_force_exit (c->proc);
        }
      wait_child_exited (c);
      if (g_test_failed ())
        child_show_output (c);
    }
  if (f->device != NULL && g_test_failed ())
    g_test_message ("device events:\n%s", vhu_test_device_get_events (f->device));

  g_ptr_array_unref (f->children);
  memset (abort_records, 0, sizeof abort_records);
  abort_device = NULL;
  abort_dpdk_runtime_dir[0] = '\0';

  if (f->dpdk_runtime_dir != NULL)
    {
      remove_tree (f->dpdk_runtime_dir);
      g_free (f->dpdk_runtime_dir);
    }

  g_clear_object (&f->server);
  if (f->device != NULL)
    g_assert_finalize_object (f->device);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  remove_tree (f->dir);
  g_free (f->sock_path);
  g_free (f->dir);
  fds_after = count_fds_settled ();
  if (fds_after != f->fds_before)
    {
      g_autofree char *now = describe_fds ();

      g_test_message ("fds before:%s\nfds after:%s", f->fds_before_desc, now);
    }
  g_assert_cmpuint (fds_after, ==, f->fds_before);
  g_free (f->fds_before_desc);
}

/* A front-end that cannot be found fails the test: .ci/install-deps
 * installs it. */
static char *
find_program (const char *program, const char *package)
{
  char *path = g_find_program_in_path (program);

  if (path == NULL)
    g_test_fail_printf ("%s not found: install the Debian package %s (.ci/install-deps)", program,
                        package);
  return path;
}

/* ------------------------------------------------------------------------ */
/* QEMU and its QMP monitor                                                 */

static Child *
spawn_qemu (Fixture *f, const char *qemu, guint num_queues)
{
  g_autofree char *qmp_path = g_strdup_printf ("%s/qmp-%u.sock", f->dir, f->n_spawned);
  g_autofree char *qmp = g_strdup_printf ("unix:%s,server=on,wait=off", qmp_path);
  g_autofree char *chardev = g_strdup_printf ("socket,id=c0,path=%s", f->sock_path);
  g_autofree char *device
    = g_strdup_printf ("vhost-user-blk-pci,id=blk0,chardev=c0,num-queues=%u", num_queues);
  const char *argv[] = {
    qemu,
    "-machine", "q35,accel=tcg,memory-backend=mem",
    "-m", "256M",
    "-object", "memory-backend-memfd,id=mem,size=256M,share=on",
    "-nodefaults", "-nographic", "-S",
    "-qmp", qmp,
    "-chardev", chardev,
    "-device", device,
    NULL,
  };
  Child *c = spawn_child (f, QEMU_BINARY, -1, argv);

  c->qmp_path = g_steal_pointer (&qmp_path);
  c->qmp_buf = g_string_new (NULL);
  return c;
}

/* The next line QEMU's monitor sent, or NULL if it closed the monitor or
 * exited first. */
static char *
qmp_read_line (Child *c)
{
  gint64 deadline = g_get_monotonic_time () + STEP_TIMEOUT_S * G_USEC_PER_SEC;

  while (g_get_monotonic_time () < deadline)
    {
      const char *nl = memchr (c->qmp_buf->str, '\n', c->qmp_buf->len);
      char buf[4096];
      ssize_t n;

      if (nl != NULL)
        {
          gsize len = nl - c->qmp_buf->str;
          char *line = g_strndup (c->qmp_buf->str, len);

          g_string_erase (c->qmp_buf, 0, len + 1);
          g_strchomp (line);
          return line;
        }

      n = recv (c->qmp_fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        {
          g_string_append_len (c->qmp_buf, buf, n);
          continue;
        }
      if (n == 0 || (errno != EAGAIN && errno != EINTR))
        return NULL;
      if (c->exited)
        return NULL;
      iterate ();
    }
  FAIL ("timed out after %d s waiting for QMP from %s", STEP_TIMEOUT_S, c->name);
  return NULL;
}

/* Sends @command (a JSON object) and returns the answer, skipping events:
 * a line with "return" or "error", or NULL if QEMU went away. */
static char *
qmp_execute (Child *c, const char *command)
{
  /* One send: QEMU runs a command as soon as its JSON object is complete,
   * and may be gone ("quit") before a second one. */
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  gsize len = strlen (line);

  g_test_message ("%s QMP <- %s", c->name, command);
  if (send (c->qmp_fd, line, len, MSG_NOSIGNAL) != (gssize) len)
    {
      g_test_message ("%s: sending to QMP: %s", c->name, g_strerror (errno));
      return NULL;
    }

  for (;;)
    {
      g_autofree char *answer = qmp_read_line (c);

      if (answer == NULL)
        return NULL;
      g_test_message ("%s QMP -> %.300s%s", c->name, answer, strlen (answer) > 300 ? "..." : "");
      if (g_str_has_prefix (answer, "{\"return\"") || g_str_has_prefix (answer, "{\"error\""))
        return g_steal_pointer (&answer);
    }
}

/* Connects to QEMU's monitor and leaves capabilities negotiation mode: TRUE
 * once QMP answers, FALSE if QEMU exited first. QEMU realizes the device
 * before its monitor answers, and waits for the device's replies meanwhile:
 * the default main context is iterated all along. */
static gboolean
qmp_connect (Child *c)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  gint64 deadline = g_get_monotonic_time () + STEP_TIMEOUT_S * G_USEC_PER_SEC;
  g_autofree char *greeting = NULL;
  g_autofree char *reply = NULL;

  g_assert_cmpuint (strlen (c->qmp_path), <, sizeof addr.sun_path);
  g_strlcpy (addr.sun_path, c->qmp_path, sizeof addr.sun_path);

  while (c->qmp_fd < 0)
    {
      int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

      g_assert_cmpint (fd, >=, 0);
      if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
        {
          c->qmp_fd = fd;
          break;
        }
      close (fd);
      if (c->exited)
        return FALSE;
      if (g_get_monotonic_time () > deadline)
        FAIL ("timed out after %d s waiting for %s's QMP socket", STEP_TIMEOUT_S, c->name);
      iterate ();
    }

  greeting = qmp_read_line (c);
  if (greeting == NULL)
    return FALSE;
  g_test_message ("%s QMP -> %s", c->name, greeting);
  g_assert_true (g_str_has_prefix (greeting, "{\"QMP\""));

  reply = qmp_execute (c, "{\"execute\": \"qmp_capabilities\"}");
  if (reply == NULL)
    return FALSE;
  g_assert_cmpstr (reply, ==, "{\"return\": {}}");
  return TRUE;
}

/* Starts QEMU and waits until its monitor answers, the device realized. */
static Child *
start_qemu (Fixture *f, const char *qemu, guint num_queues)
{
  Child *c = spawn_qemu (f, qemu, num_queues);

  if (!qmp_connect (c))
    {
      wait_child_exited (c);
      child_show_output (c);
      FAIL ("%s did not start", c->name);
    }
  return c;
}

/* `quit` through QMP: QEMU exits with status 0, and the device is left
 * disconnected and reset, ready for the next front-end. */
static void
quit_qemu (Fixture *f, Child *c)
{
  VhostUserDevice *device = VHOST_USER_DEVICE (f->device);
  guint disconnected = vhu_test_device_get_disconnected_count (f->device);
  guint resets = vhu_test_device_get_reset_count (f->device);
  g_autofree char *reply = qmp_execute (c, "{\"execute\": \"quit\"}");
  g_autofree char *how = NULL;

  g_assert_cmpstr (reply, ==, "{\"return\": {}}");
  wait_child_exited (c);
  how = child_describe_exit (c);
  g_test_message ("%s %s", c->name, how);
  g_assert_cmpstr (how, ==, "exited with status 0");

  WAIT_UNTIL (vhu_test_device_get_disconnected_count (f->device) == disconnected + 1);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, resets + 1);
  assert_device_clean (device);
}

/* What QEMU 7.2 (Debian's 7.2.22) acks of what the library offers to a
 * vhost-user-blk front-end: all of it, STATUS included (it would send
 * SET_STATUS when a driver starts the device). */
#define QEMU_ACKED_PROTOCOL_FEATURES                                                               \
  (PF (MQ) | PF (LOG_SHMFD) | PF (REPLY_ACK) | PF (BACKEND_REQ) | PF (CONFIG)                      \
   | PF (INFLIGHT_SHMFD) | PF (RESET_DEVICE) | PF (CONFIGURE_MEM_SLOTS) | PF (STATUS))

/* The features QEMU's x-query-virtio-status lists for the test device. */
static const char *const qemu_host_features[] = {
  "VIRTIO_BLK_F_SIZE_MAX", "VIRTIO_BLK_F_SEG_MAX",
  "VIRTIO_BLK_F_BLK_SIZE", "VIRTIO_BLK_F_FLUSH",
  "VIRTIO_BLK_F_TOPOLOGY", "VIRTIO_BLK_F_CONFIG_WCE",
  "VIRTIO_BLK_F_DISCARD",  "VIRTIO_BLK_F_WRITE_ZEROES",
  "VIRTIO_F_VERSION_1",    "VHOST_USER_F_PROTOCOL_FEATURES",
};

typedef struct
{
  gboolean done;
  GError *error;
} NotifyResult;

static void
on_config_change_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  NotifyResult *r = user_data;

  vhost_user_device_notify_config_changed_finish (VHOST_USER_DEVICE (source), result, &r->error);
  r->done = TRUE;
}

/* What the paused QEMU's device looks like once realized on @device. */
static void
assert_qemu_realized (Fixture *f, Child *c, guint num_queues)
{
  VhostUserDevice *device = VHOST_USER_DEVICE (f->device);
  g_autofree char *reply = NULL;
  g_autofree char *expected = NULL;
  NotifyResult notify = { 0 };

  g_assert_true (vhost_user_device_get_connected (device));

  /* Protocol features: QEMU acked what it implements of our offer, with a
   * back-end channel (SET_BACKEND_REQ_FD with NEED_REPLY, acked 0: QEMU
   * would have failed the realize otherwise) and config space access. */
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (device), ==,
                   QEMU_ACKED_PROTOCOL_FEATURES);

  /* No driver: no SET_FEATURES, nothing started, nothing refused. */
  g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), ==, 0);
  g_assert_cmphex (vhost_user_device_get_acked_features (device), ==, 0);
  for (guint i = 0; i < vhost_user_device_get_num_queues (device); i++)
    g_assert_cmpuint (vhu_test_device_get_started_count (f->device, i), ==, 0);
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
  g_assert_cmpstr (vhu_test_device_get_events (f->device), ==, "");

  /* GET_CONFIG, answered: QEMU read the virtio-blk config space as far as
   * it knows it (57 bytes, to write_zeroes_may_unmap), capacity included. */
  g_assert_cmpuint (n_get_config, ==, 1);
  g_assert_cmpuint (last_get_config_offset, ==, 0);
  g_assert_cmpuint (last_get_config_size, ==, 57);
  g_assert_cmpuint (last_get_config_capacity, ==, VHU_TEST_DEVICE_CAPACITY);

  /* QEMU's own view of the device: the queues it asked for, and the
   * features it took from our GET_FEATURES answer (the device's virtio-blk
   * bits and the library's transport bits). */
  reply = qmp_execute (c, "{\"execute\": \"x-query-virtio-status\", \"arguments\": "
                          "{\"path\": \"/machine/peripheral/blk0/virtio-backend\"}}");
  g_assert_nonnull (reply);
  g_assert_true (g_str_has_prefix (reply, "{\"return\""));
  g_assert_nonnull (strstr (reply, "\"name\": \"virtio-blk\""));
  g_assert_nonnull (strstr (reply, "\"device-id\": 2,"));
  expected = g_strdup_printf ("\"num-vqs\": %u,", num_queues);
  g_assert_nonnull (strstr (reply, expected));
  for (guint i = 0; i < G_N_ELEMENTS (qemu_host_features); i++)
    {
      g_autofree char *quoted = g_strdup_printf ("\"%s: ", qemu_host_features[i]);

      if (strstr (reply, quoted) == NULL)
        FAIL ("QEMU's host features lack %s: %s", qemu_host_features[i], reply);
    }
  g_assert_nonnull (strstr (reply, "\"vm-running\": false"));

  /* The back-end channel works: QEMU acks BACKEND_CONFIG_CHANGE_MSG
   * (REPLY_ACK). It reads the config space again only for a started device
   * (7.2 ignores the notice before), so no second GET_CONFIG here. */
  vhost_user_device_notify_config_changed_async (device, NULL, on_config_change_done, &notify);
  WAIT_UNTIL (notify.done);
  g_assert_no_error (notify.error);
  g_assert_cmpuint (n_get_config, ==, 1);
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
  g_assert_true (vhost_user_device_get_connected (device));
}

static void
test_qemu_blk_realize (Fixture *f, gconstpointer data)
{
  g_autofree char *qemu = find_program (QEMU_BINARY, "qemu-system-x86");
  Child *first, *second;

  if (qemu == NULL)
    return;

  serve (f, vhu_test_device_new (2, VHU_TEST_DEVICE_DEFAULT_FEATURES, FALSE));

  /* All the queues the device has. */
  first = start_qemu (f, qemu, 2);
  assert_qemu_realized (f, first, 2);
  quit_qemu (f, first);

  /* A second QEMU on the same server, with fewer queues: served as the
   * first was. */
  vhu_test_device_clear_records (f->device);
  n_get_config = 0;
  second = start_qemu (f, qemu, 1);
  assert_qemu_realized (f, second, 1);
  quit_qemu (f, second);
}

static void
test_qemu_blk_too_many_queues (Fixture *f, gconstpointer data)
{
  g_autofree char *qemu = find_program (QEMU_BINARY, "qemu-system-x86");
  g_autofree char *how = NULL;
  g_autofree char *err = NULL;
  g_auto (GStrv) lines = NULL;
  guint attempts = 0;
  Child *bad, *good;

  if (qemu == NULL)
    return;

  serve (f, vhu_test_device_new (2, VHU_TEST_DEVICE_DEFAULT_FEATURES, FALSE));

  /* QEMU wants more queues than GET_QUEUE_NUM says: it refuses to start,
   * saying why, after a few attempts on new connections (each line of
   * stderr is one). The device takes each as an ordinary disconnection. */
  bad = spawn_qemu (f, qemu, 4);
  g_assert_false (qmp_connect (bad));
  wait_child_exited (bad);
  how = child_describe_exit (bad);
  err = child_get_stderr (bad);
  g_test_message ("%s %s; stderr:\n%s", bad->name, how, err);
  g_assert_cmpstr (how, ==, "exited with status 1");
  lines = g_strsplit (err, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (strstr (lines[i], "The maximum number of queues supported by the backend is 2") != NULL)
      attempts++;
  g_assert_cmpuint (attempts, >=, 1);

  WAIT_UNTIL (vhu_test_device_get_disconnected_count (f->device) == attempts);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, attempts);
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
  assert_device_clean (VHOST_USER_DEVICE (f->device));

  /* The server still serves. */
  vhu_test_device_clear_records (f->device);
  n_get_config = 0;
  good = start_qemu (f, qemu, 2);
  assert_qemu_realized (f, good, 2);
  quit_qemu (f, good);
}

/* ------------------------------------------------------------------------ */
/* DPDK testpmd with virtio-user                                            */

typedef struct
{
  Child *child;
  int stdin_fd; /* our end of testpmd's stdin */
  guint n_commands;
} Testpmd;

static guint
count_prompts (Child *c)
{
  g_autofree char *out = child_get_stdout (c);
  guint n = 0;

  for (const char *p = strstr (out, TESTPMD_PROMPT); p != NULL;
       p = strstr (p + strlen (TESTPMD_PROMPT), TESTPMD_PROMPT))
    n++;
  return n;
}

/* testpmd's interactive prompt appears once at start-up (ports started) and
 * once after each command: waits for prompt number @n, failing if testpmd
 * exits first. */
static void
testpmd_wait_prompt (Testpmd *t, guint n)
{
  WAIT_UNTIL (t->child->exited || count_prompts (t->child) >= n);
  if (t->child->exited && count_prompts (t->child) < n)
    {
      g_autofree char *how = child_describe_exit (t->child);

      child_show_output (t->child);
      FAIL ("%s %s before prompt %u", t->child->name, how, n);
    }
}

/* Sends one command line and waits for the prompt after it (not after
 * "quit"). stdin is a socket, so that writing to a testpmd that died cannot
 * raise SIGPIPE here. */
static void
testpmd_command (Testpmd *t, const char *command)
{
  g_autofree char *line = g_strconcat (command, "\n", NULL);
  gsize len = strlen (line);

  g_test_message ("%s <- %s", t->child->name, command);
  g_assert_cmpint (send (t->stdin_fd, line, len, MSG_NOSIGNAL), ==, (gssize) len);
  t->n_commands++;
  if (strcmp (command, "quit") != 0)
    testpmd_wait_prompt (t, t->n_commands + 1);
}

/* Two CPUs this process may run on (the same twice if it has one): the
 * lcores of testpmd's main and forwarding threads. */
static void
pick_cpus (guint *a, guint *b)
{
  cpu_set_t set;
  gint found = 0;

  CPU_ZERO (&set);
  g_assert_no_errno (sched_getaffinity (0, sizeof set, &set));
  for (guint cpu = 0; cpu < CPU_SETSIZE && found < 2; cpu++)
    if (CPU_ISSET (cpu, &set))
      *(found++ == 0 ? a : b) = cpu;
  g_assert_cmpint (found, >, 0);
  if (found == 1)
    *b = *a;
}

static void
assert_testpmd_running (Fixture *f)
{
  VhostUserDevice *device = VHOST_USER_DEVICE (f->device);

  g_assert_true (vhost_user_device_get_connected (device));
  /* DRIVER_OK came with SET_STATUS (STATUS was negotiated). */
  g_assert_cmphex (vhost_user_device_get_status (device), ==, DRIVER_OK_STATUS);
  for (guint i = 0; i < 2; i++)
    {
      VhostUserVirtqueue *queue = vhost_user_device_get_queue (device, i);

      g_assert_cmpuint (vhu_test_device_get_started_count (f->device, i), ==, 1);
      g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, i), ==, 0);
      g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, i), >=, 1);
      g_assert_true (vhost_user_virtqueue_get_started (queue));
      g_assert_true (vhost_user_virtqueue_get_enabled (queue));
      g_assert_cmpuint (vhost_user_virtqueue_get_size (queue), ==, 256);
    }
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
}

/* A ring the front-end stops itself (SET_VRING_ENABLE 0, then
 * GET_VRING_BASE) is disabled when it stops; one stopped by a disconnection
 * is still enabled. */
static void
on_queue_stopped (VhostUserDevice *device, VhostUserVirtqueue *queue, gpointer user_data)
{
  Fixture *f = user_data;

  if (!vhost_user_virtqueue_get_enabled (queue))
    f->n_stopped_disabled++;
}

/* Where the EAL makes its runtime directory, even with --no-shconf: root's
 * is under /var/run, anyone else's under $XDG_RUNTIME_DIR or /tmp. */
static char *
dpdk_runtime_dir (const char *file_prefix)
{
  const char *base = g_getenv ("XDG_RUNTIME_DIR");

  if (getuid () == 0)
    base = "/var/run";
  else if (base == NULL)
    base = "/tmp";
  return g_build_filename (base, "dpdk", file_prefix, NULL);
}

/* Starts testpmd with a virtio-user port on the fixture's socket, its
 * stdin a socket for commands. */
static void
testpmd_spawn (Fixture *f, Testpmd *t, const char *testpmd)
{
  g_autofree char *file_prefix = NULL;
  g_autofree char *lcores = NULL;
  g_autofree char *vdev = NULL;
  guint cpu_a = 0, cpu_b = 0;
  int sv[2];

  pick_cpus (&cpu_a, &cpu_b);
  lcores = g_strdup_printf ("0@%u,1@%u", cpu_a, cpu_b);
  file_prefix = g_strdup_printf ("vhu-real-%d-%u", (int) getpid (), f->n_spawned);
  g_assert_null (f->dpdk_runtime_dir);
  f->dpdk_runtime_dir = dpdk_runtime_dir (file_prefix);
  g_strlcpy (abort_dpdk_runtime_dir, f->dpdk_runtime_dir, sizeof abort_dpdk_runtime_dir);
  vdev = g_strdup_printf ("net_virtio_user0,path=%s,queues=1,queue_size=256", f->sock_path);

  g_assert_no_errno (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
  t->stdin_fd = sv[0];
  {
    const char *argv[] = {
      testpmd,
      "--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--no-telemetry",
      "--file-prefix", file_prefix,
      "--lcores", lcores,
      "--vdev", vdev,
      "--",
      "-i", "--total-num-mbufs=16384",
      NULL,
    };

    t->child = spawn_child (f, TESTPMD_BINARY, sv[1], argv);
  }
}

/* "quit": testpmd exits 0; it was not killed by SIGPIPE (the device never
 * dropped the connection first). */
static void
testpmd_quit (Testpmd *t)
{
  g_autofree char *how = NULL;

  testpmd_command (t, "quit");
  wait_child_exited (t->child);
  how = child_describe_exit (t->child);
  g_test_message ("%s %s", t->child->name, how);
  g_assert_cmpstr (how, ==, "exited with status 0");
  close (t->stdin_fd);
  t->stdin_fd = -1;
}

static void
test_dpdk_virtio_user (Fixture *f, gconstpointer data)
{
  g_autofree char *testpmd = find_program (TESTPMD_BINARY, "dpdk-dev");
  VhostUserDevice *device;
  Testpmd t = { 0 };
  guint64 features;

  if (testpmd == NULL)
    return;

  serve (f, vhu_test_device_new (2, NET_DEVICE_FEATURES, FALSE));
  device = VHOST_USER_DEVICE (f->device);

  /* Probe and port start happen before the first prompt: SET_OWNER,
   * features, SET_STATUS, SET_MEM_TABLE, both rings, SET_STATUS with
   * DRIVER_OK. */
  testpmd_spawn (f, &t, testpmd);
  testpmd_wait_prompt (&t, 1);

  /* virtio-user acks MQ, REPLY_ACK and STATUS; of our device features, the
   * mergeable buffers (it handles MAC and STATUS itself); of the transport
   * features, what it knows among those the library offers: a split ring,
   * no EVENT_IDX. */
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (device), ==,
                   PF (MQ) | PF (REPLY_ACK) | PF (STATUS));
  g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), >=, 1);
  features = vhu_test_device_get_negotiated_features (f->device);
  g_test_message ("negotiated features 0x%" G_GINT64_MODIFIER "x", features);
  g_assert_cmphex (features & VIRTIO_USER_REQUIRED_FEATURES, ==, VIRTIO_USER_REQUIRED_FEATURES);
  g_assert_cmphex (features & ~VIRTIO_USER_ALLOWED_FEATURES, ==, 0);
  g_assert_cmphex (vhost_user_device_get_acked_features (device), ==, features);
  /* Both rings started, which they do only once the memory table
   * (SET_MEM_TABLE: CONFIGURE_MEM_SLOTS was not negotiated) maps them. */
  assert_testpmd_running (f);

  /* Forwarding, and a port stop: nothing for the back-end (22.11's virtio
   * PMD keeps the rings until the port is closed). */
  testpmd_command (&t, "start");
  testpmd_command (&t, "stop");
  testpmd_command (&t, "port stop all");
  g_assert_true (vhost_user_device_get_connected (device));
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);

  /* Port close: SET_VRING_ENABLE 0 and GET_VRING_BASE on both rings, then
   * the socket closes. The device stopped both rings before the
   * disconnection, and is as new after it. */
  g_signal_connect (device, "queue-stopped", G_CALLBACK (on_queue_stopped), f);
  testpmd_command (&t, "port close all");
  WAIT_UNTIL (vhu_test_device_get_disconnected_count (f->device) == 1);
  for (guint i = 0; i < 2; i++)
    {
      g_assert_cmpuint (vhu_test_device_get_started_count (f->device, i), ==, 1);
      g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, i), ==, 1);
    }
  g_assert_cmpuint (f->n_stopped_disabled, ==, 2);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
  g_assert_true (g_str_has_suffix (vhu_test_device_get_events (f->device),
                                   "queue-stopped 0\nqueue-stopped 1\nreset\ndisconnected\n"));
  assert_device_clean (device);

  testpmd_quit (&t);
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_test_message ("device events:\n%s", vhu_test_device_get_events (f->device));
}

/* Every protocol-error the device recorded is about queue @index. */
static void
assert_errors_only_about_queue (VhuTestDevice *device, guint index)
{
  g_auto (GStrv) lines = g_strsplit (vhu_test_device_get_events (device), "\n", -1);
  g_autofree char *about = g_strdup_printf (": queue %u does not exist", index);
  guint n = 0;

  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], "protocol-error "))
      {
        if (strstr (lines[i], about) == NULL)
          FAIL ("unexpected %s", lines[i]);
        n++;
      }
  g_assert_cmpuint (n, ==, vhu_test_device_get_protocol_error_count (device));
  g_assert_error (vhu_test_device_get_last_protocol_error (device), VHOST_USER_ERROR,
                  VHOST_USER_ERROR_INVALID);
}

/* virtio-user sets up two rings whatever the device has: a one-queue
 * device refuses everything about the second one, serves the first, and
 * keeps the connection (dropping it would kill testpmd with SIGPIPE). */
static void
test_dpdk_one_queue_device (Fixture *f, gconstpointer data)
{
  g_autofree char *testpmd = find_program (TESTPMD_BINARY, "dpdk-dev");
  g_autofree char *err = NULL;
  VhostUserDevice *device;
  VhostUserVirtqueue *queue;
  Testpmd t = { 0 };

  if (testpmd == NULL)
    return;

  serve (f, vhu_test_device_new (1, NET_DEVICE_FEATURES, FALSE));
  device = VHOST_USER_DEVICE (f->device);
  queue = vhost_user_device_get_queue (device, 0);

  testpmd_spawn (f, &t, testpmd);
  testpmd_wait_prompt (&t, 1);

  /* SET_VRING_CALL, NUM, BASE, ADDR, KICK and ENABLE for queue 1 refused;
   * queue 0 runs. */
  g_assert_true (vhost_user_device_get_connected (device));
  g_assert_cmphex (vhost_user_device_get_status (device), ==, DRIVER_OK_STATUS);
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, 0), ==, 1);
  g_assert_true (vhost_user_virtqueue_get_started (queue));
  g_assert_true (vhost_user_virtqueue_get_enabled (queue));
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), >=, 6);
  assert_errors_only_about_queue (f->device, 1);

  /* GET_VRING_BASE for queue 1 gets a reply testpmd recognizes as a
   * failure (no desynchronized stream); it exits normally. */
  testpmd_quit (&t);
  WAIT_UNTIL (vhu_test_device_get_disconnected_count (f->device) == 1);
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 1);
  assert_errors_only_about_queue (f->device, 1);
  assert_device_clean (device);

  err = child_get_stderr (t.child);
  g_assert_nonnull (strstr (err, "get_vring_base failed, index=1"));
  g_assert_null (strstr (err, "index=0"));
}

/* The first GSubprocess starts GLib's worker thread, whose main context
 * holds an fd from then on: started here, it is not counted as a leak. */
static void
warm_up_subprocess (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSubprocess) proc =
    g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error, "/bin/true", NULL);

  g_assert_no_error (error);
  g_assert_true (g_subprocess_wait (proc, NULL, &error));
  g_assert_no_error (error);
}

int
main (int argc, char **argv)
{
  struct sigaction sa = { 0 };

  g_test_init (&argc, &argv, NULL);

  test_pid = getpid ();
  sa.sa_handler = on_fatal_signal;
  sigemptyset (&sa.sa_mask);
  for (guint i = 0; i < G_N_ELEMENTS (fatal_signals); i++)
    g_assert_no_errno (sigaction (fatal_signals[i], &sa, NULL));

  install_get_config_spy ();
  warm_up_subprocess ();

#define ADD(path, func)                                                                            \
  g_test_add ("/vhost-user/real/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)

  ADD ("qemu/blk-realize", test_qemu_blk_realize);
  ADD ("qemu/blk-too-many-queues", test_qemu_blk_too_many_queues);
  ADD ("dpdk/virtio-user", test_dpdk_virtio_user);
  ADD ("dpdk/one-queue-device", test_dpdk_one_queue_device);

#undef ADD

  return g_test_run ();
}
