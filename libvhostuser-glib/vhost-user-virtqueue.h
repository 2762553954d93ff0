/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#if !defined(__LIBVHOSTUSER_GLIB_H_INSIDE__) && !defined(VHOST_USER_COMPILATION)
#error "Only <libvhostuser-glib/libvhostuser-glib.h> can be included directly."
#endif

#include <glib-object.h>

#include <libvhostuser-glib/vhost-user-version.h>

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

G_END_DECLS
