/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Batches of elements. For language bindings: a call from Python costs
 * about as much as serving a small request in C, so a binding takes what a
 * kick made available in one call, with where every buffer is, and gives
 * the elements back in one call; built on the public data path. For C
 * devices that work in bursts: popping many with the checks of one pop,
 * and recycling them on the queue's thread without atomic operations.
 */

#include "config.h"

#include "vhost-user-virtqueue-private.h"
#include "vhu-fault-guard.h"
#include "vhu-split-ring.h"

/**
 * vhost_user_virtqueue_pop_batch:
 * @self: a started queue
 * @max: the most elements to take
 * @n_elements: (out): the number of elements returned
 * @segments: (out) (array length=n_segments) (transfer full): where the
 *   elements' buffers are: for each element in turn, the number of its
 *   device-readable segments, the number of its device-writable segments,
 *   then an address and a length per segment, device-readable ones first
 *   (as [method@VhostUser.VirtqElement.get_segments] gives them)
 * @n_segments: (out): the number of values in @segments
 * @error: return location for a #GError
 *
 * Takes up to @max requests the driver made available, as
 * [method@VhostUser.Virtqueue.pop] would one by one, for bindings that pay
 * for each call (the Python overrides). When the ring turns out broken
 * after some elements were taken, those are returned; the next call fails
 * with %VHOST_USER_ERROR_QUEUE_BROKEN.
 *
 * Returns: (array length=n_elements) (transfer full) (nullable): the
 *   elements, none when the queue is empty; free the array with g_free()
 *   after dropping each element
 *
 * Since: 1.0
 */
VhostUserVirtqElement **
vhost_user_virtqueue_pop_batch (VhostUserVirtqueue *self,
                                guint max,
                                guint *n_elements,
                                guint64 **segments,
                                gsize *n_segments,
                                GError **error)
{
  g_autoptr (GPtrArray) elements = NULL;
  g_autoptr (GArray) values = NULL;
  VhostUserVirtqElement *element;
  GError *pop_error = NULL;

  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), NULL);
  g_return_val_if_fail (n_elements != NULL, NULL);
  g_return_val_if_fail (segments != NULL, NULL);
  g_return_val_if_fail (n_segments != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  *n_elements = 0;
  *segments = NULL;
  *n_segments = 0;
  elements = g_ptr_array_new ();
  values = g_array_new (FALSE, FALSE, sizeof (guint64));
  while (elements->len < max
         && (element = vhost_user_virtqueue_pop (self, &pop_error)) != NULL)
    {
      guint n = element->out_num + element->in_num;
      guint64 *v;

      g_ptr_array_add (elements, element);
      g_array_set_size (values, values->len + 2 + 2 * (gsize) n);
      v = &g_array_index (values, guint64, values->len - 2 - 2 * (gsize) n);
      *v++ = element->out_num;
      *v++ = element->in_num;
      for (guint i = 0; i < n; i++)
        {
          *v++ = (guint64) (guintptr) element->iov[i].iov_base;
          *v++ = element->iov[i].iov_len;
        }
    }
  if (pop_error != NULL)
    {
      if (elements->len == 0)
        {
          g_propagate_error (error, pop_error);
          return NULL;
        }
      /* The next pop reports it again. */
      g_error_free (pop_error);
    }

  *n_elements = elements->len;
  *n_segments = values->len;
  *segments = (guint64 *) (void *) g_array_free (g_steal_pointer (&values), FALSE);
  return (VhostUserVirtqElement **) g_ptr_array_free (g_steal_pointer (&elements), FALSE);
}

/**
 * vhost_user_virtqueue_push_batch:
 * @self: a queue
 * @elements: (array length=n_elements): popped elements
 * @n_elements: the number of elements
 * @written: (array length=n_written): how many bytes the device wrote into
 *   each element's device-writable buffers
 * @n_written: the number of values in @written: @n_elements
 *
 * Returns @elements to the driver with one used-index update and notifies
 * it if needed: [method@VhostUser.Virtqueue.fill] for each,
 * [method@VhostUser.Virtqueue.flush] and
 * [method@VhostUser.Virtqueue.notify], in one call. The elements are done
 * with; drop them afterwards.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_push_batch (VhostUserVirtqueue *self,
                                 VhostUserVirtqElement **elements,
                                 guint n_elements,
                                 const gsize *written,
                                 guint n_written)
{
  guint filled = 0;

  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));
  g_return_if_fail (elements != NULL || n_elements == 0);
  g_return_if_fail (written != NULL || n_written == 0);
  g_return_if_fail (n_written == n_elements);

  for (guint i = 0; i < n_elements; i++)
    {
      VhostUserVirtqElement *element = elements[i];

      /* An element of an earlier start of the ring takes no place in the
       * batch: fill() only forgets it. */
      if (element->generation == self->ring.generation && self->ring.desc != NULL)
        vhost_user_virtqueue_fill (self, element, written[i], filled++);
      else
        vhost_user_virtqueue_fill (self, element, written[i], 0);
    }
  vhost_user_virtqueue_flush (self, filled);
  vhost_user_virtqueue_notify (self);
}

/**
 * vhost_user_virtqueue_recycle: (skip)
 * @self: a queue
 * @elements: (array length=n_elements): elements popped from @self, a
 *   reference to each of which the call takes (not the array)
 * @n_elements: the number of elements
 *
 * Drops a reference to each of @elements, as
 * [method@VhostUser.VirtqElement.unref] does. Called on the thread that
 * runs @self's context, while it runs it (in a handler), it is cheaper:
 * an element whose last reference goes waits for the next pop on a list
 * of the queue's own, with no atomic operation. (The queue's pops must
 * come from that thread too, as its handlers' do.) Called anywhere else,
 * it is unref() for each. Not for bindings: their elements go when their
 * last reference does.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_recycle (VhostUserVirtqueue *self,
                              VhostUserVirtqElement **elements,
                              guint n_elements)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));
  g_return_if_fail (elements != NULL || n_elements == 0);

  if (n_elements == 0)
    return;
  /* The taker's list is the queue's thread's: pops come from there only. */
  if (!g_main_context_is_owner (self->context))
    {
      for (guint i = 0; i < n_elements; i++)
        vhost_user_virtq_element_unref (elements[i]);
      return;
    }
  for (guint i = 0; i < n_elements; i++)
    vhu_element_unref_by_taker (self->pool, elements[i]);
}

/**
 * vhost_user_virtqueue_pop_many: (skip)
 * @self: a queue
 * @elements: (array length=max): where the elements go
 * @max: the most elements to take
 * @error: return location for a #GError
 *
 * Takes up to @max requests the driver made available, as
 * [method@VhostUser.Virtqueue.pop] would one by one, for C devices that
 * work in bursts: what each pop checks about the queue is checked once.
 * Drop each element as usual (or with
 * [method@VhostUser.Virtqueue.recycle]). Bindings have
 * [method@VhostUser.Virtqueue.pop_batch].
 *
 * Returns: how many elements were put in @elements; 0 when there are none,
 *   with @error set if the queue broke before the first
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_pop_many (VhostUserVirtqueue *self,
                               VhostUserVirtqElement **elements,
                               guint max,
                               GError **error)
{
  guint n = 0;
  gboolean faulted;

  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), 0);
  g_return_val_if_fail (elements != NULL || max == 0, 0);

  if (G_UNLIKELY (self->stopping))
    return 0;

  while (n < max && (elements[n] = vhu_virtqueue_pop_fast (self)) != NULL)
    n++;
  /* Memory that vanished under what was read (the ring itself, maybe: an
   * index read as zero): all of it is given back, and popped again below,
   * where the full pop finds out. */
  faulted = vhu_fault_guard_count () != self->ring.faults_seen;
  if (G_UNLIKELY (faulted))
    for (; n > 0; n--)
      {
        vhu_split_ring_unpop (&self->ring, elements[n - 1]);
        vhu_element_pool_put_back (self->pool, elements[n - 1]);
      }
  /* An empty ring ends the burst; anything else the fast pop left (a chain
   * it does not take, a ring stopped or broken: the error) goes the usual
   * way. */
  if (n == max
      || (!faulted && self->ring.desc != NULL && !self->ring.broken
          && vhu_split_ring_is_empty (&self->ring)))
    return n;
  for (; n < max; n++)
    {
      elements[n] = vhost_user_virtqueue_pop (self, n == 0 ? error : NULL);
      if (elements[n] == NULL)
        break;
    }
  return n;
}
