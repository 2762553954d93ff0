/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#if !defined(__LIBVHOSTUSER_GLIB_H_INSIDE__) && !defined(VHOST_USER_COMPILATION)
#error "Only <libvhostuser-glib/libvhostuser-glib.h> can be included directly."
#endif

#include <glib-object.h>

#include <libvhostuser-glib/vhost-user-enums.h>
#include <libvhostuser-glib/vhost-user-version.h>
#include <libvhostuser-glib/vhost-user-virtq-element.h>

G_BEGIN_DECLS

typedef struct _VhostUserDevice VhostUserDevice;

#define VHOST_USER_TYPE_VIRTQUEUE (vhost_user_virtqueue_get_type ())

VHOST_USER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (VhostUserVirtqueue, vhost_user_virtqueue, VHOST_USER, VIRTQUEUE, GObject)

VHOST_USER_AVAILABLE_IN_ALL
VhostUserDevice *vhost_user_virtqueue_get_device (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_virtqueue_get_index (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_virtqueue_get_size (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_virtqueue_get_enabled (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_virtqueue_get_started (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_virtqueue_get_last_avail_idx (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_set_context (VhostUserVirtqueue *self, GMainContext *context);

VHOST_USER_AVAILABLE_IN_ALL
GMainContext *vhost_user_virtqueue_get_context (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_virtqueue_get_broken (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_virtqueue_get_in_flight (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
VhostUserVirtqElement *vhost_user_virtqueue_pop (VhostUserVirtqueue *self, GError **error);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_unpop (VhostUserVirtqueue *self, VhostUserVirtqElement *element);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_fill (VhostUserVirtqueue *self,
                                VhostUserVirtqElement *element,
                                gsize written,
                                guint offset);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_flush (VhostUserVirtqueue *self, guint count);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_notify (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_push (VhostUserVirtqueue *self,
                                VhostUserVirtqElement *element,
                                gsize written);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_virtqueue_is_empty (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_set_notification (VhostUserVirtqueue *self, gboolean enable);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_set_mode (VhostUserVirtqueue *self, VhostUserQueueMode mode);

VHOST_USER_AVAILABLE_IN_ALL
VhostUserQueueMode vhost_user_virtqueue_get_mode (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_set_poll_ns (VhostUserVirtqueue *self, guint64 poll_ns);

VHOST_USER_AVAILABLE_IN_ALL
guint64 vhost_user_virtqueue_get_poll_ns (VhostUserVirtqueue *self);

VHOST_USER_AVAILABLE_IN_ALL
VhostUserVirtqElement **vhost_user_virtqueue_pop_batch (VhostUserVirtqueue *self,
                                                        guint max,
                                                        guint *n_elements,
                                                        guint64 **segments,
                                                        gsize *n_segments,
                                                        GError **error);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_push_batch (VhostUserVirtqueue *self,
                                      VhostUserVirtqElement **elements,
                                      guint n_elements,
                                      const gsize *written,
                                      guint n_written);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_virtqueue_pop_many (VhostUserVirtqueue *self,
                                     VhostUserVirtqElement **elements,
                                     guint max,
                                     GError **error);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtqueue_recycle (VhostUserVirtqueue *self,
                                   VhostUserVirtqElement **elements,
                                   guint n_elements);

G_END_DECLS
