/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The in-flight tracking buffer. Our layout, which the front-end keeps as an
 * opaque blob: num_queues queue regions back to back, each being the spec's
 * queue header (VhuInflightQueueSplit or VhuInflightQueuePacked) followed by
 * queue_size descriptor entries, rounded up to VHU_INFLIGHT_ALIGN (64) bytes
 * so that every region starts on a cache line.
 *
 * The buffer comes back from the front-end on reconnection (SET_INFLIGHT_FD)
 * and is untrusted: here only the geometry and each header's version and
 * desc_num are checked. The descriptor entries are never read here; whoever
 * walks them later (vhu_split_ring_set_inflight()) checks them again, and
 * every index in them, when a ring starts.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <gio/gio.h>

#include "vhost-user-error.h"
#include "vhu-inflight.h"
#include "vhu-message.h"

#define VHU_INFLIGHT_ALIGN 64u

G_STATIC_ASSERT (sizeof (VhuInflightDescSplit) == 16);
G_STATIC_ASSERT (sizeof (VhuInflightQueueSplit) == 16);
G_STATIC_ASSERT (sizeof (VhuInflightDescPacked) == 32);
G_STATIC_ASSERT (sizeof (VhuInflightQueuePacked) == 32);

struct _VhuInflight
{
  gint ref_count;
  guint8 *base;        /* mmap_addr + (offset % page size): queue 0 */
  gpointer mmap_addr;
  gsize mmap_len;
  guint64 size;        /* num_queues * region_size */
  gsize region_size;
  guint16 num_queues;
  guint16 queue_size;
  gboolean packed;
};

gsize
vhu_inflight_queue_region_size (guint16 queue_size, gboolean packed)
{
  gsize size;

  if (packed)
    size = sizeof (VhuInflightQueuePacked) + (gsize) queue_size * sizeof (VhuInflightDescPacked);
  else
    size = sizeof (VhuInflightQueueSplit) + (gsize) queue_size * sizeof (VhuInflightDescSplit);
  return (size + VHU_INFLIGHT_ALIGN - 1) & ~((gsize) VHU_INFLIGHT_ALIGN - 1);
}

static gboolean
validate_geometry (guint16 num_queues,
                   guint16 queue_size,
                   gboolean packed,
                   guint64 *total,
                   GError **error)
{
  if (num_queues == 0)
    {
      g_set_error_literal (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                           _("Inflight buffer: the number of queues is 0"));
      return FALSE;
    }
  if (queue_size == 0 || queue_size > VHU_MAX_QUEUE_SIZE)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: queue size %u is not in 1..%u"), queue_size,
                   VHU_MAX_QUEUE_SIZE);
      return FALSE;
    }
  if (!packed && (queue_size & (queue_size - 1)) != 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: queue size %u of a split ring is not a power of 2"),
                   queue_size);
      return FALSE;
    }
  if (!g_uint64_checked_mul (total, num_queues,
                             vhu_inflight_queue_region_size (queue_size, packed))
      || *total > G_MAXSIZE)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: %u queues of size %u do not fit in memory"), num_queues,
                   queue_size);
      return FALSE;
    }
  return TRUE;
}

/* Clears a queue region and writes a fresh header (and the packed free list). */
static void
init_queue_region (guint8 *region, gsize region_size, guint16 queue_size, gboolean packed)
{
  memset (region, 0, region_size);
  if (packed)
    {
      VhuInflightQueuePacked *q = (VhuInflightQueuePacked *) (gpointer) region;

      q->version = VHU_INFLIGHT_VERSION;
      q->desc_num = queue_size;
      /* Every entry is free: 0 -> 1 -> ... -> queue_size - 1 -> queue_size (end). */
      for (guint i = 0; i < queue_size; i++)
        q->desc[i].next = (guint16) (i + 1);
    }
  else
    {
      VhuInflightQueueSplit *q = (VhuInflightQueueSplit *) (gpointer) region;

      q->version = VHU_INFLIGHT_VERSION;
      q->desc_num = queue_size;
    }
}

static VhuInflight *
inflight_new_mapped (gpointer addr,
                     gsize mmap_len,
                     gsize delta,
                     guint64 size,
                     guint16 num_queues,
                     guint16 queue_size,
                     gboolean packed)
{
  VhuInflight *inflight = g_new0 (VhuInflight, 1);

  inflight->ref_count = 1;
  inflight->mmap_addr = addr;
  inflight->mmap_len = mmap_len;
  inflight->base = (guint8 *) addr + delta;
  inflight->size = size;
  inflight->region_size = vhu_inflight_queue_region_size (queue_size, packed);
  inflight->num_queues = num_queues;
  inflight->queue_size = queue_size;
  inflight->packed = packed;
  return inflight;
}

static guint64
page_size (void)
{
  long ps = sysconf (_SC_PAGESIZE);

  return ps > 0 ? (guint64) ps : 4096;
}

VhuInflight *
vhu_inflight_new (guint16 num_queues,
                  guint16 queue_size,
                  gboolean packed,
                  int *out_fd,
                  GError **error)
{
  VhuInflight *inflight;
  guint64 total;
  gpointer addr;
  int fd;
  int saved_errno;

  g_return_val_if_fail (out_fd != NULL, NULL);

  *out_fd = -1;
  if (!validate_geometry (num_queues, queue_size, packed, &total, error))
    return NULL;

  fd = memfd_create ("vhost-user-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Inflight buffer: cannot create a memfd: %s"), g_strerror (saved_errno));
      return NULL;
    }
  if (ftruncate (fd, (off_t) total) < 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Inflight buffer: cannot resize the memfd to %" G_GUINT64_FORMAT " bytes: %s"),
                   total, g_strerror (saved_errno));
      close (fd);
      return NULL;
    }
  if (fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Inflight buffer: cannot seal the memfd: %s"), g_strerror (saved_errno));
      close (fd);
      return NULL;
    }
  addr = mmap (NULL, (gsize) total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED)
    {
      saved_errno = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Inflight buffer: cannot map %" G_GUINT64_FORMAT " bytes: %s"), total,
                   g_strerror (saved_errno));
      close (fd);
      return NULL;
    }

  inflight = inflight_new_mapped (addr, (gsize) total, 0, total, num_queues, queue_size, packed);
  for (guint i = 0; i < num_queues; i++)
    init_queue_region (inflight->base + (gsize) i * inflight->region_size, inflight->region_size,
                       queue_size, packed);

  /* The mapping does not need the fd: it goes to the caller, for the reply. */
  *out_fd = fd;
  return inflight;
}

VhuInflight *
vhu_inflight_new_from_fd (int fd,
                          guint64 mmap_size,
                          guint64 mmap_offset,
                          guint16 num_queues,
                          guint16 queue_size,
                          gboolean packed,
                          GError **error)
{
  VhuInflight *inflight = NULL;
  struct stat st;
  guint64 page = page_size ();
  guint64 total;
  guint64 end;
  guint64 delta;
  guint64 len;
  gsize region_size;
  gpointer addr;

  if (fd < 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: invalid file descriptor %d"), fd);
      return NULL;
    }
  if (!validate_geometry (num_queues, queue_size, packed, &total, error))
    goto out;
  if (mmap_size < total)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: size %" G_GUINT64_FORMAT " is smaller than the %"
                     G_GUINT64_FORMAT " bytes of %u queues of size %u"),
                   mmap_size, total, num_queues, queue_size);
      goto out;
    }
  if (!g_uint64_checked_add (&end, mmap_offset, mmap_size) || end > (guint64) G_MAXINT64)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: offset 0x%" G_GINT64_MODIFIER "x + size 0x%"
                     G_GINT64_MODIFIER "x overflows"),
                   mmap_offset, mmap_size);
      goto out;
    }
  /* The rings store 64-bit counters in the entries: they must be aligned. */
  if (mmap_offset % sizeof (guint64) != 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: offset 0x%" G_GINT64_MODIFIER "x is not a multiple of 8"),
                   mmap_offset);
      goto out;
    }
  /* Only the part we use is mapped; total + delta + page cannot overflow here. */
  delta = mmap_offset & (page - 1);
  len = (delta + total + page - 1) & ~(page - 1);
  if (len > G_MAXSIZE)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: %" G_GUINT64_FORMAT " bytes do not fit in memory"), total);
      goto out;
    }

  (void) fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK);

  if (fstat (fd, &st) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: invalid file descriptor %d: %s"), fd,
                   g_strerror (saved_errno));
      goto out;
    }
  if (S_ISREG (st.st_mode) && (st.st_size < 0 || (guint64) st.st_size < end))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Inflight buffer: file of %" G_GINT64_FORMAT " bytes is smaller than offset %"
                     G_GUINT64_FORMAT " + size %" G_GUINT64_FORMAT),
                   (gint64) st.st_size, mmap_offset, mmap_size);
      goto out;
    }

  addr = mmap (NULL, (gsize) len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
               (off_t) (mmap_offset - delta));
  if (addr == MAP_FAILED)
    {
      int saved_errno = errno;
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Inflight buffer: cannot map %" G_GUINT64_FORMAT " bytes at offset %"
                     G_GUINT64_FORMAT ": %s"),
                   total, mmap_offset, g_strerror (saved_errno));
      goto out;
    }
  inflight = inflight_new_mapped (addr, (gsize) len, (gsize) delta, total, num_queues, queue_size,
                                  packed);
  region_size = inflight->region_size;

  /* Check every header before touching any: a rejected buffer stays as it was.
   * Each field is read once (the front-end may change it concurrently). */
  for (guint i = 0; i < num_queues; i++)
    {
      /* version and desc_num are at the same offsets in both layouts. */
      VhuInflightQueueSplit *q =
        (VhuInflightQueueSplit *) (gpointer) (inflight->base + (gsize) i * region_size);
      guint16 version = __atomic_load_n (&q->version, __ATOMIC_RELAXED);
      guint16 desc_num = __atomic_load_n (&q->desc_num, __ATOMIC_RELAXED);

      if (version != 0 && version != VHU_INFLIGHT_VERSION)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("Inflight buffer: queue %u has version %u, expected %u"), i, version,
                       VHU_INFLIGHT_VERSION);
          g_clear_pointer (&inflight, vhu_inflight_unref);
          goto out;
        }
      if (version != 0 && desc_num != queue_size)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("Inflight buffer: queue %u has %u descriptors, expected %u"), i,
                       desc_num, queue_size);
          g_clear_pointer (&inflight, vhu_inflight_unref);
          goto out;
        }
    }
  for (guint i = 0; i < num_queues; i++)
    {
      guint8 *region = inflight->base + (gsize) i * region_size;
      VhuInflightQueueSplit *q = (VhuInflightQueueSplit *) (gpointer) region;

      if (__atomic_load_n (&q->version, __ATOMIC_RELAXED) == 0)
        init_queue_region (region, region_size, queue_size, packed);
    }

out:
  close (fd);
  return inflight;
}

VhuInflight *
vhu_inflight_ref (VhuInflight *inflight)
{
  g_return_val_if_fail (inflight != NULL, NULL);

  g_atomic_int_inc (&inflight->ref_count);
  return inflight;
}

/* The mapping goes with the last reference, on whichever thread drops it. */
void
vhu_inflight_unref (VhuInflight *inflight)
{
  if (inflight == NULL || !g_atomic_int_dec_and_test (&inflight->ref_count))
    return;
  munmap (inflight->mmap_addr, inflight->mmap_len);
  g_free (inflight);
}

void
vhu_inflight_free (VhuInflight *inflight)
{
  vhu_inflight_unref (inflight);
}

/* The device was reset: nothing is in flight any more. Every queue region
 * is as vhu_inflight_new() made it. No ring may be using the buffer. */
void
vhu_inflight_reset (VhuInflight *inflight)
{
  g_return_if_fail (inflight != NULL);

  for (guint i = 0; i < inflight->num_queues; i++)
    init_queue_region (inflight->base + (gsize) i * inflight->region_size, inflight->region_size,
                       inflight->queue_size, inflight->packed);
}

guint16
vhu_inflight_get_num_queues (const VhuInflight *inflight)
{
  g_return_val_if_fail (inflight != NULL, 0);

  return inflight->num_queues;
}

guint16
vhu_inflight_get_queue_size (const VhuInflight *inflight)
{
  g_return_val_if_fail (inflight != NULL, 0);

  return inflight->queue_size;
}

/* The size of the area in use: num_queues * vhu_inflight_queue_region_size(). */
guint64
vhu_inflight_get_mmap_size (const VhuInflight *inflight)
{
  g_return_val_if_fail (inflight != NULL, 0);

  return inflight->size;
}

gboolean
vhu_inflight_is_packed (const VhuInflight *inflight)
{
  g_return_val_if_fail (inflight != NULL, FALSE);

  return inflight->packed;
}

gpointer
vhu_inflight_get_queue_region (VhuInflight *inflight, guint16 queue_index)
{
  g_return_val_if_fail (inflight != NULL, NULL);

  if (queue_index >= inflight->num_queues)
    return NULL;
  return inflight->base + (gsize) queue_index * inflight->region_size;
}
