/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>

#include "vhost-user-device-private.h"
#include "vhost-user-virtq-element.h"
#include "vhost-user-error.h"
#include "vhost-user-virtqueue-private.h"

/**
 * VhostUserVirtqueue:
 *
 * One virtqueue of a [class@VhostUser.Device].
 *
 * A ring has two independent states, as the vhost-user spec defines them:
 * started or stopped, and enabled or disabled. It starts when its kick file
 * descriptor is set up on a fully configured ring (size, addresses and guest
 * memory valid), which counts as a first kick, and stops when the front-end
 * asks for its base index (`GET_VRING_BASE`). A started but disabled ring is
 * processed without side effects.
 *
 * Queues are created by their device and live as long as it does; their
 * state follows the front-end's messages.
 *
 * Since: 1.0
 */

enum
{
  PROP_0,
  PROP_DEVICE,
  PROP_INDEX,
  PROP_SIZE,
  PROP_ENABLED,
  PROP_STARTED,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (VhostUserVirtqueue, vhost_user_virtqueue, G_TYPE_OBJECT)

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

static void
remove_kick_source (VhostUserVirtqueue *vq)
{
  if (vq->kick_source != NULL)
    {
      g_source_destroy (vq->kick_source);
      g_clear_pointer (&vq->kick_source, g_source_unref);
    }
}

static void
vhost_user_virtqueue_finalize (GObject *object)
{
  VhostUserVirtqueue *vq = VHOST_USER_VIRTQUEUE (object);

  vhu_split_ring_clear (&vq->ring);
  vhu_element_pool_close (vq->pool);
  g_clear_pointer (&vq->log, vhu_dirty_log_unref);
  g_clear_pointer (&vq->context, g_main_context_unref);
  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  close_fd (&vq->call_fd);
  close_fd (&vq->err_fd);
  g_clear_pointer (&vq->mem, vhu_mem_table_unref);

  G_OBJECT_CLASS (vhost_user_virtqueue_parent_class)->finalize (object);
}

static void
vhost_user_virtqueue_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  VhostUserVirtqueue *vq = VHOST_USER_VIRTQUEUE (object);

  switch (prop_id)
    {
    case PROP_DEVICE:
      g_value_set_object (value, vq->device);
      break;
    case PROP_INDEX:
      g_value_set_uint (value, vq->index);
      break;
    case PROP_SIZE:
      g_value_set_uint (value, vq->size);
      break;
    case PROP_ENABLED:
      g_value_set_boolean (value, vq->enabled);
      break;
    case PROP_STARTED:
      g_value_set_boolean (value, vq->started);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_virtqueue_class_init (VhostUserVirtqueueClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = vhost_user_virtqueue_finalize;
  object_class->get_property = vhost_user_virtqueue_get_property;

  /**
   * VhostUserVirtqueue:device:
   *
   * The device this queue belongs to.
   *
   * Since: 1.0
   */
  properties[PROP_DEVICE] =
    g_param_spec_object ("device", NULL, NULL, VHOST_USER_TYPE_DEVICE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserVirtqueue:index:
   *
   * The queue's index in its device.
   *
   * Since: 1.0
   */
  properties[PROP_INDEX] =
    g_param_spec_uint ("index", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserVirtqueue:size:
   *
   * The number of descriptors in the ring, 0 until the front-end sets it.
   *
   * Since: 1.0
   */
  properties[PROP_SIZE] =
    g_param_spec_uint ("size", NULL, NULL, 0, VHU_MAX_QUEUE_SIZE, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserVirtqueue:enabled:
   *
   * Whether the front-end enabled the ring.
   *
   * Since: 1.0
   */
  properties[PROP_ENABLED] =
    g_param_spec_boolean ("enabled", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserVirtqueue:started:
   *
   * Whether the ring is started: from its first kick to `GET_VRING_BASE`.
   *
   * Since: 1.0
   */
  properties[PROP_STARTED] =
    g_param_spec_boolean ("started", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void on_element_leaked (VhuElement *elem, gpointer user_data);

static void
vhost_user_virtqueue_init (VhostUserVirtqueue *vq)
{
  vq->kick_fd = -1;
  vq->call_fd = -1;
  vq->err_fd = -1;
  vq->log_call_fd = -1;
  vq->pool = vhu_element_pool_new (on_element_leaked, vq);
}

VhostUserVirtqueue *
vhu_virtqueue_new (VhostUserDevice *device, guint index, GMainContext *context)
{
  VhostUserVirtqueue *vq = g_object_new (VHOST_USER_TYPE_VIRTQUEUE, NULL);

  vq->device = device;
  vq->index = index;
  vq->context = g_main_context_ref (context);
  return vq;
}

/* Back to the state of a new queue: stopped, disabled, nothing configured.
 * Emits notifications but no device signal. */
void
vhu_virtqueue_reset (VhostUserVirtqueue *vq)
{
  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  close_fd (&vq->call_fd);
  close_fd (&vq->err_fd);
  vhu_virtqueue_stop_ring (vq);
  vhu_virtqueue_forget_translation (vq);
  vq->last_avail_idx = 0;
  vq->addr_set = FALSE;
  vq->broken = FALSE;

  g_object_freeze_notify (G_OBJECT (vq));
  vhu_virtqueue_set_size (vq, 0);
  vhu_virtqueue_set_enabled (vq, FALSE);
  vhu_virtqueue_set_started (vq, FALSE);
  g_object_thaw_notify (G_OBJECT (vq));
}

gboolean
vhu_virtqueue_is_configured (VhostUserVirtqueue *vq)
{
  return vq->size != 0 && vq->addr_set && vq->desc != NULL && !vq->broken;
}

void
vhu_virtqueue_forget_translation (VhostUserVirtqueue *vq)
{
  vq->desc = vq->avail = vq->used = NULL;
  g_clear_pointer (&vq->mem, vhu_mem_table_unref);
}

/* Translates the three ring areas (split layout, with room for the event
 * index fields) through the memory table. Each area must lie inside one
 * mapped region. Without size and addresses there is nothing to translate. */
gboolean
vhu_virtqueue_translate (VhostUserVirtqueue *vq, VhuMemTable *mem, GError **error)
{
  guint64 desc_len, avail_len, used_len;
  gpointer desc, avail, used;

  vhu_virtqueue_forget_translation (vq);
  if (vq->size == 0 || !vq->addr_set || mem == NULL)
    return TRUE;

  desc_len = 16ull * vq->size;
  avail_len = 6ull + 2ull * vq->size;
  used_len = 6ull + 8ull * vq->size;

  desc = vhu_mem_table_uva_to_host (mem, vq->addr.desc_user_addr, desc_len);
  avail = vhu_mem_table_uva_to_host (mem, vq->addr.avail_user_addr, avail_len);
  used = vhu_mem_table_uva_to_host (mem, vq->addr.used_user_addr, used_len);
  if (desc == NULL || avail == NULL || used == NULL)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Queue %u: the %s ring at 0x%" G_GINT64_MODIFIER "x is not inside guest memory"),
                   vq->index,
                   desc == NULL ? "descriptor" : avail == NULL ? "available" : "used",
                   desc == NULL    ? vq->addr.desc_user_addr
                   : avail == NULL ? vq->addr.avail_user_addr
                                   : vq->addr.used_user_addr);
      return FALSE;
    }

  vq->mem = vhu_mem_table_ref (mem);
  vq->desc = desc;
  vq->avail = avail;
  vq->used = used;

  /* A running ring follows the new table; elements already popped keep
   * the old one mapped until they are dropped. */
  if (vq->ring.desc != NULL)
    {
      vhu_split_ring_set_memory (&vq->ring, desc, avail, used, mem);
      vhu_element_pool_drop_mappings (vq->pool);
    }
  return TRUE;
}

static gboolean
kick_ready (gint fd, GIOCondition condition, gpointer user_data)
{
  VhostUserVirtqueue *vq = user_data;
  eventfd_t value;

  if (condition & (G_IO_ERR | G_IO_HUP | G_IO_NVAL))
    {
      /* Nothing more will come from this fd; stop watching it. */
      g_clear_pointer (&vq->kick_source, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  /* One read drains every kick since the last one: one emission per wakeup. */
  if (eventfd_read (fd, &value) < 0 && errno != EAGAIN)
    return G_SOURCE_CONTINUE;

  vq->kick_func (vq, vq->kick_data);
  return G_SOURCE_CONTINUE;
}

static void
watch_kick (VhostUserVirtqueue *vq)
{
  vq->kick_source = g_unix_fd_source_new (vq->kick_fd, G_IO_IN);
  g_source_set_static_name (vq->kick_source, "[libvhostuser-glib] kick");
  g_source_set_callback (vq->kick_source, G_SOURCE_FUNC (kick_ready), vq, NULL);
  g_source_attach (vq->kick_source, vq->context);
}

/* Takes @fd (-1: none, the front-end polls). */
void
vhu_virtqueue_set_kick_fd (VhostUserVirtqueue *vq, int fd, VhuKickFunc func, gpointer user_data)
{
  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  vq->kick_fd = fd;
  vq->kick_func = func;
  vq->kick_data = user_data;
  if (fd < 0)
    return;

  g_unix_set_fd_nonblocking (fd, TRUE, NULL);
  watch_kick (vq);
}

void
vhu_virtqueue_set_call_fd (VhostUserVirtqueue *vq, int fd)
{
  close_fd (&vq->call_fd);
  vq->call_fd = fd;
}

void
vhu_virtqueue_set_err_fd (VhostUserVirtqueue *vq, int fd)
{
  close_fd (&vq->err_fd);
  vq->err_fd = fd;
}

void
vhu_virtqueue_set_enabled (VhostUserVirtqueue *vq, gboolean enabled)
{
  enabled = !!enabled;
  if (vq->enabled == enabled)
    return;
  vq->enabled = enabled;
  g_object_notify_by_pspec (G_OBJECT (vq), properties[PROP_ENABLED]);
}

void
vhu_virtqueue_set_started (VhostUserVirtqueue *vq, gboolean started)
{
  started = !!started;
  if (vq->started == started)
    return;
  vq->started = started;
  g_object_notify_by_pspec (G_OBJECT (vq), properties[PROP_STARTED]);
}

/* The guest broke the ring: stop using it and tell the front-end. */
void
vhu_virtqueue_mark_broken (VhostUserVirtqueue *vq)
{
  vq->broken = TRUE;
  vq->ring.broken = TRUE;
  if (vq->err_fd >= 0)
    eventfd_write (vq->err_fd, 1);
}

/* The ring starts: from here on the data path reads and writes it. */
void
vhu_virtqueue_start_ring (VhostUserVirtqueue *vq)
{
  guint64 features = vq->features;

  vhu_split_ring_init (&vq->ring, vq->desc, vq->avail, vq->used, vq->size, vq->last_avail_idx,
                       vq->mem);
  vq->ring.event_idx = (features & (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_RING_EVENT_IDX)) != 0;
  vq->ring.indirect =
    (features & (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_RING_INDIRECT_DESC)) != 0;
  vq->ring.log_used = (vq->addr.flags & (1u << VHU_VRING_F_LOG)) != 0;
  vq->ring.used_log_gpa = vq->addr.log_guest_addr;
  vq->ring.log = vq->log != NULL ? vhu_dirty_log_ref (vq->log) : NULL;
  vq->stopping = FALSE;
}

/* The ring stops: the index of the next available entry is what
 * GET_VRING_BASE reports, and what a restart continues from. */
void
vhu_virtqueue_stop_ring (VhostUserVirtqueue *vq)
{
  if (vq->ring.desc != NULL)
    vq->last_avail_idx = vq->ring.last_avail_idx;
  vhu_split_ring_clear (&vq->ring);
  vhu_element_pool_drop_mappings (vq->pool);
  vq->stopping = FALSE;
}

/* Dirty logging starts (a log), changes (another log) or stops (NULL). */
void
vhu_virtqueue_set_log (VhostUserVirtqueue *vq, VhuDirtyLog *log, int log_call_fd)
{
  vq->log_call_fd = log_call_fd;
  g_clear_pointer (&vq->log, vhu_dirty_log_unref);
  vq->log = log != NULL ? vhu_dirty_log_ref (log) : NULL;
  g_clear_pointer (&vq->ring.log, vhu_dirty_log_unref);
  if (vq->ring.desc != NULL && log != NULL)
    vq->ring.log = vhu_dirty_log_ref (log);
  vq->ring.log_used = (vq->addr.flags & (1u << VHU_VRING_F_LOG)) != 0;
  vq->ring.used_log_gpa = vq->addr.log_guest_addr;
}

void
vhu_virtqueue_set_drained_func (VhostUserVirtqueue *vq, VhuDrainedFunc func, gpointer data)
{
  vq->drained_func = func;
  vq->drained_data = data;
}

static void
after_flush (VhostUserVirtqueue *vq)
{
  if (G_UNLIKELY (vq->ring.log != NULL && vq->log_call_fd >= 0))
    eventfd_write (vq->log_call_fd, 1);
  if (G_UNLIKELY (vq->stopping && vq->ring.inuse == 0 && vq->drained_func != NULL))
    vq->drained_func (vq, vq->drained_data);
}

typedef struct
{
  VhostUserVirtqueue *vq;
  VhuElement *elem;
} Leaked;

static gboolean
push_leaked (gpointer data)
{
  Leaked *leaked = data;
  VhostUserVirtqueue *vq = leaked->vq;
  VhuElement *elem = leaked->elem;

  if (vq->ring.desc != NULL && elem->generation == vq->ring.generation)
    vhost_user_virtqueue_push (vq, elem, 0);
  elem->in_flight = FALSE;
  vhost_user_virtq_element_unref (elem);
  g_object_unref (vq);
  g_free (leaked);
  return G_SOURCE_REMOVE;
}

/* A popped element was dropped without being pushed: it goes back to the
 * driver with nothing written, so the driver does not wait for it forever.
 * An element of an earlier start of the ring is only forgotten. This is the
 * exception, not the data path. */
static void
on_element_leaked (VhuElement *elem, gpointer user_data)
{
  Leaked *leaked = g_new (Leaked, 1);

  leaked->vq = g_object_ref (user_data);
  leaked->elem = elem;
  if (g_main_context_is_owner (leaked->vq->context))
    push_leaked (leaked);
  else
    g_main_context_invoke (leaked->vq->context, push_leaked, leaked);
}

void
vhu_virtqueue_set_size (VhostUserVirtqueue *vq, guint size)
{
  if (vq->size == size)
    return;
  vq->size = size;
  g_object_notify_by_pspec (G_OBJECT (vq), properties[PROP_SIZE]);
}

/**
 * vhost_user_virtqueue_get_device:
 * @self: a queue
 *
 * Returns: (transfer none): the device the queue belongs to
 *
 * Since: 1.0
 */
VhostUserDevice *
vhost_user_virtqueue_get_device (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), NULL);
  return self->device;
}

/**
 * vhost_user_virtqueue_get_index:
 * @self: a queue
 *
 * Returns: the queue's index in its device
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_index (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), 0);
  return self->index;
}

/**
 * vhost_user_virtqueue_get_size:
 * @self: a queue
 *
 * Returns: the number of descriptors in the ring, or 0 if not set up
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_size (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), 0);
  return self->size;
}

/**
 * vhost_user_virtqueue_get_enabled:
 * @self: a queue
 *
 * Returns: whether the front-end enabled the ring
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_get_enabled (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), FALSE);
  return self->enabled;
}

/**
 * vhost_user_virtqueue_get_started:
 * @self: a queue
 *
 * Returns: whether the ring is started
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_get_started (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), FALSE);
  return self->started;
}

/**
 * vhost_user_virtqueue_get_last_avail_idx:
 * @self: a queue
 *
 * Returns: the index of the next available-ring entry the back-end will
 *   process (free-running, modulo 2^16)
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_last_avail_idx (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), 0);
  /* While the ring runs, the split ring holds the live index. */
  if (self->ring.desc != NULL)
    return self->ring.last_avail_idx;
  return self->last_avail_idx;
}

/**
 * vhost_user_virtqueue_get_broken:
 * @self: a queue
 *
 * Returns: whether the guest broke the ring; a broken ring is not used
 *   until the front-end sets it up again
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_get_broken (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), FALSE);
  return self->broken;
}

/**
 * vhost_user_virtqueue_pop:
 * @self: a started queue
 * @error: return location for a #GError
 *
 * Takes the next request the driver made available. Its descriptors are
 * read once from guest memory and validated; a ring the guest broke is
 * marked broken, its error eventfd is signalled, and %NULL is returned with
 * %VHOST_USER_ERROR_QUEUE_BROKEN.
 *
 * Call from the queue's thread, like every data-path function.
 *
 * Returns: (transfer full) (nullable): the request, or %NULL when there is
 *   none (with @error unset) or the ring is broken
 *
 * Since: 1.0
 */
VhostUserVirtqElement *
vhost_user_virtqueue_pop (VhostUserVirtqueue *self, GError **error)
{
  VhuElement *elem;

  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), NULL);

  if (G_UNLIKELY (self->stopping))
    return NULL;

  elem = vhu_element_pool_take (self->pool);
  switch (vhu_split_ring_pop (&self->ring, elem, error))
    {
    case VHU_POP_OK:
      vhu_element_set_memory (elem, self->ring.mem);
      return elem;

    case VHU_POP_BROKEN:
      if (!self->broken && self->ring.desc != NULL)
        vhu_virtqueue_mark_broken (self);
      else if (error != NULL && *error == NULL)
        g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_QUEUE_BROKEN,
                     _("Queue %u is not running"), self->index);
      break;

    case VHU_POP_EMPTY:
      break;
    }
  vhost_user_virtq_element_unref (elem);
  return NULL;
}

/**
 * vhost_user_virtqueue_unpop:
 * @self: a queue
 * @element: the element popped last
 *
 * Gives back the element popped last, unprocessed: the next pop returns it
 * again (for a device that ran out of room for it, say).
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_unpop (VhostUserVirtqueue *self, VhostUserVirtqElement *element)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));
  g_return_if_fail (element != NULL && element->in_flight);

  if (element->generation == self->ring.generation && self->ring.desc != NULL)
    vhu_split_ring_unpop (&self->ring, element);
}

/**
 * vhost_user_virtqueue_fill:
 * @self: a queue
 * @element: a popped element
 * @written: how many bytes the device wrote into the element's in buffers
 * @offset: the element's place in the batch (0 for the first)
 *
 * Returns @element to the driver as part of a batch; the batch becomes
 * visible with [method@VhostUser.Virtqueue.flush].
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_fill (VhostUserVirtqueue *self,
                           VhostUserVirtqElement *element,
                           gsize written,
                           guint offset)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));
  g_return_if_fail (element != NULL && element->in_flight);

  /* An element of a ring that stopped (or restarted) since is forgotten. */
  if (G_UNLIKELY (element->generation != self->ring.generation || self->ring.desc == NULL))
    {
      element->in_flight = FALSE;
      return;
    }
  vhu_split_ring_fill (&self->ring, element, MIN (written, G_MAXUINT32), offset);
}

/**
 * vhost_user_virtqueue_flush:
 * @self: a queue
 * @count: how many elements were filled
 *
 * Makes a batch of filled elements visible to the driver (one used-index
 * update). Does not notify the driver: see
 * [method@VhostUser.Virtqueue.notify].
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_flush (VhostUserVirtqueue *self, guint count)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));

  if (G_UNLIKELY (self->ring.desc == NULL || count == 0))
    return;
  vhu_split_ring_flush (&self->ring, MIN (count, self->ring.inuse));
  after_flush (self);
}

/**
 * vhost_user_virtqueue_notify:
 * @self: a queue
 *
 * Interrupts the driver (writes the call eventfd) if it asked to be told
 * about used buffers: with %VHOST_USER_FEATURE_RING_EVENT_IDX once the used
 * index passes the driver's used_event, otherwise unless it set
 * VRING_AVAIL_F_NO_INTERRUPT.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_notify (VhostUserVirtqueue *self)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));

  if (G_UNLIKELY (self->ring.desc == NULL || self->ring.broken))
    return;
  if (vhu_split_ring_should_notify (&self->ring) && self->call_fd >= 0)
    eventfd_write (self->call_fd, 1);
}

/**
 * vhost_user_virtqueue_push:
 * @self: a queue
 * @element: a popped element
 * @written: how many bytes the device wrote into the element's in buffers
 *
 * Returns one element to the driver and notifies it if needed: fill, flush
 * and notify in one call. The element is done with; drop it afterwards.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_push (VhostUserVirtqueue *self, VhostUserVirtqElement *element, gsize written)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));
  g_return_if_fail (element != NULL && element->in_flight);

  if (G_UNLIKELY (element->generation != self->ring.generation || self->ring.desc == NULL))
    {
      element->in_flight = FALSE;
      return;
    }
  vhu_split_ring_fill (&self->ring, element, MIN (written, G_MAXUINT32), 0);
  vhu_split_ring_flush (&self->ring, 1);
  if (vhu_split_ring_should_notify (&self->ring) && self->call_fd >= 0)
    eventfd_write (self->call_fd, 1);
  after_flush (self);
}

/**
 * vhost_user_virtqueue_is_empty:
 * @self: a queue
 *
 * Returns: whether the driver has made no request available that was not
 *   popped yet (%TRUE for a queue that is not running)
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_is_empty (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), TRUE);
  return self->stopping || vhu_split_ring_is_empty (&self->ring);
}

/**
 * vhost_user_virtqueue_set_notification:
 * @self: a queue
 * @enable: whether the driver should kick
 *
 * Asks the driver not to kick while the device drains the ring anyway, and
 * to kick again afterwards. After enabling, check
 * [method@VhostUser.Virtqueue.is_empty] once more: a request made available
 * just before may have come without a kick.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_set_notification (VhostUserVirtqueue *self, gboolean enable)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));
  vhu_split_ring_set_notification (&self->ring, enable);
}

/**
 * vhost_user_virtqueue_get_in_flight:
 * @self: a queue
 *
 * Returns: how many popped elements were not pushed yet
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_in_flight (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), 0);
  return self->ring.inuse;
}

static gboolean
queue_move (VhostUserDevice *device, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  gboolean watching = vq->kick_source != NULL;

  remove_kick_source (vq);
  g_main_context_unref (vq->context);
  vq->context = g_main_context_ref (data);
  if (watching)
    watch_kick (vq);
  return TRUE;
}

/**
 * vhost_user_virtqueue_set_context:
 * @self: a queue
 * @context: (nullable): the main context the queue runs on from now on, or
 *   %NULL for its device's
 *
 * Moves the queue to another thread: its kick is watched on @context, and
 * [signal@VhostUser.Device::queue-started],
 * [signal@VhostUser.Device::queue-kicked] and
 * [signal@VhostUser.Device::queue-stopped] are emitted there. Pop and push
 * the queue's elements from that thread only. Control messages that touch
 * the queue run there too while the device's thread waits, so @context
 * must keep being iterated, and code running on it must not wait for the
 * device's context.
 *
 * Call from the device's context.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_set_context (VhostUserVirtqueue *self, GMainContext *context)
{
  g_return_if_fail (VHOST_USER_IS_VIRTQUEUE (self));

  if (context == NULL)
    context = vhost_user_device_get_context (self->device);
  if (context == self->context)
    return;
  vhu_device_run_on_queue (self->device, self, queue_move, context, NULL);
}

/**
 * vhost_user_virtqueue_get_context:
 * @self: a queue
 *
 * Returns: (transfer none): the main context the queue runs on
 *
 * Since: 1.0
 */
GMainContext *
vhost_user_virtqueue_get_context (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (VHOST_USER_IS_VIRTQUEUE (self), NULL);
  return self->context;
}
