/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The dirty-page log: bit (page % 8) of byte (page / 8), page = gpa / 4096.
 * The front-end reads and clears it concurrently, so bits are set with
 * atomic read-modify-write operations, and nothing is ever written outside
 * the size the front-end gave.
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "vhost-user-error.h"
#include "vhu-dirty-log.h"

struct _VhuDirtyLog
{
  gatomicrefcount ref_count;
  guint8 *log;       /* mmap_addr + (offset % page size) */
  guint64 size;      /* bytes of log */
  guint64 max_page;  /* last page with a bit in the log */
  gpointer mmap_addr;
  gsize mmap_size;
};

VhuDirtyLog *
vhu_dirty_log_new (int fd, guint64 size, guint64 offset, GError **error)
{
  VhuDirtyLog *log = NULL;
  struct stat st;
  long ps = sysconf (_SC_PAGESIZE);
  guint64 page = ps > 0 ? (guint64) ps : 4096;
  guint64 end;
  guint64 delta;
  guint64 len;
  gpointer addr;

  if (fd < 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Dirty log: invalid file descriptor %d"), fd);
      return NULL;
    }
  if (size == 0)
    {
      g_set_error_literal (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                           _("Dirty log: size is 0"));
      goto out;
    }
  delta = offset & (page - 1);
  if (!g_uint64_checked_add (&end, offset, size) || end > (guint64) G_MAXINT64
      || !g_uint64_checked_add (&len, delta, size) || !g_uint64_checked_add (&len, len, page - 1)
      || (len & ~(page - 1)) > G_MAXSIZE)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Dirty log: offset 0x%" G_GINT64_MODIFIER "x + size 0x%" G_GINT64_MODIFIER
                     "x overflows"),
                   offset, size);
      goto out;
    }
  len &= ~(page - 1);

  /* Like guest memory, a sealable memfd cannot shrink under us once checked. */
  (void) fcntl (fd, F_ADD_SEALS, F_SEAL_SHRINK);

  if (fstat (fd, &st) < 0)
    {
      int saved_errno = errno;
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Dirty log: invalid file descriptor %d: %s"), fd, g_strerror (saved_errno));
      goto out;
    }
  if (S_ISREG (st.st_mode) && (st.st_size < 0 || (guint64) st.st_size < end))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Dirty log: file of %" G_GINT64_FORMAT " bytes is smaller than offset 0x%"
                     G_GINT64_MODIFIER "x + size 0x%" G_GINT64_MODIFIER "x"),
                   (gint64) st.st_size, offset, size);
      goto out;
    }

  addr = mmap (NULL, (gsize) len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t) (offset - delta));
  if (addr == MAP_FAILED)
    {
      int saved_errno = errno;
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Dirty log: cannot map 0x%" G_GINT64_MODIFIER "x bytes at offset 0x%"
                     G_GINT64_MODIFIER "x: %s"),
                   size, offset, g_strerror (saved_errno));
      goto out;
    }

  log = g_new0 (VhuDirtyLog, 1);
  g_atomic_ref_count_init (&log->ref_count);
  log->mmap_addr = addr;
  log->mmap_size = (gsize) len;
  log->log = (guint8 *) addr + delta;
  log->size = size;
  /* size * 8 - 1, saturated (a log that large covers every page anyway). */
  log->max_page = size > G_MAXUINT64 / 8 ? G_MAXUINT64 : size * 8 - 1;

out:
  close (fd);
  return log;
}

VhuDirtyLog *
vhu_dirty_log_ref (VhuDirtyLog *log)
{
  g_return_val_if_fail (log != NULL, NULL);

  g_atomic_ref_count_inc (&log->ref_count);
  return log;
}

void
vhu_dirty_log_unref (VhuDirtyLog *log)
{
  g_return_if_fail (log != NULL);

  if (!g_atomic_ref_count_dec (&log->ref_count))
    return;
  munmap (log->mmap_addr, log->mmap_size);
  g_free (log);
}

guint64
vhu_dirty_log_get_size (const VhuDirtyLog *log)
{
  g_return_val_if_fail (log != NULL, 0);

  return log->size;
}

gboolean
vhu_dirty_log_covers (const VhuDirtyLog *log, guint64 gpa, guint64 len)
{
  guint64 last;

  g_return_val_if_fail (log != NULL, FALSE);

  if (len == 0)
    return TRUE;
  if (!g_uint64_checked_add (&last, gpa, len - 1))
    return FALSE;
  return (last / VHU_LOG_PAGE) / 8 < log->size;
}

static inline void
set_bits (guint8 *byte, guint8 mask)
{
  __atomic_fetch_or (byte, mask, __ATOMIC_SEQ_CST);
}

/*
 * Marks every page of [gpa, gpa + len) that has a bit in the log; the rest is
 * ignored. Data path: no allocation, no syscall.
 */
void
vhu_dirty_log_mark (VhuDirtyLog *log, guint64 gpa, guint64 len)
{
  guint64 first;
  guint64 last;
  guint64 page;

  g_return_if_fail (log != NULL);

  if (len == 0)
    return;
  first = gpa / VHU_LOG_PAGE;
  /* A range running past the end of the address space is clamped there. */
  if (!g_uint64_checked_add (&last, gpa, len - 1))
    last = G_MAXUINT64;
  last /= VHU_LOG_PAGE;
  if (first > log->max_page)
    return;
  if (last > log->max_page)
    last = log->max_page;

  page = first;
  while (page <= last)
    {
      guint8 *byte = log->log + page / 8;
      guint bit = (guint) (page % 8);
      guint64 remaining = last - page; /* pages after this one */

      if (bit == 0 && remaining >= 63 && page % 64 == 0 && ((guintptr) byte & 7) == 0)
        {
          /* 64 whole pages: one word, all bits set (endianness does not matter). */
          __atomic_fetch_or ((guint64 *) (gpointer) byte, G_MAXUINT64, __ATOMIC_SEQ_CST);
          page += 64;
        }
      else
        {
          guint n = 8 - bit;
          guint8 mask;

          if (remaining < n - 1)
            n = (guint) remaining + 1;
          mask = (guint8) (((1u << n) - 1) << bit);
          set_bits (byte, mask);
          page += n;
        }
      if (page == 0) /* wrapped past G_MAXUINT64 */
        break;
    }
}
