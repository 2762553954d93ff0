/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#if !defined(__LIBVHOSTUSER_GLIB_H_INSIDE__) && !defined(VHOST_USER_COMPILATION)
#error "Only <libvhostuser-glib/libvhostuser-glib.h> can be included directly."
#endif

#include <gio/gio.h>

#include <libvhostuser-glib/vhost-user-version.h>
#include <libvhostuser-glib/vhost-user-enums.h>
#include <libvhostuser-glib/vhost-user-virtqueue.h>

G_BEGIN_DECLS

#define VHOST_USER_TYPE_DEVICE (vhost_user_device_get_type ())

VHOST_USER_AVAILABLE_IN_ALL
G_DECLARE_DERIVABLE_TYPE (VhostUserDevice, vhost_user_device, VHOST_USER, DEVICE, GObject)

/**
 * VhostUserDeviceClass:
 * @parent_class: the parent class
 * @get_features: the virtio feature bits the device offers; the default
 *   offers %VHOST_USER_FEATURE_VERSION_1 and
 *   %VHOST_USER_FEATURE_PROTOCOL_FEATURES; subclasses chain up and add the
 *   bits of their device type
 * @get_protocol_features: the protocol feature bits the device offers; the
 *   default offers every protocol feature the library implements by itself;
 *   subclasses may add %VHOST_USER_PROTOCOL_FEATURE_NET_MTU,
 *   %VHOST_USER_PROTOCOL_FEATURE_RARP, %VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE
 *   or %VHOST_USER_PROTOCOL_FEATURE_SHARED_OBJECT when they implement the
 *   matching vfuncs, or remove bits
 * @get_config: read @size bytes of the device config space at @offset; the
 *   default has an empty config space and refuses
 * @set_config: write the device config space; the default refuses
 * @set_mtu: the front-end sets the MTU (%VHOST_USER_REQUEST_NET_SET_MTU)
 * @send_rarp: broadcast a RARP for the guest MAC address in @mac (6 bytes)
 * @save_state: serialize the device's internal state for migration
 * @load_state: restore the state @save_state produced
 * @get_shared_object: the dma-buf fd exported under @uuid, or -1
 * @features_negotiated: class handler of #VhostUserDevice::features-negotiated
 * @queue_started: class handler of #VhostUserDevice::queue-started
 * @queue_stopped: class handler of #VhostUserDevice::queue-stopped
 * @queue_kicked: class handler of #VhostUserDevice::queue-kicked
 * @reset: class handler of #VhostUserDevice::reset
 * @disconnected: class handler of #VhostUserDevice::disconnected
 * @protocol_error: class handler of #VhostUserDevice::protocol-error
 *
 * The class of a vhost-user device. Every vfunc and class handler has a
 * default, so an override can always chain up. A vfunc that fails returns
 * %NULL, %FALSE or -1 and should set @error; the library fills in a generic
 * error when it does not. Where there is no @error (@get_features,
 * @get_protocol_features, the class handlers), a failure is reported with
 * vhost_user_device_report_error().
 *
 * Since: 1.0
 */
struct _VhostUserDeviceClass
{
  GObjectClass parent_class;

  /*< public >*/
  guint64 (*get_features) (VhostUserDevice *self);
  guint64 (*get_protocol_features) (VhostUserDevice *self);
  GBytes *(*get_config) (VhostUserDevice *self, guint offset, guint size, GError **error);
  gboolean (*set_config) (VhostUserDevice *self,
                          guint offset,
                          GBytes *data,
                          VhostUserConfigFlags flags,
                          GError **error);
  gboolean (*set_mtu) (VhostUserDevice *self, guint mtu, GError **error);
  gboolean (*send_rarp) (VhostUserDevice *self, GBytes *mac, GError **error);
  GBytes *(*save_state) (VhostUserDevice *self, GError **error);
  gboolean (*load_state) (VhostUserDevice *self, GBytes *state, GError **error);
  gint (*get_shared_object) (VhostUserDevice *self, const gchar *uuid, GError **error);

  void (*features_negotiated) (VhostUserDevice *self, guint64 features);
  void (*queue_started) (VhostUserDevice *self, VhostUserVirtqueue *queue);
  void (*queue_stopped) (VhostUserDevice *self, VhostUserVirtqueue *queue);
  void (*queue_kicked) (VhostUserDevice *self, VhostUserVirtqueue *queue);
  void (*reset) (VhostUserDevice *self);
  void (*disconnected) (VhostUserDevice *self);
  void (*protocol_error) (VhostUserDevice *self, const GError *error);

  /*< private >*/
  gpointer padding[16];
};

VHOST_USER_AVAILABLE_IN_ALL
GMainContext *vhost_user_device_get_context (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_device_get_num_queues (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_device_get_max_queue_size (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
VhostUserVirtqueue *vhost_user_device_get_queue (VhostUserDevice *self, guint index);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_device_get_connected (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
guint64 vhost_user_device_get_acked_features (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
guint64 vhost_user_device_get_acked_protocol_features (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_device_has_feature (VhostUserDevice *self, guint bit);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_device_has_protocol_feature (VhostUserDevice *self,
                                                 VhostUserProtocolFeature feature);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_device_get_status (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_device_take_connection (VhostUserDevice *self, gint fd, GError **error);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_device_disconnect (VhostUserDevice *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_device_report_error (VhostUserDevice *self, const GError *error);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_device_notify_config_changed_async (VhostUserDevice *self,
                                                    GCancellable *cancellable,
                                                    GAsyncReadyCallback callback,
                                                    gpointer user_data);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_device_notify_config_changed_finish (VhostUserDevice *self,
                                                         GAsyncResult *result,
                                                         GError **error);

G_END_DECLS
