/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * Tests of the vhost-user codec: header and per-request validation, fd
 * ownership, replies and names.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <glib.h>

#include "vhost-user-error.h"
#include "vhu-message.h"

#define ALL_PROTOCOL_FEATURES G_MAXUINT64
#define LOG_SHMFD_BIT (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_LOG_SHMFD)

/* Helpers */

static gboolean
fd_is_open (int fd)
{
  return fcntl (fd, F_GETFD) != -1;
}

static void
assert_fd_closed (int fd)
{
  errno = 0;
  g_assert_cmpint (fcntl (fd, F_GETFD), ==, -1);
  g_assert_cmpint (errno, ==, EBADF);
}

static int
new_eventfd (void)
{
  int fd = eventfd (0, EFD_CLOEXEC);

  g_assert_cmpint (fd, >=, 0);
  return fd;
}

/* Gives msg n fresh eventfds; their numbers go to out (at least n long). */
static void
attach_eventfds (VhuMessage *msg, guint n, int *out)
{
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < n; i++)
    out[i] = new_eventfd ();
  g_assert_true (vhu_message_take_fds (msg, out, n, &error));
  g_assert_no_error (error);
}

/* Clears msg and checks that it closed every fd in fds. */
static void
clear_and_check_closed (VhuMessage *msg, const int *fds, guint n)
{
  for (guint i = 0; i < n; i++)
    g_assert_true (fd_is_open (fds[i]));
  vhu_message_clear (msg);
  g_assert_cmpuint (msg->n_fds, ==, 0);
  for (guint i = 0; i < n; i++)
    assert_fd_closed (fds[i]);
}

static void
expect_accepted (const VhuMessage *msg)
{
  g_autoptr (GError) error = NULL;

  g_assert_true (vhu_message_validate_request (msg, ALL_PROTOCOL_FEATURES, &error));
  g_assert_no_error (error);
}

/* Checks that msg is refused with code, by an error that names the request. */
static void
expect_rejected (const VhuMessage *msg, int code)
{
  g_autoptr (GError) error = NULL;

  g_assert_false (vhu_message_validate_request (msg, ALL_PROTOCOL_FEATURES, &error));
  g_assert_error (error, VHOST_USER_ERROR, code);
  if (code == VHOST_USER_ERROR_UNSUPPORTED)
    {
      g_autofree char *number = g_strdup_printf ("%u", msg->hdr.request);
      g_assert_nonnull (strstr (error->message, number));
    }
  else
    {
      g_assert_nonnull (strstr (error->message, vhu_request_name (msg->hdr.request)));
    }
}

static void
new_request (VhuMessage *msg, guint32 request, guint32 size)
{
  vhu_message_init (msg);
  memset (&msg->payload, 0, sizeof msg->payload);
  vhu_message_init_request (msg, request, 0, size);
}

/* One valid message per request */

typedef struct
{
  guint32 request;
  guint32 size;     /* a valid size */
  guint32 size_alt; /* another valid size, or 0 */
  guint32 size_max; /* if not 0, every size in size_alt..size_max is valid */
  guint n_fds;      /* a valid fd count */
  guint n_fds_alt;  /* another valid fd count, or G_MAXUINT */
  void (*fill) (VhuPayload *p);
} RequestCase;

static void
fill_features (VhuPayload *p)
{
  p->u64 = (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_VERSION_1)
           | (G_GUINT64_CONSTANT (1) << VHOST_USER_FEATURE_PROTOCOL_FEATURES);
}

static void
fill_mem_table (VhuPayload *p)
{
  p->memory.nregions = 2;
  p->memory.regions[0] = (VhuMemRegionDesc){ 0, 0xa0000, 0x7f0000000000, 0 };
  p->memory.regions[1] = (VhuMemRegionDesc){ 0x100000, 0x7ff00000, 0x7f0000100000, 0x100000 };
}

static void
fill_log (VhuPayload *p)
{
  p->log.mmap_size = 0x1000;
  p->log.mmap_offset = 0;
}

static void
fill_vring_num (VhuPayload *p)
{
  p->state.index = 1;
  p->state.num = 256;
}

static void
fill_vring_addr (VhuPayload *p)
{
  p->addr.index = 0;
  p->addr.flags = 1u << VHU_VRING_F_LOG;
  p->addr.desc_user_addr = 0x7f0000001000;
  p->addr.avail_user_addr = 0x7f0000002002;
  p->addr.used_user_addr = 0x7f0000003004;
  p->addr.log_guest_addr = 0x3000;
}

static void
fill_vring_fd (VhuPayload *p)
{
  p->u64 = 1; /* ring 1, with an fd */
}

static void
fill_vring_enable (VhuPayload *p)
{
  p->state.index = 0;
  p->state.num = 1;
}

static void
fill_rarp (VhuPayload *p)
{
  static const guint8 mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

  memcpy (p->bytes, mac, sizeof mac);
}

static void
fill_mtu (VhuPayload *p)
{
  p->u64 = 1500;
}

static void
fill_iotlb (VhuPayload *p)
{
  p->iotlb.iova = 0x1000;
  p->iotlb.size = 0x1000;
  p->iotlb.uaddr = 0x7f0000001000;
  p->iotlb.perm = VHU_IOTLB_ACCESS_RW;
  p->iotlb.type = VHU_IOTLB_UPDATE;
}

static void
fill_endian (VhuPayload *p)
{
  p->state.index = 0;
  p->state.num = 1;
}

static void
fill_config (VhuPayload *p)
{
  p->config.offset = 0;
  p->config.size = 8;
  p->config.flags = VHOST_USER_CONFIG_FLAGS_WRITABLE;
  memset (p->config.region, 0xab, 8);
}

static void
fill_crypto (VhuPayload *p)
{
  for (guint i = 0; i < 64; i++)
    p->bytes[i] = (guint8) (i + 1);
}

static void
fill_session_id (VhuPayload *p)
{
  p->u64 = 7;
}

static void
fill_inflight (VhuPayload *p)
{
  p->inflight.mmap_size = 0x2000;
  p->inflight.mmap_offset = 0;
  p->inflight.num_queues = 2;
  p->inflight.queue_size = 128;
}

static void
fill_mem_reg (VhuPayload *p)
{
  p->mem_reg.region = (VhuMemRegionDesc){ 0x100000, 0x100000, 0x7f0000100000, 0 };
}

static void
fill_status (VhuPayload *p)
{
  p->u64 = VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE | VHOST_USER_DEVICE_STATUS_DRIVER
           | VHOST_USER_DEVICE_STATUS_FEATURES_OK;
}

static void
fill_shared (VhuPayload *p)
{
  for (guint i = 0; i < 16; i++)
    p->shared.uuid[i] = (guint8) (0xf0 + i);
}

static void
fill_device_state (VhuPayload *p)
{
  p->device_state.direction = VHOST_USER_TRANSFER_DIRECTION_LOAD;
  p->device_state.phase = 0;
}

#define NO_ALT G_MAXUINT

static const RequestCase request_cases[] = {
  { VHOST_USER_REQUEST_GET_FEATURES, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_SET_FEATURES, 8, 0, 0, 0, NO_ALT, fill_features },
  { VHOST_USER_REQUEST_SET_OWNER, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_RESET_OWNER, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_SET_MEM_TABLE, 8 + 2 * 32, 0, 0, 2, NO_ALT, fill_mem_table },
  { VHOST_USER_REQUEST_SET_LOG_BASE, 16, 0, 0, 1, NO_ALT, fill_log },
  { VHOST_USER_REQUEST_SET_LOG_FD, 0, 0, 0, 1, NO_ALT, NULL },
  { VHOST_USER_REQUEST_SET_VRING_NUM, 8, 0, 0, 0, NO_ALT, fill_vring_num },
  { VHOST_USER_REQUEST_SET_VRING_ADDR, 40, 0, 0, 0, NO_ALT, fill_vring_addr },
  { VHOST_USER_REQUEST_SET_VRING_BASE, 8, 0, 0, 0, NO_ALT, fill_vring_num },
  { VHOST_USER_REQUEST_GET_VRING_BASE, 8, 0, 0, 0, NO_ALT, fill_vring_num },
  { VHOST_USER_REQUEST_SET_VRING_KICK, 8, 0, 0, 1, NO_ALT, fill_vring_fd },
  { VHOST_USER_REQUEST_SET_VRING_CALL, 8, 0, 0, 1, NO_ALT, fill_vring_fd },
  { VHOST_USER_REQUEST_SET_VRING_ERR, 8, 0, 0, 1, NO_ALT, fill_vring_fd },
  { VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES, 8, 0, 0, 0, NO_ALT, fill_features },
  { VHOST_USER_REQUEST_GET_QUEUE_NUM, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_SET_VRING_ENABLE, 8, 0, 0, 0, NO_ALT, fill_vring_enable },
  { VHOST_USER_REQUEST_SEND_RARP, 8, 0, 0, 0, NO_ALT, fill_rarp },
  { VHOST_USER_REQUEST_NET_SET_MTU, 8, 0, 0, 0, NO_ALT, fill_mtu },
  { VHOST_USER_REQUEST_SET_BACKEND_REQ_FD, 0, 0, 0, 1, NO_ALT, NULL },
  { VHOST_USER_REQUEST_IOTLB_MSG, 32, 0, 0, 0, NO_ALT, fill_iotlb },
  { VHOST_USER_REQUEST_SET_VRING_ENDIAN, 8, 0, 0, 0, NO_ALT, fill_endian },
  { VHOST_USER_REQUEST_GET_CONFIG, 12 + 8, 0, 0, 0, NO_ALT, fill_config },
  { VHOST_USER_REQUEST_SET_CONFIG, 12 + 8, 0, 0, 0, NO_ALT, fill_config },
  { VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, 64, 8, VHU_MAX_PAYLOAD, 0, NO_ALT, fill_crypto },
  { VHOST_USER_REQUEST_CLOSE_CRYPTO_SESSION, 8, 0, 0, 0, NO_ALT, fill_session_id },
  { VHOST_USER_REQUEST_POSTCOPY_ADVISE, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_POSTCOPY_LISTEN, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_POSTCOPY_END, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_GET_INFLIGHT_FD, 24, 20, 0, 0, NO_ALT, fill_inflight },
  { VHOST_USER_REQUEST_SET_INFLIGHT_FD, 24, 20, 0, 1, NO_ALT, fill_inflight },
  { VHOST_USER_REQUEST_GPU_SET_SOCKET, 0, 0, 0, 1, NO_ALT, NULL },
  { VHOST_USER_REQUEST_RESET_DEVICE, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_VRING_KICK, 8, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_ADD_MEM_REG, 40, 0, 0, 1, NO_ALT, fill_mem_reg },
  { VHOST_USER_REQUEST_REM_MEM_REG, 40, 0, 0, 0, 1, fill_mem_reg },
  { VHOST_USER_REQUEST_SET_STATUS, 8, 0, 0, 0, NO_ALT, fill_status },
  { VHOST_USER_REQUEST_GET_STATUS, 0, 0, 0, 0, NO_ALT, NULL },
  { VHOST_USER_REQUEST_GET_SHARED_OBJECT, 16, 0, 0, 0, NO_ALT, fill_shared },
  { VHOST_USER_REQUEST_SET_DEVICE_STATE_FD, 8, 0, 0, 1, NO_ALT, fill_device_state },
  { VHOST_USER_REQUEST_CHECK_DEVICE_STATE, 0, 0, 0, 0, NO_ALT, NULL },
};

static gboolean
case_size_ok (const RequestCase *c, guint32 size)
{
  if (c->size_max != 0)
    return size >= c->size_alt && size <= c->size_max;
  return size == c->size || (c->size_alt != 0 && size == c->size_alt);
}

static gboolean
case_fds_ok (const RequestCase *c, guint n)
{
  return n == c->n_fds || n == c->n_fds_alt;
}

/* A valid message for c, without fds. */
static void
build_case (VhuMessage *msg, const RequestCase *c)
{
  new_request (msg, c->request, c->size);
  if (c->fill != NULL)
    c->fill (&msg->payload);
}

static void
test_all_requests_covered (void)
{
  gboolean seen[VHOST_USER_REQUEST_CHECK_DEVICE_STATE + 1] = { FALSE };

  for (guint i = 0; i < G_N_ELEMENTS (request_cases); i++)
    {
      guint32 r = request_cases[i].request;

      g_assert_cmpuint (r, >=, 1);
      g_assert_cmpuint (r, <=, VHOST_USER_REQUEST_CHECK_DEVICE_STATE);
      g_assert_false (seen[r]);
      seen[r] = TRUE;
    }
  for (guint r = 1; r <= VHOST_USER_REQUEST_CHECK_DEVICE_STATE; r++)
    g_assert_true (seen[r]);
}

static void
test_request_valid (gconstpointer data)
{
  const RequestCase *c = data;
  g_autoptr (GError) error = NULL;
  VhuMessage msg;
  int fds[VHU_MAX_FDS];

  build_case (&msg, c);
  attach_eventfds (&msg, c->n_fds, fds);

  g_assert_true (vhu_header_validate (&msg.hdr, FALSE, &error));
  g_assert_no_error (error);
  expect_accepted (&msg);
  /* Protocol features do not change what is well-formed. */
  g_assert_true (vhu_message_validate_request (&msg, 0, &error));
  g_assert_no_error (error);

  /* NEED_REPLY does not change it either. */
  msg.hdr.flags |= VHU_FLAG_NEED_REPLY;
  g_assert_true (vhu_header_validate (&msg.hdr, FALSE, &error));
  g_assert_no_error (error);
  expect_accepted (&msg);

  clear_and_check_closed (&msg, fds, c->n_fds);

  /* The other valid sizes and fd counts. */
  if (c->size_alt != 0)
    {
      build_case (&msg, c);
      msg.hdr.size = c->size_alt;
      attach_eventfds (&msg, c->n_fds, fds);
      expect_accepted (&msg);
      clear_and_check_closed (&msg, fds, c->n_fds);
    }
  if (c->size_max != 0)
    {
      build_case (&msg, c);
      msg.hdr.size = c->size_max;
      expect_accepted (&msg);
    }
  if (c->n_fds_alt != NO_ALT)
    {
      build_case (&msg, c);
      attach_eventfds (&msg, c->n_fds_alt, fds);
      expect_accepted (&msg);
      clear_and_check_closed (&msg, fds, c->n_fds_alt);
    }
}

static void
test_request_bad_size (gconstpointer data)
{
  const RequestCase *c = data;
  const guint32 candidates[] = {
    0,
    1,
    7,
    c->size - 1,
    c->size + 1,
    c->size + 8,
    c->size + 32,
    VHU_MAX_PAYLOAD,
    VHU_MAX_PAYLOAD + 1,
    G_MAXUINT32,
  };
  guint rejected = 0;

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      guint32 size = candidates[i];
      VhuMessage msg;
      int fds[VHU_MAX_FDS];

      if (case_size_ok (c, size))
        continue;

      build_case (&msg, c);
      msg.hdr.size = size;
      attach_eventfds (&msg, c->n_fds, fds);
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      clear_and_check_closed (&msg, fds, c->n_fds);
      rejected++;
    }

  g_assert_cmpuint (rejected, >=, 5);
}

static void
test_request_bad_fds (gconstpointer data)
{
  const RequestCase *c = data;
  const guint candidates[] = { 0, 1, 2, c->n_fds + 1, VHU_MAX_FDS };
  guint rejected = 0;

  for (guint i = 0; i < G_N_ELEMENTS (candidates); i++)
    {
      guint n = candidates[i];
      VhuMessage msg;
      int fds[VHU_MAX_FDS];

      if (case_fds_ok (c, n))
        continue;

      build_case (&msg, c);
      attach_eventfds (&msg, n, fds);
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      clear_and_check_closed (&msg, fds, n);
      rejected++;
    }

  g_assert_cmpuint (rejected, >=, 2);
}

/* Value checks and special rules, request by request */

static void
test_unknown_requests (void)
{
  const guint32 codes[] = { VHOST_USER_REQUEST_NONE, VHOST_USER_REQUEST_CHECK_DEVICE_STATE + 1, 100,
                            G_MAXUINT32 };

  for (guint i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      VhuMessage msg;
      int fd;
      g_autoptr (GError) error = NULL;

      /* The code is checked before size and fds. */
      new_request (&msg, codes[i], 0);
      expect_rejected (&msg, VHOST_USER_ERROR_UNSUPPORTED);
      msg.hdr.size = G_MAXUINT32;
      attach_eventfds (&msg, 1, &fd);
      expect_rejected (&msg, VHOST_USER_ERROR_UNSUPPORTED);
      clear_and_check_closed (&msg, &fd, 1);

      /* The header alone is well-framed. */
      msg.hdr.size = 0;
      g_assert_true (vhu_header_validate (&msg.hdr, FALSE, &error));
      g_assert_no_error (error);
    }
}

static void
test_check_order (void)
{
  VhuMessage msg;
  int fds[2];
  g_autoptr (GError) error = NULL;

  /* Size before fds. */
  new_request (&msg, VHOST_USER_REQUEST_SET_VRING_ADDR, 32);
  fill_vring_addr (&msg.payload);
  attach_eventfds (&msg, 2, fds);
  g_assert_false (vhu_message_validate_request (&msg, ALL_PROTOCOL_FEATURES, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
  g_assert_nonnull (strstr (error->message, "SET_VRING_ADDR"));
  g_assert_nonnull (strstr (error->message, "32"));
  g_assert_nonnull (strstr (error->message, "40"));
  g_clear_error (&error);

  /* Fds before values. */
  msg.hdr.size = 40;
  msg.payload.addr.flags = 0x80;
  g_assert_false (vhu_message_validate_request (&msg, ALL_PROTOCOL_FEATURES, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
  g_clear_error (&error);
  clear_and_check_closed (&msg, fds, 2);

  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
}

static void
test_set_mem_table_valid (void)
{
  VhuMessage msg;
  int fds[VHU_MAX_FDS];

  for (guint n = 1; n <= VHU_MEM_TABLE_MAX_REGIONS; n++)
    {
      new_request (&msg, VHOST_USER_REQUEST_SET_MEM_TABLE, 8 + 32 * n);
      msg.payload.memory.nregions = n;
      for (guint i = 0; i < n; i++)
        msg.payload.memory.regions[i]
          = (VhuMemRegionDesc){ (guint64) i << 30, 1u << 20, 0x7f0000000000 + ((guint64) i << 30),
                                0 };
      attach_eventfds (&msg, n, fds);
      expect_accepted (&msg);
      clear_and_check_closed (&msg, fds, n);
    }
}

static void
test_set_mem_table_invalid (void)
{
  VhuMessage msg;
  int fds[VHU_MAX_FDS];

  /* No region at all. */
  new_request (&msg, VHOST_USER_REQUEST_SET_MEM_TABLE, 8);
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);

  /* Too short to hold nregions. */
  new_request (&msg, VHOST_USER_REQUEST_SET_MEM_TABLE, 4);
  msg.payload.memory.nregions = 0;
  expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);

  /* More regions than fds can travel with. */
  new_request (&msg, VHOST_USER_REQUEST_SET_MEM_TABLE, 8 + 32 * 9);
  msg.payload.memory.nregions = 9;
  for (guint i = 0; i < VHU_MEM_TABLE_MAX_REGIONS; i++)
    msg.payload.memory.regions[i].size = 0x1000;
  attach_eventfds (&msg, VHU_MAX_FDS, fds);
  expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
  clear_and_check_closed (&msg, fds, VHU_MAX_FDS);

  /* nregions so large that 8 + 32 * nregions wraps around in 32 bits. */
  new_request (&msg, VHOST_USER_REQUEST_SET_MEM_TABLE, 8);
  msg.payload.memory.nregions = 0x8000000u;
  expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
  msg.payload.memory.nregions = G_MAXUINT32;
  msg.hdr.size = G_MAXUINT32 - 23; /* (guint32) (8 + 32 * G_MAXUINT32) */
  expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);

  /* An empty region. */
  new_request (&msg, VHOST_USER_REQUEST_SET_MEM_TABLE, 8 + 2 * 32);
  fill_mem_table (&msg.payload);
  msg.payload.memory.regions[1].size = 0;
  attach_eventfds (&msg, 2, fds);
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  clear_and_check_closed (&msg, fds, 2);
}

static void
test_set_vring_fd_nofd (void)
{
  const guint32 requests[] = { VHOST_USER_REQUEST_SET_VRING_KICK,
                               VHOST_USER_REQUEST_SET_VRING_CALL,
                               VHOST_USER_REQUEST_SET_VRING_ERR };

  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      VhuMessage msg;
      int fd;

      /* NOFD: no fd allowed. */
      new_request (&msg, requests[i], 8);
      msg.payload.u64 = VHU_VRING_NOFD | 3;
      expect_accepted (&msg);
      attach_eventfds (&msg, 1, &fd);
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      clear_and_check_closed (&msg, &fd, 1);

      /* Without NOFD: exactly one. */
      msg.payload.u64 = 0xff;
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      attach_eventfds (&msg, 1, &fd);
      expect_accepted (&msg);

      /* Bits above bit 8. */
      msg.payload.u64 = 0x200;
      expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
      msg.payload.u64 = G_GUINT64_CONSTANT (1) << 63;
      expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
      clear_and_check_closed (&msg, &fd, 1);

      msg.payload.u64 = VHU_VRING_NOFD | (1u << 9);
      expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
    }
}

static void
test_set_vring_addr_invalid (void)
{
  VhuMessage msg;

  new_request (&msg, VHOST_USER_REQUEST_SET_VRING_ADDR, 40);
  fill_vring_addr (&msg.payload);
  msg.payload.addr.flags = 0;
  expect_accepted (&msg);

  msg.payload.addr.flags = 2;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  msg.payload.addr.flags = 0x80000001u;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);

  fill_vring_addr (&msg.payload);
  msg.payload.addr.desc_user_addr += 8;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);

  fill_vring_addr (&msg.payload);
  msg.payload.addr.avail_user_addr += 1;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);

  fill_vring_addr (&msg.payload);
  msg.payload.addr.used_user_addr += 2;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);

  /* The log address has no alignment rule. */
  fill_vring_addr (&msg.payload);
  msg.payload.addr.log_guest_addr = 0x1001;
  expect_accepted (&msg);
}

static void
test_set_vring_endian_invalid (void)
{
  VhuMessage msg;

  new_request (&msg, VHOST_USER_REQUEST_SET_VRING_ENDIAN, 8);
  msg.payload.state.num = 0;
  expect_accepted (&msg);
  msg.payload.state.num = 2;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  msg.payload.state.num = G_MAXUINT32;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
}

static void
test_vring_kick_invalid (void)
{
  VhuMessage msg;

  new_request (&msg, VHOST_USER_REQUEST_VRING_KICK, 8);
  msg.payload.state.index = 5;
  expect_accepted (&msg);
  msg.payload.state.num = 1;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
}

static void
test_set_device_state_fd_invalid (void)
{
  VhuMessage msg;
  int fd;

  new_request (&msg, VHOST_USER_REQUEST_SET_DEVICE_STATE_FD, 8);
  attach_eventfds (&msg, 1, &fd);
  msg.payload.device_state.direction = VHOST_USER_TRANSFER_DIRECTION_SAVE;
  expect_accepted (&msg);
  msg.payload.device_state.direction = 2;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  msg.payload.device_state.direction = VHOST_USER_TRANSFER_DIRECTION_LOAD;
  msg.payload.device_state.phase = 1;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  clear_and_check_closed (&msg, &fd, 1);
}

static void
test_iotlb_msg_invalid (void)
{
  VhuMessage msg;

  new_request (&msg, VHOST_USER_REQUEST_IOTLB_MSG, 32);
  fill_iotlb (&msg.payload);
  for (guint type = VHU_IOTLB_MISS; type <= VHU_IOTLB_ACCESS_FAIL; type++)
    {
      for (guint perm = VHU_IOTLB_ACCESS_NONE; perm <= VHU_IOTLB_ACCESS_RW; perm++)
        {
          msg.payload.iotlb.type = (guint8) type;
          msg.payload.iotlb.perm = (guint8) perm;
          expect_accepted (&msg);
        }
    }

  fill_iotlb (&msg.payload);
  msg.payload.iotlb.type = 0;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  msg.payload.iotlb.type = 5;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
  msg.payload.iotlb.type = 0xff;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);

  fill_iotlb (&msg.payload);
  msg.payload.iotlb.perm = 4;
  expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
}

static void
test_mem_reg_invalid (void)
{
  const guint32 requests[] = { VHOST_USER_REQUEST_ADD_MEM_REG, VHOST_USER_REQUEST_REM_MEM_REG };

  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      VhuMessage msg;
      int fd;

      new_request (&msg, requests[i], 40);
      fill_mem_reg (&msg.payload);
      msg.payload.mem_reg.region.size = 0;
      attach_eventfds (&msg, 1, &fd);
      expect_rejected (&msg, VHOST_USER_ERROR_INVALID);
      clear_and_check_closed (&msg, &fd, 1);
    }
}

static void
test_config_sizes (void)
{
  const guint32 requests[] = { VHOST_USER_REQUEST_GET_CONFIG, VHOST_USER_REQUEST_SET_CONFIG };

  for (guint i = 0; i < G_N_ELEMENTS (requests); i++)
    {
      VhuMessage msg;

      new_request (&msg, requests[i], 12);
      expect_accepted (&msg); /* config.size 0 */

      msg.payload.config.size = VHU_MAX_CONFIG_SIZE;
      msg.hdr.size = 12 + VHU_MAX_CONFIG_SIZE;
      expect_accepted (&msg);

      msg.payload.config.size = VHU_MAX_CONFIG_SIZE + 1;
      msg.hdr.size = 12 + VHU_MAX_CONFIG_SIZE + 1;
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);

      msg.payload.config.size = G_MAXUINT32 - 11;
      msg.hdr.size = 0;
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      msg.hdr.size = 12;
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);

      msg.payload.config.size = 4;
      msg.hdr.size = 11;
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      msg.hdr.size = 15;
      expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
      msg.hdr.size = 16;
      expect_accepted (&msg);
    }
}

static void
test_crypto_session_sizes (void)
{
  VhuMessage msg;

  new_request (&msg, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, 8);
  expect_accepted (&msg);
  msg.hdr.size = VHU_MAX_PAYLOAD;
  expect_accepted (&msg);
  msg.hdr.size = 7;
  expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
  msg.hdr.size = VHU_MAX_PAYLOAD + 1;
  expect_rejected (&msg, VHOST_USER_ERROR_PROTOCOL);
}

static void
test_inflight_sizes (void)
{
  VhuMessage msg;

  for (guint32 size = 0; size <= 40; size++)
    {
      g_autoptr (GError) error = NULL;
      gboolean ok;

      new_request (&msg, VHOST_USER_REQUEST_GET_INFLIGHT_FD, size);
      fill_inflight (&msg.payload);
      ok = vhu_message_validate_request (&msg, 0, &error);
      g_assert_cmpint (ok, ==,
                       size == VHU_INFLIGHT_MSG_SIZE || size == VHU_INFLIGHT_MSG_PACKED_SIZE);
      if (!ok)
        g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
    }
}

/* Headers */

static void
expect_header (guint32 flags, guint32 size, gboolean is_reply, gboolean ok)
{
  VhuHeader hdr = { VHOST_USER_REQUEST_GET_FEATURES, flags, size };
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (vhu_header_validate (&hdr, is_reply, &error), ==, ok);
  if (ok)
    g_assert_no_error (error);
  else
    g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
}

static void
test_header_valid (void)
{
  expect_header (VHU_VERSION, 0, FALSE, TRUE);
  expect_header (VHU_VERSION | VHU_FLAG_NEED_REPLY, 8, FALSE, TRUE);
  expect_header (VHU_VERSION, VHU_MAX_PAYLOAD, FALSE, TRUE);
  expect_header (VHU_VERSION | VHU_FLAG_REPLY, 8, TRUE, TRUE);
  expect_header (VHU_VERSION | VHU_FLAG_REPLY, VHU_MAX_PAYLOAD, TRUE, TRUE);
}

static void
test_header_invalid (void)
{
  /* Versions 0, 2 and 3. */
  for (guint32 v = 0; v <= 3; v++)
    {
      if (v == VHU_VERSION)
        continue;
      expect_header (v, 0, FALSE, FALSE);
      expect_header (v | VHU_FLAG_REPLY, 0, TRUE, FALSE);
    }

  /* REPLY on a request, none on a reply, NEED_REPLY on a reply. */
  expect_header (VHU_VERSION | VHU_FLAG_REPLY, 0, FALSE, FALSE);
  expect_header (VHU_VERSION, 8, TRUE, FALSE);
  expect_header (VHU_VERSION | VHU_FLAG_REPLY | VHU_FLAG_NEED_REPLY, 8, TRUE, FALSE);

  /* Reserved flag bits. */
  for (guint bit = 4; bit < 32; bit++)
    {
      expect_header (VHU_VERSION | (1u << bit), 0, FALSE, FALSE);
      expect_header (VHU_VERSION | VHU_FLAG_REPLY | (1u << bit), 8, TRUE, FALSE);
    }

  /* Payloads too large. */
  expect_header (VHU_VERSION, VHU_MAX_PAYLOAD + 1, FALSE, FALSE);
  expect_header (VHU_VERSION, G_MAXUINT32, FALSE, FALSE);
  expect_header (VHU_VERSION | VHU_FLAG_REPLY, VHU_MAX_PAYLOAD + 1, TRUE, FALSE);
  expect_header (VHU_VERSION | VHU_FLAG_REPLY, G_MAXUINT32, TRUE, FALSE);
}

static void
test_header_flags_sweep (void)
{
  for (guint32 flags = 0; flags < 0x100; flags++)
    {
      gboolean base = (flags & ~0xfu) == 0 && (flags & VHU_FLAG_VERSION_MASK) == VHU_VERSION;

      expect_header (flags, 0, FALSE, base && !(flags & VHU_FLAG_REPLY));
      expect_header (flags, 0, TRUE,
                     base && (flags & VHU_FLAG_REPLY) && !(flags & VHU_FLAG_NEED_REPLY));
    }
}

/* Fd ownership */

static void
test_init_clear (void)
{
  VhuMessage msg;
  int fds[3];

  memset (&msg, 0x5a, sizeof msg);
  vhu_message_init (&msg);
  g_assert_cmpuint (msg.hdr.request, ==, 0);
  g_assert_cmpuint (msg.hdr.flags, ==, 0);
  g_assert_cmpuint (msg.hdr.size, ==, 0);
  g_assert_cmpuint (msg.n_fds, ==, 0);
  for (guint i = 0; i < VHU_MAX_FDS; i++)
    g_assert_cmpint (msg.fds[i], ==, -1);

  attach_eventfds (&msg, 3, fds);
  g_assert_cmpuint (msg.n_fds, ==, 3);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpint (msg.fds[i], ==, fds[i]);
  clear_and_check_closed (&msg, fds, 3);
  for (guint i = 0; i < VHU_MAX_FDS; i++)
    g_assert_cmpint (msg.fds[i], ==, -1);

  /* Clearing twice is harmless. */
  vhu_message_clear (&msg);
  g_assert_cmpuint (msg.n_fds, ==, 0);
}

static void
test_steal_fd (void)
{
  VhuMessage msg;
  int fds[2];
  int stolen;

  vhu_message_init (&msg);
  g_assert_cmpint (vhu_message_steal_fd (&msg, 0), ==, -1);

  attach_eventfds (&msg, 2, fds);
  stolen = vhu_message_steal_fd (&msg, 1);
  g_assert_cmpint (stolen, ==, fds[1]);
  g_assert_cmpint (msg.fds[1], ==, -1);
  g_assert_cmpint (vhu_message_steal_fd (&msg, 1), ==, -1);
  g_assert_cmpint (vhu_message_steal_fd (&msg, 2), ==, -1);
  g_assert_cmpint (vhu_message_steal_fd (&msg, VHU_MAX_FDS), ==, -1);
  g_assert_cmpint (vhu_message_steal_fd (&msg, G_MAXUINT), ==, -1);

  clear_and_check_closed (&msg, fds, 1);
  /* The stolen fd survived the clear. */
  g_assert_true (fd_is_open (stolen));
  close (stolen);
}

static void
test_take_fds (void)
{
  VhuMessage msg;
  int first[5];
  int more[4];
  int last[3];
  g_autoptr (GError) error = NULL;

  vhu_message_init (&msg);
  g_assert_true (vhu_message_take_fds (&msg, NULL, 0, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (msg.n_fds, ==, 0);

  attach_eventfds (&msg, 5, first);

  /* 5 + 4 > 8: the four new ones are closed, the old ones stay. */
  for (guint i = 0; i < 4; i++)
    more[i] = new_eventfd ();
  g_assert_false (vhu_message_take_fds (&msg, more, 4, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
  g_clear_error (&error);
  for (guint i = 0; i < 4; i++)
    assert_fd_closed (more[i]);
  g_assert_cmpuint (msg.n_fds, ==, 5);
  for (guint i = 0; i < 5; i++)
    {
      g_assert_cmpint (msg.fds[i], ==, first[i]);
      g_assert_true (fd_is_open (first[i]));
    }

  /* 5 + 3 == 8 fits, appended in order. */
  attach_eventfds (&msg, 3, last);
  g_assert_cmpuint (msg.n_fds, ==, VHU_MAX_FDS);
  for (guint i = 0; i < 3; i++)
    g_assert_cmpint (msg.fds[5 + i], ==, last[i]);

  /* Full: even one more is refused and closed. */
  more[0] = new_eventfd ();
  g_assert_false (vhu_message_take_fds (&msg, more, 1, &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
  g_clear_error (&error);
  assert_fd_closed (more[0]);

  clear_and_check_closed (&msg, first, 5);
  for (guint i = 0; i < 3; i++)
    assert_fd_closed (last[i]);
}

static void
test_take_fds_too_many_at_once (void)
{
  VhuMessage msg;
  int fds[VHU_MAX_FDS + 1];
  g_autoptr (GError) error = NULL;

  vhu_message_init (&msg);
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    fds[i] = new_eventfd ();
  g_assert_false (vhu_message_take_fds (&msg, fds, G_N_ELEMENTS (fds), &error));
  g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
  g_assert_cmpuint (msg.n_fds, ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    assert_fd_closed (fds[i]);
}

/* Building replies */

static void
test_init_request (void)
{
  VhuMessage msg;
  int fd;
  g_autoptr (GError) error = NULL;

  vhu_message_init (&msg);
  attach_eventfds (&msg, 1, &fd);
  vhu_message_init_request (&msg, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG,
                            VHU_FLAG_NEED_REPLY, 0);
  g_assert_cmpuint (msg.hdr.request, ==, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG);
  g_assert_cmpuint (msg.hdr.flags, ==, VHU_VERSION | VHU_FLAG_NEED_REPLY);
  g_assert_cmpuint (msg.hdr.size, ==, 0);
  g_assert_cmpuint (msg.n_fds, ==, 0);
  g_assert_true (vhu_header_validate (&msg.hdr, FALSE, &error));
  g_assert_no_error (error);
  /* It did not close the fd it dropped. */
  g_assert_true (fd_is_open (fd));
  close (fd);
}

static void
test_init_reply (void)
{
  VhuMessage request;
  VhuMessage reply;
  g_autoptr (GError) error = NULL;

  new_request (&request, VHOST_USER_REQUEST_GET_VRING_BASE, 8);
  request.hdr.flags |= VHU_FLAG_NEED_REPLY;

  vhu_message_init (&reply);
  vhu_message_init_reply (&reply, &request, 8);
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_VRING_BASE);
  g_assert_cmpuint (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, 8);
  g_assert_cmpuint (reply.n_fds, ==, 0);
  g_assert_true (vhu_header_validate (&reply.hdr, TRUE, &error));
  g_assert_no_error (error);

  new_request (&request, VHOST_USER_REQUEST_GET_FEATURES, 0);
  vhu_message_init_reply_u64 (&reply, &request, G_GUINT64_CONSTANT (0x140000000));
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmpuint (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, 8);
  g_assert_cmpuint (reply.payload.u64, ==, G_GUINT64_CONSTANT (0x140000000));
  g_assert_true (vhu_header_validate (&reply.hdr, TRUE, &error));
  g_assert_no_error (error);

  /* In place, reusing the request. */
  vhu_message_init_reply_u64 (&request, &request, 0);
  g_assert_cmpuint (request.hdr.request, ==, VHOST_USER_REQUEST_GET_FEATURES);
  g_assert_cmpuint (request.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (request.payload.u64, ==, 0);
}

static void
expect_error_reply_u64 (guint32 request_code)
{
  VhuMessage request;
  VhuMessage reply;
  g_autoptr (GError) error = NULL;

  new_request (&request, request_code, 0);
  vhu_message_init (&reply);
  vhu_message_init_error_reply (&reply, &request);
  g_assert_cmpuint (reply.hdr.request, ==, request_code);
  g_assert_cmpuint (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, 8);
  g_assert_cmpuint (reply.payload.u64, ==, 1);
  g_assert_cmpuint (reply.n_fds, ==, 0);
  g_assert_true (vhu_header_validate (&reply.hdr, TRUE, &error));
  g_assert_no_error (error);
}

static void
expect_error_reply_empty (guint32 request_code)
{
  VhuMessage request;
  VhuMessage reply;

  new_request (&request, request_code, 8);
  vhu_message_init (&reply);
  vhu_message_init_error_reply (&reply, &request);
  g_assert_cmpuint (reply.hdr.request, ==, request_code);
  g_assert_cmpuint (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, 0);
  g_assert_cmpuint (reply.n_fds, ==, 0);
}

static void
test_error_replies (void)
{
  /* NONE: the REPLY_ACK failure. */
  expect_error_reply_u64 (VHOST_USER_REQUEST_SET_FEATURES);
  expect_error_reply_u64 (VHOST_USER_REQUEST_SET_MEM_TABLE);
  expect_error_reply_u64 (VHOST_USER_REQUEST_SET_VRING_ADDR);
  /* STATUS, including SET_LOG_BASE as if LOG_SHMFD were negotiated. */
  expect_error_reply_u64 (VHOST_USER_REQUEST_SET_LOG_BASE);
  expect_error_reply_u64 (VHOST_USER_REQUEST_IOTLB_MSG);
  expect_error_reply_u64 (VHOST_USER_REQUEST_POSTCOPY_ADVISE);
  expect_error_reply_u64 (VHOST_USER_REQUEST_POSTCOPY_END);
  expect_error_reply_u64 (VHOST_USER_REQUEST_SET_DEVICE_STATE_FD);
  expect_error_reply_u64 (VHOST_USER_REQUEST_CHECK_DEVICE_STATE);
  expect_error_reply_u64 (VHOST_USER_REQUEST_GET_SHARED_OBJECT);
  /* Unknown requests: the NONE kind. */
  expect_error_reply_u64 (VHOST_USER_REQUEST_NONE);
  expect_error_reply_u64 (VHOST_USER_REQUEST_CHECK_DEVICE_STATE + 1);
  expect_error_reply_u64 (G_MAXUINT32);

  /* U64, STATE, CONFIG, INFLIGHT: an empty payload. */
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_FEATURES);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_QUEUE_NUM);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_STATUS);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_VRING_BASE);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_CONFIG);
  expect_error_reply_empty (VHOST_USER_REQUEST_GET_INFLIGHT_FD);
}

static void
test_error_reply_crypto (void)
{
  VhuMessage request;
  VhuMessage reply;
  gint64 session;

  new_request (&request, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, 64);
  fill_crypto (&request.payload);
  vhu_message_init (&reply);
  vhu_message_init_error_reply (&reply, &request);
  g_assert_cmpuint (reply.hdr.request, ==, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION);
  g_assert_cmpuint (reply.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (reply.hdr.size, ==, 64);
  /* The session id is the first field (QEMU < 8.0) or the last one. */
  memcpy (&session, reply.payload.bytes, sizeof session);
  g_assert_cmpint (session, ==, -1);
  memcpy (&session, reply.payload.bytes + 64 - 8, sizeof session);
  g_assert_cmpint (session, ==, -1);
  g_assert_cmpmem (reply.payload.bytes + 8, 48, request.payload.bytes + 8, 48);

  /* In place. */
  vhu_message_init_error_reply (&request, &request);
  g_assert_cmpuint (request.hdr.flags, ==, VHU_VERSION | VHU_FLAG_REPLY);
  g_assert_cmpuint (request.hdr.size, ==, 64);
  memcpy (&session, request.payload.bytes, sizeof session);
  g_assert_cmpint (session, ==, -1);
  memcpy (&session, request.payload.bytes + 64 - 8, sizeof session);
  g_assert_cmpint (session, ==, -1);
  g_assert_cmpuint (request.payload.bytes[8], ==, 9);
  g_assert_cmpuint (request.payload.bytes[55], ==, 56);

  /* A request claiming more than a payload can hold: clamped. */
  new_request (&request, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, G_MAXUINT32);
  vhu_message_init_error_reply (&reply, &request);
  g_assert_cmpuint (reply.hdr.size, ==, VHU_MAX_PAYLOAD);
  memcpy (&session, reply.payload.bytes, sizeof session);
  g_assert_cmpint (session, ==, -1);
  memcpy (&session, reply.payload.bytes + VHU_MAX_PAYLOAD - 8, sizeof session);
  g_assert_cmpint (session, ==, -1);

  /* Too short for a session id: the reply still carries one. */
  new_request (&request, VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, 0);
  vhu_message_init_error_reply (&reply, &request);
  g_assert_cmpuint (reply.hdr.size, ==, 8);
  memcpy (&session, reply.payload.bytes, sizeof session);
  g_assert_cmpint (session, ==, -1);
}

/* Reply kinds and names */

static void
test_reply_kinds (void)
{
  static const struct
  {
    guint32 request;
    VhuReplyKind kind;
  } kinds[] = {
    { VHOST_USER_REQUEST_GET_FEATURES, VHU_REPLY_U64 },
    { VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES, VHU_REPLY_U64 },
    { VHOST_USER_REQUEST_GET_QUEUE_NUM, VHU_REPLY_U64 },
    { VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS, VHU_REPLY_U64 },
    { VHOST_USER_REQUEST_GET_STATUS, VHU_REPLY_U64 },
    { VHOST_USER_REQUEST_GET_VRING_BASE, VHU_REPLY_STATE },
    { VHOST_USER_REQUEST_GET_CONFIG, VHU_REPLY_CONFIG },
    { VHOST_USER_REQUEST_GET_INFLIGHT_FD, VHU_REPLY_INFLIGHT },
    { VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION, VHU_REPLY_CRYPTO },
    { VHOST_USER_REQUEST_IOTLB_MSG, VHU_REPLY_STATUS },
    { VHOST_USER_REQUEST_POSTCOPY_ADVISE, VHU_REPLY_STATUS },
    { VHOST_USER_REQUEST_POSTCOPY_END, VHU_REPLY_STATUS },
    { VHOST_USER_REQUEST_SET_DEVICE_STATE_FD, VHU_REPLY_STATUS },
    { VHOST_USER_REQUEST_CHECK_DEVICE_STATE, VHU_REPLY_STATUS },
    { VHOST_USER_REQUEST_GET_SHARED_OBJECT, VHU_REPLY_STATUS },
  };

  for (guint32 r = 0; r <= 60; r++)
    {
      VhuReplyKind expected = VHU_REPLY_NONE;

      for (guint i = 0; i < G_N_ELEMENTS (kinds); i++)
        {
          if (kinds[i].request == r)
            expected = kinds[i].kind;
        }
      if (r == VHOST_USER_REQUEST_SET_LOG_BASE)
        {
          g_assert_cmpint (vhu_request_reply_kind (r, 0), ==, VHU_REPLY_NONE);
          g_assert_cmpint (vhu_request_reply_kind (r, ~LOG_SHMFD_BIT), ==, VHU_REPLY_NONE);
          g_assert_cmpint (vhu_request_reply_kind (r, LOG_SHMFD_BIT), ==, VHU_REPLY_STATUS);
          g_assert_cmpint (vhu_request_reply_kind (r, ALL_PROTOCOL_FEATURES), ==, VHU_REPLY_STATUS);
          continue;
        }
      g_assert_cmpint (vhu_request_reply_kind (r, 0), ==, expected);
      g_assert_cmpint (vhu_request_reply_kind (r, ALL_PROTOCOL_FEATURES), ==, expected);
    }
  g_assert_cmpint (vhu_request_reply_kind (G_MAXUINT32, ALL_PROTOCOL_FEATURES), ==,
                   VHU_REPLY_NONE);
}

static void
test_wants_reply (void)
{
  VhuMessage msg;

  new_request (&msg, VHOST_USER_REQUEST_GET_FEATURES, 0);
  g_assert_true (vhu_message_wants_reply (&msg, 0));

  new_request (&msg, VHOST_USER_REQUEST_SET_FEATURES, 8);
  g_assert_false (vhu_message_wants_reply (&msg, ALL_PROTOCOL_FEATURES));
  /* NEED_REPLY is honoured even without REPLY_ACK. */
  msg.hdr.flags |= VHU_FLAG_NEED_REPLY;
  g_assert_true (vhu_message_wants_reply (&msg, 0));
  g_assert_true (vhu_message_wants_reply (&msg, ALL_PROTOCOL_FEATURES));

  new_request (&msg, VHOST_USER_REQUEST_SET_LOG_BASE, 16);
  g_assert_false (vhu_message_wants_reply (&msg, 0));
  g_assert_true (vhu_message_wants_reply (&msg, LOG_SHMFD_BIT));

  new_request (&msg, VHOST_USER_REQUEST_IOTLB_MSG, 32);
  g_assert_true (vhu_message_wants_reply (&msg, 0));

  new_request (&msg, G_MAXUINT32, 0);
  g_assert_false (vhu_message_wants_reply (&msg, ALL_PROTOCOL_FEATURES));
  msg.hdr.flags |= VHU_FLAG_NEED_REPLY;
  g_assert_true (vhu_message_wants_reply (&msg, ALL_PROTOCOL_FEATURES));
}

static void
test_request_names (void)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  g_assert_cmpstr (vhu_request_name (VHOST_USER_REQUEST_GET_FEATURES), ==, "GET_FEATURES");
  g_assert_cmpstr (vhu_request_name (VHOST_USER_REQUEST_SET_MEM_TABLE), ==, "SET_MEM_TABLE");
  g_assert_cmpstr (vhu_request_name (VHOST_USER_REQUEST_SET_BACKEND_REQ_FD), ==,
                   "SET_BACKEND_REQ_FD");
  g_assert_cmpstr (vhu_request_name (VHOST_USER_REQUEST_CHECK_DEVICE_STATE), ==,
                   "CHECK_DEVICE_STATE");
  g_assert_cmpstr (vhu_request_name (VHOST_USER_REQUEST_CHECK_DEVICE_STATE + 1), ==, "UNKNOWN");
  g_assert_cmpstr (vhu_request_name (1000), ==, "UNKNOWN");
  g_assert_cmpstr (vhu_request_name (G_MAXUINT32), ==, "UNKNOWN");

  for (guint32 r = 1; r <= VHOST_USER_REQUEST_CHECK_DEVICE_STATE; r++)
    {
      const char *name = vhu_request_name (r);

      g_assert_nonnull (name);
      g_assert_cmpstr (name, !=, "UNKNOWN");
      g_assert_false (g_hash_table_contains (seen, name));
      g_hash_table_add (seen, (gpointer) name);
    }

  g_assert_cmpstr (vhu_backend_request_name (VHOST_USER_BACKEND_REQUEST_IOTLB_MSG), ==,
                   "IOTLB_MSG");
  g_assert_cmpstr (vhu_backend_request_name (VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG), ==,
                   "CONFIG_CHANGE_MSG");
  g_assert_cmpstr (vhu_backend_request_name (VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP), ==,
                   "SHARED_OBJECT_LOOKUP");
  g_assert_cmpstr (vhu_backend_request_name (VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP + 1),
                   ==, "UNKNOWN");
  g_assert_cmpstr (vhu_backend_request_name (G_MAXUINT32), ==, "UNKNOWN");
}

/* Replies to back-end requests */

static void
new_backend_reply (VhuMessage *reply, guint32 request, guint64 value)
{
  VhuMessage req;

  vhu_message_init (&req);
  vhu_message_init_request (&req, request, VHU_FLAG_NEED_REPLY, 0);
  vhu_message_init (reply);
  vhu_message_init_reply_u64 (reply, &req, value);
}

static void
expect_backend_reply (const VhuMessage *reply, guint32 request, gboolean ok)
{
  g_autoptr (GError) error = NULL;

  g_assert_cmpint (vhu_message_validate_backend_reply (reply, request, &error), ==, ok);
  if (ok)
    g_assert_no_error (error);
  else
    g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
}

static void
test_backend_reply_valid (void)
{
  VhuMessage reply;
  int fd;

  for (guint32 r = VHOST_USER_BACKEND_REQUEST_IOTLB_MSG;
       r <= VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP; r++)
    {
      new_backend_reply (&reply, r, 0);
      expect_backend_reply (&reply, r, TRUE);
    }

  /* SHARED_OBJECT_LOOKUP may return the dma-buf. */
  new_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP, 0);
  attach_eventfds (&reply, 1, &fd);
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP, TRUE);
  clear_and_check_closed (&reply, &fd, 1);
}

static void
test_backend_reply_invalid (void)
{
  VhuMessage reply;
  int fds[2];

  /* Reply to another request. */
  new_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG, 0);
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_IOTLB_MSG, FALSE);

  /* No REPLY bit. */
  new_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_IOTLB_MSG, 0);
  reply.hdr.flags = VHU_VERSION;
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_IOTLB_MSG, FALSE);

  /* NEED_REPLY on a reply, bad version, reserved bits. */
  reply.hdr.flags = VHU_VERSION | VHU_FLAG_REPLY | VHU_FLAG_NEED_REPLY;
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_IOTLB_MSG, FALSE);
  reply.hdr.flags = 2 | VHU_FLAG_REPLY;
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_IOTLB_MSG, FALSE);
  reply.hdr.flags = VHU_VERSION | VHU_FLAG_REPLY | 0x100;
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_IOTLB_MSG, FALSE);

  /* Wrong sizes. */
  new_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_VRING_CALL, 0);
  for (guint32 size = 0; size <= 16; size++)
    {
      reply.hdr.size = size;
      expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_VRING_CALL, size == 8);
    }
  reply.hdr.size = G_MAXUINT32;
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_VRING_CALL, FALSE);

  /* Fds where none may come. */
  new_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_ADD, 0);
  attach_eventfds (&reply, 1, fds);
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_ADD, FALSE);
  clear_and_check_closed (&reply, fds, 1);

  /* At most one for SHARED_OBJECT_LOOKUP. */
  new_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP, 0);
  attach_eventfds (&reply, 2, fds);
  expect_backend_reply (&reply, VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP, FALSE);
  clear_and_check_closed (&reply, fds, 2);
}

/* Robustness */

typedef struct
{
  gboolean ok;
  GQuark domain;
  int code;
} Outcome;

static Outcome
validate_outcome (const VhuMessage *msg)
{
  g_autoptr (GError) error = NULL;
  Outcome o = { FALSE, 0, -1 };

  o.ok = vhu_message_validate_request (msg, ALL_PROTOCOL_FEATURES, &error);
  /* Error set iff FALSE. */
  g_assert_true (o.ok == (error == NULL));
  if (error != NULL)
    {
      o.domain = error->domain;
      o.code = error->code;
      g_assert_true (error->domain == VHOST_USER_ERROR);
      g_assert_true (error->code == VHOST_USER_ERROR_PROTOCOL
                     || error->code == VHOST_USER_ERROR_UNSUPPORTED
                     || error->code == VHOST_USER_ERROR_INVALID);
      g_assert_nonnull (error->message);
      g_assert_cmpstr (error->message, !=, "");
    }
  /* Without an error location it answers the same. */
  g_assert_cmpint (vhu_message_validate_request (msg, ALL_PROTOCOL_FEATURES, NULL), ==, o.ok);
  return o;
}

/* Every code 0..50 with every size 0..300: never a crash, a consistent
 * answer, and the same answer whatever lies past hdr.size. */
static void
test_sweep_codes_and_sizes (void)
{
  VhuMessage *zeroed = g_new0 (VhuMessage, 1);
  VhuMessage *poisoned = g_new0 (VhuMessage, 1);
  guint accepted = 0;

  for (guint32 code = 0; code <= 50; code++)
    {
      for (guint32 size = 0; size <= 300; size++)
        {
          for (guint n_fds = 0; n_fds <= 2; n_fds++)
            {
              Outcome a, b;

              memset (zeroed, 0, sizeof *zeroed);
              vhu_message_init (zeroed);
              vhu_message_init_request (zeroed, code, 0, size);
              zeroed->n_fds = n_fds; /* validation never touches fds[] */

              memcpy (poisoned, zeroed, sizeof *poisoned);
              memset (poisoned->payload.bytes + size, 0xff, VHU_MAX_PAYLOAD - size);

              a = validate_outcome (zeroed);
              b = validate_outcome (poisoned);
              g_assert_cmpint (a.ok, ==, b.ok);
              g_assert_cmpint (a.code, ==, b.code);
              if (code == 0 || code > VHOST_USER_REQUEST_CHECK_DEVICE_STATE)
                g_assert_cmpint (a.code, ==, VHOST_USER_ERROR_UNSUPPORTED);
              if (a.ok)
                accepted++;
            }
        }
    }

  /* A zeroed payload is valid for many requests (GET_FEATURES, size 0, ...). */
  g_assert_cmpuint (accepted, >, 30);
  g_free (zeroed);
  g_free (poisoned);
}

/* Random headers and payloads, including garbage n_fds and sizes. */
static void
test_random_messages (void)
{
  VhuMessage *msg = g_new0 (VhuMessage, 1);
  guint iterations = g_test_slow () ? 1000000 : 100000;

  for (guint i = 0; i < iterations; i++)
    {
      g_autoptr (GError) error = NULL;
      guint n_words = g_test_rand_int_range (0, 80);

      msg->hdr.request = g_test_rand_bit () ? (guint32) g_test_rand_int_range (0, 48)
                                            : (guint32) g_test_rand_int ();
      msg->hdr.flags = g_test_rand_bit () ? VHU_VERSION : (guint32) g_test_rand_int ();
      msg->hdr.size = g_test_rand_bit () ? (guint32) g_test_rand_int_range (0, 300)
                                         : (guint32) g_test_rand_int ();
      for (guint w = 0; w < n_words; w++)
        {
          guint32 v = g_test_rand_bit () ? (guint32) g_test_rand_int_range (0, 10)
                                         : (guint32) g_test_rand_int ();
          memcpy (msg->payload.bytes + 4 * w, &v, sizeof v);
        }
      msg->n_fds = g_test_rand_bit () ? (guint) g_test_rand_int_range (0, VHU_MAX_FDS + 1)
                                      : (guint) g_test_rand_int ();
      for (guint f = 0; f < VHU_MAX_FDS; f++)
        msg->fds[f] = -1;

      validate_outcome (msg);
      if (vhu_header_validate (&msg->hdr, g_test_rand_bit (), &error))
        g_assert_no_error (error);
      else
        g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
      g_clear_error (&error);
      if (vhu_message_validate_backend_reply (msg, msg->hdr.request, &error))
        g_assert_no_error (error);
      else
        g_assert_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL);
      (void) vhu_request_name (msg->hdr.request);
      (void) vhu_backend_request_name (msg->hdr.request);
      (void) vhu_message_wants_reply (msg, (guint64) g_test_rand_int ());
    }

  /* vhu_message_clear copes with a garbage n_fds (all fds are -1 here). */
  msg->n_fds = G_MAXUINT;
  vhu_message_clear (msg);
  g_assert_cmpuint (msg->n_fds, ==, 0);
  g_free (msg);
}

/* Registration */

static char *
request_path (guint32 request, const char *what)
{
  g_autofree char *lower = g_ascii_strdown (vhu_request_name (request), -1);

  g_strdelimit (lower, "_", '-');
  return g_strdup_printf ("/vhost-user/message/%s/%s", lower, what);
}

int
main (int argc, char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/vhost-user/message/all-requests-covered", test_all_requests_covered);
  for (guint i = 0; i < G_N_ELEMENTS (request_cases); i++)
    {
      const RequestCase *c = &request_cases[i];
      g_autofree char *valid = request_path (c->request, "valid");
      g_autofree char *bad_size = request_path (c->request, "bad-size");
      g_autofree char *bad_fds = request_path (c->request, "bad-fds");

      g_test_add_data_func (valid, c, test_request_valid);
      g_test_add_data_func (bad_size, c, test_request_bad_size);
      g_test_add_data_func (bad_fds, c, test_request_bad_fds);
    }

  g_test_add_func ("/vhost-user/message/unknown-requests", test_unknown_requests);
  g_test_add_func ("/vhost-user/message/check-order", test_check_order);
  g_test_add_func ("/vhost-user/message/set-mem-table/all-region-counts", test_set_mem_table_valid);
  g_test_add_func ("/vhost-user/message/set-mem-table/invalid", test_set_mem_table_invalid);
  g_test_add_func ("/vhost-user/message/set-vring-fd/nofd", test_set_vring_fd_nofd);
  g_test_add_func ("/vhost-user/message/set-vring-addr/invalid", test_set_vring_addr_invalid);
  g_test_add_func ("/vhost-user/message/set-vring-endian/invalid", test_set_vring_endian_invalid);
  g_test_add_func ("/vhost-user/message/vring-kick/invalid", test_vring_kick_invalid);
  g_test_add_func ("/vhost-user/message/set-device-state-fd/invalid",
                   test_set_device_state_fd_invalid);
  g_test_add_func ("/vhost-user/message/iotlb-msg/invalid", test_iotlb_msg_invalid);
  g_test_add_func ("/vhost-user/message/mem-reg/empty-region", test_mem_reg_invalid);
  g_test_add_func ("/vhost-user/message/config/sizes", test_config_sizes);
  g_test_add_func ("/vhost-user/message/create-crypto-session/sizes", test_crypto_session_sizes);
  g_test_add_func ("/vhost-user/message/inflight/sizes", test_inflight_sizes);

  g_test_add_func ("/vhost-user/message/header/valid", test_header_valid);
  g_test_add_func ("/vhost-user/message/header/invalid", test_header_invalid);
  g_test_add_func ("/vhost-user/message/header/flags-sweep", test_header_flags_sweep);

  g_test_add_func ("/vhost-user/message/fds/init-clear", test_init_clear);
  g_test_add_func ("/vhost-user/message/fds/steal", test_steal_fd);
  g_test_add_func ("/vhost-user/message/fds/take", test_take_fds);
  g_test_add_func ("/vhost-user/message/fds/take-too-many", test_take_fds_too_many_at_once);

  g_test_add_func ("/vhost-user/message/reply/init-request", test_init_request);
  g_test_add_func ("/vhost-user/message/reply/init-reply", test_init_reply);
  g_test_add_func ("/vhost-user/message/reply/error-replies", test_error_replies);
  g_test_add_func ("/vhost-user/message/reply/error-reply-crypto", test_error_reply_crypto);
  g_test_add_func ("/vhost-user/message/reply/kinds", test_reply_kinds);
  g_test_add_func ("/vhost-user/message/reply/wants-reply", test_wants_reply);
  g_test_add_func ("/vhost-user/message/names", test_request_names);

  g_test_add_func ("/vhost-user/message/backend-reply/valid", test_backend_reply_valid);
  g_test_add_func ("/vhost-user/message/backend-reply/invalid", test_backend_reply_invalid);

  g_test_add_func ("/vhost-user/message/robustness/sweep", test_sweep_codes_and_sizes);
  g_test_add_func ("/vhost-user/message/robustness/random", test_random_messages);

  return g_test_run ();
}
