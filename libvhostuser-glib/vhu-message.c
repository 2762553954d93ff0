/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The vhost-user codec. Everything here works on a VhuMessage already in
 * memory: the only system call is close() on the file descriptors a message
 * owns. Every function must be safe on arbitrary input (it is fuzzed), so a
 * wire value is range-checked before it indexes anything and no payload byte
 * at or past hdr.size is ever read.
 */

#include "config.h"

#include <string.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>

#include "vhost-user-error.h"
#include "vhu-message.h"

/* The largest request code this codec knows. */
#define VHU_REQUEST_MAX VHOST_USER_REQUEST_CHECK_DEVICE_STATE

G_STATIC_ASSERT (sizeof (VhuHeader) == VHU_HEADER_SIZE);
G_STATIC_ASSERT (sizeof (VhuVringState) == 8);
G_STATIC_ASSERT (sizeof (VhuVringAddr) == 40);
G_STATIC_ASSERT (sizeof (VhuMemRegionDesc) == 32);
G_STATIC_ASSERT (sizeof (VhuMemTableMsg) == 8 + 32 * VHU_MEM_TABLE_MAX_REGIONS);
G_STATIC_ASSERT (sizeof (VhuMemRegMsg) == 40);
G_STATIC_ASSERT (sizeof (VhuLogMsg) == 16);
G_STATIC_ASSERT (sizeof (VhuIotlbMsg) == 32);
G_STATIC_ASSERT (G_STRUCT_OFFSET (VhuIotlbMsg, perm) == 24);
G_STATIC_ASSERT (G_STRUCT_OFFSET (VhuIotlbMsg, type) == 25);
G_STATIC_ASSERT (G_STRUCT_OFFSET (VhuConfigMsg, region) == VHU_CONFIG_HEADER_SIZE);
G_STATIC_ASSERT (sizeof (VhuVringAreaMsg) == 24);
G_STATIC_ASSERT (sizeof (VhuInflightMsg) == VHU_INFLIGHT_MSG_SIZE);
G_STATIC_ASSERT (G_STRUCT_OFFSET (VhuInflightMsg, padding) == VHU_INFLIGHT_MSG_PACKED_SIZE);
G_STATIC_ASSERT (sizeof (VhuSharedMsg) == 16);
G_STATIC_ASSERT (sizeof (VhuDeviceStateMsg) == 8);
G_STATIC_ASSERT (sizeof (VhuPayload) == VHU_MAX_PAYLOAD);

/* How a request's payload size is checked. */
typedef enum
{
  SIZE_FIXED,     /* exactly size */
  SIZE_AT_LEAST,  /* size .. VHU_MAX_PAYLOAD */
  SIZE_INFLIGHT,  /* VHU_INFLIGHT_MSG_PACKED_SIZE or VHU_INFLIGHT_MSG_SIZE */
  SIZE_MEM_TABLE, /* 8 + 32 * nregions */
  SIZE_CONFIG,    /* VHU_CONFIG_HEADER_SIZE + config.size */
} SizeRule;

/* How many file descriptors a request carries. */
typedef enum
{
  FDS_NONE,
  FDS_ONE,
  FDS_ZERO_OR_ONE,
  FDS_NREGIONS, /* one per memory region */
  FDS_VRING,    /* one, unless the u64 has VHU_VRING_NOFD */
} FdRule;

typedef struct
{
  const char *name;
  guint8 size_rule; /* SizeRule */
  guint16 size;
  guint8 fd_rule;    /* FdRule */
  guint8 reply_kind; /* VhuReplyKind */
} RequestInfo;

#define U64_SIZE sizeof (guint64)
#define STATE_SIZE sizeof (VhuVringState)
#define REQUEST(code, size_rule, size, fd_rule, reply_kind) \
  [VHOST_USER_REQUEST_##code] = { #code, size_rule, size, fd_rule, reply_kind }

/* Indexed by VhostUserRequest; only ever with a code checked against
 * G_N_ELEMENTS first. SET_LOG_BASE's STATUS reply depends on LOG_SHMFD:
 * vhu_request_reply_kind() handles it. */
static const RequestInfo request_info[] = {
  REQUEST (NONE, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (GET_FEATURES, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_U64),
  REQUEST (SET_FEATURES, SIZE_FIXED, U64_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (SET_OWNER, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (RESET_OWNER, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (SET_MEM_TABLE, SIZE_MEM_TABLE, 0, FDS_NREGIONS, VHU_REPLY_NONE),
  REQUEST (SET_LOG_BASE, SIZE_FIXED, sizeof (VhuLogMsg), FDS_ONE, VHU_REPLY_NONE),
  REQUEST (SET_LOG_FD, SIZE_FIXED, 0, FDS_ONE, VHU_REPLY_NONE),
  REQUEST (SET_VRING_NUM, SIZE_FIXED, STATE_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (SET_VRING_ADDR, SIZE_FIXED, sizeof (VhuVringAddr), FDS_NONE, VHU_REPLY_NONE),
  REQUEST (SET_VRING_BASE, SIZE_FIXED, STATE_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (GET_VRING_BASE, SIZE_FIXED, STATE_SIZE, FDS_NONE, VHU_REPLY_STATE),
  REQUEST (SET_VRING_KICK, SIZE_FIXED, U64_SIZE, FDS_VRING, VHU_REPLY_NONE),
  REQUEST (SET_VRING_CALL, SIZE_FIXED, U64_SIZE, FDS_VRING, VHU_REPLY_NONE),
  REQUEST (SET_VRING_ERR, SIZE_FIXED, U64_SIZE, FDS_VRING, VHU_REPLY_NONE),
  REQUEST (GET_PROTOCOL_FEATURES, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_U64),
  REQUEST (SET_PROTOCOL_FEATURES, SIZE_FIXED, U64_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (GET_QUEUE_NUM, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_U64),
  REQUEST (SET_VRING_ENABLE, SIZE_FIXED, STATE_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (SEND_RARP, SIZE_FIXED, U64_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (NET_SET_MTU, SIZE_FIXED, U64_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (SET_BACKEND_REQ_FD, SIZE_FIXED, 0, FDS_ONE, VHU_REPLY_NONE),
  REQUEST (IOTLB_MSG, SIZE_FIXED, sizeof (VhuIotlbMsg), FDS_NONE, VHU_REPLY_STATUS),
  REQUEST (SET_VRING_ENDIAN, SIZE_FIXED, STATE_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (GET_CONFIG, SIZE_CONFIG, 0, FDS_NONE, VHU_REPLY_CONFIG),
  REQUEST (SET_CONFIG, SIZE_CONFIG, 0, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (CREATE_CRYPTO_SESSION, SIZE_AT_LEAST, U64_SIZE, FDS_NONE, VHU_REPLY_CRYPTO),
  REQUEST (CLOSE_CRYPTO_SESSION, SIZE_FIXED, U64_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (POSTCOPY_ADVISE, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_STATUS),
  REQUEST (POSTCOPY_LISTEN, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (POSTCOPY_END, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_STATUS),
  REQUEST (GET_INFLIGHT_FD, SIZE_INFLIGHT, 0, FDS_NONE, VHU_REPLY_INFLIGHT),
  REQUEST (SET_INFLIGHT_FD, SIZE_INFLIGHT, 0, FDS_ONE, VHU_REPLY_NONE),
  REQUEST (GPU_SET_SOCKET, SIZE_FIXED, 0, FDS_ONE, VHU_REPLY_NONE),
  REQUEST (RESET_DEVICE, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (VRING_KICK, SIZE_FIXED, STATE_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (GET_MAX_MEM_SLOTS, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_U64),
  REQUEST (ADD_MEM_REG, SIZE_FIXED, sizeof (VhuMemRegMsg), FDS_ONE, VHU_REPLY_NONE),
  REQUEST (REM_MEM_REG, SIZE_FIXED, sizeof (VhuMemRegMsg), FDS_ZERO_OR_ONE, VHU_REPLY_NONE),
  REQUEST (SET_STATUS, SIZE_FIXED, U64_SIZE, FDS_NONE, VHU_REPLY_NONE),
  REQUEST (GET_STATUS, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_U64),
  REQUEST (GET_SHARED_OBJECT, SIZE_FIXED, sizeof (VhuSharedMsg), FDS_NONE, VHU_REPLY_STATUS),
  REQUEST (SET_DEVICE_STATE_FD, SIZE_FIXED, sizeof (VhuDeviceStateMsg), FDS_ONE, VHU_REPLY_STATUS),
  REQUEST (CHECK_DEVICE_STATE, SIZE_FIXED, 0, FDS_NONE, VHU_REPLY_STATUS),
};

#undef REQUEST

G_STATIC_ASSERT (G_N_ELEMENTS (request_info) == VHU_REQUEST_MAX + 1);

static const char *const backend_request_names[] = {
  [VHOST_USER_BACKEND_REQUEST_NONE] = "NONE",
  [VHOST_USER_BACKEND_REQUEST_IOTLB_MSG] = "IOTLB_MSG",
  [VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG] = "CONFIG_CHANGE_MSG",
  [VHOST_USER_BACKEND_REQUEST_VRING_HOST_NOTIFIER_MSG] = "VRING_HOST_NOTIFIER_MSG",
  [VHOST_USER_BACKEND_REQUEST_VRING_CALL] = "VRING_CALL",
  [VHOST_USER_BACKEND_REQUEST_VRING_ERR] = "VRING_ERR",
  [VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_ADD] = "SHARED_OBJECT_ADD",
  [VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_REMOVE] = "SHARED_OBJECT_REMOVE",
  [VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP] = "SHARED_OBJECT_LOOKUP",
};

/* The table entry of a known request (1..VHU_REQUEST_MAX), or NULL. */
static const RequestInfo *
lookup_request (guint32 request)
{
  if (request == VHOST_USER_REQUEST_NONE || request >= G_N_ELEMENTS (request_info))
    return NULL;
  return &request_info[request];
}

/* Ownership of fds */

void
vhu_message_init (VhuMessage *msg)
{
  g_return_if_fail (msg != NULL);

  memset (&msg->hdr, 0, sizeof msg->hdr);
  msg->n_fds = 0;
  for (guint i = 0; i < VHU_MAX_FDS; i++)
    msg->fds[i] = -1;
}

void
vhu_message_clear (VhuMessage *msg)
{
  guint n;

  g_return_if_fail (msg != NULL);

  n = MIN (msg->n_fds, VHU_MAX_FDS);
  for (guint i = 0; i < n; i++)
    {
      if (msg->fds[i] >= 0)
        close (msg->fds[i]);
    }
  for (guint i = 0; i < VHU_MAX_FDS; i++)
    msg->fds[i] = -1;
  msg->n_fds = 0;
}

int
vhu_message_steal_fd (VhuMessage *msg, guint i)
{
  int fd;

  g_return_val_if_fail (msg != NULL, -1);

  if (i >= msg->n_fds || i >= VHU_MAX_FDS)
    return -1;

  fd = msg->fds[i];
  msg->fds[i] = -1;
  return fd;
}

gboolean
vhu_message_take_fds (VhuMessage *msg, const int *fds, guint n_fds, GError **error)
{
  g_return_val_if_fail (msg != NULL, FALSE);
  g_return_val_if_fail (fds != NULL || n_fds == 0, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (msg->n_fds > VHU_MAX_FDS || n_fds > VHU_MAX_FDS - msg->n_fds)
    {
      for (guint i = 0; i < n_fds; i++)
        {
          if (fds[i] >= 0)
            close (fds[i]);
        }
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("Too many file descriptors: %u on top of %u, at most %u"), n_fds,
                   msg->n_fds, VHU_MAX_FDS);
      return FALSE;
    }

  for (guint i = 0; i < n_fds; i++)
    msg->fds[msg->n_fds++] = fds[i];
  return TRUE;
}

/* Building messages */

static void
init_message (VhuMessage *msg, guint32 request, guint32 flags, guint32 size)
{
  msg->hdr.request = request;
  msg->hdr.flags = flags;
  msg->hdr.size = size;
  msg->n_fds = 0;
  for (guint i = 0; i < VHU_MAX_FDS; i++)
    msg->fds[i] = -1;
}

void
vhu_message_init_request (VhuMessage *msg, guint32 request, guint32 flags, guint32 size)
{
  g_return_if_fail (msg != NULL);

  init_message (msg, request, VHU_VERSION | flags, size);
}

void
vhu_message_init_reply (VhuMessage *reply, const VhuMessage *request, guint32 size)
{
  g_return_if_fail (reply != NULL);
  g_return_if_fail (request != NULL);

  /* reply may be request: init_message reads nothing from it. */
  init_message (reply, request->hdr.request, VHU_VERSION | VHU_FLAG_REPLY, size);
}

void
vhu_message_init_reply_u64 (VhuMessage *reply, const VhuMessage *request, guint64 value)
{
  g_return_if_fail (reply != NULL);
  g_return_if_fail (request != NULL);

  vhu_message_init_reply (reply, request, sizeof (guint64));
  reply->payload.u64 = value;
}

void
vhu_message_init_error_reply (VhuMessage *reply, const VhuMessage *request)
{
  const gint64 failed_session = -1;
  guint32 size;

  g_return_if_fail (reply != NULL);
  g_return_if_fail (request != NULL);

  /* As if every optional reply were negotiated. */
  switch (vhu_request_reply_kind (request->hdr.request, G_MAXUINT64))
    {
    case VHU_REPLY_NONE:
    case VHU_REPLY_STATUS:
      vhu_message_init_reply_u64 (reply, request, 1);
      break;

    case VHU_REPLY_CRYPTO:
      /* The reply echoes the session description with a negative int64
       * session id. That id is the first field in QEMU before 8.0 and the
       * last one since (after op_code and the sym/asym union): set both,
       * the front-end ignores the other fields of a failed reply. */
      size = MIN (request->hdr.size, VHU_MAX_PAYLOAD);
      if (reply != request)
        memcpy (reply->payload.bytes, request->payload.bytes, size);
      size = MAX (size, sizeof failed_session);
      vhu_message_init_reply (reply, request, size);
      memcpy (reply->payload.bytes, &failed_session, sizeof failed_session);
      memcpy (reply->payload.bytes + size - sizeof failed_session, &failed_session,
              sizeof failed_session);
      break;

    case VHU_REPLY_U64:
    case VHU_REPLY_STATE:
    case VHU_REPLY_CONFIG:
    case VHU_REPLY_INFLIGHT:
    default:
      /* A payload of the wrong size: the front-end fails the request. For
       * GET_CONFIG, an empty payload is the spec's error signal. */
      vhu_message_init_reply (reply, request, 0);
      break;
    }
}

gboolean
vhu_message_wants_reply (const VhuMessage *request, guint64 protocol_features)
{
  g_return_val_if_fail (request != NULL, FALSE);

  /* NEED_REPLY is honoured even without REPLY_ACK: a front-end that sets it
   * waits for an answer, so it gets one. */
  return vhu_request_reply_kind (request->hdr.request, protocol_features) != VHU_REPLY_NONE
         || (request->hdr.flags & VHU_FLAG_NEED_REPLY) != 0;
}

/* Names and reply kinds */

const char *
vhu_request_name (guint32 request)
{
  if (request >= G_N_ELEMENTS (request_info))
    return "UNKNOWN";
  return request_info[request].name;
}

const char *
vhu_backend_request_name (guint32 request)
{
  if (request >= G_N_ELEMENTS (backend_request_names))
    return "UNKNOWN";
  return backend_request_names[request];
}

VhuReplyKind
vhu_request_reply_kind (guint32 request, guint64 protocol_features)
{
  const RequestInfo *info = lookup_request (request);

  if (info == NULL)
    return VHU_REPLY_NONE;

  if (request == VHOST_USER_REQUEST_SET_LOG_BASE)
    {
      if (protocol_features & (G_GUINT64_CONSTANT (1) << VHOST_USER_PROTOCOL_FEATURE_LOG_SHMFD))
        return VHU_REPLY_STATUS;
      return VHU_REPLY_NONE;
    }

  return (VhuReplyKind) info->reply_kind;
}

/* Validation */

/* How an error names a message whose header is wrong. */
static char *
header_label (const VhuHeader *hdr, gboolean is_reply)
{
  if (is_reply)
    return g_strdup_printf (_("Reply to request %u"), hdr->request);
  return g_strdup_printf ("%s (%u)", vhu_request_name (hdr->request), hdr->request);
}

gboolean
vhu_header_validate (const VhuHeader *hdr, gboolean is_reply, GError **error)
{
  const guint32 known_flags = VHU_FLAG_VERSION_MASK | VHU_FLAG_REPLY | VHU_FLAG_NEED_REPLY;
  g_autofree char *label = NULL;

  g_return_val_if_fail (hdr != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if ((hdr->flags & VHU_FLAG_VERSION_MASK) != VHU_VERSION)
    {
      label = header_label (hdr, is_reply);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: protocol version %u, expected %u"), label,
                   hdr->flags & VHU_FLAG_VERSION_MASK, VHU_VERSION);
      return FALSE;
    }

  if ((hdr->flags & ~known_flags) != 0)
    {
      label = header_label (hdr, is_reply);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: unknown header flags 0x%x"), label, hdr->flags & ~known_flags);
      return FALSE;
    }

  if (is_reply && (hdr->flags & VHU_FLAG_REPLY) == 0)
    {
      label = header_label (hdr, is_reply);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: the REPLY flag is not set"), label);
      return FALSE;
    }

  if (!is_reply && (hdr->flags & VHU_FLAG_REPLY) != 0)
    {
      label = header_label (hdr, is_reply);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: the REPLY flag is set on a request"), label);
      return FALSE;
    }

  if (is_reply && (hdr->flags & VHU_FLAG_NEED_REPLY) != 0)
    {
      label = header_label (hdr, is_reply);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: the NEED_REPLY flag is set on a reply"), label);
      return FALSE;
    }

  if (hdr->size > VHU_MAX_PAYLOAD)
    {
      label = header_label (hdr, is_reply);
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: payload of %u bytes, at most %u"), label, hdr->size, VHU_MAX_PAYLOAD);
      return FALSE;
    }

  return TRUE;
}

static gboolean
validate_size (const VhuMessage *msg, const RequestInfo *info, GError **error)
{
  guint32 size = msg->hdr.size;
  guint64 expected;

  switch ((SizeRule) info->size_rule)
    {
    case SIZE_FIXED:
      expected = info->size;
      break;

    case SIZE_AT_LEAST:
      if (size < info->size || size > VHU_MAX_PAYLOAD)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                       _("%s: payload is %u bytes, expected %u to %u"), info->name, size,
                       (guint) info->size, VHU_MAX_PAYLOAD);
          return FALSE;
        }
      return TRUE;

    case SIZE_INFLIGHT:
      if (size != VHU_INFLIGHT_MSG_SIZE && size != VHU_INFLIGHT_MSG_PACKED_SIZE)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                       _("%s: payload is %u bytes, expected %u or %u"), info->name, size,
                       VHU_INFLIGHT_MSG_PACKED_SIZE, VHU_INFLIGHT_MSG_SIZE);
          return FALSE;
        }
      return TRUE;

    case SIZE_MEM_TABLE:
      if (size < G_STRUCT_OFFSET (VhuMemTableMsg, regions))
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                       _("%s: payload is %u bytes, expected at least %u"), info->name, size,
                       (guint) G_STRUCT_OFFSET (VhuMemTableMsg, regions));
          return FALSE;
        }
      expected = G_STRUCT_OFFSET (VhuMemTableMsg, regions)
                 + (guint64) msg->payload.memory.nregions * sizeof (VhuMemRegionDesc);
      break;

    case SIZE_CONFIG:
      if (size < VHU_CONFIG_HEADER_SIZE)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                       _("%s: payload is %u bytes, expected at least %u"), info->name, size,
                       VHU_CONFIG_HEADER_SIZE);
          return FALSE;
        }
      if (msg->payload.config.size > VHU_MAX_CONFIG_SIZE)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                       _("%s: config space size is %u bytes, at most %u"), info->name,
                       msg->payload.config.size, VHU_MAX_CONFIG_SIZE);
          return FALSE;
        }
      expected = VHU_CONFIG_HEADER_SIZE + msg->payload.config.size;
      break;

    default:
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED, _("%s: no size rule"),
                   info->name);
      return FALSE;
    }

  if (size != expected)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: payload is %u bytes, expected %" G_GUINT64_FORMAT), info->name, size,
                   expected);
      return FALSE;
    }

  return TRUE;
}

/* Only called once the payload size is right. */
static gboolean
validate_fds (const VhuMessage *msg, const RequestInfo *info, GError **error)
{
  guint n_fds = msg->n_fds;
  guint expected;

  switch ((FdRule) info->fd_rule)
    {
    case FDS_NONE:
      expected = 0;
      break;

    case FDS_ONE:
      expected = 1;
      break;

    case FDS_ZERO_OR_ONE:
      if (n_fds > 1)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                       _("%s: %u file descriptors, expected at most 1"), info->name, n_fds);
          return FALSE;
        }
      return TRUE;

    case FDS_NREGIONS:
      expected = msg->payload.memory.nregions;
      break;

    case FDS_VRING:
      expected = (msg->payload.u64 & VHU_VRING_NOFD) ? 0 : 1;
      break;

    default:
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_FAILED, _("%s: no fd rule"),
                   info->name);
      return FALSE;
    }

  if (n_fds != expected)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("%s: %u file descriptors, expected %u"), info->name, n_fds, expected);
      return FALSE;
    }

  return TRUE;
}

static gboolean
validate_region (const char *name, const VhuMemRegionDesc *region, GError **error)
{
  if (region->size == 0)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                   _("%s: memory region at guest address 0x%" G_GINT64_MODIFIER "x is empty"),
                   name, region->guest_addr);
      return FALSE;
    }
  return TRUE;
}

/* Context-free value checks; only called once size and fds are right. */
static gboolean
validate_values (const VhuMessage *msg, const RequestInfo *info, GError **error)
{
  const VhuPayload *p = &msg->payload;

  switch (msg->hdr.request)
    {
    case VHOST_USER_REQUEST_SET_MEM_TABLE:
      if (p->memory.nregions < 1 || p->memory.nregions > VHU_MEM_TABLE_MAX_REGIONS)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: %u memory regions, expected 1 to %u"), info->name,
                       p->memory.nregions, VHU_MEM_TABLE_MAX_REGIONS);
          return FALSE;
        }
      for (guint i = 0; i < p->memory.nregions; i++)
        {
          if (!validate_region (info->name, &p->memory.regions[i], error))
            return FALSE;
        }
      return TRUE;

    case VHOST_USER_REQUEST_ADD_MEM_REG:
    case VHOST_USER_REQUEST_REM_MEM_REG:
      return validate_region (info->name, &p->mem_reg.region, error);

    case VHOST_USER_REQUEST_SET_VRING_KICK:
    case VHOST_USER_REQUEST_SET_VRING_CALL:
    case VHOST_USER_REQUEST_SET_VRING_ERR:
      if ((p->u64 & ~(guint64) (VHU_VRING_INDEX_MASK | VHU_VRING_NOFD)) != 0)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: unknown bits in 0x%" G_GINT64_MODIFIER "x"), info->name, p->u64);
          return FALSE;
        }
      return TRUE;

    case VHOST_USER_REQUEST_SET_VRING_ADDR:
      if ((p->addr.flags & ~(1u << VHU_VRING_F_LOG)) != 0)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: unknown flags 0x%x"), info->name, p->addr.flags);
          return FALSE;
        }
      if (p->addr.desc_user_addr % 16 != 0 || p->addr.avail_user_addr % 2 != 0
          || p->addr.used_user_addr % 4 != 0)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: misaligned ring address (descriptors 0x%" G_GINT64_MODIFIER
                         "x, available 0x%" G_GINT64_MODIFIER "x, used 0x%" G_GINT64_MODIFIER
                         "x)"),
                       info->name, p->addr.desc_user_addr, p->addr.avail_user_addr,
                       p->addr.used_user_addr);
          return FALSE;
        }
      return TRUE;

    case VHOST_USER_REQUEST_SET_VRING_ENDIAN:
      if (p->state.num > 1)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: endianness %u, expected 0 or 1"), info->name, p->state.num);
          return FALSE;
        }
      return TRUE;

    case VHOST_USER_REQUEST_VRING_KICK:
      if (p->state.num != 0)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: reserved field is %u, expected 0"), info->name, p->state.num);
          return FALSE;
        }
      return TRUE;

    case VHOST_USER_REQUEST_SET_DEVICE_STATE_FD:
      if (p->device_state.direction > VHOST_USER_TRANSFER_DIRECTION_LOAD)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: transfer direction %u, expected 0 or 1"), info->name,
                       p->device_state.direction);
          return FALSE;
        }
      if (p->device_state.phase != 0)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: migration phase %u, expected 0"), info->name,
                       p->device_state.phase);
          return FALSE;
        }
      return TRUE;

    case VHOST_USER_REQUEST_IOTLB_MSG:
      if (p->iotlb.type < VHU_IOTLB_MISS || p->iotlb.type > VHU_IOTLB_ACCESS_FAIL)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: IOTLB message type %u, expected %u to %u"), info->name,
                       (guint) p->iotlb.type, VHU_IOTLB_MISS, VHU_IOTLB_ACCESS_FAIL);
          return FALSE;
        }
      if (p->iotlb.perm > VHU_IOTLB_ACCESS_RW)
        {
          g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_INVALID,
                       _("%s: IOTLB permissions %u, expected at most %u"), info->name,
                       (guint) p->iotlb.perm, VHU_IOTLB_ACCESS_RW);
          return FALSE;
        }
      return TRUE;

    default:
      return TRUE;
    }
}

gboolean
vhu_message_validate_request (const VhuMessage *msg, guint64 protocol_features, GError **error)
{
  const RequestInfo *info;

  g_return_val_if_fail (msg != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  info = lookup_request (msg->hdr.request);
  if (info == NULL)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_UNSUPPORTED,
                   _("Unknown request %u"), msg->hdr.request);
      return FALSE;
    }

  return validate_size (msg, info, error) && validate_fds (msg, info, error)
         && validate_values (msg, info, error);
}

gboolean
vhu_message_validate_backend_reply (const VhuMessage *reply, guint32 request, GError **error)
{
  const char *name = vhu_backend_request_name (request);
  guint max_fds;

  g_return_val_if_fail (reply != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!vhu_header_validate (&reply->hdr, TRUE, error))
    return FALSE;

  if (reply->hdr.request != request)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("Reply to back-end request %s (%u) is for request %u"), name, request,
                   reply->hdr.request);
      return FALSE;
    }

  if (reply->hdr.size != sizeof (guint64))
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("Reply to back-end request %s: payload is %u bytes, expected %u"), name,
                   reply->hdr.size, (guint) sizeof (guint64));
      return FALSE;
    }

  max_fds = request == VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP ? 1 : 0;
  if (reply->n_fds > max_fds)
    {
      g_set_error (error, VHOST_USER_ERROR, VHOST_USER_ERROR_PROTOCOL,
                   _("Reply to back-end request %s: %u file descriptors, expected at most %u"),
                   name, reply->n_fds, max_fds);
      return FALSE;
    }

  return TRUE;
}
