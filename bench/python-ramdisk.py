#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""bench/python-ramdisk: requests per second of the Python RAM disk
(tools/vhost-user-ramdisk.py, zero-copy and --copy) as a share of the same
RAM disk in C (bench/ramdisk.c).

Usage: /usr/bin/python3 bench/python-ramdisk.py BUILDDIR [--rounds N] [--repeat N]

Each device runs as a program, as a VMM would start it, and one front-end
drives them all: tests/vhufrontend.py in this process, the same code and the
same work for every device. The guest RAM holds BATCH 4 KiB requests, half
writes and half reads, each a chain of two descriptors laid out once; a
round makes them all available again (one copy of the ring entries), kicks
once and sleeps on the call eventfd until all are used (EVENT_IDX: one
interrupt per round). So a round costs the front-end the same few
microseconds for every device, and the rest is the device's.

Printed per device: requests per second (wall clock over the timed rounds,
the best of --repeat runs), and the device's CPU time per request (user +
system, from /proc). The reads return what the writes of the previous round
stored; the last round is checked.
"""

import argparse
import os
import select
import struct
import sys
import tempfile
import time

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(SRCDIR, 'tests'))
sys.path.insert(0, os.path.join(SRCDIR, 'tests', 'guest'))
import vhufrontend as F  # noqa: E402
import vhuguest  # noqa: E402

IN, OUT = 0, 1
F_SEG_MAX, F_FLUSH = 2, 9
SECTOR = 512
BLOCK = 4096
BATCH = 128              # requests per round: 2 descriptors each, ring of 256
DISK_MIB = 64


class Workload:
    """BATCH fixed requests in guest RAM, posted again every round."""

    def __init__(self, fe, ram):
        self.fe, self.ram = fe, ram
        self.ring = fe.rings[0]
        self.slots = []
        for i in range(BATCH):
            # Slot i writes (even i) or reads (odd i) block i // 2 of the
            # disk, spread out over it.
            block = (i // 2) * 97 % (DISK_MIB * 256)
            sector = block * (BLOCK // SECTOR)
            if i % 2 == 0:
                buf = ram.alloc(16 + BLOCK)
                ram.write(buf, struct.pack('<IIQ', OUT, 0, sector) + os.urandom(BLOCK))
                status = ram.alloc(1)
                chain = [(buf, 16 + BLOCK, False), (status, 1, True)]
            else:
                header = ram.alloc(16)
                ram.write(header, struct.pack('<IIQ', IN, 0, sector))
                buf = ram.alloc(BLOCK + 1)
                status = buf + BLOCK
                chain = [(header, 16, False), (buf, BLOCK + 1, True)]
            self.slots.append((chain, buf, status))
        self.heads = [self.ring.add(chain) for chain, _, _ in self.slots]
        self.entries = struct.pack('<%dH' % BATCH, *self.heads)
        self.ring.avail_idx = 0  # rewritten by post()

    def post(self):
        """Makes the BATCH requests available again and kicks."""
        ring, view = self.ring, self.ram.view
        at = ring.avail_off + 4 + 2 * (ring.avail_idx % ring.num)
        view[at:at + 2 * BATCH] = self.entries
        ring.avail_idx = (ring.avail_idx + BATCH) & 0xffff
        ring.publish()
        ring.kick()

    def wait(self):
        ring = self.ring
        while ring.used_idx() != ring.avail_idx:
            select.select([ring.call_fd], [], [], 10)
            try:
                os.eventfd_read(ring.call_fd)
            except BlockingIOError:
                pass

    def check(self):
        """The reads of the last round returned what the writes stored."""
        view = self.ram.view
        for i in range(0, BATCH, 2):
            (_, wbuf, wstatus), (_, rbuf, rstatus) = self.slots[i], self.slots[i + 1]
            if view[wstatus] != 0 or view[rstatus] != 0:
                raise RuntimeError('slot %d: status %d/%d' % (i, view[wstatus], view[rstatus]))
            if view[wbuf + 16:wbuf + 16 + BLOCK] != view[rbuf:rbuf + BLOCK]:
                raise RuntimeError('slot %d: read back differs' % i)


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def run(argv, env, rounds, tmp):
    sock = os.path.join(tmp, 'ramdisk.sock')
    proc = vhuguest.start_backend(argv + ['--socket-path=' + sock], sock, env=env)
    try:
        fe = F.Frontend.connect(sock)
        ram = fe.start(F.bit(F_SEG_MAX) | F.bit(F_FLUSH) | F.bit(F.F_RING_EVENT_IDX),
                       ram_size=8 << 20)
        if not fe.acked_features & F.bit(F.F_RING_EVENT_IDX):
            raise RuntimeError('EVENT_IDX was not negotiated')
        work = Workload(fe, ram)
        for _ in range(max(10, rounds // 10)):  # warm up
            work.post()
            work.wait()
        cpu = cpu_seconds(proc.pid)
        started = time.perf_counter()
        for _ in range(rounds):
            work.post()
            work.wait()
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(proc.pid) - cpu
        work.check()
        fe.close()
        return rounds * BATCH / elapsed, cpu / (rounds * BATCH)
    finally:
        vhuguest.stop_backend(proc)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('builddir')
    parser.add_argument('--rounds', type=int, default=2000)
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    build = os.path.abspath(args.builddir)
    env = dict(os.environ)
    env['GI_TYPELIB_PATH'] = os.path.join(build, 'libvhostuser-glib')
    env['LD_LIBRARY_PATH'] = os.path.join(build, 'libvhostuser-glib')
    env['PYTHONPATH'] = os.path.join(SRCDIR, 'python')
    ramdisk_py = [sys.executable, os.path.join(SRCDIR, 'tools', 'vhost-user-ramdisk.py'),
                  '--size=%dM' % DISK_MIB]
    devices = [
        ('C (bench/ramdisk)', [os.path.join(build, 'bench', 'ramdisk'),
                               '--size-mib=%d' % DISK_MIB]),
        ('Python, zero-copy', ramdisk_py),
        ('Python, copying', ramdisk_py + ['--copy']),
    ]
    print('%d rounds of %d requests of 4 KiB (half writes, half reads), best of %d'
          % (args.rounds, BATCH, args.repeat))
    results = []
    with tempfile.TemporaryDirectory(prefix='vhu-bench-') as tmp:
        for name, argv in devices:
            runs = [run(argv, env, args.rounds, tmp) for _ in range(args.repeat)]
            best = max(runs)
            results.append((name, best[0], min(r[1] for r in runs)))
    c_rate, c_cpu = results[0][1], results[0][2]
    print('%-20s %12s %10s %16s %10s' % ('device', 'requests/s', 'of C', 'CPU us/request',
                                         'C/Python'))
    for name, rate, cpu in results:
        print('%-20s %12.0f %9.1f%% %16.2f %9.1f%%'
              % (name, rate, 100 * rate / c_rate, cpu * 1e6,
                 100 * c_cpu / cpu if cpu else float('nan')))


if __name__ == '__main__':
    main()
