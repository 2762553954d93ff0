/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#if !defined(__LIBVHOSTUSER_GLIB_H_INSIDE__) && !defined(VHOST_USER_COMPILATION)
#error "Only <libvhostuser-glib/libvhostuser-glib.h> can be included directly."
#endif

#include <glib.h>

#include <libvhostuser-glib/vhost-user-version.h>

G_BEGIN_DECLS

/**
 * VHOST_USER_ERROR:
 *
 * The error domain of libvhostuser-glib. Errors in this domain are from the
 * #VhostUserError enumeration. Failed system calls use %G_IO_ERROR.
 *
 * Since: 1.0
 */
#define VHOST_USER_ERROR (vhost_user_error_quark ())

/**
 * VhostUserError:
 * @VHOST_USER_ERROR_FAILED: a failure with no more specific code
 * @VHOST_USER_ERROR_PROTOCOL: a malformed message: header, size or file descriptors
 * @VHOST_USER_ERROR_UNSUPPORTED: a request or feature the device does not support or did not negotiate
 * @VHOST_USER_ERROR_INVALID: a well-formed request with a value out of range
 * @VHOST_USER_ERROR_STATE: a request not valid in the current state
 * @VHOST_USER_ERROR_MEMORY: guest memory that cannot be mapped or translated
 * @VHOST_USER_ERROR_DISCONNECTED: the peer went away
 * @VHOST_USER_ERROR_TIMED_OUT: the peer did not answer in time
 * @VHOST_USER_ERROR_QUEUE_BROKEN: the guest broke a virtqueue
 *
 * Error codes in the %VHOST_USER_ERROR domain.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_ERROR_FAILED,
  VHOST_USER_ERROR_PROTOCOL,
  VHOST_USER_ERROR_UNSUPPORTED,
  VHOST_USER_ERROR_INVALID,
  VHOST_USER_ERROR_STATE,
  VHOST_USER_ERROR_MEMORY,
  VHOST_USER_ERROR_DISCONNECTED,
  VHOST_USER_ERROR_TIMED_OUT,
  VHOST_USER_ERROR_QUEUE_BROKEN,
} VhostUserError;

VHOST_USER_AVAILABLE_IN_ALL
GQuark vhost_user_error_quark (void);

G_END_DECLS
