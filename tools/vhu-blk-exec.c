/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vhu-blk-exec.h"

/* What writing zeroes by hand writes from: no allocation on any path. */
static const guint8 zeroes[64 * 1024];

gboolean
vhu_blk_request_advance (VhuBlkRequest *req, gsize done)
{
  guint i = 0;

  req->offset += done;
  while (i < req->n_iov && done >= req->iov[i].iov_len)
    {
      done -= req->iov[i].iov_len;
      i++;
    }
  if (i < req->n_iov)
    {
      req->iov[i].iov_base = (guint8 *) req->iov[i].iov_base + done;
      req->iov[i].iov_len -= done;
    }
  if (i > 0)
    {
      memmove (req->iov, req->iov + i, (req->n_iov - i) * sizeof (struct iovec));
      req->n_iov -= i;
    }
  return req->n_iov == 0;
}

static guint8
exec_rw (const VhuBlkFile *file, VhuBlkRequest *req)
{
  while (req->n_iov > 0)
    {
      ssize_t n;

      if (req->op == VHU_BLK_OP_READ)
        n = preadv (file->fd, req->iov, req->n_iov, req->offset);
      else
        n = pwritev2 (file->fd, req->iov, req->n_iov, req->offset, req->dsync ? RWF_DSYNC : 0);
      if (n < 0)
        {
          if (errno == EINTR || errno == EAGAIN)
            continue;
          return VHU_BLK_S_IOERR;
        }
      /* Nothing more: the image shrank under the request. */
      if (n == 0)
        return VHU_BLK_S_IOERR;
      vhu_blk_request_advance (req, n);
    }
  return VHU_BLK_S_OK;
}

static gboolean
write_zeroes_by_hand (const VhuBlkFile *file, guint64 offset, guint64 len)
{
  while (len > 0)
    {
      ssize_t n = pwrite (file->fd, zeroes, MIN (len, sizeof zeroes), offset);

      if (n < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (n <= 0)
        return FALSE;
      offset += n;
      len -= n;
    }
  return TRUE;
}

static gboolean
fallocate_retry (int fd, int mode, guint64 offset, guint64 len, int *error_out)
{
  int r;

  do
    r = fallocate (fd, mode, offset, len);
  while (r < 0 && errno == EINTR);
  *error_out = r < 0 ? errno : 0;
  return r == 0;
}

static gboolean
unsupported_errno (int e)
{
  return e == EOPNOTSUPP || e == ENOTSUP || e == ENOSYS || e == ENOTTY;
}

/* Discard is a hint: where the image cannot give space back, it is done. */
static gboolean
discard_range (const VhuBlkFile *file, guint64 offset, guint64 len)
{
  int e;

  if (file->is_blockdev)
    {
      guint64 range[2] = { offset, len };

      if (ioctl (file->fd, BLKDISCARD, range) == 0)
        return TRUE;
      return unsupported_errno (errno);
    }
  if (fallocate_retry (file->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len, &e))
    return TRUE;
  return unsupported_errno (e);
}

/* Reads back as zeroes afterwards, by the cheapest means the image has. */
static gboolean
write_zeroes_range (const VhuBlkFile *file, guint64 offset, guint64 len, gboolean unmap)
{
  int e;

  if (unmap
      && fallocate_retry (file->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, len, &e))
    return TRUE;
  if (fallocate_retry (file->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, len, &e))
    return TRUE;
  if (!unsupported_errno (e) && e != EINVAL)
    return FALSE;
  return write_zeroes_by_hand (file, offset, len);
}

typedef struct
{
  guint64 sector;
  guint32 num_sectors;
  guint32 flags;
} Segment;

/* Copies @len bytes at @offset of the request's segments (the guest's
 * memory: read once, here). */
static gsize
iov_read (const struct iovec *iov, guint n, gsize offset, guint8 *buf, gsize len)
{
  gsize done = 0;

  for (guint i = 0; i < n && done < len; i++)
    {
      gsize chunk;

      if (offset >= iov[i].iov_len)
        {
          offset -= iov[i].iov_len;
          continue;
        }
      chunk = MIN (iov[i].iov_len - offset, len - done);
      memcpy (buf + done, (const guint8 *) iov[i].iov_base + offset, chunk);
      done += chunk;
      offset = 0;
    }
  return done;
}

/* DISCARD and WRITE_ZEROES: every segment is checked before any is done, so
 * a bad one leaves the image untouched. */
static guint8
exec_ranges (const VhuBlkFile *file, VhuBlkRequest *req)
{
  guint8 raw[VHU_BLK_MAX_DISCARD_SEG * VHU_BLK_SEGMENT_SIZE];
  Segment segs[VHU_BLK_MAX_DISCARD_SEG];
  gboolean discard = req->op == VHU_BLK_OP_DISCARD;
  guint32 max_sectors = discard ? VHU_BLK_MAX_DISCARD_SECTORS : VHU_BLK_MAX_WRITE_ZEROES_SECTORS;
  guint n = req->n_segments;

  G_STATIC_ASSERT (VHU_BLK_MAX_DISCARD_SEG == VHU_BLK_MAX_WRITE_ZEROES_SEG);

  if (n == 0 || n > VHU_BLK_MAX_DISCARD_SEG)
    return VHU_BLK_S_IOERR;
  if (iov_read (req->iov, req->n_iov, 0, raw, n * VHU_BLK_SEGMENT_SIZE) != n * VHU_BLK_SEGMENT_SIZE)
    return VHU_BLK_S_IOERR;

  for (guint i = 0; i < n; i++)
    {
      const guint8 *p = raw + i * VHU_BLK_SEGMENT_SIZE;
      guint64 sector;
      guint32 num, flags;

      memcpy (&sector, p, 8);
      memcpy (&num, p + 8, 4);
      memcpy (&flags, p + 12, 4);
      segs[i].sector = sector = GUINT64_FROM_LE (sector);
      segs[i].num_sectors = num = GUINT32_FROM_LE (num);
      segs[i].flags = flags = GUINT32_FROM_LE (flags);

      /* Unknown flags, and unmap on a discard, are not supported (5.2.6.2). */
      if ((flags & ~VHU_BLK_WRITE_ZEROES_F_UNMAP) != 0
          || (discard && (flags & VHU_BLK_WRITE_ZEROES_F_UNMAP) != 0))
        return VHU_BLK_S_UNSUPP;
      if (num > max_sectors || sector > req->capacity || num > req->capacity - sector)
        return VHU_BLK_S_IOERR;
    }

  for (guint i = 0; i < n; i++)
    {
      guint64 offset = segs[i].sector * VHU_BLK_SECTOR_SIZE;
      guint64 len = (guint64) segs[i].num_sectors * VHU_BLK_SECTOR_SIZE;
      gboolean ok;

      if (len == 0)
        continue;
      if (discard)
        ok = discard_range (file, offset, len);
      else
        ok = write_zeroes_range (file, offset, len,
                                 (segs[i].flags & VHU_BLK_WRITE_ZEROES_F_UNMAP) != 0);
      if (!ok)
        return VHU_BLK_S_IOERR;
    }

  if (!discard && req->dsync && fdatasync (file->fd) < 0)
    return VHU_BLK_S_IOERR;
  return VHU_BLK_S_OK;
}

void
vhu_blk_exec (const VhuBlkFile *file, VhuBlkRequest *req)
{
  switch (req->op)
    {
    case VHU_BLK_OP_READ:
    case VHU_BLK_OP_WRITE:
      req->status = exec_rw (file, req);
      break;
    case VHU_BLK_OP_FLUSH:
      req->status = fdatasync (file->fd) == 0 ? VHU_BLK_S_OK : VHU_BLK_S_IOERR;
      break;
    case VHU_BLK_OP_DISCARD:
    case VHU_BLK_OP_WRITE_ZEROES:
      req->status = exec_ranges (file, req);
      break;
    default:
      req->status = VHU_BLK_S_UNSUPP;
      break;
    }
}
