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
#include <libvhostuser-glib/vhost-user-device.h>

G_BEGIN_DECLS

#define VHOST_USER_TYPE_SERVER (vhost_user_server_get_type ())

VHOST_USER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (VhostUserServer, vhost_user_server, VHOST_USER, SERVER, GObject)

VHOST_USER_AVAILABLE_IN_ALL
VhostUserServer *vhost_user_server_new (VhostUserDevice *device);

VHOST_USER_AVAILABLE_IN_ALL
VhostUserDevice *vhost_user_server_get_device (VhostUserServer *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_server_listen (VhostUserServer *self, const gchar *path, GError **error);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_server_adopt_fd (VhostUserServer *self, gint fd, GError **error);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_server_adopt_activation (VhostUserServer *self, GError **error);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_server_connect_to (VhostUserServer *self, const gchar *path);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_server_stop (VhostUserServer *self);

G_END_DECLS
