#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# tools/vhost-user-net --tap in a real guest: QEMU's virtio-net-pci on a
# vhost-user netdev, Linux's virtio_net driver, and a tap interface on the
# host. Everything on the host side lives in a network namespace the test
# creates (the only networks this sandbox allows, with TEST-NET-1
# addresses): the tap (192.0.2.1), the back-end and an HTTP server. The
# guest (192.0.2.2) pings the host, the host pings the guest, and files go
# both ways over TCP (checksum offloads, mergeable receive buffers, frames
# of the MTU QEMU sets with NET_SET_MTU). A second boot runs two queue
# pairs on a multi-queue tap, with traffic pinned to the second pair.
#
# Environment: VHU_TOOLS_DIR, VHU_GUEST_CACHE (see tests/meson.build).

import atexit
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                'guest'))
import vhuguest  # noqa: E402

HOST_IP = '192.0.2.1'
GUEST_IP = '192.0.2.2'
MAC = '52:54:00:12:34:56'
TAP = 'vhutap0'
PORT = 8080
DATA_SIZE = 256 * 1024
MTU = 1400

# The host's HTTP server, in the namespace: GET /data sends the file named
# on its command line, POST /upload answers "SHA256 LENGTH" of the body.
HTTP_SERVER = r'''
import hashlib, http.server, sys
data = open(sys.argv[1], 'rb').read()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def reply(self, body):
        self.send_response(200)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(data)
    def do_POST(self):
        n = int(self.headers['Content-Length'])
        body = self.rfile.read(n)
        self.reply(('%s %d\n' % (hashlib.sha256(body).hexdigest(), len(body))).encode())
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((sys.argv[2], int(sys.argv[3])), Handler)
print('listening', flush=True)
server.serve_forever()
'''

GUEST_SETUP = r'''
ip link set lo up
ip link set eth0 up
ip addr add %(guest)s/24 dev eth0
echo "mac $(cat /sys/class/net/eth0/address)"
echo "mtu $(cat /sys/class/net/eth0/mtu)"
echo "features $(cat /sys/class/net/eth0/device/features)"
echo "queues $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
ping -c 3 -W 10 %(host)s > /tmp/ping 2>&1
echo "ping-status $?"
echo "ping-replies $(grep -c 'bytes from %(host)s' /tmp/ping)"
''' % {'guest': GUEST_IP, 'host': HOST_IP}

# $1: a name, $2: a CPU mask for taskset. Downloads /data, uploads about as much.
GUEST_TRANSFER = r'''
transfer() {
  taskset $2 wget -q -O /tmp/down-$1 http://%(host)s:%(port)d/data
  echo "$1 get-status $?"
  echo "$1 got $(sha256sum /tmp/down-$1 | cut -d' ' -f1) $(wc -c < /tmp/down-$1)"
  # Text: busybox wget posts a file as a C string.
  head -c %(raw)d /dev/urandom | base64 > /tmp/up-$1
  echo "$1 sent $(sha256sum /tmp/up-$1 | cut -d' ' -f1) $(wc -c < /tmp/up-$1)"
  taskset $2 wget -q -O /tmp/resp-$1 --post-file /tmp/up-$1 http://%(host)s:%(port)d/upload
  echo "$1 post-status $?"
  echo "$1 host-got $(cat /tmp/resp-$1)"
}
''' % {'host': HOST_IP, 'port': PORT, 'raw': DATA_SIZE * 3 // 4}

GUEST_STATS = r'''
for s in rx_errors tx_errors rx_dropped rx_length_errors; do
  echo "stat $s $(cat /sys/class/net/eth0/statistics/$s)"
done
'''


# What a test left in place, removed even when the test is cut short (meson
# sends SIGTERM on a timeout): namespace -> processes running in it.
_LEFT = {}


def _remove_namespace(ns, procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run('ip', 'netns', 'exec', ns, 'ip', 'link', 'del', TAP, check=False)
    run('ip', 'netns', 'del', ns, check=False)


@atexit.register
def _remove_left():
    for ns, procs in list(_LEFT.items()):
        _remove_namespace(ns, procs)
    _LEFT.clear()


def run(*argv, check=True):
    return subprocess.run(argv, check=check, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def net_program():
    path = os.path.join(vhuguest.tools_dir(), 'vhost-user-net')
    if not os.access(path, os.X_OK):
        raise AssertionError('%s is missing: build the project first '
                             '(VHU_TOOLS_DIR=<build>/tools)' % path)
    return path


class GuestNetTest(unittest.TestCase):

    def setUp(self):
        self.net = net_program()
        if os.geteuid() != 0:
            self.skipTest('network namespaces and taps need root')
        if shutil.which('ip') is None:
            raise AssertionError('ip (iproute2) is missing: .ci/install-deps installs it')
        self.tmp = tempfile.TemporaryDirectory(prefix='vhu-guest-net-')
        self.addCleanup(self.tmp.cleanup)
        self.sock = os.path.join(self.tmp.name, 'net.sock')
        self.ns = 'vhu-net-%d' % os.getpid()
        self.procs = []
        proc = run('ip', 'netns', 'add', self.ns, check=False)
        if proc.returncode != 0:
            self.skipTest('cannot create a network namespace: ' + proc.stdout.strip())
        _LEFT[self.ns] = self.procs
        # Runs last: the processes in the namespace first, then the tap,
        # then the namespace.
        self.addCleanup(self._delete_namespace)
        self.addCleanup(self._close_pipes)
        self.data = os.urandom(DATA_SIZE)
        with open(os.path.join(self.tmp.name, 'data'), 'wb') as f:
            f.write(self.data)

    def _close_pipes(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def _delete_namespace(self):
        _remove_namespace(self.ns, _LEFT.pop(self.ns))
        self.assertNotIn(self.ns, run('ip', 'netns', 'list').stdout.split())

    def in_ns(self, *argv):
        return ['ip', 'netns', 'exec', self.ns, *argv]

    def make_tap(self, multi_queue=False):
        run(*self.in_ns('ip', 'link', 'set', 'lo', 'up'))
        run(*self.in_ns('ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap', 'vnet_hdr',
                        *(['multi_queue'] if multi_queue else [])))
        run(*self.in_ns('ip', 'addr', 'add', HOST_IP + '/24', 'dev', TAP))
        run(*self.in_ns('ip', 'link', 'set', TAP, 'up'))

    def start_http_server(self):
        proc = subprocess.Popen(
            self.in_ns(sys.executable, '-c', HTTP_SERVER, os.path.join(self.tmp.name, 'data'),
                       HOST_IP, str(PORT)),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        self.assertEqual(proc.stdout.readline().strip(), 'listening')

    def start_backend(self, *args):
        """The back-end in the namespace (ip netns exec execs it: same
        process); it listens once /proc/PID/net/unix, the namespace's
        view, shows its socket."""
        self.backend_log = os.path.join(self.tmp.name, 'backend.log')
        with open(self.backend_log, 'w') as log:
            proc = subprocess.Popen(
                self.in_ns(self.net, '--tap=' + TAP, '--socket-path=' + self.sock,
                           '--mac=' + MAC, *args),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, G_MESSAGES_DEBUG='vhost-user-net'))
        self.procs.append(proc)
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                with open(self.backend_log) as log:
                    self.fail('vhost-user-net exited with %d: %s' % (proc.returncode,
                                                                     log.read()))
            try:
                with open('/proc/%d/net/unix' % proc.pid) as f:
                    if any(line.split()[-1] == self.sock for line in f.readlines()[1:]):
                        return proc
            except FileNotFoundError:
                pass
            self.assertLess(time.monotonic(), deadline, 'vhost-user-net did not listen')
            time.sleep(0.02)

    def stop_backend(self, proc):
        status = vhuguest.stop_backend(proc)
        with open(self.backend_log) as f:
            log = f.read()
        self.assertEqual(status, 0, log)
        return log

    def qemu_args(self, queues=1):
        netdev = 'vhost-user,id=n0,chardev=c1'
        device = 'virtio-net-pci,netdev=n0,vectors=0,mac=%s,host_mtu=%d' % (MAC, MTU)
        if queues > 1:
            netdev += ',queues=%d' % queues
            device += ',mq=on'
        return ['-chardev', 'socket,id=c1,path=' + self.sock,
                '-netdev', netdev, '-device', device]

    def on_line_ping_guest(self, pings):
        def on_line(line, send):
            if line == 'ping-me':
                proc = run(*self.in_ns('busybox', 'ping', '-c', '3', '-W', '10', GUEST_IP),
                           check=False)
                pings.append(proc)
                send('%d\n' % proc.returncode)
        return on_line

    def check_setup(self, r, queues):
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertEqual(r.lines('mac '), [MAC], r.describe())
        # QEMU passed host_mtu on with NET_SET_MTU, and offers it.
        self.assertEqual(r.lines('mtu '), [str(MTU)], r.describe())
        features = r.lines('features ')[0]
        for bit in (0, 1, 15):  # CSUM, GUEST_CSUM, MRG_RXBUF from the back-end
            self.assertEqual(features[bit], '1', 'feature bit %d: %s' % (bit, features))
        want_queues = ['rx-%d' % i for i in range(queues)] + ['tx-%d' % i for i in range(queues)]
        self.assertEqual(sorted(r.lines('queues ')[0].split()), want_queues)
        self.assertEqual(r.lines('ping-status '), ['0'], r.describe())
        self.assertEqual(r.lines('ping-replies '), ['3'], r.describe())

    def check_transfer(self, r, name):
        want = hashlib.sha256(self.data).hexdigest()
        self.assertEqual(r.lines(name + ' get-status '), ['0'], r.describe())
        self.assertEqual(r.lines(name + ' got '), ['%s %d' % (want, DATA_SIZE)], r.describe())
        self.assertEqual(r.lines(name + ' post-status '), ['0'], r.describe())
        sent = r.lines(name + ' sent ')
        self.assertEqual(len(sent), 1)
        self.assertGreater(int(sent[0].split()[1]), DATA_SIZE)
        self.assertEqual(r.lines(name + ' host-got '), sent, r.describe())

    def check_stats(self, r):
        for line in r.lines('stat '):
            name, value = line.split()
            self.assertEqual(value, '0', '%s: %s\n%s' % (name, value, r.describe()))

    def pair_counts(self, log):
        """pair -> (frames sent by the guest, frames received), from the
        back-end's debug messages at the disconnection."""
        counts = {}
        for m in re.finditer(r'pair (\d+): (\d+) frames sent by the driver, (\d+) received',
                             log):
            counts[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        return counts

    def test_single_queue(self):
        started = time.monotonic()
        self.make_tap()
        self.start_http_server()
        backend = self.start_backend()
        pings = []
        script = GUEST_SETUP + GUEST_TRANSFER + r'''
ping -c 2 -s %d -W 10 %s > /tmp/ping 2>&1
echo "mtu-ping-status $?"
transfer a 1
echo ping-me
read -r reply
echo "host-ping $reply"
''' % (MTU - 28, HOST_IP) + GUEST_STATS
        r = vhuguest.run_guest(script, qemu_args=self.qemu_args(), timeout=90,
                               on_line=self.on_line_ping_guest(pings))
        log = self.stop_backend(backend)
        print('single queue: boot %.2f s, guest %.2f s, test %.2f s'
              % (r.boot_time, r.wall_time, time.monotonic() - started), file=sys.stderr)
        self.check_setup(r, 1)
        self.assertEqual(r.lines('mtu-ping-status '), ['0'], r.describe())
        self.check_transfer(r, 'a')
        self.assertEqual(len(pings), 1, r.describe())
        self.assertEqual(pings[0].returncode, 0, pings[0].stdout)
        self.assertIn('3 packets received', pings[0].stdout)
        self.assertEqual(r.lines('host-ping '), ['0'])
        self.check_stats(r)
        counts = self.pair_counts(log)
        self.assertGreater(counts[0][0], 0, log)
        self.assertGreater(counts[0][1], 0, log)

    def test_two_queue_pairs(self):
        started = time.monotonic()
        self.make_tap(multi_queue=True)
        self.start_http_server()
        backend = self.start_backend('--queue-pairs=2')
        pings = []
        # With two CPUs and two pairs Linux maps CPU n's transmissions to
        # pair n (XPS); the tap sends a flow's frames back on the queue the
        # flow came from.
        script = GUEST_SETUP + GUEST_TRANSFER + r'''
transfer cpu0 1
transfer cpu1 2
echo ping-me
read -r reply
echo "host-ping $reply"
''' + GUEST_STATS
        r = vhuguest.run_guest(script, qemu_args=self.qemu_args(queues=2), smp=2, timeout=90,
                               on_line=self.on_line_ping_guest(pings))
        log = self.stop_backend(backend)
        print('two queue pairs: boot %.2f s, guest %.2f s, test %.2f s'
              % (r.boot_time, r.wall_time, time.monotonic() - started), file=sys.stderr)
        self.check_setup(r, 2)
        self.check_transfer(r, 'cpu0')
        self.check_transfer(r, 'cpu1')
        self.assertEqual(pings[0].returncode, 0, pings[0].stdout)
        self.check_stats(r)
        counts = self.pair_counts(log)
        for pair in (0, 1):
            self.assertIn(pair, counts, log)
            self.assertGreater(counts[pair][0], 0, log)
            self.assertGreater(counts[pair][1], 0, log)
        print('frames per pair (sent by the guest, received): %r' % counts, file=sys.stderr)


if __name__ == '__main__':
    # A timeout's SIGTERM stops the run (unittest lets KeyboardInterrupt
    # through) and still removes the namespace (atexit).
    def interrupt(signum, frame):
        raise KeyboardInterrupt('SIGTERM')

    signal.signal(signal.SIGTERM, interrupt)
    vhuguest.tap_main()
