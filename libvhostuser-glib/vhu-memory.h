/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The guest memory table. A VhuMemTable is an immutable, atomically
 * refcounted snapshot: SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG build a new
 * snapshot and swap it in, and a queue worker that still holds the old one
 * keeps its mappings alive until it drops its reference (RCU-style). Regions
 * are refcounted too, so adding a region does not remap the others.
 */

#pragma once

#include <glib.h>
#include <sys/uio.h>

#include "vhu-fault-guard.h"
#include "vhu-message.h"

G_BEGIN_DECLS

typedef struct _VhuMemRegion VhuMemRegion;
typedef struct _VhuMemTable VhuMemTable;

struct _VhuMemRegion
{
  guint64 guest_addr;
  guint64 size;
  guint64 user_addr;
  guint64 mmap_offset;
  guint8 *host_addr; /* this process's address of guest_addr */
  gpointer mmap_addr;
  gsize mmap_size;
  int fd; /* owned; closed with the mapping when the last reference goes */
  VhuFaultGuard *guard; /* while the file can still shrink under the mapping */
  guint adds; /* ADD_MEM_REG requests that named it (QEMU 7.2 repeats them per queue pair) */
  gint ref_count;
};

VhuMemTable *vhu_mem_table_new_empty (void);
VhuMemTable *vhu_mem_table_ref (VhuMemTable *table);
void vhu_mem_table_unref (VhuMemTable *table);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuMemTable, vhu_mem_table_unref)

guint vhu_mem_table_get_n_regions (const VhuMemTable *table);
const VhuMemRegion *vhu_mem_table_get_region (const VhuMemTable *table, guint i);
guint64 vhu_mem_table_get_guest_end (const VhuMemTable *table);
gboolean vhu_mem_table_faulted (const VhuMemTable *table);

VhuMemTable *vhu_mem_table_new_from_descs (const VhuMemRegionDesc *descs,
                                           int *fds,
                                           guint n_regions,
                                           guint max_regions,
                                           GError **error);
VhuMemTable *vhu_mem_table_add (const VhuMemTable *table,
                                const VhuMemRegionDesc *desc,
                                int fd,
                                guint max_regions,
                                GError **error);
VhuMemTable *vhu_mem_table_remove (const VhuMemTable *table,
                                   const VhuMemRegionDesc *desc,
                                   GError **error);

const VhuMemRegion *vhu_mem_table_lookup_gpa (const VhuMemTable *table, guint64 gpa);
gpointer vhu_mem_table_gpa_to_host (const VhuMemTable *table, guint64 gpa, guint64 *len);
gpointer vhu_mem_table_uva_to_host (const VhuMemTable *table, guint64 uva, guint64 len);
gint vhu_mem_table_gpa_to_iov (const VhuMemTable *table,
                               guint64 gpa,
                               guint64 len,
                               struct iovec *iov,
                               guint max_iov);

G_END_DECLS
