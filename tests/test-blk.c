/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * tools/vhost-user-blk's device (tools/vhu-blk-device.c), driven through the
 * test front-end and a test virtio driver as a guest's virtio-blk driver
 * would drive it, on a raw image in a temporary directory, with each I/O
 * engine (io_uring and worker threads): reads and writes checked against a
 * shadow copy of the image (and the image file itself, by checksum), in
 * many layouts (split and merged headers, data in several descriptors,
 * indirect tables, many requests in flight), flush, GET_ID, discard,
 * write-zeroes, read-only images, malformed requests (an error status, never
 * a hang), the config space, resizing (a config-change message on the
 * back-end channel), several queues, a queue stopped and a front-end gone
 * with I/O in flight. Queue modes (event, adaptive, poll) on the device's
 * context and with the queues on worker threads (as vhost-user-blk
 * --threads runs them: each thread with its I/O engine, whose completions
 * must come on the queue's thread), thousands of requests checked against
 * the shadow. And the program itself: options, capabilities, the image
 * lock, SIGTERM while a front-end is connected to queues polled on worker
 * threads.
 */

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "vhu-blk-device.h"
#include "vhu-blk-io-private.h"
#include "vhu-queue-threads.h"
#include "vhu-test-driver.h"
#include "vhu-test-frontend.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)
#define BF(bit) (G_GUINT64_CONSTANT (1) << VHU_BLK_F_##bit)

#define MAX_QUEUES 2u
#define RING_NUM 64u
#define MIB (G_GUINT64_CONSTANT (1024) * 1024)
#define RAM_SIZE (16 * MIB)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f0000000000)
#define RING_OFFSET(q) (0x10000u + (q) * 0x10000u)
#define DATA_GPA(q) (MIB + (q) * 7 * MIB)
#define DATA_SIZE (6 * MIB)

#define IMAGE_SIZE (4 * MIB)
#define SECTOR VHU_BLK_SECTOR_SIZE
#define WAIT_MS 10000

typedef struct
{
  VhuBlkAio aio;
  gboolean read_only;
  const char *serial;
  guint num_queues;
  VhostUserQueueMode mode; /* of every queue */
  guint threads;           /* worker threads for the queues (0: the device's context) */
} Params;

typedef struct
{
  const Params *p;
  char *dir;
  char *path;
  guint64 size;       /* bytes */
  guint8 *shadow;     /* what the image must hold */
  VhuBlkDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  VhuTestDriver *drv[MAX_QUEUES];
  int kick[MAX_QUEUES];
  int call[MAX_QUEUES];
  int err[MAX_QUEUES];
  guint64 features;
  GRand *rand;
  guint fds_before;
  VhuWorkers *workers;
  gint wrong_thread;   /* queue signals on another thread than the queue's */
  gint worker_signals; /* queue signals on a worker thread */
} Fixture;

/* ------------------------------------------------------------------------ */
/* Plumbing                                                                 */

static void
drain_default_context (void)
{
  guint n = 0;

  while (g_main_context_iteration (NULL, FALSE))
    g_assert_cmpuint (++n, <, 1000000);
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

static void
fill_random (GRand *rand, guint8 *buf, gsize len)
{
  for (gsize i = 0; i < len; i++)
    buf[i] = (guint8) g_rand_int (rand);
}

static gboolean
have_io_uring (void)
{
  static gint result = -1;

  if (result < 0)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *path = NULL;
      VhuBlkDeviceOptions options = { 0 };
      VhuBlkDevice *device;
      int fd = g_file_open_tmp ("vhu-blk-probe-XXXXXX", &path, NULL);

      g_assert_cmpint (fd, >=, 0);
      close (fd);
      options.path = path;
      options.aio = VHU_BLK_AIO_IO_URING;
      device = vhu_blk_device_new (&options, &error);
      result = device != NULL;
      if (device == NULL)
        g_test_message ("io_uring: %s", error->message);
      g_clear_object (&device);
      g_unlink (path);
    }
  return result;
}

static gboolean
skip_without_engine (Fixture *f)
{
  if (f->p->aio == VHU_BLK_AIO_IO_URING && !have_io_uring ())
    {
      g_test_skip ("io_uring is not available on this kernel");
      return TRUE;
    }
  return FALSE;
}

static VhuBlkDevice *
make_device (const Params *p, const char *path, GError **error)
{
  VhuBlkDeviceOptions options = { 0 };

  options.path = path;
  options.read_only = p->read_only;
  options.num_queues = p->num_queues;
  options.serial = p->serial;
  options.aio = p->aio;
  return vhu_blk_device_new (&options, error);
}

/* Every queue signal comes on its queue's thread. */
static void
on_queue_signal (VhostUserDevice *device, VhostUserVirtqueue *queue, gpointer user_data)
{
  Fixture *f = user_data;
  GMainContext *context = vhost_user_virtqueue_get_context (queue);

  if (!g_main_context_is_owner (context))
    g_atomic_int_inc (&f->wrong_thread);
  else if (context != vhost_user_device_get_context (device))
    g_atomic_int_inc (&f->worker_signals);
}

/* The case's queue mode, and its worker threads (queue i on thread i mod
 * N, as the program places them). */
static void
place_queues (Fixture *f)
{
  VhostUserDevice *device = VHOST_USER_DEVICE (f->device);
  guint n_queues = MAX (f->p->num_queues, 1);

  for (guint q = 0; q < n_queues; q++)
    vhost_user_virtqueue_set_mode (vhost_user_device_get_queue (device, q), f->p->mode);
  if (f->p->threads > 0)
    {
      f->workers = vhu_workers_new (f->p->threads, "vhu-test-blk");
      for (guint q = 0; q < n_queues; q++)
        {
          g_autoptr (GError) error = NULL;
          GMainContext *context = vhu_workers_get_context (f->workers, q % f->p->threads);

          g_assert_true (vhu_blk_device_set_queue_context (f->device, q, context, &error));
          g_assert_no_error (error);
          g_assert_true (vhu_blk_device_get_queue_context (f->device, q) == context);
          g_assert_true (vhost_user_virtqueue_get_context (vhost_user_device_get_queue (device, q))
                         == context);
        }
    }
  g_signal_connect (device, "queue-started", G_CALLBACK (on_queue_signal), f);
  g_signal_connect (device, "queue-stopped", G_CALLBACK (on_queue_signal), f);
  g_signal_connect (device, "queue-kicked", G_CALLBACK (on_queue_signal), f);
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->p = data;
  for (guint q = 0; q < MAX_QUEUES; q++)
    f->kick[q] = f->call[q] = f->err[q] = -1;
  f->rand = g_rand_new_with_seed (g_test_rand_int ());
  if (skip_without_engine (f))
    return;

  drain_default_context ();
  f->fds_before = vhu_test_count_fds ();

  /* A raw image full of random bytes, and its shadow. */
  f->dir = g_dir_make_tmp ("vhu-test-blk-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = g_build_filename (f->dir, "disk.img", NULL);
  f->size = IMAGE_SIZE;
  f->shadow = g_malloc (f->size);
  fill_random (f->rand, f->shadow, f->size);
  g_file_set_contents (f->path, (const char *) f->shadow, f->size, &error);
  g_assert_no_error (error);

  f->device = make_device (f->p, f->path, &error);
  g_assert_no_error (error);
  g_object_add_weak_pointer (G_OBJECT (f->device), (gpointer *) &f->device);
  place_queues (f);
  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, 0, RAM_UVA);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  if (f->dir == NULL)
    {
      g_rand_free (f->rand);
      return;
    }

  /* The front-end goes first (the rings stop on their threads), then the
   * threads, then the device (which drains the engines): as the program
   * does it. */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  drain_default_context ();
  g_clear_pointer (&f->workers, vhu_workers_free);
  g_assert_cmpint (g_atomic_int_get (&f->wrong_thread), ==, 0);
  if (f->device != NULL)
    {
      g_object_unref (f->device);
      g_assert_null (f->device);
    }
  for (guint q = 0; q < MAX_QUEUES; q++)
    {
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
      close_fd (&f->kick[q]);
      close_fd (&f->call[q]);
      close_fd (&f->err[q]);
    }
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  drain_default_context ();
  g_assert_cmpuint (vhu_test_count_fds (), ==, f->fds_before);

  g_unlink (f->path);
  g_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
  g_free (f->shadow);
  g_rand_free (f->rand);
}

/* ------------------------------------------------------------------------ */
/* The front-end: QEMU's realize, then the rings as the test driver lays   */
/* them out                                                                 */

/* Everything the device offers that a Linux guest would take, but the
 * dirty log. */
static void
negotiate (Fixture *f)
{
  guint64 offered;

  vhu_test_frontend_qemu_blk_realize (f->fe);
  offered = vhu_test_frontend_get_offered_features (f->fe);
  f->features = offered & ~VF (LOG_ALL);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &f->features, sizeof f->features, NULL, 0);
  g_assert_cmpuint (vhu_test_frontend_add_mem_reg (f->fe, f->ram), ==, 0);
}

static void
start_queue (Fixture *f, guint q, guint16 base)
{
  VhuVringAddr addr;

  g_clear_pointer (&f->drv[q], vhu_test_driver_free);
  f->drv[q] = vhu_test_driver_new (f->ram, RING_OFFSET (q), RING_NUM);
  vhu_test_driver_set_data_area (f->drv[q], DATA_GPA (q), DATA_SIZE);
  vhu_test_driver_set_event_idx (f->drv[q], (f->features & VF (RING_EVENT_IDX)) != 0);
  vhu_test_driver_set_base (f->drv[q], base);

  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, q, RING_NUM);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_BASE, q, base);
  addr = vhu_test_driver_get_vring_addr (f->drv[q], q, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  close_fd (&f->call[q]);
  f->call[q] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, q, f->call[q]);
  close_fd (&f->err[q]);
  f->err[q] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ERR, q, f->err[q]);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, q, 1);
  close_fd (&f->kick[q]);
  f->kick[q] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, q, f->kick[q]);
  vhu_test_frontend_flush (f->fe);
  if (f->device != NULL) /* NULL: the program's, in another process */
    g_assert_true (vhost_user_virtqueue_get_started (
      vhost_user_device_get_queue (VHOST_USER_DEVICE (f->device), q)));
}

static void
set_up_device (Fixture *f)
{
  negotiate (f);
  for (guint q = 0; q < MAX (f->p->num_queues, 1); q++)
    start_queue (f, q, 0);
}

static void
kick (Fixture *f, guint q)
{
  g_assert_cmpint (eventfd_write (f->kick[q], 1), ==, 0);
}

/* Iterates until the device has returned @n entries the driver has not
 * taken yet. */
static void
wait_used (Fixture *f, guint q, guint n)
{
  VhuTestDriver *drv = f->drv[q];
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;

  while ((guint16) (vhu_test_driver_get_used_idx (drv) - vhu_test_driver_get_last_used (drv)) < n)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (50);
      if (g_get_monotonic_time () > deadline)
        g_error ("queue %u: %u used entries did not come", q, n);
    }
}

/* Iterates until the device has handed requests to an engine, or (on a
 * worker thread, which may be done before this looks) has returned all
 * @n requests queue 0 has. */
static void
wait_in_flight (Fixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  VhuTestDriver *drv = f->drv[0];

  while (vhu_blk_device_get_in_flight (f->device) == 0
         && (guint16) (vhu_test_driver_get_used_idx (drv) - vhu_test_driver_get_last_used (drv))
              < n)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (50);
      if (g_get_monotonic_time () > deadline)
        g_error ("no request went to the I/O engine");
    }
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

typedef enum
{
  LAYOUT_SPLIT,   /* header, data in @n_data buffers, status: each its own */
  LAYOUT_MERGED,  /* the header with the written data, the read data with the status */
  LAYOUT_HEADER_IN_TWO, /* the header split over two descriptors */
} Layout;

typedef struct
{
  guint32 type;
  guint64 sector;
  const guint8 *out;   /* data the device reads (after the header) */
  gsize out_len;
  gsize in_len;        /* data the device writes (before the status) */
  guint n_data;        /* buffers the data is split into (1 if 0) */
  Layout layout;
  gboolean indirect;
  gboolean no_status;  /* no device-writable byte at all */
} Req;

static void
put_header (guint8 *hdr, guint32 type, guint64 sector)
{
  guint32 type_le = GUINT32_TO_LE (type);
  guint32 ioprio = 0;
  guint64 sector_le = GUINT64_TO_LE (sector);

  memcpy (hdr, &type_le, 4);
  memcpy (hdr + 4, &ioprio, 4);
  memcpy (hdr + 8, &sector_le, 8);
}

/* Adds the request's chain to queue @q's ring (not published). Returns the head. */
static guint
add_req (Fixture *f, guint q, const Req *r)
{
  VhuTestBuffer bufs[40];
  guint n = 0, n_data = MAX (r->n_data, 1);
  g_autofree guint8 *merged = NULL;
  guint8 hdr[VHU_BLK_OUTHDR_SIZE];
  gint head;

  put_header (hdr, r->type, r->sector);
  g_assert_cmpuint (n_data, <=, 16);

  if (r->layout == LAYOUT_MERGED)
    {
      merged = g_malloc (sizeof hdr + r->out_len);
      memcpy (merged, hdr, sizeof hdr);
      if (r->out_len > 0)
        memcpy (merged + sizeof hdr, r->out, r->out_len);
      bufs[n++] = VHU_TEST_OUT (merged, sizeof hdr + r->out_len);
      if (r->in_len > 0 || !r->no_status)
        bufs[n++] = VHU_TEST_IN (r->in_len + (r->no_status ? 0 : 1));
    }
  else
    {
      if (r->layout == LAYOUT_HEADER_IN_TWO)
        {
          bufs[n++] = VHU_TEST_OUT (hdr, 5);
          bufs[n++] = VHU_TEST_OUT (hdr + 5, sizeof hdr - 5);
        }
      else
        bufs[n++] = VHU_TEST_OUT (hdr, sizeof hdr);
      for (guint i = 0; i < n_data && r->out_len > 0; i++)
        {
          gsize from = r->out_len * i / n_data, to = r->out_len * (i + 1) / n_data;

          if (to > from)
            bufs[n++] = VHU_TEST_OUT (r->out + from, to - from);
        }
      for (guint i = 0; i < n_data && r->in_len > 0; i++)
        {
          gsize from = r->in_len * i / n_data, to = r->in_len * (i + 1) / n_data;

          if (to > from)
            bufs[n++] = VHU_TEST_IN (to - from);
        }
      if (!r->no_status)
        bufs[n++] = VHU_TEST_IN (1);
    }

  head = vhu_test_driver_add (f->drv[q], bufs, n, r->indirect);
  g_assert_cmpint (head, >=, 0);
  return head;
}

/* Takes the next used entry; returns the status byte and copies the data
 * the device wrote into @in (r->in_len bytes). */
static guint8
take_used (Fixture *f, guint q, const Req *r, guint expected_head, guint8 *in)
{
  gsize total = r->in_len + (r->no_status ? 0 : 1);
  g_autofree guint8 *buf = g_malloc (total + 1);
  guint head;
  guint32 len;

  g_assert_true (vhu_test_driver_get_used (f->drv[q], &head, &len));
  g_assert_cmpuint (head, ==, expected_head);
  if (r->no_status)
    {
      g_assert_cmpuint (len, ==, 0);
      return 0xff;
    }
  g_assert_cmpuint (len, ==, total);
  g_assert_cmpuint (vhu_test_driver_read_in (f->drv[q], head, buf, total), ==, total);
  if (in != NULL && r->in_len > 0)
    memcpy (in, buf, r->in_len);
  return buf[r->in_len];
}

/* One request, waited for: returns its status. */
static guint8
do_req (Fixture *f, guint q, const Req *r, guint8 *in)
{
  guint head = add_req (f, q, r);

  vhu_test_driver_publish (f->drv[q]);
  kick (f, q);
  wait_used (f, q, 1);
  return take_used (f, q, r, head, in);
}

static guint8
do_simple (Fixture *f, guint32 type, guint64 sector, const guint8 *out, gsize out_len, gsize in_len,
           guint8 *in)
{
  Req r = { .type = type, .sector = sector, .out = out, .out_len = out_len, .in_len = in_len };

  return do_req (f, 0, &r, in);
}

static guint8
write_sectors (Fixture *f, guint64 sector, const guint8 *data, gsize len)
{
  return do_simple (f, VHU_BLK_T_OUT, sector, data, len, 0, NULL);
}

static guint8
read_sectors (Fixture *f, guint64 sector, guint8 *data, gsize len)
{
  return do_simple (f, VHU_BLK_T_IN, sector, NULL, 0, len, data);
}

/* The image file holds exactly the shadow. */
static void
check_image (Fixture *f)
{
  g_autofree char *contents = NULL;
  g_autofree char *want = NULL;
  g_autofree char *got = NULL;
  gsize len;
  g_autoptr (GError) error = NULL;

  g_file_get_contents (f->path, &contents, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, ==, f->size);
  want = g_compute_checksum_for_data (G_CHECKSUM_SHA256, f->shadow, f->size);
  got = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guint8 *) contents, len);
  if (g_strcmp0 (want, got) != 0)
    {
      gsize k = 0;

      while ((guint8) contents[k] == f->shadow[k])
        k++;
      g_error ("image differs from its shadow at byte %" G_GSIZE_FORMAT " (sector %" G_GSIZE_FORMAT
               "): sha256 %s, want %s",
               k, k / SECTOR, got, want);
    }
}

static void
assert_healthy (Fixture *f)
{
  for (guint q = 0; q < MAX (f->p->num_queues, 1); q++)
    {
      VhostUserVirtqueue *vq = vhost_user_device_get_queue (VHOST_USER_DEVICE (f->device), q);
      eventfd_t value = 0;

      g_assert_false (vhost_user_virtqueue_get_broken (vq));
      g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 0);
      g_assert_cmpint (eventfd_read (f->err[q], &value), <, 0);
    }
  g_assert_cmpuint (vhu_blk_device_get_in_flight (f->device), ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Config space and features                                                */

static guint32
le32_at (const guint8 *config, guint offset)
{
  guint32 v;

  memcpy (&v, config + offset, 4);
  return GUINT32_FROM_LE (v);
}

static guint16
le16_at (const guint8 *config, guint offset)
{
  guint16 v;

  memcpy (&v, config + offset, 2);
  return GUINT16_FROM_LE (v);
}

static guint64
le64_at (const guint8 *config, guint offset)
{
  guint64 v;

  memcpy (&v, config + offset, 8);
  return GUINT64_FROM_LE (v);
}

static void
test_config (Fixture *f, gconstpointer data)
{
  guint8 config[VHU_BLK_CONFIG_SIZE];
  guint8 byte;
  guint64 offered;

  if (f->dir == NULL)
    return;
  negotiate (f);

  offered = vhu_test_frontend_get_offered_features (f->fe);
  g_assert_cmphex (offered & (VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VF (RING_INDIRECT_DESC)
                              | VF (RING_EVENT_IDX)),
                   ==,
                   VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VF (RING_INDIRECT_DESC)
                     | VF (RING_EVENT_IDX));
  g_assert_cmphex (offered & (BF (SIZE_MAX) | BF (SEG_MAX) | BF (BLK_SIZE) | BF (FLUSH)
                              | BF (TOPOLOGY) | BF (CONFIG_WCE) | BF (MQ)),
                   ==,
                   BF (SIZE_MAX) | BF (SEG_MAX) | BF (BLK_SIZE) | BF (FLUSH) | BF (TOPOLOGY)
                     | BF (CONFIG_WCE) | BF (MQ));
  if (f->p->read_only)
    {
      g_assert_cmphex (offered & BF (RO), ==, BF (RO));
      g_assert_cmphex (offered & (BF (DISCARD) | BF (WRITE_ZEROES)), ==, 0);
    }
  else
    {
      g_assert_cmphex (offered & BF (RO), ==, 0);
      g_assert_cmphex (offered & (BF (DISCARD) | BF (WRITE_ZEROES)), ==,
                       BF (DISCARD) | BF (WRITE_ZEROES));
    }
  g_assert_cmphex (vhu_test_frontend_get_offered_protocol_features (f->fe) & PF (CONFIG), ==,
                   PF (CONFIG));
  g_assert_cmpuint (vhu_test_frontend_get_queue_num (f->fe), ==, MAX (f->p->num_queues, 1));

  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, sizeof config, config), ==,
                    VHU_CONFIG_HEADER_SIZE + sizeof config);
  g_assert_cmpuint (le64_at (config, VHU_BLK_CONFIG_CAPACITY), ==, IMAGE_SIZE / SECTOR);
  g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_SIZE_MAX), ==, VHU_BLK_SIZE_MAX);
  g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_SEG_MAX), ==, VHU_BLK_SEG_MAX);
  g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_BLK_SIZE), ==, 512);
  g_assert_cmpuint (config[VHU_BLK_CONFIG_GEOMETRY + 2], ==, 16);
  g_assert_cmpuint (config[VHU_BLK_CONFIG_GEOMETRY + 3], ==, 63);
  g_assert_cmpuint (le16_at (config, VHU_BLK_CONFIG_GEOMETRY), ==, IMAGE_SIZE / SECTOR / (16 * 63));
  g_assert_cmpuint (config[VHU_BLK_CONFIG_PHYSICAL_BLOCK_EXP], <=, 7);
  g_assert_cmpuint (le16_at (config, VHU_BLK_CONFIG_MIN_IO_SIZE), >=, 1);
  g_assert_cmpuint (config[VHU_BLK_CONFIG_WRITEBACK], ==, 1);
  g_assert_cmpuint (le16_at (config, VHU_BLK_CONFIG_NUM_QUEUES), ==, MAX (f->p->num_queues, 1));
  if (f->p->read_only)
    g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_MAX_DISCARD_SECTORS), ==, 0);
  else
    {
      g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_MAX_DISCARD_SECTORS), ==,
                        VHU_BLK_MAX_DISCARD_SECTORS);
      g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_MAX_DISCARD_SEG), ==,
                        VHU_BLK_MAX_DISCARD_SEG);
      g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_DISCARD_SECTOR_ALIGNMENT), >=, 1);
      g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_MAX_WRITE_ZEROES_SECTORS), ==,
                        VHU_BLK_MAX_WRITE_ZEROES_SECTORS);
      g_assert_cmpuint (le32_at (config, VHU_BLK_CONFIG_MAX_WRITE_ZEROES_SEG), ==,
                        VHU_BLK_MAX_WRITE_ZEROES_SEG);
      g_assert_cmpuint (config[VHU_BLK_CONFIG_WRITE_ZEROES_MAY_UNMAP], ==, 1);
    }

  /* A part of the space, as a front-end may read it. */
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_BLK_CONFIG_NUM_QUEUES, 2, config), ==,
                    VHU_CONFIG_HEADER_SIZE + 2);
  g_assert_cmpuint (le16_at (config, 0), ==, MAX (f->p->num_queues, 1));
  /* Past the end: refused, the connection stays. */
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 56, 8, config), ==, 0);

  /* The writeback byte is the only writable one (as QEMU writes it). */
  byte = 0;
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_BLK_CONFIG_WRITEBACK, &byte, 1, 0), ==,
                    0);
  g_assert_false (vhu_blk_device_get_writeback (f->device));
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_BLK_CONFIG_WRITEBACK, 1, &byte), ==,
                    VHU_CONFIG_HEADER_SIZE + 1);
  g_assert_cmpuint (byte, ==, 0);
  byte = 1;
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_BLK_CONFIG_WRITEBACK, &byte, 1, 0), ==,
                    0);
  g_assert_true (vhu_blk_device_get_writeback (f->device));
  byte = 0x55;
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_BLK_CONFIG_CAPACITY, &byte, 1, 0), !=,
                    0);
  g_assert_cmpuint (vhu_blk_device_get_capacity (f->device), ==, IMAGE_SIZE / SECTOR);

  /* A driver without FLUSH has a write-through device (virtio 5.2.5.1). */
  f->features &= ~BF (FLUSH);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &f->features, sizeof f->features, NULL, 0);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_BLK_CONFIG_WRITEBACK, 1, &byte), ==,
                    VHU_CONFIG_HEADER_SIZE + 1);
  g_assert_cmpuint (byte, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Reads and writes                                                         */

static void
test_read_write (Fixture *f, gconstpointer data)
{
  const guint rounds = 60;
  guint64 capacity = IMAGE_SIZE / SECTOR;
  g_autofree guint8 *buf = g_malloc (128 * SECTOR);

  if (f->dir == NULL)
    return;
  set_up_device (f);

  /* What was there: the first and last sectors. */
  g_assert_cmpuint (read_sectors (f, 0, buf, 8 * SECTOR), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (buf, 8 * SECTOR, f->shadow, 8 * SECTOR);
  g_assert_cmpuint (read_sectors (f, capacity - 1, buf, SECTOR), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (buf, SECTOR, f->shadow + f->size - SECTOR, SECTOR);

  /* Batches of random requests in flight together: writes first (to
   * ranges that do not overlap within the batch), then reads of the same
   * ranges in other layouts. */
  for (guint round = 0; round < rounds; round++)
    {
      /* At most 7 descriptors a chain: 9 chains fit the ring of 64. */
      guint n = g_rand_int_range (f->rand, 1, 10);
      Req reqs[16];
      guint heads[16];
      guint8 *datas[16];
      guint64 next = g_rand_int_range (f->rand, 0, capacity / 2);

      for (guint pass = 0; pass < 2; pass++)
        {
          for (guint i = 0; i < n; i++)
            {
              Req *r = &reqs[i];

              if (pass == 0)
                {
                  guint sectors = g_rand_int_range (f->rand, 1, 129);

                  if (next + sectors > capacity)
                    next = 0;
                  memset (r, 0, sizeof *r);
                  r->type = VHU_BLK_T_OUT;
                  r->sector = next;
                  r->out_len = sectors * SECTOR;
                  datas[i] = g_malloc (r->out_len);
                  fill_random (f->rand, datas[i], r->out_len);
                  r->out = datas[i];
                  next += sectors + g_rand_int_range (f->rand, 0, 8);
                }
              else
                {
                  r->type = VHU_BLK_T_IN;
                  r->in_len = r->out_len;
                  r->out_len = 0;
                  r->out = NULL;
                }
              r->n_data = g_rand_int_range (f->rand, 1, 5);
              r->layout = g_rand_int_range (f->rand, 0, 3);
              r->indirect = g_rand_boolean (f->rand);
              heads[i] = add_req (f, 0, r);
            }
          vhu_test_driver_publish (f->drv[0]);
          kick (f, 0);
          wait_used (f, 0, n);

          /* Entries may come back in any order. */
          for (guint k = 0; k < n; k++)
            {
              guint head, i;
              guint32 len;
              g_autofree guint8 *in = NULL;

              g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
              for (i = 0; i < n && heads[i] != head; i++)
                ;
              g_assert_cmpuint (i, <, n);
              heads[i] = G_MAXUINT;
              if (pass == 0)
                {
                  guint8 status;

                  g_assert_cmpuint (len, ==, 1);
                  vhu_test_driver_read_in (f->drv[0], head, &status, 1);
                  g_assert_cmpuint (status, ==, VHU_BLK_S_OK);
                  memcpy (f->shadow + reqs[i].sector * SECTOR, datas[i], reqs[i].out_len);
                }
              else
                {
                  in = g_malloc (reqs[i].in_len + 1);
                  g_assert_cmpuint (len, ==, reqs[i].in_len + 1);
                  vhu_test_driver_read_in (f->drv[0], head, in, reqs[i].in_len + 1);
                  g_assert_cmpuint (in[reqs[i].in_len], ==, VHU_BLK_S_OK);
                  g_assert_cmpmem (in, reqs[i].in_len, f->shadow + reqs[i].sector * SECTOR,
                                   reqs[i].in_len);
                }
            }
        }
      for (guint i = 0; i < n; i++)
        g_free (datas[i]);
    }

  /* Zero-length transfers inside the image succeed and do nothing. */
  g_assert_cmpuint (read_sectors (f, 5, buf, 0), ==, VHU_BLK_S_OK);
  g_assert_cmpuint (write_sectors (f, 5, buf, 0), ==, VHU_BLK_S_OK);

  check_image (f);
  assert_healthy (f);
}

/* The write cache off: writes go through (RWF_DSYNC), and still land. */
static void
test_write_through (Fixture *f, gconstpointer data)
{
  guint8 byte = 0;
  guint8 out[4 * SECTOR], in[4 * SECTOR];

  if (f->dir == NULL)
    return;
  set_up_device (f);
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_BLK_CONFIG_WRITEBACK, &byte, 1, 0), ==,
                    0);
  g_assert_false (vhu_blk_device_get_writeback (f->device));

  fill_random (f->rand, out, sizeof out);
  g_assert_cmpuint (write_sectors (f, 100, out, sizeof out), ==, VHU_BLK_S_OK);
  memcpy (f->shadow + 100 * SECTOR, out, sizeof out);
  g_assert_cmpuint (read_sectors (f, 100, in, sizeof in), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (in, sizeof in, out, sizeof out);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, 0, NULL, 0, 0, NULL), ==, VHU_BLK_S_OK);
  check_image (f);
  assert_healthy (f);
}

static void
test_flush (Fixture *f, gconstpointer data)
{
  guint8 out[SECTOR];

  if (f->dir == NULL)
    return;
  set_up_device (f);

  g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, 0, NULL, 0, 0, NULL), ==, VHU_BLK_S_OK);
  fill_random (f->rand, out, sizeof out);
  if (!f->p->read_only)
    {
      g_assert_cmpuint (write_sectors (f, 7, out, sizeof out), ==, VHU_BLK_S_OK);
      memcpy (f->shadow + 7 * SECTOR, out, sizeof out);
    }
  /* The sector field of a flush means nothing. */
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, G_MAXUINT64, NULL, 0, 0, NULL), ==,
                    VHU_BLK_S_OK);
  check_image (f);
  assert_healthy (f);
}

static void
test_get_id (Fixture *f, gconstpointer data)
{
  guint8 id[VHU_BLK_ID_BYTES + 8];
  guint8 want[VHU_BLK_ID_BYTES] = { 0 };

  if (f->dir == NULL)
    return;
  set_up_device (f);

  memset (id, 0xaa, sizeof id);
  if (f->p->serial == NULL)
    {
      g_assert_cmpuint (do_simple (f, VHU_BLK_T_GET_ID, 0, NULL, 0, VHU_BLK_ID_BYTES, id), ==,
                        VHU_BLK_S_UNSUPP);
      assert_healthy (f);
      return;
    }

  memcpy (want, f->p->serial, strlen (f->p->serial));
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_GET_ID, 0, NULL, 0, VHU_BLK_ID_BYTES, id), ==,
                    VHU_BLK_S_OK);
  g_assert_cmpmem (id, VHU_BLK_ID_BYTES, want, VHU_BLK_ID_BYTES);

  /* A shorter buffer gets what fits; a longer one the 20 bytes and the
   * rest untouched. */
  memset (id, 0xaa, sizeof id);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_GET_ID, 0, NULL, 0, 4, id), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (id, 4, want, 4);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_GET_ID, 0, NULL, 0, sizeof id, id), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (id, VHU_BLK_ID_BYTES, want, VHU_BLK_ID_BYTES);
  for (guint i = VHU_BLK_ID_BYTES; i < sizeof id; i++)
    g_assert_cmpuint (id[i], ==, VHU_TEST_DRIVER_CANARY);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Discard and write-zeroes                                                 */

typedef struct
{
  guint64 sector;
  guint32 num;
  guint32 flags;
} Seg;

static guint8
do_ranges (Fixture *f, guint32 type, const Seg *segs, guint n)
{
  g_autofree guint8 *table = g_malloc0 (n * VHU_BLK_SEGMENT_SIZE + 1);

  for (guint i = 0; i < n; i++)
    {
      guint64 sector = GUINT64_TO_LE (segs[i].sector);
      guint32 num = GUINT32_TO_LE (segs[i].num);
      guint32 flags = GUINT32_TO_LE (segs[i].flags);

      memcpy (table + i * 16, &sector, 8);
      memcpy (table + i * 16 + 8, &num, 4);
      memcpy (table + i * 16 + 12, &flags, 4);
    }
  return do_simple (f, type, 0, table, n * VHU_BLK_SEGMENT_SIZE, 0, NULL);
}

/* Whether the image's file system gives space back (most do; a few have
 * no hole punching, and then a discard is a no-op). */
static gboolean
can_punch_holes (Fixture *f)
{
  g_autofree char *probe = g_build_filename (f->dir, "probe", NULL);
  int fd = open (probe, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  gboolean ok;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, 65536), ==, 0);
  ok = fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
  close (fd);
  g_unlink (probe);
  return ok;
}

/* Reads sectors [@sector, @sector + @num) back, 64 at a time: zeroes. */
static void
assert_zeroes (Fixture *f, guint64 sector, guint32 num)
{
  guint8 in[64 * SECTOR], zeroes[64 * SECTOR] = { 0 };

  while (num > 0)
    {
      guint32 n = MIN (num, 64);

      g_assert_cmpuint (read_sectors (f, sector, in, n * SECTOR), ==, VHU_BLK_S_OK);
      g_assert_cmpmem (in, n * SECTOR, zeroes, n * SECTOR);
      sector += n;
      num -= n;
    }
}

static void
test_discard (Fixture *f, gconstpointer data)
{
  guint64 capacity = IMAGE_SIZE / SECTOR;
  Seg segs[VHU_BLK_MAX_DISCARD_SEG + 1];
  struct stat before, after;

  if (f->dir == NULL)
    return;
  set_up_device (f);

  /* 256 KiB at 1 MiB, and 64 KiB at 3 MiB: file system blocks go. */
  g_assert_cmpint (stat (f->path, &before), ==, 0);
  segs[0] = (Seg) { .sector = 2048, .num = 512 };
  segs[1] = (Seg) { .sector = 6144, .num = 128 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, 2), ==, VHU_BLK_S_OK);
  if (can_punch_holes (f))
    {
      g_assert_cmpint (stat (f->path, &after), ==, 0);
      g_assert_cmpint (after.st_blocks, <, before.st_blocks);
      g_assert_cmpint (after.st_size, ==, before.st_size);
      assert_zeroes (f, 2048, 512);
      assert_zeroes (f, 6144, 128);
      memset (f->shadow + 2048 * SECTOR, 0, 512 * SECTOR);
      memset (f->shadow + 6144 * SECTOR, 0, 128 * SECTOR);
    }
  else
    g_test_message ("no hole punching here: discard only checked for its status");

  /* Bad ones change nothing: unmap is for write-zeroes only, unknown flags,
   * a range past the end or too long, too many segments, a torn table. */
  segs[0] = (Seg) { .sector = 0, .num = 8, .flags = VHU_BLK_WRITE_ZEROES_F_UNMAP };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, 1), ==, VHU_BLK_S_UNSUPP);
  segs[0] = (Seg) { .sector = 0, .num = 8, .flags = 2 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, 1), ==, VHU_BLK_S_UNSUPP);
  segs[0] = (Seg) { .sector = 0, .num = 8 };
  segs[1] = (Seg) { .sector = capacity - 4, .num = 8 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, 2), ==, VHU_BLK_S_IOERR);
  segs[0] = (Seg) { .sector = G_MAXUINT64 - 2, .num = 8 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, 1), ==, VHU_BLK_S_IOERR);
  segs[0] = (Seg) { .sector = 0, .num = VHU_BLK_MAX_DISCARD_SECTORS + 1 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, 1), ==, VHU_BLK_S_IOERR);
  for (guint i = 0; i < G_N_ELEMENTS (segs); i++)
    segs[i] = (Seg) { .sector = i * 8, .num = 8 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, G_N_ELEMENTS (segs)), ==,
                    VHU_BLK_S_UNSUPP);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_DISCARD, 0, (const guint8 *) "0123456789", 10, 0, NULL),
                    ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_DISCARD, 0, NULL, 0, 0, NULL), ==, VHU_BLK_S_IOERR);

  /* The most segments at once. */
  for (guint i = 0; i < VHU_BLK_MAX_DISCARD_SEG; i++)
    segs[i] = (Seg) { .sector = 4096 + i * 16, .num = 8 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, segs, VHU_BLK_MAX_DISCARD_SEG), ==,
                    VHU_BLK_S_OK);
  if (can_punch_holes (f))
    for (guint i = 0; i < VHU_BLK_MAX_DISCARD_SEG; i++)
      {
        /* 4 KiB file system blocks wholly inside a range are gone; the
         * rest is either zeroed or kept: read what the device says. */
        g_autofree guint8 *in = g_malloc (8 * SECTOR);

        g_assert_cmpuint (read_sectors (f, 4096 + i * 16, in, 8 * SECTOR), ==, VHU_BLK_S_OK);
        memcpy (f->shadow + (4096 + i * 16) * SECTOR, in, 8 * SECTOR);
      }

  check_image (f);
  assert_healthy (f);
}

static void
test_write_zeroes (Fixture *f, gconstpointer data)
{
  guint64 capacity = IMAGE_SIZE / SECTOR;
  Seg segs[3];

  if (f->dir == NULL)
    return;
  set_up_device (f);

  /* Without unmap, with unmap, unaligned to file system blocks, and the
   * last sectors. */
  segs[0] = (Seg) { .sector = 100, .num = 300 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_WRITE_ZEROES, segs, 1), ==, VHU_BLK_S_OK);
  assert_zeroes (f, 100, 300);
  memset (f->shadow + 100 * SECTOR, 0, 300 * SECTOR);

  segs[0] = (Seg) { .sector = 1001, .num = 7, .flags = VHU_BLK_WRITE_ZEROES_F_UNMAP };
  segs[1] = (Seg) { .sector = 2048, .num = 1024, .flags = VHU_BLK_WRITE_ZEROES_F_UNMAP };
  segs[2] = (Seg) { .sector = capacity - 3, .num = 3 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_WRITE_ZEROES, segs, 3), ==, VHU_BLK_S_OK);
  for (guint i = 0; i < 3; i++)
    {
      assert_zeroes (f, segs[i].sector, segs[i].num);
      memset (f->shadow + segs[i].sector * SECTOR, 0, segs[i].num * SECTOR);
    }
  check_image (f);

  /* Bad ones: unknown flags, past the end (nothing is zeroed, not even the
   * good segment before). */
  segs[0] = (Seg) { .sector = 0, .num = 8, .flags = 4 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_WRITE_ZEROES, segs, 1), ==, VHU_BLK_S_UNSUPP);
  segs[0] = (Seg) { .sector = 0, .num = 8 };
  segs[1] = (Seg) { .sector = capacity, .num = 1 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_WRITE_ZEROES, segs, 2), ==, VHU_BLK_S_IOERR);
  segs[0] = (Seg) { .sector = 0, .num = VHU_BLK_MAX_WRITE_ZEROES_SECTORS + 1 };
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_WRITE_ZEROES, segs, 1), ==, VHU_BLK_S_IOERR);

  check_image (f);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Read-only images                                                         */

static void
test_read_only (Fixture *f, gconstpointer data)
{
  guint8 out[2 * SECTOR], in[2 * SECTOR];
  Seg seg = { .sector = 0, .num = 8 };

  if (f->dir == NULL)
    return;
  set_up_device (f);
  g_assert_cmphex (f->features & BF (RO), ==, BF (RO));

  fill_random (f->rand, out, sizeof out);
  g_assert_cmpuint (write_sectors (f, 10, out, sizeof out), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_DISCARD, &seg, 1), ==, VHU_BLK_S_IOERR);
  seg.flags = VHU_BLK_WRITE_ZEROES_F_UNMAP;
  g_assert_cmpuint (do_ranges (f, VHU_BLK_T_WRITE_ZEROES, &seg, 1), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, 0, NULL, 0, 0, NULL), ==, VHU_BLK_S_OK);
  g_assert_cmpuint (read_sectors (f, 10, in, sizeof in), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (in, sizeof in, f->shadow + 10 * SECTOR, sizeof in);

  check_image (f);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Malformed requests                                                       */

static void
test_malformed (Fixture *f, gconstpointer data)
{
  guint64 capacity = IMAGE_SIZE / SECTOR;
  guint8 out[2 * SECTOR], in[2 * SECTOR];
  Req r;
  guint head;

  if (f->dir == NULL)
    return;
  set_up_device (f);
  fill_random (f->rand, out, sizeof out);

  /* A header shorter than 16 bytes. */
  {
    guint8 hdr[8] = { 0 };
    VhuTestBuffer bufs[] = { VHU_TEST_OUT (hdr, sizeof hdr), VHU_TEST_IN (1) };
    guint8 status;
    guint32 len;

    head = vhu_test_driver_add (f->drv[0], bufs, 2, FALSE);
    vhu_test_driver_publish (f->drv[0]);
    kick (f, 0);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
    vhu_test_driver_read_in (f->drv[0], head, &status, 1);
    g_assert_cmpuint (status, ==, VHU_BLK_S_IOERR);
  }
  /* No out buffer at all: just a writable byte. */
  {
    VhuTestBuffer bufs[] = { VHU_TEST_IN (1) };
    guint8 status;
    guint32 len;

    head = vhu_test_driver_add (f->drv[0], bufs, 1, FALSE);
    vhu_test_driver_publish (f->drv[0]);
    kick (f, 0);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
    vhu_test_driver_read_in (f->drv[0], head, &status, 1);
    g_assert_cmpuint (status, ==, VHU_BLK_S_IOERR);
  }

  /* No status byte: the element comes back with nothing written, and the
   * image is left alone. */
  r = (Req) {
    .type = VHU_BLK_T_OUT, .sector = 0, .out = out, .out_len = SECTOR, .no_status = TRUE
  };
  do_req (f, 0, &r, NULL);
  r = (Req) { .type = VHU_BLK_T_IN, .sector = 0, .no_status = TRUE };
  do_req (f, 0, &r, NULL);

  /* Data buffers in the wrong direction. */
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_IN, 0, out, SECTOR, SECTOR, in), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_OUT, 0, out, SECTOR, SECTOR, in), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_IN, 0, out, SECTOR, 0, NULL), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_OUT, 0, NULL, 0, SECTOR, in), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, 0, out, SECTOR, 0, NULL), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, 0, NULL, 0, SECTOR, in), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (do_simple (f, VHU_BLK_T_GET_ID, 0, out, 20, 20, in), ==, VHU_BLK_S_IOERR);

  /* Ranges outside the image, or overflowing. */
  g_assert_cmpuint (read_sectors (f, capacity, in, SECTOR), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (read_sectors (f, capacity - 1, in, 2 * SECTOR), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (write_sectors (f, capacity - 1, out, 2 * SECTOR), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (write_sectors (f, G_MAXUINT64, out, SECTOR), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (read_sectors (f, G_MAXUINT64 / SECTOR + 1, in, SECTOR), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (read_sectors (f, capacity + 1, in, 0), ==, VHU_BLK_S_IOERR);
  /* Not whole sectors. */
  g_assert_cmpuint (read_sectors (f, 0, in, 100), ==, VHU_BLK_S_IOERR);
  g_assert_cmpuint (write_sectors (f, 0, out, SECTOR + 1), ==, VHU_BLK_S_IOERR);

  /* Types the device does not know (GET_LIFETIME, SECURE_ERASE, zones,
   * legacy SCSI, made up): unsupported. */
  {
    static const guint32 types[] = { 2, 10, 14, 16, 18, 99, 0x80000001u, G_MAXUINT32 };

    for (guint i = 0; i < G_N_ELEMENTS (types); i++)
      g_assert_cmpuint (do_simple (f, types[i], 0, NULL, 0, 0, NULL), ==, VHU_BLK_S_UNSUPP);
  }

  /* After all that: a good write and read, the image as it was. */
  g_assert_cmpuint (write_sectors (f, 3, out, sizeof out), ==, VHU_BLK_S_OK);
  memcpy (f->shadow + 3 * SECTOR, out, sizeof out);
  g_assert_cmpuint (read_sectors (f, 3, in, sizeof in), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (in, sizeof in, out, sizeof out);
  check_image (f);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Resizing                                                                 */

static void
expect_config_change (Fixture *f)
{
  VhuMessage msg;

  g_assert_true (vhu_test_frontend_recv_backend (f->fe, &msg, WAIT_MS));
  g_assert_cmpuint (msg.hdr.request, ==, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG);
  if (msg.hdr.flags & VHU_FLAG_NEED_REPLY)
    vhu_test_frontend_reply_backend (f->fe, &msg, 0);
  vhu_message_clear (&msg);
  vhu_test_frontend_flush (f->fe);
}

static guint64
config_capacity (Fixture *f)
{
  guint8 cap[8];

  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_BLK_CONFIG_CAPACITY, 8, cap), ==,
                    VHU_CONFIG_HEADER_SIZE + 8);
  return le64_at (cap, 0);
}

static void
test_resize (Fixture *f, gconstpointer data)
{
  guint64 old_capacity = IMAGE_SIZE / SECTOR;
  guint64 new_size = IMAGE_SIZE * 2 + 700; /* a partial sector at the end is not served */
  guint8 out[SECTOR], in[SECTOR], zeroes[SECTOR] = { 0 };
  VhuMessage msg;

  if (f->dir == NULL)
    return;
  set_up_device (f);
  fill_random (f->rand, out, sizeof out);

  /* Nothing changed: nothing said. */
  g_assert_false (vhu_blk_device_check_size (f->device));
  g_assert_false (vhu_test_frontend_recv_backend (f->fe, &msg, 100));

  g_assert_cmpint (truncate (f->path, new_size), ==, 0);
  g_assert_true (vhu_blk_device_check_size (f->device));
  expect_config_change (f);
  g_assert_cmpuint (vhu_blk_device_get_capacity (f->device), ==, new_size / SECTOR);
  g_assert_cmpuint (config_capacity (f), ==, new_size / SECTOR);

  /* The new sectors read as zeroes and can be written; past them, no. */
  g_assert_cmpuint (read_sectors (f, old_capacity, in, SECTOR), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (in, SECTOR, zeroes, SECTOR);
  g_assert_cmpuint (write_sectors (f, new_size / SECTOR - 1, out, SECTOR), ==, VHU_BLK_S_OK);
  g_assert_cmpuint (read_sectors (f, new_size / SECTOR - 1, in, SECTOR), ==, VHU_BLK_S_OK);
  g_assert_cmpmem (in, SECTOR, out, SECTOR);
  g_assert_cmpuint (read_sectors (f, new_size / SECTOR, in, SECTOR), ==, VHU_BLK_S_IOERR);

  /* Shrinking is told too, and the lost sectors are out of range. */
  g_assert_cmpint (truncate (f->path, IMAGE_SIZE), ==, 0);
  g_assert_true (vhu_blk_device_check_size (f->device));
  expect_config_change (f);
  g_assert_cmpuint (config_capacity (f), ==, old_capacity);
  g_assert_cmpuint (read_sectors (f, old_capacity, in, SECTOR), ==, VHU_BLK_S_IOERR);

  /* The timer notices by itself. */
  g_assert_cmpint (truncate (f->path, IMAGE_SIZE + 64 * SECTOR), ==, 0);
  vhu_blk_device_set_size_poll_interval (f->device, 20);
  expect_config_change (f);
  vhu_blk_device_set_size_poll_interval (f->device, 0);
  g_assert_cmpuint (config_capacity (f), ==, old_capacity + 64);
  g_assert_cmpint (truncate (f->path, IMAGE_SIZE), ==, 0);
  g_assert_true (vhu_blk_device_check_size (f->device));
  expect_config_change (f);

  check_image (f);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Several queues                                                           */

static void
test_multi_queue (Fixture *f, gconstpointer data)
{
  const guint per_queue = 24;
  Req reqs[MAX_QUEUES][24];
  guint heads[MAX_QUEUES][24];
  g_autofree guint8 *datas = g_malloc (MAX_QUEUES * per_queue * 8 * SECTOR);

  if (f->dir == NULL)
    return;
  set_up_device (f);
  g_assert_cmpuint (f->p->num_queues, ==, MAX_QUEUES);

  /* Both queues busy at once, on disjoint ranges; then read back crosswise. */
  for (guint pass = 0; pass < 2; pass++)
    {
      for (guint q = 0; q < MAX_QUEUES; q++)
        {
          for (guint i = 0; i < per_queue; i++)
            {
              guint k = q * per_queue + i;
              Req *r = &reqs[q][i];

              if (pass == 0)
                {
                  fill_random (f->rand, datas + k * 8 * SECTOR, 8 * SECTOR);
                  *r = (Req) { .type = VHU_BLK_T_OUT,
                               .sector = k * 8,
                               .out = datas + k * 8 * SECTOR,
                               .out_len = 8 * SECTOR,
                               .n_data = 2,
                               .indirect = TRUE };
                }
              else
                *r = (Req) { .type = VHU_BLK_T_IN,
                             .sector = ((1 - q) * per_queue + i) * 8,
                             .in_len = 8 * SECTOR,
                             .indirect = TRUE };
              heads[q][i] = add_req (f, q, r);
            }
          vhu_test_driver_publish (f->drv[q]);
        }
      kick (f, 0);
      kick (f, 1);
      for (guint q = 0; q < MAX_QUEUES; q++)
        {
          wait_used (f, q, per_queue);
          for (guint n = 0; n < per_queue; n++)
            {
              g_autofree guint8 *in = g_malloc (8 * SECTOR + 1);
              guint head, i;
              guint32 len;

              g_assert_true (vhu_test_driver_get_used (f->drv[q], &head, &len));
              for (i = 0; i < per_queue && heads[q][i] != head; i++)
                ;
              g_assert_cmpuint (i, <, per_queue);
              vhu_test_driver_read_in (f->drv[q], head, in, reqs[q][i].in_len + 1);
              g_assert_cmpuint (in[reqs[q][i].in_len], ==, VHU_BLK_S_OK);
              if (pass == 1)
                g_assert_cmpmem (in, 8 * SECTOR, datas + ((1 - q) * per_queue + i) * 8 * SECTOR,
                                 8 * SECTOR);
            }
        }
    }
  memcpy (f->shadow, datas, MAX_QUEUES * per_queue * 8 * SECTOR);
  check_image (f);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Stopping with I/O in flight                                              */

/* Adds @n reads of 64 KiB (all from the start of the image), publishes and
 * kicks, and iterates until the device has handed them to the engine. */
static void
start_reads (Fixture *f, guint n, Req *r)
{
  *r = (Req) { .type = VHU_BLK_T_IN, .sector = 0, .in_len = 128 * SECTOR, .n_data = 4,
               .indirect = TRUE };
  for (guint i = 0; i < n; i++)
    add_req (f, 0, r);
  vhu_test_driver_publish (f->drv[0]);
  kick (f, 0);
  wait_in_flight (f, n);
}

/* GET_VRING_BASE waits for what is in flight: its answer comes after the
 * last of them is in the used ring, and counts them all. */
static void
test_stop_in_flight (Fixture *f, gconstpointer data)
{
  const guint n = 48;
  VhuVringState state = { .index = 0 };
  VhuMessage reply;
  Req r;

  if (f->dir == NULL)
    return;
  set_up_device (f);

  start_reads (f, n, &r);
  g_test_message ("%u of %u in flight when the front-end stops the ring",
                  vhu_blk_device_get_in_flight (f->device), n);
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_VRING_BASE, 0, &state,
                                         sizeof state, NULL, 0));
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, WAIT_MS));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_VRING_BASE);
  g_assert_cmpuint (reply.payload.state.num, ==, n);
  vhu_message_clear (&reply);

  /* Everything was published before the answer. */
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree guint8 *in = g_malloc (r.in_len);
      guint head;
      guint32 len;

      g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
      g_assert_cmpuint (len, ==, r.in_len + 1);
      vhu_test_driver_read_in (f->drv[0], head, in, r.in_len);
      g_assert_cmpmem (in, r.in_len, f->shadow, r.in_len);
    }
  g_assert_cmpuint (vhu_blk_device_get_in_flight (f->device), ==, 0);

  /* And the ring starts again where it stopped. */
  start_queue (f, 0, n);
  {
    guint8 in[SECTOR];

    g_assert_cmpuint (read_sectors (f, 1, in, SECTOR), ==, VHU_BLK_S_OK);
    g_assert_cmpmem (in, SECTOR, f->shadow + SECTOR, SECTOR);
  }
  assert_healthy (f);
}

/* The front-end goes away with writes in flight, and a new one comes at
 * once and writes other data to the same sectors (as a guest does after a
 * back-end reconnection: it resubmits, then goes on). The old writes finish
 * into memory their elements keep mapped, nothing of theirs shows up in the
 * new ring, and none of them lands after the new writes. */
static void
test_disconnect_in_flight (Fixture *f, gconstpointer data)
{
  const guint rounds = 6, n = 32, sectors = 64;
  g_autofree guint8 *old_data = g_malloc (sectors * SECTOR);
  g_autofree guint8 *new_data = g_malloc (sectors * SECTOR);
  guint8 *in = g_malloc (sectors * SECTOR);
  guint overtaking_chances = 0;

  if (f->dir == NULL)
    return;
  set_up_device (f);

  for (guint round = 0; round < rounds; round++)
    {
      Req r = { .type = VHU_BLK_T_OUT, .sector = 0, .out = old_data, .out_len = sectors * SECTOR,
                .n_data = 4, .indirect = TRUE };
      VhuTestGuestRam *old_ram = f->ram;
      guint stale;

      fill_random (f->rand, old_data, sectors * SECTOR);
      fill_random (f->rand, new_data, sectors * SECTOR);
      for (guint i = 0; i < n; i++)
        add_req (f, 0, &r);
      vhu_test_driver_publish (f->drv[0]);
      kick (f, 0);
      wait_in_flight (f, n);

      g_clear_pointer (&f->fe, vhu_test_frontend_free);
      while (vhost_user_device_get_connected (VHOST_USER_DEVICE (f->device)))
        g_main_context_iteration (NULL, TRUE);
      g_clear_pointer (&f->drv[0], vhu_test_driver_free);

      f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
      f->ram = vhu_test_guest_ram_new (RAM_SIZE, 0, RAM_UVA + (round + 1) * RAM_SIZE);
      vhu_test_guest_ram_free (old_ram);
      set_up_device (f);
      stale = vhu_blk_device_get_in_flight (f->device);
      if (stale > 0)
        overtaking_chances++;

      /* The new ring has nothing the driver did not put there; the new
       * write wins. */
      g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, 0);
      g_assert_cmpuint (write_sectors (f, 0, new_data, sectors * SECTOR), ==, VHU_BLK_S_OK);
      g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, 1);
      g_assert_cmpuint (vhu_blk_device_get_in_flight (f->device), ==, 0);
      g_assert_cmpuint (read_sectors (f, 0, in, sectors * SECTOR), ==, VHU_BLK_S_OK);
      g_assert_cmpmem (in, sectors * SECTOR, new_data, sectors * SECTOR);
      memcpy (f->shadow, new_data, sectors * SECTOR);
    }
  g_test_message ("%u of %u rounds had old writes in flight when the new front-end wrote",
                  overtaking_chances, rounds);
  g_free (in);
  check_image (f);
  assert_healthy (f);
}

/* ------------------------------------------------------------------------ */
/* Queue modes and worker threads                                           */

/* Every queue busy at once for many rounds, on a range of its own: batches
 * of writes (to slots that do not overlap within a batch), reads of what
 * was written in other layouts, a flush now and then; every answer checked
 * against the shadow, the image too at the end. The queues run in the
 * case's mode, on the device's context or on worker threads. */
static void
test_many (Fixture *f, gconstpointer data)
{
  const guint rounds = 150, slot = 8, per_batch = 9;
  guint n_queues = MAX (f->p->num_queues, 1);
  guint64 slots_per_queue = IMAGE_SIZE / SECTOR / slot / n_queues;
  guint total = 0;

  if (f->dir == NULL)
    return;
  set_up_device (f);

  for (guint round = 0; round < rounds; round++)
    for (guint pass = 0; pass < 2; pass++)
      {
        Req reqs[MAX_QUEUES][16];
        guint heads[MAX_QUEUES][16];
        guint8 *datas[MAX_QUEUES][16] = { { NULL } };
        guint64 slots[MAX_QUEUES][16];
        guint n[MAX_QUEUES];

        for (guint q = 0; q < n_queues; q++)
          {
            n[q] = g_rand_int_range (f->rand, 1, per_batch + 1);
            for (guint i = 0; i < n[q]; i++)
              {
                Req *r = &reqs[q][i];

                /* Distinct slots within the batch: i-th of a random start. */
                slots[q][i] = (guint64) q * slots_per_queue
                              + ((guint64) round * 7 + i * (slots_per_queue / per_batch))
                                  % slots_per_queue;
                memset (r, 0, sizeof *r);
                r->sector = slots[q][i] * slot;
                if (pass == 0)
                  {
                    datas[q][i] = g_malloc (slot * SECTOR);
                    fill_random (f->rand, datas[q][i], slot * SECTOR);
                    r->type = VHU_BLK_T_OUT;
                    r->out = datas[q][i];
                    r->out_len = slot * SECTOR;
                  }
                else
                  {
                    r->type = VHU_BLK_T_IN;
                    r->in_len = slot * SECTOR;
                  }
                r->n_data = g_rand_int_range (f->rand, 1, 5);
                r->layout = g_rand_int_range (f->rand, 0, 3);
                r->indirect = g_rand_boolean (f->rand);
                heads[q][i] = add_req (f, q, r);
              }
            vhu_test_driver_publish (f->drv[q]);
            kick (f, q);
          }

        for (guint q = 0; q < n_queues; q++)
          {
            wait_used (f, q, n[q]);
            for (guint k = 0; k < n[q]; k++)
              {
                g_autofree guint8 *in = g_malloc (slot * SECTOR + 1);
                guint head, i;
                guint32 len;

                g_assert_true (vhu_test_driver_get_used (f->drv[q], &head, &len));
                for (i = 0; i < n[q] && heads[q][i] != head; i++)
                  ;
                g_assert_cmpuint (i, <, n[q]);
                heads[q][i] = G_MAXUINT;
                g_assert_cmpuint (len, ==, reqs[q][i].in_len + 1);
                vhu_test_driver_read_in (f->drv[q], head, in, reqs[q][i].in_len + 1);
                g_assert_cmpuint (in[reqs[q][i].in_len], ==, VHU_BLK_S_OK);
                if (pass == 0)
                  memcpy (f->shadow + reqs[q][i].sector * SECTOR, datas[q][i], slot * SECTOR);
                else
                  g_assert_cmpmem (in, slot * SECTOR, f->shadow + reqs[q][i].sector * SECTOR,
                                   slot * SECTOR);
                g_free (datas[q][i]);
                total++;
              }
          }
        if (pass == 1 && round % 10 == 9)
          g_assert_cmpuint (do_simple (f, VHU_BLK_T_FLUSH, 0, NULL, 0, 0, NULL), ==,
                            VHU_BLK_S_OK);
      }

  g_test_message ("%u requests on %u queue(s)", total, n_queues);
  for (guint q = 0; q < n_queues; q++)
    g_assert_cmpuint (vhu_blk_device_get_queue_requests (f->device, q), >=, rounds);
  g_assert_cmpuint (vhu_blk_device_get_stat (f->device, VHU_BLK_STAT_ERRORS), ==, 0);
  check_image (f);
  assert_healthy (f);
  if (f->p->threads > 0)
    g_assert_cmpint (g_atomic_int_get (&f->worker_signals), >, 0);
  else
    g_assert_cmpint (g_atomic_int_get (&f->worker_signals), ==, 0);
}

/* ------------------------------------------------------------------------ */
/* The I/O engines on their own                                             */

typedef struct
{
  guint done;
  guint batches;
} EngineRecord;

static void
engine_done (VhuBlkRequest *req, gpointer user_data)
{
  EngineRecord *rec = user_data;

  rec->done++;
}

static void
engine_batch (gpointer user_data)
{
  EngineRecord *rec = user_data;

  rec->batches++;
}

/* A request on buffers of the test's own: @n_iov pieces of @buf. */
static void
engine_request (VhuBlkRequest *req, VhuBlkOp op, guint64 offset, guint8 *buf, gsize len,
                guint n_iov)
{
  memset (req, 0, sizeof *req);
  req->op = op;
  req->offset = offset;
  req->capacity = G_MAXUINT64 / SECTOR;
  req->iov = g_new0 (struct iovec, n_iov);
  req->iov_cap = n_iov;
  for (guint i = 0; i < n_iov; i++)
    {
      gsize from = len * i / n_iov, to = len * (i + 1) / n_iov;

      req->iov[i].iov_base = buf + from;
      req->iov[i].iov_len = to - from;
    }
  req->n_iov = n_iov;
  req->status = 0xff;
}

/* Far more requests than a tiny io_uring holds (they wait their turn),
 * completions through the GSource and through a drain, a read that runs
 * into the end of the file (a short transfer, continued, then an error),
 * write-through, flush, discard and write-zeroes. */
static void
test_engine (gconstpointer data)
{
  const Params *p = data;
  const guint n = 300;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vhu-test-blk-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "disk.img", NULL);
  g_autofree guint8 *image = g_malloc (MIB);
  /* Zeroed: what io_uring writes is invisible to valgrind. */
  g_autofree guint8 *bufs = g_malloc0 (n * 4096);
  g_autofree VhuBlkRequest *reqs = g_new0 (VhuBlkRequest, n);
  GRand *rand = g_rand_new_with_seed (g_test_rand_int ());
  EngineRecord rec = { 0 };
  VhuBlkFile file;
  VhuBlkIo *io;
  guint8 tail[4096], seg[VHU_BLK_SEGMENT_SIZE], zeroes[8192] = { 0 };
  guint64 sector_le;
  guint32 num_le, flags_le;
  gint64 deadline;

  if (p->aio == VHU_BLK_AIO_IO_URING && !have_io_uring ())
    {
      g_test_skip ("io_uring is not available on this kernel");
      g_rand_free (rand);
      return;
    }
  g_assert_no_error (error);
  fill_random (rand, image, MIB);
  g_file_set_contents (path, (const char *) image, MIB, &error);
  g_assert_no_error (error);
  file.fd = open (path, O_RDWR | O_CLOEXEC);
  file.is_blockdev = FALSE;
  g_assert_cmpint (file.fd, >=, 0);

  if (p->aio == VHU_BLK_AIO_IO_URING)
    io = vhu_blk_io_uring_new (&file, 4, g_main_context_default (), engine_done, engine_batch,
                               &rec, &error);
  else
    io = vhu_blk_io_threads_new (&file, 2, g_main_context_default (), engine_done, engine_batch,
                                 &rec, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vhu_blk_io_get_name (io), ==, p->aio == VHU_BLK_AIO_IO_URING ? "io_uring"
                                                                                  : "threads");

  /* Reads, completed through the context. */
  for (guint i = 0; i < n; i++)
    {
      engine_request (&reqs[i], VHU_BLK_OP_READ, (guint64) g_rand_int_range (rand, 0, 256) * 4096,
                      bufs + i * 4096, 4096, 1 + i % 3);
      vhu_blk_io_submit (io, &reqs[i]);
    }
  g_assert_cmpuint (vhu_blk_io_get_in_flight (io), ==, n);
  vhu_blk_io_kick (io);
  deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (rec.done < n)
    {
      g_main_context_iteration (NULL, TRUE);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    }
  g_assert_cmpuint (vhu_blk_io_get_in_flight (io), ==, 0);
  g_assert_cmpuint (rec.batches, >=, 1);
  g_assert_cmpuint (rec.batches, <=, n);
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpuint (reqs[i].status, ==, VHU_BLK_S_OK);
      g_assert_cmpuint (reqs[i].n_iov, ==, 0);
      /* The offset moved on by what was transferred. */
      g_assert_cmpmem (bufs + i * 4096, 4096, image + reqs[i].offset - 4096, 4096);
      g_free (reqs[i].iov);
    }

  /* Into the end of the file: 2 KiB come, then nothing: an error. */
  memset (tail, 0, sizeof tail);
  engine_request (&reqs[0], VHU_BLK_OP_READ, MIB - 2048, tail, sizeof tail, 2);
  vhu_blk_io_submit (io, &reqs[0]);
  /* A write through, a flush, a discard and a write-zeroes at once. */
  engine_request (&reqs[1], VHU_BLK_OP_WRITE, 8192, bufs, 8192, 3);
  reqs[1].dsync = TRUE;
  vhu_blk_io_submit (io, &reqs[1]);
  engine_request (&reqs[2], VHU_BLK_OP_FLUSH, 0, NULL, 0, 0);
  vhu_blk_io_submit (io, &reqs[2]);
  sector_le = GUINT64_TO_LE (64);
  num_le = GUINT32_TO_LE (16);
  flags_le = 0;
  memcpy (seg, &sector_le, 8);
  memcpy (seg + 8, &num_le, 4);
  memcpy (seg + 12, &flags_le, 4);
  engine_request (&reqs[3], VHU_BLK_OP_WRITE_ZEROES, 0, seg, sizeof seg, 1);
  reqs[3].n_segments = 1;
  reqs[3].capacity = MIB / SECTOR;
  vhu_blk_io_submit (io, &reqs[3]);
  rec.done = 0;
  vhu_blk_io_drain (io);
  g_assert_cmpuint (rec.done, ==, 4);
  g_assert_cmpuint (reqs[0].status, ==, VHU_BLK_S_IOERR);
  g_assert_cmpmem (tail, 2048, image + MIB - 2048, 2048);
  g_assert_cmpuint (reqs[1].status, ==, VHU_BLK_S_OK);
  g_assert_cmpuint (reqs[2].status, ==, VHU_BLK_S_OK);
  g_assert_cmpuint (reqs[3].status, ==, VHU_BLK_S_OK);
  for (guint i = 0; i < 4; i++)
    g_free (reqs[i].iov);

  vhu_blk_io_free (io);
  {
    g_autofree char *contents = NULL;
    gsize len;

    g_file_get_contents (path, &contents, &len, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (len, ==, MIB);
    g_assert_cmpmem (contents + 8192, 8192, bufs, 8192);
    g_assert_cmpmem (contents + 64 * SECTOR, 8192, zeroes, 8192);
  }
  close (file.fd);
  g_unlink (path);
  g_rmdir (dir);
  g_rand_free (rand);
}

/* ------------------------------------------------------------------------ */
/* The program                                                              */

static void
run_program (const char *const *argv, int *status, char **out, char **err)
{
  g_autoptr (GError) error = NULL;

  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err, status, &error);
  g_assert_no_error (error);
}

static void
test_program_options (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vhu-test-blk-XXXXXX", &error);
  g_autofree char *image = g_build_filename (dir, "disk.img", NULL);
  g_autofree char *sock = g_build_filename (dir, "blk.sock", NULL);
  g_autofree char *file_arg = g_strdup_printf ("--blk-file=%s", image);
  g_autofree char *sock_arg = g_strdup_printf ("--socket-path=%s", sock);
  struct
  {
    const char *args[6];
    const char *message;
  } bad[] = {
    { { sock_arg, NULL }, "--blk-file" },
    { { sock_arg, file_arg, "--num-queues=0", NULL }, "--num-queues" },
    { { sock_arg, file_arg, "--num-queues=300", NULL }, "--num-queues" },
    { { sock_arg, file_arg, "--aio=posix", NULL }, "--aio" },
    { { sock_arg, file_arg, "--serial=123456789012345678901", NULL }, "20 bytes" },
    { { sock_arg, "--blk-file=/nonexistent/disk.img", NULL }, "/nonexistent/disk.img" },
    { { sock_arg, "--blk-file=/dev/null", NULL }, "neither" },
    { { file_arg, NULL }, NULL },
    { { sock_arg, file_arg, "--queue-mode=busy", NULL }, "--queue-mode" },
    { { sock_arg, file_arg, "--threads=-1", NULL }, "--threads" },
    { { sock_arg, file_arg, "--threads=65", NULL }, "--threads" },
    { { sock_arg, file_arg, "--poll-us=10", NULL }, "--poll-us" },
    { { sock_arg, file_arg, "--queue-mode=adaptive", "--poll-us=-2", NULL }, "--poll-us" },
  };

  g_assert_no_error (error);
  g_file_set_contents (image, "", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (truncate (image, MIB), ==, 0);

  /* --print-capabilities: JSON, nothing else done (no file needed). */
  {
    const char *argv[] = { VHOST_USER_BLK_PATH, "--print-capabilities", NULL };
    g_autofree char *out = NULL, *err = NULL;
    int status;

    run_program (argv, &status, &out, &err);
    g_assert_true (g_spawn_check_wait_status (status, NULL));
    g_assert_cmpstr (out, ==,
                     "{\"type\": \"block\", \"features\": [\"blk-file\", \"read-only\"]}\n");
  }

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      const char *argv[8] = { VHOST_USER_BLK_PATH };
      g_autofree char *out = NULL, *err = NULL;
      int status;

      for (guint k = 0; bad[i].args[k] != NULL; k++)
        argv[k + 1] = bad[i].args[k];
      run_program (argv, &status, &out, &err);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 1);
      g_assert_true (g_str_has_prefix (err, "vhost-user-blk: "));
      if (bad[i].message != NULL && strstr (err, bad[i].message) == NULL)
        g_error ("%s: “%s” does not mention %s", bad[i].args[1], err, bad[i].message);
      g_assert_false (g_file_test (sock, G_FILE_TEST_EXISTS));
    }

  g_unlink (image);
  g_rmdir (dir);
}

/* Two back-ends on one writable image: the second is refused; a grown
 * image is noticed on SIGHUP (which does not end the program); and a
 * program that serves exits 0 on SIGTERM. */
static void
test_program_lock (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vhu-test-blk-XXXXXX", &error);
  g_autofree char *image = g_build_filename (dir, "disk.img", NULL);
  g_autofree char *sock = g_build_filename (dir, "blk.sock", NULL);
  g_autofree char *sock2 = g_build_filename (dir, "blk2.sock", NULL);
  g_autofree char *file_arg = g_strdup_printf ("--blk-file=%s", image);
  g_autofree char *sock_arg = g_strdup_printf ("--socket-path=%s", sock);
  g_autofree char *sock2_arg = g_strdup_printf ("--socket-path=%s", sock2);
  g_autofree char *log = g_build_filename (dir, "blk.log", NULL);
  const char *argv[] = { VHOST_USER_BLK_PATH, sock_arg, file_arg, "--verbose", NULL };
  const char *argv2[] = { VHOST_USER_BLK_PATH, sock2_arg, file_arg, NULL };
  const char *argv_ro[] = { VHOST_USER_BLK_PATH, sock2_arg, file_arg, "--read-only", NULL };
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr (GSubprocessLauncher) launcher = NULL;
  g_autoptr (GSubprocess) first = NULL;
  gint64 deadline;
  int status;

  g_assert_no_error (error);
  g_file_set_contents (image, "", 0, &error);
  g_assert_no_error (error);
  g_assert_cmpint (truncate (image, MIB), ==, 0);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_stderr_file_path (launcher, log);
  first = g_subprocess_launcher_spawnv (launcher, argv, &error);
  g_assert_no_error (error);
  deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (!g_file_test (sock, G_FILE_TEST_EXISTS))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (10000);
    }

  run_program (argv2, &status, &out, &err);
  g_assert_true (WIFEXITED (status));
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_nonnull (strstr (err, "in use"));
  g_clear_pointer (&out, g_free);
  g_clear_pointer (&err, g_free);
  run_program (argv_ro, &status, &out, &err);
  g_assert_cmpint (WEXITSTATUS (status), ==, 1);
  g_assert_nonnull (strstr (err, "in use"));

  /* Grown by 1 MiB, and told. */
  g_assert_cmpint (truncate (image, 2 * MIB), ==, 0);
  g_subprocess_send_signal (first, SIGHUP);
  deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  for (;;)
    {
      g_autofree char *text = NULL;

      g_file_get_contents (log, &text, NULL, NULL);
      if (text != NULL && strstr (text, "capacity is now 4096 sectors") != NULL)
        break;
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (10000);
    }

  g_subprocess_send_signal (first, SIGTERM);
  g_subprocess_wait (first, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (first));
  g_assert_cmpint (g_subprocess_get_exit_status (first), ==, 0);

  g_unlink (log);
  g_unlink (sock);
  g_unlink (image);
  g_rmdir (dir);
}

static int
connect_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (fd, >=, 0);
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  g_assert_no_errno (connect (fd, (struct sockaddr *) &addr, sizeof addr));
  return fd;
}

/* The program with two queues polled on two worker threads (or waiting for
 * kicks there): requests on both queues, then SIGTERM while the front-end
 * is connected: it exits 0, closing the connection, with every write on
 * the image. */
static void
test_program_sigterm (gconstpointer data)
{
  const char *mode = data;
  static const Params params = { .num_queues = MAX_QUEUES };
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vhu-test-blk-XXXXXX", &error);
  g_autofree char *image = g_build_filename (dir, "disk.img", NULL);
  g_autofree char *sock = g_build_filename (dir, "blk.sock", NULL);
  g_autofree char *file_arg = g_strdup_printf ("--blk-file=%s", image);
  g_autofree char *sock_arg = g_strdup_printf ("--socket-path=%s", sock);
  g_autofree char *mode_arg = g_strdup_printf ("--queue-mode=%s", mode);
  const char *argv[] = { VHOST_USER_BLK_PATH, sock_arg, file_arg, "--num-queues=2",
                         "--threads=2", mode_arg, NULL };
  g_autoptr (GSubprocess) proc = NULL;
  g_autofree char *contents = NULL;
  Fixture fixture = { 0 }, *f = &fixture;
  guint8 out[4 * SECTOR], in[4 * SECTOR];
  gint64 deadline;
  gsize len;

  g_assert_no_error (error);
  f->p = &params;
  f->rand = g_rand_new_with_seed (g_test_rand_int ());
  f->size = IMAGE_SIZE;
  f->shadow = g_malloc (f->size);
  fill_random (f->rand, f->shadow, f->size);
  g_file_set_contents (image, (const char *) f->shadow, f->size, &error);
  g_assert_no_error (error);
  for (guint q = 0; q < MAX_QUEUES; q++)
    f->kick[q] = f->call[q] = f->err[q] = -1;

  proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_NONE, &error);
  g_assert_no_error (error);
  deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (!g_file_test (sock, G_FILE_TEST_EXISTS))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (10000);
    }
  f->fe = vhu_test_frontend_new (connect_unix (sock), NULL);
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, 0, RAM_UVA);
  set_up_device (f);

  for (guint q = 0; q < MAX_QUEUES; q++)
    for (guint i = 0; i < 50; i++)
      {
        guint64 sector = (q * 50 + i) * 4;
        Req w = { .type = VHU_BLK_T_OUT, .sector = sector, .out = out, .out_len = sizeof out,
                  .n_data = 2 };
        Req r = { .type = VHU_BLK_T_IN, .sector = sector, .in_len = sizeof in, .indirect = TRUE };

        fill_random (f->rand, out, sizeof out);
        g_assert_cmpuint (do_req (f, q, &w, NULL), ==, VHU_BLK_S_OK);
        memcpy (f->shadow + sector * SECTOR, out, sizeof out);
        g_assert_cmpuint (do_req (f, q, &r, in), ==, VHU_BLK_S_OK);
        g_assert_cmpmem (in, sizeof in, out, sizeof out);
      }

  g_subprocess_send_signal (proc, SIGTERM);
  g_assert_true (vhu_test_frontend_wait_closed (f->fe, WAIT_MS));
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
  g_assert_false (g_file_test (sock, G_FILE_TEST_EXISTS));

  g_file_get_contents (image, &contents, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (contents, len, f->shadow, f->size);

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  for (guint q = 0; q < MAX_QUEUES; q++)
    {
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
      close_fd (&f->kick[q]);
      close_fd (&f->call[q]);
      close_fd (&f->err[q]);
    }
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  g_free (f->shadow);
  g_rand_free (f->rand);
  g_unlink (image);
  g_rmdir (dir);
}

/* ------------------------------------------------------------------------ */

static const Params engines[] = {
  { .aio = VHU_BLK_AIO_IO_URING },
  { .aio = VHU_BLK_AIO_THREADS },
};

static const char *
engine_name (VhuBlkAio aio)
{
  return aio == VHU_BLK_AIO_IO_URING ? "io_uring" : "threads";
}

int
main (int argc, char **argv)
{
  static Params variants[G_N_ELEMENTS (engines)][16];

  g_test_init (&argc, &argv, NULL);
  /* GTask's class keeps an fd of its own from first use (config changes
   * use one): not a leak of the device's. */
  g_type_ensure (G_TYPE_TASK);

  for (guint e = 0; e < G_N_ELEMENTS (engines); e++)
    {
      const Params *p = &engines[e];
      Params *ro = &variants[e][0], *serial = &variants[e][1], *mq = &variants[e][2];
      const char *name = engine_name (p->aio);
#define ADD(path, params, func)                                                                    \
  G_STMT_START                                                                                     \
  {                                                                                                \
    g_autofree char *full_ = g_strdup_printf ("/vhost-user-blk/%s/%s", name, path);               \
    g_test_add (full_, Fixture, params, fixture_set_up, func, fixture_tear_down);                  \
  }                                                                                                \
  G_STMT_END

      *ro = *p;
      ro->read_only = TRUE;
      *serial = *p;
      serial->serial = "vhu-test-serial-0001";
      *mq = *p;
      mq->num_queues = MAX_QUEUES;

      ADD ("config", p, test_config);
      ADD ("config/read-only", ro, test_config);
      ADD ("config/multi-queue", mq, test_config);
      ADD ("read-write", p, test_read_write);
      ADD ("write-through", p, test_write_through);
      ADD ("flush", p, test_flush);
      ADD ("flush/read-only", ro, test_flush);
      ADD ("get-id", serial, test_get_id);
      ADD ("get-id/none", p, test_get_id);
      ADD ("discard", p, test_discard);
      ADD ("write-zeroes", p, test_write_zeroes);
      ADD ("read-only", ro, test_read_only);
      ADD ("malformed", p, test_malformed);
      ADD ("resize", p, test_resize);
      ADD ("multi-queue", mq, test_multi_queue);
      ADD ("stop-in-flight", p, test_stop_in_flight);
      ADD ("disconnect-in-flight", p, test_disconnect_in_flight);

      /* Queue modes on the device's context, and worker threads. */
      {
        static const struct
        {
          const char *path;
          VhostUserQueueMode mode;
          guint threads;
          guint num_queues;
          void (*func) (Fixture *f, gconstpointer data);
        } modes[] = {
          { "modes/adaptive", VHOST_USER_QUEUE_MODE_ADAPTIVE, 0, MAX_QUEUES, test_many },
          { "modes/poll", VHOST_USER_QUEUE_MODE_POLL, 0, MAX_QUEUES, test_many },
          { "modes/poll-stop-in-flight", VHOST_USER_QUEUE_MODE_POLL, 0, 1, test_stop_in_flight },
          { "workers/event", VHOST_USER_QUEUE_MODE_EVENT, 2, MAX_QUEUES, test_many },
          { "workers/adaptive", VHOST_USER_QUEUE_MODE_ADAPTIVE, 2, MAX_QUEUES, test_many },
          { "workers/poll", VHOST_USER_QUEUE_MODE_POLL, 2, MAX_QUEUES, test_many },
          { "workers/poll-one-thread", VHOST_USER_QUEUE_MODE_POLL, 1, MAX_QUEUES, test_many },
          { "workers/read-write", VHOST_USER_QUEUE_MODE_EVENT, 1, 1, test_read_write },
          { "workers/stop-in-flight", VHOST_USER_QUEUE_MODE_EVENT, 1, 1, test_stop_in_flight },
          { "workers/poll-stop-in-flight", VHOST_USER_QUEUE_MODE_POLL, 1, 1,
            test_stop_in_flight },
          { "workers/disconnect-in-flight", VHOST_USER_QUEUE_MODE_EVENT, 1, 1,
            test_disconnect_in_flight },
          { "workers/poll-disconnect-in-flight", VHOST_USER_QUEUE_MODE_POLL, 1, 1,
            test_disconnect_in_flight },
        };

        g_assert_cmpuint (G_N_ELEMENTS (modes) + 4, <=, G_N_ELEMENTS (variants[e]));
        for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
          {
            Params *v = &variants[e][4 + m];

            *v = *p;
            v->mode = modes[m].mode;
            v->threads = modes[m].threads;
            v->num_queues = modes[m].num_queues;
            ADD (modes[m].path, v, modes[m].func);
          }
      }
#undef ADD
      {
        g_autofree char *path = g_strdup_printf ("/vhost-user-blk/%s/engine", name);

        g_test_add_data_func (path, p, test_engine);
      }
    }
  g_test_add_func ("/vhost-user-blk/program/options", test_program_options);
  g_test_add_func ("/vhost-user-blk/program/lock", test_program_lock);
  g_test_add_data_func ("/vhost-user-blk/program/sigterm-poll", "poll", test_program_sigterm);
  g_test_add_data_func ("/vhost-user-blk/program/sigterm-adaptive", "adaptive",
                        test_program_sigterm);

  return g_test_run ();
}
