/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * vhost-user-rng: a virtio entropy device (virtio device id 4: one request
 * queue, no feature bits, no config space). Each request's device-writable
 * buffers are filled from getrandom(). With --max-bytes=N (and --period=MS,
 * 1000 by default) it serves at most N bytes per period, as QEMU's rng
 * back-ends do with max-bytes and period: the period starts with the first
 * bytes served, a request beyond the quota is served partly, and what comes
 * after waits in the ring until the next period.
 */

#include "config.h"

#include <errno.h>
#include <locale.h>
#include <sys/random.h>

#include <glib/gi18n-lib.h>
#include <libvhostuser-glib/libvhostuser-glib.h>

/* The most bytes one request gets, and the size of the reusable buffer
 * they are drawn into. */
#define RNG_BUFFER_SIZE (64u * 1024u)
/* Requests returned with one used-index update. */
#define RNG_BATCH 64u
#define RNG_DEFAULT_PERIOD_MS 1000

#define VHU_TYPE_RNG_DEVICE (vhu_rng_device_get_type ())
G_DECLARE_FINAL_TYPE (VhuRngDevice, vhu_rng_device, VHU, RNG_DEVICE, VhostUserDevice)

struct _VhuRngDevice
{
  VhostUserDevice parent_instance;

  guint8 *buffer;   /* RNG_BUFFER_SIZE bytes, reused for every request */
  GPtrArray *batch; /* elements filled and not flushed yet */

  gint64 max_bytes; /* per period; 0: no limit */
  guint period_ms;
  gint64 quota; /* bytes left in this period */
  GSource *period_source;
};

G_DEFINE_FINAL_TYPE (VhuRngDevice, vhu_rng_device, VHOST_USER_TYPE_DEVICE)

static void serve_queue (VhuRngDevice *self, VhostUserVirtqueue *queue);

static gboolean
limited (VhuRngDevice *self)
{
  return self->max_bytes > 0;
}

static gboolean
on_period_end (gpointer user_data)
{
  VhuRngDevice *self = user_data;
  VhostUserVirtqueue *queue = vhost_user_device_get_queue (VHOST_USER_DEVICE (self), 0);

  g_clear_pointer (&self->period_source, g_source_unref);
  self->quota = self->max_bytes;
  if (queue != NULL && vhost_user_virtqueue_get_started (queue))
    serve_queue (self, queue);
  return G_SOURCE_REMOVE;
}

/* A period starts with the first bytes served in it. */
static void
start_period (VhuRngDevice *self)
{
  if (self->period_source != NULL)
    return;
  self->period_source = g_timeout_source_new (self->period_ms);
  g_source_set_static_name (self->period_source, "[vhost-user-rng] period");
  g_source_set_callback (self->period_source, on_period_end, self, NULL);
  g_source_attach (self->period_source, vhost_user_device_get_context (VHOST_USER_DEVICE (self)));
}

/* Fills one request; returns the bytes written. One getrandom() per
 * request: the element scatters the buffer over its descriptors. */
static gsize
fill_request (VhuRngDevice *self, VhostUserVirtqElement *elem)
{
  gsize want = MIN (vhost_user_virtq_element_get_in_size (elem), RNG_BUFFER_SIZE);
  gssize got;

  if (limited (self))
    want = MIN (want, (gsize) self->quota);
  if (want == 0)
    return 0;

  do
    got = getrandom (self->buffer, want, 0);
  while (got < 0 && errno == EINTR);
  if (got <= 0)
    {
      g_debug ("getrandom: %s", got < 0 ? g_strerror (errno) : "no bytes");
      return 0; /* the driver asks again */
    }

  got = vhost_user_virtq_element_write (elem, 0, self->buffer, got);
  if (limited (self) && got > 0)
    {
      self->quota -= got;
      start_period (self);
    }
  return got;
}

static void
flush_batch (VhostUserVirtqueue *queue, GPtrArray *batch)
{
  if (batch->len == 0)
    return;
  vhost_user_virtqueue_flush (queue, batch->len);
  vhost_user_virtqueue_notify (queue);
  g_ptr_array_set_size (batch, 0);
}

static void
serve_queue (VhuRngDevice *self, VhostUserVirtqueue *queue)
{
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      VhostUserVirtqElement *elem;

      /* No kicks while draining. */
      vhost_user_virtqueue_set_notification (queue, FALSE);
      while ((!limited (self) || self->quota > 0)
             && (elem = vhost_user_virtqueue_pop (queue, &error)) != NULL)
        {
          vhost_user_virtqueue_fill (queue, elem, fill_request (self, elem), self->batch->len);
          g_ptr_array_add (self->batch, elem);
          if (self->batch->len == RNG_BATCH)
            flush_batch (queue, self->batch);
        }
      flush_batch (queue, self->batch);
      if (error != NULL)
        {
          /* The guest broke the ring: the library reported it. */
          g_debug ("queue %u: %s", vhost_user_virtqueue_get_index (queue), error->message);
          return;
        }

      /* Out of quota: what is left waits for the period's end, which
       * serves it (and turns kicks back on); kicks meanwhile would be of
       * no use. */
      if (limited (self) && self->quota == 0)
        return;

      /* Then look once more for what came before kicks were back on. */
      vhost_user_virtqueue_set_notification (queue, TRUE);
      if (vhost_user_virtqueue_get_broken (queue) || vhost_user_virtqueue_is_empty (queue))
        return;
    }
}

static void
vhu_rng_device_queue_kicked (VhostUserDevice *device, VhostUserVirtqueue *queue)
{
  serve_queue (VHU_RNG_DEVICE (device), queue);
}

static void
vhu_rng_device_dispose (GObject *object)
{
  VhuRngDevice *self = VHU_RNG_DEVICE (object);

  if (self->period_source != NULL)
    {
      g_source_destroy (self->period_source);
      g_clear_pointer (&self->period_source, g_source_unref);
    }
  if (self->batch != NULL)
    g_ptr_array_set_size (self->batch, 0);

  G_OBJECT_CLASS (vhu_rng_device_parent_class)->dispose (object);
}

static void
vhu_rng_device_finalize (GObject *object)
{
  VhuRngDevice *self = VHU_RNG_DEVICE (object);

  g_free (self->buffer);
  g_ptr_array_unref (self->batch);

  G_OBJECT_CLASS (vhu_rng_device_parent_class)->finalize (object);
}

/* QEMU 7.2's vhost-user-rng does not set the back-end up again after a
 * reconnection: with CONFIGURE_MEM_SLOTS acknowledged it would send only
 * the memory regions that changed (none), and a restarted back-end would
 * never learn the guest's memory. Without it, QEMU sends the whole table. */
static guint64
vhu_rng_device_get_protocol_features (VhostUserDevice *device)
{
  guint64 features =
    VHOST_USER_DEVICE_CLASS (vhu_rng_device_parent_class)->get_protocol_features (device);

  return features & ~(G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS);
}

static void
vhu_rng_device_class_init (VhuRngDeviceClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  VhostUserDeviceClass *device_class = VHOST_USER_DEVICE_CLASS (klass);

  object_class->dispose = vhu_rng_device_dispose;
  object_class->finalize = vhu_rng_device_finalize;
  /* virtio-rng has no feature bits and no config space: the defaults. */
  device_class->get_protocol_features = vhu_rng_device_get_protocol_features;
  device_class->queue_kicked = vhu_rng_device_queue_kicked;
}

static void
vhu_rng_device_init (VhuRngDevice *self)
{
  self->buffer = g_malloc (RNG_BUFFER_SIZE);
  self->batch = g_ptr_array_new_full (RNG_BATCH,
                                      (GDestroyNotify) vhost_user_virtq_element_unref);
  self->period_ms = RNG_DEFAULT_PERIOD_MS;
}

static VhuRngDevice *
vhu_rng_device_new (gint64 max_bytes, guint period_ms)
{
  VhuRngDevice *self = g_object_new (VHU_TYPE_RNG_DEVICE, "num-queues", 1, NULL);

  self->max_bytes = max_bytes;
  self->quota = max_bytes;
  self->period_ms = period_ms;
  return self;
}

int
main (int argc, char **argv)
{
  g_autoptr (VhostUserBackendProgram) program = NULL;
  g_autoptr (VhuRngDevice) device = NULL;
  g_autoptr (GError) error = NULL;
  g_auto (GStrv) args = g_strdupv (argv);
  gint64 max_bytes = G_MININT64;
  gint period_ms = G_MININT;
  const GOptionEntry entries[] = {
    { "max-bytes", 0, 0, G_OPTION_ARG_INT64, &max_bytes,
      N_("Serve at most N bytes per period (no limit by default)"), N_("N") },
    { "period", 0, 0, G_OPTION_ARG_INT, &period_ms,
      N_("The length of a --max-bytes period in milliseconds (1000 by default)"), N_("MS") },
    { NULL },
  };

  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);

  program = vhost_user_backend_program_new ("rng");
  vhost_user_backend_program_set_summary (program,
                                          _("Serves a virtio entropy device (virtio-rng) to a "
                                            "vhost-user front-end."));
  vhost_user_backend_program_add_main_entries (program, entries);
  if (!vhost_user_backend_program_parse (program, &args, &error))
    {
      g_printerr ("%s: %s\n", g_get_prgname (), error->message);
      return 1;
    }
  if (vhost_user_backend_program_get_print_capabilities (program))
    return vhost_user_backend_program_run (program, NULL);

  if (max_bytes != G_MININT64 && max_bytes <= 0)
    {
      g_printerr ("%s: %s\n", g_get_prgname (), _("--max-bytes must be at least 1"));
      return 1;
    }
  if (period_ms != G_MININT && period_ms <= 0)
    {
      g_printerr ("%s: %s\n", g_get_prgname (), _("--period must be at least 1 millisecond"));
      return 1;
    }
  if (period_ms != G_MININT && max_bytes == G_MININT64)
    {
      g_printerr ("%s: %s\n", g_get_prgname (), _("--period needs --max-bytes"));
      return 1;
    }

  device = vhu_rng_device_new (max_bytes != G_MININT64 ? max_bytes : 0, period_ms != G_MININT ? (guint) period_ms
                                                                : RNG_DEFAULT_PERIOD_MS);
  return vhost_user_backend_program_run (program, VHOST_USER_DEVICE (device));
}
