/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * vhost-user-blk: a virtio-blk back-end on a raw image file or a block
 * device, following QEMU's back-end program conventions:
 *
 *   vhost-user-blk --socket-path=/tmp/blk.sock --blk-file=disk.img
 *   qemu-system-x86_64 ... -chardev socket,id=c0,path=/tmp/blk.sock \
 *     -device vhost-user-blk-pci,chardev=c0
 *
 * The image's size is checked every second and on SIGHUP: a grown (or
 * shrunk) image is announced to the front-end, which tells the guest.
 *
 * The request queues run on the main thread, with the control messages, or
 * on worker threads (--threads=N: queue i on thread i mod N, each with its
 * own I/O engine), waiting for the driver's kicks or polling their rings
 * (--queue-mode).
 */

#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>

#include <libvhostuser-glib/libvhostuser-glib.h>

#include "vhu-blk-device.h"
#include "vhu-queue-threads.h"

#define SIZE_POLL_INTERVAL_MS 1000u

static char *blk_file;
static gboolean read_only;
static gint num_queues = 1;
static char *serial;
static char *aio_name;
static gboolean verbose;
static VhuQueueOptions queue_options;

static const GOptionEntry entries[] = {
  { "blk-file", 'b', 0, G_OPTION_ARG_FILENAME, &blk_file,
    N_("The raw image file or block device to serve"), N_("PATH") },
  { "read-only", 'r', 0, G_OPTION_ARG_NONE, &read_only,
    N_("Serve the image read-only"), NULL },
  { "num-queues", 0, 0, G_OPTION_ARG_INT, &num_queues,
    N_("The number of request queues (default 1)"), N_("N") },
  { "serial", 0, 0, G_OPTION_ARG_STRING, &serial,
    N_("The serial number the guest reads (at most 20 bytes)"), N_("SERIAL") },
  { "aio", 0, 0, G_OPTION_ARG_STRING, &aio_name,
    N_("How to do I/O: auto (default), io_uring or threads"), N_("ENGINE") },
  { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
    N_("Report the connection and what the front-end negotiated on standard error"), NULL },
  G_OPTION_ENTRY_NULL
};

typedef struct
{
  guint bit;
  const char *name;
} FeatureName;

static const FeatureName feature_names[] = {
  { 1, "SIZE_MAX" },
  { 2, "SEG_MAX" },
  { 4, "GEOMETRY" },
  { 5, "RO" },
  { 6, "BLK_SIZE" },
  { 9, "FLUSH" },
  { 10, "TOPOLOGY" },
  { 11, "CONFIG_WCE" },
  { 12, "MQ" },
  { 13, "DISCARD" },
  { 14, "WRITE_ZEROES" },
  { 24, "NOTIFY_ON_EMPTY" },
  { 26, "LOG_ALL" },
  { 27, "ANY_LAYOUT" },
  { 28, "RING_INDIRECT_DESC" },
  { 29, "RING_EVENT_IDX" },
  { 30, "PROTOCOL_FEATURES" },
  { 32, "VERSION_1" },
  { 33, "ACCESS_PLATFORM" },
  { 34, "RING_PACKED" },
  { 35, "IN_ORDER" },
};

static const FeatureName protocol_feature_names[] = {
  { 0, "MQ" },
  { 1, "LOG_SHMFD" },
  { 2, "RARP" },
  { 3, "REPLY_ACK" },
  { 4, "NET_MTU" },
  { 5, "BACKEND_REQ" },
  { 6, "CROSS_ENDIAN" },
  { 7, "CRYPTO_SESSION" },
  { 8, "PAGEFAULT" },
  { 9, "CONFIG" },
  { 10, "BACKEND_SEND_FD" },
  { 11, "HOST_NOTIFIER" },
  { 12, "INFLIGHT_SHMFD" },
  { 13, "RESET_DEVICE" },
  { 14, "INBAND_NOTIFICATIONS" },
  { 15, "CONFIGURE_MEM_SLOTS" },
  { 16, "STATUS" },
  { 17, "XEN_MMAP" },
  { 18, "SHARED_OBJECT" },
  { 19, "DEVICE_STATE" },
};

static char *
describe_features (guint64 features, const FeatureName *names, guint n_names)
{
  GString *s = g_string_new (NULL);

  g_string_append_printf (s, "0x%" G_GINT64_MODIFIER "x", features);
  for (guint bit = 0; bit < 64; bit++)
    {
      const char *name = NULL;

      if (!(features & (G_GUINT64_CONSTANT (1) << bit)))
        continue;
      for (guint i = 0; i < n_names; i++)
        if (names[i].bit == bit)
          name = names[i].name;
      if (name != NULL)
        g_string_append_printf (s, " %s", name);
      else
        g_string_append_printf (s, " bit%u", bit);
    }
  return g_string_free (s, FALSE);
}

/* QEMU sets the features twice per start: say it once. */
static guint64 last_features;
static guint64 last_protocol_features;

static void
on_features_negotiated (VhostUserDevice *device, guint64 features, gpointer user_data)
{
  g_autofree char *virtio = NULL;
  g_autofree char *protocol = NULL;

  if (features == last_features
      && vhost_user_device_get_acked_protocol_features (device) == last_protocol_features)
    return;
  last_features = features;
  last_protocol_features = vhost_user_device_get_acked_protocol_features (device);

  virtio = describe_features (features, feature_names, G_N_ELEMENTS (feature_names));
  protocol = describe_features (last_protocol_features, protocol_feature_names,
                                G_N_ELEMENTS (protocol_feature_names));

  g_printerr (_("%s: negotiated features: %s\n"), g_get_prgname (), virtio);
  g_printerr (_("%s: negotiated protocol features: %s\n"), g_get_prgname (), protocol);
}

static void
print_stats (VhuBlkDevice *device)
{
  g_autoptr (GString) queues = g_string_new (NULL);

  for (guint i = 0; i < vhost_user_device_get_num_queues (VHOST_USER_DEVICE (device)); i++)
    g_string_append_printf (queues, " %" G_GUINT64_FORMAT,
                            vhu_blk_device_get_queue_requests (device, i));
  g_printerr (_("%s: requests so far: %" G_GUINT64_FORMAT " reads, %" G_GUINT64_FORMAT
                " writes, %" G_GUINT64_FORMAT " flushes, %" G_GUINT64_FORMAT
                " discards, %" G_GUINT64_FORMAT " write-zeroes, %" G_GUINT64_FORMAT
                " get-id, %" G_GUINT64_FORMAT " unsupported, %" G_GUINT64_FORMAT
                " errors; per queue:%s\n"),
              g_get_prgname (), vhu_blk_device_get_stat (device, VHU_BLK_STAT_READS),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_WRITES),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_FLUSHES),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_DISCARDS),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_WRITE_ZEROES),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_GET_IDS),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_UNSUPPORTED),
              vhu_blk_device_get_stat (device, VHU_BLK_STAT_ERRORS), queues->str);
}

static void
on_connected (VhostUserDevice *device, GParamSpec *pspec, gpointer user_data)
{
  if (vhost_user_device_get_connected (device))
    g_printerr (_("%s: front-end connected\n"), g_get_prgname ());
  else
    {
      g_printerr (_("%s: front-end disconnected\n"), g_get_prgname ());
      print_stats (VHU_BLK_DEVICE (device));
      last_features = last_protocol_features = 0;
    }
}

static void
on_queue_started (VhostUserDevice *device, VhostUserVirtqueue *queue, gpointer user_data)
{
  g_printerr (_("%s: queue %u started (%u descriptors)\n"), g_get_prgname (),
              vhost_user_virtqueue_get_index (queue), vhost_user_virtqueue_get_size (queue));
}

static void
on_capacity (VhuBlkDevice *device, GParamSpec *pspec, gpointer user_data)
{
  g_printerr (_("%s: capacity is now %" G_GUINT64_FORMAT " sectors\n"), g_get_prgname (),
              vhu_blk_device_get_capacity (device));
}

static gboolean
on_sighup (gpointer user_data)
{
  vhu_blk_device_check_size (user_data);
  return G_SOURCE_CONTINUE;
}

static gboolean
parse_aio (const char *name, VhuBlkAio *aio, GError **error)
{
  if (name == NULL || g_str_equal (name, "auto"))
    *aio = VHU_BLK_AIO_AUTO;
  else if (g_str_equal (name, "io_uring"))
    *aio = VHU_BLK_AIO_IO_URING;
  else if (g_str_equal (name, "threads"))
    *aio = VHU_BLK_AIO_THREADS;
  else
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   _("--aio must be auto, io_uring or threads, not “%s”"), name);
      return FALSE;
    }
  return TRUE;
}

/* Queue i on worker i mod N. */
static gboolean
place_queues (VhuBlkDevice *device, VhuWorkers *workers, GError **error)
{
  guint n = vhu_workers_get_size (workers);

  for (guint i = 0; i < (guint) num_queues; i++)
    if (!vhu_blk_device_set_queue_context (device, i, vhu_workers_get_context (workers, i % n),
                                           error))
      return FALSE;
  return TRUE;
}

int
main (int argc, char **argv)
{
  g_autoptr (VhostUserBackendProgram) program = NULL;
  g_autoptr (VhuBlkDevice) device = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSource) sighup = NULL;
  g_autoptr (VhuWorkers) workers = NULL;
  g_auto (GStrv) args = g_strdupv (argv);
  VhuBlkDeviceOptions options = { 0 };
  VhuBlkAio aio;
  int status;

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  g_set_prgname ("vhost-user-blk");

  program = vhost_user_backend_program_new ("block");
  vhost_user_backend_program_set_summary (
    program, _("Serves a raw image file or a block device as a vhost-user virtio-blk device."));
  vhost_user_backend_program_add_main_entries (program, entries);
  vhu_queue_options_init (&queue_options);
  vhost_user_backend_program_add_main_entries (program,
                                               vhu_queue_options_get_entries (&queue_options));
  vhost_user_backend_program_add_capability (program, "blk-file");
  vhost_user_backend_program_add_capability (program, "read-only");

  if (!vhost_user_backend_program_parse (program, &args, &error))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }
  if (vhost_user_backend_program_get_print_capabilities (program))
    return vhost_user_backend_program_run (program, NULL);

  if (blk_file == NULL)
    {
      g_printerr (_("%s: --blk-file is required\n"), g_get_prgname ());
      return 1;
    }
  if (num_queues < 1 || num_queues > 256)
    {
      g_printerr (_("%s: --num-queues must be from 1 to 256\n"), g_get_prgname ());
      return 1;
    }
  if (!parse_aio (aio_name, &aio, &error) || !vhu_queue_options_check (&queue_options, &error))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }

  options.path = blk_file;
  options.read_only = read_only;
  options.num_queues = num_queues;
  options.serial = serial;
  options.aio = aio;
  device = vhu_blk_device_new (&options, &error);
  if (device == NULL)
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }

  /* The threads run before any queue can start, and stop once run() has
   * disconnected the front-end: no queue runs any more then, and nothing
   * waits for a worker. They go before the device does. */
  for (guint i = 0; i < (guint) num_queues; i++)
    vhu_queue_options_apply (&queue_options,
                             vhost_user_device_get_queue (VHOST_USER_DEVICE (device), i));
  if (queue_options.threads > 0)
    {
      workers = vhu_workers_new (queue_options.threads, "vhu-blk");
      if (!place_queues (device, workers, &error))
        {
          g_printerr ("%s: %s\n", g_get_prgname (), error->message);
          return 1;
        }
    }

  vhu_blk_device_set_size_poll_interval (device, SIZE_POLL_INTERVAL_MS);
  sighup = g_unix_signal_source_new (SIGHUP);
  g_source_set_callback (sighup, on_sighup, device, NULL);
  g_source_attach (sighup, vhost_user_device_get_context (VHOST_USER_DEVICE (device)));

  if (verbose)
    {
      g_printerr (_("%s: serving %s%s: %" G_GUINT64_FORMAT " sectors, %d queue(s), I/O by %s\n"),
                  g_get_prgname (), blk_file, read_only ? _(" read-only") : "",
                  vhu_blk_device_get_capacity (device), num_queues,
                  vhu_blk_device_get_io_name (device));
      g_printerr (_("%s: queues in %s mode, on %s\n"), g_get_prgname (),
                  queue_options.mode_name != NULL ? queue_options.mode_name : "event",
                  queue_options.threads > 0 ? _("worker threads") : _("the main thread"));
      g_signal_connect (device, "features-negotiated", G_CALLBACK (on_features_negotiated), NULL);
      g_signal_connect (device, "notify::connected", G_CALLBACK (on_connected), NULL);
      g_signal_connect (device, "queue-started", G_CALLBACK (on_queue_started), NULL);
      g_signal_connect (device, "notify::capacity", G_CALLBACK (on_capacity), NULL);
    }

  status = vhost_user_backend_program_run (program, VHOST_USER_DEVICE (device));
  g_source_destroy (sighup);
  g_clear_pointer (&workers, vhu_workers_free);
  g_clear_object (&device);
  vhu_queue_options_clear (&queue_options);
  if (verbose)
    g_printerr (_("%s: exiting with status %d\n"), g_get_prgname (), status);
  return status;
}
