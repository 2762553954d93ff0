#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Guest buffers from Python: the copying helpers (read, read_bytes, write,
# write_bytes) and the zero-copy views of the overrides (what they allow,
# when they are released, that they keep guest memory mapped and then let
# it go, that the fault guard covers them); the Python devices in tools/
# (vhost-user-rng.py, vhost-user-ramdisk.py, zero-copy and copying) in this
# process and as programs, driven by the pure-Python front-end.

import gc
import hashlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vhufrontend as F  # noqa: E402
import vhuguest  # noqa: E402

import gi  # noqa: E402

gi.require_version('VhostUser', '1.0')
from gi.repository import GLib, VhostUser  # noqa: E402

SRCDIR = os.environ.get('VHU_SRCDIR', os.path.dirname(HERE))
TOOLS = os.path.join(SRCDIR, 'tools')

# virtio-blk
IN, OUT, FLUSH, GET_ID = 0, 1, 4, 8
OK, IOERR, UNSUPP = 0, 1, 2
F_SEG_MAX, F_FLUSH = 2, 9


def load_tool(name):
    path = os.path.join(TOOLS, name)
    spec = importlib.util.spec_from_file_location(name.replace('-', '_')[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mapped(name):
    """Whether this process maps the memfd called @name."""
    with open('/proc/self/maps') as maps:
        return any('/memfd:%s ' % name in line for line in maps)


class Recorder(VhostUser.Device):
    """Hands each element to self.handle (the test's), then pushes it with
    what the handler returns."""

    def __init__(self, handle):
        super().__init__(num_queues=1)
        self.handle = handle

    def do_queue_kicked(self, queue):
        for element in queue:
            queue.push(element, self.handle(element))


class BufferTest(unittest.TestCase):

    def serve(self, handle, buffers, ram_size=4 << 20):
        """One chain through a Recorder device: @buffers is a list of
        (data or None, length, writable); returns (written, the bytes of
        each buffer afterwards)."""
        fe = F.Frontend.for_device(Recorder(handle))
        self.addCleanup(fe.close)
        ram = fe.start(ram_size=ram_size)
        chain = []
        for data, length, writable in buffers:
            gpa = ram.alloc(length)
            ram.write(gpa, data if data is not None else b'\xee' * length)
            chain.append((gpa, length, writable))
        written = fe.request(fe.rings[0], chain)
        return written, [ram.read(gpa, length) for gpa, length, _ in chain]

    def test_copying(self):
        seen = {}

        def handle(element):
            seen['all'] = element.read()
            seen['part'] = element.read(3, 6)
            seen['past'] = element.read(100)
            seen['bytes'] = element.read_bytes(4, 100).get_data()
            seen['sizes'] = (element.get_out_size(), element.get_in_size())
            n = element.write(0, b'AB')
            n += element.write(2, bytearray(b'CD'))
            n += element.write(4, memoryview(b'EFGH'))
            n += element.write_bytes(8, GLib.Bytes.new(b'IJ'))
            seen['beyond'] = element.write(9, b'0123456789')  # 1 byte of room
            return n + 5  # more than there is room for: the library clamps it

        written, after = self.serve(handle, [(b'hello', 5, False), (b' world', 6, False),
                                             (None, 4, True), (None, 6, True)])
        self.assertEqual(seen['all'], b'hello world')
        self.assertEqual(seen['part'], b'lo wor')
        self.assertEqual(seen['past'], b'')
        self.assertEqual(seen['bytes'], b'o world')
        self.assertEqual(seen['sizes'], (11, 10))
        self.assertEqual(seen['beyond'], 1)
        self.assertEqual(written, 10)
        self.assertEqual(after[2] + after[3], b'ABCDEFGHI0')

    def test_views(self):
        seen = {}

        def handle(element):
            outs, ins = element.get_views()
            seen['outs'] = [bytes(v) for v in outs]
            seen['readonly'] = [v.readonly for v in outs] + [v.readonly for v in ins]
            seen['lengths'] = [len(v) for v in ins]
            with self.assertRaises(TypeError):
                outs[0][0] = 0
            ins[0][:] = b'wxyz'
            ins[1][1:3] = outs[1][0:2]
            pieces = VhostUser.slice_views(outs, 3, 4)
            seen['pieces'] = [bytes(p) for p in pieces]
            seen['kept'] = ins[0]
            return 6

        written, after = self.serve(handle, [(b'hello', 5, False), (b' world', 6, False),
                                             (None, 4, True), (None, 6, True)])
        self.assertEqual(seen['outs'], [b'hello', b' world'])
        self.assertEqual(seen['readonly'], [True, True, False, False])
        self.assertEqual(seen['lengths'], [4, 6])
        self.assertEqual(seen['pieces'], [b'lo', b' w'])
        self.assertEqual(written, 6)
        self.assertEqual(after[2], b'wxyz')
        self.assertEqual(after[3], b'\xee w\xee\xee\xee')
        # Pushing released the views.
        with self.assertRaises(ValueError):
            bytes(seen['kept'])

    def test_views_released_by_fill(self):
        kept = []

        class Batch(VhostUser.Device):
            def do_queue_kicked(self, queue):
                n = 0
                for n, element in enumerate(queue, 1):
                    kept.extend(element.get_in_views())
                    queue.fill(element, 0, n - 1)
                queue.flush(n)
                queue.notify()

        fe = F.Frontend.for_device(Batch(num_queues=1))
        self.addCleanup(fe.close)
        ram = fe.start()
        ring = fe.rings[0]
        for _ in range(3):
            ring.add([(ram.alloc(8), 8, True)])
        ring.publish()
        ring.kick()
        self.assertEqual(len(fe.wait_used(ring, 3)), 3)
        self.assertEqual(len(kept), 3)
        for view in kept:
            with self.assertRaises(ValueError):
                view[0]

    def test_segments(self):
        seen = {}

        def handle(element):
            segments, n_out = element.get_segments()
            seen['n_out'] = n_out
            seen['lengths'] = segments[1::2]
            # The addresses are this process's: the views are made there.
            outs, ins = element.get_views()
            seen['same'] = [bytes(v) for v in outs] == [b'abc', b'de']
            return 0

        self.serve(handle, [(b'abc', 3, False), (b'de', 2, False), (None, 7, True)])
        self.assertEqual(seen, {'n_out': 2, 'lengths': [3, 2, 7], 'same': True})

    def test_copy_helpers(self):
        views = [memoryview(bytearray(b'abc')), memoryview(bytearray()),
                 memoryview(bytearray(b'defg'))]
        self.assertEqual(VhostUser.copy_to_views(views, 1, b'XY'), 2)
        self.assertEqual(VhostUser.copy_to_views(views, 2, memoryview(b'123')), 3)
        self.assertEqual(VhostUser.copy_to_views(views, 5, b'__long__'), 2)
        self.assertEqual([bytes(v) for v in views], [b'aX1', b'', b'23__'])
        into = bytearray(5)
        self.assertEqual(VhostUser.copy_from_views(views, 1, into), 5)
        self.assertEqual(into, b'X123_')
        into = bytearray(10)
        self.assertEqual(VhostUser.copy_from_views(views, 4, into), 3)
        self.assertEqual(into[:3], b'3__')
        self.assertEqual(VhostUser.copy_from_views([], 0, bytearray(2)), 0)
        self.assertEqual(VhostUser.copy_to_views([], 0, b'x'), 0)

    def test_batches(self):
        seen = []

        class Batches(VhostUser.Device):
            def do_queue_kicked(self, queue):
                while True:
                    batch = queue.pop_batch(3)
                    if not batch:
                        return
                    seen.append(len(batch))
                    written = []
                    for element, outs, ins in batch:
                        data = b''.join(bytes(v) for v in outs)
                        written.append(VhostUser.copy_to_views(ins, 0, data.upper()))
                    self.kept = batch[0][2]
                    queue.push_batch(batch, written)
                    for view in self.kept:
                        with self.assertRaises(ValueError):
                            view[0]

            assertRaises = self.assertRaises

        fe = F.Frontend.for_device(Batches(num_queues=1))
        self.addCleanup(fe.close)
        ram = fe.start()
        ring = fe.rings[0]
        chains = {}
        for i in range(8):
            text = b'request %d' % i
            out = ram.alloc(len(text))
            ram.write(out, text)
            back = ram.alloc(16)
            ram.write(back, b'\xee' * 16)
            # Every other request has its writable buffer in two pieces.
            chain = [(out, len(text), False)]
            chain += [(back, 16, True)] if i % 2 else [(back, 5, True), (back + 5, 11, True)]
            chains[ring.add(chain)] = (back, text)
        ring.publish()
        ring.kick()
        used = fe.wait_used(ring, 8)
        self.assertEqual(seen, [3, 3, 2])
        # In order, one used-index update per batch, each with its length.
        self.assertEqual([head for head, _ in used], list(chains))
        for head, length in used:
            back, text = chains[head]
            self.assertEqual(length, len(text))
            self.assertEqual(ram.read(back, len(text)), text.upper())

    def test_push_batch_of_elements(self):
        """push_batch() takes plain elements too, and lengths must match."""
        class Plain(VhostUser.Device):
            def do_queue_kicked(self, queue):
                elements = list(queue)
                for element in elements:
                    element.write(0, b'ok')
                queue.push_batch(elements, [2] * len(elements))

        fe = F.Frontend.for_device(Plain(num_queues=1))
        self.addCleanup(fe.close)
        ram = fe.start()
        ring = fe.rings[0]
        bufs = [ram.alloc(4) for _ in range(3)]
        for buf in bufs:
            ring.add([(buf, 4, True)])
        ring.publish()
        ring.kick()
        self.assertEqual([length for _, length in fe.wait_used(ring, 3)], [2, 2, 2])
        self.assertEqual([ram.read(buf, 2) for buf in bufs], [b'ok'] * 3)

    def test_pop_batch_broken_ring(self):
        """A ring the guest broke: pop_batch raises, the device survives."""
        errors = []

        class Breaks(VhostUser.Device):
            def do_queue_kicked(self, queue):
                try:
                    batch = queue.pop_batch()
                except GLib.Error as e:
                    errors.append(e.code)
                    return
                queue.push_batch(batch, [0] * len(batch))

        device = Breaks(num_queues=1)
        fe = F.Frontend.for_device(device)
        self.addCleanup(fe.close)
        ram = fe.start()
        ring = fe.rings[0]
        buf = ram.alloc(8)
        ring.add([(buf, 8, True)])
        # The descriptor points outside guest memory.
        struct.pack_into('<Q', ram.view, ring.desc_off + 16 * ring.chains[next(iter(ring.chains))][0],
                         1 << 40)
        ring.publish()
        ring.kick()
        for _ in range(10):
            fe.wait_for(ring.call_fd, 0.05)
        self.assertTrue(device.get_queue(0).get_broken())
        self.assertEqual(errors[:1], [int(VhostUser.Error.QUEUE_BROKEN)])
        self.assertEqual(ring.used_idx(), 0)

    def test_slice_views(self):
        views = [memoryview(b'abc'), memoryview(b''), memoryview(b'defg'), memoryview(b'hi')]
        cases = {(0, 9): [b'abc', b'defg', b'hi'], (2, 3): [b'c', b'de'],
                 (3, 4): [b'defg'], (5, 100): [b'fg', b'hi'], (9, 1): [], (1, 0): []}
        for (offset, length), expect in cases.items():
            self.assertEqual([bytes(p) for p in VhostUser.slice_views(views, offset, length)],
                             expect, (offset, length))

    def test_views_keep_memory_across_table_change(self):
        """A slice kept past the push still reads the guest memory it was
        made of after the front-end replaced the memory table and closed
        that memory; once dropped, the library lets the memory go."""
        kept = []

        def handle(element):
            ins = element.get_in_views()
            ins[0][:8] = b'AAAAAAAA'
            kept.append(ins[0][0:8])  # a slice: outlives the release
            return 8

        device = Recorder(handle)
        fe = F.Frontend.for_device(device)
        self.addCleanup(fe.close)
        ram = fe.start()
        data_ram = F.GuestRam(2 << 20, gpa=64 << 20, uva=0x7e0000000000,
                              name='vhu-py-data-%d' % os.getpid())
        fe.set_mem_table([ram, data_ram])
        buf = data_ram.alloc(8)
        self.assertEqual(fe.request(fe.rings[0], [(buf, 8, True)]), 8)
        self.assertEqual(data_ram.read(buf, 8), b'AAAAAAAA')

        # The front-end takes the data memory away and closes it.
        fe.set_mem_table([ram])
        name = 'vhu-py-data-%d' % os.getpid()
        data_ram.close()
        fe.iterate()
        self.assertTrue(mapped(name), 'the element keeps the old memory mapped')
        self.assertEqual(bytes(kept[0]), b'AAAAAAAA')

        kept.clear()
        gc.collect()
        fe.iterate()
        self.assertFalse(mapped(name), 'dropping the last view lets the memory go')
        # The device still works on the new table.
        buf = ram.alloc(8)
        self.assertEqual(fe.request(fe.rings[0], [(buf, 8, True)]), 8)

    def test_views_under_fault_guard(self):
        """The front-end shrinks the memory file under a buffer: reading it
        through a view must not kill the device (the views are the library's
        own, guarded mapping). In a child process, so that a crash is a
        failure, not the end of this test program."""
        script = textwrap.dedent('''
            import os, sys
            sys.path.insert(0, %r)
            import vhufrontend as F
            import gi
            gi.require_version('VhostUser', '1.0')
            from gi.repository import VhostUser
            seen = []
            class Reader(VhostUser.Device):
                def do_queue_kicked(self, queue):
                    for element in queue:
                        outs, ins = element.get_views()
                        seen.append(bytes(outs[0][:16]))
                        queue.push(element, 0)
            device = Reader(num_queues=1)
            fe = F.Frontend.for_device(device)
            ram = fe.start(ram_size=4 << 20)
            ring = fe.rings[0]
            gpa = 3 << 20
            ram.write(gpa, b'x' * 16)
            ring.add([(gpa, 16, False)])
            ring.publish()
            os.ftruncate(ram.fd, 2 << 20)
            ring.kick()
            for _ in range(20):
                fe.wait_for(ring.call_fd, 0.05)
            print(repr((seen, device.get_queue(0).get_broken())))
        ''' % HERE)
        proc = subprocess.run([sys.executable, '-c', script], capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        seen, broken = eval(proc.stdout)
        # The vanished page reads as zeros, and the queue that read it broke.
        self.assertEqual(seen, [bytes(16)])
        self.assertTrue(broken)


class RngTest(unittest.TestCase):

    def test_rng_in_process(self):
        rng = load_tool('vhost-user-rng.py')
        fe = F.Frontend.for_device(rng.Rng(max_request=100))
        self.addCleanup(fe.close)
        ram = fe.start()
        ring = fe.rings[0]
        sizes = [1, 16, 64, 100, 4096]
        bufs = []
        for size in sizes:
            gpa = ram.alloc(size)
            ram.write(gpa, b'\0' * size)
            bufs.append((ring.add([(gpa, size, True)]), gpa, size))
        ring.publish()
        ring.kick()
        used = dict(fe.wait_used(ring, len(sizes)))
        samples = []
        for head, gpa, size in bufs:
            self.assertEqual(used[head], min(size, 100))
            data = ram.read(gpa, size)
            samples.append(data[:min(size, 100)])
            # Beyond --max-request nothing was written.
            self.assertEqual(data[100:], b'\0' * max(0, size - 100))
        # Random: 100 bytes are not all zero, and two samples differ.
        self.assertNotEqual(samples[3], b'\0' * 100)
        self.assertNotEqual(samples[2], samples[3][:64])


class RamDiskTest(unittest.TestCase):
    copy = False

    def setUp(self):
        self.ramdisk = load_tool('vhost-user-ramdisk.py')
        self.device = self.ramdisk.RamDisk(1 << 20, copy=self.copy)
        self.fe = F.Frontend.for_device(self.device)
        self.addCleanup(self.fe.close)
        self.ram = self.fe.start(F.bit(F_SEG_MAX) | F.bit(F_FLUSH), ram_size=8 << 20)
        self.ring = self.fe.rings[0]

    def request(self, kind, sector, data=None, read=0, split=()):
        """One virtio-blk request; the data buffer split at the offsets in
        @split. Returns (written, status, data read)."""
        ram = self.ram
        header = ram.alloc(16)
        ram.write(header, struct.pack('<IIQ', kind, 0, sector))
        length = len(data) if data is not None else read
        buf = ram.alloc(max(length, 1))
        if data is not None:
            ram.write(buf, data)
        else:
            ram.write(buf, b'\xee' * length)
        status = ram.alloc(1)
        ram.write(status, b'\xff')
        cuts = [0] + list(split) + [length]
        chain = [(header, 16, False)]
        for a, b in zip(cuts, cuts[1:]):
            if b > a:
                chain.append((buf + a, b - a, data is None))
        chain.append((status, 1, True))
        written = self.fe.request(self.ring, chain)
        return written, ram.read(status, 1)[0], ram.read(buf, length)

    def test_features_and_config(self):
        fe = self.fe
        self.assertTrue(fe.acked_features & F.bit(F_FLUSH))
        self.assertTrue(fe.acked_features & F.bit(F_SEG_MAX))
        config = fe.get_config(0, 60)
        capacity, size_max, seg_max = struct.unpack_from('<QII', config)
        self.assertEqual(capacity, (1 << 20) // 512)
        self.assertEqual(seg_max, 126)
        self.assertEqual(fe.get_config(200, 56), bytes(56))

    def test_write_read_back(self):
        payload = os.urandom(16 * 1024)
        self.assertEqual(self.request(OUT, 8, payload, split=(512, 4096, 4097))[:2], (1, OK))
        written, status, data = self.request(IN, 8, read=len(payload), split=(1000, 8192))
        self.assertEqual((written, status), (len(payload) + 1, OK))
        self.assertEqual(hashlib.sha256(data).digest(), hashlib.sha256(payload).digest())
        # A part of it, from the middle, in one buffer.
        written, status, data = self.request(IN, 10, read=1024)
        self.assertEqual((written, status, data), (1025, OK, payload[1024:2048]))
        self.assertEqual(bytes(self.device.disk[4096:4096 + 16384]), payload)

    def test_last_sector(self):
        last = (1 << 20) // 512 - 1
        self.assertEqual(self.request(OUT, last, b'z' * 512)[:2], (1, OK))
        self.assertEqual(self.request(IN, last, read=512), (513, OK, b'z' * 512))
        # One sector too far, or across the end: an I/O error, nothing moved.
        self.assertEqual(self.request(IN, last + 1, read=512), (1, IOERR, b'\xee' * 512))
        self.assertEqual(self.request(OUT, last, b'y' * 1024)[:2], (1, IOERR))
        self.assertEqual(self.request(IN, 1 << 60, read=512)[1], IOERR)
        self.assertEqual(bytes(self.device.disk[-512:]), b'z' * 512)

    def test_not_whole_sectors(self):
        self.assertEqual(self.request(OUT, 0, b'a' * 100)[:2], (1, IOERR))
        self.assertEqual(self.request(IN, 0, read=100)[:2], (1, IOERR))

    def test_flush_get_id_unsupported(self):
        self.assertEqual(self.request(FLUSH, 0)[:2], (1, OK))
        written, status, data = self.request(GET_ID, 0, read=20)
        self.assertEqual((written, status, data), (21, OK, b'vhost-user-ramdisk\0\0'))
        written, status, data = self.request(GET_ID, 0, read=20, split=(7,))
        self.assertEqual((written, status, data), (21, OK, b'vhost-user-ramdisk\0\0'))
        self.assertEqual(self.request(99, 0)[:2], (1, UNSUPP))

    def test_malformed(self):
        ram = self.ram
        # No device-readable buffer at all: unsupported.
        status = ram.alloc(2)
        self.assertEqual(self.fe.request(self.ring, [(status, 2, True)]), 1)
        self.assertEqual(ram.read(status + 1, 1)[0], UNSUPP)
        # A header cut short: unsupported.
        header = ram.alloc(16)
        status = ram.alloc(1)
        ram.write(header, struct.pack('<IIQ', OUT, 0, 0))
        self.assertEqual(self.fe.request(self.ring, [(header, 8, False), (status, 1, True)]), 1)
        self.assertEqual(ram.read(status, 1)[0], UNSUPP)
        # The header split in two buffers is fine.
        ram.write(header, struct.pack('<IIQ', FLUSH, 0, 0))
        ram.write(status, b'\xff')
        self.assertEqual(self.fe.request(self.ring, [(header, 5, False), (header + 5, 11, False),
                                                     (status, 1, True)]), 1)
        self.assertEqual(ram.read(status, 1)[0], OK)
        # No byte for a status: dropped, nothing written.
        self.assertEqual(self.fe.request(self.ring, [(header, 16, False)]), 0)
        # The status in a buffer after an empty one.
        ram.write(status, b'\xff')
        self.assertEqual(self.fe.request(self.ring, [(header, 16, False), (status, 1, True),
                                                     (status + 1, 0, True)]), 1)
        self.assertEqual(ram.read(status, 1)[0], OK)


class RamDiskCopyTest(RamDiskTest):
    copy = True


class ProgramTest(unittest.TestCase):
    """The tools as programs, as a VMM starts them."""

    def start(self, name, *args):
        tmp = tempfile.TemporaryDirectory(prefix='vhu-py-')
        self.addCleanup(tmp.cleanup)
        sock = os.path.join(tmp.name, 'dev.sock')
        proc = vhuguest.start_backend([sys.executable, os.path.join(TOOLS, name),
                                       '--socket-path=' + sock] + list(args), sock)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc, sock

    def test_print_capabilities(self):
        for name, kind in (('vhost-user-rng.py', 'rng'), ('vhost-user-ramdisk.py', 'block')):
            out = subprocess.run([sys.executable, os.path.join(TOOLS, name),
                                  '--print-capabilities'],
                                 capture_output=True, text=True, timeout=30, check=True).stdout
            self.assertEqual(json.loads(out)['type'], kind)

    def test_bad_options(self):
        for args, status in ((['--size=100'], 2), (['--no-such-option'], 2),
                             (['--socket-path=/x', '--fd=3'], 1), ([], 1)):
            proc = subprocess.run([sys.executable, os.path.join(TOOLS, 'vhost-user-ramdisk.py')]
                                  + args, capture_output=True, text=True, timeout=30)
            self.assertEqual(proc.returncode, status, (args, proc.stderr))
            self.assertIn('vhost-user-ramdisk.py', proc.stderr)

    def test_ramdisk_program(self):
        for args in ([], ['--copy']):
            proc, sock = self.start('vhost-user-ramdisk.py', '--size=2M', *args)
            fe = F.Frontend.connect(sock)
            ram = fe.start(F.bit(F_SEG_MAX) | F.bit(F_FLUSH))
            config = fe.get_config(0, 8)
            self.assertEqual(struct.unpack('<Q', config)[0], (2 << 20) // 512)
            ring = fe.rings[0]
            payload = os.urandom(8192)
            header, buf, status = ram.alloc(16), ram.alloc(8192), ram.alloc(1)
            ram.write(header, struct.pack('<IIQ', OUT, 0, 100))
            ram.write(buf, payload)
            self.assertEqual(fe.request(ring, [(header, 16, False), (buf, 8192, False),
                                               (status, 1, True)]), 1)
            ram.write(header, struct.pack('<IIQ', IN, 0, 100))
            ram.write(buf, bytes(8192))
            self.assertEqual(fe.request(ring, [(header, 16, False), (buf, 4096, True),
                                               (buf + 4096, 4096, True), (status, 1, True)]), 8193)
            self.assertEqual(ram.read(buf, 8192), payload)
            self.assertEqual(ram.read(status, 1), b'\0')
            fe.close()
            self.assertEqual(vhuguest.stop_backend(proc), 0)

    def test_rng_program_stops_while_connected(self):
        proc, sock = self.start('vhost-user-rng.py')
        fe = F.Frontend.connect(sock)
        ram = fe.start()
        buf = ram.alloc(32)
        ram.write(buf, bytes(32))
        self.assertEqual(fe.request(fe.rings[0], [(buf, 32, True)]), 32)
        self.assertNotEqual(ram.read(buf, 32), bytes(32))
        self.assertEqual(vhuguest.stop_backend(proc), 0)
        self.assertTrue(fe.is_closed())
        fe.close()

    def test_program_survives_front_end_errors(self):
        """A front-end that breaks the protocol gets refused; the program
        goes on serving the next one."""
        proc, sock = self.start('vhost-user-ramdisk.py', '--size=1M')
        fe = F.Frontend.connect(sock)
        fe.send(F.SET_FEATURES, struct.pack('<Q', 1 << 62))  # never offered
        self.assertTrue(fe.is_closed())
        fe.close()
        fe = F.Frontend.connect(sock)
        fe.start(F.bit(F_FLUSH))
        self.assertIsNotNone(fe.get_config(0, 8))
        fe.close()
        self.assertEqual(vhuguest.stop_backend(proc), 0)


if __name__ == '__main__':
    vhuguest.tap_main()
