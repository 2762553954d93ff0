/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A small VhostUserDevice subclass for the tests: a virtio-blk-like config
 * space, a configurable feature set, and a record of every signal the device
 * emits, for the tests to assert on. And a plain one, with the library's
 * defaults only.
 */

#pragma once

#include <glib-object.h>
#include <libvhostuser-glib/libvhostuser-glib.h>

G_BEGIN_DECLS

/* virtio-blk's config space up to write_zeroes_may_unmap and its padding. */
#define VHU_TEST_DEVICE_CONFIG_SIZE 60u
#define VHU_TEST_DEVICE_CONFIG_CAPACITY 0x00u         /* u64, sectors */
#define VHU_TEST_DEVICE_CONFIG_SIZE_MAX 0x08u         /* u32 */
#define VHU_TEST_DEVICE_CONFIG_SEG_MAX 0x0cu          /* u32 */
#define VHU_TEST_DEVICE_CONFIG_BLK_SIZE 0x14u         /* u32 */
#define VHU_TEST_DEVICE_CONFIG_WRITEBACK 0x20u        /* u8, the one writable field */
#define VHU_TEST_DEVICE_CONFIG_NUM_QUEUES 0x22u       /* u16 */
/* The initial values. */
#define VHU_TEST_DEVICE_CAPACITY 524288u /* 256 MiB in 512-byte sectors, as in the trace */
#define VHU_TEST_DEVICE_SIZE_MAX 65536u
#define VHU_TEST_DEVICE_SEG_MAX 126u
#define VHU_TEST_DEVICE_BLK_SIZE 512u

/* virtio-blk feature bits the test device offers by default, besides what
 * VhostUserDevice offers itself: SIZE_MAX(1), SEG_MAX(2), BLK_SIZE(6),
 * FLUSH(9), TOPOLOGY(10), CONFIG_WCE(11), DISCARD(13), WRITE_ZEROES(14). */
#define VHU_TEST_DEVICE_DEFAULT_FEATURES 0x6e46ull

/* Queue indices a record is kept for. */
#define VHU_TEST_DEVICE_MAX_QUEUES 256u

#define VHU_TYPE_TEST_DEVICE (vhu_test_device_get_type ())
G_DECLARE_FINAL_TYPE (VhuTestDevice, vhu_test_device, VHU, TEST_DEVICE, VhostUserDevice)

/* Properties: "num-queues" (VhostUserDevice's), "features" (guint64,
 * construct-only: device bits added to the parent's), "extras" (boolean,
 * construct-only: implements save_state/load_state, get_shared_object,
 * set_mtu and send_rarp and offers DEVICE_STATE, SHARED_OBJECT, NET_MTU and
 * RARP on top of the parent's protocol features). */
VhuTestDevice *vhu_test_device_new (guint num_queues, guint64 features, gboolean extras);

/* The config space as the device holds it now (VHU_TEST_DEVICE_CONFIG_SIZE bytes). */
const guint8 *vhu_test_device_get_config (VhuTestDevice *self);
guint vhu_test_device_get_set_config_count (VhuTestDevice *self);

/* What the signals reported. */
guint vhu_test_device_get_features_negotiated_count (VhuTestDevice *self);
guint64 vhu_test_device_get_negotiated_features (VhuTestDevice *self);
guint vhu_test_device_get_started_count (VhuTestDevice *self, guint index);
guint vhu_test_device_get_stopped_count (VhuTestDevice *self, guint index);
guint vhu_test_device_get_kicked_count (VhuTestDevice *self, guint index);
guint vhu_test_device_get_reset_count (VhuTestDevice *self);
guint vhu_test_device_get_disconnected_count (VhuTestDevice *self);
guint vhu_test_device_get_protocol_error_count (VhuTestDevice *self);
const GError *vhu_test_device_get_last_protocol_error (VhuTestDevice *self);
/* Every signal in order, one line each ("queue-started 0\n", "reset\n",
 * "features-negotiated 0x...\n", ...). */
const char *vhu_test_device_get_events (VhuTestDevice *self);
/* Forgets every record above (not the config space). */
void vhu_test_device_clear_records (VhuTestDevice *self);

/* "extras": the state save_state returns, and what load_state received. */
void vhu_test_device_set_state (VhuTestDevice *self, GBytes *state);
GBytes *vhu_test_device_get_loaded_state (VhuTestDevice *self);
guint vhu_test_device_get_save_count (VhuTestDevice *self);
guint vhu_test_device_get_load_count (VhuTestDevice *self);
/* "extras": shared objects get_shared_object finds by UUID (the canonical
 * 36-character form, any case). The fd is dup'ed; get_shared_object returns
 * a new dup the caller owns. */
void vhu_test_device_add_shared_object (VhuTestDevice *self, const char *uuid, int fd);
/* "extras": the last NET_SET_MTU value and SEND_RARP MAC (NULL if none). */
guint vhu_test_device_get_mtu (VhuTestDevice *self);
GBytes *vhu_test_device_get_rarp_mac (VhuTestDevice *self);

/* The smallest possible device: a VhostUserDevice subclass that overrides
 * nothing, so everything it does is the library's default. */
#define VHU_TYPE_TEST_PLAIN_DEVICE (vhu_test_plain_device_get_type ())
G_DECLARE_FINAL_TYPE (VhuTestPlainDevice,
                      vhu_test_plain_device,
                      VHU,
                      TEST_PLAIN_DEVICE,
                      VhostUserDevice)

VhostUserDevice *vhu_test_plain_device_new (void);

G_END_DECLS
