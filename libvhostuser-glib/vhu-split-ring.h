/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The split virtqueue (virtio 1.x, 2.7): taking descriptor chains from the
 * available ring and returning them through the used ring. Everything in
 * guest memory is read once into a private copy, validated, and only the
 * copy is used. No allocation and no system call on this path: elements come
 * from a per-queue pool, and notifications are decided here but sent by the
 * caller.
 */

#pragma once

#include <glib.h>
#include <sys/uio.h>

#include "vhu-dirty-log.h"
#include "vhu-memory.h"

G_BEGIN_DECLS

#define VHU_VRING_DESC_F_NEXT 1u
#define VHU_VRING_DESC_F_WRITE 2u
#define VHU_VRING_DESC_F_INDIRECT 4u
#define VHU_VRING_AVAIL_F_NO_INTERRUPT 1u
#define VHU_VRING_USED_F_NO_NOTIFY 1u

/* The most segments one element may have (after splitting buffers that
 * cross memory regions), and the largest indirect table. */
#define VHU_MAX_IOV 1024u

typedef struct
{
  guint64 addr;
  guint32 len;
  guint16 flags;
  guint16 next;
} VhuVringDesc;

typedef struct
{
  guint16 flags;
  guint16 idx;
  guint16 ring[];
} VhuVringAvail;

typedef struct
{
  guint32 id;
  guint32 len;
} VhuVringUsedElem;

typedef struct
{
  guint16 flags;
  guint16 idx;
  VhuVringUsedElem ring[];
} VhuVringUsed;

typedef struct _VhuElementPool VhuElementPool;
typedef struct _VhostUserVirtqElement VhuElement;

struct _VhostUserVirtqElement
{
  gint ref_count;
  VhuElementPool *pool;
  VhuMemTable *mem;   /* keeps the buffers mapped */
  guint mem_epoch;    /* the pool's epoch when @mem was taken */
  guint16 head;
  gboolean in_flight; /* popped and not yet pushed */
  guint generation;   /* the ring start it was popped in */
  guint out_num;
  guint in_num;
  guint64 out_size;
  guint64 in_size;
  guint iov_cap;
  struct iovec *iov;  /* out_num device-readable, then in_num device-writable */
  guint64 *iov_gpa;   /* guest-physical address of each iov, for the dirty log */
  VhuElement *next_free;
};

/* One started split ring, as the queue's thread sees it. */
typedef struct
{
  VhuVringDesc *desc;
  VhuVringAvail *avail;
  VhuVringUsed *used;
  VhuMemTable *mem;
  VhuDirtyLog *log;        /* non-NULL while logging (LOG_ALL) */
  guint64 used_log_gpa;    /* where the used ring is logged (VHOST_VRING_F_LOG) */
  gboolean log_used;
  guint16 num;
  gboolean event_idx;
  gboolean indirect;

  guint16 last_avail_idx;
  guint16 shadow_avail_idx;
  guint16 used_idx;
  guint16 signalled_used;
  gboolean signalled_used_valid;
  gboolean notification_enabled;
  guint inuse;
  guint generation;
  /* The region the last buffer was in: most buffers are in the same one.
   * Reset whenever @mem changes. */
  guint64 hint_gpa;
  guint64 hint_len;
  guint8 *hint_host;
  guint8 *heads_in_flight; /* one byte per head: R19 */
  VhuVringDesc *indirect_copy; /* for indirect tables that cross regions */
  guint faults_seen; /* vhu_fault_guard_count() when last checked */
  gboolean broken;
} VhuSplitRing;

typedef enum
{
  VHU_POP_OK,
  VHU_POP_EMPTY,
  VHU_POP_BROKEN,
} VhuPopResult;

void vhu_split_ring_init (VhuSplitRing *ring,
                          VhuVringDesc *desc,
                          VhuVringAvail *avail,
                          VhuVringUsed *used,
                          guint16 num,
                          guint16 last_avail_idx,
                          VhuMemTable *mem);
void vhu_split_ring_clear (VhuSplitRing *ring);
void vhu_split_ring_set_memory (VhuSplitRing *ring,
                                VhuVringDesc *desc,
                                VhuVringAvail *avail,
                                VhuVringUsed *used,
                                VhuMemTable *mem);

gboolean vhu_split_ring_is_empty (VhuSplitRing *ring);
VhuPopResult vhu_split_ring_pop (VhuSplitRing *ring, VhuElement *elem, GError **error);
void vhu_split_ring_unpop (VhuSplitRing *ring, VhuElement *elem);
void vhu_split_ring_fill (VhuSplitRing *ring, VhuElement *elem, guint32 len, guint offset);
void vhu_split_ring_flush (VhuSplitRing *ring, guint count);
gboolean vhu_split_ring_should_notify (VhuSplitRing *ring);
void vhu_split_ring_set_notification (VhuSplitRing *ring, gboolean enable);

/* Element pool: elements are reused; their arrays grow to the longest chain
 * seen (bounded by VHU_MAX_IOV) and then stay. */
typedef void (*VhuElementLeakFunc) (VhuElement *elem, gpointer user_data);

VhuElementPool *vhu_element_pool_new (VhuElementLeakFunc leak_func, gpointer leak_data);
void vhu_element_pool_close (VhuElementPool *pool);
VhuElement *vhu_element_pool_take (VhuElementPool *pool);
void vhu_element_pool_drop_mappings (VhuElementPool *pool);
void vhu_element_set_memory (VhuElement *elem, VhuMemTable *mem);
gboolean vhu_element_reserve (VhuElement *elem, guint n_iov);

G_END_DECLS
