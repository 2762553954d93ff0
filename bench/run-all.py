#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""bench/run-all.py: every benchmark in one command, and one table.

Usage: /usr/bin/python3 bench/run-all.py [BUILDDIR] [--parts LIST] [--runs N]
           [--net-modes LIST] [--net-seconds S] [--blk-seconds S] [--no-build]
           [--json FILE]

Parts (default: all there are):
  hotpath  bench/run-hotpath.py: device-side instructions per request
           (callgrind, repeatable); goal: <= 200 for a 2-descriptor pop+push
  net      bench/net.py: tools/vhost-user-net --loopback against DPDK's
           net_vhost with testpmd virtio-user as the front-end; goals:
           poll mode >= 1.0x DPDK's packets per second, event mode >= 0.5x
  blk      bench/blk.py: fio in the tiny guest, tools/vhost-user-blk against
           qemu-storage-daemon; goals: IOPS (bandwidth) >= 1.0x, back-end
           CPU per I/O <= 0.7x
  ramdisk  bench/python-ramdisk.py: the Python RAM disk as a share of the
           same device in C (no goal; best of --runs, not paired)

Every ratio is ours / peer over pairs of adjacent runs (ours, peer, ours,
peer, ...), printed as min / median / max; a goal is judged on the median.
The absolute medians beside the ratios are for a feel only: on a shared
machine they move from run to run, the ratios much less.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchlib  # noqa: E402

PYTHON = '/usr/bin/python3' if os.access('/usr/bin/python3', os.X_OK) else sys.executable
PARTS = ('hotpath', 'net', 'blk', 'ramdisk')
TARGETS = {
    'hotpath': ['bench/hotpath'],
    'net': ['tools/vhost-user-net'],
    'blk': ['tools/vhost-user-blk'],
    'ramdisk': ['bench/ramdisk'],
}
HOTPATH_GOAL = ('<=', 200)


def run_part(argv, limit):
    """Runs a part, its output going through to ours; returns (status,
    output). A part still running after @limit seconds is killed (status
    'timed out')."""
    print('\n=== %s' % ' '.join(argv), flush=True)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    out = []

    def kill():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    timer = threading.Timer(limit, kill)
    timer.start()
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            out.append(line)
        status = proc.wait()
    finally:
        timer.cancel()
    if status == -signal.SIGKILL:
        status = 'timed out after %d s' % limit
    return status, ''.join(out)


def hotpath(build):
    status, out = run_part([PYTHON, os.path.join(HERE, 'run-hotpath.py'), build], 600)
    if status != 0:
        return [], ['hotpath: bench/run-hotpath.py failed (exit %s)' % status]
    rows = []
    for m in re.finditer(r'^(\d+)\s+(direct|indirect)\s+[\d.]+\s+([\d.]+)\s*$', out, re.M):
        descs, layout, instr = int(m.group(1)), m.group(2), float(m.group(3))
        goal = HOTPATH_GOAL if (descs, layout) == (2, 'direct') else None
        rows.append(benchlib.Value('hotpath', 'instructions/request %d desc %s'
                                   % (descs, layout), instr, goal))
    if not rows:
        return [], ['hotpath: no figures in the output of bench/run-hotpath.py']
    return rows, ['hotpath: device-side instructions per pop+push (callgrind), not a ratio']


def json_part(name, argv, tmp, limit):
    path = os.path.join(tmp, name + '.json')
    status, _out = run_part(argv + ['--json', path], limit)
    if status != 0 or not os.path.exists(path):
        return [], ['%s: %s failed (exit %s)' % (name, os.path.basename(argv[1]), status)]
    return benchlib.read_results(path)


def ramdisk(build, runs):
    script = os.path.join(HERE, 'python-ramdisk.py')
    status, out = run_part([PYTHON, script, build, '--repeat', str(max(1, runs))],
                           120 + 60 * runs)
    if status != 0:
        return [], ['ramdisk: bench/python-ramdisk.py failed (exit %s)' % status]
    rows = []
    for m in re.finditer(r'^(Python[^\d]*?)\s+(\d+)\s+([\d.]+)%\s+([\d.]+)\s+([\d.]+)%\s*$',
                         out, re.M):
        name = m.group(1).strip().replace('Python, ', 'Python ')
        rows.append(benchlib.Value('ramdisk', 'requests/s of C, %s' % name,
                                   float(m.group(3)) / 100, unit='x'))
        rows.append(benchlib.Value('ramdisk', 'CPU/request of C, %s' % name,
                                   100 / float(m.group(5)) if float(m.group(5)) else None,
                                   unit='x'))
    if not rows:
        return [], ['ramdisk: no figures in the output of bench/python-ramdisk.py']
    return rows, ['ramdisk: Python RAM disk / C RAM disk, best of %d runs each (not paired)'
                  % max(1, runs)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('builddir', nargs='?', default=os.path.join(SRCDIR, 'build'))
    parser.add_argument('--parts', default=','.join(PARTS),
                        help='comma-separated parts to run (default: %s)' % ','.join(PARTS))
    parser.add_argument('--runs', type=int, default=5, help='pairs of runs (default 5)')
    parser.add_argument('--net-modes', default='event,poll',
                        help='queue modes of our net back-end (modes it lacks are skipped)')
    parser.add_argument('--net-seconds', type=float, default=3.0)
    parser.add_argument('--blk-seconds', type=float, default=5.0)
    parser.add_argument('--no-build', action='store_true',
                        help='do not run ninja for the programs the parts need')
    parser.add_argument('--json', help='also write every row to this file')
    args = parser.parse_args()

    build = os.path.abspath(args.builddir)
    parts = [p for p in args.parts.split(',') if p]
    for p in parts:
        if p not in PARTS:
            raise SystemExit('unknown part %r (parts: %s)' % (p, ', '.join(PARTS)))
    if 'ramdisk' in parts and not os.path.exists(os.path.join(HERE, 'python-ramdisk.py')):
        print('run-all: no bench/python-ramdisk.py: skipping the ramdisk part', flush=True)
        parts.remove('ramdisk')
    if args.runs < 1:
        raise SystemExit('--runs must be at least 1')
    if not args.no_build:
        targets = [t for p in parts for t in TARGETS[p]]
        subprocess.run(['ninja', '-C', build] + targets, check=True)

    started = time.monotonic()
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix='vhu-bench-all-') as tmp:
        for part in parts:
            if part == 'hotpath':
                r, n = hotpath(build)
            elif part == 'net':
                r, n = json_part('net', [PYTHON, os.path.join(HERE, 'net.py'), build,
                                         '--runs', str(args.runs), '--modes', args.net_modes,
                                         '--seconds', str(args.net_seconds)], tmp,
                                   # 2 traffics x 2 modes x 2 back-ends, 30 s slack each
                                   120 + args.runs * 8 * (args.net_seconds + 30))
            elif part == 'blk':
                r, n = json_part('blk', [PYTHON, os.path.join(HERE, 'blk.py'), build,
                                         '--runs', str(args.runs),
                                         '--seconds', str(args.blk_seconds)], tmp,
                                   # 2 boots of 4 jobs, with the guest's own time limits
                                   600 + args.runs * 2 * (60 + 4 * (args.blk_seconds + 30)))
            else:
                r, n = ramdisk(build, args.runs)
            rows += r
            notes += n

    print('\n=== Summary (%d pairs of runs, %.0f s in all; ratios are ours / peer)'
          % (args.runs, time.monotonic() - started))
    print(benchlib.format_table(rows))
    for n in notes:
        print(n)
    if args.json:
        benchlib.write_results(args.json, rows, notes)
    missed = [r for r in rows if r.verdict() == 'NOT met']
    failed = [n for n in notes if 'failed' in n or 'no figures' in n]
    print('goals: %d met, %d not met%s'
          % (sum(1 for r in rows if r.verdict() == 'met'), len(missed),
             '; %d part(s) failed' % len(failed) if failed else ''))
    # Missed goals are results, not errors; a part that could not run is.
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
