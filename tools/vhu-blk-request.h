/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * One virtio-blk request on its way from the ring to the disk and back: what
 * the device parsed out of a virtqueue element (operation, byte range, the
 * data segments in guest memory) and what the I/O engine reports (the status
 * byte). Requests are preallocated per queue and reused: nothing is
 * allocated per request.
 *
 * The virtio-blk constants (virtio 1.2, 5.2) are here too.
 */

#pragma once

#include <glib.h>
#include <sys/uio.h>

#include <libvhostuser-glib/libvhostuser-glib.h>

G_BEGIN_DECLS

/* Feature bits (virtio 1.2, 5.2.3). */
#define VHU_BLK_F_SIZE_MAX 1
#define VHU_BLK_F_SEG_MAX 2
#define VHU_BLK_F_GEOMETRY 4
#define VHU_BLK_F_RO 5
#define VHU_BLK_F_BLK_SIZE 6
#define VHU_BLK_F_FLUSH 9
#define VHU_BLK_F_TOPOLOGY 10
#define VHU_BLK_F_CONFIG_WCE 11
#define VHU_BLK_F_MQ 12
#define VHU_BLK_F_DISCARD 13
#define VHU_BLK_F_WRITE_ZEROES 14

/* Request types (5.2.6). */
#define VHU_BLK_T_IN 0u
#define VHU_BLK_T_OUT 1u
#define VHU_BLK_T_FLUSH 4u
#define VHU_BLK_T_GET_ID 8u
#define VHU_BLK_T_DISCARD 11u
#define VHU_BLK_T_WRITE_ZEROES 13u

/* Status byte values. */
#define VHU_BLK_S_OK 0u
#define VHU_BLK_S_IOERR 1u
#define VHU_BLK_S_UNSUPP 2u

/* The out header every request starts with, and a discard or write-zeroes
 * segment. Little-endian on the wire. */
#define VHU_BLK_OUTHDR_SIZE 16u
#define VHU_BLK_SEGMENT_SIZE 16u
#define VHU_BLK_WRITE_ZEROES_F_UNMAP 1u

#define VHU_BLK_SECTOR_SIZE 512u
#define VHU_BLK_ID_BYTES 20u

/* Limits the device announces in its config space and enforces. */
#define VHU_BLK_SEG_MAX 126u
#define VHU_BLK_SIZE_MAX (1u << 20)
#define VHU_BLK_MAX_DISCARD_SECTORS 0x3fffffu
#define VHU_BLK_MAX_DISCARD_SEG 32u
#define VHU_BLK_MAX_WRITE_ZEROES_SECTORS 0x3fffffu
#define VHU_BLK_MAX_WRITE_ZEROES_SEG 32u

typedef enum
{
  VHU_BLK_OP_READ,
  VHU_BLK_OP_WRITE,
  VHU_BLK_OP_FLUSH,
  VHU_BLK_OP_DISCARD,
  VHU_BLK_OP_WRITE_ZEROES,
} VhuBlkOp;

typedef struct _VhuBlkRequest VhuBlkRequest;

struct _VhuBlkRequest
{
  VhuBlkRequest *next;          /* free list, engine queues */
  gpointer queue;               /* the device's queue it came from */
  VhostUserVirtqElement *elem;  /* owned while the request is in flight */
  guint epoch;                  /* the queue start it was popped in */
  gboolean in_engine;           /* handed to the I/O engine */
  guint8 *status_ptr;           /* the status byte in guest memory (NULL: none) */
  gsize written;                /* what the push reports */

  VhuBlkOp op;
  gboolean dsync;               /* write through (the driver turned the cache off) */
  guint64 offset;               /* READ, WRITE: bytes into the image */
  guint64 capacity;             /* sectors, when the request was parsed */
  guint n_segments;             /* DISCARD, WRITE_ZEROES */

  /* READ, WRITE: the data in guest memory (advanced over short transfers);
   * DISCARD, WRITE_ZEROES: the segment table. The request's own copy of the
   * element's segments, header and status byte cut off. */
  struct iovec *iov;
  guint n_iov;
  guint iov_cap;

  guint8 status;                /* VHU_BLK_S_*, set by the engine */
};

G_END_DECLS
