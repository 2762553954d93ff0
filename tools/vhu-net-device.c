/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The data path, per queue pair, on the context of the pair's queues (the
 * device's main context, or a worker thread's: see
 * vhu_net_device_set_pair_context()):
 *
 * - loopback: a transmit chain is copied straight into one receive chain,
 *   or with VIRTIO_NET_F_MRG_RXBUF into as many as it takes (num_buffers
 *   in the header). Used entries go out in batches, with one notification
 *   per batch. With no receive buffers the transmit chain is given back
 *   (unpopped): it stays available, nothing is dropped, and the device waits
 *   for the driver's receive kick, with transmit kicks off meanwhile.
 * - tap: transmit chains are written to the tap (readable header copied and
 *   checked first); frames the tap has are read straight into receive
 *   chains, with a bounce buffer for what does not fit the chains taken for
 *   a frame of the interface's MTU. With no receive buffers the tap is not
 *   polled until the driver adds some: the kernel's queue, which is bounded,
 *   holds frames meanwhile.
 *
 * Every chain the guest offers is untrusted: too short for a header, too
 * small for a frame, with a header the negotiated features do not allow;
 * such a frame is dropped and counted, never read or written out of bounds.
 * A pass never takes more than a budget of frames: the rest continues from
 * an idle dispatch of the pair's source, so that control messages are not
 * starved by a busy guest.
 *
 * Threads: everything a pair does (its two rings, its tap queue, its
 * source, its scratch space and counters) happens on the pair's context.
 * The control queue, the config space and the negotiation stay on the
 * device's context; what they change for a pair (the active pairs, a
 * queue enabled from there, a RARP) reaches the pair through its source
 * (pair_request_update()) or a callback invoked on its context. The
 * negotiated header layout is only written while the rings are stopped.
 * Counters are written by their pair's thread alone and read with atomic
 * loads.
 */

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "vhu-net-device.h"
#include "vhu-net-frame.h"
#include "vhu-net-tap.h"

#define BIT(n) (G_GUINT64_CONSTANT (1) << (n))

/* A counter written by one thread and read by others: a relaxed store (no
 * locked instruction), so that a reader never sees a torn value. */
#define STAT_ADD(counter, n) __atomic_store_n (&(counter), (counter) + (n), __ATOMIC_RELAXED)
#define STAT_GET(counter) __atomic_load_n (&(counter), __ATOMIC_RELAXED)

/* Frames per used-ring update, and per pass over a queue pair; transmit
 * chains taken from the ring at a time. */
#define BATCH 64u
#define BUDGET 256u
#define TX_BURST 32u
/* Frames up to this size are copied at the end of their burst. */
#define DEFER_COPY_MAX 256u
/* readv() takes at most this many buffers. */
#define MAX_READ_IOV IOV_MAX

typedef enum
{
  MODE_LOOPBACK,
  MODE_TAP,
} Mode;

/* What became of one frame. */
typedef enum
{
  FRAME_DELIVERED,
  FRAME_DROPPED,
  FRAME_STARVED, /* no room: try again when the driver adds receive buffers */
  FRAME_NONE,    /* tap: nothing to read */
} FrameResult;

typedef struct _NetPair NetPair;

typedef struct
{
  GSource source;
  NetPair *pair;
} PairSource;

/* What other threads ask of a pair (NetPair.pending). */
enum
{
  PAIR_UPDATE = 1 << 0, /* pair_update() */
};

struct _NetPair
{
  VhuNetDevice *device; /* unowned: the device owns its pairs */
  guint index;
  VhostUserVirtqueue *rx;
  VhostUserVirtqueue *tx;
  GMainContext *context; /* where the pair runs: its queues' context */

  /* Used entries filled and not flushed yet. */
  guint rx_batch;
  guint tx_batch;

  guint64 conn_tx_frames; /* sent by the driver, since the connection started */
  guint64 conn_rx_frames; /* received by the driver */
  gboolean rx_starved; /* waiting for a receive kick */
  gboolean rx_ready;   /* pair_rx_ready(), as the current pass began */
  gboolean rx_notify;  /* receive kicks requested (as a ring starts) */

  /* Resumes a pass that ran out of budget; polls the tap queue; runs what
   * other threads asked for. */
  GSource *source;
  gpointer tap_tag;
  gboolean tap_polling;
  gboolean resume; /* pair_work() at the next dispatch (the pair's thread) */
  gint pending;    /* PAIR_* bits from other threads, atomic */

  /* Loopback: small frames whose copy waits for the end of the burst
   * (see pair_copy_pending()); @defer_copies while a burst runs. */
  struct
  {
    guint8 *dst;
    const guint8 *src;
    gsize len;
    VhuNetHeader hdr;
  } copies[TX_BURST];
  guint n_copies;
  gboolean defer_copies;

  /* The data path's scratch space, allocated once. */
  VhostUserVirtqElement **rx_elems; /* VhuNetDevice.rx_elems_cap */
  VhostUserVirtqElement **held_rx;  /* filled, dropped at the next flush */
  VhostUserVirtqElement **held_tx;
  guint n_held_rx;
  guint n_held_tx;
  guint held_rx_cap;
  struct iovec *iov;                /* tap: MAX_READ_IOV + 1 */
  guint8 *bounce;                   /* tap: BOUNCE_SIZE */

  VhuNetStats stats; /* the pair's part of the device's (no control counters) */
};

struct _VhuNetDevice
{
  VhostUserDevice parent_instance;

  Mode mode;
  guint n_pairs;
  guint8 mac[6];
  gboolean has_mac;
  guint mtu;
  gboolean offer_mtu;
  VhuNetTap *tap;
  guint frame_hint; /* tap: the bytes of a usual frame (MTU, Ethernet header, tag) */

  /* Negotiated */
  guint hdr_len;
  gboolean mrg_rxbuf;
  gboolean csum;       /* the driver may send NEEDS_CSUM */
  gboolean guest_csum; /* the device may send NEEDS_CSUM and DATA_VALID */
  gboolean mq;
  gboolean ctrl_vq;
  gint active_pairs;  /* atomic: the control queue sets it, pairs read it */
  gint ctrl_started;  /* atomic: the control queue runs (the driver drives MQ) */
  guint16 status;

  NetPair *pairs;
  VhostUserVirtqueue *ctrl_mq; /* the control queue with MQ: queue 2 n */
  VhostUserVirtqueue *ctrl_sq; /* without MQ: queue 2 */

  guint rx_elems_cap; /* the most receive chains a frame takes */
  gint tap_lost;      /* atomic */

  guint64 ctrl_ok;  /* on the control queue's context */
  guint64 ctrl_err;
};

G_DEFINE_FINAL_TYPE (VhuNetDevice, vhu_net_device, VHOST_USER_TYPE_DEVICE)

#define BOUNCE_SIZE (VHU_NET_HEADER_SIZE + VHU_NET_MAX_FRAME)

static void pair_work (NetPair *p);
static void tap_rx_work (NetPair *p);

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */

static gboolean
queue_usable (VhostUserVirtqueue *queue)
{
  return vhost_user_virtqueue_get_started (queue) && vhost_user_virtqueue_get_enabled (queue)
         && !vhost_user_virtqueue_get_broken (queue);
}

/* The control queue, if the driver negotiated one: after the last pair
 * with MQ, queue 2 without. */
static VhostUserVirtqueue *
ctrl_queue (VhuNetDevice *self)
{
  if (!self->ctrl_vq)
    return NULL;
  return self->mq ? self->ctrl_mq : self->ctrl_sq;
}

/* The pairs that may carry traffic: all of them with MQ, or when the
 * front-end keeps the control queue to itself and drives multiqueue with
 * SET_VRING_ENABLE (QEMU and DPDK do; QEMU then does not pass MQ on). */
static guint
data_pairs (VhuNetDevice *self)
{
  return self->mq || !self->ctrl_vq ? self->n_pairs : 1;
}

/* Pair @index carries traffic: the driver enabled it through the control
 * queue when that is the device's; otherwise its rings' enable state
 * decides (see queue_usable()). */
static gboolean
pair_active (VhuNetDevice *self, guint index)
{
  VhostUserVirtqueue *ctrl = ctrl_queue (self);

  if (index == 0)
    return TRUE;
  if (index >= data_pairs (self))
    return FALSE;
  if (ctrl != NULL && g_atomic_int_get (&self->ctrl_started))
    return index < (guint) g_atomic_int_get (&self->active_pairs);
  return TRUE;
}

static gboolean
pair_rx_ready (VhuNetDevice *self, NetPair *p)
{
  return pair_active (self, p->index) && queue_usable (p->rx);
}

static gboolean
pair_tx_ready (VhuNetDevice *self, NetPair *p)
{
  return pair_active (self, p->index) && queue_usable (p->tx);
}

/* A header of @len bytes: 12 but for legacy drivers, a copy of known size
 * the compiler does inline. */
static inline void
copy_header (void *dst, const void *src, gsize len)
{
  if (G_LIKELY (len == VHU_NET_HEADER_SIZE))
    memcpy (dst, src, VHU_NET_HEADER_SIZE);
  else
    memcpy (dst, src, len);
}

/* The copies of a burst, one after the other: the source and destination
 * lines are held by the driver's CPU, and misses that come together
 * overlap, where copies between the pops and fills of each frame wait for
 * theirs one by one. Done before the used entries are published, and
 * before the transmit chains are let go. */
static void
pair_copy_pending (NetPair *p, gsize hdr_len)
{
  for (guint i = 0; i < p->n_copies; i++)
    {
      copy_header (p->copies[i].dst, &p->copies[i].hdr, hdr_len);
      memcpy (p->copies[i].dst + hdr_len, p->copies[i].src, p->copies[i].len);
    }
  p->n_copies = 0;
}

/* Makes the filled entries visible, one used-index update and at most one
 * interrupt per queue; then lets go of the elements. */
static void
pair_flush (NetPair *p)
{
  pair_copy_pending (p, p->device->hdr_len);
  if (p->rx_batch > 0)
    {
      vhost_user_virtqueue_flush (p->rx, p->rx_batch);
      vhost_user_virtqueue_notify (p->rx);
      p->rx_batch = 0;
    }
  if (p->tx_batch > 0)
    {
      vhost_user_virtqueue_flush (p->tx, p->tx_batch);
      vhost_user_virtqueue_notify (p->tx);
      p->tx_batch = 0;
    }
  /* On the queues' thread, in a dispatch: back to their pools without an
   * atomic operation (each would wait for the frame just copied into
   * guest memory, whose cache lines the driver's CPU holds). */
  vhost_user_virtqueue_recycle (p->rx, p->held_rx, p->n_held_rx);
  vhost_user_virtqueue_recycle (p->tx, p->held_tx, p->n_held_tx);
  p->n_held_rx = 0;
  p->n_held_tx = 0;
}

/* A filled element is dropped with its batch, after the flush. */
static void
pair_fill_rx (NetPair *p, VhostUserVirtqElement *elem, gsize written)
{
  vhost_user_virtqueue_fill (p->rx, elem, written, p->rx_batch++);
  if (G_LIKELY (p->n_held_rx < p->held_rx_cap))
    p->held_rx[p->n_held_rx++] = elem;
  else
    vhost_user_virtq_element_unref (elem);
}

static void
pair_fill_tx (NetPair *p, VhostUserVirtqElement *elem)
{
  vhost_user_virtqueue_fill (p->tx, elem, 0, p->tx_batch++);
  p->held_tx[p->n_held_tx++] = elem; /* flushed at BATCH, below */
  if (p->tx_batch >= BATCH || p->rx_batch >= BATCH)
    pair_flush (p);
}

/* The pair's source dispatches at the next iteration of its context. On
 * the pair's thread: a flag its prepare() sees, no system call (a ready
 * time would wake the context through its eventfd every time). */
static void
pair_resume_later (NetPair *p)
{
  p->resume = TRUE;
}

static void
set_rx_notify (NetPair *p, gboolean enable)
{
  if (p->rx_notify == enable)
    return;
  vhost_user_virtqueue_set_notification (p->rx, enable);
  p->rx_notify = enable;
}

static void
set_tap_polling (NetPair *p, gboolean polling)
{
  if (p->tap_tag == NULL || p->tap_polling == polling)
    return;
  g_source_modify_unix_fd (p->source, p->tap_tag, polling ? G_IO_IN : 0);
  p->tap_polling = polling;
}

/* Gives back the receive chains taken for a frame, last first. */
static void
unpop_rx (VhuNetDevice *self, NetPair *p, guint from, guint to)
{
  for (guint j = to; j > from; j--)
    {
      vhost_user_virtqueue_unpop (p->rx, p->rx_elems[j - 1]);
      vhost_user_virtq_element_unref (p->rx_elems[j - 1]);
    }
}

/* Takes the next receive chain for a frame that has @m chains so far. The
 * first chain of a frame must hold the header: a smaller one goes back
 * empty (the driver counts an error) and the next is taken. */
static VhostUserVirtqElement *
pop_rx (VhuNetDevice *self, NetPair *p, guint m)
{
  for (;;)
    {
      VhostUserVirtqElement *elem = vhost_user_virtqueue_pop (p->rx, NULL);

      if (elem == NULL || m > 0 || vhost_user_virtq_element_get_in_size (elem) >= self->hdr_len)
        return elem;
      STAT_ADD (p->stats.rx_bad_buffers, 1);
      pair_fill_rx (p, elem, 0);
    }
}

/* Returns the receive chains of a frame of @len bytes (header included),
 * each filled up to its size in order. */
static void
fill_rx_frame (VhuNetDevice *self, NetPair *p, guint m, gsize len)
{
  STAT_ADD (p->stats.rx_frames, 1);
  STAT_ADD (p->conn_rx_frames, 1);
  STAT_ADD (p->stats.rx_bytes, len - self->hdr_len);
  for (guint j = 0; j < m; j++)
    {
      gsize size = vhost_user_virtq_element_get_in_size (p->rx_elems[j]);
      gsize written = MIN (size, len);

      len -= written;
      pair_fill_rx (p, p->rx_elems[j], written);
    }
}

/* ------------------------------------------------------------------------ */
/* Writing a frame into receive chains                                      */

typedef struct
{
  NetPair *p;
  guint m;
  guint j;
  VhuIovCursor cur;
} RxWriter;

/* Writes from the start of chain @j of the @m taken. */
static void
rx_writer_init (RxWriter *w, NetPair *p, guint m, guint j)
{
  const struct iovec *iov;
  guint n;

  w->p = p;
  w->m = m;
  w->j = j;
  iov = vhost_user_virtq_element_get_in_iov (p->rx_elems[j], &n);
  vhu_iov_cursor_init (&w->cur, iov, n);
}

static gboolean
rx_writer_next (RxWriter *w)
{
  const struct iovec *iov;
  guint n;

  if (++w->j >= w->m)
    return FALSE;
  iov = vhost_user_virtq_element_get_in_iov (w->p->rx_elems[w->j], &n);
  vhu_iov_cursor_init (&w->cur, iov, n);
  return TRUE;
}

/* Copies @len bytes from @src (or from the flat @data) into the chains. */
static gsize
rx_writer_put (RxWriter *w, VhuIovCursor *src, const void *data, gsize len)
{
  gsize done = 0;

  while (done < len && w->j < w->m)
    {
      if (src != NULL)
        done += vhu_iov_cursor_copy (&w->cur, src, len - done);
      else
        done += vhu_iov_cursor_write (&w->cur, (const guint8 *) data + done, len - done);
      if (done < len && !rx_writer_next (w))
        break;
    }
  return done;
}

typedef struct
{
  gboolean set;
  gsize offset; /* in the frame */
  guint16 value;
} ChecksumFix;

/* Delivers a frame of @frame_len bytes read from @src (or from @flat, where
 * the frame is contiguous), preceded by @hdr, into the receive queue of @p.
 * FRAME_STARVED leaves everything as it was (*@rx_have says how many
 * chains there were). */
static FrameResult
deliver_frame (VhuNetDevice *self,
               NetPair *p,
               VhuIovCursor *src,
               const guint8 *flat,
               gsize frame_len,
               VhuNetHeader *hdr,
               const ChecksumFix *fix,
               guint *rx_have)
{
  gsize need = self->hdr_len + frame_len;
  gsize got = 0;
  guint m = 0;
  RxWriter w;
  gsize done;

  *rx_have = 0;
  if (G_UNLIKELY (!p->rx_ready))
    {
      if (!vhost_user_virtqueue_get_broken (p->rx))
        return FRAME_STARVED;
      return FRAME_DROPPED;
    }

  /* The usual case first: one receive buffer holds the header and the
   * whole frame, which is contiguous. */
  if (G_LIKELY (flat != NULL && (fix == NULL || !fix->set)))
    {
      VhostUserVirtqElement *elem = vhost_user_virtqueue_pop (p->rx, NULL);
      const struct iovec *iov;
      guint n;

      if (elem == NULL)
        return vhost_user_virtqueue_get_broken (p->rx) ? FRAME_DROPPED : FRAME_STARVED;
      iov = vhost_user_virtq_element_get_in_iov (elem, &n);
      if (G_UNLIKELY (n == 0 || iov[0].iov_len < need))
        {
          /* Not the usual case after all: as pop_rx() would, a chain too
           * small for the header goes back empty; another goes the long
           * way. */
          if (vhost_user_virtq_element_get_in_size (elem) < self->hdr_len)
            {
              STAT_ADD (p->stats.rx_bad_buffers, 1);
              pair_fill_rx (p, elem, 0);
              elem = pop_rx (self, p, 0);
              if (elem == NULL)
                return vhost_user_virtqueue_get_broken (p->rx) ? FRAME_DROPPED : FRAME_STARVED;
              iov = vhost_user_virtq_element_get_in_iov (elem, &n);
            }
        }
      if (G_LIKELY (n > 0 && iov[0].iov_len >= need))
        {
          hdr->num_buffers = GUINT16_TO_LE (1);
          if (p->defer_copies && frame_len <= DEFER_COPY_MAX && p->n_copies < TX_BURST)
            {
              /* The transmit chain stays until the flush, which copies
               * first: @flat is good until then. */
              p->copies[p->n_copies].dst = iov[0].iov_base;
              p->copies[p->n_copies].src = flat;
              p->copies[p->n_copies].len = frame_len;
              p->copies[p->n_copies].hdr = *hdr;
              p->n_copies++;
            }
          else
            {
              copy_header (iov[0].iov_base, hdr, self->hdr_len);
              memcpy ((guint8 *) iov[0].iov_base + self->hdr_len, flat, frame_len);
            }
          STAT_ADD (p->stats.rx_frames, 1);
          STAT_ADD (p->conn_rx_frames, 1);
          STAT_ADD (p->stats.rx_bytes, frame_len);
          pair_fill_rx (p, elem, need);
          return FRAME_DELIVERED;
        }
      p->rx_elems[m++] = elem;
      got = vhost_user_virtq_element_get_in_size (elem);
    }

  while (got < need && (m == 0 || self->mrg_rxbuf))
    {
      VhostUserVirtqElement *elem;

      /* Not even the whole ring would hold it. */
      if (m == self->rx_elems_cap || m == vhost_user_virtqueue_get_size (p->rx))
        {
          unpop_rx (self, p, 0, m);
          return FRAME_DROPPED;
        }
      elem = pop_rx (self, p, m);
      if (elem == NULL)
        {
          unpop_rx (self, p, 0, m);
          if (vhost_user_virtqueue_get_broken (p->rx))
            return FRAME_DROPPED;
          *rx_have = m;
          return FRAME_STARVED;
        }
      p->rx_elems[m++] = elem;
      got += vhost_user_virtq_element_get_in_size (elem);
    }
  if (got < need)
    {
      /* One chain per frame, and this one is too small: dropped, the chain
       * stays for the next frame. */
      unpop_rx (self, p, 0, m);
      return FRAME_DROPPED;
    }

  hdr->num_buffers = GUINT16_TO_LE (m);
  rx_writer_init (&w, p, m, 0);
  done = rx_writer_put (&w, NULL, hdr, self->hdr_len);
  if (fix != NULL && fix->set)
    {
      guint8 value[2] = { fix->value >> 8, fix->value & 0xff };

      done += rx_writer_put (&w, src, NULL, fix->offset);
      done += rx_writer_put (&w, NULL, value, 2);
      vhu_iov_cursor_skip (src, 2);
      done += rx_writer_put (&w, src, NULL, frame_len - fix->offset - 2);
    }
  else if (flat != NULL)
    {
      done += rx_writer_put (&w, NULL, flat, frame_len);
    }
  else
    {
      done += rx_writer_put (&w, src, NULL, frame_len);
    }
  /* The chains were sized for it, and the source had it: @done == @need. */
  fill_rx_frame (self, p, m, done);
  return FRAME_DELIVERED;
}

/* ------------------------------------------------------------------------ */
/* Loopback                                                                 */

/* Reads and checks the header of a frame the driver sent. FALSE: drop it. */
static gboolean
read_tx_header (VhuNetDevice *self, VhuIovCursor *src, gsize out_size, VhuNetHeader *hdr)
{
  memset (hdr, 0, sizeof *hdr);
  if (out_size < self->hdr_len || out_size - self->hdr_len > VHU_NET_MAX_FRAME)
    return FALSE;
  if (G_LIKELY (src->n > 0 && src->iov[0].iov_len >= self->hdr_len))
    {
      /* Read once, into our copy: the guest may change its own. */
      copy_header (hdr, src->iov[0].iov_base, self->hdr_len);
      src->off = self->hdr_len;
    }
  else if (vhu_iov_cursor_read (src, hdr, self->hdr_len) != self->hdr_len)
    return FALSE;
  /* No segmentation offload was offered. */
  if (hdr->gso_type != VHU_NET_HDR_GSO_NONE)
    return FALSE;
  if (hdr->flags & VHU_NET_HDR_F_NEEDS_CSUM)
    {
      gsize frame_len = out_size - self->hdr_len;
      gsize start = GUINT16_FROM_LE (hdr->csum_start);
      gsize offset = GUINT16_FROM_LE (hdr->csum_offset);

      if (!self->csum || start >= frame_len || offset + 2 > frame_len - start)
        return FALSE;
    }
  return TRUE;
}

/* Where the @frame_len bytes after the header are, if they are contiguous
 * (the rest of the header's buffer, or the next buffer): else NULL. */
static inline const guint8 *
tx_flat (const VhuIovCursor *src, gsize frame_len)
{
  const struct iovec *iov = src->iov;

  if (src->i != 0 || src->n == 0)
    return NULL;
  if (iov[0].iov_len - src->off >= frame_len)
    return (const guint8 *) iov[0].iov_base + src->off;
  if (iov[0].iov_len == src->off && src->n > 1 && iov[1].iov_len >= frame_len)
    return iov[1].iov_base;
  return NULL;
}

static FrameResult
loopback_frame (VhuNetDevice *self, NetPair *p, VhostUserVirtqElement *tx, guint *rx_have)
{
  gsize out_size = vhost_user_virtq_element_get_out_size (tx);
  VhuNetHeader th, rh = { 0 };
  ChecksumFix fix = { FALSE, 0, 0 };
  VhuIovCursor src;
  const struct iovec *iov;
  gsize frame_len;
  guint n;

  iov = vhost_user_virtq_element_get_out_iov (tx, &n);
  vhu_iov_cursor_init (&src, iov, n);
  *rx_have = 0;
  if (!read_tx_header (self, &src, out_size, &th))
    return FRAME_DROPPED;
  frame_len = out_size - self->hdr_len;

  if (th.flags & VHU_NET_HDR_F_NEEDS_CSUM)
    {
      gsize start = GUINT16_FROM_LE (th.csum_start);

      if (self->guest_csum)
        {
          /* The receiving driver completes it. */
          rh.flags = VHU_NET_HDR_F_NEEDS_CSUM;
          rh.csum_start = th.csum_start;
          rh.csum_offset = th.csum_offset;
        }
      else
        {
          /* The device does, as the wire would have it. */
          VhuIovCursor sum_src = src;
          gboolean odd = FALSE;
          guint64 sum;

          vhu_iov_cursor_skip (&sum_src, start);
          sum = vhu_net_checksum_add (&sum_src, frame_len - start, 0, &odd);
          fix.set = TRUE;
          fix.offset = start + GUINT16_FROM_LE (th.csum_offset);
          fix.value = vhu_net_checksum_finish (sum);
        }
    }

  return deliver_frame (self, p, &src, tx_flat (&src, frame_len), frame_len, &rh, &fix,
                        rx_have);
}

/* One pass: transmit chains into receive chains until the transmit queue
 * is empty, the receive queue has no room, or the budget runs out. */
typedef enum
{
  PASS_EMPTY,
  PASS_STARVED,
  PASS_BUDGET,
} PassResult;

/* Starts reading the first two cache lines of a transmit chain (the
 * header, and a small frame): the driver's CPU just wrote them, and the
 * misses of a burst overlap instead of coming one by one. */
static inline void
prefetch_tx (VhostUserVirtqElement *tx)
{
  const struct iovec *iov;
  guint n;

  iov = vhost_user_virtq_element_get_out_iov (tx, &n);
  if (G_LIKELY (n > 0))
    {
      __builtin_prefetch (iov[0].iov_base);
      __builtin_prefetch ((const guint8 *) iov[0].iov_base + 64);
    }
}

static PassResult
loopback_pass (VhuNetDevice *self, NetPair *p, guint *budget, guint *rx_have)
{
  VhostUserVirtqElement *txs[TX_BURST];

  while (*budget > 0)
    {
      guint want = MIN (*budget, TX_BURST);
      guint n = vhost_user_virtqueue_pop_many (p->tx, txs, want, NULL);

      for (guint i = 0; i < n; i++)
        prefetch_tx (txs[i]);
      if (n == 0)
        return PASS_EMPTY;

      for (guint i = 0; i < n; i++)
        {
          VhostUserVirtqElement *tx = txs[i];

          switch (loopback_frame (self, p, tx, rx_have))
            {
            case FRAME_STARVED:
              /* This one and the rest of the burst stay available, given
               * back last first. */
              for (guint j = n; j > i; j--)
                {
                  vhost_user_virtqueue_unpop (p->tx, txs[j - 1]);
                  vhost_user_virtq_element_unref (txs[j - 1]);
                }
              return PASS_STARVED;
            case FRAME_DELIVERED:
              STAT_ADD (p->stats.tx_frames, 1);
              STAT_ADD (p->conn_tx_frames, 1);
              STAT_ADD (p->stats.tx_bytes,
                        vhost_user_virtq_element_get_out_size (tx) - self->hdr_len);
              break;
            default:
              STAT_ADD (p->stats.tx_dropped, 1);
              break;
            }
          pair_fill_tx (p, tx);
          (*budget)--;
        }
      pair_copy_pending (p, self->hdr_len);
      if (n < want)
        return PASS_EMPTY;
    }
  return PASS_BUDGET;
}

/* The receive queue has no room for the next frame: ask for a receive
 * kick, and look once more, since buffers added before the request came
 * without one. TRUE: wait for the kick. */
static gboolean
rx_starving (NetPair *p, guint rx_have, guint *last_have, gboolean *armed)
{
  if (!*armed)
    {
      set_rx_notify (p, TRUE);
      *armed = TRUE;
      *last_have = rx_have;
      return FALSE;
    }
  if (rx_have > *last_have)
    {
      *last_have = rx_have;
      return FALSE;
    }
  p->rx_starved = TRUE;
  STAT_ADD (p->stats.rx_starved, 1);
  return TRUE;
}

static void
loopback_work (NetPair *p)
{
  VhuNetDevice *self = p->device;
  guint budget = BUDGET;
  guint last_have = 0;
  gboolean armed = FALSE;

  if (!pair_tx_ready (self, p))
    return;
  p->rx_starved = FALSE;
  /* Nothing changes the rings' state during a pass: control messages for
   * them wait for the pair's thread. */
  p->rx_ready = pair_rx_ready (self, p);
  if (queue_usable (p->rx))
    set_rx_notify (p, FALSE);

  for (;;)
    {
      guint rx_have = 0;
      PassResult result;

      vhost_user_virtqueue_set_notification (p->tx, FALSE);
      p->defer_copies = TRUE;
      result = loopback_pass (self, p, &budget, &rx_have);
      p->defer_copies = FALSE;
      if (result == PASS_STARVED)
        {
          /* Transmit kicks stay off: the receive kick resumes. */
          if (rx_starving (p, rx_have, &last_have, &armed))
            break;
          continue;
        }
      vhost_user_virtqueue_set_notification (p->tx, TRUE);
      if (result == PASS_BUDGET)
        {
          pair_resume_later (p);
          break;
        }
      if (vhost_user_virtqueue_is_empty (p->tx))
        break;
    }
  pair_flush (p);
}

/* ------------------------------------------------------------------------ */
/* Tap                                                                      */

/* Writes one frame the driver sent to the tap. */
static void
tap_send (VhuNetDevice *self, NetPair *p, VhostUserVirtqElement *tx)
{
  gsize out_size = vhost_user_virtq_element_get_out_size (tx);
  int fd = self->tap->fds[p->index];
  VhuNetHeader th;
  VhuIovCursor src;
  const struct iovec *iov;
  gsize frame_len;
  guint n, k = 0;
  gssize sent;

  iov = vhost_user_virtq_element_get_out_iov (tx, &n);
  vhu_iov_cursor_init (&src, iov, n);
  if (!read_tx_header (self, &src, out_size, &th))
    {
      STAT_ADD (p->stats.tx_dropped, 1);
      return;
    }
  frame_len = out_size - self->hdr_len;
  th.num_buffers = 0;

  /* The checked copy of the header, then the frame where the guest has it
   * (the kernel checks what it reads again). */
  p->iov[k].iov_base = &th;
  p->iov[k++].iov_len = self->hdr_len;
  if (src.i < n && n - src.i < MAX_READ_IOV)
    {
      for (guint i = src.i; i < n; i++, k++)
        {
          gsize skip = i == src.i ? src.off : 0;

          p->iov[k].iov_base = (guint8 *) iov[i].iov_base + skip;
          p->iov[k].iov_len = iov[i].iov_len - skip;
        }
    }
  else if (frame_len > 0)
    {
      /* Too scattered for one writev(): linearized. */
      vhu_iov_cursor_read (&src, p->bounce, frame_len);
      p->iov[k].iov_base = p->bounce;
      p->iov[k++].iov_len = frame_len;
    }

  do
    sent = writev (fd, p->iov, k);
  while (sent < 0 && errno == EINTR);
  if (sent < 0)
    {
      STAT_ADD (p->stats.tx_dropped, 1);
      return;
    }
  STAT_ADD (p->stats.tx_frames, 1);
  STAT_ADD (p->conn_tx_frames, 1);
  STAT_ADD (p->stats.tx_bytes, frame_len);
}

static void
tap_tx_work (NetPair *p)
{
  VhuNetDevice *self = p->device;
  guint budget = BUDGET;

  if (!pair_tx_ready (self, p))
    return;
  do
    {
      VhostUserVirtqElement *tx;

      vhost_user_virtqueue_set_notification (p->tx, FALSE);
      while (budget > 0 && (tx = vhost_user_virtqueue_pop (p->tx, NULL)) != NULL)
        {
          tap_send (self, p, tx);
          pair_fill_tx (p, tx);
          budget--;
        }
      vhost_user_virtqueue_set_notification (p->tx, TRUE);
    }
  while (budget > 0 && !vhost_user_virtqueue_is_empty (p->tx));
  pair_flush (p);
  if (budget == 0)
    pair_resume_later (p);
}

static FrameResult
tap_rx_frame (VhuNetDevice *self, NetPair *p, guint *rx_have)
{
  int fd = self->tap->fds[p->index];
  guint ring_size = vhost_user_virtqueue_get_size (p->rx);
  gsize want = self->hdr_len + __atomic_load_n (&self->frame_hint, __ATOMIC_RELAXED);
  gsize got = 0;
  guint m = 0, k = 0;
  gssize n;

  *rx_have = 0;
  while (got < want && m < self->rx_elems_cap && m < ring_size)
    {
      VhostUserVirtqElement *elem = pop_rx (self, p, m);
      const struct iovec *iov;
      guint n_iov;

      if (elem == NULL)
        break;
      iov = vhost_user_virtq_element_get_in_iov (elem, &n_iov);
      if (k + n_iov > MAX_READ_IOV - 1)
        {
          if (m > 0)
            {
              /* For the next frame. */
              vhost_user_virtqueue_unpop (p->rx, elem);
              vhost_user_virtq_element_unref (elem);
              break;
            }
          /* No readv() takes it: goes back empty. */
          STAT_ADD (p->stats.rx_bad_buffers, 1);
          pair_fill_rx (p, elem, 0);
          continue;
        }
      memcpy (p->iov + k, iov, n_iov * sizeof (struct iovec));
      k += n_iov;
      p->rx_elems[m++] = elem;
      got += vhost_user_virtq_element_get_in_size (elem);
      if (!self->mrg_rxbuf)
        break;
    }
  /* Not enough for a frame of the MTU, and the driver may add more. */
  if (m == 0 || (self->mrg_rxbuf && got < want && m < ring_size && k < MAX_READ_IOV - 1
                 && m < self->rx_elems_cap))
    {
      unpop_rx (self, p, 0, m);
      *rx_have = m;
      return FRAME_STARVED;
    }

  /* What the chains cannot take goes to the bounce buffer. */
  p->iov[k].iov_base = p->bounce;
  p->iov[k++].iov_len = BOUNCE_SIZE;
  do
    n = readv (fd, p->iov, k);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    {
      unpop_rx (self, p, 0, m);
      if (errno != EAGAIN)
        {
          g_warning (_("Cannot read from tap %s: %s"), self->tap->ifname, g_strerror (errno));
          set_tap_polling (p, FALSE);
        }
      return FRAME_NONE;
    }
  if ((gsize) n < self->hdr_len)
    {
      unpop_rx (self, p, 0, m);
      STAT_ADD (p->stats.rx_dropped, 1);
      return FRAME_DROPPED;
    }

  if ((gsize) n > got)
    {
      /* Past the chains: into more of them (the bounce buffer holds the
       * bytes from @got on), or dropped. */
      guint first = m;
      gsize more = got;

      if (self->mrg_rxbuf)
        while (more < (gsize) n && m < self->rx_elems_cap && m < ring_size)
          {
            VhostUserVirtqElement *elem = vhost_user_virtqueue_pop (p->rx, NULL);

            if (elem == NULL)
              break;
            p->rx_elems[m++] = elem;
            more += vhost_user_virtq_element_get_in_size (elem);
          }
      if (more < (gsize) n)
        {
          unpop_rx (self, p, 0, m);
          STAT_ADD (p->stats.rx_dropped, 1);
          return FRAME_DROPPED;
        }
      {
        RxWriter w;

        rx_writer_init (&w, p, m, first);
        rx_writer_put (&w, NULL, p->bounce, n - got);
      }
    }
  else
    {
      gsize covered = 0;
      guint used = 0;

      while (covered < (gsize) n)
        covered += vhost_user_virtq_element_get_in_size (p->rx_elems[used++]);
      unpop_rx (self, p, used, m);
      m = used;
    }

  /* The tap wrote the first 10 bytes of the header. */
  {
    VhostUserVirtqElement *first = p->rx_elems[0];

    if (self->hdr_len >= VHU_NET_HEADER_SIZE)
      {
        guint16 num_buffers = GUINT16_TO_LE (m);

        vhost_user_virtq_element_write (first, VHU_NET_NUM_BUFFERS_OFFSET,
                                        (const guint8 *) &num_buffers, sizeof num_buffers);
      }
    if (!self->guest_csum)
      {
        static const guint8 no_flags = 0;

        vhost_user_virtq_element_write (first, 0, &no_flags, 1);
      }
  }
  fill_rx_frame (self, p, m, n);
  return FRAME_DELIVERED;
}

static void
tap_rx_work (NetPair *p)
{
  VhuNetDevice *self = p->device;
  guint budget = BUDGET;
  guint last_have = 0;
  gboolean armed = FALSE;

  if (self->tap == NULL || g_atomic_int_get (&self->tap_lost))
    return;
  if (!pair_rx_ready (self, p))
    {
      set_tap_polling (p, FALSE);
      return;
    }
  p->rx_starved = FALSE;
  set_rx_notify (p, FALSE);
  set_tap_polling (p, TRUE);

  while (budget > 0)
    {
      guint rx_have = 0;
      FrameResult result = tap_rx_frame (self, p, &rx_have);

      if (result == FRAME_NONE)
        break;
      if (result == FRAME_STARVED)
        {
          if (rx_starving (p, rx_have, &last_have, &armed))
            {
              set_tap_polling (p, FALSE);
              break;
            }
          continue;
        }
      budget--;
      if (p->rx_batch >= BATCH)
        pair_flush (p);
    }
  pair_flush (p);
}

/* ------------------------------------------------------------------------ */
/* Pairs                                                                    */

static void
pair_work (NetPair *p)
{
  if (p->device->mode == MODE_LOOPBACK)
    loopback_work (p);
  else
    tap_tx_work (p);
}

static void pair_update (VhuNetDevice *self, NetPair *p);

static gboolean
pair_source_prepare (GSource *source, gint *timeout)
{
  NetPair *p = ((PairSource *) source)->pair;

  *timeout = -1;
  return p->resume || g_atomic_int_get (&p->pending) != 0;
}

static gboolean
pair_source_check (GSource *source)
{
  NetPair *p = ((PairSource *) source)->pair;

  if (p->resume || g_atomic_int_get (&p->pending) != 0)
    return TRUE;
  return p->tap_tag != NULL && g_source_query_unix_fd (source, p->tap_tag) != 0;
}

static gboolean
pair_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  NetPair *p = ((PairSource *) source)->pair;
  VhuNetDevice *self = p->device;
  GIOCondition revents = 0;
  gboolean resume = p->resume;
  guint pending;

  p->resume = FALSE;
  pending = (guint) g_atomic_int_and (&p->pending, 0);
  if (p->tap_tag != NULL)
    revents = g_source_query_unix_fd (source, p->tap_tag);

  g_object_ref (self);
  if (pending & PAIR_UPDATE)
    pair_update (self, p);
  if (resume)
    pair_work (p);
  if (revents & (G_IO_ERR | G_IO_HUP | G_IO_NVAL))
    {
      /* The interface was deleted: nothing more will come from it. */
      g_warning (_("Tap interface %s went away"), self->tap->ifname);
      g_source_remove_unix_fd (source, p->tap_tag);
      p->tap_tag = NULL;
      g_atomic_int_set (&self->tap_lost, TRUE);
    }
  else if (revents & G_IO_IN)
    {
      tap_rx_work (p);
    }
  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs pair_source_funcs = {
  .prepare = pair_source_prepare,
  .check = pair_source_check,
  .dispatch = pair_source_dispatch,
};

/* Whether the calling thread runs the pair: it is on the device's context
 * (whose code runs on the device's thread), or in its own context's
 * dispatch. */
static gboolean
on_pair_thread (NetPair *p)
{
  return p->context == vhost_user_device_get_context (VHOST_USER_DEVICE (p->device))
         || g_main_context_is_owner (p->context);
}

/* Watches the pair's tap queue while it is attached: a detached queue
 * polls as an error. */
static void
set_tap_watched (VhuNetDevice *self, NetPair *p, gboolean watched)
{
  if (watched && p->tap_tag == NULL)
    p->tap_tag = g_source_add_unix_fd (p->source, self->tap->fds[p->index], 0);
  else if (!watched && p->tap_tag != NULL)
    {
      g_source_remove_unix_fd (p->source, p->tap_tag);
      p->tap_tag = NULL;
    }
  p->tap_polling = FALSE;
}

/* Attaches the pair's tap queue to the interface while the pair is active,
 * and polls it when the receive queue can take frames. On the pair's
 * thread. */
static void
pair_update (VhuNetDevice *self, NetPair *p)
{
  if (p->source == NULL)
    return; /* disposed */
  if (self->tap != NULL && !g_atomic_int_get (&self->tap_lost))
    {
      g_autoptr (GError) error = NULL;
      gboolean active = pair_active (self, p->index);

      if (!vhu_net_tap_set_queue_attached (self->tap, p->index, active, &error))
        g_warning ("%s", error->message);
      if (self->tap->attached[p->index] != (p->tap_tag != NULL))
        set_tap_watched (self, p, self->tap->attached[p->index]);
      if (!pair_rx_ready (self, p))
        set_tap_polling (p, FALSE);
      else if (!p->rx_starved)
        set_tap_polling (p, TRUE);
    }
  if (pair_tx_ready (self, p))
    pair_resume_later (p);
}

/* pair_update() from any thread: at once on the pair's, else from the
 * pair's source. */
static void
pair_request_update (VhuNetDevice *self, NetPair *p)
{
  if (p->source == NULL)
    return; /* disposed */
  if (on_pair_thread (p))
    {
      pair_update (self, p);
      return;
    }
  g_atomic_int_or (&p->pending, PAIR_UPDATE);
  g_main_context_wakeup (p->context);
}

static void
update_all_pairs (VhuNetDevice *self)
{
  for (guint k = 0; k < self->n_pairs; k++)
    pair_request_update (self, &self->pairs[k]);
}

/* ------------------------------------------------------------------------ */
/* The control queue                                                        */

static guint8
ctrl_mac_table (VhostUserVirtqElement *elem, gsize data_len)
{
  guint32 entries;
  gsize offset = 2;

  /* Two tables, each a le32 count and that many addresses: accepted (the
   * device does not filter), once they are checked to be complete. */
  for (guint t = 0; t < 2; t++)
    {
      if (offset - 2 + sizeof entries > data_len
          || vhost_user_virtq_element_read (elem, offset, (guint8 *) &entries, sizeof entries)
               != sizeof entries)
        return VHU_NET_ERR;
      entries = GUINT32_FROM_LE (entries);
      offset += sizeof entries;
      if (entries > (data_len - (offset - 2)) / 6)
        return VHU_NET_ERR;
      offset += (gsize) entries * 6;
    }
  return VHU_NET_OK;
}

static guint8
ctrl_command (VhuNetDevice *self, VhostUserVirtqElement *elem, guint8 cls, guint8 cmd, gsize data_len)
{
  VhostUserDevice *device = VHOST_USER_DEVICE (self);
  guint8 data[2] = { 0, 0 };

  vhost_user_virtq_element_read (elem, 2, data, MIN (data_len, sizeof data));
  switch (cls)
    {
    case VHU_NET_CTRL_RX:
      /* Promiscuous, all-multicast, … modes: the device delivers every
       * frame anyway. */
      if (!vhost_user_device_has_feature (device, VHU_NET_F_CTRL_RX) || cmd > VHU_NET_CTRL_RX_NOBCAST
          || data_len < 1)
        return VHU_NET_ERR;
      return VHU_NET_OK;

    case VHU_NET_CTRL_MAC:
      if (cmd != VHU_NET_CTRL_MAC_TABLE_SET
          || !vhost_user_device_has_feature (device, VHU_NET_F_CTRL_RX))
        return VHU_NET_ERR;
      return ctrl_mac_table (elem, data_len);

    case VHU_NET_CTRL_MQ:
      if (cmd == VHU_NET_CTRL_MQ_VQ_PAIRS_SET && self->mq && data_len >= 2)
        {
          guint pairs = data[0] | (guint) data[1] << 8;

          if (pairs < VHU_NET_CTRL_MQ_VQ_PAIRS_MIN || pairs > self->n_pairs)
            return VHU_NET_ERR;
          g_atomic_int_set (&self->active_pairs, pairs);
          update_all_pairs (self);
          return VHU_NET_OK;
        }
      return VHU_NET_ERR;

    default:
      return VHU_NET_ERR;
    }
}

static void
ctrl_work (VhuNetDevice *self, VhostUserVirtqueue *queue)
{
  VhostUserVirtqElement *elem;

  while ((elem = vhost_user_virtqueue_pop (queue, NULL)) != NULL)
    {
      gsize out_size = vhost_user_virtq_element_get_out_size (elem);
      guint8 ack = VHU_NET_ERR;
      guint8 head[2];
      gsize written = 0;

      if (out_size >= 2 && vhost_user_virtq_element_read (elem, 0, head, 2) == 2)
        ack = ctrl_command (self, elem, head[0], head[1], out_size - 2);
      if (ack == VHU_NET_OK)
        STAT_ADD (self->ctrl_ok, 1);
      else
        STAT_ADD (self->ctrl_err, 1);
      if (vhost_user_virtq_element_get_in_size (elem) >= 1)
        written = vhost_user_virtq_element_write (elem, 0, &ack, 1);
      vhost_user_virtqueue_push (queue, elem, written);
      vhost_user_virtq_element_unref (elem);
    }
}

/* ------------------------------------------------------------------------ */
/* VhostUserDevice                                                          */

static guint64
vhu_net_device_get_features (VhostUserDevice *device)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  guint64 features = VHOST_USER_DEVICE_CLASS (vhu_net_device_parent_class)->get_features (device);

  features |= BIT (VHU_NET_F_MRG_RXBUF) | BIT (VHU_NET_F_STATUS) | BIT (VHU_NET_F_CTRL_VQ)
              | BIT (VHU_NET_F_CTRL_RX) | BIT (VHU_NET_F_CSUM) | BIT (VHU_NET_F_GUEST_CSUM);
  if (self->n_pairs > 1)
    features |= BIT (VHU_NET_F_MQ);
  if (self->has_mac)
    features |= BIT (VHU_NET_F_MAC);
  if (self->offer_mtu)
    features |= BIT (VHU_NET_F_MTU);
  return features;
}

static guint64
vhu_net_device_get_protocol_features (VhostUserDevice *device)
{
  return VHOST_USER_DEVICE_CLASS (vhu_net_device_parent_class)->get_protocol_features (device)
         | BIT (VHOST_USER_PROTOCOL_FEATURE_NET_MTU) | BIT (VHOST_USER_PROTOCOL_FEATURE_RARP);
}

static GBytes *
vhu_net_device_get_config (VhostUserDevice *device, guint offset, guint size, GError **error)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  VhuNetConfig config = { 0 };

  if (offset > sizeof config || size > sizeof config - offset)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("The virtio-net config space has %u bytes: %u at offset %u are outside"),
                   (guint) sizeof config, size, offset);
      return NULL;
    }
  if (self->has_mac)
    memcpy (config.mac, self->mac, sizeof config.mac);
  config.status = GUINT16_TO_LE (self->status);
  config.max_virtqueue_pairs = GUINT16_TO_LE (self->n_pairs);
  config.mtu = GUINT16_TO_LE (self->mtu);
  return g_bytes_new ((const guint8 *) &config + offset, size);
}

/* A tap frame usually needs: the larger MTU (the interface's, the
 * guest's), an Ethernet header and an 802.1Q tag. */
static void
update_frame_hint (VhuNetDevice *self)
{
  if (self->tap != NULL)
    __atomic_store_n (&self->frame_hint,
                      MAX (self->tap->mtu != 0 ? self->tap->mtu : 1500, self->mtu) + 18,
                      __ATOMIC_RELAXED);
}

static gboolean
vhu_net_device_set_mtu_vfunc (VhostUserDevice *device, guint mtu, GError **error)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);

  self->mtu = mtu;
  update_frame_hint (self);
  return TRUE;
}

typedef struct
{
  VhuNetDevice *self;
  guint8 frame[VHU_NET_RARP_FRAME_SIZE];
} Rarp;

static void
rarp_free (gpointer data)
{
  Rarp *rarp = data;

  g_object_unref (rarp->self);
  g_free (rarp);
}

/* Loopback: the announcement arrives on pair 0, on that pair's thread. */
static gboolean
rarp_deliver (gpointer data)
{
  Rarp *rarp = data;
  VhuNetDevice *self = rarp->self;
  NetPair *p = &self->pairs[0];
  struct iovec iov = { rarp->frame, sizeof rarp->frame };
  VhuNetHeader hdr = { 0 };
  VhuIovCursor src;
  guint rx_have;

  vhu_iov_cursor_init (&src, &iov, 1);
  p->rx_ready = pair_rx_ready (self, p);
  if (deliver_frame (self, p, &src, rarp->frame, sizeof rarp->frame, &hdr, NULL, &rx_have)
      != FRAME_DELIVERED)
    g_debug ("RARP not delivered: no receive buffer for it");
  pair_flush (p);
  return G_SOURCE_REMOVE;
}

static gboolean
vhu_net_device_send_rarp (VhostUserDevice *device, GBytes *mac, GError **error)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  Rarp *rarp = g_new (Rarp, 1);

  rarp->self = g_object_ref (self);
  vhu_net_build_rarp (rarp->frame, g_bytes_get_data (mac, NULL));
  if (self->mode == MODE_TAP)
    {
      VhuNetHeader hdr = { 0 };
      struct iovec iov[2] = {
        { &hdr, self->hdr_len },
        { rarp->frame, sizeof rarp->frame },
      };

      /* An announcement is best effort: a failure is not the front-end's.
       * A write to a tap is one frame, whichever thread writes too. */
      if (!g_atomic_int_get (&self->tap_lost) && writev (self->tap->fds[0], iov, 2) < 0)
        g_warning (_("Cannot send a RARP to tap %s: %s"), self->tap->ifname, g_strerror (errno));
      rarp_free (rarp);
    }
  else if (on_pair_thread (&self->pairs[0]))
    {
      rarp_deliver (rarp);
      rarp_free (rarp);
    }
  else
    g_main_context_invoke_full (self->pairs[0].context, G_PRIORITY_DEFAULT, rarp_deliver, rarp,
                                rarp_free);
  return TRUE;
}

static void
vhu_net_device_features_negotiated (VhostUserDevice *device, guint64 features)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);

  self->mrg_rxbuf = (features & BIT (VHU_NET_F_MRG_RXBUF)) != 0;
  self->hdr_len = self->mrg_rxbuf || (features & BIT (VHOST_USER_FEATURE_VERSION_1))
                    ? VHU_NET_HEADER_SIZE
                    : VHU_NET_HEADER_SIZE_LEGACY;
  self->csum = (features & BIT (VHU_NET_F_CSUM)) != 0;
  self->guest_csum = (features & BIT (VHU_NET_F_GUEST_CSUM)) != 0;
  self->mq = (features & BIT (VHU_NET_F_MQ)) != 0 && self->n_pairs > 1;
  self->ctrl_vq = (features & BIT (VHU_NET_F_CTRL_VQ)) != 0;
  g_debug ("features 0x%" G_GINT64_MODIFIER "x: header %u bytes, %smergeable buffers, "
           "%s, %s",
           features, self->hdr_len, self->mrg_rxbuf ? "" : "no ",
           self->ctrl_vq ? "control queue" : "no control queue",
           self->mq ? "multiqueue" : "no multiqueue");

  if (self->tap != NULL)
    {
      g_autoptr (GError) error = NULL;

      if (!vhu_net_tap_set_header_size (self->tap, self->hdr_len, &error)
          || !vhu_net_tap_set_checksum_offload (self->tap, self->guest_csum, &error))
        g_warning ("%s", error->message);
    }
  update_all_pairs (self);

  VHOST_USER_DEVICE_CLASS (vhu_net_device_parent_class)->features_negotiated (device, features);
}

static NetPair *
pair_of_queue (VhuNetDevice *self, VhostUserVirtqueue *queue, gboolean *is_rx)
{
  guint index = vhost_user_virtqueue_get_index (queue);

  if (queue == ctrl_queue (self) || index >= 2 * data_pairs (self))
    return NULL;
  *is_rx = index % 2 == 0;
  return &self->pairs[index / 2];
}

static void
vhu_net_device_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  gboolean is_rx = FALSE;
  NetPair *p;

  if (queue == ctrl_queue (self) && queue != NULL)
    {
      ctrl_work (self, queue);
      return;
    }
  p = pair_of_queue (self, queue, &is_rx);
  if (p == NULL)
    return;

  if (!is_rx)
    {
      pair_work (p);
    }
  else if (p->rx_starved || p->rx_notify)
    {
      /* Receive buffers came: what waited for them goes on. */
      p->rx_starved = FALSE;
      if (self->mode == MODE_LOOPBACK)
        loopback_work (p);
      else
        tap_rx_work (p);
    }
}

static void
vhu_net_device_queue_started (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  gboolean is_rx = FALSE;
  NetPair *p = pair_of_queue (self, queue, &is_rx);

  if (p != NULL)
    {
      if (is_rx)
        {
          /* A new ring asks for kicks until told otherwise. */
          p->rx_notify = TRUE;
          p->rx_starved = FALSE;
        }
      pair_request_update (self, p);
    }
  else if (queue == ctrl_queue (self))
    {
      g_atomic_int_set (&self->ctrl_started, TRUE);
      update_all_pairs (self);
    }
}

static void
vhu_net_device_queue_stopped (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  gboolean is_rx = FALSE;
  NetPair *p = pair_of_queue (self, queue, &is_rx);

  /* Nothing is held across dispatches: every chain taken was returned or
   * given back, so the ring stops at once. */
  if (p != NULL)
    {
      if (is_rx)
        p->rx_starved = FALSE;
      pair_request_update (self, p);
    }
  else if (queue == ctrl_queue (self))
    {
      g_atomic_int_set (&self->ctrl_started, FALSE);
      update_all_pairs (self);
    }
}

static void
vhu_net_device_reset (VhostUserDevice *device)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);

  /* The rings are stopped (their state is set again when they start, on
   * their threads): what is left is the device's. */
  g_atomic_int_set (&self->active_pairs, 1);
  g_atomic_int_set (&self->ctrl_started, FALSE);
  self->mq = FALSE;
  self->ctrl_vq = FALSE;
  self->mrg_rxbuf = FALSE;
  self->csum = self->guest_csum = FALSE;
  self->hdr_len = VHU_NET_HEADER_SIZE;
  update_all_pairs (self);

  VHOST_USER_DEVICE_CLASS (vhu_net_device_parent_class)->reset (device);
}

static void
vhu_net_device_disconnected (VhostUserDevice *device)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);

  for (guint k = 0; k < self->n_pairs; k++)
    {
      NetPair *p = &self->pairs[k];

      /* The rings stopped: the pair's thread counts no more. */
      guint64 tx_frames = STAT_GET (p->conn_tx_frames);
      guint64 rx_frames = STAT_GET (p->conn_rx_frames);

      if (tx_frames > 0 || rx_frames > 0)
        g_debug ("pair %u: %" G_GUINT64_FORMAT " frames sent by the driver, %" G_GUINT64_FORMAT
                 " received",
                 k, tx_frames, rx_frames);
      __atomic_store_n (&p->conn_tx_frames, 0, __ATOMIC_RELAXED);
      __atomic_store_n (&p->conn_rx_frames, 0, __ATOMIC_RELAXED);
    }

  VHOST_USER_DEVICE_CLASS (vhu_net_device_parent_class)->disconnected (device);
}

static void
on_queue_enabled (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  VhuNetDevice *self = user_data;
  gboolean is_rx = FALSE;
  NetPair *p = pair_of_queue (self, VHOST_USER_VIRTQUEUE (object), &is_rx);

  /* Emitted where the ring's state changed: the queue's thread, or the
   * device's (SET_FEATURES without protocol features, a reset). */
  if (p != NULL)
    pair_request_update (self, p);
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

static void
pair_attach_source (NetPair *p)
{
  p->source = g_source_new (&pair_source_funcs, sizeof (PairSource));
  ((PairSource *) p->source)->pair = p;
  g_source_set_static_name (p->source, "[vhost-user-net] queue pair");
  /* Nothing here iterates the context inside the callback; a source that
   * may not recurse costs GLib two wakeups of the context per dispatch. */
  g_source_set_can_recurse (p->source, TRUE);
  g_source_attach (p->source, p->context);
}

static void
pair_detach_source (NetPair *p)
{
  if (p->source == NULL)
    return;
  g_source_destroy (p->source);
  g_clear_pointer (&p->source, g_source_unref);
  p->tap_tag = NULL;
  p->tap_polling = FALSE;
}

static void
vhu_net_device_constructed (GObject *object)
{
  VhuNetDevice *self = VHU_NET_DEVICE (object);
  VhostUserDevice *device = VHOST_USER_DEVICE (self);
  guint n_queues;

  G_OBJECT_CLASS (vhu_net_device_parent_class)->constructed (object);

  n_queues = vhost_user_device_get_num_queues (device);
  g_assert (n_queues >= 3 && n_queues % 2 == 1);
  self->n_pairs = (n_queues - 1) / 2;
  self->pairs = g_new0 (NetPair, self->n_pairs);
  self->ctrl_mq = vhost_user_device_get_queue (device, n_queues - 1);
  self->ctrl_sq = vhost_user_device_get_queue (device, 2);

  for (guint k = 0; k < self->n_pairs; k++)
    {
      NetPair *p = &self->pairs[k];

      p->device = self;
      p->index = k;
      p->rx = vhost_user_device_get_queue (device, 2 * k);
      p->tx = vhost_user_device_get_queue (device, 2 * k + 1);
      p->context = g_main_context_ref (vhost_user_device_get_context (device));
      pair_attach_source (p);
    }
  for (guint i = 0; i < n_queues; i++)
    g_signal_connect_object (vhost_user_device_get_queue (device, i), "notify::enabled",
                             G_CALLBACK (on_queue_enabled), self, 0);

  /* Scratch space per pair (the tap's is added by vhu_net_device_new_tap()). */
  self->rx_elems_cap = vhost_user_device_get_max_queue_size (device);
  for (guint k = 0; k < self->n_pairs; k++)
    {
      NetPair *p = &self->pairs[k];

      p->rx_elems = g_new0 (VhostUserVirtqElement *, self->rx_elems_cap);
      /* A batch, and the chains of a frame that overflows the receive
       * batch. */
      p->held_rx_cap = self->rx_elems_cap + BATCH;
      p->held_rx = g_new0 (VhostUserVirtqElement *, p->held_rx_cap);
      p->held_tx = g_new0 (VhostUserVirtqElement *, BATCH);
    }
}

static void
vhu_net_device_dispose (GObject *object)
{
  VhuNetDevice *self = VHU_NET_DEVICE (object);

  for (guint k = 0; self->pairs != NULL && k < self->n_pairs; k++)
    pair_detach_source (&self->pairs[k]);

  G_OBJECT_CLASS (vhu_net_device_parent_class)->dispose (object);
}

static void
vhu_net_device_finalize (GObject *object)
{
  VhuNetDevice *self = VHU_NET_DEVICE (object);

  g_clear_pointer (&self->tap, vhu_net_tap_free);
  for (guint k = 0; self->pairs != NULL && k < self->n_pairs; k++)
    {
      NetPair *p = &self->pairs[k];

      g_clear_pointer (&p->context, g_main_context_unref);
      g_free (p->rx_elems);
      g_free (p->held_rx);
      g_free (p->held_tx);
      g_free (p->iov);
      g_free (p->bounce);
    }
  g_free (self->pairs);

  G_OBJECT_CLASS (vhu_net_device_parent_class)->finalize (object);
}

static void
vhu_net_device_class_init (VhuNetDeviceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  object_class->constructed = vhu_net_device_constructed;
  object_class->dispose = vhu_net_device_dispose;
  object_class->finalize = vhu_net_device_finalize;

  device_class->get_features = vhu_net_device_get_features;
  device_class->get_protocol_features = vhu_net_device_get_protocol_features;
  device_class->get_config = vhu_net_device_get_config;
  device_class->set_mtu = vhu_net_device_set_mtu_vfunc;
  device_class->send_rarp = vhu_net_device_send_rarp;
  device_class->features_negotiated = vhu_net_device_features_negotiated;
  device_class->queue_started = vhu_net_device_queue_started;
  device_class->queue_stopped = vhu_net_device_queue_stopped;
  device_class->queue_kicked = vhu_net_device_queue_kicked;
  device_class->reset = vhu_net_device_reset;
  device_class->disconnected = vhu_net_device_disconnected;
}

static void
vhu_net_device_init (VhuNetDevice *self)
{
  self->hdr_len = VHU_NET_HEADER_SIZE;
  self->active_pairs = 1;
  self->status = VHU_NET_S_LINK_UP;
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */

static VhuNetDevice *
net_device_new (Mode mode, guint queue_pairs)
{
  VhuNetDevice *self;

  g_return_val_if_fail (queue_pairs >= 1 && queue_pairs <= VHU_NET_MAX_QUEUE_PAIRS, NULL);
  self = g_object_new (VHU_TYPE_NET_DEVICE, "num-queues", 2 * queue_pairs + 1, NULL);
  self->mode = mode;
  return self;
}

VhuNetDevice *
vhu_net_device_new_loopback (guint queue_pairs)
{
  return net_device_new (MODE_LOOPBACK, queue_pairs);
}

VhuNetDevice *
vhu_net_device_new_tap (const char *ifname, guint queue_pairs, GError **error)
{
  g_autoptr (VhuNetDevice) self = NULL;
  VhuNetTap *tap;

  g_return_val_if_fail (queue_pairs >= 1 && queue_pairs <= VHU_NET_MAX_QUEUE_PAIRS, NULL);
  tap = vhu_net_tap_open (ifname, queue_pairs, error);
  if (tap == NULL)
    return NULL;
  self = net_device_new (MODE_TAP, queue_pairs);
  self->tap = tap;
  for (guint k = 0; k < self->n_pairs; k++)
    {
      self->pairs[k].iov = g_new (struct iovec, MAX_READ_IOV + 1);
      self->pairs[k].bounce = g_malloc (BOUNCE_SIZE);
    }
  update_frame_hint (self);
  if (!vhu_net_tap_set_header_size (tap, self->hdr_len, error))
    return NULL;
  update_all_pairs (self);
  return g_steal_pointer (&self);
}

void
vhu_net_device_set_mac (VhuNetDevice *self, const guint8 mac[6])
{
  g_return_if_fail (VHU_IS_NET_DEVICE (self));

  memcpy (self->mac, mac, sizeof self->mac);
  self->has_mac = TRUE;
}

void
vhu_net_device_set_mtu (VhuNetDevice *self, guint mtu)
{
  g_return_if_fail (VHU_IS_NET_DEVICE (self));
  g_return_if_fail (mtu >= 68 && mtu <= G_MAXUINT16);

  self->mtu = mtu;
  self->offer_mtu = TRUE;
  update_frame_hint (self);
}

guint
vhu_net_device_get_mtu (VhuNetDevice *self)
{
  g_return_val_if_fail (VHU_IS_NET_DEVICE (self), 0);
  return self->mtu;
}

guint
vhu_net_device_get_queue_pairs (VhuNetDevice *self)
{
  g_return_val_if_fail (VHU_IS_NET_DEVICE (self), 0);
  return self->n_pairs;
}

guint
vhu_net_device_get_active_pairs (VhuNetDevice *self)
{
  g_return_val_if_fail (VHU_IS_NET_DEVICE (self), 0);
  return g_atomic_int_get (&self->active_pairs);
}

guint
vhu_net_device_get_header_size (VhuNetDevice *self)
{
  g_return_val_if_fail (VHU_IS_NET_DEVICE (self), 0);
  return self->hdr_len;
}

const gchar *
vhu_net_device_get_ifname (VhuNetDevice *self)
{
  g_return_val_if_fail (VHU_IS_NET_DEVICE (self), NULL);
  return self->tap != NULL ? self->tap->ifname : NULL;
}

void
vhu_net_device_get_stats (VhuNetDevice *self, VhuNetStats *stats)
{
  g_return_if_fail (VHU_IS_NET_DEVICE (self));

  memset (stats, 0, sizeof *stats);
  for (guint k = 0; k < self->n_pairs; k++)
    {
      VhuNetStats *s = &self->pairs[k].stats;

      stats->tx_frames += STAT_GET (s->tx_frames);
      stats->tx_bytes += STAT_GET (s->tx_bytes);
      stats->tx_dropped += STAT_GET (s->tx_dropped);
      stats->rx_frames += STAT_GET (s->rx_frames);
      stats->rx_bytes += STAT_GET (s->rx_bytes);
      stats->rx_dropped += STAT_GET (s->rx_dropped);
      stats->rx_bad_buffers += STAT_GET (s->rx_bad_buffers);
      stats->rx_starved += STAT_GET (s->rx_starved);
    }
  stats->ctrl_ok = STAT_GET (self->ctrl_ok);
  stats->ctrl_err = STAT_GET (self->ctrl_err);
}

void
vhu_net_device_set_pair_context (VhuNetDevice *self, guint pair, GMainContext *context)
{
  VhostUserDevice *device;
  NetPair *p;

  g_return_if_fail (VHU_IS_NET_DEVICE (self));
  g_return_if_fail (pair < self->n_pairs);
  device = VHOST_USER_DEVICE (self);
  g_return_if_fail (!vhost_user_device_get_connected (device));

  if (context == NULL)
    context = vhost_user_device_get_context (device);
  p = &self->pairs[pair];
  if (context == p->context)
    return;
  vhost_user_virtqueue_set_context (p->rx, context);
  vhost_user_virtqueue_set_context (p->tx, context);
  pair_detach_source (p);
  g_main_context_unref (p->context);
  p->context = g_main_context_ref (context);
  pair_attach_source (p);
  /* The tap queue is watched again from the new source. */
  pair_request_update (self, p);
}

GMainContext *
vhu_net_device_get_pair_context (VhuNetDevice *self, guint pair)
{
  g_return_val_if_fail (VHU_IS_NET_DEVICE (self), NULL);
  g_return_val_if_fail (pair < self->n_pairs, NULL);
  return self->pairs[pair].context;
}

void
vhu_net_device_set_queue_mode (VhuNetDevice *self, VhostUserQueueMode mode, guint64 poll_ns)
{
  g_return_if_fail (VHU_IS_NET_DEVICE (self));

  for (guint k = 0; k < self->n_pairs; k++)
    {
      NetPair *p = &self->pairs[k];

      if (poll_ns != 0)
        {
          vhost_user_virtqueue_set_poll_ns (p->rx, poll_ns);
          vhost_user_virtqueue_set_poll_ns (p->tx, poll_ns);
        }
      vhost_user_virtqueue_set_mode (p->rx, mode);
      vhost_user_virtqueue_set_mode (p->tx, mode);
    }
}
