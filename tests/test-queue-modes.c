/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Queue modes and queues on worker threads. A device with four queues
 * serves requests that test drivers (vhu-test-driver) make available in
 * guest RAM shared through the test front-end; the drivers kick only when
 * the device asks for it (used->flags without NO_NOTIFY, or avail_event
 * crossed), as a guest's would. Covered:
 *
 *  - the mode and poll-ns properties;
 *  - event mode: one emission per kick, nothing without one;
 *  - adaptive mode: requests made available while it polls are served
 *    without kicks, one emission per batch and none per empty look; after
 *    its budget it asks for kicks again (seen in guest memory) and a kick
 *    wakes it; a request made available after its last look and before it
 *    asked for kicks again is served without a kick (the lost wakeup);
 *  - poll mode on a worker thread: no kick ever;
 *  - modes switched while the ring runs;
 *  - stop and restart of the ring in each mode (kicks asked for again after
 *    a stop);
 *  - four queues on two worker threads, thousands of requests each, in
 *    each mode.
 *
 * No timing thresholds: every wait has a generous timeout only; states are
 * asserted on counts and on what the device wrote in guest memory.
 *
 * VHU_TEST_VRING_REQUESTS sets how many requests each queue serves in the
 * multi-queue tests (5000 by default).
 */

#include <string.h>
#include <sys/eventfd.h>

#include "vhu-test-driver.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

#define N_QUEUES 4u
#define N_WORKERS 2u

#define MIB (G_GUINT64_CONSTANT (1024) * 1024)
#define RAM_SIZE (40 * MIB)
#define RAM_GPA G_GUINT64_CONSTANT (0)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f0000000000)
/* Queue q's rings at RING_OFFSET (q), its driver's data at DATA_GPA (q). */
#define RING_OFFSET(q) (0x10000u + (q) * 0x10000u)
#define DATA_GPA(q) (RAM_GPA + MIB + (q) * 8 * MIB)
#define DATA_SIZE (8 * MIB)
#define RING_NUM 128u
#define REQ_SIZE 64u

#define BASE_FEATURES (VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VF (RING_INDIRECT_DESC))
#define PROTOCOL_FEATURES (PF (MQ) | PF (REPLY_ACK))

#define WAIT_MS 20000
#define QUIET_MS 200
/* An adaptive budget no test outlives. */
#define LONG_POLL_NS (G_GUINT64_CONSTANT (3600) * 1000000000)
/* One that is over at once. */
#define SHORT_POLL_NS G_GUINT64_CONSTANT (1000)

static GThread *main_thread;

/* ------------------------------------------------------------------------ */
/* The device                                                               */

typedef struct
{
  gboolean ignore; /* take nothing (the test looks at the ring itself) */
  GThread *thread; /* where this queue's signals must come (NULL: the test's thread) */

  gint started;
  gint stopped;
  gint kicked;
  gint served;
  gint wrong_thread;
  gint errors;

  gboolean recycle; /* drop the elements with vhost_user_virtqueue_recycle() */
  gboolean pop_many; /* with recycle: pop with vhost_user_virtqueue_pop_many() */
  VhostUserVirtqElement *kept; /* recycled with another reference held */
  gint kept_count;

  int nested_kick; /* if >= 0: the handler kicks here, then iterates its context */
  gint depth;      /* handlers running on this queue */
  gint max_depth;
  gint nested_dispatches; /* iterations that dispatched something meanwhile */
} QueueState;

#define TEST_TYPE_MODES_DEVICE (test_modes_device_get_type ())
G_DECLARE_FINAL_TYPE (TestModesDevice, test_modes_device, TEST, MODES_DEVICE, VhostUserDevice)

struct _TestModesDevice
{
  VhostUserDevice parent_instance;
  QueueState queues[N_QUEUES];
};

G_DEFINE_FINAL_TYPE (TestModesDevice, test_modes_device, VHOST_USER_TYPE_DEVICE)

/* What the driver offers, and what the device writes back: byte k of
 * request @seq, and of its response. */
static guint8
request_byte (guint32 seq, guint k)
{
  return (guint8) (seq * 131u + k * 7u + 3u);
}

static guint8
response_byte (guint8 request, guint k)
{
  return request ^ 0x5a ^ (guint8) k;
}

static QueueState *
queue_state (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  guint index = vhost_user_virtqueue_get_index (queue);

  g_assert_cmpuint (index, <, N_QUEUES);
  return &TEST_MODES_DEVICE (device)->queues[index];
}

static void
check_thread (QueueState *qs)
{
  GThread *expected = g_atomic_pointer_get (&qs->thread);

  if (g_thread_self () != (expected != NULL ? expected : main_thread))
    g_atomic_int_inc (&qs->wrong_thread);
}

static gsize
serve (VhostUserVirtqElement *elem)
{
  guint8 req[REQ_SIZE], resp[REQ_SIZE];
  gsize n = vhost_user_virtq_element_read (elem, 0, req, sizeof req);

  n = MIN (n, vhost_user_virtq_element_get_in_size (elem));
  for (guint k = 0; k < n; k++)
    resp[k] = response_byte (req[k], k);
  return vhost_user_virtq_element_write (elem, 0, resp, n);
}

static void
test_modes_device_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  QueueState *qs = queue_state (device, queue);

  check_thread (qs);
  g_atomic_int_inc (&qs->kicked);
  qs->depth++;
  qs->max_depth = MAX (qs->max_depth, qs->depth);
  if (qs->nested_kick >= 0)
    {
      GMainContext *context = vhost_user_virtqueue_get_context (queue);

      /* A handler that runs its context, with a kick waiting: the queue's
       * handler must not run inside itself. */
      g_assert_cmpint (eventfd_write (qs->nested_kick, 1), ==, 0);
      for (guint i = 0; i < 20; i++)
        if (g_main_context_iteration (context, FALSE))
          qs->nested_dispatches++;
    }
  qs->depth--;
  if (qs->ignore)
    return;

  /* The usual handler, right in every mode: no kicks while draining, then
   * kicks again and one more look. */
  do
    {
      VhostUserVirtqElement *elem;
      g_autoptr (GError) error = NULL;

      VhostUserVirtqElement *done[RING_NUM];
      guint n_done = 0;

      vhost_user_virtqueue_set_notification (queue, FALSE);
      if (qs->pop_many)
        {
          /* In bursts of a few, served as they come. */
          VhostUserVirtqElement *burst[5];
          guint n;

          while ((n = vhost_user_virtqueue_pop_many (queue, burst, G_N_ELEMENTS (burst), &error))
                 > 0)
            for (guint i = 0; i < n; i++)
              {
                g_atomic_int_inc (&qs->served);
                vhost_user_virtqueue_push (queue, burst[i], serve (burst[i]));
                done[n_done++] = burst[i];
              }
        }
      while ((elem = vhost_user_virtqueue_pop (queue, &error)) != NULL)
        {
          /* Counted first: the test may see the response at once. */
          g_atomic_int_inc (&qs->served);
          vhost_user_virtqueue_push (queue, elem, serve (elem));
          if (qs->recycle)
            done[n_done++] = elem;
          else
            vhost_user_virtq_element_unref (elem);
        }
      if (n_done > 0)
        {
          /* Now and then one is held on to across a batch: recycling drops
           * only the reference it was given. */
          if (qs->kept != NULL)
            {
              g_assert_cmpuint (vhost_user_virtq_element_get_index (qs->kept), <, RING_NUM);
              g_clear_pointer (&qs->kept, vhost_user_virtq_element_unref);
            }
          else if (n_done % 3 == 0)
            {
              qs->kept = vhost_user_virtq_element_ref (done[0]);
              qs->kept_count++;
            }
          vhost_user_virtqueue_recycle (queue, done, n_done);
        }
      if (error != NULL)
        g_atomic_int_inc (&qs->errors);
      vhost_user_virtqueue_set_notification (queue, TRUE);
    }
  while (!vhost_user_virtqueue_get_broken (queue) && !vhost_user_virtqueue_is_empty (queue));
}

static void
test_modes_device_queue_started (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  QueueState *qs = queue_state (device, queue);

  check_thread (qs);
  g_atomic_int_inc (&qs->started);
}

static void
test_modes_device_queue_stopped (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  QueueState *qs = queue_state (device, queue);

  check_thread (qs);
  g_atomic_int_inc (&qs->stopped);
}

static void
test_modes_device_class_init (TestModesDeviceClass *klass)
{
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  device_class->queue_kicked = test_modes_device_queue_kicked;
  device_class->queue_started = test_modes_device_queue_started;
  device_class->queue_stopped = test_modes_device_queue_stopped;
}

static void
test_modes_device_init (TestModesDevice *self)
{
  for (guint q = 0; q < N_QUEUES; q++)
    self->queues[q].nested_kick = -1;
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

typedef struct
{
  TestModesDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  VhuTestDriver *drv[N_QUEUES];
  guint32 *pending[N_QUEUES]; /* by head: the request's seq + 1, 0 if none */
  int kick[N_QUEUES];
  int call[N_QUEUES];
  int err[N_QUEUES];
  guint kicks_sent[N_QUEUES];
  VhuTestWorker *workers[N_WORKERS];
  guint64 features;
  guint32 seq;
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

  f->device = g_object_new (TEST_TYPE_MODES_DEVICE, "num-queues", N_QUEUES, NULL);
  g_object_add_weak_pointer (G_OBJECT (f->device), (gpointer *) &f->device);
  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, RAM_GPA, RAM_UVA);
  for (guint q = 0; q < N_QUEUES; q++)
    f->kick[q] = f->call[q] = f->err[q] = -1;
  f->rand = g_rand_new_with_seed (g_test_rand_int ());
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  /* The front-end goes first: the rings stop on their threads. */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  for (guint q = 0; q < N_QUEUES; q++)
    {
      g_assert_false (vhost_user_virtqueue_get_started (queue (f, q)));
      vhost_user_virtqueue_set_context (queue (f, q), NULL);
      g_atomic_pointer_set (&qstate (f, q)->thread, NULL);
    }
  for (guint i = 0; i < N_WORKERS; i++)
    g_clear_pointer (&f->workers[i], vhu_test_worker_free);
  vhu_test_drain_default_context ();

  g_object_unref (f->device);
  g_assert_null (f->device);
  for (guint q = 0; q < N_QUEUES; q++)
    {
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
      g_clear_pointer (&f->pending[q], g_free);
      vhu_test_close_fd (&f->kick[q]);
      vhu_test_close_fd (&f->call[q]);
      vhu_test_close_fd (&f->err[q]);
    }
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  g_rand_free (f->rand);
  vhu_test_drain_default_context ();

  vhu_test_assert_fds (f->fds_before);
}

/* Queue @q runs on worker @w from now on. */
static void
move_to_worker (Fixture *f, guint q, guint w)
{
  g_assert_cmpuint (w, <, N_WORKERS);
  if (f->workers[w] == NULL)
    f->workers[w] = vhu_test_worker_new ("modes-worker");
  g_atomic_pointer_set (&qstate (f, q)->thread, f->workers[w]->thread);
  vhost_user_virtqueue_set_context (queue (f, q), f->workers[w]->context);
  g_assert_true (vhost_user_virtqueue_get_context (queue (f, q)) == f->workers[w]->context);
}

/* ------------------------------------------------------------------------ */
/* Front-end and driver side                                                */

static void
negotiate (Fixture *f, guint64 features)
{
  VhuTestGuestRam *rams[] = { f->ram };

  vhu_test_frontend_negotiate (f->fe, features, PROTOCOL_FEATURES);
  f->features = features;
  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, rams, 1), ==, 0);
}

/* Sets ring @q up and starts it (SET_VRING_KICK) at @base; the driver goes
 * on where it was for a restart. */
static void
start_queue (Fixture *f, guint q, guint16 base)
{
  if (f->drv[q] == NULL)
    {
      f->drv[q] = vhu_test_driver_new (f->ram, RING_OFFSET (q), RING_NUM);
      vhu_test_driver_set_data_area (f->drv[q], DATA_GPA (q), DATA_SIZE);
      vhu_test_driver_set_event_idx (f->drv[q], (f->features & VF (RING_EVENT_IDX)) != 0);
      vhu_test_driver_set_base (f->drv[q], base);
      f->pending[q] = g_new0 (guint32, RING_NUM);
    }

  g_assert_cmpuint (
    vhu_test_driver_start_ring (f->drv[q], f->fe, q, base, 0, &f->kick[q], &f->call[q], &f->err[q]),
    ==, 0);
  vhu_test_frontend_flush (f->fe);
}

static guint32
stop_queue (Fixture *f, guint q)
{
  return vhu_test_frontend_get_vring_base (f->fe, q);
}

static void
kick (Fixture *f, guint q)
{
  g_assert_cmpint (eventfd_write (f->kick[q], 1), ==, 0);
  f->kicks_sent[q]++;
}

/* One look at the default context (where the device runs, and the queues
 * not moved to a worker); a short sleep if nothing was ready. */
static void
iterate (void)
{
  if (!g_main_context_iteration (NULL, FALSE))
    g_usleep (50);
}

#define WAIT_UNTIL(cond)                                                                           \
  G_STMT_START                                                                                     \
  {                                                                                                \
    gint64 deadline_ = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;                \
                                                                                                   \
    while (!(cond))                                                                                \
      {                                                                                            \
        iterate ();                                                                                \
        if (g_get_monotonic_time () > deadline_)                                                   \
          g_error ("%s:%d: timed out waiting for %s", __FILE__, __LINE__, #cond);                  \
      }                                                                                            \
  }                                                                                                \
  G_STMT_END

/* Used entries the driver has not taken yet. */
static guint
used_waiting (Fixture *f, guint q)
{
  return (guint16) (vhu_test_driver_get_used_idx (f->drv[q])
                    - vhu_test_driver_get_last_used (f->drv[q]));
}

/* Whether the device asks the driver to kick, as the driver reads it in
 * guest memory: used->flags without NO_NOTIFY, or with EVENT_IDX
 * avail_event at the index the driver published. */
static gboolean
kicks_wanted (Fixture *f, guint q)
{
  VhuTestDriver *drv = f->drv[q];

  if (f->features & VF (RING_EVENT_IDX))
    return vhu_test_driver_get_avail_event (drv) == vhu_test_driver_get_avail_idx (drv);
  return !(vhu_test_driver_get_used_flags (drv) & VHU_VRING_USED_F_NO_NOTIFY);
}

/* Kicks off, as a polling queue leaves them: NO_NOTIFY, or avail_event
 * behind the index the driver published, where the driver's next publish
 * does not cross it. */
static gboolean
kicks_off (Fixture *f, guint q)
{
  VhuTestDriver *drv = f->drv[q];

  if (f->features & VF (RING_EVENT_IDX))
    {
      guint16 behind =
        vhu_test_driver_get_avail_idx (drv) - vhu_test_driver_get_avail_event (drv);

      return behind >= 1 && behind <= RING_NUM;
    }
  return (vhu_test_driver_get_used_flags (drv) & VHU_VRING_USED_F_NO_NOTIFY) != 0;
}

static gboolean
set_flag (gpointer data)
{
  g_atomic_int_set ((gint *) data, 1);
  return G_SOURCE_REMOVE;
}

/* Returns after queue @q's context went through an iteration: its source
 * took up the mode last set, and a started ring to poll is polled. */
static void
sync_queue (Fixture *f, guint q)
{
  GMainContext *context = vhost_user_virtqueue_get_context (queue (f, q));
  GSource *idle;
  gint done = 0;

  if (context == g_main_context_default ())
    {
      g_main_context_iteration (NULL, FALSE);
      return;
    }
  /* Twice: an idle attached while the worker sits in poll() may be
   * dispatched in that same iteration, before any source was prepared
   * again; the second one runs after a whole new iteration, whose prepare
   * phase took up what was set before. */
  for (guint round = 0; round < 2; round++)
    {
      done = 0;
      idle = g_idle_source_new ();
      g_source_set_callback (idle, set_flag, &done, NULL);
      g_source_attach (idle, context);
      g_source_unref (idle);
      WAIT_UNTIL (g_atomic_int_get (&done));
    }
}

/* Adds one request (REQ_SIZE bytes to read, as many to write). */
static void
add_request (Fixture *f, guint q)
{
  guint8 out[REQ_SIZE];
  guint32 seq = ++f->seq;
  VhuTestBuffer bufs[2];
  gint head;

  for (guint k = 0; k < REQ_SIZE; k++)
    out[k] = request_byte (seq, k);
  bufs[0] = VHU_TEST_OUT (out, REQ_SIZE);
  bufs[1] = VHU_TEST_IN (REQ_SIZE);
  head = vhu_test_driver_add (f->drv[q], bufs, 2, g_rand_boolean (f->rand));
  g_assert_cmpint (head, >=, 0);
  g_assert_cmpuint (f->pending[q][head], ==, 0);
  f->pending[q][head] = seq + 1;
}

/* Adds @n requests and publishes them. Returns whether the device asked
 * for a kick. */
static gboolean
offer (Fixture *f, guint q, guint n)
{
  for (guint i = 0; i < n; i++)
    add_request (f, q);
  return vhu_test_driver_publish (f->drv[q]);
}

/* Takes every used entry of queue @q, each checked. Returns how many. */
static guint
collect (Fixture *f, guint q)
{
  guint head, n = 0;
  guint32 len;

  while (vhu_test_driver_get_used (f->drv[q], &head, &len))
    {
      guint8 got[REQ_SIZE];
      guint32 seq;

      g_assert_cmpuint (head, <, RING_NUM);
      if (f->pending[q][head] == 0)
        g_error ("queue %u: head %u came back but was not pending", q, head);
      seq = f->pending[q][head] - 1;
      f->pending[q][head] = 0;
      g_assert_cmpuint (len, ==, REQ_SIZE);
      g_assert_cmpuint (vhu_test_driver_read_in (f->drv[q], head, got, REQ_SIZE), ==, REQ_SIZE);
      for (guint k = 0; k < REQ_SIZE; k++)
        if (got[k] != response_byte (request_byte (seq, k), k))
          g_error ("queue %u: request %u, byte %u is 0x%02x", q, seq, k, got[k]);
      n++;
    }
  return n;
}

/* Waits for @n responses on queue @q and checks them. */
static void
wait_responses (Fixture *f, guint q, guint n)
{
  guint got = 0;

  while (got < n)
    {
      WAIT_UNTIL (used_waiting (f, q) > 0);
      got += collect (f, q);
    }
  g_assert_cmpuint (got, ==, n);
}

/* @n requests on queue @q, as a driver makes them: a kick only when the
 * device asks for one. Returns whether it asked. */
static gboolean
round_trip (Fixture *f, guint q, guint n)
{
  gboolean wanted = offer (f, q, n);

  if (wanted)
    kick (f, q);
  wait_responses (f, q, n);
  return wanted;
}

static void
assert_queue_healthy (Fixture *f, guint q)
{
  QueueState *qs = qstate (f, q);

  g_assert_false (vhost_user_virtqueue_get_broken (queue (f, q)));
  g_assert_cmpint (g_atomic_int_get (&qs->errors), ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->wrong_thread), ==, 0);
  if (f->err[q] >= 0)
    g_assert_cmpuint (vhu_test_read_eventfd (f->err[q]), ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Properties                                                               */

static void
count_notify (GObject *object, GParamSpec *pspec, gpointer data)
{
  (*(guint *) data)++;
}

static void
test_properties (Fixture *f, gconstpointer data)
{
  VhostUserVirtqueue *vq = queue (f, 0);
  g_autoptr (GEnumClass) enum_class = g_type_class_ref (VHOST_USER_TYPE_QUEUE_MODE);
  GParamSpec *pspec;
  VhostUserQueueMode mode;
  guint64 poll_ns;
  guint mode_notifies = 0, poll_notifies = 0;

  /* Introspectable: an enum type with nicks, and two properties. */
  g_assert_cmpint (g_enum_get_value_by_nick (enum_class, "event")->value, ==,
                   VHOST_USER_QUEUE_MODE_EVENT);
  g_assert_cmpint (g_enum_get_value_by_nick (enum_class, "adaptive")->value, ==,
                   VHOST_USER_QUEUE_MODE_ADAPTIVE);
  g_assert_cmpint (g_enum_get_value_by_nick (enum_class, "poll")->value, ==,
                   VHOST_USER_QUEUE_MODE_POLL);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (vq), "mode");
  g_assert_nonnull (pspec);
  g_assert_true (G_PARAM_SPEC_VALUE_TYPE (pspec) == VHOST_USER_TYPE_QUEUE_MODE);
  g_assert_true ((pspec->flags & G_PARAM_READWRITE) == G_PARAM_READWRITE);
  g_assert_cmpint (G_PARAM_SPEC_ENUM (pspec)->default_value, ==, VHOST_USER_QUEUE_MODE_EVENT);
  pspec = g_object_class_find_property (G_OBJECT_GET_CLASS (vq), "poll-ns");
  g_assert_nonnull (pspec);
  g_assert_cmpuint (G_PARAM_SPEC_UINT64 (pspec)->default_value, ==, 50000);

  /* Defaults, on every queue. */
  for (guint q = 0; q < N_QUEUES; q++)
    {
      g_assert_cmpint (vhost_user_virtqueue_get_mode (queue (f, q)), ==,
                       VHOST_USER_QUEUE_MODE_EVENT);
      g_assert_cmpuint (vhost_user_virtqueue_get_poll_ns (queue (f, q)), ==, 50000);
    }

  g_signal_connect (vq, "notify::mode", G_CALLBACK (count_notify), &mode_notifies);
  g_signal_connect (vq, "notify::poll-ns", G_CALLBACK (count_notify), &poll_notifies);
  g_object_set (vq, "mode", VHOST_USER_QUEUE_MODE_POLL, "poll-ns", (guint64) 1234, NULL);
  g_object_get (vq, "mode", &mode, "poll-ns", &poll_ns, NULL);
  g_assert_cmpint (mode, ==, VHOST_USER_QUEUE_MODE_POLL);
  g_assert_cmpuint (poll_ns, ==, 1234);
  g_assert_cmpuint (mode_notifies, ==, 1);
  g_assert_cmpuint (poll_notifies, ==, 1);
  /* The same value again: no notification. */
  vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_POLL);
  vhost_user_virtqueue_set_poll_ns (vq, 1234);
  g_assert_cmpuint (mode_notifies, ==, 1);
  g_assert_cmpuint (poll_notifies, ==, 1);
  vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_ADAPTIVE);
  g_assert_cmpint (vhost_user_virtqueue_get_mode (vq), ==, VHOST_USER_QUEUE_MODE_ADAPTIVE);
  g_assert_cmpuint (mode_notifies, ==, 2);
  /* The other queues keep theirs. */
  g_assert_cmpint (vhost_user_virtqueue_get_mode (queue (f, 1)), ==, VHOST_USER_QUEUE_MODE_EVENT);
  g_signal_handlers_disconnect_by_data (vq, &mode_notifies);
  g_signal_handlers_disconnect_by_data (vq, &poll_notifies);
}

/* A mode that is not one is a programmer error. (No fixture: the
 * subprocess machinery keeps a file descriptor of its own.) */
static void
test_bad_mode (void)
{
  if (g_test_subprocess ())
    {
      g_autoptr (TestModesDevice) device =
        g_object_new (TEST_TYPE_MODES_DEVICE, "num-queues", 1, NULL);

      vhost_user_virtqueue_set_mode (vhost_user_device_get_queue (VHOST_USER_DEVICE (device), 0),
                                     (VhostUserQueueMode) 7);
      return;
    }
  g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
  g_test_trap_assert_failed ();
  g_test_trap_assert_stderr ("*CRITICAL*mode*");
}

/* ------------------------------------------------------------------------ */
/* Event mode                                                               */

static void
test_event (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  gint kicked;

  negotiate (f, BASE_FEATURES | GPOINTER_TO_UINT (data));
  start_queue (f, 0, 0);
  g_assert_cmpint (qs->kicked, ==, 1); /* the start counts as a kick */

  for (guint i = 0; i < 10; i++)
    {
      kicked = qs->kicked;
      g_assert_true (round_trip (f, 0, 1 + i % 4));
      g_assert_cmpint (qs->kicked, ==, kicked + 1);
      g_assert_true (kicks_wanted (f, 0));
    }

  /* Nothing without a kick. */
  kicked = qs->kicked;
  g_assert_true (offer (f, 0, 1));
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_cmpuint (used_waiting (f, 0), ==, 0);
  g_assert_cmpint (qs->kicked, ==, kicked);
  kick (f, 0);
  wait_responses (f, 0, 1);
  g_assert_cmpint (qs->kicked, ==, kicked + 1);
  g_assert_cmpint (qs->served, ==, 1 + 2 + 3 + 4 + 1 + 2 + 3 + 4 + 1 + 2 + 1);
  assert_queue_healthy (f, 0);
}

/* ------------------------------------------------------------------------ */
/* Adaptive mode                                                            */

/* While it polls, requests are served without kicks: one emission per
 * batch, none for a look that found nothing. */
static void
test_adaptive_polling (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  guint served = 1;
  gint kicked;

  negotiate (f, BASE_FEATURES | GPOINTER_TO_UINT (data));
  vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_ADAPTIVE);
  vhost_user_virtqueue_set_poll_ns (vq, LONG_POLL_NS);
  start_queue (f, 0, 0);

  /* Waiting for a kick, as in event mode; after the work, polling. */
  g_assert_true (kicks_wanted (f, 0));
  g_assert_true (round_trip (f, 0, 1));
  g_assert_true (kicks_off (f, 0));
  g_assert_cmpuint (f->kicks_sent[0], ==, 1);

  for (guint i = 0; i < 20; i++)
    {
      guint n = 1 + i % 5;

      kicked = qs->kicked;
      g_assert_false (offer (f, 0, n)); /* no kick wanted */
      wait_responses (f, 0, n);
      served += n;
      g_assert_cmpint (qs->kicked, ==, kicked + 1);
      g_assert_true (kicks_off (f, 0));
    }
  g_assert_cmpuint (f->kicks_sent[0], ==, 1);
  g_assert_cmpint (qs->served, ==, served);
  /* Calls went to the driver all along. */
  g_assert_cmpuint (vhu_test_read_eventfd (f->call[0]), >, 0);

  /* Empty looks emit nothing. */
  kicked = qs->kicked;
  for (guint i = 0; i < 2000; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_cmpint (qs->kicked, ==, kicked);
  g_assert_true (kicks_off (f, 0));

  /* A request left in the ring by the device is not announced again;
   * the next one is. */
  qs->ignore = TRUE;
  g_assert_false (offer (f, 0, 1));
  WAIT_UNTIL (qs->kicked == kicked + 1);
  for (guint i = 0; i < 2000; i++)
    g_main_context_iteration (NULL, FALSE);
  g_assert_cmpint (qs->kicked, ==, kicked + 1);
  qs->ignore = FALSE;
  g_assert_false (offer (f, 0, 1));
  wait_responses (f, 0, 2);
  g_assert_cmpint (qs->kicked, ==, kicked + 2);
  g_assert_cmpuint (f->kicks_sent[0], ==, 1);
  assert_queue_healthy (f, 0);
}

/* After its budget, it asks for kicks again; then a kick wakes it. */
static void
test_adaptive_budget (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  gint kicked;

  negotiate (f, BASE_FEATURES | GPOINTER_TO_UINT (data));
  vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_ADAPTIVE);
  vhost_user_virtqueue_set_poll_ns (vq, SHORT_POLL_NS);
  start_queue (f, 0, 0);

  for (guint i = 0; i < 5; i++)
    {
      /* A kick wakes it, the work is done, it polls... */
      kicked = qs->kicked;
      g_assert_true (round_trip (f, 0, 2));
      g_assert_true (kicks_off (f, 0));
      g_assert_cmpint (qs->kicked, ==, kicked + 1);

      /* ... and when the budget is over, asks for kicks again. */
      WAIT_UNTIL (kicks_wanted (f, 0));
      g_assert_false (kicks_off (f, 0));

      /* Then nothing happens without a kick. */
      g_assert_true (offer (f, 0, 1));
      g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
      g_assert_cmpuint (used_waiting (f, 0), ==, 0);
      g_assert_cmpint (qs->kicked, ==, kicked + 1);
      kick (f, 0);
      wait_responses (f, 0, 1);
      g_assert_cmpint (qs->kicked, ==, kicked + 2);
      WAIT_UNTIL (kicks_wanted (f, 0));
    }
  g_assert_cmpint (qs->served, ==, 5 * 3);
  assert_queue_healthy (f, 0);
}

/* The lost wakeup: a request made available after the queue's last look
 * and before it asks for kicks again comes without a kick (the driver saw
 * NO_NOTIFY); the look after asking finds it. */
static void
test_adaptive_lost_wakeup (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);

  negotiate (f, BASE_FEATURES | GPOINTER_TO_UINT (data));
  vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_ADAPTIVE);
  vhost_user_virtqueue_set_poll_ns (vq, SHORT_POLL_NS);
  start_queue (f, 0, 0);

  for (guint i = 0; i < 5; i++)
    {
      gint kicked = qs->kicked;

      /* The device runs on this thread: after the iteration that served
       * the request it looks at nothing until the next one. */
      g_assert_true (round_trip (f, 0, 1));
      g_assert_true (kicks_off (f, 0));
      /* Made available while kicks are off: the driver does not kick. */
      g_assert_false (offer (f, 0, 1 + i));
      /* The budget runs out before the queue looks again. */
      g_usleep (2 * SHORT_POLL_NS / 1000 + 1000);
      wait_responses (f, 0, 1 + i);
      g_assert_cmpint (qs->kicked, ==, kicked + 2);
      WAIT_UNTIL (kicks_wanted (f, 0));
    }
  g_assert_cmpuint (f->kicks_sent[0], ==, 5);
  assert_queue_healthy (f, 0);
}

/* ------------------------------------------------------------------------ */
/* Poll mode                                                                */

/* On a worker thread: requests served without a single kick, and after a
 * stop the driver is asked to kick again. */
static void
test_poll_worker (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  guint total = vhu_test_requests_wanted (5000) / 2, done = 0, rounds = 0;
  guint32 base;

  negotiate (f, BASE_FEATURES | GPOINTER_TO_UINT (data));
  move_to_worker (f, 0, 0);
  vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_POLL);
  start_queue (f, 0, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->started), ==, 1);
  sync_queue (f, 0);
  g_assert_true (kicks_off (f, 0));

  while (done < total)
    {
      guint n = g_rand_int_range (f->rand, 1, 33);

      n = MIN (n, total - done);

      g_assert_false (round_trip (f, 0, n));
      done += n;
      rounds++;
    }
  g_assert_cmpuint (f->kicks_sent[0], ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->served), ==, total);
  /* One emission per batch at most (a batch may join the one before),
   * and the start's. */
  g_assert_cmpint (g_atomic_int_get (&qs->kicked), >=, 2);
  g_assert_cmpint (g_atomic_int_get (&qs->kicked), <=, 1 + rounds);

  /* Stopped: kicks wanted again, for whoever runs the ring next. */
  base = stop_queue (f, 0);
  g_assert_cmpuint (base, ==, vhu_test_driver_get_avail_idx (f->drv[0]));
  g_assert_cmpint (g_atomic_int_get (&qs->stopped), ==, 1);
  g_assert_true (kicks_wanted (f, 0));
  g_assert_false (kicks_off (f, 0));

  /* Restarted: polled again. */
  start_queue (f, 0, base);
  sync_queue (f, 0);
  g_assert_true (kicks_off (f, 0));
  for (guint i = 0; i < 50; i++)
    g_assert_false (round_trip (f, 0, 1 + i % 8));
  g_assert_cmpuint (f->kicks_sent[0], ==, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->started), ==, 2);
  assert_queue_healthy (f, 0);
}

/* ------------------------------------------------------------------------ */
/* Switching modes                                                          */

static void
test_switch (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  guint kicks;

  negotiate (f, BASE_FEATURES | GPOINTER_TO_UINT (data));
  move_to_worker (f, 0, 0);
  vhost_user_virtqueue_set_poll_ns (vq, LONG_POLL_NS);
  start_queue (f, 0, 0);

  for (guint cycle = 0; cycle < 3; cycle++)
    {
      /* Event: kicks wanted (but for requests the handler's last look
       * finds: the device runs on another thread). */
      kicks = f->kicks_sent[0];
      for (guint i = 0; i < 10; i++)
        round_trip (f, 0, 1 + i % 3);
      g_assert_cmpuint (f->kicks_sent[0], >, kicks);

      /* Poll: taken up by the worker; no kick wanted. */
      vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_POLL);
      sync_queue (f, 0);
      g_assert_true (kicks_off (f, 0));
      kicks = f->kicks_sent[0];
      for (guint i = 0; i < 10; i++)
        g_assert_false (round_trip (f, 0, 1 + i % 3));

      /* Adaptive with a long budget: still polling. */
      vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_ADAPTIVE);
      for (guint i = 0; i < 10; i++)
        g_assert_false (round_trip (f, 0, 1 + i % 3));
      g_assert_cmpuint (f->kicks_sent[0], ==, kicks);

      /* Back to poll, then to event with a request made available without
       * a kick just before: served either way. */
      vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_POLL);
      g_assert_false (offer (f, 0, 2));
      vhost_user_virtqueue_set_mode (vq, VHOST_USER_QUEUE_MODE_EVENT);
      wait_responses (f, 0, 2);
      WAIT_UNTIL (kicks_wanted (f, 0));
      g_assert_cmpuint (f->kicks_sent[0], ==, kicks);
    }
  g_assert_cmpint (g_atomic_int_get (&qs->served), ==, 3 * (3 * 19 + 2));
  assert_queue_healthy (f, 0);
}

/* ------------------------------------------------------------------------ */
/* Stop and start in each mode                                              */

static void
test_stop_start (Fixture *f, gconstpointer data)
{
  static const VhostUserQueueMode modes[] = {
    VHOST_USER_QUEUE_MODE_EVENT,
    VHOST_USER_QUEUE_MODE_ADAPTIVE,
    VHOST_USER_QUEUE_MODE_POLL,
  };
  gboolean on_worker = GPOINTER_TO_UINT (data) != 0;
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqueue *vq = queue (f, 0);
  guint16 base = 0;
  gint starts = 0;

  negotiate (f, BASE_FEATURES | VF (RING_EVENT_IDX));
  if (on_worker)
    move_to_worker (f, 0, 1);
  vhost_user_virtqueue_set_poll_ns (vq, LONG_POLL_NS);

  for (guint m = 0; m < G_N_ELEMENTS (modes) * 2; m++)
    {
      VhostUserQueueMode mode = modes[m % G_N_ELEMENTS (modes)];

      /* Set while stopped, or (the second time round) while running. */
      if (m < G_N_ELEMENTS (modes))
        vhost_user_virtqueue_set_mode (vq, mode);
      start_queue (f, 0, base);
      g_assert_cmpint (g_atomic_int_get (&qs->started), ==, ++starts);
      if (m >= G_N_ELEMENTS (modes))
        {
          vhost_user_virtqueue_set_mode (vq, mode);
          sync_queue (f, 0);
        }

      for (guint i = 0; i < 3; i++)
        {
          round_trip (f, 0, 4);
          sync_queue (f, 0);
          if (mode == VHOST_USER_QUEUE_MODE_EVENT)
            g_assert_true (kicks_wanted (f, 0));
          else
            g_assert_true (kicks_off (f, 0));
        }

      /* Stopped while the device holds nothing; or, with a request the
       * driver made available and nobody popped, still in the ring. */
      if (m % 2 == 1)
        {
          gint kicked = g_atomic_int_get (&qs->kicked);

          qs->ignore = TRUE;
          if (offer (f, 0, 1))
            kick (f, 0);
          WAIT_UNTIL (g_atomic_int_get (&qs->kicked) > kicked);
        }
      base = stop_queue (f, 0);
      g_assert_cmpint (g_atomic_int_get (&qs->stopped), ==, starts);
      g_assert_false (vhost_user_virtqueue_get_started (vq));
      g_assert_cmpuint (base, ==, (guint16) (vhu_test_driver_get_avail_idx (f->drv[0]) - m % 2));
      /* A ring that was polled gets kicks on its next run. */
      if (mode != VHOST_USER_QUEUE_MODE_EVENT || m % 2 == 0)
        g_assert_true (kicks_wanted (f, 0));
      qs->ignore = FALSE;
      if (m % 2 == 1)
        {
          /* Served after the restart. */
          start_queue (f, 0, base);
          g_assert_cmpint (g_atomic_int_get (&qs->started), ==, ++starts);
          wait_responses (f, 0, 1);
          base = stop_queue (f, 0);
          g_assert_cmpint (g_atomic_int_get (&qs->stopped), ==, starts);
          g_assert_cmpuint (base, ==, vhu_test_driver_get_avail_idx (f->drv[0]));
        }
      g_assert_cmpint (vhost_user_virtqueue_get_mode (vq), ==, mode);
    }
  assert_queue_healthy (f, 0);
}

/* ------------------------------------------------------------------------ */
/* Four queues on two worker threads                                        */

static void
test_multi_queue (Fixture *f, gconstpointer data)
{
  VhostUserQueueMode mode = GPOINTER_TO_INT (data);
  guint total = vhu_test_requests_wanted (5000);
  guint done[N_QUEUES] = { 0 };
  guint in_flight[N_QUEUES] = { 0 };
  gboolean busy = TRUE;

  negotiate (f, BASE_FEATURES | (mode == VHOST_USER_QUEUE_MODE_ADAPTIVE ? VF (RING_EVENT_IDX) : 0));
  for (guint q = 0; q < N_QUEUES; q++)
    {
      move_to_worker (f, q, q % N_WORKERS);
      vhost_user_virtqueue_set_mode (queue (f, q), mode);
      start_queue (f, q, 0);
    }
  if (mode == VHOST_USER_QUEUE_MODE_POLL)
    for (guint q = 0; q < N_QUEUES; q++)
      {
        sync_queue (f, q);
        g_assert_true (kicks_off (f, q));
      }

  /* Every queue busy at the same time: a batch on each, then whatever came
   * back, until each has served its share. */
  while (busy)
    {
      busy = FALSE;
      for (guint q = 0; q < N_QUEUES; q++)
        {
          guint n;

          if (done[q] + in_flight[q] < total && in_flight[q] < RING_NUM / 2)
            {
              /* At most two descriptors a request. */
              n = g_rand_int_range (f->rand, 1, 33);
              n = MIN (n, total - done[q] - in_flight[q]);
              n = MIN (n, RING_NUM / 2 - in_flight[q]);
              if (offer (f, q, n))
                kick (f, q);
              in_flight[q] += n;
            }
          n = collect (f, q);
          g_assert_cmpuint (n, <=, in_flight[q]);
          in_flight[q] -= n;
          done[q] += n;
          busy |= done[q] < total;
        }
      if (busy)
        {
          gint64 deadline = g_get_monotonic_time () + WAIT_MS * G_TIME_SPAN_MILLISECOND;
          gboolean any = FALSE;

          /* Something comes back, or the test gives up. */
          while (!any)
            {
              for (guint q = 0; q < N_QUEUES; q++)
                any |= used_waiting (f, q) > 0 || (in_flight[q] < RING_NUM / 2
                                                   && done[q] + in_flight[q] < total);
              if (!any)
                iterate ();
              if (g_get_monotonic_time () > deadline)
                g_error ("no queue made progress");
            }
        }
    }

  for (guint q = 0; q < N_QUEUES; q++)
    {
      QueueState *qs = qstate (f, q);

      g_assert_cmpuint (done[q], ==, total);
      g_assert_cmpint (g_atomic_int_get (&qs->served), ==, total);
      g_assert_cmpint (g_atomic_int_get (&qs->kicked), >=, 1);
      if (mode == VHOST_USER_QUEUE_MODE_POLL)
        g_assert_cmpuint (f->kicks_sent[q], ==, 0);
      assert_queue_healthy (f, q);
      g_test_message ("queue %u: %u requests, %d emissions, %u kicks", q, total,
                      g_atomic_int_get (&qs->kicked), f->kicks_sent[q]);
    }
  for (guint q = 0; q < N_QUEUES; q++)
    g_assert_cmpuint (stop_queue (f, q), ==, vhu_test_driver_get_avail_idx (f->drv[q]));
}

/* ------------------------------------------------------------------------ */
/* Elements recycled by the handler                                         */

/* vhost_user_virtqueue_recycle() in the handler, on the queue's thread
 * (the default context, or a worker's): every request is answered right,
 * elements come back for later pops, and one held on to across a batch
 * stays good. From a thread that does not run the queue's context, it
 * drops each element as unref() would. */
static void
test_recycle (Fixture *f, gconstpointer data)
{
  gboolean worker = GPOINTER_TO_INT (data) & 1;
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqElement *elems[4];
  guint total = 0;

  negotiate (f, BASE_FEATURES | VF (RING_EVENT_IDX));
  if (worker)
    move_to_worker (f, 0, 0);
  qs->recycle = TRUE;
  qs->pop_many = (GPOINTER_TO_INT (data) & 2) != 0;
  start_queue (f, 0, 0);

  for (guint i = 0; i < 300; i++)
    {
      guint n = 1 + g_rand_int_range (f->rand, 0, 12);

      round_trip (f, 0, n);
      total += n;
    }
  /* The handler pushes before it recycles: let it finish. */
  sync_queue (f, 0);
  g_assert_cmpint (g_atomic_int_get (&qs->served), ==, total);
  g_assert_cmpint (qs->kept_count, >, 0);
  assert_queue_healthy (f, 0);

  /* Off the queue's thread (the worker's context is not the test's), or
   * outside a dispatch (nobody runs the default context now): plain
   * unrefs. The queue takes them back, pushed with nothing written. */
  qs->ignore = TRUE;
  offer (f, 0, G_N_ELEMENTS (elems));
  for (guint i = 0; i < G_N_ELEMENTS (elems); i++)
    {
      elems[i] = vhost_user_virtqueue_pop (queue (f, 0), NULL);
      g_assert_nonnull (elems[i]);
    }
  vhost_user_virtqueue_recycle (queue (f, 0), elems, G_N_ELEMENTS (elems));
  WAIT_UNTIL (used_waiting (f, 0) >= G_N_ELEMENTS (elems));
  qs->ignore = FALSE;
  g_clear_pointer (&qs->kept, vhost_user_virtq_element_unref);
  g_assert_false (vhost_user_virtqueue_get_broken (queue (f, 0)));
}

/* vhost_user_virtqueue_pop_many() takes what it can, then stops at what
 * the full pop refuses: a head out of range breaks the ring, and the next
 * burst fails with an error. */
static void
test_pop_many_broken (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserVirtqElement *burst[8];
  g_autoptr (GError) error = NULL;
  guint n;

  negotiate (f, BASE_FEATURES);
  qs->ignore = TRUE;
  start_queue (f, 0, 0);

  /* Nothing yet: none, no error. */
  g_assert_cmpuint (vhost_user_virtqueue_pop_many (queue (f, 0), burst, 8, &error), ==, 0);
  g_assert_no_error (error);

  /* Three good requests, then a head out of range. */
  for (guint i = 0; i < 3; i++)
    add_request (f, 0);
  vhu_test_driver_put_avail (f->drv[0], RING_NUM + 7);
  vhu_test_driver_publish (f->drv[0]);
  n = vhost_user_virtqueue_pop_many (queue (f, 0), burst, 2, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 2);
  vhost_user_virtqueue_recycle (queue (f, 0), burst, n);
  n = vhost_user_virtqueue_pop_many (queue (f, 0), burst, 8, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 1);
  vhost_user_virtq_element_unref (burst[0]);
  n = vhost_user_virtqueue_pop_many (queue (f, 0), burst, 8, &error);
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_QUEUE_BROKEN);
  g_assert_cmpuint (n, ==, 0);
  g_assert_true (vhost_user_virtqueue_get_broken (queue (f, 0)));
  g_assert_cmpuint (vhu_test_read_eventfd (f->err[0]), >, 0);
  qs->ignore = FALSE;
}

/* ------------------------------------------------------------------------ */
/* A handler that iterates the queue's context                             */

/* The queue's source may recurse (it saves GLib's wakeups around each
 * dispatch), so it keeps its own handler from running inside itself: a
 * kick that comes while the handler iterates the context is served after
 * the handler returns, and the kick fd is watched again after. */
static void
test_nested_iteration (Fixture *f, gconstpointer data)
{
  QueueState *qs = qstate (f, 0);
  VhostUserQueueMode mode = GPOINTER_TO_INT (data);
  gint kicked;

  negotiate (f, BASE_FEATURES);
  vhost_user_virtqueue_set_mode (queue (f, 0), mode);
  start_queue (f, 0, 0);
  g_assert_true (round_trip (f, 0, 2) || mode != VHOST_USER_QUEUE_MODE_EVENT);

  kicked = qs->kicked;
  qs->nested_kick = f->kick[0];
  offer (f, 0, 3);
  kick (f, 0);
  wait_responses (f, 0, 3);
  qs->nested_kick = -1;
  /* The kick made inside the handler is served after it (in event mode a
   * second emission; a polling queue drains it), never inside it. */
  if (mode == VHOST_USER_QUEUE_MODE_EVENT)
    WAIT_UNTIL (qs->kicked >= kicked + 2);
  else
    sync_queue (f, 0);
  g_assert_cmpint (qs->max_depth, ==, 1);
  /* Its source slept meanwhile, rather than being dispatched for nothing
   * in each iteration (nothing else was ready). */
  g_assert_cmpint (qs->nested_dispatches, ==, 0);

  /* The kick fd is watched again. */
  vhost_user_virtqueue_set_mode (queue (f, 0), VHOST_USER_QUEUE_MODE_EVENT);
  sync_queue (f, 0);
  sync_queue (f, 0);
  kicked = qs->kicked;
  g_assert_true (round_trip (f, 0, 4));
  g_assert_cmpint (qs->kicked, >=, kicked + 1);
  g_assert_cmpint (qs->max_depth, ==, 1);
  assert_queue_healthy (f, 0);
}

/* ------------------------------------------------------------------------ */

static void
add_test (const char *path, gconstpointer data, void (*func) (Fixture *, gconstpointer))
{
  g_test_add (path, Fixture, data, fixture_set_up, func, fixture_tear_down);
}

#define FLAGS GUINT_TO_POINTER (0)
#define EVENT_IDX GUINT_TO_POINTER ((guint) VF (RING_EVENT_IDX))

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  main_thread = g_thread_self ();

  g_test_add_func ("/vhost-user/queue-modes/bad-mode", test_bad_mode);

  add_test ("/vhost-user/queue-modes/properties", NULL, test_properties);
  add_test ("/vhost-user/queue-modes/event/flags", FLAGS, test_event);
  add_test ("/vhost-user/queue-modes/event/event-idx", EVENT_IDX, test_event);
  add_test ("/vhost-user/queue-modes/adaptive/polling/flags", FLAGS, test_adaptive_polling);
  add_test ("/vhost-user/queue-modes/adaptive/polling/event-idx", EVENT_IDX,
            test_adaptive_polling);
  add_test ("/vhost-user/queue-modes/adaptive/budget/flags", FLAGS, test_adaptive_budget);
  add_test ("/vhost-user/queue-modes/adaptive/budget/event-idx", EVENT_IDX, test_adaptive_budget);
  add_test ("/vhost-user/queue-modes/adaptive/lost-wakeup/flags", FLAGS,
            test_adaptive_lost_wakeup);
  add_test ("/vhost-user/queue-modes/adaptive/lost-wakeup/event-idx", EVENT_IDX,
            test_adaptive_lost_wakeup);
  add_test ("/vhost-user/queue-modes/poll/worker/flags", FLAGS, test_poll_worker);
  add_test ("/vhost-user/queue-modes/poll/worker/event-idx", EVENT_IDX, test_poll_worker);
  add_test ("/vhost-user/queue-modes/switch/flags", FLAGS, test_switch);
  add_test ("/vhost-user/queue-modes/switch/event-idx", EVENT_IDX, test_switch);
  add_test ("/vhost-user/queue-modes/recycle/main-context", GINT_TO_POINTER (FALSE),
            test_recycle);
  add_test ("/vhost-user/queue-modes/recycle/worker", GINT_TO_POINTER (TRUE), test_recycle);
  add_test ("/vhost-user/queue-modes/pop-many/main-context", GINT_TO_POINTER (2), test_recycle);
  add_test ("/vhost-user/queue-modes/pop-many/worker", GINT_TO_POINTER (3), test_recycle);
  add_test ("/vhost-user/queue-modes/pop-many/broken", NULL, test_pop_many_broken);
  add_test ("/vhost-user/queue-modes/nested-iteration/event",
            GINT_TO_POINTER (VHOST_USER_QUEUE_MODE_EVENT), test_nested_iteration);
  add_test ("/vhost-user/queue-modes/nested-iteration/poll",
            GINT_TO_POINTER (VHOST_USER_QUEUE_MODE_POLL), test_nested_iteration);
  add_test ("/vhost-user/queue-modes/stop-start/main-context", GUINT_TO_POINTER (0),
            test_stop_start);
  add_test ("/vhost-user/queue-modes/stop-start/worker", GUINT_TO_POINTER (1), test_stop_start);
  add_test ("/vhost-user/queue-modes/multi-queue/event",
            GINT_TO_POINTER (VHOST_USER_QUEUE_MODE_EVENT), test_multi_queue);
  add_test ("/vhost-user/queue-modes/multi-queue/adaptive",
            GINT_TO_POINTER (VHOST_USER_QUEUE_MODE_ADAPTIVE), test_multi_queue);
  add_test ("/vhost-user/queue-modes/multi-queue/poll",
            GINT_TO_POINTER (VHOST_USER_QUEUE_MODE_POLL), test_multi_queue);

  return g_test_run ();
}
