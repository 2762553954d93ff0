#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# tools/vhost-user-net --loopback against a real front-end: DPDK 22.11's
# testpmd with a virtio-user port (no VM). Every packet testpmd sends must
# come back: in rxonly mode after `start tx_first N`, the port's RX counters
# equal its TX counters, packets and bytes; with io forwarding the packets
# circulate (the rate is printed, for comparisons, not asserted). testpmd
# restarted against the same back-end works again; two queue pairs both
# carry frames; the same with the queues polled on a worker thread
# (--queue-mode=poll --threads=1) and in adaptive mode; SIGTERM makes the
# back-end exit 0, also while testpmd is still connected.
#
# Environment: VHU_TOOLS_DIR (the build's tools/ directory).

import atexit
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'guest'))
import vhuguest  # noqa: E402  (its TAP runner)

TOOLS_DIR = os.environ.get('VHU_TOOLS_DIR',
                           os.path.join(os.path.dirname(__file__), '..', 'build', 'tools'))
BACKEND = os.path.join(TOOLS_DIR, 'vhost-user-net')
TESTPMD = shutil.which('dpdk-testpmd')
PROMPT = b'testpmd> '
# testpmd prints with stdio (block-buffered into a pipe) but its prompt
# unbuffered: under stdbuf -o0 each command's output comes before the next
# prompt.
STEP_TIMEOUT = 30  # seconds for one step (start-up, a command, exit)

# Every child, killed at exit even when the run is cut short (a busy-polling
# testpmd left behind would take a CPU for good).
_CHILDREN = []


@atexit.register
def _kill_children():
    for proc in _CHILDREN:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def listening(path):
    """Whether a unix socket listens at @path (/proc/net/unix, no connection)."""
    with open('/proc/net/unix') as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return True
    return False


class Backend:
    def __init__(self, sock_path, log_path, *args):
        self.log_path = log_path
        with open(log_path, 'w') as log:
            # Its debug messages count the frames of each queue pair.
            self.proc = subprocess.Popen([BACKEND, '--socket-path=' + sock_path, *args],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         env=dict(os.environ,
                                                  G_MESSAGES_DEBUG='vhost-user-net'))
        _CHILDREN.append(self.proc)
        deadline = time.monotonic() + STEP_TIMEOUT
        while not listening(sock_path):
            if self.proc.poll() is not None:
                raise AssertionError('vhost-user-net exited with %d: %s'
                                     % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise AssertionError('vhost-user-net did not listen on ' + sock_path)
            time.sleep(0.01)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def terminate(self):
        """SIGTERM; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError('vhost-user-net ignored SIGTERM')
        return self.proc.returncode


def dpdk_runtime_dir(prefix):
    if os.getuid() == 0:
        base = '/var/run'
    else:
        base = os.environ.get('XDG_RUNTIME_DIR', '/tmp')
    return os.path.join(base, 'dpdk', prefix)


class Testpmd:
    """testpmd in interactive mode, fed through its stdin."""
    count = 0

    def __init__(self, sock_path, queues=1):
        cpus = sorted(os.sched_getaffinity(0))
        a, b = cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]
        Testpmd.count += 1
        self.prefix = 'vhu-net-%d-%d' % (os.getpid(), Testpmd.count)
        self.proc = subprocess.Popen(
            ['stdbuf', '-o0', TESTPMD, '--no-huge', '-m', '256', '--no-pci', '--no-shconf', '--no-telemetry',
             '--file-prefix', self.prefix, '--lcores', '0@%d,1@%d' % (a, b),
             '--vdev', 'net_virtio_user0,path=%s,queues=%d,queue_size=256' % (sock_path, queues),
             '--', '-i', '--total-num-mbufs=16384', '--rxq=%d' % queues, '--txq=%d' % queues],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _CHILDREN.append(self.proc)
        atexit.register(shutil.rmtree, dpdk_runtime_dir(self.prefix), ignore_errors=True)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.out = b''
        self.prompts = 0
        self.wait_prompt()

    def wait_prompt(self):
        """Reads up to the next prompt; returns what came before it."""
        deadline = time.monotonic() + STEP_TIMEOUT
        start = len(self.out)
        while self.out.count(PROMPT) <= self.prompts:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('testpmd: no prompt within %ds:\n%s'
                                     % (STEP_TIMEOUT, self.out.decode(errors='replace')))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = self.proc.stdout.read()
                if not chunk:
                    self.proc.wait()
                    raise AssertionError('testpmd exited (%d):\n%s'
                                         % (self.proc.returncode,
                                            self.out.decode(errors='replace')))
                self.out += chunk
        self.prompts += 1
        end = self.out.index(PROMPT, start) if PROMPT in self.out[start:] else len(self.out)
        return self.out[start:end].decode(errors='replace')

    def command(self, line):
        self.proc.stdin.write(line.encode() + b'\n')
        self.proc.stdin.flush()
        return self.wait_prompt()

    def stats(self):
        """The port's counters: RX/TX packets and bytes, errors, rates."""
        text = self.command('show port stats 0')
        values = {}
        for key in ('RX-packets', 'RX-missed', 'RX-bytes', 'RX-errors', 'RX-nombuf',
                    'TX-packets', 'TX-errors', 'TX-bytes', 'Rx-pps', 'Tx-pps'):
            m = re.search(re.escape(key) + r':\s*(\d+)', text)
            if m is None:
                raise AssertionError('no %s in:\n%s' % (key, text))
            values[key] = int(m.group(1))
        return values

    def quit(self):
        """quit: returns the exit status (-SIGPIPE if the back-end dropped it)."""
        try:
            self.proc.stdin.write(b'quit\n')
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        deadline = time.monotonic() + STEP_TIMEOUT
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                self.out += self.proc.stdout.read() or b''
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(dpdk_runtime_dir(self.prefix), ignore_errors=True)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if not f.closed:
                try:
                    f.close()
                except BrokenPipeError:
                    pass
        shutil.rmtree(dpdk_runtime_dir(self.prefix), ignore_errors=True)


class DpdkLoopbackTest(unittest.TestCase):
    def setUp(self):
        self.assertIsNotNone(TESTPMD, 'dpdk-testpmd is missing (.ci/install-deps installs dpdk-dev)')
        self.assertTrue(os.access(BACKEND, os.X_OK), BACKEND + ' is not built')
        self.tmp = tempfile.TemporaryDirectory(prefix='vhu-dpdk-net-')
        self.sock = os.path.join(self.tmp.name, 'net.sock')
        self.backend = Backend(self.sock, os.path.join(self.tmp.name, 'backend.log'),
                               '--loopback')
        self.testpmds = []

    def tearDown(self):
        for t in self.testpmds:
            t.kill()
        status = self.backend.terminate()
        log = self.backend.log()
        self.tmp.cleanup()
        self.assertEqual(status, 0, 'vhost-user-net exited with %d:\n%s' % (status, log))

    def spawn_testpmd(self, sock=None, queues=1):
        t = Testpmd(sock or self.sock, queues)
        self.testpmds.append(t)
        return t

    def wait_all_back(self, t, what):
        """Polls the counters until every packet sent came back (RX == TX)."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            s = t.stats()
            if s['RX-packets'] == s['TX-packets']:
                return s
            if time.monotonic() > deadline:
                self.fail('%s: %d packets sent, %d came back' % (what, s['TX-packets'],
                                                                 s['RX-packets']))
            time.sleep(0.05)

    def exact_round(self, t, bursts, length, before, queues):
        """start tx_first @bursts (per queue) in rxonly mode with @length-byte
        packets."""
        t.command('set txpkts %d' % length)
        t.command('start tx_first %d' % bursts)
        self.wait_all_back(t, 'tx_first %d' % bursts)
        t.command('stop')
        s = t.stats()
        sent = s['TX-packets'] - before['TX-packets']
        # Some bursts may find the rings full (TX-dropped by testpmd, not
        # counted as sent); every packet counted as sent came back.
        self.assertGreaterEqual(sent, 32)
        self.assertLessEqual(sent, bursts * 32 * queues)
        self.assertEqual(s['RX-packets'], s['TX-packets'])
        self.assertEqual(s['RX-bytes'], s['TX-bytes'])
        self.assertEqual(s['TX-bytes'] - before['TX-bytes'], sent * length)
        self.assertEqual(s['RX-errors'], 0)
        self.assertEqual(s['RX-missed'], 0)
        self.assertEqual(s['TX-errors'], 0)
        return s

    def exact_session(self, t, queues=1):
        t.command('set fwd rxonly')
        s = {'TX-packets': 0, 'TX-bytes': 0}
        # One burst, then more than the two rings hold (256 + 256): the
        # back-end waits for receive buffers and resumes.
        for bursts, length in ((1, 64), (64, 64), (8, 1500), (3, 60)):
            s = self.exact_round(t, bursts, length, s, queues)
        return s

    def test_rxonly_every_packet_back(self):
        t = self.spawn_testpmd()
        s = self.exact_session(t)
        print('rxonly: %d packets, %d bytes sent and received' % (s['TX-packets'], s['TX-bytes']),
              file=sys.stderr)
        self.assertEqual(t.quit(), 0, 'testpmd did not exit cleanly')

    def test_io_forwarding(self):
        t = self.spawn_testpmd()
        t.command('set fwd io')
        t.command('start tx_first 7')  # 224 packets circulate
        t.stats()
        time.sleep(2)
        rates = t.stats()
        t.command('stop')
        s = t.stats()
        mpps = rates['Rx-pps'] / 1e6
        print('io forwarding through the loopback, 64-byte packets: %.3f Mpps '
              '(%d packets in %s)' % (mpps, s['RX-packets'], 'this run'), file=sys.stderr)
        # Each packet received was sent again: at most the 224 of tx_first
        # are on their way back when forwarding stops.
        self.assertGreater(s['RX-packets'], 224)
        self.assertGreaterEqual(s['TX-packets'], s['RX-packets'])
        self.assertLessEqual(s['TX-packets'] - s['RX-packets'], 224)
        self.assertEqual(s['RX-errors'], 0)
        self.assertEqual(t.quit(), 0)

    def test_two_queue_pairs(self):
        # virtio-user keeps the control queue to itself and enables the
        # second pair with SET_VRING_ENABLE; testpmd sends on both.
        sock = os.path.join(self.tmp.name, 'mq.sock')
        backend = Backend(sock, os.path.join(self.tmp.name, 'mq.log'), '--loopback',
                          '--queue-pairs=2')
        try:
            t = self.spawn_testpmd(sock, queues=2)
            s = self.exact_session(t, queues=2)
            self.assertEqual(t.quit(), 0)
        finally:
            status = backend.terminate()
        log = backend.log()
        self.assertEqual(status, 0, log)
        pairs = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
            r'pair (\d+): (\d+) frames sent by the driver, (\d+) received', log)}
        self.assertEqual(sorted(pairs), [0, 1], log)
        for sent, received in pairs.values():
            self.assertGreater(sent, 0, log)
            self.assertEqual(sent, received, log)
        self.assertEqual(sum(sent for sent, _ in pairs.values()), s['TX-packets'], log)

    def queue_mode_session(self, name, *options):
        sock = os.path.join(self.tmp.name, name + '.sock')
        backend = Backend(sock, os.path.join(self.tmp.name, name + '.log'), '--loopback',
                          *options)
        try:
            t = self.spawn_testpmd(sock)
            s = self.exact_session(t)
            print('%s: %d packets, %d bytes sent and received'
                  % (name, s['TX-packets'], s['TX-bytes']), file=sys.stderr)
            # Once more after a restart of testpmd: the rings start again on
            # the worker.
            self.assertEqual(t.quit(), 0)
            t = self.spawn_testpmd(sock)
            self.exact_session(t)
            t.command('set fwd io')
            t.command('start tx_first 4')
            time.sleep(0.5)
        finally:
            # SIGTERM with testpmd connected and forwarding (the queues
            # busy): the back-end exits 0.
            status = backend.terminate()
        log = backend.log()
        self.assertEqual(status, 0, log)
        t.kill()
        pairs = {int(m.group(1)): (int(m.group(2)), int(m.group(3))) for m in re.finditer(
            r'pair (\d+): (\d+) frames sent by the driver, (\d+) received', log)}
        self.assertEqual(sorted(pairs), [0], log)

    def test_poll_worker_thread(self):
        self.queue_mode_session('poll', '--queue-mode=poll', '--threads=1')

    def test_adaptive(self):
        self.queue_mode_session('adaptive', '--queue-mode=adaptive', '--poll-us=20')

    def test_reconnect(self):
        for i in range(3):
            t = self.spawn_testpmd()
            self.exact_session(t)
            self.assertEqual(t.quit(), 0, 'testpmd %d did not exit cleanly' % i)
            self.assertIsNone(self.backend.proc.poll(), 'vhost-user-net exited')


if __name__ == '__main__':
    def interrupt(signum, frame):
        raise KeyboardInterrupt('SIGTERM')

    signal.signal(signal.SIGTERM, interrupt)
    vhuguest.tap_main()
