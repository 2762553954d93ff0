/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * VhostUserDevice against the message sequences real front-ends send, and
 * against the rules of the vhost-user specification: ring states, feature
 * negotiation, REPLY_ACK, config space, RESET_DEVICE, disconnection, and no
 * leaked fds. The device is served on the default main context; the test
 * front-end iterates it while it waits for replies.
 */

#include <string.h>
#include <unistd.h>

#include "vhu-test-device.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

/* Guest RAM as QEMU hands it over (gpa 0, a high front-end address) and as
 * virtio-user does (guest "physical" addresses are its virtual addresses). */
#define RAM_SIZE (2u * 1024 * 1024)
#define QEMU_GPA G_GUINT64_CONSTANT (0)
#define QEMU_UVA G_GUINT64_CONSTANT (0x7f9cd3fff000)
#define VIRTIO_USER_ADDR G_GUINT64_CONSTANT (0x100331000)

/* Protocol features the library implements by itself and these tests rely on. */
#define LIBRARY_PROTOCOL_FEATURES                                                                  \
  (PF (MQ) | PF (REPLY_ACK) | PF (BACKEND_REQ) | PF (CONFIG) | PF (RESET_DEVICE)                   \
   | PF (CONFIGURE_MEM_SLOTS) | PF (STATUS))
/* Offered only by a subclass that implements the matching vfuncs. */
#define SUBCLASS_PROTOCOL_FEATURES                                                                 \
  (PF (DEVICE_STATE) | PF (SHARED_OBJECT) | PF (NET_MTU) | PF (RARP))

#define QUIET_MS 100

typedef struct
{
  VhuTestDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  guint connected_notifies;
} Fixture;

/* Helpers */

static VhostUserDevice *
dev (Fixture *f)
{
  return VHOST_USER_DEVICE (f->device);
}

static VhostUserVirtqueue *
queue (Fixture *f, guint index)
{
  VhostUserVirtqueue *q = vhost_user_device_get_queue (dev (f), index);

  g_assert_nonnull (q);
  g_assert_cmpuint (vhost_user_virtqueue_get_index (q), ==, index);
  g_assert_true (vhost_user_virtqueue_get_device (q) == dev (f));
  return q;
}

static gboolean
queue_started (Fixture *f, guint index)
{
  return vhost_user_virtqueue_get_started (queue (f, index));
}

static gboolean
queue_enabled (Fixture *f, guint index)
{
  return vhost_user_virtqueue_get_enabled (queue (f, index));
}

static void
kick_and_flush (Fixture *f, guint index)
{
  vhu_test_frontend_kick (f->fe, index);
  vhu_test_frontend_flush (f->fe);
}

static void
assert_no_protocol_error (Fixture *f)
{
  const GError *error = vhu_test_device_get_last_protocol_error (f->device);

  g_assert_no_error ((GError *) error);
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
}

static void
on_notify_connected (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  Fixture *f = user_data;

  f->connected_notifies++;
}

static void
fixture_set_up_full (Fixture *f, guint n_queues, gboolean extras, guint64 ram_addr)
{
  f->device = vhu_test_device_new (n_queues, VHU_TEST_DEVICE_DEFAULT_FEATURES, extras);
  g_object_add_weak_pointer (G_OBJECT (f->device), (gpointer *) &f->device);
  g_assert_cmpuint (vhost_user_device_get_num_queues (dev (f)), ==, n_queues);
  g_assert_true (vhost_user_device_get_context (dev (f)) == g_main_context_default ());
  g_assert_false (vhost_user_device_get_connected (dev (f)));

  g_signal_connect (f->device, "notify::connected", G_CALLBACK (on_notify_connected), f);

  f->fe = vhu_test_frontend_new_for_device (dev (f));
  g_assert_true (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (f->connected_notifies, ==, 1);

  if (ram_addr == VIRTIO_USER_ADDR)
    f->ram = vhu_test_guest_ram_new (RAM_SIZE, VIRTIO_USER_ADDR, VIRTIO_USER_ADDR);
  else
    f->ram = vhu_test_guest_ram_new (RAM_SIZE, QEMU_GPA, QEMU_UVA);
}

static void
fixture_set_up_1q (Fixture *f, gconstpointer data)
{
  fixture_set_up_full (f, 1, FALSE, QEMU_UVA);
}

static void
fixture_set_up_2q (Fixture *f, gconstpointer data)
{
  fixture_set_up_full (f, 2, FALSE, QEMU_UVA);
}

static void
fixture_set_up_virtio_user (Fixture *f, gconstpointer data)
{
  fixture_set_up_full (f, 2, FALSE, VIRTIO_USER_ADDR);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();

  if (f->device != NULL)
    {
      g_signal_handlers_disconnect_by_func (f->device, on_notify_connected, f);
      /* Dropping the last reference finalizes the device (the weak pointer
       * clears f->device): nothing inside the library keeps it alive. */
      g_object_unref (f->device);
      g_assert_null (f->device);
    }
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  vhu_test_drain_default_context ();
}

/* Ring states. The spec: a ring is initialized stopped and disabled; "the
 * back-end must start a ring upon receiving a kick" on the SET_VRING_KICK
 * eventfd, and stop it upon GET_VRING_BASE. A back-end may also take a newly
 * set kick eventfd for a kick (as libvhost-user does: after a reconnection
 * buffers may already wait, qemu-blk-trace.txt RUN 2), so a ring set up
 * completely may be started before the first written kick. Either way: after
 * a written kick the ring is started, queue-started was emitted once for it,
 * and every written kick is exactly one queue-kicked. */
static void
assert_kick_starts (Fixture *f, guint index)
{
  guint started = vhu_test_device_get_started_count (f->device, index);
  guint kicked = vhu_test_device_get_kicked_count (f->device, index);
  gboolean was_started = queue_started (f, index);

  /* Started only through a queue-started emission. */
  g_assert_cmpuint (started, ==, vhu_test_device_get_stopped_count (f->device, index)
                                   + (was_started ? 1 : 0));

  kick_and_flush (f, index);
  g_assert_true (queue_started (f, index));
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, index), ==,
                    started + (was_started ? 0 : 1));
  g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, index), ==, kicked + 1);
  started = vhu_test_device_get_started_count (f->device, index);

  /* Another kick: one more queue-kicked, no second queue-started. */
  kick_and_flush (f, index);
  g_assert_true (queue_started (f, index));
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, index), ==, started);
  g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, index), ==, kicked + 2);
}

/* QEMU 7.2 vhost-user-blk */

static void
assert_realized (Fixture *f, guint n_queues)
{
  guint64 offered_pf = vhu_test_frontend_get_offered_protocol_features (f->fe);
  guint64 acked_pf = vhu_test_frontend_get_acked_protocol_features (f->fe);
  guint64 offered = vhu_test_frontend_get_offered_features (f->fe);
  guint i;

  /* What the device offers */
  g_assert_cmphex (offered & VF (VERSION_1), ==, VF (VERSION_1));
  g_assert_cmphex (offered & VF (PROTOCOL_FEATURES), ==, VF (PROTOCOL_FEATURES));
  g_assert_cmphex (offered & VHU_TEST_DEVICE_DEFAULT_FEATURES, ==,
                   VHU_TEST_DEVICE_DEFAULT_FEATURES);
  g_assert_cmphex (offered_pf & LIBRARY_PROTOCOL_FEATURES, ==, LIBRARY_PROTOCOL_FEATURES);
  g_assert_cmphex (offered_pf & SUBCLASS_PROTOCOL_FEATURES, ==, 0);

  /* What was negotiated */
  g_assert_cmphex (acked_pf, ==, offered_pf & VHU_TEST_QEMU_PROTOCOL_FEATURES);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, acked_pf);
  g_assert_true (vhost_user_device_has_protocol_feature (dev (f),
                                                         VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK));
  g_assert_true (vhost_user_device_has_protocol_feature (dev (f),
                                                         VHOST_USER_PROTOCOL_FEATURE_CONFIG));
  g_assert_false (vhost_user_device_has_protocol_feature (dev (f),
                                                          VHOST_USER_PROTOCOL_FEATURE_STATUS));
  g_assert_cmpuint (vhu_test_frontend_get_queue_num (f->fe), ==, n_queues);
  g_assert_cmpint (vhu_test_frontend_get_backend_fd (f->fe), >=, 0);

  /* No SET_FEATURES yet: nothing acked, no signal. */
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, 0);
  g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), ==, 0);

  for (i = 0; i < n_queues; i++)
    {
      g_assert_false (queue_started (f, i));
      g_assert_false (queue_enabled (f, i));
    }

  g_assert_true (vhost_user_device_get_connected (dev (f)));
  assert_no_protocol_error (f);
}

static void
assert_started (Fixture *f, guint n_queues, guint64 driver_features)
{
  guint64 offered = vhu_test_frontend_get_offered_features (f->fe);
  guint64 expected = (offered & driver_features) | VF (PROTOCOL_FEATURES);
  guint i;

  g_assert_cmphex (vhu_test_frontend_get_acked_features (f->fe), ==, expected);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, expected);
  g_assert_true (vhost_user_device_has_feature (dev (f), VHOST_USER_FEATURE_VERSION_1));
  g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), >=, 1);
  g_assert_cmphex (vhu_test_device_get_negotiated_features (f->device), ==, expected);

  for (i = 0; i < n_queues; i++)
    {
      VhostUserVirtqueue *q = queue (f, i);

      g_assert_cmpuint (vhost_user_virtqueue_get_size (q), ==, VHU_TEST_QEMU_QUEUE_SIZE);
      g_assert_true (vhost_user_virtqueue_get_enabled (q));
      g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (q), ==,
                        vhu_test_frontend_get_ring (f->fe, i)->base);
    }

  assert_no_protocol_error (f);
}

static void
assert_stopped (Fixture *f, guint n_queues, guint expected_stops)
{
  guint i;

  for (i = 0; i < n_queues; i++)
    {
      g_assert_false (queue_started (f, i));
      g_assert_false (queue_enabled (f, i));
      g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, i), ==, expected_stops);
      /* Every queue-started has had its queue-stopped. */
      g_assert_cmpuint (vhu_test_device_get_started_count (f->device, i), ==, expected_stops);
      g_assert_cmpuint (vhu_test_frontend_get_last_vring_base (f->fe, i), ==,
                        vhu_test_frontend_get_ring (f->fe, i)->base);
    }

  assert_no_protocol_error (f);
}

static void
test_qemu_blk_realize (Fixture *f, gconstpointer data)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  assert_realized (f, 1);
}

/* qemu-blk-trace.txt RUN 1: realize, SeaBIOS starts and stops the device,
 * Linux starts it again, and poweroff stops it and closes the socket. */
static void
test_qemu_blk_boot (Fixture *f, gconstpointer data)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  assert_realized (f, 1);

  /* SeaBIOS */
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  assert_started (f, 1, VHU_TEST_BLK_FEATURES_SEABIOS);
  assert_kick_starts (f, 0);
  g_assert_nonnull (
    strstr (vhu_test_device_get_events (f->device), "queue-started 0\nqueue-kicked 0\n"));

  vhu_test_frontend_qemu_blk_stop (f->fe, 1);
  assert_stopped (f, 1, 1);

  /* Linux: features renegotiated, memory table not sent again */
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 1, VHU_TEST_BLK_FEATURES_LINUX, NULL);
  assert_started (f, 1, VHU_TEST_BLK_FEATURES_LINUX);
  g_assert_true (vhost_user_device_has_feature (dev (f), VHOST_USER_FEATURE_RING_EVENT_IDX)
                 == ((vhu_test_frontend_get_offered_features (f->fe)
                      & VF (RING_EVENT_IDX)) != 0));
  assert_kick_starts (f, 0);
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, 0), ==, 2);

  vhu_test_frontend_qemu_blk_stop (f->fe, 1);
  assert_stopped (f, 1, 2);

  /* poweroff: the socket closes after the stop */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_assert_false (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (f->connected_notifies, ==, 2);
  /* Already stopped rings are not stopped twice. */
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 2);
}

/* Two queues, as -device vhost-user-blk-pci,num-queues=2 */
static void
test_qemu_blk_two_queues (Fixture *f, gconstpointer data)
{
  guint kicked0, kicked1;

  vhu_test_frontend_qemu_blk_realize (f->fe);
  assert_realized (f, 2);

  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 2, VHU_TEST_BLK_FEATURES_LINUX, NULL);
  assert_started (f, 2, VHU_TEST_BLK_FEATURES_LINUX);

  /* Kicks are per ring. */
  kicked0 = vhu_test_device_get_kicked_count (f->device, 0);
  assert_kick_starts (f, 1);
  g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, 0), ==, kicked0);
  kicked1 = vhu_test_device_get_kicked_count (f->device, 1);
  assert_kick_starts (f, 0);
  g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, 1), ==, kicked1);

  vhu_test_frontend_qemu_blk_stop (f->fe, 2);
  assert_stopped (f, 2, 1);
}

/* qemu-blk-trace.txt RUN 2: after a back-end restart QEMU restores the ring
 * with SET_VRING_BASE 16; GET_VRING_BASE gives back what was set when no
 * request was processed in between. */
static void
test_qemu_blk_vring_base (Fixture *f, gconstpointer data)
{
  const guint16 bases[] = { 16 };
  guint cycles;

  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 1, VHU_TEST_BLK_FEATURES_LINUX, bases);
  assert_started (f, 1, VHU_TEST_BLK_FEATURES_LINUX);
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 0)), ==, 16);

  /* Stopped without a written kick: the base comes back, and the ring
   * stopped as often as it started (once if SET_VRING_KICK started it). */
  vhu_test_frontend_qemu_blk_stop (f->fe, 1);
  g_assert_cmpuint (vhu_test_frontend_get_last_vring_base (f->fe, 0), ==, 16);
  cycles = vhu_test_device_get_started_count (f->device, 0);
  g_assert_cmpuint (cycles, <=, 1);
  assert_stopped (f, 1, cycles);

  /* Started by a kick (avail->idx == base: nothing to process), stopped. */
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 1, VHU_TEST_BLK_FEATURES_LINUX, bases);
  assert_kick_starts (f, 0);
  vhu_test_frontend_qemu_blk_stop (f->fe, 1);
  assert_stopped (f, 1, cycles + 1);
  g_assert_cmpuint (vhu_test_frontend_get_last_vring_base (f->fe, 0), ==, 16);
}

/* Ring states: SET_VRING_ENABLE 0 disables a started ring without stopping
 * it; only GET_VRING_BASE stops it. */
static void
test_ring_states (Fixture *f, gconstpointer data)
{
  guint32 base;
  guint kicked;

  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  assert_kick_starts (f, 0);

  vhu_test_frontend_vring_state (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_false (queue_enabled (f, 0));
  g_assert_true (queue_started (f, 0));
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 0);

  /* Started and disabled: kicks are still taken. */
  kicked = vhu_test_device_get_kicked_count (f->device, 0);
  kick_and_flush (f, 0);
  g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, 0), ==, kicked + 1);
  kicked++;

  vhu_test_frontend_vring_state (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, 1);
  vhu_test_frontend_flush (f->fe);
  g_assert_true (queue_enabled (f, 0));
  g_assert_true (queue_started (f, 0));

  base = vhu_test_frontend_stop_ring (f->fe, 0);
  g_assert_cmpuint (base, ==, 0);
  g_assert_false (queue_started (f, 0));
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 1);
  /* Enabled/disabled is tracked independently of started/stopped. */
  g_assert_true (queue_enabled (f, 0));

  /* A stopped ring ignores kicks until it is set up again. */
  vhu_test_frontend_kick (f->fe, 0);
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_false (queue_started (f, 0));
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, 0), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_kicked_count (f->device, 0), ==, kicked);
  assert_no_protocol_error (f);
}

/* DPDK 22.11 virtio-user (virtio-user-trace.txt): probe, port start, stop. */
static void
test_virtio_user_session (Fixture *f, gconstpointer data)
{
  guint64 offered, offered_pf, expected_pf;
  guint i;

  vhu_test_frontend_virtio_user_probe (f->fe);

  offered = vhu_test_frontend_get_offered_features (f->fe);
  offered_pf = vhu_test_frontend_get_offered_protocol_features (f->fe);
  expected_pf = offered_pf & VHU_TEST_VIRTIO_USER_PROTOCOL_FEATURES;
  g_assert_cmphex (offered_pf & VHU_TEST_VIRTIO_USER_PROTOCOL_FEATURES, ==,
                   VHU_TEST_VIRTIO_USER_PROTOCOL_FEATURES);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, expected_pf);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==,
                   offered & VHU_TEST_VIRTIO_USER_FEATURES);
  g_assert_cmphex (vhu_test_device_get_negotiated_features (f->device), ==,
                   offered & VHU_TEST_VIRTIO_USER_FEATURES);
  /* SET_STATUS FEATURES_OK was acked and GET_STATUS read it back. */
  g_assert_cmphex (vhost_user_device_get_status (dev (f)), ==,
                   VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE | VHOST_USER_DEVICE_STATUS_DRIVER
                     | VHOST_USER_DEVICE_STATUS_FEATURES_OK);
  for (i = 0; i < 2; i++)
    {
      g_assert_false (queue_enabled (f, i));
      g_assert_false (queue_started (f, i));
    }

  vhu_test_frontend_virtio_user_start (f->fe, f->ram);
  g_assert_cmphex (vhost_user_device_get_status (dev (f)), ==,
                   VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE | VHOST_USER_DEVICE_STATUS_DRIVER
                     | VHOST_USER_DEVICE_STATUS_FEATURES_OK
                     | VHOST_USER_DEVICE_STATUS_DRIVER_OK);
  for (i = 0; i < 2; i++)
    {
      g_assert_true (queue_enabled (f, i));
      g_assert_cmpuint (vhost_user_virtqueue_get_size (queue (f, i)), ==,
                        VHU_TEST_VIRTIO_USER_QUEUE_SIZE);
      assert_kick_starts (f, i);
    }

  vhu_test_frontend_virtio_user_stop (f->fe);
  for (i = 0; i < 2; i++)
    {
      g_assert_false (queue_enabled (f, i));
      g_assert_false (queue_started (f, i));
      g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, i), ==, 1);
      g_assert_cmpuint (vhu_test_frontend_get_last_vring_base (f->fe, i), ==, 0);
    }
  assert_no_protocol_error (f);

  /* testpmd quits: the socket closes. */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_assert_false (vhost_user_device_get_connected (dev (f)));
}

/* Feature negotiation */

/* A front-end that does not ack PROTOCOL_FEATURES: SET_FEATURES enables
 * every ring at once, and a ring runs without SET_VRING_ENABLE. */
static void
test_features_without_protocol_features (Fixture *f, gconstpointer data)
{
  guint64 offered, acked;
  guint i;

  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_SET_OWNER, VHU_VERSION, NULL, 0,
                                         NULL, 0));
  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  acked = offered & ~VF (PROTOCOL_FEATURES);
  g_assert_cmphex (acked & VF (VERSION_1), ==, VF (VERSION_1));

  for (i = 0; i < 2; i++)
    g_assert_false (queue_enabled (f, i));

  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_FEATURES, acked);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, acked);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, 0);
  g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), ==, 1);
  g_assert_cmphex (vhu_test_device_get_negotiated_features (f->device), ==, acked);
  for (i = 0; i < 2; i++)
    {
      g_assert_true (queue_enabled (f, i));
      g_assert_false (queue_started (f, i));
    }

  /* No REPLY_ACK: SET_MEM_TABLE has no reply. */
  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, &f->ram, 1), ==, 0);
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  for (i = 0; i < 2; i++)
    {
      vhu_test_frontend_start_ring (f->fe, f->ram, i, VHU_TEST_QEMU_QUEUE_SIZE, 0);
      vhu_test_frontend_flush (f->fe);
      assert_kick_starts (f, i);
      g_assert_true (queue_enabled (f, i));
    }
  for (i = 0; i < 2; i++)
    {
      g_assert_cmpuint (vhu_test_frontend_stop_ring (f->fe, i), ==, 0);
      g_assert_false (queue_started (f, i));
      g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, i), ==, 1);
    }
  assert_no_protocol_error (f);
}

/* With PROTOCOL_FEATURES acked, rings start disabled and only
 * SET_VRING_ENABLE 1 enables them, one by one. A started, disabled ring
 * still runs (without side effects). */
static void
test_features_with_protocol_features (Fixture *f, gconstpointer data)
{
  guint64 offered, offered_pf, acked;

  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  offered_pf = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES,
                             offered_pf & (PF (MQ) | PF (REPLY_ACK)));
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_SET_OWNER, VHU_VERSION, NULL, 0,
                                         NULL, 0));
  acked = offered & (VF (VERSION_1) | VF (PROTOCOL_FEATURES));
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &acked,
                                                sizeof acked, NULL, 0),
                    ==, 0);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, acked);
  g_assert_false (queue_enabled (f, 0));
  g_assert_false (queue_enabled (f, 1));

  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, &f->ram, 1), ==, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, VHU_TEST_QEMU_QUEUE_SIZE, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 1, VHU_TEST_QEMU_QUEUE_SIZE, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_false (queue_enabled (f, 0));
  g_assert_false (queue_enabled (f, 1));

  vhu_test_frontend_vring_state (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, 1);
  vhu_test_frontend_flush (f->fe);
  g_assert_true (queue_enabled (f, 0));
  g_assert_false (queue_enabled (f, 1));

  /* Both start on a kick, enabled or not. */
  assert_kick_starts (f, 0);
  assert_kick_starts (f, 1);
  g_assert_false (queue_enabled (f, 1));

  vhu_test_frontend_vring_state (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 1, 1);
  vhu_test_frontend_flush (f->fe);
  g_assert_true (queue_enabled (f, 1));
  assert_no_protocol_error (f);
}

/* GET/SET_PROTOCOL_FEATURES work before SET_FEATURES, and acking protocol
 * features acks no virtio feature. */
static void
test_features_protocol_before_set_features (Fixture *f, gconstpointer data)
{
  guint64 offered, offered_pf, acked_pf;

  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmphex (offered & VF (PROTOCOL_FEATURES), ==, VF (PROTOCOL_FEATURES));

  offered_pf = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  g_assert_cmphex (offered_pf & LIBRARY_PROTOCOL_FEATURES, ==, LIBRARY_PROTOCOL_FEATURES);
  /* Asking twice gives the same answer. */
  g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES), ==,
                   offered_pf);

  acked_pf = offered_pf & (PF (MQ) | PF (REPLY_ACK) | PF (CONFIG));
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, acked_pf);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, acked_pf);
  g_assert_true (vhost_user_device_has_protocol_feature (dev (f), VHOST_USER_PROTOCOL_FEATURE_MQ));
  g_assert_false (vhost_user_device_has_protocol_feature (dev (f),
                                                          VHOST_USER_PROTOCOL_FEATURE_STATUS));
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, 0);
  g_assert_false (vhost_user_device_has_feature (dev (f), VHOST_USER_FEATURE_PROTOCOL_FEATURES));
  g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), ==, 0);

  /* What they enable works at once. */
  g_assert_cmpuint (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_QUEUE_NUM), ==, 2);
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL,
                                                0),
                    ==, 0);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, VHU_TEST_DEVICE_CONFIG_SIZE, NULL), ==,
                    VHU_CONFIG_HEADER_SIZE + VHU_TEST_DEVICE_CONFIG_SIZE);
  assert_no_protocol_error (f);
}

/* The protocol features a subclass adds by implementing the vfuncs. */
static void
test_features_subclass_protocol_features (void)
{
  gboolean extras;

  for (extras = FALSE; extras <= TRUE; extras++)
    {
      Fixture fixture = { 0 }, *f = &fixture;
      guint64 offered_pf;

      fixture_set_up_full (f, 1, extras, QEMU_UVA);
      g_assert_true (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES)
                     & VF (PROTOCOL_FEATURES));
      offered_pf = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
      g_assert_cmphex (offered_pf & LIBRARY_PROTOCOL_FEATURES, ==, LIBRARY_PROTOCOL_FEATURES);
      g_assert_cmphex (offered_pf & SUBCLASS_PROTOCOL_FEATURES, ==,
                       extras ? SUBCLASS_PROTOCOL_FEATURES : 0);
      fixture_tear_down (f, NULL);
    }
}

/* The device-specific feature bits come from the subclass. */
static void
test_features_subclass_features (void)
{
  Fixture fixture = { 0 }, *f = &fixture;
  guint64 offered;

  f->device = vhu_test_device_new (1, 0x6, FALSE);
  g_object_add_weak_pointer (G_OBJECT (f->device), (gpointer *) &f->device);
  f->fe = vhu_test_frontend_new_for_device (dev (f));

  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmphex (offered & 0xffffff, ==, 0x6);
  g_assert_cmphex (offered & VF (VERSION_1), ==, VF (VERSION_1));

  fixture_tear_down (f, NULL);
}

/* GET_CONFIG / SET_CONFIG */

static guint64
le64_at (const guint8 *p)
{
  guint64 v;

  memcpy (&v, p, sizeof v);
  return GUINT64_FROM_LE (v);
}

static guint32
le32_at (const guint8 *p)
{
  guint32 v;

  memcpy (&v, p, sizeof v);
  return GUINT32_FROM_LE (v);
}

static void
test_config_get (Fixture *f, gconstpointer data)
{
  guint8 config[VHU_TEST_DEVICE_CONFIG_SIZE];
  guint8 part[8];

  vhu_test_frontend_qemu_blk_realize (f->fe);

  /* The whole space, as QEMU reads it at realize. */
  memset (config, 0xaa, sizeof config);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, sizeof config, config), ==,
                    VHU_CONFIG_HEADER_SIZE + sizeof config);
  g_assert_cmpmem (config, sizeof config, vhu_test_device_get_config (f->device),
                   VHU_TEST_DEVICE_CONFIG_SIZE);
  g_assert_cmpuint (le64_at (config + VHU_TEST_DEVICE_CONFIG_CAPACITY), ==,
                    VHU_TEST_DEVICE_CAPACITY);
  g_assert_cmpuint (le32_at (config + VHU_TEST_DEVICE_CONFIG_BLK_SIZE), ==,
                    VHU_TEST_DEVICE_BLK_SIZE);
  g_assert_cmpuint (config[VHU_TEST_DEVICE_CONFIG_NUM_QUEUES], ==, 1);

  /* A part of it: the reply is for exactly the bytes asked for. */
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_TEST_DEVICE_CONFIG_SIZE_MAX, 4, part),
                    ==, VHU_CONFIG_HEADER_SIZE + 4);
  g_assert_cmpuint (le32_at (part), ==, VHU_TEST_DEVICE_SIZE_MAX);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_TEST_DEVICE_CONFIG_SIZE - 1, 1, part),
                    ==, VHU_CONFIG_HEADER_SIZE + 1);

  /* Past the end: the device refuses with a zero-length reply and the
   * session goes on. */
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, VHU_TEST_DEVICE_CONFIG_SIZE - 4, 8, part),
                    ==, 0);
  g_assert_true (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, 8, part), ==,
                    VHU_CONFIG_HEADER_SIZE + 8);
  g_assert_cmpuint (le64_at (part), ==, VHU_TEST_DEVICE_CAPACITY);
}

static void
test_config_set (Fixture *f, gconstpointer data)
{
  const guint8 wce = 1;
  guint8 capacity[8];
  guint8 byte = 0;

  vhu_test_frontend_qemu_blk_realize (f->fe);

  /* The driver toggles writeback: the writable field, flags 0. */
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_TEST_DEVICE_CONFIG_WRITEBACK, &wce, 1,
                                                  VHOST_USER_CONFIG_FLAGS_WRITABLE),
                    ==, 0);
  g_assert_cmpuint (vhu_test_device_get_set_config_count (f->device), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_config (f->device)[VHU_TEST_DEVICE_CONFIG_WRITEBACK], ==,
                    1);
  g_assert_cmpuint (
    vhu_test_frontend_get_config (f->fe, VHU_TEST_DEVICE_CONFIG_WRITEBACK, 1, &byte), ==,
    VHU_CONFIG_HEADER_SIZE + 1);
  g_assert_cmpuint (byte, ==, 1);

  /* A read-only field is refused (a real refusal: non-zero ack)... */
  memset (capacity, 0x11, sizeof capacity);
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_TEST_DEVICE_CONFIG_CAPACITY, capacity,
                                                  sizeof capacity,
                                                  VHOST_USER_CONFIG_FLAGS_WRITABLE),
                    !=, 0);
  g_assert_cmpuint (le64_at (vhu_test_device_get_config (f->device)), ==, VHU_TEST_DEVICE_CAPACITY);
  g_assert_true (vhost_user_device_get_connected (dev (f)));

  /* ...unless live migration restores it. */
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_TEST_DEVICE_CONFIG_CAPACITY, capacity,
                                                  sizeof capacity,
                                                  VHOST_USER_CONFIG_FLAGS_MIGRATION),
                    ==, 0);
  g_assert_cmpmem (vhu_test_device_get_config (f->device), sizeof capacity, capacity,
                   sizeof capacity);
  g_assert_cmpuint (vhu_test_device_get_set_config_count (f->device), ==, 2);
  g_assert_true (vhost_user_device_get_connected (dev (f)));
}

/* REPLY_ACK: NEED_REPLY on a good message gets exactly one reply, 0; on a
 * message that has a reply of its own it changes nothing. */
static void
test_reply_ack (Fixture *f, gconstpointer data)
{
  VhuVringState state = { .index = 0, .num = VHU_TEST_QEMU_QUEUE_SIZE };
  guint64 vring_index = 0;
  guint64 features, acked;
  VhuMessage reply;
  int efd;

  vhu_test_frontend_qemu_blk_realize (f->fe);
  g_assert_true (vhost_user_device_has_protocol_feature (dev (f),
                                                         VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK));

  features = vhu_test_frontend_get_offered_features (f->fe);
  acked = features & (VF (VERSION_1) | VF (PROTOCOL_FEATURES));
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &acked,
                                                sizeof acked, NULL, 0),
                    ==, 0);
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL,
                                                0),
                    ==, 0);
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, &state,
                                                sizeof state, NULL, 0),
                    ==, 0);
  g_assert_cmpuint (vhu_test_frontend_add_mem_reg (f->fe, f->ram), ==, 0);

  /* A message with an fd. */
  efd = vhu_test_new_eventfd ();
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL,
                                                &vring_index, sizeof vring_index, &efd, 1),
                    ==, 0);
  close (efd);

  /* GET_FEATURES has its own reply: NEED_REPLY adds no second one. */
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_FEATURES,
                                         VHU_VERSION | VHU_FLAG_NEED_REPLY, NULL, 0, NULL, 0));
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, VHU_TEST_TIMEOUT_MS));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmphex (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, 8);
  g_assert_cmphex (reply.payload.u64, ==, features);
  vhu_message_clear (&reply);
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));

  /* Same for GET_VRING_BASE. */
  state.num = 0;
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_VRING_BASE,
                                         VHU_VERSION | VHU_FLAG_NEED_REPLY, &state, sizeof state,
                                         NULL, 0));
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, VHU_TEST_TIMEOUT_MS));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_VRING_BASE);
  g_assert_cmphex (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof (VhuVringState));
  g_assert_cmpuint (reply.payload.state.index, ==, 0);
  vhu_message_clear (&reply);
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));

  /* A message without NEED_REPLY gets no reply. */
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_FEATURES, acked);
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_false (vhu_test_frontend_peer_closed (f->fe));
  assert_no_protocol_error (f);
}

/* RESET_DEVICE: reset emitted, every ring stopped and disabled, and the
 * device can be set up again. */
static void
test_reset_device (Fixture *f, gconstpointer data)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  g_assert_true (vhost_user_device_has_protocol_feature (dev (f),
                                                         VHOST_USER_PROTOCOL_FEATURE_RESET_DEVICE));
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 2, VHU_TEST_BLK_FEATURES_LINUX, NULL);
  assert_kick_starts (f, 0);
  g_assert_true (queue_enabled (f, 1));
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 0);

  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_RESET_DEVICE, NULL, 0,
                                                NULL, 0),
                    ==, 0);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);
  g_assert_false (queue_started (f, 0));
  g_assert_false (queue_enabled (f, 0));
  g_assert_false (queue_started (f, 1));
  g_assert_false (queue_enabled (f, 1));
  /* The running ring was stopped, once; every ring stopped as often as it
   * started. */
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 1), ==,
                    vhu_test_device_get_started_count (f->device, 1));
  /* A kick on the old eventfd does nothing now. */
  vhu_test_frontend_kick (f->fe, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_false (queue_started (f, 0));
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, 0), ==, 1);
  /* The session itself survives a device reset. */
  g_assert_true (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 0);

  /* Set up again, as after a guest reset. The memory table belongs to the
   * session, not to the device: QEMU does not send it again (it only sends
   * changes to what it believes the back-end has). */
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 2, VHU_TEST_BLK_FEATURES_LINUX, NULL);
  assert_started (f, 2, VHU_TEST_BLK_FEATURES_LINUX);
  assert_kick_starts (f, 0);
  g_assert_cmpuint (vhu_test_device_get_started_count (f->device, 0), ==, 2);
  vhu_test_frontend_qemu_blk_stop (f->fe, 2);
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 2);
  assert_no_protocol_error (f);
}

/* The back-end channel: BACKEND_CONFIG_CHANGE_MSG goes to the socket given
 * with SET_BACKEND_REQ_FD; with REPLY_ACK it asks for a reply, and the
 * operation completes when the front-end answers. */
typedef struct
{
  gboolean done;
  gboolean ok;
  GError *error;
} AsyncResult;

static void
on_config_changed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  AsyncResult *r = user_data;

  r->ok = vhost_user_device_notify_config_changed_finish (VHOST_USER_DEVICE (source), result,
                                                          &r->error);
  r->done = TRUE;
}

static void
test_backend_channel_config_change (Fixture *f, gconstpointer data)
{
  AsyncResult result = { 0 };
  VhuMessage request;
  gint64 deadline;

  vhu_test_frontend_qemu_blk_realize (f->fe);
  g_assert_cmpint (vhu_test_frontend_get_backend_fd (f->fe), >=, 0);

  vhost_user_device_notify_config_changed_async (dev (f), NULL, on_config_changed, &result);

  g_assert_true (vhu_test_frontend_recv_backend (f->fe, &request, VHU_TEST_TIMEOUT_MS));
  g_assert_cmpuint (request.hdr.request, ==, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG);
  g_assert_cmphex (request.hdr.flags, ==, VHU_VERSION | VHU_FLAG_NEED_REPLY);
  g_assert_cmpuint (request.hdr.size, ==, 0);
  g_assert_cmpuint (request.n_fds, ==, 0);

  /* Not complete before the front-end answers. */
  vhu_test_frontend_flush (f->fe);
  g_assert_false (result.done);

  vhu_test_frontend_reply_backend (f->fe, &request, 0);
  vhu_message_clear (&request);
  deadline = g_get_monotonic_time () + VHU_TEST_TIMEOUT_MS * G_TIME_SPAN_MILLISECOND;
  while (!result.done && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_assert_true (result.done);
  g_assert_no_error (result.error);
  g_assert_true (result.ok);

  /* The main channel is untouched. */
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_true (vhost_user_device_get_connected (dev (f)));
  assert_no_protocol_error (f);
}

/* Disconnection */

static void
assert_served_from_scratch (Fixture *f)
{
  /* The old session's negotiation is gone... */
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, 0);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, 0);
  g_assert_false (queue_started (f, 0));
  g_assert_false (queue_enabled (f, 0));

  /* ...and a new front-end is served like the first one. */
  vhu_test_device_clear_records (f->device);
  f->fe = vhu_test_frontend_new_for_device (dev (f));
  g_assert_true (vhost_user_device_get_connected (dev (f)));
  vhu_test_frontend_qemu_blk_realize (f->fe);
  assert_realized (f, 1);
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  assert_started (f, 1, VHU_TEST_BLK_FEATURES_SEABIOS);
  assert_kick_starts (f, 0);
  vhu_test_frontend_qemu_blk_stop (f->fe, 1);
  g_assert_false (queue_started (f, 0));
}

static void
test_disconnect_frontend_closes (Fixture *f, gconstpointer data)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  assert_kick_starts (f, 0);

  /* The front-end dies with the ring running. */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_assert_false (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (f->connected_notifies, ==, 2);
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 1);
  g_assert_true (strstr (vhu_test_device_get_events (f->device), "queue-stopped 0\n") != NULL);

  assert_served_from_scratch (f);
  g_assert_cmpuint (f->connected_notifies, ==, 3);
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 0);
  assert_no_protocol_error (f);
}

static void
test_disconnect_device_closes (Fixture *f, gconstpointer data)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  assert_kick_starts (f, 0);

  vhost_user_device_disconnect (dev (f));
  g_assert_true (vhu_test_frontend_wait_closed (f->fe, VHU_TEST_TIMEOUT_MS));
  g_assert_true (vhu_test_frontend_peer_closed (f->fe));
  vhu_test_drain_default_context ();
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_assert_false (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (f->connected_notifies, ==, 2);
  g_assert_cmpuint (vhu_test_device_get_stopped_count (f->device, 0), ==, 1);

  /* Disconnecting again is harmless. */
  vhost_user_device_disconnect (dev (f));
  vhu_test_drain_default_context ();
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  assert_served_from_scratch (f);
  assert_no_protocol_error (f);
}

/* No fd leaks: a whole session (both front-end kinds, both ways of
 * disconnecting, a reconnection) leaves the fd table as it found it. */
static void
run_sessions (void)
{
  g_autoptr (VhuTestDevice) device =
    vhu_test_device_new (2, VHU_TEST_DEVICE_DEFAULT_FEATURES, TRUE);
  g_autoptr (VhuTestGuestRam) ram = vhu_test_guest_ram_new (RAM_SIZE, QEMU_GPA, QEMU_UVA);
  g_autoptr (VhuTestGuestRam) ram2 =
    vhu_test_guest_ram_new (RAM_SIZE, VIRTIO_USER_ADDR, VIRTIO_USER_ADDR);
  VhuTestFrontend *fe;
  int efd;

  /* QEMU: realize, two starts, stop, RESET_DEVICE, front-end closes. */
  fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (device));
  vhu_test_frontend_qemu_blk_realize (fe);
  vhu_test_frontend_qemu_blk_start (fe, ram, 2);
  vhu_test_frontend_kick (fe, 0);
  vhu_test_frontend_flush (fe);
  vhu_test_frontend_qemu_blk_stop (fe, 2);
  vhu_test_frontend_qemu_blk_start_full (fe, ram, 2, VHU_TEST_BLK_FEATURES_LINUX, NULL);
  vhu_test_frontend_kick (fe, 1);
  vhu_test_frontend_flush (fe);
  /* Replaced eventfds: the device must close the ones it held. */
  efd = vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_ERR, 0, TRUE);
  close (efd);
  efd = vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_CALL, 1, FALSE);
  g_assert_cmpint (efd, ==, -1);
  g_assert_cmpuint (vhu_test_frontend_call_ack (fe, VHOST_USER_REQUEST_RESET_DEVICE, NULL, 0, NULL,
                                                0),
                    ==, 0);
  vhu_test_frontend_free (fe);
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (VHOST_USER_DEVICE (device)));

  /* virtio-user: probe, start, stop; the device closes the connection. */
  fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (device));
  vhu_test_frontend_virtio_user_probe (fe);
  vhu_test_frontend_virtio_user_start (fe, ram2);
  vhu_test_frontend_kick (fe, 0);
  vhu_test_frontend_kick (fe, 1);
  vhu_test_frontend_flush (fe);
  vhost_user_device_disconnect (VHOST_USER_DEVICE (device));
  g_assert_true (vhu_test_frontend_wait_closed (fe, VHU_TEST_TIMEOUT_MS));
  vhu_test_frontend_free (fe);
  vhu_test_drain_default_context ();

  /* A session that ends mid-setup. */
  fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (device));
  vhu_test_frontend_qemu_blk_realize (fe);
  g_assert_cmpuint (vhu_test_frontend_add_mem_reg (fe, ram), ==, 0);
  vhu_test_frontend_free (fe);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (device), ==, 3);
}

static void
test_no_fd_leaks (void)
{
  guint before, after;

  /* One session first, so that one-time fds (the main context's wakeup
   * fd and the like) exist before counting. */
  vhu_test_drain_default_context ();
  run_sessions ();
  vhu_test_drain_default_context ();

  before = vhu_test_count_fds ();
  run_sessions ();
  vhu_test_drain_default_context ();
  after = vhu_test_count_fds ();

  g_assert_cmpuint (after, ==, before);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add ("/vhost-user/device/qemu-blk/realize", Fixture, NULL, fixture_set_up_1q,
              test_qemu_blk_realize, fixture_tear_down);
  g_test_add ("/vhost-user/device/qemu-blk/boot", Fixture, NULL, fixture_set_up_1q,
              test_qemu_blk_boot, fixture_tear_down);
  g_test_add ("/vhost-user/device/qemu-blk/two-queues", Fixture, NULL, fixture_set_up_2q,
              test_qemu_blk_two_queues, fixture_tear_down);
  g_test_add ("/vhost-user/device/qemu-blk/vring-base", Fixture, NULL, fixture_set_up_1q,
              test_qemu_blk_vring_base, fixture_tear_down);
  g_test_add ("/vhost-user/device/ring-states", Fixture, NULL, fixture_set_up_1q,
              test_ring_states, fixture_tear_down);
  g_test_add ("/vhost-user/device/virtio-user/session", Fixture, NULL, fixture_set_up_virtio_user,
              test_virtio_user_session, fixture_tear_down);
  g_test_add ("/vhost-user/device/features/without-protocol-features", Fixture, NULL,
              fixture_set_up_2q, test_features_without_protocol_features, fixture_tear_down);
  g_test_add ("/vhost-user/device/features/with-protocol-features", Fixture, NULL,
              fixture_set_up_2q, test_features_with_protocol_features, fixture_tear_down);
  g_test_add ("/vhost-user/device/features/protocol-before-set-features", Fixture, NULL,
              fixture_set_up_2q, test_features_protocol_before_set_features, fixture_tear_down);
  g_test_add_func ("/vhost-user/device/features/subclass-protocol-features",
                   test_features_subclass_protocol_features);
  g_test_add_func ("/vhost-user/device/features/subclass-features",
                   test_features_subclass_features);
  g_test_add ("/vhost-user/device/config/get", Fixture, NULL, fixture_set_up_1q, test_config_get,
              fixture_tear_down);
  g_test_add ("/vhost-user/device/config/set", Fixture, NULL, fixture_set_up_1q, test_config_set,
              fixture_tear_down);
  g_test_add ("/vhost-user/device/reply-ack", Fixture, NULL, fixture_set_up_1q, test_reply_ack,
              fixture_tear_down);
  g_test_add ("/vhost-user/device/reset-device", Fixture, NULL, fixture_set_up_2q,
              test_reset_device, fixture_tear_down);
  g_test_add ("/vhost-user/device/backend-channel/config-change", Fixture, NULL,
              fixture_set_up_1q, test_backend_channel_config_change, fixture_tear_down);
  g_test_add ("/vhost-user/device/disconnect/frontend-closes", Fixture, NULL, fixture_set_up_1q,
              test_disconnect_frontend_closes, fixture_tear_down);
  g_test_add ("/vhost-user/device/disconnect/device-closes", Fixture, NULL, fixture_set_up_1q,
              test_disconnect_device_closes, fixture_tear_down);
  g_test_add_func ("/vhost-user/device/no-fd-leaks", test_no_fd_leaks);

  return g_test_run ();
}
