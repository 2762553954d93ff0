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

#include "vhost-user-device.h"
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

static void
vhost_user_virtqueue_init (VhostUserVirtqueue *vq)
{
  vq->kick_fd = -1;
  vq->call_fd = -1;
  vq->err_fd = -1;
}

VhostUserVirtqueue *
vhu_virtqueue_new (VhostUserDevice *device, guint index)
{
  VhostUserVirtqueue *vq = g_object_new (VHOST_USER_TYPE_VIRTQUEUE, NULL);

  vq->device = device;
  vq->index = index;
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
  return TRUE;
}

typedef struct
{
  VhostUserVirtqueue *vq;
  VhuKickFunc func;
  gpointer user_data;
} KickData;

static gboolean
kick_ready (gint fd, GIOCondition condition, gpointer user_data)
{
  KickData *data = user_data;
  eventfd_t value;

  if (condition & (G_IO_ERR | G_IO_HUP | G_IO_NVAL))
    {
      /* Nothing more will come from this fd; stop watching it. */
      g_clear_pointer (&data->vq->kick_source, g_source_unref);
      return G_SOURCE_REMOVE;
    }

  /* One read drains every kick since the last one: one emission per wakeup. */
  if (eventfd_read (fd, &value) < 0 && errno != EAGAIN)
    return G_SOURCE_CONTINUE;

  data->func (data->vq, data->user_data);
  return G_SOURCE_CONTINUE;
}

/* Takes @fd (-1: none, the front-end polls). */
void
vhu_virtqueue_set_kick_fd (VhostUserVirtqueue *vq,
                           int fd,
                           GMainContext *context,
                           VhuKickFunc func,
                           gpointer user_data)
{
  KickData *data;

  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  vq->kick_fd = fd;
  if (fd < 0)
    return;

  g_unix_set_fd_nonblocking (fd, TRUE, NULL);
  data = g_new (KickData, 1);
  data->vq = vq;
  data->func = func;
  data->user_data = user_data;
  vq->kick_source = g_unix_fd_source_new (fd, G_IO_IN);
  g_source_set_static_name (vq->kick_source, "[libvhostuser-glib] kick");
  g_source_set_callback (vq->kick_source, G_SOURCE_FUNC (kick_ready), data, g_free);
  g_source_attach (vq->kick_source, context);
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
  if (vq->err_fd >= 0)
    eventfd_write (vq->err_fd, 1);
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
  return self->last_avail_idx;
}
