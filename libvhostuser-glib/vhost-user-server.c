/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>
#include <gio/gio.h>

#include "vhost-user-error.h"
#include "vhost-user-server.h"

/**
 * VhostUserServer:
 *
 * Brings front-ends to a [class@VhostUser.Device].
 *
 * A server either listens on a unix socket path
 * ([method@VhostUser.Server.listen]), adopts a socket it was handed
 * ([method@VhostUser.Server.adopt_fd], the `--fd` convention of libvirt, or
 * [method@VhostUser.Server.adopt_activation] for systemd socket activation),
 * or connects to a front-end that listens ([method@VhostUser.Server.connect_to],
 * retrying with backoff).
 *
 * The device serves one front-end at a time. When it disconnects, the device
 * is back in its initial state and the server waits for (or reconnects to)
 * the next one.
 *
 * Since: 1.0
 */

#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

struct _VhostUserServer
{
  GObject parent_instance;

  VhostUserDevice *device;
  gulong disconnected_id;

  int listen_fd;
  GSource *accept_source;
  char *socket_path; /* a socket we created, unlinked when we stop */
  ino_t socket_ino;

  char *connect_path;
  GSource *retry_source;
  guint retry_ms;
};

enum
{
  PROP_0,
  PROP_DEVICE,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (VhostUserServer, vhost_user_server, G_TYPE_OBJECT)

static void watch_listener (VhostUserServer *self);
static void schedule_connect (VhostUserServer *self, guint delay_ms);

static void
on_device_disconnected (VhostUserDevice *device, gpointer user_data)
{
  VhostUserServer *self = user_data;

  if (self->listen_fd >= 0)
    watch_listener (self);
  else if (self->connect_path != NULL)
    {
      self->retry_ms = RETRY_MIN_MS;
      schedule_connect (self, RETRY_MIN_MS);
    }
}

static gboolean
on_accept_ready (gint fd, GIOCondition condition, gpointer user_data)
{
  VhostUserServer *self = user_data;
  g_autoptr (GError) error = NULL;
  int conn_fd;

  conn_fd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (conn_fd < 0)
    {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
        g_debug ("accept: %s", g_strerror (errno));
      return G_SOURCE_CONTINUE;
    }

  if (!vhost_user_device_take_connection (self->device, conn_fd, &error))
    {
      g_debug ("refused a front-end: %s", error->message);
      return G_SOURCE_CONTINUE;
    }

  /* One front-end at a time: the next waits in the backlog. */
  g_clear_pointer (&self->accept_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

static void
watch_listener (VhostUserServer *self)
{
  if (self->accept_source != NULL || vhost_user_device_get_connected (self->device))
    return;
  self->accept_source = g_unix_fd_source_new (self->listen_fd, G_IO_IN);
  g_source_set_static_name (self->accept_source, "[libvhostuser-glib] accept");
  g_source_set_callback (self->accept_source, G_SOURCE_FUNC (on_accept_ready), self, NULL);
  g_source_attach (self->accept_source, vhost_user_device_get_context (self->device));
}

static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static gboolean
fill_address (struct sockaddr_un *addr, const char *path, GError **error)
{
  memset (addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen (path) >= sizeof addr->sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("The socket path “%s” is too long"), path);
      return FALSE;
    }
  strcpy (addr->sun_path, path);
  return TRUE;
}

static gboolean
is_listening_socket (int fd)
{
  int value = 0;
  socklen_t len = sizeof value;

  return getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) == 0 && value != 0;
}

static gboolean
is_stream_socket (int fd)
{
  int type = 0;
  socklen_t len = sizeof type;

  return getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* A socket file left by a process that died is replaced; one that a live
 * process answers, or a file that is not a socket, is not touched. */
static gboolean
clear_stale_socket (const char *path, const struct sockaddr_un *addr, GError **error)
{
  struct stat st;
  int probe;
  int errsv;

  if (lstat (path, &st) < 0)
    return TRUE;
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("“%s” exists and is not a socket"), path);
      return FALSE;
    }

  probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (probe < 0)
    {
      errsv = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not create a socket: %s"), g_strerror (errsv));
      return FALSE;
    }
  if (connect (probe, (const struct sockaddr *) addr, sizeof *addr) == 0)
    {
      close (probe);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                   _("Another process is listening on “%s”"), path);
      return FALSE;
    }
  errsv = errno;
  close (probe);
  if (errsv != ECONNREFUSED)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not check the socket “%s”: %s"), path, g_strerror (errsv));
      return FALSE;
    }
  if (unlink (path) < 0 && errno != ENOENT)
    {
      errsv = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not remove the stale socket “%s”: %s"), path, g_strerror (errsv));
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_idle (VhostUserServer *self, GError **error)
{
  if (self->listen_fd >= 0 || self->connect_path != NULL
      || vhost_user_device_get_connected (self->device))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("The server is already serving"));
      return FALSE;
    }
  return TRUE;
}

static void
vhost_user_server_dispose (GObject *object)
{
  VhostUserServer *self = VHOST_USER_SERVER (object);

  if (self->device != NULL)
    {
      vhost_user_server_stop (self);
      g_clear_signal_handler (&self->disconnected_id, self->device);
      g_clear_object (&self->device);
    }

  G_OBJECT_CLASS (vhost_user_server_parent_class)->dispose (object);
}

static void
vhost_user_server_constructed (GObject *object)
{
  VhostUserServer *self = VHOST_USER_SERVER (object);

  G_OBJECT_CLASS (vhost_user_server_parent_class)->constructed (object);
  self->disconnected_id = g_signal_connect (self->device, "disconnected",
                                            G_CALLBACK (on_device_disconnected), self);
}

static void
vhost_user_server_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  VhostUserServer *self = VHOST_USER_SERVER (object);

  switch (prop_id)
    {
    case PROP_DEVICE:
      g_value_set_object (value, self->device);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_server_set_property (GObject *object,
                                guint prop_id,
                                const GValue *value,
                                GParamSpec *pspec)
{
  VhostUserServer *self = VHOST_USER_SERVER (object);

  switch (prop_id)
    {
    case PROP_DEVICE:
      self->device = g_value_dup_object (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_server_class_init (VhostUserServerClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->constructed = vhost_user_server_constructed;
  object_class->dispose = vhost_user_server_dispose;
  object_class->get_property = vhost_user_server_get_property;
  object_class->set_property = vhost_user_server_set_property;

  /**
   * VhostUserServer:device:
   *
   * The device the server brings front-ends to.
   *
   * Since: 1.0
   */
  properties[PROP_DEVICE] =
    g_param_spec_object ("device", NULL, NULL, VHOST_USER_TYPE_DEVICE,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
vhost_user_server_init (VhostUserServer *self)
{
  self->listen_fd = -1;
  self->retry_ms = RETRY_MIN_MS;
}

/**
 * vhost_user_server_new:
 * @device: the device to serve
 *
 * Returns: (transfer full): a new server for @device
 *
 * Since: 1.0
 */
VhostUserServer *
vhost_user_server_new (VhostUserDevice *device)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (device), NULL);
  return g_object_new (VHOST_USER_TYPE_SERVER, "device", device, NULL);
}

/**
 * vhost_user_server_get_device:
 * @self: a server
 *
 * Returns: (transfer none): the device
 *
 * Since: 1.0
 */
VhostUserDevice *
vhost_user_server_get_device (VhostUserServer *self)
{
  g_return_val_if_fail (VHOST_USER_IS_SERVER (self), NULL);
  return self->device;
}

/**
 * vhost_user_server_listen:
 * @self: a server
 * @path: (type filename): where to create the unix socket
 * @error: return location for a #GError
 *
 * Listens for front-ends on @path. A socket left there by a process that
 * died is replaced; a socket another process listens on, or a file that is
 * not a socket, is an error. The socket is removed by
 * [method@VhostUser.Server.stop].
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
vhost_user_server_listen (VhostUserServer *self, const gchar *path, GError **error)
{
  struct sockaddr_un addr;
  struct stat st;
  int fd;
  int errsv;

  g_return_val_if_fail (VHOST_USER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!check_idle (self, error) || !fill_address (&addr, path, error)
      || !clear_stale_socket (path, &addr, error))
    return FALSE;

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      errsv = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not create a socket: %s"), g_strerror (errsv));
      return FALSE;
    }
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) < 0 || listen (fd, 1) < 0)
    {
      errsv = errno;
      close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errsv),
                   _("Could not listen on “%s”: %s"), path, g_strerror (errsv));
      return FALSE;
    }

  self->listen_fd = fd;
  self->socket_path = g_strdup (path);
  self->socket_ino = lstat (path, &st) == 0 ? st.st_ino : 0;
  watch_listener (self);
  return TRUE;
}

/**
 * vhost_user_server_adopt_fd:
 * @self: a server
 * @fd: a unix stream socket: listening, or connected to a front-end
 * @error: return location for a #GError
 *
 * Serves front-ends through a socket the program was handed (the `--fd`
 * convention). A listening socket accepts front-ends one after the other; a
 * connected one serves that front-end only. The server takes @fd in every
 * case.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
vhost_user_server_adopt_fd (VhostUserServer *self, gint fd, GError **error)
{
  g_return_val_if_fail (VHOST_USER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (fd < 0 || !is_stream_socket (fd))
    {
      if (fd >= 0)
        close (fd);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("File descriptor %d is not a stream socket"), fd);
      return FALSE;
    }
  if (!check_idle (self, error))
    {
      close (fd);
      return FALSE;
    }

  if (!is_listening_socket (fd))
    return vhost_user_device_take_connection (self->device, fd, error);

  if (!g_unix_set_fd_nonblocking (fd, TRUE, error))
    {
      close (fd);
      return FALSE;
    }
  fcntl (fd, F_SETFD, FD_CLOEXEC);
  self->listen_fd = fd;
  watch_listener (self);
  return TRUE;
}

/**
 * vhost_user_server_adopt_activation:
 * @self: a server
 * @error: return location for a #GError
 *
 * Serves front-ends through the socket systemd passed to this process
 * (socket activation: `LISTEN_PID` and `LISTEN_FDS`, first fd 3). The
 * variables are removed from the environment so children do not see them.
 *
 * Returns: %TRUE on success; %FALSE with %G_IO_ERROR_NOT_FOUND when the
 *   process was not socket-activated
 *
 * Since: 1.0
 */
gboolean
vhost_user_server_adopt_activation (VhostUserServer *self, GError **error)
{
  const char *pid_str = g_getenv ("LISTEN_PID");
  const char *fds_str = g_getenv ("LISTEN_FDS");
  guint64 pid = 0, n_fds = 0;

  g_return_val_if_fail (VHOST_USER_IS_SERVER (self), FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (pid_str == NULL || fds_str == NULL
      || !g_ascii_string_to_unsigned (pid_str, 10, 1, G_MAXINT, &pid, NULL)
      || !g_ascii_string_to_unsigned (fds_str, 10, 1, G_MAXINT, &n_fds, NULL)
      || (pid_t) pid != getpid ())
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("The process was not socket-activated"));
      return FALSE;
    }
  g_unsetenv ("LISTEN_PID");
  g_unsetenv ("LISTEN_FDS");
  g_unsetenv ("LISTEN_FDNAMES");
  return vhost_user_server_adopt_fd (self, 3, error);
}

static gboolean
try_connect (gpointer user_data)
{
  VhostUserServer *self = user_data;
  struct sockaddr_un addr;
  g_autoptr (GError) error = NULL;
  int fd;

  g_clear_pointer (&self->retry_source, g_source_unref);
  if (!fill_address (&addr, self->connect_path, &error))
    {
      g_debug ("%s", error->message);
      return G_SOURCE_REMOVE;
    }

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
    {
      if (vhost_user_device_take_connection (self->device, fd, &error))
        {
          self->retry_ms = RETRY_MIN_MS;
          return G_SOURCE_REMOVE;
        }
      g_debug ("%s", error->message);
    }
  else if (fd >= 0)
    close (fd);

  schedule_connect (self, self->retry_ms);
  self->retry_ms = MIN (self->retry_ms * 2, RETRY_MAX_MS);
  return G_SOURCE_REMOVE;
}

static void
schedule_connect (VhostUserServer *self, guint delay_ms)
{
  clear_source (&self->retry_source);
  self->retry_source = delay_ms == 0 ? g_idle_source_new () : g_timeout_source_new (delay_ms);
  g_source_set_static_name (self->retry_source, "[libvhostuser-glib] connect");
  g_source_set_callback (self->retry_source, try_connect, self, NULL);
  g_source_attach (self->retry_source, vhost_user_device_get_context (self->device));
}

/**
 * vhost_user_server_connect_to:
 * @self: a server
 * @path: (type filename): the unix socket a front-end listens on
 *
 * Connects to a front-end that listens (QEMU's `server=on`, DPDK
 * virtio-user's `server=1`). Until it answers, and again after every
 * disconnection, the server retries with a backoff from 0.1 to 5 seconds.
 *
 * Since: 1.0
 */
void
vhost_user_server_connect_to (VhostUserServer *self, const gchar *path)
{
  g_return_if_fail (VHOST_USER_IS_SERVER (self));
  g_return_if_fail (path != NULL);
  g_return_if_fail (check_idle (self, NULL));

  self->connect_path = g_strdup (path);
  self->retry_ms = RETRY_MIN_MS;
  schedule_connect (self, 0);
}

/**
 * vhost_user_server_stop:
 * @self: a server
 *
 * Stops serving: closes the listening socket (removing the socket file the
 * server created), stops reconnecting, and disconnects the front-end.
 *
 * Since: 1.0
 */
void
vhost_user_server_stop (VhostUserServer *self)
{
  g_return_if_fail (VHOST_USER_IS_SERVER (self));

  clear_source (&self->accept_source);
  clear_source (&self->retry_source);
  g_clear_pointer (&self->connect_path, g_free);
  if (self->listen_fd >= 0)
    {
      close (self->listen_fd);
      self->listen_fd = -1;
    }
  if (self->socket_path != NULL)
    {
      struct stat st;

      /* Only our own socket: another process may have replaced it. */
      if (lstat (self->socket_path, &st) == 0 && S_ISSOCK (st.st_mode)
          && st.st_ino == self->socket_ino)
        unlink (self->socket_path);
      g_clear_pointer (&self->socket_path, g_free);
    }
  vhost_user_device_disconnect (self->device);
}
