/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * In-flight I/O tracking (INFLIGHT_SHMFD, the vhost-user spec's "Inflight
 * I/O tracking" for split rings): a test driver (vhu-test-driver) makes
 * requests available in guest RAM, the test pops and pushes them itself
 * through the public API, and reads the queue region of the in-flight buffer
 * through its own mapping of the fd GET_INFLIGHT_FD returned. A "crash" is a
 * connection that goes away without GET_VRING_BASE (and, in some tests, the
 * device object with it, as a back-end process would); the next session
 * gives the same buffer back with SET_INFLIGHT_FD and the ring base QEMU
 * gives then, the used index. Every request must then complete exactly
 * once: the ones in flight are popped again first, in the order they were
 * first popped, then the new ones. The region is the front-end's memory: a
 * corrupted one never crashes the device and never makes it hand out a
 * request the driver did not make.
 */

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhu-inflight.h"
#include "vhu-test-device.h"
#include "vhu-test-driver.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

#define QUEUE_SIZE 32u
#define RAM_SIZE (4u * 1024 * 1024)
#define RAM_GPA G_GUINT64_CONSTANT (0)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f0000000000)
#define RING_OFFSET 0x10000u
#define DATA_GPA (G_GUINT64_CONSTANT (1024) * 1024)
#define DATA_SIZE (G_GUINT64_CONSTANT (2) * 1024 * 1024)
#define IN_SIZE 64u
#define MAX_REQUESTS 256u

#define FEATURES (VF (VERSION_1) | VF (PROTOCOL_FEATURES))
#define PROTOCOL_FEATURES                                                                          \
  (PF (MQ) | PF (REPLY_ACK) | PF (INFLIGHT_SHMFD) | PF (RESET_DEVICE))

typedef struct
{
  VhuTestDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  VhuTestDriver *drv;
  int kick;
  int call;
  int err;

  /* The in-flight buffer, as the front-end keeps it across sessions. */
  int inflight_fd;
  guint64 inflight_size;
  guint8 *inflight;

  GPtrArray *held;                /* popped, not pushed: the device's requests */
  guint32 id_of_head[QUEUE_SIZE]; /* the request each head in flight carries */
  guint next_id;
  guint completions[MAX_REQUESTS]; /* how often the driver got each request back */
  guint fds_before;
} Fixture;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static VhostUserVirtqueue *
queue (Fixture *f)
{
  return vhost_user_device_get_queue (VHOST_USER_DEVICE (f->device), 0);
}

static VhuInflightQueueSplit *
region (Fixture *f)
{
  g_assert_nonnull (f->inflight);
  return (VhuInflightQueueSplit *) (gpointer) f->inflight;
}

static guint16
used_idx (Fixture *f)
{
  return vhu_test_driver_get_used_idx (f->drv);
}

static gboolean
err_signalled (Fixture *f)
{
  eventfd_t value = 0;

  return eventfd_read (f->err, &value) == 0 && value > 0;
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  vhu_test_drain_default_context ();
  f->fds_before = vhu_test_count_fds ();
  f->device = vhu_test_device_new (1, 0, FALSE);
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, RAM_GPA, RAM_UVA);
  f->drv = vhu_test_driver_new (f->ram, RING_OFFSET, QUEUE_SIZE);
  vhu_test_driver_set_data_area (f->drv, DATA_GPA, DATA_SIZE);
  f->kick = f->call = f->err = -1;
  f->inflight_fd = -1;
  f->held = g_ptr_array_new_with_free_func ((GDestroyNotify) vhost_user_virtq_element_unref);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_ptr_array_unref (f->held);
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_clear_object (&f->device);
  vhu_test_drain_default_context ();
  if (f->inflight != NULL)
    munmap (f->inflight, f->inflight_size);
  vhu_test_close_fd (&f->inflight_fd);
  vhu_test_close_fd (&f->kick);
  vhu_test_close_fd (&f->call);
  vhu_test_close_fd (&f->err);
  g_clear_pointer (&f->drv, vhu_test_driver_free);
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  vhu_test_drain_default_context ();
  vhu_test_assert_fds (f->fds_before);
}

/* ------------------------------------------------------------------------ */
/* The front-end                                                            */

/* A connection, with the features QEMU's vhost-user-blk negotiates here. */
static void
connect_session (Fixture *f)
{
  g_assert_null (f->fe);
  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  vhu_test_frontend_negotiate (f->fe, FEATURES, PROTOCOL_FEATURES);
}

/* GET_INFLIGHT_FD, as QEMU sends it before the first start: the buffer is
 * kept (fd and mapping) for the sessions that follow. */
static void
get_inflight (Fixture *f)
{
  VhuInflightMsg request = { .num_queues = 1, .queue_size = QUEUE_SIZE };
  VhuMessage reply;

  g_assert_true (vhu_test_frontend_send (f->fe, VHOST_USER_REQUEST_GET_INFLIGHT_FD, 0, &request,
                                         sizeof request, NULL, 0));
  g_assert_true (vhu_test_frontend_recv (f->fe, &reply, VHU_TEST_TIMEOUT_MS));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_INFLIGHT_FD);
  g_assert_cmpuint (reply.n_fds, ==, 1);
  g_assert_cmpuint (reply.payload.inflight.mmap_size, ==,
                    vhu_inflight_queue_region_size (QUEUE_SIZE, FALSE));
  g_assert_cmpuint (reply.payload.inflight.mmap_offset, ==, 0);

  if (f->inflight != NULL)
    munmap (f->inflight, f->inflight_size);
  vhu_test_close_fd (&f->inflight_fd);
  f->inflight_fd = vhu_message_steal_fd (&reply, 0);
  f->inflight_size = reply.payload.inflight.mmap_size;
  vhu_message_clear (&reply);
  f->inflight = mmap (NULL, f->inflight_size, PROT_READ | PROT_WRITE, MAP_SHARED, f->inflight_fd,
                      0);
  g_assert_true (f->inflight != MAP_FAILED);
  g_assert_cmpuint (region (f)->version, ==, VHU_INFLIGHT_VERSION);
  g_assert_cmpuint (region (f)->desc_num, ==, QUEUE_SIZE);
}

static guint64
set_inflight (Fixture *f)
{
  VhuInflightMsg msg = {
    .mmap_size = f->inflight_size,
    .mmap_offset = 0,
    .num_queues = 1,
    .queue_size = QUEUE_SIZE,
  };

  return vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg,
                                     &f->inflight_fd, 1);
}

/* The memory table and ring 0 at @base, as vhost_dev_start() does; returns
 * the answer to SET_VRING_KICK, which starts the ring. */
static guint64
start_ring (Fixture *f, guint16 base)
{
  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, &f->ram, 1), ==, 0);
  /* New call and error eventfds every time. */
  vhu_test_close_fd (&f->call);
  vhu_test_close_fd (&f->err);
  return vhu_test_driver_start_ring (f->drv, f->fe, 0, base, 0, &f->kick, &f->call, &f->err);
}

static void
start_ring_ok (Fixture *f, guint16 base)
{
  g_assert_cmpuint (start_ring (f, base), ==, 0);
  vhu_test_drain_default_context ();
  g_assert_true (vhost_user_virtqueue_get_started (queue (f)));
  g_assert_false (vhost_user_virtqueue_get_broken (queue (f)));
}

/* A first session: GET_INFLIGHT_FD, SET_INFLIGHT_FD of the same, a ring
 * from 0. */
static void
first_session (Fixture *f)
{
  connect_session (f);
  get_inflight (f);
  g_assert_cmpuint (set_inflight (f), ==, 0);
  start_ring_ok (f, 0);
}

/* The back-end goes away without GET_VRING_BASE: the connection closes, and
 * what the device held is dropped (a process that died keeps nothing). With
 * @new_device, the device object goes too and a new one takes its place. */
static void
crash (Fixture *f, gboolean new_device)
{
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (VHOST_USER_DEVICE (f->device)));
  g_ptr_array_set_size (f->held, 0);
  vhu_test_drain_default_context ();
  if (new_device)
    {
      g_clear_object (&f->device);
      vhu_test_drain_default_context ();
      f->device = vhu_test_device_new (1, 0, FALSE);
    }
}

/* The next session, as QEMU reconnects: the same buffer, the base set to
 * the used index. */
static void
reconnect (Fixture *f)
{
  connect_session (f);
  g_assert_cmpuint (set_inflight (f), ==, 0);
  start_ring_ok (f, used_idx (f));
}

/* ------------------------------------------------------------------------ */
/* The driver and the device                                                */

/* A request the driver makes: its id in the device-readable buffer, and a
 * device-writable one for the answer. Returns the id. */
static guint32
add_request (Fixture *f)
{
  guint32 id = f->next_id++;
  guint8 out[8] = { 0 };
  VhuTestBuffer bufs[2];
  gint head;

  g_assert_cmpuint (id, <, MAX_REQUESTS);
  memcpy (out, &id, sizeof id);
  bufs[0] = VHU_TEST_OUT (out, sizeof out);
  bufs[1] = VHU_TEST_IN (IN_SIZE);
  head = vhu_test_driver_add (f->drv, bufs, G_N_ELEMENTS (bufs), FALSE);
  g_assert_cmpint (head, >=, 0);
  f->id_of_head[head] = id;
  return id;
}

static void
add_requests (Fixture *f, guint n)
{
  for (guint i = 0; i < n; i++)
    add_request (f);
  vhu_test_driver_publish (f->drv);
}

static guint32
element_id (VhostUserVirtqElement *elem)
{
  guint32 id = G_MAXUINT32;

  g_assert_cmpuint (vhost_user_virtq_element_get_out_size (elem), ==, 8);
  g_assert_cmpuint (vhost_user_virtq_element_get_in_size (elem), ==, IN_SIZE);
  g_assert_cmpuint (vhost_user_virtq_element_read (elem, 0, (guint8 *) &id, sizeof id), ==,
                    sizeof id);
  return id;
}

static guint16
element_head (VhostUserVirtqElement *elem)
{
  return ((VhuElement *) elem)->head;
}

/* The device pops one request and keeps it; returns its id. */
static guint32
pop (Fixture *f)
{
  VhostUserVirtqElement *elem = vhu_test_pop (queue (f));
  guint32 id = element_id (elem);

  g_assert_cmpuint (f->id_of_head[element_head (elem)], ==, id);
  g_ptr_array_add (f->held, elem);
  return id;
}

static void
assert_empty (Fixture *f)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (vhost_user_virtqueue_is_empty (queue (f)));
  g_assert_null (vhost_user_virtqueue_pop (queue (f), &error));
  g_assert_no_error (error);
}

static guint
written_for (guint32 id)
{
  return 1 + id % (IN_SIZE - 1);
}

static guint
held_index (Fixture *f, guint32 id)
{
  for (guint i = 0; i < f->held->len; i++)
    if (element_id (f->held->pdata[i]) == id)
      return i;
  g_error ("request %u is not held", id);
}

/* The device completes request @id (one push). */
static void
complete (Fixture *f, guint32 id)
{
  guint i = held_index (f, id);

  vhost_user_virtqueue_push (queue (f), f->held->pdata[i], written_for (id));
  g_ptr_array_remove_index (f->held, i);
}

/* The device completes @n requests as one batch: fill each, one flush. */
static void
complete_batch (Fixture *f, const guint32 *ids, guint n)
{
  for (guint k = 0; k < n; k++)
    vhost_user_virtqueue_fill (queue (f), f->held->pdata[held_index (f, ids[k])],
                               written_for (ids[k]), k);
  vhost_user_virtqueue_flush (queue (f), n);
  for (guint k = 0; k < n; k++)
    g_ptr_array_remove_index (f->held, held_index (f, ids[k]));
}

/* The driver takes back everything used; each answer must be its request's. */
static guint
collect (Fixture *f)
{
  guint head, n = 0;
  guint32 len;

  while (vhu_test_driver_get_used (f->drv, &head, &len))
    {
      guint32 id = f->id_of_head[head];

      g_assert_cmpuint (head, <, QUEUE_SIZE);
      g_assert_cmpuint (len, ==, written_for (id));
      f->completions[id]++;
      n++;
    }
  return n;
}

static void
assert_each_completed_once (Fixture *f)
{
  for (guint id = 0; id < f->next_id; id++)
    if (f->completions[id] != 1)
      g_error ("request %u completed %u times", id, f->completions[id]);
  g_assert_cmpuint (vhu_test_driver_get_in_flight (f->drv), ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */

/* What the region holds while the ring runs: each popped head in flight
 * with a counter one higher than the last, cleared when it is returned,
 * the list of the last batch, and used_idx following used->idx. */
static void
test_record (Fixture *f, gconstpointer data)
{
  VhuInflightQueueSplit *r;
  guint16 heads[4];
  guint32 ids[4];

  first_session (f);
  r = region (f);
  g_assert_cmpuint (r->used_idx, ==, 0);

  add_requests (f, 4);
  for (guint i = 0; i < 4; i++)
    {
      ids[i] = pop (f);
      heads[i] = element_head (f->held->pdata[i]);
      g_assert_cmpuint (r->desc[heads[i]].inflight, ==, 1);
      g_assert_cmpuint (r->desc[heads[i]].counter, ==, i + 1);
    }
  for (guint i = 0; i < QUEUE_SIZE; i++)
    {
      gboolean popped = i == heads[0] || i == heads[1] || i == heads[2] || i == heads[3];

      g_assert_cmpuint (r->desc[i].inflight, ==, popped ? 1 : 0);
    }

  /* One push. */
  complete (f, ids[2]);
  g_assert_cmpuint (r->desc[heads[2]].inflight, ==, 0);
  g_assert_cmpuint (r->last_batch_head, ==, heads[2]);
  g_assert_cmpuint (r->used_idx, ==, 1);
  g_assert_cmpuint (used_idx (f), ==, 1);

  /* A batch of three: the list runs from the last filled to the first. */
  {
    guint32 batch[3] = { ids[3], ids[0], ids[1] };

    complete_batch (f, batch, 3);
  }
  g_assert_cmpuint (r->used_idx, ==, 4);
  g_assert_cmpuint (used_idx (f), ==, 4);
  g_assert_cmpuint (r->last_batch_head, ==, heads[1]);
  g_assert_cmpuint (r->desc[heads[1]].next, ==, heads[0]);
  g_assert_cmpuint (r->desc[heads[0]].next, ==, heads[3]);
  for (guint i = 0; i < QUEUE_SIZE; i++)
    g_assert_cmpuint (r->desc[i].inflight, ==, 0);

  g_assert_cmpuint (collect (f), ==, 4);
  assert_each_completed_once (f);
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, 4);
}

/* The main case: requests popped, some completed out of order, the back-end
 * gone; the next one gets exactly the uncompleted ones first, in the order
 * they were first popped, then the ones not popped before, then new ones. */
static void
test_resubmit (Fixture *f, gconstpointer data)
{
  gboolean new_device = GPOINTER_TO_INT (data);
  g_autoptr (GArray) popped = g_array_new (FALSE, FALSE, sizeof (guint32));
  g_autoptr (GArray) expected = g_array_new (FALSE, FALSE, sizeof (guint32));
  guint32 unpopped[2];
  gboolean head_order = TRUE;
  guint16 last_head = 0;

  first_session (f);

  /* A first round completed backwards, so that heads come out of the
   * driver's free list out of order afterwards. */
  add_requests (f, 8);
  for (guint i = 0; i < 8; i++)
    pop (f);
  for (gint i = 7; i >= 0; i--)
    complete (f, (guint32) i);
  g_assert_cmpuint (collect (f), ==, 8);

  /* Twelve popped (two more made available but not popped), three
   * completed out of order. */
  add_requests (f, 14);
  unpopped[0] = f->next_id - 2;
  unpopped[1] = f->next_id - 1;
  for (guint i = 0; i < 12; i++)
    {
      guint32 id = pop (f);

      g_array_append_val (popped, id);
    }
  complete (f, g_array_index (popped, guint32, 9));
  complete (f, g_array_index (popped, guint32, 1));
  complete (f, g_array_index (popped, guint32, 5));
  g_assert_cmpuint (collect (f), ==, 3);
  for (guint i = 0; i < popped->len; i++)
    if (i != 1 && i != 5 && i != 9)
      {
        guint32 id = g_array_index (popped, guint32, i);
        guint16 head = 0;

        for (guint h = 0; h < QUEUE_SIZE; h++)
          if (f->id_of_head[h] == id && vhu_test_driver_is_in_flight (f->drv, h))
            head = h;
        if (expected->len > 0 && head < last_head)
          head_order = FALSE;
        last_head = head;
        g_array_append_val (expected, id);
      }
  /* Counters, not head numbers, give the order. */
  g_assert_false (head_order);
  g_assert_cmpuint (used_idx (f), ==, 11);

  crash (f, new_device);
  reconnect (f);
  g_test_message ("base %u, %u requests in flight", used_idx (f), expected->len);

  /* What was in flight, in order, without taking available entries; each
   * counted once as in flight. */
  for (guint i = 0; i < expected->len; i++)
    {
      g_assert_cmpuint (pop (f), ==, g_array_index (expected, guint32, i));
      g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (queue (f)), ==, i + 1);
    }
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f)), ==, 8 + 12);
  /* Then what was made available and never popped, then new requests. */
  add_requests (f, 2);
  g_assert_cmpuint (pop (f), ==, unpopped[0]);
  g_assert_cmpuint (pop (f), ==, unpopped[1]);
  g_assert_cmpuint (pop (f), ==, f->next_id - 2);
  g_assert_cmpuint (pop (f), ==, f->next_id - 1);
  assert_empty (f);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (queue (f)), ==, expected->len + 4);

  /* Everything completes exactly once, and the ring stops at once: nothing
   * is counted in flight twice. */
  while (f->held->len > 0)
    complete (f, element_id (f->held->pdata[f->held->len - 1]));
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (queue (f)), ==, 0);
  collect (f);
  assert_each_completed_once (f);
  for (guint i = 0; i < QUEUE_SIZE; i++)
    g_assert_cmpuint (region (f)->desc[i].inflight, ==, 0);
  g_assert_cmpuint (region (f)->used_idx, ==, used_idx (f));
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==,
                    vhu_test_driver_get_avail_idx (f->drv));
  g_assert_cmpuint (vhu_test_device_get_protocol_error_count (f->device), ==, 0);
}

/* Two crashes in a row, the second while requests handed out again were in
 * flight: still each request once, in order. */
static void
test_resubmit_twice (Fixture *f, gconstpointer data)
{
  guint32 ids[6];

  first_session (f);
  add_requests (f, 6);
  for (guint i = 0; i < 6; i++)
    ids[i] = pop (f);
  complete (f, ids[2]);

  crash (f, TRUE);
  reconnect (f);
  g_assert_cmpuint (pop (f), ==, ids[0]);
  g_assert_cmpuint (pop (f), ==, ids[1]);
  complete (f, ids[1]);
  add_requests (f, 1);
  g_assert_cmpuint (pop (f), ==, ids[3]);
  g_assert_cmpuint (pop (f), ==, ids[4]);
  g_assert_cmpuint (pop (f), ==, ids[5]);
  g_assert_cmpuint (pop (f), ==, 6);
  complete (f, ids[4]);
  collect (f);

  crash (f, TRUE);
  reconnect (f);
  g_assert_cmpuint (pop (f), ==, ids[0]);
  g_assert_cmpuint (pop (f), ==, ids[3]);
  g_assert_cmpuint (pop (f), ==, ids[5]);
  g_assert_cmpuint (pop (f), ==, 6);
  assert_empty (f);
  while (f->held->len > 0)
    complete (f, element_id (f->held->pdata[0]));
  collect (f);
  assert_each_completed_once (f);
}

/* A crash after used->idx was written, before the record of it (used_idx):
 * the batch is in the driver's hands, its flags may still say in flight.
 * Made by editing the region back to that point. It must not come again. */
static void
test_crash_after_used_idx (Fixture *f, gconstpointer data)
{
  VhuInflightQueueSplit *r;
  guint32 ids[6];
  guint16 heads[3];

  first_session (f);
  r = region (f);
  add_requests (f, 6);
  for (guint i = 0; i < 6; i++)
    ids[i] = pop (f);
  complete (f, ids[0]);
  for (guint k = 0; k < 3; k++)
    heads[k] = element_head (f->held->pdata[held_index (f, ids[3 + k])]);
  {
    guint32 batch[3] = { ids[5], ids[3], ids[4] };

    complete_batch (f, batch, 3);
  }
  g_assert_cmpuint (used_idx (f), ==, 4);
  g_assert_cmpuint (r->used_idx, ==, 4);

  /* Back to just after used->idx was stored: flags not cleared yet, the
   * record one batch behind. */
  for (guint k = 0; k < 3; k++)
    r->desc[heads[k]].inflight = 1;
  r->used_idx = 1;

  crash (f, TRUE);
  reconnect (f);
  g_assert_cmpuint (r->used_idx, ==, 4);
  for (guint k = 0; k < 3; k++)
    g_assert_cmpuint (r->desc[heads[k]].inflight, ==, 0);
  g_assert_cmpuint (pop (f), ==, ids[1]);
  g_assert_cmpuint (pop (f), ==, ids[2]);
  assert_empty (f);
  complete (f, ids[2]);
  complete (f, ids[1]);
  collect (f);
  assert_each_completed_once (f);
}

/* The same with the flags already cleared (a crash just before used_idx),
 * and with one entry of the batch cleared (a crash in the middle). */
static void
test_crash_while_clearing (Fixture *f, gconstpointer data)
{
  VhuInflightQueueSplit *r;
  guint32 ids[4];
  guint16 heads[2];

  first_session (f);
  r = region (f);
  add_requests (f, 4);
  for (guint i = 0; i < 4; i++)
    ids[i] = pop (f);
  heads[0] = element_head (f->held->pdata[held_index (f, ids[1])]);
  heads[1] = element_head (f->held->pdata[held_index (f, ids[2])]);
  {
    guint32 batch[2] = { ids[1], ids[2] };

    complete_batch (f, batch, 2);
  }
  r->desc[heads[0]].inflight = 1;
  r->used_idx = 0;

  crash (f, FALSE);
  reconnect (f);
  g_assert_cmpuint (r->used_idx, ==, 2);
  g_assert_cmpuint (pop (f), ==, ids[0]);
  g_assert_cmpuint (pop (f), ==, ids[3]);
  assert_empty (f);
  complete (f, ids[0]);
  complete (f, ids[3]);
  collect (f);
  assert_each_completed_once (f);
}

/* A crash after the used ring entry and the batch list were written, before
 * used->idx: the driver never saw it, so it is handed out again. */
static void
test_crash_before_used_idx (Fixture *f, gconstpointer data)
{
  guint32 ids[3];

  first_session (f);
  add_requests (f, 3);
  for (guint i = 0; i < 3; i++)
    ids[i] = pop (f);
  vhost_user_virtqueue_fill (queue (f), f->held->pdata[held_index (f, ids[1])],
                             written_for (ids[1]), 0);
  g_assert_cmpuint (used_idx (f), ==, 0);
  g_assert_cmpuint (region (f)->last_batch_head, ==,
                    element_head (f->held->pdata[held_index (f, ids[1])]));

  crash (f, TRUE);
  reconnect (f);
  /* Nothing new is available, and yet the ring is not empty. */
  g_assert_cmpuint (vhu_test_driver_get_avail_idx (f->drv), ==, 3);
  g_assert_false (vhost_user_virtqueue_is_empty (queue (f)));
  for (guint i = 0; i < 3; i++)
    g_assert_cmpuint (pop (f), ==, ids[i]);
  assert_empty (f);
  for (guint i = 0; i < 3; i++)
    complete (f, ids[i]);
  collect (f);
  assert_each_completed_once (f);
}

/* A clean stop (GET_VRING_BASE) while requests to hand out again were not
 * all popped, and a restart from the base the device gave. */
static void
test_stop_restart (Fixture *f, gconstpointer data)
{
  guint32 ids[5];
  guint32 base;

  first_session (f);
  add_requests (f, 5);
  for (guint i = 0; i < 5; i++)
    ids[i] = pop (f);
  complete (f, ids[0]);

  crash (f, FALSE);
  reconnect (f);
  g_assert_cmpuint (pop (f), ==, ids[1]);
  complete (f, ids[1]);
  base = vhu_test_frontend_get_vring_base (f->fe, 0);
  /* Every available entry taken is either used or still in flight. */
  g_assert_cmpuint (base, ==, 5);
  g_assert_false (vhost_user_virtqueue_get_started (queue (f)));

  start_ring_ok (f, base);
  add_requests (f, 1);
  g_assert_cmpuint (pop (f), ==, ids[2]);
  g_assert_cmpuint (pop (f), ==, ids[3]);
  g_assert_cmpuint (pop (f), ==, ids[4]);
  g_assert_cmpuint (pop (f), ==, 5);
  assert_empty (f);
  while (f->held->len > 0)
    complete (f, element_id (f->held->pdata[0]));
  collect (f);
  assert_each_completed_once (f);
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, 6);
}

/* unpop: a request given back is not in flight (its available entry is
 * taken again and recorded again); one handed out again goes back to the
 * front of those. */
static void
test_unpop (Fixture *f, gconstpointer data)
{
  VhuInflightQueueSplit *r;
  VhostUserVirtqElement *elem;
  guint32 ids[3];
  guint16 head;

  first_session (f);
  r = region (f);
  add_requests (f, 3);
  ids[0] = pop (f);
  ids[1] = pop (f);
  elem = f->held->pdata[1];
  head = element_head (elem);
  g_assert_cmpuint (r->desc[head].counter, ==, 2);
  vhost_user_virtqueue_unpop (queue (f), elem);
  g_ptr_array_remove_index (f->held, 1);
  g_assert_cmpuint (r->desc[head].inflight, ==, 0);
  g_assert_cmpuint (pop (f), ==, ids[1]);
  g_assert_cmpuint (r->desc[head].inflight, ==, 1);
  g_assert_cmpuint (r->desc[head].counter, ==, 3);

  crash (f, FALSE);
  reconnect (f);
  g_assert_cmpuint (pop (f), ==, ids[0]);
  g_assert_cmpuint (pop (f), ==, ids[1]);
  vhost_user_virtqueue_unpop (queue (f), f->held->pdata[1]);
  g_ptr_array_remove_index (f->held, 1);
  g_assert_cmpuint (vhost_user_virtqueue_get_in_flight (queue (f)), ==, 1);
  g_assert_false (vhost_user_virtqueue_is_empty (queue (f)));
  g_assert_cmpuint (pop (f), ==, ids[1]);
  ids[2] = pop (f);
  g_assert_cmpuint (ids[2], ==, 2);
  assert_empty (f);
  for (guint i = 0; i < 3; i++)
    complete (f, ids[i]);
  collect (f);
  assert_each_completed_once (f);
}

typedef enum
{
  BAD_FLAG,
  BAD_VERSION,
  BAD_DESC_NUM,
  BAD_BATCH_SIZE,
  BAD_BATCH_HEAD,
  BAD_BATCH_NEXT,
  BAD_TOO_MANY,
  BAD_ALL_GARBAGE,
  N_BAD
} Corruption;

static const char *const corruption_names[] = {
  "a flag of 2",
  "version 3",
  "desc_num half the ring",
  "a last batch larger than the ring",
  "a last batch head past the ring",
  "a last batch list leaving the ring",
  "more in flight than the driver made available",
  "all garbage",
};

static void
corrupt (VhuInflightQueueSplit *r, Corruption what, guint16 used, guint16 head_in_flight)
{
  switch (what)
    {
    case BAD_FLAG:
      r->desc[3].inflight = 2;
      break;
    case BAD_VERSION:
      r->version = 3;
      break;
    case BAD_DESC_NUM:
      r->desc_num = QUEUE_SIZE / 2;
      break;
    case BAD_BATCH_SIZE:
      r->used_idx = used - QUEUE_SIZE - 1;
      break;
    case BAD_BATCH_HEAD:
      r->used_idx = used - 1;
      r->last_batch_head = QUEUE_SIZE;
      break;
    case BAD_BATCH_NEXT:
      r->used_idx = used - 2;
      r->last_batch_head = head_in_flight;
      r->desc[head_in_flight].next = G_MAXUINT16;
      break;
    case BAD_TOO_MANY:
      /* Eight in flight, one more than the driver has outstanding (three
       * popped, four not, one used). */
      for (guint i = 0, n = 0; i < QUEUE_SIZE; i++)
        {
          if (r->desc[i].inflight == 0 && n < 8 - 3)
            {
              r->desc[i].inflight = 1;
              r->desc[i].counter = 100 + i;
              n++;
            }
        }
      break;
    case BAD_ALL_GARBAGE:
      memset (r->desc, 0xff, QUEUE_SIZE * sizeof r->desc[0]);
      r->last_batch_head = G_MAXUINT16;
      r->used_idx = used + 0x8000;
      break;
    case N_BAD:
      g_assert_not_reached ();
    }
}

/* A region no back-end could have left: the ring does not start (an error
 * answers SET_VRING_KICK, its error eventfd is signalled), nothing is
 * written to the region, the driver gets nothing back; once the front-end
 * gives a sound buffer and kicks again, the requests come as they should.
 * Four requests made available and never popped leave room for a region
 * that claims a few more in flight than there are, so that each check is
 * the one refusing its corruption. */
static void
test_corrupted (Fixture *f, gconstpointer data)
{
  guint32 ids[4];
  guint16 head_in_flight;
  g_autofree guint8 *good = NULL;

  first_session (f);
  add_requests (f, 4);
  for (guint i = 0; i < 4; i++)
    ids[i] = pop (f);
  head_in_flight = element_head (f->held->pdata[held_index (f, ids[0])]);
  complete (f, ids[2]);
  collect (f);
  add_requests (f, 4);
  crash (f, TRUE);
  good = g_memdup2 (f->inflight, f->inflight_size);

  for (Corruption what = 0; what < N_BAD; what++)
    {
      g_autofree guint8 *bad = NULL;
      const GError *error;
      guint64 ack;

      g_test_message ("corruption: %s", corruption_names[what]);
      memcpy (f->inflight, good, f->inflight_size);
      corrupt (region (f), what, used_idx (f), head_in_flight);
      bad = g_memdup2 (f->inflight, f->inflight_size);

      connect_session (f);
      ack = set_inflight (f);
      if (ack != 0)
        {
          /* Only a wrong header may be refused this early. */
          g_assert_true (what == BAD_VERSION || what == BAD_DESC_NUM);
          crash (f, FALSE);
          continue;
        }
      vhu_test_device_clear_records (f->device);
      g_assert_cmpuint (start_ring (f, used_idx (f)), !=, 0);
      vhu_test_drain_default_context ();
      g_assert_false (vhost_user_virtqueue_get_started (queue (f)));
      g_assert_true (vhost_user_virtqueue_get_broken (queue (f)));
      g_assert_true (err_signalled (f));
      g_assert_cmpuint (vhu_test_device_get_started_count (f->device, 0), ==, 0);
      error = vhu_test_device_get_last_protocol_error (f->device);
      g_assert_nonnull (error);
      g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
      g_test_message ("refused: %s", error->message);
      g_assert_true (memcmp (f->inflight, bad, f->inflight_size) == 0);
      g_assert_cmpuint (used_idx (f), ==, 1);
      g_assert_cmpuint (collect (f), ==, 0);

      /* Put right, kicked again: the ring starts. */
      memcpy (f->inflight, good, f->inflight_size);
      vhu_test_close_fd (&f->kick);
      f->kick = vhu_test_new_eventfd ();
      vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, 0, f->kick);
      vhu_test_drain_default_context ();
      g_assert_true (vhost_user_virtqueue_get_started (queue (f)));
      g_assert_cmpuint (pop (f), ==, ids[0]);
      g_assert_cmpuint (pop (f), ==, ids[1]);
      g_assert_cmpuint (pop (f), ==, ids[3]);
      for (guint32 id = 4; id < 8; id++)
        g_assert_cmpuint (pop (f), ==, id);
      assert_empty (f);
      crash (f, TRUE);
      memcpy (f->inflight, good, f->inflight_size);
    }

  /* And at last completed. */
  reconnect (f);
  for (guint i = 0; i < 7; i++)
    pop (f);
  while (f->held->len > 0)
    complete (f, element_id (f->held->pdata[0]));
  collect (f);
  assert_each_completed_once (f);
}

/* A batch list that loops (a front-end's doing): bounded by the batch size,
 * it clears what it names and nothing else. */
static void
test_batch_list_loops (Fixture *f, gconstpointer data)
{
  VhuInflightQueueSplit *r;
  guint32 ids[3];
  guint16 head;

  first_session (f);
  r = region (f);
  add_requests (f, 3);
  for (guint i = 0; i < 3; i++)
    ids[i] = pop (f);
  head = element_head (f->held->pdata[held_index (f, ids[1])]);
  complete (f, ids[1]);
  collect (f);

  /* Said to be a batch of 3, the list going round one entry. */
  r->desc[head].inflight = 1;
  r->desc[head].next = head;
  r->last_batch_head = head;
  r->used_idx = used_idx (f) - 3;

  crash (f, TRUE);
  reconnect (f);
  g_assert_cmpuint (r->desc[head].inflight, ==, 0);
  g_assert_cmpuint (pop (f), ==, ids[0]);
  g_assert_cmpuint (pop (f), ==, ids[2]);
  assert_empty (f);
  complete (f, ids[0]);
  complete (f, ids[2]);
  collect (f);
  assert_each_completed_once (f);
}

/* The front-end scribbles over the region while the ring runs: the device
 * never reads it back then, and goes on as if nothing happened. */
static void
test_scribbled_while_running (Fixture *f, gconstpointer data)
{
  first_session (f);
  for (guint round = 0; round < 4; round++)
    {
      memset (f->inflight, round % 2 ? 0xff : 0x5a, f->inflight_size);
      add_requests (f, 5);
      for (guint i = 0; i < 5; i++)
        pop (f);
      memset (f->inflight, 0xa5, f->inflight_size);
      {
        guint32 batch[2] = { element_id (f->held->pdata[3]), element_id (f->held->pdata[1]) };

        complete_batch (f, batch, 2);
      }
      while (f->held->len > 0)
        complete (f, element_id (f->held->pdata[0]));
      g_assert_cmpuint (collect (f), ==, 5);
    }
  assert_each_completed_once (f);
  g_assert_false (vhost_user_virtqueue_get_broken (queue (f)));
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, 20);
}

/* A new buffer while the ring runs (GET_INFLIGHT_FD again): the running
 * ring goes on recording in the one it started with, which stays mapped;
 * the new one is used from the next start. */
static void
test_replaced_while_running (Fixture *f, gconstpointer data)
{
  guint8 *old_map;
  guint64 old_size;
  int old_fd;
  guint32 ids[3];
  guint16 head;

  first_session (f);
  add_requests (f, 3);
  ids[0] = pop (f);

  /* Keep the first buffer's mapping; get_inflight() makes a new one. */
  old_map = f->inflight;
  old_size = f->inflight_size;
  old_fd = f->inflight_fd;
  f->inflight = NULL;
  f->inflight_fd = -1;
  get_inflight (f);
  g_assert_cmpuint (set_inflight (f), ==, 0);

  ids[1] = pop (f);
  head = element_head (f->held->pdata[1]);
  g_assert_cmpuint (((VhuInflightQueueSplit *) (gpointer) old_map)->desc[head].inflight, ==, 1);
  g_assert_cmpuint (region (f)->desc[head].inflight, ==, 0);
  complete (f, ids[1]);
  g_assert_cmpuint (((VhuInflightQueueSplit *) (gpointer) old_map)->desc[head].inflight, ==, 0);
  g_assert_cmpuint (((VhuInflightQueueSplit *) (gpointer) old_map)->used_idx, ==, 1);
  collect (f);

  /* Restarted: the new buffer, empty, so nothing is handed out again. */
  complete (f, ids[0]);
  collect (f);
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, 2);
  start_ring_ok (f, 2);
  ids[2] = pop (f);
  head = element_head (f->held->pdata[0]);
  g_assert_cmpuint (region (f)->desc[head].inflight, ==, 1);
  g_assert_cmpuint (region (f)->used_idx, ==, 2);
  complete (f, ids[2]);
  collect (f);
  assert_each_completed_once (f);

  munmap (old_map, old_size);
  close (old_fd);
}

/* RESET_DEVICE: nothing is in flight afterwards. */
static void
test_reset_device (Fixture *f, gconstpointer data)
{
  first_session (f);
  add_requests (f, 3);
  for (guint i = 0; i < 3; i++)
    pop (f);
  g_assert_cmpuint (region (f)->desc[element_head (f->held->pdata[0])].inflight, ==, 1);

  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_RESET_DEVICE, NULL, 0, NULL, 0);
  vhu_test_drain_default_context ();
  g_ptr_array_set_size (f->held, 0);
  vhu_test_drain_default_context ();
  for (guint i = 0; i < QUEUE_SIZE; i++)
    g_assert_cmpuint (region (f)->desc[i].inflight, ==, 0);
  g_assert_cmpuint (region (f)->version, ==, VHU_INFLIGHT_VERSION);
  g_assert_cmpuint (region (f)->desc_num, ==, QUEUE_SIZE);
}

/* A buffer made while the ring already had a used index (the ring ran
 * before, or a migration): the record starts from there, nothing is in
 * flight, and the front-end's base stands. */
static void
test_fresh_buffer_late (Fixture *f, gconstpointer data)
{
  connect_session (f);
  start_ring_ok (f, 0);
  add_requests (f, 3);
  for (guint i = 0; i < 3; i++)
    complete (f, pop (f));
  collect (f);
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 0), ==, 3);

  get_inflight (f);
  g_assert_cmpuint (set_inflight (f), ==, 0);
  start_ring_ok (f, 3);
  g_assert_cmpuint (region (f)->used_idx, ==, 3);
  add_requests (f, 1);
  g_assert_cmpuint (pop (f), ==, 3);
  g_assert_cmpuint (region (f)->desc[element_head (f->held->pdata[0])].counter, ==, 1);
  complete (f, 3);
  collect (f);
  assert_each_completed_once (f);
}

/* A buffer at an offset the 64-bit counters would be misaligned at is
 * refused; at a multiple of 8 the same file is taken. */
static void
test_misaligned_offset (Fixture *f, gconstpointer data)
{
  VhuInflightMsg msg = {
    .mmap_size = vhu_inflight_queue_region_size (QUEUE_SIZE, FALSE),
    .mmap_offset = 4,
    .num_queues = 1,
    .queue_size = QUEUE_SIZE,
  };
  int fd = memfd_create ("inflight-test", MFD_CLOEXEC);
  const GError *error;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, 2 * 4096), ==, 0);
  connect_session (f);
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg,
                                                sizeof msg, &fd, 1),
                    !=, 0);
  error = vhu_test_device_get_last_protocol_error (f->device);
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID);
  g_test_message ("refused: %s", error->message);
  msg.mmap_offset = 8;
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg,
                                                sizeof msg, &fd, 1),
                    ==, 0);
  close (fd);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  (void) g_main_context_default ();

#define ADD(path, func, data)                                                                      \
  g_test_add ("/vhost-user/inflight/" path, Fixture, data, fixture_set_up, func, fixture_tear_down)

  ADD ("record", test_record, NULL);
  ADD ("resubmit/same-device", test_resubmit, GINT_TO_POINTER (FALSE));
  ADD ("resubmit/new-device", test_resubmit, GINT_TO_POINTER (TRUE));
  ADD ("resubmit/twice", test_resubmit_twice, NULL);
  ADD ("crash/after-used-idx", test_crash_after_used_idx, NULL);
  ADD ("crash/while-clearing", test_crash_while_clearing, NULL);
  ADD ("crash/before-used-idx", test_crash_before_used_idx, NULL);
  ADD ("stop-restart", test_stop_restart, NULL);
  ADD ("unpop", test_unpop, NULL);
  ADD ("corrupted", test_corrupted, NULL);
  ADD ("corrupted/batch-list-loops", test_batch_list_loops, NULL);
  ADD ("corrupted/scribbled-while-running", test_scribbled_while_running, NULL);
  ADD ("replaced-while-running", test_replaced_while_running, NULL);
  ADD ("reset-device", test_reset_device, NULL);
  ADD ("fresh-buffer-late", test_fresh_buffer_late, NULL);
  ADD ("misaligned-offset", test_misaligned_offset, NULL);

  return g_test_run ();
}
