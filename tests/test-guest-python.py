#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# The Python devices of tools/ in a real guest, in one boot: QEMU 7.2's
# vhost-user-rng-pci on tools/vhost-user-rng.py (the guest reads /dev/hwrng)
# and two vhost-user-blk-pci disks on tools/vhost-user-ramdisk.py, zero-copy
# (vda) and copying (vdb): the guest sees their size and serial, writes
# random data with O_DIRECT, flushes, reads it back and compares checksums;
# a read past the end returns nothing. Then the back-ends stop with SIGTERM
# while QEMU is still connected, with status 0.

import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'guest'))
import vhuguest  # noqa: E402

SRCDIR = os.environ.get('VHU_SRCDIR', os.path.dirname(HERE))
TOOLS = os.path.join(SRCDIR, 'tools')
MIB = 1 << 20
SAMPLE = 65536

GUEST_SCRIPT = r'''
R() { echo "R $*"; }
sha() { sha256sum | cut -d' ' -f1; }
R rng_current $(cat /sys/class/misc/hw_random/rng_current)
head -c %(sample)d /dev/hwrng > /tmp/rng
R rng_bytes $(wc -c < /tmp/rng)
R rng_values $(od -An -v -tu1 -w1 /tmp/rng | sort -un | wc -l)
R rng_sha $(sha < /tmp/rng)
head -c %(sample)d /dev/hwrng | sha > /tmp/rng2
R rng_sha2 $(cat /tmp/rng2)
for d in vda vdb; do
  R $d size $(cat /sys/block/$d/size)
  R $d serial "$(cat /sys/block/$d/serial)"
  R $d cache $(cat /sys/block/$d/queue/write_cache | tr ' ' _)
  head -c 3145728 /dev/urandom > /tmp/data
  R $d wrote $(sha < /tmp/data)
  # 3 MiB from 1 MiB on, O_DIRECT, flushed (fsync)
  dd if=/tmp/data of=/dev/$d bs=65536 seek=16 oflag=direct conv=notrunc,fsync 2>/dev/null
  R $d write_status $?
  R $d read $(dd if=/dev/$d bs=65536 skip=16 count=48 iflag=direct 2>/dev/null | sha)
  # Small and unaligned to the page: 4 KiB at sector 7
  head -c 4096 /dev/urandom > /tmp/small
  dd if=/tmp/small of=/dev/$d bs=512 seek=7 oflag=direct conv=notrunc 2>/dev/null
  R $d small $(sha < /tmp/small) $(dd if=/dev/$d bs=512 skip=7 count=8 iflag=direct 2>/dev/null | sha)
  # Past the end: the guest's block layer refuses, or the device says IOERR.
  dd if=/dev/$d of=/dev/null bs=512 skip=$(cat /sys/block/$d/size) count=1 iflag=direct 2>/dev/null
  R $d past_end $(dd if=/dev/$d bs=512 skip=$(cat /sys/block/$d/size) count=1 iflag=direct 2>/dev/null | wc -c)
done
echo stop-backends
read -r reply
R host $reply
'''


class GuestPythonTest(unittest.TestCase):

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix='vhu-guest-py-')
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.backends = []
        self.addCleanup(self.kill_backends)

    def kill_backends(self):
        for proc in self.backends:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def start(self, name, sock, *args):
        path = os.path.join(self.tmp, sock)
        proc = vhuguest.start_backend([sys.executable, os.path.join(TOOLS, name),
                                       '--socket-path=' + path] + list(args), path,
                                      stderr=subprocess.PIPE, text=True)
        self.backends.append(proc)
        return path

    def test_rng_and_ramdisks(self):
        started = time.monotonic()
        rng = self.start('vhost-user-rng.py', 'rng.sock')
        zero_copy = self.start('vhost-user-ramdisk.py', 'vda.sock', '--size=16M')
        copying = self.start('vhost-user-ramdisk.py', 'vdb.sock', '--size=8M', '--copy')
        qemu_args = [
            '-chardev', 'socket,id=rng,path=' + rng,
            '-device', 'vhost-user-rng-pci,chardev=rng',
            '-chardev', 'socket,id=vda,path=' + zero_copy,
            '-device', 'vhost-user-blk-pci,chardev=vda,num-queues=1',
            '-chardev', 'socket,id=vdb,path=' + copying,
            '-device', 'vhost-user-blk-pci,chardev=vdb,num-queues=1',
        ]
        stops = []

        def on_line(line, send):
            if line == 'stop-backends':
                # QEMU is still connected to all three.
                stops.extend(vhuguest.stop_backend(proc) for proc in self.backends)
                send('stopped\n')

        r = vhuguest.run_guest(GUEST_SCRIPT % {'sample': SAMPLE}, qemu_args=qemu_args,
                               timeout=90, on_line=on_line)
        print('boot %.2f s, guest %.2f s (%s)' % (r.boot_time or 0, r.wall_time or 0, r.accel),
              file=sys.stderr)
        self.assertEqual(r.returncode, 0, r.describe())
        results = {}
        for line in r.lines('R '):
            key, _, value = line.partition(' ')
            if key in ('vda', 'vdb'):
                sub, _, value = value.partition(' ')
                key = key + ' ' + sub
            results[key] = value

        # /dev/hwrng: as many bytes as asked, all 256 values, two different samples.
        self.assertTrue(results.get('rng_current', '').startswith('virtio_rng'), r.describe())
        self.assertEqual(results['rng_bytes'], str(SAMPLE))
        self.assertEqual(results['rng_values'], '256')
        self.assertNotEqual(results['rng_sha'], results['rng_sha2'])

        for disk, size in (('vda', 16 * MIB), ('vdb', 8 * MIB)):
            self.assertEqual(results[disk + ' size'], str(size // 512), r.describe())
            self.assertEqual(results[disk + ' serial'], 'vhost-user-ramdisk')
            self.assertEqual(results[disk + ' cache'], 'write_back')
            self.assertEqual(results[disk + ' write_status'], '0')
            self.assertEqual(len(results[disk + ' wrote']), 64)
            self.assertEqual(results[disk + ' read'], results[disk + ' wrote'], disk)
            small = results[disk + ' small'].split()
            self.assertEqual(len(small), 2)
            self.assertEqual(small[0], small[1], disk)
            self.assertEqual(results[disk + ' past_end'], '0')

        # Each back-end stopped cleanly on SIGTERM.
        self.assertEqual(results['host'], 'stopped')
        errors = [proc.stderr.read() for proc in self.backends]
        self.assertEqual(stops, [0, 0, 0], errors)
        for text in errors:
            self.assertNotIn('Traceback', text)
        print('test %.2f s' % (time.monotonic() - started), file=sys.stderr)


if __name__ == '__main__':
    vhuguest.tap_main()
