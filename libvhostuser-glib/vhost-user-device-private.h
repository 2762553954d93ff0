/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#include "vhost-user-device.h"

G_BEGIN_DECLS

typedef gboolean (*QueueFunc) (VhostUserDevice *self,
                               VhostUserVirtqueue *vq,
                               gpointer data,
                               GError **error);

gboolean vhu_device_run_on_queue (VhostUserDevice *self,
                                  VhostUserVirtqueue *vq,
                                  QueueFunc func,
                                  gpointer data,
                                  GError **error);

G_END_DECLS
