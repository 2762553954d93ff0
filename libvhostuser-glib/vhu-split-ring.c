/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <glib/gi18n-lib.h>

#include "vhost-user-error.h"
#include "vhu-split-ring.h"

/* Guest memory is shared with a driver running concurrently: every read of
 * the rings is a single load into a local copy, with the ordering the
 * virtio spec asks for. */
#define LOAD16(p) GUINT16_FROM_LE (__atomic_load_n ((p), __ATOMIC_RELAXED))
#define LOAD16_ACQUIRE(p) GUINT16_FROM_LE (__atomic_load_n ((p), __ATOMIC_ACQUIRE))
#define STORE16(p, v) __atomic_store_n ((p), GUINT16_TO_LE (v), __ATOMIC_RELAXED)
#define STORE16_RELEASE(p, v) __atomic_store_n ((p), GUINT16_TO_LE (v), __ATOMIC_RELEASE)

static gboolean
ring_error (VhuSplitRing *ring, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
ring_error (VhuSplitRing *ring, GError **error, const char *format, ...)
{
  va_list args;

  ring->broken = TRUE;
  if (error != NULL)
    {
      va_start (args, format);
      *error = g_error_new_valist (VHOST_USER_ERROR, VHOST_USER_ERROR_QUEUE_BROKEN, format, args);
      va_end (args);
    }
  return FALSE;
}

void
vhu_split_ring_init (VhuSplitRing *ring,
                     VhuVringDesc *desc,
                     VhuVringAvail *avail,
                     VhuVringUsed *used,
                     guint16 num,
                     guint16 last_avail_idx,
                     VhuMemTable *mem)
{
  guint generation = ring->generation + 1;

  vhu_split_ring_clear (ring);
  ring->generation = generation;
  ring->desc = desc;
  ring->avail = avail;
  ring->used = used;
  ring->num = num;
  ring->mem = vhu_mem_table_ref (mem);
  ring->last_avail_idx = last_avail_idx;
  ring->shadow_avail_idx = last_avail_idx;
  ring->faults_seen = vhu_fault_guard_count ();
  /* The used index lives in guest memory: after a reconnection it is where
   * the previous back-end left it. */
  ring->used_idx = LOAD16 (&used->idx);
  ring->notification_enabled = TRUE;
  ring->heads_in_flight = g_malloc0 (num);
}

void
vhu_split_ring_clear (VhuSplitRing *ring)
{
  guint generation = ring->generation;

  g_clear_pointer (&ring->mem, vhu_mem_table_unref);
  g_clear_pointer (&ring->log, vhu_dirty_log_unref);
  g_clear_pointer (&ring->inflight_buffer, vhu_inflight_unref);
  g_free (ring->heads_in_flight);
  g_free (ring->indirect_copy);
  g_free (ring->batch_heads);
  g_free (ring->resubmit);
  memset (ring, 0, sizeof *ring);
  ring->generation = generation;
}

/* The memory table changed: the ring areas are somewhere else now. */
void
vhu_split_ring_set_memory (VhuSplitRing *ring,
                           VhuVringDesc *desc,
                           VhuVringAvail *avail,
                           VhuVringUsed *used,
                           VhuMemTable *mem)
{
  ring->desc = desc;
  ring->avail = avail;
  ring->used = used;
  g_clear_pointer (&ring->mem, vhu_mem_table_unref);
  ring->mem = vhu_mem_table_ref (mem);
  ring->hint_len = 0;
}

gboolean
vhu_split_ring_is_empty (VhuSplitRing *ring)
{
  if (ring->desc == NULL || ring->broken)
    return TRUE;
  if (ring->shadow_avail_idx != ring->last_avail_idx
      || G_UNLIKELY (ring->resubmit_pos < ring->resubmit_num))
    return FALSE;
  ring->shadow_avail_idx = LOAD16_ACQUIRE (&ring->avail->idx);
  return ring->shadow_avail_idx == ring->last_avail_idx;
}

/* What a walk gathers about its element, kept in registers and stored in
 * the element once, at the end (gather_finish()). */
typedef struct
{
  guint n;          /* segments */
  guint out_num;    /* of which device-readable */
  guint64 out_size; /* bytes */
  guint64 in_size;
} Gather;

/* A buffer outside the region of the one before (or the element's arrays
 * are full): translated through the memory table, split where it crosses
 * regions. Returns the number of segments, or -1 with the ring broken. */
static G_GNUC_NO_INLINE gint
add_buffer_slow (VhuSplitRing *ring,
                 VhuElement *elem,
                 guint n,
                 guint64 addr,
                 guint32 len,
                 GError **error)
{
  const VhuMemRegion *region;
  gint k;

  k = vhu_mem_table_gpa_to_iov (ring->mem, addr, len, elem->iov + n, elem->iov_cap - n);
  if (G_UNLIKELY (k < 0))
    {
      /* Either more segments than room, or memory that is not mapped. */
      if (elem->iov_cap < VHU_MAX_IOV && vhu_element_reserve (elem, VHU_MAX_IOV))
        k = vhu_mem_table_gpa_to_iov (ring->mem, addr, len, elem->iov + n, elem->iov_cap - n);
      if (k < 0)
        {
          ring_error (ring, error, _("Chain %u: the buffer at 0x%" G_GINT64_MODIFIER "x "
                                     "(%u bytes) is not in guest memory, or the chain "
                                     "has more than %u segments"),
                      elem->head, addr, len, VHU_MAX_IOV);
          return -1;
        }
    }

  elem->iov_gpa[n] = addr;
  for (gint i = 1; i < k; i++)
    elem->iov_gpa[n + i] = elem->iov_gpa[n + i - 1] + elem->iov[n + i - 1].iov_len;

  region = vhu_mem_table_lookup_gpa (ring->mem, addr);
  ring->hint_gpa = region->guest_addr;
  ring->hint_len = region->size;
  ring->hint_host = region->host_addr;
  return k;
}

/* Appends the buffer of one descriptor (already copied out of guest memory)
 * to @elem: translated with its length, split where it crosses regions. */
G_ALWAYS_INLINE static inline gboolean
add_buffer (VhuSplitRing *ring, VhuElement *elem, Gather *g, const VhuVringDesc *d, GError **error)
{
  guint64 addr = GUINT64_FROM_LE (d->addr);
  guint32 len = GUINT32_FROM_LE (d->len);
  gboolean writable = (GUINT16_FROM_LE (d->flags) & VHU_VRING_DESC_F_WRITE) != 0;
  guint64 offset = addr - ring->hint_gpa;
  guint n = g->n;
  gint k;

  /* Zero-length buffers carry nothing: skipped, wherever they are. */
  if (G_UNLIKELY (len == 0))
    return TRUE;

  /* A device-writable buffer came before (only non-empty ones count). */
  if (G_UNLIKELY (!writable && g->in_size > 0))
    return ring_error (ring, error, _("Descriptor %u: a device-readable buffer follows a "
                                      "device-writable one"),
                       elem->head);

  if (G_LIKELY (offset < ring->hint_len && len <= ring->hint_len - offset && n < elem->iov_cap))
    {
      /* Inside the region of the previous buffer. */
      elem->iov[n].iov_base = ring->hint_host + offset;
      elem->iov[n].iov_len = len;
      elem->iov_gpa[n] = addr;
      k = 1;
    }
  else
    {
      k = add_buffer_slow (ring, elem, n, addr, len, error);
      if (G_UNLIKELY (k < 0))
        return FALSE;
    }

  g->n = n + k;
  if (writable)
    g->in_size += len;
  else
    {
      g->out_num += k;
      g->out_size += len;
    }
  return TRUE;
}

/* The walk is over: the element gets what it gathered. A chain's buffers
 * (fewer than 2^16 direct ones and VHU_MAX_IOV indirect ones, each less
 * than 4 GiB) cannot overflow the 64-bit sums. */
G_ALWAYS_INLINE static inline gboolean
gather_finish (VhuSplitRing *ring, VhuElement *elem, const Gather *g, GError **error)
{
  elem->out_num = g->out_num;
  elem->in_num = g->n - g->out_num;
  elem->out_size = g->out_size;
  elem->in_size = g->in_size;
  if (G_UNLIKELY (g->out_size + g->in_size > G_MAXUINT32))
    return ring_error (ring, error, _("Chain %u is longer than 4 GiB"), elem->head);
  return TRUE;
}

/* An indirect table: validated, read from guest memory (copied first if it
 * crosses regions), its entries each copied once before use. It ends the
 * chain: @g holds what the direct descriptors before it gave. */
static G_GNUC_NO_INLINE gboolean
walk_indirect (VhuSplitRing *ring,
               VhuElement *elem,
               Gather gather,
               const VhuVringDesc *d,
               GError **error)
{
  guint64 addr = GUINT64_FROM_LE (d->addr);
  guint32 len = GUINT32_FROM_LE (d->len);
  guint64 avail = len;
  const VhuVringDesc *table;
  guint n_entries, i = 0;

  if (!ring->indirect)
    return ring_error (ring, error, _("Chain %u uses an indirect table, which was not negotiated"),
                       elem->head);
  if (GUINT16_FROM_LE (d->flags) & VHU_VRING_DESC_F_NEXT)
    return ring_error (ring, error, _("Chain %u: an indirect descriptor also has NEXT set"),
                       elem->head);
  if (len == 0 || len % sizeof (VhuVringDesc) != 0 || len / sizeof (VhuVringDesc) > VHU_MAX_IOV)
    return ring_error (ring, error, _("Chain %u: an indirect table of %u bytes is not a whole "
                                      "number of descriptors from 1 to %u"),
                       elem->head, len, VHU_MAX_IOV);
  n_entries = len / sizeof (VhuVringDesc);

  table = vhu_mem_table_gpa_to_host (ring->mem, addr, &avail);
  if (table != NULL && avail < len)
    {
      /* Not host-contiguous: gather it into a private copy. */
      struct iovec iov[8];
      gint k = vhu_mem_table_gpa_to_iov (ring->mem, addr, len, iov, G_N_ELEMENTS (iov));
      guint8 *p;

      if (ring->indirect_copy == NULL)
        ring->indirect_copy = g_new (VhuVringDesc, VHU_MAX_IOV);
      p = (guint8 *) ring->indirect_copy;
      if (k < 0)
        table = NULL;
      for (gint j = 0; j < k; j++)
        {
          memcpy (p, iov[j].iov_base, iov[j].iov_len);
          p += iov[j].iov_len;
        }
      if (table != NULL)
        table = ring->indirect_copy;
    }
  if (table == NULL)
    return ring_error (ring, error, _("Chain %u: the indirect table at 0x%" G_GINT64_MODIFIER "x "
                                      "is not in guest memory"),
                       elem->head, addr);

  for (guint count = 0;; count++)
    {
      VhuVringDesc entry;
      guint16 flags;

      if (count >= n_entries)
        return ring_error (ring, error, _("Chain %u: the indirect table loops"), elem->head);
      memcpy (&entry, &table[i], sizeof entry);
      flags = GUINT16_FROM_LE (entry.flags);
      if (flags & VHU_VRING_DESC_F_INDIRECT)
        return ring_error (ring, error, _("Chain %u: an indirect table refers to another"),
                           elem->head);
      if (!add_buffer (ring, elem, &gather, &entry, error))
        return FALSE;
      if (!(flags & VHU_VRING_DESC_F_NEXT))
        return gather_finish (ring, elem, &gather, error);
      i = GUINT16_FROM_LE (entry.next);
      if (i >= n_entries)
        return ring_error (ring, error, _("Chain %u: an indirect entry links to %u, past the end "
                                          "of its table of %u"),
                           elem->head, i, n_entries);
    }
}

/* The walk of a chain, for every case: fills in the element's segments
 * and sizes, or breaks the ring. */
G_ALWAYS_INLINE static inline gboolean
walk_chain (VhuSplitRing *ring, VhuElement *elem, guint16 head, GError **error)
{
  Gather g = { 0, 0, 0, 0 };
  guint i = head;

  for (guint count = 0;; count++)
    {
      VhuVringDesc d;
      guint16 flags;

      if (G_UNLIKELY (count >= ring->num))
        return ring_error (ring, error, _("Chain %u is longer than the ring or loops"), head);

      memcpy (&d, &ring->desc[i], sizeof d);
      flags = GUINT16_FROM_LE (d.flags);

      /* Zero or more direct descriptors may lead to one indirect table,
       * which ends the chain. */
      if (G_UNLIKELY (flags & VHU_VRING_DESC_F_INDIRECT))
        return walk_indirect (ring, elem, g, &d, error);

      if (G_UNLIKELY (!add_buffer (ring, elem, &g, &d, error)))
        return FALSE;
      if (!(flags & VHU_VRING_DESC_F_NEXT))
        return gather_finish (ring, elem, &g, error);
      i = GUINT16_FROM_LE (d.next);
      if (G_UNLIKELY (i >= ring->num))
        return ring_error (ring, error, _("Chain %u links to descriptor %u, past the ring of %u"),
                           head, i, ring->num);
    }
}

static G_GNUC_NO_INLINE gboolean
walk_chain_outlined (VhuSplitRing *ring, VhuElement *elem, guint16 head, GError **error)
{
  return walk_chain (ring, elem, head, error);
}


/* Logs a write the device made to the used ring (its index, an entry,
 * avail_event or the flags), when migration asks for it. */
static inline void
log_used_write (VhuSplitRing *ring, gsize offset, gsize size)
{
  if (G_UNLIKELY (ring->log != NULL && ring->log_used))
    vhu_dirty_log_mark (ring->log, ring->used_log_gpa + offset, size);
}

static void
write_avail_event (VhuSplitRing *ring, guint16 idx)
{
  STORE16 ((guint16 *) &ring->used->ring[ring->num], idx);
  log_used_write (ring, G_STRUCT_OFFSET (VhuVringUsed, ring) + ring->num * sizeof (VhuVringUsedElem),
                  sizeof (guint16));
}

/* ------------------------------------------------------------------------ */
/* In-flight tracking (INFLIGHT_SHMFD)                                      */

/* The queue region of the front-end's in-flight buffer records, for every
 * head the ring handed out and did not return, that it is in flight and in
 * which order it was taken (the vhost-user spec, "Inflight I/O tracking",
 * split virtqueue). The region survives this process: every write below is
 * ordered so that whatever point a crash stops it at, a new back-end finds a
 * record it can put right (vhu_split_ring_set_inflight()):
 *
 *  - pop: desc[head].counter, then desc[head].inflight = 1, before the
 *    element goes to the device;
 *  - fill: desc[head].next = last_batch_head, last_batch_head = head (the
 *    list of the batch being returned), before the used ring entry;
 *  - flush: used->idx, then desc[head].inflight = 0 for the batch, then the
 *    region's used_idx = used->idx.
 *
 * A crash between used->idx and used_idx leaves used_idx behind: the last
 * batch was returned but may still say in flight, and the list from
 * last_batch_head names it. The region is shared with the front-end, so it
 * is only ever written here, never read back while the ring runs: the
 * ring's own copies (last_batch_head, batch_heads, the counter) are used. */

#define REGION_STORE(p, v) __atomic_store_n ((p), (v), __ATOMIC_RELAXED)
#define REGION_LOAD(p) __atomic_load_n ((p), __ATOMIC_RELAXED)

static gboolean
inflight_error (VhuSplitRing *ring, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

/* The region cannot be one a back-end left: the ring does not start. */
static gboolean
inflight_error (VhuSplitRing *ring, GError **error, const char *format, ...)
{
  va_list args;

  ring->broken = TRUE;
  if (error != NULL)
    {
      va_start (args, format);
      *error = g_error_new_valist (VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID, format, args);
      va_end (args);
    }
  return FALSE;
}

typedef struct
{
  guint64 counter;
  guint16 head;
} InflightHead;

static int
compare_inflight_heads (const void *a, const void *b)
{
  const InflightHead *x = a;
  const InflightHead *y = b;

  if (x->counter != y->counter)
    return x->counter < y->counter ? -1 : 1;
  return (int) x->head - (int) y->head;
}

/* The flag recovery sets on the entries of the last batch, in the private
 * copy: returned to the driver, to be cleared in the region. */
#define RETURNED 2u

/* A ring just started (vhu_split_ring_init()) tracks its requests in queue
 * region @queue_index of @inflight, after putting right what the back-end
 * before left there ("When reconnecting" in the spec). A buffer that does
 * not cover the queue leaves the ring untracked.
 *
 * The region is the front-end's memory: it is copied once, and only the
 * copy is looked at. A region no back-end could have left is refused (the
 * ring is broken, nothing is written to the region): a header that does not
 * describe this ring, a flag other than 0 or 1, a last batch larger than the
 * ring or whose list leaves it, more requests in flight than the driver has
 * outstanding (avail->idx - used->idx). Heads are entry positions, so every
 * head handed out again is below the ring size; its chain is walked and
 * checked like any other when it is popped.
 *
 * The heads in flight are popped again first, in the order they were first
 * popped (by counter), without taking available entries; the next available
 * entry is then used->idx + their number: every entry taken was either
 * returned or is in flight. That is the base a front-end gives after a clean
 * stop (GET_VRING_BASE), and what QEMU leaves to the back-end when it sets
 * the base to used->idx after the back-end went away: its base is replaced.
 * With nothing in flight, the front-end's base stands. */
gboolean
vhu_split_ring_set_inflight (VhuSplitRing *ring,
                             VhuInflight *inflight,
                             guint16 queue_index,
                             GError **error)
{
  VhuInflightQueueSplit *region = vhu_inflight_get_queue_region (inflight, queue_index);
  g_autofree VhuInflightDescSplit *entries = NULL;
  g_autofree InflightHead *heads = NULL;
  guint num = ring->num;
  guint16 version, desc_num, region_used, last_batch_head, outstanding;
  guint16 used = ring->used_idx;
  guint64 counter = 0;
  guint n = 0;

  g_return_val_if_fail (ring->desc != NULL && ring->inflight == NULL, FALSE);

  if (region == NULL)
    return TRUE;
  if (vhu_inflight_is_packed (inflight) || vhu_inflight_get_queue_size (inflight) != num)
    return inflight_error (ring, error, _("Queue %u: the in-flight buffer is for %s rings of %u "
                                          "entries, not split rings of %u"),
                           queue_index, vhu_inflight_is_packed (inflight) ? "packed" : "split",
                           vhu_inflight_get_queue_size (inflight), num);

  version = REGION_LOAD (&region->version);
  desc_num = REGION_LOAD (&region->desc_num);
  region_used = REGION_LOAD (&region->used_idx);
  last_batch_head = REGION_LOAD (&region->last_batch_head);
  if (version != VHU_INFLIGHT_VERSION || desc_num != num)
    return inflight_error (ring, error, _("Queue %u: the in-flight region has version %u and %u "
                                          "entries, not version %u and %u"),
                           queue_index, version, desc_num, VHU_INFLIGHT_VERSION, num);

  entries = g_new (VhuInflightDescSplit, num);
  memcpy (entries, region->desc, num * sizeof *entries);
  for (guint i = 0; i < num; i++)
    {
      if (entries[i].inflight > 1)
        return inflight_error (ring, error, _("Queue %u: in-flight entry %u has flag %u"),
                               queue_index, i, entries[i].inflight);
      n += entries[i].inflight;
    }

  /* The last batch reached the used ring, but not the record. */
  if (n > 0 && region_used != used)
    {
      guint16 batch = used - region_used;
      guint16 head = last_batch_head;

      if (batch > num)
        return inflight_error (ring, error, _("Queue %u: the used index is %u, the in-flight "
                                              "region's %u: more than the ring of %u apart"),
                               queue_index, used, region_used, num);
      for (guint k = 0; k < batch; k++)
        {
          if (head >= num)
            return inflight_error (ring, error, _("Queue %u: the in-flight region's last batch "
                                                  "names entry %u, past the ring of %u"),
                                   queue_index, head, num);
          if (entries[head].inflight == 1)
            {
              entries[head].inflight = RETURNED;
              n--;
            }
          head = entries[head].next;
        }
    }

  outstanding = LOAD16_ACQUIRE (&ring->avail->idx) - used;
  if (n > outstanding)
    return inflight_error (ring, error, _("Queue %u: the in-flight region has %u requests in "
                                          "flight, the driver %u"),
                           queue_index, n, outstanding);

  heads = g_new (InflightHead, MAX (n, 1));
  n = 0;
  for (guint i = 0; i < num; i++)
    if (entries[i].inflight == 1)
      {
        heads[n].counter = entries[i].counter;
        heads[n].head = i;
        counter = MAX (counter, entries[i].counter);
        n++;
      }
  qsort (heads, n, sizeof *heads, compare_inflight_heads);

  /* Put right: the flags of the last batch, then the record of it. */
  for (guint i = 0; i < num; i++)
    if (entries[i].inflight == RETURNED)
      REGION_STORE (&region->desc[i].inflight, 0);
  __atomic_store_n (&region->used_idx, used, __ATOMIC_RELEASE);

  ring->inflight = region;
  ring->inflight_buffer = vhu_inflight_ref (inflight);
  ring->inflight_counter = counter;
  ring->last_batch_head = last_batch_head;
  ring->batch_heads = g_new (guint16, num);
  ring->batch_len = 0;
  if (n > 0)
    {
      if (ring->last_avail_idx != used && ring->last_avail_idx != (guint16) (used + n))
        g_debug ("queue %u: base %u replaced by %u (used index %u, %u in flight)", queue_index,
                 ring->last_avail_idx, (guint16) (used + n), used, n);
      ring->resubmit = g_new (guint16, n);
      for (guint i = 0; i < n; i++)
        ring->resubmit[i] = heads[i].head;
      ring->resubmit_num = n;
      ring->resubmit_pos = 0;
      ring->last_avail_idx = ring->shadow_avail_idx = used + n;
    }
  return TRUE;
}

/* Popped: in flight from now on, after the ones before it. */
static inline void
note_popped (VhuSplitRing *ring, guint16 head)
{
  VhuInflightDescSplit *entry = &ring->inflight->desc[head];

  REGION_STORE (&entry->counter, ++ring->inflight_counter);
  /* The counter before the flag; the flag before anything the device does
   * with the request. */
  __atomic_thread_fence (__ATOMIC_RELEASE);
  REGION_STORE (&entry->inflight, 1);
  __atomic_thread_fence (__ATOMIC_RELEASE);
}

/* Given back unprocessed. Returns TRUE for an element handed out again
 * after a restart: it goes back to the front of those, not to the
 * available ring. */
static gboolean
unpop_tracked (VhuSplitRing *ring, VhuElement *elem)
{
  if (elem->resubmitted)
    {
      if (ring->resubmit_pos > 0 && ring->resubmit[ring->resubmit_pos - 1] == elem->head)
        ring->resubmit_pos--;
      return TRUE;
    }
  /* Its available entry will be taken again, and recorded again. */
  REGION_STORE (&ring->inflight->desc[elem->head].inflight, 0);
  return FALSE;
}

/* Filled: one more head in the batch the next flush returns. */
G_ALWAYS_INLINE static inline void
note_used (VhuSplitRing *ring, guint16 head)
{
  REGION_STORE (&ring->inflight->desc[head].next, ring->last_batch_head);
  REGION_STORE (&ring->inflight->last_batch_head, head);
  ring->last_batch_head = head;
  if (G_LIKELY (ring->batch_len < ring->num))
    ring->batch_heads[ring->batch_len++] = head;
}

/* Flushed: used->idx was just stored (a release: the list above went
 * before it). Every head filled since the last flush is no longer in
 * flight, and then the record says that used->idx got there. */
G_ALWAYS_INLINE static inline void
finish_batch (VhuSplitRing *ring, guint16 used_idx)
{
  VhuInflightQueueSplit *region = ring->inflight;

  __atomic_thread_fence (__ATOMIC_RELEASE);
  for (guint i = 0; i < ring->batch_len; i++)
    REGION_STORE (&region->desc[ring->batch_heads[i]].inflight, 0);
  ring->batch_len = 0;
  __atomic_store_n (&region->used_idx, used_idx, __ATOMIC_RELEASE);
}

G_ALWAYS_INLINE static inline VhuPopResult pop_chain (VhuSplitRing *ring,
                                                     VhuElement *elem,
                                                     gboolean tracked,
                                                     GError **error);
static VhuPopResult pop_tracked (VhuSplitRing *ring, VhuElement *elem, GError **error);
static VhuPopResult pop_untracked (VhuSplitRing *ring, VhuElement *elem, GError **error);


VhuPopResult
vhu_split_ring_pop (VhuSplitRing *ring, VhuElement *elem, GError **error)
{
  VhuPopResult result;

  if (G_LIKELY (ring->inflight == NULL))
    result = pop_untracked (ring, elem, error);
  else
    result = pop_tracked (ring, elem, error);

  /* Memory the ring or a buffer lives in may have vanished (the front-end
   * truncated an unsealed file): what was read there is not the guest's. */
  if (G_UNLIKELY (vhu_fault_guard_count () != ring->faults_seen) && result != VHU_POP_BROKEN)
    {
      ring->faults_seen = vhu_fault_guard_count ();
      if (vhu_mem_table_faulted (ring->mem))
        {
          if (result == VHU_POP_OK)
            vhu_split_ring_unpop (ring, elem);
          ring_error (ring, error, _("Guest memory vanished under its mapping (the front-end "
                                     "shrank a memory file)"));
          return VHU_POP_BROKEN;
        }
    }
  return result;
}

/* Takes the next available chain. Inlined twice: @tracked is a constant,
 * so that the pop without an in-flight buffer has nothing of tracking. */
G_ALWAYS_INLINE static inline VhuPopResult
pop_chain (VhuSplitRing *ring, VhuElement *elem, gboolean tracked, GError **error)
{
  guint16 last = ring->last_avail_idx;
  guint16 head;

  if (G_UNLIKELY (ring->broken || ring->desc == NULL))
    return VHU_POP_BROKEN;

  if (ring->shadow_avail_idx == last)
    {
      guint16 idx = LOAD16_ACQUIRE (&ring->avail->idx);

      if (G_UNLIKELY ((guint16) (idx - last) > ring->num))
        {
          ring_error (ring, error, _("The available index moved from %u to %u, more than the "
                                     "ring of %u"),
                      last, idx, ring->num);
          return VHU_POP_BROKEN;
        }
      ring->shadow_avail_idx = idx;
      if (idx == last)
        return VHU_POP_EMPTY;
    }

  if (G_UNLIKELY (ring->inuse >= ring->num))
    {
      ring_error (ring, error, _("More buffers in flight than the ring of %u holds"), ring->num);
      return VHU_POP_BROKEN;
    }

  head = LOAD16 (&ring->avail->ring[last & (ring->num - 1)]);
  if (G_UNLIKELY (head >= ring->num))
    {
      ring_error (ring, error, _("Available entry %u names descriptor %u, past the ring of %u"),
                  last, head, ring->num);
      return VHU_POP_BROKEN;
    }
  if (G_UNLIKELY (ring->heads_in_flight[head]))
    {
      ring_error (ring, error, _("Chain %u was made available again while in flight"), head);
      return VHU_POP_BROKEN;
    }

  elem->head = head;
  if (G_UNLIKELY (!(tracked && vhu_split_ring_walk_fast (ring, elem, head))
                  && !walk_chain_outlined (ring, elem, head, error)))
    return VHU_POP_BROKEN;

  ring->heads_in_flight[head] = 1;
  elem->in_flight = TRUE;
  elem->generation = ring->generation;
  ring->last_avail_idx = last + 1;
  ring->inuse++;

  if (ring->event_idx && ring->notification_enabled)
    write_avail_event (ring, ring->last_avail_idx);
  if (tracked)
    {
      elem->resubmitted = FALSE;
      note_popped (ring, head);
    }
  return VHU_POP_OK;
}

static G_GNUC_NO_INLINE VhuPopResult
pop_untracked (VhuSplitRing *ring, VhuElement *elem, GError **error)
{
  return pop_chain (ring, elem, FALSE, error);
}

/* A head that was in flight when the ring started, handed out again: its
 * chain is walked as for any pop; no available entry is taken, and its
 * record stays as it was. */
static VhuPopResult
pop_resubmitted (VhuSplitRing *ring, VhuElement *elem, GError **error)
{
  guint16 head = ring->resubmit[ring->resubmit_pos];

  if (G_UNLIKELY (ring->inuse >= ring->num || ring->heads_in_flight[head]))
    {
      ring_error (ring, error, _("Chain %u, in flight before the restart, is in flight again"),
                  head);
      return VHU_POP_BROKEN;
    }

  elem->head = head;
  if (G_UNLIKELY (!walk_chain_outlined (ring, elem, head, error)))
    return VHU_POP_BROKEN;

  ring->heads_in_flight[head] = 1;
  elem->in_flight = TRUE;
  elem->resubmitted = TRUE;
  elem->generation = ring->generation;
  ring->resubmit_pos++;
  ring->inuse++;
  return VHU_POP_OK;
}

/* pop with an in-flight buffer: what was in flight at the start first,
 * then the available ring, each head recorded. */
static G_GNUC_NO_INLINE VhuPopResult
pop_tracked (VhuSplitRing *ring, VhuElement *elem, GError **error)
{
  if (G_UNLIKELY (ring->broken))
    return VHU_POP_BROKEN;
  if (ring->resubmit_pos < ring->resubmit_num)
    return pop_resubmitted (ring, elem, error);
  return pop_chain (ring, elem, TRUE, error);
}

/* Gives back the most recently popped element unused: it will be popped
 * again. */
void
vhu_split_ring_unpop (VhuSplitRing *ring, VhuElement *elem)
{
  ring->heads_in_flight[elem->head] = 0;
  elem->in_flight = FALSE;
  ring->inuse--;
  if (G_UNLIKELY (ring->inflight != NULL) && unpop_tracked (ring, elem))
    return;
  ring->last_avail_idx--;
}

static void
log_written (VhuSplitRing *ring, VhuElement *elem, guint32 len)
{
  for (guint i = elem->out_num; i < elem->out_num + elem->in_num && len > 0; i++)
    {
      guint32 chunk = MIN ((guint64) len, elem->iov[i].iov_len);

      vhu_dirty_log_mark (ring->log, elem->iov_gpa[i], chunk);
      len -= chunk;
    }
}

/* The used ring writes, inlined with @tracked a constant (see pop_chain()). */
G_ALWAYS_INLINE static inline void
fill_used (VhuSplitRing *ring, VhuElement *elem, guint32 len, guint offset, gboolean tracked)
{
  guint idx = (guint16) (ring->used_idx + offset) & (ring->num - 1);
  VhuVringUsedElem *entry = &ring->used->ring[idx];

  /* Never report more than the driver offered. */
  len = MIN ((guint64) len, elem->in_size);

  if (tracked)
    note_used (ring, elem->head);

  if (G_UNLIKELY (ring->log != NULL))
    log_written (ring, elem, len);

  entry->id = GUINT32_TO_LE (elem->head);
  entry->len = GUINT32_TO_LE (len);

  log_used_write (ring, G_STRUCT_OFFSET (VhuVringUsed, ring) + idx * sizeof (VhuVringUsedElem),
                  sizeof (VhuVringUsedElem));

  ring->heads_in_flight[elem->head] = 0;
  elem->in_flight = FALSE;
}

G_ALWAYS_INLINE static inline void
flush_used (VhuSplitRing *ring, guint count, gboolean tracked)
{
  guint16 old = ring->used_idx;
  guint16 new = old + count;

  STORE16_RELEASE (&ring->used->idx, new);
  log_used_write (ring, G_STRUCT_OFFSET (VhuVringUsed, idx), sizeof (guint16));
  if (tracked)
    finish_batch (ring, new);

  ring->used_idx = new;
  ring->inuse -= count;
  /* If the used index ran past the last one signalled, that one no longer
   * says anything. */
  if ((guint16) (new - ring->signalled_used) < (guint16) (new - old))
    ring->signalled_used_valid = FALSE;
}

/* Puts @elem in the used ring @offset entries past the used index, with
 * @len bytes written; visible to the driver after vhu_split_ring_flush(). */
void
vhu_split_ring_fill (VhuSplitRing *ring, VhuElement *elem, guint32 len, guint offset)
{
  if (G_LIKELY (ring->inflight == NULL))
    fill_used (ring, elem, len, offset, FALSE);
  else
    fill_used (ring, elem, len, offset, TRUE);
}

/* Makes the @count entries filled visible to the driver. */
void
vhu_split_ring_flush (VhuSplitRing *ring, guint count)
{
  if (G_LIKELY (ring->inflight == NULL))
    flush_used (ring, count, FALSE);
  else
    flush_used (ring, count, TRUE);
}

static G_GNUC_NO_INLINE void
push_tracked (VhuSplitRing *ring, VhuElement *elem, guint32 len)
{
  fill_used (ring, elem, len, 0, TRUE);
  flush_used (ring, 1, TRUE);
}

/* vhu_split_ring_fill() at offset 0, vhu_split_ring_flush() of 1, and
 * vhu_split_ring_should_notify(). */
gboolean
vhu_split_ring_push (VhuSplitRing *ring, VhuElement *elem, guint32 len)
{
  if (G_LIKELY (ring->inflight == NULL))
    {
      fill_used (ring, elem, len, 0, FALSE);
      flush_used (ring, 1, FALSE);
    }
  else
    push_tracked (ring, elem, len);
  return vhu_split_ring_should_notify_inline (ring);
}


gboolean
vhu_split_ring_should_notify (VhuSplitRing *ring)
{
  return vhu_split_ring_should_notify_inline (ring);
}

void
vhu_split_ring_set_notification (VhuSplitRing *ring, gboolean enable)
{
  ring->notification_enabled = enable;
  if (ring->used == NULL)
    return;

  if (ring->event_idx)
    {
      if (enable)
        write_avail_event (ring, ring->shadow_avail_idx);
    }
  else
    {
      guint16 flags = LOAD16 (&ring->used->flags);

      if (enable)
        flags &= ~VHU_VRING_USED_F_NO_NOTIFY;
      else
        flags |= VHU_VRING_USED_F_NO_NOTIFY;
      STORE16 (&ring->used->flags, flags);
      log_used_write (ring, G_STRUCT_OFFSET (VhuVringUsed, flags), sizeof (guint16));
    }
  /* Whoever re-enables must see buffers made available meanwhile. */
  if (enable)
    __atomic_thread_fence (__ATOMIC_SEQ_CST);
}

/* Kicks off for a ring that is polled. With EVENT_IDX, turning notifications
 * off writes nothing (the driver then kicks at most once more: cheap for the
 * usual drain pattern); a polled ring also puts avail_event just behind the
 * entries taken, which the driver's index only crosses again after wrapping
 * around. */
void
vhu_split_ring_suppress_kicks (VhuSplitRing *ring)
{
  vhu_split_ring_set_notification (ring, FALSE);
  if (ring->event_idx && ring->used != NULL)
    write_avail_event (ring, ring->last_avail_idx - 1);
}

/* Kicks on again after polling: with EVENT_IDX, avail_event is the index the
 * driver published last, not the last one the device saw (polling only
 * peeks): the next buffer it makes available comes with a kick, whatever
 * the device left in the ring. A full barrier follows: the caller then
 * looks at the ring once more. */
void
vhu_split_ring_resume_kicks (VhuSplitRing *ring)
{
  vhu_split_ring_set_notification (ring, TRUE);
  if (ring->event_idx && ring->used != NULL)
    {
      write_avail_event (ring, LOAD16_ACQUIRE (&ring->avail->idx));
      __atomic_thread_fence (__ATOMIC_SEQ_CST);
    }
}
