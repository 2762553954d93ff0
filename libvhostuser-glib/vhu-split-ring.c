/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

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
  g_free (ring->heads_in_flight);
  g_free (ring->indirect_copy);
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
  if (ring->shadow_avail_idx != ring->last_avail_idx)
    return FALSE;
  ring->shadow_avail_idx = LOAD16_ACQUIRE (&ring->avail->idx);
  return ring->shadow_avail_idx == ring->last_avail_idx;
}

/* Appends the buffer of one descriptor (already copied out of guest memory)
 * to @elem: translated with its length, split where it crosses regions. */
G_ALWAYS_INLINE static inline gboolean
add_buffer (VhuSplitRing *ring, VhuElement *elem, const VhuVringDesc *d, GError **error)
{
  guint64 addr = GUINT64_FROM_LE (d->addr);
  guint32 len = GUINT32_FROM_LE (d->len);
  gboolean writable = (GUINT16_FROM_LE (d->flags) & VHU_VRING_DESC_F_WRITE) != 0;
  guint n = elem->out_num + elem->in_num;
  guint64 offset = addr - ring->hint_gpa;
  gint k;

  /* Zero-length buffers carry nothing: skipped, wherever they are. */
  if (G_UNLIKELY (len == 0))
    return TRUE;

  if (G_UNLIKELY (!writable && elem->in_num > 0))
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
      const VhuMemRegion *region;

      k = vhu_mem_table_gpa_to_iov (ring->mem, addr, len, elem->iov + n, elem->iov_cap - n);
      if (G_UNLIKELY (k < 0))
        {
          /* Either more segments than room, or memory that is not mapped. */
          if (elem->iov_cap < VHU_MAX_IOV && vhu_element_reserve (elem, VHU_MAX_IOV))
            k = vhu_mem_table_gpa_to_iov (ring->mem, addr, len, elem->iov + n,
                                          elem->iov_cap - n);
          if (k < 0)
            return ring_error (ring, error, _("Chain %u: the buffer at 0x%" G_GINT64_MODIFIER "x "
                                              "(%u bytes) is not in guest memory, or the chain "
                                              "has more than %u segments"),
                               elem->head, addr, len, VHU_MAX_IOV);
        }

      elem->iov_gpa[n] = addr;
      for (gint i = 1; i < k; i++)
        elem->iov_gpa[n + i] = elem->iov_gpa[n + i - 1] + elem->iov[n + i - 1].iov_len;

      region = vhu_mem_table_lookup_gpa (ring->mem, addr);
      ring->hint_gpa = region->guest_addr;
      ring->hint_len = region->size;
      ring->hint_host = region->host_addr;
    }

  if (writable)
    {
      elem->in_num += k;
      elem->in_size += len;
    }
  else
    {
      elem->out_num += k;
      elem->out_size += len;
    }
  if (G_UNLIKELY (elem->in_size + elem->out_size > G_MAXUINT32))
    return ring_error (ring, error, _("Chain %u is longer than 4 GiB"), elem->head);
  return TRUE;
}

/* An indirect table: validated, read from guest memory (copied first if it
 * crosses regions), its entries each copied once before use. */
static gboolean
walk_indirect (VhuSplitRing *ring, VhuElement *elem, const VhuVringDesc *d, GError **error)
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
      if (!add_buffer (ring, elem, &entry, error))
        return FALSE;
      if (!(flags & VHU_VRING_DESC_F_NEXT))
        return TRUE;
      i = GUINT16_FROM_LE (entry.next);
      if (i >= n_entries)
        return ring_error (ring, error, _("Chain %u: an indirect entry links to %u, past the end "
                                          "of its table of %u"),
                           elem->head, i, n_entries);
    }
}

static gboolean
walk_chain (VhuSplitRing *ring, VhuElement *elem, guint16 head, GError **error)
{
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
        return walk_indirect (ring, elem, &d, error);

      if (G_UNLIKELY (!add_buffer (ring, elem, &d, error)))
        return FALSE;
      if (!(flags & VHU_VRING_DESC_F_NEXT))
        return TRUE;
      i = GUINT16_FROM_LE (d.next);
      if (G_UNLIKELY (i >= ring->num))
        return ring_error (ring, error, _("Chain %u links to descriptor %u, past the ring of %u"),
                           head, i, ring->num);
    }
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

static inline VhuPopResult pop_chain (VhuSplitRing *ring, VhuElement *elem, GError **error);

VhuPopResult
vhu_split_ring_pop (VhuSplitRing *ring, VhuElement *elem, GError **error)
{
  VhuPopResult result = pop_chain (ring, elem, error);

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

static inline VhuPopResult
pop_chain (VhuSplitRing *ring, VhuElement *elem, GError **error)
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
  elem->out_num = elem->in_num = 0;
  elem->out_size = elem->in_size = 0;
  if (G_UNLIKELY (!walk_chain (ring, elem, head, error)))
    return VHU_POP_BROKEN;

  ring->heads_in_flight[head] = 1;
  elem->in_flight = TRUE;
  elem->generation = ring->generation;
  ring->last_avail_idx = last + 1;
  ring->inuse++;

  if (ring->event_idx && ring->notification_enabled)
    write_avail_event (ring, ring->last_avail_idx);
  return VHU_POP_OK;
}

/* Gives back the most recently popped element unused: it will be popped
 * again. */
void
vhu_split_ring_unpop (VhuSplitRing *ring, VhuElement *elem)
{
  ring->heads_in_flight[elem->head] = 0;
  elem->in_flight = FALSE;
  ring->last_avail_idx--;
  ring->inuse--;
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

/* Puts @elem in the used ring @offset entries past the used index, with
 * @len bytes written; visible to the driver after vhu_split_ring_flush(). */
void
vhu_split_ring_fill (VhuSplitRing *ring, VhuElement *elem, guint32 len, guint offset)
{
  guint idx = (guint16) (ring->used_idx + offset) & (ring->num - 1);
  VhuVringUsedElem *entry = &ring->used->ring[idx];

  /* Never report more than the driver offered. */
  len = MIN ((guint64) len, elem->in_size);

  if (G_UNLIKELY (ring->log != NULL))
    log_written (ring, elem, len);

  entry->id = GUINT32_TO_LE (elem->head);
  entry->len = GUINT32_TO_LE (len);

  log_used_write (ring, G_STRUCT_OFFSET (VhuVringUsed, ring) + idx * sizeof (VhuVringUsedElem),
                  sizeof (VhuVringUsedElem));

  ring->heads_in_flight[elem->head] = 0;
  elem->in_flight = FALSE;
}

void
vhu_split_ring_flush (VhuSplitRing *ring, guint count)
{
  guint16 old = ring->used_idx;
  guint16 new = old + count;

  STORE16_RELEASE (&ring->used->idx, new);
  log_used_write (ring, G_STRUCT_OFFSET (VhuVringUsed, idx), sizeof (guint16));

  ring->used_idx = new;
  ring->inuse -= count;
  /* If the used index ran past the last one signalled, that one no longer
   * says anything. */
  if ((guint16) (new - ring->signalled_used) < (guint16) (new - old))
    ring->signalled_used_valid = FALSE;
}

gboolean
vhu_split_ring_should_notify (VhuSplitRing *ring)
{
  guint16 old, new, used_event;
  gboolean valid;

  /* The used index must be visible before the driver's flags are read. */
  __atomic_thread_fence (__ATOMIC_SEQ_CST);

  if (!ring->event_idx)
    return !(LOAD16 (&ring->avail->flags) & VHU_VRING_AVAIL_F_NO_INTERRUPT);

  old = ring->signalled_used;
  valid = ring->signalled_used_valid;
  new = ring->signalled_used = ring->used_idx;
  ring->signalled_used_valid = TRUE;
  if (!valid)
    return TRUE;
  used_event = LOAD16 (&ring->avail->ring[ring->num]);
  return (guint16) (new - used_event - 1) < (guint16) (new - old);
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
