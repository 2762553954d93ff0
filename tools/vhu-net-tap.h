/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A tap interface as a virtio-net device's wire: the /dev/net/tun file
 * descriptors (one per queue pair), opened with IFF_TAP | IFF_NO_PI |
 * IFF_VNET_HDR so that every frame carries a virtio-net header, and the
 * ioctls that follow the driver's negotiated features.
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  gchar *ifname; /* the interface's name, as the kernel reports it */
  guint n_queues;
  int *fds;      /* non-blocking, close-on-exec */
  gboolean *attached;
  guint mtu;     /* the interface's MTU when it was opened */
} VhuNetTap;

VhuNetTap *vhu_net_tap_open (const char *ifname, guint n_queues, GError **error);
void vhu_net_tap_free (VhuNetTap *tap);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuNetTap, vhu_net_tap_free)

/* The virtio-net header length every frame read or written carries. */
gboolean vhu_net_tap_set_header_size (VhuNetTap *tap, guint size, GError **error);
/* Whether the kernel may hand frames with a partial checksum (NEEDS_CSUM) to
 * the guest: VIRTIO_NET_F_GUEST_CSUM. */
gboolean vhu_net_tap_set_checksum_offload (VhuNetTap *tap, gboolean csum, GError **error);
/* Multi-queue taps: whether the kernel steers frames to queue @index. */
gboolean vhu_net_tap_set_queue_attached (VhuNetTap *tap,
                                         guint index,
                                         gboolean attached,
                                         GError **error);

G_END_DECLS
