/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Guest memory that the front-end can still shrink (a memfd it did not let
 * us seal) turns an access past the new end of file into SIGBUS. The fault
 * guard catches SIGBUS in the mappings registered with it, maps a private
 * zero page over the faulting page so that the access completes, and counts
 * the fault. The data path compares the count with what it saw before and
 * breaks the queue that read the vanished memory; nothing crashes.
 *
 * Faults outside registered ranges are passed on to the handler that was
 * installed before (by default the process dies, as it would have).
 */

#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct _VhuFaultGuard VhuFaultGuard;

VhuFaultGuard *vhu_fault_guard_register (gpointer addr, gsize size);
void vhu_fault_guard_unregister (VhuFaultGuard *guard);
gboolean vhu_fault_guard_faulted (const VhuFaultGuard *guard);

/* Faults caught so far (see vhu_fault_guard_count()); written by the
 * handler only. Internal to the library: not exported. */
extern gint vhu_fault_guard_faults;

/* How many faults were caught so far, in any registered range: read on
 * every pop, hence inline. */
static inline guint
vhu_fault_guard_count (void)
{
  return (guint) __atomic_load_n (&vhu_fault_guard_faults, __ATOMIC_ACQUIRE);
}

G_END_DECLS
