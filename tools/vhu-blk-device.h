/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A virtio-blk device (virtio 1.2, 5.2) on a raw image file or a block
 * device: the VhostUserDevice subclass of tools/vhost-user-blk. Requests are
 * parsed and checked on their queue's context (the device's, or a worker
 * thread's) and carried out asynchronously (vhu-blk-io.h), straight between
 * the image and the guest's buffers.
 */

#pragma once

#include <libvhostuser-glib/libvhostuser-glib.h>

#include "vhu-blk-io.h"

G_BEGIN_DECLS

/* The config space the device implements: struct virtio_blk_config up to
 * write_zeroes_may_unmap and its padding. */
#define VHU_BLK_CONFIG_SIZE 60u
#define VHU_BLK_CONFIG_CAPACITY 0u                 /* le64, 512-byte sectors */
#define VHU_BLK_CONFIG_SIZE_MAX 8u                 /* le32 */
#define VHU_BLK_CONFIG_SEG_MAX 12u                 /* le32 */
#define VHU_BLK_CONFIG_GEOMETRY 16u                /* le16 cylinders, u8 heads, u8 sectors */
#define VHU_BLK_CONFIG_BLK_SIZE 20u                /* le32 */
#define VHU_BLK_CONFIG_PHYSICAL_BLOCK_EXP 24u      /* u8 */
#define VHU_BLK_CONFIG_ALIGNMENT_OFFSET 25u        /* u8 */
#define VHU_BLK_CONFIG_MIN_IO_SIZE 26u             /* le16 */
#define VHU_BLK_CONFIG_OPT_IO_SIZE 28u             /* le32 */
#define VHU_BLK_CONFIG_WRITEBACK 32u               /* u8, the one field the driver writes */
#define VHU_BLK_CONFIG_NUM_QUEUES 34u              /* le16 */
#define VHU_BLK_CONFIG_MAX_DISCARD_SECTORS 36u     /* le32 */
#define VHU_BLK_CONFIG_MAX_DISCARD_SEG 40u         /* le32 */
#define VHU_BLK_CONFIG_DISCARD_SECTOR_ALIGNMENT 44u /* le32 */
#define VHU_BLK_CONFIG_MAX_WRITE_ZEROES_SECTORS 48u /* le32 */
#define VHU_BLK_CONFIG_MAX_WRITE_ZEROES_SEG 52u    /* le32 */
#define VHU_BLK_CONFIG_WRITE_ZEROES_MAY_UNMAP 56u  /* u8 */

/* Requests counted since the device was made, by type (the errors: any
 * status but OK). */
typedef enum
{
  VHU_BLK_STAT_READS,
  VHU_BLK_STAT_WRITES,
  VHU_BLK_STAT_FLUSHES,
  VHU_BLK_STAT_GET_IDS,
  VHU_BLK_STAT_DISCARDS,
  VHU_BLK_STAT_WRITE_ZEROES,
  VHU_BLK_STAT_UNSUPPORTED,
  VHU_BLK_STAT_ERRORS,
  VHU_BLK_STAT_N,
} VhuBlkStat;

#define VHU_TYPE_BLK_DEVICE (vhu_blk_device_get_type ())
G_DECLARE_FINAL_TYPE (VhuBlkDevice, vhu_blk_device, VHU, BLK_DEVICE, VhostUserDevice)

typedef struct
{
  const char *path;    /* a raw image file or a block device */
  gboolean read_only;
  guint num_queues;    /* 0: 1 */
  const char *serial;  /* GET_ID's answer, at most 20 bytes; NULL: none */
  VhuBlkAio aio;
} VhuBlkDeviceOptions;

/* Opens the image (locked against other writers) and sets up I/O. */
VhuBlkDevice *vhu_blk_device_new (const VhuBlkDeviceOptions *options, GError **error);

/* "io_uring" or "threads". */
const char *vhu_blk_device_get_io_name (VhuBlkDevice *self);
/* The capacity in 512-byte sectors (property "capacity"). */
guint64 vhu_blk_device_get_capacity (VhuBlkDevice *self);
/* Whether the driver left the write cache on (config byte "writeback"). */
gboolean vhu_blk_device_get_writeback (VhuBlkDevice *self);
/* Requests handed to the I/O engine and not yet back. */
guint vhu_blk_device_get_in_flight (VhuBlkDevice *self);

guint64 vhu_blk_device_get_stat (VhuBlkDevice *self, VhuBlkStat stat);
/* Requests queue @index took from its ring, in all. */
guint64 vhu_blk_device_get_queue_requests (VhuBlkDevice *self, guint index);

/* Reads the image's size again; when the capacity changed, updates the
 * config space and tells the front-end (BACKEND_CONFIG_CHANGE_MSG). Returns
 * whether it changed. */
gboolean vhu_blk_device_check_size (VhuBlkDevice *self);
/* Checks the size every @interval_ms milliseconds (0: never). */
void vhu_blk_device_set_size_poll_interval (VhuBlkDevice *self, guint interval_ms);

/* Runs queue @index on @context (NULL: the device's), e.g. a worker
 * thread's: its kicks are served there, and its requests go to an I/O
 * engine whose completions come there (one engine per context). Call from
 * the device's context before a front-end connects. With queues on other
 * threads, stop iterating their contexts (after the front-end is gone)
 * before dropping the device: dispose drains every engine on the calling
 * thread. FALSE when no engine can be made for @context. */
gboolean vhu_blk_device_set_queue_context (VhuBlkDevice *self,
                                           guint index,
                                           GMainContext *context,
                                           GError **error);
GMainContext *vhu_blk_device_get_queue_context (VhuBlkDevice *self, guint index);

G_END_DECLS
