/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The data path of a kick: pop every element, parse it into one of the
 * queue's preallocated requests (the header and the status byte cut off,
 * the data left in guest memory), and either answer it at once (errors,
 * GET_ID) or hand it to the I/O engine. Completions come back on the
 * device's context and are published per queue as one batch: all but the
 * last are filled, one flush, and the last is pushed (which notifies the
 * driver and, when the front-end waits in GET_VRING_BASE for the queue to
 * drain, lets the library answer).
 *
 * Every request holds a reference on its element, which keeps the guest
 * memory it points into mapped, so a completion after a disconnection or a
 * memory table change writes into live memory. A request popped before its
 * queue last started (a front-end that disconnected, or reset the device,
 * while the I/O ran) is stale: it is dropped at completion, never put into
 * the new ring. And while any stale request is in flight, no queue takes new
 * requests: a new write must never be overtaken by an old one to the same
 * sectors (the guest resubmits what it had in flight, then goes on).
 * (GET_VRING_BASE makes no stale requests: the library answers it once the
 * queue has drained.)
 *
 * Threads: a queue may run on a worker thread's context
 * (vhu_blk_device_set_queue_context()). Its requests then go to an I/O
 * engine of that context (one engine per context, an IoGroup), so that
 * they complete, and are pushed, on the queue's own thread. What queues
 * share is the count of stale requests and the kicks deferred for them
 * (under a lock), the counters (per queue, read with atomic loads), and
 * the capacity and the write cache setting, which the device's thread
 * changes (atomics).
 */

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <gio/gio.h>

#include "vhu-blk-device.h"

#define BIT(n) (G_GUINT64_CONSTANT (1) << (n))

/* Requests are allocated this many at a time, and never freed before the
 * device is. */
#define REQUEST_BLOCK 32u
/* A request's own segment array starts this large and grows (rarely) up to
 * the most an element can have. */
#define REQUEST_IOV_INITIAL (VHU_BLK_SEG_MAX + 2u)

typedef struct _BlkQueue BlkQueue;
typedef struct _IoGroup IoGroup;

/* A counter written by its queue's thread alone: a relaxed store, so that
 * a reader on another thread never sees a torn value. */
#define STAT_INC(counter) __atomic_store_n (&(counter), (counter) + 1, __ATOMIC_RELAXED)
#define STAT_GET(counter) __atomic_load_n (&(counter), __ATOMIC_RELAXED)

/* The queues of one context, and the I/O engine whose completions come
 * there. */
struct _IoGroup
{
  VhuBlkDevice *device;
  GMainContext *context;
  VhuBlkIo *io;
  BlkQueue *touched;    /* the completion batch being collected */
};

struct _BlkQueue
{
  VhuBlkDevice *device;
  VhostUserVirtqueue *vq;
  IoGroup *group;       /* where the queue runs */
  GSource *resume;      /* takes a deferred kick up, on the queue's context */
  gboolean flush_negotiated; /* VIRTIO_BLK_F_FLUSH, as the ring started */
  guint64 stats[VHU_BLK_STAT_N];
  guint epoch;          /* bumped at every start of the ring */
  VhuBlkRequest *free;  /* ready for the next element */
  guint n_allocated;
  guint n_current;      /* in the engine, popped since the last start */
  guint64 n_requests;   /* taken from the ring, in all */
  gboolean kick_deferred; /* kicked while stale requests were in flight (under stale_lock) */
  GPtrArray *blocks;    /* the allocations, for finalize */

  /* The completion batch being collected. */
  VhuBlkRequest *held;  /* done, not yet published: pushed last */
  guint n_filled;       /* filled before it */
  gboolean touched;
  BlkQueue *next_touched;
};

struct _VhuBlkDevice
{
  VhostUserDevice parent_instance;

  char *path;
  VhuBlkFile file;
  gboolean read_only;
  gboolean has_serial;
  guint8 serial[VHU_BLK_ID_BYTES];

  guint64 capacity;      /* sectors (atomic: the device's thread changes it) */
  guint32 blk_size;      /* logical block size, bytes */
  guint8 physical_block_exp;
  guint16 min_io_size;   /* logical blocks */
  guint32 opt_io_size;   /* logical blocks */
  guint32 discard_alignment; /* sectors */
  gint writeback;        /* atomic: the driver sets it through the config space */

  VhuBlkAio aio;         /* the engine every group uses */
  GPtrArray *groups;     /* IoGroup: the device's context's first */
  guint n_queues;
  BlkQueue *queues;
  GMutex stale_lock;
  gint n_stale;          /* in an engine, popped before their queue restarted (atomic; changed under stale_lock) */

  GSource *poll_source;
  GCancellable *cancellable;
  gint disposing;        /* atomic: no new requests, the engines drain */
};

enum
{
  PROP_0,
  PROP_CAPACITY,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (VhuBlkDevice, vhu_blk_device, VHOST_USER_TYPE_DEVICE)

/* ------------------------------------------------------------------------ */
/* The image                                                                */

static gboolean
query_size (VhuBlkDevice *self, guint64 *bytes, GError **error)
{
  struct stat st;
  int e;

  if (fstat (self->file.fd, &st) < 0)
    goto fail;
  if (S_ISBLK (st.st_mode))
    {
      if (ioctl (self->file.fd, BLKGETSIZE64, bytes) < 0)
        goto fail;
      return TRUE;
    }
  *bytes = st.st_size;
  return TRUE;

fail:
  e = errno;
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), _("Cannot get the size of %s: %s"),
               self->path, g_strerror (e));
  return FALSE;
}

static guint8
log2_u32 (guint32 v)
{
  guint8 n = 0;

  while (v > 1)
    {
      v >>= 1;
      n++;
    }
  return n;
}

/* Block sizes and the discard granularity: the block device's own, or the
 * file system's block for a file (512-byte logical blocks). */
static void
query_topology (VhuBlkDevice *self, const struct stat *st)
{
  guint32 physical = 4096;

  self->blk_size = VHU_BLK_SECTOR_SIZE;
  self->min_io_size = 1;
  self->opt_io_size = 0;

  if (self->file.is_blockdev)
    {
      int logical = 0;
      unsigned int value = 0;

      if (ioctl (self->file.fd, BLKSSZGET, &logical) == 0 && logical >= 512 && logical <= 65536
          && (logical & (logical - 1)) == 0)
        self->blk_size = logical;
      if (ioctl (self->file.fd, BLKPBSZGET, &value) == 0 && value >= self->blk_size)
        physical = value;
      else
        physical = self->blk_size;
      if (ioctl (self->file.fd, BLKIOMIN, &value) == 0 && value >= self->blk_size)
        self->min_io_size = MIN (value / self->blk_size, G_MAXUINT16);
      if (ioctl (self->file.fd, BLKIOOPT, &value) == 0)
        self->opt_io_size = value / self->blk_size;
    }
  else if (st->st_blksize >= 512 && st->st_blksize <= 65536
           && (st->st_blksize & (st->st_blksize - 1)) == 0)
    physical = st->st_blksize;

  physical = MAX (physical, self->blk_size);
  self->physical_block_exp = log2_u32 (physical / self->blk_size);
  self->discard_alignment = physical / VHU_BLK_SECTOR_SIZE;
}

static gboolean
open_image (VhuBlkDevice *self, GError **error)
{
  struct stat st;
  guint64 bytes;
  int e;

  self->file.fd = open (self->path, (self->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (self->file.fd < 0)
    {
      e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), _("Cannot open %s: %s"),
                   self->path, g_strerror (e));
      return FALSE;
    }
  if (fstat (self->file.fd, &st) < 0)
    {
      e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), _("Cannot stat %s: %s"),
                   self->path, g_strerror (e));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) && !S_ISBLK (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_REGULAR_FILE,
                   _("%s is neither a regular file nor a block device"), self->path);
      return FALSE;
    }
  self->file.is_blockdev = S_ISBLK (st.st_mode);

  /* Two writers on one image corrupt it: refuse to be the second. */
  if (flock (self->file.fd, (self->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0)
    {
      e = errno;
      if (e == EWOULDBLOCK)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, _("%s is in use by another process"),
                     self->path);
      else
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), _("Cannot lock %s: %s"),
                     self->path, g_strerror (e));
      return FALSE;
    }

  if (!query_size (self, &bytes, error))
    return FALSE;
  self->capacity = bytes / VHU_BLK_SECTOR_SIZE;
  query_topology (self, &st);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */

static void
queue_grow (BlkQueue *q, guint n)
{
  VhuBlkRequest *block = g_new0 (VhuBlkRequest, n);

  g_ptr_array_add (q->blocks, block);
  for (guint i = 0; i < n; i++)
    {
      block[i].queue = q;
      block[i].next = q->free;
      q->free = &block[i];
    }
  q->n_allocated += n;
}

static VhuBlkRequest *
take_request (BlkQueue *q)
{
  VhuBlkRequest *req;

  /* Only when the ring is larger than at its start (never in steady state:
   * queue-started preallocates one request per descriptor). */
  if (G_UNLIKELY (q->free == NULL))
    queue_grow (q, REQUEST_BLOCK);
  req = q->free;
  q->free = req->next;
  req->next = NULL;
  return req;
}

static void
release_request (BlkQueue *q, VhuBlkRequest *req)
{
  g_clear_pointer (&req->elem, vhost_user_virtq_element_unref);
  req->status_ptr = NULL;
  req->in_engine = FALSE;
  req->next = q->free;
  q->free = req;
}

static void
submit (VhuBlkDevice *self, BlkQueue *q, VhuBlkRequest *req)
{
  req->in_engine = TRUE;
  q->n_current++;
  vhu_blk_io_submit (q->group->io, req);
}

/* The last stale request landed: the queues kicked meanwhile go on, each
 * on its own context. */
static void
stale_request_done (VhuBlkDevice *self)
{
  g_mutex_lock (&self->stale_lock);
  g_assert (self->n_stale > 0);
  if (g_atomic_int_dec_and_test (&self->n_stale))
    for (guint i = 0; i < self->n_queues; i++)
      {
        BlkQueue *q = &self->queues[i];

        if (q->kick_deferred)
          {
            q->kick_deferred = FALSE;
            g_source_set_ready_time (q->resume, 0);
          }
      }
  g_mutex_unlock (&self->stale_lock);
}

/* Where a request's answer goes: it is published with the rest of the
 * batch by batch_done(). On the queue's context. */
static void
request_done (VhuBlkRequest *req, gpointer user_data)
{
  IoGroup *group = user_data;
  VhuBlkDevice *self = group->device;
  BlkQueue *q = req->queue;

  if (req->status_ptr != NULL)
    *req->status_ptr = req->status;
  if (G_UNLIKELY (req->status != VHU_BLK_S_OK))
    STAT_INC (q->stats[VHU_BLK_STAT_ERRORS]);

  if (G_UNLIKELY (req->epoch != q->epoch))
    {
      /* Popped from an earlier start of the ring: the library forgets the
       * element; it must not go into the new ring. */
      g_assert (req->in_engine);
      release_request (q, req);
      stale_request_done (self);
      return;
    }
  if (req->in_engine)
    q->n_current--;

  if (q->held != NULL)
    {
      vhost_user_virtqueue_fill (q->vq, q->held->elem, q->held->written, q->n_filled++);
      release_request (q, q->held);
    }
  q->held = req;
  if (!q->touched)
    {
      q->touched = TRUE;
      q->next_touched = group->touched;
      group->touched = q;
    }
}

/* Publishes what the batch completed, queue by queue. */
static void
publish (IoGroup *group)
{
  BlkQueue *q;

  while ((q = group->touched) != NULL)
    {
      group->touched = q->next_touched;
      q->next_touched = NULL;
      q->touched = FALSE;
      if (q->n_filled > 0)
        vhost_user_virtqueue_flush (q->vq, q->n_filled);
      q->n_filled = 0;
      vhost_user_virtqueue_push (q->vq, q->held->elem, q->held->written);
      release_request (q, g_steal_pointer (&q->held));
    }
}

static void process_queue (VhuBlkDevice *self, BlkQueue *q);

static void
batch_done (gpointer user_data)
{
  publish (user_data);
}

static void
finish_now (BlkQueue *q, VhuBlkRequest *req, guint8 status)
{
  req->status = status;
  request_done (req, q->group);
}

/* Copies the segments covering [@skip, @skip + @len) of @iov into the
 * request. */
static void
take_segments (VhuBlkRequest *req, const struct iovec *iov, guint n, gsize skip, gsize len)
{
  if (G_UNLIKELY (req->iov_cap < n))
    {
      req->iov_cap = MAX (n, REQUEST_IOV_INITIAL);
      req->iov = g_renew (struct iovec, req->iov, req->iov_cap);
    }
  req->n_iov = 0;
  for (guint i = 0; i < n && len > 0; i++)
    {
      gsize chunk;

      if (skip >= iov[i].iov_len)
        {
          skip -= iov[i].iov_len;
          continue;
        }
      chunk = MIN (iov[i].iov_len - skip, len);
      req->iov[req->n_iov].iov_base = (guint8 *) iov[i].iov_base + skip;
      req->iov[req->n_iov].iov_len = chunk;
      req->n_iov++;
      len -= chunk;
      skip = 0;
    }
}

/* @bytes at @sector: whole sectors, inside the image, no overflow. */
static guint64
get_capacity (VhuBlkDevice *self)
{
  return __atomic_load_n (&self->capacity, __ATOMIC_RELAXED);
}

static gboolean
range_ok (guint64 capacity, guint64 sector, guint64 bytes)
{
  guint64 sectors = bytes / VHU_BLK_SECTOR_SIZE;

  if (bytes % VHU_BLK_SECTOR_SIZE != 0)
    return FALSE;
  return sector <= capacity && sectors <= capacity - sector;
}

static gboolean
write_through (VhuBlkDevice *self, BlkQueue *q)
{
  return !g_atomic_int_get (&self->writeback) || !q->flush_negotiated;
}

static void
handle_element (VhuBlkDevice *self, BlkQueue *q, VhostUserVirtqElement *elem)
{
  VhuBlkRequest *req = take_request (q);
  guint n_out, n_in;
  const struct iovec *out = vhost_user_virtq_element_get_out_iov (elem, &n_out);
  const struct iovec *in = vhost_user_virtq_element_get_in_iov (elem, &n_in);
  gsize out_size = vhost_user_virtq_element_get_out_size (elem);
  gsize in_size = vhost_user_virtq_element_get_in_size (elem);
  gsize data_out, data_in;
  guint8 hdr[VHU_BLK_OUTHDR_SIZE];
  guint32 type;
  guint64 sector;

  STAT_INC (q->n_requests);
  req->elem = elem;
  req->epoch = q->epoch;
  req->status_ptr = NULL;
  req->written = 0;
  req->n_iov = 0;
  req->n_segments = 0;
  req->capacity = get_capacity (self);
  req->dsync = FALSE;

  /* The status byte is the last device-writable byte. Without one there is
   * no answer to give: the element goes back with nothing written. */
  if (in_size == 0)
    {
      finish_now (q, req, VHU_BLK_S_IOERR);
      return;
    }
  for (guint i = n_in; i-- > 0;)
    if (in[i].iov_len > 0)
      {
        req->status_ptr = (guint8 *) in[i].iov_base + in[i].iov_len - 1;
        break;
      }
  req->written = in_size;

  if (out_size < VHU_BLK_OUTHDR_SIZE)
    {
      finish_now (q, req, VHU_BLK_S_IOERR);
      return;
    }
  /* The header is read once, into our own copy. */
  vhost_user_virtq_element_read (elem, 0, hdr, sizeof hdr);
  memcpy (&type, hdr, 4);
  memcpy (&sector, hdr + 8, 8);
  type = GUINT32_FROM_LE (type);
  sector = GUINT64_FROM_LE (sector);
  data_out = out_size - VHU_BLK_OUTHDR_SIZE;
  data_in = in_size - 1;

  switch (type)
    {
    case VHU_BLK_T_IN:
      STAT_INC (q->stats[VHU_BLK_STAT_READS]);
      if (data_out != 0 || !range_ok (req->capacity, sector, data_in))
        break;
      if (data_in == 0)
        {
          finish_now (q, req, VHU_BLK_S_OK);
          return;
        }
      req->op = VHU_BLK_OP_READ;
      req->offset = sector * VHU_BLK_SECTOR_SIZE;
      take_segments (req, in, n_in, 0, data_in);
      submit (self, q, req);
      return;

    case VHU_BLK_T_OUT:
      STAT_INC (q->stats[VHU_BLK_STAT_WRITES]);
      if (self->read_only || data_in != 0 || !range_ok (req->capacity, sector, data_out))
        break;
      if (data_out == 0)
        {
          finish_now (q, req, VHU_BLK_S_OK);
          return;
        }
      req->op = VHU_BLK_OP_WRITE;
      req->offset = sector * VHU_BLK_SECTOR_SIZE;
      req->dsync = write_through (self, q);
      take_segments (req, out, n_out, VHU_BLK_OUTHDR_SIZE, data_out);
      submit (self, q, req);
      return;

    case VHU_BLK_T_FLUSH:
      STAT_INC (q->stats[VHU_BLK_STAT_FLUSHES]);
      if (data_out != 0 || data_in != 0)
        break;
      if (self->read_only)
        {
          finish_now (q, req, VHU_BLK_S_OK);
          return;
        }
      req->op = VHU_BLK_OP_FLUSH;
      submit (self, q, req);
      return;

    case VHU_BLK_T_GET_ID:
      STAT_INC (q->stats[VHU_BLK_STAT_GET_IDS]);
      if (data_out != 0)
        break;
      if (!self->has_serial)
        {
          finish_now (q, req, VHU_BLK_S_UNSUPP);
          return;
        }
      vhost_user_virtq_element_write (elem, 0, self->serial, MIN (data_in, VHU_BLK_ID_BYTES));
      finish_now (q, req, VHU_BLK_S_OK);
      return;

    case VHU_BLK_T_DISCARD:
    case VHU_BLK_T_WRITE_ZEROES:
      STAT_INC (q->stats[type == VHU_BLK_T_DISCARD ? VHU_BLK_STAT_DISCARDS : VHU_BLK_STAT_WRITE_ZEROES]);
      if (self->read_only || data_in != 0 || data_out == 0 || data_out % VHU_BLK_SEGMENT_SIZE != 0)
        break;
      if (data_out / VHU_BLK_SEGMENT_SIZE > VHU_BLK_MAX_DISCARD_SEG)
        {
          finish_now (q, req, VHU_BLK_S_UNSUPP);
          return;
        }
      req->op = type == VHU_BLK_T_DISCARD ? VHU_BLK_OP_DISCARD : VHU_BLK_OP_WRITE_ZEROES;
      req->n_segments = data_out / VHU_BLK_SEGMENT_SIZE;
      req->dsync = write_through (self, q);
      take_segments (req, out, n_out, VHU_BLK_OUTHDR_SIZE, data_out);
      submit (self, q, req);
      return;

    default:
      STAT_INC (q->stats[VHU_BLK_STAT_UNSUPPORTED]);
      finish_now (q, req, VHU_BLK_S_UNSUPP);
      return;
    }

  /* Malformed: buffers in the wrong direction, a range outside the image,
   * a write to a read-only image. */
  finish_now (q, req, VHU_BLK_S_IOERR);
}

/* ------------------------------------------------------------------------ */
/* VhostUserDevice                                                          */

static BlkQueue *
blk_queue (VhuBlkDevice *self, VhostUserVirtqueue *vq)
{
  guint index = vhost_user_virtqueue_get_index (vq);

  g_assert (index < self->n_queues);
  return &self->queues[index];
}

/* Takes every request the driver made available, answers the bad ones and
 * starts the I/O of the others. */
static void
process_queue (VhuBlkDevice *self, BlkQueue *q)
{
  VhostUserVirtqElement *elem;

  while ((elem = vhost_user_virtqueue_pop (q->vq, NULL)) != NULL)
    handle_element (self, q, elem);
  vhu_blk_io_kick (q->group->io);
  /* What was answered at once. */
  publish (q->group);
}

/* A kick: served, or deferred while stale requests are in flight (the
 * last of them to land resumes the queue, see stale_request_done()). */
static void
take_kick (VhuBlkDevice *self, BlkQueue *q)
{
  if (G_UNLIKELY (g_atomic_int_get (&self->n_stale) > 0))
    {
      gboolean deferred;

      g_mutex_lock (&self->stale_lock);
      deferred = g_atomic_int_get (&self->n_stale) > 0;
      if (deferred)
        q->kick_deferred = TRUE;
      g_mutex_unlock (&self->stale_lock);
      if (deferred)
        return;
    }
  if (G_LIKELY (!g_atomic_int_get (&self->disposing)))
    process_queue (self, q);
}

static void
vhu_blk_device_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *vq)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (device);

  take_kick (self, blk_queue (self, vq));

  VHOST_USER_DEVICE_CLASS (vhu_blk_device_parent_class)->queue_kicked (device, vq);
}

typedef struct
{
  GSource source;
  BlkQueue *q;
} ResumeSource;

static gboolean
resume_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  BlkQueue *q = ((ResumeSource *) source)->q;

  g_source_set_ready_time (source, -1);
  if (vhost_user_virtqueue_get_started (q->vq))
    take_kick (q->device, q);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs resume_funcs = {
  .dispatch = resume_dispatch,
};

static void
queue_attach_resume (BlkQueue *q)
{
  q->resume = g_source_new (&resume_funcs, sizeof (ResumeSource));
  ((ResumeSource *) q->resume)->q = q;
  g_source_set_static_name (q->resume, "[vhost-user-blk] deferred kick");
  g_source_attach (q->resume, q->group->context);
}

static void
vhu_blk_device_queue_started (VhostUserDevice *device, VhostUserVirtqueue *vq)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (device);
  BlkQueue *q = blk_queue (self, vq);
  guint size = vhost_user_virtqueue_get_size (vq);

  /* Requests still in flight from before belong to a ring that is gone. */
  q->epoch++;
  g_mutex_lock (&self->stale_lock);
  g_atomic_int_add (&self->n_stale, q->n_current);
  q->kick_deferred = FALSE;
  g_mutex_unlock (&self->stale_lock);
  q->n_current = 0;
  /* The features cannot change while the ring runs. */
  q->flush_negotiated = vhost_user_device_has_feature (device, VHU_BLK_F_FLUSH);
  /* One request per descriptor: the ring never has more in flight. */
  if (q->n_allocated < size)
    queue_grow (q, size - q->n_allocated);

  VHOST_USER_DEVICE_CLASS (vhu_blk_device_parent_class)->queue_started (device, vq);
}

static guint64
vhu_blk_device_get_features (VhostUserDevice *device)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (device);
  guint64 features = VHOST_USER_DEVICE_CLASS (vhu_blk_device_parent_class)->get_features (device);

  features |= BIT (VHU_BLK_F_SIZE_MAX) | BIT (VHU_BLK_F_SEG_MAX) | BIT (VHU_BLK_F_BLK_SIZE)
              | BIT (VHU_BLK_F_FLUSH) | BIT (VHU_BLK_F_TOPOLOGY) | BIT (VHU_BLK_F_CONFIG_WCE)
              | BIT (VHU_BLK_F_MQ);
  if (self->read_only)
    features |= BIT (VHU_BLK_F_RO);
  else
    features |= BIT (VHU_BLK_F_DISCARD) | BIT (VHU_BLK_F_WRITE_ZEROES);
  return features;
}

static void
put_le16 (guint8 *config, guint offset, guint16 value)
{
  value = GUINT16_TO_LE (value);
  memcpy (config + offset, &value, sizeof value);
}

static void
put_le32 (guint8 *config, guint offset, guint32 value)
{
  value = GUINT32_TO_LE (value);
  memcpy (config + offset, &value, sizeof value);
}

static void
put_le64 (guint8 *config, guint offset, guint64 value)
{
  value = GUINT64_TO_LE (value);
  memcpy (config + offset, &value, sizeof value);
}

static void
build_config (VhuBlkDevice *self, guint8 *config)
{
  /* A made-up CHS geometry, as firmware likes one: 16 heads, 63 sectors. */
  guint64 cylinders = MIN (self->capacity / (16 * 63), G_MAXUINT16);

  memset (config, 0, VHU_BLK_CONFIG_SIZE);
  put_le64 (config, VHU_BLK_CONFIG_CAPACITY, self->capacity);
  put_le32 (config, VHU_BLK_CONFIG_SIZE_MAX, VHU_BLK_SIZE_MAX);
  put_le32 (config, VHU_BLK_CONFIG_SEG_MAX, VHU_BLK_SEG_MAX);
  put_le16 (config, VHU_BLK_CONFIG_GEOMETRY, cylinders);
  config[VHU_BLK_CONFIG_GEOMETRY + 2] = 16;
  config[VHU_BLK_CONFIG_GEOMETRY + 3] = 63;
  put_le32 (config, VHU_BLK_CONFIG_BLK_SIZE, self->blk_size);
  config[VHU_BLK_CONFIG_PHYSICAL_BLOCK_EXP] = self->physical_block_exp;
  config[VHU_BLK_CONFIG_ALIGNMENT_OFFSET] = 0;
  put_le16 (config, VHU_BLK_CONFIG_MIN_IO_SIZE, self->min_io_size);
  put_le32 (config, VHU_BLK_CONFIG_OPT_IO_SIZE, self->opt_io_size);
  /* A driver that took CONFIG_WCE but not FLUSH gets a write-through
   * device (5.2.5.1), which is how write_through() serves it. */
  config[VHU_BLK_CONFIG_WRITEBACK] =
    self->writeback
      && (vhost_user_device_get_acked_features (VHOST_USER_DEVICE (self)) == 0
          || vhost_user_device_has_feature (VHOST_USER_DEVICE (self), VHU_BLK_F_FLUSH));
  put_le16 (config, VHU_BLK_CONFIG_NUM_QUEUES, self->n_queues);
  if (!self->read_only)
    {
      put_le32 (config, VHU_BLK_CONFIG_MAX_DISCARD_SECTORS, VHU_BLK_MAX_DISCARD_SECTORS);
      put_le32 (config, VHU_BLK_CONFIG_MAX_DISCARD_SEG, VHU_BLK_MAX_DISCARD_SEG);
      put_le32 (config, VHU_BLK_CONFIG_DISCARD_SECTOR_ALIGNMENT, self->discard_alignment);
      put_le32 (config, VHU_BLK_CONFIG_MAX_WRITE_ZEROES_SECTORS, VHU_BLK_MAX_WRITE_ZEROES_SECTORS);
      put_le32 (config, VHU_BLK_CONFIG_MAX_WRITE_ZEROES_SEG, VHU_BLK_MAX_WRITE_ZEROES_SEG);
      config[VHU_BLK_CONFIG_WRITE_ZEROES_MAY_UNMAP] = 1;
    }
}

static GBytes *
vhu_blk_device_get_config (VhostUserDevice *device, guint offset, guint size, GError **error)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (device);
  guint8 config[VHU_BLK_CONFIG_SIZE];

  if (offset > VHU_BLK_CONFIG_SIZE || size > VHU_BLK_CONFIG_SIZE - offset)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("%u bytes at offset %u are outside the %u-byte virtio-blk config space"), size,
                   offset, VHU_BLK_CONFIG_SIZE);
      return NULL;
    }
  build_config (self, config);
  return g_bytes_new (config + offset, size);
}

/* The driver may write the writeback byte (CONFIG_WCE); a migration may
 * restore the whole space, of which only that byte is state. */
static gboolean
vhu_blk_device_set_config (VhostUserDevice *device,
                           guint offset,
                           GBytes *data,
                           VhostUserConfigFlags flags,
                           GError **error)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (device);
  gsize size;
  const guint8 *bytes = g_bytes_get_data (data, &size);
  gboolean covers_writeback;

  if (offset > VHU_BLK_CONFIG_SIZE || size > VHU_BLK_CONFIG_SIZE - offset)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("%" G_GSIZE_FORMAT " bytes at offset %u are outside the %u-byte virtio-blk "
                     "config space"),
                   size, offset, VHU_BLK_CONFIG_SIZE);
      return FALSE;
    }
  covers_writeback = offset <= VHU_BLK_CONFIG_WRITEBACK && offset + size > VHU_BLK_CONFIG_WRITEBACK;
  if (flags != VHOST_USER_CONFIG_FLAGS_MIGRATION
      && (offset != VHU_BLK_CONFIG_WRITEBACK || size != 1))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("Only the writeback byte of the virtio-blk config space is writable"));
      return FALSE;
    }
  if (covers_writeback)
    g_atomic_int_set (&self->writeback, bytes[VHU_BLK_CONFIG_WRITEBACK - offset] != 0);
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* Resizing                                                                 */

static void
on_config_change_sent (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;

  if (!vhost_user_device_notify_config_changed_finish (VHOST_USER_DEVICE (source), result, &error)
      && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    g_debug ("The front-end was not told about the new capacity: %s", error->message);
}

gboolean
vhu_blk_device_check_size (VhuBlkDevice *self)
{
  g_autoptr (GError) error = NULL;
  guint64 bytes, capacity;

  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), FALSE);

  if (!query_size (self, &bytes, &error))
    {
      g_debug ("%s", error->message);
      return FALSE;
    }
  capacity = bytes / VHU_BLK_SECTOR_SIZE;
  if (capacity == self->capacity)
    return FALSE;

  __atomic_store_n (&self->capacity, capacity, __ATOMIC_RELAXED);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_CAPACITY]);
  if (vhost_user_device_get_connected (VHOST_USER_DEVICE (self)))
    vhost_user_device_notify_config_changed_async (VHOST_USER_DEVICE (self), self->cancellable,
                                                   on_config_change_sent, NULL);
  return TRUE;
}

static gboolean
on_size_poll (gpointer user_data)
{
  vhu_blk_device_check_size (user_data);
  return G_SOURCE_CONTINUE;
}

void
vhu_blk_device_set_size_poll_interval (VhuBlkDevice *self, guint interval_ms)
{
  g_return_if_fail (VHU_IS_BLK_DEVICE (self));

  if (self->poll_source != NULL)
    {
      g_source_destroy (self->poll_source);
      g_clear_pointer (&self->poll_source, g_source_unref);
    }
  if (interval_ms == 0)
    return;
  self->poll_source = g_timeout_source_new (interval_ms);
  g_source_set_static_name (self->poll_source, "[vhost-user-blk] size poll");
  g_source_set_callback (self->poll_source, on_size_poll, self, NULL);
  g_source_attach (self->poll_source, vhost_user_device_get_context (VHOST_USER_DEVICE (self)));
}

/* ------------------------------------------------------------------------ */
/* GObject                                                                  */

static void
io_group_free (gpointer data)
{
  IoGroup *group = data;

  g_clear_pointer (&group->io, vhu_blk_io_free);
  g_main_context_unref (group->context);
  g_free (group);
}

/* The group of @context, made with its engine if there is none yet. */
static IoGroup *
io_group_for (VhuBlkDevice *self, GMainContext *context, GError **error)
{
  IoGroup *group;

  for (guint i = 0; i < self->groups->len; i++)
    {
      group = g_ptr_array_index (self->groups, i);
      if (group->context == context)
        return group;
    }
  group = g_new0 (IoGroup, 1);
  group->device = self;
  group->context = g_main_context_ref (context);
  group->io = vhu_blk_io_new (self->aio, &self->file, context, request_done, batch_done, group,
                              error);
  if (group->io == NULL)
    {
      io_group_free (group);
      return NULL;
    }
  /* The first engine chose for the others: io_uring where it works. */
  if (self->aio == VHU_BLK_AIO_AUTO)
    self->aio = g_str_equal (vhu_blk_io_get_name (group->io), "io_uring") ? VHU_BLK_AIO_IO_URING
                                                                            : VHU_BLK_AIO_THREADS;
  g_ptr_array_add (self->groups, group);
  return group;
}

static void
vhu_blk_device_dispose (GObject *object)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (object);

  g_atomic_int_set (&self->disposing, TRUE);
  vhu_blk_device_set_size_poll_interval (self, 0);
  g_cancellable_cancel (self->cancellable);
  /* Everything in flight completes (and is pushed) before the rings go,
   * here: the contexts of the other threads are no longer iterated (see
   * vhu_blk_device_set_queue_context()). */
  for (guint i = 0; self->groups != NULL && i < self->groups->len; i++)
    {
      IoGroup *group = g_ptr_array_index (self->groups, i);

      g_clear_pointer (&group->io, vhu_blk_io_free);
    }
  for (guint i = 0; self->queues != NULL && i < self->n_queues; i++)
    if (self->queues[i].resume != NULL)
      {
        g_source_destroy (self->queues[i].resume);
        g_clear_pointer (&self->queues[i].resume, g_source_unref);
      }

  G_OBJECT_CLASS (vhu_blk_device_parent_class)->dispose (object);
}

static void
vhu_blk_device_finalize (GObject *object)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (object);

  for (guint i = 0; i < self->n_queues; i++)
    {
      BlkQueue *q = &self->queues[i];

      /* Dispose drained the engine: every request is back on the free list. */
      for (VhuBlkRequest *req = q->free; req != NULL; req = req->next)
        g_free (req->iov);
      g_ptr_array_unref (q->blocks);
    }
  g_free (self->queues);
  g_clear_pointer (&self->groups, g_ptr_array_unref);
  g_mutex_clear (&self->stale_lock);
  g_clear_object (&self->cancellable);
  if (self->file.fd >= 0)
    close (self->file.fd);
  g_free (self->path);

  G_OBJECT_CLASS (vhu_blk_device_parent_class)->finalize (object);
}

static void
vhu_blk_device_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  VhuBlkDevice *self = VHU_BLK_DEVICE (object);

  switch (prop_id)
    {
    case PROP_CAPACITY:
      g_value_set_uint64 (value, self->capacity);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhu_blk_device_class_init (VhuBlkDeviceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  object_class->dispose = vhu_blk_device_dispose;
  object_class->finalize = vhu_blk_device_finalize;
  object_class->get_property = vhu_blk_device_get_property;

  device_class->get_features = vhu_blk_device_get_features;
  device_class->get_config = vhu_blk_device_get_config;
  device_class->set_config = vhu_blk_device_set_config;
  device_class->queue_started = vhu_blk_device_queue_started;
  device_class->queue_kicked = vhu_blk_device_queue_kicked;

  properties[PROP_CAPACITY] =
    g_param_spec_uint64 ("capacity", NULL, NULL, 0, G_MAXUINT64, 0,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);
  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
vhu_blk_device_init (VhuBlkDevice *self)
{
  self->file.fd = -1;
  self->writeback = TRUE;
  self->cancellable = g_cancellable_new ();
  self->groups = g_ptr_array_new_with_free_func (io_group_free);
  g_mutex_init (&self->stale_lock);
}

VhuBlkDevice *
vhu_blk_device_new (const VhuBlkDeviceOptions *options, GError **error)
{
  g_autoptr (VhuBlkDevice) self = NULL;
  IoGroup *main_group;
  guint num_queues;

  g_return_val_if_fail (options != NULL && options->path != NULL, NULL);

  num_queues = options->num_queues == 0 ? 1 : options->num_queues;
  if (num_queues > 256)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("%u queues are more than the 256 a device can have"), num_queues);
      return NULL;
    }
  if (options->serial != NULL && strlen (options->serial) > VHU_BLK_ID_BYTES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   _("The serial “%s” is longer than %u bytes"), options->serial,
                   VHU_BLK_ID_BYTES);
      return NULL;
    }

  self = g_object_new (VHU_TYPE_BLK_DEVICE, "num-queues", num_queues, NULL);
  self->path = g_strdup (options->path);
  self->read_only = options->read_only;
  if (options->serial != NULL)
    {
      self->has_serial = TRUE;
      /* NUL padded; a 20-byte serial has no terminator (5.2.6). */
      memcpy (self->serial, options->serial, strlen (options->serial));
    }
  self->n_queues = num_queues;
  self->queues = g_new0 (BlkQueue, num_queues);
  for (guint i = 0; i < num_queues; i++)
    {
      self->queues[i].device = self;
      self->queues[i].vq = vhost_user_device_get_queue (VHOST_USER_DEVICE (self), i);
      self->queues[i].blocks = g_ptr_array_new_with_free_func (g_free);
    }

  if (!open_image (self, error))
    return NULL;
  self->aio = options->aio;
  main_group = io_group_for (self, vhost_user_device_get_context (VHOST_USER_DEVICE (self)), error);
  if (main_group == NULL)
    return NULL;
  for (guint i = 0; i < num_queues; i++)
    {
      self->queues[i].group = main_group;
      queue_attach_resume (&self->queues[i]);
    }
  return g_steal_pointer (&self);
}

const char *
vhu_blk_device_get_io_name (VhuBlkDevice *self)
{
  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), NULL);
  return vhu_blk_io_get_name (((IoGroup *) g_ptr_array_index (self->groups, 0))->io);
}

guint64
vhu_blk_device_get_capacity (VhuBlkDevice *self)
{
  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), 0);
  return self->capacity;
}

gboolean
vhu_blk_device_get_writeback (VhuBlkDevice *self)
{
  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), FALSE);
  return self->writeback;
}

guint
vhu_blk_device_get_in_flight (VhuBlkDevice *self)
{
  guint n = 0;

  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), 0);
  for (guint i = 0; i < self->groups->len; i++)
    {
      IoGroup *group = g_ptr_array_index (self->groups, i);

      /* Another thread's engine: a count of a moment ago. */
      if (group->io != NULL)
        n += vhu_blk_io_get_in_flight (group->io);
    }
  return n;
}

guint64
vhu_blk_device_get_stat (VhuBlkDevice *self, VhuBlkStat stat)
{
  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), 0);
  guint64 n = 0;

  g_return_val_if_fail (stat < VHU_BLK_STAT_N, 0);
  for (guint i = 0; i < self->n_queues; i++)
    n += STAT_GET (self->queues[i].stats[stat]);
  return n;
}

guint64
vhu_blk_device_get_queue_requests (VhuBlkDevice *self, guint index)
{
  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), 0);
  g_return_val_if_fail (index < self->n_queues, 0);
  return STAT_GET (self->queues[index].n_requests);
}

gboolean
vhu_blk_device_set_queue_context (VhuBlkDevice *self,
                                  guint index,
                                  GMainContext *context,
                                  GError **error)
{
  VhostUserDevice *device;
  BlkQueue *q;
  IoGroup *group;

  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), FALSE);
  g_return_val_if_fail (index < self->n_queues, FALSE);
  device = VHOST_USER_DEVICE (self);
  g_return_val_if_fail (!vhost_user_device_get_connected (device), FALSE);

  if (context == NULL)
    context = vhost_user_device_get_context (device);
  q = &self->queues[index];
  if (q->group->context == context)
    return TRUE;
  /* Nothing of the queue is in an engine: it never ran, or its front-end
   * went and the engine handed everything back. */
  g_return_val_if_fail (q->n_current == 0 && q->held == NULL, FALSE);

  group = io_group_for (self, context, error);
  if (group == NULL)
    return FALSE;
  vhost_user_virtqueue_set_context (q->vq, context);
  q->group = group;
  g_source_destroy (q->resume);
  g_clear_pointer (&q->resume, g_source_unref);
  queue_attach_resume (q);
  return TRUE;
}

GMainContext *
vhu_blk_device_get_queue_context (VhuBlkDevice *self, guint index)
{
  g_return_val_if_fail (VHU_IS_BLK_DEVICE (self), NULL);
  g_return_val_if_fail (index < self->n_queues, NULL);
  return self->queues[index].group->context;
}
