/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>
#include <gio/gio.h>

#include "vhost-user-backend-program.h"
#include "vhost-user-server.h"

/**
 * VhostUserBackendProgram:
 *
 * The conventions of a vhost-user back-end program, as QEMU's
 * `docs/interop/vhost-user.rst` describes them ("Backend program
 * conventions"), for any device.
 *
 * A program object parses the common options:
 *
 * - `--socket-path=PATH`: listen for front-ends on a unix socket at PATH;
 * - `--fd=FDNUM`: serve through a socket the program inherited, listening
 *   (front-ends are accepted one after the other) or connected (the program
 *   exits when that front-end disconnects);
 * - `--print-capabilities`: print the program's capabilities as JSON on
 *   standard output and exit;
 *
 * together with the program's own options. `--socket-path` and `--fd` are
 * mutually exclusive. Without either, a program started by systemd socket
 * activation (`LISTEN_PID`, `LISTEN_FDS`) serves the socket it was passed;
 * otherwise it is an error.
 *
 * [method@VhostUser.BackendProgram.run] then serves a device in the
 * foreground until the program receives `SIGTERM` or `SIGINT` (or
 * [method@VhostUser.BackendProgram.quit] is called), and returns the exit
 * status. A program never daemonizes and ignores `SIGPIPE`.
 *
 * A device program in C:
 *
 * ```c
 * int
 * main (int argc, char **argv)
 * {
 *   g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("rng");
 *   g_auto (GStrv) args = g_strdupv (argv);
 *   g_autoptr (GError) error = NULL;
 *   g_autoptr (MyDevice) device = NULL;
 *
 *   vhost_user_backend_program_add_main_entries (program, my_entries);
 *   if (!vhost_user_backend_program_parse (program, &args, &error))
 *     {
 *       g_printerr ("%s: %s\n", g_get_prgname (), error->message);
 *       return 1;
 *     }
 *   if (vhost_user_backend_program_get_print_capabilities (program))
 *     return vhost_user_backend_program_run (program, NULL);
 *
 *   device = my_device_new ();
 *   return vhost_user_backend_program_run (program, VHOST_USER_DEVICE (device));
 * }
 * ```
 *
 * And in Python, where the program's own options are left to argparse:
 *
 * ```python
 * program = VhostUser.BackendProgram.new("rng")
 * program.props.ignore_unknown_options = True
 * try:
 *     ok, rest = program.parse(sys.argv)
 * except GLib.Error as e:
 *     sys.exit(f"{sys.argv[0]}: {e.message}")
 * options = parser.parse_args(rest[1:])
 * if program.get_print_capabilities():
 *     sys.exit(program.run(None))
 * sys.exit(program.run(MyDevice()))
 * ```
 *
 * Since: 1.0
 */

struct _VhostUserBackendProgram
{
  GObject parent_instance;

  char *device_type;
  GPtrArray *capabilities;
  GArray *main_entries; /* GOptionEntry, without the terminator */
  char *summary;
  gboolean ignore_unknown_options;

  /* What the command line said. */
  gboolean parsed;
  char *socket_path;
  int fd;
  gboolean fd_given;
  gboolean activation;
  gboolean print_capabilities;

  /* While running. */
  GMainLoop *loop;
  gboolean quit_requested;
};

enum
{
  PROP_0,
  PROP_DEVICE_TYPE,
  PROP_IGNORE_UNKNOWN_OPTIONS,
  PROP_PRINT_CAPABILITIES,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (VhostUserBackendProgram, vhost_user_backend_program, G_TYPE_OBJECT)

static const char *
program_name (void)
{
  const char *name = g_get_prgname ();

  return name != NULL ? name : "vhost-user-backend";
}

static void
vhost_user_backend_program_finalize (GObject *object)
{
  VhostUserBackendProgram *self = VHOST_USER_BACKEND_PROGRAM (object);

  g_free (self->device_type);
  g_ptr_array_unref (self->capabilities);
  g_array_unref (self->main_entries);
  g_free (self->summary);
  g_free (self->socket_path);
  g_clear_pointer (&self->loop, g_main_loop_unref);

  G_OBJECT_CLASS (vhost_user_backend_program_parent_class)->finalize (object);
}

static void
vhost_user_backend_program_get_property (GObject *object,
                                         guint prop_id,
                                         GValue *value,
                                         GParamSpec *pspec)
{
  VhostUserBackendProgram *self = VHOST_USER_BACKEND_PROGRAM (object);

  switch (prop_id)
    {
    case PROP_DEVICE_TYPE:
      g_value_set_string (value, self->device_type);
      break;
    case PROP_IGNORE_UNKNOWN_OPTIONS:
      g_value_set_boolean (value, self->ignore_unknown_options);
      break;
    case PROP_PRINT_CAPABILITIES:
      g_value_set_boolean (value, self->print_capabilities);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_backend_program_set_property (GObject *object,
                                         guint prop_id,
                                         const GValue *value,
                                         GParamSpec *pspec)
{
  VhostUserBackendProgram *self = VHOST_USER_BACKEND_PROGRAM (object);

  switch (prop_id)
    {
    case PROP_DEVICE_TYPE:
      self->device_type = g_value_dup_string (value);
      break;
    case PROP_IGNORE_UNKNOWN_OPTIONS:
      vhost_user_backend_program_set_ignore_unknown_options (self, g_value_get_boolean (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_backend_program_constructed (GObject *object)
{
  VhostUserBackendProgram *self = VHOST_USER_BACKEND_PROGRAM (object);

  G_OBJECT_CLASS (vhost_user_backend_program_parent_class)->constructed (object);
  if (self->device_type == NULL || self->device_type[0] == '\0')
    {
      g_critical ("A VhostUserBackendProgram needs a device type");
      g_free (self->device_type);
      self->device_type = g_strdup ("unknown");
    }
}

static void
vhost_user_backend_program_class_init (VhostUserBackendProgramClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = vhost_user_backend_program_constructed;
  object_class->finalize = vhost_user_backend_program_finalize;
  object_class->get_property = vhost_user_backend_program_get_property;
  object_class->set_property = vhost_user_backend_program_set_property;

  /**
   * VhostUserBackendProgram:device-type:
   *
   * The device type the program serves, as QEMU's `vhost-user.json` names
   * it: `"block"`, `"net"`, `"rng"`, `"gpu"`, `"fs"`, …
   *
   * Since: 1.0
   */
  properties[PROP_DEVICE_TYPE] =
    g_param_spec_string ("device-type", NULL, NULL, NULL,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserBackendProgram:ignore-unknown-options:
   *
   * Whether [method@VhostUser.BackendProgram.parse] leaves the options
   * (and arguments) it does not know in the argument vector instead of
   * refusing them, for a program that parses the rest itself.
   *
   * Since: 1.0
   */
  properties[PROP_IGNORE_UNKNOWN_OPTIONS] =
    g_param_spec_boolean ("ignore-unknown-options", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserBackendProgram:print-capabilities:
   *
   * Whether the command line asked for `--print-capabilities`.
   *
   * Since: 1.0
   */
  properties[PROP_PRINT_CAPABILITIES] =
    g_param_spec_boolean ("print-capabilities", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
}

static void
vhost_user_backend_program_init (VhostUserBackendProgram *self)
{
  self->capabilities = g_ptr_array_new_with_free_func (g_free);
  self->main_entries = g_array_new (FALSE, TRUE, sizeof (GOptionEntry));
  self->fd = -1;
}

/**
 * vhost_user_backend_program_new:
 * @device_type: the device type for `--print-capabilities`, as QEMU's
 *   `vhost-user.json` names it (`"block"`, `"net"`, `"rng"`, …)
 *
 * Returns: (transfer full): a new program object
 *
 * Since: 1.0
 */
VhostUserBackendProgram *
vhost_user_backend_program_new (const gchar *device_type)
{
  g_return_val_if_fail (device_type != NULL && device_type[0] != '\0', NULL);
  return g_object_new (VHOST_USER_TYPE_BACKEND_PROGRAM, "device-type", device_type, NULL);
}

/**
 * vhost_user_backend_program_get_device_type:
 * @self: a program
 *
 * Returns: the device type
 *
 * Since: 1.0
 */
const gchar *
vhost_user_backend_program_get_device_type (VhostUserBackendProgram *self)
{
  g_return_val_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self), NULL);
  return self->device_type;
}

/**
 * vhost_user_backend_program_add_capability:
 * @self: a program
 * @feature: a feature name, as QEMU's `vhost-user.json` lists them for the
 *   device type (`"read-only"`, `"blk-file"`, …)
 *
 * Adds @feature to the `"features"` list of the capabilities. Adding a
 * feature twice lists it once.
 *
 * Since: 1.0
 */
void
vhost_user_backend_program_add_capability (VhostUserBackendProgram *self, const gchar *feature)
{
  g_return_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self));
  g_return_if_fail (feature != NULL && feature[0] != '\0');

  for (guint i = 0; i < self->capabilities->len; i++)
    if (g_str_equal (g_ptr_array_index (self->capabilities, i), feature))
      return;
  g_ptr_array_add (self->capabilities, g_strdup (feature));
}

/**
 * vhost_user_backend_program_add_main_entries: (skip)
 * @self: a program
 * @entries: (array zero-terminated=1): the program's own options, ended by
 *   an entry with a %NULL long name
 *
 * Adds the program's own options, parsed together with the common ones by
 * [method@VhostUser.BackendProgram.parse]. The entries are copied but the
 * strings and the `arg_data` locations they point to must stay valid until
 * the program object is finalized. A %G_OPTION_ARG_CALLBACK entry is called
 * with the program object as its `data`. Descriptions are translated in the
 * program's current text domain.
 *
 * Since: 1.0
 */
void
vhost_user_backend_program_add_main_entries (VhostUserBackendProgram *self,
                                             const GOptionEntry *entries)
{
  g_return_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self));
  g_return_if_fail (entries != NULL);

  for (; entries->long_name != NULL; entries++)
    g_array_append_vals (self->main_entries, entries, 1);
}

/**
 * vhost_user_backend_program_set_summary:
 * @self: a program
 * @summary: (nullable): a sentence shown by `--help` above the options
 *
 * Sets what `--help` says the program does.
 *
 * Since: 1.0
 */
void
vhost_user_backend_program_set_summary (VhostUserBackendProgram *self, const gchar *summary)
{
  g_return_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self));

  g_free (self->summary);
  self->summary = g_strdup (summary);
}

/**
 * vhost_user_backend_program_set_ignore_unknown_options:
 * @self: a program
 * @ignore: whether to leave unknown options to the caller
 *
 * Sets [property@VhostUser.BackendProgram:ignore-unknown-options].
 *
 * Since: 1.0
 */
void
vhost_user_backend_program_set_ignore_unknown_options (VhostUserBackendProgram *self,
                                                       gboolean ignore)
{
  g_return_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self));

  ignore = !!ignore;
  if (self->ignore_unknown_options == ignore)
    return;
  self->ignore_unknown_options = ignore;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_IGNORE_UNKNOWN_OPTIONS]);
}

/**
 * vhost_user_backend_program_get_ignore_unknown_options:
 * @self: a program
 *
 * Returns: the value of [property@VhostUser.BackendProgram:ignore-unknown-options]
 *
 * Since: 1.0
 */
gboolean
vhost_user_backend_program_get_ignore_unknown_options (VhostUserBackendProgram *self)
{
  g_return_val_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self), FALSE);
  return self->ignore_unknown_options;
}

static gboolean
parse_fd_option (const char *option_name, const char *value, gpointer data, GError **error)
{
  VhostUserBackendProgram *self = data;
  guint64 fd;

  if (!g_ascii_string_to_unsigned (value, 10, 0, G_MAXINT, &fd, NULL))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("Cannot parse the file descriptor “%s” of %s"), value, option_name);
      return FALSE;
    }
  self->fd = (int) fd;
  self->fd_given = TRUE;
  return TRUE;
}

static gboolean
parse_socket_path_option (const char *option_name,
                          const char *value,
                          gpointer data,
                          GError **error)
{
  VhostUserBackendProgram *self = data;

  if (value[0] == '\0')
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("The socket path of %s is empty"), option_name);
      return FALSE;
    }
  g_free (self->socket_path);
  self->socket_path = g_strdup (value);
  return TRUE;
}

/* Whether systemd passed this process a socket. */
static gboolean
socket_activated (void)
{
  const char *pid_str = g_getenv ("LISTEN_PID");
  const char *fds_str = g_getenv ("LISTEN_FDS");
  guint64 pid = 0, n_fds = 0;

  return pid_str != NULL && fds_str != NULL
         && g_ascii_string_to_unsigned (pid_str, 10, 1, G_MAXINT, &pid, NULL)
         && g_ascii_string_to_unsigned (fds_str, 10, 1, G_MAXINT, &n_fds, NULL)
         && (pid_t) pid == getpid ();
}

/**
 * vhost_user_backend_program_parse:
 * @self: a program
 * @arguments: (inout) (array zero-terminated=1) (transfer full): the command
 *   line, program name first; on return, what is left of it
 * @error: return location for a #GError
 *
 * Parses the common options (`--socket-path`, `--fd`,
 * `--print-capabilities`) and the program's own
 * ([method@VhostUser.BackendProgram.add_main_entries]). `--help` prints the
 * options and exits the process.
 *
 * It is an error to give both `--socket-path` and `--fd`, or neither
 * without `--print-capabilities` unless the process was started by systemd
 * socket activation. Unknown options and arguments are an error, unless
 * [property@VhostUser.BackendProgram:ignore-unknown-options] is set: they
 * are then left in @arguments.
 *
 * Returns: %TRUE on success; %FALSE with @error set (in %G_OPTION_ERROR),
 *   for the program to print and exit with status 1
 *
 * Since: 1.0
 */
gboolean
vhost_user_backend_program_parse (VhostUserBackendProgram *self,
                                  gchar ***arguments,
                                  GError **error)
{
  g_autoptr (GOptionContext) context = NULL;
  g_autoptr (GArray) entries = NULL;
  GOptionGroup *group;
  gboolean print_capabilities = FALSE;
  const GOptionEntry common[] = {
    { "socket-path", 0, G_OPTION_FLAG_FILENAME, G_OPTION_ARG_CALLBACK, parse_socket_path_option,
      _("Listen for front-ends on a unix socket at PATH"), _("PATH") },
    { "fd", 0, 0, G_OPTION_ARG_CALLBACK, parse_fd_option,
      _("Serve front-ends through the inherited socket FDNUM"), _("FDNUM") },
    { "print-capabilities", 0, 0, G_OPTION_ARG_NONE, &print_capabilities,
      _("Print the back-end’s capabilities as JSON and exit"), NULL },
  };
  const GOptionEntry terminator = { NULL };

  g_return_val_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self), FALSE);
  g_return_val_if_fail (arguments != NULL && *arguments != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  /* A second parse starts from scratch. */
  g_clear_pointer (&self->socket_path, g_free);
  self->fd = -1;
  self->fd_given = FALSE;
  self->activation = FALSE;
  self->parsed = FALSE;

  entries = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));
  g_array_append_vals (entries, common, G_N_ELEMENTS (common));
  g_array_append_vals (entries, self->main_entries->data, self->main_entries->len);
  g_array_append_vals (entries, &terminator, 1);

  context = g_option_context_new (NULL);
  group = g_option_group_new (NULL, NULL, NULL, self, NULL);
  /* The common descriptions are translated above; this translates the
   * program's own in its text domain. */
  g_option_group_set_translation_domain (group, NULL);
  g_option_group_add_entries (group, (const GOptionEntry *) (gpointer) entries->data);
  g_option_context_set_main_group (context, group);
  g_option_context_set_translation_domain (context, NULL);
  g_option_context_set_summary (context, self->summary);
  g_option_context_set_ignore_unknown_options (context, self->ignore_unknown_options);

  if (!g_option_context_parse_strv (context, arguments, error))
    return FALSE;

  if (!self->ignore_unknown_options && *arguments != NULL && (*arguments)[0] != NULL)
    {
      for (guint i = 1; (*arguments)[i] != NULL; i++)
        {
          if (g_str_equal ((*arguments)[i], "--"))
            continue;
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                       _("Unexpected argument “%s”"), (*arguments)[i]);
          return FALSE;
        }
    }

  if (self->socket_path != NULL && self->fd_given)
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           _("--socket-path and --fd are mutually exclusive"));
      return FALSE;
    }

  if (self->print_capabilities != print_capabilities)
    {
      self->print_capabilities = print_capabilities;
      g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PRINT_CAPABILITIES]);
    }

  if (!print_capabilities && self->socket_path == NULL && !self->fd_given)
    {
      if (!socket_activated ())
        {
          g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                               _("Either --socket-path or --fd is required (or systemd "
                                 "socket activation)"));
          return FALSE;
        }
      self->activation = TRUE;
    }

  self->parsed = TRUE;
  return TRUE;
}

/**
 * vhost_user_backend_program_get_print_capabilities:
 * @self: a program
 *
 * Whether the command line asked for `--print-capabilities`. The program
 * must then do no other work (open no file, make no device) and return what
 * [method@VhostUser.BackendProgram.run] returns with a %NULL device.
 *
 * Returns: %TRUE if `--print-capabilities` was given
 *
 * Since: 1.0
 */
gboolean
vhost_user_backend_program_get_print_capabilities (VhostUserBackendProgram *self)
{
  g_return_val_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self), FALSE);
  return self->print_capabilities;
}

static void
append_json_string (GString *out, const char *str)
{
  g_string_append_c (out, '"');
  for (const guchar *p = (const guchar *) str; *p != '\0'; p++)
    {
      switch (*p)
        {
        case '"':
          g_string_append (out, "\\\"");
          break;
        case '\\':
          g_string_append (out, "\\\\");
          break;
        case '\n':
          g_string_append (out, "\\n");
          break;
        case '\t':
          g_string_append (out, "\\t");
          break;
        default:
          if (*p < 0x20)
            g_string_append_printf (out, "\\u%04x", *p);
          else
            g_string_append_c (out, *p);
        }
    }
  g_string_append_c (out, '"');
}

/**
 * vhost_user_backend_program_get_capabilities_json:
 * @self: a program
 *
 * The capabilities `--print-capabilities` prints, in the form QEMU's
 * `vhost-user.json` describes:
 * `{"type": "block", "features": ["blk-file", "read-only"]}`.
 *
 * Returns: (transfer full): the capabilities as a JSON object
 *
 * Since: 1.0
 */
gchar *
vhost_user_backend_program_get_capabilities_json (VhostUserBackendProgram *self)
{
  GString *out;

  g_return_val_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self), NULL);

  out = g_string_new ("{\"type\": ");
  append_json_string (out, self->device_type);
  g_string_append (out, ", \"features\": [");
  for (guint i = 0; i < self->capabilities->len; i++)
    {
      if (i > 0)
        g_string_append (out, ", ");
      append_json_string (out, g_ptr_array_index (self->capabilities, i));
    }
  g_string_append (out, "]}");
  return g_string_free (out, FALSE);
}

static gboolean
on_quit_signal (gpointer user_data)
{
  VhostUserBackendProgram *self = user_data;

  vhost_user_backend_program_quit (self);
  return G_SOURCE_CONTINUE;
}

static void
on_connected_fd_disconnected (VhostUserDevice *device, gpointer user_data)
{
  VhostUserBackendProgram *self = user_data;

  /* A connected --fd served its only front-end: nothing is left to do. */
  vhost_user_backend_program_quit (self);
}

static GSource *
add_signal_source (VhostUserBackendProgram *self, int signum, GMainContext *context)
{
  GSource *source = g_unix_signal_source_new (signum);

  g_source_set_static_name (source, "[libvhostuser-glib] quit signal");
  g_source_set_callback (source, on_quit_signal, self, NULL);
  g_source_attach (source, context);
  return source;
}

static gboolean
is_listening_socket (int fd)
{
  int value = 0;
  socklen_t len = sizeof value;

  return getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value != 0;
}

static int
print_capabilities (VhostUserBackendProgram *self)
{
  g_autofree char *json = vhost_user_backend_program_get_capabilities_json (self);

  if (fputs (json, stdout) == EOF || fputc ('\n', stdout) == EOF || fflush (stdout) != 0)
    {
      g_printerr ("%s: %s\n", program_name (), _("Could not write the capabilities"));
      return 1;
    }
  return 0;
}

/**
 * vhost_user_backend_program_run:
 * @self: a program whose command line was parsed
 * @device: (nullable): the device to serve; %NULL with `--print-capabilities`
 *
 * With `--print-capabilities`, prints the capabilities
 * ([method@VhostUser.BackendProgram.get_capabilities_json]) on standard
 * output and returns 0.
 *
 * Otherwise serves @device in the foreground, through a
 * [class@VhostUser.Server] listening on the socket path, adopting the
 * `--fd` socket, or the socket systemd passed. `SIGPIPE` is ignored. A main
 * loop runs on the device's [method@VhostUser.Device.get_context] until the
 * process receives `SIGTERM` or `SIGINT`, a front-end that came through a
 * connected `--fd` disconnects, or [method@VhostUser.BackendProgram.quit]
 * is called; the server is then stopped (removing the socket it created)
 * and 0 returned. When the device cannot be served (the path is in use,
 * the fd is not a socket), the reason is printed on standard error as
 * "PROGRAM: message" and 1 returned.
 *
 * Returns: the exit status for the program
 *
 * Since: 1.0
 */
gint
vhost_user_backend_program_run (VhostUserBackendProgram *self, VhostUserDevice *device)
{
  g_autoptr (VhostUserServer) server = NULL;
  g_autoptr (GError) error = NULL;
  GMainContext *context;
  GSource *sigterm, *sigint;
  gulong disconnected_id = 0;
  gboolean ok;

  g_return_val_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self), 1);
  g_return_val_if_fail (self->parsed, 1);
  g_return_val_if_fail (self->loop == NULL, 1);

  if (self->print_capabilities)
    return print_capabilities (self);

  g_return_val_if_fail (VHOST_USER_IS_DEVICE (device), 1);

  signal (SIGPIPE, SIG_IGN);

  context = vhost_user_device_get_context (device);
  /* Handlers first: a signal that comes once the socket exists is
   * handled, never fatal. */
  sigterm = add_signal_source (self, SIGTERM, context);
  sigint = add_signal_source (self, SIGINT, context);

  server = vhost_user_server_new (device);
  if (self->socket_path != NULL)
    ok = vhost_user_server_listen (server, self->socket_path, &error);
  else if (self->fd_given)
    {
      if (self->fd >= 0 && !is_listening_socket (self->fd))
        disconnected_id = g_signal_connect (device, "disconnected",
                                            G_CALLBACK (on_connected_fd_disconnected), self);
      ok = vhost_user_server_adopt_fd (server, self->fd, &error);
      self->fd = -1; /* the server took it */
      self->fd_given = FALSE;
    }
  else
    ok = vhost_user_server_adopt_activation (server, &error);

  if (ok)
    {
      self->loop = g_main_loop_new (context, FALSE);
      if (!self->quit_requested)
        g_main_loop_run (self->loop);
      g_clear_pointer (&self->loop, g_main_loop_unref);
    }
  else
    g_printerr ("%s: %s\n", program_name (), error->message);
  self->quit_requested = FALSE;

  g_clear_signal_handler (&disconnected_id, device);
  vhost_user_server_stop (server);
  /* Before the signal sources go: a signal that comes while the socket
   * is being removed is still handled. */
  g_source_destroy (sigterm);
  g_source_unref (sigterm);
  g_source_destroy (sigint);
  g_source_unref (sigint);
  return ok ? 0 : 1;
}

/**
 * vhost_user_backend_program_quit:
 * @self: a program
 *
 * Makes [method@VhostUser.BackendProgram.run] stop serving and return 0,
 * as `SIGTERM` does. Call it from the device's context. Called before
 * [method@VhostUser.BackendProgram.run], it makes run return at once (after
 * setting the server up).
 *
 * Since: 1.0
 */
void
vhost_user_backend_program_quit (VhostUserBackendProgram *self)
{
  g_return_if_fail (VHOST_USER_IS_BACKEND_PROGRAM (self));

  if (self->loop != NULL)
    g_main_loop_quit (self->loop);
  else
    self->quit_requested = TRUE;
}
