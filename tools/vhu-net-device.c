/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The data path, per queue pair, on the device's main context:
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

/* Frames per used-ring update, and per pass over a queue pair. */
#define BATCH 64u
#define BUDGET 256u
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

struct _NetPair
{
  VhuNetDevice *device; /* unowned: the device owns its pairs */
  guint index;
  VhostUserVirtqueue *rx;
  VhostUserVirtqueue *tx;

  /* Used entries filled and not flushed yet. */
  guint rx_batch;
  guint tx_batch;

  guint64 tx_frames; /* sent by the driver, since the connection started */
  guint64 rx_frames; /* received by the driver */
  gboolean rx_starved; /* waiting for a receive kick */
  gboolean rx_notify;  /* receive kicks requested (as a ring starts) */

  /* Resumes a pass that ran out of budget; polls the tap queue. */
  GSource *source;
  gpointer tap_tag;
  gboolean tap_polling;
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
  guint active_pairs;
  guint16 status;

  NetPair *pairs;
  VhostUserVirtqueue *ctrl_mq; /* the control queue with MQ: queue 2 n */
  VhostUserVirtqueue *ctrl_sq; /* without MQ: queue 2 */

  /* The data path's scratch space, allocated once. */
  VhostUserVirtqElement **rx_elems;
  guint rx_elems_cap;
  struct iovec *iov;
  guint8 *bounce; /* VHU_NET_HEADER_SIZE + VHU_NET_MAX_FRAME */
  gboolean tap_lost;

  VhuNetStats stats;
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
  if (ctrl != NULL && vhost_user_virtqueue_get_started (ctrl))
    return index < self->active_pairs;
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

/* Makes the filled entries visible, one used-index update and at most one
 * interrupt per queue. */
static void
pair_flush (NetPair *p)
{
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
}

static void
pair_fill_rx (NetPair *p, VhostUserVirtqElement *elem, gsize written)
{
  vhost_user_virtqueue_fill (p->rx, elem, written, p->rx_batch++);
  vhost_user_virtq_element_unref (elem);
}

static void
pair_fill_tx (NetPair *p, VhostUserVirtqElement *elem)
{
  vhost_user_virtqueue_fill (p->tx, elem, 0, p->tx_batch++);
  vhost_user_virtq_element_unref (elem);
  if (p->tx_batch >= BATCH || p->rx_batch >= BATCH)
    pair_flush (p);
}

static void
pair_resume_later (NetPair *p)
{
  g_source_set_ready_time (p->source, 0);
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
      vhost_user_virtqueue_unpop (p->rx, self->rx_elems[j - 1]);
      vhost_user_virtq_element_unref (self->rx_elems[j - 1]);
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
      self->stats.rx_bad_buffers++;
      pair_fill_rx (p, elem, 0);
    }
}

/* Returns the receive chains of a frame of @len bytes (header included),
 * each filled up to its size in order. */
static void
fill_rx_frame (VhuNetDevice *self, NetPair *p, guint m, gsize len)
{
  self->stats.rx_frames++;
  p->rx_frames++;
  self->stats.rx_bytes += len - self->hdr_len;
  for (guint j = 0; j < m; j++)
    {
      gsize size = vhost_user_virtq_element_get_in_size (self->rx_elems[j]);
      gsize written = MIN (size, len);

      len -= written;
      pair_fill_rx (p, self->rx_elems[j], written);
    }
}

/* ------------------------------------------------------------------------ */
/* Writing a frame into receive chains                                      */

typedef struct
{
  VhuNetDevice *self;
  guint m;
  guint j;
  VhuIovCursor cur;
} RxWriter;

/* Writes from the start of chain @j of the @m taken. */
static void
rx_writer_init (RxWriter *w, VhuNetDevice *self, guint m, guint j)
{
  const struct iovec *iov;
  guint n;

  w->self = self;
  w->m = m;
  w->j = j;
  iov = vhost_user_virtq_element_get_in_iov (self->rx_elems[j], &n);
  vhu_iov_cursor_init (&w->cur, iov, n);
}

static gboolean
rx_writer_next (RxWriter *w)
{
  const struct iovec *iov;
  guint n;

  if (++w->j >= w->m)
    return FALSE;
  iov = vhost_user_virtq_element_get_in_iov (w->self->rx_elems[w->j], &n);
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

/* Delivers a frame of @frame_len bytes read from @src, preceded by @hdr,
 * into the receive queue of @p. FRAME_STARVED leaves everything as it was
 * (*@rx_have says how many chains there were). */
static FrameResult
deliver_frame (VhuNetDevice *self,
               NetPair *p,
               VhuIovCursor *src,
               gsize frame_len,
               VhuNetHeader *hdr,
               const ChecksumFix *fix,
               guint *rx_have)
{
  gsize need = self->hdr_len + frame_len;
  guint ring_size = vhost_user_virtqueue_get_size (p->rx);
  gsize got = 0;
  guint m = 0;
  RxWriter w;
  gsize done;

  *rx_have = 0;
  if (!pair_rx_ready (self, p))
    {
      if (!vhost_user_virtqueue_get_broken (p->rx))
        return FRAME_STARVED;
      return FRAME_DROPPED;
    }

  while (got < need)
    {
      VhostUserVirtqElement *elem;

      /* Not even the whole ring would hold it. */
      if (m == self->rx_elems_cap || m == ring_size)
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
      self->rx_elems[m++] = elem;
      got += vhost_user_virtq_element_get_in_size (elem);
      if (!self->mrg_rxbuf)
        break;
    }
  if (got < need)
    {
      /* One chain per frame, and this one is too small: dropped, the chain
       * stays for the next frame. */
      unpop_rx (self, p, 0, m);
      return FRAME_DROPPED;
    }

  hdr->num_buffers = GUINT16_TO_LE (m);
  rx_writer_init (&w, self, m, 0);
  done = rx_writer_put (&w, NULL, hdr, self->hdr_len);
  if (fix != NULL && fix->set)
    {
      guint8 value[2] = { fix->value >> 8, fix->value & 0xff };

      done += rx_writer_put (&w, src, NULL, fix->offset);
      done += rx_writer_put (&w, NULL, value, 2);
      vhu_iov_cursor_skip (src, 2);
      done += rx_writer_put (&w, src, NULL, frame_len - fix->offset - 2);
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
  if (vhu_iov_cursor_read (src, hdr, self->hdr_len) != self->hdr_len)
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

  return deliver_frame (self, p, &src, frame_len, &rh, &fix, rx_have);
}

/* One pass: transmit chains into receive chains until the transmit queue
 * is empty, the receive queue has no room, or the budget runs out. */
typedef enum
{
  PASS_EMPTY,
  PASS_STARVED,
  PASS_BUDGET,
} PassResult;

static PassResult
loopback_pass (VhuNetDevice *self, NetPair *p, guint *budget, guint *rx_have)
{
  while (*budget > 0)
    {
      VhostUserVirtqElement *tx = vhost_user_virtqueue_pop (p->tx, NULL);

      if (tx == NULL)
        return PASS_EMPTY;
      switch (loopback_frame (self, p, tx, rx_have))
        {
        case FRAME_STARVED:
          vhost_user_virtqueue_unpop (p->tx, tx);
          vhost_user_virtq_element_unref (tx);
          return PASS_STARVED;
        case FRAME_DELIVERED:
          self->stats.tx_frames++;
          p->tx_frames++;
          self->stats.tx_bytes += vhost_user_virtq_element_get_out_size (tx) - self->hdr_len;
          break;
        default:
          self->stats.tx_dropped++;
          break;
        }
      pair_fill_tx (p, tx);
      (*budget)--;
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
  p->device->stats.rx_starved++;
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
  if (queue_usable (p->rx))
    set_rx_notify (p, FALSE);

  for (;;)
    {
      guint rx_have = 0;
      PassResult result;

      vhost_user_virtqueue_set_notification (p->tx, FALSE);
      result = loopback_pass (self, p, &budget, &rx_have);
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
      self->stats.tx_dropped++;
      return;
    }
  frame_len = out_size - self->hdr_len;
  th.num_buffers = 0;

  /* The checked copy of the header, then the frame where the guest has it
   * (the kernel checks what it reads again). */
  self->iov[k].iov_base = &th;
  self->iov[k++].iov_len = self->hdr_len;
  if (src.i < n && n - src.i < MAX_READ_IOV)
    {
      for (guint i = src.i; i < n; i++, k++)
        {
          gsize skip = i == src.i ? src.off : 0;

          self->iov[k].iov_base = (guint8 *) iov[i].iov_base + skip;
          self->iov[k].iov_len = iov[i].iov_len - skip;
        }
    }
  else if (frame_len > 0)
    {
      /* Too scattered for one writev(): linearized. */
      vhu_iov_cursor_read (&src, self->bounce, frame_len);
      self->iov[k].iov_base = self->bounce;
      self->iov[k++].iov_len = frame_len;
    }

  do
    sent = writev (fd, self->iov, k);
  while (sent < 0 && errno == EINTR);
  if (sent < 0)
    {
      self->stats.tx_dropped++;
      return;
    }
  self->stats.tx_frames++;
  p->tx_frames++;
  self->stats.tx_bytes += frame_len;
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
  gsize want = self->hdr_len + self->frame_hint;
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
          self->stats.rx_bad_buffers++;
          pair_fill_rx (p, elem, 0);
          continue;
        }
      memcpy (self->iov + k, iov, n_iov * sizeof (struct iovec));
      k += n_iov;
      self->rx_elems[m++] = elem;
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
  self->iov[k].iov_base = self->bounce;
  self->iov[k++].iov_len = BOUNCE_SIZE;
  do
    n = readv (fd, self->iov, k);
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
      self->stats.rx_dropped++;
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
            self->rx_elems[m++] = elem;
            more += vhost_user_virtq_element_get_in_size (elem);
          }
      if (more < (gsize) n)
        {
          unpop_rx (self, p, 0, m);
          self->stats.rx_dropped++;
          return FRAME_DROPPED;
        }
      {
        RxWriter w;

        rx_writer_init (&w, self, m, first);
        rx_writer_put (&w, NULL, self->bounce, n - got);
      }
    }
  else
    {
      gsize covered = 0;
      guint used = 0;

      while (covered < (gsize) n)
        covered += vhost_user_virtq_element_get_in_size (self->rx_elems[used++]);
      unpop_rx (self, p, used, m);
      m = used;
    }

  /* The tap wrote the first 10 bytes of the header. */
  {
    VhostUserVirtqElement *first = self->rx_elems[0];

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

  if (self->tap == NULL || self->tap_lost)
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

static gboolean
pair_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  NetPair *p = ((PairSource *) source)->pair;
  VhuNetDevice *self = p->device;
  GIOCondition revents = 0;
  gboolean resume = g_source_get_ready_time (source) >= 0;

  g_source_set_ready_time (source, -1);
  if (p->tap_tag != NULL)
    revents = g_source_query_unix_fd (source, p->tap_tag);

  g_object_ref (self);
  if (resume)
    pair_work (p);
  if (revents & (G_IO_ERR | G_IO_HUP | G_IO_NVAL))
    {
      /* The interface was deleted: nothing more will come from it. */
      g_warning (_("Tap interface %s went away"), self->tap->ifname);
      g_source_remove_unix_fd (source, p->tap_tag);
      p->tap_tag = NULL;
      self->tap_lost = TRUE;
    }
  else if (revents & G_IO_IN)
    {
      tap_rx_work (p);
    }
  g_object_unref (self);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs pair_source_funcs = {
  .dispatch = pair_source_dispatch,
};

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
 * and polls it when the receive queue can take frames. */
static void
pair_update (VhuNetDevice *self, NetPair *p)
{
  if (self->tap != NULL && !self->tap_lost)
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

static void
update_all_pairs (VhuNetDevice *self)
{
  for (guint k = 0; k < self->n_pairs; k++)
    pair_update (self, &self->pairs[k]);
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
          self->active_pairs = pairs;
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
        self->stats.ctrl_ok++;
      else
        self->stats.ctrl_err++;
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
    self->frame_hint = MAX (self->tap->mtu != 0 ? self->tap->mtu : 1500, self->mtu) + 18;
}

static gboolean
vhu_net_device_set_mtu_vfunc (VhostUserDevice *device, guint mtu, GError **error)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);

  self->mtu = mtu;
  update_frame_hint (self);
  return TRUE;
}

static gboolean
vhu_net_device_send_rarp (VhostUserDevice *device, GBytes *mac, GError **error)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);
  guint8 frame[VHU_NET_RARP_FRAME_SIZE];
  NetPair *p = &self->pairs[0];

  vhu_net_build_rarp (frame, g_bytes_get_data (mac, NULL));
  if (self->mode == MODE_TAP)
    {
      VhuNetHeader hdr = { 0 };
      struct iovec iov[2] = {
        { &hdr, self->hdr_len },
        { frame, sizeof frame },
      };

      /* An announcement is best effort: a failure is not the front-end's. */
      if (!self->tap_lost && writev (self->tap->fds[0], iov, 2) < 0)
        g_warning (_("Cannot send a RARP to tap %s: %s"), self->tap->ifname, g_strerror (errno));
    }
  else
    {
      struct iovec iov = { frame, sizeof frame };
      VhuNetHeader hdr = { 0 };
      VhuIovCursor src;
      guint rx_have;

      vhu_iov_cursor_init (&src, &iov, 1);
      if (deliver_frame (self, p, &src, sizeof frame, &hdr, NULL, &rx_have) != FRAME_DELIVERED)
        g_debug ("RARP not delivered: no receive buffer for it");
      pair_flush (p);
    }
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
      pair_update (self, p);
    }
  else if (queue == ctrl_queue (self))
    {
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
      pair_update (self, p);
    }
}

static void
vhu_net_device_reset (VhostUserDevice *device)
{
  VhuNetDevice *self = VHU_NET_DEVICE (device);

  self->active_pairs = 1;
  self->mq = FALSE;
  self->ctrl_vq = FALSE;
  self->mrg_rxbuf = FALSE;
  self->csum = self->guest_csum = FALSE;
  self->hdr_len = VHU_NET_HEADER_SIZE;
  for (guint k = 0; k < self->n_pairs; k++)
    {
      self->pairs[k].rx_starved = FALSE;
      self->pairs[k].rx_notify = FALSE;
      self->pairs[k].rx_batch = self->pairs[k].tx_batch = 0;
    }
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

      if (p->tx_frames > 0 || p->rx_frames > 0)
        g_debug ("pair %u: %" G_GUINT64_FORMAT " frames sent by the driver, %" G_GUINT64_FORMAT
                 " received",
                 k, p->tx_frames, p->rx_frames);
      p->tx_frames = p->rx_frames = 0;
    }

  VHOST_USER_DEVICE_CLASS (vhu_net_device_parent_class)->disconnected (device);
}

static void
on_queue_enabled (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  VhuNetDevice *self = user_data;
  gboolean is_rx = FALSE;
  NetPair *p = pair_of_queue (self, VHOST_USER_VIRTQUEUE (object), &is_rx);

  if (p != NULL)
    pair_update (self, p);
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

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
      p->source = g_source_new (&pair_source_funcs, sizeof (PairSource));
      ((PairSource *) p->source)->pair = p;
      g_source_set_static_name (p->source, "[vhost-user-net] queue pair");
      g_source_attach (p->source, vhost_user_device_get_context (device));
    }
  for (guint i = 0; i < n_queues; i++)
    g_signal_connect_object (vhost_user_device_get_queue (device, i), "notify::enabled",
                             G_CALLBACK (on_queue_enabled), self, 0);

  self->rx_elems_cap = vhost_user_device_get_max_queue_size (device);
  self->rx_elems = g_new0 (VhostUserVirtqElement *, self->rx_elems_cap);
  self->iov = g_new (struct iovec, MAX_READ_IOV + 1);
  self->bounce = g_malloc (BOUNCE_SIZE);
}

static void
vhu_net_device_dispose (GObject *object)
{
  VhuNetDevice *self = VHU_NET_DEVICE (object);

  for (guint k = 0; self->pairs != NULL && k < self->n_pairs; k++)
    if (self->pairs[k].source != NULL)
      {
        g_source_destroy (self->pairs[k].source);
        g_clear_pointer (&self->pairs[k].source, g_source_unref);
        self->pairs[k].tap_tag = NULL;
      }

  G_OBJECT_CLASS (vhu_net_device_parent_class)->dispose (object);
}

static void
vhu_net_device_finalize (GObject *object)
{
  VhuNetDevice *self = VHU_NET_DEVICE (object);

  g_clear_pointer (&self->tap, vhu_net_tap_free);
  g_free (self->pairs);
  g_free (self->rx_elems);
  g_free (self->iov);
  g_free (self->bounce);

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
  return self->active_pairs;
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
  *stats = self->stats;
}
