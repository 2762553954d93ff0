/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include <glib/gi18n-lib.h>
#include <gio/gio.h>

#include "vhu-net-tap.h"

#define TUN_DEVICE "/dev/net/tun"

/* Sets @error to "FORMAT: strerror (saved_errno)". */
static gboolean G_GNUC_PRINTF (3, 4)
set_error_from_errno (GError **error, int saved_errno, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "%s: %s", message,
               g_strerror (saved_errno));
  return FALSE;
}

void
vhu_net_tap_free (VhuNetTap *tap)
{
  if (tap == NULL)
    return;
  for (guint i = 0; i < tap->n_queues; i++)
    if (tap->fds[i] >= 0)
      close (tap->fds[i]);
  g_free (tap->fds);
  g_free (tap->attached);
  g_free (tap->ifname);
  g_free (tap);
}

/* The interface's MTU, or 0 when it cannot be read. */
static guint
read_mtu (const char *ifname)
{
  struct ifreq ifr = { 0 };
  int sock = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  guint mtu = 0;

  if (sock < 0)
    return 0;
  g_strlcpy (ifr.ifr_name, ifname, sizeof ifr.ifr_name);
  if (ioctl (sock, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
    mtu = ifr.ifr_mtu;
  close (sock);
  return mtu;
}

/* One queue of the tap: a new file descriptor attached to the interface
 * (created if it does not exist, which needs CAP_NET_ADMIN). */
static int
open_queue (VhuNetTap *tap, const char *ifname, gboolean multi_queue, GError **error)
{
  struct ifreq ifr = { 0 };
  unsigned int features = 0;
  int fd = open (TUN_DEVICE, O_RDWR | O_CLOEXEC | O_NONBLOCK);

  if (fd < 0)
    {
      set_error_from_errno (error, errno, _("Cannot open /dev/net/tun for %s"), ifname);
      return -1;
    }
  if (ioctl (fd, TUNGETFEATURES, &features) == 0 && !(features & IFF_VNET_HDR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   _("The kernel's tap driver has no virtio-net headers (IFF_VNET_HDR)"));
      close (fd);
      return -1;
    }

  g_strlcpy (ifr.ifr_name, ifname, sizeof ifr.ifr_name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (multi_queue)
    ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (ioctl (fd, TUNSETIFF, &ifr) < 0)
    {
      int saved_errno = errno;

      if (saved_errno == EINVAL)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                     multi_queue ? _("Cannot attach to tap interface %s: it exists and is not "
                                     "a multi-queue tap (ip tuntap add … multi_queue)")
                                 : _("Cannot attach to tap interface %s: it exists and is not a "
                                     "single-queue tap, or is not a tap"),
                     ifname);
      else
        set_error_from_errno (error, saved_errno, _("Cannot attach to tap interface %s"), ifname);
      close (fd);
      return -1;
    }
  if (tap->ifname == NULL)
    tap->ifname = g_strndup (ifr.ifr_name, sizeof ifr.ifr_name);
  return fd;
}

VhuNetTap *
vhu_net_tap_open (const char *ifname, guint n_queues, GError **error)
{
  g_autoptr (VhuNetTap) tap = g_new0 (VhuNetTap, 1);

  g_return_val_if_fail (ifname != NULL, NULL);
  g_return_val_if_fail (n_queues >= 1, NULL);

  if (*ifname == '\0' || strlen (ifname) >= IFNAMSIZ || strchr (ifname, '/') != NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not an interface name (1 to %d characters, no “/”)"), ifname,
                   IFNAMSIZ - 1);
      return NULL;
    }

  tap->fds = g_new (int, n_queues);
  tap->attached = g_new (gboolean, n_queues);
  for (guint i = 0; i < n_queues; i++)
    {
      tap->fds[i] = -1;
      tap->attached[i] = TRUE;
    }
  tap->n_queues = n_queues;
  for (guint i = 0; i < n_queues; i++)
    {
      tap->fds[i] = open_queue (tap, tap->ifname != NULL ? tap->ifname : ifname, n_queues > 1,
                                error);
      if (tap->fds[i] < 0)
        return NULL;
    }
  tap->mtu = read_mtu (tap->ifname);
  if (!vhu_net_tap_set_checksum_offload (tap, FALSE, error))
    return NULL;
  return g_steal_pointer (&tap);
}

gboolean
vhu_net_tap_set_header_size (VhuNetTap *tap, guint size, GError **error)
{
  int value = size;

  for (guint i = 0; i < tap->n_queues; i++)
    if (ioctl (tap->fds[i], TUNSETVNETHDRSZ, &value) < 0)
      return set_error_from_errno (error, errno,
                                   _("Cannot set the virtio-net header size of tap %s"),
                                   tap->ifname);
  return TRUE;
}

gboolean
vhu_net_tap_set_checksum_offload (VhuNetTap *tap, gboolean csum, GError **error)
{
  unsigned long offload = csum ? TUN_F_CSUM : 0;

  for (guint i = 0; i < tap->n_queues; i++)
    if (ioctl (tap->fds[i], TUNSETOFFLOAD, offload) < 0)
      return set_error_from_errno (error, errno, _("Cannot set the offloads of tap %s"),
                                   tap->ifname);
  return TRUE;
}

gboolean
vhu_net_tap_set_queue_attached (VhuNetTap *tap, guint index, gboolean attached, GError **error)
{
  struct ifreq ifr = { 0 };

  g_return_val_if_fail (index < tap->n_queues, FALSE);
  attached = !!attached;
  if (tap->n_queues == 1 || tap->attached[index] == attached)
    return TRUE;

  ifr.ifr_flags = attached ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
  if (ioctl (tap->fds[index], TUNSETQUEUE, &ifr) < 0)
    return set_error_from_errno (error, errno,
                                 attached ? _("Cannot attach a queue of tap %s")
                                          : _("Cannot detach a queue of tap %s"),
                                 tap->ifname);
  tap->attached[index] = attached;
  return TRUE;
}
