/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Copyright 2026 The libvhostuser-glib authors
 *
 * A virtio driver for the tests: one split ring living in guest RAM
 * (VhuTestGuestRam), as a guest kernel would drive it. It lays the ring out,
 * adds descriptor chains (direct or through an indirect table) whose buffers
 * it places in a data area of guest RAM, publishes the available index in
 * batches, takes used entries back, and decides about kicks and interrupts
 * (EVENT_IDX, NO_INTERRUPT) as the spec says. The rings are also reachable
 * raw, for the tests that corrupt them.
 *
 * Everything is in guest-physical addresses; the RAMs the driver knows (the
 * one holding the ring, and any added with vhu_test_driver_add_ram()) are
 * how it reaches them. A buffer may cross from one RAM into the next when
 * their guest-physical ranges are adjacent.
 */

#pragma once

#include <glib.h>

#include "vhu-message.h"
#include "vhu-split-ring.h"
#include "vhu-test-frontend.h"

G_BEGIN_DECLS

/* What the driver writes into device-writable buffers before offering them,
 * so that a test sees which bytes the device wrote. */
#define VHU_TEST_DRIVER_CANARY 0xeeu

/* A buffer's address: chosen by the driver in its data area. */
#define VHU_TEST_DRIVER_AUTO G_MAXUINT64

typedef struct _VhuTestDriver VhuTestDriver;

/* One buffer of a chain. Device-readable buffers are filled with @data
 * (zeros when NULL); device-writable ones with VHU_TEST_DRIVER_CANARY. */
typedef struct
{
  guint32 len;
  gboolean writable;
  const void *data;
  guint64 gpa; /* VHU_TEST_DRIVER_AUTO, or where the buffer goes */
} VhuTestBuffer;

#define VHU_TEST_OUT(data_, len_)                                                                  \
  ((VhuTestBuffer) {                                                                               \
    .len = (len_), .writable = FALSE, .data = (data_), .gpa = VHU_TEST_DRIVER_AUTO })
#define VHU_TEST_IN(len_)                                                                          \
  ((VhuTestBuffer) { .len = (len_), .writable = TRUE, .data = NULL, .gpa = VHU_TEST_DRIVER_AUTO })
#define VHU_TEST_OUT_AT(gpa_, data_, len_)                                                         \
  ((VhuTestBuffer) { .len = (len_), .writable = FALSE, .data = (data_), .gpa = (gpa_) })
#define VHU_TEST_IN_AT(gpa_, len_)                                                                 \
  ((VhuTestBuffer) { .len = (len_), .writable = TRUE, .data = NULL, .gpa = (gpa_) })

/* Bytes the ring of @num descriptors takes from its offset: the descriptor
 * table, the available ring right after it, the used ring on the next
 * 4096-byte boundary (event index fields included). */
guint64 vhu_test_driver_ring_size (guint num);

/* A ring of @num descriptors (a power of two) at @ring_offset in @ram
 * (16-byte aligned), cleared. The data area is what follows the ring, page
 * aligned, up to the end of @ram. @ram must outlive the driver. */
VhuTestDriver *vhu_test_driver_new (VhuTestGuestRam *ram, guint64 ring_offset, guint num);
void vhu_test_driver_free (VhuTestDriver *drv);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VhuTestDriver, vhu_test_driver_free)

/* Another RAM the driver may place buffers in (guest-physical ranges must
 * not overlap). */
void vhu_test_driver_add_ram (VhuTestDriver *drv, VhuTestGuestRam *ram);
/* Where automatically placed buffers and indirect tables go: [@gpa, @gpa +
 * @size), split into one slot per descriptor; may span adjacent RAMs. Only
 * while no chain is in flight. */
void vhu_test_driver_set_data_area (VhuTestDriver *drv, guint64 gpa, guint64 size);
/* The most bytes (buffers plus an indirect table) one chain can place in
 * the data area. */
guint64 vhu_test_driver_get_slot_size (VhuTestDriver *drv);

/* Sets the available and used indices (and the driver's own) to @idx, as
 * after a reconnection with SET_VRING_BASE @idx. Only while idle. */
void vhu_test_driver_set_base (VhuTestDriver *drv, guint16 idx);

guint vhu_test_driver_get_num (VhuTestDriver *drv);
/* The addresses for SET_VRING_ADDR (front-end virtual addresses) with
 * @index, @flags and log_guest_addr the used ring's guest-physical address. */
VhuVringAddr vhu_test_driver_get_vring_addr (VhuTestDriver *drv, guint index, guint32 flags);
guint64 vhu_test_driver_get_desc_gpa (VhuTestDriver *drv);
guint64 vhu_test_driver_get_avail_gpa (VhuTestDriver *drv);
guint64 vhu_test_driver_get_used_gpa (VhuTestDriver *drv);

/* Starts the driver's ring as ring @index of the device behind @fe, every
 * message with NEED_REPLY: SET_VRING_NUM, SET_VRING_BASE @base,
 * SET_VRING_ADDR (@addr_flags), SET_VRING_CALL and SET_VRING_ERR with new
 * eventfds stored in *@call_fd and *@err_fd (only where these are -1: a
 * restart keeps the ones given before), SET_VRING_ENABLE 1, and
 * SET_VRING_KICK with a new eventfd stored in *@kick_fd (the old one
 * closed). The fds are the caller's. Every ack but the last must be 0; the
 * SET_VRING_KICK one, which starts the ring, is returned. */
guint64 vhu_test_driver_start_ring (VhuTestDriver *drv,
                                    VhuTestFrontend *fe,
                                    guint index,
                                    guint16 base,
                                    guint32 addr_flags,
                                    int *kick_fd,
                                    int *call_fd,
                                    int *err_fd);

/* Adds a chain of @n buffers: @n descriptors, or with @indirect one
 * descriptor pointing at a table of @n. Written but not published (see
 * vhu_test_driver_publish()). Returns the head, or -1 when there are not
 * enough free descriptors. _full places the indirect table at @table_gpa
 * (VHU_TEST_DRIVER_AUTO: in the head's slot). */
gint vhu_test_driver_add (VhuTestDriver *drv,
                          const VhuTestBuffer *bufs,
                          guint n,
                          gboolean indirect);
gint vhu_test_driver_add_full (VhuTestDriver *drv,
                               const VhuTestBuffer *bufs,
                               guint n,
                               gboolean indirect,
                               guint64 table_gpa);
guint vhu_test_driver_get_n_free (VhuTestDriver *drv);
/* Chains added and not yet returned through the used ring. */
guint vhu_test_driver_get_in_flight (VhuTestDriver *drv);
gboolean vhu_test_driver_is_in_flight (VhuTestDriver *drv, guint head);

/* Makes what was added since the last publish available (one store of the
 * available index). Returns whether the device asked to be kicked for it:
 * with EVENT_IDX when the index crossed avail_event, otherwise unless the
 * used ring has NO_NOTIFY. */
gboolean vhu_test_driver_publish (VhuTestDriver *drv);
/* Added and not yet published. */
guint vhu_test_driver_get_pending (VhuTestDriver *drv);

/* Takes the next used entry, if the device put one there: the head and the
 * length the device reports. A head the driver had in flight is freed (its
 * buffers stay readable until they are reused: the freed descriptors go to
 * the back of the free list). */
gboolean vhu_test_driver_get_used (VhuTestDriver *drv, guint *head, guint32 *len);
/* What the device wrote in the writable buffers of @head's chain (the
 * latest chain with that head): up to @len bytes from the first writable
 * buffer on. Returns the number copied. */
gsize vhu_test_driver_read_in (VhuTestDriver *drv, guint head, guint8 *buf, gsize len);
guint64 vhu_test_driver_get_in_size (VhuTestDriver *drv, guint head);
guint64 vhu_test_driver_get_out_size (VhuTestDriver *drv, guint head);
/* Calls @func for every writable buffer of @head's chain. */
typedef void (*VhuTestBufferFunc) (guint64 gpa, guint32 len, gpointer user_data);
void vhu_test_driver_foreach_in (VhuTestDriver *drv,
                                 guint head,
                                 VhuTestBufferFunc func,
                                 gpointer user_data);

/* Notifications. EVENT_IDX on: the driver uses avail_event to decide about
 * kicks, and the test sets used_event. */
void vhu_test_driver_set_event_idx (VhuTestDriver *drv, gboolean event_idx);
void vhu_test_driver_set_used_event (VhuTestDriver *drv, guint16 used_event);
void vhu_test_driver_set_no_interrupt (VhuTestDriver *drv, gboolean no_interrupt);
guint16 vhu_test_driver_get_avail_event (VhuTestDriver *drv);
guint16 vhu_test_driver_get_used_flags (VhuTestDriver *drv);
/* used->idx as the device last wrote it, and the driver's own indices. */
guint16 vhu_test_driver_get_used_idx (VhuTestDriver *drv);
guint16 vhu_test_driver_get_last_used (VhuTestDriver *drv);
guint16 vhu_test_driver_get_avail_idx (VhuTestDriver *drv);

/* Raw access, for corrupting the ring. put_avail appends @head to the
 * available ring without any bookkeeping (published with the next publish);
 * set_avail_idx stores the available index as given. */
VhuVringDesc *vhu_test_driver_get_desc (VhuTestDriver *drv);
VhuVringAvail *vhu_test_driver_get_avail (VhuTestDriver *drv);
VhuVringUsed *vhu_test_driver_get_used_ring (VhuTestDriver *drv);
void vhu_test_driver_put_avail (VhuTestDriver *drv, guint16 head);
void vhu_test_driver_set_avail_idx (VhuTestDriver *drv, guint16 idx);

/* Guest memory through the driver's RAMs (asserting every byte is in one). */
gpointer vhu_test_driver_host (VhuTestDriver *drv, guint64 gpa, guint64 len);
void vhu_test_driver_write (VhuTestDriver *drv, guint64 gpa, const void *data, gsize len);
void vhu_test_driver_read (VhuTestDriver *drv, guint64 gpa, void *data, gsize len);

G_END_DECLS
