/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A virtio-net device (device id 1) on VhostUserDevice. Queue pair k is
 * receive queue 2k and transmit queue 2k + 1; the control queue, when the
 * driver negotiates VIRTIO_NET_F_CTRL_VQ, comes after the last pair with
 * VIRTIO_NET_F_MQ and is queue 2 without. Front-ends that keep the control
 * queue to themselves (QEMU, DPDK) choose the pairs in use with
 * SET_VRING_ENABLE. Frames go either back to the driver (loopback: what
 * the driver sends on transmit queue 2k + 1 arrives on receive queue 2k) or
 * to a tap interface (one tap queue per pair). A pair may run on a thread
 * of its own (vhu_net_device_set_pair_context()).
 */

#pragma once

#include <libvhostuser-glib/libvhostuser-glib.h>

G_BEGIN_DECLS

#define VHU_TYPE_NET_DEVICE (vhu_net_device_get_type ())
G_DECLARE_FINAL_TYPE (VhuNetDevice, vhu_net_device, VHU, NET_DEVICE, VhostUserDevice)

/* The most queue pairs: 2 n + 1 queues fit the library's 256. */
#define VHU_NET_MAX_QUEUE_PAIRS 127u

typedef struct
{
  guint64 tx_frames;      /* frames the driver sent that went out (loopback: were received) */
  guint64 tx_bytes;       /* their bytes, without the virtio-net header */
  guint64 tx_dropped;     /* malformed, too large, or no room on the other side */
  guint64 rx_frames;      /* frames placed in receive buffers */
  guint64 rx_bytes;
  guint64 rx_dropped;     /* frames from the tap that did not fit the receive buffers */
  guint64 rx_bad_buffers; /* receive chains too small for the header, returned empty */
  guint64 rx_starved;     /* times the device waited for receive buffers */
  guint64 ctrl_ok;        /* control commands acknowledged with VIRTIO_NET_OK */
  guint64 ctrl_err;       /* control commands answered with VIRTIO_NET_ERR */
} VhuNetStats;

/* Loopback with @queue_pairs pairs (1 to VHU_NET_MAX_QUEUE_PAIRS). */
VhuNetDevice *vhu_net_device_new_loopback (guint queue_pairs);
/* The tap interface @ifname (created if it does not exist, which needs
 * CAP_NET_ADMIN; an existing one must be multi-queue when @queue_pairs > 1). */
VhuNetDevice *vhu_net_device_new_tap (const char *ifname, guint queue_pairs, GError **error);

/* The MAC address offered with VIRTIO_NET_F_MAC (not offered without). Call
 * before a front-end connects. */
void vhu_net_device_set_mac (VhuNetDevice *self, const guint8 mac[6]);
/* The MTU offered with VIRTIO_NET_F_MTU (not offered without); a front-end
 * may change it with NET_SET_MTU. */
void vhu_net_device_set_mtu (VhuNetDevice *self, guint mtu);
guint vhu_net_device_get_mtu (VhuNetDevice *self);

guint vhu_net_device_get_queue_pairs (VhuNetDevice *self);
/* The pairs the driver uses (VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET). */
guint vhu_net_device_get_active_pairs (VhuNetDevice *self);
/* The virtio-net header length of the negotiated features: 12 or 10. */
guint vhu_net_device_get_header_size (VhuNetDevice *self);
/* The tap's name, or NULL in loopback. */
const gchar *vhu_net_device_get_ifname (VhuNetDevice *self);
/* Sums the pairs' counters (each written by its pair's thread). */
void vhu_net_device_get_stats (VhuNetDevice *self, VhuNetStats *stats);

/* Runs pair @pair (its receive and transmit queues, and its tap queue) on
 * @context (NULL: the device's), e.g. a worker thread's: call from the
 * device's context before a front-end connects. The control queue stays on
 * the device's context. With pairs on other threads, stop iterating their
 * contexts (after the front-end is gone) before dropping the device. */
void vhu_net_device_set_pair_context (VhuNetDevice *self, guint pair, GMainContext *context);
GMainContext *vhu_net_device_get_pair_context (VhuNetDevice *self, guint pair);
/* The queue mode of every data queue (the control queue waits for kicks);
 * @poll_ns (0: leave it) is the adaptive budget. */
void vhu_net_device_set_queue_mode (VhuNetDevice *self, VhostUserQueueMode mode, guint64 poll_ns);

G_END_DECLS
