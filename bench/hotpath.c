/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The data path's cost per request: a device pops and pushes descriptor
 * chains that a driver in the same process keeps making available, in guest
 * RAM shared through a real vhost-user connection. Only the device's side
 * is in bench_device_round(), which callgrind counts with
 * --toggle-collect=bench_device_round.
 *
 *   hotpath DESCS [indirect] REQUESTS
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "vhu-split-ring.h"
#include "vhu-test-device.h"
#include "vhu-test-frontend.h"

#define RAM_SIZE (16u * 1024 * 1024)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f0000000000)
#define DATA_OFFSET (1u * 1024 * 1024)
#define TABLE_OFFSET (8u * 1024 * 1024)
#define BUFFER_SIZE 512u

/* The device's side of one batch: everything the driver made available is
 * popped, "processed" (nothing) and pushed back. */
G_GNUC_NO_INLINE guint bench_device_round (VhostUserVirtqueue *queue);

G_GNUC_NO_INLINE guint
bench_device_round (VhostUserVirtqueue *queue)
{
  VhostUserVirtqElement *elem;
  guint n = 0;

  while ((elem = vhost_user_virtqueue_pop (queue, NULL)) != NULL)
    {
      vhost_user_virtqueue_push (queue, elem, BUFFER_SIZE);
      vhost_user_virtq_element_unref (elem);
      n++;
    }
  return n;
}

static void
write_desc (guint8 *at, guint64 addr, guint32 len, guint16 flags, guint16 next)
{
  VhuVringDesc d = { GUINT64_TO_LE (addr), GUINT32_TO_LE (len), GUINT16_TO_LE (flags),
                     GUINT16_TO_LE (next) };

  memcpy (at, &d, sizeof d);
}

/* A chain of @k buffers: all device-readable but the last, which the device
 * writes (a request and its status, as a block device sees them). */
static void
write_chain (guint8 *table, guint first, guint k, guint64 data_gpa)
{
  for (guint j = 0; j < k; j++)
    {
      gboolean last = j + 1 == k;

      write_desc (table + (first + j) * sizeof (VhuVringDesc), data_gpa + j * BUFFER_SIZE,
                  BUFFER_SIZE,
                  (last ? VHU_VRING_DESC_F_WRITE : VHU_VRING_DESC_F_NEXT), first + j + 1);
    }
}

int
main (int argc, char **argv)
{
  guint k, n_chains, requests, done = 0;
  gboolean indirect;
  g_autoptr (VhuTestGuestRam) ram = NULL;
  g_autoptr (VhuTestFrontend) fe = NULL;
  g_autoptr (VhuTestDevice) device = NULL;
  const VhuTestRing *ring;
  VhostUserVirtqueue *queue;
  guint16 *avail_idx, *avail_ring;
  const guint16 *used_idx;
  guint16 next_avail = 0;
  guint16 heads[VHU_TEST_QEMU_QUEUE_SIZE];
  gint64 start, elapsed;

  if (argc != 4)
    {
      g_printerr ("usage: %s DESCS direct|indirect REQUESTS\n", argv[0]);
      return 2;
    }
  k = atoi (argv[1]);
  indirect = g_str_equal (argv[2], "indirect");
  requests = atoi (argv[3]);
  if (k < 1 || k > 16 || requests < 1)
    return 2;

  device = vhu_test_device_new (1, 0, FALSE);
  fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (device));
  ram = vhu_test_guest_ram_new (RAM_SIZE, 0, RAM_UVA);
  vhu_test_frontend_qemu_blk_realize (fe);
  /* Linux's features without EVENT_IDX: the driver says NO_INTERRUPT. */
  vhu_test_frontend_qemu_blk_start_full (fe, ram, 1,
                                         VHU_TEST_BLK_FEATURES_LINUX
                                           & ~(G_GUINT64_CONSTANT (1)
                                               << VHOST_USER_FEATURE_RING_EVENT_IDX),
                                         NULL);
  vhu_test_frontend_flush (fe);

  queue = vhost_user_device_get_queue (VHOST_USER_DEVICE (device), 0);
  g_assert_true (vhost_user_virtqueue_get_started (queue));
  ring = vhu_test_frontend_get_ring (fe, 0);

  /* Lay the chains out once; the driver only recycles their heads. */
  if (indirect)
    {
      n_chains = ring->num;
      for (guint c = 0; c < n_chains; c++)
        {
          guint64 table_gpa = ram->gpa + TABLE_OFFSET + c * 16 * sizeof (VhuVringDesc);

          write_chain (ram->host + TABLE_OFFSET + c * 16 * sizeof (VhuVringDesc), 0, k,
                       ram->gpa + DATA_OFFSET + c * 16 * BUFFER_SIZE);
          write_desc (ring->desc + c * sizeof (VhuVringDesc), table_gpa,
                      k * sizeof (VhuVringDesc), VHU_VRING_DESC_F_INDIRECT, 0);
          heads[c] = c;
        }
    }
  else
    {
      n_chains = ring->num / k;
      for (guint c = 0; c < n_chains; c++)
        {
          write_chain (ring->desc, c * k, k, ram->gpa + DATA_OFFSET + c * 16 * BUFFER_SIZE);
          heads[c] = c * k;
        }
    }

  avail_idx = (guint16 *) (ring->avail + 2);
  avail_ring = (guint16 *) (ring->avail + 4);
  used_idx = (const guint16 *) (ring->used + 2);
  *(guint16 *) ring->avail = GUINT16_TO_LE (VHU_VRING_AVAIL_F_NO_INTERRUPT);

  start = g_get_monotonic_time ();
  while (done < requests)
    {
      guint batch = MIN (n_chains, requests - done);
      guint got;

      for (guint i = 0; i < batch; i++)
        avail_ring[(guint16) (next_avail + i) & (ring->num - 1)] = GUINT16_TO_LE (heads[i]);
      next_avail += batch;
      __atomic_store_n (avail_idx, GUINT16_TO_LE (next_avail), __ATOMIC_RELEASE);

      got = bench_device_round (queue);
      if (got != batch || GUINT16_FROM_LE (*used_idx) != next_avail)
        g_error ("the device returned %u of %u requests", got, batch);
      done += batch;
    }
  elapsed = g_get_monotonic_time () - start;

  g_assert_false (vhost_user_virtqueue_get_broken (queue));
  g_print ("descs=%u %s requests=%u ns/request=%.1f\n", k, indirect ? "indirect" : "direct",
           requests, elapsed * 1000.0 / requests);
  return 0;
}
