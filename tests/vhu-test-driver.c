/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A virtio split-ring driver for the tests (virtio 1.x, 2.7). The driver
 * keeps its own record of every chain it added (which descriptors, which
 * buffers) and never trusts what it reads back from the used ring beyond
 * the head and the length.
 */

#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "VhuTestDriver"
#endif

#include <string.h>

#include "vhu-test-driver.h"

#define PAGE 4096u
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((guint64) (a) - 1))

typedef struct
{
  guint64 gpa;
  guint32 len;
  gboolean writable;
} BufferRecord;

typedef struct
{
  gboolean in_flight;
  guint n_desc;    /* descriptors taken from the table */
  GArray *buffers; /* BufferRecord */
  guint64 in_size;
  guint64 out_size;
} Chain;

struct _VhuTestDriver
{
  GPtrArray *rams; /* VhuTestGuestRam, unowned */
  guint num;

  guint64 desc_gpa;
  guint64 avail_gpa;
  guint64 used_gpa;
  guint64 desc_uva;
  guint64 avail_uva;
  guint64 used_uva;
  VhuVringDesc *desc;
  VhuVringAvail *avail;
  VhuVringUsed *used;

  guint64 data_gpa;
  guint64 data_size;
  guint64 slot_size;

  /* Free descriptors, oldest first: a circular queue. */
  guint16 *free_queue;
  guint free_first;
  guint free_count;
  guint16 *chain_next; /* the driver's own links, by descriptor */

  Chain *chains; /* by head */
  guint in_flight;

  guint16 shadow_avail; /* next available entry to write */
  guint16 avail_idx;    /* last published */
  guint16 last_used;
  gboolean event_idx;
};

static guint16
load16 (const guint16 *p)
{
  return GUINT16_FROM_LE (__atomic_load_n (p, __ATOMIC_ACQUIRE));
}

static void
store16 (guint16 *p, guint16 v)
{
  __atomic_store_n (p, GUINT16_TO_LE (v), __ATOMIC_RELEASE);
}

guint64
vhu_test_driver_ring_size (guint num)
{
  guint64 used_offset = ALIGN_UP (16ull * num + 6 + 2ull * num, PAGE);

  return used_offset + 6 + 8ull * num;
}

/* Guest memory */

static VhuTestGuestRam *
find_ram (VhuTestDriver *drv, guint64 gpa)
{
  for (guint i = 0; i < drv->rams->len; i++)
    {
      VhuTestGuestRam *ram = g_ptr_array_index (drv->rams, i);

      if (gpa >= ram->gpa && gpa - ram->gpa < ram->size)
        return ram;
    }
  return NULL;
}

gpointer
vhu_test_driver_host (VhuTestDriver *drv, guint64 gpa, guint64 len)
{
  VhuTestGuestRam *ram = find_ram (drv, gpa);

  if (ram == NULL || len > ram->size - (gpa - ram->gpa))
    g_error ("vhu-test-driver: 0x%" G_GINT64_MODIFIER "x + %" G_GUINT64_FORMAT
             " is not inside one guest RAM",
             gpa, len);
  return ram->host + (gpa - ram->gpa);
}

/* Copies between guest memory and @buf, crossing from one RAM into the next. */
static void
guest_copy (VhuTestDriver *drv, guint64 gpa, guint8 *buf, gsize len, gboolean to_guest, int fill)
{
  while (len > 0)
    {
      VhuTestGuestRam *ram = find_ram (drv, gpa);
      gsize chunk;
      guint8 *host;

      if (ram == NULL)
        g_error ("vhu-test-driver: 0x%" G_GINT64_MODIFIER "x is not in guest RAM", gpa);
      chunk = MIN (len, ram->size - (gpa - ram->gpa));
      host = ram->host + (gpa - ram->gpa);
      if (fill >= 0)
        memset (host, fill, chunk);
      else if (to_guest)
        memcpy (host, buf, chunk);
      else
        memcpy (buf, host, chunk);
      gpa += chunk;
      len -= chunk;
      if (buf != NULL)
        buf += chunk;
    }
}

void
vhu_test_driver_write (VhuTestDriver *drv, guint64 gpa, const void *data, gsize len)
{
  guest_copy (drv, gpa, (guint8 *) data, len, TRUE, data == NULL ? 0 : -1);
}

void
vhu_test_driver_read (VhuTestDriver *drv, guint64 gpa, void *data, gsize len)
{
  guest_copy (drv, gpa, data, len, FALSE, -1);
}

/* Life cycle */

static void
reset_free_list (VhuTestDriver *drv)
{
  for (guint i = 0; i < drv->num; i++)
    drv->free_queue[i] = i;
  drv->free_first = 0;
  drv->free_count = drv->num;
}

VhuTestDriver *
vhu_test_driver_new (VhuTestGuestRam *ram, guint64 ring_offset, guint num)
{
  VhuTestDriver *drv;
  guint64 size = vhu_test_driver_ring_size (num);
  guint64 used_offset = size - (6 + 8ull * num);
  guint64 data_offset;

  g_assert_nonnull (ram);
  g_assert_cmpuint (num, >, 0);
  g_assert_cmpuint (num, <=, 32768);
  g_assert_cmpuint (num & (num - 1), ==, 0);
  g_assert_cmpuint (ring_offset % 16, ==, 0);
  g_assert_cmpuint (ring_offset + size, <=, ram->size);

  drv = g_new0 (VhuTestDriver, 1);
  drv->rams = g_ptr_array_new ();
  g_ptr_array_add (drv->rams, ram);
  drv->num = num;

  drv->desc_gpa = ram->gpa + ring_offset;
  drv->avail_gpa = drv->desc_gpa + 16ull * num;
  drv->used_gpa = drv->desc_gpa + used_offset;
  drv->desc_uva = ram->uva + ring_offset;
  drv->avail_uva = drv->desc_uva + 16ull * num;
  drv->used_uva = drv->desc_uva + used_offset;
  drv->desc = (VhuVringDesc *) (ram->host + ring_offset);
  drv->avail = (VhuVringAvail *) (ram->host + ring_offset + 16ull * num);
  drv->used = (VhuVringUsed *) (ram->host + ring_offset + used_offset);
  memset (ram->host + ring_offset, 0, size);

  drv->free_queue = g_new (guint16, num);
  drv->chain_next = g_new0 (guint16, num);
  drv->chains = g_new0 (Chain, num);
  for (guint i = 0; i < num; i++)
    drv->chains[i].buffers = g_array_new (FALSE, FALSE, sizeof (BufferRecord));
  reset_free_list (drv);

  data_offset = ALIGN_UP (ring_offset + size, PAGE);
  if (data_offset < ram->size)
    vhu_test_driver_set_data_area (drv, ram->gpa + data_offset, ram->size - data_offset);
  return drv;
}

void
vhu_test_driver_free (VhuTestDriver *drv)
{
  if (drv == NULL)
    return;
  for (guint i = 0; i < drv->num; i++)
    g_array_unref (drv->chains[i].buffers);
  g_free (drv->chains);
  g_free (drv->chain_next);
  g_free (drv->free_queue);
  g_ptr_array_unref (drv->rams);
  g_free (drv);
}

void
vhu_test_driver_add_ram (VhuTestDriver *drv, VhuTestGuestRam *ram)
{
  g_assert_nonnull (ram);
  g_assert_null (find_ram (drv, ram->gpa));
  g_assert_null (find_ram (drv, ram->gpa + ram->size - 1));
  g_ptr_array_add (drv->rams, ram);
}

void
vhu_test_driver_set_data_area (VhuTestDriver *drv, guint64 gpa, guint64 size)
{
  g_assert_cmpuint (drv->in_flight, ==, 0);
  drv->data_gpa = gpa;
  drv->data_size = size;
  drv->slot_size = (size / drv->num) & ~G_GUINT64_CONSTANT (63);
}

guint64
vhu_test_driver_get_slot_size (VhuTestDriver *drv)
{
  return drv->slot_size;
}

void
vhu_test_driver_set_base (VhuTestDriver *drv, guint16 idx)
{
  g_assert_cmpuint (drv->in_flight, ==, 0);
  g_assert_cmpuint (drv->shadow_avail, ==, drv->avail_idx);
  drv->shadow_avail = drv->avail_idx = drv->last_used = idx;
  store16 (&drv->avail->idx, idx);
  store16 (&drv->used->idx, idx);
}

guint
vhu_test_driver_get_num (VhuTestDriver *drv)
{
  return drv->num;
}

VhuVringAddr
vhu_test_driver_get_vring_addr (VhuTestDriver *drv, guint index, guint32 flags)
{
  VhuVringAddr addr = { 0 };

  addr.index = index;
  addr.flags = flags;
  addr.desc_user_addr = drv->desc_uva;
  addr.used_user_addr = drv->used_uva;
  addr.avail_user_addr = drv->avail_uva;
  addr.log_guest_addr = drv->used_gpa;
  return addr;
}

guint64
vhu_test_driver_get_desc_gpa (VhuTestDriver *drv)
{
  return drv->desc_gpa;
}

guint64
vhu_test_driver_get_avail_gpa (VhuTestDriver *drv)
{
  return drv->avail_gpa;
}

guint64
vhu_test_driver_get_used_gpa (VhuTestDriver *drv)
{
  return drv->used_gpa;
}

guint64
vhu_test_driver_start_ring (VhuTestDriver *drv,
                            VhuTestFrontend *fe,
                            guint index,
                            guint16 base,
                            guint32 addr_flags,
                            int *kick_fd,
                            int *call_fd,
                            int *err_fd)
{
  VhuVringAddr addr = vhu_test_driver_get_vring_addr (drv, index, addr_flags);

  vhu_test_frontend_vring_state_ok (fe, VHOST_USER_REQUEST_SET_VRING_NUM, index, drv->num);
  vhu_test_frontend_vring_state_ok (fe, VHOST_USER_REQUEST_SET_VRING_BASE, index, base);
  vhu_test_frontend_call_ok (fe, VHOST_USER_REQUEST_SET_VRING_ADDR, &addr, sizeof addr, NULL, 0);
  if (*call_fd < 0)
    {
      *call_fd = vhu_test_new_eventfd ();
      vhu_test_frontend_vring_fd_ok (fe, VHOST_USER_REQUEST_SET_VRING_CALL, index, *call_fd);
    }
  if (*err_fd < 0)
    {
      *err_fd = vhu_test_new_eventfd ();
      vhu_test_frontend_vring_fd_ok (fe, VHOST_USER_REQUEST_SET_VRING_ERR, index, *err_fd);
    }
  vhu_test_frontend_vring_state_ok (fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, index, 1);
  vhu_test_close_fd (kick_fd);
  *kick_fd = vhu_test_new_eventfd ();
  return vhu_test_frontend_vring_fd_ack (fe, VHOST_USER_REQUEST_SET_VRING_KICK, index, *kick_fd);
}

/* Chains */

static guint16
take_free (VhuTestDriver *drv)
{
  guint16 id = drv->free_queue[drv->free_first];

  drv->free_first = (drv->free_first + 1) % drv->num;
  drv->free_count--;
  return id;
}

static void
give_free (VhuTestDriver *drv, guint16 id)
{
  drv->free_queue[(drv->free_first + drv->free_count) % drv->num] = id;
  drv->free_count++;
}

static void
put_desc (VhuTestDriver *drv,
          VhuVringDesc *d,
          guint64 addr,
          guint32 len,
          guint16 flags,
          guint16 next)
{
  d->addr = GUINT64_TO_LE (addr);
  d->len = GUINT32_TO_LE (len);
  d->flags = GUINT16_TO_LE (flags);
  d->next = GUINT16_TO_LE (next);
}

gint
vhu_test_driver_add_full (VhuTestDriver *drv,
                          const VhuTestBuffer *bufs,
                          guint n,
                          gboolean indirect,
                          guint64 table_gpa)
{
  guint need = indirect ? 1 : n;
  g_autofree guint16 *ids = NULL;
  guint64 slot, offset = 0;
  guint16 head;
  Chain *chain;

  g_assert_cmpuint (n, >, 0);
  if (drv->free_count < need)
    return -1;

  ids = g_new (guint16, need);
  for (guint i = 0; i < need; i++)
    ids[i] = take_free (drv);
  head = ids[0];
  chain = &drv->chains[head];
  g_assert_false (chain->in_flight);
  g_array_set_size (chain->buffers, 0);
  chain->n_desc = need;
  chain->in_size = chain->out_size = 0;
  slot = drv->data_gpa + head * drv->slot_size;

  for (guint i = 0; i < n; i++)
    {
      BufferRecord rec = { bufs[i].gpa, bufs[i].len, bufs[i].writable };

      if (rec.gpa == VHU_TEST_DRIVER_AUTO)
        {
          g_assert_cmpuint (drv->slot_size, >, 0);
          offset = ALIGN_UP (offset, 8);
          rec.gpa = slot + offset;
          offset += rec.len;
          if (offset > drv->slot_size)
            g_error ("vhu-test-driver: a chain of %" G_GUINT64_FORMAT " bytes does not fit a "
                     "slot of %" G_GUINT64_FORMAT,
                     offset, drv->slot_size);
        }
      if (rec.len > 0)
        {
          if (rec.writable)
            guest_copy (drv, rec.gpa, NULL, rec.len, TRUE, VHU_TEST_DRIVER_CANARY);
          else
            vhu_test_driver_write (drv, rec.gpa, bufs[i].data, rec.len);
        }
      if (rec.writable)
        chain->in_size += rec.len;
      else
        chain->out_size += rec.len;
      g_array_append_val (chain->buffers, rec);
    }

  if (indirect)
    {
      g_autofree VhuVringDesc *table = g_new0 (VhuVringDesc, n);

      if (table_gpa == VHU_TEST_DRIVER_AUTO)
        {
          table_gpa = slot + ALIGN_UP (offset, 16);
          if (ALIGN_UP (offset, 16) + 16ull * n > drv->slot_size)
            g_error ("vhu-test-driver: an indirect table of %u does not fit the slot", n);
        }
      for (guint i = 0; i < n; i++)
        {
          const BufferRecord *rec = &g_array_index (chain->buffers, BufferRecord, i);
          guint16 flags = (i + 1 < n ? VHU_VRING_DESC_F_NEXT : 0)
                          | (rec->writable ? VHU_VRING_DESC_F_WRITE : 0);

          put_desc (drv, &table[i], rec->gpa, rec->len, flags, i + 1 < n ? i + 1 : 0);
        }
      vhu_test_driver_write (drv, table_gpa, table, 16ull * n);
      put_desc (drv, &drv->desc[head], table_gpa, 16u * n, VHU_VRING_DESC_F_INDIRECT, 0);
    }
  else
    {
      for (guint i = 0; i < n; i++)
        {
          const BufferRecord *rec = &g_array_index (chain->buffers, BufferRecord, i);
          guint16 flags = (i + 1 < n ? VHU_VRING_DESC_F_NEXT : 0)
                          | (rec->writable ? VHU_VRING_DESC_F_WRITE : 0);
          guint16 next = i + 1 < n ? ids[i + 1] : 0;

          put_desc (drv, &drv->desc[ids[i]], rec->gpa, rec->len, flags, next);
          drv->chain_next[ids[i]] = next;
        }
    }

  chain->in_flight = TRUE;
  drv->in_flight++;
  vhu_test_driver_put_avail (drv, head);
  return head;
}

gint
vhu_test_driver_add (VhuTestDriver *drv, const VhuTestBuffer *bufs, guint n, gboolean indirect)
{
  return vhu_test_driver_add_full (drv, bufs, n, indirect, VHU_TEST_DRIVER_AUTO);
}

guint
vhu_test_driver_get_n_free (VhuTestDriver *drv)
{
  return drv->free_count;
}

guint
vhu_test_driver_get_in_flight (VhuTestDriver *drv)
{
  return drv->in_flight;
}

gboolean
vhu_test_driver_is_in_flight (VhuTestDriver *drv, guint head)
{
  return head < drv->num && drv->chains[head].in_flight;
}

gboolean
vhu_test_driver_publish (VhuTestDriver *drv)
{
  guint16 old = drv->avail_idx;
  guint16 new = drv->shadow_avail;

  store16 (&drv->avail->idx, new);
  drv->avail_idx = new;
  /* The index must be visible before the device's wishes are read. */
  __atomic_thread_fence (__ATOMIC_SEQ_CST);

  if (new == old)
    return FALSE;
  if (drv->event_idx)
    {
      guint16 avail_event = vhu_test_driver_get_avail_event (drv);

      return (guint16) (new - avail_event - 1) < (guint16) (new - old);
    }
  return !(vhu_test_driver_get_used_flags (drv) & VHU_VRING_USED_F_NO_NOTIFY);
}

guint
vhu_test_driver_get_pending (VhuTestDriver *drv)
{
  return (guint16) (drv->shadow_avail - drv->avail_idx);
}

gboolean
vhu_test_driver_get_used (VhuTestDriver *drv, guint *head, guint32 *len)
{
  guint16 idx = load16 (&drv->used->idx);
  const VhuVringUsedElem *entry;
  guint32 id;

  if (idx == drv->last_used)
    return FALSE;

  entry = &drv->used->ring[drv->last_used & (drv->num - 1)];
  id = GUINT32_FROM_LE (__atomic_load_n (&entry->id, __ATOMIC_RELAXED));
  if (head != NULL)
    *head = id;
  if (len != NULL)
    *len = GUINT32_FROM_LE (__atomic_load_n (&entry->len, __ATOMIC_RELAXED));
  drv->last_used++;

  if (vhu_test_driver_is_in_flight (drv, id))
    {
      Chain *chain = &drv->chains[id];
      guint16 d = id;

      for (guint i = 0; i < chain->n_desc; i++)
        {
          guint16 next = drv->chain_next[d];

          give_free (drv, d);
          d = next;
        }
      chain->in_flight = FALSE;
      drv->in_flight--;
    }
  return TRUE;
}

gsize
vhu_test_driver_read_in (VhuTestDriver *drv, guint head, guint8 *buf, gsize len)
{
  const Chain *chain;
  gsize done = 0;

  g_assert_cmpuint (head, <, drv->num);
  chain = &drv->chains[head];
  for (guint i = 0; i < chain->buffers->len && done < len; i++)
    {
      const BufferRecord *rec = &g_array_index (chain->buffers, BufferRecord, i);
      gsize chunk;

      if (!rec->writable)
        continue;
      chunk = MIN ((gsize) rec->len, len - done);
      vhu_test_driver_read (drv, rec->gpa, buf + done, chunk);
      done += chunk;
    }
  return done;
}

guint64
vhu_test_driver_get_in_size (VhuTestDriver *drv, guint head)
{
  g_assert_cmpuint (head, <, drv->num);
  return drv->chains[head].in_size;
}

guint64
vhu_test_driver_get_out_size (VhuTestDriver *drv, guint head)
{
  g_assert_cmpuint (head, <, drv->num);
  return drv->chains[head].out_size;
}

void
vhu_test_driver_foreach_in (VhuTestDriver *drv,
                            guint head,
                            VhuTestBufferFunc func,
                            gpointer user_data)
{
  const Chain *chain;

  g_assert_cmpuint (head, <, drv->num);
  chain = &drv->chains[head];
  for (guint i = 0; i < chain->buffers->len; i++)
    {
      const BufferRecord *rec = &g_array_index (chain->buffers, BufferRecord, i);

      if (rec->writable)
        func (rec->gpa, rec->len, user_data);
    }
}

/* Notifications */

void
vhu_test_driver_set_event_idx (VhuTestDriver *drv, gboolean event_idx)
{
  drv->event_idx = event_idx;
}

void
vhu_test_driver_set_used_event (VhuTestDriver *drv, guint16 used_event)
{
  store16 (&drv->avail->ring[drv->num], used_event);
}

void
vhu_test_driver_set_no_interrupt (VhuTestDriver *drv, gboolean no_interrupt)
{
  store16 (&drv->avail->flags, no_interrupt ? VHU_VRING_AVAIL_F_NO_INTERRUPT : 0);
}

guint16
vhu_test_driver_get_avail_event (VhuTestDriver *drv)
{
  return load16 ((const guint16 *) &drv->used->ring[drv->num]);
}

guint16
vhu_test_driver_get_used_flags (VhuTestDriver *drv)
{
  return load16 (&drv->used->flags);
}

guint16
vhu_test_driver_get_used_idx (VhuTestDriver *drv)
{
  return load16 (&drv->used->idx);
}

guint16
vhu_test_driver_get_last_used (VhuTestDriver *drv)
{
  return drv->last_used;
}

guint16
vhu_test_driver_get_avail_idx (VhuTestDriver *drv)
{
  return drv->avail_idx;
}

/* Raw access */

VhuVringDesc *
vhu_test_driver_get_desc (VhuTestDriver *drv)
{
  return drv->desc;
}

VhuVringAvail *
vhu_test_driver_get_avail (VhuTestDriver *drv)
{
  return drv->avail;
}

VhuVringUsed *
vhu_test_driver_get_used_ring (VhuTestDriver *drv)
{
  return drv->used;
}

void
vhu_test_driver_put_avail (VhuTestDriver *drv, guint16 head)
{
  drv->avail->ring[drv->shadow_avail & (drv->num - 1)] = GUINT16_TO_LE (head);
  drv->shadow_avail++;
}

void
vhu_test_driver_set_avail_idx (VhuTestDriver *drv, guint16 idx)
{
  store16 (&drv->avail->idx, idx);
  drv->avail_idx = drv->shadow_avail = idx;
}
