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

#define VHOST_USER_TYPE_BACKEND_PROGRAM (vhost_user_backend_program_get_type ())

VHOST_USER_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (VhostUserBackendProgram,
                      vhost_user_backend_program,
                      VHOST_USER,
                      BACKEND_PROGRAM,
                      GObject)

VHOST_USER_AVAILABLE_IN_ALL
VhostUserBackendProgram *vhost_user_backend_program_new (const gchar *device_type);

VHOST_USER_AVAILABLE_IN_ALL
const gchar *vhost_user_backend_program_get_device_type (VhostUserBackendProgram *self);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_backend_program_add_capability (VhostUserBackendProgram *self,
                                                const gchar *feature);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_backend_program_add_main_entries (VhostUserBackendProgram *self,
                                                  const GOptionEntry *entries);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_backend_program_set_summary (VhostUserBackendProgram *self, const gchar *summary);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_backend_program_set_ignore_unknown_options (VhostUserBackendProgram *self,
                                                            gboolean ignore);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_backend_program_get_ignore_unknown_options (VhostUserBackendProgram *self);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_backend_program_parse (VhostUserBackendProgram *self,
                                           gchar ***arguments,
                                           GError **error);

VHOST_USER_AVAILABLE_IN_ALL
gboolean vhost_user_backend_program_get_print_capabilities (VhostUserBackendProgram *self);

VHOST_USER_AVAILABLE_IN_ALL
gchar *vhost_user_backend_program_get_capabilities_json (VhostUserBackendProgram *self);

VHOST_USER_AVAILABLE_IN_ALL
gint vhost_user_backend_program_run (VhostUserBackendProgram *self, VhostUserDevice *device);

VHOST_USER_AVAILABLE_IN_ALL
void vhost_user_backend_program_quit (VhostUserBackendProgram *self);

G_END_DECLS
