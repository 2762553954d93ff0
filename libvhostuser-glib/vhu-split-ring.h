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
 *
 * With an in-flight buffer (INFLIGHT_SHMFD), the ring also keeps the
 * vhost-user spec's record of every request it handed out and not yet
 * returned ("Inflight I/O tracking", split layout) in its queue region, and
 * after a back-end restart hands out what was in flight again first.
 */

#pragma once

#include <glib.h>
#include <string.h>
#include <sys/uio.h>

#include "vhu-dirty-log.h"
#include "vhu-inflight.h"
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
  gboolean resubmitted; /* handed out again after a restart (only set while tracking) */
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
  VhuInflightQueueSplit *inflight; /* non-NULL while tracking: front-end memory, untrusted */
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

  /* In-flight tracking (vhu_split_ring_set_inflight()). Nothing here is
   * read back from @inflight after the ring started. */
  VhuInflight *inflight_buffer; /* keeps @inflight mapped */
  guint64 inflight_counter;     /* the last counter given to a popped head */
  guint16 last_batch_head;      /* what the region's last_batch_head was set to */
  guint16 *batch_heads;         /* heads filled since the last flush */
  guint batch_len;
  guint16 *resubmit;            /* heads in flight at the start, in the order they were popped */
  guint resubmit_num;
  guint resubmit_pos;           /* the next one to hand out again */
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
gboolean vhu_split_ring_set_inflight (VhuSplitRing *ring,
                                      VhuInflight *inflight,
                                      guint16 queue_index,
                                      GError **error);
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
gboolean vhu_split_ring_push (VhuSplitRing *ring, VhuElement *elem, guint32 len);
gboolean vhu_split_ring_should_notify (VhuSplitRing *ring);
void vhu_split_ring_set_notification (VhuSplitRing *ring, gboolean enable);
void vhu_split_ring_suppress_kicks (VhuSplitRing *ring);
void vhu_split_ring_resume_kicks (VhuSplitRing *ring);

/* The available index as the driver last published it: one load from guest
 * memory (with acquire ordering), for a queue that polls a started ring.
 * Nothing is checked or remembered: the next pop does that. */
static inline guint16
vhu_split_ring_peek_avail_idx (const VhuSplitRing *ring)
{
  return GUINT16_FROM_LE (__atomic_load_n (&ring->avail->idx, __ATOMIC_ACQUIRE));
}

/* Element pool: elements are reused; their arrays grow to the longest chain
 * seen (bounded by VHU_MAX_IOV) and then stay. Elements go back to their
 * pool from any thread (an I/O thread may drop the last reference) and are
 * taken by the queue's thread only: returns are pushed on a lock-free stack
 * that the taker swaps out whole. The pool lives as long as the queue or
 * any element made from it: nothing is counted per take. */
typedef void (*VhuElementLeakFunc) (VhuElement *elem, gpointer user_data);

struct _VhuElementPool
{
  gint ref_count;      /* the queue's, plus one per element that exists */
  gboolean closed;
  guint mem_epoch;     /* bumped when the memory table changes */
  VhuElement *local;   /* the taker's own free list */
  VhuElement *returned;
  VhuElementLeakFunc leak_func;
  gpointer leak_data;
};

VhuElementPool *vhu_element_pool_new (VhuElementLeakFunc leak_func, gpointer leak_data);
void vhu_element_pool_close (VhuElementPool *pool);
VhuElement *vhu_element_pool_take_new (VhuElementPool *pool);
void vhu_element_pool_drop_mappings (VhuElementPool *pool);
void vhu_element_set_memory (VhuElement *elem, VhuMemTable *mem);
gboolean vhu_element_reserve (VhuElement *elem, guint n_iov);
void vhu_element_unref_by_taker (VhuElementPool *pool, VhuElement *elem);

/* An element with one reference, from the taker's list, or from what came
 * back since, or new. */
static inline VhuElement *
vhu_element_pool_take (VhuElementPool *pool)
{
  VhuElement *elem = pool->local;

  if (elem == NULL)
    elem = __atomic_exchange_n (&pool->returned, NULL, __ATOMIC_ACQUIRE);
  if (G_UNLIKELY (elem == NULL))
    return vhu_element_pool_take_new (pool);
  pool->local = elem->next_free;
  elem->ref_count = 1;
  return elem;
}

/* Gives back an element just taken and not handed out. */
static inline void
vhu_element_pool_put_back (VhuElementPool *pool, VhuElement *elem)
{
  elem->next_free = pool->local;
  pool->local = elem;
}

/* ------------------------------------------------------------------------ */
/* The usual pop and push, inlined where the queue's entry points call them
 * (vhost-user-virtqueue.c): no dirty log, no in-flight buffer (for the
 * pop), chains inside the memory region of the buffer before. They return
 * FALSE, having changed nothing, for anything else: vhu_split_ring_pop()
 * and vhu_split_ring_push() then do the whole work, and find and report
 * what was wrong. Every descriptor is read once into a local copy and only
 * the copy is used. */

/* A chain of direct descriptors, or one indirect table (all of the chain):
 * none of its buffers empty, the readable ones first, the table and every
 * buffer inside the region of the last one translated (the hint), as many
 * as the element has room for. */
static inline gboolean
vhu_split_ring_walk_fast (const VhuSplitRing *ring, VhuElement *elem, guint head)
{
  const VhuVringDesc *table = ring->desc;
  guint64 base = ring->hint_gpa;
  guint64 size = ring->hint_len;
  guintptr delta = (guintptr) ring->hint_host - (guintptr) base;
  guint num = ring->num;
  struct iovec *iov = elem->iov;
  guint64 *gpa = elem->iov_gpa;
  guint64 out_size = 0, in_size = 0;
  guint in_num = 0;
  guint i = head;
  VhuVringDesc d;
  guint64 addr;
  guint32 len;
  guint16 flags;

  memcpy (&d, &table[i], sizeof d);
  addr = GUINT64_FROM_LE (d.addr);
  len = GUINT32_FROM_LE (d.len);
  flags = GUINT16_FROM_LE (d.flags);
  if (flags & VHU_VRING_DESC_F_INDIRECT)
    {
      /* The whole chain in a table: negotiated, alone, whole entries, not
       * more than VHU_MAX_IOV, in the region. */
      if (!ring->indirect || (flags & VHU_VRING_DESC_F_NEXT) || len % sizeof (VhuVringDesc) != 0
          || addr - base >= size || (guint64) len - 1 >= size - (addr - base)
          || len > VHU_MAX_IOV * sizeof (VhuVringDesc))
        return FALSE;
      table = (const VhuVringDesc *) (guintptr) (addr + delta);
      num = len / sizeof (VhuVringDesc);
      i = 0;
      memcpy (&d, &table[i], sizeof d);
      addr = GUINT64_FROM_LE (d.addr);
      len = GUINT32_FROM_LE (d.len);
      flags = GUINT16_FROM_LE (d.flags);
    }

  for (;;)
    {
      /* In the region, not empty (len - 1 wraps), not indirect. */
      if (G_UNLIKELY ((flags & VHU_VRING_DESC_F_INDIRECT) || addr - base >= size
                      || (guint64) len - 1 >= size - (addr - base)))
        return FALSE;
      if (flags & VHU_VRING_DESC_F_WRITE)
        {
          in_size += len;
          in_num++;
        }
      else if (G_UNLIKELY (in_num > 0))
        return FALSE;
      else
        out_size += len;
      iov->iov_base = (gpointer) (guintptr) (addr + delta);
      iov->iov_len = len;
      *gpa++ = addr;
      iov++;
      if (!(flags & VHU_VRING_DESC_F_NEXT))
        break;
      i = GUINT16_FROM_LE (d.next);
      /* Longer than the element's room (a loop, say): the slow walk's. */
      if (G_UNLIKELY (i >= num || (guint) (iov - elem->iov) >= MIN (elem->iov_cap, num)))
        return FALSE;
      memcpy (&d, &table[i], sizeof d);
      addr = GUINT64_FROM_LE (d.addr);
      len = GUINT32_FROM_LE (d.len);
      flags = GUINT16_FROM_LE (d.flags);
    }
  if (G_UNLIKELY (out_size + in_size > G_MAXUINT32))
    return FALSE;
  elem->out_num = (iov - elem->iov) - in_num;
  elem->in_num = in_num;
  elem->out_size = out_size;
  elem->in_size = in_size;
  return TRUE;
}

/* The pop: entries available (the index read when the ones seen are used
 * up), a good head, a chain vhu_split_ring_walk_fast() takes. The caller
 * still compares vhu_fault_guard_count() with @faults_seen. */
static inline gboolean
vhu_split_ring_pop_fast (VhuSplitRing *ring, VhuElement *elem)
{
  guint16 last = ring->last_avail_idx;
  guint num = ring->num; /* 0 for a stopped ring */
  guint head;

  if (G_UNLIKELY (ring->inuse >= num || ring->broken || ring->inflight != NULL
                  || ring->log != NULL))
    return FALSE;
  if (ring->shadow_avail_idx == last)
    {
      guint16 idx = GUINT16_FROM_LE (__atomic_load_n (&ring->avail->idx, __ATOMIC_ACQUIRE));

      if (idx == last || (guint16) (idx - last) > num)
        return FALSE;
      ring->shadow_avail_idx = idx;
    }

  head = GUINT16_FROM_LE (__atomic_load_n (&ring->avail->ring[last & (num - 1)], __ATOMIC_RELAXED));
  if (G_UNLIKELY (head >= num || ring->heads_in_flight[head]))
    return FALSE;
  /* Kept in the element (and read back below) rather than in a register
   * across the walk. */
  elem->head = head;
  if (G_UNLIKELY (!vhu_split_ring_walk_fast (ring, elem, head)))
    return FALSE;

  ring->heads_in_flight[elem->head] = 1;
  elem->in_flight = TRUE;
  elem->generation = ring->generation;
  last = ++ring->last_avail_idx;
  ring->inuse++;
  /* avail_event is the used ring's last field. */
  if (ring->event_idx && ring->notification_enabled)
    __atomic_store_n ((guint16 *) &ring->used->ring[ring->num], GUINT16_TO_LE (last),
                      __ATOMIC_RELAXED);
  return TRUE;
}

/* Whether the driver wants to hear about the used entries so far (EVENT_IDX
 * or NO_INTERRUPT); with EVENT_IDX, remembers what was signalled. */
static inline gboolean
vhu_split_ring_should_notify_inline (VhuSplitRing *ring)
{
  guint16 old, new, used_event;
  gboolean valid;

  /* The used index must be visible before the driver's flags are read. */
  __atomic_thread_fence (__ATOMIC_SEQ_CST);

  if (!ring->event_idx)
    return !(GUINT16_FROM_LE (__atomic_load_n (&ring->avail->flags, __ATOMIC_RELAXED))
             & VHU_VRING_AVAIL_F_NO_INTERRUPT);

  old = ring->signalled_used;
  valid = ring->signalled_used_valid;
  new = ring->signalled_used = ring->used_idx;
  ring->signalled_used_valid = TRUE;
  if (!valid)
    return TRUE;
  used_event = GUINT16_FROM_LE (
    __atomic_load_n ((const guint16 *) &ring->avail->ring[ring->num], __ATOMIC_RELAXED));
  return (guint16) (new - used_event - 1) < (guint16) (new - old);
}

/* vhu_split_ring_fill() without in-flight tracking or dirty log. */
static inline gboolean
vhu_split_ring_fill_fast (VhuSplitRing *ring, VhuElement *elem, guint32 len, guint offset)
{
  VhuVringUsedElem *entry;

  if (G_UNLIKELY (ring->inflight != NULL || ring->log != NULL))
    return FALSE;
  entry = &ring->used->ring[(guint16) (ring->used_idx + offset) & (ring->num - 1)];
  /* Never report more than the driver offered. */
  entry->id = GUINT32_TO_LE (elem->head);
  entry->len = GUINT32_TO_LE (MIN ((guint64) len, elem->in_size));
  ring->heads_in_flight[elem->head] = 0;
  elem->in_flight = FALSE;
  return TRUE;
}

/* The push of one element (fill at offset 0, flush of 1): sets @notify as
 * vhu_split_ring_should_notify() would. */
static inline gboolean
vhu_split_ring_push_fast (VhuSplitRing *ring, VhuElement *elem, guint32 len, gboolean *notify)
{
  guint16 new = ring->used_idx + 1;

  if (G_UNLIKELY (!vhu_split_ring_fill_fast (ring, elem, len, 0)))
    return FALSE;
  __atomic_store_n (&ring->used->idx, GUINT16_TO_LE (new), __ATOMIC_RELEASE);
  ring->used_idx = new;
  ring->inuse--;
  /* The used index ran past the last one signalled: that one says nothing
   * any more. */
  if (new == ring->signalled_used)
    ring->signalled_used_valid = FALSE;
  *notify = vhu_split_ring_should_notify_inline (ring);
  return TRUE;
}

G_END_DECLS
