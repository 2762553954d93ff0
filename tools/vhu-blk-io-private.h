/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * What the two engines of vhu-blk-io.h share: the common part of the engine
 * object and the table of their operations.
 */

#pragma once

#include "vhu-blk-io.h"

G_BEGIN_DECLS

typedef struct
{
  const char *name;
  void (*submit) (VhuBlkIo *io, VhuBlkRequest *req);
  void (*kick) (VhuBlkIo *io);
  /* Hands back what has finished, without blocking; returns how many. */
  guint (*process) (VhuBlkIo *io);
  void (*free) (VhuBlkIo *io);
} VhuBlkIoClass;

struct _VhuBlkIo
{
  const VhuBlkIoClass *klass;
  VhuBlkFile file;
  GMainContext *context;
  VhuBlkIoDoneFunc done;
  VhuBlkIoBatchFunc batch_done;
  gpointer user_data;
  guint in_flight; /* on the context's thread only */
  int wait_fd;     /* readable when process() may have something */
  VhuBlkIo *helper; /* an engine this one hands some requests to, or NULL */
};

void vhu_blk_io_init (VhuBlkIo *io,
                      const VhuBlkIoClass *klass,
                      const VhuBlkFile *file,
                      GMainContext *context,
                      VhuBlkIoDoneFunc done,
                      VhuBlkIoBatchFunc batch_done,
                      gpointer user_data);
/* Hands @req back (one completion of a batch). */
void vhu_blk_io_complete (VhuBlkIo *io, VhuBlkRequest *req);

/* The engines. io_uring fails when the kernel refuses a ring; @entries is
 * its submission queue's size (a power of two). */
VhuBlkIo *vhu_blk_io_threads_new (const VhuBlkFile *file,
                                  guint n_threads,
                                  GMainContext *context,
                                  VhuBlkIoDoneFunc done,
                                  VhuBlkIoBatchFunc batch_done,
                                  gpointer user_data,
                                  GError **error);
VhuBlkIo *vhu_blk_io_uring_new (const VhuBlkFile *file,
                                guint entries,
                                GMainContext *context,
                                VhuBlkIoDoneFunc done,
                                VhuBlkIoBatchFunc batch_done,
                                gpointer user_data,
                                GError **error);

G_END_DECLS
