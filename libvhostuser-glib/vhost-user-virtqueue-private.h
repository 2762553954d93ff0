/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#include "vhost-user-virtqueue.h"
#include "vhu-dirty-log.h"
#include "vhu-inflight.h"
#include "vhu-memory.h"
#include "vhu-message.h"
#include "vhu-split-ring.h"

G_BEGIN_DECLS

typedef void (*VhuKickFunc) (VhostUserVirtqueue *vq, gpointer user_data);
typedef void (*VhuDrainedFunc) (VhostUserVirtqueue *vq, gpointer user_data);

struct _VhostUserVirtqueue
{
  GObject parent_instance;

  VhostUserDevice *device; /* unowned: the device owns its queues */
  guint index;

  /* What the front-end set up. */
  guint size; /* 0: SET_VRING_NUM not received */
  guint16 last_avail_idx;
  VhuVringAddr addr;
  gboolean addr_set;
  int kick_fd;
  int call_fd;
  int err_fd;

  gboolean enabled;
  gboolean started;
  gboolean broken;
  gboolean stopping; /* GET_VRING_BASE waits for in-flight elements */

  GSource *kick_source; /* kicks, and polling (see vhost_user_virtqueue_set_mode()) */
  gpointer kick_tag;    /* the kick fd in @kick_source */
  VhuKickFunc kick_func;
  gpointer kick_data;
  GMainContext *context; /* where the queue runs */

  /* Queue modes. @mode and @poll_ns are set from any thread; the rest
   * belongs to the queue's thread, which applies a new mode in its source. */
  gint mode;             /* VhostUserQueueMode, atomic */
  guint64 poll_ns;       /* atomic */
  gint applied_mode;     /* the mode the source runs */
  gboolean polling;      /* kicks off: the source peeks at the available index */
  gboolean device_notify; /* what the device asked with set_notification() */
  gboolean pending_kick; /* emit queue-kicked at the next dispatch */
  gint64 poll_deadline;  /* ADAPTIVE: when polling ends (monotonic µs) */
  guint16 poll_seen_idx; /* the available index at the last emission while polling */

  /* The data path: the started ring, and the elements popped from it. */
  VhuSplitRing ring;
  VhuElementPool *pool;
  guint64 features;  /* acknowledged, as the ring uses them */
  VhuDirtyLog *log;  /* while LOG_ALL is acknowledged */
  VhuInflight *inflight; /* the device's in-flight buffer, for the next start */
  int log_call_fd;   /* borrowed from the device: kicked after logged writes */
  VhuDrainedFunc drained_func;
  gpointer drained_data;

  /* The ring areas, translated in @mem (which keeps them mapped). */
  VhuMemTable *mem;
  gpointer desc;
  gpointer avail;
  gpointer used;
};


VhostUserVirtqueue *vhu_virtqueue_new (VhostUserDevice *device, guint index, GMainContext *context);
void vhu_virtqueue_reset (VhostUserVirtqueue *vq);

gboolean vhu_virtqueue_is_configured (VhostUserVirtqueue *vq);
gboolean vhu_virtqueue_translate (VhostUserVirtqueue *vq, VhuMemTable *mem, GError **error);
void vhu_virtqueue_forget_translation (VhostUserVirtqueue *vq);

void vhu_virtqueue_set_kick_fd (VhostUserVirtqueue *vq, int fd, VhuKickFunc func, gpointer user_data);
void vhu_virtqueue_set_call_fd (VhostUserVirtqueue *vq, int fd);
void vhu_virtqueue_set_err_fd (VhostUserVirtqueue *vq, int fd);
void vhu_virtqueue_set_size (VhostUserVirtqueue *vq, guint size);
void vhu_virtqueue_set_enabled (VhostUserVirtqueue *vq, gboolean enabled);
void vhu_virtqueue_set_started (VhostUserVirtqueue *vq, gboolean started);
void vhu_virtqueue_mark_broken (VhostUserVirtqueue *vq);

gboolean vhu_virtqueue_start_ring (VhostUserVirtqueue *vq, GError **error);
void vhu_virtqueue_stop_ring (VhostUserVirtqueue *vq);
void vhu_virtqueue_set_log (VhostUserVirtqueue *vq, VhuDirtyLog *log, int log_call_fd);
void vhu_virtqueue_set_inflight (VhostUserVirtqueue *vq, VhuInflight *inflight);
void vhu_virtqueue_set_drained_func (VhostUserVirtqueue *vq, VhuDrainedFunc func, gpointer data);

/* The usual pop, inline (pop() and pop_many()): an element for the chain
 * vhu_split_ring_pop_fast() took, mapped with the ring's memory; NULL,
 * nothing changed, for anything else. The caller then compares
 * vhu_fault_guard_count() with the ring's faults_seen. */
static inline VhuElement *
vhu_virtqueue_pop_fast (VhostUserVirtqueue *vq)
{
  VhuElement *elem = vhu_element_pool_take (vq->pool);

  if (G_UNLIKELY (!vhu_split_ring_pop_fast (&vq->ring, elem)))
    {
      vhu_element_pool_put_back (vq->pool, elem);
      return NULL;
    }
  if (G_UNLIKELY (elem->mem != vq->ring.mem))
    vhu_element_set_memory (elem, vq->ring.mem);
  return elem;
}

G_END_DECLS
