/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Carrying out one request on the image with blocking system calls: what a
 * worker thread does, and what the io_uring engine hands to one for the
 * operations io_uring has no opcode for (discard on a block device) or that
 * need several steps (a write-zeroes falling back to writing zeroes).
 */

#pragma once

#include <glib.h>

#include "vhu-blk-request.h"

G_BEGIN_DECLS

/* The image: a regular file or a block device. */
typedef struct
{
  int fd;
  gboolean is_blockdev;
} VhuBlkFile;

/* Does @req and sets its status. Thread-safe: touches only @req, the guest
 * buffers it names and the file. */
void vhu_blk_exec (const VhuBlkFile *file, VhuBlkRequest *req);

/* After @done bytes of a READ or WRITE were transferred: drops them from the
 * front of the request's segments and moves its offset on. Returns TRUE when
 * nothing is left. */
gboolean vhu_blk_request_advance (VhuBlkRequest *req, gsize done);

G_END_DECLS
