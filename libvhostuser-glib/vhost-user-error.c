/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include "vhost-user-error.h"

G_DEFINE_QUARK (vhost-user-error-quark, vhost_user_error)
