/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#define __LIBVHOSTUSER_GLIB_H_INSIDE__

#include <libvhostuser-glib/vhost-user-version.h>
#include <libvhostuser-glib/vhost-user-enums.h>
#include <libvhostuser-glib/vhost-user-enum-types.h>
#include <libvhostuser-glib/vhost-user-error.h>
#include <libvhostuser-glib/vhost-user-virtq-element.h>
#include <libvhostuser-glib/vhost-user-virtqueue.h>
#include <libvhostuser-glib/vhost-user-device.h>
#include <libvhostuser-glib/vhost-user-server.h>
#include <libvhostuser-glib/vhost-user-backend-program.h>

#undef __LIBVHOSTUSER_GLIB_H_INSIDE__
