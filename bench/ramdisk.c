/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * bench/ramdisk: the virtio-blk RAM disk of tools/vhost-user-ramdisk.py in
 * C, request for request the same logic (IN, OUT, FLUSH, GET_ID, the same
 * checks, the same batch of fills and one flush per kick), so that
 * bench/python-ramdisk.py can compare the Python device with it. Not
 * installed: a benchmark peer, not a tool.
 */

#include "config.h"

#include <string.h>

#include <libvhostuser-glib/libvhostuser-glib.h>

#define F_SEG_MAX 2
#define F_FLUSH 9

enum
{
  REQ_IN = 0,
  REQ_OUT = 1,
  REQ_FLUSH = 4,
  REQ_GET_ID = 8,
};

enum
{
  STATUS_OK = 0,
  STATUS_IOERR = 1,
  STATUS_UNSUPP = 2,
};

typedef struct
{
  guint32 type;
  guint32 reserved;
  guint64 sector;
} BlkHeader;

#define BENCH_TYPE_RAMDISK (bench_ramdisk_get_type ())
G_DECLARE_FINAL_TYPE (BenchRamdisk, bench_ramdisk, BENCH, RAMDISK, VhostUserDevice)

struct _BenchRamdisk
{
  VhostUserDevice parent_instance;
  guint8 *disk;
  guint64 size;
  guint8 config[256];
};

G_DEFINE_FINAL_TYPE (BenchRamdisk, bench_ramdisk, VHOST_USER_TYPE_DEVICE)

static guint64
bench_ramdisk_get_features (VhostUserDevice *device)
{
  return VHOST_USER_DEVICE_CLASS (bench_ramdisk_parent_class)->get_features (device)
         | (G_GUINT64_CONSTANT (1) << F_SEG_MAX) | (G_GUINT64_CONSTANT (1) << F_FLUSH);
}

static GBytes *
bench_ramdisk_get_config (VhostUserDevice *device, guint offset, guint size, GError **error)
{
  BenchRamdisk *self = BENCH_RAMDISK (device);

  /* The library keeps offset + size within 256 bytes. */
  return g_bytes_new (self->config + offset, size);
}

/* Copies @length bytes between the disk at @start and the segments from
 * @skip on, in place. */
static void
transfer (guint8 *disk, const struct iovec *iov, guint n, gsize skip, gsize length, gboolean to_guest)
{
  for (guint i = 0; i < n && length > 0; i++)
    {
      gsize chunk;

      if (skip >= iov[i].iov_len)
        {
          skip -= iov[i].iov_len;
          continue;
        }
      chunk = MIN (iov[i].iov_len - skip, length);
      if (to_guest)
        memcpy ((guint8 *) iov[i].iov_base + skip, disk, chunk);
      else
        memcpy (disk, (guint8 *) iov[i].iov_base + skip, chunk);
      disk += chunk;
      length -= chunk;
      skip = 0;
    }
}

static gsize
serve (BenchRamdisk *self, VhostUserVirtqElement *element)
{
  static const guint8 id[20] = "vhost-user-ramdisk";
  gsize out_size = vhost_user_virtq_element_get_out_size (element);
  gsize in_size = vhost_user_virtq_element_get_in_size (element);
  const struct iovec *outs, *ins;
  guint n_out, n_in;
  BlkHeader header;
  guint8 status = STATUS_OK;
  gsize written = 0, length;
  guint64 start;

  if (in_size < 1)
    return 0; /* no room for a status: dropped */
  outs = vhost_user_virtq_element_get_out_iov (element, &n_out);
  ins = vhost_user_virtq_element_get_in_iov (element, &n_in);
  if (vhost_user_virtq_element_read (element, 0, (guint8 *) &header, sizeof header) != sizeof header)
    header.type = G_MAXUINT32;
  header.type = GUINT32_FROM_LE (header.type);
  start = GUINT64_FROM_LE (header.sector);
  length = header.type == REQ_IN ? in_size - 1 : out_size - sizeof header;

  switch (header.type)
    {
    case REQ_IN:
    case REQ_OUT:
      if (length % 512 != 0 || start > self->size / 512 || length > self->size - start * 512)
        status = STATUS_IOERR;
      else if (header.type == REQ_IN)
        {
          transfer (self->disk + start * 512, ins, n_in, 0, length, TRUE);
          written = length;
        }
      else
        transfer (self->disk + start * 512, outs, n_out, sizeof header, length, FALSE);
      break;
    case REQ_GET_ID:
      written = vhost_user_virtq_element_write (element, 0, id, MIN (sizeof id, in_size - 1));
      break;
    case REQ_FLUSH:
      break;
    default:
      status = STATUS_UNSUPP;
      break;
    }
  vhost_user_virtq_element_write (element, in_size - 1, &status, 1);
  return written + 1;
}

static void
bench_ramdisk_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  BenchRamdisk *self = BENCH_RAMDISK (device);
  VhostUserVirtqElement *element;
  guint n = 0;

  while ((element = vhost_user_virtqueue_pop (queue, NULL)) != NULL)
    {
      vhost_user_virtqueue_fill (queue, element, serve (self, element), n++);
      vhost_user_virtq_element_unref (element);
    }
  vhost_user_virtqueue_flush (queue, n);
  vhost_user_virtqueue_notify (queue);
}

static void
bench_ramdisk_finalize (GObject *object)
{
  g_free (BENCH_RAMDISK (object)->disk);
  G_OBJECT_CLASS (bench_ramdisk_parent_class)->finalize (object);
}

static void
bench_ramdisk_init (BenchRamdisk *self)
{
}

static void
bench_ramdisk_class_init (BenchRamdiskClass *klass)
{
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  G_OBJECT_CLASS (klass)->finalize = bench_ramdisk_finalize;
  device_class->get_features = bench_ramdisk_get_features;
  device_class->get_config = bench_ramdisk_get_config;
  device_class->queue_kicked = bench_ramdisk_queue_kicked;
}

int
main (int argc, char **argv)
{
  g_autoptr (VhostUserBackendProgram) program = vhost_user_backend_program_new ("block");
  g_autoptr (BenchRamdisk) device = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) args = g_strdupv (argv);
  gint64 size_mib = 64;
  const GOptionEntry entries[] = {
    { "size-mib", 0, 0, G_OPTION_ARG_INT64, &size_mib, "The disk size in MiB (64)", "N" },
    { NULL },
  };
  guint64 capacity;
  guint32 seg_max = GUINT32_TO_LE (126);

  vhost_user_backend_program_add_main_entries (program, entries);
  if (!vhost_user_backend_program_parse (program, &args, &error))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }
  if (vhost_user_backend_program_get_print_capabilities (program))
    return vhost_user_backend_program_run (program, NULL);
  if (size_mib < 1 || size_mib > 65536)
    {
      g_printerr ("%s: --size-mib must be from 1 to 65536\n", g_get_prgname ());
      return 1;
    }

  device = g_object_new (BENCH_TYPE_RAMDISK, "num-queues", 1, NULL);
  device->size = (guint64) size_mib << 20;
  device->disk = g_malloc0 (device->size);
  capacity = GUINT64_TO_LE (device->size / 512);
  memcpy (device->config, &capacity, sizeof capacity);
  memcpy (device->config + 12, &seg_max, sizeof seg_max);
  return vhost_user_backend_program_run (program, VHOST_USER_DEVICE (device));
}
