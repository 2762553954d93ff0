/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "VhuTestDevice"
#endif

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "vhu-test-device.h"

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)

#define EXTRA_PROTOCOL_FEATURES                                                                    \
  (PF (DEVICE_STATE) | PF (SHARED_OBJECT) | PF (NET_MTU) | PF (RARP))

/* Chains up to a class handler of VhostUserDevice (they all have defaults;
 * the check keeps the test device working should one be missing). */
#define CHAIN_UP(handler, ...)                                                                     \
  G_STMT_START                                                                                     \
  {                                                                                                \
    VhostUserDeviceClass *parent_ = VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class);        \
    if (parent_->handler != NULL)                                                                  \
      parent_->handler (__VA_ARGS__);                                                              \
  }                                                                                                \
  G_STMT_END

struct _VhuTestDevice
{
  VhostUserDevice parent_instance;

  guint64 features;
  gboolean extras;
  guint8 config[VHU_TEST_DEVICE_CONFIG_SIZE];
  guint n_set_config;

  guint n_features_negotiated;
  guint64 negotiated_features;
  guint started[VHU_TEST_DEVICE_MAX_QUEUES];
  guint stopped[VHU_TEST_DEVICE_MAX_QUEUES];
  guint kicked[VHU_TEST_DEVICE_MAX_QUEUES];
  guint n_reset;
  guint n_disconnected;
  guint n_protocol_errors;
  GError *last_protocol_error;
  GString *events;

  GBytes *state;
  GBytes *loaded_state;
  guint n_save;
  guint n_load;
  GHashTable *shared_objects; /* lower-case uuid → GINT_TO_POINTER (fd) */
  guint mtu;
  GBytes *rarp_mac;
};

enum
{
  PROP_0,
  PROP_FEATURES,
  PROP_EXTRAS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (VhuTestDevice, vhu_test_device, VHOST_USER_TYPE_DEVICE)

static void
put_le16 (guint8 *p, guint16 v)
{
  v = GUINT16_TO_LE (v);
  memcpy (p, &v, sizeof v);
}

static void
put_le32 (guint8 *p, guint32 v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, sizeof v);
}

static void
put_le64 (guint8 *p, guint64 v)
{
  v = GUINT64_TO_LE (v);
  memcpy (p, &v, sizeof v);
}

static void
record_event (VhuTestDevice *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
record_event (VhuTestDevice *self, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  g_string_append_vprintf (self->events, format, args);
  va_end (args);
  g_string_append_c (self->events, '\n');
}

static gboolean
bounds_ok (guint offset, gsize size, GError **error)
{
  if (size == 0 || offset > VHU_TEST_DEVICE_CONFIG_SIZE
      || size > VHU_TEST_DEVICE_CONFIG_SIZE - offset)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   "config access at %u size %" G_GSIZE_FORMAT " is outside the %u-byte space",
                   offset, size, VHU_TEST_DEVICE_CONFIG_SIZE);
      return FALSE;
    }

  return TRUE;
}

/* VhostUserDevice vfuncs */

static guint64
vhu_test_device_get_features (VhostUserDevice *device)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  return VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->get_features (device)
         | self->features;
}

static guint64
vhu_test_device_get_protocol_features (VhostUserDevice *device)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);
  guint64 features =
    VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->get_protocol_features (device);

  if (self->extras)
    features |= EXTRA_PROTOCOL_FEATURES;

  return features;
}

static GBytes *
vhu_test_device_get_config_vfunc (VhostUserDevice *device,
                                  guint offset,
                                  guint size,
                                  GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  if (!bounds_ok (offset, size, error))
    return NULL;

  return g_bytes_new (self->config + offset, size);
}

static gboolean
vhu_test_device_set_config (VhostUserDevice *device,
                            guint offset,
                            GBytes *data,
                            VhostUserConfigFlags flags,
                            GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);
  gsize size;
  const guint8 *bytes = g_bytes_get_data (data, &size);

  if (!bounds_ok (offset, size, error))
    return FALSE;

  /* Only the driver-writable byte, unless migration restores the space. */
  if (flags != VHOST_USER_CONFIG_FLAGS_MIGRATION
      && (offset != VHU_TEST_DEVICE_CONFIG_WRITEBACK || size != 1))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   "config bytes %u to %" G_GSIZE_FORMAT " are read-only", offset,
                   offset + size - 1);
      return FALSE;
    }

  memcpy (self->config + offset, bytes, size);
  self->n_set_config++;
  record_event (self, "set-config %u %" G_GSIZE_FORMAT, offset, size);

  return TRUE;
}

static gboolean
vhu_test_device_set_mtu (VhostUserDevice *device, guint mtu, GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  if (!self->extras)
    return VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->set_mtu (device, mtu, error);

  self->mtu = mtu;
  record_event (self, "set-mtu %u", mtu);
  return TRUE;
}

static gboolean
vhu_test_device_send_rarp (VhostUserDevice *device, GBytes *mac, GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  if (!self->extras)
    return VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->send_rarp (device, mac, error);

  g_clear_pointer (&self->rarp_mac, g_bytes_unref);
  self->rarp_mac = g_bytes_ref (mac);
  record_event (self, "send-rarp");
  return TRUE;
}

static GBytes *
vhu_test_device_save_state (VhostUserDevice *device, GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  if (!self->extras)
    return VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->save_state (device, error);

  self->n_save++;
  record_event (self, "save-state");
  return g_bytes_ref (self->state);
}

static gboolean
vhu_test_device_load_state (VhostUserDevice *device, GBytes *state, GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  if (!self->extras)
    return VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->load_state (device, state,
                                                                               error);

  self->n_load++;
  g_clear_pointer (&self->loaded_state, g_bytes_unref);
  self->loaded_state = g_bytes_ref (state);
  record_event (self, "load-state %" G_GSIZE_FORMAT, g_bytes_get_size (state));
  return TRUE;
}

static gint
vhu_test_device_get_shared_object (VhostUserDevice *device, const gchar *uuid, GError **error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);
  g_autofree char *key = NULL;
  gpointer value;
  int fd;

  if (!self->extras)
    return VHOST_USER_DEVICE_CLASS (vhu_test_device_parent_class)->get_shared_object (device, uuid,
                                                                                      error);

  key = g_ascii_strdown (uuid, -1);
  if (!g_hash_table_lookup_extended (self->shared_objects, key, NULL, &value))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID, "no shared object %s",
                   uuid);
      return -1;
    }

  fd = fcntl (GPOINTER_TO_INT (value), F_DUPFD_CLOEXEC, 3);
  if (fd < 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno), "dup: %s",
                   g_strerror (saved_errno));
      return -1;
    }

  record_event (self, "get-shared-object %s", key);
  return fd;
}

/* Class handlers: record, then chain up. */

static void
vhu_test_device_features_negotiated (VhostUserDevice *device, guint64 features)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  self->n_features_negotiated++;
  self->negotiated_features = features;
  record_event (self, "features-negotiated 0x%" G_GINT64_MODIFIER "x", features);

  CHAIN_UP (features_negotiated, device, features);
}

static guint
queue_slot (VhostUserVirtqueue *queue)
{
  guint index = vhost_user_virtqueue_get_index (queue);

  g_assert_cmpuint (index, <, VHU_TEST_DEVICE_MAX_QUEUES);
  return index;
}

static void
vhu_test_device_queue_started (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);
  guint index = queue_slot (queue);

  self->started[index]++;
  record_event (self, "queue-started %u", index);

  CHAIN_UP (queue_started, device, queue);
}

static void
vhu_test_device_queue_stopped (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);
  guint index = queue_slot (queue);

  self->stopped[index]++;
  record_event (self, "queue-stopped %u", index);

  CHAIN_UP (queue_stopped, device, queue);
}

static void
vhu_test_device_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);
  guint index = queue_slot (queue);

  self->kicked[index]++;
  record_event (self, "queue-kicked %u", index);

  CHAIN_UP (queue_kicked, device, queue);
}

static void
vhu_test_device_reset (VhostUserDevice *device)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  self->n_reset++;
  record_event (self, "reset");

  CHAIN_UP (reset, device);
}

static void
vhu_test_device_disconnected (VhostUserDevice *device)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  self->n_disconnected++;
  record_event (self, "disconnected");

  CHAIN_UP (disconnected, device);
}

static void
vhu_test_device_protocol_error (VhostUserDevice *device, const GError *error)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (device);

  self->n_protocol_errors++;
  g_clear_error (&self->last_protocol_error);
  if (error != NULL)
    self->last_protocol_error = g_error_copy (error);
  record_event (self, "protocol-error %s", error != NULL ? error->message : "(null)");

  CHAIN_UP (protocol_error, device, error);
}

/* GObject */

static void
vhu_test_device_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (object);

  switch (prop_id)
    {
    case PROP_FEATURES:
      g_value_set_uint64 (value, self->features);
      break;
    case PROP_EXTRAS:
      g_value_set_boolean (value, self->extras);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhu_test_device_set_property (GObject *object,
                              guint prop_id,
                              const GValue *value,
                              GParamSpec *pspec)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (object);

  switch (prop_id)
    {
    case PROP_FEATURES:
      self->features = g_value_get_uint64 (value);
      break;
    case PROP_EXTRAS:
      self->extras = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhu_test_device_constructed (GObject *object)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (object);
  guint num_queues;

  G_OBJECT_CLASS (vhu_test_device_parent_class)->constructed (object);

  num_queues = vhost_user_device_get_num_queues (VHOST_USER_DEVICE (self));
  put_le16 (self->config + VHU_TEST_DEVICE_CONFIG_NUM_QUEUES, (guint16) num_queues);
}

static void
vhu_test_device_finalize (GObject *object)
{
  VhuTestDevice *self = VHU_TEST_DEVICE (object);
  GHashTableIter iter;
  gpointer value;

  g_clear_error (&self->last_protocol_error);
  g_string_free (self->events, TRUE);
  g_clear_pointer (&self->state, g_bytes_unref);
  g_clear_pointer (&self->loaded_state, g_bytes_unref);
  g_clear_pointer (&self->rarp_mac, g_bytes_unref);

  g_hash_table_iter_init (&iter, self->shared_objects);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    close (GPOINTER_TO_INT (value));
  g_hash_table_unref (self->shared_objects);

  G_OBJECT_CLASS (vhu_test_device_parent_class)->finalize (object);
}

static void
vhu_test_device_class_init (VhuTestDeviceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  object_class->get_property = vhu_test_device_get_property;
  object_class->set_property = vhu_test_device_set_property;
  object_class->constructed = vhu_test_device_constructed;
  object_class->finalize = vhu_test_device_finalize;

  device_class->get_features = vhu_test_device_get_features;
  device_class->get_protocol_features = vhu_test_device_get_protocol_features;
  device_class->get_config = vhu_test_device_get_config_vfunc;
  device_class->set_config = vhu_test_device_set_config;
  device_class->set_mtu = vhu_test_device_set_mtu;
  device_class->send_rarp = vhu_test_device_send_rarp;
  device_class->save_state = vhu_test_device_save_state;
  device_class->load_state = vhu_test_device_load_state;
  device_class->get_shared_object = vhu_test_device_get_shared_object;
  device_class->features_negotiated = vhu_test_device_features_negotiated;
  device_class->queue_started = vhu_test_device_queue_started;
  device_class->queue_stopped = vhu_test_device_queue_stopped;
  device_class->queue_kicked = vhu_test_device_queue_kicked;
  device_class->reset = vhu_test_device_reset;
  device_class->disconnected = vhu_test_device_disconnected;
  device_class->protocol_error = vhu_test_device_protocol_error;

  properties[PROP_FEATURES] =
    g_param_spec_uint64 ("features", NULL, NULL, 0, G_MAXUINT64, VHU_TEST_DEVICE_DEFAULT_FEATURES,
                         G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  properties[PROP_EXTRAS] =
    g_param_spec_boolean ("extras", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
vhu_test_device_init (VhuTestDevice *self)
{
  static const char default_state[] = "vhu-test-device state v1";

  self->features = VHU_TEST_DEVICE_DEFAULT_FEATURES;
  self->events = g_string_new (NULL);
  self->state = g_bytes_new_static (default_state, sizeof default_state - 1);
  self->shared_objects = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  put_le64 (self->config + VHU_TEST_DEVICE_CONFIG_CAPACITY, VHU_TEST_DEVICE_CAPACITY);
  put_le32 (self->config + VHU_TEST_DEVICE_CONFIG_SIZE_MAX, VHU_TEST_DEVICE_SIZE_MAX);
  put_le32 (self->config + VHU_TEST_DEVICE_CONFIG_SEG_MAX, VHU_TEST_DEVICE_SEG_MAX);
  put_le32 (self->config + VHU_TEST_DEVICE_CONFIG_BLK_SIZE, VHU_TEST_DEVICE_BLK_SIZE);
  self->config[VHU_TEST_DEVICE_CONFIG_WRITEBACK] = 0;
}

VhuTestDevice *
vhu_test_device_new (guint num_queues, guint64 features, gboolean extras)
{
  return g_object_new (VHU_TYPE_TEST_DEVICE,
                       "num-queues", num_queues,
                       "features", features,
                       "extras", extras,
                       NULL);
}

/* Records */

const guint8 *
vhu_test_device_get_config (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), NULL);
  return self->config;
}

guint
vhu_test_device_get_set_config_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_set_config;
}

guint
vhu_test_device_get_features_negotiated_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_features_negotiated;
}

guint64
vhu_test_device_get_negotiated_features (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->negotiated_features;
}

guint
vhu_test_device_get_started_count (VhuTestDevice *self, guint index)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  g_return_val_if_fail (index < VHU_TEST_DEVICE_MAX_QUEUES, 0);
  return self->started[index];
}

guint
vhu_test_device_get_stopped_count (VhuTestDevice *self, guint index)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  g_return_val_if_fail (index < VHU_TEST_DEVICE_MAX_QUEUES, 0);
  return self->stopped[index];
}

guint
vhu_test_device_get_kicked_count (VhuTestDevice *self, guint index)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  g_return_val_if_fail (index < VHU_TEST_DEVICE_MAX_QUEUES, 0);
  return self->kicked[index];
}

guint
vhu_test_device_get_reset_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_reset;
}

guint
vhu_test_device_get_disconnected_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_disconnected;
}

guint
vhu_test_device_get_protocol_error_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_protocol_errors;
}

const GError *
vhu_test_device_get_last_protocol_error (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), NULL);
  return self->last_protocol_error;
}

const char *
vhu_test_device_get_events (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), NULL);
  return self->events->str;
}

void
vhu_test_device_clear_records (VhuTestDevice *self)
{
  g_return_if_fail (VHU_IS_TEST_DEVICE (self));

  self->n_set_config = 0;
  self->n_features_negotiated = 0;
  self->negotiated_features = 0;
  memset (self->started, 0, sizeof self->started);
  memset (self->stopped, 0, sizeof self->stopped);
  memset (self->kicked, 0, sizeof self->kicked);
  self->n_reset = 0;
  self->n_disconnected = 0;
  self->n_protocol_errors = 0;
  g_clear_error (&self->last_protocol_error);
  g_string_truncate (self->events, 0);
  self->n_save = 0;
  self->n_load = 0;
}

void
vhu_test_device_set_state (VhuTestDevice *self, GBytes *state)
{
  g_return_if_fail (VHU_IS_TEST_DEVICE (self));
  g_return_if_fail (state != NULL);

  g_bytes_ref (state);
  g_clear_pointer (&self->state, g_bytes_unref);
  self->state = state;
}

GBytes *
vhu_test_device_get_loaded_state (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), NULL);
  return self->loaded_state;
}

guint
vhu_test_device_get_save_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_save;
}

guint
vhu_test_device_get_load_count (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->n_load;
}

void
vhu_test_device_add_shared_object (VhuTestDevice *self, const char *uuid, int fd)
{
  int copy;
  gpointer old;
  char *key;

  g_return_if_fail (VHU_IS_TEST_DEVICE (self));
  g_return_if_fail (uuid != NULL);
  g_return_if_fail (fd >= 0);

  copy = fcntl (fd, F_DUPFD_CLOEXEC, 3);
  g_assert_cmpint (copy, >=, 0);

  key = g_ascii_strdown (uuid, -1);
  if (g_hash_table_lookup_extended (self->shared_objects, key, NULL, &old))
    close (GPOINTER_TO_INT (old));
  g_hash_table_insert (self->shared_objects, key, GINT_TO_POINTER (copy));
}

guint
vhu_test_device_get_mtu (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), 0);
  return self->mtu;
}

GBytes *
vhu_test_device_get_rarp_mac (VhuTestDevice *self)
{
  g_return_val_if_fail (VHU_IS_TEST_DEVICE (self), NULL);
  return self->rarp_mac;
}

/* The plain device */

struct _VhuTestPlainDevice
{
  VhostUserDevice parent_instance;
};

G_DEFINE_FINAL_TYPE (VhuTestPlainDevice, vhu_test_plain_device, VHOST_USER_TYPE_DEVICE)

static void
vhu_test_plain_device_class_init (VhuTestPlainDeviceClass *klass)
{
}

static void
vhu_test_plain_device_init (VhuTestPlainDevice *self)
{
}

VhostUserDevice *
vhu_test_plain_device_new (void)
{
  return g_object_new (VHU_TYPE_TEST_PLAIN_DEVICE, NULL);
}
