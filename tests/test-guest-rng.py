#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# tools/vhost-user-rng in a real guest: QEMU's vhost-user-rng-pci, Linux's
# virtio-rng driver and /dev/hwrng. Two boots: a plain one (the back-end is
# stopped with SIGTERM while QEMU is still connected) and one where the
# back-end is killed while the guest waits for entropy and restarted, and
# QEMU (reconnect=1) resumes the device.

import os
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'guest'))
import vhuguest  # noqa: E402

SAMPLE = 65536

# Reads SAMPLE bytes from /dev/hwrng into /tmp/$1 and prints, prefixed by $1:
# the byte count, the SHA-256 and the byte histogram ("hist COUNT VALUE").
GUEST_FUNCTIONS = r'''
sample() {
  head -c %(size)d /dev/hwrng > /tmp/$1 || echo "$1 read-failed"
  echo "$1 bytes $(wc -c < /tmp/$1)"
  echo "$1 sha256 $(sha256sum /tmp/$1 | cut -d' ' -f1)"
  od -An -v -tu1 -w1 /tmp/$1 | sort -n | uniq -c | sed "s/^ */$1 hist /"
}
echo "rng_current $(cat /sys/class/misc/hw_random/rng_current)"
''' % {'size': SAMPLE}


def rng_program():
    path = os.path.join(os.environ.get('VHU_TOOLS_DIR', ''), 'vhost-user-rng')
    if not os.access(path, os.X_OK):
        raise AssertionError('%s is missing: build the project first '
                             '(VHU_TOOLS_DIR=<build>/tools)' % path)
    return path


class GuestRngTest(unittest.TestCase):

    def setUp(self):
        self.rng = rng_program()
        self.tmp = tempfile.TemporaryDirectory(prefix='vhu-guest-rng-')
        self.addCleanup(self.tmp.cleanup)
        self.sock = os.path.join(self.tmp.name, 'rng.sock')
        self.backends = []
        self.addCleanup(self._kill_backends)

    def _kill_backends(self):
        for proc in self.backends:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def start_rng(self):
        proc = vhuguest.start_backend([self.rng, '--socket-path=' + self.sock],
                                      self.sock)
        self.backends.append(proc)
        return proc

    def qemu_args(self):
        return ['-chardev', 'socket,id=c0,path=' + self.sock,
                '-device', 'vhost-user-rng-pci,chardev=c0']

    def qemu_args_reconnect(self):
        # QEMU 7.2 realizes vhost-user-rng at once, while a chardev with
        # reconnect=1 connects in the background: the device is added
        # (on a hot-plug capable port) once the chardev is connected,
        # before the guest starts.
        return ['-chardev', 'socket,id=c0,reconnect=1,path=' + self.sock,
                '-device', 'pcie-root-port,id=rp0,bus=pcie.0,chassis=1']

    @staticmethod
    def add_rng_device(qmp):
        qmp.wait_chardev_connected('c0')
        qmp.execute('device_add', {'driver': 'vhost-user-rng-pci',
                                   'chardev': 'c0', 'bus': 'rp0', 'id': 'rng0'})

    def check_sample(self, result, name):
        """Checks the sample @name the guest described; returns its digest."""
        self.assertEqual(result.lines(name + ' read-failed'), [], result.describe())
        self.assertEqual(result.lines(name + ' bytes '), [str(SAMPLE)],
                         result.describe())
        digest = result.lines(name + ' sha256 ')
        self.assertEqual(len(digest), 1, result.describe())
        histogram = {}
        for line in result.lines(name + ' hist '):
            count, value = (int(v) for v in line.split())
            histogram[value] = count
        self.assertEqual(sum(histogram.values()), SAMPLE)
        # Random bytes: all 256 values occur, each near SAMPLE / 256 = 256
        # times (standard deviation 16; the bounds are 8 of them away).
        self.assertEqual(sorted(histogram), list(range(256)), histogram)
        self.assertGreater(min(histogram.values()), 128, histogram)
        self.assertLess(max(histogram.values()), 384, histogram)
        return digest[0]

    def test_read_then_sigterm(self):
        started = time.monotonic()
        backend = self.start_rng()
        exits = []

        def on_line(line, send):
            if line == 'stop-backend':
                # The front-end is still connected.
                exits.append(vhuguest.stop_backend(backend))
                send('stopped\n')

        script = GUEST_FUNCTIONS + r'''
sample a
sample b
echo stop-backend
read -r reply
echo "host $reply"
'''
        r = vhuguest.run_guest(script, qemu_args=self.qemu_args(), timeout=30,
                               on_line=on_line)
        print('plain: boot %.2f s, guest %.2f s, test %.2f s'
              % (r.boot_time, r.wall_time, time.monotonic() - started),
              file=sys.stderr)
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertTrue(r.lines('rng_current ')[0].startswith('virtio_rng'),
                        r.describe())
        self.assertNotEqual(self.check_sample(r, 'a'), self.check_sample(r, 'b'))
        self.assertEqual(r.lines('host '), ['stopped'])
        self.assertEqual(exits, [0])

    def test_reconnect(self):
        started = time.monotonic()
        first = self.start_rng()
        restarted = []

        def on_line(line, send):
            if line == 'kill-backend':
                first.send_signal(signal.SIGKILL)
                first.wait()
                send('killed\n')
            elif line == 'reading-while-dead':
                # The guest is (or soon will be) waiting for entropy; QEMU
                # reconnects within a second of the back-end's return.
                restarted.append(self.start_rng())

        script = GUEST_FUNCTIONS + r'''
sample before
echo kill-backend
read -r reply
echo "host $reply"
echo reading-while-dead
sample after
'''
        r = vhuguest.run_guest(script, qemu_args=self.qemu_args_reconnect(),
                               before_start=self.add_rng_device,
                               timeout=30, on_line=on_line)
        print('reconnect: boot %.2f s, guest %.2f s, test %.2f s'
              % (r.boot_time, r.wall_time, time.monotonic() - started),
              file=sys.stderr)
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertTrue(r.lines('rng_current ')[0].startswith('virtio_rng'),
                        r.describe())
        self.assertEqual(r.lines('host '), ['killed'])
        self.assertEqual(first.returncode, -signal.SIGKILL)
        self.assertEqual(len(restarted), 1)
        self.assertNotEqual(self.check_sample(r, 'before'),
                            self.check_sample(r, 'after'))
        # QEMU has gone: the restarted back-end still stops cleanly.
        self.assertEqual(vhuguest.stop_backend(restarted[0]), 0)


if __name__ == '__main__':
    vhuguest.tap_main()
