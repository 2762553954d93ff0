/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The guest memory table. Every value here comes from the front-end, so each
 * region is validated (sizes, overflow, overlaps, file size) before anything
 * is mapped, and a table is only built once every mapping succeeded.
 *
 * A table is immutable after construction and is read concurrently by the
 * queue workers, so it keeps no lookup cache. It holds two index arrays of
 * compact entries, one sorted by guest address and one by user address,
 * which are binary searched: O(log n), no allocation, no syscall.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "vhost-user-error.h"
#include "vhu-memory.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

typedef struct
{
  guint64 start; /* guest_addr or user_addr, depending on the index */
  guint64 size;
  guint8 *host;
  VhuMemRegion *region;
} VhuMemIndexEntry;

struct _VhuMemTable
{
  gatomicrefcount ref_count;
  guint n_regions;
  guint64 guest_end;
  VhuMemIndexEntry *by_uva;     /* entries + n_regions */
  VhuMemIndexEntry entries[];   /* [0, n): by guest_addr; [n, 2n): by user_addr */
};

/* Where and how much to map for one region, decided before mapping. */
typedef struct
{
  guint64 map_offset; /* mmap_offset rounded down to the alignment */
  gsize map_len;      /* rounded up to the alignment */
  gsize delta;        /* mmap_offset - map_offset */
} VhuMapPlan;

static gsize
page_size (void)
{
  long ps = sysconf (_SC_PAGESIZE);

  return ps > 0 ? (gsize) ps : 4096;
}

/* ---- regions ---------------------------------------------------------- */

static VhuMemRegion *
region_ref (VhuMemRegion *region)
{
  g_atomic_int_inc (&region->ref_count);
  return region;
}

static void
region_unref (VhuMemRegion *region)
{
  if (!g_atomic_int_dec_and_test (&region->ref_count))
    return;

  vhu_fault_guard_unregister (region->guard);
  if (region->mmap_addr != NULL)
    munmap (region->mmap_addr, region->mmap_size);
  if (region->fd >= 0)
    close (region->fd);
  g_free (region);
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

/*
 * Computes the page-aligned range to map for [mmap_offset, mmap_offset + size)
 * with the given alignment (a power of two). FALSE if it overflows.
 */
static gboolean
plan_mapping (guint64 mmap_offset, guint64 size, gsize align, VhuMapPlan *plan)
{
  guint64 delta = mmap_offset & (align - 1);
  guint64 len;

  if (!g_uint64_checked_add (&len, delta, size) || !g_uint64_checked_add (&len, len, align - 1))
    return FALSE;
  len &= ~((guint64) align - 1);
  if (len > G_MAXSIZE)
    return FALSE;

  plan->map_offset = mmap_offset - delta;
  plan->map_len = (gsize) len;
  plan->delta = (gsize) delta;
  return TRUE;
}

/* Checks of the values alone, no fd involved. */
static gboolean
validate_desc (const VhuMemRegionDesc *desc, guint index, GError **error)
{
  guint64 end;
  VhuMapPlan plan;

  if (desc->size == 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u has size 0"), index);
      return FALSE;
    }
  if (!g_uint64_checked_add (&end, desc->guest_addr, desc->size))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u: guest address 0x%" G_GINT64_MODIFIER
                     "x + size 0x%" G_GINT64_MODIFIER "x overflows"),
                   index, desc->guest_addr, desc->size);
      return FALSE;
    }
  if (!g_uint64_checked_add (&end, desc->user_addr, desc->size))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u: user address 0x%" G_GINT64_MODIFIER
                     "x + size 0x%" G_GINT64_MODIFIER "x overflows"),
                   index, desc->user_addr, desc->size);
      return FALSE;
    }
  if (!g_uint64_checked_add (&end, desc->mmap_offset, desc->size))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u: mmap offset 0x%" G_GINT64_MODIFIER
                     "x + size 0x%" G_GINT64_MODIFIER "x overflows"),
                   index, desc->mmap_offset, desc->size);
      return FALSE;
    }
  if (!plan_mapping (desc->mmap_offset, desc->size, page_size (), &plan))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u: mapping of size 0x%" G_GINT64_MODIFIER
                     "x at offset 0x%" G_GINT64_MODIFIER "x overflows when page aligned"),
                   index, desc->size, desc->mmap_offset);
      return FALSE;
    }
  if (end > (guint64) G_MAXINT64)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u: mmap offset 0x%" G_GINT64_MODIFIER
                     "x + size 0x%" G_GINT64_MODIFIER "x is beyond the largest file offset"),
                   index, desc->mmap_offset, desc->size);
      return FALSE;
    }
  return TRUE;
}

static gboolean
ranges_overlap (guint64 a, guint64 a_size, guint64 b, guint64 b_size)
{
  /* Both ends are known not to overflow. */
  return a < b + b_size && b < a + a_size;
}

static gboolean
check_overlap (const VhuMemRegionDesc *a,
               guint a_index,
               const VhuMemRegionDesc *b,
               guint b_index,
               GError **error)
{
  if (ranges_overlap (a->guest_addr, a->size, b->guest_addr, b->size))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory regions %u and %u overlap in guest-physical space (0x%"
                     G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x and 0x%"
                     G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x)"),
                   a_index, b_index, a->guest_addr, a->size, b->guest_addr, b->size);
      return FALSE;
    }
  if (ranges_overlap (a->user_addr, a->size, b->user_addr, b->size))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory regions %u and %u overlap in user-address space (0x%"
                     G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x and 0x%"
                     G_GINT64_MODIFIER "x+0x%" G_GINT64_MODIFIER "x)"),
                   a_index, b_index, a->user_addr, a->size, b->user_addr, b->size);
      return FALSE;
    }
  return TRUE;
}

/* Whether @desc and @fd name exactly @region: the same addresses, size and
 * offset, in the same file. */
static gboolean
same_region (const VhuMemRegion *region, const VhuMemRegionDesc *desc, int fd)
{
  struct stat a, b;

  if (region->guest_addr != desc->guest_addr || region->user_addr != desc->user_addr
      || region->size != desc->size || region->mmap_offset != desc->mmap_offset)
    return FALSE;
  return fd >= 0 && fstat (region->fd, &a) == 0 && fstat (fd, &b) == 0 && a.st_dev == b.st_dev
         && a.st_ino == b.st_ino;
}

static VhuMemRegionDesc
region_desc (const VhuMemRegion *region)
{
  VhuMemRegionDesc d = {
    .guest_addr = region->guest_addr,
    .size = region->size,
    .user_addr = region->user_addr,
    .mmap_offset = region->mmap_offset,
  };
  return d;
}

/*
 * Checks the fd of a region (after the values were validated) and decides
 * what to map. Seals the file against shrinking first when it can, so that a
 * sealable memfd cannot be truncated under the mapping once checked.
 */
static gboolean
prepare_region (const VhuMemRegionDesc *desc, int fd, guint index, VhuMapPlan *plan, GError **error)
{
  struct stat st;
  struct statfs stfs;
  gsize align = page_size ();
  int saved_errno;

  if (fd < 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Memory region %u: invalid file descriptor %d"), index, fd);
      return FALSE;
    }

  /* EPERM/EINVAL (not sealable, or already sealed) and EBUSY are fine. */
  (void) fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK);

  if (fstat (fd, &st) < 0)
    {
      saved_errno = errno;
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Memory region %u: invalid file descriptor %d: %s"), index, fd,
                   g_strerror (saved_errno));
      return FALSE;
    }
  if (S_ISREG (st.st_mode)
      && (st.st_size < 0 || (guint64) st.st_size < desc->mmap_offset + desc->size))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Memory region %u: file of %" G_GINT64_FORMAT " bytes is smaller than "
                     "mmap offset 0x%" G_GINT64_MODIFIER "x + size 0x%" G_GINT64_MODIFIER "x"),
                   index, (gint64) st.st_size, desc->mmap_offset, desc->size);
      return FALSE;
    }

  /* hugetlbfs files can only be mapped in whole huge pages. */
  if (fstatfs (fd, &stfs) == 0
      && (unsigned long) stfs.f_type == (unsigned long) HUGETLBFS_MAGIC
      && stfs.f_bsize > 0 && (gsize) stfs.f_bsize > align
      && ((gsize) stfs.f_bsize & ((gsize) stfs.f_bsize - 1)) == 0)
    align = (gsize) stfs.f_bsize;

  if (!plan_mapping (desc->mmap_offset, desc->size, align, plan))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Memory region %u: mapping of size 0x%" G_GINT64_MODIFIER
                     "x at offset 0x%" G_GINT64_MODIFIER "x overflows when aligned to %"
                     G_GSIZE_FORMAT " bytes"),
                   index, desc->size, desc->mmap_offset, align);
      return FALSE;
    }
  return TRUE;
}

/* Maps a prepared region. On success the region owns *fd and *fd is set to -1. */
static VhuMemRegion *
map_region (const VhuMemRegionDesc *desc,
            int *fd,
            const VhuMapPlan *plan,
            guint index,
            GError **error)
{
  VhuMemRegion *region;
  gpointer addr;
  int seals;

  addr = mmap (NULL, plan->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, *fd,
               (off_t) plan->map_offset);
  if (addr == MAP_FAILED)
    {
      int saved_errno = errno;
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Memory region %u: cannot map 0x%" G_GSIZE_MODIFIER "x bytes at offset 0x%"
                     G_GINT64_MODIFIER "x: %s"),
                   index, plan->map_len, plan->map_offset, g_strerror (saved_errno));
      return NULL;
    }

  region = g_new0 (VhuMemRegion, 1);
  region->guest_addr = desc->guest_addr;
  region->size = desc->size;
  region->user_addr = desc->user_addr;
  region->mmap_offset = desc->mmap_offset;
  region->mmap_addr = addr;
  region->mmap_size = plan->map_len;
  region->host_addr = (guint8 *) addr + plan->delta;
  region->fd = *fd;
  region->adds = 1;
  /* A file that was not sealed against shrinking can lose pages under the
   * mapping: accesses to them must not kill the process (M19). */
  seals = fcntl (region->fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK))
    region->guard = vhu_fault_guard_register (addr, plan->map_len);
  region->ref_count = 1;
  *fd = -1;
  return region;
}

/* ---- tables ----------------------------------------------------------- */

static int
compare_entries (const void *a, const void *b)
{
  const VhuMemIndexEntry *ea = a;
  const VhuMemIndexEntry *eb = b;

  return ea->start < eb->start ? -1 : ea->start > eb->start ? 1 : 0;
}

/* Builds a table from n regions, taking one reference of each. */
static VhuMemTable *
table_new_take (VhuMemRegion **regions, guint n)
{
  VhuMemTable *table;

  table = g_malloc0 (sizeof (VhuMemTable) + sizeof (VhuMemIndexEntry) * 2 * (gsize) n);
  g_atomic_ref_count_init (&table->ref_count);
  table->n_regions = n;
  table->by_uva = table->entries + n;

  for (guint i = 0; i < n; i++)
    {
      VhuMemRegion *r = regions[i];
      guint64 end = r->guest_addr + r->size;

      table->entries[i] = (VhuMemIndexEntry){ r->guest_addr, r->size, r->host_addr, r };
      table->by_uva[i] = (VhuMemIndexEntry){ r->user_addr, r->size, r->host_addr, r };
      if (end > table->guest_end)
        table->guest_end = end;
    }
  if (n > 1)
    {
      qsort (table->entries, n, sizeof (VhuMemIndexEntry), compare_entries);
      qsort (table->by_uva, n, sizeof (VhuMemIndexEntry), compare_entries);
    }
  return table;
}

VhuMemTable *
vhu_mem_table_new_empty (void)
{
  return table_new_take (NULL, 0);
}

VhuMemTable *
vhu_mem_table_ref (VhuMemTable *table)
{
  g_return_val_if_fail (table != NULL, NULL);

  g_atomic_ref_count_inc (&table->ref_count);
  return table;
}

void
vhu_mem_table_unref (VhuMemTable *table)
{
  g_return_if_fail (table != NULL);

  if (!g_atomic_ref_count_dec (&table->ref_count))
    return;
  for (guint i = 0; i < table->n_regions; i++)
    region_unref (table->entries[i].region);
  g_free (table);
}

guint
vhu_mem_table_get_n_regions (const VhuMemTable *table)
{
  g_return_val_if_fail (table != NULL, 0);

  return table->n_regions;
}

/* Regions are in guest-address order. */
const VhuMemRegion *
vhu_mem_table_get_region (const VhuMemTable *table, guint i)
{
  g_return_val_if_fail (table != NULL, NULL);

  if (i >= table->n_regions)
    return NULL;
  return table->entries[i].region;
}

guint64
vhu_mem_table_get_guest_end (const VhuMemTable *table)
{
  g_return_val_if_fail (table != NULL, 0);

  return table->guest_end;
}

/* Whether memory of the table vanished under its mapping (see
 * vhu-fault-guard.h). */
gboolean
vhu_mem_table_faulted (const VhuMemTable *table)
{
  for (guint i = 0; i < table->n_regions; i++)
    if (vhu_fault_guard_faulted (table->entries[i].region->guard))
      return TRUE;
  return FALSE;
}

/* Closes fds[0..n), each distinct number once, and sets them to -1. */
static void
close_fds (int *fds, guint n)
{
  for (guint i = 0; i < n; i++)
    {
      int fd = fds[i];

      if (fd < 0)
        continue;
      for (guint j = i + 1; j < n; j++)
        if (fds[j] == fd)
          fds[j] = -1;
      close_fd (&fds[i]);
    }
}

VhuMemTable *
vhu_mem_table_new_from_descs (const VhuMemRegionDesc *descs,
                              int *fds,
                              guint n_regions,
                              guint max_regions,
                              GError **error)
{
  g_autofree VhuMapPlan *plans = NULL;
  g_autofree VhuMemRegion **regions = NULL;
  guint n_mapped = 0;

  g_return_val_if_fail (n_regions == 0 || fds != NULL, NULL);

  if (n_regions == 0)
    {
      g_set_error_literal (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                           _("The memory table has no region"));
      return NULL;
    }
  if (descs == NULL)
    {
      g_set_error_literal (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                           _("The memory table has no region descriptions"));
      goto fail;
    }
  if (n_regions > max_regions)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("The memory table has %u regions, at most %u are supported"), n_regions,
                   max_regions);
      goto fail;
    }

  /* Values first, then overlaps, then the fds, then map. */
  for (guint i = 0; i < n_regions; i++)
    if (!validate_desc (&descs[i], i, error))
      goto fail;

  for (guint i = 0; i < n_regions; i++)
    for (guint j = i + 1; j < n_regions; j++)
      if (!check_overlap (&descs[i], i, &descs[j], j, error))
        goto fail;

  for (guint i = 0; i < n_regions; i++)
    for (guint j = i + 1; j < n_regions; j++)
      if (fds[i] >= 0 && fds[i] == fds[j])
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("Memory regions %u and %u have the same file descriptor %d"), i, j,
                       fds[i]);
          goto fail;
        }

  plans = g_new0 (VhuMapPlan, n_regions);
  for (guint i = 0; i < n_regions; i++)
    if (!prepare_region (&descs[i], fds[i], i, &plans[i], error))
      goto fail;

  regions = g_new0 (VhuMemRegion *, n_regions);
  for (n_mapped = 0; n_mapped < n_regions; n_mapped++)
    {
      regions[n_mapped] = map_region (&descs[n_mapped], &fds[n_mapped], &plans[n_mapped],
                                      n_mapped, error);
      if (regions[n_mapped] == NULL)
        goto fail;
    }

  return table_new_take (regions, n_regions);

fail:
  for (guint i = 0; i < n_mapped; i++)
    region_unref (regions[i]);
  close_fds (fds, n_regions);
  return NULL;
}

VhuMemTable *
vhu_mem_table_add (const VhuMemTable *table,
                   const VhuMemRegionDesc *desc,
                   int fd,
                   guint max_regions,
                   GError **error)
{
  g_autofree VhuMemRegion **regions = NULL;
  VhuMemRegion *region;
  VhuMapPlan plan;
  guint n;

  if (G_UNLIKELY (table == NULL || desc == NULL))
    {
      close_fd (&fd);
      g_return_val_if_reached (NULL);
    }

  n = table->n_regions;
  if (n >= max_regions)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Cannot add a memory region: all %u slots are in use"), max_regions);
      goto fail;
    }
  if (!validate_desc (desc, n, error))
    goto fail;
  for (guint i = 0; i < n; i++)
    {
      VhuMemRegion *r = table->entries[i].region;
      VhuMemRegionDesc existing = region_desc (r);

      /* The same region of the same file again: QEMU 7.2 sends each
       * region once per vhost device, and a multi-queue net device is
       * several. It is counted, and removed when removed as often. */
      if (same_region (r, desc, fd))
        {
          close_fd (&fd);
          r->adds++;
          regions = g_new (VhuMemRegion *, n);
          for (guint j = 0; j < n; j++)
            regions[j] = region_ref (table->entries[j].region);
          return table_new_take (regions, n);
        }
      if (!check_overlap (&existing, i, desc, n, error))
        goto fail;
    }
  if (!prepare_region (desc, fd, n, &plan, error))
    goto fail;
  region = map_region (desc, &fd, &plan, n, error);
  if (region == NULL)
    goto fail;

  regions = g_new (VhuMemRegion *, n + 1);
  for (guint i = 0; i < n; i++)
    regions[i] = region_ref (table->entries[i].region);
  regions[n] = region;
  return table_new_take (regions, n + 1);

fail:
  close_fd (&fd);
  return NULL;
}

/* Index of the last entry whose start is <= addr, or -1 if none. */
static inline gssize
index_find (const VhuMemIndexEntry *entries, guint n, guint64 addr)
{
  guint lo = 0;
  guint hi = n;

  /* entries[0, lo) start at or below addr, entries[hi, n) above it. */
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;

      if (entries[mid].start <= addr)
        lo = mid + 1;
      else
        hi = mid;
    }
  return (gssize) lo - 1;
}

VhuMemTable *
vhu_mem_table_remove (const VhuMemTable *table, const VhuMemRegionDesc *desc, GError **error)
{
  g_autofree VhuMemRegion **regions = NULL;
  const VhuMemRegion *found = NULL;
  gssize idx;
  guint n = 0;

  g_return_val_if_fail (table != NULL, NULL);
  g_return_val_if_fail (desc != NULL, NULL);

  idx = index_find (table->entries, table->n_regions, desc->guest_addr);
  if (idx >= 0)
    {
      const VhuMemRegion *r = table->entries[idx].region;

      if (r->guest_addr == desc->guest_addr && r->user_addr == desc->user_addr
          && r->size == desc->size)
        found = r;
    }
  if (found == NULL)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("No memory region with guest address 0x%" G_GINT64_MODIFIER
                     "x, user address 0x%" G_GINT64_MODIFIER "x and size 0x%" G_GINT64_MODIFIER
                     "x"),
                   desc->guest_addr, desc->user_addr, desc->size);
      return NULL;
    }

  /* Added more than once: it stays until removed as often. */
  if (found->adds > 1)
    {
      table->entries[idx].region->adds--;
      regions = g_new (VhuMemRegion *, table->n_regions);
      for (guint i = 0; i < table->n_regions; i++)
        regions[n++] = region_ref (table->entries[i].region);
      return table_new_take (regions, n);
    }

  regions = g_new (VhuMemRegion *, table->n_regions);
  for (guint i = 0; i < table->n_regions; i++)
    if (i != (guint) idx)
      regions[n++] = region_ref (table->entries[i].region);
  return table_new_take (regions, n);
}

/* ---- translation (hot path: no allocation, no syscall) ----------------- */

static inline const VhuMemIndexEntry *
lookup_entry (const VhuMemTable *table, guint64 gpa, gssize *out_index)
{
  gssize i = index_find (table->entries, table->n_regions, gpa);

  if (i < 0 || gpa - table->entries[i].start >= table->entries[i].size)
    return NULL;
  if (out_index != NULL)
    *out_index = i;
  return &table->entries[i];
}

const VhuMemRegion *
vhu_mem_table_lookup_gpa (const VhuMemTable *table, guint64 gpa)
{
  const VhuMemIndexEntry *e;

  g_return_val_if_fail (table != NULL, NULL);

  e = lookup_entry (table, gpa, NULL);
  return e != NULL ? e->region : NULL;
}

gpointer
vhu_mem_table_gpa_to_host (const VhuMemTable *table, guint64 gpa, guint64 *len)
{
  const VhuMemIndexEntry *e;
  guint64 offset;
  guint64 avail;

  g_return_val_if_fail (table != NULL, NULL);

  e = lookup_entry (table, gpa, NULL);
  if (e == NULL)
    {
      if (len != NULL)
        *len = 0;
      return NULL;
    }
  offset = gpa - e->start;
  avail = e->size - offset;
  if (len != NULL && *len > avail)
    *len = avail;
  return e->host + offset;
}

gpointer
vhu_mem_table_uva_to_host (const VhuMemTable *table, guint64 uva, guint64 len)
{
  const VhuMemIndexEntry *e;
  gssize i;
  guint64 offset;

  g_return_val_if_fail (table != NULL, NULL);

  if (len == 0 || uva + len < uva)
    return NULL;
  i = index_find (table->by_uva, table->n_regions, uva);
  if (i < 0)
    return NULL;
  e = &table->by_uva[i];
  offset = uva - e->start;
  if (offset >= e->size || len > e->size - offset)
    return NULL;
  return e->host + offset;
}

gint
vhu_mem_table_gpa_to_iov (const VhuMemTable *table,
                          guint64 gpa,
                          guint64 len,
                          struct iovec *iov,
                          guint max_iov)
{
  const VhuMemIndexEntry *e;
  gssize i;
  guint n = 0;

  g_return_val_if_fail (table != NULL, -1);
  g_return_val_if_fail (iov != NULL || max_iov == 0, -1);

  if (len == 0)
    return 0;
  if (gpa + len < gpa)
    return -1;

  e = lookup_entry (table, gpa, &i);
  if (e == NULL)
    return -1;

  for (;;)
    {
      guint64 offset = gpa - e->start;
      guint64 chunk = e->size - offset;

      if (chunk > len)
        chunk = len;
      if (n >= max_iov || chunk > G_MAXSIZE)
        return -1;
      iov[n].iov_base = e->host + offset;
      iov[n].iov_len = (gsize) chunk;
      n++; /* at most one per region: n_regions fits in a gint */

      len -= chunk;
      if (len == 0)
        return (gint) n;
      gpa += chunk;

      /* gpa is the end of this region: the next one must start exactly there. */
      i++;
      if ((guint) i >= table->n_regions || table->entries[i].start != gpa)
        return -1;
      e = &table->entries[i];
    }
}
