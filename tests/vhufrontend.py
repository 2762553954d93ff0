# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# A vhost-user front-end and virtio driver in pure Python, for the Python
# tests and the Python benchmark: it speaks the protocol from the VMM's side
# over a unix socket (socket.send_fds / recv_fds), keeps guest RAM in a memfd
# (os.memfd_create) and lays split rings out in it, with eventfds
# (os.eventfd) for kicks and calls.
#
# The device may run in this process (Frontend.for_device(): the device takes
# one end of a socketpair, and every wait iterates the GLib main context the
# device runs on) or in another one (Frontend.connect(path)).

import mmap
import os
import select
import socket
import struct
import time

# Requests (vhost-user.rst numbering).
GET_FEATURES = 1
SET_FEATURES = 2
SET_OWNER = 3
SET_MEM_TABLE = 5
SET_VRING_NUM = 8
SET_VRING_ADDR = 9
SET_VRING_BASE = 10
GET_VRING_BASE = 11
SET_VRING_KICK = 12
SET_VRING_CALL = 13
SET_VRING_ERR = 14
GET_PROTOCOL_FEATURES = 15
SET_PROTOCOL_FEATURES = 16
GET_QUEUE_NUM = 17
SET_VRING_ENABLE = 18
GET_CONFIG = 24
SET_CONFIG = 25
ADD_MEM_REG = 37
REM_MEM_REG = 38

FLAG_VERSION = 0x1
FLAG_REPLY = 0x4
FLAG_NEED_REPLY = 0x8

# Feature bits.
F_RING_INDIRECT_DESC = 28
F_RING_EVENT_IDX = 29
F_PROTOCOL_FEATURES = 30
F_VERSION_1 = 32

PF_MQ = 0
PF_REPLY_ACK = 3
PF_CONFIG = 9
PF_CONFIGURE_MEM_SLOTS = 15

VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_AVAIL_F_NO_INTERRUPT = 1

HEADER = struct.Struct('<III')
REGION = struct.Struct('<QQQQ')

# Where the rings go in guest RAM: queue i at RING_OFFSET + i * RING_STRIDE,
# descriptors first, the available ring at +0x1000 and the used ring at
# +0x2000 (room for 256 descriptors). Buffers are allocated from DATA_OFFSET.
RING_OFFSET = 0x10000
RING_STRIDE = 0x4000
DATA_OFFSET = 0x100000
MAX_RING = 256

TIMEOUT = 10.0


def bit(n):
    return 1 << n


class FrontendError(Exception):
    pass


class GuestRam:
    """Guest RAM: a memfd mapped here, with a bump allocator for buffers."""

    def __init__(self, size, gpa=0, uva=0x7f0000000000, name='vhu-guest-ram'):
        self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size)
        self.view = memoryview(self.map)
        self.size = size
        self.gpa = gpa
        self.uva = uva
        self.next_free = DATA_OFFSET

    def close(self):
        self.view.release()
        self.map.close()
        os.close(self.fd)

    def region(self):
        """(guest_addr, size, user_addr, mmap_offset)"""
        return REGION.pack(self.gpa, self.size, self.uva, 0)

    def alloc(self, length, align=64):
        start = (self.next_free + align - 1) & ~(align - 1)
        if start + length > self.size:
            raise FrontendError('guest RAM exhausted')
        self.next_free = start + length
        return self.gpa + start

    def offset(self, gpa):
        return gpa - self.gpa

    def read(self, gpa, length):
        off = self.offset(gpa)
        return bytes(self.view[off:off + length])

    def write(self, gpa, data):
        off = self.offset(gpa)
        self.view[off:off + len(data)] = data


class Vring:
    """The driver's side of one split ring laid out in guest RAM."""

    def __init__(self, ram, index, num, event_idx=False):
        if num > MAX_RING or num & (num - 1):
            raise ValueError('ring size must be a power of two <= %d' % MAX_RING)
        self.ram = ram
        self.index = index
        self.num = num
        self.event_idx = event_idx
        base = RING_OFFSET + index * RING_STRIDE
        self.desc_off = base
        self.avail_off = base + 0x1000
        self.used_off = base + 0x2000
        ram.view[base:base + RING_STRIDE] = bytes(RING_STRIDE)
        self.free = list(range(num))
        self.avail_idx = 0
        self.last_used = 0
        self.chains = {}  # head -> the descriptors of the chain
        self.kick_fd = -1
        self.call_fd = -1

    # Addresses as the front-end sends them (user addresses).
    def addresses(self):
        uva = self.ram.uva
        return (uva + self.desc_off, uva + self.used_off, uva + self.avail_off)

    def add(self, buffers):
        """Makes one chain available: @buffers is a list of (gpa, length,
        device_writable). Returns the head descriptor's index."""
        if len(buffers) == 0 or len(buffers) > len(self.free):
            raise FrontendError('no room in the ring for %d buffers' % len(buffers))
        ids = [self.free.pop() for _ in buffers]
        view = self.ram.view
        for i, (gpa, length, writable) in enumerate(buffers):
            flags = VRING_DESC_F_WRITE if writable else 0
            nxt = 0
            if i + 1 < len(ids):
                flags |= VRING_DESC_F_NEXT
                nxt = ids[i + 1]
            struct.pack_into('<QIHH', view, self.desc_off + 16 * ids[i], gpa, length, flags, nxt)
        head = ids[0]
        self.chains[head] = ids
        struct.pack_into('<H', view, self.avail_off + 4 + 2 * (self.avail_idx % self.num), head)
        self.avail_idx = (self.avail_idx + 1) & 0xffff
        return head

    def publish(self):
        """Makes every chain added so far visible to the device."""
        if self.event_idx:
            # Interrupt once everything published so far is used.
            struct.pack_into('<H', self.ram.view, self.avail_off + 4 + 2 * self.num,
                             (self.avail_idx - 1) & 0xffff)
        struct.pack_into('<H', self.ram.view, self.avail_off + 2, self.avail_idx)

    def set_no_interrupt(self, on):
        struct.pack_into('<H', self.ram.view, self.avail_off,
                         VRING_AVAIL_F_NO_INTERRUPT if on else 0)

    def kick(self):
        os.eventfd_write(self.kick_fd, 1)

    def used_idx(self):
        return struct.unpack_from('<H', self.ram.view, self.used_off + 2)[0]

    def pending(self):
        return (self.avail_idx - self.last_used) & 0xffff

    def take_used(self):
        """The chains the device returned since the last call: a list of
        (head, written length)."""
        done = []
        used = self.used_idx()
        while self.last_used != used:
            slot = self.used_off + 4 + 8 * (self.last_used % self.num)
            head, length = struct.unpack_from('<II', self.ram.view, slot)
            ids = self.chains.pop(head, None)
            if ids is None:
                raise FrontendError('the device returned descriptor %d, which was not in flight'
                                    % head)
            self.free.extend(ids)
            done.append((head, length))
            self.last_used = (self.last_used + 1) & 0xffff
        return done


class Frontend:
    """One vhost-user connection, from the front-end's side."""

    def __init__(self, sock, context=None):
        self.sock = sock
        self.context = context
        self.offered_features = 0
        self.offered_protocol_features = 0
        self.acked_features = 0
        self.acked_protocol_features = 0
        self.rings = {}
        self.rams = []
        self.device = None
        if context is None:
            sock.settimeout(TIMEOUT)
        else:
            sock.setblocking(False)

    @classmethod
    def for_device(cls, device, context=None):
        """A connection to @device, which runs in this process on @context
        (default: the global default main context), iterated while waiting."""
        from gi.repository import GLib

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        device.take_connection(theirs.detach())
        fe = cls(ours, context or GLib.MainContext.default())
        fe.device = device  # kept alive as long as its front-end
        return fe

    @classmethod
    def connect(cls, path, timeout=TIMEOUT):
        """A connection to a back-end program listening on @path."""
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(path)
                return cls(sock)
            except (FileNotFoundError, ConnectionRefusedError):
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def close(self):
        for ring in self.rings.values():
            for fd in (ring.kick_fd, ring.call_fd):
                if fd >= 0:
                    os.close(fd)
        self.rings.clear()
        self.sock.close()
        self.iterate()

    # -- the device's main context (in-process devices) ------------------

    def iterate(self):
        """Lets an in-process device handle everything that is ready."""
        if self.context is not None:
            while self.context.iteration(False):
                pass

    def wait_for(self, ready_fd, timeout=TIMEOUT):
        """Waits until @ready_fd is readable, letting an in-process device
        run meanwhile. False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            self.iterate()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self.context is None:
                r, _, _ = select.select([ready_fd], [], [], remaining)
                return bool(r)
            r, _, _ = select.select([ready_fd], [], [], 0)
            if r:
                return True
            self._block(ready_fd, remaining)

    def _block(self, fd, timeout):
        """One blocking iteration of the device's context that also wakes
        up when @fd becomes readable or @timeout passes."""
        from gi.repository import GLib

        fired = []
        watch = GLib.unix_fd_source_new(fd, GLib.IOCondition.IN)
        watch.set_callback(lambda *args: fired.append(1) or GLib.SOURCE_REMOVE)
        watch.attach(self.context)
        timer = GLib.timeout_source_new(max(1, int(timeout * 1000)))
        timer.set_callback(lambda *args: fired.append(1) or GLib.SOURCE_REMOVE)
        timer.attach(self.context)
        try:
            self.context.iteration(True)
        finally:
            watch.destroy()
            timer.destroy()

    # -- messages ----------------------------------------------------------

    def send(self, request, payload=b'', fds=(), flags=0):
        message = HEADER.pack(request, FLAG_VERSION | flags, len(payload)) + payload
        sent = socket.send_fds(self.sock, [message], list(fds)) if fds else None
        if sent is None:
            self._send_all(message)
        elif sent != len(message):
            self._send_all(message[sent:])
        return True

    def _send_all(self, data):
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                self.wait_writable()
                continue
            view = view[n:]

    def wait_writable(self):
        self.iterate()
        select.select([], [self.sock], [], 0.01)

    def _recv_exact(self, n, want_fds=False):
        data = b''
        fds = []
        while len(data) < n:
            if self.context is not None and not self.wait_for(self.sock.fileno()):
                raise FrontendError('no reply from the device')
            try:
                if want_fds and not data:
                    chunk, got_fds, _, _ = socket.recv_fds(self.sock, n, 8)
                    fds.extend(got_fds)
                else:
                    chunk = self.sock.recv(n - len(data))
            except BlockingIOError:
                continue
            except socket.timeout:
                raise FrontendError('no reply from the device')
            if not chunk:
                raise EOFError('the device closed the connection')
            data += chunk
        return data, fds

    def recv(self):
        """The next message from the device: (request, flags, payload, fds)."""
        header, fds = self._recv_exact(HEADER.size, want_fds=True)
        request, flags, size = HEADER.unpack(header)
        payload = b''
        if size:
            payload, more = self._recv_exact(size)
            fds.extend(more)
        return request, flags, payload, fds

    def call(self, request, payload=b'', fds=()):
        """Sends a request that has a reply of its own; returns its payload."""
        self.send(request, payload, fds)
        reply, flags, data, got_fds = self.recv()
        for fd in got_fds:
            os.close(fd)
        if reply != request or not flags & FLAG_REPLY:
            raise FrontendError('reply to request %d expected, got %d (flags 0x%x)'
                                % (request, reply, flags))
        return data

    def call_ack(self, request, payload=b'', fds=()):
        """Sends a request with NEED_REPLY (REPLY_ACK must be acked) and
        returns the status: 0 means success."""
        self.send(request, payload, fds, FLAG_NEED_REPLY)
        reply, flags, data, got_fds = self.recv()
        for fd in got_fds:
            os.close(fd)
        if reply != request or len(data) != 8:
            raise FrontendError('REPLY_ACK to request %d expected, got %d (%d bytes)'
                                % (request, reply, len(data)))
        return struct.unpack('<Q', data)[0]

    def checked(self, request, payload=b'', fds=()):
        """Sends a request without a reply of its own: acked (and the status
        checked) when REPLY_ACK is negotiated."""
        if self.acked_protocol_features & bit(PF_REPLY_ACK):
            status = self.call_ack(request, payload, fds)
            if status != 0:
                raise FrontendError('request %d failed (status %d)' % (request, status))
        else:
            self.send(request, payload, fds)

    def get_u64(self, request):
        data = self.call(request)
        if len(data) != 8:
            raise FrontendError('request %d: %d-byte reply, a u64 expected' % (request, len(data)))
        return struct.unpack('<Q', data)[0]

    # -- the usual sequences -------------------------------------------------

    def negotiate(self, features=0, protocol_features=bit(PF_REPLY_ACK) | bit(PF_CONFIG)):
        """GET/SET_FEATURES and GET/SET_PROTOCOL_FEATURES and SET_OWNER:
        acks @features and VERSION_1 and PROTOCOL_FEATURES (and
        @protocol_features) as far as they were offered."""
        self.offered_features = self.get_u64(GET_FEATURES)
        wanted = features | bit(F_VERSION_1) | bit(F_PROTOCOL_FEATURES)
        if self.offered_features & bit(F_PROTOCOL_FEATURES):
            self.offered_protocol_features = self.get_u64(GET_PROTOCOL_FEATURES)
            self.acked_protocol_features = self.offered_protocol_features & protocol_features
            self.send(SET_PROTOCOL_FEATURES, struct.pack('<Q', self.acked_protocol_features))
        self.acked_features = self.offered_features & wanted
        self.checked(SET_FEATURES, struct.pack('<Q', self.acked_features))
        self.checked(SET_OWNER)
        return self.acked_features

    def set_mem_table(self, rams):
        self.rams = list(rams)
        payload = struct.pack('<II', len(self.rams), 0) + b''.join(r.region() for r in self.rams)
        self.checked(SET_MEM_TABLE, payload, [r.fd for r in self.rams])

    def start_ring(self, ram, index, num=MAX_RING, event_idx=None):
        if event_idx is None:
            event_idx = bool(self.acked_features & bit(F_RING_EVENT_IDX))
        ring = Vring(ram, index, num, event_idx)
        ring.kick_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        ring.call_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.rings[index] = ring
        desc, used, avail = ring.addresses()
        self.checked(SET_VRING_NUM, struct.pack('<II', index, num))
        self.checked(SET_VRING_BASE, struct.pack('<II', index, 0))
        self.checked(SET_VRING_ADDR, struct.pack('<IIQQQQ', index, 0, desc, used, avail, 0))
        self.checked(SET_VRING_CALL, struct.pack('<Q', index), [ring.call_fd])
        self.checked(SET_VRING_KICK, struct.pack('<Q', index), [ring.kick_fd])
        if self.acked_features & bit(F_PROTOCOL_FEATURES):
            self.checked(SET_VRING_ENABLE, struct.pack('<II', index, 1))
        return ring

    def stop_ring(self, index):
        """GET_VRING_BASE: the ring stops; returns the device's next index."""
        data = self.call(GET_VRING_BASE, struct.pack('<II', index, 0))
        return struct.unpack('<II', data)[1]

    def start(self, device_features=0, num_queues=1, num=MAX_RING, ram_size=16 << 20,
              protocol_features=bit(PF_REPLY_ACK) | bit(PF_CONFIG)):
        """Negotiation, guest RAM and @num_queues started rings: returns the RAM."""
        self.negotiate(device_features, protocol_features)
        ram = GuestRam(ram_size)
        self.set_mem_table([ram])
        for i in range(num_queues):
            self.start_ring(ram, i, num)
        return ram

    def get_config(self, offset, size):
        """The config space bytes, or None when the device refused."""
        data = self.call(GET_CONFIG, struct.pack('<III', offset, size, 0) + bytes(size))
        if len(data) != 12 + size:
            return None
        return data[12:]

    def wait_used(self, ring, count, timeout=TIMEOUT):
        """Waits until @count chains came back on @ring; returns them."""
        done = []
        deadline = time.monotonic() + timeout
        while True:
            done += ring.take_used()
            if len(done) >= count:
                return done
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise FrontendError('ring %d: %d of %d requests came back'
                                    % (ring.index, len(done), count))
            if self.wait_for(ring.call_fd, min(remaining, 0.5)):
                try:
                    os.eventfd_read(ring.call_fd)
                except BlockingIOError:
                    pass

    def request(self, ring, buffers, timeout=TIMEOUT):
        """One chain, kicked and waited for: returns the written length."""
        head = ring.add(buffers)
        ring.publish()
        ring.kick()
        done = self.wait_used(ring, 1, timeout)
        if done[0][0] != head:
            raise FrontendError('unexpected used descriptor %d' % done[0][0])
        return done[0][1]

    def is_closed(self, timeout=TIMEOUT):
        """True once the device closed the connection (bytes before the EOF
        are discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.wait_for(self.sock.fileno(), deadline - time.monotonic()):
                return False
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                return True
            if not data:
                return True
        return False
