/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * vhost-user-net: a virtio-net device back-end. Frames the guest sends come
 * back to it (--loopback), or go to a tap interface (--tap=IFNAME).
 *
 * The queue pairs run on the main thread, with the control messages, or
 * on worker threads (--threads=N: pair k on thread k mod N), waiting for
 * the driver's kicks or polling their rings (--queue-mode).
 */

#include "config.h"

#include <locale.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "vhu-net-device.h"
#include "vhu-net-frame.h"
#include "vhu-queue-threads.h"

static gboolean opt_loopback;
static gchar *opt_tap;
static gchar *opt_mac;
static gint opt_mtu = -1;
static gint opt_queue_pairs = 1;

static const GOptionEntry entries[] = {
  { "loopback", 0, 0, G_OPTION_ARG_NONE, &opt_loopback,
    N_("Send every frame the guest transmits back to it"), NULL },
  { "tap", 0, 0, G_OPTION_ARG_STRING, &opt_tap,
    N_("Connect the guest to the tap interface IFNAME (created if it does not exist)"),
    N_("IFNAME") },
  { "mac", 0, 0, G_OPTION_ARG_STRING, &opt_mac, N_("The guest's MAC address"),
    N_("xx:xx:xx:xx:xx:xx") },
  { "mtu", 0, 0, G_OPTION_ARG_INT, &opt_mtu, N_("The MTU offered to the guest (68 to 65535)"),
    N_("N") },
  { "queue-pairs", 0, 0, G_OPTION_ARG_INT, &opt_queue_pairs,
    N_("The number of receive/transmit queue pairs (1 to 127)"), N_("N") },
  { NULL }
};

static VhuQueueOptions queue_options;

static gboolean
check_options (gchar **args, guint8 mac[6], GError **error)
{
  if (args[0] != NULL && args[1] != NULL)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   _("Unexpected argument “%s”"), args[1]);
      return FALSE;
    }
  if (opt_loopback == (opt_tap != NULL))
    {
      g_set_error_literal (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                           opt_loopback ? _("--loopback and --tap are mutually exclusive: give one")
                                        : _("Give either --loopback or --tap=IFNAME"));
      return FALSE;
    }
  if (opt_mac != NULL)
    {
      if (!vhu_net_parse_mac (opt_mac, mac))
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("“%s” is not a MAC address (xx:xx:xx:xx:xx:xx)"), opt_mac);
          return FALSE;
        }
      if (mac[0] & 1)
        {
          g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                       _("%s is a multicast address: a guest needs a unicast one"), opt_mac);
          return FALSE;
        }
    }
  if (opt_mtu != -1 && (opt_mtu < 68 || opt_mtu > G_MAXUINT16))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--mtu=%d: the MTU must be from 68 to 65535"), opt_mtu);
      return FALSE;
    }
  if (opt_queue_pairs < 1 || opt_queue_pairs > (gint) VHU_NET_MAX_QUEUE_PAIRS)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--queue-pairs=%d: the number of queue pairs must be from 1 to %u"),
                   opt_queue_pairs, VHU_NET_MAX_QUEUE_PAIRS);
      return FALSE;
    }
  return vhu_queue_options_check (&queue_options, error);
}

/* Pair k on worker k mod N: a pair's two queues stay together (loopback
 * moves frames from one to the other). */
static void
place_pairs (VhuNetDevice *device, VhuWorkers *workers)
{
  guint n = vhu_workers_get_size (workers);

  for (guint k = 0; k < vhu_net_device_get_queue_pairs (device); k++)
    vhu_net_device_set_pair_context (device, k, vhu_workers_get_context (workers, k % n));
}

int
main (int argc, char **argv)
{
  g_autoptr (VhostUserBackendProgram) program = NULL;
  g_autoptr (VhuNetDevice) device = NULL;
  g_autoptr (VhuWorkers) workers = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) args = NULL;
  guint8 mac[6];
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  args = g_strdupv (argv);
  program = vhost_user_backend_program_new ("net");
  vhost_user_backend_program_set_summary (
    program, _("A virtio-net device back-end: frames go back to the guest (--loopback) or to a "
               "tap interface (--tap=IFNAME)."));
  vhost_user_backend_program_add_main_entries (program, entries);
  vhu_queue_options_init (&queue_options);
  vhost_user_backend_program_add_main_entries (program,
                                               vhu_queue_options_get_entries (&queue_options));

  if (!vhost_user_backend_program_parse (program, &args, &error)
      || (!vhost_user_backend_program_get_print_capabilities (program)
          && !check_options (args, mac, &error)))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }
  if (vhost_user_backend_program_get_print_capabilities (program))
    return vhost_user_backend_program_run (program, NULL);

  if (opt_loopback)
    device = vhu_net_device_new_loopback (opt_queue_pairs);
  else
    device = vhu_net_device_new_tap (opt_tap, opt_queue_pairs, &error);
  if (device == NULL)
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }
  if (opt_mac != NULL)
    vhu_net_device_set_mac (device, mac);
  if (opt_mtu != -1)
    vhu_net_device_set_mtu (device, opt_mtu);

  /* The threads run before any queue can start, and stop once run() has
   * disconnected the front-end: no queue runs any more then, and nothing
   * waits for a worker. They go before the device does. */
  vhu_net_device_set_queue_mode (device, queue_options.mode, queue_options.poll_ns);
  if (queue_options.threads > 0)
    {
      workers = vhu_workers_new (queue_options.threads, "vhu-net");
      place_pairs (device, workers);
    }
  status = vhost_user_backend_program_run (program, VHOST_USER_DEVICE (device));
  g_clear_pointer (&workers, vhu_workers_free);
  g_clear_object (&device);
  vhu_queue_options_clear (&queue_options);
  return status;
}
