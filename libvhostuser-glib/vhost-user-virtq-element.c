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
 * [method@VhostUser.VirtqElement.get_in_iov]; the copying helpers
 * ([method@VhostUser.VirtqElement.read_bytes],
 * [method@VhostUser.VirtqElement.write_bytes]) suit bindings.
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

/* Elements go back to their pool from any thread (an I/O thread may drop
 * the last reference) and are taken by the queue's thread only: returns are
 * pushed on a lock-free stack that the taker swaps out whole. */
struct _VhuElementPool
{
  gint ref_count;     /* the queue's, plus one per element out of the pool */
  gboolean closed;
  guint mem_epoch;    /* bumped when the memory table changes */
  VhuElement *local;  /* the taker's own free list */
  VhuElement *returned;
  VhuElementLeakFunc leak_func;
  gpointer leak_data;
};

static void
element_free (VhuElement *elem)
{
  g_clear_pointer (&elem->mem, vhu_mem_table_unref);
  g_free (elem->iov);
  g_free (elem->iov_gpa);
  g_free (elem);
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

static void
pool_unref (VhuElementPool *pool)
{
  if (!g_atomic_int_dec_and_test (&pool->ref_count))
    return;
  free_list (pool->local);
  free_list (__atomic_exchange_n (&pool->returned, NULL, __ATOMIC_ACQUIRE));
  g_free (pool);
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

VhuElement *
vhu_element_pool_take (VhuElementPool *pool)
{
  VhuElement *elem = pool->local;

  if (elem == NULL)
    elem = pool->local = __atomic_exchange_n (&pool->returned, NULL, __ATOMIC_ACQUIRE);

  if (G_LIKELY (elem != NULL))
    pool->local = elem->next_free;
  else
    {
      elem = g_new0 (VhuElement, 1);
      elem->pool = pool;
      vhu_element_reserve (elem, 16);
    }

  g_atomic_int_inc (&pool->ref_count);
  elem->ref_count = 1;
  elem->next_free = NULL;
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

static void
element_recycle (VhuElement *elem)
{
  VhuElementPool *pool = elem->pool;
  VhuElement *head;

  if (g_atomic_int_get (&pool->closed))
    {
      element_free (elem);
      pool_unref (pool);
      return;
    }
  /* An element popped before the memory table changed must not keep the
   * old mappings alive while it waits in the pool. */
  if (G_UNLIKELY (elem->mem_epoch != __atomic_load_n (&pool->mem_epoch, __ATOMIC_ACQUIRE)))
    g_clear_pointer (&elem->mem, vhu_mem_table_unref);

  head = __atomic_load_n (&pool->returned, __ATOMIC_RELAXED);
  do
    elem->next_free = head;
  while (!__atomic_compare_exchange_n (&pool->returned, &head, elem, TRUE, __ATOMIC_RELEASE,
                                       __ATOMIC_RELAXED));
  pool_unref (pool);
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

  if (!g_atomic_int_dec_and_test (&self->ref_count))
    return;

  if (G_UNLIKELY (self->in_flight))
    {
      VhuElementPool *pool = self->pool;

      if (pool->leak_func != NULL && !g_atomic_int_get (&pool->closed))
        {
          /* The queue pushes it back and drops it again. */
          self->ref_count = 1;
          pool->leak_func (self, pool->leak_data);
          return;
        }
      self->in_flight = FALSE;
    }
  element_recycle (self);
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
 * vhost_user_virtq_element_read:
 * @self: an element
 * @offset: where to start in the device-readable buffers
 * @buffer: (out caller-allocates) (array length=length): where to copy to
 * @length: the most bytes to copy
 *
 * Copies from the device-readable buffers.
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
