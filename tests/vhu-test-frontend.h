/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A vhost-user front-end for the tests: it speaks the protocol from the
 * driver's side over a socket, with guest RAM in memfds and real eventfds, and
 * sends any message, well-formed or not. Everything runs on the calling
 * thread: while it waits for a reply it iterates the device's GMainContext.
 */

#pragma once

#include <glib.h>
#include <libvhostuser-glib/libvhostuser-glib.h>

#include "vhu-message.h"
#include "vhu-test-util.h"

G_BEGIN_DECLS

#define VHU_TEST_TIMEOUT_MS 5000

typedef struct _VhuTestFrontend VhuTestFrontend;

typedef struct
{
  int fd;          /* memfd */
  guint8 *host;    /* the test's own mapping */
  guint64 size;
  guint64 gpa;     /* guest-physical base */
  guint64 uva;     /* front-end virtual base, as QEMU would send it */
} VhuTestGuestRam;

/* Guest RAM */
VhuTestGuestRam *vhu_test_guest_ram_new (guint64 size, guint64 gpa, guint64 uva);
void vhu_test_guest_ram_free (VhuTestGuestRam *ram);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuTestGuestRam, vhu_test_guest_ram_free)
VhuMemRegionDesc vhu_test_guest_ram_desc (const VhuTestGuestRam *ram);

/* Connection: a socketpair whose other end is given to the device with
 * vhost_user_device_take_connection(). vhu_test_frontend_new() takes @fd
 * (made non-blocking) and iterates @context while it waits (NULL: the global
 * default context); a context another thread runs is simply not dispatched. */
VhuTestFrontend *vhu_test_frontend_new_for_device (VhostUserDevice *device);
VhuTestFrontend *vhu_test_frontend_new (int fd, GMainContext *context);
void vhu_test_frontend_free (VhuTestFrontend *fe);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuTestFrontend, vhu_test_frontend_free)
int vhu_test_frontend_get_fd (VhuTestFrontend *fe);

/* Sending. The fds are only borrowed (dup'ed into the message by the kernel).
 * vhu_test_frontend_send() sends @flags as given, except that version bits
 * left at 0 are filled in with VHU_VERSION (use send_raw for a bad header).
 * SET_FEATURES and SET_PROTOCOL_FEATURES sent through it are remembered (see
 * vhu_test_frontend_get_acked_features()). Both return FALSE when the peer
 * has gone (no SIGPIPE). */
gboolean vhu_test_frontend_send_raw (VhuTestFrontend *fe,
                                     const void *bytes,
                                     gsize len,
                                     const int *fds,
                                     guint n_fds);
gboolean vhu_test_frontend_send (VhuTestFrontend *fe,
                                 guint32 request,
                                 guint32 flags,
                                 const void *payload,
                                 guint32 size,
                                 const int *fds,
                                 guint n_fds);

/* Receiving: iterate the context until a whole reply has arrived (TRUE) or
 * the timeout passes / the peer closes (FALSE). @reply is initialized here;
 * received fds are owned by it (vhu_message_clear() closes them). A header
 * announcing more than VHU_MAX_PAYLOAD bytes, or more than VHU_MAX_FDS fds,
 * fails. */
gboolean vhu_test_frontend_recv (VhuTestFrontend *fe, VhuMessage *reply, guint timeout_ms);

/* Like vhu_test_frontend_recv(), on the back-end channel (the socket whose
 * other end went with SET_BACKEND_REQ_FD), and the REPLY_ACK answer to a
 * back-end request that asked for one. */
gboolean vhu_test_frontend_recv_backend (VhuTestFrontend *fe,
                                         VhuMessage *request,
                                         guint timeout_ms);
void vhu_test_frontend_reply_backend (VhuTestFrontend *fe,
                                      const VhuMessage *request,
                                      guint64 value);

/* TRUE once the device has closed its end (EOF), iterating the context.
 * Bytes and fds that arrive first are discarded. */
gboolean vhu_test_frontend_wait_closed (VhuTestFrontend *fe, guint timeout_ms);

/* TRUE if no byte arrives within @timeout_ms (iterating the context). An EOF
 * is no byte: it returns TRUE at once, and vhu_test_frontend_peer_closed()
 * tells the two apart. */
gboolean vhu_test_frontend_expect_silence (VhuTestFrontend *fe, guint timeout_ms);
/* TRUE once an EOF (or a connection reset) has been seen on the socket. */
gboolean vhu_test_frontend_peer_closed (VhuTestFrontend *fe);

/* Let the device process everything sent so far: iterates the context until
 * it has nothing more to dispatch. */
void vhu_test_frontend_flush (VhuTestFrontend *fe);

/* Conveniences that g_assert on failure (for tests, not for library code). */
guint64 vhu_test_frontend_get_u64 (VhuTestFrontend *fe, guint32 request);
void vhu_test_frontend_set_u64 (VhuTestFrontend *fe, guint32 request, guint64 value);
/* Sends with NEED_REPLY and returns the REPLY_ACK status (0 = success). */
guint64 vhu_test_frontend_call_ack (VhuTestFrontend *fe,
                                    guint32 request,
                                    const void *payload,
                                    guint32 size,
                                    const int *fds,
                                    guint n_fds);
/* Sends with NEED_REPLY and fails the test unless the device acks it (0). */
void vhu_test_frontend_call_ok (VhuTestFrontend *fe,
                                guint32 request,
                                const void *payload,
                                guint32 size,
                                const int *fds,
                                guint n_fds);
void vhu_test_frontend_vring_state (VhuTestFrontend *fe, guint32 request, guint32 index, guint32 num);
/* SET_VRING_NUM/BASE/ENABLE...: the state sent with NEED_REPLY, acked. */
void vhu_test_frontend_vring_state_ok (VhuTestFrontend *fe,
                                       guint32 request,
                                       guint32 index,
                                       guint32 num);
/* SET_VRING_KICK/CALL/ERR with NEED_REPLY: @fd (borrowed), or NOFD when
 * @fd is -1. _ack returns the REPLY_ACK status; _ok fails unless it is 0. */
guint64 vhu_test_frontend_vring_fd_ack (VhuTestFrontend *fe, guint32 request, guint32 index, int fd);
void vhu_test_frontend_vring_fd_ok (VhuTestFrontend *fe, guint32 request, guint32 index, int fd);
/* Feature negotiation as QEMU starts it: GET_FEATURES and
 * GET_PROTOCOL_FEATURES (each must offer at least what is then acked),
 * SET_PROTOCOL_FEATURES @protocol_features, then SET_OWNER and SET_FEATURES
 * @features, both acked (so @protocol_features must hold REPLY_ACK). */
void vhu_test_frontend_negotiate (VhuTestFrontend *fe, guint64 features, guint64 protocol_features);
guint32 vhu_test_frontend_get_vring_base (VhuTestFrontend *fe, guint32 index);
/* SET_VRING_KICK/CALL/ERR with a new eventfd (returned; caller closes) or with NOFD. */
int vhu_test_frontend_set_vring_fd (VhuTestFrontend *fe, guint32 request, guint32 index, gboolean with_fd);
guint64 vhu_test_frontend_set_mem_table (VhuTestFrontend *fe, VhuTestGuestRam **rams, guint n);
guint64 vhu_test_frontend_add_mem_reg (VhuTestFrontend *fe, VhuTestGuestRam *ram);

/* The message sequences real front-ends send (../shared/reference/traces/),
 * with the replies checked. @ram is the guest RAM for the start phase (rings
 * laid out as VHU_TEST_RING_OFFSET says). qemu_blk_start acks the SeaBIOS
 * driver features (see qemu_blk_start_full for others); memory goes with
 * ADD_MEM_REG when CONFIGURE_MEM_SLOTS was acked, else SET_MEM_TABLE, once
 * per connection as QEMU does. The stop helpers check GET_VRING_BASE (see
 * vhu_test_frontend_expect_vring_base()). The kick, call and error eventfds
 * they create are kept by @fe. virtio_user_* set up two rings: the device
 * needs two queues. */
void vhu_test_frontend_qemu_blk_realize (VhuTestFrontend *fe);
void vhu_test_frontend_qemu_blk_start (VhuTestFrontend *fe, VhuTestGuestRam *ram, guint n_queues);
void vhu_test_frontend_qemu_blk_stop (VhuTestFrontend *fe, guint n_queues);
void vhu_test_frontend_virtio_user_probe (VhuTestFrontend *fe);
void vhu_test_frontend_virtio_user_start (VhuTestFrontend *fe, VhuTestGuestRam *ram);
void vhu_test_frontend_virtio_user_stop (VhuTestFrontend *fe);

/* What QEMU 7.2 acks in SET_PROTOCOL_FEATURES: every offered bit from 0 to
 * 15 (the trace acks all that was offered, PAGEFAULT included; bit 16,
 * STATUS, is left out: the trace has no SET_STATUS or GET_STATUS from QEMU).
 * What DPDK 22.11 virtio-user acks at most. */
#define VHU_TEST_QEMU_PROTOCOL_FEATURES 0xffffull
#define VHU_TEST_VIRTIO_USER_PROTOCOL_FEATURES                                                     \
  ((1ull << VHOST_USER_PROTOCOL_FEATURE_MQ) | (1ull << VHOST_USER_PROTOCOL_FEATURE_REPLY_ACK)      \
   | (1ull << VHOST_USER_PROTOCOL_FEATURE_STATUS))

/* The virtio-blk driver features of the two starts in qemu-blk-trace.txt
 * (SeaBIOS: 0x140000046, Linux: 0x170006e46), PROTOCOL_FEATURES included
 * as QEMU adds it. SET_FEATURES sends them masked by what was offered. */
#define VHU_TEST_BLK_FEATURES_SEABIOS 0x140000046ull
#define VHU_TEST_BLK_FEATURES_LINUX 0x170006e46ull
/* virtio-user's MRG_RXBUF | INDIRECT_DESC | PROTOCOL_FEATURES | VERSION_1 | IN_ORDER */
#define VHU_TEST_VIRTIO_USER_FEATURES 0x950008000ull

/* Queue sizes the two front-ends use. */
#define VHU_TEST_QEMU_QUEUE_SIZE 128u
#define VHU_TEST_VIRTIO_USER_QUEUE_SIZE 256u

/* The rings the start helpers lay out in guest RAM: queue i at
 * VHU_TEST_RING_OFFSET + i * VHU_TEST_RING_STRIDE from the start of the RAM,
 * descriptor table first, then the available ring at +0x1000 and the used
 * ring at +0x2000. The RAM must be large enough for every queue. */
#define VHU_TEST_RING_OFFSET 0x10000u
#define VHU_TEST_RING_STRIDE 0x4000u
#define VHU_TEST_MAX_QUEUES 256u

typedef struct
{
  guint num;         /* 0 when the helpers did not set the ring up */
  guint64 desc_uva;  /* the addresses sent in SET_VRING_ADDR */
  guint64 avail_uva;
  guint64 used_uva;
  guint8 *desc;      /* the same, in the test's own mapping */
  guint8 *avail;
  guint8 *used;
  guint16 base;      /* sent in SET_VRING_BASE */
  guint16 used_idx_at_start; /* used->idx in guest memory at SET_VRING_BASE */
} VhuTestRing;

/* Like qemu_blk_start, with the driver's @features (masked by what was
 * offered; PROTOCOL_FEATURES added when offered) and one SET_VRING_BASE per
 * queue (@bases may be NULL for zeros). The rings are cleared first; with a
 * non-zero base, avail->idx and used->idx are set to it (nothing pending, as
 * after a reconnect). */
void vhu_test_frontend_qemu_blk_start_full (VhuTestFrontend *fe,
                                            VhuTestGuestRam *ram,
                                            guint n_queues,
                                            guint64 features,
                                            const guint16 *bases);
/* One ring by hand: lays ring @index out in @ram (as the start helpers do)
 * and sends SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR and SET_VRING_KICK
 * with a new eventfd (kept, see vhu_test_frontend_get_kick_fd()); and
 * GET_VRING_BASE, checked as the stop helpers check it, returning the value. */
void vhu_test_frontend_start_ring (VhuTestFrontend *fe,
                                   VhuTestGuestRam *ram,
                                   guint index,
                                   guint num,
                                   guint16 base);
guint32 vhu_test_frontend_stop_ring (VhuTestFrontend *fe, guint index);

/* The stop helpers check each GET_VRING_BASE against base +
 * (used->idx - used_idx_at_start), read from guest memory, unless a test
 * said what to expect for that queue (until its next start). */
void vhu_test_frontend_expect_vring_base (VhuTestFrontend *fe, guint index, guint16 base);
/* The value the last GET_VRING_BASE of a stop helper returned for @index. */
guint32 vhu_test_frontend_get_last_vring_base (VhuTestFrontend *fe, guint index);
/* QEMU sends its memory table once per connection (ADD_MEM_REG is not
 * repeated at the second start in the trace); this makes the next start
 * helper send it again. */
void vhu_test_frontend_forget_memory (VhuTestFrontend *fe);

const VhuTestRing *vhu_test_frontend_get_ring (VhuTestFrontend *fe, guint index);
/* The fds the helpers keep (-1 if none): the back-end channel, and per queue
 * the kick, call and error eventfds. Owned by @fe. */
int vhu_test_frontend_get_backend_fd (VhuTestFrontend *fe);
int vhu_test_frontend_get_kick_fd (VhuTestFrontend *fe, guint index);
int vhu_test_frontend_get_call_fd (VhuTestFrontend *fe, guint index);
int vhu_test_frontend_get_err_fd (VhuTestFrontend *fe, guint index);
/* Writes 1 to the kick eventfd of @index (asserts there is one). */
void vhu_test_frontend_kick (VhuTestFrontend *fe, guint index);
/* Reads the call eventfd of @index: the counter, 0 if it was not signalled. */
guint64 vhu_test_frontend_read_call (VhuTestFrontend *fe, guint index);

/* What the device offered (last GET_FEATURES / GET_PROTOCOL_FEATURES reply
 * seen by the conveniences) and what was acked (last SET_* sent). */
guint64 vhu_test_frontend_get_offered_features (VhuTestFrontend *fe);
guint64 vhu_test_frontend_get_offered_protocol_features (VhuTestFrontend *fe);
guint64 vhu_test_frontend_get_acked_features (VhuTestFrontend *fe);
guint64 vhu_test_frontend_get_acked_protocol_features (VhuTestFrontend *fe);
/* The number of queues GET_QUEUE_NUM returned (0 if not sent). */
guint vhu_test_frontend_get_queue_num (VhuTestFrontend *fe);

/* GET_CONFIG and SET_CONFIG. get_config returns the reply's payload size
 * (VHU_CONFIG_HEADER_SIZE + @size on success, 0 on failure) and copies the
 * bytes to @out. set_config sends with NEED_REPLY when REPLY_ACK was acked
 * and returns the ack (0 otherwise, after letting the device process it). */
guint32 vhu_test_frontend_get_config (VhuTestFrontend *fe,
                                      guint32 offset,
                                      guint32 size,
                                      guint8 *out);
guint64 vhu_test_frontend_set_config (VhuTestFrontend *fe,
                                      guint32 offset,
                                      const guint8 *data,
                                      guint32 size,
                                      guint32 flags);

G_END_DECLS
