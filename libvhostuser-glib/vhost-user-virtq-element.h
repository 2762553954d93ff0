/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#if !defined(__LIBVHOSTUSER_GLIB_H_INSIDE__) && !defined(VHOST_USER_COMPILATION)
#error "Only <libvhostuser-glib/libvhostuser-glib.h> can be included directly."
#endif

#include <glib-object.h>
#include <sys/uio.h>

#include <libvhostuser-glib/vhost-user-version.h>

G_BEGIN_DECLS

typedef struct _VhostUserVirtqElement VhostUserVirtqElement;

#define VHOST_USER_TYPE_VIRTQ_ELEMENT (vhost_user_virtq_element_get_type ())

VHOST_USER_AVAILABLE_IN_ALL
GType vhost_user_virtq_element_get_type (void) G_GNUC_CONST;

VHOST_USER_AVAILABLE_IN_ALL
VhostUserVirtqElement *vhost_user_virtq_element_ref (VhostUserVirtqElement *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_virtq_element_unref (VhostUserVirtqElement *self);

VHOST_USER_AVAILABLE_IN_ALL
guint vhost_user_virtq_element_get_index (VhostUserVirtqElement *self);

VHOST_USER_AVAILABLE_IN_ALL
gsize vhost_user_virtq_element_get_out_size (VhostUserVirtqElement *self);

VHOST_USER_AVAILABLE_IN_ALL
gsize vhost_user_virtq_element_get_in_size (VhostUserVirtqElement *self);

VHOST_USER_AVAILABLE_IN_ALL
const struct iovec *vhost_user_virtq_element_get_out_iov (VhostUserVirtqElement *self,
                                                          guint *n_iov);

VHOST_USER_AVAILABLE_IN_ALL
const struct iovec *vhost_user_virtq_element_get_in_iov (VhostUserVirtqElement *self,
                                                         guint *n_iov);

VHOST_USER_AVAILABLE_IN_ALL
guint64 *vhost_user_virtq_element_get_segments (VhostUserVirtqElement *self,
                                                guint *n_out,
                                                gsize *n_values);

VHOST_USER_AVAILABLE_IN_ALL
gsize vhost_user_virtq_element_read (VhostUserVirtqElement *self,
                                     gsize offset,
                                     guint8 *buffer,
                                     gsize length);

VHOST_USER_AVAILABLE_IN_ALL
GBytes *vhost_user_virtq_element_read_bytes (VhostUserVirtqElement *self,
                                             gsize offset,
                                             gsize length);

VHOST_USER_AVAILABLE_IN_ALL
gsize vhost_user_virtq_element_write (VhostUserVirtqElement *self,
                                      gsize offset,
                                      const guint8 *data,
                                      gsize length);

VHOST_USER_AVAILABLE_IN_ALL
gsize vhost_user_virtq_element_write_bytes (VhostUserVirtqElement *self,
                                            gsize offset,
                                            GBytes *data);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhostUserVirtqElement, vhost_user_virtq_element_unref)

G_END_DECLS
