#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# tools/vhost-user-blk in a real guest: QEMU 7.2's vhost-user-blk-pci and
# Linux's virtio_blk driver. Two boots:
#
# - read-write, two queues on two vCPUs: what the guest sees (size, serial,
#   queues, limits, write cache), O_DIRECT writes and reads of random data
#   checked by SHA-256 in the guest and against the image file on the host,
#   writes from both CPUs at once (both queues carry requests), flushes,
#   discard (blkdiscard), write-zeroes with and without unmap (a tiny static
#   helper built here, as busybox has no BLKZEROOUT), the image grown on the
#   host while the guest waits (the guest sees the new size), the back-end
#   killed and restarted while the guest is idle (QEMU reconnect=1; I/O
#   goes on), and SIGTERM ending the back-end with status 0;
# - read-only: the guest sees a read-only disk, reads work, writes fail, the
#   image is untouched.

import base64
import ctypes
import hashlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'guest'))
import vhuguest  # noqa: E402

MIB = 1024 * 1024
IMAGE_SIZE = 64 * MIB
GROWN_SIZE = 80 * MIB
SERIAL = 'vhu-guest-blk-0001'
ZEROES_MIB_SHA = hashlib.sha256(bytes(MIB)).hexdigest()

HERE = os.path.dirname(os.path.abspath(__file__))


def blk_program():
    path = os.path.join(os.environ.get('VHU_TOOLS_DIR', ''), 'vhost-user-blk')
    if not os.access(path, os.X_OK):
        raise AssertionError('%s is missing: build the project first '
                             '(VHU_TOOLS_DIR=<build>/tools)' % path)
    return path


def build_zeroout_helper(directory):
    """Builds tests/guest/blkzeroout.c (static, no C library) and returns
    its bytes."""
    out = os.path.join(directory, 'blkzeroout')
    cc = os.environ.get('CC', 'cc')
    subprocess.run([cc, '-static', '-nostdlib', '-nostartfiles', '-Os',
                    '-fno-stack-protector', '-fno-asynchronous-unwind-tables',
                    '-fno-pie', '-no-pie', '-Wl,--build-id=none', '-s',
                    '-o', out, os.path.join(HERE, 'guest', 'blkzeroout.c')],
                   check=True)
    with open(out, 'rb') as f:
        return f.read()


def sha256_of(path, offset, length):
    with open(path, 'rb') as f:
        f.seek(offset)
        data = f.read(length)
    assert len(data) == length
    return hashlib.sha256(data).hexdigest()


def can_punch_holes(directory):
    """Whether the image's file system gives space back (then discarded
    sectors read as zeroes)."""
    path = os.path.join(directory, 'punch-probe')
    with open(path, 'wb') as f:
        f.truncate(65536)
    fd = os.open(path, os.O_RDWR)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int,
                                   ctypes.c_longlong, ctypes.c_longlong]
        return libc.fallocate(fd, 0x3, 0, 4096) == 0  # PUNCH_HOLE|KEEP_SIZE
    finally:
        os.close(fd)
        os.unlink(path)


# Shell functions for the guest. R lines are results for the host.
GUEST_COMMON = r'''
dev=/dev/vda
R() { echo "R $*"; }
sha() { sha256sum | cut -d' ' -f1; }
# read_sha OFFSET_MIB LENGTH_MIB: the SHA-256 of a range, read with O_DIRECT
read_sha() {
  dd if=$dev bs=65536 skip=$(($1 * 16)) count=$(($2 * 16)) iflag=direct 2>/dev/null | sha
}
# write_file FILE OFFSET_MIB: with O_DIRECT, then fsync (a flush)
write_file() {
  dd if=$1 of=$dev bs=65536 seek=$(($2 * 16)) oflag=direct conv=notrunc,fsync 2>/dev/null
}
R size $(cat /sys/block/vda/size)
R ro $(cat /sys/block/vda/ro)
R queues $(ls /sys/block/vda/mq | wc -l)
R cache $(cat /sys/block/vda/queue/write_cache | tr ' ' _)
R discard_max $(cat /sys/block/vda/queue/discard_max_bytes)
R write_zeroes_max $(cat /sys/block/vda/queue/write_zeroes_max_bytes)
R logical_block $(cat /sys/block/vda/queue/logical_block_size)
R serial "$(cat /sys/block/vda/serial)"
'''

GUEST_READ_WRITE = GUEST_COMMON + r'''
base64 -d > /tmp/bz <<'EOF'
%(helper)s
EOF
chmod +x /tmp/bz

# 1 MiB of random data at 1 MiB.
head -c 1048576 /dev/urandom > /tmp/a
R a_sha $(sha < /tmp/a)
write_file /tmp/a 1; R a_write $?
R a_read $(read_sha 1 1)

# The back-end is killed and comes back while the guest is idle.
R restart
read -r reply
R a_read_after_restart $(read_sha 1 1)

# Both CPUs write at once (blk-mq gives each CPU its queue), then read back
# crosswise.
head -c 2097152 /dev/urandom > /tmp/b0
head -c 2097152 /dev/urandom > /tmp/b1
R b0_sha $(sha < /tmp/b0)
R b1_sha $(sha < /tmp/b1)
taskset -c 0 dd if=/tmp/b0 of=$dev bs=4096 seek=2048 oflag=direct conv=notrunc 2>/dev/null & p0=$!
taskset -c 1 dd if=/tmp/b1 of=$dev bs=4096 seek=3072 oflag=direct conv=notrunc 2>/dev/null & p1=$!
wait $p0; r0=$?
wait $p1; r1=$?
R mq_write $r0 $r1
R b0_read $(taskset -c 1 dd if=$dev bs=65536 skip=128 count=32 iflag=direct 2>/dev/null | sha)
R b1_read $(taskset -c 0 dd if=$dev bs=65536 skip=192 count=32 iflag=direct 2>/dev/null | sha)
sync
blockdev --flushbufs $dev; R flushbufs $?

# Discard 1 MiB at 16 MiB that held data.
write_file /tmp/a 16
blkdiscard -o 16777216 -l 1048576 $dev; R discard $?
R discard_read $(read_sha 16 1)

# Write zeroes over data: without unmap (BLKZEROOUT), with unmap (punch).
write_file /tmp/a 20
write_file /tmp/a 21
/tmp/bz $dev 20971520 1048576; R zeroout $?
/tmp/bz $dev 22020096 1048576 unmap; R zeroout_unmap $?
R zeroout_read $(read_sha 20 1)
R zeroout_unmap_read $(read_sha 21 1)

# The image grows on the host while the guest waits.
old=$(cat /sys/block/vda/size)
R grow
read -r reply
i=0
while [ "$(cat /sys/block/vda/size)" = "$old" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
new=$(cat /sys/block/vda/size)
R new_size $new
R last_sector $(dd if=$dev bs=512 skip=$((new - 1)) count=1 iflag=direct 2>/dev/null | wc -c)
write_file /tmp/a $((new / 2048 - 1)); R grown_write $?
R grown_read $(read_sha $((new / 2048 - 1)) 1)

R stop
read -r reply
'''

GUEST_READ_ONLY = GUEST_COMMON + r'''
R data_read $(read_sha 1 1)
head -c 65536 /dev/urandom > /tmp/x
dd if=/tmp/x of=$dev bs=65536 seek=16 oflag=direct conv=notrunc 2>/dev/null; R write $?
blkdiscard -o 16777216 -l 1048576 $dev 2>/dev/null; R discard $?
R data_read_again $(read_sha 1 1)
'''


class GuestBlkTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        started = time.monotonic()
        vhuguest.build_guest()
        print('guest ready in %.1f s, accel %s'
              % (time.monotonic() - started, vhuguest.guest_accel()),
              file=sys.stderr)

    def setUp(self):
        self.blk = blk_program()
        self.tmp = tempfile.TemporaryDirectory(prefix='vhu-guest-blk-')
        self.addCleanup(self.tmp.cleanup)
        self.sock = os.path.join(self.tmp.name, 'blk.sock')
        self.image = os.path.join(self.tmp.name, 'disk.img')
        self.log_path = os.path.join(self.tmp.name, 'backend.log')
        self.backends = []
        self.addCleanup(self._kill_backends)

    def _kill_backends(self):
        for proc in self.backends:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def start_blk(self, *args):
        with open(self.log_path, 'ab') as log:
            proc = vhuguest.start_backend(
                [self.blk, '--socket-path=' + self.sock,
                 '--blk-file=' + self.image, '--verbose'] + list(args),
                self.sock, stderr=log)
        self.backends.append(proc)
        return proc

    def backend_log(self):
        with open(self.log_path, encoding='utf-8', errors='replace') as f:
            return f.read()

    def results(self, result):
        """The guest's R lines as a dict (a repeated key keeps the last)."""
        values = {}
        for line in result.lines('R '):
            key, _sep, value = line.partition(' ')
            values[key] = value
        return values

    def test_read_write(self):
        started = time.monotonic()
        helper = build_zeroout_helper(self.tmp.name)
        with open(self.image, 'wb') as f:
            f.truncate(IMAGE_SIZE)
        args = ['--num-queues=2', '--serial=' + SERIAL]
        backend = self.start_blk(*args)
        events = []

        def on_line(line, send):
            if line == 'R restart':
                # Killed, not stopped: the front-end sees the socket close.
                current = self.backends[-1]
                current.kill()
                current.wait()
                events.append(('killed', current.returncode))
                self.start_blk(*args)
                send('ok\n')
            elif line == 'R grow':
                os.truncate(self.image, GROWN_SIZE)
                send('ok\n')
            elif line == 'R stop':
                # The front-end is still connected.
                events.append(('stopped', vhuguest.stop_backend(self.backends[-1])))
                send('ok\n')

        script = GUEST_READ_WRITE % {
            'helper': base64.encodebytes(helper).decode().strip()}
        result = vhuguest.run_guest(
            script,
            qemu_args=['-chardev', 'socket,id=c0,reconnect=1,path=' + self.sock,
                       '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=2'],
            smp=2, timeout=120, on_line=on_line)
        log = self.backend_log()
        details = result.describe() + '\n--- back-end ---\n' + log
        r = self.results(result)
        self.assertEqual(result.returncode, 0, details)

        # What the guest sees.
        self.assertEqual(r['size'], str(IMAGE_SIZE // 512), details)
        self.assertEqual(r['ro'], '0', details)
        self.assertEqual(r['queues'], '2', details)
        self.assertEqual(r['cache'], 'write_back', details)
        self.assertEqual(r['serial'], SERIAL, details)
        self.assertEqual(r['logical_block'], '512', details)
        self.assertGreater(int(r['discard_max']), 0, details)
        self.assertGreater(int(r['write_zeroes_max']), 0, details)

        # Data, in the guest and in the image file.
        self.assertEqual(r['a_write'], '0', details)
        self.assertEqual(r['a_read'], r['a_sha'], details)
        self.assertEqual(r['a_read_after_restart'], r['a_sha'], details)
        self.assertEqual(sha256_of(self.image, 1 * MIB, MIB), r['a_sha'])
        self.assertEqual(r['mq_write'], '0 0', details)
        self.assertEqual(r['b0_read'], r['b0_sha'], details)
        self.assertEqual(r['b1_read'], r['b1_sha'], details)
        self.assertEqual(sha256_of(self.image, 8 * MIB, 2 * MIB), r['b0_sha'])
        self.assertEqual(sha256_of(self.image, 12 * MIB, 2 * MIB), r['b1_sha'])
        self.assertEqual(r['flushbufs'], '0', details)

        # Discard and write-zeroes.
        self.assertEqual(r['discard'], '0', details)
        if can_punch_holes(self.tmp.name):
            self.assertEqual(r['discard_read'], ZEROES_MIB_SHA, details)
        self.assertEqual(sha256_of(self.image, 16 * MIB, MIB), r['discard_read'])
        self.assertEqual(r['zeroout'], '0', details)
        self.assertEqual(r['zeroout_unmap'], '0', details)
        self.assertEqual(r['zeroout_read'], ZEROES_MIB_SHA, details)
        self.assertEqual(r['zeroout_unmap_read'], ZEROES_MIB_SHA, details)
        self.assertEqual(sha256_of(self.image, 20 * MIB, 2 * MIB),
                         hashlib.sha256(bytes(2 * MIB)).hexdigest())

        # The grown image.
        self.assertEqual(r['new_size'], str(GROWN_SIZE // 512), details)
        self.assertEqual(r['last_sector'], '512', details)
        self.assertEqual(r['grown_write'], '0', details)
        self.assertEqual(r['grown_read'], r['a_sha'], details)
        self.assertEqual(sha256_of(self.image, GROWN_SIZE - MIB, MIB), r['a_sha'])

        # The restart and the end.
        self.assertEqual(events, [('killed', -signal.SIGKILL), ('stopped', 0)],
                         details)
        self.assertEqual(backend.returncode, -signal.SIGKILL)
        self.assertIn('capacity is now %d sectors' % (GROWN_SIZE // 512), log)
        negotiated = re.findall(r'negotiated features: 0x[0-9a-f]+ (.*)', log)
        self.assertTrue(negotiated, log)
        for bit in ('FLUSH', 'DISCARD', 'WRITE_ZEROES', 'MQ', 'VERSION_1',
                    'RING_EVENT_IDX', 'CONFIG_WCE'):
            self.assertIn(bit, negotiated[-1].split(), log)
        self.assertNotIn('RO', negotiated[-1].split(), log)

        # What the second back-end served (it printed it when it exited).
        stats = re.findall(r'requests so far: (\d+) reads, (\d+) writes, '
                           r'(\d+) flushes, (\d+) discards, (\d+) write-zeroes, '
                           r'(\d+) get-id, (\d+) unsupported, (\d+) errors; '
                           r'per queue: (\d+) (\d+)', log)
        self.assertTrue(stats, log)
        (reads, writes, flushes, discards, zeroes, _ids, unsupported,
         errors, queue0, queue1) = (int(v) for v in stats[-1])
        self.assertGreater(reads, 0, log)
        self.assertGreater(writes, 0, log)
        self.assertGreater(flushes, 0, log)
        self.assertGreater(discards, 0, log)
        self.assertGreaterEqual(zeroes, 2, log)
        self.assertEqual(errors, 0, log)
        self.assertGreater(queue0, 0, log)
        self.assertGreater(queue1, 0, log)
        print('read-write boot: %.1f s (guest %.1f s, boot %.1f s)'
              % (time.monotonic() - started, result.wall_time, result.boot_time),
              file=sys.stderr)

    def test_read_only(self):
        started = time.monotonic()
        data = os.urandom(MIB)
        with open(self.image, 'wb') as f:
            f.truncate(IMAGE_SIZE)
            f.seek(MIB)
            f.write(data)
        before = sha256_of(self.image, 0, IMAGE_SIZE)
        backend = self.start_blk('--read-only')
        result = vhuguest.run_guest(
            GUEST_READ_ONLY,
            qemu_args=['-chardev', 'socket,id=c0,path=' + self.sock,
                       '-device', 'vhost-user-blk-pci,chardev=c0'],
            timeout=60)
        status = vhuguest.stop_backend(backend)
        log = self.backend_log()
        details = result.describe() + '\n--- back-end ---\n' + log
        r = self.results(result)
        self.assertEqual(result.returncode, 0, details)
        self.assertEqual(status, 0, details)
        self.assertEqual(r['ro'], '1', details)
        self.assertEqual(r['queues'], '1', details)
        self.assertEqual(r['serial'], '', details)
        self.assertEqual(r['discard_max'], '0', details)
        self.assertEqual(r['data_read'], hashlib.sha256(data).hexdigest(), details)
        self.assertNotEqual(r['write'], '0', details)
        self.assertNotEqual(r['discard'], '0', details)
        self.assertEqual(r['data_read_again'], r['data_read'], details)
        self.assertEqual(sha256_of(self.image, 0, IMAGE_SIZE), before)
        negotiated = re.findall(r'negotiated features: 0x[0-9a-f]+ (.*)', log)
        self.assertIn('RO', negotiated[-1].split(), log)
        print('read-only boot: %.1f s (guest %.1f s, boot %.1f s)'
              % (time.monotonic() - started, result.wall_time, result.boot_time),
              file=sys.stderr)


if __name__ == '__main__':
    vhuguest.tap_main()
