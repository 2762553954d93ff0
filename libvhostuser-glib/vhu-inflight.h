/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The shared in-flight I/O tracking buffer (INFLIGHT_SHMFD): one region per
 * queue, laid out as the vhost-user spec describes, kept by the front-end
 * across back-end restarts. Its contents come from a previous back-end (or a
 * hostile front-end) and are untrusted.
 *
 * A buffer is reference counted (atomically): the device holds one
 * reference, and every ring that tracks its requests in one of the queue
 * regions holds another, so that a buffer the front-end replaces stays
 * mapped until the rings using it stop. The split-ring tracking itself (what
 * is written when, and the recovery after a restart) is in vhu-split-ring.c.
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VHU_INFLIGHT_VERSION 1u

/* Split-ring layout (spec "Inflight I/O tracking"). */
typedef struct
{
  guint8 inflight;
  guint8 padding[5];
  guint16 next;
  guint64 counter;
} VhuInflightDescSplit;

typedef struct
{
  guint64 features;
  guint16 version;
  guint16 desc_num;
  guint16 last_batch_head;
  guint16 used_idx;
  VhuInflightDescSplit desc[];
} VhuInflightQueueSplit;

/* Packed-ring layout. */
typedef struct
{
  guint8 inflight;
  guint8 padding;
  guint16 next;
  guint16 last;
  guint16 num;
  guint64 counter;
  guint16 id;
  guint16 flags;
  guint32 len;
  guint64 addr;
} VhuInflightDescPacked;

typedef struct
{
  guint64 features;
  guint16 version;
  guint16 desc_num;
  guint16 free_head;
  guint16 old_free_head;
  guint16 used_idx;
  guint16 old_used_idx;
  guint8 used_wrap_counter;
  guint8 old_used_wrap_counter;
  guint8 padding[7];
  VhuInflightDescPacked desc[];
} VhuInflightQueuePacked;

typedef struct _VhuInflight VhuInflight;

gsize vhu_inflight_queue_region_size (guint16 queue_size, gboolean packed);

VhuInflight *vhu_inflight_new (guint16 num_queues,
                               guint16 queue_size,
                               gboolean packed,
                               int *out_fd,
                               GError **error);
VhuInflight *vhu_inflight_new_from_fd (int fd,
                                       guint64 mmap_size,
                                       guint64 mmap_offset,
                                       guint16 num_queues,
                                       guint16 queue_size,
                                       gboolean packed,
                                       GError **error);
VhuInflight *vhu_inflight_ref (VhuInflight *inflight);
void vhu_inflight_unref (VhuInflight *inflight);
/* The same as vhu_inflight_unref(): the creator lets go of its reference. */
void vhu_inflight_free (VhuInflight *inflight);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuInflight, vhu_inflight_unref)
void vhu_inflight_reset (VhuInflight *inflight);

guint16 vhu_inflight_get_num_queues (const VhuInflight *inflight);
guint16 vhu_inflight_get_queue_size (const VhuInflight *inflight);
guint64 vhu_inflight_get_mmap_size (const VhuInflight *inflight);
gboolean vhu_inflight_is_packed (const VhuInflight *inflight);
gpointer vhu_inflight_get_queue_region (VhuInflight *inflight, guint16 queue_index);

G_END_DECLS
