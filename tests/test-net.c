/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The virtio-net device of tools/vhost-user-net in loopback, driven through
 * the test front-end by test virtio drivers (tests/vhu-test-driver.h) in
 * guest RAM, as a guest's virtio-net driver would drive it: every frame
 * sent on a transmit queue must come back, byte for byte, on the receive
 * queue of its pair, with and without mergeable receive buffers (a frame
 * spread over many small buffers, num_buffers right); the device waits
 * without dropping or spinning when the receive queue has no buffers and
 * resumes on the receive kick; the control queue, the config space, the
 * checksum offloads, SEND_RARP and NET_SET_MTU; and malformed chains from a
 * hostile guest are dropped without harm.
 *
 * The tap tests run in a network namespace of their own (unshare(), as
 * root; skipped otherwise): the device's tap interface, and a packet socket
 * on it as the other end of the wire.
 *
 * Queue modes and threads: round trips with the pairs' queues in each mode
 * (event, adaptive, poll) on the device's context, where control messages
 * must still be answered while a queue polls; and with the pairs on worker
 * threads (as vhost-user-net --threads runs them), in each mode, thousands
 * of frames on every pair checked byte for byte, the rings stopped and
 * restarted under traffic, the control queue and SEND_RARP on the device's
 * thread reaching pairs on workers, the tap on a worker, and a clean
 * shutdown. And the program: its options, and SIGTERM while a front-end is
 * connected to pairs polled on worker threads (exits 0).
 *
 * VHU_TEST_NET_FRAMES sets how many frames the round-trip tests send
 * (3000 by default).
 */

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "vhu-net-device.h"
#include "vhu-net-frame.h"
#include "vhu-queue-threads.h"
#include "vhu-test-driver.h"
#include "vhu-test-frontend.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)
#define NF(bit) (G_GUINT64_CONSTANT (1) << VHU_NET_F_##bit)

#define MAX_QUEUES 8u
#define MIB (G_GUINT64_CONSTANT (1024) * 1024)
#define RAM_SIZE (40 * MIB)
#define RAM_UVA G_GUINT64_CONSTANT (0x7f0000000000)
/* Queue q's ring, and the data area its driver places buffers in. */
#define RING_OFFSET(q) (0x10000u + (q) * 0x10000u)
#define DATA_GPA(q) (MIB + (q) * 4 * MIB)
#define DATA_SIZE (4 * MIB)

#define HDR VHU_NET_HEADER_SIZE
#define BASE_FEATURES (VF (VERSION_1) | VF (PROTOCOL_FEATURES) | VF (RING_INDIRECT_DESC))
#define PROTOCOL_FEATURES                                                                          \
  (PF (MQ) | PF (REPLY_ACK) | PF (CONFIG) | PF (NET_MTU) | PF (RARP))

typedef struct
{
  VhuNetDevice *device;
  VhuTestFrontend *fe;
  VhuTestGuestRam *ram;
  VhuTestDriver *drv[MAX_QUEUES];
  int kick[MAX_QUEUES];
  int call[MAX_QUEUES];
  guint64 features;
  GRand *rand;
  guint fds_before;
  /* Frames sent and not received yet, per pair (GBytes, without header). */
  GQueue expected[MAX_QUEUES / 2];
  int packet_fd; /* tap tests: a packet socket on the tap interface */
  VhuWorkers *workers; /* the pairs' threads, if any */
  gint wrong_thread;   /* queue signals that came on another thread than their queue's */
  gint worker_signals; /* queue signals on a worker thread */
} Fixture;

typedef struct
{
  guint64 features;
  gboolean event_idx;
  guint rx_size;   /* each receive buffer; 0: random from 16 to 600 */
  gboolean split;  /* receive chains of two buffers */
} RoundTrip;

/* A frame as the receiving driver saw it. */
typedef struct
{
  VhuNetHeader hdr;
  GByteArray *data;
  guint n_buffers;
} Received;

static void
received_clear (Received *r)
{
  g_clear_pointer (&r->data, g_byte_array_unref);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Received, received_clear)

static guint
frames_wanted (void)
{
  const char *env = g_getenv ("VHU_TEST_NET_FRAMES");

  if (env != NULL && *env != '\0')
    return MAX (1, (guint) g_ascii_strtoull (env, NULL, 10));
  return 3000;
}

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

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */

/* What a test case runs with. */
typedef struct
{
  guint pairs;
  gint param;             /* the test's own */
  const RoundTrip *trip;  /* test_round_trip */
  gboolean tap;           /* a device on a tap interface, not loopback */
  VhostUserQueueMode mode; /* of the pairs' queues */
  guint threads;          /* worker threads for the pairs (0: the device's context) */
} Case;

#define TAP_NAME "vhutest0"

static void
write_file (const char *path, const char *contents)
{
  g_autoptr (GError) error = NULL;

  if (!g_file_set_contents_full (path, contents, -1, G_FILE_SET_CONTENTS_NONE, 0644, &error))
    g_test_message ("%s: %s", path, error->message);
}

/* Once per process: a network namespace of our own, without IPv6 (whose
 * autoconfiguration would put frames of its own on the tap). FALSE (with
 * the reason in @why) when this process may not. */
static gboolean
enter_network_namespace (const char **why)
{
  static gint state; /* 0: not tried, 1: in, 2: cannot */

  if (state == 0)
    {
      if (getuid () != 0 || access ("/dev/net/tun", R_OK | W_OK) != 0)
        state = 2;
      else if (unshare (CLONE_NEWNET) != 0)
        state = 2;
      else
        {
          write_file ("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
          write_file ("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
          state = 1;
        }
    }
  *why = "a network namespace and a tap need root and /dev/net/tun";
  return state == 1;
}

static void
set_interface (const char *name, guint mtu, gboolean up)
{
  struct ifreq ifr = { 0 };
  int sock = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

  g_assert_cmpint (sock, >=, 0);
  g_strlcpy (ifr.ifr_name, name, sizeof ifr.ifr_name);
  if (mtu != 0)
    {
      ifr.ifr_mtu = mtu;
      g_assert_no_errno (ioctl (sock, SIOCSIFMTU, &ifr));
    }
  g_assert_no_errno (ioctl (sock, SIOCGIFFLAGS, &ifr));
  if (up)
    ifr.ifr_flags |= IFF_UP;
  else
    ifr.ifr_flags &= ~IFF_UP;
  g_assert_no_errno (ioctl (sock, SIOCSIFFLAGS, &ifr));
  close (sock);
}

/* A raw packet socket on the tap interface: what it sends, the device
 * reads from its tap; what the device writes, it receives. */
static int
open_packet_socket (const char *name)
{
  struct sockaddr_ll addr = { 0 };
  int fd = socket (AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons (ETH_P_ALL));

  g_assert_cmpint (fd, >=, 0);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons (ETH_P_ALL);
  addr.sll_ifindex = if_nametoindex (name);
  g_assert_cmpint (addr.sll_ifindex, >, 0);
  g_assert_no_errno (bind (fd, (struct sockaddr *) &addr, sizeof addr));
  return fd;
}

/* Every queue signal comes on its queue's thread: the device's for the
 * control queue and for pairs left there, the pair's worker otherwise. */
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

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  const Case *c = data;
  guint pairs = MAX (1, c->pairs);

  drain_default_context ();
  f->packet_fd = -1;
  f->fds_before = vhu_test_count_fds ();
  if (c->tap)
    {
      g_autoptr (GError) error = NULL;
      const char *why;

      if (!enter_network_namespace (&why))
        {
          g_test_skip (why);
          return;
        }
      f->device = vhu_net_device_new_tap (TAP_NAME, pairs, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (vhu_net_device_get_ifname (f->device), ==, TAP_NAME);
      set_interface (TAP_NAME, 0, TRUE);
      f->packet_fd = open_packet_socket (TAP_NAME);
    }
  else
    {
      f->device = vhu_net_device_new_loopback (pairs);
    }
  g_object_add_weak_pointer (G_OBJECT (f->device), (gpointer *) &f->device);
  vhu_net_device_set_queue_mode (f->device, c->mode, 0);
  if (c->threads > 0)
    {
      f->workers = vhu_workers_new (c->threads, "vhu-test-net");
      for (guint k = 0; k < pairs; k++)
        vhu_net_device_set_pair_context (f->device, k,
                                         vhu_workers_get_context (f->workers, k % c->threads));
    }
  g_signal_connect (f->device, "queue-started", G_CALLBACK (on_queue_signal), f);
  g_signal_connect (f->device, "queue-stopped", G_CALLBACK (on_queue_signal), f);
  g_signal_connect (f->device, "queue-kicked", G_CALLBACK (on_queue_signal), f);
  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, 0, RAM_UVA);
  for (guint q = 0; q < MAX_QUEUES; q++)
    f->kick[q] = f->call[q] = -1;
  for (guint k = 0; k < MAX_QUEUES / 2; k++)
    g_queue_init (&f->expected[k]);
  f->rand = g_rand_new_with_seed (g_test_rand_int ());
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  if (f->device == NULL)
    return; /* skipped */
  /* The front-end goes first (the rings stop on their threads), then the
   * threads, then the device: as the program does it. */
  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  close_fd (&f->packet_fd);
  drain_default_context ();
  g_clear_pointer (&f->workers, vhu_workers_free);
  g_assert_cmpint (g_atomic_int_get (&f->wrong_thread), ==, 0);
  g_object_unref (f->device);
  g_assert_null (f->device);
  for (guint q = 0; q < MAX_QUEUES; q++)
    {
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
      close_fd (&f->kick[q]);
      close_fd (&f->call[q]);
    }
  for (guint k = 0; k < MAX_QUEUES / 2; k++)
    g_queue_clear_full (&f->expected[k], (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  g_rand_free (f->rand);
  drain_default_context ();
  g_assert_cmpuint (vhu_test_count_fds (), ==, f->fds_before);
}

/* ------------------------------------------------------------------------ */
/* Front-end                                                                */

/* Negotiates as QEMU does, with the virtio-net bits @net_features. */
static void
negotiate (Fixture *f, guint64 net_features)
{
  guint64 offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  guint64 offered_pf = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  guint64 features = BASE_FEATURES | net_features;
  VhuTestGuestRam *rams[] = { f->ram };

  g_assert_cmphex (offered & features, ==, features);
  g_assert_cmphex (offered_pf & PROTOCOL_FEATURES, ==, PROTOCOL_FEATURES);
  vhu_test_frontend_set_u64 (f->fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, PROTOCOL_FEATURES);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_FEATURES, &features, sizeof features, NULL, 0);
  f->features = features;
  g_assert_cmpuint (vhu_test_frontend_set_mem_table (f->fe, rams, 1), ==, 0);
}

static VhuTestDriver *
start_queue (Fixture *f, guint q, guint num)
{
  VhuVringAddr addr;

  g_assert_cmpuint (q, <, MAX_QUEUES);
  g_clear_pointer (&f->drv[q], vhu_test_driver_free);
  f->drv[q] = vhu_test_driver_new (f->ram, RING_OFFSET (q), num);
  vhu_test_driver_set_data_area (f->drv[q], DATA_GPA (q), DATA_SIZE);
  vhu_test_driver_set_event_idx (f->drv[q], (f->features & VF (RING_EVENT_IDX)) != 0);

  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, q, num);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_BASE, q, 0);
  addr = vhu_test_driver_get_vring_addr (f->drv[q], q, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  close_fd (&f->call[q]);
  f->call[q] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_CALL, q, f->call[q]);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, q, 1);
  close_fd (&f->kick[q]);
  f->kick[q] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, q, f->kick[q]);
  vhu_test_frontend_flush (f->fe);
  if (f->device != NULL) /* NULL: the program's, in another process */
    g_assert_true (vhost_user_virtqueue_get_started (
      vhost_user_device_get_queue (VHOST_USER_DEVICE (f->device), q)));
  return f->drv[q];
}

/* Publishes what was added to queue @q, kicks if the device asked for it,
 * and lets the device run. */
static gboolean
publish (Fixture *f, guint q)
{
  gboolean kicked = vhu_test_driver_publish (f->drv[q]);

  if (kicked)
    g_assert_cmpint (eventfd_write (f->kick[q], 1), ==, 0);
  vhu_test_frontend_flush (f->fe);
  return kicked;
}

static VhuNetStats
stats (Fixture *f)
{
  VhuNetStats s;

  vhu_net_device_get_stats (f->device, &s);
  return s;
}

/* ------------------------------------------------------------------------ */
/* The driver's side: frames                                                */

typedef enum
{
  LAYOUT_FLAT,     /* header and frame in one buffer */
  LAYOUT_SPLIT,    /* header, frame */
  LAYOUT_SCATTER,  /* header in two pieces, frame in three */
  LAYOUT_INDIRECT, /* split, through an indirect table */
  N_LAYOUTS,
} Layout;

/* Adds a transmit chain for @frame with @hdr (zeros when NULL). */
static gint
add_tx (Fixture *f, guint q, const VhuNetHeader *hdr, const guint8 *frame, gsize len, Layout layout)
{
  VhuNetHeader zero = { 0 };
  g_autofree guint8 *flat = g_malloc (HDR + len);
  VhuTestBuffer bufs[5];
  guint n = 0;

  memcpy (flat, hdr != NULL ? hdr : &zero, HDR);
  if (len > 0)
    memcpy (flat + HDR, frame, len);
  switch (layout)
    {
    case LAYOUT_FLAT:
      bufs[n++] = VHU_TEST_OUT (flat, HDR + len);
      break;
    case LAYOUT_SPLIT:
    case LAYOUT_INDIRECT:
      bufs[n++] = VHU_TEST_OUT (flat, HDR);
      if (len > 0)
        bufs[n++] = VHU_TEST_OUT (flat + HDR, len);
      break;
    case LAYOUT_SCATTER:
      {
        gsize a = len / 3, b = len / 3;

        bufs[n++] = VHU_TEST_OUT (flat, 5);
        bufs[n++] = VHU_TEST_OUT (flat + 5, HDR - 5);
        bufs[n++] = VHU_TEST_OUT (flat + HDR, a);
        bufs[n++] = VHU_TEST_OUT (flat + HDR + a, b);
        bufs[n++] = VHU_TEST_OUT (flat + HDR + a + b, len - a - b);
      }
      break;
    default:
      g_assert_not_reached ();
    }
  return vhu_test_driver_add (f->drv[q], bufs, n, layout == LAYOUT_INDIRECT);
}

/* Sends @frame on pair @pair and remembers it as expected back. */
static void
send_frame (Fixture *f, guint pair, const guint8 *frame, gsize len, Layout layout)
{
  g_assert_cmpint (add_tx (f, 2 * pair + 1, NULL, frame, len, layout), >=, 0);
  g_queue_push_tail (&f->expected[pair], g_bytes_new (frame, len));
}

static guint8 *
random_frame (Fixture *f, gsize len)
{
  guint8 *frame = g_malloc (len + 1);

  for (gsize i = 0; i < len; i++)
    frame[i] = (guint8) g_rand_int (f->rand);
  return frame;
}

/* Posts @count receive chains of @size bytes on queue @q: one buffer each,
 * or (@split) the header and the rest in two. */
static void
post_rx (Fixture *f, guint q, guint count, guint size, gboolean split)
{
  for (guint i = 0; i < count; i++)
    {
      VhuTestBuffer bufs[2];
      guint n = 0;

      if (split && size > HDR)
        {
          bufs[n++] = VHU_TEST_IN (HDR);
          bufs[n++] = VHU_TEST_IN (size - HDR);
        }
      else
        {
          bufs[n++] = VHU_TEST_IN (size);
        }
      g_assert_cmpint (vhu_test_driver_add (f->drv[q], bufs, n, FALSE), >=, 0);
    }
}

/* Takes the next frame the device put on receive queue @q, following
 * num_buffers with mergeable buffers. FALSE if there is none. */
static gboolean
receive_frame (Fixture *f, guint q, Received *r)
{
  VhuTestDriver *drv = f->drv[q];
  gboolean mrg = (f->features & NF (MRG_RXBUF)) != 0;
  guint head;
  guint32 len;
  g_autofree guint8 *buf = NULL;

  received_clear (r);
  if (!vhu_test_driver_get_used (drv, &head, &len))
    return FALSE;
  g_assert_cmpuint (len, <=, vhu_test_driver_get_in_size (drv, head));
  g_assert_cmpuint (len, >=, HDR);
  buf = g_malloc (len);
  g_assert_cmpuint (vhu_test_driver_read_in (drv, head, buf, len), ==, len);
  memcpy (&r->hdr, buf, HDR);
  r->data = g_byte_array_new ();
  g_byte_array_append (r->data, buf + HDR, len - HDR);
  r->n_buffers = GUINT16_FROM_LE (r->hdr.num_buffers);
  g_assert_cmpuint (r->n_buffers, >=, 1);
  if (!mrg)
    g_assert_cmpuint (r->n_buffers, ==, 1);

  for (guint i = 1; i < r->n_buffers; i++)
    {
      guint64 size;

      /* Every buffer but the last of a frame is full. */
      size = vhu_test_driver_get_in_size (drv, head);
      g_assert_cmpuint (len, ==, size);
      g_assert_true (vhu_test_driver_get_used (drv, &head, &len));
      g_assert_cmpuint (len, >=, 1);
      g_assert_cmpuint (len, <=, vhu_test_driver_get_in_size (drv, head));
      g_clear_pointer (&buf, g_free);
      buf = g_malloc (len);
      g_assert_cmpuint (vhu_test_driver_read_in (drv, head, buf, len), ==, len);
      g_byte_array_append (r->data, buf, len);
    }
  return TRUE;
}

/* Takes every frame received on pair @pair and checks each against what
 * was sent, in order. Returns how many there were. */
static guint
check_received (Fixture *f, guint pair)
{
  guint n = 0;

  for (;;)
    {
      g_auto (Received) r = { 0 };
      g_autoptr (GBytes) want = NULL;

      if (!receive_frame (f, 2 * pair, &r))
        break;
      want = g_queue_pop_head (&f->expected[pair]);
      g_assert_nonnull (want);
      g_assert_cmpuint (r.hdr.flags, ==, 0);
      g_assert_cmpuint (r.hdr.gso_type, ==, VHU_NET_HDR_GSO_NONE);
      g_assert_cmpmem (r.data->data, r.data->len, g_bytes_get_data (want, NULL),
                       g_bytes_get_size (want));
      n++;
    }
  return n;
}

/* Takes the used transmit chains of pair @pair: every one with 0 bytes
 * written. Returns how many. */
static guint
reap_tx (Fixture *f, guint pair)
{
  guint head, n = 0;
  guint32 len;

  while (vhu_test_driver_get_used (f->drv[2 * pair + 1], &head, &len))
    {
      g_assert_cmpuint (len, ==, 0);
      n++;
    }
  return n;
}

/* ------------------------------------------------------------------------ */
/* Round trips                                                              */

static void
test_round_trip (Fixture *f, gconstpointer data)
{
  const RoundTrip *rt = ((const Case *) data)->trip;
  guint total = frames_wanted ();
  guint sent = 0, received = 0, reaped = 0;
  VhuNetStats s;

  negotiate (f, rt->features | (rt->event_idx ? VF (RING_EVENT_IDX) : 0));
  g_assert_cmpuint (vhu_net_device_get_header_size (f->device), ==, HDR);
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);
  start_queue (f, 2, 64); /* the control queue, unused here */

  while (received < total)
    {
      guint batch = g_rand_int_range (f->rand, 1, 100);
      guint free_rx = vhu_test_driver_get_n_free (f->drv[0]);

      /* Receive buffers: what the ring has room for. */
      if (free_rx > (rt->split ? 1u : 0u))
        {
          guint count = rt->split ? free_rx / 2 : free_rx;

          if (rt->rx_size != 0)
            post_rx (f, 0, count, rt->rx_size, rt->split);
          else
            for (guint i = 0; i < count; i++)
              post_rx (f, 0, 1, g_rand_int_range (f->rand, 16, 600), FALSE);
          publish (f, 0);
        }

      batch = MIN (batch, total - sent);
      for (guint i = 0; i < batch && vhu_test_driver_get_n_free (f->drv[1]) >= 5; i++)
        {
          gsize len = g_rand_int_range (f->rand, 0, 1515);
          g_autofree guint8 *frame = random_frame (f, len);

          send_frame (f, 0, frame, len, g_rand_int_range (f->rand, 0, N_LAYOUTS));
          sent++;
        }
      publish (f, 1);

      received += check_received (f, 0);
      reaped += reap_tx (f, 0);
      g_assert_cmpuint (received, <=, sent);
      /* Without mergeable buffers each receive chain holds a frame of up
       * to 1514 bytes; with them, frames wait at most for buffers. */
      if (sent == total && received < total)
        {
          /* More buffers are posted on the next turn. */
          g_assert_cmpuint (g_queue_get_length (&f->expected[0]), ==, sent - received);
        }
    }

  g_assert_cmpuint (received, ==, total);
  g_assert_cmpuint (reaped, ==, total);
  g_assert_true (g_queue_is_empty (&f->expected[0]));
  s = stats (f);
  g_assert_cmpuint (s.tx_frames, ==, total);
  g_assert_cmpuint (s.rx_frames, ==, total);
  g_assert_cmpuint (s.tx_dropped, ==, 0);
  g_assert_cmpuint (s.rx_bad_buffers, ==, 0);
  g_assert_cmpuint (s.tx_bytes, ==, s.rx_bytes);
}

/* One frame spread over many small buffers: num_buffers and each buffer's
 * length are exact. */
static void
test_mrg_spread (Fixture *f, gconstpointer data)
{
  static const guint sizes[] = { 1514, 1, 0, 100, 116, 117, 4000, 9000 };
  const guint buf_size = 64;

  negotiate (f, NF (MRG_RXBUF));
  start_queue (f, 0, 512);
  start_queue (f, 1, 256);

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      gsize len = sizes[i];
      g_autofree guint8 *frame = random_frame (f, len);
      guint want_buffers = (HDR + len + buf_size - 1) / buf_size;
      g_auto (Received) r = { 0 };
      g_autoptr (GBytes) want = NULL;

      post_rx (f, 0, want_buffers + 3, buf_size, FALSE);
      publish (f, 0);
      send_frame (f, 0, frame, len, LAYOUT_SPLIT);
      publish (f, 1);
      g_assert_true (receive_frame (f, 0, &r));
      g_assert_cmpuint (r.n_buffers, ==, want_buffers);
      want = g_queue_pop_head (&f->expected[0]);
      g_assert_cmpmem (r.data->data, r.data->len, g_bytes_get_data (want, NULL), len);
      g_assert_false (receive_frame (f, 0, &r));
      g_assert_cmpuint (reap_tx (f, 0), ==, 1);
      /* The 3 buffers left over are still the driver's to fill later:
       * the next frame starts with them. */
      g_assert_cmpuint (vhu_test_driver_get_in_flight (f->drv[0]), ==, 3 * (i + 1));
    }
}

/* No receive buffers: transmit chains stay available (not dropped, not
 * consumed), the device asks for receive kicks and stops listening to
 * transmit kicks, and nothing runs until the driver adds buffers. */
static void
test_starvation (Fixture *f, gconstpointer data)
{
  gboolean event_idx = ((const Case *) data)->param != 0;
  const guint n = 10;
  VhuNetStats s;

  negotiate (f, NF (MRG_RXBUF) | (event_idx ? VF (RING_EVENT_IDX) : 0));
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);

  for (guint i = 0; i < n; i++)
    {
      gsize len = 60 + 100 * i;
      g_autofree guint8 *frame = random_frame (f, len);

      send_frame (f, 0, frame, len, LAYOUT_FLAT);
    }
  g_assert_true (publish (f, 1));

  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[1]), ==, 0);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, 0);
  s = stats (f);
  g_assert_cmpuint (s.tx_dropped, ==, 0);
  g_assert_cmpuint (s.tx_frames, ==, 0);
  g_assert_cmpuint (s.rx_starved, ==, 1);
  /* Waiting, not spinning. */
  g_assert_false (g_main_context_pending (NULL));
  if (!event_idx)
    {
      g_assert_cmphex (vhu_test_driver_get_used_flags (f->drv[0]) & VHU_VRING_USED_F_NO_NOTIFY, ==,
                       0);
      g_assert_cmphex (vhu_test_driver_get_used_flags (f->drv[1]) & VHU_VRING_USED_F_NO_NOTIFY, ==,
                       VHU_VRING_USED_F_NO_NOTIFY);
    }
  /* More transmit kicks change nothing. */
  g_assert_cmpint (eventfd_write (f->kick[1], 1), ==, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[1]), ==, 0);
  g_assert_cmpuint (stats (f).rx_starved, ==, 2);

  /* Buffers for four frames of up to 360 bytes: the driver kicks, the
   * first four come, the device waits again. */
  post_rx (f, 0, 4, 512, FALSE);
  g_assert_true (publish (f, 0));
  g_assert_cmpuint (check_received (f, 0), ==, 4);
  g_assert_cmpuint (reap_tx (f, 0), ==, 4);
  g_assert_cmpuint (stats (f).rx_starved, ==, 3);
  g_assert_false (g_main_context_pending (NULL));

  /* A buffer too small for the next frame (460 bytes): still waiting. */
  post_rx (f, 0, 1, 256, FALSE);
  g_assert_true (publish (f, 0));
  g_assert_cmpuint (check_received (f, 0), ==, 0);
  g_assert_cmpuint (reap_tx (f, 0), ==, 0);

  /* Enough for the rest. */
  post_rx (f, 0, 20, 512, FALSE);
  g_assert_true (publish (f, 0));
  g_assert_cmpuint (check_received (f, 0), ==, n - 4);
  g_assert_cmpuint (reap_tx (f, 0), ==, n - 4);
  s = stats (f);
  g_assert_cmpuint (s.tx_frames, ==, n);
  g_assert_cmpuint (s.tx_dropped, ==, 0);

  /* Transmit kicks are back on. */
  {
    g_autofree guint8 *frame = random_frame (f, 100);

    send_frame (f, 0, frame, 100, LAYOUT_FLAT);
    g_assert_true (publish (f, 1));
    g_assert_cmpuint (check_received (f, 0), ==, 1);
  }
  g_assert_true (g_queue_is_empty (&f->expected[0]));
}

/* More frames at once than one pass takes: the rest follows without a
 * kick. */
static void
test_budget (Fixture *f, gconstpointer data)
{
  const guint n = 1000;

  negotiate (f, NF (MRG_RXBUF));
  start_queue (f, 0, 1024);
  start_queue (f, 1, 1024);
  post_rx (f, 0, 1024, 1024, FALSE);
  publish (f, 0);
  for (guint i = 0; i < n; i++)
    {
      gsize len = g_rand_int_range (f->rand, 14, 1000);
      g_autofree guint8 *frame = random_frame (f, len);

      send_frame (f, 0, frame, len, LAYOUT_FLAT);
    }
  g_assert_true (publish (f, 1));
  g_assert_cmpuint (check_received (f, 0), ==, n);
  g_assert_cmpuint (reap_tx (f, 0), ==, n);
}

/* ------------------------------------------------------------------------ */
/* Malformed chains                                                         */

static void
test_malformed (Fixture *f, gconstpointer data)
{
  gboolean mrg = ((const Case *) data)->param != 0;
  g_autofree guint8 *frame = random_frame (f, 1000);
  VhuNetHeader hdr = { 0 };
  VhuTestBuffer in_only = VHU_TEST_IN (100);
  guint8 tiny[6] = { 0 };
  VhuTestBuffer short_tx = VHU_TEST_OUT (tiny, sizeof tiny);
  guint head;
  guint32 len;
  VhuNetStats s;

  negotiate (f, mrg ? NF (MRG_RXBUF) : 0);
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);

  /* A receive chain too small for the header, then a good one. */
  post_rx (f, 0, 1, 8, FALSE);
  post_rx (f, 0, 1, 2048, FALSE);
  publish (f, 0);

  /* Transmit chains: shorter than the header; no readable buffer; a GSO
   * frame (no segmentation offload was offered); NEEDS_CSUM (no checksum
   * offload negotiated); then a good frame. */
  g_assert_cmpint (vhu_test_driver_add (f->drv[1], &short_tx, 1, FALSE), >=, 0);
  g_assert_cmpint (vhu_test_driver_add (f->drv[1], &in_only, 1, FALSE), >=, 0);
  hdr.gso_type = 1;
  hdr.gso_size = GUINT16_TO_LE (500);
  g_assert_cmpint (add_tx (f, 1, &hdr, frame, 1000, LAYOUT_SPLIT), >=, 0);
  memset (&hdr, 0, sizeof hdr);
  hdr.flags = VHU_NET_HDR_F_NEEDS_CSUM;
  hdr.csum_start = GUINT16_TO_LE (34);
  hdr.csum_offset = GUINT16_TO_LE (6);
  g_assert_cmpint (add_tx (f, 1, &hdr, frame, 1000, LAYOUT_SPLIT), >=, 0);
  send_frame (f, 0, frame, 200, LAYOUT_SPLIT);
  publish (f, 1);

  /* The small receive chain came back empty, before the frame. */
  g_assert_true (vhu_test_driver_get_used (f->drv[0], &head, &len));
  g_assert_cmpuint (len, ==, 0);
  g_assert_cmpuint (vhu_test_driver_get_in_size (f->drv[0], head), ==, 8);
  g_assert_cmpuint (check_received (f, 0), ==, 1);
  g_assert_cmpuint (reap_tx (f, 0), ==, 5);
  s = stats (f);
  g_assert_cmpuint (s.tx_dropped, ==, 4);
  g_assert_cmpuint (s.tx_frames, ==, 1);
  g_assert_cmpuint (s.rx_bad_buffers, ==, 1);

  if (!mrg)
    {
      /* A frame larger than the receive chain: dropped; the chain stays
       * for the next, smaller frame. */
      post_rx (f, 0, 1, 300, TRUE);
      publish (f, 0);
      g_assert_cmpint (add_tx (f, 1, NULL, frame, 1000, LAYOUT_FLAT), >=, 0);
      send_frame (f, 0, frame, 288, LAYOUT_FLAT);
      publish (f, 1);
      g_assert_cmpuint (check_received (f, 0), ==, 1);
      g_assert_cmpuint (reap_tx (f, 0), ==, 2);
      g_assert_cmpuint (stats (f).tx_dropped, ==, 5);
    }
  else
    {
      /* The whole receive ring (256 buffers of 20 bytes) is too small for
       * the frame: dropped, the buffers stay. */
      g_autofree guint8 *big = random_frame (f, 6000);

      g_assert_cmpuint (vhu_test_driver_get_in_flight (f->drv[0]), ==, 0);
      post_rx (f, 0, 256, 20, FALSE);
      publish (f, 0);
      g_assert_cmpint (add_tx (f, 1, NULL, big, 6000, LAYOUT_FLAT), >=, 0);
      publish (f, 1);
      g_assert_cmpuint (reap_tx (f, 0), ==, 1);
      g_assert_cmpuint (stats (f).tx_dropped, ==, 5);
      g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, 2);
      /* A frame that fits takes what it needs. */
      send_frame (f, 0, frame, 30, LAYOUT_FLAT);
      publish (f, 1);
      g_assert_cmpuint (check_received (f, 0), ==, 1);
    }
  g_assert_true (g_queue_is_empty (&f->expected[0]));
  g_assert_true (vhost_user_device_get_connected (VHOST_USER_DEVICE (f->device)));
}

/* ------------------------------------------------------------------------ */
/* Checksum offload                                                         */

static guint32
sum16 (const guint8 *p, gsize len, guint32 sum)
{
  for (gsize i = 0; i + 1 < len; i += 2)
    sum += (guint32) p[i] << 8 | p[i + 1];
  if (len % 2)
    sum += (guint32) p[len - 1] << 8;
  return sum;
}

static guint16
fold (guint32 sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return sum;
}

/* An Ethernet + IPv4 + UDP frame with @payload_len bytes, its UDP checksum
 * field holding the pseudo-header sum as a driver leaves it for
 * NEEDS_CSUM; *@full is the checksum the field must end up with. */
static guint8 *
udp_frame (Fixture *f, gsize payload_len, gsize *len, guint16 *full)
{
  gsize udp_len = 8 + payload_len;
  guint8 *frame;
  guint8 pseudo[12];
  guint32 sum;

  *len = 14 + 20 + udp_len;
  frame = random_frame (f, *len);
  frame[12] = 0x08, frame[13] = 0x00;
  frame[14] = 0x45, frame[15] = 0;
  frame[16] = (20 + udp_len) >> 8, frame[17] = (20 + udp_len) & 0xff;
  frame[23] = 17; /* UDP */
  frame[38] = udp_len >> 8, frame[39] = udp_len & 0xff;
  memcpy (pseudo, frame + 26, 8); /* source and destination addresses */
  pseudo[8] = 0, pseudo[9] = 17, pseudo[10] = udp_len >> 8, pseudo[11] = udp_len & 0xff;

  frame[40] = frame[41] = 0;
  sum = sum16 (frame + 34, udp_len, sum16 (pseudo, sizeof pseudo, 0));
  *full = ~fold (sum) & 0xffff;
  if (*full == 0)
    *full = 0xffff;
  /* What the driver leaves in the field: the folded pseudo-header sum. */
  sum = fold (sum16 (pseudo, sizeof pseudo, 0));
  frame[40] = sum >> 8, frame[41] = sum & 0xff;
  return frame;
}

static void
test_checksum (Fixture *f, gconstpointer data)
{
  gboolean guest_csum = ((const Case *) data)->param != 0;
  static const gsize payloads[] = { 0, 1, 2, 17, 1000, 1471 };

  negotiate (f, NF (CSUM) | NF (MRG_RXBUF) | (guest_csum ? NF (GUEST_CSUM) : 0));
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);
  post_rx (f, 0, 200, 100, FALSE);
  publish (f, 0);

  for (guint i = 0; i < G_N_ELEMENTS (payloads); i++)
    {
      gsize len;
      guint16 full;
      g_autofree guint8 *frame = udp_frame (f, payloads[i], &len, &full);
      VhuNetHeader hdr = { 0 };
      g_auto (Received) r = { 0 };

      hdr.flags = VHU_NET_HDR_F_NEEDS_CSUM;
      hdr.csum_start = GUINT16_TO_LE (34);
      hdr.csum_offset = GUINT16_TO_LE (6);
      g_assert_cmpint (add_tx (f, 1, &hdr, frame, len, i % N_LAYOUTS), >=, 0);
      publish (f, 1);
      g_assert_true (receive_frame (f, 0, &r));
      g_assert_cmpuint (r.data->len, ==, len);
      if (guest_csum)
        {
          /* Passed on for the receiving driver to complete. */
          g_assert_cmpuint (r.hdr.flags, ==, VHU_NET_HDR_F_NEEDS_CSUM);
          g_assert_cmpuint (GUINT16_FROM_LE (r.hdr.csum_start), ==, 34);
          g_assert_cmpuint (GUINT16_FROM_LE (r.hdr.csum_offset), ==, 6);
          g_assert_cmpmem (r.data->data, len, frame, len);
        }
      else
        {
          /* Completed by the device. */
          g_assert_cmpuint (r.hdr.flags, ==, 0);
          g_assert_cmpuint ((guint) r.data->data[40] << 8 | r.data->data[41], ==, full);
          g_assert_cmpmem (r.data->data, 40, frame, 40);
          g_assert_cmpmem (r.data->data + 42, len - 42, frame + 42, len - 42);
        }
    }

  /* A checksum position outside the frame: dropped. */
  {
    g_autofree guint8 *frame = random_frame (f, 50);
    VhuNetHeader hdr = { 0 };

    hdr.flags = VHU_NET_HDR_F_NEEDS_CSUM;
    hdr.csum_start = GUINT16_TO_LE (40);
    hdr.csum_offset = GUINT16_TO_LE (9);
    g_assert_cmpint (add_tx (f, 1, &hdr, frame, 50, LAYOUT_FLAT), >=, 0);
    hdr.csum_start = GUINT16_TO_LE (60);
    hdr.csum_offset = GUINT16_TO_LE (0);
    g_assert_cmpint (add_tx (f, 1, &hdr, frame, 50, LAYOUT_FLAT), >=, 0);
    publish (f, 1);
    g_assert_cmpuint (stats (f).tx_dropped, ==, 2);
    g_assert_cmpuint (check_received (f, 0), ==, 0);
  }
}

/* ------------------------------------------------------------------------ */
/* Control queue, MQ                                                        */

/* Sends one control command and returns the ack byte (or -1 for none). */
static gint
ctrl (Fixture *f, guint q, const guint8 *cmd, gsize len, gboolean with_ack)
{
  VhuTestBuffer bufs[2];
  guint n = 0, head;
  guint32 used_len;
  guint8 ack = 0xee;

  bufs[n++] = VHU_TEST_OUT (cmd, len);
  if (with_ack)
    bufs[n++] = VHU_TEST_IN (1);
  g_assert_cmpint (vhu_test_driver_add (f->drv[q], bufs, n, FALSE), >=, 0);
  publish (f, q);
  g_assert_true (vhu_test_driver_get_used (f->drv[q], &head, &used_len));
  if (!with_ack)
    {
      g_assert_cmpuint (used_len, ==, 0);
      return -1;
    }
  g_assert_cmpuint (used_len, ==, 1);
  vhu_test_driver_read_in (f->drv[q], head, &ack, 1);
  return ack;
}

static void
test_ctrl_mq (Fixture *f, gconstpointer data)
{
  const guint ctrl_q = 4;
  static const guint8 pairs_2[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 };
  static const guint8 pairs_1[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 1, 0 };
  static const guint8 pairs_3[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 3, 0 };
  static const guint8 pairs_0[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 0, 0 };
  static const guint8 pairs_short[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 2 };
  static const guint8 promisc[] = { VHU_NET_CTRL_RX, VHU_NET_CTRL_RX_PROMISC, 1 };
  static const guint8 allmulti[] = { VHU_NET_CTRL_RX, 1, 0 };
  static const guint8 rx_bad[] = { VHU_NET_CTRL_RX, 6, 1 };
  static const guint8 mac_table[] = { VHU_NET_CTRL_MAC, VHU_NET_CTRL_MAC_TABLE_SET,
                                      1, 0, 0, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56,
                                      0, 0, 0, 0 };
  static const guint8 mac_table_short[] = { VHU_NET_CTRL_MAC, VHU_NET_CTRL_MAC_TABLE_SET,
                                            2, 0, 0, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56,
                                            0, 0, 0, 0 };
  static const guint8 vlan[] = { VHU_NET_CTRL_VLAN, 0, 1, 0 };
  static const guint8 unknown[] = { 99, 0 };
  static const guint8 one_byte[] = { VHU_NET_CTRL_MQ };
  g_autofree guint8 *frame = random_frame (f, 300);
  VhuNetStats s;

  negotiate (f, NF (MQ) | NF (CTRL_VQ) | NF (CTRL_RX) | NF (MRG_RXBUF));
  g_assert_cmpuint (vhu_net_device_get_queue_pairs (f->device), ==, 2);
  for (guint q = 0; q < 4; q++)
    start_queue (f, q, 128);
  post_rx (f, 0, 16, 2048, FALSE);
  publish (f, 0);
  post_rx (f, 2, 16, 2048, FALSE);
  publish (f, 2);
  start_queue (f, ctrl_q, 64);

  /* Only the first pair until the driver says otherwise: a frame on the
   * second waits. */
  g_assert_cmpuint (vhu_net_device_get_active_pairs (f->device), ==, 1);
  send_frame (f, 1, frame, 300, LAYOUT_FLAT);
  publish (f, 3);
  g_assert_cmpuint (check_received (f, 1), ==, 0);
  send_frame (f, 0, frame, 100, LAYOUT_FLAT);
  publish (f, 1);
  g_assert_cmpuint (check_received (f, 0), ==, 1);

  g_assert_cmpint (ctrl (f, ctrl_q, pairs_2, sizeof pairs_2, TRUE), ==, VHU_NET_OK);
  g_assert_cmpuint (vhu_net_device_get_active_pairs (f->device), ==, 2);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (check_received (f, 1), ==, 1);
  g_assert_cmpuint (reap_tx (f, 1), ==, 1);
  send_frame (f, 1, frame, 200, LAYOUT_SCATTER);
  publish (f, 3);
  g_assert_cmpuint (check_received (f, 1), ==, 1);

  /* Out of range, or short: refused, nothing changes. */
  g_assert_cmpint (ctrl (f, ctrl_q, pairs_3, sizeof pairs_3, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpint (ctrl (f, ctrl_q, pairs_0, sizeof pairs_0, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpint (ctrl (f, ctrl_q, pairs_short, sizeof pairs_short, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpuint (vhu_net_device_get_active_pairs (f->device), ==, 2);

  /* Receive modes and the MAC filter are acknowledged. */
  g_assert_cmpint (ctrl (f, ctrl_q, promisc, sizeof promisc, TRUE), ==, VHU_NET_OK);
  g_assert_cmpint (ctrl (f, ctrl_q, allmulti, sizeof allmulti, TRUE), ==, VHU_NET_OK);
  g_assert_cmpint (ctrl (f, ctrl_q, mac_table, sizeof mac_table, TRUE), ==, VHU_NET_OK);
  g_assert_cmpint (ctrl (f, ctrl_q, rx_bad, sizeof rx_bad, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpint (ctrl (f, ctrl_q, mac_table_short, sizeof mac_table_short, TRUE), ==,
                   VHU_NET_ERR);
  /* What was not offered, or is not a command. */
  g_assert_cmpint (ctrl (f, ctrl_q, vlan, sizeof vlan, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpint (ctrl (f, ctrl_q, unknown, sizeof unknown, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpint (ctrl (f, ctrl_q, one_byte, sizeof one_byte, TRUE), ==, VHU_NET_ERR);
  g_assert_cmpint (ctrl (f, ctrl_q, pairs_1, sizeof pairs_1, FALSE), ==, -1);

  /* Back to one pair (the command without room for an ack still counted). */
  g_assert_cmpuint (vhu_net_device_get_active_pairs (f->device), ==, 1);
  send_frame (f, 1, frame, 50, LAYOUT_FLAT);
  publish (f, 3);
  g_assert_cmpuint (check_received (f, 1), ==, 0);
  g_assert_cmpint (ctrl (f, ctrl_q, pairs_2, sizeof pairs_2, TRUE), ==, VHU_NET_OK);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (check_received (f, 1), ==, 1);

  s = stats (f);
  g_assert_cmpuint (s.ctrl_ok, ==, 6);
  g_assert_cmpuint (s.ctrl_err, ==, 8);
  g_assert_true (g_queue_is_empty (&f->expected[0]));
  g_assert_true (g_queue_is_empty (&f->expected[1]));
}

/* CTRL_VQ without MQ: the control queue is queue 2, one pair carries
 * traffic, multiqueue commands are refused. */
static void
test_ctrl_single (Fixture *f, gconstpointer data)
{
  static const guint8 pairs_1[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 1, 0 };
  static const guint8 nobcast[] = { VHU_NET_CTRL_RX, VHU_NET_CTRL_RX_NOBCAST, 0 };
  g_autofree guint8 *frame = random_frame (f, 700);

  negotiate (f, NF (CTRL_VQ) | NF (CTRL_RX));
  start_queue (f, 0, 64);
  start_queue (f, 1, 64);
  start_queue (f, 2, 64);
  g_assert_cmpint (ctrl (f, 2, nobcast, sizeof nobcast, TRUE), ==, VHU_NET_OK);
  g_assert_cmpint (ctrl (f, 2, pairs_1, sizeof pairs_1, TRUE), ==, VHU_NET_ERR);
  post_rx (f, 0, 2, 1526, FALSE);
  publish (f, 0);
  send_frame (f, 0, frame, 700, LAYOUT_SPLIT);
  publish (f, 1);
  g_assert_cmpuint (check_received (f, 0), ==, 1);
  g_assert_cmpuint (stats (f).ctrl_ok, ==, 1);
  g_assert_cmpuint (stats (f).ctrl_err, ==, 1);
}

/* Without a control queue of its own (QEMU and DPDK keep it), every pair
 * the front-end enables carries traffic: with MQ and CTRL_VQ negotiated
 * and the control queue never started, or with neither negotiated (QEMU
 * does not pass them on). */
static void
test_mq_without_ctrl (Fixture *f, gconstpointer data)
{
  const guint pairs = 3;
  gboolean negotiated = ((const Case *) data)->param == 0;

  negotiate (f, (negotiated ? NF (MQ) | NF (CTRL_VQ) : 0) | NF (MRG_RXBUF));
  for (guint q = 0; q < 2 * pairs; q++)
    start_queue (f, q, 64);
  for (guint k = 0; k < pairs; k++)
    {
      post_rx (f, 2 * k, 32, 1600, FALSE);
      publish (f, 2 * k);
    }
  for (guint round = 0; round < 20; round++)
    for (guint k = 0; k < pairs; k++)
      {
        gsize len = g_rand_int_range (f->rand, 14, 1515);
        g_autofree guint8 *frame = random_frame (f, len);

        send_frame (f, k, frame, len, g_rand_int_range (f->rand, 0, N_LAYOUTS));
        publish (f, 2 * k + 1);
        g_assert_cmpuint (check_received (f, k), ==, 1);
        g_assert_cmpuint (reap_tx (f, k), ==, 1);
        post_rx (f, 2 * k, 1, 1600, FALSE);
        publish (f, 2 * k);
      }

  /* A pair the front-end disables waits; enabled again, it goes on. */
  {
    g_autofree guint8 *frame = random_frame (f, 64);

    vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 3, 0);
    send_frame (f, 1, frame, 64, LAYOUT_FLAT);
    publish (f, 3);
    g_assert_cmpuint (check_received (f, 1), ==, 0);
    vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, 3, 1);
    vhu_test_frontend_flush (f->fe);
    g_assert_cmpuint (check_received (f, 1), ==, 1);
  }
}

/* ------------------------------------------------------------------------ */
/* Config space, MTU, RARP                                                  */

static void
test_config (Fixture *f, gconstpointer data)
{
  static const guint8 mac[6] = { 0x52, 0x54, 0x00, 0xab, 0xcd, 0xef };
  guint8 config[64];
  guint64 offered, mtu = 1400;
  VhuNetConfig c;

  vhu_net_device_set_mac (f->device, mac);
  vhu_net_device_set_mtu (f->device, 9000);
  offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmphex (offered & (NF (MAC) | NF (MTU) | NF (STATUS) | NF (MRG_RXBUF) | NF (CTRL_VQ)
                              | NF (CTRL_RX) | NF (MQ) | NF (CSUM) | NF (GUEST_CSUM)),
                   ==,
                   NF (MAC) | NF (MTU) | NF (STATUS) | NF (MRG_RXBUF) | NF (CTRL_VQ)
                     | NF (CTRL_RX) | NF (MQ) | NF (CSUM) | NF (GUEST_CSUM));
  /* No segmentation offloads. */
  g_assert_cmphex (offered & (NF (HOST_TSO4) | NF (GUEST_TSO4)), ==, 0);
  negotiate (f, NF (MAC) | NF (MTU) | NF (STATUS) | NF (MQ) | NF (CTRL_VQ));

  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, sizeof c, config), ==,
                    VHU_CONFIG_HEADER_SIZE + sizeof c);
  memcpy (&c, config, sizeof c);
  g_assert_cmpmem (c.mac, 6, mac, 6);
  g_assert_cmpuint (GUINT16_FROM_LE (c.status), ==, VHU_NET_S_LINK_UP);
  g_assert_cmpuint (GUINT16_FROM_LE (c.max_virtqueue_pairs), ==, 3);
  g_assert_cmpuint (GUINT16_FROM_LE (c.mtu), ==, 9000);

  /* A field alone; outside the config space: refused. */
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 10, 2, config), ==,
                    VHU_CONFIG_HEADER_SIZE + 2);
  g_assert_cmpuint (config[0] | config[1] << 8, ==, 9000);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 20, 8, config), ==, 0);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, 64, config), ==, 0);
  g_assert_cmpuint (vhu_test_frontend_set_config (f->fe, 0, mac, 6, 0), !=, 0);

  /* NET_SET_MTU: what the front-end says. */
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_NET_SET_MTU, &mtu, sizeof mtu, NULL, 0);
  g_assert_cmpuint (vhu_net_device_get_mtu (f->device), ==, 1400);
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 10, 2, config), ==,
                    VHU_CONFIG_HEADER_SIZE + 2);
  g_assert_cmpuint (config[0] | config[1] << 8, ==, 1400);
  mtu = 20;
  g_assert_cmpuint (vhu_test_frontend_call_ack (f->fe, VHOST_USER_REQUEST_NET_SET_MTU, &mtu,
                                                sizeof mtu, NULL, 0),
                    !=, 0);
  g_assert_cmpuint (vhu_net_device_get_mtu (f->device), ==, 1400);
}

/* Without --mac, --mtu or more than one pair, those features are not
 * offered. */
static void
test_config_plain (Fixture *f, gconstpointer data)
{
  guint64 offered = vhu_test_frontend_get_u64 (f->fe, VHOST_USER_REQUEST_GET_FEATURES);
  guint8 config[12];

  g_assert_cmphex (offered & (NF (MAC) | NF (MTU) | NF (MQ)), ==, 0);
  negotiate (f, NF (STATUS));
  g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, 12, config), ==,
                    VHU_CONFIG_HEADER_SIZE + 12);
  g_assert_cmpuint (config[6] | config[7] << 8, ==, VHU_NET_S_LINK_UP);
  g_assert_cmpuint (config[8] | config[9] << 8, ==, 1);
}

static void
test_rarp (Fixture *f, gconstpointer data)
{
  guint8 mac[8] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0 };
  g_auto (Received) r = { 0 };
  guint8 want[VHU_NET_RARP_FRAME_SIZE] = { 0 };

  negotiate (f, NF (MRG_RXBUF));
  start_queue (f, 0, 64);
  start_queue (f, 1, 64);

  /* No receive buffer: the announcement is lost, the request succeeds. */
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SEND_RARP, mac, sizeof mac, NULL, 0);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, 0);

  post_rx (f, 0, 4, 2048, FALSE);
  publish (f, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SEND_RARP, mac, sizeof mac, NULL, 0);
  vhu_test_frontend_flush (f->fe);
  g_assert_true (receive_frame (f, 0, &r));
  memset (want, 0xff, 6);
  memcpy (want + 6, mac, 6);
  want[12] = 0x80, want[13] = 0x35;               /* RARP */
  want[14] = 0, want[15] = 1;                     /* Ethernet */
  want[16] = 8, want[17] = 0;                     /* IPv4 */
  want[18] = 6, want[19] = 4, want[20] = 0, want[21] = 3; /* reverse request */
  memcpy (want + 22, mac, 6);
  memcpy (want + 32, mac, 6);
  g_assert_cmpmem (r.data->data, r.data->len, want, sizeof want);
  g_assert_cmpuint (r.hdr.flags, ==, 0);
}

/* A front-end that goes away in the middle of a starvation, and a new one:
 * the device starts from scratch. */
static void
test_reconnect (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *frame = random_frame (f, 500);

  negotiate (f, NF (MRG_RXBUF));
  start_queue (f, 0, 64);
  start_queue (f, 1, 64);
  send_frame (f, 0, frame, 500, LAYOUT_FLAT);
  publish (f, 1);
  g_assert_cmpuint (stats (f).rx_starved, ==, 1);

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  drain_default_context ();
  g_assert_false (vhost_user_device_get_connected (VHOST_USER_DEVICE (f->device)));
  g_queue_clear_full (&f->expected[0], (GDestroyNotify) g_bytes_unref);

  f->fe = vhu_test_frontend_new_for_device (VHOST_USER_DEVICE (f->device));
  negotiate (f, 0);
  g_assert_cmpuint (vhu_net_device_get_header_size (f->device), ==, HDR);
  start_queue (f, 0, 64);
  start_queue (f, 1, 64);
  post_rx (f, 0, 4, 2048, TRUE);
  publish (f, 0);
  send_frame (f, 0, frame, 500, LAYOUT_INDIRECT);
  publish (f, 1);
  g_assert_cmpuint (check_received (f, 0), ==, 1);
}

/* ------------------------------------------------------------------------ */
/* Tap                                                                      */

#define TAP_WAIT_US (5 * G_USEC_PER_SEC)

/* A frame for the wire: broadcast, from a local address, EtherType
 * 0x88b5 (local experimental), @len bytes in all. */
static guint8 *
wire_frame (Fixture *f, gsize len)
{
  guint8 *frame = random_frame (f, len);

  g_assert_cmpuint (len, >=, 14);
  memset (frame, 0xff, 6);
  memcpy (frame + 6, (guint8[]) { 0x02, 0, 0, 0, 0, 1 }, 6);
  frame[12] = 0x88, frame[13] = 0xb5;
  return frame;
}

/* Sends @frame into the tap interface's stack: the device reads it from
 * its tap, and it is expected on pair 0. */
static void
tap_inject (Fixture *f, const guint8 *frame, gsize len, gboolean expect)
{
  g_assert_cmpint (send (f->packet_fd, frame, len, 0), ==, (gssize) len);
  if (expect)
    g_queue_push_tail (&f->expected[0], g_bytes_new (frame, len));
}

/* Lets the device run until @n frames are on receive queue 0 (not taken
 * yet) or the time is up; returns how many there are. */
static guint
tap_wait_rx (Fixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + TAP_WAIT_US;
  VhuTestDriver *drv = f->drv[0];
  guint16 have;

  while ((have = vhu_test_driver_get_used_idx (drv) - vhu_test_driver_get_last_used (drv)) < n
         && g_get_monotonic_time () < deadline)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  return have;
}

/* Lets the device run until @n transmit chains of pair 0 are used (not
 * taken yet) or the time is up. */
static void
tap_wait_tx_used (Fixture *f, guint n)
{
  gint64 deadline = g_get_monotonic_time () + TAP_WAIT_US;
  VhuTestDriver *drv = f->drv[1];

  while ((guint16) (vhu_test_driver_get_used_idx (drv) - vhu_test_driver_get_last_used (drv)) < n
         && g_get_monotonic_time () < deadline)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
}

/* The next frame the device wrote to the tap (what the stack received),
 * into @buf; -1 if none came in time. */
static gssize
tap_receive (Fixture *f, guint8 *buf, gsize size)
{
  gint64 deadline = g_get_monotonic_time () + TAP_WAIT_US;

  for (;;)
    {
      struct sockaddr_ll from;
      socklen_t from_len = sizeof from;
      struct pollfd pfd = { f->packet_fd, POLLIN, 0 };
      gssize n = recvfrom (f->packet_fd, buf, size, MSG_TRUNC, (struct sockaddr *) &from,
                           &from_len);

      if (n >= 0 && from.sll_pkttype == PACKET_OUTGOING)
        continue; /* what tap_inject() sent */
      if (n >= 0)
        return n;
      g_assert_cmpint (errno, ==, EAGAIN);
      if (g_get_monotonic_time () >= deadline)
        return -1;
      g_main_context_iteration (NULL, FALSE);
      poll (&pfd, 1, 10);
    }
}

static void
test_tap_round_trip (Fixture *f, gconstpointer data)
{
  gboolean mrg = ((const Case *) data)->param != 0;
  const guint n = 300;
  guint received = 0;
  g_autofree guint8 *buf = g_malloc (65536);
  VhuNetStats s;

  if (f->device == NULL)
    return;
  negotiate (f, mrg ? NF (MRG_RXBUF) : 0);
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);

  /* The wire to the guest. */
  for (guint i = 0; i < n; i += 10)
    {
      guint free_rx = vhu_test_driver_get_n_free (f->drv[0]);

      if (mrg)
        post_rx (f, 0, free_rx, 200, FALSE);
      else
        post_rx (f, 0, free_rx / 2, 1526, TRUE);
      publish (f, 0);
      for (guint j = 0; j < 10; j++)
        {
          gsize len = g_rand_int_range (f->rand, 60, 1515);
          g_autofree guint8 *frame = wire_frame (f, len);

          tap_inject (f, frame, len, TRUE);
        }
      tap_wait_rx (f, 10);
      received += check_received (f, 0);
    }
  /* A frame may take several buffers; on a worker thread, the last ones
   * may come after the wait above. */
  {
    gint64 deadline = g_get_monotonic_time () + TAP_WAIT_US;

    while (received < n && g_get_monotonic_time () < deadline)
      {
        tap_wait_rx (f, 1);
        received += check_received (f, 0);
      }
  }
  g_assert_cmpuint (received, ==, n);
  g_assert_true (g_queue_is_empty (&f->expected[0]));

  /* The guest to the wire. */
  for (guint i = 0; i < n; i++)
    {
      gsize len = g_rand_int_range (f->rand, 60, 1515);
      g_autofree guint8 *frame = wire_frame (f, len);

      g_assert_cmpint (add_tx (f, 1, NULL, frame, len, i % N_LAYOUTS), >=, 0);
      publish (f, 1);
      g_assert_cmpint (tap_receive (f, buf, 65536), ==, (gssize) len);
      g_assert_cmpmem (buf, len, frame, len);
      /* On a worker thread, the chain may come back just after the frame
       * went out. */
      tap_wait_tx_used (f, 1);
      g_assert_cmpuint (reap_tx (f, 0), ==, 1);
    }
  s = stats (f);
  g_assert_cmpuint (s.rx_frames, ==, n);
  g_assert_cmpuint (s.tx_frames, ==, n);
  g_assert_cmpuint (s.tx_dropped + s.rx_dropped + s.rx_bad_buffers, ==, 0);
}

/* No receive buffers: the device stops polling the tap (no busy loop,
 * frames wait in the kernel's queue) until the driver adds some. */
static void
test_tap_starvation (Fixture *f, gconstpointer data)
{
  const guint n = 12;

  if (f->device == NULL)
    return;
  negotiate (f, NF (MRG_RXBUF));
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);

  for (guint i = 0; i < n; i++)
    {
      gsize len = 100 + 100 * i;
      g_autofree guint8 *frame = wire_frame (f, len);

      tap_inject (f, frame, len, TRUE);
    }
  /* The first frame is read only when there is room for it: the device
   * looks, finds none, and waits, not polling the readable tap. */
  {
    gint64 deadline = g_get_monotonic_time () + TAP_WAIT_US;

    while (stats (f).rx_starved == 0 && g_get_monotonic_time () < deadline)
      if (!g_main_context_iteration (NULL, FALSE))
        g_usleep (1000);
  }
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, 0);
  g_assert_false (g_main_context_pending (NULL));
  g_assert_cmpuint (stats (f).rx_starved, >=, 1);
  g_assert_cmpuint (stats (f).rx_dropped, ==, 0);

  /* Room for a few: they come, the rest waits again. */
  post_rx (f, 0, 4, 1600, FALSE);
  g_assert_true (publish (f, 0));
  g_assert_cmpuint (tap_wait_rx (f, 4), ==, 4);
  g_assert_cmpuint (check_received (f, 0), ==, 4);
  vhu_test_frontend_flush (f->fe);
  g_assert_false (g_main_context_pending (NULL));

  post_rx (f, 0, 64, 1600, FALSE);
  g_assert_true (publish (f, 0));
  g_assert_cmpuint (tap_wait_rx (f, n - 4), >=, n - 4);
  g_assert_cmpuint (check_received (f, 0), ==, n - 4);
  g_assert_cmpuint (stats (f).rx_dropped, ==, 0);
}

/* Frames larger than the interface's MTU when it was opened: past the
 * chains taken for a usual frame, into the bounce buffer, then into more
 * chains; without mergeable buffers, dropped. */
static void
test_tap_large_frames (Fixture *f, gconstpointer data)
{
  gboolean mrg = ((const Case *) data)->param != 0;
  static const gsize sizes[] = { 9014, 1600, 60, 4000 };

  if (f->device == NULL)
    return;
  set_interface (TAP_NAME, 9000, TRUE);
  negotiate (f, mrg ? NF (MRG_RXBUF) : 0);
  start_queue (f, 0, 256);
  start_queue (f, 1, 256);
  post_rx (f, 0, mrg ? 200 : 64, mrg ? 1024 : 1526, FALSE);
  publish (f, 0);

  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autofree guint8 *frame = wire_frame (f, sizes[i]);
      gboolean fits = mrg || HDR + sizes[i] <= 1526;

      tap_inject (f, frame, sizes[i], fits);
    }
  g_assert_cmpuint (tap_wait_rx (f, mrg ? 9 + 2 + 1 + 4 : 1), >=, 1);
  vhu_test_frontend_flush (f->fe);
  g_assert_cmpuint (check_received (f, 0), ==, mrg ? 4 : 1);
  g_assert_true (g_queue_is_empty (&f->expected[0]));
  g_assert_cmpuint (stats (f).rx_dropped, ==, mrg ? 0 : 3);
}

/* Malformed transmit chains never reach the wire. */
static void
test_tap_tx_malformed (Fixture *f, gconstpointer data)
{
  g_autofree guint8 *frame = wire_frame (f, 300);
  g_autofree guint8 *buf = g_malloc (2048);
  guint8 tiny[6] = { 0 };
  VhuTestBuffer short_tx = VHU_TEST_OUT (tiny, sizeof tiny);
  VhuNetHeader hdr = { 0 };

  if (f->device == NULL)
    return;
  negotiate (f, NF (CSUM));
  start_queue (f, 0, 64);
  start_queue (f, 1, 64);

  g_assert_cmpint (vhu_test_driver_add (f->drv[1], &short_tx, 1, FALSE), >=, 0);
  hdr.gso_type = 1;
  g_assert_cmpint (add_tx (f, 1, &hdr, frame, 300, LAYOUT_FLAT), >=, 0);
  hdr.gso_type = 0;
  hdr.flags = VHU_NET_HDR_F_NEEDS_CSUM;
  hdr.csum_start = GUINT16_TO_LE (299);
  hdr.csum_offset = GUINT16_TO_LE (0);
  g_assert_cmpint (add_tx (f, 1, &hdr, frame, 300, LAYOUT_FLAT), >=, 0);
  g_assert_cmpint (add_tx (f, 1, NULL, frame, 300, LAYOUT_SCATTER), >=, 0);
  publish (f, 1);
  g_assert_cmpuint (reap_tx (f, 0), ==, 4);
  g_assert_cmpint (tap_receive (f, buf, 2048), ==, 300);
  g_assert_cmpmem (buf, 300, frame, 300);
  g_assert_cmpuint (stats (f).tx_dropped, ==, 3);
  g_assert_cmpuint (stats (f).tx_frames, ==, 1);
}

static gint
compare_bytes (gconstpointer a, gconstpointer b)
{
  return g_bytes_compare (*(GBytes *const *) a, *(GBytes *const *) b);
}

/* Takes every frame on receive queue @q into @into. */
static void
collect_frames (Fixture *f, guint q, GPtrArray *into)
{
  g_auto (Received) r = { 0 };

  while (receive_frame (f, q, &r))
    g_ptr_array_add (into, g_byte_array_free_to_bytes (g_steal_pointer (&r.data)));
}

/* Two pairs on a multi-queue tap, the control queue the device's: the
 * second tap queue is detached until the driver enables the second pair,
 * and detached again when it goes back to one. */
static void
test_tap_mq (Fixture *f, gconstpointer data)
{
  static const guint8 pairs_2[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 };
  static const guint8 pairs_1[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 1, 0 };
  g_autoptr (GPtrArray) sent = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GPtrArray) got = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autofree guint8 *buf = g_malloc (2048);
  const guint n = 40;

  if (f->device == NULL)
    return;
  negotiate (f, NF (MQ) | NF (CTRL_VQ) | NF (MRG_RXBUF));
  for (guint q = 0; q < 4; q++)
    start_queue (f, q, 128);
  start_queue (f, 4, 64);
  post_rx (f, 0, 128, 1600, FALSE);
  publish (f, 0);
  post_rx (f, 2, 128, 1600, FALSE);
  publish (f, 2);

  for (guint round = 0; round < 3; round++)
    {
      /* One pair, two, one again. */
      const guint8 *cmd = round == 1 ? pairs_2 : pairs_1;
      guint on_pair_1;

      g_assert_cmpint (ctrl (f, 4, cmd, sizeof pairs_1, TRUE), ==, VHU_NET_OK);
      for (guint i = 0; i < n; i++)
        {
          /* Flows the kernel spreads over the attached queues. */
          gsize len = 60 + i;
          guint8 *frame = wire_frame (f, len);

          frame[12] = 0x08, frame[13] = 0x00;
          frame[14] = 0x45, frame[23] = 17;
          frame[16] = 0, frame[17] = len - 14;
          tap_inject (f, frame, len, FALSE);
          g_ptr_array_add (sent, g_bytes_new_take (frame, len));
        }
      {
        gint64 deadline = g_get_monotonic_time () + TAP_WAIT_US;

        while (got->len < sent->len && g_get_monotonic_time () < deadline)
          {
            if (!g_main_context_iteration (NULL, FALSE))
              g_usleep (1000);
            collect_frames (f, 0, got);
            on_pair_1 = got->len;
            collect_frames (f, 2, got);
            on_pair_1 = got->len - on_pair_1;
            /* A detached queue gets nothing. */
            if (round != 1)
              g_assert_cmpuint (on_pair_1, ==, 0);
            post_rx (f, 0, vhu_test_driver_get_n_free (f->drv[0]), 1600, FALSE);
            publish (f, 0);
            post_rx (f, 2, vhu_test_driver_get_n_free (f->drv[2]), 1600, FALSE);
            publish (f, 2);
          }
      }
      /* Every frame once, whichever pair it came on. */
      g_assert_cmpuint (got->len, ==, sent->len);
      g_ptr_array_sort (sent, compare_bytes);
      g_ptr_array_sort (got, compare_bytes);
      for (guint i = 0; i < sent->len; i++)
        g_assert_true (g_bytes_equal (sent->pdata[i], got->pdata[i]));
      g_ptr_array_set_size (sent, 0);
      g_ptr_array_set_size (got, 0);
    }

  /* The guest sends on both pairs (the second one is inactive again:
   * its frame waits). */
  {
    g_autofree guint8 *frame = wire_frame (f, 100);

    g_assert_cmpint (add_tx (f, 1, NULL, frame, 100, LAYOUT_FLAT), >=, 0);
    publish (f, 1);
    g_assert_cmpint (tap_receive (f, buf, 2048), ==, 100);
    g_assert_cmpint (add_tx (f, 3, NULL, frame, 100, LAYOUT_FLAT), >=, 0);
    publish (f, 3);
    g_assert_cmpuint (reap_tx (f, 1), ==, 0);
    g_assert_cmpint (ctrl (f, 4, pairs_2, sizeof pairs_2, TRUE), ==, VHU_NET_OK);
    vhu_test_frontend_flush (f->fe);
    g_assert_cmpuint (reap_tx (f, 1), ==, 1);
    g_assert_cmpint (tap_receive (f, buf, 2048), ==, 100);
  }
  g_assert_cmpuint (stats (f).rx_dropped, ==, 0);
}

/* ------------------------------------------------------------------------ */
/* Queue modes and worker threads                                           */

#define ASYNC_WAIT_US (30 * G_USEC_PER_SEC)

/* Publishes what was added to queue @q and kicks if the device asked for
 * it, without waiting: the device may run on another thread. */
static void
publish_async (Fixture *f, guint q)
{
  if (vhu_test_driver_publish (f->drv[q]))
    g_assert_cmpint (eventfd_write (f->kick[q], 1), ==, 0);
}

/* Nothing came: let the device's context run (control messages, and pairs
 * left there), then give the other threads a moment. */
static void
idle_wait (gint64 deadline, const char *what)
{
  if (!g_main_context_iteration (NULL, FALSE))
    g_usleep (50);
  if (g_get_monotonic_time () > deadline)
    g_error ("timed out waiting for %s", what);
}

/* @total more frames on each of @pairs pairs, in random sizes and layouts,
 * receive buffers posted as the rings have room (of random sizes with
 * mergeable buffers, 1526 bytes without), until every frame sent (these,
 * and any sent before) came back on its pair, byte for byte and in order,
 * and every transmit chain was returned. Works whether the device runs
 * here or on other threads. */
static void
traffic (Fixture *f, guint pairs, guint total, gboolean mrg)
{
  guint sent[MAX_QUEUES / 2] = { 0 };
  gint64 deadline = g_get_monotonic_time () + ASYNC_WAIT_US;
  gboolean done = FALSE;

  g_assert_cmpuint (pairs, <=, MAX_QUEUES / 2);
  while (!done)
    {
      gboolean progress = FALSE;

      done = TRUE;
      for (guint k = 0; k < pairs; k++)
        {
          guint rx = 2 * k, tx = 2 * k + 1;
          guint free_rx = vhu_test_driver_get_n_free (f->drv[rx]);
          guint batch = g_rand_int_range (f->rand, 1, 65);
          guint n;

          if (free_rx > 0)
            {
              for (guint i = 0; i < free_rx; i++)
                post_rx (f, rx, 1, mrg ? (guint) g_rand_int_range (f->rand, 64, 700) : HDR + 1514,
                         FALSE);
              publish_async (f, rx);
            }
          batch = MIN (batch, total - sent[k]);
          for (guint i = 0; i < batch && vhu_test_driver_get_n_free (f->drv[tx]) >= 5; i++)
            {
              gsize len = g_rand_int_range (f->rand, 0, 1515);
              g_autofree guint8 *frame = random_frame (f, len);

              send_frame (f, k, frame, len, g_rand_int_range (f->rand, 0, N_LAYOUTS));
              sent[k]++;
            }
          publish_async (f, tx);

          /* Each frame is checked against the next one expected. */
          n = check_received (f, k);
          progress |= n > 0;
          n = reap_tx (f, k);
          progress |= n > 0;
          if (sent[k] < total || !g_queue_is_empty (&f->expected[k])
              || vhu_test_driver_get_in_flight (f->drv[tx]) > 0)
            done = FALSE;
        }
      if (!done && !progress)
        idle_wait (deadline, "the frames to come back");
    }
  for (guint k = 0; k < pairs; k++)
    g_assert_true (g_queue_is_empty (&f->expected[k]));
}

/* Waits for @n frames on receive queue @q (not taken yet). */
#define wait_rx(f, q, n) wait_rx_at (f, q, n, G_STRLOC)
static void
wait_rx_at (Fixture *f, guint q, guint n, const char *where)
{
  gint64 deadline = g_get_monotonic_time () + ASYNC_WAIT_US;

  while ((guint16) (vhu_test_driver_get_used_idx (f->drv[q])
                    - vhu_test_driver_get_last_used (f->drv[q]))
         < n)
    idle_wait (deadline, where);
}

/* GET_VRING_BASE on queue @q: the ring stops (its thread finishes what it
 * does first); returns the base. */
static guint32
stop_queue (Fixture *f, guint q)
{
  return vhu_test_frontend_get_vring_base (f->fe, q);
}

/* The ring starts again from @base, with the same driver. */
static void
restart_queue (Fixture *f, guint q, guint32 base)
{
  VhuVringAddr addr = vhu_test_driver_get_vring_addr (f->drv[q], q, 0);

  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_NUM, q, vhu_test_driver_get_num (f->drv[q]));
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_BASE, q, base);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  close_fd (&f->kick[q]);
  f->kick[q] = vhu_test_new_eventfd ();
  vhu_test_frontend_vring_fd_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_KICK, q, f->kick[q]);
  vhu_test_frontend_vring_state_ok (f->fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, q, 1);
}

/* The pairs in the case's mode, on the device's context or on worker
 * threads: traffic on every pair; the first pair's rings stopped with
 * frames waiting (nothing moves while they are stopped, nothing is lost
 * or doubled) and started again; more traffic; the config space read
 * meanwhile. A polling queue on the device's context still lets every
 * control message through. */
static void
test_modes_round_trip (Fixture *f, gconstpointer data)
{
  const Case *c = data;
  gboolean mrg = (c->param & 1) != 0, event_idx = (c->param & 2) != 0;
  guint pairs = MAX (1, c->pairs), total = frames_wanted ();
  guint8 config[VHU_CONFIG_HEADER_SIZE + sizeof (VhuNetConfig)];
  guint32 rx_base, tx_base;
  guint16 rx_used, tx_used;
  VhuNetStats s;

  negotiate (f, (mrg ? NF (MRG_RXBUF) : 0) | (event_idx ? VF (RING_EVENT_IDX) : 0)
                  | (pairs > 1 ? NF (MQ) : 0));
  for (guint q = 0; q < 2 * pairs; q++)
    start_queue (f, q, 256);
  for (guint k = 0; k < pairs; k++)
    g_assert_true (vhu_net_device_get_pair_context (f->device, k)
                   == (c->threads > 0 ? vhu_workers_get_context (f->workers, k % c->threads)
                                      : vhost_user_device_get_context (
                                          VHOST_USER_DEVICE (f->device))));

  traffic (f, pairs, total / 2, mrg);

  /* Stopped with frames waiting on both sides. */
  {
    g_autofree guint8 *frame = random_frame (f, 300);

    send_frame (f, 0, frame, 300, LAYOUT_FLAT);
    tx_base = stop_queue (f, 1);
    rx_base = stop_queue (f, 0);
    /* GET_VRING_BASE counts what the device took. */
    g_assert_cmpuint (tx_base, ==, vhu_test_driver_get_avail_idx (f->drv[1]));
    g_assert_cmpuint (rx_base, <=, vhu_test_driver_get_avail_idx (f->drv[0]));
    publish_async (f, 1);
    rx_used = vhu_test_driver_get_used_idx (f->drv[0]);
    tx_used = vhu_test_driver_get_used_idx (f->drv[1]);
    g_assert_cmpuint (vhu_test_frontend_get_config (f->fe, 0, sizeof (VhuNetConfig), config), ==,
                      sizeof config);
    g_usleep (20000);
    drain_default_context ();
    g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[0]), ==, rx_used);
    g_assert_cmpuint (vhu_test_driver_get_used_idx (f->drv[1]), ==, tx_used);
    restart_queue (f, 0, rx_base);
    restart_queue (f, 1, tx_base);
  }
  traffic (f, pairs, total / 2, mrg);

  s = stats (f);
  g_assert_cmpuint (s.tx_frames, ==, pairs * (total / 2 * 2) + 1);
  g_assert_cmpuint (s.rx_frames, ==, s.tx_frames);
  g_assert_cmpuint (s.tx_bytes, ==, s.rx_bytes);
  g_assert_cmpuint (s.tx_dropped, ==, 0);
  g_assert_cmpuint (s.rx_bad_buffers, ==, 0);
  if (c->threads > 0)
    g_assert_cmpint (g_atomic_int_get (&f->worker_signals), >, 0);
  else
    g_assert_cmpint (g_atomic_int_get (&f->worker_signals), ==, 0);
}

/* Pairs on two worker threads, the control queue on the device's: the
 * driver turns the second pair on and off with the control queue, and a
 * RARP goes to the first pair's receive queue on its thread. */
static void
test_threads_ctrl (Fixture *f, gconstpointer data)
{
  const guint ctrl_q = 4;
  static const guint8 pairs_2[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 0 };
  static const guint8 pairs_1[] = { VHU_NET_CTRL_MQ, VHU_NET_CTRL_MQ_VQ_PAIRS_SET, 1, 0 };
  guint8 mac[8] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0 };
  guint8 want[VHU_NET_RARP_FRAME_SIZE];
  g_autofree guint8 *frame = random_frame (f, 400);
  g_auto (Received) r = { 0 };

  negotiate (f, NF (MQ) | NF (CTRL_VQ) | NF (MRG_RXBUF));
  for (guint q = 0; q < 4; q++)
    start_queue (f, q, 128);
  post_rx (f, 0, 16, 2048, FALSE);
  publish_async (f, 0);
  post_rx (f, 2, 16, 2048, FALSE);
  publish_async (f, 2);
  start_queue (f, ctrl_q, 64);

  /* One pair until the driver says otherwise: the second pair's frame
   * waits. */
  send_frame (f, 1, frame, 400, LAYOUT_SPLIT);
  publish_async (f, 3);
  send_frame (f, 0, frame, 100, LAYOUT_FLAT);
  publish_async (f, 1);
  wait_rx (f, 0, 1);
  g_assert_cmpuint (check_received (f, 0), ==, 1);
  g_usleep (20000);
  g_assert_cmpuint (check_received (f, 1), ==, 0);

  g_assert_cmpint (ctrl (f, ctrl_q, pairs_2, sizeof pairs_2, TRUE), ==, VHU_NET_OK);
  wait_rx (f, 2, 1);
  g_assert_cmpuint (check_received (f, 1), ==, 1);
  g_assert_cmpint (ctrl (f, ctrl_q, pairs_1, sizeof pairs_1, TRUE), ==, VHU_NET_OK);
  g_assert_cmpuint (vhu_net_device_get_active_pairs (f->device), ==, 1);
  traffic (f, 1, 500, TRUE);

  /* Room for the announcement first: traffic may have left only the
   * buffers it used (none free means all are still the device's). */
  post_rx (f, 0, MIN (2, vhu_test_driver_get_n_free (f->drv[0])), 2048, FALSE);
  publish_async (f, 0);
  vhu_test_frontend_call_ok (f->fe, VHOST_USER_REQUEST_SEND_RARP, mac, sizeof mac, NULL, 0);
  wait_rx (f, 0, 1);
  g_assert_true (receive_frame (f, 0, &r));
  vhu_net_build_rarp (want, mac);
  g_assert_cmpmem (r.data->data, r.data->len, want, sizeof want);
  g_assert_cmpuint (stats (f).ctrl_ok, ==, 2);
}

/* ------------------------------------------------------------------------ */
/* The program                                                              */

#define PROGRAM_WAIT_MS 10000

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
  static const struct
  {
    const char *arg;
    const char *message;
  } bad[] = {
    { "--queue-mode=busy", "--queue-mode" },
    { "--threads=-1", "--threads" },
    { "--threads=65", "--threads" },
    { "--poll-us=100", "--poll-us" },
    { "--queue-mode=adaptive --poll-us=-2", "--poll-us" },
    { "--queue-mode=adaptive --poll-us=1000001", "--poll-us" },
  };
  g_autofree char *out = NULL, *err = NULL;
  int status;

  {
    const char *argv[] = { VHOST_USER_NET_PATH, "--help", NULL };

    run_program (argv, &status, &out, &err);
    g_assert_true (g_spawn_check_wait_status (status, NULL));
    g_assert_nonnull (strstr (out, "--queue-mode=MODE"));
    g_assert_nonnull (strstr (out, "--poll-us=N"));
    g_assert_nonnull (strstr (out, "--threads=N"));
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_auto (GStrv) extra = g_strsplit (bad[i].arg, " ", -1);
      const char *argv[8] = { VHOST_USER_NET_PATH, "--socket-path=/nonexistent/net.sock",
                              "--loopback" };
      guint n = 3;

      for (guint k = 0; extra[k] != NULL; k++)
        argv[n++] = extra[k];
      g_clear_pointer (&out, g_free);
      g_clear_pointer (&err, g_free);
      run_program (argv, &status, &out, &err);
      g_assert_true (WIFEXITED (status));
      g_assert_cmpint (WEXITSTATUS (status), ==, 1);
      if (strstr (err, bad[i].message) == NULL)
        g_error ("%s: “%s” does not mention %s", bad[i].arg, err, bad[i].message);
    }
}

/* The socket's file appears at bind(), a moment before listen(): refused
 * until then. */
static int
connect_unix (const char *path)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  gint64 deadline = g_get_monotonic_time () + PROGRAM_WAIT_MS * G_TIME_SPAN_MILLISECOND;

  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  for (;;)
    {
      int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

      g_assert_cmpint (fd, >=, 0);
      if (connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0)
        return fd;
      g_assert_cmpint (errno, ==, ECONNREFUSED);
      close (fd);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (10000);
    }
}

/* The program with two pairs polled on two worker threads: frames go
 * round on both pairs; SIGTERM while the front-end is connected and the
 * queues poll makes it exit 0, closing the connection. */
static void
test_program_sigterm (gconstpointer data)
{
  const char *mode = data;
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vhu-test-net-XXXXXX", &error);
  g_autofree char *sock = g_build_filename (dir, "net.sock", NULL);
  g_autofree char *sock_arg = g_strdup_printf ("--socket-path=%s", sock);
  g_autofree char *mode_arg = g_strdup_printf ("--queue-mode=%s", mode);
  const char *argv[] = { VHOST_USER_NET_PATH, sock_arg, "--loopback", "--queue-pairs=2",
                         "--threads=2", mode_arg, NULL };
  g_autoptr (GSubprocess) proc = NULL;
  Fixture fixture = { 0 }, *f = &fixture;
  gint64 deadline;

  g_assert_no_error (error);
  proc = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_NONE, &error);
  g_assert_no_error (error);
  deadline = g_get_monotonic_time () + PROGRAM_WAIT_MS * G_TIME_SPAN_MILLISECOND;
  while (!g_file_test (sock, G_FILE_TEST_EXISTS))
    {
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
      g_usleep (10000);
    }

  f->fe = vhu_test_frontend_new (connect_unix (sock), NULL);
  f->ram = vhu_test_guest_ram_new (RAM_SIZE, 0, RAM_UVA);
  f->rand = g_rand_new_with_seed (g_test_rand_int ());
  f->packet_fd = -1;
  for (guint q = 0; q < MAX_QUEUES; q++)
    f->kick[q] = f->call[q] = -1;
  for (guint k = 0; k < MAX_QUEUES / 2; k++)
    g_queue_init (&f->expected[k]);

  /* Without a control queue, both pairs carry traffic. */
  negotiate (f, NF (MQ) | NF (MRG_RXBUF));
  for (guint q = 0; q < 4; q++)
    start_queue (f, q, 256);
  traffic (f, 2, 1000, TRUE);

  g_subprocess_send_signal (proc, SIGTERM);
  g_assert_true (vhu_test_frontend_wait_closed (f->fe, PROGRAM_WAIT_MS));
  g_subprocess_wait (proc, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (proc));
  g_assert_cmpint (g_subprocess_get_exit_status (proc), ==, 0);
  g_assert_false (g_file_test (sock, G_FILE_TEST_EXISTS));

  g_clear_pointer (&f->fe, vhu_test_frontend_free);
  for (guint q = 0; q < MAX_QUEUES; q++)
    {
      g_clear_pointer (&f->drv[q], vhu_test_driver_free);
      close_fd (&f->kick[q]);
      close_fd (&f->call[q]);
    }
  g_clear_pointer (&f->ram, vhu_test_guest_ram_free);
  g_rand_free (f->rand);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  static const RoundTrip plain = { 0, FALSE, 1526, FALSE };
  static const RoundTrip plain_split = { 0, TRUE, 1526, TRUE };
  static const RoundTrip mrg_big = { NF (MRG_RXBUF), FALSE, 2048, FALSE };
  static const RoundTrip mrg_small = { NF (MRG_RXBUF), TRUE, 128, FALSE };
  static const RoundTrip mrg_random = { NF (MRG_RXBUF), FALSE, 0, FALSE };
  static const struct
  {
    const char *path;
    void (*func) (Fixture *f, gconstpointer data);
    Case c;
  } cases[] = {
    { "loopback/plain", test_round_trip, { 1, 0, &plain } },
    { "loopback/plain-split-event-idx", test_round_trip, { 1, 0, &plain_split } },
    { "loopback/mrg-rxbuf", test_round_trip, { 1, 0, &mrg_big } },
    { "loopback/mrg-rxbuf-small-event-idx", test_round_trip, { 1, 0, &mrg_small } },
    { "loopback/mrg-rxbuf-random", test_round_trip, { 1, 0, &mrg_random } },
    { "loopback/mrg-spread", test_mrg_spread, { 1, 0, NULL } },
    { "loopback/starvation", test_starvation, { 1, 0, NULL } },
    { "loopback/starvation-event-idx", test_starvation, { 1, 1, NULL } },
    { "loopback/budget", test_budget, { 1, 0, NULL } },
    { "loopback/malformed", test_malformed, { 1, 0, NULL } },
    { "loopback/malformed-mrg-rxbuf", test_malformed, { 1, 1, NULL } },
    { "loopback/checksum-by-device", test_checksum, { 1, 0, NULL } },
    { "loopback/checksum-passed-on", test_checksum, { 1, 1, NULL } },
    { "loopback/reconnect", test_reconnect, { 1, 0, NULL } },
    { "ctrl/mq", test_ctrl_mq, { 2, 0, NULL } },
    { "mq/without-ctrl", test_mq_without_ctrl, { 3, 0, NULL } },
    { "mq/not-negotiated", test_mq_without_ctrl, { 3, 1, NULL } },
    { "ctrl/single-queue", test_ctrl_single, { 2, 0, NULL } },
    { "config/features", test_config, { 3, 0, NULL } },
    { "config/plain", test_config_plain, { 1, 0, NULL } },
    { "rarp", test_rarp, { 1, 0, NULL } },
    { "tap/round-trip", test_tap_round_trip, { 1, 0, NULL, TRUE } },
    { "tap/round-trip-mrg-rxbuf", test_tap_round_trip, { 1, 1, NULL, TRUE } },
    { "tap/starvation", test_tap_starvation, { 1, 0, NULL, TRUE } },
    { "tap/large-frames", test_tap_large_frames, { 1, 0, NULL, TRUE } },
    { "tap/large-frames-mrg-rxbuf", test_tap_large_frames, { 1, 1, NULL, TRUE } },
    { "tap/tx-malformed", test_tap_tx_malformed, { 1, 0, NULL, TRUE } },
    { "tap/mq", test_tap_mq, { 2, 0, NULL, TRUE } },
    /* Queue modes on the device's context. */
    { "modes/adaptive", test_round_trip, { 1, 0, &mrg_random, FALSE, VHOST_USER_QUEUE_MODE_ADAPTIVE } },
    { "modes/poll", test_round_trip, { 1, 0, &plain_split, FALSE, VHOST_USER_QUEUE_MODE_POLL } },
    { "modes/main-event", test_modes_round_trip, { 1, 1, NULL, FALSE, VHOST_USER_QUEUE_MODE_EVENT, 0 } },
    { "modes/main-adaptive", test_modes_round_trip, { 2, 3, NULL, FALSE, VHOST_USER_QUEUE_MODE_ADAPTIVE, 0 } },
    { "modes/main-poll", test_modes_round_trip, { 2, 0, NULL, FALSE, VHOST_USER_QUEUE_MODE_POLL, 0 } },
    /* Pairs on worker threads. */
    { "threads/event", test_modes_round_trip, { 2, 1, NULL, FALSE, VHOST_USER_QUEUE_MODE_EVENT, 2 } },
    { "threads/event-idx", test_modes_round_trip, { 2, 2, NULL, FALSE, VHOST_USER_QUEUE_MODE_EVENT, 1 } },
    { "threads/adaptive", test_modes_round_trip, { 3, 3, NULL, FALSE, VHOST_USER_QUEUE_MODE_ADAPTIVE, 2 } },
    { "threads/poll", test_modes_round_trip, { 2, 1, NULL, FALSE, VHOST_USER_QUEUE_MODE_POLL, 2 } },
    { "threads/poll-one-thread", test_modes_round_trip, { 2, 0, NULL, FALSE, VHOST_USER_QUEUE_MODE_POLL, 1 } },
    { "threads/ctrl", test_threads_ctrl, { 2, 0, NULL, FALSE, VHOST_USER_QUEUE_MODE_EVENT, 2 } },
    { "threads/ctrl-poll", test_threads_ctrl, { 2, 0, NULL, FALSE, VHOST_USER_QUEUE_MODE_POLL, 2 } },
    { "threads/tap", test_tap_round_trip, { 1, 1, NULL, TRUE, VHOST_USER_QUEUE_MODE_EVENT, 1 } },
    { "threads/tap-poll", test_tap_round_trip, { 1, 0, NULL, TRUE, VHOST_USER_QUEUE_MODE_POLL, 1 } },
  };

  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_strconcat ("/vhost-user-net/", cases[i].path, NULL);

      g_test_add (path, Fixture, &cases[i].c, fixture_set_up, cases[i].func, fixture_tear_down);
    }
  g_test_add_func ("/vhost-user-net/program/options", test_program_options);
  g_test_add_data_func ("/vhost-user-net/program/sigterm-poll", "poll", test_program_sigterm);
  g_test_add_data_func ("/vhost-user-net/program/sigterm-event", "event", test_program_sigterm);
  return g_test_run ();
}
