/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 */

#pragma once

#if !defined(__LIBVHOSTUSER_GLIB_H_INSIDE__) && !defined(VHOST_USER_COMPILATION)
#error "Only <libvhostuser-glib/libvhostuser-glib.h> can be included directly."
#endif

#include <glib.h>

G_BEGIN_DECLS

/**
 * VhostUserRequest:
 * @VHOST_USER_REQUEST_NONE: not a request; refused when received
 * @VHOST_USER_REQUEST_GET_FEATURES: query the virtio feature bits the back-end offers
 * @VHOST_USER_REQUEST_SET_FEATURES: acknowledge virtio feature bits
 * @VHOST_USER_REQUEST_SET_OWNER: start of a session
 * @VHOST_USER_REQUEST_RESET_OWNER: deprecated; disables all rings
 * @VHOST_USER_REQUEST_SET_MEM_TABLE: replace the guest memory table
 * @VHOST_USER_REQUEST_SET_LOG_BASE: set the dirty-log shared memory
 * @VHOST_USER_REQUEST_SET_LOG_FD: set the eventfd kicked when the log changes
 * @VHOST_USER_REQUEST_SET_VRING_NUM: set a ring's size
 * @VHOST_USER_REQUEST_SET_VRING_ADDR: set a ring's addresses
 * @VHOST_USER_REQUEST_SET_VRING_BASE: set a ring's next available index
 * @VHOST_USER_REQUEST_GET_VRING_BASE: stop a ring and read its next available index
 * @VHOST_USER_REQUEST_SET_VRING_KICK: set a ring's kick eventfd
 * @VHOST_USER_REQUEST_SET_VRING_CALL: set a ring's call eventfd
 * @VHOST_USER_REQUEST_SET_VRING_ERR: set a ring's error eventfd
 * @VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES: query the protocol feature bits
 * @VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES: acknowledge protocol feature bits
 * @VHOST_USER_REQUEST_GET_QUEUE_NUM: query the number of queues
 * @VHOST_USER_REQUEST_SET_VRING_ENABLE: enable or disable a ring
 * @VHOST_USER_REQUEST_SEND_RARP: broadcast a RARP for a guest MAC address
 * @VHOST_USER_REQUEST_NET_SET_MTU: set the MTU shown to a net guest
 * @VHOST_USER_REQUEST_SET_BACKEND_REQ_FD: set the back-end channel socket
 * @VHOST_USER_REQUEST_IOTLB_MSG: update or invalidate an IOTLB entry
 * @VHOST_USER_REQUEST_SET_VRING_ENDIAN: set a legacy ring's endianness
 * @VHOST_USER_REQUEST_GET_CONFIG: read the device config space
 * @VHOST_USER_REQUEST_SET_CONFIG: write the device config space
 * @VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION: create a crypto session
 * @VHOST_USER_REQUEST_CLOSE_CRYPTO_SESSION: close a crypto session
 * @VHOST_USER_REQUEST_POSTCOPY_ADVISE: postcopy migration is coming
 * @VHOST_USER_REQUEST_POSTCOPY_LISTEN: postcopy migration has started
 * @VHOST_USER_REQUEST_POSTCOPY_END: postcopy migration has ended
 * @VHOST_USER_REQUEST_GET_INFLIGHT_FD: get the shared in-flight tracking buffer
 * @VHOST_USER_REQUEST_SET_INFLIGHT_FD: hand back the in-flight tracking buffer
 * @VHOST_USER_REQUEST_GPU_SET_SOCKET: set the vhost-user-gpu socket
 * @VHOST_USER_REQUEST_RESET_DEVICE: reset the device to its initial state
 * @VHOST_USER_REQUEST_VRING_KICK: in-band kick
 * @VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS: query the number of memory slots
 * @VHOST_USER_REQUEST_ADD_MEM_REG: add one memory region
 * @VHOST_USER_REQUEST_REM_MEM_REG: remove one memory region
 * @VHOST_USER_REQUEST_SET_STATUS: set the virtio device status
 * @VHOST_USER_REQUEST_GET_STATUS: read the virtio device status
 * @VHOST_USER_REQUEST_GET_SHARED_OBJECT: get a shared object's dma-buf
 * @VHOST_USER_REQUEST_SET_DEVICE_STATE_FD: set up a device state transfer
 * @VHOST_USER_REQUEST_CHECK_DEVICE_STATE: check a device state transfer
 *
 * The requests a front-end sends to a back-end, numbered as on the wire.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_REQUEST_NONE = 0,
  VHOST_USER_REQUEST_GET_FEATURES = 1,
  VHOST_USER_REQUEST_SET_FEATURES = 2,
  VHOST_USER_REQUEST_SET_OWNER = 3,
  VHOST_USER_REQUEST_RESET_OWNER = 4,
  VHOST_USER_REQUEST_SET_MEM_TABLE = 5,
  VHOST_USER_REQUEST_SET_LOG_BASE = 6,
  VHOST_USER_REQUEST_SET_LOG_FD = 7,
  VHOST_USER_REQUEST_SET_VRING_NUM = 8,
  VHOST_USER_REQUEST_SET_VRING_ADDR = 9,
  VHOST_USER_REQUEST_SET_VRING_BASE = 10,
  VHOST_USER_REQUEST_GET_VRING_BASE = 11,
  VHOST_USER_REQUEST_SET_VRING_KICK = 12,
  VHOST_USER_REQUEST_SET_VRING_CALL = 13,
  VHOST_USER_REQUEST_SET_VRING_ERR = 14,
  VHOST_USER_REQUEST_GET_PROTOCOL_FEATURES = 15,
  VHOST_USER_REQUEST_SET_PROTOCOL_FEATURES = 16,
  VHOST_USER_REQUEST_GET_QUEUE_NUM = 17,
  VHOST_USER_REQUEST_SET_VRING_ENABLE = 18,
  VHOST_USER_REQUEST_SEND_RARP = 19,
  VHOST_USER_REQUEST_NET_SET_MTU = 20,
  VHOST_USER_REQUEST_SET_BACKEND_REQ_FD = 21,
  VHOST_USER_REQUEST_IOTLB_MSG = 22,
  VHOST_USER_REQUEST_SET_VRING_ENDIAN = 23,
  VHOST_USER_REQUEST_GET_CONFIG = 24,
  VHOST_USER_REQUEST_SET_CONFIG = 25,
  VHOST_USER_REQUEST_CREATE_CRYPTO_SESSION = 26,
  VHOST_USER_REQUEST_CLOSE_CRYPTO_SESSION = 27,
  VHOST_USER_REQUEST_POSTCOPY_ADVISE = 28,
  VHOST_USER_REQUEST_POSTCOPY_LISTEN = 29,
  VHOST_USER_REQUEST_POSTCOPY_END = 30,
  VHOST_USER_REQUEST_GET_INFLIGHT_FD = 31,
  VHOST_USER_REQUEST_SET_INFLIGHT_FD = 32,
  VHOST_USER_REQUEST_GPU_SET_SOCKET = 33,
  VHOST_USER_REQUEST_RESET_DEVICE = 34,
  VHOST_USER_REQUEST_VRING_KICK = 35,
  VHOST_USER_REQUEST_GET_MAX_MEM_SLOTS = 36,
  VHOST_USER_REQUEST_ADD_MEM_REG = 37,
  VHOST_USER_REQUEST_REM_MEM_REG = 38,
  VHOST_USER_REQUEST_SET_STATUS = 39,
  VHOST_USER_REQUEST_GET_STATUS = 40,
  VHOST_USER_REQUEST_GET_SHARED_OBJECT = 41,
  VHOST_USER_REQUEST_SET_DEVICE_STATE_FD = 42,
  VHOST_USER_REQUEST_CHECK_DEVICE_STATE = 43,
} VhostUserRequest;

/**
 * VhostUserBackendRequest:
 * @VHOST_USER_BACKEND_REQUEST_NONE: not a request
 * @VHOST_USER_BACKEND_REQUEST_IOTLB_MSG: report an IOTLB miss or access failure
 * @VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG: the device config space changed
 * @VHOST_USER_BACKEND_REQUEST_VRING_HOST_NOTIFIER_MSG: set a ring's host notifier
 * @VHOST_USER_BACKEND_REQUEST_VRING_CALL: in-band call
 * @VHOST_USER_BACKEND_REQUEST_VRING_ERR: in-band ring error
 * @VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_ADD: export a shared object
 * @VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_REMOVE: stop exporting a shared object
 * @VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP: look up a shared object
 *
 * The requests a back-end sends to the front-end on the back-end channel.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_BACKEND_REQUEST_NONE = 0,
  VHOST_USER_BACKEND_REQUEST_IOTLB_MSG = 1,
  VHOST_USER_BACKEND_REQUEST_CONFIG_CHANGE_MSG = 2,
  VHOST_USER_BACKEND_REQUEST_VRING_HOST_NOTIFIER_MSG = 3,
  VHOST_USER_BACKEND_REQUEST_VRING_CALL = 4,
  VHOST_USER_BACKEND_REQUEST_VRING_ERR = 5,
  VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_ADD = 6,
  VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_REMOVE = 7,
  VHOST_USER_BACKEND_REQUEST_SHARED_OBJECT_LOOKUP = 8,
} VhostUserBackendRequest;

/**
 * VhostUserProtocolFeature:
 * @VHOST_USER_PROTOCOL_FEATURE_MQ: multiple queues, GET_QUEUE_NUM
 * @VHOST_USER_PROTOCOL_FEATURE_LOG_SHMFD: the dirty log is shared memory passed by fd
 * @VHOST_USER_PROTOCOL_FEATURE_RARP: SEND_RARP
 * @VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK: NEED_REPLY on any request
 * @VHOST_USER_PROTOCOL_FEATURE_NET_MTU: NET_SET_MTU
 * @VHOST_USER_PROTOCOL_FEATURE_BACKEND_REQ: the back-end channel
 * @VHOST_USER_PROTOCOL_FEATURE_CROSS_ENDIAN: SET_VRING_ENDIAN
 * @VHOST_USER_PROTOCOL_FEATURE_CRYPTO_SESSION: crypto sessions
 * @VHOST_USER_PROTOCOL_FEATURE_PAGEFAULT: postcopy migration
 * @VHOST_USER_PROTOCOL_FEATURE_CONFIG: GET_CONFIG and SET_CONFIG
 * @VHOST_USER_PROTOCOL_FEATURE_BACKEND_SEND_FD: fds on the back-end channel
 * @VHOST_USER_PROTOCOL_FEATURE_HOST_NOTIFIER: host notifiers
 * @VHOST_USER_PROTOCOL_FEATURE_INFLIGHT_SHMFD: in-flight I/O tracking
 * @VHOST_USER_PROTOCOL_FEATURE_RESET_DEVICE: RESET_DEVICE
 * @VHOST_USER_PROTOCOL_FEATURE_INBAND_NOTIFICATIONS: in-band kicks and calls
 * @VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS: ADD_MEM_REG and REM_MEM_REG
 * @VHOST_USER_PROTOCOL_FEATURE_STATUS: SET_STATUS and GET_STATUS
 * @VHOST_USER_PROTOCOL_FEATURE_XEN_MMAP: Xen memory mappings
 * @VHOST_USER_PROTOCOL_FEATURE_SHARED_OBJECT: shared objects
 * @VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE: device state transfer
 *
 * Bit numbers of the vhost-user protocol features. A mask has bit `1 << n`
 * set for feature `n`.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_PROTOCOL_FEATURE_MQ = 0,
  VHOST_USER_PROTOCOL_FEATURE_LOG_SHMFD = 1,
  VHOST_USER_PROTOCOL_FEATURE_RARP = 2,
  VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK = 3,
  VHOST_USER_PROTOCOL_FEATURE_NET_MTU = 4,
  VHOST_USER_PROTOCOL_FEATURE_BACKEND_REQ = 5,
  VHOST_USER_PROTOCOL_FEATURE_CROSS_ENDIAN = 6,
  VHOST_USER_PROTOCOL_FEATURE_CRYPTO_SESSION = 7,
  VHOST_USER_PROTOCOL_FEATURE_PAGEFAULT = 8,
  VHOST_USER_PROTOCOL_FEATURE_CONFIG = 9,
  VHOST_USER_PROTOCOL_FEATURE_BACKEND_SEND_FD = 10,
  VHOST_USER_PROTOCOL_FEATURE_HOST_NOTIFIER = 11,
  VHOST_USER_PROTOCOL_FEATURE_INFLIGHT_SHMFD = 12,
  VHOST_USER_PROTOCOL_FEATURE_RESET_DEVICE = 13,
  VHOST_USER_PROTOCOL_FEATURE_INBAND_NOTIFICATIONS = 14,
  VHOST_USER_PROTOCOL_FEATURE_CONFIGURE_MEM_SLOTS = 15,
  VHOST_USER_PROTOCOL_FEATURE_STATUS = 16,
  VHOST_USER_PROTOCOL_FEATURE_XEN_MMAP = 17,
  VHOST_USER_PROTOCOL_FEATURE_SHARED_OBJECT = 18,
  VHOST_USER_PROTOCOL_FEATURE_DEVICE_STATE = 19,
} VhostUserProtocolFeature;

/**
 * VhostUserFeature:
 * @VHOST_USER_FEATURE_NOTIFY_ON_EMPTY: legacy notify-on-empty
 * @VHOST_USER_FEATURE_LOG_ALL: the back-end logs its writes for live migration
 * @VHOST_USER_FEATURE_ANY_LAYOUT: legacy any-layout
 * @VHOST_USER_FEATURE_RING_INDIRECT_DESC: indirect descriptor tables
 * @VHOST_USER_FEATURE_RING_EVENT_IDX: used_event and avail_event
 * @VHOST_USER_FEATURE_PROTOCOL_FEATURES: vhost-user protocol feature negotiation
 * @VHOST_USER_FEATURE_VERSION_1: virtio 1.0 or later
 * @VHOST_USER_FEATURE_ACCESS_PLATFORM: addresses go through an IOMMU (IOTLB)
 * @VHOST_USER_FEATURE_RING_PACKED: packed virtqueues
 * @VHOST_USER_FEATURE_IN_ORDER: buffers are used in the order they were made available
 * @VHOST_USER_FEATURE_ORDER_PLATFORM: platform memory ordering
 * @VHOST_USER_FEATURE_SR_IOV: single root I/O virtualization
 * @VHOST_USER_FEATURE_NOTIFICATION_DATA: extra data in driver notifications
 * @VHOST_USER_FEATURE_RING_RESET: per-queue reset
 *
 * Bit numbers of the device-independent (transport) feature bits that
 * %VHOST_USER_REQUEST_GET_FEATURES and %VHOST_USER_REQUEST_SET_FEATURES
 * carry. Device types define bits 0 to 23 themselves.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_FEATURE_NOTIFY_ON_EMPTY = 24,
  VHOST_USER_FEATURE_LOG_ALL = 26,
  VHOST_USER_FEATURE_ANY_LAYOUT = 27,
  VHOST_USER_FEATURE_RING_INDIRECT_DESC = 28,
  VHOST_USER_FEATURE_RING_EVENT_IDX = 29,
  VHOST_USER_FEATURE_PROTOCOL_FEATURES = 30,
  VHOST_USER_FEATURE_VERSION_1 = 32,
  VHOST_USER_FEATURE_ACCESS_PLATFORM = 33,
  VHOST_USER_FEATURE_RING_PACKED = 34,
  VHOST_USER_FEATURE_IN_ORDER = 35,
  VHOST_USER_FEATURE_ORDER_PLATFORM = 36,
  VHOST_USER_FEATURE_SR_IOV = 37,
  VHOST_USER_FEATURE_NOTIFICATION_DATA = 38,
  VHOST_USER_FEATURE_RING_RESET = 40,
} VhostUserFeature;

/**
 * VhostUserDeviceStatus:
 * @VHOST_USER_DEVICE_STATUS_RESET: no bit set: the driver reset the device
 * @VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE: the guest found the device
 * @VHOST_USER_DEVICE_STATUS_DRIVER: the guest has a driver for it
 * @VHOST_USER_DEVICE_STATUS_DRIVER_OK: the driver is ready
 * @VHOST_USER_DEVICE_STATUS_FEATURES_OK: feature negotiation is complete
 * @VHOST_USER_DEVICE_STATUS_DEVICE_NEEDS_RESET: the device hit an error it cannot recover from
 * @VHOST_USER_DEVICE_STATUS_FAILED: the driver gave up on the device
 *
 * The virtio device status bits, as %VHOST_USER_REQUEST_SET_STATUS carries them.
 *
 * Since: 1.0
 */
typedef enum /*< flags >*/
{
  VHOST_USER_DEVICE_STATUS_RESET = 0,
  VHOST_USER_DEVICE_STATUS_ACKNOWLEDGE = 1 << 0,
  VHOST_USER_DEVICE_STATUS_DRIVER = 1 << 1,
  VHOST_USER_DEVICE_STATUS_DRIVER_OK = 1 << 2,
  VHOST_USER_DEVICE_STATUS_FEATURES_OK = 1 << 3,
  VHOST_USER_DEVICE_STATUS_DEVICE_NEEDS_RESET = 1 << 6,
  VHOST_USER_DEVICE_STATUS_FAILED = 1 << 7,
} VhostUserDeviceStatus;

/**
 * VhostUserConfigFlags:
 * @VHOST_USER_CONFIG_FLAGS_WRITABLE: the driver wrote writable fields
 * @VHOST_USER_CONFIG_FLAGS_MIGRATION: live migration restores the config space
 *
 * What a %VHOST_USER_REQUEST_SET_CONFIG is for. Read-only fields may only be
 * written with %VHOST_USER_CONFIG_FLAGS_MIGRATION.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_CONFIG_FLAGS_WRITABLE = 0,
  VHOST_USER_CONFIG_FLAGS_MIGRATION = 1,
} VhostUserConfigFlags;

/**
 * VhostUserTransferDirection:
 * @VHOST_USER_TRANSFER_DIRECTION_SAVE: the back-end writes its state (migration source)
 * @VHOST_USER_TRANSFER_DIRECTION_LOAD: the back-end reads its state (migration destination)
 *
 * The direction of a device state transfer.
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_TRANSFER_DIRECTION_SAVE = 0,
  VHOST_USER_TRANSFER_DIRECTION_LOAD = 1,
} VhostUserTransferDirection;

/**
 * VhostUserQueueMode:
 * @VHOST_USER_QUEUE_MODE_EVENT: the queue waits for the driver's kicks; one
 *   [signal@VhostUser.Device::queue-kicked] per kick
 * @VHOST_USER_QUEUE_MODE_ADAPTIVE: as @VHOST_USER_QUEUE_MODE_EVENT, but after
 *   each batch of work the queue keeps polling the ring, with the driver's
 *   kicks turned off, for [property@VhostUser.Virtqueue:poll-ns]; then it
 *   turns them on again and waits
 * @VHOST_USER_QUEUE_MODE_POLL: the queue polls the ring all the time it is
 *   started, with the driver's kicks turned off: a CPU spins on it. Meant
 *   for a queue on a worker thread's own main context
 *
 * How a [class@VhostUser.Virtqueue] learns that the driver made buffers
 * available (see [property@VhostUser.Virtqueue:mode]).
 *
 * Since: 1.0
 */
typedef enum
{
  VHOST_USER_QUEUE_MODE_EVENT = 0,
  VHOST_USER_QUEUE_MODE_ADAPTIVE = 1,
  VHOST_USER_QUEUE_MODE_POLL = 2,
} VhostUserQueueMode;

G_END_DECLS
