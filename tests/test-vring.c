/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The data path: split rings driven by a test virtio driver (vhu-test-driver)
 * in guest RAM shared with a VhostUserDevice through the test front-end. A
 * device type defined here serves requests when its queues are kicked: it
 * reads what the driver offered and writes a transform of it back, so that
 * every request can be checked byte for byte. Covered: thousands of random
 * requests against an oracle (chains of 1, 2 and 4 buffers, direct and
 * indirect, with and without EVENT_IDX and NO_INTERRUPT), buffers crossing
 * memory regions, batches, unpop, dropped elements, notification
 * suppression, queues on a worker thread, stop and restart, dirty logging,
 * and the ring-level and lifecycle rows of
 * shared/reference/bad-inputs.md (R1 to R25, L1, L2, L4 to L6, L8): a ring
 * the guest corrupts is broken alone, signals its error eventfd, and nothing
 * else suffers.
 *
 * VHU_TEST_VRING_REQUESTS sets how many requests the oracle tests make
 * (20000 by default; fewer under valgrind).
 */

#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhu-test-driver.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

#define N_QUEUES 2u

/* Two adjacent guest RAM regions (sparse memfds), far apart in the
 * front-end's address space, so that a buffer at BOUNDARY crosses from one
 * mapping into another. */
#define RAM_SIZE (8u * 1024 * 1024)
#define RAM_A_GPA G_GUINT64_CONSTANT (0)
#define RAM_B_GPA ((guint64) RAM_SIZE)
#define RAM_A_UVA G_GUINT64_CONSTANT (0x7f0000000000)
#define RAM_B_UVA G_GUINT64_CONSTANT (0x7f4000000000)
#define BOUNDARY RAM_B_GPA
#define MIB (G_GUINT64_CONSTANT (1024) * 1024)

/* Queue q's rings at RING_OFFSET (q) in RAM A; its driver's data area is
 * [1 MiB, 5 MiB) of RAM A (queue 0) or of RAM B (queue 1). What the tests
 * write by hand goes to SCRATCH, [5 MiB, 7 MiB) of RAM A. */
#define RING_OFFSET(q) (0x10000u + (q) * 0x10000u)
#define DATA_GPA(q) ((q) == 0 ? RAM_A_GPA + MIB : RAM_B_GPA + MIB)
#define DATA_SIZE (4 * MIB)
#define SCRATCH (RAM_A_GPA + 5 * MIB)

#define BASE_FEATURES (VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VF (RING_INDIRECT_DESC))
#define PROTOCOL_FEATURES (PF (MQ) | PF (REPLY_ACK) | PF (LOG_SHMFD))

#define WAIT_MS 5000
#define QUIET_MS 200

static GThread *main_thread;

/* ------------------------------------------------------------------------ */
/* The device                                                               */

typedef enum
{
  MODE_ECHO,   /* pop, serve, push each */
  MODE_BATCH,  /* pop up to `batch`, serve, fill each, one flush and notify */
  MODE_HOLD,   /* pop and keep (the test pushes) */
  MODE_IGNORE, /* nothing: the test pops itself */
} Mode;

typedef struct
{
  Mode mode;
  guint budget;    /* most elements taken per kick; 0: all */
  guint batch;     /* MODE_BATCH */
  GThread *thread; /* where this queue's signals must come (NULL: the test's thread) */

  gint started;
  gint stopped;
  gint kicked;
  gint handled; /* kicks whose handler returned */
  gint n_held;  /* elements MODE_HOLD took, in all */
  gint served;
  gint wrong_thread;
  gint broken_errors;
  gint other_errors;
  gint mismatches; /* an element whose segments disagree with its sizes */
  guint last_out_niov;
  guint last_in_niov;
  GPtrArray *held; /* MODE_HOLD */
} QueueState;

#define TEST_TYPE_VRING_DEVICE (test_vring_device_get_type ())
G_DECLARE_FINAL_TYPE (TestVringDevice, test_vring_device, TEST, VRING_DEVICE, VhostUserDevice)

struct _TestVringDevice
{
  VhostUserDevice parent_instance;
  QueueState queues[N_QUEUES];
};

G_DEFINE_FINAL_TYPE (TestVringDevice, test_vring_device, VHOST_USER_TYPE_DEVICE)

/* What the device writes back: byte k of the response to a request. */
static guint8
response_byte (const guint8 *out, gsize out_size, gsize k)
{
  if (out_size == 0)
    return (guint8) (k * 7 + 1);
  return out[k] ^ 0xa5 ^ (guint8) k;
}

static gsize
response_length (gsize out_size, gsize in_size)
{
  return out_size > 0 ? MIN (out_size, in_size) : in_size;
}

static QueueState *
queue_state (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  guint index = vhost_user_virtqueue_get_index (queue);

  g_assert_cmpuint (index, <, N_QUEUES);
  return &TEST_VRING_DEVICE (device)->queues[index];
}

static void
check_thread (QueueState *qs)
{
  GThread *expected = g_atomic_pointer_get (&qs->thread);

  if (g_thread_self () != (expected != NULL ? expected : main_thread))
    g_atomic_int_inc (&qs->wrong_thread);
}

/* Reads the request through the segments, writes the response; returns its
 * length. */
static gsize
serve_element (QueueState *qs, VhostUserVirtqElement *elem)
{
  gsize out_size = vhost_user_virtq_element_get_out_size (elem);
  gsize in_size = vhost_user_virtq_element_get_in_size (elem);
  gsize len = response_length (out_size, in_size);
  guint n_out, n_in;
  const struct iovec *out_iov = vhost_user_virtq_element_get_out_iov (elem, &n_out);
  const struct iovec *in_iov = vhost_user_virtq_element_get_in_iov (elem, &n_in);
  g_autofree guint8 *out = g_malloc (out_size + 1);
  g_autofree guint8 *resp = g_malloc (len + 1);
  gsize sum = 0, got = 0;

  for (guint i = 0; i < n_out; i++)
    {
      memcpy (out + got, out_iov[i].iov_base, MIN (out_iov[i].iov_len, out_size - got));
      got += MIN (out_iov[i].iov_len, out_size - got);
      sum += out_iov[i].iov_len;
    }
  if (sum != out_size || got != out_size)
    g_atomic_int_inc (&qs->mismatches);
  sum = 0;
  for (guint i = 0; i < n_in; i++)
    sum += in_iov[i].iov_len;
  if (sum != in_size)
    g_atomic_int_inc (&qs->mismatches);
  g_atomic_int_set (&qs->last_out_niov, n_out);
  g_atomic_int_set (&qs->last_in_niov, n_in);

  /* The copying helper must agree with the segments. */
  if (out_size > 0 && out_size < 65536)
    {
      g_autofree guint8 *again = g_malloc (out_size);

      if (vhost_user_virtq_element_read (elem, 0, again, out_size) != out_size
          || memcmp (again, out, out_size) != 0)
        g_atomic_int_inc (&qs->mismatches);
    }

  for (gsize k = 0; k < len; k++)
    resp[k] = response_byte (out, out_size, k);
  if (vhost_user_virtq_element_write (elem, 0, resp, len) != len)
    g_atomic_int_inc (&qs->mismatches);
  g_atomic_int_inc (&qs->served);
  return len;
}

/* Pops one element; a NULL with an error is recorded. */
static VhostUserVirtqElement *
pop_recorded (QueueState *qs, VhostUserVirtqueue *queue)
{
  g_autoptr (GError) error = NULL;
  VhostUserVirtqElement *elem = vhost_user_virtqueue_pop (queue, &error);

  if (elem == NULL && error != NULL)
    {
      if (g_error_matches (error, VHOST_USER_ERROR, VHOST_USER_ERROR_QUEUE_BROKEN))
        g_atomic_int_inc (&qs->broken_errors);
      else
        g_atomic_int_inc (&qs->other_errors);
    }
  return elem;
}

static void
serve_echo (QueueState *qs, VhostUserVirtqueue *queue)
{
  guint n = 0;

  /* The usual pattern: no kicks while draining, then re-enable and look
   * once more for what came meanwhile. */
  do
    {
      vhost_user_virtqueue_set_notification (queue, FALSE);
      while (qs->budget == 0 || n < qs->budget)
        {
          g_autoptr (VhostUserVirtqElement) elem = pop_recorded (qs, queue);
          gsize len;

          if (elem == NULL)
            break;
          len = serve_element (qs, elem);
          vhost_user_virtqueue_push (queue, elem, len);
          n++;
        }
      vhost_user_virtqueue_set_notification (queue, TRUE);
    }
  while ((qs->budget == 0 || n < qs->budget) && !vhost_user_virtqueue_get_broken (queue)
         && !vhost_user_virtqueue_is_empty (queue));
}

static void
serve_batch (QueueState *qs, VhostUserVirtqueue *queue)
{
  g_autoptr (GPtrArray) elems =
    g_ptr_array_new_with_free_func ((GDestroyNotify) vhost_user_virtq_element_unref);

  do
    {
      gboolean more = TRUE;

      vhost_user_virtqueue_set_notification (queue, FALSE);
      while (more)
        {
          VhostUserVirtqElement *elem;

          while (elems->len < qs->batch && (elem = pop_recorded (qs, queue)) != NULL)
            {
              vhost_user_virtqueue_fill (queue, elem, serve_element (qs, elem), elems->len);
              g_ptr_array_add (elems, elem);
            }
          more = elems->len == qs->batch;
          if (elems->len > 0)
            {
              vhost_user_virtqueue_flush (queue, elems->len);
              vhost_user_virtqueue_notify (queue);
            }
          g_ptr_array_set_size (elems, 0);
        }
      vhost_user_virtqueue_set_notification (queue, TRUE);
    }
  while (!vhost_user_virtqueue_get_broken (queue) && !vhost_user_virtqueue_is_empty (queue));
}

static void
serve_hold (QueueState *qs, VhostUserVirtqueue *queue)
{
  VhostUserVirtqElement *elem;

  while ((qs->budget == 0 || qs->held->len < qs->budget)
         && (elem = pop_recorded (qs, queue)) != NULL)
    {
      g_ptr_array_add (qs->held, elem);
      g_atomic_int_inc (&qs->n_held);
    }
}

static void
test_vring_device_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  QueueState *qs = queue_state (device, queue);

  check_thread (qs);
  g_atomic_int_inc (&qs->kicked);
  switch (qs->mode)
    {
    case MODE_ECHO:
      serve_echo (qs, queue);
      break;
    case MODE_BATCH:
      serve_batch (qs, queue);
      break;
    case MODE_HOLD:
      serve_hold (qs, queue);
      break;
    case MODE_IGNORE:
      break;
    }
  g_atomic_int_inc (&qs->handled);
}

static void
test_vring_device_queue_started (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  QueueState *qs = queue_state (device, queue);

  check_thread (qs);
  g_atomic_int_inc (&qs->started);
}

static void
test_vring_device_queue_stopped (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  QueueState *qs = queue_state (device, queue);

  check_thread (qs);
  g_atomic_int_inc (&qs->stopped);
}

static void
test_vring_device_finalize (GObject *object)
{
  TestVringDevice *self = TEST_VRING_DEVICE (object);

  for (guint i = 0; i < N_QUEUES; i++)
    g_ptr_array_unref (self->queues[i].held);

  G_OBJECT_CLASS (test_vring_device_parent_class)->finalize (object);
}

static void
test_vring_device_class_init (TestVringDeviceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  object_class->finalize = test_vring_device_finalize;
  device_class->queue_kicked = test_vring_device_queue_kicked;
  device_class->queue_started = test_vring_device_queue_started;
  device_class->queue_stopped = test_vring_device_queue_stopped;
}

static void
test_vring_device_init (TestVringDevice *self)
{
  for (guint i = 0; i < N_QUEUES; i++)
    {
      self->queues[i].mode = MODE_ECHO;
      self->queues[i].batch = 8;
      self->queues[i].held =
        g_ptr_array_new_with_free_func ((GDestroyNotify) vhost_user_virtq_element_unref);
    }
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

typedef struct
{
  TestVringDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram_a;
  VhuTestGuestRam *ram_b;
  VhuTestDriver *drv[N_QUEUES];
  int kick[N_QUEUES];
  int call[N_QUEUES];
  int err[N_QUEUES];
  guint64 features;
  GRand *rand;
  guint fds_before;
} Fixture;

static VhostUserVirtqueue *
queue (Fixture *f, guint q)
{
  VhostUserVirtqueue *vq = vhost_user_device_get_queue (VHOST_USER_DEVICE (f->device), q);

  g_assert_nonnull (vq);
  return vq;
}

static QueueState *
qstate (Fixture *f, guint q)
{
  g_assert_cmpuint (q, <, N_QUEUES);
  return &f->device->queues[q];
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  vhu_test_drain_default_context ();
  f->fds_before = vhu_test_count_fds ();

  f->device = g_object_new (TEST_TYPE_VRING_DEVICE, "num-queues", N_QUEUES, NULL);
  g_object_add_weak_pointer (G_OBJECT (f->device), (gpointer *) &f->device);
  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  f->ram_a = vhu_test_guest_ram_new (RAM_SIZE, RAM_A_GPA, RAM_A_UVA);
  f->ram_b = vhu_test_guest_ram_new (RAM_SIZE, RAM_B_GPA, RAM_B_UVA);
  for (guint q = 0; q < N_QUEUES; q++)
    f->kick[q] = f->call[q] = f->err[q] = -1;
  f->rand = g_rand_new_with_seed (g_test_rand_int ());
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();

  if (f->device != NULL)
    {
      for (guint q = 0; q < N_QUEUES; q++)
        g_ptr_array_set_size (f->device->queues[q].held, 0);
      vhu_test_drain_default_context ();
      g_object_unref (f->device);
      g_assert_null (f->device);
    }
  for (guint q = 0; q < N_QUEUES; q++)
    {
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
      vhu_test_close_fd (&f->kick[q]);
      vhu_test_close_fd (&f->call[q]);
      vhu_test_close_fd (&f->err[q]);
    }
  g_clear_pointer (&f->ram_a, vhu_test_guest_ram_free);
  g_clear_pointer (&f->ram_b, vhu_test_guest_ram_free);
  g_rand_free (f->rand);
  vhu_test_drain_default_context ();

  vhu_test_assert_fds (f->fds_before);
}

/* ------------------------------------------------------------------------ */
/* Front-end side                                                           */

static void
set_memory (Fixture *f)
{
  VhuTestGuestRam *rams[] = { f->ram_a, f->ram_b };

  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, rams, G_N_ELEMENTS (rams)), ==, 0);
}

/* Feature negotiation as QEMU does it; and the memory table. */
static void
negotiate_full (Fixture *f, guint64 features, gboolean with_memory)
{
  vhu_test_frontend_negotiate (f->fe, features, PROTOCOL_FEATURES);
  f->features = features;
  if (with_memory)
    set_memory (f);
}

static void
negotiate (Fixture *f, guint64 features)
{
  negotiate_full (f, features, TRUE);
}

static VhuTestDriver *
make_driver (Fixture *f, guint q, guint num)
{
  g_clear_pointer (&f->drv[q], vhu_test_driver_free);
  f->drv[q] = vhu_test_driver_new (f->ram_a, RING_OFFSET (q), num);
  vhu_test_driver_add_ram (f->drv[q], f->ram_b);
  vhu_test_driver_set_data_area (f->drv[q], DATA_GPA (q), DATA_SIZE);
  vhu_test_driver_set_event_idx (f->drv[q], (f->features & VF (RING_EVENT_IDX)) != 0);
  return f->drv[q];
}

static void
send_vring_addr (Fixture *f, guint q, guint32 flags)
{
  VhuVringAddr addr = vhu_test_driver_get_vring_addr (f->drv[q], q, flags);

  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
}

/* Sets ring @q up and starts it (SET_VRING_KICK). A new driver is made for
 * a new ring size; for the same size the driver goes on (a restart). */
static void
start_queue_full (Fixture *f, guint q, guint num, guint16 base, guint32 addr_flags)
{
  if (f->drv[q] == NULL || vhu_test_driver_get_num (f->drv[q]) != num)
    {
      make_driver (f, q, num);
      vhu_test_driver_set_base (f->drv[q], base);
    }

  g_assert_cmpuint (vhu_test_driver_start_ring (f->drv[q], f->fe, q, base, addr_flags, &f->kick[q],
                                                &f->call[q], &f->err[q]),
                    ==, 0);
  vhu_test_frontend_flush (f->fe);
}

static void
start_queue (Fixture *f, guint q, guint num, guint16 base)
{
  start_queue_full (f, q, num, base, 0);
}

static guint32
stop_queue (Fixture *f, guint q)
{
  return vhu_test_frontend_get_vring_base (f->fe, q);
}

/* Stops ring @q and starts it again where it stopped. */
static guint32
restart_queue (Fixture *f, guint q)
{
  guint32 base = stop_queue (f, q);

  start_queue (f, q, vhu_test_driver_get_num (f->drv[q]), base);
  return base;
}

static void
kick (Fixture *f, guint q)
{
  g_assert_cmpint (f->kick[q], >=, 0);
  g_assert_cmpint (eventfd_write (f->kick[q], 1), ==, 0);
}

static guint64
read_call (Fixture *f, guint q)
{
  return vhu_test_read_eventfd (f->call[q]);
}

/* Waits until the device has returned @n more entries than the driver took
 * (the device may run on another thread). */
static void
wait_used (Fixture *f, guint q, guint n)
{
  VhuTestDriver *drv = f->drv[q];
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;

  while ((guint16) (vhu_test_driver_get_used_idx (drv) - vhu_test_driver_get_last_used (drv)) < n)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (100);
      if (g_get_monotonic_time () > deadline)
        g_error ("queue %u: %u used entries did not come (%u did)", q, n,
                 (guint16) (vhu_test_driver_get_used_idx (drv)
                            - vhu_test_driver_get_last_used (drv)));
    }
}

static void
fill_random (GRand *rand, guint8 *buf, gsize len)
{
  for (gsize i = 0; i < len; i++)
    buf[i] = (guint8) g_rand_int (rand);
}

/* Checks what the device wrote for @head (and left alone past it). */
static void
check_response (VhuTestDriver *drv,
                guint head,
                guint32 len,
                const guint8 *out,
                gsize out_size,
                gsize in_size)
{
  gsize expected = response_length (out_size, in_size);
  g_autofree guint8 *got = g_malloc (in_size + 1);
  g_autofree guint8 *want = g_malloc (in_size + 1);

  g_assert_cmpuint (vhu_test_driver_get_in_size (drv, head), ==, in_size);
  g_assert_cmpuint (vhu_test_driver_get_out_size (drv, head), ==, out_size);
  g_assert_cmpuint (len, ==, expected);
  g_assert_cmpuint (vhu_test_driver_read_in (drv, head, got, in_size), ==, in_size);
  for (gsize k = 0; k < in_size; k++)
    want[k] = k < expected ? response_byte (out, out_size, k) : VHU_TEST_DRIVER_CANARY;
  if (memcmp (got, want, in_size) != 0)
    {
      gsize k = 0;

      while (got[k] == want[k])
        k++;
      g_error ("head %u: byte %" G_GSIZE_FORMAT " of %" G_GSIZE_FORMAT " is 0x%02x, not 0x%02x",
               head, k, in_size, got[k], want[k]);
    }
}

/* One request on queue @q, served and checked. */
static void
round_trip_full (Fixture *f, guint q, guint out_len, guint in_len, gboolean indirect)
{
  VhuTestDriver *drv = f->drv[q];
  g_autofree guint8 *out = g_malloc (out_len + 1);
  VhuTestBuffer bufs[2];
  guint n = 0, head;
  guint32 len;
  gint added;

  fill_random (f->rand, out, out_len);
  if (out_len > 0)
    bufs[n++] = VHU_TEST_OUT (out, out_len);
  if (in_len > 0)
    bufs[n++] = VHU_TEST_IN (in_len);
  added = vhu_test_driver_add (drv, bufs, n, indirect);
  g_assert_cmpint (added, >=, 0);
  vhu_test_driver_publish (drv);
  kick (f, q);
  wait_used (f, q, 1);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, added);
  check_response (drv, head, len, out, out_len, in_len);
}

static void
round_trip (Fixture *f, guint q)
{
  round_trip_full (f, q, 100, 200, FALSE);
}

static void
assert_queue_healthy (Fixture *f, guint q)
{
  QueueState *qs = qstate (f, q);

  g_assert_false (vhost_user_virtqueue_get_broken (queue (f, q)));
  g_assert_cmpint (g_atomic_int_get (&qs->broken_errors), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->other_errors), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->mismatches), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->wrong_thread), ==, 0);
  if (f->err[q] >= 0)
    g_assert_cmpuint (vhu_test_read_eventfd (f->err[q]), ==, 0);
}

/* ------------------------------------------------------------------------ */
/* The oracle: thousands of random requests                                 */

typedef struct
{
  gboolean event_idx;
  gboolean no_interrupt;
  Mode mode;
  guint num;
  guint16 base;
} OracleParams;

typedef struct
{
  gboolean pending;
  guint8 *out;
  gsize out_size;
  gsize in_size;
} Expect;

/* A random number from 1 to @max, at most @limit. */
static guint
random_count (GRand *rand, guint max, guint limit)
{
  guint n = g_rand_int_range (rand, 1, max + 1);

  return MIN (n, limit);
}

/* Mostly small, sometimes up to 8000 bytes, never more than @max. */
static guint
random_size (GRand *rand, guint max)
{
  guint size;

  if (g_rand_int_range (rand, 0, 20) == 0)
    size = g_rand_int_range (rand, 1, 8001);
  else
    size = g_rand_int_range (rand, 1, 1501);
  return MIN (size, max);
}

/* Adds a random chain: 1, 2 or 4 buffers, some readable then the rest
 * writable, direct or indirect. Returns the head or -1. */
static gint
add_random_chain (Fixture *f, guint q, Expect *expect)
{
  static const guint shapes[] = { 1, 2, 4 };
  VhuTestDriver *drv = f->drv[q];
  guint n = shapes[g_rand_int_range (f->rand, 0, G_N_ELEMENTS (shapes))];
  guint n_out = g_rand_int_range (f->rand, 0, n + 1);
  gboolean indirect = (f->features & VF (RING_INDIRECT_DESC)) && g_rand_boolean (f->rand);
  VhuTestBuffer bufs[4];
  guint sizes[4];
  gsize out_size = 0, in_size = 0, offset = 0;
  g_autofree guint8 *out = NULL;
  /* Room for four buffers and a table in a slot. */
  guint max = (vhu_test_driver_get_slot_size (drv) - 64) / 4 - 8;
  gint head;

  for (guint i = 0; i < n; i++)
    {
      sizes[i] = random_size (f->rand, max);
      if (i < n_out)
        out_size += sizes[i];
      else
        in_size += sizes[i];
    }
  out = g_malloc (out_size + 1);
  fill_random (f->rand, out, out_size);
  for (guint i = 0; i < n; i++)
    {
      if (i < n_out)
        {
          bufs[i] = VHU_TEST_OUT (out + offset, sizes[i]);
          offset += sizes[i];
        }
      else
        bufs[i] = VHU_TEST_IN (sizes[i]);
    }

  head = vhu_test_driver_add (drv, bufs, n, indirect);
  if (head < 0)
    return -1;
  g_assert_false (expect[head].pending);
  expect[head].pending = TRUE;
  g_free (expect[head].out);
  expect[head].out = g_steal_pointer (&out);
  expect[head].out_size = out_size;
  expect[head].in_size = in_size;
  return head;
}

/* Takes every used entry: each head once, with the right length and data.
 * Returns how many. */
static guint
collect_used (Fixture *f, guint q, Expect *expect)
{
  VhuTestDriver *drv = f->drv[q];
  guint head, n = 0;
  guint32 len;

  while (vhu_test_driver_get_used (drv, &head, &len))
    {
      g_assert_cmpuint (head, <, vhu_test_driver_get_num (drv));
      if (!expect[head].pending)
        g_error ("queue %u: head %u came back but was not pending", q, head);
      check_response (drv, head, len, expect[head].out, expect[head].out_size,
                      expect[head].in_size);
      expect[head].pending = FALSE;
      n++;
    }
  return n;
}

static void
run_oracle (Fixture *f, guint q, guint total, const OracleParams *p)
{
  VhuTestDriver *drv = f->drv[q];
  QueueState *qs = qstate (f, q);
  guint num = vhu_test_driver_get_num (drv);
  Expect *expect = g_new0 (Expect, num);
  gboolean first = TRUE;
  guint done = 0, rounds = 0;

  vhu_test_driver_set_no_interrupt (drv, p->no_interrupt);
  while (done < total)
    {
      guint want = random_count (f->rand, num, total - done);
      guint16 used_before = vhu_test_driver_get_last_used (drv);
      guint added = 0;
      guint64 expected_calls;

      while (added < want && add_random_chain (f, q, expect) >= 0)
        added++;
      g_assert_cmpuint (added, >, 0);

      if (p->event_idx)
        {
          guint16 used_event =
            first ? used_before : used_before + g_rand_int_range (f->rand, 0, 2 * added);

          vhu_test_driver_set_used_event (drv, used_event);
          /* One call when the used index passes used_event, none otherwise. */
          expected_calls = (guint16) (used_event - used_before) < added ? 1 : 0;
        }
      else if (p->no_interrupt)
        expected_calls = 0;
      else if (p->mode == MODE_BATCH)
        expected_calls = (added + qs->batch - 1) / qs->batch;
      else
        expected_calls = added;

      /* The device is idle with notifications on: it wants a kick. */
      g_assert_true (vhu_test_driver_publish (drv));
      kick (f, q);
      vhu_test_frontend_flush (f->fe);

      g_assert_cmpuint (collect_used (f, q, expect), ==, added);
      g_assert_cmpuint (read_call (f, q), ==, expected_calls);
      g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (queue (f, q)), ==, 0);
      g_assert_cmpuint (vhu_test_driver_get_in_flight (drv), ==, 0);
      if (p->event_idx)
        g_assert_cmpuint (vhu_test_driver_get_avail_event (drv), ==,
                          vhu_test_driver_get_avail_idx (drv));
      else
        g_assert_cmpuint (vhu_test_driver_get_used_flags (drv) & VHU_VRING_USED_F_NO_NOTIFY, ==, 0);
      done += added;
      rounds++;
      first = FALSE;
    }

  g_assert_cmpint (g_atomic_int_get (&qs->served), >=, total);
  g_assert_cmpint (g_atomic_int_get (&qs->kicked), >=, rounds);
  assert_queue_healthy (f, q);
  for (guint i = 0; i < num; i++)
    {
      g_assert_false (expect[i].pending);
      g_free (expect[i].out);
    }
  g_free (expect);
}

static void
test_oracle (Fixture *f, gconstpointer data)
{
  const OracleParams *p = data;
  guint total = vhu_test_requests_wanted (20000);
  guint64 features = BASE_FEATURES | (p->event_idx ? VF (RING_EVENT_IDX) : 0);
  guint16 base;

  negotiate (f, features);
  qstate (f, 0)->mode = p->mode;
  start_queue (f, 0, p->num, p->base);
  start_queue (f, 1, 64, 0);
  g_assert_cmpint (qstate (f, 0)->started, ==, 1);
  /* SET_VRING_KICK counted as the first kick. */
  g_assert_cmpint (qstate (f, 0)->kicked, ==, 1);

  run_oracle (f, 0, total, p);
  round_trip (f, 1);

  /* Stopped, the ring reports where it is. */
  base = p->base + total;
  g_assert_cmpuint (stop_queue (f, 0), ==, base);
  g_assert_cmpint (qstate (f, 0)->stopped, ==, 1);
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 0)), ==, base);
  assert_queue_healthy (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Buffers and tables crossing regions (R9, R10 spanning)                   */

static void
test_cross_region (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  guint8 out[700];
  gint head;
  guint got;
  guint32 len;

  negotiate (f, BASE_FEATURES);
  qstate (f, 0)->mode = MODE_ECHO;
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];
  fill_random (f->rand, out, sizeof out);

  /* A readable buffer across the boundary: two segments. */
  {
    VhuTestBuffer bufs[] = { VHU_TEST_OUT_AT (BOUNDARY - 100, out, 300), VHU_TEST_IN (300) };

    head = vhu_test_driver_add (drv, bufs, G_N_ELEMENTS (bufs), FALSE);
    vhu_test_driver_publish (drv);
    kick (f, 0);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (drv, &got, &len));
    g_assert_cmpuint (got, ==, head);
    check_response (drv, got, len, out, 300, 300);
    g_assert_cmpuint (qstate (f, 0)->last_out_niov, ==, 2);
    g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 1);
  }

  /* A writable one across it. */
  {
    VhuTestBuffer bufs[] = { VHU_TEST_OUT (out, 500), VHU_TEST_IN_AT (BOUNDARY - 7, 500) };

    head = vhu_test_driver_add (drv, bufs, G_N_ELEMENTS (bufs), FALSE);
    vhu_test_driver_publish (drv);
    kick (f, 0);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (drv, &got, &len));
    g_assert_cmpuint (got, ==, head);
    check_response (drv, got, len, out, 500, 500);
    g_assert_cmpuint (qstate (f, 0)->last_out_niov, ==, 1);
    g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 2);
  }

  /* R9: an indirect table across the boundary (two entries on each side),
   * its buffers crossing as well: copied, and used with the right
   * arithmetic. */
  {
    VhuTestBuffer bufs[] = {
      VHU_TEST_OUT_AT (BOUNDARY - 0x3000, out, 100),
      VHU_TEST_OUT_AT (BOUNDARY - 0x2000 - 50, out + 100, 600),
      VHU_TEST_IN_AT (BOUNDARY + 0x2000, 64),
      VHU_TEST_IN_AT (BOUNDARY + 0x3000, 900),
    };

    head = vhu_test_driver_add_full (drv, bufs, G_N_ELEMENTS (bufs), TRUE, BOUNDARY - 32);
    vhu_test_driver_publish (drv);
    kick (f, 0);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (drv, &got, &len));
    g_assert_cmpuint (got, ==, head);
    check_response (drv, got, len, out, 700, 964);
    g_assert_cmpuint (qstate (f, 0)->last_out_niov, ==, 2);
    g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 2);
  }

  /* Buffers ending and starting exactly at the boundary (one segment each),
   * through an indirect table entirely in the second region. */
  {
    VhuTestBuffer bufs[] = {
      VHU_TEST_OUT_AT (BOUNDARY - 300, out, 300),
      VHU_TEST_OUT_AT (BOUNDARY, out + 300, 2),
      VHU_TEST_IN_AT (BOUNDARY + 0x5000, 4396),
    };

    head = vhu_test_driver_add_full (drv, bufs, G_N_ELEMENTS (bufs), TRUE, BOUNDARY + 0x4000);
    vhu_test_driver_publish (drv);
    kick (f, 0);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (drv, &got, &len));
    g_assert_cmpuint (got, ==, head);
    check_response (drv, got, len, out, 302, 4396);
    g_assert_cmpuint (qstate (f, 0)->last_out_niov, ==, 2);
    g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 1);
  }

  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Batches, unpop, dropped elements                                         */

static void
assert_pop_empty (Fixture *f, guint q)
{
  g_autoptr (GError) error = NULL;
  VhostUserVirtqElement *elem = vhost_user_virtqueue_pop (queue (f, q), &error);

  g_assert_no_error (error);
  g_assert_null (elem);
}

static gint
add_simple (Fixture *f, guint q, guint8 *out, guint out_len, guint in_len)
{
  VhuTestBuffer bufs[] = { VHU_TEST_OUT (out, out_len), VHU_TEST_IN (in_len) };
  gint head;

  fill_random (f->rand, out, out_len);
  head = vhu_test_driver_add (f->drv[q], bufs, G_N_ELEMENTS (bufs), FALSE);
  g_assert_cmpint (head, >=, 0);
  return head;
}

/* Makes one request available on queue @q (not kicked); returns the head. */
static gint
offer_one (Fixture *f, guint q, guint8 *out)
{
  gint head = add_simple (f, q, out, 24, 24);

  vhu_test_driver_publish (f->drv[q]);
  return head;
}

static void
expect_one (Fixture *f, guint q, gint added, const guint8 *out)
{
  guint head;
  guint32 len;

  g_assert_true (vhu_test_driver_get_used (f->drv[q], &head, &len));
  g_assert_cmpuint (head, ==, added);
  check_response (f->drv[q], head, len, out, 24, 24);
}

static void
test_batch (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  VhostUserVirtqueue *vq;
  VhostUserVirtqElement *elems[3];
  guint8 out[3][64];
  gint heads[3];
  guint head;
  guint32 len;

  negotiate (f, BASE_FEATURES);
  qstate (f, 0)->mode = MODE_IGNORE;
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];
  vq = queue (f, 0);

  for (guint i = 0; i < 3; i++)
    heads[i] = add_simple (f, 0, out[i], 64, 64);
  vhu_test_driver_publish (drv);
  for (guint i = 0; i < 3; i++)
    elems[i] = vhu_test_pop (queue (f, 0));
  assert_pop_empty (f, 0);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 3);

  /* Filled in reverse order, at offsets 2, 1, 0: nothing visible yet. */
  for (guint i = 0; i < 3; i++)
    vhost_user_virtqueue_fill (vq, elems[i], serve_element (qstate (f, 0), elems[i]), 2 - i);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (drv), ==, 0);
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));

  /* One index update for the three. */
  vhost_user_virtqueue_flush (vq, 3);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (drv), ==, 3);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 0); /* flush does not notify */
  vhost_user_virtqueue_notify (vq);
  g_assert_cmpuint (read_call (f, 0), ==, 1);
  for (guint i = 0; i < 3; i++)
    {
      g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
      g_assert_cmpuint (head, ==, heads[2 - i]);
      check_response (drv, head, len, out[2 - i], 64, 64);
      vhost_user_virtq_element_unref (elems[2 - i]);
    }
  vhu_test_drain_default_context ();
  /* Dropping pushed elements returns nothing more. */
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));

  /* A flush of more than is in flight counts only those. */
  heads[0] = add_simple (f, 0, out[0], 16, 16);
  vhu_test_driver_publish (drv);
  elems[0] = vhu_test_pop (queue (f, 0));
  vhost_user_virtqueue_fill (vq, elems[0], serve_element (qstate (f, 0), elems[0]), 0);
  vhost_user_virtqueue_flush (vq, 5);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (drv), ==, 4);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[0]);
  vhost_user_virtq_element_unref (elems[0]);
  vhu_test_drain_default_context ();
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));

  assert_queue_healthy (f, 0);
  round_trip (f, 1);

  /* The index of the next available entry, while the ring runs. */
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (vq), ==, 4);
}

static void
test_unpop (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  VhostUserVirtqueue *vq;
  VhostUserVirtqElement *elem, *again;
  guint8 out[2][32];
  gint heads[2];
  guint head;
  guint32 len;

  negotiate (f, BASE_FEATURES);
  qstate (f, 0)->mode = MODE_IGNORE;
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];
  vq = queue (f, 0);

  heads[0] = add_simple (f, 0, out[0], 32, 48);
  heads[1] = add_simple (f, 0, out[1], 32, 48);
  vhu_test_driver_publish (drv);

  elem = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhost_user_virtq_element_get_index (elem), ==, heads[0]);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 1);
  vhost_user_virtqueue_unpop (vq, elem);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 0);
  g_assert_false (vhost_user_virtqueue_is_empty (vq));
  /* Given back unused: dropping it returns nothing to the driver. */
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));

  /* The next pop returns it again, with the same buffers. */
  again = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhost_user_virtq_element_get_index (again), ==, heads[0]);
  g_assert_cmpuint (vhost_user_virtq_element_get_out_size (again), ==, 32);
  g_assert_cmpuint (vhost_user_virtq_element_get_in_size (again), ==, 48);
  vhost_user_virtqueue_push (vq, again, serve_element (qstate (f, 0), again));
  vhost_user_virtq_element_unref (again);

  /* Unpop of the latest of two in flight. */
  elem = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhost_user_virtq_element_get_index (elem), ==, heads[1]);
  vhost_user_virtqueue_unpop (vq, elem);
  vhost_user_virtq_element_unref (elem);
  elem = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhost_user_virtq_element_get_index (elem), ==, heads[1]);
  vhost_user_virtqueue_push (vq, elem, serve_element (qstate (f, 0), elem));
  vhost_user_virtq_element_unref (elem);
  assert_pop_empty (f, 0);

  for (guint i = 0; i < 2; i++)
    {
      g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
      g_assert_cmpuint (head, ==, heads[i]);
      check_response (drv, head, len, out[i], 32, 48);
    }
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, 2);
  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

static gpointer
drop_element (gpointer elem)
{
  vhost_user_virtq_element_unref (elem);
  return NULL;
}

/* The guarantee: an element dropped without a push goes back with len 0. */
static void
test_drop_unpushed (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  VhostUserVirtqueue *vq;
  VhostUserVirtqElement *elem;
  guint8 out[2][32];
  gint heads[2];
  guint head;
  guint32 len;

  negotiate (f, BASE_FEATURES);
  qstate (f, 0)->mode = MODE_IGNORE;
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];
  vq = queue (f, 0);

  heads[0] = add_simple (f, 0, out[0], 32, 48);
  heads[1] = add_simple (f, 0, out[1], 32, 48);
  vhu_test_driver_publish (drv);

  /* Dropped on the queue's thread, after writing into it. */
  elem = vhu_test_pop (queue (f, 0));
  serve_element (qstate (f, 0), elem);
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[0]);
  g_assert_cmpuint (len, ==, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 1);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 0);

  /* Dropped by another thread holding the last reference. */
  elem = vhu_test_pop (queue (f, 0));
  {
    GThread *thread = g_thread_new ("dropper", drop_element, elem);

    g_thread_join (thread);
  }
  wait_used (f, 0, 1);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[1]);
  g_assert_cmpuint (len, ==, 0);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (vq), ==, 0);
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));

  /* An extra reference keeps it in flight until the last one goes. */
  heads[0] = add_simple (f, 0, out[0], 8, 8);
  vhu_test_driver_publish (drv);
  elem = vhu_test_pop (queue (f, 0));
  vhost_user_virtq_element_ref (elem);
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
  g_assert_false (vhu_test_driver_get_used (drv, NULL, NULL));
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[0]);
  g_assert_cmpuint (len, ==, 0);

  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Notification suppression                                                 */

static void
test_notification (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  VhostUserVirtqueue *vq;
  VhostUserVirtqElement *elem;
  guint8 out[16];

  negotiate (f, BASE_FEATURES);
  qstate (f, 0)->mode = MODE_IGNORE;
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];
  vq = queue (f, 0);

  vhost_user_virtqueue_set_notification (vq, FALSE);
  g_assert_cmpuint (vhu_test_driver_get_used_flags (drv), ==, VHU_VRING_USED_F_NO_NOTIFY);
  add_simple (f, 0, out, 16, 16);
  g_assert_false (vhu_test_driver_publish (drv)); /* no kick wanted */

  /* Re-enabled: kicks wanted again, and the re-check finds the request
   * that came without one. */
  vhost_user_virtqueue_set_notification (vq, TRUE);
  g_assert_cmpuint (vhu_test_driver_get_used_flags (drv), ==, 0);
  g_assert_false (vhost_user_virtqueue_is_empty (vq));
  elem = vhu_test_pop (queue (f, 0));
  vhost_user_virtqueue_push (vq, elem, serve_element (qstate (f, 0), elem));
  vhost_user_virtq_element_unref (elem);
  g_assert_true (vhost_user_virtqueue_is_empty (vq));
  g_assert_true (vhu_test_driver_get_used (drv, NULL, NULL));

  add_simple (f, 0, out, 16, 16);
  g_assert_true (vhu_test_driver_publish (drv));
  g_assert_false (vhost_user_virtqueue_is_empty (vq));
  elem = vhu_test_pop (queue (f, 0));
  vhost_user_virtqueue_push (vq, elem, 0);
  vhost_user_virtq_element_unref (elem);

  /* NO_INTERRUPT from the driver: no calls. */
  g_assert_cmpuint (read_call (f, 0), ==, 2);
  vhu_test_driver_set_no_interrupt (drv, TRUE);
  add_simple (f, 0, out, 16, 16);
  vhu_test_driver_publish (drv);
  elem = vhu_test_pop (queue (f, 0));
  vhost_user_virtqueue_push (vq, elem, 0);
  vhost_user_virtq_element_unref (elem);
  g_assert_cmpuint (read_call (f, 0), ==, 0);

  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

static void
test_notification_event_idx (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  VhostUserVirtqueue *vq;
  VhostUserVirtqElement *a, *b, *c;
  guint8 out[16];

  negotiate (f, BASE_FEATURES | VF (RING_EVENT_IDX));
  qstate (f, 0)->mode = MODE_IGNORE;
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];
  vq = queue (f, 0);

  vhost_user_virtqueue_set_notification (vq, TRUE);
  g_assert_cmpuint (vhu_test_driver_get_avail_event (drv), ==, 0);
  /* Event index: the flags stay alone. */
  vhost_user_virtqueue_set_notification (vq, FALSE);
  g_assert_cmpuint (vhu_test_driver_get_used_flags (drv), ==, 0);

  add_simple (f, 0, out, 16, 16);
  g_assert_true (vhu_test_driver_publish (drv)); /* avail_event 0 is crossed */
  a = vhu_test_pop (queue (f, 0));
  /* Disabled: popping does not move avail_event. */
  g_assert_cmpuint (vhu_test_driver_get_avail_event (drv), ==, 0);
  add_simple (f, 0, out, 16, 16);
  g_assert_false (vhu_test_driver_publish (drv));

  /* Re-enabled: avail_event is what the device saw; the re-check finds the
   * second request. */
  vhost_user_virtqueue_set_notification (vq, TRUE);
  g_assert_cmpuint (vhu_test_driver_get_avail_event (drv), ==, 1);
  g_assert_false (vhost_user_virtqueue_is_empty (vq));
  b = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhu_test_driver_get_avail_event (drv), ==, 2);
  g_assert_true (vhost_user_virtqueue_is_empty (vq));
  add_simple (f, 0, out, 16, 16);
  g_assert_true (vhu_test_driver_publish (drv));
  c = vhu_test_pop (queue (f, 0));

  /* used_event 1: the call comes when the used index passes 1, once. */
  vhu_test_driver_set_used_event (drv, 1);
  vhost_user_virtqueue_push (vq, a, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 1); /* the first call of a started ring */
  vhost_user_virtqueue_push (vq, b, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 1); /* 1 -> 2 passes used_event 1 */
  vhost_user_virtqueue_push (vq, c, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 0); /* 2 -> 3 does not */
  vhost_user_virtq_element_unref (a);
  vhost_user_virtq_element_unref (b);
  vhost_user_virtq_element_unref (c);
  for (guint i = 0; i < 3; i++)
    g_assert_true (vhu_test_driver_get_used (drv, NULL, NULL));

  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Queues on a worker thread                                                */

/* Waits until a counter of the device (changed on another thread) reaches @n. */
static void
wait_count (gint *counter, gint n)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;

  while (g_atomic_int_get (counter) < n)
    {
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (100);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    }
}

typedef struct
{
  QueueState *qs;
  VhostUserVirtqueue *queue;
} HeldPush;

/* Runs on the queue's thread: pushes what the device holds. */
static gboolean
push_held (gpointer data)
{
  HeldPush *hp = data;

  while (hp->qs->held->len > 0)
    {
      g_autoptr (VhostUserVirtqElement) elem = g_ptr_array_steal_index (hp->qs->held, 0);

      vhost_user_virtqueue_push (hp->queue, elem, serve_element (hp->qs, elem));
    }
  return G_SOURCE_REMOVE;
}

/* @n random requests on queue @q, @per_round at most at a time, waiting for
 * the device wherever it runs. */
static void
run_requests (Fixture *f, guint q, guint n, guint per_round)
{
  VhuTestDriver *drv = f->drv[q];
  guint num = vhu_test_driver_get_num (drv);
  Expect *expect = g_new0 (Expect, num);
  guint done = 0;

  while (done < n)
    {
      guint want = random_count (f->rand, per_round, n - done);
      guint added = 0, got = 0;

      while (added < want && add_random_chain (f, q, expect) >= 0)
        added++;
      /* As a driver does: a call for the next used entry. */
      vhu_test_driver_set_used_event (drv, vhu_test_driver_get_last_used (drv));
      vhu_test_driver_publish (drv);
      kick (f, q);
      while (got < added)
        {
          wait_used (f, q, 1);
          got += collect_used (f, q, expect);
        }
      g_assert_cmpuint (got, ==, added);
      done += added;
    }
  for (guint i = 0; i < num; i++)
    g_free (expect[i].out);
  g_free (expect);
}

static void
test_worker (Fixture *f, gconstpointer data)
{
  VhuTestWorker *w = vhu_test_worker_new ("vring-worker");
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  guint total = vhu_test_requests_wanted (20000) / 4;
  int old_call;
  guint32 base;

  negotiate (f, BASE_FEATURES | VF (RING_EVENT_IDX));
  vhost_user_virtqueue_set_context (vq, w->context);
  g_assert_true (vhost_user_virtqueue_get_context (vq) == w->context);
  g_assert_true (vhost_user_virtqueue_get_context (queue (f, 1)) == g_main_context_default ());
  g_atomic_pointer_set (&qs->thread, w->thread);

  /* Started on the worker (SET_VRING_KICK runs there). */
  start_queue (f, 0, 128, 0);
  start_queue (f, 1, 64, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->started), ==, 1);
  run_requests (f, 0, total, 128);
  round_trip (f, 1);

  /* A new memory table while the worker runs the ring. */
  set_memory (f);
  run_requests (f, 0, total, 64);

  /* L8 on the worker: the call eventfd replaced; calls go to the new one. */
  old_call = f->call[0];
  f->call[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, f->call[0]);
  vhu_test_read_eventfd (old_call);
  run_requests (f, 0, total / 4 + 1, 8);
  g_assert_cmpuint (vhu_test_read_eventfd (old_call), ==, 0);
  g_assert_cmpuint (read_call (f, 0), >, 0);
  close (old_call);

  /* Stopped and restarted from the worker. */
  base = restart_queue (f, 0);
  g_assert_cmpuint (base, ==, vhu_test_driver_get_avail_idx (f->drv[0]));
  g_assert_cmpint (g_atomic_int_get (&qs->stopped), ==, 1);
  g_assert_cmpint (g_atomic_int_get (&qs->started), ==, 2);
  run_requests (f, 0, total, 128);
  round_trip (f, 1);

  /* L6 on the worker: GET_VRING_BASE waits until the worker pushes what it
   * holds. */
  {
    HeldPush hp = { qs, vq };
    VhuVringState state = { .index = 0, .num = 0 };
    VhuMessage reply;
    guint8 out[32];
    gint head;
    gint n_held = g_atomic_int_get (&qs->n_held);
    guint got;
    guint32 len;

    qs->mode = MODE_HOLD;
    qs->budget = 1;
    head = add_simple (f, 0, out, 32, 32);
    add_simple (f, 0, out, 32, 32);
    vhu_test_driver_publish (f->drv[0]);
    kick (f, 0);
    wait_count (&qs->n_held, n_held + 1);
    wait_count (&qs->handled, g_atomic_int_get (&qs->kicked));
    g_assert_cmpuint (qs->held->len, ==, 1);
    g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_VRING_BASE, VHU_VERSION,
                                           &state, sizeof state, NULL, 0));
    g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
    g_assert_cmpint (g_atomic_int_get (&qs->stopped), ==, 2);
    g_main_context_invoke (w->context, push_held, &hp);
    g_assert_true (vhu_test_frontend_recv (f->fe, &reply, WAIT_MS));
    g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_VRING_BASE);
    base = reply.payload.state.num;
    vhu_message_clear (&reply);
    g_assert_cmpuint (base, ==, (guint16) (vhu_test_driver_get_avail_idx (f->drv[0]) - 1));
    g_assert_true (vhu_test_driver_get_used (f->drv[0], &got, &len));
    g_assert_cmpuint (got, ==, head);
    g_assert_cmpuint (len, ==, 32);
    g_assert_cmpuint (qs->held->len, ==, 0);

    /* Restarted: the second one is served. */
    qs->mode = MODE_ECHO;
    qs->budget = 0;
    start_queue (f, 0, 128, base);
    wait_used (f, 0, 1);
    g_assert_true (vhu_test_driver_get_used (f->drv[0], &got, &len));
    g_assert_cmpuint (len, ==, 32);
    g_assert_cmpint (g_atomic_int_get (&qs->started), ==, 3);
  }
  run_requests (f, 0, total / 4 + 1, 32);

  g_assert_cmpint (g_atomic_int_get (&qs->served), >=, 3 * total);
  assert_queue_healthy (f, 0);
  assert_queue_healthy (f, 1);

  /* Shutdown: the front-end goes; the device's thread stops the ring on
   * the worker; then the worker ends. */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_cmpint (g_atomic_int_get (&qs->stopped), ==, 3);
  g_assert_cmpint (g_atomic_int_get (&qs->wrong_thread), ==, 0);
  g_assert_false (vhost_user_virtqueue_get_started (vq));

  /* Moved back while the worker still runs, then the worker ends. */
  vhost_user_virtqueue_set_context (vq, NULL);
  g_assert_true (vhost_user_virtqueue_get_context (vq) == g_main_context_default ());
  vhu_test_worker_free (w);
}

/* A running queue moves to a worker and back. */
static void
test_worker_move (Fixture *f, gconstpointer data)
{
  VhuTestWorker *w = vhu_test_worker_new ("vring-worker");
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  guint total = vhu_test_requests_wanted (20000) / 10 + 1;

  negotiate (f, BASE_FEATURES);
  start_queue (f, 0, 64, 0);
  start_queue (f, 1, 64, 0);
  run_requests (f, 0, total, 64);

  g_atomic_pointer_set (&qs->thread, w->thread);
  vhost_user_virtqueue_set_context (vq, w->context);
  run_requests (f, 0, total, 64);
  round_trip (f, 1);

  /* Back, with an element held by the device across the move. */
  qs->mode = MODE_HOLD;
  qs->budget = 1;
  {
    guint8 out[32];
    gint head = add_simple (f, 0, out, 32, 32);
    gint n_held = g_atomic_int_get (&qs->n_held);
    VhostUserVirtqElement *elem;
    guint got;
    guint32 len;

    vhu_test_driver_publish (f->drv[0]);
    kick (f, 0);
    wait_count (&qs->n_held, n_held + 1);
    wait_count (&qs->handled, g_atomic_int_get (&qs->kicked));
    g_assert_cmpuint (qs->held->len, ==, 1);
    vhost_user_virtqueue_set_context (vq, NULL);
    g_atomic_pointer_set (&qs->thread, NULL);
    elem = g_ptr_array_steal_index (qs->held, 0);
    vhost_user_virtqueue_push (vq, elem, serve_element (qs, elem));
    vhost_user_virtq_element_unref (elem);
    g_assert_true (vhu_test_driver_get_used (f->drv[0], &got, &len));
    g_assert_cmpuint (got, ==, head);
    check_response (f->drv[0], got, len, out, 32, 32);
  }
  vhu_test_worker_free (w);

  qs->mode = MODE_ECHO;
  qs->budget = 0;
  run_requests (f, 0, total, 64);
  g_assert_cmpuint (stop_queue (f, 0), ==, vhu_test_driver_get_avail_idx (f->drv[0]));
  assert_queue_healthy (f, 0);
  assert_queue_healthy (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Stop and restart                                                         */

static void
test_stop_restart (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  QueueState *qs = qstate (f, 0);
  guint num = 64;
  Expect *expect = g_new0 (Expect, num);
  guint cycles = MAX (10, vhu_test_requests_wanted (20000) / 200);

  negotiate (f, BASE_FEATURES | VF (RING_EVENT_IDX));
  start_queue (f, 0, num, 65500); /* the index wraps on the way */
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];

  for (guint c = 0; c < cycles; c++)
    {
      guint want = g_rand_int_range (f->rand, 2, num + 1);
      guint budget, added = 0, first_half, second_half;
      guint16 avail_before = vhu_test_driver_get_last_used (drv);
      guint32 base;

      while (added < want && add_random_chain (f, 0, expect) >= 0)
        added++;
      g_assert_cmpuint (added, >=, 2);
      budget = g_rand_int_range (f->rand, 1, added);
      qs->budget = budget;
      vhu_test_driver_publish (drv);
      kick (f, 0);
      vhu_test_frontend_flush (f->fe);
      first_half = collect_used (f, 0, expect);
      g_assert_cmpuint (first_half, ==, budget);

      /* Stopped: the index of the next available entry. */
      base = stop_queue (f, 0);
      g_assert_cmpuint (base, ==, (guint16) (avail_before + budget));
      g_assert_cmpint (qs->stopped, ==, c + 1);
      g_assert_cmpuint (vhu_test_driver_get_in_flight (drv), ==, added - budget);

      /* Restarted from there: SET_VRING_KICK counts as a kick. */
      qs->budget = 0;
      start_queue (f, 0, num, base);
      second_half = collect_used (f, 0, expect);
      g_assert_cmpuint (first_half + second_half, ==, added);
      g_assert_cmpuint (vhu_test_driver_get_in_flight (drv), ==, 0);
    }
  for (guint i = 0; i < num; i++)
    {
      g_assert_false (expect[i].pending);
      g_free (expect[i].out);
    }
  g_free (expect);
  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* L6: GET_VRING_BASE waits for what the device holds. */
static void
test_stop_in_flight (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  VhuVringState state = { .index = 0, .num = 0 };
  VhostUserVirtqElement *elem;
  VhuMessage reply;
  guint8 out[3][40];
  gint heads[3];
  guint head;
  guint32 len;

  negotiate (f, BASE_FEATURES);
  qs->mode = MODE_HOLD;
  qs->budget = 1;
  start_queue (f, 0, 64, 10);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];

  for (guint i = 0; i < 3; i++)
    heads[i] = add_simple (f, 0, out[i], 40, 40);
  vhu_test_driver_publish (drv);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (qs->held->len, ==, 1);

  /* No reply while the element is out. */
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_VRING_BASE, VHU_VERSION,
                                         &state, sizeof state, NULL, 0));
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_false (vhu_test_frontend_peer_closed (f->fe));
  g_assert_cmpint (qs->stopped, ==, 1);
  g_assert_false (vhost_user_virtqueue_get_started (vq));
  /* Stopping: nothing more is handed out. */
  g_assert_true (vhost_user_virtqueue_is_empty (vq));
  assert_pop_empty (f, 0);
  /* The other ring keeps working meanwhile (its kicks need no message). */
  {
    guint8 other[24];
    gint other_head = offer_one (f, 1, other);

    kick (f, 1);
    wait_used (f, 1, 1);
    expect_one (f, 1, other_head, other);
  }

  elem = g_ptr_array_steal_index (qs->held, 0);
  vhost_user_virtqueue_push (vq, elem, serve_element (qs, elem));
  vhost_user_virtq_element_unref (elem);
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, WAIT_MS));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_VRING_BASE);
  g_assert_cmpuint (reply.payload.state.num, ==, 11);
  vhu_message_clear (&reply);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[0]);
  check_response (drv, head, len, out[0], 40, 40);

  /* Again, and this time the device drops the element: pushed with len 0,
   * and the reply comes. */
  start_queue (f, 0, 64, 11);
  g_assert_cmpuint (qs->held->len, ==, 1);
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_VRING_BASE, VHU_VERSION,
                                         &state, sizeof state, NULL, 0));
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_ptr_array_set_size (qs->held, 0);
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, WAIT_MS));
  g_assert_cmpuint (reply.payload.state.num, ==, 12);
  vhu_message_clear (&reply);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[1]);
  g_assert_cmpuint (len, ==, 0);

  /* The last one after a restart. */
  qs->mode = MODE_ECHO;
  qs->budget = 0;
  start_queue (f, 0, 64, 12);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (head, ==, heads[2]);
  check_response (drv, head, len, out[2], 40, 40);
  g_assert_cmpuint (stop_queue (f, 0), ==, 13);
  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Dirty logging                                                            */

typedef struct
{
  guint8 *log;
  gsize size;
  int fd;
  int call_fd;
  GHashTable *pages; /* expected dirty pages, as page + 1 */
} Log;

static void
log_open (Fixture *f, Log *log)
{
  VhuLogMsg msg = { .mmap_size = 4096, .mmap_offset = 0 };
  VhuMessage reply;

  log->size = 4096;
  log->fd = memfd_create ("vhu-test-log", MFD_CLOEXEC);
  g_assert_cmpint (log->fd, >=, 0);
  g_assert_cmpint (ftruncate (log->fd, log->size), ==, 0);
  log->log = mmap (NULL, log->size, PROT_READ | PROT_WRITE, MAP_SHARED, log->fd, 0);
  g_assert_true (log->log != MAP_FAILED);
  log->pages = g_hash_table_new (g_direct_hash, g_direct_equal);

  /* SET_LOG_BASE has a reply of its own. */
  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_SET_LOG_BASE, VHU_VERSION, &msg,
                                         sizeof msg, &log->fd, 1));
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, WAIT_MS));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_SET_LOG_BASE);
  g_assert_cmpuint (reply.hdr.size, ==, 8);
  g_assert_cmpuint (reply.payload.u64, ==, 0);
  vhu_message_clear (&reply);

  log->call_fd = vhu_test_new_eventfd ();
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_LOG_FD, NULL, 0, &log->call_fd, 1);
}

static void
log_close (Log *log)
{
  munmap (log->log, log->size);
  close (log->fd);
  close (log->call_fd);
  g_hash_table_unref (log->pages);
}

static void
log_expect (Log *log, guint64 gpa, guint64 len)
{
  for (guint64 page = gpa / 4096; len > 0 && page <= (gpa + len - 1) / 4096; page++)
    g_hash_table_add (log->pages, GSIZE_TO_POINTER (page + 1));
}

static void
log_check (Log *log, guint64 guest_size)
{
  GString *diff = g_string_new (NULL);

  for (guint64 page = 0; page < guest_size / 4096; page++)
    {
      gboolean set = (log->log[page / 8] >> (page % 8)) & 1;
      gboolean expected = g_hash_table_contains (log->pages, GSIZE_TO_POINTER (page + 1));

      if (set != expected)
        g_string_append_printf (diff, " gpa 0x%" G_GINT64_MODIFIER "x %s;", page * 4096,
                                set ? "logged, not written" : "written, not logged");
    }
  if (diff->len > 0)
    g_error ("dirty log:%s", diff->str);
  g_string_free (diff, TRUE);
}

static void
log_clear (Log *log)
{
  memset (log->log, 0, log->size);
  g_hash_table_remove_all (log->pages);
}

typedef struct
{
  Log *log;
  guint32 remaining;
} LogWritten;

static void
expect_written (guint64 gpa, guint32 len, gpointer user_data)
{
  LogWritten *lw = user_data;
  guint32 chunk = MIN (len, lw->remaining);

  log_expect (lw->log, gpa, chunk);
  lw->remaining -= chunk;
}

/* Random requests on queue 0; with @logged, the pages they wrote are
 * expected in the log. */
static void
run_logged_requests (Fixture *f, Log *log, guint n, gboolean logged)
{
  VhuTestDriver *drv = f->drv[0];
  guint num = vhu_test_driver_get_num (drv);
  Expect *expect = g_new0 (Expect, num);
  guint done = 0;

  while (done < n)
    {
      guint want = random_count (f->rand, 8, n - done);
      guint added = 0, head;
      guint32 len;

      while (added < want && add_random_chain (f, 0, expect) >= 0)
        added++;
      vhu_test_driver_publish (drv);
      kick (f, 0);
      vhu_test_frontend_flush (f->fe);
      while (vhu_test_driver_get_used (drv, &head, &len))
        {
          guint16 slot = (vhu_test_driver_get_last_used (drv) - 1) & (num - 1);
          LogWritten lw = { log, len };

          g_assert_true (expect[head].pending);
          check_response (drv, head, len, expect[head].out, expect[head].out_size,
                          expect[head].in_size);
          expect[head].pending = FALSE;
          if (logged)
            {
              vhu_test_driver_foreach_in (drv, head, expect_written, &lw);
              /* The used entry, and the used index. */
              log_expect (log, vhu_test_driver_get_used_gpa (drv) + 4 + 8ull * slot, 8);
              log_expect (log, vhu_test_driver_get_used_gpa (drv) + 2, 2);
            }
          done++;
        }
    }
  for (guint i = 0; i < num; i++)
    g_free (expect[i].out);
  g_free (expect);
}

static void
dirty_log_test (Fixture *f, gboolean log_all, gboolean event_idx, guint num)
{
  guint64 features = BASE_FEATURES | (event_idx ? VF (RING_EVENT_IDX) : 0);
  guint n = MIN (vhu_test_requests_wanted (20000) / 20 + 1, 300);
  Log log = { 0 };

  negotiate (f, features);
  start_queue (f, 0, num, 0);
  start_queue (f, 1, 64, 0);

  /* Before migration: nothing is logged anywhere. */
  run_logged_requests (f, &log, 10, FALSE);

  /* Migration starts: log, log fd, LOG_ALL on running rings, and the used
   * ring's log address. */
  log_open (f, &log);
  if (log_all)
    {
      guint64 with_log = features | VF (LOG_ALL);

      vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &with_log, sizeof with_log,
                                 NULL, 0);
    }
  send_vring_addr (f, 0, 1u << VHU_VRING_F_LOG);
  log_clear (&log);
  vhu_test_read_eventfd (log.call_fd);

  run_logged_requests (f, &log, n, log_all);
  if (log_all && event_idx)
    {
      /* The device wrote avail_event, in the used ring, at every pop. */
      log_expect (&log, vhu_test_driver_get_used_gpa (f->drv[0]) + 4 + 8ull * num, 2);
    }
  log_check (&log, 2ull * RAM_SIZE);
  if (log_all)
    g_assert_cmpuint (vhu_test_read_eventfd (log.call_fd), >, 0);
  else
    g_assert_cmpuint (vhu_test_read_eventfd (log.call_fd), ==, 0);

  /* Migration ends: LOG_ALL off, nothing more logged. */
  if (log_all)
    {
      vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &features, sizeof features,
                                 NULL, 0);
      log_clear (&log);
      run_logged_requests (f, &log, 10, FALSE);
      log_check (&log, 2ull * RAM_SIZE);
    }

  assert_queue_healthy (f, 0);
  round_trip (f, 1);
  log_close (&log);
}

static void
test_dirty_log (Fixture *f, gconstpointer data)
{
  dirty_log_test (f, TRUE, FALSE, 128);
}

/* With EVENT_IDX the device also writes avail_event, at the end of the used
 * ring: 512 entries put it on the ring's second page, which nothing else
 * writes while the first entries are used. */
static void
test_dirty_log_event_idx (Fixture *f, gconstpointer data)
{
  dirty_log_test (f, TRUE, TRUE, 512);
}

static void
test_dirty_log_without_log_all (Fixture *f, gconstpointer data)
{
  dirty_log_test (f, FALSE, FALSE, 128);
}

/* ------------------------------------------------------------------------ */
/* Bad inputs: the ring level (bad-inputs.md R1 to R25)                     */

#define RING_NUM 64u

/* Both queues running and tried once. */
static void
bad_setup (Fixture *f, guint64 features)
{
  negotiate (f, features);
  start_queue (f, 0, RING_NUM, 0);
  start_queue (f, 1, RING_NUM, 0);
  round_trip (f, 0);
  round_trip (f, 1);
  assert_queue_healthy (f, 0);
}

static void
put_desc_at (VhuVringDesc *d, guint64 addr, guint32 len, guint16 flags, guint16 next)
{
  d->addr = GUINT64_TO_LE (addr);
  d->len = GUINT32_TO_LE (len);
  d->flags = GUINT16_TO_LE (flags);
  d->next = GUINT16_TO_LE (next);
}

/* Descriptor @i of queue 0's table, written by hand. */
static void
raw_desc (Fixture *f, guint i, guint64 addr, guint32 len, guint16 flags, guint16 next)
{
  g_assert_cmpuint (i, <, RING_NUM);
  put_desc_at (&vhu_test_driver_get_desc (f->drv[0])[i], addr, len, flags, next);
}

/* Entry @i of an indirect table at @table. */
static void
raw_table (Fixture *f,
           guint64 table,
           guint i,
           guint64 addr,
           guint32 len,
           guint16 flags,
           guint16 next)
{
  VhuVringDesc d;

  put_desc_at (&d, addr, len, flags, next);
  vhu_test_driver_write (f->drv[0], table + 16ull * i, &d, sizeof d);
}

/* Queue @q broke: it says so, pops nothing, signalled its error eventfd
 * once, ignores kicks; the other queue works on. */
static void
assert_broken_only (Fixture *f, guint q, gint errors)
{
  QueueState *qs = qstate (f, q);
  g_autoptr (GError) error = NULL;
  VhostUserVirtqElement *elem;
  guint16 used = vhu_test_driver_get_used_idx (f->drv[q]);
  gint kicked;

  g_assert_true (vhost_user_virtqueue_get_broken (queue (f, q)));
  g_assert_cmpint (g_atomic_int_get (&qs->broken_errors), ==, errors);
  g_assert_cmpint (g_atomic_int_get (&qs->other_errors), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->mismatches), ==, 0);
  elem = vhost_user_virtqueue_pop (queue (f, q), &error);
  g_assert_null (elem);
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_QUEUE_BROKEN);
  g_assert_true (vhost_user_virtqueue_is_empty (queue (f, q)));
  g_assert_cmpuint (vhu_test_read_eventfd (f->err[q]), ==, 1);

  kicked = g_atomic_int_get (&qs->kicked);
  kick (f, q);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (g_atomic_int_get (&qs->kicked), ==, kicked);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[q]), ==, used);
  g_assert_cmpuint (vhu_test_read_eventfd (f->err[q]), ==, 0);

  assert_queue_healthy (f, 1 - q);
  round_trip (f, 1 - q);
}

/* Makes @head available on queue 0 (in place of the entry that broke it
 * last time, after a restart) and checks that queue 0 alone breaks. */
static void
expect_broken (Fixture *f, guint16 head)
{
  VhuTestDriver *drv = f->drv[0];
  gint errors = g_atomic_int_get (&qstate (f, 0)->broken_errors);

  if (vhost_user_virtqueue_get_broken (queue (f, 0)))
    {
      guint32 base = stop_queue (f, 0);

      /* The entry that broke it was not consumed. */
      g_assert_cmpuint (base, ==, (guint16) (vhu_test_driver_get_avail_idx (drv) - 1));
      g_assert_false (vhost_user_virtqueue_get_broken (queue (f, 0)));
      vhu_test_driver_set_avail_idx (drv, base);
      vhu_test_driver_put_avail (drv, head);
      vhu_test_driver_publish (drv);
      start_queue (f, 0, RING_NUM, base);
    }
  else
    {
      vhu_test_driver_put_avail (drv, head);
      vhu_test_driver_publish (drv);
      kick (f, 0);
      vhu_test_frontend_flush (f->fe);
    }
  assert_broken_only (f, 0, errors + 1);
}

/* Makes a hand-made chain available and expects it served: the used entry
 * for @head with @len. */
static void
expect_served (Fixture *f, guint16 head, guint32 expected_len)
{
  VhuTestDriver *drv = f->drv[0];
  guint got;
  guint32 len;

  g_assert_false (vhost_user_virtqueue_get_broken (queue (f, 0)));
  vhu_test_driver_put_avail (drv, head);
  vhu_test_driver_publish (drv);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_true (vhu_test_driver_get_used (drv, &got, &len));
  g_assert_cmpuint (got, ==, head);
  g_assert_cmpuint (len, ==, expected_len);
  assert_queue_healthy (f, 0);
}

/* R1: the available index jumps by more than the ring. */
static void
test_bad_r1 (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  guint16 idx;
  guint32 base;

  bad_setup (f, BASE_FEATURES);
  drv = f->drv[0];
  idx = vhu_test_driver_get_avail_idx (drv);

  vhu_test_driver_set_avail_idx (drv, idx + RING_NUM + 1);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  assert_broken_only (f, 0, 1);

  /* Restarted where it was; a jump by half the index space. */
  base = stop_queue (f, 0);
  g_assert_cmpuint (base, ==, idx);
  vhu_test_driver_set_avail_idx (drv, idx + 0x8000);
  start_queue (f, 0, RING_NUM, base);
  assert_broken_only (f, 0, 2);

  /* Backwards. */
  base = stop_queue (f, 0);
  vhu_test_driver_set_avail_idx (drv, idx - 1);
  start_queue (f, 0, RING_NUM, base);
  assert_broken_only (f, 0, 3);
}

/* R2: a head past the ring. */
static void
test_bad_r2 (Fixture *f, gconstpointer data)
{
  bad_setup (f, BASE_FEATURES);
  raw_desc (f, 40, SCRATCH, 16, 0, 0);
  expect_broken (f, RING_NUM);
  expect_broken (f, 0xffff);
  expect_broken (f, RING_NUM + 40);
}

/* R3: next past the ring, or past the indirect table. */
static void
test_bad_r3 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES);
  raw_desc (f, 40, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, RING_NUM);
  expect_broken (f, 40);
  raw_desc (f, 40, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 0xffff);
  expect_broken (f, 40);

  raw_table (f, table, 0, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 1);
  raw_table (f, table, 1, SCRATCH + 16, 16, VHU_VRING_DESC_F_NEXT, 2);
  raw_desc (f, 41, table, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 41);
}

/* R4: descriptor loops, direct and indirect. */
static void
test_bad_r4 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES);
  raw_desc (f, 40, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, SCRATCH + 16, 16, VHU_VRING_DESC_F_NEXT, 40);
  expect_broken (f, 40);
  raw_desc (f, 42, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 42);
  expect_broken (f, 42);
  /* A loop through writable buffers (nothing is written before the walk ends). */
  raw_desc (f, 43, SCRATCH, 16, VHU_VRING_DESC_F_NEXT | VHU_VRING_DESC_F_WRITE, 44);
  raw_desc (f, 44, SCRATCH + 16, 16, VHU_VRING_DESC_F_NEXT | VHU_VRING_DESC_F_WRITE, 43);
  expect_broken (f, 43);

  raw_table (f, table, 0, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 1);
  raw_table (f, table, 1, SCRATCH + 16, 16, VHU_VRING_DESC_F_NEXT, 0);
  raw_desc (f, 45, table, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 45);
}

/* R5: the longest chain a ring holds is fine; longer through an indirect
 * table is refused. */
static void
test_bad_r5 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x10000;

  bad_setup (f, BASE_FEATURES);

  /* Every descriptor in one chain: 60 readable, 4 writable. */
  for (guint i = 0; i < RING_NUM; i++)
    raw_desc (f, i, SCRATCH + 16ull * i, 16,
              (i + 1 < RING_NUM ? VHU_VRING_DESC_F_NEXT : 0)
                | (i >= RING_NUM - 4 ? VHU_VRING_DESC_F_WRITE : 0),
              i + 1 < RING_NUM ? i + 1 : 0);
  expect_served (f, 0, 64);
  g_assert_cmpuint (qstate (f, 0)->last_out_niov, ==, 60);
  g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 4);

  /* An indirect table of 1025 entries (more than a chain may have). */
  for (guint i = 0; i < 1025; i++)
    raw_table (f, table, i, SCRATCH, 16, i < 1024 ? VHU_VRING_DESC_F_NEXT : 0, i + 1);
  raw_desc (f, 40, table, 16 * 1025, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R6: indirect tables of bad sizes. */
static void
test_bad_r6 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES);
  raw_table (f, table, 0, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 1);
  raw_table (f, table, 1, SCRATCH + 16, 16, 0, 0);
  raw_desc (f, 40, table, 24, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, table, 0, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, table, 17, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, table, 16 * 2048, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, table, G_MAXUINT32 & ~15u, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R7: an indirect descriptor inside an indirect table. */
static void
test_bad_r7 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES);
  raw_table (f, table, 0, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 1);
  raw_table (f, table, 1, table, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  raw_desc (f, 40, table, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  /* First entry, pointing at a valid table. */
  raw_table (f, table + 0x100, 0, SCRATCH, 16, 0, 0);
  raw_table (f, table, 0, table + 0x100, 16, VHU_VRING_DESC_F_INDIRECT, 0);
  raw_desc (f, 40, table, 16, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R8: INDIRECT with NEXT is refused (deterministically); and INDIRECT when
 * the feature was not negotiated. */
static void
test_bad_r8 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES);
  raw_table (f, table, 0, SCRATCH, 16, 0, 0);
  raw_desc (f, 40, table, 16, VHU_VRING_DESC_F_INDIRECT | VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, SCRATCH + 16, 16, VHU_VRING_DESC_F_WRITE, 0);
  expect_broken (f, 40);
  /* The same again after a restart: the same answer. */
  expect_broken (f, 40);
}

static void
test_bad_r8_not_negotiated (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES & ~VF (RING_INDIRECT_DESC));
  raw_table (f, table, 0, SCRATCH, 16, 0, 0);
  raw_desc (f, 40, table, 16, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R9: an indirect table that is not host-contiguous. */
static void
test_bad_r9 (Fixture *f, gconstpointer data)
{
  guint8 out[600];
  VhuTestBuffer bufs[6];
  guint head;
  guint32 len;
  gint added;

  bad_setup (f, BASE_FEATURES);
  fill_random (f->rand, out, sizeof out);
  for (guint i = 0; i < 3; i++)
    bufs[i] = VHU_TEST_OUT (out + 200 * i, 200);
  for (guint i = 3; i < 6; i++)
    bufs[i] = VHU_TEST_IN (200);
  /* 48 bytes before the boundary, 48 after: three entries in each region. */
  added = vhu_test_driver_add_full (f->drv[0], bufs, 6, TRUE, BOUNDARY - 48);
  vhu_test_driver_publish (f->drv[0]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
  g_assert_cmpuint (head, ==, added);
  check_response (f->drv[0], head, len, out, 600, 600);
  assert_queue_healthy (f, 0);

  /* The same table, entries rewritten by hand, crossing every 16 bytes. */
  for (guint i = 0; i < 6; i++)
    raw_table (f, BOUNDARY - 48, i, SCRATCH + 0x100 * i, 16,
               (i < 5 ? VHU_VRING_DESC_F_NEXT : 0) | (i >= 3 ? VHU_VRING_DESC_F_WRITE : 0), i + 1);
  raw_desc (f, 40, BOUNDARY - 48, 96, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_served (f, 40, 48);
  round_trip (f, 0);
}

/* R10: buffers not (entirely) in guest memory; spanning two regions is fine. */
static void
test_bad_r10 (Fixture *f, gconstpointer data)
{
  const guint64 end = RAM_B_GPA + RAM_SIZE;

  bad_setup (f, BASE_FEATURES);
  raw_desc (f, 40, BOUNDARY - 8, 16, VHU_VRING_DESC_F_WRITE, 0);
  expect_served (f, 40, 16);
  g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 2);
  raw_desc (f, 40, end - 16, 16, VHU_VRING_DESC_F_WRITE, 0);
  expect_served (f, 40, 16);

  raw_desc (f, 40, 64 * MIB, 16, 0, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, end - 8, 16, 0, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, end - 8, 16, VHU_VRING_DESC_F_WRITE, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, end, 1, 0, 0);
  expect_broken (f, 40);
  /* A good buffer, then an unmapped one in the same chain. */
  raw_desc (f, 40, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, 1ull << 40, 16, VHU_VRING_DESC_F_WRITE, 0);
  expect_broken (f, 40);
  /* An indirect table outside guest memory, or partly. */
  raw_desc (f, 40, 64 * MIB, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, end - 16, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R11: addr + len wraps around 2^64. */
static void
test_bad_r11 (Fixture *f, gconstpointer data)
{
  bad_setup (f, BASE_FEATURES);
  raw_desc (f, 40, G_MAXUINT64 - 15, 32, 0, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, G_MAXUINT64, 2, VHU_VRING_DESC_F_WRITE, 0);
  expect_broken (f, 40);
  raw_desc (f, 40, G_MAXUINT64 - 15, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
  raw_table (f, SCRATCH + 0x1000, 0, G_MAXUINT64 - 7, 0x10000, 0, 0);
  raw_desc (f, 40, SCRATCH + 0x1000, 16, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R12: zero-length descriptors are skipped, wherever they are. */
static void
test_bad_r12 (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  guint8 out[16];
  guint head;
  guint32 len;

  bad_setup (f, BASE_FEATURES);
  drv = f->drv[0];
  fill_random (f->rand, out, sizeof out);

  for (guint indirect = 0; indirect < 2; indirect++)
    {
      const VhuTestBuffer mixed[] = { VHU_TEST_OUT (NULL, 0), VHU_TEST_OUT (out, 16),
                                      VHU_TEST_IN (0), VHU_TEST_IN (32) };
      const VhuTestBuffer empty[] = { VHU_TEST_OUT (NULL, 0), VHU_TEST_IN (0) };
      /* A zero-length readable buffer after a writable one carries nothing. */
      const VhuTestBuffer late[] = { VHU_TEST_IN (16), VHU_TEST_OUT (NULL, 0) };
      gint heads[3];

      heads[0] = vhu_test_driver_add (drv, mixed, G_N_ELEMENTS (mixed), indirect);
      heads[1] = vhu_test_driver_add (drv, empty, G_N_ELEMENTS (empty), indirect);
      heads[2] = vhu_test_driver_add (drv, late, G_N_ELEMENTS (late), indirect);
      vhu_test_driver_publish (drv);
      kick (f, 0);
      vhu_test_frontend_flush (f->fe);
      g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
      g_assert_cmpuint (head, ==, heads[0]);
      check_response (drv, head, len, out, 16, 32);
      g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
      g_assert_cmpuint (head, ==, heads[1]);
      g_assert_cmpuint (len, ==, 0);
      g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
      g_assert_cmpuint (head, ==, heads[2]);
      check_response (drv, head, len, NULL, 0, 16);
      assert_queue_healthy (f, 0);
    }

  /* A zero-length buffer at an address that is not mapped: nothing to map. */
  raw_desc (f, 40, 1ull << 40, 0, VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, SCRATCH, 8, VHU_VRING_DESC_F_WRITE, 0);
  expect_served (f, 40, 8);
  round_trip (f, 0);
}

/* R13: more than 4 GiB in one chain (1024 buffers of 4 MiB). */
static void
test_bad_r13 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH;

  bad_setup (f, BASE_FEATURES);
  for (guint i = 0; i < 1024; i++)
    raw_table (f, table, i, RAM_A_GPA, 4 * MIB, i < 1023 ? VHU_VRING_DESC_F_NEXT : 0, i + 1);
  raw_desc (f, 40, table, 16 * 1024, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);

  /* Through direct descriptors: 64 of 0x4000000 bytes would be 4 GiB; the
   * guest has less, so these are refused as unmapped either way. */
  for (guint i = 0; i < RING_NUM; i++)
    raw_desc (f, i, RAM_A_GPA, 0x4000000, i + 1 < RING_NUM ? VHU_VRING_DESC_F_NEXT : 0, i + 1);
  expect_broken (f, 0);
}

/* R14: a readable buffer after a writable one. */
static void
test_bad_r14 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;

  bad_setup (f, BASE_FEATURES);
  raw_desc (f, 40, SCRATCH, 16, VHU_VRING_DESC_F_WRITE | VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, SCRATCH + 16, 16, 0, 0);
  expect_broken (f, 40);

  raw_table (f, table, 0, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 1);
  raw_table (f, table, 1, SCRATCH + 16, 16, VHU_VRING_DESC_F_WRITE | VHU_VRING_DESC_F_NEXT, 2);
  raw_table (f, table, 2, SCRATCH + 32, 16, 0, 0);
  raw_desc (f, 40, table, 48, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);

  /* Direct writable descriptors leading to an indirect table of readable ones. */
  raw_table (f, table, 0, SCRATCH, 16, 0, 0);
  raw_desc (f, 40, SCRATCH + 64, 16, VHU_VRING_DESC_F_WRITE | VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, table, 16, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R15: more segments than an element may have, once split at regions. */
static void
test_bad_r15 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH;

  bad_setup (f, BASE_FEATURES);

  /* 64 buffers each crossing the boundary: 128 segments, fine. */
  for (guint i = 0; i < RING_NUM; i++)
    raw_desc (f, i, BOUNDARY - 8, 16,
              VHU_VRING_DESC_F_WRITE | (i + 1 < RING_NUM ? VHU_VRING_DESC_F_NEXT : 0),
              i + 1 < RING_NUM ? i + 1 : 0);
  expect_served (f, 0, 16 * RING_NUM);
  g_assert_cmpuint (qstate (f, 0)->last_in_niov, ==, 2 * RING_NUM);

  /* 1024 such buffers: 2048 segments. */
  for (guint i = 0; i < 1024; i++)
    raw_table (f, table, i, BOUNDARY - 8, 16, i < 1023 ? VHU_VRING_DESC_F_NEXT : 0, i + 1);
  raw_desc (f, 40, table, 16 * 1024, VHU_VRING_DESC_F_INDIRECT, 0);
  expect_broken (f, 40);
}

/* R16 (ring side): a chain with nothing writable is returned with len 0,
 * and a device can never report more than the driver offered. */
static void
test_bad_r16 (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  VhostUserVirtqElement *elem;
  guint8 out[32];
  gint added;
  guint head;
  guint32 len;

  bad_setup (f, BASE_FEATURES);
  drv = f->drv[0];
  fill_random (f->rand, out, sizeof out);
  {
    const VhuTestBuffer bufs[] = { VHU_TEST_OUT (out, 32) };

    added = vhu_test_driver_add (drv, bufs, 1, FALSE);
    vhu_test_driver_publish (drv);
    kick (f, 0);
    vhu_test_frontend_flush (f->fe);
    g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
    g_assert_cmpuint (head, ==, added);
    g_assert_cmpuint (len, ==, 0);
  }

  qstate (f, 0)->mode = MODE_IGNORE;
  {
    const VhuTestBuffer bufs[] = { VHU_TEST_OUT (out, 32) };

    added = vhu_test_driver_add (drv, bufs, 1, TRUE);
    vhu_test_driver_publish (drv);
    elem = vhu_test_pop (queue (f, 0));
    vhost_user_virtqueue_push (queue (f, 0), elem, 100);
    vhost_user_virtq_element_unref (elem);
    g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
    g_assert_cmpuint (head, ==, added);
    g_assert_cmpuint (len, ==, 0);
  }
  {
    const VhuTestBuffer bufs[] = { VHU_TEST_OUT (out, 8), VHU_TEST_IN (8) };

    added = vhu_test_driver_add (drv, bufs, 2, FALSE);
    vhu_test_driver_publish (drv);
    elem = vhu_test_pop (queue (f, 0));
    vhost_user_virtqueue_push (queue (f, 0), elem, G_MAXSIZE);
    vhost_user_virtq_element_unref (elem);
    g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
    g_assert_cmpuint (head, ==, added);
    g_assert_cmpuint (len, ==, 8);
  }
  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* R18: the guest rewrites descriptors after the device took them. */
typedef struct
{
  VhuVringDesc *desc;
  gint stop;
} Flipper;

static gpointer
flipper_main (gpointer data)
{
  Flipper *fl = data;

  /* Between one buffer of 16 bytes and a chain of 32 + 8. */
  while (!g_atomic_int_get (&fl->stop))
    {
      __atomic_store_n (&fl->desc->len, GUINT32_TO_LE (32), __ATOMIC_RELAXED);
      __atomic_store_n (&fl->desc->flags, GUINT16_TO_LE (VHU_VRING_DESC_F_NEXT), __ATOMIC_RELAXED);
      __atomic_store_n (&fl->desc->len, GUINT32_TO_LE (16), __ATOMIC_RELAXED);
      __atomic_store_n (&fl->desc->flags, GUINT16_TO_LE (0), __ATOMIC_RELAXED);
    }
  return NULL;
}

static void
test_bad_r18 (Fixture *f, gconstpointer data)
{
  const guint64 table = SCRATCH + 0x1000;
  VhuTestDriver *drv;
  VhostUserVirtqueue *vq;
  VhostUserVirtqElement *elem;
  const struct iovec *iov;
  struct iovec saved[2];
  guint n_iov, head;
  guint32 len;
  guint iterations = MAX (100, vhu_test_requests_wanted (20000) / 10);
  Flipper fl;
  GThread *thread;

  bad_setup (f, BASE_FEATURES);
  drv = f->drv[0];
  vq = queue (f, 0);
  qstate (f, 0)->mode = MODE_IGNORE;

  /* Taken, then rewritten to point elsewhere: the element keeps what was
   * validated. */
  raw_desc (f, 40, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 41);
  raw_desc (f, 41, SCRATCH + 64, 32, VHU_VRING_DESC_F_WRITE, 0);
  vhu_test_driver_put_avail (drv, 40);
  vhu_test_driver_publish (drv);
  elem = vhu_test_pop (queue (f, 0));
  iov = vhost_user_virtq_element_get_out_iov (elem, &n_iov);
  g_assert_cmpuint (n_iov, ==, 1);
  saved[0] = iov[0];
  iov = vhost_user_virtq_element_get_in_iov (elem, &n_iov);
  g_assert_cmpuint (n_iov, ==, 1);
  saved[1] = iov[0];
  raw_desc (f, 40, 1ull << 40, G_MAXUINT32, VHU_VRING_DESC_F_NEXT, 0xffff);
  raw_desc (f, 41, 1ull << 40, G_MAXUINT32, 0, 0);
  iov = vhost_user_virtq_element_get_out_iov (elem, &n_iov);
  g_assert_true (n_iov == 1 && iov[0].iov_base == saved[0].iov_base && iov[0].iov_len == 16);
  iov = vhost_user_virtq_element_get_in_iov (elem, &n_iov);
  g_assert_true (n_iov == 1 && iov[0].iov_base == saved[1].iov_base && iov[0].iov_len == 32);
  g_assert_cmpuint (vhost_user_virtq_element_get_out_size (elem), ==, 16);
  vhost_user_virtqueue_push (vq, elem, serve_element (qstate (f, 0), elem));
  vhost_user_virtq_element_unref (elem);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (len, ==, 16);

  /* The same through an indirect table rewritten after the pop. */
  raw_table (f, table, 0, SCRATCH, 16, VHU_VRING_DESC_F_NEXT, 1);
  raw_table (f, table, 1, SCRATCH + 64, 32, VHU_VRING_DESC_F_WRITE, 0);
  raw_desc (f, 40, table, 32, VHU_VRING_DESC_F_INDIRECT, 0);
  vhu_test_driver_put_avail (drv, 40);
  vhu_test_driver_publish (drv);
  elem = vhu_test_pop (queue (f, 0));
  raw_table (f, table, 1, 1ull << 40, 1, VHU_VRING_DESC_F_INDIRECT, 7);
  iov = vhost_user_virtq_element_get_in_iov (elem, &n_iov);
  g_assert_true (n_iov == 1 && iov[0].iov_len == 32);
  vhost_user_virtqueue_push (vq, elem, serve_element (qstate (f, 0), elem));
  vhost_user_virtq_element_unref (elem);
  g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
  g_assert_cmpuint (len, ==, 16);

  /* A guest thread flipping a descriptor while the device takes it again
   * and again: whatever is taken is consistent (each field read once). */
  raw_desc (f, 40, SCRATCH, 16, 0, 41);
  raw_desc (f, 41, SCRATCH + 64, 8, 0, 0);
  fl.desc = &vhu_test_driver_get_desc (drv)[40];
  fl.stop = 0;
  thread = g_thread_new ("flipper", flipper_main, &fl);
  for (guint i = 0; i < iterations; i++)
    {
      gsize size, sum = 0;

      vhu_test_driver_put_avail (drv, 40);
      vhu_test_driver_publish (drv);
      elem = vhu_test_pop (queue (f, 0));
      size = vhost_user_virtq_element_get_out_size (elem);
      iov = vhost_user_virtq_element_get_out_iov (elem, &n_iov);
      for (guint k = 0; k < n_iov; k++)
        sum += iov[k].iov_len;
      g_assert_cmpuint (sum, ==, size);
      g_assert_true (size == 16 || size == 24 || size == 32 || size == 40);
      g_assert_cmpuint (n_iov, ==, (size == 24 || size == 40) ? 2 : 1);
      vhost_user_virtqueue_push (vq, elem, 0);
      vhost_user_virtq_element_unref (elem);
      g_assert_true (vhu_test_driver_get_used (drv, &head, NULL));
      g_assert_cmpuint (head, ==, 40);
    }
  g_atomic_int_set (&fl.stop, 1);
  g_thread_join (thread);

  qstate (f, 0)->mode = MODE_ECHO;
  assert_queue_healthy (f, 0);
  round_trip (f, 0);
  round_trip (f, 1);
}

/* R19: the same head made available again while in flight. */
static void
test_bad_r19 (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqElement *elem;
  guint8 out[32];
  gint added;
  guint head;
  guint32 len;

  bad_setup (f, BASE_FEATURES);
  qs->mode = MODE_HOLD;
  added = add_simple (f, 0, out, 32, 32);
  vhu_test_driver_publish (f->drv[0]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (qs->held->len, ==, 1);

  expect_broken (f, added);
  /* The element the device still holds can be given back. */
  elem = g_ptr_array_steal_index (qs->held, 0);
  vhost_user_virtqueue_push (queue (f, 0), elem, serve_element (qs, elem));
  vhost_user_virtq_element_unref (elem);
  g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
  g_assert_cmpuint (head, ==, added);
  check_response (f->drv[0], head, len, out, 32, 32);
  round_trip (f, 1);
}

/* R22: used_event and avail_event with any value the guest likes. */
static void
test_bad_r22 (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  guint num = 128;
  Expect *expect = g_new0 (Expect, num);
  guint n = MAX (200, vhu_test_requests_wanted (20000) / 20), done = 0;

  negotiate (f, BASE_FEATURES | VF (RING_EVENT_IDX));
  start_queue (f, 0, num, 0);
  start_queue (f, 1, 64, 0);
  drv = f->drv[0];

  while (done < n)
    {
      guint want = g_rand_int_range (f->rand, 1, 17), added = 0, got = 0;
      VhuVringUsed *used = vhu_test_driver_get_used_ring (drv);

      while (added < want && add_random_chain (f, 0, expect) >= 0)
        added++;
      vhu_test_driver_set_used_event (drv, g_rand_int (f->rand));
      /* The guest scribbles over avail_event and the used flags too. */
      __atomic_store_n ((guint16 *) &used->ring[num], (guint16) g_rand_int (f->rand),
                        __ATOMIC_RELAXED);
      __atomic_store_n (&used->flags, (guint16) g_rand_int (f->rand), __ATOMIC_RELAXED);
      vhu_test_driver_get_avail (drv)->flags = (guint16) g_rand_int (f->rand);
      vhu_test_driver_publish (drv);
      kick (f, 0);
      vhu_test_frontend_flush (f->fe);
      got = collect_used (f, 0, expect);
      g_assert_cmpuint (got, ==, added);
      read_call (f, 0);
      done += added;
    }
  for (guint i = 0; i < num; i++)
    g_free (expect[i].out);
  g_free (expect);
  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* R23: kick storms, kicks on an empty, stopped or disabled ring. */
static void
test_bad_r23 (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  gint kicked, started;
  guint32 base;

  bad_setup (f, BASE_FEATURES);

  kicked = g_atomic_int_get (&qs->kicked);
  for (guint i = 0; i < 10000; i++)
    kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  /* One wakeup for the lot. */
  g_assert_cmpint (g_atomic_int_get (&qs->kicked), ==, kicked + 1);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]),
                    ==, vhu_test_driver_get_last_used (f->drv[0]));
  assert_queue_healthy (f, 0);

  /* Stopped: the kick fd is no longer watched. */
  base = stop_queue (f, 0);
  kicked = g_atomic_int_get (&qs->kicked);
  started = g_atomic_int_get (&qs->started);
  for (guint i = 0; i < 100; i++)
    kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (g_atomic_int_get (&qs->kicked), ==, kicked);
  g_assert_cmpint (g_atomic_int_get (&qs->started), ==, started);
  g_assert_false (vhost_user_virtqueue_get_started (queue (f, 0)));
  start_queue (f, 0, RING_NUM, base);
  round_trip (f, 0);

  /* Disabled but started: kicks are harmless. */
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, 0);
  for (guint i = 0; i < 100; i++)
    kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_false (vhost_user_virtqueue_get_enabled (queue (f, 0)));
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, 1);
  round_trip (f, 0);
  assert_queue_healthy (f, 0);
  round_trip (f, 1);
}

/* R25: rings overlapping each other, or buffers the device writes. The
 * guest only hurts itself: the device survives, the other queue works. */
static void
test_bad_r25 (Fixture *f, gconstpointer data)
{
  VhuTestDriver *drv;
  guint64 avail, used_end;
  VhuVringAddr addr;

  bad_setup (f, BASE_FEATURES);
  drv = f->drv[0];
  avail = vhu_test_driver_get_avail_gpa (drv);
  used_end = vhu_test_driver_get_used_gpa (drv) + 6 + 8 * RING_NUM;

  /* A writable buffer over the available and used rings. */
  raw_desc (f, 40, avail, used_end - avail, VHU_VRING_DESC_F_WRITE, 0);
  vhu_test_driver_put_avail (drv, 40);
  vhu_test_driver_publish (drv);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  assert_queue_healthy (f, 1);
  round_trip (f, 1);

  /* And over the descriptor table itself. */
  stop_queue (f, 0);
  make_driver (f, 0, RING_NUM);
  vhu_test_driver_set_base (f->drv[0], 0);
  drv = f->drv[0];
  start_queue (f, 0, RING_NUM, 0);
  raw_desc (f, 3, vhu_test_driver_get_desc_gpa (drv), 16 * RING_NUM, VHU_VRING_DESC_F_WRITE, 0);
  vhu_test_driver_put_avail (drv, 3);
  vhu_test_driver_put_avail (drv, 3);
  vhu_test_driver_publish (drv);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  round_trip (f, 1);

  /* The available ring at the used ring's address. */
  stop_queue (f, 0);
  make_driver (f, 0, RING_NUM);
  vhu_test_driver_set_base (f->drv[0], 0);
  drv = f->drv[0];
  addr = vhu_test_driver_get_vring_addr (drv, 0, 0);
  addr.avail_user_addr = addr.used_user_addr;
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_BASE, 0, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  vhu_test_close_fd (&f->kick[0]);
  f->kick[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, 0, f->kick[0]);
  raw_desc (f, 0, SCRATCH, 64, VHU_VRING_DESC_F_WRITE, 0);
  vhu_test_driver_get_used_ring (drv)->ring[0].id = 0;
  __atomic_store_n (&vhu_test_driver_get_used_ring (drv)->idx, 1, __ATOMIC_RELEASE);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  round_trip (f, 1);

  /* Set up properly again, queue 0 works. */
  stop_queue (f, 0);
  make_driver (f, 0, RING_NUM);
  vhu_test_driver_set_base (f->drv[0], 0);
  start_queue (f, 0, RING_NUM, 0);
  {
    gint errors = g_atomic_int_get (&qstate (f, 0)->broken_errors);

    vhu_test_read_eventfd (f->err[0]);
    round_trip (f, 0);
    g_assert_cmpint (g_atomic_int_get (&qstate (f, 0)->broken_errors), ==, errors);
    g_assert_false (vhost_user_virtqueue_get_broken (queue (f, 0)));
  }
  round_trip (f, 1);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle (bad-inputs.md L1, L2, L4, L5, L6, L8)                         */

/* L1: kicks before the memory table, before the ring addresses. */
static void
test_lifecycle_l1 (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  guint8 out[2][24];
  gint heads[2];

  negotiate_full (f, BASE_FEATURES, FALSE);
  make_driver (f, 0, RING_NUM);
  make_driver (f, 1, RING_NUM);
  heads[0] = offer_one (f, 0, out[0]);

  /* Queue 0: size, base and kick, no memory. */
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, 0, RING_NUM);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_BASE, 0, 0);
  f->call[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, f->call[0]);
  f->err[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ERR, 0, f->err[0]);
  f->kick[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, 0, f->kick[0]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (qs->started, ==, 0);
  g_assert_cmpint (qs->kicked, ==, 0);

  /* Addresses with no memory to put them in: still nothing. */
  send_vring_addr (f, 0, 0);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (qs->started, ==, 0);
  g_assert_false (vhost_user_virtqueue_get_started (queue (f, 0)));

  /* The memory table completes it: started, and what waited is served. */
  set_memory (f);
  g_assert_cmpint (qs->started, ==, 1);
  expect_one (f, 0, heads[0], out[0]);

  /* Queue 1: memory there, the kick before the addresses. */
  heads[1] = offer_one (f, 1, out[1]);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, 1, RING_NUM);
  f->call[1] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 1, f->call[1]);
  f->err[1] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ERR, 1, f->err[1]);
  f->kick[1] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, 1, f->kick[1]);
  kick (f, 1);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (qstate (f, 1)->started, ==, 0);
  g_assert_false (vhu_test_driver_get_used (f->drv[1], NULL, NULL));
  send_vring_addr (f, 1, 0);
  g_assert_cmpint (qstate (f, 1)->started, ==, 1);
  expect_one (f, 1, heads[1], out[1]);

  assert_queue_healthy (f, 0);
  assert_queue_healthy (f, 1);
  round_trip (f, 0);
  round_trip (f, 1);
}

/* L2: SET_VRING_KICK first; the ring starts when the rest is there. */
static void
test_lifecycle_l2 (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  guint8 out[24];
  gint head;

  negotiate (f, BASE_FEATURES);
  make_driver (f, 0, RING_NUM);
  vhu_test_driver_set_base (f->drv[0], 5);
  head = offer_one (f, 0, out);

  f->call[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, f->call[0]);
  f->err[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ERR, 0, f->err[0]);
  f->kick[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, 0, f->kick[0]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (qs->started, ==, 0);

  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, 0, RING_NUM);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpint (qs->started, ==, 0);

  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_BASE, 0, 5);
  g_assert_cmpint (qs->started, ==, 0);
  g_assert_false (vhost_user_virtqueue_get_started (queue (f, 0)));

  send_vring_addr (f, 0, 0);
  g_assert_cmpint (qs->started, ==, 1);
  g_assert_true (vhost_user_virtqueue_get_started (queue (f, 0)));
  expect_one (f, 0, head, out);
  g_assert_cmpuint (stop_queue (f, 0), ==, 6);
  assert_queue_healthy (f, 0);
}

/* A new front-end for the device, with new rings. */
static void
reconnect (Fixture *f)
{
  for (guint q = 0; q < N_QUEUES; q++)
    {
      vhu_test_close_fd (&f->call[q]);
      vhu_test_close_fd (&f->err[q]);
      vhu_test_close_fd (&f->kick[q]);
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
    }
  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  negotiate (f, BASE_FEATURES);
  start_queue (f, 0, RING_NUM, 0);
  start_queue (f, 1, RING_NUM, 0);
}

/* L4: the front-end goes while the device holds elements: the library
 * writes nothing more into guest memory for them. */
static void
test_lifecycle_l4 (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhuTestDriver *drv;
  VhostUserVirtqElement *elem;
  g_autofree guint8 *snapshot = NULL;
  guint64 used_size = 6 + 8 * RING_NUM;
  guint8 out[2][24];

  negotiate (f, BASE_FEATURES);
  qs->mode = MODE_HOLD;
  start_queue (f, 0, RING_NUM, 0);
  start_queue (f, 1, RING_NUM, 0);
  drv = f->drv[0];
  offer_one (f, 0, out[0]);
  offer_one (f, 0, out[1]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (qs->held->len, ==, 2);
  snapshot = g_memdup2 (vhu_test_driver_get_used_ring (drv), used_size);

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (VHOST_USER_DEVICE (f->device)));
  g_assert_cmpint (qs->stopped, ==, 1);
  g_assert_false (vhost_user_virtqueue_get_started (queue (f, 0)));

  /* One pushed, one dropped: neither reaches the used ring. */
  elem = g_ptr_array_steal_index (qs->held, 0);
  vhost_user_virtqueue_push (queue (f, 0), elem, serve_element (qs, elem));
  vhost_user_virtq_element_unref (elem);
  g_ptr_array_set_size (qs->held, 0);
  vhu_test_drain_default_context ();
  g_assert_cmpmem (vhu_test_driver_get_used_ring (drv), used_size, snapshot, used_size);
  g_assert_cmpuint (read_call (f, 0), ==, 0);

  /* The next front-end is served; this one goes while its GET_VRING_BASE
   * waits for a held element. */
  reconnect (f);
  offer_one (f, 0, out[0]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (qs->held->len, ==, 1);
  {
    VhuVringState state = { .index = 0, .num = 0 };

    g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_VRING_BASE, VHU_VERSION,
                                           &state, sizeof state, NULL, 0));
    g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  }
  g_free (snapshot);
  snapshot = g_memdup2 (vhu_test_driver_get_used_ring (f->drv[0]), used_size);
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (VHOST_USER_DEVICE (f->device)));
  elem = g_ptr_array_steal_index (qs->held, 0);
  vhost_user_virtqueue_push (queue (f, 0), elem, serve_element (qs, elem));
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
  g_assert_cmpmem (vhu_test_driver_get_used_ring (f->drv[0]), used_size, snapshot, used_size);

  reconnect (f);
  qs->mode = MODE_ECHO;
  round_trip (f, 0);
  round_trip (f, 1);
  g_assert_cmpuint (stop_queue (f, 0), ==, 1);
  assert_queue_healthy (f, 0);
}

/* An element kept after its device is gone is freed when dropped. */
static void
test_element_outlives_device (Fixture *f, gconstpointer data)
{
  VhostUserVirtqElement *elem;
  guint8 out[24];

  negotiate (f, BASE_FEATURES);
  qstate (f, 0)->mode = MODE_IGNORE;
  start_queue (f, 0, RING_NUM, 0);
  offer_one (f, 0, out);
  elem = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhost_user_virtq_element_get_out_size (elem), ==, 24);

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_object_unref (f->device);
  g_assert_null (f->device);

  /* Still readable (it keeps the memory mapped); dropping it frees it. */
  g_assert_cmpuint (vhost_user_virtq_element_read (elem, 0, out, sizeof out), ==, 24);
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
}

/* L5: new memory tables while the rings run. */
static void
test_lifecycle_l5 (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqElement *elem;
  g_autoptr (VhuTestGuestRam) ram_c = NULL;
  guint8 out[2][24];
  gint heads[2];
  guint head;
  guint32 len;

  negotiate (f, BASE_FEATURES);
  qs->mode = MODE_HOLD;
  qs->budget = 1;
  start_queue (f, 0, RING_NUM, 0);
  start_queue (f, 1, RING_NUM, 0);
  heads[0] = offer_one (f, 0, out[0]);
  heads[1] = offer_one (f, 0, out[1]);
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (qs->held->len, ==, 1);

  /* The same memory again (new mappings); the held element stays valid. */
  set_memory (f);
  elem = g_ptr_array_steal_index (qs->held, 0);
  vhost_user_virtqueue_push (queue (f, 0), elem, serve_element (qs, elem));
  vhost_user_virtq_element_unref (elem);
  expect_one (f, 0, heads[0], out[0]);
  qs->mode = MODE_ECHO;
  qs->budget = 0;
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  expect_one (f, 0, heads[1], out[1]);
  run_requests (f, 0, 200, 32);

  /* A third region: the rings go on, and buffers may be there. */
  ram_c = vhu_test_guest_ram_new (MIB, 2 * RAM_SIZE, G_GUINT64_CONSTANT (0x7f8000000000));
  {
    VhuTestGuestRam *rams[] = { f->ram_a, f->ram_b, ram_c };
    guint8 payload[64];
    const VhuTestBuffer bufs[] = { VHU_TEST_OUT_AT (2 * RAM_SIZE + 100, payload, 64),
                                   VHU_TEST_IN_AT (2 * RAM_SIZE + 4096, 64) };
    gint added;

    g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, rams, 3), ==, 0);
    vhu_test_driver_add_ram (f->drv[0], ram_c);
    fill_random (f->rand, payload, sizeof payload);
    added = vhu_test_driver_add (f->drv[0], bufs, 2, FALSE);
    vhu_test_driver_publish (f->drv[0]);
    kick (f, 0);
    vhu_test_frontend_flush (f->fe);
    g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
    g_assert_cmpuint (head, ==, added);
    check_response (f->drv[0], head, len, payload, 64, 64);
  }
  round_trip (f, 1);
  assert_queue_healthy (f, 0);
  assert_queue_healthy (f, 1);

  /* A table without the rings' region: both rings stop (not crash). */
  {
    VhuTestGuestRam *rams[] = { f->ram_b };

    g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, rams, 1), ==, 0);
    g_assert_false (vhost_user_virtqueue_get_started (queue (f, 0)));
    g_assert_false (vhost_user_virtqueue_get_started (queue (f, 1)));
    g_assert_cmpint (qs->stopped, ==, 1);
    g_assert_cmpuint (vhu_test_read_eventfd (f->err[0]), ==, 1);
    g_assert_cmpuint (vhu_test_read_eventfd (f->err[1]), ==, 1);
    kick (f, 0);
    vhu_test_frontend_flush (f->fe);
  }

  /* Memory back, rings set up again where they were. */
  set_memory (f);
  for (guint q = 0; q < N_QUEUES; q++)
    {
      guint16 base = vhost_user_virtqueue_get_last_avail_idx (queue (f, q));

      g_assert_cmpuint (base, ==, vhu_test_driver_get_avail_idx (f->drv[q]));
      start_queue (f, q, RING_NUM, base);
      round_trip (f, q);
    }
}

/* L8: the call and kick eventfds replaced while the ring runs. */
static void
test_lifecycle_l8 (Fixture *f, gconstpointer data)
{
  int old_call, old_kick;
  guint8 out[24];
  gint head;

  negotiate (f, BASE_FEATURES);
  start_queue (f, 0, RING_NUM, 0);
  start_queue (f, 1, RING_NUM, 0);
  round_trip (f, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 1);

  old_call = f->call[0];
  f->call[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, f->call[0]);
  for (guint i = 0; i < 3; i++)
    round_trip (f, 0);
  g_assert_cmpuint (vhu_test_read_eventfd (old_call), ==, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 3);
  close (old_call);

  /* No call fd at all: nothing to signal, nothing breaks. */
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, -1);
  round_trip (f, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 0);
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, f->call[0]);
  round_trip (f, 0);
  g_assert_cmpuint (read_call (f, 0), ==, 1);

  /* A new kick fd: the old one is no longer listened to. */
  old_kick = f->kick[0];
  f->kick[0] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, 0, f->kick[0]);
  vhu_test_frontend_flush (f->fe);
  head = offer_one (f, 0, out);
  g_assert_cmpint (eventfd_write (old_kick, 1), ==, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_false (vhu_test_driver_get_used (f->drv[0], NULL, NULL));
  kick (f, 0);
  vhu_test_frontend_flush (f->fe);
  expect_one (f, 0, head, out);
  close (old_kick);

  assert_queue_healthy (f, 0);
  round_trip (f, 1);
  g_assert_cmpuint (read_call (f, 1), ==, 1);
}

/* ------------------------------------------------------------------------ */

static const OracleParams oracle_plain = { FALSE, FALSE, MODE_ECHO, 128, 65000 };
static const OracleParams oracle_no_interrupt = { FALSE, TRUE, MODE_ECHO, 128, 0 };
static const OracleParams oracle_event_idx = { TRUE, FALSE, MODE_ECHO, 128, 65300 };
static const OracleParams oracle_batched = { FALSE, FALSE, MODE_BATCH, 128, 0 };
static const OracleParams oracle_batched_event_idx = { TRUE, FALSE, MODE_BATCH, 128, 100 };

static void
add_test (const char *path, gconstpointer data, void (*func) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, data, fixture_set_up, func, fixture_tear_down);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  main_thread = g_thread_self ();

  add_test ("/vhost-user/vring/oracle/plain", &oracle_plain, test_oracle);
  add_test ("/vhost-user/vring/oracle/no-interrupt", &oracle_no_interrupt, test_oracle);
  add_test ("/vhost-user/vring/oracle/event-idx", &oracle_event_idx, test_oracle);
  add_test ("/vhost-user/vring/oracle/batched", &oracle_batched, test_oracle);
  add_test ("/vhost-user/vring/oracle/batched-event-idx", &oracle_batched_event_idx, test_oracle);
  add_test ("/vhost-user/vring/cross-region", NULL, test_cross_region);
  add_test ("/vhost-user/vring/batch", NULL, test_batch);
  add_test ("/vhost-user/vring/unpop", NULL, test_unpop);
  add_test ("/vhost-user/vring/drop-unpushed", NULL, test_drop_unpushed);
  add_test ("/vhost-user/vring/element-outlives-device", NULL, test_element_outlives_device);
  add_test ("/vhost-user/vring/notification/flags", NULL, test_notification);
  add_test ("/vhost-user/vring/notification/event-idx", NULL, test_notification_event_idx);
  add_test ("/vhost-user/vring/worker/lifecycle", NULL, test_worker);
  add_test ("/vhost-user/vring/worker/move", NULL, test_worker_move);
  add_test ("/vhost-user/vring/stop-restart", NULL, test_stop_restart);
  add_test ("/vhost-user/vring/dirty-log/log-all", NULL, test_dirty_log);
  add_test ("/vhost-user/vring/dirty-log/event-idx", NULL, test_dirty_log_event_idx);
  add_test ("/vhost-user/vring/dirty-log/without-log-all", NULL, test_dirty_log_without_log_all);
  add_test ("/vhost-user/vring/bad-input/R1-avail-idx-jump", NULL, test_bad_r1);
  add_test ("/vhost-user/vring/bad-input/R2-head-out-of-range", NULL, test_bad_r2);
  add_test ("/vhost-user/vring/bad-input/R3-next-out-of-range", NULL, test_bad_r3);
  add_test ("/vhost-user/vring/bad-input/R4-loop", NULL, test_bad_r4);
  add_test ("/vhost-user/vring/bad-input/R5-long-chain", NULL, test_bad_r5);
  add_test ("/vhost-user/vring/bad-input/R6-indirect-size", NULL, test_bad_r6);
  add_test ("/vhost-user/vring/bad-input/R7-nested-indirect", NULL, test_bad_r7);
  add_test ("/vhost-user/vring/bad-input/R8-indirect-next", NULL, test_bad_r8);
  add_test ("/vhost-user/vring/bad-input/R8-indirect-not-negotiated", NULL,
            test_bad_r8_not_negotiated);
  add_test ("/vhost-user/vring/bad-input/R9-indirect-across-regions", NULL, test_bad_r9);
  add_test ("/vhost-user/vring/bad-input/R10-unmapped", NULL, test_bad_r10);
  add_test ("/vhost-user/vring/bad-input/R11-wrap", NULL, test_bad_r11);
  add_test ("/vhost-user/vring/bad-input/R12-zero-length", NULL, test_bad_r12);
  add_test ("/vhost-user/vring/bad-input/R13-over-4g", NULL, test_bad_r13);
  add_test ("/vhost-user/vring/bad-input/R14-order", NULL, test_bad_r14);
  add_test ("/vhost-user/vring/bad-input/R15-too-many-segments", NULL, test_bad_r15);
  add_test ("/vhost-user/vring/bad-input/R16-no-writable", NULL, test_bad_r16);
  add_test ("/vhost-user/vring/bad-input/R18-rewritten", NULL, test_bad_r18);
  add_test ("/vhost-user/vring/bad-input/R19-head-twice", NULL, test_bad_r19);
  add_test ("/vhost-user/vring/bad-input/R22-event-fields", NULL, test_bad_r22);
  add_test ("/vhost-user/vring/bad-input/R23-kicks", NULL, test_bad_r23);
  add_test ("/vhost-user/vring/bad-input/R25-overlap", NULL, test_bad_r25);
  add_test ("/vhost-user/vring/lifecycle/L1-kick-early", NULL, test_lifecycle_l1);
  add_test ("/vhost-user/vring/lifecycle/L2-kick-first", NULL, test_lifecycle_l2);
  add_test ("/vhost-user/vring/lifecycle/L4-disconnect-in-flight", NULL, test_lifecycle_l4);
  add_test ("/vhost-user/vring/lifecycle/L5-memory-while-running", NULL, test_lifecycle_l5);
  add_test ("/vhost-user/vring/lifecycle/L6-stop-in-flight", NULL, test_stop_in_flight);
  add_test ("/vhost-user/vring/lifecycle/L8-call-kick-replaced", NULL, test_lifecycle_l8);

  return g_test_run ();
}
