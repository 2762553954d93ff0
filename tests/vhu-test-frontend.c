/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A vhost-user front-end for the tests. It owns one end of a stream socket,
 * sends each message with one sendmsg() (header, payload and SCM_RIGHTS fds),
 * reads replies as a 12-byte header then exactly hdr.size payload bytes, and
 * while it waits it iterates the device's GMainContext, so a device served on
 * the test's own thread makes progress. The sequence helpers replay what
 * QEMU 7.2 and DPDK 22.11 virtio-user send (see the traces in
 * shared/reference/traces/) and check every reply.
 */

#ifndef G_LOG_DOMAIN
#define G_LOG_DOMAIN "VhuTestFrontend"
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "vhu-test-frontend.h"

/* How long to sleep in poll() when the context had nothing to dispatch. */
#define POLL_SLICE_MS 2

/* Room for more fds than a message may carry, to notice a peer that sends
 * too many instead of having the kernel drop them silently. */
#define RECV_FDS_ROOM (VHU_MAX_FDS * 2)

#define PF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_##bit)
#define VF(bit) (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_##bit)

/* Like g_assert_true(), with a message that says what went wrong. */
#define fe_check(expr, ...)                                                                        \
  G_STMT_START                                                                                     \
  {                                                                                                \
    if (G_UNLIKELY (!(expr)))                                                                      \
      {                                                                                            \
        g_autofree char *fe_msg_ = g_strdup_printf (__VA_ARGS__);                                  \
        g_assertion_message (G_LOG_DOMAIN, __FILE__, __LINE__, G_STRFUNC, fe_msg_);                \
      }                                                                                            \
  }                                                                                                \
  G_STMT_END

struct _VhuTestFrontend
{
  int fd;
  GMainContext *context; /* iterated while waiting */
  gboolean closed;

  int backend_fd;
  int kick_fds[VHU_TEST_MAX_QUEUES];
  int call_fds[VHU_TEST_MAX_QUEUES];
  int err_fds[VHU_TEST_MAX_QUEUES];

  VhuTestRing rings[VHU_TEST_MAX_QUEUES];
  gboolean expect_base_set[VHU_TEST_MAX_QUEUES];
  guint16 expected_base[VHU_TEST_MAX_QUEUES];
  guint32 last_base[VHU_TEST_MAX_QUEUES];

  guint64 features;
  guint64 protocol_features;
  guint64 acked_features;
  guint64 acked_protocol_features;
  guint queue_num;
  gboolean memory_sent;
};

typedef enum
{
  READ_OK,
  READ_EOF,
  READ_TIMEOUT,
  READ_ERROR,
} ReadResult;

static void
keep_fd (int *slot, int fd)
{
  vhu_test_close_fd (slot);
  *slot = fd;
}

/* Guest RAM */

VhuTestGuestRam *
vhu_test_guest_ram_new (guint64 size, guint64 gpa, guint64 uva)
{
  VhuTestGuestRam *ram;
  void *host;

  g_assert_cmpuint (size, >, 0);

  ram = g_new0 (VhuTestGuestRam, 1);
  ram->fd = memfd_create ("vhu-test-guest-ram", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  fe_check (ram->fd >= 0, "memfd_create: %s", g_strerror (errno));
  fe_check (ftruncate (ram->fd, (off_t) size) == 0, "ftruncate: %s", g_strerror (errno));
  host = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ram->fd, 0);
  fe_check (host != MAP_FAILED, "mmap guest RAM: %s", g_strerror (errno));
  ram->host = host;
  ram->size = size;
  ram->gpa = gpa;
  ram->uva = uva;

  return ram;
}

void
vhu_test_guest_ram_free (VhuTestGuestRam *ram)
{
  if (ram == NULL)
    return;

  if (ram->host != NULL)
    munmap (ram->host, ram->size);
  vhu_test_close_fd (&ram->fd);
  g_free (ram);
}

VhuMemRegionDesc
vhu_test_guest_ram_desc (const VhuTestGuestRam *ram)
{
  VhuMemRegionDesc desc = { 0 };

  desc.guest_addr = ram->gpa;
  desc.size = ram->size;
  desc.user_addr = ram->uva;
  desc.mmap_offset = 0;

  return desc;
}

/* Connection */

VhuTestFrontend *
vhu_test_frontend_new (int fd, GMainContext *context)
{
  VhuTestFrontend *fe;
  int flags;
  guint i;

  g_assert_cmpint (fd, >=, 0);

  flags = fcntl (fd, F_GETFL);
  fe_check (flags >= 0 && fcntl (fd, F_SETFL, flags | O_NONBLOCK) == 0, "fcntl: %s",
            g_strerror (errno));

  fe = g_new0 (VhuTestFrontend, 1);
  fe->fd = fd;
  /* NULL is the global default context, as everywhere in GLib. */
  fe->context = g_main_context_ref (context != NULL ? context : g_main_context_default ());
  fe->backend_fd = -1;
  for (i = 0; i < VHU_TEST_MAX_QUEUES; i++)
    {
      fe->kick_fds[i] = -1;
      fe->call_fds[i] = -1;
      fe->err_fds[i] = -1;
    }

  return fe;
}

VhuTestFrontend *
vhu_test_frontend_new_for_device (VhostUserDevice *device)
{
  g_autoptr (GError) error = NULL;
  int sv[2];
  gboolean ok;

  g_assert_true (VHOST_USER_IS_DEVICE (device));

  fe_check (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
            g_strerror (errno));

  /* The device owns sv[1] from here on, whatever the outcome. */
  ok = vhost_user_device_take_connection (device, sv[1], &error);
  g_assert_no_error (error);
  g_assert_true (ok);

  return vhu_test_frontend_new (sv[0], vhost_user_device_get_context (device));
}

void
vhu_test_frontend_free (VhuTestFrontend *fe)
{
  guint i;

  if (fe == NULL)
    return;

  vhu_test_close_fd (&fe->fd);
  vhu_test_close_fd (&fe->backend_fd);
  for (i = 0; i < VHU_TEST_MAX_QUEUES; i++)
    {
      vhu_test_close_fd (&fe->kick_fds[i]);
      vhu_test_close_fd (&fe->call_fds[i]);
      vhu_test_close_fd (&fe->err_fds[i]);
    }
  g_clear_pointer (&fe->context, g_main_context_unref);
  g_free (fe);
}

int
vhu_test_frontend_get_fd (VhuTestFrontend *fe)
{
  return fe->fd;
}

gboolean
vhu_test_frontend_peer_closed (VhuTestFrontend *fe)
{
  return fe->closed;
}

/* Waiting */

/* Iterates the context and polls @fd for @events until it is ready (TRUE)
 * or @deadline (monotonic time) passes (FALSE). */
static gboolean
wait_fd (VhuTestFrontend *fe, int fd, short events, gint64 deadline)
{
  for (;;)
    {
      struct pollfd pfd = { .fd = fd, .events = events };
      gboolean dispatched;
      gint64 remaining_ms;
      int timeout;
      int r;

      dispatched = g_main_context_iteration (fe->context, FALSE);

      remaining_ms = (deadline - g_get_monotonic_time ()) / 1000;
      timeout = dispatched ? 0 : (int) CLAMP (remaining_ms, 0, POLL_SLICE_MS);

      r = poll (&pfd, 1, timeout);
      if (r > 0)
        return TRUE;
      if (r < 0 && errno != EINTR)
        fe_check (FALSE, "poll: %s", g_strerror (errno));
      if (g_get_monotonic_time () >= deadline)
        return FALSE;
    }
}

static gint64
deadline_after (guint timeout_ms)
{
  return g_get_monotonic_time () + (gint64) timeout_ms * G_TIME_SPAN_MILLISECOND;
}

/* Sending */

static gboolean
send_iov (VhuTestFrontend *fe, int fd, struct iovec *iov, int iovcnt, const int *fds, guint n_fds)
{
  g_autofree char *control = NULL;
  gint64 deadline = deadline_after (VHU_TEST_TIMEOUT_MS);
  gboolean fds_sent = FALSE;

  if (n_fds > 0)
    {
      struct msghdr tmp = { 0 };
      struct cmsghdr *cmsg;

      control = g_malloc0 (CMSG_SPACE (sizeof (int) * n_fds));
      tmp.msg_control = control;
      tmp.msg_controllen = CMSG_SPACE (sizeof (int) * n_fds);
      cmsg = CMSG_FIRSTHDR (&tmp);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN (sizeof (int) * n_fds);
      memcpy (CMSG_DATA (cmsg), fds, sizeof (int) * n_fds);
    }

  while (iovcnt > 0 || !fds_sent)
    {
      struct msghdr msg = { 0 };
      ssize_t r;

      msg.msg_iov = iov;
      msg.msg_iovlen = iovcnt;
      if (!fds_sent && control != NULL)
        {
          msg.msg_control = control;
          msg.msg_controllen = CMSG_SPACE (sizeof (int) * n_fds);
        }

      r = sendmsg (fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            {
              if (!wait_fd (fe, fd, POLLOUT, deadline))
                {
                  g_test_message ("vhu-test-frontend: send timed out");
                  return FALSE;
                }
              continue;
            }
          if (fd == fe->fd && (errno == EPIPE || errno == ECONNRESET))
            fe->closed = TRUE;
          g_test_message ("vhu-test-frontend: sendmsg: %s", g_strerror (errno));
          return FALSE;
        }

      fds_sent = TRUE;
      while (iovcnt > 0 && (size_t) r >= iov->iov_len)
        {
          r -= iov->iov_len;
          iov++;
          iovcnt--;
        }
      if (iovcnt > 0)
        {
          iov->iov_base = (char *) iov->iov_base + r;
          iov->iov_len -= r;
        }
    }

  return TRUE;
}

gboolean
vhu_test_frontend_send_raw (VhuTestFrontend *fe,
                            const void *bytes,
                            gsize len,
                            const int *fds,
                            guint n_fds)
{
  struct iovec iov = { .iov_base = (void *) bytes, .iov_len = len };

  return send_iov (fe, fe->fd, &iov, len > 0 ? 1 : 0, fds, n_fds);
}

static gboolean
send_message_on (VhuTestFrontend *fe,
                 int fd,
                 guint32 request,
                 guint32 flags,
                 const void *payload,
                 guint32 size,
                 const int *fds,
                 guint n_fds)
{
  VhuHeader hdr;
  struct iovec iov[2];

  if ((flags & VHU_FLAG_VERSION_MASK) == 0)
    flags |= VHU_VERSION;

  hdr.request = request;
  hdr.flags = flags;
  hdr.size = size;
  iov[0].iov_base = &hdr;
  iov[0].iov_len = sizeof hdr;
  iov[1].iov_base = (void *) payload;
  iov[1].iov_len = size;

  return send_iov (fe, fd, iov, size > 0 ? 2 : 1, fds, n_fds);
}

gboolean
vhu_test_frontend_send (VhuTestFrontend *fe,
                        guint32 request,
                        guint32 flags,
                        const void *payload,
                        guint32 size,
                        const int *fds,
                        guint n_fds)
{
  g_assert_true (payload != NULL || size == 0);

  if (size == sizeof (guint64))
    {
      guint64 value;

      memcpy (&value, payload, sizeof value);
      if (request == VHOST_USER_REQUEST_SET_FEATURES)
        fe->acked_features = value;
      else if (request == VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES)
        fe->acked_protocol_features = value;
    }

  return send_message_on (fe, fe->fd, request, flags, payload, size, fds, n_fds);
}

/* Receiving */

static void
collect_fds (struct msghdr *msg, int *fds, guint *n_fds, gboolean *overflow)
{
  struct cmsghdr *cmsg;

  if ((msg->msg_flags & MSG_CTRUNC) && overflow != NULL)
    *overflow = TRUE;

  for (cmsg = CMSG_FIRSTHDR (msg); cmsg != NULL; cmsg = CMSG_NXTHDR (msg, cmsg))
    {
      size_t n, i;
      int *data;

      if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
        continue;

      n = (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int);
      data = (int *) CMSG_DATA (cmsg);
      for (i = 0; i < n; i++)
        {
          int received;

          memcpy (&received, data + i, sizeof received);
          if (fds != NULL && *n_fds < VHU_MAX_FDS)
            fds[(*n_fds)++] = received;
          else
            {
              close (received);
              if (overflow != NULL)
                *overflow = TRUE;
            }
        }
    }
}

/* Reads exactly @len bytes, collecting the fds that come with them. */
static ReadResult
read_exact (VhuTestFrontend *fe,
            int fd,
            guint8 *buf,
            gsize len,
            int *fds,
            guint *n_fds,
            gboolean *overflow,
            gint64 deadline)
{
  gsize got = 0;

  while (got < len)
    {
      union
      {
        char buf[CMSG_SPACE (sizeof (int) * RECV_FDS_ROOM)];
        struct cmsghdr align;
      } control;
      struct iovec iov = { .iov_base = buf + got, .iov_len = len - got };
      struct msghdr msg = { 0 };
      ssize_t r;

      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.buf;
      msg.msg_controllen = sizeof control.buf;

      r = recvmsg (fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (r > 0)
        {
          collect_fds (&msg, fds, n_fds, overflow);
          got += (gsize) r;
          continue;
        }
      if (r == 0)
        return READ_EOF;
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          if (!wait_fd (fe, fd, POLLIN, deadline))
            return READ_TIMEOUT;
          continue;
        }
      if (errno == ECONNRESET)
        return READ_EOF;
      g_test_message ("vhu-test-frontend: recvmsg: %s", g_strerror (errno));
      return READ_ERROR;
    }

  return READ_OK;
}

static gboolean
read_message (VhuTestFrontend *fe, int fd, VhuMessage *msg, guint timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);
  int fds[VHU_MAX_FDS];
  guint n_fds = 0;
  gboolean overflow = FALSE;
  ReadResult result;
  guint i;

  vhu_message_init (msg);

  result = read_exact (fe, fd, (guint8 *) &msg->hdr, VHU_HEADER_SIZE, fds, &n_fds, &overflow,
                       deadline);
  if (result == READ_OK && msg->hdr.size > VHU_MAX_PAYLOAD)
    {
      g_test_message ("vhu-test-frontend: refusing a %u-byte payload", msg->hdr.size);
      result = READ_ERROR;
    }
  if (result == READ_OK && msg->hdr.size > 0)
    result = read_exact (fe, fd, msg->payload.bytes, msg->hdr.size, fds, &n_fds, &overflow,
                         deadline);
  if (result == READ_OK && overflow)
    {
      g_test_message ("vhu-test-frontend: more than %u fds with one message", VHU_MAX_FDS);
      result = READ_ERROR;
    }

  if (result != READ_OK)
    {
      if (result == READ_EOF && fd == fe->fd)
        fe->closed = TRUE;
      for (i = 0; i < n_fds; i++)
        close (fds[i]);
      return FALSE;
    }

  memcpy (msg->fds, fds, sizeof (int) * n_fds);
  msg->n_fds = n_fds;
  return TRUE;
}

gboolean
vhu_test_frontend_recv (VhuTestFrontend *fe, VhuMessage *reply, guint timeout_ms)
{
  return read_message (fe, fe->fd, reply, timeout_ms);
}

gboolean
vhu_test_frontend_recv_backend (VhuTestFrontend *fe, VhuMessage *request, guint timeout_ms)
{
  g_assert_cmpint (fe->backend_fd, >=, 0);

  return read_message (fe, fe->backend_fd, request, timeout_ms);
}

void
vhu_test_frontend_reply_backend (VhuTestFrontend *fe, const VhuMessage *request, guint64 value)
{
  g_assert_cmpint (fe->backend_fd, >=, 0);

  fe_check (send_message_on (fe, fe->backend_fd, request->hdr.request, VHU_VERSION | VHU_FLAG_REPLY,
                             &value, sizeof value, NULL, 0),
            "could not reply on the back-end channel");
}

gboolean
vhu_test_frontend_wait_closed (VhuTestFrontend *fe, guint timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);

  while (!fe->closed)
    {
      union
      {
        char buf[CMSG_SPACE (sizeof (int) * RECV_FDS_ROOM)];
        struct cmsghdr align;
      } control;
      guint8 sink[512];
      struct iovec iov = { .iov_base = sink, .iov_len = sizeof sink };
      struct msghdr msg = { 0 };
      ssize_t r;

      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control.buf;
      msg.msg_controllen = sizeof control.buf;

      r = recvmsg (fe->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (r > 0)
        {
          /* Discarded, with any fds. */
          collect_fds (&msg, NULL, NULL, NULL);
          continue;
        }
      if (r == 0 || (r < 0 && errno == ECONNRESET))
        {
          fe->closed = TRUE;
          break;
        }
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        fe_check (FALSE, "recvmsg: %s", g_strerror (errno));
      if (!wait_fd (fe, fe->fd, POLLIN, deadline))
        return FALSE;
    }

  return TRUE;
}

gboolean
vhu_test_frontend_expect_silence (VhuTestFrontend *fe, guint timeout_ms)
{
  gint64 deadline = deadline_after (timeout_ms);

  while (!fe->closed)
    {
      guint8 byte;
      ssize_t r;

      if (!wait_fd (fe, fe->fd, POLLIN, deadline))
        return TRUE;

      r = recv (fe->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (r > 0)
        return FALSE;
      if (r == 0 || (r < 0 && errno == ECONNRESET))
        fe->closed = TRUE;
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        fe_check (FALSE, "recv: %s", g_strerror (errno));
      else if (g_get_monotonic_time () >= deadline)
        return TRUE;
    }

  return TRUE;
}

void
vhu_test_frontend_flush (VhuTestFrontend *fe)
{
  gint64 deadline = deadline_after (VHU_TEST_TIMEOUT_MS);

  while (g_main_context_iteration (fe->context, FALSE))
    {
      if (g_get_monotonic_time () >= deadline)
        {
          g_test_message ("vhu-test-frontend: the context never went idle");
          break;
        }
    }
}

/* Conveniences */

/* Receives the reply to @request and checks its header: same request code,
 * version 1, REPLY set, NEED_REPLY clear, and no fds. */
static void
expect_reply (VhuTestFrontend *fe, guint32 request, VhuMessage *reply)
{
  fe_check (vhu_test_frontend_recv (fe, reply, VHU_TEST_TIMEOUT_MS),
            "no reply to %s (%u) within %d ms%s", vhu_request_name (request), request,
            VHU_TEST_TIMEOUT_MS, fe->closed ? ": the device closed the connection" : "");
  fe_check (reply->hdr.request == request, "reply to %s (%u) has request code %u",
            vhu_request_name (request), request, reply->hdr.request);
  fe_check ((reply->hdr.flags & VHU_FLAG_VERSION_MASK) == VHU_VERSION,
            "reply to %s has version %u", vhu_request_name (request),
            reply->hdr.flags & VHU_FLAG_VERSION_MASK);
  fe_check ((reply->hdr.flags & VHU_FLAG_REPLY) != 0, "reply to %s lacks the REPLY flag (0x%x)",
            vhu_request_name (request), reply->hdr.flags);
  fe_check ((reply->hdr.flags & VHU_FLAG_NEED_REPLY) == 0, "reply to %s has NEED_REPLY (0x%x)",
            vhu_request_name (request), reply->hdr.flags);
  fe_check (reply->n_fds == 0, "reply to %s carries %u fds", vhu_request_name (request),
            reply->n_fds);
}

static guint64
expect_u64_reply (VhuTestFrontend *fe, guint32 request)
{
  VhuMessage reply;
  guint64 value;

  expect_reply (fe, request, &reply);
  fe_check (reply.hdr.size == sizeof (guint64), "reply to %s has a %u-byte payload, not 8",
            vhu_request_name (request), reply.hdr.size);
  value = reply.payload.u64;
  vhu_message_clear (&reply);

  return value;
}

static void
send_checked (VhuTestFrontend *fe,
              guint32 request,
              guint32 flags,
              const void *payload,
              guint32 size,
              const int *fds,
              guint n_fds)
{
  fe_check (vhu_test_frontend_send (fe, request, flags, payload, size, fds, n_fds),
            "could not send %s (%u)%s", vhu_request_name (request), request,
            fe->closed ? ": the device closed the connection" : "");
}

static gboolean
acked_protocol (VhuTestFrontend *fe, guint64 mask)
{
  return (fe->acked_protocol_features & mask) == mask;
}

/* Sends @request; with REPLY_ACK acked, with NEED_REPLY, returning the ack.
 * Without it, lets the device process the message and returns 0. */
static guint64
send_maybe_ack (VhuTestFrontend *fe,
                guint32 request,
                const void *payload,
                guint32 size,
                const int *fds,
                guint n_fds)
{
  if (acked_protocol (fe, PF (REPLY_ACK)))
    return vhu_test_frontend_call_ack (fe, request, payload, size, fds, n_fds);

  send_checked (fe, request, VHU_VERSION, payload, size, fds, n_fds);
  vhu_test_frontend_flush (fe);
  return 0;
}

guint64
vhu_test_frontend_get_u64 (VhuTestFrontend *fe, guint32 request)
{
  guint64 value;

  send_checked (fe, request, VHU_VERSION, NULL, 0, NULL, 0);
  value = expect_u64_reply (fe, request);

  switch (request)
    {
    case VHOST_USER_REQUEST_GET_FEATURES:
      fe->features = value;
      break;
    case VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES:
      fe->protocol_features = value;
      break;
    case VHOST_USER_REQUEST_GET_QUEUE_NUM:
      fe->queue_num = (guint) value;
      break;
    default:
      break;
    }

  return value;
}

void
vhu_test_frontend_set_u64 (VhuTestFrontend *fe, guint32 request, guint64 value)
{
  send_checked (fe, request, VHU_VERSION, &value, sizeof value, NULL, 0);
}

guint64
vhu_test_frontend_call_ack (VhuTestFrontend *fe,
                            guint32 request,
                            const void *payload,
                            guint32 size,
                            const int *fds,
                            guint n_fds)
{
  send_checked (fe, request, VHU_VERSION | VHU_FLAG_NEED_REPLY, payload, size, fds, n_fds);
  return expect_u64_reply (fe, request);
}

/* Fails the test unless @request was acked with 0. */
static void
check_ack (guint32 request, guint64 ack)
{
  if (ack != 0)
    g_error ("%s was refused (%" G_GUINT64_FORMAT ")", vhu_request_name (request), ack);
}

void
vhu_test_frontend_call_ok (VhuTestFrontend *fe,
                           guint32 request,
                           const void *payload,
                           guint32 size,
                           const int *fds,
                           guint n_fds)
{
  check_ack (request, vhu_test_frontend_call_ack (fe, request, payload, size, fds, n_fds));
}

void
vhu_test_frontend_vring_state (VhuTestFrontend *fe, guint32 request, guint32 index, guint32 num)
{
  VhuVringState state = { .index = index, .num = num };

  send_checked (fe, request, VHU_VERSION, &state, sizeof state, NULL, 0);
}

void
vhu_test_frontend_vring_state_ok (VhuTestFrontend *fe,
                                  guint32 request,
                                  guint32 index,
                                  guint32 num)
{
  VhuVringState state = { .index = index, .num = num };

  vhu_test_frontend_call_ok (fe, request, &state, sizeof state, NULL, 0);
}

guint64
vhu_test_frontend_vring_fd_ack (VhuTestFrontend *fe, guint32 request, guint32 index, int fd)
{
  guint64 value = index;

  if (fd < 0)
    value |= VHU_VRING_NOFD;
  return vhu_test_frontend_call_ack (fe, request, &value, sizeof value, fd >= 0 ? &fd : NULL,
                                     fd >= 0 ? 1 : 0);
}

void
vhu_test_frontend_vring_fd_ok (VhuTestFrontend *fe, guint32 request, guint32 index, int fd)
{
  check_ack (request, vhu_test_frontend_vring_fd_ack (fe, request, index, fd));
}

void
vhu_test_frontend_negotiate (VhuTestFrontend *fe, guint64 features, guint64 protocol_features)
{
  guint64 offered = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_FEATURES);

  g_assert_cmphex (offered & features, ==, features);
  offered = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  g_assert_cmphex (offered & protocol_features, ==, protocol_features);
  vhu_test_frontend_set_u64 (fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, protocol_features);
  vhu_test_frontend_call_ok (fe, VHOST_USER_REQUEST_SET_OWNER, NULL, 0, NULL, 0);
  vhu_test_frontend_call_ok (fe, VHOST_USER_REQUEST_SET_FEATURES, &features, sizeof features,
                             NULL, 0);
}

guint32
vhu_test_frontend_get_vring_base (VhuTestFrontend *fe, guint32 index)
{
  VhuVringState state = { .index = index, .num = 0 };
  VhuMessage reply;
  guint32 num;

  send_checked (fe, VHOST_USER_REQUEST_GET_VRING_BASE, VHU_VERSION, &state, sizeof state, NULL, 0);
  expect_reply (fe, VHOST_USER_REQUEST_GET_VRING_BASE, &reply);
  fe_check (reply.hdr.size == sizeof (VhuVringState),
            "GET_VRING_BASE reply has a %u-byte payload, not 8", reply.hdr.size);
  fe_check (reply.payload.state.index == index, "GET_VRING_BASE reply is for ring %u, not %u",
            reply.payload.state.index, index);
  num = reply.payload.state.num;
  vhu_message_clear (&reply);

  return num;
}

int
vhu_test_frontend_set_vring_fd (VhuTestFrontend *fe,
                                guint32 request,
                                guint32 index,
                                gboolean with_fd)
{
  guint64 value = index;
  int efd = -1;

  g_assert_true (request == VHOST_USER_REQUEST_SET_VRING_KICK
                 || request == VHOST_USER_REQUEST_SET_VRING_CALL
                 || request == VHOST_USER_REQUEST_SET_VRING_ERR);

  if (with_fd)
    {
      efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
      fe_check (efd >= 0, "eventfd: %s", g_strerror (errno));
    }
  else
    value |= VHU_VRING_NOFD;

  send_checked (fe, request, VHU_VERSION, &value, sizeof value, with_fd ? &efd : NULL,
                with_fd ? 1 : 0);

  return efd;
}

guint64
vhu_test_frontend_set_mem_table (VhuTestFrontend *fe, VhuTestGuestRam **rams, guint n)
{
  VhuMemTableMsg table = { 0 };
  int fds[VHU_MEM_TABLE_MAX_REGIONS];
  guint i;

  g_assert_cmpuint (n, <=, VHU_MEM_TABLE_MAX_REGIONS);

  table.nregions = n;
  for (i = 0; i < n; i++)
    {
      table.regions[i] = vhu_test_guest_ram_desc (rams[i]);
      fds[i] = rams[i]->fd;
    }

  return send_maybe_ack (fe, VHOST_USER_REQUEST_SET_MEM_TABLE, &table,
                         (guint32) (G_STRUCT_OFFSET (VhuMemTableMsg, regions)
                                    + n * sizeof (VhuMemRegionDesc)),
                         fds, n);
}

guint64
vhu_test_frontend_add_mem_reg (VhuTestFrontend *fe, VhuTestGuestRam *ram)
{
  VhuMemRegMsg reg = { 0 };

  reg.region = vhu_test_guest_ram_desc (ram);

  return send_maybe_ack (fe, VHOST_USER_REQUEST_ADD_MEM_REG, &reg, sizeof reg, &ram->fd, 1);
}

guint32
vhu_test_frontend_get_config (VhuTestFrontend *fe, guint32 offset, guint32 size, guint8 *out)
{
  VhuConfigMsg config = { 0 };
  VhuMessage reply;
  guint32 reply_size;

  g_assert_cmpuint (size, <=, VHU_MAX_CONFIG_SIZE);

  config.offset = offset;
  config.size = size;
  config.flags = 0;
  send_checked (fe, VHOST_USER_REQUEST_GET_CONFIG, VHU_VERSION, &config,
                VHU_CONFIG_HEADER_SIZE + size, NULL, 0);
  expect_reply (fe, VHOST_USER_REQUEST_GET_CONFIG, &reply);

  reply_size = reply.hdr.size;
  if (reply_size != 0)
    {
      fe_check (reply_size == VHU_CONFIG_HEADER_SIZE + size,
                "GET_CONFIG reply has a %u-byte payload, not 0 or %u", reply_size,
                VHU_CONFIG_HEADER_SIZE + size);
      fe_check (reply.payload.config.offset == offset && reply.payload.config.size == size,
                "GET_CONFIG reply is for offset %u size %u, not %u/%u",
                reply.payload.config.offset, reply.payload.config.size, offset, size);
      if (out != NULL)
        memcpy (out, reply.payload.config.region, size);
    }
  vhu_message_clear (&reply);

  return reply_size;
}

guint64
vhu_test_frontend_set_config (VhuTestFrontend *fe,
                              guint32 offset,
                              const guint8 *data,
                              guint32 size,
                              guint32 flags)
{
  VhuConfigMsg config = { 0 };

  g_assert_cmpuint (size, <=, VHU_MAX_CONFIG_SIZE);

  config.offset = offset;
  config.size = size;
  config.flags = flags;
  if (size > 0)
    memcpy (config.region, data, size);

  return send_maybe_ack (fe, VHOST_USER_REQUEST_SET_CONFIG, &config,
                         VHU_CONFIG_HEADER_SIZE + size, NULL, 0);
}

/* State the helpers keep */

int
vhu_test_frontend_get_backend_fd (VhuTestFrontend *fe)
{
  return fe->backend_fd;
}

int
vhu_test_frontend_get_kick_fd (VhuTestFrontend *fe, guint index)
{
  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  return fe->kick_fds[index];
}

int
vhu_test_frontend_get_call_fd (VhuTestFrontend *fe, guint index)
{
  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  return fe->call_fds[index];
}

int
vhu_test_frontend_get_err_fd (VhuTestFrontend *fe, guint index)
{
  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  return fe->err_fds[index];
}

void
vhu_test_frontend_kick (VhuTestFrontend *fe, guint index)
{
  int fd = vhu_test_frontend_get_kick_fd (fe, index);

  fe_check (fd >= 0, "no kick eventfd for queue %u", index);
  fe_check (eventfd_write (fd, 1) == 0, "eventfd_write: %s", g_strerror (errno));
}

guint64
vhu_test_frontend_read_call (VhuTestFrontend *fe, guint index)
{
  int fd = vhu_test_frontend_get_call_fd (fe, index);
  eventfd_t value = 0;

  fe_check (fd >= 0, "no call eventfd for queue %u", index);
  if (eventfd_read (fd, &value) < 0)
    {
      fe_check (errno == EAGAIN, "eventfd_read: %s", g_strerror (errno));
      return 0;
    }

  return value;
}

const VhuTestRing *
vhu_test_frontend_get_ring (VhuTestFrontend *fe, guint index)
{
  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  return &fe->rings[index];
}

void
vhu_test_frontend_expect_vring_base (VhuTestFrontend *fe, guint index, guint16 base)
{
  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  fe->expect_base_set[index] = TRUE;
  fe->expected_base[index] = base;
}

guint32
vhu_test_frontend_get_last_vring_base (VhuTestFrontend *fe, guint index)
{
  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  return fe->last_base[index];
}

void
vhu_test_frontend_forget_memory (VhuTestFrontend *fe)
{
  fe->memory_sent = FALSE;
}

guint64
vhu_test_frontend_get_offered_features (VhuTestFrontend *fe)
{
  return fe->features;
}

guint64
vhu_test_frontend_get_offered_protocol_features (VhuTestFrontend *fe)
{
  return fe->protocol_features;
}

guint64
vhu_test_frontend_get_acked_features (VhuTestFrontend *fe)
{
  return fe->acked_features;
}

guint64
vhu_test_frontend_get_acked_protocol_features (VhuTestFrontend *fe)
{
  return fe->acked_protocol_features;
}

guint
vhu_test_frontend_get_queue_num (VhuTestFrontend *fe)
{
  return fe->queue_num;
}

/* Rings */

static guint16
ring_read_idx (const guint8 *ring_header)
{
  /* flags (u16) then idx (u16), for both the avail and the used ring; the
   * device may write it from another thread */
  return __atomic_load_n ((const guint16 *) (ring_header + 2), __ATOMIC_ACQUIRE);
}

static void
ring_write_idx (guint8 *ring_header, guint16 idx)
{
  memcpy (ring_header + 2, &idx, sizeof idx);
}

/* Lays out ring @index in @ram, cleared, and sends NUM, BASE, ADDR, KICK. */
void
vhu_test_frontend_start_ring (VhuTestFrontend *fe,
                              VhuTestGuestRam *ram,
                              guint index,
                              guint num,
                              guint16 base)
{
  VhuTestRing *ring = &fe->rings[index];
  guint64 offset = VHU_TEST_RING_OFFSET + (guint64) index * VHU_TEST_RING_STRIDE;
  VhuVringAddr addr = { 0 };

  g_assert_cmpuint (index, <, VHU_TEST_MAX_QUEUES);
  g_assert_cmpuint (num, <=, 0x1000 / 16);
  fe_check (ram->size >= offset + VHU_TEST_RING_STRIDE,
            "guest RAM of 0x%" G_GINT64_MODIFIER "x bytes is too small for ring %u", ram->size,
            index);

  memset (ram->host + offset, 0, VHU_TEST_RING_STRIDE);
  ring->num = num;
  ring->desc = ram->host + offset;
  ring->avail = ring->desc + 0x1000;
  ring->used = ring->desc + 0x2000;
  ring->desc_uva = ram->uva + offset;
  ring->avail_uva = ring->desc_uva + 0x1000;
  ring->used_uva = ring->desc_uva + 0x2000;
  ring->base = base;
  if (base != 0)
    {
      ring_write_idx (ring->avail, base);
      ring_write_idx (ring->used, base);
    }
  ring->used_idx_at_start = base;
  fe->expect_base_set[index] = FALSE;

  vhu_test_frontend_vring_state (fe, VHOST_USER_REQUEST_SET_VRING_NUM, index, num);
  vhu_test_frontend_vring_state (fe, VHOST_USER_REQUEST_SET_VRING_BASE, index, base);

  addr.index = index;
  addr.flags = 0;
  addr.desc_user_addr = ring->desc_uva;
  addr.used_user_addr = ring->used_uva;
  addr.avail_user_addr = ring->avail_uva;
  addr.log_guest_addr = 0;
  send_checked (fe, VHOST_USER_REQUEST_SET_VRING_ADDR, VHU_VERSION, &addr, sizeof addr, NULL, 0);

  keep_fd (&fe->kick_fds[index],
           vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_KICK, index, TRUE));
}

static void
set_vring_enable (VhuTestFrontend *fe, guint index, gboolean enable)
{
  vhu_test_frontend_vring_state (fe, VHOST_USER_REQUEST_SET_VRING_ENABLE, index, enable ? 1 : 0);
}

/* GET_VRING_BASE for ring @index, checked against what it should be. */
guint32
vhu_test_frontend_stop_ring (VhuTestFrontend *fe, guint index)
{
  const VhuTestRing *ring = &fe->rings[index];
  guint32 base = vhu_test_frontend_get_vring_base (fe, index);

  fe->last_base[index] = base;

  if (fe->expect_base_set[index])
    fe_check (base == fe->expected_base[index],
              "GET_VRING_BASE for ring %u returned %u, the test expected %u", index, base,
              fe->expected_base[index]);
  else if (ring->num != 0)
    {
      guint16 used = ring_read_idx (ring->used);
      guint16 expected = (guint16) (ring->base + (guint16) (used - ring->used_idx_at_start));

      fe_check (base == expected,
                "GET_VRING_BASE for ring %u returned %u, expected %u (base %u, %u used)", index,
                base, expected, ring->base, (guint16) (used - ring->used_idx_at_start));
    }

  return base;
}

static void
set_status (VhuTestFrontend *fe, guint64 status)
{
  guint64 ack = send_maybe_ack (fe, VHOST_USER_REQUEST_SET_STATUS, &status, sizeof status, NULL, 0);

  fe_check (ack == 0, "SET_STATUS 0x%" G_GINT64_MODIFIER "x was refused (%" G_GUINT64_FORMAT ")",
            status, ack);
}

/* QEMU 7.2, vhost-user-blk */

void
vhu_test_frontend_qemu_blk_realize (VhuTestFrontend *fe)
{
  guint64 features, protocol_features, features_again;

  features = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_FEATURES);
  fe_check (features & VF (PROTOCOL_FEATURES),
            "GET_FEATURES 0x%" G_GINT64_MODIFIER "x does not offer PROTOCOL_FEATURES (bit 30)",
            features);

  protocol_features = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  vhu_test_frontend_set_u64 (fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES,
                             protocol_features & VHU_TEST_QEMU_PROTOCOL_FEATURES);

  if (acked_protocol (fe, PF (MQ)))
    {
      guint64 queues = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_QUEUE_NUM);

      fe_check (queues >= 1 && queues <= VHU_TEST_MAX_QUEUES,
                "GET_QUEUE_NUM returned %" G_GUINT64_FORMAT, queues);
    }

  if (acked_protocol (fe, PF (CONFIGURE_MEM_SLOTS)))
    {
      guint64 slots = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS);

      fe_check (slots == VHU_MAX_MEM_SLOTS, "GET_MAX_MEM_SLOTS returned %" G_GUINT64_FORMAT
                ", not %u", slots, VHU_MAX_MEM_SLOTS);
    }

  if (acked_protocol (fe, PF (BACKEND_REQ)))
    {
      int sv[2];
      guint64 ack;

      fe_check (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
                g_strerror (errno));
      ack = send_maybe_ack (fe, VHOST_USER_REQUEST_SET_BACKEND_REQ_FD, NULL, 0, &sv[1], 1);
      close (sv[1]);
      fe_check (ack == 0, "SET_BACKEND_REQ_FD was refused (%" G_GUINT64_FORMAT ")", ack);
      keep_fd (&fe->backend_fd, sv[0]);
    }

  send_checked (fe, VHOST_USER_REQUEST_SET_OWNER, VHU_VERSION, NULL, 0, NULL, 0);

  features_again = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_FEATURES);
  fe_check (features_again == features,
            "GET_FEATURES changed from 0x%" G_GINT64_MODIFIER "x to 0x%" G_GINT64_MODIFIER "x",
            features, features_again);

  keep_fd (&fe->call_fds[0],
           vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_CALL, 0, TRUE));
  keep_fd (&fe->err_fds[0],
           vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_ERR, 0, TRUE));

  if (acked_protocol (fe, PF (CONFIG)))
    {
      guint8 config[60];
      VhuMessage reply;
      VhuConfigMsg request = { .offset = 0, .size = sizeof config, .flags = 0 };

      /* Checked here for the exact reply size QEMU requires. */
      send_checked (fe, VHOST_USER_REQUEST_GET_CONFIG, VHU_VERSION, &request,
                    VHU_CONFIG_HEADER_SIZE + sizeof config, NULL, 0);
      expect_reply (fe, VHOST_USER_REQUEST_GET_CONFIG, &reply);
      fe_check (reply.hdr.size == VHU_CONFIG_HEADER_SIZE + sizeof config,
                "GET_CONFIG reply has a %u-byte payload, not 72", reply.hdr.size);
      fe_check (reply.payload.config.offset == 0 && reply.payload.config.size == sizeof config,
                "GET_CONFIG reply is for offset %u size %u", reply.payload.config.offset,
                reply.payload.config.size);
      vhu_message_clear (&reply);
    }

  vhu_test_frontend_flush (fe);
}

void
vhu_test_frontend_qemu_blk_start_full (VhuTestFrontend *fe,
                                       VhuTestGuestRam *ram,
                                       guint n_queues,
                                       guint64 features,
                                       const guint16 *bases)
{
  guint64 acked;
  guint i;

  fe_check (fe->features != 0, "start before GET_FEATURES: realize first");
  g_assert_cmpuint (n_queues, >=, 1);
  g_assert_cmpuint (n_queues, <=, VHU_TEST_MAX_QUEUES);

  acked = features & fe->features;
  if (fe->features & VF (PROTOCOL_FEATURES))
    acked |= VF (PROTOCOL_FEATURES);

  /* virtio-blk sets its guest notifiers up (SET_FEATURES, then CALL per
   * ring), then vhost_dev_start sets the features again. */
  vhu_test_frontend_set_u64 (fe, VHOST_USER_REQUEST_SET_FEATURES, acked);
  for (i = 0; i < n_queues; i++)
    keep_fd (&fe->call_fds[i],
             vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_CALL, i, TRUE));
  vhu_test_frontend_set_u64 (fe, VHOST_USER_REQUEST_SET_FEATURES, acked);

  if (!fe->memory_sent)
    {
      guint64 ack;

      if (acked_protocol (fe, PF (CONFIGURE_MEM_SLOTS)))
        ack = vhu_test_frontend_add_mem_reg (fe, ram);
      else
        ack = vhu_test_frontend_set_mem_table (fe, &ram, 1);
      fe_check (ack == 0, "the memory table was refused (%" G_GUINT64_FORMAT ")", ack);
      fe->memory_sent = TRUE;
    }

  for (i = 0; i < n_queues; i++)
    vhu_test_frontend_start_ring (fe, ram, i, VHU_TEST_QEMU_QUEUE_SIZE,
                                  bases != NULL ? bases[i] : 0);

  if (acked & VF (PROTOCOL_FEATURES))
    for (i = 0; i < n_queues; i++)
      set_vring_enable (fe, i, TRUE);

  vhu_test_frontend_flush (fe);
}

void
vhu_test_frontend_qemu_blk_start (VhuTestFrontend *fe, VhuTestGuestRam *ram, guint n_queues)
{
  vhu_test_frontend_qemu_blk_start_full (fe, ram, n_queues, VHU_TEST_BLK_FEATURES_SEABIOS, NULL);
}

void
vhu_test_frontend_qemu_blk_stop (VhuTestFrontend *fe, guint n_queues)
{
  guint i;

  g_assert_cmpuint (n_queues, <=, VHU_TEST_MAX_QUEUES);

  if (fe->acked_features & VF (PROTOCOL_FEATURES))
    for (i = 0; i < n_queues; i++)
      set_vring_enable (fe, i, FALSE);

  for (i = 0; i < n_queues; i++)
    vhu_test_frontend_stop_ring (fe, i);

  vhu_test_frontend_flush (fe);
}

/* DPDK 22.11 virtio-user: always one queue pair, two rings */

#define VIRTIO_USER_RINGS 2u

void
vhu_test_frontend_virtio_user_probe (VhuTestFrontend *fe)
{
  guint64 features;
  guint i;

  send_checked (fe, VHOST_USER_REQUEST_SET_OWNER, VHU_VERSION, NULL, 0, NULL, 0);

  features = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_FEATURES);
  if (features & VF (PROTOCOL_FEATURES))
    {
      guint64 protocol_features =
        vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);

      vhu_test_frontend_set_u64 (fe, VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES,
                                 protocol_features & VHU_TEST_VIRTIO_USER_PROTOCOL_FEATURES);
    }

  for (i = 0; i < VIRTIO_USER_RINGS; i++)
    keep_fd (&fe->call_fds[i],
             vhu_test_frontend_set_vring_fd (fe, VHOST_USER_REQUEST_SET_VRING_CALL, i, TRUE));

  vhu_test_frontend_set_u64 (fe, VHOST_USER_REQUEST_SET_FEATURES,
                             features & VHU_TEST_VIRTIO_USER_FEATURES);

  if (acked_protocol (fe, PF (STATUS)))
    {
      const guint64 features_ok = VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE
                                  | VHOST_USER_DEVICE_STATUS_DRIVER
                                  | VHOST_USER_DEVICE_STATUS_FEATURES_OK;

      set_status (fe, features_ok);
      /* The trace has two GET_STATUS here. */
      for (i = 0; i < 2; i++)
        {
          guint64 status = vhu_test_frontend_get_u64 (fe, VHOST_USER_REQUEST_GET_STATUS);

          fe_check (status == features_ok,
                    "GET_STATUS returned 0x%" G_GINT64_MODIFIER "x after SET_STATUS 0x%"
                    G_GINT64_MODIFIER "x", status, features_ok);
        }
    }

  vhu_test_frontend_flush (fe);
}

void
vhu_test_frontend_virtio_user_start (VhuTestFrontend *fe, VhuTestGuestRam *ram)
{
  guint64 ack;
  guint i;

  ack = vhu_test_frontend_set_mem_table (fe, &ram, 1);
  fe_check (ack == 0, "SET_MEM_TABLE was refused (%" G_GUINT64_FORMAT ")", ack);
  fe->memory_sent = TRUE;

  for (i = 0; i < VIRTIO_USER_RINGS; i++)
    vhu_test_frontend_start_ring (fe, ram, i, VHU_TEST_VIRTIO_USER_QUEUE_SIZE, 0);

  if (fe->acked_features & VF (PROTOCOL_FEATURES))
    for (i = 0; i < VIRTIO_USER_RINGS; i++)
      set_vring_enable (fe, i, TRUE);

  if (acked_protocol (fe, PF (STATUS)))
    set_status (fe, VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE | VHOST_USER_DEVICE_STATUS_DRIVER
                      | VHOST_USER_DEVICE_STATUS_FEATURES_OK
                      | VHOST_USER_DEVICE_STATUS_DRIVER_OK);

  vhu_test_frontend_flush (fe);
}

void
vhu_test_frontend_virtio_user_stop (VhuTestFrontend *fe)
{
  guint i;

  if (fe->acked_features & VF (PROTOCOL_FEATURES))
    for (i = 0; i < VIRTIO_USER_RINGS; i++)
      set_vring_enable (fe, i, FALSE);

  for (i = 0; i < VIRTIO_USER_RINGS; i++)
    vhu_test_frontend_stop_ring (fe, i);

  vhu_test_frontend_flush (fe);
}
