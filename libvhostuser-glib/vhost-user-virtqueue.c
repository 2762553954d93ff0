/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#include "config.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib-unix.h>

#include "vhost-user-device-private.h"
#include "vhost-user-enum-types.h"
#include "vhost-user-virtq-element.h"
#include "vhost-user-error.h"
#include "vhost-user-virtqueue-private.h"
#include "vhu-fault-guard.h"

/**
 * VhostUserVirtqueue:
 *
 * One virtqueue of a [class@VhostUser.Device].
 *
 * A ring has two independent states, as the vhost-user spec defines them:
 * started or stopped, and enabled or disabled. It starts when its kick file
 * descriptor is set up on a fully configured ring (size, addresses and guest
 * memory valid), which counts as a first kick, and stops when the front-end
 * asks for its base index (`GET_VRING_BASE`). A started but disabled ring is
 * processed without side effects.
 *
 * Queues are created by their device and live as long as it does; their
 * state follows the front-end's messages.
 *
 * ## Queue modes
 *
 * How the queue learns that the driver made buffers available is its
 * [property@VhostUser.Virtqueue:mode]:
 *
 * - %VHOST_USER_QUEUE_MODE_EVENT (the default): the queue waits for the
 *   driver's kicks on its kick eventfd; each wakeup is one
 *   [signal@VhostUser.Device::queue-kicked], however many kicks and buffers
 *   it covers.
 * - %VHOST_USER_QUEUE_MODE_ADAPTIVE: as in event mode, but after the
 *   handler of each wakeup returned, the queue asks the driver not to kick
 *   and keeps looking at the ring for
 *   [property@VhostUser.Virtqueue:poll-ns] nanoseconds (50 µs by default),
 *   from the start again whenever it found work. When that time passes with
 *   nothing new, the queue asks for kicks again, looks at the ring once
 *   more (buffers made available just before the driver saw the request
 *   came without a kick), and waits for the next kick. Under a steady load
 *   the driver stops kicking altogether; an idle queue costs nothing.
 * - %VHOST_USER_QUEUE_MODE_POLL: the queue looks at the ring all the time it
 *   is started, and the driver never kicks. This keeps a CPU busy: use it on
 *   a worker thread that runs the queue's own #GMainContext (see
 *   [method@VhostUser.Virtqueue.set_context]). On the device's context it
 *   works too (control messages are still handled between two looks at the
 *   ring), but that thread then never sleeps.
 *
 * While the queue polls, it looks at the ring from its #GSource (the
 * available index, one load from guest memory; no system call per look),
 * and emits [signal@VhostUser.Device::queue-kicked] when the driver made
 * buffers available since the last emission: one emission per batch of
 * new buffers, none for a look that found nothing. Requests a handler
 * leaves in the ring are not announced again until more come. While
 * polling, the queue keeps the driver's kicks off whatever the device asks
 * with [method@VhostUser.Virtqueue.set_notification]; the device's wish
 * holds again when polling ends. The usual handler (turn kicks off, pop
 * until empty, turn kicks on, check [method@VhostUser.Virtqueue.is_empty]
 * once more) is right in every mode.
 *
 * ## Returning requests in batches
 *
 * A device that returns many requests at a time (a network device's receive
 * queue, say) fills the used ring entry by entry and publishes the batch
 * once, with one interrupt at most:
 *
 * |[<!-- language="C" -->
 * guint n = 0;
 *
 * while (n < G_N_ELEMENTS (elements)
 *        && (elements[n] = vhost_user_virtqueue_pop (queue, NULL)) != NULL)
 *   {
 *     gsize written = my_serve (elements[n]);
 *
 *     vhost_user_virtqueue_fill (queue, elements[n], written, n);
 *     n++;
 *   }
 * if (n > 0)
 *   {
 *     vhost_user_virtqueue_flush (queue, n);   // one used-index update
 *     vhost_user_virtqueue_notify (queue);     // one call, if the driver wants it
 *   }
 * vhost_user_virtqueue_recycle (queue, elements, n);  // unref() each
 * ]|
 *
 * [method@VhostUser.Virtqueue.push] is the same for a batch of one.
 * [method@VhostUser.Virtqueue.recycle] drops the elements as unref() does;
 * in a handler, on the queue's thread, it gives them back to the queue
 * for its next pops without an atomic operation, which matters when the
 * stores just made to guest memory are still on their way.
 *
 * Since: 1.0
 */

enum
{
  PROP_0,
  PROP_DEVICE,
  PROP_INDEX,
  PROP_SIZE,
  PROP_ENABLED,
  PROP_STARTED,
  PROP_MODE,
  PROP_POLL_NS,
  N_PROPS
};

/* 50 µs: the default of QEMU's adaptive polling (poll-max-ns) is 32 µs, of
 * SPDK's interrupt-mode switch 100 µs. */
#define DEFAULT_POLL_NS G_GUINT64_CONSTANT (50000)

static GParamSpec *properties[N_PROPS];

G_DEFINE_FINAL_TYPE (VhostUserVirtqueue, vhost_user_virtqueue, G_TYPE_OBJECT)

/* The type is final: an instance of it has exactly this class. Comparing
 * the class's type with the one class_init saw is all that
 * VHOST_USER_IS_VIRTQUEUE() checks, without its call to get_type() on
 * every data-path call. */
static GType queue_type;

#define IS_QUEUE(self)                                                                             \
  ((self) != NULL && ((GTypeInstance *) (self))->g_class != NULL                                   \
   && ((GTypeInstance *) (self))->g_class->g_type == queue_type)

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    {
      close (*fd);
      *fd = -1;
    }
}

static void
remove_kick_source (VhostUserVirtqueue *vq)
{
  if (vq->kick_source != NULL)
    {
      g_source_destroy (vq->kick_source);
      g_clear_pointer (&vq->kick_source, g_source_unref);
    }
  vq->kick_tag = NULL;
}

static void
vhost_user_virtqueue_finalize (GObject *object)
{
  VhostUserVirtqueue *vq = VHOST_USER_VIRTQUEUE (object);

  vhu_split_ring_clear (&vq->ring);
  vhu_element_pool_close (vq->pool);
  g_clear_pointer (&vq->log, vhu_dirty_log_unref);
  g_clear_pointer (&vq->inflight, vhu_inflight_unref);
  g_clear_pointer (&vq->context, g_main_context_unref);
  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  close_fd (&vq->call_fd);
  close_fd (&vq->err_fd);
  g_clear_pointer (&vq->mem, vhu_mem_table_unref);

  G_OBJECT_CLASS (vhost_user_virtqueue_parent_class)->finalize (object);
}

static void
vhost_user_virtqueue_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  VhostUserVirtqueue *vq = VHOST_USER_VIRTQUEUE (object);

  switch (prop_id)
    {
    case PROP_DEVICE:
      g_value_set_object (value, vq->device);
      break;
    case PROP_INDEX:
      g_value_set_uint (value, vq->index);
      break;
    case PROP_SIZE:
      g_value_set_uint (value, vq->size);
      break;
    case PROP_ENABLED:
      g_value_set_boolean (value, vq->enabled);
      break;
    case PROP_STARTED:
      g_value_set_boolean (value, vq->started);
      break;
    case PROP_MODE:
      g_value_set_enum (value, vhost_user_virtqueue_get_mode (vq));
      break;
    case PROP_POLL_NS:
      g_value_set_uint64 (value, vhost_user_virtqueue_get_poll_ns (vq));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_virtqueue_set_property (GObject *object,
                                   guint prop_id,
                                   const GValue *value,
                                   GParamSpec *pspec)
{
  VhostUserVirtqueue *vq = VHOST_USER_VIRTQUEUE (object);

  switch (prop_id)
    {
    case PROP_MODE:
      vhost_user_virtqueue_set_mode (vq, g_value_get_enum (value));
      break;
    case PROP_POLL_NS:
      vhost_user_virtqueue_set_poll_ns (vq, g_value_get_uint64 (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vhost_user_virtqueue_class_init (VhostUserVirtqueueClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  queue_type = G_TYPE_FROM_CLASS (klass);
  object_class->finalize = vhost_user_virtqueue_finalize;
  object_class->get_property = vhost_user_virtqueue_get_property;
  object_class->set_property = vhost_user_virtqueue_set_property;

  /**
   * VhostUserVirtqueue:device:
   *
   * The device this queue belongs to.
   *
   * Since: 1.0
   */
  properties[PROP_DEVICE] =
    g_param_spec_object ("device", NULL, NULL, VHOST_USER_TYPE_DEVICE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserVirtqueue:index:
   *
   * The queue's index in its device.
   *
   * Since: 1.0
   */
  properties[PROP_INDEX] =
    g_param_spec_uint ("index", NULL, NULL, 0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * VhostUserVirtqueue:size:
   *
   * The number of descriptors in the ring, 0 until the front-end sets it.
   *
   * Since: 1.0
   */
  properties[PROP_SIZE] =
    g_param_spec_uint ("size", NULL, NULL, 0, VHU_MAX_QUEUE_SIZE, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserVirtqueue:enabled:
   *
   * Whether the front-end enabled the ring.
   *
   * Since: 1.0
   */
  properties[PROP_ENABLED] =
    g_param_spec_boolean ("enabled", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserVirtqueue:started:
   *
   * Whether the ring is started: from its first kick to `GET_VRING_BASE`.
   *
   * Since: 1.0
   */
  properties[PROP_STARTED] =
    g_param_spec_boolean ("started", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserVirtqueue:mode:
   *
   * How the queue learns that the driver made buffers available: by its
   * kicks, by polling the ring for a while after work, or by polling all
   * the time (see the class description). May be changed at any time,
   * from any thread; the queue's context takes the new mode up at its next
   * iteration. The mode stays the queue's across stops, restarts and
   * reconnections.
   *
   * Since: 1.0
   */
  properties[PROP_MODE] =
    g_param_spec_enum ("mode", NULL, NULL, VHOST_USER_TYPE_QUEUE_MODE, VHOST_USER_QUEUE_MODE_EVENT,
                       G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  /**
   * VhostUserVirtqueue:poll-ns:
   *
   * In %VHOST_USER_QUEUE_MODE_ADAPTIVE, how long the queue keeps polling
   * the ring after work before it asks the driver to kick again, in
   * nanoseconds (counted in microseconds, rounded up). 0 asks for kicks
   * again at once. May be changed at any time, from any thread.
   *
   * Since: 1.0
   */
  properties[PROP_POLL_NS] =
    g_param_spec_uint64 ("poll-ns", NULL, NULL, 0, G_MAXUINT64, DEFAULT_POLL_NS,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | G_PARAM_EXPLICIT_NOTIFY);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void on_element_leaked (VhuElement *elem, gpointer user_data);

static void
vhost_user_virtqueue_init (VhostUserVirtqueue *vq)
{
  vq->kick_fd = -1;
  vq->call_fd = -1;
  vq->err_fd = -1;
  vq->log_call_fd = -1;
  vq->pool = vhu_element_pool_new (on_element_leaked, vq);
  vq->mode = vq->applied_mode = VHOST_USER_QUEUE_MODE_EVENT;
  vq->poll_ns = DEFAULT_POLL_NS;
  vq->device_notify = TRUE;
}

VhostUserVirtqueue *
vhu_virtqueue_new (VhostUserDevice *device, guint index, GMainContext *context)
{
  VhostUserVirtqueue *vq = g_object_new (VHOST_USER_TYPE_VIRTQUEUE, NULL);

  vq->device = device;
  vq->index = index;
  vq->context = g_main_context_ref (context);
  return vq;
}

/* Back to the state of a new queue: stopped, disabled, nothing configured.
 * Emits notifications but no device signal. */
void
vhu_virtqueue_reset (VhostUserVirtqueue *vq)
{
  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  close_fd (&vq->call_fd);
  close_fd (&vq->err_fd);
  vhu_virtqueue_stop_ring (vq);
  vhu_virtqueue_forget_translation (vq);
  vq->last_avail_idx = 0;
  vq->addr_set = FALSE;
  vq->broken = FALSE;

  g_object_freeze_notify (G_OBJECT (vq));
  vhu_virtqueue_set_size (vq, 0);
  vhu_virtqueue_set_enabled (vq, FALSE);
  vhu_virtqueue_set_started (vq, FALSE);
  g_object_thaw_notify (G_OBJECT (vq));
}

gboolean
vhu_virtqueue_is_configured (VhostUserVirtqueue *vq)
{
  return vq->size != 0 && vq->addr_set && vq->desc != NULL && !vq->broken;
}

void
vhu_virtqueue_forget_translation (VhostUserVirtqueue *vq)
{
  vq->desc = vq->avail = vq->used = NULL;
  g_clear_pointer (&vq->mem, vhu_mem_table_unref);
}

/* Translates the three ring areas (split layout, with room for the event
 * index fields) through the memory table. Each area must lie inside one
 * mapped region. Without size and addresses there is nothing to translate. */
gboolean
vhu_virtqueue_translate (VhostUserVirtqueue *vq, VhuMemTable *mem, GError **error)
{
  guint64 desc_len, avail_len, used_len;
  gpointer desc, avail, used;

  vhu_virtqueue_forget_translation (vq);
  if (vq->size == 0 || !vq->addr_set || mem == NULL)
    return TRUE;

  desc_len = 16ull * vq->size;
  avail_len = 6ull + 2ull * vq->size;
  used_len = 6ull + 8ull * vq->size;

  desc = vhu_mem_table_uva_to_host (mem, vq->addr.desc_user_addr, desc_len);
  avail = vhu_mem_table_uva_to_host (mem, vq->addr.avail_user_addr, avail_len);
  used = vhu_mem_table_uva_to_host (mem, vq->addr.used_user_addr, used_len);
  if (desc == NULL || avail == NULL || used == NULL)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_MEMORY,
                   _("Queue %u: the %s ring at 0x%" G_GINT64_MODIFIER "x is not inside guest memory"),
                   vq->index,
                   desc == NULL ? "descriptor" : avail == NULL ? "available" : "used",
                   desc == NULL    ? vq->addr.desc_user_addr
                   : avail == NULL ? vq->addr.avail_user_addr
                                   : vq->addr.used_user_addr);
      return FALSE;
    }

  vq->mem = vhu_mem_table_ref (mem);
  vq->desc = desc;
  vq->avail = avail;
  vq->used = used;

  /* A running ring follows the new table; elements already popped keep
   * the old one mapped until they are dropped. */
  if (vq->ring.desc != NULL)
    {
      vhu_split_ring_set_memory (&vq->ring, desc, avail, used, mem);
      vhu_element_pool_drop_mappings (vq->pool);
    }
  return TRUE;
}

/* ------------------------------------------------------------------------ */
/* The queue's source: kicks, and polling                                   */

/* A queue with a kick fd has one source on its context. Waiting for kicks,
 * it is an fd watch. Polling (ADAPTIVE after work, POLL all the time), the
 * driver's kicks are off and prepare() and check() peek at the available
 * index, with a zero timeout: the context spins. Everything here runs on
 * the queue's thread. */
typedef struct
{
  GSource source;
  VhostUserVirtqueue *vq; /* unowned: the queue destroys its source */
  gboolean in_dispatch;   /* the device's handler runs */
  gboolean parked;        /* the kick fd is out of the poll set meanwhile */
} QueueSource;

/* Peeks per prepare() while an empty ring is polled: the context's poll()
 * (a system call, with a zero timeout) comes once per this many. */
#define POLL_SPIN 64

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#elif defined(__aarch64__)
  __asm__ __volatile__ ("yield" ::: "memory");
#else
  __asm__ __volatile__ ("" ::: "memory");
#endif
}

static inline gboolean
ring_running (VhostUserVirtqueue *vq)
{
  return vq->ring.desc != NULL && !vq->ring.broken && !vq->stopping;
}

/* Buffers the driver made available since the last emission, not popped
 * yet. Stale @poll_seen_idx only costs an emission too many. */
static inline gboolean
ring_has_new (VhostUserVirtqueue *vq)
{
  guint16 idx = vhu_split_ring_peek_avail_idx (&vq->ring);

  return idx != vq->poll_seen_idx && idx != vq->ring.last_avail_idx;
}

static gint64
poll_deadline (VhostUserVirtqueue *vq, gint64 now)
{
  guint64 ns = __atomic_load_n (&vq->poll_ns, __ATOMIC_RELAXED);
  guint64 us = ns / 1000 + (ns % 1000 != 0);

  return now + (gint64) MIN (us, (guint64) G_MAXINT32 * G_USEC_PER_SEC);
}

/* Kicks off, from @now on (for ADAPTIVE, until the budget runs out). Done
 * again after each batch: with EVENT_IDX, avail_event follows the ring at a
 * distance (see vhu_split_ring_suppress_kicks()). */
static void
polling_start (VhostUserVirtqueue *vq, gint64 now)
{
  vq->polling = TRUE;
  vhu_split_ring_suppress_kicks (&vq->ring);
  vq->poll_deadline = poll_deadline (vq, now);
}

/* Polling ends: kicks back on, if the device wants them (a full barrier
 * follows), and one more look at the ring for buffers the driver made
 * available before it could see that it must kick again. Returns TRUE if
 * there are such: the caller polls on. */
static gboolean
polling_stop (VhostUserVirtqueue *vq)
{
  vq->polling = FALSE;
  if (vq->ring.desc == NULL)
    return FALSE;
  if (vq->device_notify)
    vhu_split_ring_resume_kicks (&vq->ring);
  return ring_running (vq) && ring_has_new (vq);
}

/* The mode set from any thread, taken up here. */
static void
apply_mode (VhostUserVirtqueue *vq, gint mode)
{
  vq->applied_mode = mode;
  if (!vq->polling)
    return; /* POLL starts in prepare() */
  if (mode == VHOST_USER_QUEUE_MODE_EVENT)
    {
      if (polling_stop (vq))
        vq->pending_kick = TRUE;
    }
  else if (mode == VHOST_USER_QUEUE_MODE_ADAPTIVE)
    vq->poll_deadline = poll_deadline (vq, g_get_monotonic_time ());
}

/* The source may recurse (see watch_kick()), but the handler must not run
 * inside itself: a handler that iterates the queue's context meets its own
 * source asleep, its kick fd out of the poll set until the handler
 * returns. Kicks that come meanwhile are served after it. */
static gboolean
park_recursion (QueueSource *qs)
{
  if (G_LIKELY (!qs->in_dispatch))
    return FALSE;
  if (!qs->parked && qs->vq->kick_tag != NULL)
    {
      g_source_modify_unix_fd ((GSource *) qs, qs->vq->kick_tag, 0);
      qs->parked = TRUE;
    }
  return TRUE;
}

static gboolean
queue_source_prepare (GSource *source, gint *timeout)
{
  VhostUserVirtqueue *vq = ((QueueSource *) source)->vq;
  gint mode = g_atomic_int_get (&vq->mode);

  *timeout = -1;
  if (park_recursion ((QueueSource *) source))
    return FALSE;
  if (G_UNLIKELY (mode != vq->applied_mode))
    apply_mode (vq, mode);
  if (vq->pending_kick)
    return TRUE;
  if (!ring_running (vq))
    return FALSE; /* a stopped ring's notifications are put back in vhu_virtqueue_stop_ring() */

  if (!vq->polling)
    {
      if (mode != VHOST_USER_QUEUE_MODE_POLL)
        return FALSE;
      /* What is in the ring now was not announced while polling. */
      vq->poll_seen_idx = vq->ring.last_avail_idx;
      polling_start (vq, 0);
    }

  *timeout = 0;
  if (mode == VHOST_USER_QUEUE_MODE_ADAPTIVE && g_source_get_time (source) >= vq->poll_deadline)
    {
      /* The budget ran out: kicks on, and what came since the last look
       * (found by polling_stop()) is served without one. */
      if (!polling_stop (vq))
        {
          *timeout = -1;
          return FALSE;
        }
      polling_start (vq, g_source_get_time (source));
      return TRUE;
    }

  for (guint i = 0; i < POLL_SPIN; i++)
    {
      if (ring_has_new (vq))
        return TRUE;
      cpu_relax ();
    }
  return FALSE;
}

static gboolean
queue_source_check (GSource *source)
{
  VhostUserVirtqueue *vq = ((QueueSource *) source)->vq;

  if (park_recursion ((QueueSource *) source))
    return FALSE;
  if (vq->pending_kick)
    return TRUE;
  if (vq->kick_tag != NULL && g_source_query_unix_fd (source, vq->kick_tag) != 0)
    return TRUE;
  return vq->polling && ring_running (vq) && ring_has_new (vq);
}

static gboolean
queue_source_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  QueueSource *qs = (QueueSource *) source;
  VhostUserVirtqueue *vq = qs->vq;
  GIOCondition revents;
  gboolean emit = vq->pending_kick;

  if (G_UNLIKELY (qs->in_dispatch))
    return G_SOURCE_CONTINUE;
  revents = vq->kick_tag != NULL ? g_source_query_unix_fd (source, vq->kick_tag) : 0;

  if (revents & (G_IO_ERR | G_IO_HUP | G_IO_NVAL))
    {
      /* Nothing more will come from this fd; stop watching it. */
      g_clear_pointer (&vq->kick_source, g_source_unref);
      vq->kick_tag = NULL;
      return G_SOURCE_REMOVE;
    }

  vq->pending_kick = FALSE;
  if (revents & G_IO_IN)
    {
      eventfd_t value;

      /* One read drains every kick since the last one: one emission per
       * wakeup. While polling, a kick the driver sent before it saw that
       * kicks are off only wakes the context. */
      if ((eventfd_read (vq->kick_fd, &value) == 0 || errno == EAGAIN) && !vq->polling)
        emit = TRUE;
    }
  if (vq->polling && ring_running (vq) && ring_has_new (vq))
    emit = TRUE;
  if (!emit)
    return G_SOURCE_CONTINUE;

  if (ring_running (vq))
    vq->poll_seen_idx = vhu_split_ring_peek_avail_idx (&vq->ring);
  g_object_ref (vq);
  qs->in_dispatch = TRUE;
  vq->kick_func (vq, vq->kick_data);
  qs->in_dispatch = FALSE;
  if (qs->parked && !g_source_is_destroyed (source) && vq->kick_tag != NULL)
    {
      /* Kicks that came while the handler ran are seen at the next poll. */
      g_source_modify_unix_fd (source, vq->kick_tag, G_IO_IN);
    }
  qs->parked = FALSE;
  /* After work, ADAPTIVE polls for a while, POLL on. */
  if (!g_source_is_destroyed (source) && vq->applied_mode != VHOST_USER_QUEUE_MODE_EVENT
      && ring_running (vq))
    polling_start (vq, g_get_monotonic_time ());
  g_object_unref (vq);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs queue_source_funcs = {
  queue_source_prepare,
  queue_source_check,
  queue_source_dispatch,
  NULL,
  NULL,
  NULL,
};

static void
watch_kick (VhostUserVirtqueue *vq)
{
  QueueSource *source = (QueueSource *) g_source_new (&queue_source_funcs, sizeof (QueueSource));

  source->vq = vq;
  vq->kick_source = (GSource *) source;
  vq->kick_tag = g_source_add_unix_fd (vq->kick_source, vq->kick_fd, G_IO_IN);
  /* A source that may not recurse is taken out of the poll set around each
   * dispatch and put back after, and GLib wakes its context for each:
   * two system calls and a spurious wakeup per kick. This one guards
   * itself instead (park_recursion()). */
  g_source_set_can_recurse (vq->kick_source, TRUE);
  g_source_set_static_name (vq->kick_source, "[libvhostuser-glib] queue");
  g_source_attach (vq->kick_source, vq->context);
}

/* Takes @fd (-1: none, the front-end polls). */
void
vhu_virtqueue_set_kick_fd (VhostUserVirtqueue *vq, int fd, VhuKickFunc func, gpointer user_data)
{
  remove_kick_source (vq);
  close_fd (&vq->kick_fd);
  vq->kick_fd = fd;
  vq->kick_func = func;
  vq->kick_data = user_data;
  if (fd < 0)
    return;

  g_unix_set_fd_nonblocking (fd, TRUE, NULL);
  watch_kick (vq);
}

void
vhu_virtqueue_set_call_fd (VhostUserVirtqueue *vq, int fd)
{
  close_fd (&vq->call_fd);
  vq->call_fd = fd;
}

void
vhu_virtqueue_set_err_fd (VhostUserVirtqueue *vq, int fd)
{
  close_fd (&vq->err_fd);
  vq->err_fd = fd;
}

void
vhu_virtqueue_set_enabled (VhostUserVirtqueue *vq, gboolean enabled)
{
  enabled = !!enabled;
  if (vq->enabled == enabled)
    return;
  vq->enabled = enabled;
  g_object_notify_by_pspec (G_OBJECT (vq), properties[PROP_ENABLED]);
}

void
vhu_virtqueue_set_started (VhostUserVirtqueue *vq, gboolean started)
{
  started = !!started;
  if (vq->started == started)
    return;
  vq->started = started;
  g_object_notify_by_pspec (G_OBJECT (vq), properties[PROP_STARTED]);
}

/* The guest broke the ring: stop using it and tell the front-end. */
void
vhu_virtqueue_mark_broken (VhostUserVirtqueue *vq)
{
  vq->broken = TRUE;
  vq->ring.broken = TRUE;
  if (vq->err_fd >= 0)
    eventfd_write (vq->err_fd, 1);
}

/* The ring starts: from here on the data path reads and writes it. With an
 * in-flight buffer covering the queue, the ring tracks its requests there,
 * and first hands out again what was in flight when the back-end before
 * stopped; a buffer that cannot be right (see vhu_split_ring_set_inflight())
 * leaves the ring stopped and broken. */
gboolean
vhu_virtqueue_start_ring (VhostUserVirtqueue *vq, GError **error)
{
  guint64 features = vq->features;

  vhu_split_ring_init (&vq->ring, vq->desc, vq->avail, vq->used, vq->size, vq->last_avail_idx,
                       vq->mem);
  vq->ring.event_idx = (features & (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_RING_EVENT_IDX)) != 0;
  vq->ring.indirect =
    (features & (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_RING_INDIRECT_DESC)) != 0;
  vq->ring.log_used = (vq->addr.flags & (1u << VHU_VRING_F_LOG)) != 0;
  vq->ring.used_log_gpa = vq->addr.log_guest_addr;
  vq->ring.log = vq->log != NULL ? vhu_dirty_log_ref (vq->log) : NULL;
  vq->stopping = FALSE;
  /* A new ring asks for kicks (vhu_split_ring_init()); the queue's source
   * polls it if its mode says so. */
  vq->device_notify = TRUE;
  vq->polling = FALSE;

  if (vq->inflight != NULL
      && !vhu_split_ring_set_inflight (&vq->ring, vq->inflight, MIN (vq->index, G_MAXUINT16),
                                       error))
    {
      vhu_split_ring_clear (&vq->ring);
      vhu_virtqueue_mark_broken (vq);
      return FALSE;
    }
  return TRUE;
}

/* The ring stops: the index of the next available entry is what
 * GET_VRING_BASE reports, and what a restart continues from. */
void
vhu_virtqueue_stop_ring (VhostUserVirtqueue *vq)
{
  if (vq->ring.desc != NULL)
    vq->last_avail_idx = vq->ring.last_avail_idx;
  /* A ring stopped while polled asks for kicks again, for whoever runs it
   * next. */
  if (vq->polling && vq->ring.desc != NULL)
    vhu_split_ring_resume_kicks (&vq->ring);
  vq->polling = FALSE;
  vhu_split_ring_clear (&vq->ring);
  vhu_element_pool_drop_mappings (vq->pool);
  vq->stopping = FALSE;
}

/* Dirty logging starts (a log), changes (another log) or stops (NULL). */
void
vhu_virtqueue_set_log (VhostUserVirtqueue *vq, VhuDirtyLog *log, int log_call_fd)
{
  vq->log_call_fd = log_call_fd;
  g_clear_pointer (&vq->log, vhu_dirty_log_unref);
  vq->log = log != NULL ? vhu_dirty_log_ref (log) : NULL;
  g_clear_pointer (&vq->ring.log, vhu_dirty_log_unref);
  if (vq->ring.desc != NULL && log != NULL)
    vq->ring.log = vhu_dirty_log_ref (log);
  vq->ring.log_used = (vq->addr.flags & (1u << VHU_VRING_F_LOG)) != 0;
  vq->ring.used_log_gpa = vq->addr.log_guest_addr;
}

/* The device's in-flight buffer (NULL: none): used from the next start on;
 * a running ring keeps the one it started with. */
void
vhu_virtqueue_set_inflight (VhostUserVirtqueue *vq, VhuInflight *inflight)
{
  if (inflight != NULL)
    vhu_inflight_ref (inflight);
  g_clear_pointer (&vq->inflight, vhu_inflight_unref);
  vq->inflight = inflight;
}

void
vhu_virtqueue_set_drained_func (VhostUserVirtqueue *vq, VhuDrainedFunc func, gpointer data)
{
  vq->drained_func = func;
  vq->drained_data = data;
}

G_ALWAYS_INLINE static inline void
after_flush (VhostUserVirtqueue *vq)
{
  if (G_UNLIKELY (vq->ring.log != NULL && vq->log_call_fd >= 0))
    eventfd_write (vq->log_call_fd, 1);
  if (G_UNLIKELY (vq->stopping && vq->ring.inuse == 0 && vq->drained_func != NULL))
    vq->drained_func (vq, vq->drained_data);
}

typedef struct
{
  VhostUserVirtqueue *vq;
  VhuElement *elem;
} Leaked;

static gboolean
push_leaked (gpointer data)
{
  Leaked *leaked = data;
  VhostUserVirtqueue *vq = leaked->vq;
  VhuElement *elem = leaked->elem;

  if (vq->ring.desc != NULL && elem->generation == vq->ring.generation)
    vhost_user_virtqueue_push (vq, elem, 0);
  elem->in_flight = FALSE;
  vhost_user_virtq_element_unref (elem);
  g_object_unref (vq);
  g_free (leaked);
  return G_SOURCE_REMOVE;
}

/* A popped element was dropped without being pushed: it goes back to the
 * driver with nothing written, so the driver does not wait for it forever.
 * An element of an earlier start of the ring is only forgotten. This is the
 * exception, not the data path. */
static void
on_element_leaked (VhuElement *elem, gpointer user_data)
{
  Leaked *leaked = g_new (Leaked, 1);

  leaked->vq = g_object_ref (user_data);
  leaked->elem = elem;
  if (g_main_context_is_owner (leaked->vq->context))
    push_leaked (leaked);
  else
    g_main_context_invoke (leaked->vq->context, push_leaked, leaked);
}

void
vhu_virtqueue_set_size (VhostUserVirtqueue *vq, guint size)
{
  if (vq->size == size)
    return;
  vq->size = size;
  g_object_notify_by_pspec (G_OBJECT (vq), properties[PROP_SIZE]);
}

/**
 * vhost_user_virtqueue_get_device:
 * @self: a queue
 *
 * Returns: (transfer none): the device the queue belongs to
 *
 * Since: 1.0
 */
VhostUserDevice *
vhost_user_virtqueue_get_device (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), NULL);
  return self->device;
}

/**
 * vhost_user_virtqueue_get_index:
 * @self: a queue
 *
 * Returns: the queue's index in its device
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_index (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), 0);
  return self->index;
}

/**
 * vhost_user_virtqueue_get_size:
 * @self: a queue
 *
 * Returns: the number of descriptors in the ring, or 0 if not set up
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_size (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), 0);
  return self->size;
}

/**
 * vhost_user_virtqueue_get_enabled:
 * @self: a queue
 *
 * Returns: whether the front-end enabled the ring
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_get_enabled (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), FALSE);
  return self->enabled;
}

/**
 * vhost_user_virtqueue_get_started:
 * @self: a queue
 *
 * Returns: whether the ring is started
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_get_started (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), FALSE);
  return self->started;
}

/**
 * vhost_user_virtqueue_get_last_avail_idx:
 * @self: a queue
 *
 * Returns: the index of the next available-ring entry the back-end will
 *   process (free-running, modulo 2^16)
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_last_avail_idx (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), 0);
  /* While the ring runs, the split ring holds the live index. */
  if (self->ring.desc != NULL)
    return self->ring.last_avail_idx;
  return self->last_avail_idx;
}

/**
 * vhost_user_virtqueue_get_broken:
 * @self: a queue
 *
 * Returns: whether the guest broke the ring; a broken ring is not used
 *   until the front-end sets it up again
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_get_broken (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), FALSE);
  return self->broken;
}

static VhostUserVirtqElement *pop_slow (VhostUserVirtqueue *self, GError **error);

/**
 * vhost_user_virtqueue_pop:
 * @self: a started queue
 * @error: return location for a #GError
 *
 * Takes the next request the driver made available. Its descriptors are
 * read once from guest memory and validated; a ring the guest broke is
 * marked broken, its error eventfd is signalled, and %NULL is returned with
 * %VHOST_USER_ERROR_QUEUE_BROKEN.
 *
 * When the front-end shares an in-flight buffer
 * (%VHOST_USER_PROTOCOL_FEATURE_INFLIGHT_SHMFD), every request popped and
 * not yet pushed is recorded there; after a back-end restart (the front-end
 * reconnects and gives the buffer back), the requests the previous back-end
 * had popped and not pushed are returned first, in the order they were
 * popped, before any new one. A device sees them as any other request, and
 * must be able to perform them again.
 *
 * Call from the queue's thread, like every data-path function.
 *
 * Returns: (transfer full) (nullable): the request, or %NULL when there is
 *   none (with @error unset) or the ring is broken
 *
 * Since: 1.0
 */
VhostUserVirtqElement *
vhost_user_virtqueue_pop (VhostUserVirtqueue *self, GError **error)
{
  VhuElement *elem;

  g_return_val_if_fail (IS_QUEUE (self), NULL);

  if (G_UNLIKELY (self->stopping))
    return NULL;

  /* The usual case inline; memory that vanished under what was read is
   * found by the full pop (vhu_split_ring_pop()), after the element is
   * given back. */
  elem = vhu_virtqueue_pop_fast (self);
  if (G_LIKELY (elem != NULL))
    {
      if (G_LIKELY (vhu_fault_guard_count () == self->ring.faults_seen))
        return elem;
      vhu_split_ring_unpop (&self->ring, elem);
      vhu_element_pool_put_back (self->pool, elem);
    }
  return pop_slow (self, error);
}

/* The whole pop, for everything vhu_split_ring_pop_fast() leaves: apart,
 * so that the usual pop saves few registers. */
static G_GNUC_NO_INLINE VhostUserVirtqElement *
pop_slow (VhostUserVirtqueue *self, GError **error)
{
  VhuElement *elem = vhu_element_pool_take (self->pool);

  switch (vhu_split_ring_pop (&self->ring, elem, error))
    {
    case VHU_POP_OK:
      if (G_UNLIKELY (elem->mem != self->ring.mem))
        vhu_element_set_memory (elem, self->ring.mem);
      return elem;

    case VHU_POP_BROKEN:
      if (!self->broken && self->ring.desc != NULL)
        vhu_virtqueue_mark_broken (self);
      else if (error != NULL && *error == NULL)
        g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_QUEUE_BROKEN,
                     _("Queue %u is not running"), self->index);
      break;

    case VHU_POP_EMPTY:
      break;
    }
  vhost_user_virtq_element_unref (elem);
  return NULL;
}

/**
 * vhost_user_virtqueue_unpop:
 * @self: a queue
 * @element: the element popped last
 *
 * Gives back the element popped last, unprocessed: the next pop returns it
 * again (for a device that ran out of room for it, say).
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_unpop (VhostUserVirtqueue *self, VhostUserVirtqElement *element)
{
  g_return_if_fail (IS_QUEUE (self));
  g_return_if_fail (element != NULL && element->in_flight && element->pool == self->pool);

  if (element->generation == self->ring.generation && self->ring.desc != NULL)
    vhu_split_ring_unpop (&self->ring, element);
}

/**
 * vhost_user_virtqueue_fill:
 * @self: a queue
 * @element: a popped element
 * @written: how many bytes the device wrote into the element's in buffers
 * @offset: the element's place in the batch (0 for the first)
 *
 * Returns @element to the driver as part of a batch; the batch becomes
 * visible with [method@VhostUser.Virtqueue.flush].
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_fill (VhostUserVirtqueue *self,
                           VhostUserVirtqElement *element,
                           gsize written,
                           guint offset)
{
  g_return_if_fail (IS_QUEUE (self));
  g_return_if_fail (element != NULL && element->in_flight && element->pool == self->pool);

  /* An element of a ring that stopped (or restarted) since is forgotten. */
  if (G_UNLIKELY (element->generation != self->ring.generation || self->ring.desc == NULL))
    {
      element->in_flight = FALSE;
      return;
    }
  if (G_UNLIKELY (!vhu_split_ring_fill_fast (&self->ring, element, MIN (written, G_MAXUINT32),
                                             offset)))
    vhu_split_ring_fill (&self->ring, element, MIN (written, G_MAXUINT32), offset);
}

/**
 * vhost_user_virtqueue_flush:
 * @self: a queue
 * @count: how many elements were filled
 *
 * Makes a batch of filled elements visible to the driver (one used-index
 * update). Does not notify the driver: see
 * [method@VhostUser.Virtqueue.notify].
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_flush (VhostUserVirtqueue *self, guint count)
{
  g_return_if_fail (IS_QUEUE (self));

  if (G_UNLIKELY (self->ring.desc == NULL || count == 0))
    return;
  vhu_split_ring_flush (&self->ring, MIN (count, self->ring.inuse));
  after_flush (self);
}

/**
 * vhost_user_virtqueue_notify:
 * @self: a queue
 *
 * Interrupts the driver (writes the call eventfd) if it asked to be told
 * about used buffers: with %VHOST_USER_FEATURE_RING_EVENT_IDX once the used
 * index passes the driver's used_event, otherwise unless it set
 * VRING_AVAIL_F_NO_INTERRUPT.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_notify (VhostUserVirtqueue *self)
{
  g_return_if_fail (IS_QUEUE (self));

  if (G_UNLIKELY (self->ring.desc == NULL || self->ring.broken))
    return;
  if (vhu_split_ring_should_notify (&self->ring) && self->call_fd >= 0)
    eventfd_write (self->call_fd, 1);
}

/**
 * vhost_user_virtqueue_push:
 * @self: a queue
 * @element: a popped element
 * @written: how many bytes the device wrote into the element's in buffers
 *
 * Returns one element to the driver and notifies it if needed: fill, flush
 * and notify in one call. The element is done with; drop it afterwards.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_push (VhostUserVirtqueue *self, VhostUserVirtqElement *element, gsize written)
{
  gboolean notify;

  g_return_if_fail (IS_QUEUE (self));
  g_return_if_fail (element != NULL && element->in_flight && element->pool == self->pool);

  if (G_UNLIKELY (element->generation != self->ring.generation || self->ring.desc == NULL))
    {
      element->in_flight = FALSE;
      return;
    }
  if (G_UNLIKELY (!vhu_split_ring_push_fast (&self->ring, element, MIN (written, G_MAXUINT32),
                                             &notify)))
    notify = vhu_split_ring_push (&self->ring, element, MIN (written, G_MAXUINT32));
  if (notify && self->call_fd >= 0)
    eventfd_write (self->call_fd, 1);
  after_flush (self);
}

/**
 * vhost_user_virtqueue_is_empty:
 * @self: a queue
 *
 * Returns: whether the driver has made no request available that was not
 *   popped yet (%TRUE for a queue that is not running)
 *
 * Since: 1.0
 */
gboolean
vhost_user_virtqueue_is_empty (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), TRUE);
  return self->stopping || vhu_split_ring_is_empty (&self->ring);
}

/**
 * vhost_user_virtqueue_set_notification:
 * @self: a queue
 * @enable: whether the driver should kick
 *
 * Asks the driver not to kick while the device drains the ring anyway, and
 * to kick again afterwards. After enabling, check
 * [method@VhostUser.Virtqueue.is_empty] once more: a request made available
 * just before may have come without a kick.
 *
 * While the queue polls the ring (see [property@VhostUser.Virtqueue:mode]),
 * kicks stay off; the device's wish is remembered and holds when polling
 * ends.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_set_notification (VhostUserVirtqueue *self, gboolean enable)
{
  g_return_if_fail (IS_QUEUE (self));

  self->device_notify = !!enable;
  if (!self->polling)
    vhu_split_ring_set_notification (&self->ring, enable);
}

/**
 * vhost_user_virtqueue_set_mode:
 * @self: a queue
 * @mode: how the queue learns of new buffers
 *
 * Sets [property@VhostUser.Virtqueue:mode]. Any thread may call this; the
 * queue's context takes the new mode up at its next iteration (a queue
 * that was polling and goes back to %VHOST_USER_QUEUE_MODE_EVENT asks for
 * kicks again, and announces what came meanwhile).
 *
 * %VHOST_USER_QUEUE_MODE_POLL keeps the thread that runs the queue's
 * context busy all the time the ring is started: give the queue a worker
 * thread with its own context ([method@VhostUser.Virtqueue.set_context]).
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_set_mode (VhostUserVirtqueue *self, VhostUserQueueMode mode)
{
  gint old;

  g_return_if_fail (IS_QUEUE (self));
  g_return_if_fail (mode == VHOST_USER_QUEUE_MODE_EVENT || mode == VHOST_USER_QUEUE_MODE_ADAPTIVE
                    || mode == VHOST_USER_QUEUE_MODE_POLL);

  old = __atomic_exchange_n (&self->mode, (gint) mode, __ATOMIC_SEQ_CST);
  if (old == (gint) mode)
    return;
  g_main_context_wakeup (self->context);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MODE]);
}

/**
 * vhost_user_virtqueue_get_mode:
 * @self: a queue
 *
 * Returns: how the queue learns of new buffers (the mode last set)
 *
 * Since: 1.0
 */
VhostUserQueueMode
vhost_user_virtqueue_get_mode (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), VHOST_USER_QUEUE_MODE_EVENT);
  return (VhostUserQueueMode) g_atomic_int_get (&self->mode);
}

/**
 * vhost_user_virtqueue_set_poll_ns:
 * @self: a queue
 * @poll_ns: nanoseconds
 *
 * Sets [property@VhostUser.Virtqueue:poll-ns], from any thread. It counts
 * from the next time the queue starts polling.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_set_poll_ns (VhostUserVirtqueue *self, guint64 poll_ns)
{
  guint64 old;

  g_return_if_fail (IS_QUEUE (self));

  old = __atomic_exchange_n (&self->poll_ns, poll_ns, __ATOMIC_RELAXED);
  if (old != poll_ns)
    g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_POLL_NS]);
}

/**
 * vhost_user_virtqueue_get_poll_ns:
 * @self: a queue
 *
 * Returns: how long an adaptive queue polls after work, in nanoseconds
 *
 * Since: 1.0
 */
guint64
vhost_user_virtqueue_get_poll_ns (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), 0);
  return __atomic_load_n (&self->poll_ns, __ATOMIC_RELAXED);
}

/**
 * vhost_user_virtqueue_get_in_flight:
 * @self: a queue
 *
 * Returns: how many popped elements were not pushed yet
 *
 * Since: 1.0
 */
guint
vhost_user_virtqueue_get_in_flight (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), 0);
  return self->ring.inuse;
}

static gboolean
queue_move (VhostUserDevice *device, VhostUserVirtqueue *vq, gpointer data, GError **error)
{
  gboolean watching = vq->kick_source != NULL;

  remove_kick_source (vq);
  g_main_context_unref (vq->context);
  vq->context = g_main_context_ref (data);
  if (watching)
    watch_kick (vq);
  return TRUE;
}

/**
 * vhost_user_virtqueue_set_context:
 * @self: a queue
 * @context: (nullable): the main context the queue runs on from now on, or
 *   %NULL for its device's
 *
 * Moves the queue to another thread: its kick is watched on @context, and
 * [signal@VhostUser.Device::queue-started],
 * [signal@VhostUser.Device::queue-kicked] and
 * [signal@VhostUser.Device::queue-stopped] are emitted there. Pop and push
 * the queue's elements from that thread only. Control messages that touch
 * the queue run there too while the device's thread waits, so @context
 * must keep being iterated, and code running on it must not wait for the
 * device's context.
 *
 * Call from the device's context.
 *
 * Since: 1.0
 */
void
vhost_user_virtqueue_set_context (VhostUserVirtqueue *self, GMainContext *context)
{
  g_return_if_fail (IS_QUEUE (self));

  if (context == NULL)
    context = vhost_user_device_get_context (self->device);
  if (context == self->context)
    return;
  vhu_device_run_on_queue (self->device, self, queue_move, context, NULL);
}

/**
 * vhost_user_virtqueue_get_context:
 * @self: a queue
 *
 * Returns: (transfer none): the main context the queue runs on
 *
 * Since: 1.0
 */
GMainContext *
vhost_user_virtqueue_get_context (VhostUserVirtqueue *self)
{
  g_return_val_if_fail (IS_QUEUE (self), NULL);
  return self->context;
}
