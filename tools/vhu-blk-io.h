/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Asynchronous I/O on the image: requests go in from the thread of the
 * engine's GMainContext (the device's, or a queue's worker thread's) and
 * come back, done, on that context, so a slow disk never holds up the
 * control socket or the other queues. Two engines:
 *
 * - io_uring (liburing): reads, writes and flushes are submitted to the
 *   ring straight from the guest's buffers; the ring's eventfd is watched
 *   by a GSource. Discards and write-zeroes go to one worker thread.
 * - threads: a few worker threads doing preadv/pwritev, for kernels where
 *   io_uring is missing or forbidden (seccomp, sysctl).
 *
 * Completions are handed back one by one (VhuBlkIoDoneFunc) and then once
 * per batch (VhuBlkIoBatchFunc), so the device can publish a batch with one
 * used-index update and one interrupt.
 */

#pragma once

#include <glib.h>

#include "vhu-blk-exec.h"
#include "vhu-blk-request.h"

G_BEGIN_DECLS

typedef enum
{
  VHU_BLK_AIO_AUTO,     /* io_uring where it works, else threads */
  VHU_BLK_AIO_IO_URING,
  VHU_BLK_AIO_THREADS,
} VhuBlkAio;

typedef struct _VhuBlkIo VhuBlkIo;

typedef void (*VhuBlkIoDoneFunc) (VhuBlkRequest *req, gpointer user_data);
typedef void (*VhuBlkIoBatchFunc) (gpointer user_data);

/* @file is copied; its fd stays the caller's and must outlive the engine. */
VhuBlkIo *vhu_blk_io_new (VhuBlkAio aio,
                          const VhuBlkFile *file,
                          GMainContext *context,
                          VhuBlkIoDoneFunc done,
                          VhuBlkIoBatchFunc batch_done,
                          gpointer user_data,
                          GError **error);
/* "io_uring" or "threads". */
const char *vhu_blk_io_get_name (VhuBlkIo *io);

/* Queues @req; vhu_blk_io_kick() sends what was queued on its way (one
 * system call for a whole kick's worth of requests). */
void vhu_blk_io_submit (VhuBlkIo *io, VhuBlkRequest *req);
void vhu_blk_io_kick (VhuBlkIo *io);

/* Requests submitted and not yet handed back. */
guint vhu_blk_io_get_in_flight (VhuBlkIo *io);

/* Blocks until every request is handed back (through the callbacks, on the
 * calling thread, which must be the context's). */
void vhu_blk_io_drain (VhuBlkIo *io);

/* Drains, then frees. */
void vhu_blk_io_free (VhuBlkIo *io);

G_END_DECLS
