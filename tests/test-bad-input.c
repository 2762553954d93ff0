/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The message-level and lifecycle rows of the bad-input catalogue
 * (shared/reference/bad-inputs.md: M1 to M33, L1, L2, L3, L9 and L11),
 * sent by the test front-end to a VhostUserDevice. For every input the test
 * checks a clear refusal (the protocol-error, and the error reply when one
 * is owed, or the connection closed when the stream can no longer be
 * trusted), that every fd the device received was closed, and that the next
 * well-formed front-end is served: on the same connection when it stayed
 * open, and on a new connection in every case (the fixture's teardown).
 *
 * The device runs on the default main context, which the test front-end
 * iterates while it waits. Each test runs in a subprocess of its own (see
 * run_test()), so that a failure or a crash in one does not hide the others.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhu-inflight.h"
#include "vhu-test-device.h"
#include "vhu-test-frontend.h"
#include "vhu-test-util.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

#define N_QUEUES 2u
#define QUEUE_SIZE VHU_TEST_QEMU_QUEUE_SIZE

/* Guest RAM as QEMU hands it over: guest-physical 0, a high front-end address. */
#define RAM_SIZE (2u * 1024 * 1024)
#define RAM_GPA G_GUINT64_CONSTANT (0)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f9cd3fff000)
/* A second RAM block, away from the first in both address spaces. */
#define RAM2_GPA G_GUINT64_CONSTANT (0x400000)
#define RAM2_UVA (RAM_UVA + 0x400000)

/* What the test device offers at least (the library adds the transport
 * features it implements). */
#define MIN_OFFERED_FEATURES                                                                       \
  (VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VHU_TEST_DEVICE_DEFAULT_FEATURES)

#define NEED_REPLY VHU_FLAG_NEED_REPLY
#define QUIET_MS 50

typedef struct
{
  VhuTestDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  GPtrArray *errors; /* GError *: every protocol-error the test has not checked yet */
  guint fds_start;   /* before the fixture made anything */
  guint fds_idle;    /* device and guest RAM, no connection */
  guint fds_mark;
  guint64 offered; /* GET_FEATURES */
} Fixture;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

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
  return q;
}

static gboolean
started (Fixture *f, guint index)
{
  return vhost_user_virtqueue_get_started (queue (f, index));
}

static guint
ring_size (Fixture *f, guint index)
{
  return vhost_user_virtqueue_get_size (queue (f, index));
}

static guint
n_kicked (Fixture *f, guint index)
{
  return vhu_test_device_get_kicked_count (f->device, index);
}

static guint
n_started (Fixture *f, guint index)
{
  return vhu_test_device_get_started_count (f->device, index);
}

static guint
n_stopped (Fixture *f, guint index)
{
  return vhu_test_device_get_stopped_count (f->device, index);
}

/* Protocol errors */

static void
on_protocol_error (VhostUserDevice *device, const GError *error, gpointer user_data)
{
  Fixture *f = user_data;

  g_assert_nonnull (error);
  g_ptr_array_add (f->errors, g_error_copy (error));
}

static void
dump_errors (Fixture *f)
{
  for (guint i = 0; i < f->errors->len; i++)
    g_test_message ("protocol-error %u: %s", i, ((GError *) f->errors->pdata[i])->message);
}

/* The oldest protocol-error not checked yet is VHOST_USER_ERROR @code. */
static void
pop_error (Fixture *f, gint code)
{
  GError *error;

  vhu_test_drain_default_context ();
  g_assert_cmpuint (f->errors->len, >, 0);
  error = f->errors->pdata[0];
  if (!g_error_matches (error, VHOST_USER_ERROR, code))
    dump_errors (f);
  g_assert_error (error, VHOST_USER_ERROR, code);
  g_ptr_array_remove_index (f->errors, 0);
}

static void
expect_no_error (Fixture *f)
{
  vhu_test_drain_default_context ();
  if (f->errors->len > 0)
    dump_errors (f);
  g_assert_cmpuint (f->errors->len, ==, 0);
}

/* Exactly one protocol-error since the last check, VHOST_USER_ERROR @code. */
static void
expect_error (Fixture *f, gint code)
{
  pop_error (f, code);
  expect_no_error (f);
}

/* Exactly @n, all VHOST_USER_ERROR @code. */
static void
expect_errors (Fixture *f, guint n, gint code)
{
  vhu_test_drain_default_context ();
  if (f->errors->len != n)
    dump_errors (f);
  g_assert_cmpuint (f->errors->len, ==, n);
  for (guint i = 0; i < n; i++)
    pop_error (f, code);
}

/* File descriptors */

static void
mark_fds (Fixture *f)
{
  vhu_test_drain_default_context ();
  f->fds_mark = vhu_test_count_fds ();
}

/* The process has @delta fds more than at mark_fds(). */
static void
assert_fds (Fixture *f, gint delta)
{
  vhu_test_drain_default_context ();
  vhu_test_assert_fds ((guint) ((gint) f->fds_mark + delta));
}

static void
new_eventfds (int *fds, guint n)
{
  for (guint i = 0; i < n; i++)
    fds[i] = vhu_test_new_eventfd ();
}

static void
close_fds (int *fds, guint n)
{
  for (guint i = 0; i < n; i++)
    {
      g_assert_cmpint (close (fds[i]), ==, 0);
      fds[i] = -1;
    }
}

static int
new_memfd (gsize size)
{
  int fd = memfd_create ("vhu-test-bad-input", MFD_CLOEXEC | MFD_ALLOW_SEALING);

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, (off_t) size), ==, 0);
  return fd;
}

/* @fd reopened read-only, through /proc: it cannot be mapped shared-writable. */
static int
reopen_read_only (int fd)
{
  g_autofree char *path = g_strdup_printf ("/proc/self/fd/%d", fd);
  int ro = open (path, O_RDONLY | O_CLOEXEC);

  g_assert_cmpint (ro, >=, 0);
  return ro;
}

/* A socketpair: the test's end as a VhuTestFrontend (to read and answer the
 * back-end channel with), and the other end in @other, for the device. */
static VhuTestFrontend *
new_peer (int *other)
{
  int sv[2];

  g_assert_cmpint (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
  *other = sv[1];
  return vhu_test_frontend_new (sv[0], NULL);
}

/* The peer end of @peer was closed (what arrived before is discarded). */
static void
assert_peer_closed (VhuTestFrontend *peer)
{
  g_assert_true (vhu_test_frontend_wait_closed (peer, VHU_TEST_TIMEOUT_MS));
}

static void
assert_peer_open (VhuTestFrontend *peer)
{
  g_assert_true (vhu_test_frontend_expect_silence (peer, QUIET_MS));
  g_assert_false (vhu_test_frontend_peer_closed (peer));
}

/* Messages and replies */

static void
send_msg (Fixture *f,
          guint32 request,
          guint32 flags,
          const void *payload,
          guint32 size,
          const int *fds,
          guint n_fds)
{
  g_assert_true (vhu_test_frontend_send (f->fe, request, flags, payload, size, fds, n_fds));
}

static void
send_u64 (Fixture *f, guint32 request, guint32 flags, guint64 value)
{
  send_msg (f, request, flags, &value, sizeof value, NULL, 0);
}

static void
recv_reply (Fixture *f, guint32 request, VhuMessage *reply)
{
  g_assert_true (vhu_test_frontend_recv (f->fe, reply, VHU_TEST_TIMEOUT_MS));
  g_assert_cmpuint (reply->hdr.request, ==, request);
  g_assert_cmphex (reply->hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
}

static void
expect_u64_reply (Fixture *f, guint32 request, guint64 value)
{
  VhuMessage reply;

  recv_reply (f, request, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof (guint64));
  g_assert_cmpuint (reply.n_fds, ==, 0);
  g_assert_cmpuint (reply.payload.u64, ==, value);
  vhu_message_clear (&reply);
}

/* The error reply of a request whose reply is a value: no payload. */
static void
expect_empty_reply (Fixture *f, guint32 request)
{
  VhuMessage reply;

  recv_reply (f, request, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, 0);
  g_assert_cmpuint (reply.n_fds, ==, 0);
  vhu_message_clear (&reply);
}

/* Nothing comes back, and the connection stays open. */
static void
expect_silence (Fixture *f)
{
  g_assert_true (vhu_test_frontend_expect_silence (f->fe, QUIET_MS));
  g_assert_false (vhu_test_frontend_peer_closed (f->fe));
  g_assert_true (vhost_user_device_get_connected (dev (f)));
}

/* Sent with NEED_REPLY: accepted (ack 0), no protocol-error. */
static void
accepted (Fixture *f,
          guint32 request,
          const void *payload,
          guint32 size,
          const int *fds,
          guint n_fds)
{
  send_msg (f, request, NEED_REPLY, payload, size, fds, n_fds);
  expect_u64_reply (f, request, 0);
  expect_no_error (f);
}

/* Sent with NEED_REPLY: refused with ack 1 and one protocol-error @code. */
static void
refused_ack (Fixture *f,
             guint32 request,
             const void *payload,
             guint32 size,
             const int *fds,
             guint n_fds,
             gint code)
{
  send_msg (f, request, NEED_REPLY, payload, size, fds, n_fds);
  expect_u64_reply (f, request, 1);
  expect_error (f, code);
  g_assert_true (vhost_user_device_get_connected (dev (f)));
}

/* Sent without NEED_REPLY, by a request without a reply of its own:
 * refused without a reply. */
static void
refused_silently (Fixture *f,
                  guint32 request,
                  const void *payload,
                  guint32 size,
                  const int *fds,
                  guint n_fds,
                  gint code)
{
  send_msg (f, request, 0, payload, size, fds, n_fds);
  expect_silence (f);
  expect_error (f, code);
}

/* A request whose reply is a value (GET_*): refused with an empty reply. */
static void
refused_value (Fixture *f,
               guint32 request,
               const void *payload,
               guint32 size,
               const int *fds,
               guint n_fds,
               gint code)
{
  send_msg (f, request, 0, payload, size, fds, n_fds);
  expect_empty_reply (f, request);
  expect_error (f, code);
  g_assert_true (vhost_user_device_get_connected (dev (f)));
}

/* A request whose reply is a status: refused with status 1, NEED_REPLY or not. */
static void
refused_status (Fixture *f,
                guint32 request,
                const void *payload,
                guint32 size,
                const int *fds,
                guint n_fds,
                gint code)
{
  send_msg (f, request, 0, payload, size, fds, n_fds);
  expect_u64_reply (f, request, 1);
  expect_error (f, code);
  g_assert_true (vhost_user_device_get_connected (dev (f)));
}

static void
vring_state_ack (Fixture *f, guint32 request, guint32 index, guint32 num, guint64 ack)
{
  VhuVringState state = { .index = index, .num = num };

  send_msg (f, request, NEED_REPLY, &state, sizeof state, NULL, 0);
  expect_u64_reply (f, request, ack);
}

/* Where the start helpers put ring @index in the first RAM block. */
static VhuVringAddr
ring_addr (guint index)
{
  guint64 base = RAM_UVA + VHU_TEST_RING_OFFSET + (guint64) index * VHU_TEST_RING_STRIDE;
  VhuVringAddr addr = {
    .index = index,
    .flags = 0,
    .desc_user_addr = base,
    .used_user_addr = base + 0x2000,
    .avail_user_addr = base + 0x1000,
    .log_guest_addr = 0,
  };

  return addr;
}

static VhuMemRegionDesc
region_desc (guint64 gpa, guint64 size, guint64 uva, guint64 offset)
{
  VhuMemRegionDesc desc = {
    .guest_addr = gpa,
    .size = size,
    .user_addr = uva,
    .mmap_offset = offset,
  };

  return desc;
}

static guint32
mem_table_size (guint n)
{
  return (guint32) (G_STRUCT_OFFSET (VhuMemTableMsg, regions) + n * sizeof (VhuMemRegionDesc));
}

/* SET_MEM_TABLE with NEED_REPLY; returns the ack. */
static guint64
set_mem_table (Fixture *f, const VhuMemRegionDesc *descs, const int *fds, guint n)
{
  VhuMemTableMsg table = { 0 };
  VhuMessage reply;
  guint64 ack;

  table.nregions = n;
  memcpy (table.regions, descs, n * sizeof *descs);
  send_msg (f, VHOST_USER_REQUEST_SET_MEM_TABLE, NEED_REPLY, &table, mem_table_size (n), fds, n);
  recv_reply (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof (guint64));
  ack = reply.payload.u64;
  vhu_message_clear (&reply);
  return ack;
}

static VhuMemRegMsg
mem_reg (VhuMemRegionDesc desc)
{
  VhuMemRegMsg reg = { .padding = 0, .region = desc };

  return reg;
}

/* GET_INFLIGHT_FD: the fd of the buffer (the caller closes it). */
static int
get_inflight_fd (Fixture *f, guint16 num_queues, guint16 queue_size, guint64 *mmap_size)
{
  VhuInflightMsg request = { .num_queues = num_queues, .queue_size = queue_size };
  VhuMessage reply;
  int fd;

  send_msg (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, 0, &request, sizeof request, NULL, 0);
  recv_reply (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof request);
  g_assert_cmpuint (reply.n_fds, ==, 1);
  g_assert_cmpuint (reply.payload.inflight.num_queues, ==, num_queues);
  g_assert_cmpuint (reply.payload.inflight.queue_size, ==, queue_size);
  g_assert_cmpuint (reply.payload.inflight.mmap_size, >, 0);
  *mmap_size = reply.payload.inflight.mmap_size;
  fd = vhu_message_steal_fd (&reply, 0);
  vhu_message_clear (&reply);
  return fd;
}

static VhuInflightMsg
inflight_msg (guint64 mmap_size, guint64 mmap_offset, guint16 num_queues, guint16 queue_size)
{
  VhuInflightMsg msg = {
    .mmap_size = mmap_size,
    .mmap_offset = mmap_offset,
    .num_queues = num_queues,
    .queue_size = queue_size,
    .padding = 0,
  };

  return msg;
}

/* Rings */

/* The ring runs: started, and a kick on its eventfd is one queue-kicked. It
 * was never stopped since the records were last cleared. */
static void
assert_running (Fixture *f, guint index)
{
  guint kicked = n_kicked (f, index);

  vhu_test_drain_default_context ();
  g_assert_true (started (f, index));
  g_assert_cmpuint (n_stopped (f, index), ==, 0);
  vhu_test_frontend_kick (f->fe, index);
  vhu_test_drain_default_context ();
  g_assert_true (started (f, index));
  g_assert_cmpuint (n_kicked (f, index), ==, kicked + 1);
  g_assert_cmpuint (n_stopped (f, index), ==, 0);
}

/* The ring is stopped and a kick on @kick_fd wakes nothing. */
static void
assert_not_running (Fixture *f, guint index, int kick_fd)
{
  guint kicked = n_kicked (f, index);
  guint starts = n_started (f, index);

  vhu_test_drain_default_context ();
  g_assert_false (started (f, index));
  if (kick_fd >= 0)
    {
      g_assert_cmpint (eventfd_write (kick_fd, 1), ==, 0);
      vhu_test_drain_default_context ();
    }
  g_assert_false (started (f, index));
  g_assert_cmpuint (n_kicked (f, index), ==, kicked);
  g_assert_cmpuint (n_started (f, index), ==, starts);
}

/* The error eventfd of ring 0 (set by QEMU's realize) was written. */
static void
assert_err_signalled (Fixture *f, guint index)
{
  int fd = vhu_test_frontend_get_err_fd (f->fe, index);
  eventfd_t value = 0;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (eventfd_read (fd, &value), ==, 0);
  g_assert_cmpuint (value, >=, 1);
}

static void
assert_err_quiet (Fixture *f, guint index)
{
  int fd = vhu_test_frontend_get_err_fd (f->fe, index);
  eventfd_t value = 0;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (eventfd_read (fd, &value), ==, -1);
  g_assert_cmpint (errno, ==, EAGAIN);
}

/* The driver's side of a split ring */

#define VRING_DESC_F_WRITE 2

typedef struct
{
  guint64 addr;
  guint32 len;
  guint16 flags;
  guint16 next;
} Desc;

/* Where the driver's buffers go: well away from the rings. */
#define BUFFER_GPA (RAM_GPA + 0x100000)

/* The driver makes one buffer of @len bytes at @gpa available in ring
 * @index, as descriptor @head. */
static void
make_available (Fixture *f, guint index, guint16 head, guint64 gpa, guint32 len, guint16 flags)
{
  const VhuTestRing *ring = vhu_test_frontend_get_ring (f->fe, index);
  Desc desc = { .addr = gpa, .len = len, .flags = flags, .next = 0 };
  guint16 idx;

  g_assert_cmpuint (ring->num, >, head);
  memcpy (ring->desc + head * sizeof desc, &desc, sizeof desc);
  memcpy (&idx, ring->avail + 2, sizeof idx);
  memcpy (ring->avail + 4 + (idx % ring->num) * 2, &head, sizeof head);
  __atomic_store_n ((guint16 *) (gpointer) (ring->avail + 2), (guint16) (idx + 1),
                    __ATOMIC_RELEASE);
}

/* used->idx of ring @index, laid out where the start helpers put it (read
 * from the test's own mapping of the first RAM block). */
static guint16
used_idx (Fixture *f, guint index)
{
  const guint8 *used =
    f->ram->host + VHU_TEST_RING_OFFSET + (gsize) index * VHU_TEST_RING_STRIDE + 0x2000;

  return __atomic_load_n ((const guint16 *) (gconstpointer) (used + 2), __ATOMIC_ACQUIRE);
}

/* Sessions */

/* QEMU's realize: everything QEMU knows negotiated, no memory, no ring. */
static void
realize (Fixture *f)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
}

/* QEMU's realize and start: @n_queues rings running in the first RAM block
 * (given with ADD_MEM_REG). The records start from there. */
static void
start_session (Fixture *f, guint n_queues)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, n_queues);
  for (guint i = 0; i < n_queues; i++)
    g_assert_true (started (f, i));
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
}

/* The device closed the connection: the test's end reads EOF, and the device
 * is disconnected and reset. */
static void
expect_closed (Fixture *f)
{
  g_assert_true (vhu_test_frontend_wait_closed (f->fe, VHU_TEST_TIMEOUT_MS));
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), >=, 1);
  g_assert_cmpuint (vhost_user_device_get_acked_features (dev (f)), ==, 0);
  g_assert_cmpuint (vhost_user_device_get_acked_protocol_features (dev (f)), ==, 0);
  for (guint i = 0; i < N_QUEUES; i++)
    {
      g_assert_false (started (f, i));
      g_assert_cmpuint (ring_size (f, i), ==, 0);
    }
}

/* Closes the test's end of the connection: the device is disconnected
 * (once), and every fd of the connection is closed. */
static void
close_frontend (Fixture *f)
{
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  vhu_test_assert_fds (f->fds_idle);
}

static void
open_frontend (Fixture *f)
{
  g_assert_null (f->fe);
  vhu_test_device_clear_records (f->device);
  f->fe = vhu_test_frontend_new_for_device (dev (f));
  g_assert_true (vhost_user_device_get_connected (dev (f)));
}

static void
reconnect (Fixture *f)
{
  close_frontend (f);
  expect_no_error (f);
  open_frontend (f);
}

/* A complete session of QEMU's: realize, start both rings, a kick on each,
 * stop. */
static void
serve (Fixture *f)
{
  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, N_QUEUES);
  for (guint i = 0; i < N_QUEUES; i++)
    {
      guint kicked = n_kicked (f, i);

      g_assert_true (started (f, i));
      g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, i)));
      vhu_test_frontend_kick (f->fe, i);
      vhu_test_drain_default_context ();
      g_assert_cmpuint (n_kicked (f, i), ==, kicked + 1);
    }
  vhu_test_frontend_qemu_blk_stop (f->fe, N_QUEUES);
  for (guint i = 0; i < N_QUEUES; i++)
    g_assert_false (started (f, i));
  expect_no_error (f);
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  if (!g_test_subprocess ())
    return;

  f->fds_start = vhu_test_count_fds ();
  f->errors = g_ptr_array_new_with_free_func ((GDestroyNotify) g_error_free);
  f->device = vhu_test_device_new (N_QUEUES, VHU_TEST_DEVICE_DEFAULT_FEATURES, FALSE);
  g_signal_connect (f->device, "protocol-error", G_CALLBACK (on_protocol_error), f);
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, RAM_GPA, RAM_UVA);
  f->fds_idle = vhu_test_count_fds ();
  f->fe = vhu_test_frontend_new_for_device (dev (f));
  f->offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmphex (f->offered & MIN_OFFERED_FEATURES, ==, MIN_OFFERED_FEATURES);
  g_assert_cmphex (f->offered & (VF (ACCESS_PLATFORM) | VF (RING_PACKED)), ==, 0);
}

/* Whatever the test did: every protocol-error was expected; if the
 * connection is still open it still answers; a new front-end is served from
 * scratch; and nothing leaked. */
static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  if (!g_test_subprocess ())
    return;

  expect_no_error (f);

  if (vhost_user_device_get_connected (dev (f)))
    {
      g_assert_false (vhu_test_frontend_peer_closed (f->fe));
      g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                       f->offered);
      expect_no_error (f);
    }
  close_frontend (f);
  expect_no_error (f);

  open_frontend (f);
  serve (f);
  close_frontend (f);
  expect_no_error (f);

  g_signal_handlers_disconnect_by_func (f->device, on_protocol_error, f);
  g_assert_finalize_object (f->device);
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  g_ptr_array_unref (f->errors);
  vhu_test_drain_default_context ();
  vhu_test_assert_fds (f->fds_start);
}

/* ------------------------------------------------------------------------ */
/* M1: a header announcing more than any payload                            */

static void
test_m1_oversize_header (Fixture *f, gconstpointer data)
{
  static const guint32 sizes[] = { VHU_MAX_PAYLOAD + 1, 0x10000, 0x7fffffff, G_MAXUINT32 };

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      VhuHeader hdr = { VHOST_USER_REQUEST_SET_MEM_TABLE, VHU_VERSION, sizes[i] };
      int efd;

      if (i > 0)
        reconnect (f);
      vhu_test_frontend_qemu_blk_realize (f->fe);
      efd = vhu_test_new_eventfd ();

      /* The header alone, with an fd: refused before any payload byte. */
      g_assert_true (vhu_test_frontend_send_raw (f->fe, &hdr, sizeof hdr, &efd, 1));
      close (efd);
      expect_closed (f);
      expect_error (f, VHOST_USER_ERROR_PROTOCOL);
    }
}

/* ------------------------------------------------------------------------ */
/* M2: short reads                                                          */

static void
test_m2_truncated_message (Fixture *f, gconstpointer data)
{
  /* Cut inside the header, after the header, inside the payload. */
  static const gsize cuts[] = { 6, VHU_HEADER_SIZE, VHU_HEADER_SIZE + 20 };
  VhuVringAddr addr = ring_addr (0);
  VhuHeader hdr = { VHOST_USER_REQUEST_SET_VRING_ADDR, VHU_VERSION, sizeof addr };
  guint8 buf[VHU_HEADER_SIZE + sizeof addr];

  memcpy (buf, &hdr, sizeof hdr);
  memcpy (buf + sizeof hdr, &addr, sizeof addr);

  for (guint i = 0; i < G_N_ELEMENTS (cuts); i++)
    {
      int efd;

      if (i > 0)
        reconnect (f);
      realize (f);
      efd = vhu_test_new_eventfd ();

      /* Part of a message, with an fd: the device waits for the rest. */
      g_assert_true (vhu_test_frontend_send_raw (f->fe, buf, cuts[i], &efd, 1));
      close (efd);
      expect_silence (f);

      /* Then the front-end goes: a disconnection, the partial message and
       * its fd discarded (close_frontend checks every fd is closed). */
      close_frontend (f);
      g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);
      /* A disconnection rather than a refusal; if the device reports it,
       * as a protocol error. */
      vhu_test_drain_default_context ();
      g_assert_cmpuint (f->errors->len, <=, 1);
      if (f->errors->len == 1)
        pop_error (f, VHOST_USER_ERROR_PROTOCOL);
      open_frontend (f);
    }
}

/* A message that arrives in pieces is processed once whole. */
static void
test_m2_message_in_pieces (Fixture *f, gconstpointer data)
{
  VhuVringState state = { .index = 1, .num = 64 };
  VhuHeader hdr = { VHOST_USER_REQUEST_SET_VRING_NUM, VHU_VERSION | NEED_REPLY, sizeof state };
  guint8 buf[VHU_HEADER_SIZE + sizeof state];

  memcpy (buf, &hdr, sizeof hdr);
  memcpy (buf + sizeof hdr, &state, sizeof state);

  start_session (f, 1);
  g_assert_true (vhu_test_frontend_send_raw (f->fe, buf, 5, NULL, 0));
  expect_silence (f);
  assert_running (f, 0);
  g_assert_true (vhu_test_frontend_send_raw (f->fe, buf + 5, VHU_HEADER_SIZE + 1, NULL, 0));
  expect_silence (f);
  g_assert_true (vhu_test_frontend_send_raw (f->fe, buf + VHU_HEADER_SIZE + 6, 2, NULL, 0));
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_VRING_NUM, 0);
  expect_no_error (f);
  g_assert_cmpuint (ring_size (f, 1), ==, 64);
}

/* ------------------------------------------------------------------------ */
/* M3: fds on messages that take none                                       */

static void
test_m3_extra_fds (Fixture *f, gconstpointer data)
{
  VhuInflightMsg inflight = inflight_msg (0, 0, N_QUEUES, QUEUE_SIZE);
  VhuVringState state = { .index = 0, .num = 0 };
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);
  VhuMemTableMsg table = { .nregions = 1, .regions = { desc } };
  VhuMemRegMsg reg = mem_reg (desc);
  VhuLogMsg log = { .mmap_size = 4096, .mmap_offset = 0 };
  guint64 call = 0 | VHU_VRING_NOFD;
  int fds[3];
  int memfds[2];

  start_session (f, 1);
  mark_fds (f);

  new_eventfds (fds, 1);
  refused_value (f, VHOST_USER_REQUEST_GET_FEATURES, NULL, 0, fds, 1, VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 1);

  new_eventfds (fds, 3);
  refused_ack (f, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, fds, 3, VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 3);

  /* GET_VRING_BASE with an fd: refused, so the ring is not stopped. */
  new_eventfds (fds, 1);
  refused_value (f, VHOST_USER_REQUEST_GET_VRING_BASE, &state, sizeof state, fds, 1,
                 VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 1);

  /* The inflight messages (CVE-2022-0669): no buffer, no fd in the reply. */
  new_eventfds (fds, 1);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &inflight, sizeof inflight, fds, 1,
                 VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 1);

  /* SET_VRING_CALL that says "no fd" but carries one. */
  new_eventfds (fds, 1);
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_CALL, &call, sizeof call, fds, 1,
               VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 1);

  /* One region, two fds. */
  memfds[0] = dup (f->ram->fd);
  memfds[1] = new_memfd (4096);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, mem_table_size (1), memfds, 2,
               VHOST_USER_ERROR_PROTOCOL);
  refused_status (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, memfds, 2,
                  VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &reg, sizeof reg, memfds, 2,
               VHOST_USER_ERROR_PROTOCOL);
  close_fds (memfds, 2);

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M4: more fds than a message may carry                                    */

static void
test_m4_too_many_fds (Fixture *f, gconstpointer data)
{
  static const guint counts[] = { VHU_MAX_FDS + 1, 16, 64 };

  for (guint i = 0; i < G_N_ELEMENTS (counts); i++)
    {
      VhuHeader hdr = { VHOST_USER_REQUEST_GET_FEATURES, VHU_VERSION, 0 };
      int fds[64];

      if (i > 0)
        reconnect (f);
      start_session (f, 1);
      mark_fds (f);

      new_eventfds (fds, counts[i]);
      g_assert_true (vhu_test_frontend_send_raw (f->fe, &hdr, sizeof hdr, fds, counts[i]));
      close_fds (fds, counts[i]);
      expect_closed (f);
      expect_error (f, VHOST_USER_ERROR_PROTOCOL);
      /* The ring went with the connection. */
      g_assert_cmpuint (n_stopped (f, 0), ==, 1);
    }
}

/* Eight fds are allowed per message, not per recvmsg(): five with the
 * header and five more with the payload are too many. */
static void
test_m4_fds_split_over_message (Fixture *f, gconstpointer data)
{
  VhuMemTableMsg table = { .nregions = VHU_MEM_TABLE_MAX_REGIONS };
  VhuHeader hdr = { VHOST_USER_REQUEST_SET_MEM_TABLE, VHU_VERSION,
                    mem_table_size (VHU_MEM_TABLE_MAX_REGIONS) };
  int fds[10];

  for (guint i = 0; i < VHU_MEM_TABLE_MAX_REGIONS; i++)
    table.regions[i] = region_desc (i * 0x1000, 0x1000, RAM_UVA + i * 0x1000, i * 0x1000);

  realize (f);
  new_eventfds (fds, 10);
  g_assert_true (vhu_test_frontend_send_raw (f->fe, &hdr, sizeof hdr, fds, 5));
  vhu_test_drain_default_context ();
  /* The peer may be gone already; that is what is being tested. */
  (void) vhu_test_frontend_send_raw (f->fe, &table, hdr.size, fds + 5, 5);
  close_fds (fds, 10);
  expect_closed (f);
  expect_error (f, VHOST_USER_ERROR_PROTOCOL);
}

/* ------------------------------------------------------------------------ */
/* M5: too few fds                                                          */

static void
test_m5_missing_fds (Fixture *f, gconstpointer data)
{
  VhuMemTableMsg table = { .nregions = 3 };
  VhuMemRegMsg reg = mem_reg (region_desc (RAM2_GPA, 0x1000, RAM2_UVA, 0));
  VhuLogMsg log = { .mmap_size = 4096, .mmap_offset = 0 };
  VhuInflightMsg inflight = inflight_msg (4096, 0, N_QUEUES, QUEUE_SIZE);
  g_autoptr (VhuTestFrontend) backend = NULL;
  guint64 kick = 0;
  int fds[2];

  table.regions[0] = vhu_test_guest_ram_desc (f->ram);
  table.regions[1] = region_desc (RAM2_GPA, 0x1000, RAM2_UVA, 0);
  table.regions[2] = region_desc (RAM2_GPA + 0x1000, 0x1000, RAM2_UVA + 0x1000, 0x1000);

  start_session (f, 1);
  mark_fds (f);

  /* Three regions, two fds: the table in use stays. */
  fds[0] = dup (f->ram->fd);
  fds[1] = new_memfd (0x2000);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, mem_table_size (3), fds, 2,
               VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 2);
  assert_running (f, 0);

  /* A kick without the NOFD bit and without an fd: the ring keeps its kick
   * eventfd. */
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_KICK, &kick, sizeof kick, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  assert_running (f, 0);

  refused_status (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, NULL, 0,
                  VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_SET_LOG_FD, NULL, 0, NULL, 0, VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &inflight, sizeof inflight, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);

  /* SET_BACKEND_REQ_FD without its socket: the channel in use stays. */
  refused_ack (f, VHOST_USER_REQUEST_SET_BACKEND_REQ_FD, NULL, 0, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  backend = vhu_test_frontend_new (dup (vhu_test_frontend_get_backend_fd (f->fe)), NULL);
  assert_peer_open (backend);
  g_clear_pointer (&backend, vhu_test_frontend_free);

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M6: payload size                                                         */

static void
test_m6_wrong_payload_size (Fixture *f, gconstpointer data)
{
  VhuVringAddr addr = ring_addr (1);
  VhuVringState state = { .index = 1, .num = 64 };
  VhuInflightMsg inflight = inflight_msg (0, 0, N_QUEUES, QUEUE_SIZE);
  VhuMemTableMsg table = { .nregions = 1 };
  guint64 features = f->offered;
  guint64 kick = 1;
  int fds[2];

  table.regions[0] = vhu_test_guest_ram_desc (f->ram);
  table.regions[1] = vhu_test_guest_ram_desc (f->ram);

  start_session (f, 1);
  mark_fds (f);

  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, &state, 4, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  g_assert_cmpuint (ring_size (f, 1), ==, 0);
  refused_value (f, VHOST_USER_REQUEST_GET_FEATURES, &features, sizeof features, NULL, 0,
                 VHOST_USER_ERROR_PROTOCOL);
  /* SET_FEATURES of the wrong size is a refused message, not a failed
   * negotiation: the connection stays. */
  refused_ack (f, VHOST_USER_REQUEST_SET_FEATURES, &features, 4, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr - 8, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &inflight, 16, NULL, 0,
                 VHOST_USER_ERROR_PROTOCOL);

  /* GET_VRING_BASE of the wrong size does not stop the ring. */
  state.index = 0;
  refused_value (f, VHOST_USER_REQUEST_GET_VRING_BASE, &state, 4, NULL, 0,
                 VHOST_USER_ERROR_PROTOCOL);
  assert_running (f, 0);

  new_eventfds (fds, 1);
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_CALL, &kick, 4, fds, 1, VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 1);

  /* SET_MEM_TABLE whose size does not match nregions, both ways, and one
   * shorter than its own header. */
  fds[0] = dup (f->ram->fd);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, mem_table_size (2), fds, 1,
               VHOST_USER_ERROR_PROTOCOL);
  table.nregions = 2;
  fds[1] = dup (f->ram->fd);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, mem_table_size (1), fds, 2,
               VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, 4, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 2);
  assert_running (f, 0);

  assert_fds (f, 0);
}

/* The largest payload is read in full and discarded: the next message is
 * parsed where it starts, not from stale bytes. */
static void
test_m6_largest_payload (Fixture *f, gconstpointer data)
{
  gsize len = 2 * VHU_HEADER_SIZE + VHU_MAX_PAYLOAD;
  g_autofree guint8 *buf = g_malloc0 (len);
  VhuHeader owner = { VHOST_USER_REQUEST_SET_OWNER, VHU_VERSION | NEED_REPLY, VHU_MAX_PAYLOAD };
  VhuHeader get = { VHOST_USER_REQUEST_GET_FEATURES, VHU_VERSION, 0 };

  /* A payload that looks like headers of its own. */
  for (gsize i = 0; i + sizeof get <= VHU_MAX_PAYLOAD; i += sizeof get)
    memcpy (buf + VHU_HEADER_SIZE + i, &get, sizeof get);
  memcpy (buf, &owner, sizeof owner);
  memcpy (buf + VHU_HEADER_SIZE + VHU_MAX_PAYLOAD, &get, sizeof get);

  g_assert_true (vhu_test_frontend_send_raw (f->fe, buf, len, NULL, 0));
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_OWNER, 1);
  expect_error (f, VHOST_USER_ERROR_PROTOCOL);
  expect_u64_reply (f, VHOST_USER_REQUEST_GET_FEATURES, f->offered);
  expect_silence (f);
}

/* ------------------------------------------------------------------------ */
/* M7: unknown request codes                                                */

static void
test_m7_unknown_request (Fixture *f, gconstpointer data)
{
  static const guint32 codes[] = { VHOST_USER_REQUEST_CHECK_DEVICE_STATE + 1, 100, 1000, 0x10000,
                                   0x7fffffff, 0x80000001, G_MAXUINT32 };
  guint8 payload[100];

  memset (payload, 0xa5, sizeof payload);
  start_session (f, 1);
  mark_fds (f);

  for (guint i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      int fds[2];

      /* With NEED_REPLY: a failure ack. */
      refused_ack (f, codes[i], NULL, 0, NULL, 0, VHOST_USER_ERROR_UNSUPPORTED);
      /* Without: no reply. With a payload and fds: all discarded. */
      new_eventfds (fds, 2);
      refused_silently (f, codes[i], payload, sizeof payload, fds, 2,
                        VHOST_USER_ERROR_UNSUPPORTED);
      close_fds (fds, 2);
    }

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M8: bad header flags                                                     */

static void
test_m8_bad_flags (Fixture *f, gconstpointer data)
{
  static const guint32 flags[] = {
    0,                                /* version 0 */
    2,                                /* version 2 */
    3,                                /* version 3 */
    VHU_VERSION | VHU_FLAG_REPLY,     /* a reply sent as a request */
    VHU_VERSION | VHU_FLAG_REPLY | NEED_REPLY,
    VHU_VERSION | (1u << 4),          /* reserved bits */
    VHU_VERSION | (1u << 31),
    G_MAXUINT32,
  };

  for (guint i = 0; i < G_N_ELEMENTS (flags); i++)
    {
      VhuHeader hdr = { VHOST_USER_REQUEST_GET_FEATURES, flags[i], 0 };
      int efd;

      if (i > 0)
        reconnect (f);
      start_session (f, 1);
      efd = vhu_test_new_eventfd ();

      g_assert_true (vhu_test_frontend_send_raw (f->fe, &hdr, sizeof hdr, &efd, 1));
      close (efd);
      expect_closed (f);
      expect_error (f, VHOST_USER_ERROR_PROTOCOL);
    }
}

/* ------------------------------------------------------------------------ */
/* M9: VHOST_USER_NONE                                                      */

static void
test_m9_request_none (Fixture *f, gconstpointer data)
{
  guint64 value = 0;
  int fds[1];

  start_session (f, 1);
  mark_fds (f);

  refused_ack (f, VHOST_USER_REQUEST_NONE, NULL, 0, NULL, 0, VHOST_USER_ERROR_UNSUPPORTED);
  refused_silently (f, VHOST_USER_REQUEST_NONE, &value, sizeof value, NULL, 0,
                    VHOST_USER_ERROR_UNSUPPORTED);
  new_eventfds (fds, 1);
  refused_ack (f, VHOST_USER_REQUEST_NONE, &value, sizeof value, fds, 1,
               VHOST_USER_ERROR_UNSUPPORTED);
  close_fds (fds, 1);

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M10: ring indices out of range, including ones whose low bits are valid  */

static void
test_m10_vring_index (Fixture *f, gconstpointer data)
{
  static const guint32 indices[] = { N_QUEUES, 0xff, 0x100, 0x101, 0x10000, 0x10001,
                                     0x80000000, G_MAXUINT32 };
  static const guint64 fd_indices[] = {
    N_QUEUES,
    0xff,
    VHU_VRING_NOFD | N_QUEUES,
    0x200,                                   /* bit 9: not an index bit */
    0x10000,
    G_GUINT64_CONSTANT (1) << 32,
    (G_GUINT64_CONSTANT (1) << 63) | VHU_VRING_NOFD,
    G_MAXUINT64,
  };
  static const guint32 fd_requests[] = { VHOST_USER_REQUEST_SET_VRING_KICK,
                                         VHOST_USER_REQUEST_SET_VRING_CALL,
                                         VHOST_USER_REQUEST_SET_VRING_ERR };
  guint avail_idx;

  start_session (f, 1);
  avail_idx = vhost_user_virtqueue_get_last_avail_idx (queue (f, 0));
  mark_fds (f);

  for (guint i = 0; i < G_N_ELEMENTS (indices); i++)
    {
      VhuVringState state = { .index = indices[i], .num = 64 };
      VhuVringAddr addr = ring_addr (0);

      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, &state, sizeof state, NULL, 0,
                   VHOST_USER_ERROR_INVALID);
      state.num = 7;
      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, &state, sizeof state, NULL, 0,
                   VHOST_USER_ERROR_INVALID);
      state.num = 0;
      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ENABLE, &state, sizeof state, NULL, 0,
                   VHOST_USER_ERROR_INVALID);
      refused_value (f, VHOST_USER_REQUEST_GET_VRING_BASE, &state, sizeof state, NULL, 0,
                     VHOST_USER_ERROR_INVALID);
      addr.index = indices[i];
      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0,
                   VHOST_USER_ERROR_INVALID);
    }

  for (guint r = 0; r < G_N_ELEMENTS (fd_requests); r++)
    for (guint i = 0; i < G_N_ELEMENTS (fd_indices); i++)
      {
        guint64 value = fd_indices[i];
        gboolean with_fd = (value & VHU_VRING_NOFD) == 0;
        int fds[1];

        new_eventfds (fds, 1);
        refused_ack (f, fd_requests[r], &value, sizeof value, fds, with_fd ? 1 : 0,
                     VHOST_USER_ERROR_INVALID);
        close_fds (fds, 1);
      }

  /* Ring 0, which every one of them would have hit after truncation, is
   * as it was. */
  g_assert_cmpuint (ring_size (f, 0), ==, QUEUE_SIZE);
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 0)), ==, avail_idx);
  g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, 0)));
  g_assert_cmpuint (ring_size (f, 1), ==, 0);
  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M11: ring sizes                                                          */

static void
test_m11_vring_num (Fixture *f, gconstpointer data)
{
  static const guint32 sizes[] = { 0, 3, 100, 1023, 2048, VHU_MAX_QUEUE_SIZE, 65536, 0x80000000,
                                   G_MAXUINT32 };
  guint max = vhost_user_device_get_max_queue_size (dev (f));
  VhuVringState state;

  g_assert_cmpuint (max, ==, 1024);
  start_session (f, 1);

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      state = (VhuVringState){ .index = 1, .num = sizes[i] };
      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, &state, sizeof state, NULL, 0,
                   VHOST_USER_ERROR_INVALID);
      g_assert_cmpuint (ring_size (f, 1), ==, 0);
    }

  /* The limits themselves are fine. */
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, max, 0);
  g_assert_cmpuint (ring_size (f, 1), ==, max);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, 1, 0);
  g_assert_cmpuint (ring_size (f, 1), ==, 1);
  expect_no_error (f);

  /* A running ring cannot be resized. */
  state = (VhuVringState){ .index = 0, .num = 64 };
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, &state, sizeof state, NULL, 0,
               VHOST_USER_ERROR_STATE);
  g_assert_cmpuint (ring_size (f, 0), ==, QUEUE_SIZE);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M12: setup messages repeated                                             */

static void
test_m12_repeated_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestFrontend) backend = NULL;
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);
  guint mappings = 0;

  start_session (f, 1);

  for (guint round = 0; round < 5; round++)
    {
      static const guint32 fd_requests[] = { VHOST_USER_REQUEST_SET_VRING_CALL,
                                             VHOST_USER_REQUEST_SET_VRING_ERR,
                                             VHOST_USER_REQUEST_SET_VRING_KICK };
      VhuLogMsg log = { .mmap_size = 4096, .mmap_offset = 0 };
      VhuInflightMsg inflight;
      guint64 mmap_size;
      VhuTestFrontend *new_backend;
      int other;
      int fds[1];
      int log_fd;
      int inflight_fd;

      vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);

      for (guint r = 0; r < G_N_ELEMENTS (fd_requests); r++)
        {
          guint64 index = 1;

          new_eventfds (fds, 1);
          accepted (f, fd_requests[r], &index, sizeof index, fds, 1);
          close_fds (fds, 1);
        }
      new_eventfds (fds, 1);
      accepted (f, VHOST_USER_REQUEST_SET_LOG_FD, NULL, 0, fds, 1);
      close_fds (fds, 1);

      /* GET_INFLIGHT_FD again: the previous buffer goes. */
      inflight_fd = get_inflight_fd (f, N_QUEUES, QUEUE_SIZE, &mmap_size);
      inflight = inflight_msg (mmap_size, 0, N_QUEUES, QUEUE_SIZE);
      accepted (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &inflight, sizeof inflight, &inflight_fd,
                1);
      close (inflight_fd);

      log_fd = new_memfd (4096);
      send_msg (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0, &log, sizeof log, &log_fd, 1);
      expect_u64_reply (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0);
      close (log_fd);

      g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);

      /* A new back-end channel: the previous one is closed. */
      new_backend = new_peer (&other);
      accepted (f, VHOST_USER_REQUEST_SET_BACKEND_REQ_FD, NULL, 0, &other, 1);
      close (other);
      if (backend != NULL)
        assert_peer_closed (backend);
      g_clear_pointer (&backend, vhu_test_frontend_free);
      backend = new_backend;

      accepted (f, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL, 0);

      expect_no_error (f);
      if (round == 0)
        {
          mark_fds (f);
          mappings = vhu_test_count_memfd_mappings ();
        }
    }

  /* Nothing piled up: as many fds and mappings as after the first round. */
  assert_fds (f, 0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, mappings);
  assert_peer_open (backend);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M13: ring addresses                                                      */

static void
test_m13_vring_addr (Fixture *f, gconstpointer data)
{
  static const struct
  {
    guint64 desc, avail, used;
    guint32 flags;
  } bad[] = {
    { 8, 0, 0, 0 },          /* descriptors: 16-byte aligned */
    { 4, 0, 0, 0 },
    { 0, 1, 0, 0 },          /* available ring: 2 */
    { 0, 0, 2, 0 },          /* used ring: 4 */
    { 0, 0, 1, 0 },
    { 0, 0, 0, 2 },          /* flags: only LOG */
    { 0, 0, 0, 0x80000000 },
    { 0, 0, 0, G_MAXUINT32 },
  };
  VhuVringAddr addr;
  int kick;

  start_session (f, 1);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      for (guint index = 0; index < N_QUEUES; index++)
        {
          addr = ring_addr (index);
          addr.desc_user_addr += bad[i].desc;
          addr.avail_user_addr += bad[i].avail;
          addr.used_user_addr += bad[i].used;
          addr.flags = bad[i].flags;
          refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0,
                       VHOST_USER_ERROR_INVALID);
        }
    }

  /* Ring 0 kept its addresses and runs; ring 1 has none, so its kick fd
   * does not start it. */
  assert_running (f, 0);
  kick = vhu_test_new_eventfd ();
  {
    guint64 index = 1;

    accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick, 1);
  }
  assert_not_running (f, 1, kick);

  /* Good addresses: it starts. */
  addr = ring_addr (1);
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  g_assert_true (started (f, 1));
  g_assert_cmpuint (n_started (f, 1), ==, 1);
  close (kick);
}

/* ------------------------------------------------------------------------ */
/* M14: ring areas outside guest memory                                     */

static void
test_m14_ring_outside_memory (Fixture *f, gconstpointer data)
{
  const guint64 ram_end = RAM_UVA + RAM_SIZE;
  const struct
  {
    guint64 desc, avail, used;
  } bad[] = {
    /* Each area runs past the end of the region by a little (the
     * available and used rings by their 6 bytes of flags, index and event). */
    { ram_end - 16 * QUEUE_SIZE + 16, RAM_UVA + 0x1000, RAM_UVA + 0x2000 },
    { RAM_UVA, ram_end - 2 * QUEUE_SIZE, RAM_UVA + 0x2000 },
    { RAM_UVA, RAM_UVA + 0x1000, ram_end - 8 * QUEUE_SIZE },
    /* Outside entirely, below, above, and near the top of the address space. */
    { RAM_UVA - 0x10000, RAM_UVA + 0x1000, RAM_UVA + 0x2000 },
    { RAM_UVA, ram_end, RAM_UVA + 0x2000 },
    { RAM_UVA, RAM_UVA + 0x1000, G_MAXUINT64 - 3 },
    { G_MAXUINT64 - 15, RAM_UVA + 0x1000, RAM_UVA + 0x2000 },
  };
  int kick;
  guint64 index = 1;

  start_session (f, 1);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);
  kick = vhu_test_new_eventfd ();
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick, 1);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      VhuVringAddr addr = { .index = 1,
                            .desc_user_addr = bad[i].desc,
                            .avail_user_addr = bad[i].avail,
                            .used_user_addr = bad[i].used };

      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0,
                   VHOST_USER_ERROR_MEMORY);
      assert_not_running (f, 1, kick);
    }

  assert_running (f, 0);
  close (kick);
}

/* Two regions back to back in the front-end's address space are still two
 * mappings: a ring across the boundary is refused. */
static void
test_m14_ring_across_regions (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestGuestRam) low = vhu_test_guest_ram_new (RAM_SIZE / 2, RAM2_GPA, RAM2_UVA);
  g_autoptr (VhuTestGuestRam) high =
    vhu_test_guest_ram_new (RAM_SIZE / 2, RAM2_GPA + RAM_SIZE / 2, RAM2_UVA + RAM_SIZE / 2);
  VhuMemRegionDesc descs[3] = { vhu_test_guest_ram_desc (f->ram), vhu_test_guest_ram_desc (low),
                                vhu_test_guest_ram_desc (high) };
  int fds[3] = { f->ram->fd, low->fd, high->fd };
  guint64 boundary = RAM2_UVA + RAM_SIZE / 2;
  VhuVringAddr addr = { .index = 1,
                        .desc_user_addr = boundary - 16 * QUEUE_SIZE / 2,
                        .avail_user_addr = RAM2_UVA,
                        .used_user_addr = RAM2_UVA + 0x1000 };
  guint64 index = 1;
  int kick;

  start_session (f, 1);
  g_assert_cmpuint (set_mem_table (f, descs, fds, 3), ==, 0);
  expect_no_error (f);
  assert_running (f, 0);

  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);
  kick = vhu_test_new_eventfd ();
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick, 1);

  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0,
               VHOST_USER_ERROR_MEMORY);
  addr.desc_user_addr = RAM2_UVA;
  addr.used_user_addr = boundary - 4;
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0,
               VHOST_USER_ERROR_MEMORY);
  assert_not_running (f, 1, kick);

  /* All three areas inside the upper region: it starts. */
  addr.desc_user_addr = boundary;
  addr.avail_user_addr = boundary + 0x1000;
  addr.used_user_addr = boundary + 0x2000;
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  g_assert_true (started (f, 1));
  close (kick);

  /* Back to the first table, so that the teardown's checks see one region. */
  g_assert_cmpuint (set_mem_table (f, descs, fds, 1), ==, 0);
  pop_error (f, VHOST_USER_ERROR_MEMORY); /* ring 1 lost its memory */
  expect_no_error (f);
  g_assert_false (started (f, 1));
}

/* A ring that fits with 64 entries does not with 128: SET_VRING_NUM is
 * refused and, like any refused request, changes nothing. */
static void
test_m14_vring_num_grows_out (Fixture *f, gconstpointer data)
{
  const guint64 ram_end = RAM_UVA + RAM_SIZE;
  VhuVringAddr addr = { .index = 1,
                        .desc_user_addr = ram_end - 16 * 64,
                        .avail_user_addr = RAM_UVA + 0x100000,
                        .used_user_addr = RAM_UVA + 0x101000 };
  VhuVringState state = { .index = 1, .num = 128 };
  guint64 index = 1;
  int kick;

  start_session (f, 1);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, 64, 0);
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);

  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, &state, sizeof state, NULL, 0,
               VHOST_USER_ERROR_MEMORY);
  g_assert_cmpuint (ring_size (f, 1), ==, 64);

  /* The ring as it was (64 entries, inside memory) starts. */
  kick = vhu_test_new_eventfd ();
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick, 1);
  g_assert_true (started (f, 1));
  close (kick);
  assert_running (f, 0);
}

/* Addresses given before the memory table are checked when it arrives. */
static void
test_m14_checked_when_table_arrives (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestGuestRam) other = vhu_test_guest_ram_new (RAM_SIZE, RAM2_GPA, RAM2_UVA);
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (other);
  VhuVringAddr addr = ring_addr (0);
  guint64 index = 0;
  int kick;

  realize (f);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 0, QUEUE_SIZE, 0);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, 0, 0, 0);
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  kick = vhu_test_new_eventfd ();
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick, 1);
  assert_not_running (f, 0, kick);

  /* A table that does not hold the ring: accepted (it is a valid table),
   * but the ring does not start, and the device says why. */
  g_assert_cmpuint (set_mem_table (f, &desc, &other->fd, 1), ==, 0);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  assert_not_running (f, 0, kick);

  /* The right table: it starts (the kick fd counts as a kick). */
  desc = vhu_test_guest_ram_desc (f->ram);
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  expect_no_error (f);
  g_assert_true (started (f, 0));
  g_assert_cmpuint (n_kicked (f, 0), ==, 1);
  close (kick);
}

/* ------------------------------------------------------------------------ */
/* M15: ring base                                                           */

static void
test_m15_vring_base (Fixture *f, gconstpointer data)
{
  static const guint32 bases[] = { 0x10000, 0x10005, 0x80000000, G_MAXUINT32 };
  guint base0;

  start_session (f, 1);
  base0 = vhost_user_virtqueue_get_last_avail_idx (queue (f, 0));
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, 1, 5, 0);
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 1)), ==, 5);

  for (guint i = 0; i < G_N_ELEMENTS (bases); i++)
    {
      VhuVringState state = { .index = 1, .num = bases[i] };

      refused_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, &state, sizeof state, NULL, 0,
                   VHOST_USER_ERROR_INVALID);
      g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 1)), ==, 5);
    }
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, 1, 0xffff, 0);
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 1)), ==, 0xffff);
  g_assert_cmpuint (vhu_test_frontend_get_vring_base (f->fe, 1), ==, 0xffff);

  /* Not while the ring runs. */
  {
    VhuVringState state = { .index = 0, .num = 7 };

    refused_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, &state, sizeof state, NULL, 0,
                 VHOST_USER_ERROR_STATE);
  }
  g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, 0)), ==, base0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M16: number of memory regions                                            */

static void
test_m16_nregions (Fixture *f, gconstpointer data)
{
  guint8 buf[8 + 9 * sizeof (VhuMemRegionDesc)];
  VhuMemTableMsg table = { 0 };
  guint32 n;
  int fds[VHU_MAX_FDS];

  start_session (f, 1);
  mark_fds (f);

  /* No region. */
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, mem_table_size (0), NULL, 0,
               VHOST_USER_ERROR_INVALID);

  /* Nine regions (with as many fds as can go). */
  memset (buf, 0, sizeof buf);
  n = 9;
  memcpy (buf, &n, sizeof n);
  for (guint i = 0; i < 9; i++)
    {
      VhuMemRegionDesc desc = region_desc (i * 0x1000, 0x1000, RAM_UVA + i * 0x1000, i * 0x1000);

      memcpy (buf + 8 + i * sizeof desc, &desc, sizeof desc);
    }
  for (guint i = 0; i < VHU_MAX_FDS; i++)
    fds[i] = dup (f->ram->fd);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, buf, sizeof buf, fds, VHU_MAX_FDS,
               VHOST_USER_ERROR_PROTOCOL);

  /* A count that would overflow a 32-bit size computation. */
  n = G_MAXUINT32;
  memcpy (buf, &n, sizeof n);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, buf, mem_table_size (0), NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, buf, mem_table_size (8), fds, VHU_MAX_FDS,
               VHOST_USER_ERROR_PROTOCOL);
  n = 0x08000000; /* 8 + n * 32 wraps to 8 in 32 bits */
  memcpy (buf, &n, sizeof n);
  refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, buf, mem_table_size (0), NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, VHU_MAX_FDS);

  /* The table in use stayed. */
  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M17: region values that overflow                                         */

static void
test_m17_region_overflow (Fixture *f, gconstpointer data)
{
  const VhuMemRegionDesc bad[] = {
    region_desc (0, 0, RAM_UVA, 0),                                     /* empty */
    region_desc (G_GUINT64_CONSTANT (0xfffffffffffff000), 0x2000, RAM_UVA, 0),
    region_desc (0, 0x2000, G_GUINT64_CONSTANT (0xfffffffffffff000), 0),
    region_desc (0, 0x2000, RAM_UVA, G_GUINT64_CONSTANT (0xfffffffffffff000)),
    region_desc (0, G_MAXUINT64, 0, 0),
    /* No overflow as given, but rounding the mapping up to pages does. */
    region_desc (0, G_GUINT64_CONSTANT (0xfffffffffffff001), 0, 0),
    region_desc (0, 0x1000, RAM_UVA, G_GUINT64_CONSTANT (0xfffffffffffff800)),
    /* Past the largest file offset. */
    region_desc (0, 0x2000, RAM_UVA, G_GUINT64_CONSTANT (0x7ffffffffffff000)),
  };

  start_session (f, 1);
  mark_fds (f);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      VhuMemTableMsg table = { .nregions = 1, .regions = { bad[i] } };
      VhuMemRegMsg reg = mem_reg (bad[i]);

      /* Checked with 64-bit arithmetic before anything is mapped. */
      g_test_message ("region %u", i);
      refused_ack (f, VHOST_USER_REQUEST_SET_MEM_TABLE, &table, mem_table_size (1),
                   &f->ram->fd, 1, VHOST_USER_ERROR_INVALID);
      refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1,
                   VHOST_USER_ERROR_INVALID);
    }

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M18: overlapping regions                                                 */

static void
test_m18_overlapping_regions (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestGuestRam) ram2 = vhu_test_guest_ram_new (RAM_SIZE, RAM2_GPA, RAM2_UVA);
  VhuMemRegionDesc a = vhu_test_guest_ram_desc (f->ram);
  VhuMemRegionDesc b = vhu_test_guest_ram_desc (ram2);
  int fds[2] = { f->ram->fd, ram2->fd };
  VhuMemRegionDesc pair[2];
  VhuMemRegMsg reg;

  start_session (f, 1);
  mark_fds (f);

  /* Overlap in guest-physical space only. */
  pair[0] = a;
  pair[1] = b;
  pair[1].guest_addr = RAM_GPA + RAM_SIZE / 2;
  g_assert_cmpuint (set_mem_table (f, pair, fds, 2), ==, 1);
  expect_error (f, VHOST_USER_ERROR_INVALID);

  /* In the front-end's address space only. */
  pair[1] = b;
  pair[1].user_addr = RAM_UVA + RAM_SIZE - 0x1000;
  g_assert_cmpuint (set_mem_table (f, pair, fds, 2), ==, 1);
  expect_error (f, VHOST_USER_ERROR_INVALID);

  /* One inside the other. */
  pair[1] = region_desc (RAM_GPA + 0x1000, 0x1000, RAM_UVA + 0x1000, 0);
  g_assert_cmpuint (set_mem_table (f, pair, fds, 2), ==, 1);
  expect_error (f, VHOST_USER_ERROR_INVALID);

  /* The same region twice (two fds for the same file, as SCM_RIGHTS gives). */
  pair[1] = a;
  fds[1] = f->ram->fd;
  g_assert_cmpuint (set_mem_table (f, pair, fds, 2), ==, 1);
  expect_error (f, VHOST_USER_ERROR_INVALID);
  fds[1] = ram2->fd;

  /* ADD_MEM_REG of the region in use, again: QEMU 7.2 sends each region
   * once per vhost device (a multi-queue net device is several), so it is
   * counted, not refused, and its fd is not kept; one REM_MEM_REG leaves
   * the region in place. */
  reg = mem_reg (a);
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1);
  accepted (f, VHOST_USER_REQUEST_REM_MEM_REG, &reg, sizeof reg, NULL, 0);
  assert_fds (f, 0);
  assert_running (f, 0);

  /* ADD_MEM_REG over the table in use, overlapping. */
  reg = mem_reg (b);
  reg.region.guest_addr = RAM_SIZE - 0x1000;
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &ram2->fd, 1,
               VHOST_USER_ERROR_INVALID);
  reg = mem_reg (b);
  reg.region.user_addr = RAM_UVA;
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &ram2->fd, 1,
               VHOST_USER_ERROR_INVALID);

  assert_fds (f, 0);
  assert_running (f, 0);

  /* The two regions apart are fine. */
  g_assert_cmpuint (set_mem_table (f, (VhuMemRegionDesc[]){ a, b }, fds, 2), ==, 0);
  expect_no_error (f);
  assert_running (f, 0);
  g_assert_cmpuint (set_mem_table (f, &a, fds, 1), ==, 0);
}

/* ------------------------------------------------------------------------ */
/* M19: files smaller than the region                                       */

static void
test_m19_file_too_small (Fixture *f, gconstpointer data)
{
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);
  VhuMemRegMsg reg;
  int small = new_memfd (64 * 1024);
  int seals;

  start_session (f, 1);
  mark_fds (f);

  /* 64 KiB of file for 2 MiB of region. */
  g_assert_cmpuint (set_mem_table (f, &desc, &small, 1), ==, 1);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  reg = mem_reg (region_desc (RAM2_GPA, RAM_SIZE, RAM2_UVA, 0));
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &small, 1,
               VHOST_USER_ERROR_MEMORY);

  /* The right file, but the region runs past its end. */
  desc.mmap_offset = RAM_SIZE / 2;
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 1);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  desc = region_desc (RAM_GPA, 0x1000, RAM_UVA, RAM_SIZE);
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 1);
  expect_error (f, VHOST_USER_ERROR_MEMORY);

  close (small);
  assert_fds (f, -1);
  assert_running (f, 0);

  /* A region the device mapped cannot be truncated under it any more: the
   * sealable memfd was sealed against shrinking. */
  seals = fcntl (f->ram->fd, F_GET_SEALS);
  g_assert_cmpint (seals, >=, 0);
  g_assert_true (seals & F_SEAL_SHRINK);
  g_assert_cmpint (ftruncate (f->ram->fd, RAM_SIZE / 2), ==, -1);
  g_assert_cmpint (errno, ==, EPERM);
  assert_running (f, 0);
}

/* A region file that is not sealed and that the front-end truncates after
 * the device mapped it: reading the ring then faults (SIGBUS). The device
 * must not crash: the ring is reported broken. */
static void
truncated_after_mapping (Fixture *f, gboolean pop_many)
{
  VhuTestGuestRam fragile = { .fd = -1, .size = RAM_SIZE, .gpa = RAM_GPA, .uva = RAM_UVA };
  g_autoptr (GError) error = NULL;
  VhostUserVirtqElement *elem;
  VhuMemRegionDesc desc;

  fragile.fd = memfd_create ("vhu-test-unsealable", MFD_CLOEXEC);
  g_assert_cmpint (fragile.fd, >=, 0);
  g_assert_cmpint (ftruncate (fragile.fd, RAM_SIZE), ==, 0);
  fragile.host = mmap (NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fragile.fd, 0);
  g_assert_true (fragile.host != MAP_FAILED);

  realize (f);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_FEATURES,
                             VF (VERSION_1) | VF (PROTOCOL_FEATURES));
  desc = vhu_test_guest_ram_desc (&fragile);
  g_assert_cmpuint (set_mem_table (f, &desc, &fragile.fd, 1), ==, 0);
  vhu_test_frontend_start_ring (f->fe, &fragile, 0, QUEUE_SIZE, 0);
  vhu_test_drain_default_context ();
  g_assert_true (started (f, 0));
  make_available (f, 0, 0, BUFFER_GPA, 64, VRING_DESC_F_WRITE);
  expect_no_error (f);

  /* The front-end shrinks the file under the mapping (it was not sealed). */
  g_assert_cmpint (ftruncate (fragile.fd, 0), ==, 0);
  munmap (fragile.host, RAM_SIZE);
  fragile.host = NULL;

  /* The device reads the ring, one pop or a burst. */
  if (pop_many)
    {
      VhostUserVirtqElement *burst[4];

      g_assert_cmpuint (vhost_user_virtqueue_pop_many (queue (f, 0), burst, 4, &error), ==, 0);
    }
  else
    {
      elem = vhost_user_virtqueue_pop (queue (f, 0), &error);
      g_assert_null (elem);
    }
  g_assert_nonnull (error);
  g_assert_true (error->domain == VHOST_USER_ERROR);
  g_assert_true (vhost_user_virtqueue_get_broken (queue (f, 0)));
  assert_err_signalled (f, 0);
  vhu_test_drain_default_context ();
  while (f->errors->len > 0)
    g_ptr_array_remove_index (f->errors, 0);
  close (fragile.fd);
}

static void
test_m19_truncated_after_mapping (Fixture *f, gconstpointer data)
{
  truncated_after_mapping (f, FALSE);
}

static void
test_m19_truncated_pop_many (Fixture *f, gconstpointer data)
{
  truncated_after_mapping (f, TRUE);
}

/* ------------------------------------------------------------------------ */
/* M20: mmap failures                                                       */

static void
test_m20_mmap_failure (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestGuestRam) ram2 = vhu_test_guest_ram_new (RAM_SIZE, RAM2_GPA, RAM2_UVA);
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (ram2));
  VhuLogMsg log = { .mmap_size = 4096, .mmap_offset = 0 };
  VhuInflightMsg inflight;
  int pipe_fds[2];
  int ro;
  int memfd;

  start_session (f, 1);
  g_assert_cmpint (pipe2 (pipe_fds, O_CLOEXEC), ==, 0);
  mark_fds (f);

  /* Guest RAM that cannot be mapped shared-writable. */
  ro = reopen_read_only (f->ram->fd);
  g_assert_cmpuint (set_mem_table (f, &desc, &ro, 1), ==, 1);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  close (ro);
  /* Nor can a pipe. */
  g_assert_cmpuint (set_mem_table (f, &desc, &pipe_fds[0], 1), ==, 1);
  expect_error (f, VHOST_USER_ERROR_MEMORY);

  /* The previous table is still in use: the ring still translates. */
  assert_fds (f, 0);
  assert_running (f, 0);

  /* ADD_MEM_REG: refused, and nothing half-added (the same region with a
   * good fd goes in afterwards). */
  ro = reopen_read_only (ram2->fd);
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &ro, 1,
               VHOST_USER_ERROR_MEMORY);
  close (ro);
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &pipe_fds[1], 1,
               VHOST_USER_ERROR_MEMORY);
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &ram2->fd, 1);
  accepted (f, VHOST_USER_REQUEST_REM_MEM_REG, &reg, sizeof reg, NULL, 0);
  assert_running (f, 0);

  /* The dirty log and the inflight buffer. */
  memfd = new_memfd (64 * 1024);
  ro = reopen_read_only (memfd);
  refused_status (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, &ro, 1,
                  VHOST_USER_ERROR_MEMORY);
  inflight = inflight_msg (vhu_inflight_queue_region_size (QUEUE_SIZE, FALSE) * N_QUEUES, 0,
                           N_QUEUES, QUEUE_SIZE);
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &inflight, sizeof inflight, &ro, 1,
               VHOST_USER_ERROR_MEMORY);
  close (ro);
  close (memfd);

  close (pipe_fds[0]);
  close (pipe_fds[1]);
  assert_fds (f, -2);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M21: memory table changes while rings run                                */

static void
test_m21_same_layout (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestGuestRam) ram2 = vhu_test_guest_ram_new (RAM_SIZE, RAM2_GPA, RAM2_UVA);
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (ram2));

  start_session (f, N_QUEUES);

  /* The same table again, through SET_MEM_TABLE: the rings keep running. */
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  expect_no_error (f);
  for (guint i = 0; i < N_QUEUES; i++)
    assert_running (f, i);

  /* A region added and removed around them. */
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &ram2->fd, 1);
  for (guint i = 0; i < N_QUEUES; i++)
    assert_running (f, i);
  accepted (f, VHOST_USER_REQUEST_REM_MEM_REG, &reg, sizeof reg, NULL, 0);
  for (guint i = 0; i < N_QUEUES; i++)
    assert_running (f, i);
  assert_err_quiet (f, 0);
}

/* A table without the rings' region: the rings stop, are marked broken, and
 * the front-end hears of it on the error eventfd; the rings then come back
 * through the ordinary stop and start. */
static void
test_m21_ring_memory_removed (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestGuestRam) ram2 = vhu_test_guest_ram_new (RAM_SIZE, RAM2_GPA, RAM2_UVA);
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (ram2);

  start_session (f, 1);
  assert_err_quiet (f, 0);

  g_assert_cmpuint (set_mem_table (f, &desc, &ram2->fd, 1), ==, 0);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  g_assert_cmpuint (n_stopped (f, 0), ==, 1);
  assert_err_signalled (f, 0);
  assert_not_running (f, 0, vhu_test_frontend_get_kick_fd (f->fe, 0));

  /* The old memory back: the front-end stops and restarts the ring. */
  desc = vhu_test_guest_ram_desc (f->ram);
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  expect_no_error (f);
  (void) vhu_test_frontend_get_vring_base (f->fe, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, QUEUE_SIZE, 0);
  vhu_test_drain_default_context ();
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
  assert_running (f, 0);
  assert_err_quiet (f, 0);
}

/* A request in flight when the memory table changes: the memory it points
 * into stays mapped while the device holds it, and is let go of once the
 * device drops it; completing it after its ring stopped writes nothing to
 * the ring. */
typedef struct
{
  VhostUserVirtqueue *queue;
  VhostUserVirtqElement *elem;
} Recycle;

static gboolean
recycle_in_dispatch (gpointer data)
{
  Recycle *r = data;

  /* On the queue's thread, in a dispatch: the queue's own free list. */
  g_assert_true (g_main_context_is_owner (vhost_user_virtqueue_get_context (r->queue)));
  vhost_user_virtqueue_recycle (r->queue, &r->elem, 1);
  r->elem = NULL;
  return G_SOURCE_REMOVE;
}

static void
in_flight_element (Fixture *f, gboolean recycle)
{
  static const guint8 text[] = "in flight";
  g_autoptr (VhuTestGuestRam) ram2 = vhu_test_guest_ram_new (RAM_SIZE, RAM2_GPA, RAM2_UVA);
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (ram2);
  VhostUserVirtqElement *elem;
  guint mappings;

  start_session (f, 1);
  make_available (f, 0, 0, BUFFER_GPA, 64, VRING_DESC_F_WRITE);
  elem = vhu_test_pop (queue (f, 0));
  g_assert_cmpuint (vhost_user_virtq_element_get_in_size (elem), ==, 64);
  mark_fds (f);
  mappings = vhu_test_count_memfd_mappings ();

  /* The memory goes from the table: the ring stops, broken. */
  g_assert_cmpuint (set_mem_table (f, &desc, &ram2->fd, 1), ==, 0);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  g_assert_cmpuint (n_stopped (f, 0), ==, 1);
  g_assert_false (started (f, 0));
  g_assert_true (vhost_user_virtqueue_get_broken (queue (f, 0)));
  assert_err_signalled (f, 0);

  /* The device finishes the request: its buffer is still mapped. */
  g_assert_cmpuint (vhost_user_virtq_element_write (elem, 0, text, sizeof text), ==, sizeof text);
  g_assert_cmpmem (f->ram->host + BUFFER_GPA, sizeof text, text, sizeof text);
  vhost_user_virtqueue_push (queue (f, 0), elem, sizeof text);
  g_assert_cmpuint (used_idx (f, 0), ==, 0);

  /* Dropped: nothing keeps the old memory any more (the new table's
   * region replaced the old one's fd and mapping). */
  if (recycle)
    {
      Recycle r = { queue (f, 0), elem };

      g_idle_add (recycle_in_dispatch, &r);
      while (r.elem != NULL)
        g_main_context_iteration (NULL, TRUE);
    }
  else
    vhost_user_virtq_element_unref (elem);
  assert_fds (f, 0);
  g_assert_cmpuint (vhu_test_count_memfd_mappings (), ==, mappings);

  /* The memory back, the ring restarted by the front-end. */
  desc = vhu_test_guest_ram_desc (f->ram);
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  expect_no_error (f);
  (void) vhu_test_frontend_get_vring_base (f->fe, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, QUEUE_SIZE, 0);
  vhu_test_drain_default_context ();
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
  assert_running (f, 0);
}

static void
test_m21_in_flight_element (Fixture *f, gconstpointer data)
{
  in_flight_element (f, FALSE);
}

static void
test_m21_in_flight_element_recycled (Fixture *f, gconstpointer data)
{
  in_flight_element (f, TRUE);
}

/* ------------------------------------------------------------------------ */
/* M22: more regions than slots                                             */

static void
test_m22_slots_full (Fixture *f, gconstpointer data)
{
  const guint64 page = 0x1000;
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);
  VhuMemRegMsg reg;

  g_assert_cmpuint (RAM_SIZE / page, >, VHU_MAX_MEM_SLOTS);
  realize (f);
  g_assert_cmpuint (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS), ==,
                    VHU_MAX_MEM_SLOTS);
  mark_fds (f);

  /* Every slot taken, one page each. */
  for (guint i = 0; i < VHU_MAX_MEM_SLOTS; i++)
    {
      reg = mem_reg (region_desc (RAM_GPA + i * page, page, RAM_UVA + i * page, i * page));
      send_msg (f, VHOST_USER_REQUEST_ADD_MEM_REG, NEED_REPLY, &reg, sizeof reg, &f->ram->fd, 1);
      expect_u64_reply (f, VHOST_USER_REQUEST_ADD_MEM_REG, 0);
    }
  expect_no_error (f);
  assert_fds (f, VHU_MAX_MEM_SLOTS);

  /* One more: refused, its fd closed. */
  reg = mem_reg (region_desc (RAM_GPA + VHU_MAX_MEM_SLOTS * page, page,
                              RAM_UVA + VHU_MAX_MEM_SLOTS * page, VHU_MAX_MEM_SLOTS * page));
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1,
               VHOST_USER_ERROR_INVALID);
  assert_fds (f, VHU_MAX_MEM_SLOTS);

  /* A slot freed takes it. */
  {
    VhuMemRegMsg first = mem_reg (region_desc (RAM_GPA, page, RAM_UVA, 0));

    accepted (f, VHOST_USER_REQUEST_REM_MEM_REG, &first, sizeof first, NULL, 0);
  }
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1);
  assert_fds (f, VHU_MAX_MEM_SLOTS);

  /* SET_MEM_TABLE replaces them all. */
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  expect_no_error (f);
  assert_fds (f, 1);
}

/* ------------------------------------------------------------------------ */
/* M23: removing regions                                                    */

static void
test_m23_rem_mem_reg_bad (Fixture *f, gconstpointer data)
{
  VhuMemRegMsg unknown = mem_reg (region_desc (RAM2_GPA, 0x1000, RAM2_UVA, 0));
  VhuMemRegMsg wrong_size = mem_reg (vhu_test_guest_ram_desc (f->ram));
  int fds[2];

  /* Nothing to remove yet. */
  realize (f);
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &unknown, sizeof unknown, NULL, 0,
               VHOST_USER_ERROR_INVALID);
  close_frontend (f);
  open_frontend (f);

  start_session (f, 1);
  mark_fds (f);

  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &unknown, sizeof unknown, NULL, 0,
               VHOST_USER_ERROR_INVALID);
  /* A region that matches only in part. */
  wrong_size.region.size /= 2;
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &wrong_size, sizeof wrong_size, NULL, 0,
               VHOST_USER_ERROR_INVALID);
  wrong_size = mem_reg (vhu_test_guest_ram_desc (f->ram));
  wrong_size.region.user_addr += 0x1000;
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &wrong_size, sizeof wrong_size, NULL, 0,
               VHOST_USER_ERROR_INVALID);
  /* With an fd attached (QEMU sends one): closed. With two: refused. */
  fds[0] = new_memfd (0x1000);
  fds[1] = vhu_test_new_eventfd ();
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &unknown, sizeof unknown, fds, 1,
               VHOST_USER_ERROR_INVALID);
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &unknown, sizeof unknown, fds, 2,
               VHOST_USER_ERROR_PROTOCOL);
  close_fds (fds, 2);

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* Removing the region that holds running rings stops them rather than
 * leave them pointing at unmapped memory. */
static void
test_m23_rem_mem_reg_rings (Fixture *f, gconstpointer data)
{
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (f->ram));
  int fd;

  start_session (f, 1);

  /* QEMU passes the region's fd along with REM_MEM_REG. */
  fd = dup (f->ram->fd);
  send_msg (f, VHOST_USER_REQUEST_REM_MEM_REG, NEED_REPLY, &reg, sizeof reg, &fd, 1);
  expect_u64_reply (f, VHOST_USER_REQUEST_REM_MEM_REG, 0);
  close (fd);
  expect_error (f, VHOST_USER_ERROR_MEMORY);
  g_assert_cmpuint (n_stopped (f, 0), ==, 1);
  assert_err_signalled (f, 0);
  assert_not_running (f, 0, vhu_test_frontend_get_kick_fd (f->fe, 0));

  /* Memory back, and the ring restarted by the front-end. */
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1);
  (void) vhu_test_frontend_get_vring_base (f->fe, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, QUEUE_SIZE, 0);
  vhu_test_drain_default_context ();
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M24: the dirty log                                                       */

static void
test_m24_log_base (Fixture *f, gconstpointer data)
{
  /* 2 MiB of guest memory is 512 pages: the log needs 64 bytes. */
  const struct
  {
    guint64 size, offset;
    gint code;
  } bad[] = {
    { 0, 0, VHOST_USER_ERROR_INVALID },
    { 0x2000, G_GUINT64_CONSTANT (0xfffffffffffff000), VHOST_USER_ERROR_INVALID },
    { G_MAXUINT64, 1, VHOST_USER_ERROR_INVALID },
    { G_GUINT64_CONSTANT (0x8000000000000000), 0, VHOST_USER_ERROR_INVALID },
    { 32, 0, VHOST_USER_ERROR_INVALID }, /* covers half the memory */
    { 63, 0, VHOST_USER_ERROR_INVALID },
    { 8192, 0, VHOST_USER_ERROR_MEMORY }, /* more than its 4 KiB file */
    { 64, 4096, VHOST_USER_ERROR_MEMORY },
  };
  VhuLogMsg log = { .mmap_size = 64, .mmap_offset = 0 };
  VhuVringAddr addr;
  int log_fd;

  start_session (f, 1);
  log_fd = new_memfd (4096);
  mark_fds (f);

  send_msg (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0, &log, sizeof log, &log_fd, 1);
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0);
  expect_no_error (f);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      log = (VhuLogMsg){ .mmap_size = bad[i].size, .mmap_offset = bad[i].offset };
      refused_status (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, &log_fd, 1,
                      bad[i].code);
    }
  assert_fds (f, 0);

  /* The 64-byte log is still the one in use: a used ring logged at 1.5 MiB
   * is covered, one at 1 GiB is not (and the ring keeps no addresses). */
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);
  addr = ring_addr (1);
  addr.flags = 1u << VHU_VRING_F_LOG;
  addr.log_guest_addr = G_GUINT64_CONSTANT (0x40000000);
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0,
               VHOST_USER_ERROR_INVALID);
  addr.log_guest_addr = RAM_GPA + 0x180000;
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  close (log_fd);
  assert_running (f, 0);
}

/* A ring logs its used ring where the log does not reach: the log is
 * refused until it covers it. */
static void
test_m24_log_too_small_for_ring (Fixture *f, gconstpointer data)
{
  const guint64 used_gpa = G_GUINT64_CONSTANT (0x40000000);
  /* The byte of the last page of the used ring, plus one. */
  const guint64 needed = (used_gpa + 6 + 8 * QUEUE_SIZE - 1) / 4096 / 8 + 1;
  VhuLogMsg log = { .mmap_size = 64, .mmap_offset = 0 };
  VhuVringAddr addr = ring_addr (1);
  int log_fd = new_memfd (needed);

  start_session (f, 1);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);
  addr.flags = 1u << VHU_VRING_F_LOG;
  addr.log_guest_addr = used_gpa;
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);

  refused_status (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, &log_fd, 1,
                  VHOST_USER_ERROR_INVALID);
  log.mmap_size = needed - 1;
  refused_status (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, &log_fd, 1,
                  VHOST_USER_ERROR_INVALID);
  log.mmap_size = needed;
  send_msg (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0, &log, sizeof log, &log_fd, 1);
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0);
  expect_no_error (f);
  close (log_fd);
  assert_running (f, 0);
}

/* Guest memory grows past what the dirty log covers: the device logs what
 * the log covers and writes nothing outside the log. */
static void
test_m24_memory_grows_past_log (Fixture *f, gconstpointer data)
{
  const guint64 high_gpa = G_GUINT64_CONSTANT (0x40000000);
  g_autoptr (VhuTestGuestRam) high = vhu_test_guest_ram_new (RAM_SIZE, high_gpa, RAM2_UVA);
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (high));
  VhuLogMsg log = { .mmap_size = 64, .mmap_offset = 0 };
  VhostUserVirtqElement *elems[2];
  guint8 buf[64];
  guint8 *map;
  VhuMessage reply;
  gboolean high_mapped;
  int log_fd;

  memset (buf, 0x77, sizeof buf);
  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 1,
                                         VHU_TEST_BLK_FEATURES_SEABIOS | VF (LOG_ALL), NULL);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)) & VF (LOG_ALL), !=, 0);
  expect_no_error (f);

  log_fd = new_memfd (4096);
  map = mmap (NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, log_fd, 0);
  g_assert_true (map != MAP_FAILED);
  send_msg (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0, &log, sizeof log, &log_fd, 1);
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_LOG_BASE, 0);

  /* A region at 1 GiB, which 64 bytes of log do not reach: refused, or
   * taken and left unlogged. */
  send_msg (f, VHOST_USER_REQUEST_ADD_MEM_REG, NEED_REPLY, &reg, sizeof reg, &high->fd, 1);
  recv_reply (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof (guint64));
  high_mapped = reply.payload.u64 == 0;
  vhu_message_clear (&reply);
  if (!high_mapped)
    pop_error (f, VHOST_USER_ERROR_INVALID);
  expect_no_error (f);

  /* One buffer in each region, written by the device. */
  make_available (f, 0, 0, BUFFER_GPA, sizeof buf, VRING_DESC_F_WRITE);
  elems[0] = vhu_test_pop (queue (f, 0));
  if (high_mapped)
    {
      make_available (f, 0, 1, high_gpa + 0x1000, sizeof buf, VRING_DESC_F_WRITE);
      elems[1] = vhu_test_pop (queue (f, 0));
    }
  else
    elems[1] = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (elems); i++)
    if (elems[i] != NULL)
      {
        g_assert_cmpuint (vhost_user_virtq_element_write (elems[i], 0, buf, sizeof buf), ==,
                          sizeof buf);
        vhost_user_virtqueue_push (queue (f, 0), elems[i], sizeof buf);
        vhost_user_virtq_element_unref (elems[i]);
      }
  g_assert_cmpuint (used_idx (f, 0), ==, high_mapped ? 2 : 1);
  if (high_mapped)
    g_assert_cmpmem (high->host + 0x1000, sizeof buf, buf, sizeof buf);

  /* The first buffer's page is logged; nothing past the 64 bytes is touched. */
  g_assert_cmphex (map[(BUFFER_GPA / 4096) / 8] & (1u << ((BUFFER_GPA / 4096) % 8)), !=, 0);
  for (guint i = 64; i < 4096; i++)
    g_assert_cmphex (map[i], ==, 0);

  munmap (map, 4096);
  close (log_fd);
  expect_no_error (f);
}

/* ------------------------------------------------------------------------ */
/* M25: feature negotiation                                                 */

static void
test_m25_unoffered_features (Fixture *f, gconstpointer data)
{
  const struct
  {
    guint64 features;
    gint code;
  } bad[] = {
    { f->offered | (G_GUINT64_CONSTANT (1) << 63), VHOST_USER_ERROR_INVALID },
    { f->offered | VF (ACCESS_PLATFORM), VHOST_USER_ERROR_INVALID },
    { f->offered | VF (RING_PACKED), VHOST_USER_ERROR_INVALID },
    { f->offered | 1, VHOST_USER_ERROR_INVALID }, /* a device bit not offered */
    { G_MAXUINT64, VHOST_USER_ERROR_INVALID },
    { f->offered & ~VF (VERSION_1), VHOST_USER_ERROR_UNSUPPORTED },
    { 0, VHOST_USER_ERROR_UNSUPPORTED },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      gboolean need_reply = i % 2 == 0;

      if (i > 0)
        reconnect (f);
      realize (f);
      g_assert_cmphex (vhu_test_frontend_get_offered_features (f->fe), ==, f->offered);

      /* The error reply if asked for, then the connection closed: the
       * negotiation failed. */
      send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, need_reply ? NEED_REPLY : 0,
                bad[i].features);
      if (need_reply)
        expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 1);
      expect_closed (f);
      pop_error (f, bad[i].code);
      expect_error (f, VHOST_USER_ERROR_PROTOCOL);
      g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), ==, 0);
    }
}

static void
test_m25_unoffered_protocol_features (Fixture *f, gconstpointer data)
{
  static const guint bits[] = {
    VHOST_USER_PROTOCOL_FEATURE_NET_MTU,      VHOST_USER_PROTOCOL_FEATURE_RARP,
    VHOST_USER_PROTOCOL_FEATURE_CROSS_ENDIAN, VHOST_USER_PROTOCOL_FEATURE_CRYPTO_SESSION,
    VHOST_USER_PROTOCOL_FEATURE_PAGEFAULT,    VHOST_USER_PROTOCOL_FEATURE_BACKEND_SEND_FD,
    VHOST_USER_PROTOCOL_FEATURE_HOST_NOTIFIER, VHOST_USER_PROTOCOL_FEATURE_INBAND_NOTIFICATIONS,
    VHOST_USER_PROTOCOL_FEATURE_XEN_MMAP,     VHOST_USER_PROTOCOL_FEATURE_SHARED_OBJECT,
    VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE, 20,
    63,
  };

  for (guint i = 0; i < G_N_ELEMENTS (bits); i++)
    {
      guint64 offered;

      if (i > 0)
        reconnect (f);
      g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                       f->offered);
      offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
      g_assert_cmphex (offered & (G_GUINT64_CONSTANT (1) << bits[i]), ==, 0);

      send_u64 (f, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, NEED_REPLY,
                offered | (G_GUINT64_CONSTANT (1) << bits[i]));
      expect_u64_reply (f, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, 1);
      expect_closed (f);
      pop_error (f, VHOST_USER_ERROR_INVALID);
      expect_error (f, VHOST_USER_ERROR_PROTOCOL);
    }
}

static void
test_m25_features_change_while_running (Fixture *f, gconstpointer data)
{
  guint64 acked;
  guint64 changes[3];

  start_session (f, 1);
  acked = vhost_user_device_get_acked_features (dev (f));
  g_assert_cmphex (acked & VF (VERSION_1), !=, 0);
  /* FLUSH (bit 9) is offered but was not acked by SeaBIOS. */
  g_assert_cmphex (acked & (1u << 9), ==, 0);
  changes[0] = acked | (1u << 9);
  changes[1] = acked & ~(G_GUINT64_CONSTANT (1) << 1);
  changes[2] = acked & ~VF (PROTOCOL_FEATURES);

  for (guint i = 0; i < G_N_ELEMENTS (changes); i++)
    {
      send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, NEED_REPLY, changes[i]);
      expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 1);
      expect_error (f, VHOST_USER_ERROR_STATE);
      g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, acked);
      g_assert_cmpuint (vhu_test_device_get_features_negotiated_count (f->device), ==, 0);
      g_assert_true (vhost_user_device_get_connected (dev (f)));
    }

  /* The same features again are fine (QEMU sends them twice), and so is
   * LOG_ALL on and off (live migration). */
  send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, NEED_REPLY, acked);
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 0);
  g_assert_cmphex (f->offered & VF (LOG_ALL), !=, 0);
  send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, NEED_REPLY, acked | VF (LOG_ALL));
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 0);
  send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, NEED_REPLY, acked);
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 0);
  expect_no_error (f);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, acked);
  assert_running (f, 0);

  /* Once the ring is stopped, features may change. */
  vhu_test_frontend_qemu_blk_stop (f->fe, 1);
  send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, NEED_REPLY, changes[0]);
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 0);
  expect_no_error (f);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, changes[0]);
}

/* Nothing negotiated on one connection carries over to the next. */
static void
test_m25_reconnect_forgets_features (Fixture *f, gconstpointer data)
{
  start_session (f, 1);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), !=, 0);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), !=, 0);

  reconnect (f);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, 0);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, 0);
  /* QEMU 7.2 reconnects some devices without negotiating again: before
   * any SET_PROTOCOL_FEATURES, what the device offers may be used... */
  g_assert_cmpuint (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_QUEUE_NUM), ==,
                    N_QUEUES);
  expect_no_error (f);
  /* ... but a front-end that negotiated is held to what it acknowledged:
   * MQ was acknowledged before, not on this connection. */
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES,
                             G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK);
  refused_value (f, VHOST_USER_REQUEST_GET_QUEUE_NUM, NULL, 0, NULL, 0,
                 VHOST_USER_ERROR_UNSUPPORTED);

  /* A different driver this time. */
  vhu_test_frontend_qemu_blk_realize (f->fe);
  vhu_test_frontend_qemu_blk_start_full (f->fe, f->ram, 1, VHU_TEST_BLK_FEATURES_LINUX, NULL);
  expect_no_error (f);
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==,
                   VHU_TEST_BLK_FEATURES_LINUX & f->offered);
  vhu_test_device_clear_records (f->device);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M26: requests that need a protocol feature that was not negotiated       */

static void
test_m26_not_negotiated (Fixture *f, gconstpointer data)
{
  const guint64 library_features = PF (MQ) | PF (LOG_SHMFD) | PF (REPLY_ACK) | PF (BACKEND_REQ)
                                   | PF (CONFIG) | PF (INFLIGHT_SHMFD) | PF (RESET_DEVICE)
                                   | PF (CONFIGURE_MEM_SLOTS) | PF (STATUS);
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (f->ram));
  VhuLogMsg log = { .mmap_size = 4096, .mmap_offset = 0 };
  VhuInflightMsg inflight = inflight_msg (0, 0, N_QUEUES, QUEUE_SIZE);
  VhuConfigMsg config = { .offset = 0, .size = 8, .flags = 0 };
  VhuSharedMsg shared = { { 0 } };
  VhuDeviceStateMsg state = { .direction = VHOST_USER_TRANSFER_DIRECTION_SAVE, .phase = 0 };
  guint64 status = VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE;
  guint64 mtu = 1500;
  guint64 mac = G_GUINT64_CONSTANT (0x563412005452);
  VhuTestFrontend *peer;
  guint64 offered;
  int other;
  int memfd;

  g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                   f->offered);
  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  g_assert_cmphex (offered & library_features, ==, library_features);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_FEATURES,
                             VF (VERSION_1) | VF (PROTOCOL_FEATURES));
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, 0);
  /* NEED_REPLY is answered even without REPLY_ACK: a front-end that sets
   * it waits for the answer. */
  accepted (f, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL, 0);
  vhu_test_device_clear_records (f->device);

  memfd = new_memfd (64 * 1024);
  mark_fds (f);

  refused_value (f, VHOST_USER_REQUEST_GET_QUEUE_NUM, NULL, 0, NULL, 0,
                 VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_SET_LOG_BASE, &log, sizeof log, &memfd, 1,
               VHOST_USER_ERROR_UNSUPPORTED);

  /* The back-end channel's socket is closed, not kept. */
  peer = new_peer (&other);
  refused_ack (f, VHOST_USER_REQUEST_SET_BACKEND_REQ_FD, NULL, 0, &other, 1,
               VHOST_USER_ERROR_UNSUPPORTED);
  close (other);
  assert_peer_closed (peer);
  vhu_test_frontend_free (peer);

  refused_value (f, VHOST_USER_REQUEST_GET_CONFIG, &config, VHU_CONFIG_HEADER_SIZE + config.size,
                 NULL, 0, VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_SET_CONFIG, &config, VHU_CONFIG_HEADER_SIZE + config.size,
               NULL, 0, VHOST_USER_ERROR_UNSUPPORTED);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &inflight, sizeof inflight, NULL, 0,
                 VHOST_USER_ERROR_UNSUPPORTED);
  inflight.mmap_size = 64 * 1024;
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &inflight, sizeof inflight, &memfd, 1,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_RESET_DEVICE, NULL, 0, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_value (f, VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS, NULL, 0, NULL, 0,
                 VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_REM_MEM_REG, &reg, sizeof reg, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_SET_STATUS, &status, sizeof status, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_value (f, VHOST_USER_REQUEST_GET_STATUS, NULL, 0, NULL, 0,
                 VHOST_USER_ERROR_UNSUPPORTED);

  /* Offered only by device types that implement them; this one does not. */
  refused_ack (f, VHOST_USER_REQUEST_NET_SET_MTU, &mtu, sizeof mtu, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_SEND_RARP, &mac, sizeof mac, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_GET_SHARED_OBJECT, &shared, sizeof shared, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_SET_DEVICE_STATE_FD, &state, sizeof state, &memfd, 1,
                  VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_CHECK_DEVICE_STATE, NULL, 0, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);

  close (memfd);
  assert_fds (f, -1);
  g_assert_cmphex (vhost_user_device_get_acked_protocol_features (dev (f)), ==, 0);
  g_assert_cmpuint (vhost_user_device_get_status (dev (f)), ==, 0);
  g_assert_cmpuint (vhu_test_device_get_set_config_count (f->device), ==, 0);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 0);
}

/* Requests of features the library never offers, whatever was negotiated:
 * IOTLB (ACCESS_PLATFORM), CROSS_ENDIAN, CRYPTO_SESSION, in-band
 * notifications, vhost-user-gpu. */
static void
test_m26_never_offered (Fixture *f, gconstpointer data)
{
  VhuIotlbMsg iotlb = { .iova = 0, .size = 0x1000, .uaddr = RAM_UVA,
                        .perm = VHU_IOTLB_ACCESS_RW, .type = VHU_IOTLB_UPDATE };
  VhuVringState endian = { .index = 0, .num = 1 };
  VhuVringState kick = { .index = 0, .num = 0 };
  guint8 session[600];
  guint64 session_id = 1;
  VhuMessage reply;
  VhuTestFrontend *peer;
  gint64 id;
  int other;

  start_session (f, 1);
  mark_fds (f);

  refused_status (f, VHOST_USER_REQUEST_IOTLB_MSG, &iotlb, sizeof iotlb, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ENDIAN, &endian, sizeof endian, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_VRING_KICK, &kick, sizeof kick, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);

  /* CREATE_CRYPTO_SESSION: the reply echoes the request with session id -1. */
  memset (session, 0x5a, sizeof session);
  send_msg (f, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, 0, session, sizeof session, NULL, 0);
  recv_reply (f, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof session);
  g_assert_cmpuint (reply.n_fds, ==, 0);
  memcpy (&id, reply.payload.bytes, sizeof id);
  g_assert_cmpint (id, ==, -1);
  memcpy (&id, reply.payload.bytes + sizeof session - sizeof id, sizeof id);
  g_assert_cmpint (id, ==, -1);
  vhu_message_clear (&reply);
  expect_error (f, VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_CLOSE_CRYPTO_SESSION, &session_id, sizeof session_id, NULL,
               0, VHOST_USER_ERROR_UNSUPPORTED);

  peer = new_peer (&other);
  refused_ack (f, VHOST_USER_REQUEST_GPU_SET_SOCKET, NULL, 0, &other, 1,
               VHOST_USER_ERROR_UNSUPPORTED);
  close (other);
  assert_peer_closed (peer);
  vhu_test_frontend_free (peer);

  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* M27: SET_INFLIGHT_FD values                                              */

static void
test_m27_inflight_values (Fixture *f, gconstpointer data)
{
  gsize region = vhu_inflight_queue_region_size (QUEUE_SIZE, FALSE);
  VhuInflightQueueSplit *q0;
  VhuInflightQueueSplit *q1;
  VhuInflightMsg msg;
  guint64 size;
  guint8 *map;
  int fd;

  realize (f);
  fd = get_inflight_fd (f, N_QUEUES, QUEUE_SIZE, &size);
  g_assert_cmpuint (size, ==, N_QUEUES * region);
  map = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  g_assert_true (map != MAP_FAILED);
  q0 = (VhuInflightQueueSplit *) map;
  q1 = (VhuInflightQueueSplit *) (map + region);
  g_assert_cmpuint (q0->version, ==, VHU_INFLIGHT_VERSION);
  g_assert_cmpuint (q0->desc_num, ==, QUEUE_SIZE);
  mark_fds (f);

  {
    const struct
    {
      guint64 mmap_size, mmap_offset;
      guint16 num_queues, queue_size;
    } bad[] = {
      { size, 0, N_QUEUES + 1, QUEUE_SIZE },
      { size, 0, 0, QUEUE_SIZE },
      { size, 0, N_QUEUES, 0 },
      { size, 0, N_QUEUES, 2048 },
      { size, 0, N_QUEUES, 65535 },
      { size, 0, N_QUEUES, 100 },
      { size - 1, 0, N_QUEUES, QUEUE_SIZE },
      { 0, 0, N_QUEUES, QUEUE_SIZE },
      { size, G_GUINT64_CONSTANT (0xfffffffffffff000), N_QUEUES, QUEUE_SIZE },
      { G_MAXUINT64, 0, N_QUEUES, QUEUE_SIZE },
      { size, 4096, N_QUEUES, QUEUE_SIZE }, /* past the end of the file */
    };

    for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
      {
        msg = inflight_msg (bad[i].mmap_size, bad[i].mmap_offset, bad[i].num_queues,
                            bad[i].queue_size);
        refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, &fd, 1,
                     VHOST_USER_ERROR_INVALID);
      }
  }

  /* Headers the device does not know, or that do not match: refused, and
   * the buffer left as it was. */
  msg = inflight_msg (size, 0, N_QUEUES, QUEUE_SIZE);
  q0->version = 2;
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, &fd, 1,
               VHOST_USER_ERROR_INVALID);
  g_assert_cmpuint (q0->version, ==, 2);
  q0->version = VHU_INFLIGHT_VERSION;
  q0->desc_num = 64;
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, &fd, 1,
               VHOST_USER_ERROR_INVALID);
  g_assert_cmpuint (q0->desc_num, ==, 64);
  q0->desc_num = QUEUE_SIZE;
  q1->desc_num = G_MAXUINT16;
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, &fd, 1,
               VHOST_USER_ERROR_INVALID);
  q1->desc_num = QUEUE_SIZE;

  /* Payload and fd count. */
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, 16, &fd, 1,
               VHOST_USER_ERROR_PROTOCOL);
  refused_ack (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);

  /* GET_INFLIGHT_FD for a geometry the device does not have: an empty
   * reply, no buffer. */
  msg = inflight_msg (0, 0, N_QUEUES + 1, QUEUE_SIZE);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &msg, sizeof msg, NULL, 0,
                 VHOST_USER_ERROR_INVALID);
  msg = inflight_msg (0, 0, N_QUEUES, 4096);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &msg, sizeof msg, NULL, 0,
                 VHOST_USER_ERROR_INVALID);
  msg = inflight_msg (0, 0, 0, QUEUE_SIZE);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &msg, sizeof msg, NULL, 0,
                 VHOST_USER_ERROR_INVALID);
  msg = inflight_msg (0, 0, N_QUEUES, 100);
  refused_value (f, VHOST_USER_REQUEST_GET_INFLIGHT_FD, &msg, sizeof msg, NULL, 0,
                 VHOST_USER_ERROR_INVALID);

  assert_fds (f, 0);

  /* The buffer as it should be is taken. */
  msg = inflight_msg (size, 0, N_QUEUES, QUEUE_SIZE);
  accepted (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, &fd, 1);
  munmap (map, size);
  close (fd);
}

/* An inflight buffer for rings of 256 entries, rings of 128: the buffer
 * does not describe these rings, and they must not start with it. */
static void
test_m27_inflight_queue_size_mismatch (Fixture *f, gconstpointer data)
{
  VhuInflightMsg msg;
  guint64 size;
  int fd;

  realize (f);
  fd = get_inflight_fd (f, N_QUEUES, 2 * QUEUE_SIZE, &size);
  msg = inflight_msg (size, 0, N_QUEUES, 2 * QUEUE_SIZE);
  accepted (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &msg, sizeof msg, &fd, 1);
  close (fd);

  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  vhu_test_drain_default_context ();
  /* Refused at SET_VRING_NUM or when the ring would start. */
  g_assert_cmpuint (f->errors->len, >=, 1);
  while (f->errors->len > 0)
    {
      GError *error = f->errors->pdata[0];

      g_test_message ("protocol-error: %s", error->message);
      g_assert_true (g_error_matches (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID)
                     || g_error_matches (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE));
      g_ptr_array_remove_index (f->errors, 0);
    }
  g_assert_false (started (f, 0));
}

/* ------------------------------------------------------------------------ */
/* M28: inflight buffer contents                                            */

static void
test_m28_corrupted_inflight (Fixture *f, gconstpointer data)
{
  gsize region = vhu_inflight_queue_region_size (QUEUE_SIZE, FALSE);
  VhuInflightMsg msg;
  VhuMessage reply;
  guint64 size;
  guint8 *map;
  int fd;

  realize (f);
  fd = get_inflight_fd (f, N_QUEUES, QUEUE_SIZE, &size);
  map = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  g_assert_true (map != MAP_FAILED);

  /* Valid headers; everything else garbage: in-flight flags on every
   * entry, next indices out of range, impossible batch head and used index. */
  for (guint q = 0; q < N_QUEUES; q++)
    {
      VhuInflightQueueSplit *h = (VhuInflightQueueSplit *) (map + q * region);
      gsize tail = sizeof *h + QUEUE_SIZE * sizeof (VhuInflightDescSplit);

      h->features = G_MAXUINT64;
      h->last_batch_head = G_MAXUINT16;
      h->used_idx = 0x8000 + q;
      for (guint i = 0; i < QUEUE_SIZE; i++)
        {
          h->desc[i].inflight = 0xff;
          memset (h->desc[i].padding, 0xff, sizeof h->desc[i].padding);
          h->desc[i].next = G_MAXUINT16;
          h->desc[i].counter = G_MAXUINT64 - i;
        }
      memset (map + q * region + tail, 0xff, region - tail);
    }

  msg = inflight_msg (size, 0, N_QUEUES, QUEUE_SIZE);
  send_msg (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, NEED_REPLY, &msg, sizeof msg, &fd, 1);
  recv_reply (f, VHOST_USER_REQUEST_SET_INFLIGHT_FD, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof (guint64));
  /* Taken (the entries are only trusted after checking, when used) or refused. */
  if (reply.payload.u64 != 0)
    pop_error (f, VHOST_USER_ERROR_INVALID);
  vhu_message_clear (&reply);
  close (fd);
  expect_no_error (f);

  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, N_QUEUES);
  vhu_test_drain_default_context ();
  /* Rings the buffer would break are marked broken; none crashes. */
  while (f->errors->len > 0)
    {
      GError *error = f->errors->pdata[0];

      g_test_message ("protocol-error: %s", error->message);
      g_assert_true (error->domain == VHOST_USER_ERROR);
      g_ptr_array_remove_index (f->errors, 0);
    }
  for (guint q = 0; q < N_QUEUES; q++)
    {
      const VhuTestRing *ring = vhu_test_frontend_get_ring (f->fe, q);
      guint16 used_idx;

      if (started (f, q))
        {
          guint kicked = n_kicked (f, q);

          vhu_test_frontend_kick (f->fe, q);
          vhu_test_drain_default_context ();
          g_assert_cmpuint (n_kicked (f, q), ==, kicked + 1);
        }
      else if (q == 0)
        assert_err_signalled (f, q);
      /* The driver made nothing available: nothing may have been used, not
       * even a head made up from the buffer. */
      memcpy (&used_idx, ring->used + 2, sizeof used_idx);
      g_assert_cmpuint (used_idx, ==, 0);
    }
  /* And the rings stop at the base the front-end gave. */
  vhu_test_frontend_qemu_blk_stop (f->fe, N_QUEUES);
  vhu_test_drain_default_context ();
  while (f->errors->len > 0)
    g_ptr_array_remove_index (f->errors, 0);
  munmap (map, size);
}

/* ------------------------------------------------------------------------ */
/* M29: the config space                                                    */

static void
test_m29_config (Fixture *f, gconstpointer data)
{
  const struct
  {
    guint32 offset, size;
  } bad_get[] = {
    { 0, 0 },
    { 250, 10 },
    { 256, 1 },
    { G_MAXUINT32, 1 },
    { G_MAXUINT32 - 3, 8 },
    { 40, 30 }, /* inside the 256 bytes a message can carry, past this device's 60 */
    { VHU_TEST_DEVICE_CONFIG_SIZE, 1 },
  };
  const struct
  {
    guint32 offset, size, flags;
  } bad_set[] = {
    { VHU_TEST_DEVICE_CONFIG_WRITEBACK, 0, VHOST_USER_CONFIG_FLAGS_WRITABLE },
    { 250, 10, VHOST_USER_CONFIG_FLAGS_WRITABLE },
    { G_MAXUINT32, 1, VHOST_USER_CONFIG_FLAGS_WRITABLE },
    { VHU_TEST_DEVICE_CONFIG_WRITEBACK, 1, 2 },
    { VHU_TEST_DEVICE_CONFIG_WRITEBACK, 1, G_MAXUINT32 },
    { VHU_TEST_DEVICE_CONFIG_CAPACITY, 8, VHOST_USER_CONFIG_FLAGS_WRITABLE }, /* read-only */
    { 50, 20, VHOST_USER_CONFIG_FLAGS_MIGRATION },
  };
  guint8 before[VHU_TEST_DEVICE_CONFIG_SIZE];
  guint8 out[VHU_TEST_DEVICE_CONFIG_SIZE];
  VhuConfigMsg config;

  realize (f);
  memcpy (before, vhu_test_device_get_config (f->device), sizeof before);
  mark_fds (f);

  for (guint i = 0; i < G_N_ELEMENTS (bad_get); i++)
    {
      config = (VhuConfigMsg){ .offset = bad_get[i].offset, .size = bad_get[i].size };
      refused_value (f, VHOST_USER_REQUEST_GET_CONFIG, &config,
                     VHU_CONFIG_HEADER_SIZE + bad_get[i].size, NULL, 0, VHOST_USER_ERROR_INVALID);
    }
  /* Sizes the payload does not match, or beyond what a message can carry. */
  config = (VhuConfigMsg){ .offset = 0, .size = 300 };
  refused_value (f, VHOST_USER_REQUEST_GET_CONFIG, &config, sizeof config, NULL, 0,
                 VHOST_USER_ERROR_PROTOCOL);
  config = (VhuConfigMsg){ .offset = 0, .size = 10 };
  refused_value (f, VHOST_USER_REQUEST_GET_CONFIG, &config, VHU_CONFIG_HEADER_SIZE + 20, NULL, 0,
                 VHOST_USER_ERROR_PROTOCOL);
  refused_value (f, VHOST_USER_REQUEST_GET_CONFIG, &config, 8, NULL, 0,
                 VHOST_USER_ERROR_PROTOCOL);

  for (guint i = 0; i < G_N_ELEMENTS (bad_set); i++)
    {
      config = (VhuConfigMsg){ .offset = bad_set[i].offset,
                               .size = bad_set[i].size,
                               .flags = bad_set[i].flags };
      memset (config.region, 0x5a, sizeof config.region);
      refused_ack (f, VHOST_USER_REQUEST_SET_CONFIG, &config,
                   VHU_CONFIG_HEADER_SIZE + bad_set[i].size, NULL, 0, VHOST_USER_ERROR_INVALID);
    }
  config = (VhuConfigMsg){ .offset = VHU_TEST_DEVICE_CONFIG_WRITEBACK, .size = 1 };
  refused_ack (f, VHOST_USER_REQUEST_SET_CONFIG, &config, VHU_CONFIG_HEADER_SIZE + 4, NULL, 0,
               VHOST_USER_ERROR_PROTOCOL);

  /* Nothing was written. */
  g_assert_cmpmem (vhu_test_device_get_config (f->device), sizeof before, before, sizeof before);
  g_assert_cmpuint (vhu_test_device_get_set_config_count (f->device), ==, 0);
  assert_fds (f, 0);

  /* The config space still reads and writes. */
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, sizeof out, out), ==,
                    VHU_CONFIG_HEADER_SIZE + sizeof out);
  g_assert_cmpmem (out, sizeof out, before, sizeof before);
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, VHU_TEST_DEVICE_CONFIG_WRITEBACK,
                                                  (const guint8 *) "\1", 1,
                                                  VHOST_USER_CONFIG_FLAGS_WRITABLE),
                    ==, 0);
  g_assert_cmpuint (vhu_test_device_get_set_config_count (f->device), ==, 1);
  expect_no_error (f);
}

/* ------------------------------------------------------------------------ */
/* M30: the back-end channel                                                */

typedef struct
{
  gboolean done;
  GError *error;
} Notified;

static void
on_notified (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Notified *n = user_data;

  g_assert_false (n->done);
  if (!vhost_user_device_notify_config_changed_finish (VHOST_USER_DEVICE (source), result,
                                                       &n->error))
    g_assert_nonnull (n->error);
  n->done = TRUE;
}

static void
wait_notified (Notified *n, guint timeout_ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;

  while (!n->done)
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
    }
}

/* A new back-end channel; returns the test's end of it. */
static VhuTestFrontend *
new_backend_channel (Fixture *f)
{
  VhuTestFrontend *peer;
  int other;

  peer = new_peer (&other);
  accepted (f, VHOST_USER_REQUEST_SET_BACKEND_REQ_FD, NULL, 0, &other, 1);
  close (other);
  return peer;
}

/* The device tells the front-end its config changed, and waits for the
 * answer (REPLY_ACK is negotiated). */
static void
notify (Fixture *f, VhuTestFrontend *peer, Notified *n)
{
  VhuMessage request;

  g_clear_error (&n->error);
  n->done = FALSE;
  vhost_user_device_notify_config_changed_async (dev (f), NULL, on_notified, n);
  g_assert_true (vhu_test_frontend_recv (peer, &request, VHU_TEST_TIMEOUT_MS));
  g_assert_cmpuint (request.hdr.request, ==, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG);
  g_assert_cmphex (request.hdr.flags, ==, VHU_VERSION | NEED_REPLY);
  g_assert_cmpuint (request.hdr.size, ==, 0);
  g_assert_cmpuint (request.n_fds, ==, 0);
  vhu_message_clear (&request);
  vhu_test_drain_default_context ();
  g_assert_false (n->done);
}

static void
answer (VhuTestFrontend *peer,
        guint32 request,
        guint32 flags,
        const void *payload,
        guint32 size,
        const int *fds,
        guint n_fds)
{
  g_assert_true (vhu_test_frontend_send (peer, request, flags, payload, size, fds, n_fds));
}

static void
test_m30_backend_no_reply (Fixture *f, gconstpointer data)
{
  g_autoptr (VhuTestFrontend) peer = NULL;
  Notified n = { FALSE, NULL };
  gint64 start;

  realize (f);
  peer = new_backend_channel (f);
  notify (f, peer, &n);
  start = g_get_monotonic_time ();

  /* The device serves the front-end while it waits. */
  for (guint i = 0; i < 10; i++)
    g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                     f->offered);
  g_assert_false (n.done);

  /* The answer never comes: the request fails after the device's timeout
   * (5 s), and the channel is dropped (a late answer could not be matched). */
  wait_notified (&n, 20000);
  g_test_message ("timed out after %" G_GINT64_FORMAT " ms",
                  (g_get_monotonic_time () - start) / 1000);
  g_assert_error (n.error, VHOST_USER_ERROR, VHOST_USER_ERROR_TIMED_OUT);
  assert_peer_closed (peer);
  g_clear_pointer (&peer, vhu_test_frontend_free);

  /* Further requests fail at once instead of waiting. */
  g_clear_error (&n.error);
  n.done = FALSE;
  vhost_user_device_notify_config_changed_async (dev (f), NULL, on_notified, &n);
  wait_notified (&n, 1000);
  g_assert_nonnull (n.error);
  g_assert_true (n.error->domain == VHOST_USER_ERROR);
  g_clear_error (&n.error);

  /* A new channel works. */
  peer = new_backend_channel (f);
  notify (f, peer, &n);
  answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, VHU_VERSION | VHU_FLAG_REPLY,
          &(guint64){ 0 }, sizeof (guint64), NULL, 0);
  wait_notified (&n, VHU_TEST_TIMEOUT_MS);
  g_assert_no_error (n.error);
  expect_no_error (f);
}

static void
test_m30_backend_bad_reply (Fixture *f, gconstpointer data)
{
  const guint64 zero = 0;
  const guint32 reply_flags = VHU_VERSION | VHU_FLAG_REPLY;
  g_autoptr (VhuTestFrontend) peer = NULL;
  Notified n = { FALSE, NULL };
  int fds[2];

  realize (f);
  mark_fds (f);

  for (guint i = 0; i < 6; i++)
    {
      peer = new_backend_channel (f);
      notify (f, peer, &n);
      switch (i)
        {
        case 0: /* the answer to another request */
          answer (peer, VHOST_USER_BACKEND_REQUEST_VRING_HOST_NOTIFIER_MSG, reply_flags, &zero,
                  sizeof zero, NULL, 0);
          break;
        case 1: /* a payload that is not a u64 */
          answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags, &zero, 4,
                  NULL, 0);
          break;
        case 2: /* fds with it */
          new_eventfds (fds, 2);
          answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags, &zero,
                  sizeof zero, fds, 2);
          close_fds (fds, 2);
          break;
        case 3: /* a request, not an answer */
          answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, VHU_VERSION, &zero,
                  sizeof zero, NULL, 0);
          break;
        case 4: /* an answer that wants an answer */
          answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags | NEED_REPLY,
                  &zero, sizeof zero, NULL, 0);
          break;
        case 5: /* an answer announcing more than any payload */
          {
            VhuHeader hdr = { VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags,
                              G_MAXUINT32 };

            g_assert_true (vhu_test_frontend_send_raw (peer, &hdr, sizeof hdr, NULL, 0));
          }
          break;
        default:
          g_assert_not_reached ();
        }
      wait_notified (&n, VHU_TEST_TIMEOUT_MS);
      g_test_message ("bad answer %u: %s", i, n.error != NULL ? n.error->message : "(none)");
      g_assert_error (n.error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
      /* The channel can no longer be trusted: closed. */
      assert_peer_closed (peer);
      g_clear_pointer (&peer, vhu_test_frontend_free);
      /* The front-end is still served. */
      g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                       f->offered);
    }
  g_clear_error (&n.error);
  assert_fds (f, -1); /* the channel realize set up was replaced and not renewed */

  /* A refusal is an answer: the request fails, the channel stays. */
  peer = new_backend_channel (f);
  notify (f, peer, &n);
  answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags, &(guint64){ 1 },
          sizeof (guint64), NULL, 0);
  wait_notified (&n, VHU_TEST_TIMEOUT_MS);
  g_assert_error (n.error, VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED);
  notify (f, peer, &n);
  answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags, &zero, sizeof zero,
          NULL, 0);
  wait_notified (&n, VHU_TEST_TIMEOUT_MS);
  g_assert_no_error (n.error);

  /* An answer nobody asked for: the channel is dropped. */
  answer (peer, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, reply_flags, &zero, sizeof zero,
          NULL, 0);
  assert_peer_closed (peer);
  g_clear_pointer (&peer, vhu_test_frontend_free);
  expect_no_error (f);
}

/* ------------------------------------------------------------------------ */
/* M31: IOTLB (ACCESS_PLATFORM is never offered)                            */

static void
test_m31_iotlb (Fixture *f, gconstpointer data)
{
  const struct
  {
    VhuIotlbMsg msg;
    gint code;
  } bad[] = {
    /* iova + size overflows */
    { { G_GUINT64_CONSTANT (0xfffffffffffff000), 0x2000, RAM_UVA, VHU_IOTLB_ACCESS_RW,
        VHU_IOTLB_UPDATE, { 0 } }, VHOST_USER_ERROR_UNSUPPORTED },
    /* uaddr outside the memory table */
    { { 0, 0x1000, 0x1000, VHU_IOTLB_ACCESS_RW, VHU_IOTLB_UPDATE, { 0 } },
      VHOST_USER_ERROR_UNSUPPORTED },
    { { 0, G_MAXUINT64, RAM_UVA, VHU_IOTLB_ACCESS_RO, VHU_IOTLB_UPDATE, { 0 } },
      VHOST_USER_ERROR_UNSUPPORTED },
    /* bad permissions and types */
    { { 0, 0x1000, RAM_UVA, 4, VHU_IOTLB_UPDATE, { 0 } }, VHOST_USER_ERROR_INVALID },
    { { 0, 0x1000, RAM_UVA, 0xff, VHU_IOTLB_UPDATE, { 0 } }, VHOST_USER_ERROR_INVALID },
    { { 0, 0x1000, RAM_UVA, VHU_IOTLB_ACCESS_RW, 0, { 0 } }, VHOST_USER_ERROR_INVALID },
    { { 0, 0x1000, RAM_UVA, VHU_IOTLB_ACCESS_RW, 5, { 0 } }, VHOST_USER_ERROR_INVALID },
    { { 0, 0x1000, RAM_UVA, VHU_IOTLB_ACCESS_RW, 0xff, { 0 } }, VHOST_USER_ERROR_INVALID },
    /* messages that go the other way */
    { { 0, 0x1000, 0, VHU_IOTLB_ACCESS_RW, VHU_IOTLB_MISS, { 0 } },
      VHOST_USER_ERROR_UNSUPPORTED },
    { { 0, 0x1000, 0, VHU_IOTLB_ACCESS_RW, VHU_IOTLB_ACCESS_FAIL, { 0 } },
      VHOST_USER_ERROR_UNSUPPORTED },
  };
  const guint storm = 1000;

  start_session (f, 1);
  g_assert_cmphex (vhu_test_frontend_get_offered_features (f->fe) & VF (ACCESS_PLATFORM), ==, 0);
  mark_fds (f);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    refused_status (f, VHOST_USER_REQUEST_IOTLB_MSG, &bad[i].msg, sizeof bad[i].msg, NULL, 0,
                    bad[i].code);

  /* An invalidation storm, the answers read afterwards. */
  for (guint i = 0; i < storm; i++)
    {
      VhuIotlbMsg msg = { .iova = (guint64) i * 0x1000, .size = 0x1000,
                          .type = VHU_IOTLB_INVALIDATE };

      send_msg (f, VHOST_USER_REQUEST_IOTLB_MSG, 0, &msg, sizeof msg, NULL, 0);
    }
  for (guint i = 0; i < storm; i++)
    expect_u64_reply (f, VHOST_USER_REQUEST_IOTLB_MSG, 1);
  expect_errors (f, storm, VHOST_USER_ERROR_UNSUPPORTED);
  expect_silence (f);

  assert_fds (f, 0);
  assert_running (f, 0);
}

static void
test_m31_access_platform (Fixture *f, gconstpointer data)
{
  realize (f);
  send_u64 (f, VHOST_USER_REQUEST_SET_FEATURES, NEED_REPLY,
            f->offered | VF (ACCESS_PLATFORM));
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_FEATURES, 1);
  expect_closed (f);
  pop_error (f, VHOST_USER_ERROR_INVALID);
  expect_error (f, VHOST_USER_ERROR_PROTOCOL);
}

/* ------------------------------------------------------------------------ */
/* M32: postcopy messages (PAGEFAULT is never offered)                      */

static void
test_m32_postcopy (Fixture *f, gconstpointer data)
{
  guint64 acked;

  start_session (f, 1);
  g_assert_cmphex (vhu_test_frontend_get_offered_protocol_features (f->fe) & PF (PAGEFAULT), ==,
                   0);
  mark_fds (f);

  /* Out of order, and then in order: refused either way (no userfaultfd
   * comes back with ADVISE). */
  refused_ack (f, VHOST_USER_REQUEST_POSTCOPY_LISTEN, NULL, 0, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_POSTCOPY_END, NULL, 0, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_POSTCOPY_ADVISE, NULL, 0, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);
  refused_ack (f, VHOST_USER_REQUEST_POSTCOPY_LISTEN, NULL, 0, NULL, 0,
               VHOST_USER_ERROR_UNSUPPORTED);
  refused_silently (f, VHOST_USER_REQUEST_POSTCOPY_LISTEN, NULL, 0, NULL, 0,
                    VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_POSTCOPY_END, NULL, 0, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);
  refused_status (f, VHOST_USER_REQUEST_POSTCOPY_END, NULL, 0, NULL, 0,
                  VHOST_USER_ERROR_UNSUPPORTED);
  assert_fds (f, 0);
  assert_running (f, 0);

  /* PAGEFAULT cannot be negotiated. */
  acked = vhu_test_frontend_get_acked_protocol_features (f->fe);
  send_u64 (f, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, NEED_REPLY, acked | PF (PAGEFAULT));
  expect_u64_reply (f, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, 1);
  expect_closed (f);
  pop_error (f, VHOST_USER_ERROR_INVALID);
  expect_error (f, VHOST_USER_ERROR_PROTOCOL);
}

/* ------------------------------------------------------------------------ */
/* M33: message and fd floods                                               */

static void
test_m33_flood (Fixture *f, gconstpointer data)
{
  VhuMemTableMsg table = { .nregions = VHU_MEM_TABLE_MAX_REGIONS };
  int memfds[VHU_MEM_TABLE_MAX_REGIONS];
  VhuVringState enable = { .index = 0, .num = 1 };
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);

  start_session (f, 1);
  mark_fds (f);

  /* 2000 well-formed messages in a burst, the replies read afterwards. */
  for (guint i = 0; i < 1000; i++)
    {
      send_msg (f, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, &enable, sizeof enable, NULL, 0);
      send_msg (f, VHOST_USER_REQUEST_GET_FEATURES, 0, NULL, 0, NULL, 0);
    }
  for (guint i = 0; i < 1000; i++)
    expect_u64_reply (f, VHOST_USER_REQUEST_GET_FEATURES, f->offered);
  expect_silence (f);
  expect_no_error (f);

  /* 200 messages with eight fds each: 100 refused, 100 memory tables. */
  table.regions[0] = vhu_test_guest_ram_desc (f->ram);
  memfds[0] = f->ram->fd;
  for (guint j = 1; j < VHU_MEM_TABLE_MAX_REGIONS; j++)
    {
      memfds[j] = new_memfd (0x10000);
      table.regions[j] = region_desc (RAM2_GPA + (j - 1) * 0x100000, 0x10000,
                                      RAM2_UVA + (j - 1) * 0x100000, 0);
    }
  for (guint i = 0; i < 100; i++)
    {
      int fds[VHU_MAX_FDS];

      new_eventfds (fds, VHU_MAX_FDS);
      send_msg (f, VHOST_USER_REQUEST_SET_OWNER, 0, NULL, 0, fds, VHU_MAX_FDS);
      close_fds (fds, VHU_MAX_FDS);
      send_msg (f, VHOST_USER_REQUEST_SET_MEM_TABLE, 0, &table,
                mem_table_size (VHU_MEM_TABLE_MAX_REGIONS), memfds, VHU_MEM_TABLE_MAX_REGIONS);
    }
  vhu_test_drain_default_context ();
  expect_silence (f);
  expect_errors (f, 100, VHOST_USER_ERROR_PROTOCOL);
  close_fds (memfds + 1, VHU_MEM_TABLE_MAX_REGIONS - 1);

  /* Only the last table is held: eight regions instead of one. */
  assert_fds (f, VHU_MEM_TABLE_MAX_REGIONS - 1);
  g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                   f->offered);
  assert_running (f, 0);
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  expect_no_error (f);
  assert_fds (f, 0);
  assert_running (f, 0);
}

/* ------------------------------------------------------------------------ */
/* L1 and L2: kicks and ring start before the ring is set up                */

static void
test_l1_kick_before_setup (Fixture *f, gconstpointer data)
{
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (f->ram));
  VhuVringAddr addr = ring_addr (0);
  guint64 index = 0;
  int kick = vhu_test_new_eventfd ();

  realize (f);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 0, QUEUE_SIZE, 0);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, 0, 0, 0);
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick, 1);

  /* No addresses, no memory: kicks are ignored, quietly. */
  assert_not_running (f, 0, kick);
  assert_not_running (f, 0, kick);
  expect_no_error (f);

  /* Addresses, still no memory. */
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  assert_not_running (f, 0, kick);
  expect_no_error (f);

  /* Memory: the ring starts, and the kick fd counts as a kick, so nothing
   * the driver made available meanwhile is left waiting. */
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1);
  g_assert_true (started (f, 0));
  g_assert_cmpuint (n_started (f, 0), ==, 1);
  g_assert_cmpuint (n_kicked (f, 0), ==, 1);
  g_assert_cmpint (eventfd_write (kick, 1), ==, 0);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (n_kicked (f, 0), ==, 2);
  close (kick);
}

static void
test_l2_kick_fd_first (Fixture *f, gconstpointer data)
{
  VhuMemRegMsg reg = mem_reg (vhu_test_guest_ram_desc (f->ram));
  VhuVringAddr addr;
  guint64 index;
  int kick[N_QUEUES];

  realize (f);
  accepted (f, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &f->ram->fd, 1);

  /* Ring 0: kick fd, size, base, and only then addresses. */
  index = 0;
  kick[0] = vhu_test_new_eventfd ();
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick[0], 1);
  assert_not_running (f, 0, kick[0]);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 0, QUEUE_SIZE, 0);
  assert_not_running (f, 0, kick[0]);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_BASE, 0, 0, 0);
  assert_not_running (f, 0, kick[0]);
  addr = ring_addr (0);
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  g_assert_true (started (f, 0));
  g_assert_cmpuint (n_started (f, 0), ==, 1);

  /* Ring 1: addresses, kick fd, and the size last. */
  addr = ring_addr (1);
  accepted (f, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  index = 1;
  kick[1] = vhu_test_new_eventfd ();
  accepted (f, VHOST_USER_REQUEST_SET_VRING_KICK, &index, sizeof index, &kick[1], 1);
  assert_not_running (f, 1, kick[1]);
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_NUM, 1, QUEUE_SIZE, 0);
  g_assert_true (started (f, 1));
  g_assert_cmpuint (n_started (f, 1), ==, 1);
  expect_no_error (f);
  close_fds (kick, N_QUEUES);
}

/* Whether a started ring is enabled depends on PROTOCOL_FEATURES. */
static void
test_l2_enable_semantics (Fixture *f, gconstpointer data)
{
  VhuMemRegionDesc desc = vhu_test_guest_ram_desc (f->ram);

  /* With it, a ring starts disabled, until SET_VRING_ENABLE. */
  g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                   f->offered);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_FEATURES,
                             VF (VERSION_1) | VF (PROTOCOL_FEATURES));
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, QUEUE_SIZE, 0);
  vhu_test_drain_default_context ();
  g_assert_true (started (f, 0));
  g_assert_false (vhost_user_virtqueue_get_enabled (queue (f, 0)));
  vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_ENABLE, 0, 1, 0);
  g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, 0)));
  /* Neither 0 nor 1. */
  {
    VhuVringState state = { .index = 0, .num = 2 };

    refused_ack (f, VHOST_USER_REQUEST_SET_VRING_ENABLE, &state, sizeof state, NULL, 0,
                 VHOST_USER_ERROR_INVALID);
  }
  g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, 0)));

  /* Without it, every ring is enabled with the features. */
  reconnect (f);
  g_assert_cmphex (vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES), ==,
                   f->offered);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_FEATURES, VF (VERSION_1));
  vhu_test_drain_default_context ();
  for (guint i = 0; i < N_QUEUES; i++)
    g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, i)));
  g_assert_cmpuint (set_mem_table (f, &desc, &f->ram->fd, 1), ==, 0);
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, QUEUE_SIZE, 0);
  vhu_test_drain_default_context ();
  g_assert_true (started (f, 0));
  g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, 0)));
  expect_no_error (f);
}

/* ------------------------------------------------------------------------ */
/* L3: disconnection in the middle of a message                             */

static void
test_l3_disconnect_mid_message (Fixture *f, gconstpointer data)
{
  VhuMemTableMsg table = { .nregions = 1, .regions = { vhu_test_guest_ram_desc (f->ram) } };
  VhuHeader hdr = { VHOST_USER_REQUEST_SET_MEM_TABLE, VHU_VERSION | NEED_REPLY,
                    mem_table_size (1) };
  guint8 buf[VHU_HEADER_SIZE + sizeof table];

  memcpy (buf, &hdr, sizeof hdr);
  memcpy (buf + sizeof hdr, &table, sizeof table);

  start_session (f, N_QUEUES);

  /* A new memory table, cut short, with its fd; then the front-end is gone. */
  g_assert_true (vhu_test_frontend_send_raw (f->fe, buf, VHU_HEADER_SIZE + 20, &f->ram->fd, 1));
  expect_silence (f);
  for (guint i = 0; i < N_QUEUES; i++)
    assert_running (f, i);

  /* The rings stop, the device resets, and every fd of the connection
   * (rings, memory, back-end channel, the partial message's) is closed. */
  close_frontend (f);
  for (guint i = 0; i < N_QUEUES; i++)
    {
      g_assert_cmpuint (n_stopped (f, i), ==, 1);
      g_assert_false (started (f, i));
    }
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);
  /* A disconnection rather than a refusal; if reported, as a protocol error. */
  vhu_test_drain_default_context ();
  g_assert_cmpuint (f->errors->len, <=, 1);
  if (f->errors->len == 1)
    pop_error (f, VHOST_USER_ERROR_PROTOCOL);

  /* The next front-end (the teardown runs a whole session). */
  open_frontend (f);
}

/* GET_VRING_BASE with a request in flight is answered once the device
 * completes it, and no later message is read before; a front-end that goes
 * away meanwhile is a disconnection like any other, and the request
 * completed afterwards touches neither the ring nor any memory of the
 * departed front-end. */
static void
test_l3_disconnect_awaiting_vring_base (Fixture *f, gconstpointer data)
{
  VhuVringState state = { .index = 0, .num = 0 };
  VhostUserVirtqElement *elem;
  VhuMessage reply;

  start_session (f, 1);
  make_available (f, 0, 0, BUFFER_GPA, 64, VRING_DESC_F_WRITE);
  elem = vhu_test_pop (queue (f, 0));

  send_msg (f, VHOST_USER_REQUEST_GET_VRING_BASE, 0, &state, sizeof state, NULL, 0);
  send_msg (f, VHOST_USER_REQUEST_GET_FEATURES, 0, NULL, 0, NULL, 0);
  expect_silence (f);
  g_assert_cmpuint (n_stopped (f, 0), ==, 1);
  vhost_user_virtqueue_push (queue (f, 0), elem, 0);
  vhost_user_virtq_element_unref (elem);
  recv_reply (f, VHOST_USER_REQUEST_GET_VRING_BASE, &reply);
  g_assert_cmpuint (reply.hdr.size, ==, sizeof state);
  g_assert_cmpuint (reply.payload.state.index, ==, 0);
  g_assert_cmpuint (reply.payload.state.num, ==, 1);
  vhu_message_clear (&reply);
  expect_u64_reply (f, VHOST_USER_REQUEST_GET_FEATURES, f->offered);
  g_assert_cmpuint (used_idx (f, 0), ==, 1);
  expect_no_error (f);

  /* Again, and the front-end goes while it waits. */
  vhu_test_frontend_start_ring (f->fe, f->ram, 0, QUEUE_SIZE, 1);
  vhu_test_drain_default_context ();
  g_assert_true (started (f, 0));
  make_available (f, 0, 0, BUFFER_GPA, 64, VRING_DESC_F_WRITE);
  elem = vhu_test_pop (queue (f, 0));
  send_msg (f, VHOST_USER_REQUEST_GET_VRING_BASE, 0, &state, sizeof state, NULL, 0);
  expect_silence (f);

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  vhu_test_drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (dev (f)));
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);

  /* The device completes the request late. */
  g_assert_cmpuint (vhost_user_virtq_element_write (elem, 0, (const guint8 *) "late", 4), ==, 4);
  vhost_user_virtqueue_push (queue (f, 0), elem, 4);
  vhost_user_virtq_element_unref (elem);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (used_idx (f, 0), ==, 1);
  /* Every fd of the connection is closed, guest memory included. */
  vhu_test_assert_fds (f->fds_idle);
  expect_no_error (f);
  open_frontend (f);
}

/* RESET_DEVICE with a request in flight: the request may still be
 * completed (its memory is mapped) but nothing is written to the reset
 * ring; the rings then start again. */
static void
test_l9_reset_device_in_flight (Fixture *f, gconstpointer data)
{
  static const guint8 text[] = "after reset";
  VhostUserVirtqElement *elem;

  start_session (f, 1);
  make_available (f, 0, 0, BUFFER_GPA, 64, VRING_DESC_F_WRITE);
  elem = vhu_test_pop (queue (f, 0));

  accepted (f, VHOST_USER_REQUEST_RESET_DEVICE, NULL, 0, NULL, 0);
  g_assert_cmpuint (n_stopped (f, 0), ==, 1);
  g_assert_false (started (f, 0));
  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);

  g_assert_cmpuint (vhost_user_virtq_element_write (elem, 0, text, sizeof text), ==, sizeof text);
  g_assert_cmpmem (f->ram->host + BUFFER_GPA, sizeof text, text, sizeof text);
  vhost_user_virtqueue_push (queue (f, 0), elem, sizeof text);
  vhost_user_virtq_element_unref (elem);
  g_assert_cmpuint (used_idx (f, 0), ==, 0);

  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, 1);
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
  assert_running (f, 0);
  /* And the ring works: a request made available is popped and used. */
  make_available (f, 0, 0, BUFFER_GPA, 64, VRING_DESC_F_WRITE);
  elem = vhu_test_pop (queue (f, 0));
  vhost_user_virtqueue_push (queue (f, 0), elem, 0);
  vhost_user_virtq_element_unref (elem);
  g_assert_cmpuint (used_idx (f, 0), ==, 1);
}

/* ------------------------------------------------------------------------ */
/* L9: RESET_OWNER and RESET_DEVICE while the rings run                     */

static void
test_l9_reset_owner (Fixture *f, gconstpointer data)
{
  start_session (f, N_QUEUES);

  accepted (f, VHOST_USER_REQUEST_RESET_OWNER, NULL, 0, NULL, 0);
  for (guint i = 0; i < N_QUEUES; i++)
    {
      g_assert_cmpuint (n_stopped (f, i), ==, 1);
      g_assert_false (started (f, i));
      g_assert_false (vhost_user_virtqueue_get_enabled (queue (f, i)));
    }
  g_assert_true (vhost_user_device_get_connected (dev (f)));

  /* The front-end sets the rings up again. */
  for (guint i = 0; i < N_QUEUES; i++)
    {
      (void) vhu_test_frontend_get_vring_base (f->fe, i);
      vhu_test_frontend_start_ring (f->fe, f->ram, i, QUEUE_SIZE, 0);
      vring_state_ack (f, VHOST_USER_REQUEST_SET_VRING_ENABLE, i, 1, 0);
    }
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
  for (guint i = 0; i < N_QUEUES; i++)
    {
      g_assert_true (vhost_user_virtqueue_get_enabled (queue (f, i)));
      assert_running (f, i);
    }
}

static void
test_l9_reset_device (Fixture *f, gconstpointer data)
{
  start_session (f, N_QUEUES);
  mark_fds (f);

  /* A kick in flight as the reset arrives. */
  vhu_test_frontend_kick (f->fe, 0);
  accepted (f, VHOST_USER_REQUEST_RESET_DEVICE, NULL, 0, NULL, 0);

  g_assert_cmpuint (vhu_test_device_get_reset_count (f->device), ==, 1);
  g_assert_cmpuint (vhu_test_device_get_disconnected_count (f->device), ==, 0);
  g_assert_true (vhost_user_device_get_connected (dev (f)));
  g_assert_cmphex (vhost_user_device_get_acked_features (dev (f)), ==, 0);
  g_assert_cmpuint (vhost_user_device_get_status (dev (f)), ==, 0);
  for (guint i = 0; i < N_QUEUES; i++)
    {
      g_assert_cmpuint (n_stopped (f, i), ==, 1);
      g_assert_false (started (f, i));
      g_assert_false (vhost_user_virtqueue_get_enabled (queue (f, i)));
      g_assert_cmpuint (ring_size (f, i), ==, 0);
      g_assert_cmpuint (vhost_user_virtqueue_get_last_avail_idx (queue (f, i)), ==, 0);
    }
  /* The rings' eventfds are closed: kick and call of each ring, and the
   * error eventfd QEMU gives ring 0. */
  assert_fds (f, -(gint) (2 * N_QUEUES + 1));
  assert_not_running (f, 0, vhu_test_frontend_get_kick_fd (f->fe, 0));

  /* Set up again from the features on. */
  vhu_test_frontend_qemu_blk_start (f->fe, f->ram, N_QUEUES);
  expect_no_error (f);
  vhu_test_device_clear_records (f->device);
  for (guint i = 0; i < N_QUEUES; i++)
    assert_running (f, i);
}

/* ------------------------------------------------------------------------ */
/* L11: a front-end that stops reading                                      */

static void
test_l11_frontend_stops_reading (Fixture *f, gconstpointer data)
{
  VhuHeader batch[64];
  guint sent = 0;
  gboolean gone = FALSE;

  start_session (f, 1);
  for (guint i = 0; i < G_N_ELEMENTS (batch); i++)
    batch[i] = (VhuHeader){ VHOST_USER_REQUEST_GET_FEATURES, VHU_VERSION, 0 };

  /* Requests, and never a read: 20 MB of replies if the device kept them all. */
  while (sent < 1000000)
    {
      if (!vhu_test_frontend_send_raw (f->fe, batch, sizeof batch, NULL, 0))
        {
          gone = TRUE;
          break;
        }
      sent += G_N_ELEMENTS (batch);
    }
  g_test_message ("the device closed the connection after about %u requests", sent);

  /* The device neither blocked (this thread runs it) nor buffered without
   * bound: it gave up on the connection. */
  g_assert_true (gone);
  expect_closed (f);
  g_assert_cmpuint (n_stopped (f, 0), ==, 1);
  vhu_test_drain_default_context ();
  g_assert_cmpuint (f->errors->len, ==, 1);
  g_test_message ("protocol-error: %s", ((GError *) f->errors->pdata[0])->message);
  g_assert_true (((GError *) f->errors->pdata[0])->domain == VHOST_USER_ERROR);
  g_ptr_array_remove_index (f->errors, 0);
}

/* ------------------------------------------------------------------------ */

typedef struct
{
  const char *name;
  void (*func) (Fixture *f, gconstpointer data);
} Test;

/* Each test runs in a process of its own: a failed assertion, a crash or a
 * hang there fails that test alone, and every test starts from a clean
 * process (the fixture, too, is only set up there). */
static void
run_test (Fixture *f, gconstpointer data)
{
  const Test *test = data;

  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 120 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
      g_test_trap_assert_passed ();
      return;
    }
  test->func (f, NULL);
}

static const Test tests[] = {
  { "M1-oversize-header", test_m1_oversize_header },
  { "M2-truncated-message", test_m2_truncated_message },
  { "M2-message-in-pieces", test_m2_message_in_pieces },
  { "M3-extra-fds", test_m3_extra_fds },
  { "M4-too-many-fds", test_m4_too_many_fds },
  { "M4-fds-split-over-message", test_m4_fds_split_over_message },
  { "M5-missing-fds", test_m5_missing_fds },
  { "M6-wrong-payload-size", test_m6_wrong_payload_size },
  { "M6-largest-payload", test_m6_largest_payload },
  { "M7-unknown-request", test_m7_unknown_request },
  { "M8-bad-flags", test_m8_bad_flags },
  { "M9-request-none", test_m9_request_none },
  { "M10-vring-index-high-bits", test_m10_vring_index },
  { "M11-vring-num", test_m11_vring_num },
  { "M12-repeated-setup", test_m12_repeated_setup },
  { "M13-vring-addr", test_m13_vring_addr },
  { "M14-ring-outside-memory", test_m14_ring_outside_memory },
  { "M14-ring-across-regions", test_m14_ring_across_regions },
  { "M14-vring-num-grows-out", test_m14_vring_num_grows_out },
  { "M14-checked-when-table-arrives", test_m14_checked_when_table_arrives },
  { "M15-vring-base", test_m15_vring_base },
  { "M16-nregions", test_m16_nregions },
  { "M17-region-overflow", test_m17_region_overflow },
  { "M18-overlapping-regions", test_m18_overlapping_regions },
  { "M19-file-too-small", test_m19_file_too_small },
  { "M19-truncated-after-mapping", test_m19_truncated_after_mapping },
  { "M19-truncated-pop-many", test_m19_truncated_pop_many },
  { "M20-mmap-failure", test_m20_mmap_failure },
  { "M21-same-layout", test_m21_same_layout },
  { "M21-ring-memory-removed", test_m21_ring_memory_removed },
  { "M21-in-flight-element", test_m21_in_flight_element },
  { "M21-in-flight-element-recycled", test_m21_in_flight_element_recycled },
  { "M22-slots-full", test_m22_slots_full },
  { "M23-rem-mem-reg-bad", test_m23_rem_mem_reg_bad },
  { "M23-rem-mem-reg-rings", test_m23_rem_mem_reg_rings },
  { "M24-log-base", test_m24_log_base },
  { "M24-log-too-small-for-ring", test_m24_log_too_small_for_ring },
  { "M24-memory-grows-past-log", test_m24_memory_grows_past_log },
  { "M25-unoffered-features", test_m25_unoffered_features },
  { "M25-unoffered-protocol-features", test_m25_unoffered_protocol_features },
  { "M25-features-change-while-running", test_m25_features_change_while_running },
  { "M25-reconnect-forgets-features", test_m25_reconnect_forgets_features },
  { "M26-not-negotiated", test_m26_not_negotiated },
  { "M26-never-offered", test_m26_never_offered },
  { "M27-inflight-values", test_m27_inflight_values },
  { "M27-inflight-queue-size-mismatch", test_m27_inflight_queue_size_mismatch },
  { "M28-corrupted-inflight", test_m28_corrupted_inflight },
  { "M29-config", test_m29_config },
  { "M30-backend-no-reply", test_m30_backend_no_reply },
  { "M30-backend-bad-reply", test_m30_backend_bad_reply },
  { "M31-iotlb", test_m31_iotlb },
  { "M31-access-platform", test_m31_access_platform },
  { "M32-postcopy", test_m32_postcopy },
  { "M33-flood", test_m33_flood },
  { "L1-kick-before-setup", test_l1_kick_before_setup },
  { "L2-kick-fd-first", test_l2_kick_fd_first },
  { "L2-enable-semantics", test_l2_enable_semantics },
  { "L3-disconnect-mid-message", test_l3_disconnect_mid_message },
  { "L3-disconnect-awaiting-vring-base", test_l3_disconnect_awaiting_vring_base },
  { "L9-reset-owner", test_l9_reset_owner },
  { "L9-reset-device", test_l9_reset_device },
  { "L9-reset-device-in-flight", test_l9_reset_device_in_flight },
  { "L11-frontend-stops-reading", test_l11_frontend_stops_reading },
};

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  /* The parent only watches its subprocesses: one failing does not stop
   * the others. */
  if (!g_test_subprocess ())
    g_test_set_nonfatal_assertions ();

  /* What GLib makes once, with fds of its own, made before any fd is counted:
   * the default main context, and GTask's (class_init). */
  (void) g_main_context_default ();
  g_type_ensure (G_TYPE_TASK);

  for (guint i = 0; i < G_N_ELEMENTS (tests); i++)
    {
      g_autofree char *path = g_strconcat ("/vhost-user/bad-input/", tests[i].name, NULL);

      g_test_add (path, Fixture, &tests[i], fixture_set_up, run_test, fixture_tear_down);
    }

  return g_test_run ();
}
