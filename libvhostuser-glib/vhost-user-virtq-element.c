/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <string.h>

#include "vhost-user-virtq-element.h"
#include "vhu-split-ring.h"

/**
 * VhostUserVirtqElement:
 *
 * One request taken from a virtqueue with [method@VhostUser.Virtqueue.pop]:
 * the buffers the driver wrote for the device to read ("out") and the
 * buffers the device may write ("in"), in guest memory.
 *
 * C code reads and writes the buffers in place through
 * [method@VhostUser.VirtqElement.get_out_iov] and
 * [method@VhostUser.VirtqElement.get_in_iov]. Bindings copy with
 * [method@VhostUser.VirtqElement.read_bytes] and
 * [method@VhostUser.VirtqElement.write_bytes], or work in place from
 * [method@VhostUser.VirtqElement.get_segments] (the Python overrides give
 * memoryviews of the buffers: `out_views, in_views = element.get_views()`).
 *
 * An element is returned to the driver with
 * [method@VhostUser.Virtqueue.push]. Every popped element is returned: one
 * dropped without being pushed is pushed with nothing written, so the
 * driver never waits for it forever.
 *
 * Since: 1.0
 */

G_DEFINE_BOXED_TYPE (VhostUserVirtqElement, vhost_user_virtq_element,
                     vhost_user_virtq_element_ref, vhost_user_virtq_element_unref)

/* The pool (struct _VhuElementPool) is in vhu-split-ring.h: taking an
 * element is inlined into the pop. */

/* What a closed pool's stack of returned elements holds: a push fails. */
static const char closed_marker;
#define POOL_CLOSED ((VhuElement *) (gpointer) &closed_marker)

static void
pool_unref (VhuElementPool *pool)
{
  /* The last reference goes with the last element: the lists are empty. */
  if (g_atomic_int_dec_and_test (&pool->ref_count))
    g_free (pool);
}

static G_GNUC_NO_INLINE void
element_free (VhuElement *elem)
{
  VhuElementPool *pool = elem->pool;

  g_clear_pointer (&elem->mem, vhu_mem_table_unref);
  g_free (elem->iov);
  g_free (elem->iov_gpa);
  g_free (elem);
  pool_unref (pool);
}

static void
free_list (VhuElement *elem)
{
  while (elem != NULL)
    {
      VhuElement *next = elem->next_free;

      element_free (elem);
      elem = next;
    }
}


VhuElementPool *
vhu_element_pool_new (VhuElementLeakFunc leak_func, gpointer leak_data)
{
  VhuElementPool *pool = g_new0 (VhuElementPool, 1);

  pool->ref_count = 1;
  pool->leak_func = leak_func;
  pool->leak_data = leak_data;
  return pool;
}

/* The queue lets go of its pool: elements still out are freed when dropped,
 * and a dropped element is no longer pushed back. */
void
vhu_element_pool_close (VhuElementPool *pool)
{
  g_atomic_int_set (&pool->closed, TRUE);
  pool->leak_func = NULL;
  free_list (g_steal_pointer (&pool->local));
  /* From here on, an element that comes back is freed (element_recycle()). */
  free_list (__atomic_exchange_n (&pool->returned, POOL_CLOSED, __ATOMIC_ACQUIRE));
  pool_unref (pool);
}

gboolean
vhu_element_reserve (VhuElement *elem, guint n_iov)
{
  if (n_iov <= elem->iov_cap)
    return TRUE;
  if (n_iov > VHU_MAX_IOV)
    return FALSE;
  elem->iov = g_renew (struct iovec, elem->iov, n_iov);
  elem->iov_gpa = g_renew (guint64, elem->iov_gpa, n_iov);
  elem->iov_cap = n_iov;
  return TRUE;
}

/* vhu_element_pool_take() found no element to reuse. */
VhuElement *
vhu_element_pool_take_new (VhuElementPool *pool)
{
  VhuElement *elem = g_new0 (VhuElement, 1);

  elem->pool = pool;
  vhu_element_reserve (elem, 16);
  g_atomic_int_inc (&pool->ref_count);
  elem->ref_count = 1;
  return elem;
}

/* Drops the mappings that elements waiting in the pool still hold (after
 * the memory table changed). Called by the taker. */
void
vhu_element_pool_drop_mappings (VhuElementPool *pool)
{
  VhuElement *returned;

  /* Elements still out drop their mappings when they come back. */
  __atomic_add_fetch (&pool->mem_epoch, 1, __ATOMIC_ACQ_REL);
  returned = __atomic_exchange_n (&pool->returned, NULL, __ATOMIC_ACQUIRE);

  /* Put everything on the local list first. */
  while (returned != NULL)
    {
      VhuElement *next = returned->next_free;

      returned->next_free = pool->local;
      pool->local = returned;
      returned = next;
    }
  for (VhuElement *elem = pool->local; elem != NULL; elem = elem->next_free)
    g_clear_pointer (&elem->mem, vhu_mem_table_unref);
}

/* The memory table an element holds, for a pop from @mem. */
void
vhu_element_set_memory (VhuElement *elem, VhuMemTable *mem)
{
  if (G_UNLIKELY (elem->mem != mem))
    {
      g_clear_pointer (&elem->mem, vhu_mem_table_unref);
      elem->mem = vhu_mem_table_ref (mem);
      elem->mem_epoch = __atomic_load_n (&elem->pool->mem_epoch, __ATOMIC_ACQUIRE);
    }
}

static G_GNUC_NO_INLINE void
element_forget_memory (VhuElement *elem)
{
  g_clear_pointer (&elem->mem, vhu_mem_table_unref);
}

/* Back to the pool, the last reference gone: on the taker's own list when
 * @by_taker (the caller is the thread that takes from the pool), else on
 * the list of returns, which any thread may push to. */
G_ALWAYS_INLINE static inline void
element_recycle (VhuElement *elem, gboolean by_taker)
{
  VhuElementPool *pool = elem->pool;
  VhuElement *head;

  /* An element popped before the memory table changed must not keep the
   * old mappings alive while it waits in the pool. */
  if (G_UNLIKELY (elem->mem_epoch != __atomic_load_n (&pool->mem_epoch, __ATOMIC_ACQUIRE)))
    element_forget_memory (elem);

  if (by_taker)
    {
      if (G_UNLIKELY (g_atomic_int_get (&pool->closed)))
        element_free (elem);
      else
        vhu_element_pool_put_back (pool, elem);
      return;
    }

  head = __atomic_load_n (&pool->returned, __ATOMIC_RELAXED);
  do
    {
      if (G_UNLIKELY (head == POOL_CLOSED))
        {
          element_free (elem);
          return;
        }
      elem->next_free = head;
    }
  while (!__atomic_compare_exchange_n (&pool->returned, &head, elem, TRUE, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED));
}

/**
 * vhost_user_virtq_element_ref:
 * @self: an element
 *
 * Returns: (transfer full): @self
 *
 * Since: 1.0
 */
VhostUserVirtqElement *
vhost_user_virtq_element_ref (VhostUserVirtqElement *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_atomic_int_inc (&self->ref_count);
  return self;
}

/* Drops a reference: TRUE if it was the last. Holding the only one, the
 * caller is alone with the count (another thread needs a reference to take
 * one): a plain store, no atomic read-modify-write. The load acquires what
 * a thread that dropped its reference before did with the element. */
static inline gboolean
element_drop_ref (VhuElement *elem)
{
  if (G_LIKELY (__atomic_load_n (&elem->ref_count, __ATOMIC_ACQUIRE) == 1))
    {
      __atomic_store_n (&elem->ref_count, 0, __ATOMIC_RELAXED);
      return TRUE;
    }
  return g_atomic_int_dec_and_test (&elem->ref_count);
}

/* The last reference to an element that was not pushed went: TRUE if the
 * queue takes it (it pushes it back and drops it again). */
static G_GNUC_NO_INLINE gboolean
element_leaked (VhuElement *self)
{
  VhuElementPool *pool = self->pool;

  if (pool->leak_func != NULL && !g_atomic_int_get (&pool->closed))
    {
      self->ref_count = 1;
      pool->leak_func (self, pool->leak_data);
      return TRUE;
    }
  self->in_flight = FALSE;
  return FALSE;
}

/**
 * vhost_user_virtq_element_unref:
 * @self: (transfer full): an element
 *
 * Drops a reference. When the last one goes, an element that was not
 * pushed is pushed with nothing written.
 *
 * Since: 1.0
 */
void
vhost_user_virtq_element_unref (VhostUserVirtqElement *self)
{
  g_return_if_fail (self != NULL);

  if (!element_drop_ref (self))
    return;

  if (G_UNLIKELY (self->in_flight) && element_leaked (self))
    return;
  element_recycle (self, FALSE);
}

/* Drops a reference of an element of @pool on the thread that takes from
 * @pool: the last one puts the element on the taker's own list, without an
 * atomic operation (each of which would wait for the stores before it,
 * often to guest memory another CPU holds). */
void
vhu_element_unref_by_taker (VhuElementPool *pool, VhuElement *elem)
{
  if (G_UNLIKELY (elem->pool != pool))
    {
      vhost_user_virtq_element_unref (elem);
      return;
    }
  if (!element_drop_ref (elem))
    return;
  if (G_UNLIKELY (elem->in_flight) && element_leaked (elem))
    return;
  element_recycle (elem, TRUE);
}

/**
 * vhost_user_virtq_element_get_index:
 * @self: an element
 *
 * Returns: the index of the chain's head descriptor (the id the driver sees)
 *
 * Since: 1.0
 */
guint
vhost_user_virtq_element_get_index (VhostUserVirtqElement *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->head;
}

/**
 * vhost_user_virtq_element_get_out_size:
 * @self: an element
 *
 * Returns: how many bytes the driver gave the device to read
 *
 * Since: 1.0
 */
gsize
vhost_user_virtq_element_get_out_size (VhostUserVirtqElement *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->out_size;
}

/**
 * vhost_user_virtq_element_get_in_size:
 * @self: an element
 *
 * Returns: how many bytes the device may write
 *
 * Since: 1.0
 */
gsize
vhost_user_virtq_element_get_in_size (VhostUserVirtqElement *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->in_size;
}

/**
 * vhost_user_virtq_element_get_out_iov: (skip)
 * @self: an element
 * @n_iov: (out): the number of segments
 *
 * The device-readable buffers, in place in guest memory. The driver may
 * change them at any time: read each byte once.
 *
 * Returns: the segments, valid while @self is
 *
 * Since: 1.0
 */
const struct iovec *
vhost_user_virtq_element_get_out_iov (VhostUserVirtqElement *self, guint *n_iov)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (n_iov != NULL, NULL);
  *n_iov = self->out_num;
  return self->iov;
}

/**
 * vhost_user_virtq_element_get_in_iov: (skip)
 * @self: an element
 * @n_iov: (out): the number of segments
 *
 * The device-writable buffers, in place in guest memory.
 *
 * Returns: the segments, valid while @self is
 *
 * Since: 1.0
 */
const struct iovec *
vhost_user_virtq_element_get_in_iov (VhostUserVirtqElement *self, guint *n_iov)
{
  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (n_iov != NULL, NULL);
  *n_iov = self->in_num;
  return self->iov + self->out_num;
}

/**
 * vhost_user_virtq_element_get_segments:
 * @self: an element
 * @n_out: (out): how many segments are device-readable; they come first,
 *   the device-writable ones follow
 * @n_values: (out): the number of values returned: two per segment
 *
 * Where the element's buffers are in this process's address space, for
 * bindings that read and write guest memory in place (the Python overrides
 * make memoryviews of them); C code uses
 * [method@VhostUser.VirtqElement.get_out_iov] and
 * [method@VhostUser.VirtqElement.get_in_iov].
 *
 * Each segment is an address and a length. The memory stays mapped as long
 * as @self lives, even after the front-end replaced the memory table, so a
 * binding's view of it must hold a reference to @self. Access only the
 * segments, and write only into the device-writable ones.
 *
 * Returns: (array length=n_values) (transfer full): the segments, as
 *   address, length, address, length, …
 *
 * Since: 1.0
 */
guint64 *
vhost_user_virtq_element_get_segments (VhostUserVirtqElement *self, guint *n_out, gsize *n_values)
{
  guint64 *values;
  guint n;

  g_return_val_if_fail (self != NULL, NULL);
  g_return_val_if_fail (n_out != NULL, NULL);
  g_return_val_if_fail (n_values != NULL, NULL);

  n = self->out_num + self->in_num;
  values = g_new (guint64, 2 * (gsize) n + 1);
  for (guint i = 0; i < n; i++)
    {
      values[2 * i] = (guint64) (guintptr) self->iov[i].iov_base;
      values[2 * i + 1] = self->iov[i].iov_len;
    }
  *n_out = self->out_num;
  *n_values = 2 * (gsize) n;
  return values;
}

/* Copies between a flat buffer and the segments from @offset on. */
static gsize
iov_copy (const struct iovec *iov, guint n, gsize offset, guint8 *buf, gsize len, gboolean to_iov)
{
  gsize done = 0;

  for (guint i = 0; i < n && done < len; i++)
    {
      gsize chunk;

      if (offset >= iov[i].iov_len)
        {
          offset -= iov[i].iov_len;
          continue;
        }
      chunk = MIN (iov[i].iov_len - offset, len - done);
      if (to_iov)
        memcpy ((guint8 *) iov[i].iov_base + offset, buf + done, chunk);
      else
        memcpy (buf + done, (guint8 *) iov[i].iov_base + offset, chunk);
      done += chunk;
      offset = 0;
    }
  return done;
}

/**
 * vhost_user_virtq_element_read: (skip)
 * @self: an element
 * @offset: where to start in the device-readable buffers
 * @buffer: (out caller-allocates) (array length=length): where to copy to
 * @length: the most bytes to copy
 *
 * Copies from the device-readable buffers. Bindings use
 * [method@VhostUser.VirtqElement.read_bytes].
 *
 * Returns: the number of bytes copied
 *
 * Since: 1.0
 */
gsize
vhost_user_virtq_element_read (VhostUserVirtqElement *self,
                               gsize offset,
                               guint8 *buffer,
                               gsize length)
{
  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (buffer != NULL || length == 0, 0);
  return iov_copy (self->iov, self->out_num, offset, buffer, length, FALSE);
}

/**
 * vhost_user_virtq_element_read_bytes:
 * @self: an element
 * @offset: where to start in the device-readable buffers
 * @length: the most bytes to copy
 *
 * Copies from the device-readable buffers.
 *
 * Returns: (transfer full): the bytes, at most @length (fewer at the end)
 *
 * Since: 1.0
 */
GBytes *
vhost_user_virtq_element_read_bytes (VhostUserVirtqElement *self, gsize offset, gsize length)
{
  guint8 *data;
  gsize got;

  g_return_val_if_fail (self != NULL, NULL);

  if (offset >= self->out_size)
    return g_bytes_new (NULL, 0);
  length = MIN (length, self->out_size - offset);
  data = g_malloc (length);
  got = iov_copy (self->iov, self->out_num, offset, data, length, FALSE);
  return g_bytes_new_take (data, got);
}

/**
 * vhost_user_virtq_element_write:
 * @self: an element
 * @offset: where to start in the device-writable buffers
 * @data: (array length=length): the bytes
 * @length: how many
 *
 * Copies into the device-writable buffers, as far as they reach.
 *
 * Returns: the number of bytes copied
 *
 * Since: 1.0
 */
gsize
vhost_user_virtq_element_write (VhostUserVirtqElement *self,
                                gsize offset,
                                const guint8 *data,
                                gsize length)
{
  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (data != NULL || length == 0, 0);
  return iov_copy (self->iov + self->out_num, self->in_num, offset, (guint8 *) data, length, TRUE);
}

/**
 * vhost_user_virtq_element_write_bytes:
 * @self: an element
 * @offset: where to start in the device-writable buffers
 * @data: the bytes
 *
 * Copies into the device-writable buffers, as far as they reach.
 *
 * Returns: the number of bytes copied
 *
 * Since: 1.0
 */
gsize
vhost_user_virtq_element_write_bytes (VhostUserVirtqElement *self, gsize offset, GBytes *data)
{
  gsize len;
  const guint8 *bytes;

  g_return_val_if_fail (self != NULL, 0);
  g_return_val_if_fail (data != NULL, 0);
  bytes = g_bytes_get_data (data, &len);
  return vhost_user_virtq_element_write (self, offset, bytes, len);
}
