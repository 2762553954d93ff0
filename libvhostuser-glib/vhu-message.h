/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * The vhost-user codec: wire layout of the header and of every payload, and
 * per-request validation of payload size and file descriptor count. Pure: no
 * I/O here, so it can be unit tested and fuzzed on plain buffers.
 */

#pragma once

#include <glib.h>

#include "vhost-user-enums.h"

G_BEGIN_DECLS

#define VHU_HEADER_SIZE 12u
/* At most this many fds travel with one message (the spec's limit). */
#define VHU_MAX_FDS 8u
/* No request defined by the spec has a larger payload; a header announcing
 * more is refused before any payload byte is read. */
#define VHU_MAX_PAYLOAD 4096u

#define VHU_VERSION 0x1u
#define VHU_FLAG_VERSION_MASK 0x3u
#define VHU_FLAG_REPLY (1u << 2)
#define VHU_FLAG_NEED_REPLY (1u << 3)

/* SET_VRING_KICK / CALL / ERR: low byte is the ring, bit 8 says "no fd". */
#define VHU_VRING_INDEX_MASK 0xffu
#define VHU_VRING_NOFD (1u << 8)

/* SET_VRING_ADDR flags */
#define VHU_VRING_F_LOG 0

#define VHU_MEM_TABLE_MAX_REGIONS 8u /* SET_MEM_TABLE */
#define VHU_MAX_MEM_SLOTS 509u       /* GET_MAX_MEM_SLOTS */
#define VHU_MAX_CONFIG_SIZE 256u     /* GET_CONFIG / SET_CONFIG */
#define VHU_MAX_QUEUE_SIZE 32768u

typedef struct
{
  guint32 request;
  guint32 flags;
  guint32 size;
} VhuHeader;

typedef struct
{
  guint32 index;
  guint32 num;
} VhuVringState;

typedef struct
{
  guint32 index;
  guint32 flags;
  guint64 desc_user_addr;
  guint64 used_user_addr;
  guint64 avail_user_addr;
  guint64 log_guest_addr;
} VhuVringAddr;

typedef struct
{
  guint64 guest_addr;
  guint64 size;
  guint64 user_addr;
  guint64 mmap_offset;
} VhuMemRegionDesc;

typedef struct
{
  guint32 nregions;
  guint32 padding;
  VhuMemRegionDesc regions[VHU_MEM_TABLE_MAX_REGIONS];
} VhuMemTableMsg;

typedef struct
{
  guint64 padding;
  VhuMemRegionDesc region;
} VhuMemRegMsg;

typedef struct
{
  guint64 mmap_size;
  guint64 mmap_offset;
} VhuLogMsg;

#define VHU_IOTLB_ACCESS_NONE 0u
#define VHU_IOTLB_ACCESS_RO 1u
#define VHU_IOTLB_ACCESS_WO 2u
#define VHU_IOTLB_ACCESS_RW 3u
#define VHU_IOTLB_MISS 1u
#define VHU_IOTLB_UPDATE 2u
#define VHU_IOTLB_INVALIDATE 3u
#define VHU_IOTLB_ACCESS_FAIL 4u

/* struct vhost_iotlb_msg: 32 bytes on the wire (26 plus padding). */
typedef struct
{
  guint64 iova;
  guint64 size;
  guint64 uaddr;
  guint8 perm;
  guint8 type;
  guint8 padding[6];
} VhuIotlbMsg;

#define VHU_CONFIG_HEADER_SIZE 12u

typedef struct
{
  guint32 offset;
  guint32 size;
  guint32 flags;
  guint8 region[VHU_MAX_CONFIG_SIZE];
} VhuConfigMsg;

typedef struct
{
  guint64 u64;
  guint64 size;
  guint64 offset;
} VhuVringAreaMsg;

/* QEMU sends 24 bytes (4 of padding after queue_size); the spec's table adds
 * up to 20. Both are accepted; a reply has the size of its request. */
#define VHU_INFLIGHT_MSG_SIZE 24u
#define VHU_INFLIGHT_MSG_PACKED_SIZE 20u

typedef struct
{
  guint64 mmap_size;
  guint64 mmap_offset;
  guint16 num_queues;
  guint16 queue_size;
  guint32 padding;
} VhuInflightMsg;

typedef struct
{
  guint8 uuid[16];
} VhuSharedMsg;

typedef struct
{
  guint32 direction;
  guint32 phase;
} VhuDeviceStateMsg;

/* SET_DEVICE_STATE_FD reply: bits 0-7 status, bit 8 "no fd returned". */
#define VHU_DEVICE_STATE_NOFD (1u << 8)

typedef union
{
  guint64 u64;
  VhuVringState state;
  VhuVringAddr addr;
  VhuMemTableMsg memory;
  VhuMemRegMsg mem_reg;
  VhuLogMsg log;
  VhuIotlbMsg iotlb;
  VhuConfigMsg config;
  VhuVringAreaMsg area;
  VhuInflightMsg inflight;
  VhuSharedMsg shared;
  VhuDeviceStateMsg device_state;
  guint8 bytes[VHU_MAX_PAYLOAD];
} VhuPayload;

/*
 * One message, either direction. On the wire the payload follows the 12-byte
 * header directly; here it is kept 8-byte aligned, so senders and receivers
 * use two iovecs. The message owns fds[0..n_fds); an fd a handler keeps is
 * taken with vhu_message_steal_fd(), every other one is closed by
 * vhu_message_clear().
 */
typedef struct
{
  VhuHeader hdr;
  VhuPayload payload;
  int fds[VHU_MAX_FDS];
  guint n_fds;
} VhuMessage;

/* What a request's reply carries, if it has one of its own (otherwise the
 * reply is the REPLY_ACK u64, sent only when NEED_REPLY is set). */
typedef enum
{
  VHU_REPLY_NONE,      /* no reply body of its own */
  VHU_REPLY_U64,       /* a u64 value (GET_FEATURES, GET_QUEUE_NUM, ...) */
  VHU_REPLY_STATUS,    /* a u64 status, 0 = success (SET_LOG_BASE, IOTLB_MSG, ...) */
  VHU_REPLY_STATE,     /* a vring state (GET_VRING_BASE) */
  VHU_REPLY_CONFIG,    /* a config space; size 0 means failure (GET_CONFIG) */
  VHU_REPLY_INFLIGHT,  /* an inflight description plus one fd (GET_INFLIGHT_FD) */
  VHU_REPLY_CRYPTO,    /* a crypto session (CREATE_CRYPTO_SESSION) */
} VhuReplyKind;

void vhu_message_init (VhuMessage *msg);
void vhu_message_clear (VhuMessage *msg);
int vhu_message_steal_fd (VhuMessage *msg, guint i);
gboolean vhu_message_take_fds (VhuMessage *msg, const int *fds, guint n_fds, GError **error);

void vhu_message_init_request (VhuMessage *msg, guint32 request, guint32 flags, guint32 size);
void vhu_message_init_reply (VhuMessage *reply, const VhuMessage *request, guint32 size);
void vhu_message_init_reply_u64 (VhuMessage *reply, const VhuMessage *request, guint64 value);
void vhu_message_init_error_reply (VhuMessage *reply, const VhuMessage *request);

gboolean vhu_message_wants_reply (const VhuMessage *request, guint64 protocol_features);

const char *vhu_request_name (guint32 request);
const char *vhu_backend_request_name (guint32 request);
VhuReplyKind vhu_request_reply_kind (guint32 request, guint64 protocol_features);

gboolean vhu_header_validate (const VhuHeader *hdr, gboolean is_reply, GError **error);
gboolean vhu_message_validate_request (const VhuMessage *msg,
                                       guint64 protocol_features,
                                       GError **error);
gboolean vhu_message_validate_backend_reply (const VhuMessage *reply,
                                             guint32 request,
                                             GError **error);

G_END_DECLS
