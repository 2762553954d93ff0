/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>

#include "vhost-user-device-private.h"
#include "vhost-user-enum-types.h"
#include "vhost-user-error.h"
#include "vhost-user-virtqueue-private.h"
#include "vhu-backend-channel.h"
#include "vhu-connection.h"
#include "vhu-device-state.h"
#include "vhu-dirty-log.h"
#include "vhu-inflight.h"
#include "vhu-memory.h"
#include "vhu-message.h"

/**
 * VhostUserDevice:
 *
 * A vhost-user device back-end: the object a VMM's front-end talks to over a
 * unix socket to hand over a virtio device's queues.
 *
 * `VhostUserDevice` is abstract. A device type is a subclass that answers
 * the front-end's questions through vfuncs (which features it offers, what
 * its config space holds) and reacts to events through signals
 * ([signal@VhostUser.Device::features-negotiated],
 * [signal@VhostUser.Device::queue-started],
 * [signal@VhostUser.Device::queue-kicked], …). The library runs the whole
 * protocol: feature negotiation, the guest memory table, ring set-up, the
 * back-end channel, dirty logging, in-flight tracking and device state
 * transfer; messages it cannot accept get a clear refusal and a
 * [signal@VhostUser.Device::protocol-error], never a crash.
 *
 * A device captures the thread-default [struct@GLib.MainContext] when it is
 * constructed: all its sources are attached there, and every vfunc and
 * signal runs there.
 *
 * A connection comes from a [class@VhostUser.Server] or from
 * [method@VhostUser.Device.take_connection]. When it ends, the device returns
 * to its initial state and can serve the next front-end.
 *
 * A minimal device in C:
 *
 * ```c
 * G_DECLARE_FINAL_TYPE (MyRng, my_rng, MY, RNG, VhostUserDevice)
 * struct _MyRng { VhostUserDevice parent_instance; };
 * G_DEFINE_FINAL_TYPE (MyRng, my_rng, VHOST_USER_TYPE_DEVICE)
 *
 * static void
 * my_rng_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
 * {
 *   // serve the requests waiting in @queue
 * }
 *
 * static void
 * my_rng_class_init (MyRngClass *klass)
 * {
 *   VHOST_USER_DEVICE_CLASS (klass)->queue_kicked = my_rng_queue_kicked;
 * }
 * ```
 *
 * and in Python:
 *
 * ```python
 * class Rng(VhostUser.Device):
 *     def do_queue_kicked(self, queue):
 *         ...  # serve the requests waiting in queue
 *
 * server = VhostUser.Server.new(Rng(num_queues=1))
 * server.listen("/tmp/rng.sock")
 * ```
 *
 * Since: 1.0
 */

#define BIT(n) (G_GUINT64_CONSTANT (1) << (n))

/* Bits 24 to 40 are the device-independent (transport) features: the library
 * offers those it implements, whatever a subclass says. */
#define TRANSPORT_FEATURES_MASK (BIT (41) - BIT (24))
#define ALWAYS_OFFERED_FEATURES \
  (BIT (VHOST_USER_FEATURE_VERSION_1) | BIT (VHOST_USER_FEATURE_PROTOCOL_FEATURES))
#define LIBRARY_TRANSPORT_FEATURES                                                         \
  (ALWAYS_OFFERED_FEATURES | BIT (VHOST_USER_FEATURE_RING_INDIRECT_DESC)                  \
   | BIT (VHOST_USER_FEATURE_RING_EVENT_IDX) | BIT (VHOST_USER_FEATURE_LOG_ALL))

/* Protocol features the library implements by itself. */
#define LIBRARY_PROTOCOL_FEATURES                                                          \
  (BIT (VHOST_USER_PROTOCOL_FEATURE_MQ) | BIT (VHOST_USER_PROTOCOL_FEATURE_LOG_SHMFD)      \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK) | BIT (VHOST_USER_PROTOCOL_FEATURE_BACKEND_REQ) \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_CONFIG)                                              \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_INFLIGHT_SHMFD)                                      \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_RESET_DEVICE)                                        \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS)                                 \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_STATUS))

/* Protocol features that need a subclass's vfuncs. */
#define VFUNC_PROTOCOL_FEATURES                                                            \
  (BIT (VHOST_USER_PROTOCOL_FEATURE_NET_MTU) | BIT (VHOST_USER_PROTOCOL_FEATURE_RARP)      \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE)                                        \
   | BIT (VHOST_USER_PROTOCOL_FEATURE_SHARED_OBJECT))

#define DEFAULT_MAX_QUEUE_SIZE 1024

typedef struct
{
  GMainContext *context;
  guint num_queues;
  guint max_queue_size;
  VhostUserVirtqueue **queues;

  VhuConnection *conn;
  gboolean close_after_reply;

  gboolean offers_known;
  guint64 offered_features;
  guint64 offered_protocol_features;
  gboolean protocol_features_set; /* SET_PROTOCOL_FEATURES came on this connection */
  guint64 acked_features;
  guint64 acked_protocol_features;
  guint status;

  VhuMemTable *mem;
  VhuDirtyLog *log;
  int log_call_fd;
  VhuInflight *inflight;
  VhuBackendChannel *backend;

  VhuStateTransfer *transfer;
  VhostUserTransferDirection transfer_direction;
  VhuMessage *deferred; /* a request whose reply waits (CHECK_DEVICE_STATE, GET_VRING_BASE) */
  gboolean defer_reply;  /* set by a handler: the reply will come later */

  gboolean in_request;   /* a front-end request is being handled */
  gboolean tearing_down; /* queues are reset: stopped queue threads are not waited for */
  GError *reported;    /* vhost_user_device_report_error() while handling it */
} VhostUserDevicePrivate;

enum
{
  PROP_0,
  PROP_NUM_QUEUES,
  PROP_MAX_QUEUE_SIZE,
  PROP_CONNECTED,
  PROP_FEATURES,
  PROP_PROTOCOL_FEATURES,
  PROP_STATUS,
  N_PROPS
};

enum
{
  SIGNAL_FEATURES_NEGOTIATED,
  SIGNAL_QUEUE_STARTED,
  SIGNAL_QUEUE_STOPPED,
  SIGNAL_QUEUE_KICKED,
  SIGNAL_RESET,
  SIGNAL_DISCONNECTED,
  SIGNAL_PROTOCOL_ERROR,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];

G_DEFINE_ABSTRACT_TYPE_WITH_PRIVATE (VhostUserDevice, vhost_user_device, G_TYPE_OBJECT)

#define PRIV(self) ((VhostUserDevicePrivate *) vhost_user_device_get_instance_private (self))

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

/* ------------------------------------------------------------------------ */
/* Defaults of the vfuncs and class handlers                                */

static guint64
real_get_features (VhostUserDevice *self)
{
  return LIBRARY_TRANSPORT_FEATURES;
}

static GBytes *
real_get_config (VhostUserDevice *self, guint offset, guint size, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device has no config space"));
  return NULL;
}

static guint64
real_get_protocol_features (VhostUserDevice *self)
{
  guint64 features = LIBRARY_PROTOCOL_FEATURES;

  if (VHOST_USER_DEVICE_GET_CLASS (self)->get_config == real_get_config)
    features &= ~BIT (VHOST_USER_PROTOCOL_FEATURE_CONFIG);
  return features;
}

static gboolean
real_set_config (VhostUserDevice *self,
                 guint offset,
                 GBytes *data,
                 VhostUserConfigFlags flags,
                 GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device config space is read-only"));
  return FALSE;
}

static gboolean
real_set_mtu (VhostUserDevice *self, guint mtu, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device does not support setting the MTU"));
  return FALSE;
}

static gboolean
real_send_rarp (VhostUserDevice *self, GBytes *mac, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device does not support sending a RARP"));
  return FALSE;
}

static GBytes *
real_save_state (VhostUserDevice *self, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device does not support saving its state"));
  return NULL;
}

static gboolean
real_load_state (VhostUserDevice *self, GBytes *state, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device does not support loading its state"));
  return FALSE;
}

static gint
real_get_shared_object (VhostUserDevice *self, const gchar *uuid, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("The device exports no shared objects"));
  return -1;
}

static void
real_protocol_error (VhostUserDevice *self, const GError *error)
{
  g_debug ("refused: %s", error->message);
}

/* The other class handlers do nothing, so that overrides can chain up. */
static void
real_features_negotiated (VhostUserDevice *self, guint64 features)
{
}

static void
real_queue_event (VhostUserDevice *self, VhostUserVirtqueue *queue)
{
}

static void
real_device_event (VhostUserDevice *self)
{
}

/* A vfunc written in Python may fail without setting an error. */
static void
ensure_error (GError **error, const char *what)
{
  if (error != NULL && *error == NULL)
    g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED,
                 _("The device failed to %s"), what);
}

/* ------------------------------------------------------------------------ */
/* Queue state                                                              */

/* ------------------------------------------------------------------------ */
/* Queues on other threads                                                  */

/* A queue moved to a worker's context is touched only there: what the
 * control plane changes in it runs there, while the device's thread waits.
 * The worker's context must be iterated; its code must not wait for the
 * device's context. */
typedef struct
{
  VhostUserDevice *self;
  VhostUserVirtqueue *vq;
  QueueFunc func;
  gpointer data;
  GError *error;
  gboolean ok;
  gboolean done;
  GMutex lock;
  GCond cond;
} QueueCall;

static gboolean
queue_call_run (gpointer user_data)
{
  QueueCall *call = user_data;

  call->ok = call->func (call->self, call->vq, call->data, &call->error);
  g_mutex_lock (&call->lock);
  call->done = TRUE;
  g_cond_signal (&call->cond);
  g_mutex_unlock (&call->lock);
  return G_SOURCE_REMOVE;
}

/* While the device drops a connection's state, a queue whose context nobody
 * iterates (its thread has stopped, or not started) is handled here, with
 * the context acquired: stopping must not wait for a thread that is gone. */
gboolean
vhu_device_run_on_queue (VhostUserDevice *self,
              VhostUserVirtqueue *vq,
              QueueFunc func,
              gpointer data,
              GError **error)
{
  QueueCall call = { self, vq, func, data, NULL, FALSE, FALSE };

  if (vq->context == PRIV (self)->context || g_main_context_is_owner (vq->context))
    return func (self, vq, data, error);

  if (PRIV (self)->tearing_down && g_main_context_acquire (vq->context))
    {
      call.ok = func (self, vq, data, error);
      g_main_context_release (vq->context);
      return call.ok;
    }

  g_mutex_init (&call.lock);
  g_cond_init (&call.cond);
  g_main_context_invoke_full (vq->context, G_PRIORITY_HIGH, queue_call_run, &call, NULL);
  g_mutex_lock (&call.lock);
  while (!call.done)
    g_cond_wait (&call.cond, &call.lock);
  g_mutex_unlock (&call.lock);
  g_mutex_clear (&call.lock);
  g_cond_clear (&call.cond);
  if (call.error != NULL)
    g_propagate_error (error, call.error);
  return call.ok;
}

/* The dirty log the rings write to: only while LOG_ALL is acknowledged. */
static VhuDirtyLog *
active_log (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  return (priv->acked_features & BIT (VHOST_USER_FEATURE_LOG_ALL)) ? priv->log : NULL;
}

static gboolean
queue_update_log (VhostUserDevice *self, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  vq->features = priv->acked_features;
  vhu_virtqueue_set_log (vq, active_log (self), priv->log_call_fd);
  return TRUE;
}

static void
update_queue_logs (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  for (guint i = 0; i < priv->num_queues; i++)
    vhu_device_run_on_queue (self, priv->queues[i], queue_update_log, NULL, NULL);
}

/* The device hears first, while it may still push what it holds; then the
 * ring is let go of. */
static void
emit_queue_stopped (VhostUserDevice *self, VhostUserVirtqueue *vq)
{
  if (!vq->started)
    return;
  vhu_virtqueue_set_started (vq, FALSE);
  g_signal_emit (self, signals[SIGNAL_QUEUE_STOPPED], 0, vq);
  vhu_virtqueue_stop_ring (vq);
}

/* FALSE (the ring broken) when the ring cannot start: the front-end's
 * in-flight buffer cannot be right for it. */
static gboolean
queue_kick (VhostUserDevice *self, VhostUserVirtqueue *vq, GError **error)
{
  /* A kick before the ring is usable (no memory, no addresses, or a ring
   * the guest broke) is ignored. */
  if (!vhu_virtqueue_is_configured (vq))
    return TRUE;

  if (!vq->started && !vhu_virtqueue_start_ring (vq, error))
    return FALSE;

  g_object_ref (self);
  if (!vq->started)
    {
      vhu_virtqueue_set_started (vq, TRUE);
      g_signal_emit (self, signals[SIGNAL_QUEUE_STARTED], 0, vq);
    }
  if (vq->started)
    g_signal_emit (self, signals[SIGNAL_QUEUE_KICKED], 0, vq);
  g_object_unref (self);
  return TRUE;
}

static void
on_queue_kick (VhostUserVirtqueue *vq, gpointer user_data)
{
  queue_kick (user_data, vq, NULL);
}

/* A kick fd that was just set counts as a kick: the driver may have made
 * buffers available before this back-end (re)connected. */
static gboolean
maybe_start_queue (VhostUserDevice *self, VhostUserVirtqueue *vq, GError **error)
{
  if (vq->kick_fd >= 0 && !vq->started)
    return queue_kick (self, vq, error);
  return TRUE;
}

/* After the memory table changed: every ring is translated again; a started
 * ring whose areas are no longer mapped stops. */
static gboolean
queue_retranslate (VhostUserDevice *self, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  if (!vhu_virtqueue_translate (vq, PRIV (self)->mem, error))
    {
      if (vq->started)
        {
          vhu_virtqueue_mark_broken (vq);
          emit_queue_stopped (self, vq);
        }
      return FALSE;
    }
  return maybe_start_queue (self, vq, error);
}

static void
retranslate_queues (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  for (guint i = 0; i < priv->num_queues; i++)
    {
      g_autoptr (GError) error = NULL;

      if (!vhu_device_run_on_queue (self, priv->queues[i], queue_retranslate, NULL, &error))
        g_signal_emit (self, signals[SIGNAL_PROTOCOL_ERROR], 0, error);
    }
}

static gboolean
queue_stop (VhostUserDevice *self, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  gboolean disable = GPOINTER_TO_INT (data);

  emit_queue_stopped (self, vq);
  if (disable)
    vhu_virtqueue_set_enabled (vq, FALSE);
  return TRUE;
}

static gboolean
queue_reset (VhostUserDevice *self, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  emit_queue_stopped (self, vq);
  vhu_virtqueue_reset (vq);
  vq->features = 0;
  return TRUE;
}

/* Full reset of the rings: stopped, disabled, nothing configured. */
static void
reset_queues (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  gboolean tearing_down = priv->tearing_down;

  priv->tearing_down = TRUE;
  for (guint i = 0; i < priv->num_queues; i++)
    vhu_device_run_on_queue (self, priv->queues[i], queue_reset, NULL, NULL);
  priv->tearing_down = tearing_down;
}

static gboolean
queue_set_inflight (VhostUserDevice *self, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  vhu_virtqueue_set_inflight (vq, data);
  return TRUE;
}

/* Takes @inflight (nullable): the in-flight buffer rings track their
 * requests in from their next start. */
static void
set_inflight (VhostUserDevice *self, VhuInflight *inflight)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  g_clear_pointer (&priv->inflight, vhu_inflight_unref);
  priv->inflight = inflight;
  for (guint i = 0; i < priv->num_queues; i++)
    vhu_device_run_on_queue (self, priv->queues[i], queue_set_inflight, inflight, NULL);
}

static void
set_status (VhostUserDevice *self, guint status)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (priv->status == status)
    return;
  priv->status = status;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_STATUS]);
}

static void
set_acked_features (VhostUserDevice *self, guint64 features)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (priv->acked_features == features)
    return;
  priv->acked_features = features;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_FEATURES]);
}

static void
set_acked_protocol_features (VhostUserDevice *self, guint64 features)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (priv->acked_protocol_features == features)
    return;
  priv->acked_protocol_features = features;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PROTOCOL_FEATURES]);
}

static void
drop_transfer (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  g_clear_pointer (&priv->transfer, vhu_state_transfer_free);
  if (priv->deferred != NULL)
    {
      vhu_message_clear (priv->deferred);
      g_clear_pointer (&priv->deferred, g_free);
    }
}

/* Everything a connection set up goes; the device is as new. */
static void
reset_connection_state (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  g_object_freeze_notify (G_OBJECT (self));
  priv->tearing_down = TRUE;
  reset_queues (self);
  drop_transfer (self);
  g_clear_pointer (&priv->backend, vhu_backend_channel_free);
  set_inflight (self, NULL);
  g_clear_pointer (&priv->log, vhu_dirty_log_unref);
  close_fd (&priv->log_call_fd);
  g_clear_pointer (&priv->mem, vhu_mem_table_unref);
  priv->offers_known = FALSE;
  set_acked_features (self, 0);
  set_acked_protocol_features (self, 0);
  priv->protocol_features_set = FALSE;
  set_status (self, 0);
  priv->tearing_down = FALSE;
  g_object_thaw_notify (G_OBJECT (self));
}

/* FALSE when the device reported an error while saying what it offers
 * (these vfuncs have no error of their own): nothing is remembered then. */
static gboolean
ensure_offers (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  VhostUserDeviceClass *klass = VHOST_USER_DEVICE_GET_CLASS (self);
  guint64 features, protocol_features;

  if (priv->offers_known)
    return TRUE;

  features = klass->get_features (self);
  protocol_features = klass->get_protocol_features (self);
  if (priv->reported != NULL)
    return FALSE;

  priv->offered_features = (features & ~TRANSPORT_FEATURES_MASK)
                           | (features & LIBRARY_TRANSPORT_FEATURES) | ALWAYS_OFFERED_FEATURES;
  priv->offered_protocol_features =
    protocol_features & (LIBRARY_PROTOCOL_FEATURES | VFUNC_PROTOCOL_FEATURES);
  priv->offers_known = TRUE;
  return TRUE;
}

static gboolean
require_protocol_feature (VhostUserDevice *self,
                          const VhuMessage *msg,
                          VhostUserProtocolFeature feature,
                          GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (priv->acked_protocol_features & BIT (feature))
    return TRUE;
  /* QEMU 7.2 reconnects some devices (vhost-user-rng, -gpio, ...) without
   * negotiating again: it uses what the previous back-end acknowledged.
   * A front-end that never sent SET_PROTOCOL_FEATURES on this connection
   * may use what the device offers; one that negotiated is held to it. */
  if (!priv->protocol_features_set && ensure_offers (self)
      && (priv->offered_protocol_features & BIT (feature)))
    {
      g_debug ("%s without protocol negotiation on this connection: taken as offered",
               vhu_request_name (msg->hdr.request));
      return TRUE;
    }
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("%s needs protocol feature %s, which was not negotiated"),
               vhu_request_name (msg->hdr.request),
               g_enum_to_string (VHOST_USER_TYPE_PROTOCOL_FEATURE, feature));
  return FALSE;
}

static VhostUserVirtqueue *
lookup_queue (VhostUserDevice *self, const VhuMessage *msg, guint32 index, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (index < priv->num_queues)
    return priv->queues[index];
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
               _("%s: queue %u does not exist (the device has %u)"),
               vhu_request_name (msg->hdr.request), index, priv->num_queues);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Request handlers: TRUE on success; a reply of their own goes in @reply   */

typedef gboolean (*Handler) (VhostUserDevice *self,
                             VhuMessage *msg,
                             VhuMessage *reply,
                             GError **error);

static gboolean
handle_get_features (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  vhu_message_init_reply_u64 (reply, msg, PRIV (self)->offered_features);
  return TRUE;
}

static gboolean
handle_set_features (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  guint64 features = msg->payload.u64;
  guint64 unknown = features & ~priv->offered_features;
  gboolean running = FALSE;

  for (guint i = 0; i < priv->num_queues; i++)
    running |= priv->queues[i]->started;

  if (unknown != 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_FEATURES acknowledges features that were never offered "
                     "(0x%" G_GINT64_MODIFIER "x)"),
                   unknown);
      priv->close_after_reply = TRUE;
      return FALSE;
    }
  if (!(features & BIT (VHOST_USER_FEATURE_VERSION_1)))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
                   _("SET_FEATURES without VERSION_1: legacy virtio is not supported"));
      priv->close_after_reply = TRUE;
      return FALSE;
    }
  /* Live migration toggles LOG_ALL on running rings; nothing else may
   * change under them. */
  if (running && ((features ^ priv->acked_features) & ~BIT (VHOST_USER_FEATURE_LOG_ALL)))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("SET_FEATURES changes features while rings are running"));
      return FALSE;
    }

  set_acked_features (self, features);
  update_queue_logs (self);

  /* Without protocol features there is no SET_VRING_ENABLE: rings are
   * enabled at once. */
  if (!(features & BIT (VHOST_USER_FEATURE_PROTOCOL_FEATURES)))
    for (guint i = 0; i < priv->num_queues; i++)
      vhu_virtqueue_set_enabled (priv->queues[i], TRUE);

  g_signal_emit (self, signals[SIGNAL_FEATURES_NEGOTIATED], 0, features);
  return TRUE;
}

static gboolean
handle_set_owner (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  return TRUE;
}

static gboolean
handle_reset_owner (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  /* Deprecated; the spec recommends disabling the rings and nothing more. */
  for (guint i = 0; i < priv->num_queues; i++)
    vhu_device_run_on_queue (self, priv->queues[i], queue_stop, GINT_TO_POINTER (TRUE), NULL);
  return TRUE;
}

static gboolean
swap_mem_table (VhostUserDevice *self, VhuMemTable *table)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (table == NULL)
    return FALSE;
  g_clear_pointer (&priv->mem, vhu_mem_table_unref);
  priv->mem = table;
  retranslate_queues (self);
  return TRUE;
}

static gboolean
handle_set_mem_table (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  int fds[VHU_MEM_TABLE_MAX_REGIONS];
  guint n = msg->payload.memory.nregions;

  for (guint i = 0; i < n; i++)
    fds[i] = vhu_message_steal_fd (msg, i);
  return swap_mem_table (self, vhu_mem_table_new_from_descs (msg->payload.memory.regions, fds, n,
                                                             VHU_MEM_TABLE_MAX_REGIONS, error));
}

static gboolean
handle_add_mem_reg (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autoptr (VhuMemTable) empty = NULL;
  int fd = vhu_message_steal_fd (msg, 0);

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS, error))
    {
      close (fd);
      return FALSE;
    }
  if (priv->mem == NULL)
    empty = vhu_mem_table_new_empty ();
  return swap_mem_table (self, vhu_mem_table_add (priv->mem != NULL ? priv->mem : empty,
                                                  &msg->payload.mem_reg.region, fd,
                                                  VHU_MAX_MEM_SLOTS, error));
}

static gboolean
handle_rem_mem_reg (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  /* An fd, if the front-end passed one, is closed unused with the message. */
  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS, error))
    return FALSE;
  if (priv->mem == NULL)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("REM_MEM_REG: there is no memory region to remove"));
      return FALSE;
    }
  return swap_mem_table (self, vhu_mem_table_remove (priv->mem, &msg->payload.mem_reg.region, error));
}

static gboolean
handle_get_max_mem_slots (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS, error))
    return FALSE;
  vhu_message_init_reply_u64 (reply, msg, VHU_MAX_MEM_SLOTS);
  return TRUE;
}

/* The log must cover all of guest memory and the used rings it logs. */
static gboolean
check_log_coverage (VhostUserDevice *self, VhuDirtyLog *log, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  guint64 end = priv->mem != NULL ? vhu_mem_table_get_guest_end (priv->mem) : 0;

  if (end > 0 && !vhu_dirty_log_covers (log, 0, end))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_LOG_BASE: a log of %" G_GUINT64_FORMAT " bytes does not cover guest "
                     "memory up to 0x%" G_GINT64_MODIFIER "x"),
                   vhu_dirty_log_get_size (log), end);
      return FALSE;
    }
  for (guint i = 0; i < priv->num_queues; i++)
    {
      VhostUserVirtqueue *vq = priv->queues[i];

      if (vq->addr_set && vq->size != 0 && (vq->addr.flags & (1u << VHU_VRING_F_LOG))
          && !vhu_dirty_log_covers (log, vq->addr.log_guest_addr, 6ull + 8ull * vq->size))
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("SET_LOG_BASE: the log does not cover the used ring of queue %u"), i);
          return FALSE;
        }
    }
  return TRUE;
}

static gboolean
handle_set_log_base (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autoptr (VhuDirtyLog) log = NULL;
  int fd = vhu_message_steal_fd (msg, 0);

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_LOG_SHMFD, error))
    {
      close (fd);
      return FALSE;
    }
  log = vhu_dirty_log_new (fd, msg->payload.log.mmap_size, msg->payload.log.mmap_offset, error);
  if (log == NULL || !check_log_coverage (self, log, error))
    return FALSE;

  g_clear_pointer (&priv->log, vhu_dirty_log_unref);
  priv->log = g_steal_pointer (&log);
  update_queue_logs (self);
  vhu_message_init_reply_u64 (reply, msg, 0);
  return TRUE;
}

static gboolean
handle_set_log_fd (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  close_fd (&priv->log_call_fd);
  priv->log_call_fd = vhu_message_steal_fd (msg, 0);
  update_queue_logs (self);
  return TRUE;
}

static gboolean
handle_set_vring_num (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  VhostUserVirtqueue *vq = lookup_queue (self, msg, msg->payload.state.index, error);
  guint32 num = msg->payload.state.num;
  guint old_size;

  if (vq == NULL)
    return FALSE;
  if (num == 0 || num > priv->max_queue_size || (num & (num - 1)) != 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_VRING_NUM: queue %u size %u is not a power of two from 1 to %u"),
                   vq->index, num, priv->max_queue_size);
      return FALSE;
    }
  if (vq->started)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("SET_VRING_NUM: queue %u is running"), vq->index);
      return FALSE;
    }
  if (priv->inflight != NULL && vq->index < vhu_inflight_get_num_queues (priv->inflight)
      && num != vhu_inflight_get_queue_size (priv->inflight))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_VRING_NUM: queue %u size %u differs from the in-flight buffer's %u"),
                   vq->index, num, vhu_inflight_get_queue_size (priv->inflight));
      return FALSE;
    }
  old_size = vq->size;
  vhu_virtqueue_set_size (vq, num);
  if (!vhu_virtqueue_translate (vq, priv->mem, error))
    {
      /* Refused: the ring keeps the size it had. */
      vhu_virtqueue_set_size (vq, old_size);
      vhu_virtqueue_translate (vq, priv->mem, NULL);
      return FALSE;
    }
  return maybe_start_queue (self, vq, error);
}

static gboolean
handle_set_vring_addr (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  VhostUserVirtqueue *vq = lookup_queue (self, msg, msg->payload.addr.index, error);
  VhuVringAddr old;
  gboolean old_set;

  if (vq == NULL)
    return FALSE;

  old = vq->addr;
  old_set = vq->addr_set;
  vq->addr = msg->payload.addr;
  vq->addr_set = TRUE;
  if (!vhu_virtqueue_translate (vq, priv->mem, error)
      || (priv->log != NULL && !check_log_coverage (self, priv->log, error)))
    {
      /* Refused: the ring keeps what it had. */
      vq->addr = old;
      vq->addr_set = old_set;
      vhu_virtqueue_translate (vq, priv->mem, NULL);
      return FALSE;
    }
  vhu_virtqueue_set_log (vq, active_log (self), priv->log_call_fd);
  return maybe_start_queue (self, vq, error);
}

static gboolean
handle_set_vring_base (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserVirtqueue *vq = lookup_queue (self, msg, msg->payload.state.index, error);

  if (vq == NULL)
    return FALSE;
  if (msg->payload.state.num > G_MAXUINT16)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_VRING_BASE: queue %u base %u is larger than 65535"), vq->index,
                   msg->payload.state.num);
      return FALSE;
    }
  if (vq->started)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("SET_VRING_BASE: queue %u is running"), vq->index);
      return FALSE;
    }
  vq->last_avail_idx = msg->payload.state.num;
  return TRUE;
}

static void
init_vring_base_reply (VhuMessage *reply, const VhuMessage *msg, VhostUserVirtqueue *vq)
{
  vhu_message_init_reply (reply, msg, sizeof (VhuVringState));
  reply->payload.state.index = vq->index;
  reply->payload.state.num = vq->last_avail_idx;
}

static void send_reply_for (VhostUserDevice *self,
                            VhuMessage *msg,
                            VhuMessage *reply,
                            gboolean ok,
                            GError *error);

/* On the device's thread: the queue has drained; answer GET_VRING_BASE. */
static gboolean
finish_get_vring_base (gpointer user_data)
{
  VhostUserVirtqueue *vq = user_data;
  VhostUserDevice *self = vq->device;
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autofree VhuMessage *msg = g_steal_pointer (&priv->deferred);
  g_autofree VhuMessage *reply = g_new (VhuMessage, 1);

  if (msg != NULL)
    {
      vhu_message_init (reply);
      init_vring_base_reply (reply, msg, vq);
      send_reply_for (self, msg, reply, TRUE, NULL);
      if (priv->conn != NULL)
        vhu_connection_resume (priv->conn);
    }
  g_object_unref (self);
  return G_SOURCE_REMOVE;
}

/* On the queue's thread: the last element popped before GET_VRING_BASE came
 * back, so the base is consistent with the used ring. */
static void
on_queue_drained (VhostUserVirtqueue *vq, gpointer user_data)
{
  VhostUserDevice *self = user_data;

  vhu_virtqueue_set_drained_func (vq, NULL, NULL);
  vhu_virtqueue_stop_ring (vq);
  g_object_ref (self);
  g_main_context_invoke (PRIV (self)->context, finish_get_vring_base, vq);
}

static gboolean
handle_get_vring_base (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  VhostUserVirtqueue *vq = lookup_queue (self, msg, msg->payload.state.index, error);

  if (vq == NULL)
    return FALSE;

  /* Stops the ring: no more kicks until a new SET_VRING_KICK. */
  vhu_virtqueue_set_kick_fd (vq, -1, NULL, NULL);
  vq->broken = FALSE;

  if (vq->started)
    {
      vhu_virtqueue_set_started (vq, FALSE);
      vq->stopping = TRUE;
      g_signal_emit (self, signals[SIGNAL_QUEUE_STOPPED], 0, vq);
      if (vq->ring.inuse > 0 && vq->ring.desc != NULL)
        {
          /* Answer once the device has pushed what it still holds. */
          priv->defer_reply = TRUE;
          vhu_virtqueue_set_drained_func (vq, on_queue_drained, self);
          return TRUE;
        }
      vhu_virtqueue_stop_ring (vq);
    }

  init_vring_base_reply (reply, msg, vq);
  return TRUE;
}

static gboolean
handle_set_vring_fd (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  guint32 index = msg->payload.u64 & VHU_VRING_INDEX_MASK;
  VhostUserVirtqueue *vq = lookup_queue (self, msg, index, error);
  int fd;

  if (vq == NULL)
    return FALSE;

  fd = vhu_message_steal_fd (msg, 0); /* -1 with the NOFD flag */
  switch (msg->hdr.request)
    {
    case VHOST_USER_REQUEST_SET_VRING_KICK:
      vq->broken = FALSE;
      vhu_virtqueue_set_kick_fd (vq, fd, on_queue_kick, self);
      if (!maybe_start_queue (self, vq, error))
        return FALSE;
      break;
    case VHOST_USER_REQUEST_SET_VRING_CALL:
      vhu_virtqueue_set_call_fd (vq, fd);
      break;
    default:
      vhu_virtqueue_set_err_fd (vq, fd);
      break;
    }
  return TRUE;
}

static gboolean
handle_get_protocol_features (VhostUserDevice *self,
                              VhuMessage *msg,
                              VhuMessage *reply,
                              GError **error)
{
  vhu_message_init_reply_u64 (reply, msg, PRIV (self)->offered_protocol_features);
  return TRUE;
}

static gboolean
handle_set_protocol_features (VhostUserDevice *self,
                              VhuMessage *msg,
                              VhuMessage *reply,
                              GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  guint64 unknown = msg->payload.u64 & ~priv->offered_protocol_features;

  if (unknown != 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_PROTOCOL_FEATURES acknowledges protocol features that were never "
                     "offered (0x%" G_GINT64_MODIFIER "x)"),
                   unknown);
      priv->close_after_reply = TRUE;
      return FALSE;
    }
  set_acked_protocol_features (self, msg->payload.u64);
  priv->protocol_features_set = TRUE;
  return TRUE;
}

static gboolean
handle_get_queue_num (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_MQ, error))
    return FALSE;
  vhu_message_init_reply_u64 (reply, msg, PRIV (self)->num_queues);
  return TRUE;
}

static gboolean
handle_set_vring_enable (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserVirtqueue *vq = lookup_queue (self, msg, msg->payload.state.index, error);

  if (vq == NULL)
    return FALSE;
  if (msg->payload.state.num > 1)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_VRING_ENABLE: queue %u: %u is neither 0 nor 1"), vq->index,
                   msg->payload.state.num);
      return FALSE;
    }
  vhu_virtqueue_set_enabled (vq, msg->payload.state.num);
  return TRUE;
}

static gboolean
handle_send_rarp (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  g_autoptr (GBytes) mac = NULL;

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_RARP, error))
    return FALSE;
  mac = g_bytes_new (msg->payload.bytes, 6);
  if (!VHOST_USER_DEVICE_GET_CLASS (self)->send_rarp (self, mac, error))
    {
      ensure_error (error, "send a RARP");
      return FALSE;
    }
  return TRUE;
}

static gboolean
handle_net_set_mtu (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  guint64 mtu = msg->payload.u64;

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_NET_MTU, error))
    return FALSE;
  if (mtu < 68 || mtu > G_MAXUINT16)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("NET_SET_MTU: %" G_GUINT64_FORMAT " is not an MTU from 68 to 65535"), mtu);
      return FALSE;
    }
  if (!VHOST_USER_DEVICE_GET_CLASS (self)->set_mtu (self, mtu, error))
    {
      ensure_error (error, "set the MTU");
      return FALSE;
    }
  return TRUE;
}

static gboolean
handle_set_backend_req_fd (VhostUserDevice *self,
                           VhuMessage *msg,
                           VhuMessage *reply,
                           GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_BACKEND_REQ, error))
    return FALSE;
  g_clear_pointer (&priv->backend, vhu_backend_channel_free);
  priv->backend = vhu_backend_channel_new (vhu_message_steal_fd (msg, 0), priv->context);
  return TRUE;
}

static gboolean
handle_get_config (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  const VhuConfigMsg *config = &msg->payload.config;
  g_autoptr (GBytes) bytes = NULL;
  gsize len;

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_CONFIG, error))
    return FALSE;
  if (config->size == 0 || config->offset > VHU_MAX_CONFIG_SIZE - config->size)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("GET_CONFIG: %u bytes at offset %u are outside the config space"),
                   config->size, config->offset);
      return FALSE;
    }

  bytes = VHOST_USER_DEVICE_GET_CLASS (self)->get_config (self, config->offset, config->size, error);
  if (bytes == NULL)
    {
      ensure_error (error, "read its config space");
      return FALSE;
    }
  len = g_bytes_get_size (bytes);
  if (len != config->size)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED,
                   _("GET_CONFIG: the device returned %" G_GSIZE_FORMAT " bytes, not %u"), len,
                   config->size);
      return FALSE;
    }

  vhu_message_init_reply (reply, msg, VHU_CONFIG_HEADER_SIZE + config->size);
  reply->payload.config.offset = config->offset;
  reply->payload.config.size = config->size;
  reply->payload.config.flags = config->flags;
  memcpy (reply->payload.config.region, g_bytes_get_data (bytes, NULL), len);
  return TRUE;
}

static gboolean
handle_set_config (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  const VhuConfigMsg *config = &msg->payload.config;
  g_autoptr (GBytes) bytes = NULL;

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_CONFIG, error))
    return FALSE;
  if (config->size == 0 || config->offset > VHU_MAX_CONFIG_SIZE - config->size
      || config->flags > VHOST_USER_CONFIG_FLAGS_MIGRATION)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_CONFIG: %u bytes at offset %u with flags %u are not a valid write"),
                   config->size, config->offset, config->flags);
      return FALSE;
    }

  bytes = g_bytes_new (config->region, config->size);
  if (!VHOST_USER_DEVICE_GET_CLASS (self)->set_config (self, config->offset, bytes, config->flags,
                                                       error))
    {
      ensure_error (error, "write its config space");
      return FALSE;
    }
  return TRUE;
}

static gboolean
handle_get_inflight_fd (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  const VhuInflightMsg *req = &msg->payload.inflight;
  g_autoptr (VhuInflight) inflight = NULL;
  int fd = -1;

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_INFLIGHT_SHMFD, error))
    return FALSE;
  if (req->num_queues > priv->num_queues || req->queue_size > priv->max_queue_size)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("GET_INFLIGHT_FD: %u queues of %u entries do not fit a device of %u queues "
                     "of at most %u"),
                   req->num_queues, req->queue_size, priv->num_queues, priv->max_queue_size);
      return FALSE;
    }
  inflight = vhu_inflight_new (req->num_queues, req->queue_size, FALSE, &fd, error);
  if (inflight == NULL)
    return FALSE;

  vhu_message_init_reply (reply, msg, msg->hdr.size);
  reply->payload.inflight.mmap_size = vhu_inflight_get_mmap_size (inflight);
  reply->payload.inflight.mmap_offset = 0;
  reply->payload.inflight.num_queues = req->num_queues;
  reply->payload.inflight.queue_size = req->queue_size;
  reply->payload.inflight.padding = 0;
  reply->fds[0] = fd;
  reply->n_fds = 1;

  set_inflight (self, g_steal_pointer (&inflight));
  return TRUE;
}

static gboolean
handle_set_inflight_fd (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  const VhuInflightMsg *req = &msg->payload.inflight;
  VhuInflight *inflight;
  int fd = vhu_message_steal_fd (msg, 0);

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_INFLIGHT_SHMFD, error))
    {
      close (fd);
      return FALSE;
    }
  if (req->num_queues > priv->num_queues || req->queue_size > priv->max_queue_size)
    {
      close (fd);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_INFLIGHT_FD: %u queues of %u entries do not fit a device of %u queues "
                     "of at most %u"),
                   req->num_queues, req->queue_size, priv->num_queues, priv->max_queue_size);
      return FALSE;
    }
  inflight = vhu_inflight_new_from_fd (fd, req->mmap_size, req->mmap_offset, req->num_queues,
                                       req->queue_size, FALSE, error);
  if (inflight == NULL)
    return FALSE;
  set_inflight (self, inflight);
  return TRUE;
}

static gboolean
handle_reset_device (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_RESET_DEVICE, error))
    return FALSE;
  reset_queues (self);
  /* Nothing is in flight after a reset: no request is handed out again. */
  if (PRIV (self)->inflight != NULL)
    vhu_inflight_reset (PRIV (self)->inflight);
  drop_transfer (self);
  set_acked_features (self, 0);
  set_status (self, 0);
  g_signal_emit (self, signals[SIGNAL_RESET], 0);
  return TRUE;
}

static gboolean
handle_set_status (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_STATUS, error))
    return FALSE;
  if (msg->payload.u64 > G_MAXUINT8)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("SET_STATUS: 0x%" G_GINT64_MODIFIER "x is not a device status"),
                   msg->payload.u64);
      return FALSE;
    }
  set_status (self, msg->payload.u64);
  return TRUE;
}

static gboolean
handle_get_status (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_STATUS, error))
    return FALSE;
  vhu_message_init_reply_u64 (reply, msg, PRIV (self)->status);
  return TRUE;
}

static gboolean
handle_get_shared_object (VhostUserDevice *self,
                          VhuMessage *msg,
                          VhuMessage *reply,
                          GError **error)
{
  g_autofree char *uuid = NULL;
  const guint8 *u = msg->payload.shared.uuid;
  gint fd;

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_SHARED_OBJECT, error))
    return FALSE;
  uuid = g_strdup_printf ("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                          u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
                          u[12], u[13], u[14], u[15]);
  fd = VHOST_USER_DEVICE_GET_CLASS (self)->get_shared_object (self, uuid, error);
  if (fd < 0)
    {
      ensure_error (error, "export a shared object");
      return FALSE;
    }
  vhu_message_init_reply_u64 (reply, msg, 0);
  reply->fds[0] = fd;
  reply->n_fds = 1;
  return TRUE;
}

static gboolean
handle_set_device_state_fd (VhostUserDevice *self,
                            VhuMessage *msg,
                            VhuMessage *reply,
                            GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  VhostUserDeviceClass *klass = VHOST_USER_DEVICE_GET_CLASS (self);
  int fd = vhu_message_steal_fd (msg, 0);

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE, error))
    {
      close (fd);
      return FALSE;
    }
  for (guint i = 0; i < priv->num_queues; i++)
    if (priv->queues[i]->started)
      {
        close (fd);
        g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                     _("SET_DEVICE_STATE_FD: queue %u is running; the device must be suspended"),
                     i);
        return FALSE;
      }

  drop_transfer (self);
  priv->transfer_direction = msg->payload.device_state.direction;
  if (priv->transfer_direction == VHOST_USER_TRANSFER_DIRECTION_SAVE)
    {
      g_autoptr (GBytes) state = klass->save_state (self, error);

      if (state == NULL)
        {
          close (fd);
          ensure_error (error, "save its state");
          return FALSE;
        }
      priv->transfer = vhu_state_transfer_new_save (fd, state, priv->context);
    }
  else
    priv->transfer = vhu_state_transfer_new_load (fd, priv->context);

  /* Status 0, and no fd of our own: the front-end's channel is used. */
  vhu_message_init_reply_u64 (reply, msg, VHU_DEVICE_STATE_NOFD);
  return TRUE;
}

static gboolean
finish_check_device_state (VhostUserDevice *self, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autoptr (VhuStateTransfer) transfer = g_steal_pointer (&priv->transfer);
  g_autoptr (GBytes) loaded = NULL;

  if (!vhu_state_transfer_finish (transfer, &loaded, error))
    return FALSE;
  if (priv->transfer_direction == VHOST_USER_TRANSFER_DIRECTION_LOAD
      && !VHOST_USER_DEVICE_GET_CLASS (self)->load_state (self, loaded, error))
    {
      ensure_error (error, "load its state");
      return FALSE;
    }
  return TRUE;
}

static void
on_transfer_done (VhuStateTransfer *transfer, gpointer user_data)
{
  VhostUserDevice *self = user_data;
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autoptr (GError) error = NULL;
  g_autofree VhuMessage *msg = g_steal_pointer (&priv->deferred);
  g_autofree VhuMessage *reply = g_new (VhuMessage, 1);
  gboolean ok;

  if (msg == NULL)
    return;
  vhu_message_init (reply);
  ok = finish_check_device_state (self, &error);
  if (ok)
    vhu_message_init_reply_u64 (reply, msg, 0);
  send_reply_for (self, msg, reply, ok, error);
  vhu_message_clear (msg);
  if (priv->conn != NULL)
    vhu_connection_resume (priv->conn);
}

static gboolean
handle_check_device_state (VhostUserDevice *self,
                           VhuMessage *msg,
                           VhuMessage *reply,
                           GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  if (!require_protocol_feature (self, msg, VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE, error))
    return FALSE;
  if (priv->transfer == NULL)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("CHECK_DEVICE_STATE: no device state transfer was set up"));
      return FALSE;
    }
  if (!vhu_state_transfer_is_done (priv->transfer))
    {
      /* Answer once the transfer ends. */
      priv->defer_reply = TRUE;
      vhu_state_transfer_set_done_func (priv->transfer, on_transfer_done, self);
      return TRUE;
    }
  if (!finish_check_device_state (self, error))
    return FALSE;
  vhu_message_init_reply_u64 (reply, msg, 0);
  return TRUE;
}

static gboolean
handle_unsupported (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
               _("%s is not supported by this device"), vhu_request_name (msg->hdr.request));
  return FALSE;
}

static Handler
lookup_handler (guint32 request)
{
  switch ((VhostUserRequest) request)
    {
    case VHOST_USER_REQUEST_GET_FEATURES:
      return handle_get_features;
    case VHOST_USER_REQUEST_SET_FEATURES:
      return handle_set_features;
    case VHOST_USER_REQUEST_SET_OWNER:
      return handle_set_owner;
    case VHOST_USER_REQUEST_RESET_OWNER:
      return handle_reset_owner;
    case VHOST_USER_REQUEST_SET_MEM_TABLE:
      return handle_set_mem_table;
    case VHOST_USER_REQUEST_SET_LOG_BASE:
      return handle_set_log_base;
    case VHOST_USER_REQUEST_SET_LOG_FD:
      return handle_set_log_fd;
    case VHOST_USER_REQUEST_SET_VRING_NUM:
      return handle_set_vring_num;
    case VHOST_USER_REQUEST_SET_VRING_ADDR:
      return handle_set_vring_addr;
    case VHOST_USER_REQUEST_SET_VRING_BASE:
      return handle_set_vring_base;
    case VHOST_USER_REQUEST_GET_VRING_BASE:
      return handle_get_vring_base;
    case VHOST_USER_REQUEST_SET_VRING_KICK:
    case VHOST_USER_REQUEST_SET_VRING_CALL:
    case VHOST_USER_REQUEST_SET_VRING_ERR:
      return handle_set_vring_fd;
    case VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES:
      return handle_get_protocol_features;
    case VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES:
      return handle_set_protocol_features;
    case VHOST_USER_REQUEST_GET_QUEUE_NUM:
      return handle_get_queue_num;
    case VHOST_USER_REQUEST_SET_VRING_ENABLE:
      return handle_set_vring_enable;
    case VHOST_USER_REQUEST_SEND_RARP:
      return handle_send_rarp;
    case VHOST_USER_REQUEST_NET_SET_MTU:
      return handle_net_set_mtu;
    case VHOST_USER_REQUEST_SET_BACKEND_REQ_FD:
      return handle_set_backend_req_fd;
    case VHOST_USER_REQUEST_GET_CONFIG:
      return handle_get_config;
    case VHOST_USER_REQUEST_SET_CONFIG:
      return handle_set_config;
    case VHOST_USER_REQUEST_GET_INFLIGHT_FD:
      return handle_get_inflight_fd;
    case VHOST_USER_REQUEST_SET_INFLIGHT_FD:
      return handle_set_inflight_fd;
    case VHOST_USER_REQUEST_RESET_DEVICE:
      return handle_reset_device;
    case VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS:
      return handle_get_max_mem_slots;
    case VHOST_USER_REQUEST_ADD_MEM_REG:
      return handle_add_mem_reg;
    case VHOST_USER_REQUEST_REM_MEM_REG:
      return handle_rem_mem_reg;
    case VHOST_USER_REQUEST_SET_STATUS:
      return handle_set_status;
    case VHOST_USER_REQUEST_GET_STATUS:
      return handle_get_status;
    case VHOST_USER_REQUEST_GET_SHARED_OBJECT:
      return handle_get_shared_object;
    case VHOST_USER_REQUEST_SET_DEVICE_STATE_FD:
      return handle_set_device_state_fd;
    case VHOST_USER_REQUEST_CHECK_DEVICE_STATE:
      return handle_check_device_state;

    /* Not offered, so a front-end sending them breaks the negotiation:
     * IOTLB needs ACCESS_PLATFORM, SET_VRING_ENDIAN CROSS_ENDIAN, the crypto
     * requests CRYPTO_SESSION, the postcopy ones PAGEFAULT, VRING_KICK
     * INBAND_NOTIFICATIONS; GPU_SET_SOCKET is for vhost-user-gpu only. */
    case VHOST_USER_REQUEST_IOTLB_MSG:
    case VHOST_USER_REQUEST_SET_VRING_ENDIAN:
    case VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION:
    case VHOST_USER_REQUEST_CLOSE_CRYPTO_SESSION:
    case VHOST_USER_REQUEST_POSTCOPY_ADVISE:
    case VHOST_USER_REQUEST_POSTCOPY_LISTEN:
    case VHOST_USER_REQUEST_POSTCOPY_END:
    case VHOST_USER_REQUEST_GPU_SET_SOCKET:
    case VHOST_USER_REQUEST_VRING_KICK:
    case VHOST_USER_REQUEST_NONE:
    default:
      return handle_unsupported;
    }
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                 */

static void
send_reply_for (VhostUserDevice *self,
                VhuMessage *msg,
                VhuMessage *reply,
                gboolean ok,
                GError *error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autoptr (GError) send_error = NULL;

  if (!ok)
    {
      g_signal_emit (self, signals[SIGNAL_PROTOCOL_ERROR], 0, error);
      vhu_message_clear (reply);
      if (vhu_message_wants_reply (msg, priv->acked_protocol_features))
        vhu_message_init_error_reply (reply, msg);
    }
  else if (!(reply->hdr.flags & VHU_FLAG_REPLY) && (msg->hdr.flags & VHU_FLAG_NEED_REPLY))
    vhu_message_init_reply_u64 (reply, msg, 0);

  if ((reply->hdr.flags & VHU_FLAG_REPLY) && priv->conn != NULL)
    {
      if (!vhu_connection_send (priv->conn, reply, &send_error))
        g_debug ("could not reply to %s: %s", vhu_request_name (msg->hdr.request),
                 send_error->message);
    }
  vhu_message_clear (reply);
}

static void on_connection_closed (VhuConnection *conn, const GError *error, gpointer user_data);

/* The queue a ring request names, or -1 for a device-wide request. The
 * index is checked by the handler. */
static gint64
request_queue_index (const VhuMessage *msg)
{
  switch (msg->hdr.request)
    {
    case VHOST_USER_REQUEST_SET_VRING_NUM:
    case VHOST_USER_REQUEST_SET_VRING_BASE:
    case VHOST_USER_REQUEST_GET_VRING_BASE:
    case VHOST_USER_REQUEST_SET_VRING_ENABLE:
      return msg->payload.state.index;
    case VHOST_USER_REQUEST_SET_VRING_ADDR:
      return msg->payload.addr.index;
    case VHOST_USER_REQUEST_SET_VRING_KICK:
    case VHOST_USER_REQUEST_SET_VRING_CALL:
    case VHOST_USER_REQUEST_SET_VRING_ERR:
      return msg->payload.u64 & VHU_VRING_INDEX_MASK;
    default:
      return -1;
    }
}

typedef struct
{
  VhuMessage *msg;
  VhuMessage *reply;
} Request;

static gboolean
queue_handle (VhostUserDevice *self, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  Request *request = data;

  return lookup_handler (request->msg->hdr.request) (self, request->msg, request->reply, error);
}

/* A ring request runs where its queue runs. */
static gboolean
dispatch (VhostUserDevice *self, VhuMessage *msg, VhuMessage *reply, GError **error)
{
  VhostUserDevicePrivate *priv = PRIV (self);
  gint64 index = request_queue_index (msg);
  Request request = { msg, reply };

  if (index < 0 || index >= priv->num_queues)
    return lookup_handler (msg->hdr.request) (self, msg, reply, error);
  return vhu_device_run_on_queue (self, priv->queues[index], queue_handle, &request, error);
}

static void
on_message (VhuConnection *conn, VhuMessage *msg, gpointer user_data)
{
  VhostUserDevice *self = user_data;
  VhostUserDevicePrivate *priv = PRIV (self);
  g_autoptr (GError) error = NULL;
  g_autofree VhuMessage *reply = g_new (VhuMessage, 1);
  gboolean ok;

  g_object_ref (self);
  vhu_message_init (reply);

  priv->defer_reply = FALSE;
  priv->in_request = TRUE;
  if (!ensure_offers (self))
    {
      /* Without its offers the device cannot negotiate anything. */
      ok = FALSE;
      priv->close_after_reply = TRUE;
    }
  else
    ok = vhu_message_validate_request (msg, priv->acked_protocol_features, &error)
         && dispatch (self, msg, reply, &error);
  priv->in_request = FALSE;

  /* A failure reported where no error could be returned fails the request
   * too; the first error wins. */
  if (priv->reported != NULL)
    {
      ok = FALSE;
      priv->defer_reply = FALSE;
      if (error == NULL)
        error = g_steal_pointer (&priv->reported);
      g_clear_error (&priv->reported);
    }

  if (ok && priv->defer_reply)
    {
      /* Read no other message until the reply is sent. */
      priv->deferred = g_memdup2 (msg, sizeof *msg);
      msg->n_fds = 0;
      vhu_connection_pause (conn);
    }
  else
    send_reply_for (self, msg, reply, ok, error);

  if (priv->close_after_reply && priv->conn == conn)
    {
      g_autoptr (GError) close_error = NULL;

      priv->close_after_reply = FALSE;
      g_set_error (&close_error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("Feature negotiation failed; closing the connection"));
      vhu_connection_close (conn);
      on_connection_closed (conn, close_error, self);
    }
  g_object_unref (self);
}

static void
on_connection_closed (VhuConnection *conn, const GError *error, gpointer user_data)
{
  VhostUserDevice *self = user_data;
  VhostUserDevicePrivate *priv = PRIV (self);

  if (priv->conn != conn)
    return;

  g_object_ref (self);
  if (error != NULL && !g_error_matches (error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED))
    g_signal_emit (self, signals[SIGNAL_PROTOCOL_ERROR], 0, error);

  reset_connection_state (self);
  g_clear_pointer (&priv->conn, vhu_connection_unref);
  g_signal_emit (self, signals[SIGNAL_RESET], 0);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTED]);
  g_signal_emit (self, signals[SIGNAL_DISCONNECTED], 0);
  g_object_unref (self);
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

static void
vhost_user_device_constructed (GObject *object)
{
  VhostUserDevice *self = VHOST_USER_DEVICE (object);
  VhostUserDevicePrivate *priv = PRIV (self);

  G_OBJECT_CLASS (vhost_user_device_parent_class)->constructed (object);

  priv->queues = g_new0 (VhostUserVirtqueue *, priv->num_queues);
  for (guint i = 0; i < priv->num_queues; i++)
    priv->queues[i] = vhu_virtqueue_new (self, i, priv->context);
}

typedef struct
{
  VhostUserDevice *self;
  VhostUserVirtqueue *vq;
} QueueHold;

static gboolean
queue_hold_reset (gpointer data)
{
  QueueHold *hold = data;

  vhu_virtqueue_reset (hold->vq);
  return G_SOURCE_REMOVE;
}

static void
queue_hold_free (gpointer data)
{
  QueueHold *hold = data;

  g_object_unref (hold->vq);
  g_object_unref (hold->self);
  g_free (hold);
}

/* Dispose never waits for a queue's thread: it may run under a language
 * binding's lock (Python's GIL) that the thread needs for the device's
 * handlers. A queue whose thread is running is reset there, later, and the
 * device stays alive until then, as a kick may still come. */
static void
reset_queue_without_waiting (VhostUserDevice *self, VhostUserVirtqueue *vq)
{
  QueueHold *hold;

  if (vq->context == PRIV (self)->context || g_main_context_is_owner (vq->context))
    {
      vhu_virtqueue_reset (vq);
      return;
    }
  if (g_main_context_acquire (vq->context))
    {
      vhu_virtqueue_reset (vq);
      g_main_context_release (vq->context);
      return;
    }
  hold = g_new (QueueHold, 1);
  hold->self = g_object_ref (self);
  hold->vq = g_object_ref (vq);
  g_main_context_invoke_full (vq->context, G_PRIORITY_HIGH, queue_hold_reset, hold,
                              queue_hold_free);
}

static void
vhost_user_device_dispose (GObject *object)
{
  VhostUserDevice *self = VHOST_USER_DEVICE (object);
  VhostUserDevicePrivate *priv = PRIV (self);

  if (priv->conn != NULL)
    {
      vhu_connection_close (priv->conn);
      g_clear_pointer (&priv->conn, vhu_connection_unref);
    }
  drop_transfer (self);
  g_clear_pointer (&priv->backend, vhu_backend_channel_free);
  g_clear_pointer (&priv->inflight, vhu_inflight_free);
  g_clear_pointer (&priv->log, vhu_dirty_log_unref);
  close_fd (&priv->log_call_fd);
  g_clear_pointer (&priv->mem, vhu_mem_table_unref);
  g_clear_error (&priv->reported);
  if (priv->queues != NULL)
    for (guint i = 0; i < priv->num_queues; i++)
      if (priv->queues[i] != NULL)
        reset_queue_without_waiting (self, priv->queues[i]);

  G_OBJECT_CLASS (vhost_user_device_parent_class)->dispose (object);
}

static void
vhost_user_device_finalize (GObject *object)
{
  VhostUserDevicePrivate *priv = PRIV (VHOST_USER_DEVICE (object));

  if (priv->queues != NULL)
    for (guint i = 0; i < priv->num_queues; i++)
      g_clear_object (&priv->queues[i]);
  g_free (priv->queues);
  g_main_context_unref (priv->context);

  G_OBJECT_CLASS (vhost_user_device_parent_class)->finalize (object);
}

static void
vhost_user_device_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  VhostUserDevice *self = VHOST_USER_DEVICE (object);
  VhostUserDevicePrivate *priv = PRIV (self);

  switch (prop_id)
    {
    case PROP_NUM_QUEUES:
      g_value_set_uint (value, priv->num_queues);
      break;
    case PROP_MAX_QUEUE_SIZE:
      g_value_set_uint (value, priv->max_queue_size);
      break;
    case PROP_CONNECTED:
      g_value_set_boolean (value, priv->conn != NULL);
      break;
    case PROP_FEATURES:
      g_value_set_uint64 (value, priv->acked_features);
      break;
    case PROP_PROTOCOL_FEATURES:
      g_value_set_uint64 (value, priv->acked_protocol_features);
      break;
    case PROP_STATUS:
      g_value_set_uint (value, priv->status);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_device_set_property (GObject *object,
                                guint prop_id,
                                const GValue *value,
                                GParamSpec *pspec)
{
  VhostUserDevicePrivate *priv = PRIV (VHOST_USER_DEVICE (object));

  switch (prop_id)
    {
    case PROP_NUM_QUEUES:
      priv->num_queues = g_value_get_uint (value);
      break;
    case PROP_MAX_QUEUE_SIZE:
      priv->max_queue_size = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_device_class_init (VhostUserDeviceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");

  object_class->constructed = vhost_user_device_constructed;
  object_class->dispose = vhost_user_device_dispose;
  object_class->finalize = vhost_user_device_finalize;
  object_class->get_property = vhost_user_device_get_property;
  object_class->set_property = vhost_user_device_set_property;

  klass->get_features = real_get_features;
  klass->get_protocol_features = real_get_protocol_features;
  klass->get_config = real_get_config;
  klass->set_config = real_set_config;
  klass->set_mtu = real_set_mtu;
  klass->send_rarp = real_send_rarp;
  klass->save_state = real_save_state;
  klass->load_state = real_load_state;
  klass->get_shared_object = real_get_shared_object;
  klass->protocol_error = real_protocol_error;
  klass->features_negotiated = real_features_negotiated;
  klass->queue_started = real_queue_event;
  klass->queue_stopped = real_queue_event;
  klass->queue_kicked = real_queue_event;
  klass->reset = real_device_event;
  klass->disconnected = real_device_event;

  /**
   * VhostUserDevice:num-queues:
   *
   * How many virtqueues the device has (what `GET_QUEUE_NUM` answers).
   *
   * Since: 1.0
   */
  properties[PROP_NUM_QUEUES] =
    g_param_spec_uint ("num-queues", NULL, NULL, 1, 256, 1,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserDevice:max-queue-size:
   *
   * The largest ring the front-end may set up (`SET_VRING_NUM`).
   *
   * Since: 1.0
   */
  properties[PROP_MAX_QUEUE_SIZE] =
    g_param_spec_uint ("max-queue-size", NULL, NULL, 1, VHU_MAX_QUEUE_SIZE, DEFAULT_MAX_QUEUE_SIZE,
                       G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserDevice:connected:
   *
   * Whether a front-end is connected.
   *
   * Since: 1.0
   */
  properties[PROP_CONNECTED] =
    g_param_spec_boolean ("connected", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserDevice:features:
   *
   * The virtio feature bits the front-end acknowledged (`SET_FEATURES`).
   *
   * Since: 1.0
   */
  properties[PROP_FEATURES] =
    g_param_spec_uint64 ("features", NULL, NULL, 0, G_MAXUINT64, 0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserDevice:protocol-features:
   *
   * The protocol feature bits the front-end acknowledged.
   *
   * Since: 1.0
   */
  properties[PROP_PROTOCOL_FEATURES] =
    g_param_spec_uint64 ("protocol-features", NULL, NULL, 0, G_MAXUINT64, 0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserDevice:status:
   *
   * The virtio device status the front-end last set (`SET_STATUS`), a
   * combination of [flags@VhostUser.DeviceStatus] bits.
   *
   * Since: 1.0
   */
  properties[PROP_STATUS] =
    g_param_spec_uint ("status", NULL, NULL, 0, G_MAXUINT8, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * VhostUserDevice::features-negotiated:
   * @self: the device
   * @features: the acknowledged virtio feature bits
   *
   * The front-end acknowledged a set of features (`SET_FEATURES`).
   *
   * Since: 1.0
   */
  signals[SIGNAL_FEATURES_NEGOTIATED] =
    g_signal_new ("features-negotiated", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, features_negotiated), NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_UINT64);

  /**
   * VhostUserDevice::queue-started:
   * @self: the device
   * @queue: the queue
   *
   * A ring started: it is fully set up and its kick file descriptor was
   * set or kicked.
   *
   * Since: 1.0
   */
  signals[SIGNAL_QUEUE_STARTED] =
    g_signal_new ("queue-started", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, queue_started), NULL, NULL, NULL,
                  G_TYPE_NONE, 1, VHOST_USER_TYPE_VIRTQUEUE);

  /**
   * VhostUserDevice::queue-stopped:
   * @self: the device
   * @queue: the queue
   *
   * A ring stopped (`GET_VRING_BASE`, a reset, a disconnection, or guest
   * memory that no longer holds it). The device must not touch the ring
   * after this.
   *
   * Since: 1.0
   */
  signals[SIGNAL_QUEUE_STOPPED] =
    g_signal_new ("queue-stopped", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, queue_stopped), NULL, NULL, NULL,
                  G_TYPE_NONE, 1, VHOST_USER_TYPE_VIRTQUEUE);

  /**
   * VhostUserDevice::queue-kicked:
   * @self: the device
   * @queue: the queue
   *
   * The driver made buffers available in a started ring. Emitted once per
   * wakeup, however many kicks and buffers it covers; setting a new kick
   * file descriptor counts as a kick. While the queue polls the ring
   * (see [property@VhostUser.Virtqueue:mode]), emitted once for each batch
   * of buffers the driver made available since the last emission.
   *
   * Since: 1.0
   */
  signals[SIGNAL_QUEUE_KICKED] =
    g_signal_new ("queue-kicked", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, queue_kicked), NULL, NULL, NULL,
                  G_TYPE_NONE, 1, VHOST_USER_TYPE_VIRTQUEUE);

  /**
   * VhostUserDevice::reset:
   * @self: the device
   *
   * The device went back to its initial state: `RESET_DEVICE`, or the end
   * of a connection. Device types drop their per-driver state here.
   *
   * Since: 1.0
   */
  signals[SIGNAL_RESET] =
    g_signal_new ("reset", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, reset), NULL, NULL, NULL, G_TYPE_NONE, 0);

  /**
   * VhostUserDevice::disconnected:
   * @self: the device
   *
   * The front-end went away, or the device closed a connection it could no
   * longer trust. The device is ready for the next connection.
   *
   * Since: 1.0
   */
  signals[SIGNAL_DISCONNECTED] =
    g_signal_new ("disconnected", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, disconnected), NULL, NULL, NULL,
                  G_TYPE_NONE, 0);

  /**
   * VhostUserDevice::protocol-error:
   * @self: the device
   * @error: what was wrong
   *
   * The front-end sent something the device refused: a malformed message,
   * a value out of range, a request it does not support. The front-end got
   * an error reply if it was owed one; a connection that can no longer be
   * trusted is closed after this.
   *
   * Since: 1.0
   */
  signals[SIGNAL_PROTOCOL_ERROR] =
    g_signal_new ("protocol-error", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST,
                  G_STRUCT_OFFSET (VhostUserDeviceClass, protocol_error), NULL, NULL, NULL,
                  G_TYPE_NONE, 1, G_TYPE_ERROR);
}

static void
vhost_user_device_init (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv = PRIV (self);

  priv->context = g_main_context_ref_thread_default ();
  priv->num_queues = 1;
  priv->max_queue_size = DEFAULT_MAX_QUEUE_SIZE;
  priv->log_call_fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                               */

/**
 * vhost_user_device_get_context:
 * @self: a device
 *
 * Returns: (transfer none): the main context the device runs on
 *
 * Since: 1.0
 */
GMainContext *
vhost_user_device_get_context (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), NULL);
  return PRIV (self)->context;
}

/**
 * vhost_user_device_get_num_queues:
 * @self: a device
 *
 * Returns: the number of queues
 *
 * Since: 1.0
 */
guint
vhost_user_device_get_num_queues (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), 0);
  return PRIV (self)->num_queues;
}

/**
 * vhost_user_device_get_max_queue_size:
 * @self: a device
 *
 * Returns: the largest ring the front-end may set up
 *
 * Since: 1.0
 */
guint
vhost_user_device_get_max_queue_size (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), 0);
  return PRIV (self)->max_queue_size;
}

/**
 * vhost_user_device_get_queue:
 * @self: a device
 * @index: a queue index, less than [property@VhostUser.Device:num-queues]
 *
 * Returns: (transfer none) (nullable): the queue, or %NULL if @index is out of range
 *
 * Since: 1.0
 */
VhostUserVirtqueue *
vhost_user_device_get_queue (VhostUserDevice *self, guint index)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), NULL);
  if (index >= PRIV (self)->num_queues)
    return NULL;
  return PRIV (self)->queues[index];
}

/**
 * vhost_user_device_get_connected:
 * @self: a device
 *
 * Returns: whether a front-end is connected
 *
 * Since: 1.0
 */
gboolean
vhost_user_device_get_connected (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), FALSE);
  return PRIV (self)->conn != NULL;
}

/**
 * vhost_user_device_get_acked_features:
 * @self: a device
 *
 * Returns: the virtio feature bits the front-end acknowledged
 *
 * Since: 1.0
 */
guint64
vhost_user_device_get_acked_features (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), 0);
  return PRIV (self)->acked_features;
}

/**
 * vhost_user_device_get_acked_protocol_features:
 * @self: a device
 *
 * Returns: the protocol feature bits the front-end acknowledged
 *
 * Since: 1.0
 */
guint64
vhost_user_device_get_acked_protocol_features (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), 0);
  return PRIV (self)->acked_protocol_features;
}

/**
 * vhost_user_device_has_feature:
 * @self: a device
 * @bit: a virtio feature bit number (0 to 63)
 *
 * Returns: whether the front-end acknowledged feature @bit
 *
 * Since: 1.0
 */
gboolean
vhost_user_device_has_feature (VhostUserDevice *self, guint bit)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), FALSE);
  g_return_val_if_fail (bit < 64, FALSE);
  return (PRIV (self)->acked_features & BIT (bit)) != 0;
}

/**
 * vhost_user_device_has_protocol_feature:
 * @self: a device
 * @feature: a protocol feature
 *
 * Returns: whether the front-end acknowledged @feature
 *
 * Since: 1.0
 */
gboolean
vhost_user_device_has_protocol_feature (VhostUserDevice *self, VhostUserProtocolFeature feature)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), FALSE);
  g_return_val_if_fail ((guint) feature < 64, FALSE);
  return (PRIV (self)->acked_protocol_features & BIT (feature)) != 0;
}

/**
 * vhost_user_device_get_status:
 * @self: a device
 *
 * Returns: the virtio device status last set by the front-end
 *
 * Since: 1.0
 */
guint
vhost_user_device_get_status (VhostUserDevice *self)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), 0);
  return PRIV (self)->status;
}

/**
 * vhost_user_device_take_connection:
 * @self: a device
 * @fd: a connected unix stream socket to a front-end
 * @error: return location for a #GError
 *
 * Serves the front-end at the other end of @fd. The device takes @fd in
 * every case (it is closed on failure). A device serves one front-end at a
 * time.
 *
 * Returns: %TRUE on success
 *
 * Since: 1.0
 */
gboolean
vhost_user_device_take_connection (VhostUserDevice *self, gint fd, GError **error)
{
  VhostUserDevicePrivate *priv;

  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), FALSE);
  g_return_val_if_fail (fd >= 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  priv = PRIV (self);
  if (priv->conn != NULL)
    {
      close (fd);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_STATE,
                   _("The device already serves a front-end"));
      return FALSE;
    }

  if (!g_unix_set_fd_nonblocking (fd, TRUE, error))
    {
      close (fd);
      return FALSE;
    }

  reset_connection_state (self);
  priv->conn = vhu_connection_new (fd, priv->context, FALSE);
  vhu_connection_set_handlers (priv->conn, on_message, on_connection_closed, self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CONNECTED]);
  return TRUE;
}

/**
 * vhost_user_device_disconnect:
 * @self: a device
 *
 * Closes the connection to the front-end, if any. The device returns to
 * its initial state and emits [signal@VhostUser.Device::disconnected].
 *
 * Since: 1.0
 */
void
vhost_user_device_disconnect (VhostUserDevice *self)
{
  VhostUserDevicePrivate *priv;
  g_autoptr (GError) error = NULL;

  g_return_if_fail (VHOST_USER_IS_DEVICE (self));

  priv = PRIV (self);
  if (priv->conn == NULL)
    return;
  g_set_error (&error, VHOST_USER_ERROR, VHOST_USER_ERROR_DISCONNECTED,
               _("The device closed the connection"));
  vhu_connection_close (priv->conn);
  on_connection_closed (priv->conn, error, self);
}

/**
 * vhost_user_device_report_error:
 * @self: a device
 * @error: what went wrong
 *
 * Reports a failure of the device's own code where there is no error to
 * return, in [vfunc@VhostUser.Device.get_features],
 * [vfunc@VhostUser.Device.get_protocol_features] or a signal handler. The
 * Python overrides call it when such a method raises.
 *
 * Called on the device's context while it handles a front-end request, as
 * these vfuncs and the signals a request causes are, the request fails
 * with @error: the front-end gets an error reply where one is owed and
 * [signal@VhostUser.Device::protocol-error] is emitted. A failure while the
 * device says what it offers also closes the connection, since no
 * negotiation can follow. At any other time, or on another thread, in the
 * handler of a queue moved there, the signal is emitted at once, in the
 * calling thread.
 *
 * Since: 1.0
 */
void
vhost_user_device_report_error (VhostUserDevice *self, const GError *error)
{
  VhostUserDevicePrivate *priv;

  g_return_if_fail (VHOST_USER_IS_DEVICE (self));
  g_return_if_fail (error != NULL);

  priv = PRIV (self);
  if (g_main_context_is_owner (priv->context) && priv->in_request)
    {
      if (priv->reported == NULL)
        priv->reported = g_error_copy (error);
      return;
    }
  g_signal_emit (self, signals[SIGNAL_PROTOCOL_ERROR], 0, error);
}

/**
 * vhost_user_device_notify_config_changed_async:
 * @self: a device
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async): called when the front-end has the message, or
 *   has answered it when %VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK was negotiated
 * @user_data: data for @callback
 *
 * Tells the front-end that the device config space changed
 * (`BACKEND_CONFIG_CHANGE_MSG` on the back-end channel), so that it reads it
 * again. Needs %VHOST_USER_PROTOCOL_FEATURE_CONFIG and
 * %VHOST_USER_PROTOCOL_FEATURE_BACKEND_REQ.
 *
 * Since: 1.0
 */
void
vhost_user_device_notify_config_changed_async (VhostUserDevice *self,
                                               GCancellable *cancellable,
                                               GAsyncReadyCallback callback,
                                               gpointer user_data)
{
  VhostUserDevicePrivate *priv;
  g_autoptr (GTask) task = NULL;
  VhuMessage msg;

  g_return_if_fail (VHOST_USER_IS_DEVICE (self));

  priv = PRIV (self);
  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, vhost_user_device_notify_config_changed_async);

  if (priv->backend == NULL
      || !(priv->acked_protocol_features & BIT (VHOST_USER_PROTOCOL_FEATURE_CONFIG)))
    {
      g_task_return_new_error (task, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
                               _("The front-end has no back-end channel with config support"));
      return;
    }

  vhu_message_init (&msg);
  vhu_message_init_request (&msg, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, 0, 0);
  vhu_backend_channel_request (priv->backend, &msg,
                               (priv->acked_protocol_features
                                & BIT (VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK)) != 0,
                               task);
}

/**
 * vhost_user_device_notify_config_changed_finish:
 * @self: a device
 * @result: the result
 * @error: return location for a #GError
 *
 * Returns: %TRUE if the front-end took the notification
 *
 * Since: 1.0
 */
gboolean
vhost_user_device_notify_config_changed_finish (VhostUserDevice *self,
                                                GAsyncResult *result,
                                                GError **error)
{
  g_return_val_if_fail (VHOST_USER_IS_DEVICE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result))
                          == vhost_user_device_notify_config_changed_async,
                        FALSE);

  {
    GError *local_error = NULL;
    gssize fd = g_task_propagate_int (G_TASK (result), &local_error);

    if (local_error != NULL)
      {
        g_propagate_error (error, local_error);
        return FALSE;
      }
    if (fd >= 0)
      close (fd);
  }
  return TRUE;
}
