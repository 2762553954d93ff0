#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Checks the tiny-guest harness (tests/guest/vhuguest.py) itself: the guest
# boots, runs the script, reports its output and exit status, talks with the
# host through its console, and /init's watchdog turns a hung script into a
# timeout result.

import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'guest'))
import vhuguest  # noqa: E402


class GuestBootTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        started = time.monotonic()
        cls.kernel, cls.initrd = vhuguest.build_guest()
        cls.manifest = vhuguest.guest_manifest()
        print('guest ready in %.1f s: kernel %s, accel %s'
              % (time.monotonic() - started, cls.manifest['release'],
                 vhuguest.guest_accel()), file=sys.stderr)

    def test_build_is_cached(self):
        self.assertEqual(vhuguest.build_guest(), (self.kernel, self.initrd))
        with open(self.kernel, 'rb') as f:
            self.assertEqual(f.read(4), b'\x7fELF')
        with open(self.initrd, 'rb') as f:
            self.assertEqual(f.read(6), b'070701')
        wanted = {m.replace('-', '_') for m in vhuguest.GUEST_MODULES}
        self.assertLessEqual(wanted, set(self.manifest['modules'])
                             | set(self.manifest['builtin']))

    def test_output_status_and_console_input(self):
        script = r'''
echo "hello from $(uname -r)"
echo "to stderr" >&2
for m in $(cat /lib/modules/load-order); do
  m=${m%.ko}
  if grep -q "^$m " /proc/modules; then echo "loaded $m"; else echo "missing $m"; fi
done
echo "cmdline $(cat /proc/cmdline)"
echo "memfd-ram $(grep MemTotal /proc/meminfo)"
echo "question"
read -r answer
echo "answer [$answer]"
exit 3
'''
        answered = []

        def on_line(line, send):
            if line == 'question':
                answered.append(line)
                send('forty two\n')

        r = vhuguest.run_guest(script, on_line=on_line, timeout=60)
        print('boot %.2f s, run %.2f s (%s)' % (r.boot_time, r.wall_time, r.accel),
              file=sys.stderr)
        self.assertEqual(r.returncode, 3, r.describe())
        self.assertFalse(r.timed_out)
        self.assertIn(r.accel, ('kvm', 'tcg'))
        self.assertEqual(r.lines('hello from '), [self.manifest['release']])
        self.assertIn('to stderr', r.output.split('\n'))
        self.assertEqual(r.lines('missing '), [])
        self.assertEqual(r.lines('loaded '), self.manifest['modules'])
        self.assertNotIn('insmod-failed', r.console)
        # No dots in parameter names: "a.b=" is a module parameter.
        cmdline = r.lines('cmdline ')[0].split()
        self.assertTrue(cmdline)
        for param in cmdline:
            self.assertNotIn('.', param.split('=', 1)[0], cmdline)
        self.assertEqual(answered, ['question'])
        self.assertEqual(r.lines('answer '), ['[forty two]'])
        # The dmesg /init prints after a failing script.
        self.assertIn('Linux version', r.dmesg)

    def test_watchdog_turns_hang_into_timeout(self):
        r = vhuguest.run_guest('echo before-hang; sleep 600; echo after-hang',
                               timeout=5)
        print('hung script: reported after %.2f s' % r.wall_time,
              file=sys.stderr)
        self.assertTrue(r.timed_out, r.describe())
        self.assertIsNone(r.returncode)
        self.assertEqual(r.lines(), ['before-hang'])
        self.assertIn('Linux version', r.dmesg)

    def test_qemu_failure_is_an_error(self):
        with self.assertRaises(vhuguest.GuestError) as ctx:
            vhuguest.run_guest('true', qemu_args=['-device', 'vhu-no-such-device'],
                               timeout=30)
        self.assertIsNotNone(ctx.exception.result)
        self.assertNotEqual(ctx.exception.result.qemu_returncode, 0)
        self.assertTrue(re.search('vhu-no-such-device',
                                  ctx.exception.result.qemu_stderr))


if __name__ == '__main__':
    vhuguest.tap_main()
