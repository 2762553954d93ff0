#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""bench/net.py: packets per second of tools/vhost-user-net --loopback as a
ratio of DPDK's own vhost-user back-end, measured in the same run.

Usage: /usr/bin/python3 bench/net.py BUILDDIR [--runs N] [--modes event,poll]
           [--traffic flowgen,io] [--seconds S] [--json FILE]

The front-end is DPDK 22.11's testpmd with a virtio-user port (no VM). The
back-ends, both loopbacks (every frame the front-end transmits comes back
on its receive queue):
  ours: BUILDDIR/tools/vhost-user-net --loopback, in each queue mode of
        --modes that the binary supports (event: the default, kicks wake
        it; adaptive: --queue-mode=adaptive, polls a while after work;
        poll: --queue-mode=poll or --poll; a mode the binary lacks is
        skipped, saying so);
  peer: a second testpmd with --vdev net_vhost0 (DPDK's rte_vhost) in io
        forwarding mode with a loop topology: it sends what it receives
        back out of the same port.

Traffic (64-byte frames, testpmd's `set txpkts 64`):
  flowgen: the front-end transmits as fast as it can and receives (and
        frees) what comes back (testpmd's txonly mode never receives, so
        flowgen is the "front-end sends, back-end loops back" mode);
  io:   the front-end forwards what it receives back out, primed with
        `start tx_first N` (N bursts of 32 frames circulate).
The figure is the front-end's receive rate (testpmd's Rx-pps between two
`show port stats` S seconds apart, after a warm-up), and the back-end's
CPU seconds (user + system, /proc/PID/stat) per million packets looped.

Both sides busy-poll (the front-end always; DPDK's back-end always), so on
two cores each gets one: taskset pins the front-end to the first CPU and
the back-end to the second, and each testpmd's lcores (main and forwarding)
share its CPU. Runs alternate ours, peer, ours, peer, ...: each ratio is
ours over the peer run right after it, and the table gives min / median /
max over --runs pairs.
"""

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

TESTPMD = shutil.which('dpdk-testpmd')
PROMPT = b'testpmd> '
STEP_TIMEOUT = 30
BURST = 32

# Goals: a ratio of the peer's packets per second, per queue mode.
GOALS = {'event': ('>=', 0.5), 'poll': ('>=', 1.0)}
# How each queue mode is asked for, by the option the binary's --help shows.
MODE_OPTIONS = {
    'event': [],
    'adaptive': [('--queue-mode', ['--queue-mode=adaptive'])],
    'poll': [('--queue-mode', ['--queue-mode=poll']), ('--poll', ['--poll'])],
}


def listening(path):
    """Whether a unix socket listens at @path (/proc/net/unix, no connection)."""
    with open('/proc/net/unix', encoding='utf-8', errors='replace') as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return True
    return False


def dpdk_runtime_dir(prefix):
    base = '/var/run' if os.getuid() == 0 else os.environ.get('XDG_RUNTIME_DIR', '/tmp')
    return os.path.join(base, 'dpdk', prefix)


class Testpmd:
    """testpmd in interactive mode on one CPU, fed through its stdin."""
    count = 0

    def __init__(self, cpu, vdev, extra=()):
        Testpmd.count += 1
        self.prefix = 'vhu-bench-%d-%d' % (os.getpid(), Testpmd.count)
        argv = ['taskset', '-c', str(cpu), 'stdbuf', '-o0', TESTPMD,
                '--no-huge', '-m', '256', '--no-pci', '--no-shconf', '--no-telemetry',
                '--file-prefix', self.prefix, '--lcores', '0@%d,1@%d' % (cpu, cpu),
                '--vdev', vdev, '--', '-i', '--total-num-mbufs=16384'] + list(extra)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.out = b''
        self.prompts = 0
        self.wait_prompt()

    @property
    def pid(self):
        # taskset and stdbuf exec the program: same process.
        return self.proc.pid

    def wait_prompt(self):
        deadline = time.monotonic() + STEP_TIMEOUT
        start = len(self.out)
        while self.out.count(PROMPT) <= self.prompts:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError('testpmd: no prompt within %d s:\n%s'
                                   % (STEP_TIMEOUT, self.out[-4000:].decode(errors='replace')))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = self.proc.stdout.read()
                if not chunk:
                    self.proc.wait()
                    raise RuntimeError('testpmd exited (%d):\n%s'
                                       % (self.proc.returncode,
                                          self.out[-4000:].decode(errors='replace')))
                self.out += chunk
        self.prompts += 1
        rest = self.out[start:]
        return rest[:rest.index(PROMPT)].decode(errors='replace')

    def command(self, line):
        self.proc.stdin.write(line.encode() + b'\n')
        self.proc.stdin.flush()
        return self.wait_prompt()

    def stats(self):
        text = self.command('show port stats 0')
        values = {}
        for key in ('RX-packets', 'RX-bytes', 'TX-packets', 'Rx-pps', 'Tx-pps'):
            m = re.search(re.escape(key) + r':\s*(\d+)', text)
            if m is None:
                raise RuntimeError('no %s in:\n%s' % (key, text))
            values[key] = int(m.group(1))
        return values

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'quit\n')
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            deadline = time.monotonic() + STEP_TIMEOUT
            while self.proc.poll() is None and time.monotonic() < deadline:
                ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
                if ready:
                    self.out += self.proc.stdout.read() or b''
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except (BrokenPipeError, ValueError):
                pass
        shutil.rmtree(dpdk_runtime_dir(self.prefix), ignore_errors=True)


class OurBackend:
    def __init__(self, binary, sock, cpu, options, log_path):
        self.log = open(log_path, 'wb')
        self.proc = subprocess.Popen(['taskset', '-c', str(cpu), binary,
                                      '--socket-path=' + sock, '--loopback'] + options,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STEP_TIMEOUT
        while not listening(sock):
            if self.proc.poll() is not None:
                raise RuntimeError('%s exited with %d (log: %s)'
                                   % (binary, self.proc.returncode, log_path))
            if time.monotonic() > deadline:
                raise RuntimeError('%s did not listen on %s' % (binary, sock))
            time.sleep(0.01)

    @property
    def pid(self):
        return self.proc.pid

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class PeerBackend:
    """DPDK's vhost-user back-end: testpmd with net_vhost0, io forwarding
    from the port back to itself."""

    def __init__(self, sock, cpu):
        self.pmd = Testpmd(cpu, 'net_vhost0,iface=%s,queues=1' % sock,
                           ['--forward-mode=io', '--port-topology=loop'])
        self.pmd.command('start')

    @property
    def pid(self):
        return self.pmd.pid

    def close(self):
        self.pmd.close()
        return 0


def supported_modes(binary, wanted):
    """{mode: options} for the modes of @wanted the binary has; prints the
    ones it lacks."""
    help_text = subprocess.run([binary, '--help'], capture_output=True, text=True).stdout
    modes = {}
    for mode in wanted:
        if mode not in MODE_OPTIONS:
            raise SystemExit('unknown queue mode %r (known: %s)'
                             % (mode, ', '.join(MODE_OPTIONS)))
        if not MODE_OPTIONS[mode]:
            modes[mode] = []
            continue
        for option, argv in MODE_OPTIONS[mode]:
            if re.search(re.escape(option) + r'\b', help_text):
                modes[mode] = argv
                break
        else:
            print('net: skipping queue mode %s: %s --help shows none of %s'
                  % (mode, os.path.basename(binary),
                     ', '.join(o for o, _ in MODE_OPTIONS[mode])), flush=True)
    return modes


def measure(backend_factory, sock, traffic, args, fe_cpu):
    """One run: a back-end, a front-end, warm-up, then Mpps and back-end CPU
    seconds per million packets over args.seconds."""
    backend = backend_factory()
    frontend = None
    try:
        frontend = Testpmd(fe_cpu, 'net_virtio_user0,path=%s,queues=1,queue_size=256' % sock)
        frontend.command('set txpkts 64')
        if traffic == 'flowgen':
            frontend.command('set fwd flowgen')
            frontend.command('start')
        else:
            frontend.command('set fwd io')
            frontend.command('start tx_first %d' % args.io_bursts)
        time.sleep(args.warmup)
        before = frontend.stats()
        cpu0 = benchlib.cpu_seconds(backend.pid)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        after = frontend.stats()
        cpu1 = benchlib.cpu_seconds(backend.pid)
        t1 = time.monotonic()
        frontend.command('stop')
        packets = after['RX-packets'] - before['RX-packets']
        # testpmd's own rate over the interval between the two shows (TSC).
        mpps = after['Rx-pps'] / 1e6
        if packets <= 0:
            mpps = 0.0
        elif abs(mpps - packets / (t1 - t0) / 1e6) > 0.2 * mpps:
            # A stalled or late `show`: count over the host's clock instead.
            mpps = packets / (t1 - t0) / 1e6
        frame = (after['RX-bytes'] - before['RX-bytes']) / packets if packets else 0
        cpu_per_mpkt = (cpu1 - cpu0) / (packets / 1e6) if packets else None
        return {'mpps': mpps, 'cpu': cpu_per_mpkt, 'busy': (cpu1 - cpu0) / (t1 - t0),
                'frame': frame}
    finally:
        if frontend is not None:
            frontend.close()
        status = backend.close()
        if status not in (0, None):
            benchlib.log('net: the back-end exited with %s' % status)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('builddir')
    parser.add_argument('--runs', type=int, default=5, help='pairs of runs (default 5)')
    parser.add_argument('--modes', default='event,poll',
                        help='queue modes of our back-end: event, adaptive, poll '
                        '(default event,poll)')
    parser.add_argument('--traffic', default='flowgen,io', help='flowgen, io or both')
    parser.add_argument('--seconds', type=float, default=3.0, help='measured interval')
    parser.add_argument('--warmup', type=float, default=1.0)
    parser.add_argument('--io-bursts', type=int, default=4,
                        help='io traffic: bursts of 32 frames primed by tx_first (default 4)')
    parser.add_argument('--json', help='also write the rows to this file (for run-all.py)')
    args = parser.parse_args()

    binary = os.path.join(os.path.abspath(args.builddir), 'tools', 'vhost-user-net')
    if TESTPMD is None:
        raise SystemExit('net: dpdk-testpmd is missing (.ci/install-deps installs dpdk-dev)')
    if not os.access(binary, os.X_OK):
        raise SystemExit('net: %s is not built (ninja -C BUILDDIR tools/vhost-user-net)' % binary)
    modes = supported_modes(binary, [m for m in args.modes.split(',') if m])
    traffics = [t for t in args.traffic.split(',') if t]
    for t in traffics:
        if t not in ('flowgen', 'io'):
            raise SystemExit('unknown traffic %r' % t)
    fe_cpu, be_cpu = benchlib.cpus()
    print('net: front-end testpmd on CPU %d, back-end on CPU %d; %d pairs of runs, %.1f s each '
          'after %.1f s of warm-up; io primed with %d x %d frames'
          % (fe_cpu, be_cpu, args.runs, args.seconds, args.warmup, args.io_bursts, BURST),
          flush=True)

    results = {(t, m): ([], []) for t in traffics for m in modes}
    frames = {}
    with tempfile.TemporaryDirectory(prefix='vhu-bench-net-') as tmp:
        sock = os.path.join(tmp, 'net.sock')
        log_path = os.path.join(tmp, 'backend.log')

        def ours(options):
            return lambda: OurBackend(binary, sock, be_cpu, options, log_path)

        def peer():
            return PeerBackend(sock, be_cpu)

        for run in range(args.runs):
            for traffic in traffics:
                for mode, options in modes.items():
                    mine = measure(ours(options), sock, traffic, args, fe_cpu)
                    theirs = measure(peer, sock, traffic, args, fe_cpu)
                    results[(traffic, mode)][0].append(mine)
                    results[(traffic, mode)][1].append(theirs)
                    frames[traffic] = mine['frame']
                    print('net: run %d %-7s %-5s ours %6.2f Mpps %7.3f cpu-s/Mpkt (busy %3.0f%%)'
                          ' | DPDK %6.2f Mpps %7.3f cpu-s/Mpkt (busy %3.0f%%) | ratio %.2fx'
                          % (run + 1, traffic, mode, mine['mpps'], mine['cpu'] or 0,
                             100 * mine['busy'], theirs['mpps'], theirs['cpu'] or 0,
                             100 * theirs['busy'],
                             mine['mpps'] / theirs['mpps'] if theirs['mpps'] else 0),
                          flush=True)

    rows = []
    for (traffic, mode), (mine, theirs) in results.items():
        rows.append(benchlib.Row('net', 'Mpps %s, %s mode' % (traffic, mode), 'Mpps',
                                 [r['mpps'] for r in mine], [r['mpps'] for r in theirs],
                                 GOALS.get(mode)))
        rows.append(benchlib.Row('net', 'CPU/packet %s, %s mode' % (traffic, mode), 's/Mpkt',
                                 [r['cpu'] for r in mine], [r['cpu'] for r in theirs]))
    notes = ['net: peer = dpdk-testpmd net_vhost0 (io forwarding, loop topology); '
             'frames of %s bytes as counted by testpmd; ratios > 1 mean more packets per '
             'second (Mpps) or more CPU per packet (CPU/packet)'
             % '/'.join('%.0f' % f for f in sorted(set(frames.values())))]
    print()
    print(benchlib.format_table(rows))
    for n in notes:
        print(n)
    if args.json:
        benchlib.write_results(args.json, rows, notes)


if __name__ == '__main__':
    main()
