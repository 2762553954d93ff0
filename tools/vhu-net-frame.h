/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * virtio-net frames in guest memory: the header that precedes every frame
 * (virtio 1.x, 5.1.6), copying between scattered buffers, the Internet
 * checksum a device completes for a driver that asked for it, and the RARP
 * frame that announces a guest's MAC address. No allocation, no I/O.
 */

#pragma once

#include <glib.h>
#include <sys/uio.h>

G_BEGIN_DECLS

/* virtio-net feature bits (virtio 1.x, 5.1.3) */
#define VHU_NET_F_CSUM 0
#define VHU_NET_F_GUEST_CSUM 1
#define VHU_NET_F_CTRL_GUEST_OFFLOADS 2
#define VHU_NET_F_MTU 3
#define VHU_NET_F_MAC 5
#define VHU_NET_F_GUEST_TSO4 7
#define VHU_NET_F_HOST_TSO4 11
#define VHU_NET_F_MRG_RXBUF 15
#define VHU_NET_F_STATUS 16
#define VHU_NET_F_CTRL_VQ 17
#define VHU_NET_F_CTRL_RX 18
#define VHU_NET_F_CTRL_VLAN 19
#define VHU_NET_F_GUEST_ANNOUNCE 21
#define VHU_NET_F_MQ 22
#define VHU_NET_F_CTRL_MAC_ADDR 23

/* The header's flags and GSO types */
#define VHU_NET_HDR_F_NEEDS_CSUM 1u
#define VHU_NET_HDR_F_DATA_VALID 2u
#define VHU_NET_HDR_GSO_NONE 0u

/* The config space's status field */
#define VHU_NET_S_LINK_UP 1u
#define VHU_NET_S_ANNOUNCE 2u

/* The control queue (5.1.6.5) */
#define VHU_NET_OK 0u
#define VHU_NET_ERR 1u
#define VHU_NET_CTRL_RX 0u
#define VHU_NET_CTRL_RX_PROMISC 0u
#define VHU_NET_CTRL_RX_NOBCAST 5u
#define VHU_NET_CTRL_MAC 1u
#define VHU_NET_CTRL_MAC_TABLE_SET 0u
#define VHU_NET_CTRL_VLAN 2u
#define VHU_NET_CTRL_ANNOUNCE 3u
#define VHU_NET_CTRL_ANNOUNCE_ACK 0u
#define VHU_NET_CTRL_MQ 4u
#define VHU_NET_CTRL_MQ_VQ_PAIRS_SET 0u
#define VHU_NET_CTRL_MQ_VQ_PAIRS_MIN 1u
#define VHU_NET_CTRL_MQ_VQ_PAIRS_MAX 0x8000u
#define VHU_NET_CTRL_GUEST_OFFLOADS 5u

/* The header: 10 bytes, or 12 with num_buffers (VERSION_1 or MRG_RXBUF).
 * Little-endian fields (VERSION_1 is the only mode the library speaks). */
typedef struct
{
  guint8 flags;
  guint8 gso_type;
  guint16 hdr_len;
  guint16 gso_size;
  guint16 csum_start;
  guint16 csum_offset;
  guint16 num_buffers;
} VhuNetHeader;

G_STATIC_ASSERT (sizeof (VhuNetHeader) == 12);

#define VHU_NET_HEADER_SIZE_LEGACY 10u
#define VHU_NET_HEADER_SIZE 12u
#define VHU_NET_NUM_BUFFERS_OFFSET 10u

/* The config space (5.1.4), up to the RSS fields. */
typedef struct
{
  guint8 mac[6];
  guint16 status;
  guint16 max_virtqueue_pairs;
  guint16 mtu;
  guint32 speed;
  guint8 duplex;
  guint8 rss_max_key_size;
  guint16 rss_max_indirection_table_length;
  guint32 supported_hash_types;
} VhuNetConfig;

G_STATIC_ASSERT (sizeof (VhuNetConfig) == 24);

/* The largest frame (Ethernet header and payload) the device moves: an IP
 * datagram of 65535 bytes with an 802.1Q tag. */
#define VHU_NET_MAX_FRAME (G_MAXUINT16 + 18u)

/* A position in a list of scattered buffers. */
typedef struct
{
  const struct iovec *iov;
  guint n;
  guint i;     /* current buffer */
  gsize off;   /* offset in it */
} VhuIovCursor;

void vhu_iov_cursor_init (VhuIovCursor *cur, const struct iovec *iov, guint n);
/* Moves @len bytes on; returns how many there were. */
gsize vhu_iov_cursor_skip (VhuIovCursor *cur, gsize len);
/* Copies up to @len bytes from @src to @dst, both moving on; returns the
 * number copied (less when either runs out). */
gsize vhu_iov_cursor_copy (VhuIovCursor *dst, VhuIovCursor *src, gsize len);
/* Copies up to @len bytes from @src to the flat @buf / from @buf to @dst. */
gsize vhu_iov_cursor_read (VhuIovCursor *src, void *buf, gsize len);
gsize vhu_iov_cursor_write (VhuIovCursor *dst, const void *buf, gsize len);

/* The ones' complement sum (RFC 1071) of @len bytes at @src, moving on,
 * added to @sum (not folded). @odd tracks a byte left over between calls. */
guint64 vhu_net_checksum_add (VhuIovCursor *src, gsize len, guint64 sum, gboolean *odd);
/* Folds a sum into the 16-bit checksum to store (complemented; a zero
 * result is stored as 0xffff, as for UDP). */
guint16 vhu_net_checksum_finish (guint64 sum);

/* The RARP frame (60 bytes, padded) a switch learns @mac from. */
#define VHU_NET_RARP_FRAME_SIZE 60u
void vhu_net_build_rarp (guint8 frame[VHU_NET_RARP_FRAME_SIZE], const guint8 mac[6]);

/* "52:54:00:12:34:56" → 6 bytes; FALSE for anything else. */
gboolean vhu_net_parse_mac (const char *str, guint8 mac[6]);

G_END_DECLS
