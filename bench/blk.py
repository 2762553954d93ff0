#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""bench/blk.py: fio in the tiny guest against tools/vhost-user-blk, as a
ratio of qemu-storage-daemon's vhost-user-blk export serving the same
image, measured in the same run.

Usage: /usr/bin/python3 bench/blk.py BUILDDIR [--runs N] [--seconds S]
           [--aio io_uring|threads] [--image-mib N] [--pin] [--jobs LIST] [--json FILE]

The guest (tests/guest/vhuguest.py: Debian's kernel, busybox; QEMU under
KVM when it works, else TCG) gets Debian's fio and the shared libraries it
needs (ldd) as an extra cpio layer, built once into the guest cache. Per
boot it runs four fio jobs on /dev/vda (vhost-user-blk-pci, one queue),
libaio, direct=1, time_based: 4 KiB random reads at queue depth 1 and 16,
1 MiB sequential reads and writes.

The back-ends, both on the same raw image file, cached alike:
  ours: BUILDDIR/tools/vhost-user-blk --blk-file=IMG --aio=AIO
  peer: qemu-storage-daemon --blockdev driver=file,cache.direct=off,aio=AIO
        --blockdev driver=raw --export type=vhost-user-blk,writable=on
Our back-end opens the image without O_DIRECT (tools/vhu-blk-device.c), so
the peer gets cache.direct=off too: both go through the host page cache,
both offer a writeback cache to the guest (flushes become fdatasync), both
do asynchronous I/O with io_uring (or worker threads with --aio=threads).

Per job: IOPS (4 KiB jobs) or bandwidth (1 MiB jobs) from fio's own
report, and the back-end's CPU seconds (user + system of all its threads,
/proc/PID/stat) per I/O, sampled when the guest starts and ends each job.
Under TCG the guest is the bottleneck, so the CPU per I/O is the telling
figure. Boots alternate ours, peer, ours, peer, ...: each ratio is ours
over the peer run right after it; the table gives min / median / max over
--runs pairs.

QEMU and the back-end are not pinned by default: with QEMU 7.2 under TCG
pinned to one CPU (--pin), a boot now and then never sees some requests
complete (1 MiB jobs; with either back-end, and with qemu-storage-daemon's
aio=threads too). The guest notices (a job outlives its runtime by
JOB_GRACE seconds), prints what is in flight, and that boot is made again
(at most twice); the table's notes count such boots.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRCDIR, 'tests', 'guest'))
import benchlib  # noqa: E402
import vhuguest  # noqa: E402

QSD = shutil.which('qemu-storage-daemon')
FIO = shutil.which('fio')

# name, fio rw, block size, queue depth, figure
JOBS = (
    ('randread-4k-qd1', 'randread', '4k', 1, 'IOPS'),
    ('randread-4k-qd16', 'randread', '4k', 16, 'IOPS'),
    ('seqread-1m', 'read', '1m', 4, 'MB/s'),
    ('seqwrite-1m', 'write', '1m', 4, 'MB/s'),
)

GOAL_RATE = ('>=', 1.0)
GOAL_CPU = ('<=', 0.7)

# Seconds a fio job may take beyond its runtime (start-up, ramp-down).
JOB_GRACE = 30

GUEST_FIO = '/opt/fio/lib/ld-linux-x86-64.so.2 --library-path /opt/fio/lib /opt/fio/fio'


def fio_layer(cache_dir):
    """A cpio layer with fio in /opt/fio and every library ldd lists in
    /opt/fio/lib (run through the dynamic loader there), cached by the
    identity of those files."""
    if FIO is None:
        raise SystemExit('blk: fio is missing (.ci/install-deps installs it)')
    out = subprocess.run(['ldd', FIO], capture_output=True, text=True, check=True).stdout
    files = {'/opt/fio/fio': FIO}
    for line in out.splitlines():
        m = re.match(r'\s*(\S+) => (/\S+) \(', line)
        if m:
            files['/opt/fio/lib/' + m.group(1)] = m.group(2)
            continue
        m = re.match(r'\s*(/\S+) \(', line)
        if m:  # the dynamic loader
            files['/opt/fio/lib/' + os.path.basename(m.group(1))] = m.group(1)
    if '/opt/fio/lib/ld-linux-x86-64.so.2' not in files:
        raise SystemExit('blk: ldd %s shows no ld-linux-x86-64.so.2:\n%s' % (FIO, out))
    identity = hashlib.sha256()
    for name in sorted(files):
        st = os.stat(files[name])
        identity.update(('%s %s %d %d\n' % (name, os.path.realpath(files[name]), st.st_size,
                                            st.st_mtime_ns)).encode())
    path = os.path.join(cache_dir, 'fio-layer-%s.cpio' % identity.hexdigest()[:16])
    if not os.path.exists(path):
        benchlib.log('blk: building the fio layer %s (%d files)' % (path, len(files)))
        os.makedirs(cache_dir, exist_ok=True)
        tmp = '%s.tmp%d' % (path, os.getpid())
        with open(tmp, 'wb') as f:
            f.write(vhuguest.file_layer(files))
        os.replace(tmp, path)
    return path


# Run by the guest when a fio job outlives its runtime by JOB_GRACE seconds:
# what the block layer still has in flight, then whether one more request
# (a new kick, and an interrupt if it completes) gets things going again.
GUEST_HUNG = '''echo "BENCH hung $1: in flight (reads writes): $(cat /sys/block/vda/inflight)"
dd if=/dev/vda of=/dev/null bs=4096 count=1 skip=1 iflag=direct 2>/dev/null &
sleep 5
echo "BENCH after one more read: in flight (reads writes): $(cat /sys/block/vda/inflight)"
kill -9 $2
'''


def guest_script(seconds, jobs):
    lines = ['FIO="%s"' % GUEST_FIO,
             '$FIO --version >/dev/null || { echo "BENCH fio does not run"; exit 1; }',
             "cat > /tmp/hung <<'EOF'\n%sEOF" % GUEST_HUNG,
             'echo "BENCH sectors $(cat /sys/block/vda/size)"']
    for name, rw, bs, depth, _figure in jobs:
        lines += [
            'echo "BENCH start %s"; read -r reply' % name,
            '$FIO --name=%s --filename=/dev/vda --ioengine=libaio --direct=1 --thread '
            '--rw=%s --bs=%s --iodepth=%d --time_based --runtime=%g --norandommap '
            '--randrepeat=0 --eta=never --output-format=json --output=/tmp/%s.json '
            '>/tmp/%s.log 2>&1 &' % (name, rw, bs, depth, seconds, name, name),
            # A job that does not end in time fails the boot at once.
            'pid=$!; (sleep %d; sh /tmp/hung %s $pid) & watchdog=$!'
            % (seconds + JOB_GRACE, name),
            'wait $pid; rc=$?; kill $watchdog 2>/dev/null',
            '[ $rc -eq 0 ] || { echo "BENCH failed %s: exit $rc"; cat /tmp/%s.log; exit 1; }'
            % (name, name),
            'echo "BENCH end %s"; read -r reply' % name,
            'echo "BENCH json %s $(tr -d \'\\n\' < /tmp/%s.json)"' % (name, name),
        ]
    return '\n'.join(lines) + '\n'


class Backend:
    def __init__(self, argv, sock, cpu, log_path):
        self.log = open(log_path, 'ab')
        if cpu is not None:
            argv = ['taskset', '-c', str(cpu)] + argv
        self.proc = vhuguest.start_backend(argv, sock, stdin=subprocess.DEVNULL,
                                           stdout=self.log, stderr=subprocess.STDOUT)

    def close(self):
        status = vhuguest.stop_backend(self.proc)
        self.log.close()
        return status


class BootHung(RuntimeError):
    """A fio job's I/O did not complete: the guest reported requests in
    flight long after the job's runtime."""


def run_boot(name, argv, args, jobs, layer, tmp, qemu_cpu, backend_cpu):
    """Boots the guest once against a back-end; returns {job: {'rate', 'cpu'}}."""
    sock = os.path.join(tmp, 'blk.sock')
    log_path = os.path.join(tmp, '%s.log' % name)
    backend = Backend(argv, sock, backend_cpu, log_path)
    samples = {}
    reports = {}

    def on_line(line, send):
        words = line.split(' ', 3)
        if len(words) < 3 or words[0] != 'BENCH':
            return
        if words[1] in ('start', 'end'):
            samples[(words[2], words[1])] = benchlib.cpu_seconds(backend.proc.pid)
            send('go\n')
        elif words[1] == 'json' and len(words) == 4:
            reports[words[2]] = json.loads(words[3])

    old_affinity = os.sched_getaffinity(0)
    try:
        if qemu_cpu is not None:
            # QEMU inherits the affinity of this process.
            os.sched_setaffinity(0, {qemu_cpu})
        result = vhuguest.run_guest(
            guest_script(args.seconds, jobs),
            qemu_args=['-chardev', 'socket,id=c0,path=' + sock,
                       '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1'],
            mem_mib=512, timeout=60 + len(jobs) * (args.seconds + JOB_GRACE), on_line=on_line,
            extra_layers=[layer])
    finally:
        os.sched_setaffinity(0, old_affinity)
        status = backend.close()
    with open(log_path, errors='replace') as f:
        log = f.read()
    if result.returncode != 0:
        output = '\n'.join(line[:200] for line in result.output.split('\n')[-80:])
        hung = [line for line in result.output.split('\n') if line.startswith('BENCH hung ')]
        raise (BootHung if hung else RuntimeError)('blk: the guest failed against %s (%s):\n'
                           '--- guest output (tail) ---\n%s\n--- back-end ---\n%s'
                           % (name, 'guest watchdog expired' if result.timed_out
                              else 'exit %s' % result.returncode, output, log[-3000:]))
    if status != 0:
        benchlib.log('blk: %s exited with %d:\n%s' % (name, status, log[-2000:]))
    figures = {}
    for job, _rw, _bs, _depth, figure in jobs:
        report = reports[job]['jobs'][0]
        if report.get('error'):
            raise RuntimeError('blk: fio %s against %s: error %d' % (job, name, report['error']))
        side = report['write'] if _rw == 'write' else report['read']
        ios = side['total_ios']
        rate = side['iops'] if figure == 'IOPS' else side['bw_bytes'] / 1e6
        cpu = samples[(job, 'end')] - samples[(job, 'start')]
        figures[job] = {'rate': rate, 'cpu': cpu / ios if ios else None, 'ios': ios}
    return figures, result.accel


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('builddir')
    parser.add_argument('--runs', type=int, default=5, help='pairs of boots (default 5)')
    parser.add_argument('--seconds', type=float, default=5.0, help='runtime of each fio job')
    parser.add_argument('--aio', choices=('io_uring', 'threads'), default='io_uring')
    parser.add_argument('--image-mib', type=int, default=256)
    parser.add_argument('--jobs', default=','.join(j[0] for j in JOBS),
                        help='fio jobs to run (default: all of %s)' % ', '.join(j[0] for j in JOBS))
    parser.add_argument('--pin', action='store_true',
                        help='pin QEMU to the first CPU and the back-end to the second (QEMU '
                        '7.2 under TCG then loses a request now and then: see above)')
    parser.add_argument('--json', help='also write the rows to this file (for run-all.py)')
    args = parser.parse_args()

    build = os.path.abspath(args.builddir)
    names = [j for j in args.jobs.split(',') if j]
    jobs = [j for j in JOBS if j[0] in names]
    if len(jobs) != len(set(names)):
        raise SystemExit('blk: unknown job in %r (jobs: %s)'
                         % (args.jobs, ', '.join(j[0] for j in JOBS)))
    os.environ.setdefault('VHU_GUEST_CACHE', os.path.join(build, 'guest-cache'))
    binary = os.path.join(build, 'tools', 'vhost-user-blk')
    if not os.access(binary, os.X_OK):
        raise SystemExit('blk: %s is not built (ninja -C BUILDDIR tools/vhost-user-blk)' % binary)
    if QSD is None:
        raise SystemExit('blk: qemu-storage-daemon is missing (.ci/install-deps installs '
                         'qemu-system-common)')
    vhuguest.build_guest()
    layer = fio_layer(os.environ['VHU_GUEST_CACHE'])
    qemu_cpu, backend_cpu = benchlib.cpus()
    if not args.pin or qemu_cpu == backend_cpu:
        qemu_cpu = backend_cpu = None

    caching = ('caching: host page cache on both (ours opens the image without O_DIRECT; '
               'qemu-storage-daemon cache.direct=off), writeback cache offered to the guest by '
               'both, aio=%s on both' % args.aio)
    print('blk: %d pairs of boots, fio jobs of %g s, %d MiB image; %s; %s'
          % (args.runs, args.seconds, args.image_mib,
             'QEMU on CPU %d, back-end on CPU %d' % (qemu_cpu, backend_cpu)
             if qemu_cpu is not None else 'QEMU and back-end not pinned', caching), flush=True)

    mine_all, theirs_all = [], []
    accel = None
    with tempfile.TemporaryDirectory(prefix='vhu-bench-blk-') as tmp:
        image = os.path.join(tmp, 'disk.img')
        # Written out (not sparse), so both read real page-cache pages.
        with open(image, 'wb') as f:
            chunk = os.urandom(1 << 20)
            for _ in range(args.image_mib):
                f.write(chunk)
        sock = os.path.join(tmp, 'blk.sock')
        ours = [binary, '--socket-path=' + sock, '--blk-file=' + image, '--aio=' + args.aio]
        peer = [QSD,
                '--blockdev', 'driver=file,node-name=file0,filename=%s,cache.direct=off,aio=%s'
                % (image, args.aio),
                '--blockdev', 'driver=raw,node-name=disk0,file=file0',
                '--export', 'type=vhost-user-blk,id=export0,node-name=disk0,addr.type=unix,'
                'addr.path=%s,writable=on,num-queues=1' % sock]
        hangs = {'ours': 0, 'qemu-storage-daemon': 0}

        def boot(name, argv):
            # A boot whose I/O hangs is reported and made again (twice at
            # most), so that one hang does not lose the whole table.
            for attempt in range(3):
                try:
                    return run_boot(name, argv, args, jobs, layer, tmp, qemu_cpu, backend_cpu)
                except BootHung as e:
                    hangs[name] += 1
                    if attempt == 2:
                        raise
                    hung = [line for line in str(e).split('\n') if line.startswith('BENCH hung')]
                    print('blk: %s: %s; booting again' % (name, hung[0][6:]), flush=True)
            raise AssertionError('not reached')

        for run in range(args.runs):
            mine, accel = boot('ours', ours)
            theirs, accel = boot('qemu-storage-daemon', peer)
            mine_all.append(mine)
            theirs_all.append(theirs)
            for job, _rw, _bs, _depth, figure in jobs:
                m, t = mine[job], theirs[job]
                print('blk: run %d %-17s ours %8.1f %-4s %6.2f us CPU/IO | qsd %8.1f %-4s '
                      '%6.2f us CPU/IO | ratio %.2fx, CPU %.2fx'
                      % (run + 1, job, m['rate'], figure, (m['cpu'] or 0) * 1e6, t['rate'],
                         figure, (t['cpu'] or 0) * 1e6, m['rate'] / t['rate'] if t['rate'] else 0,
                         m['cpu'] / t['cpu'] if m['cpu'] and t['cpu'] else 0), flush=True)

    rows = []
    for job, _rw, _bs, _depth, figure in jobs:
        rows.append(benchlib.Row('blk', '%s %s' % (figure, job), figure,
                                 [r[job]['rate'] for r in mine_all],
                                 [r[job]['rate'] for r in theirs_all], GOAL_RATE))
        rows.append(benchlib.Row('blk', 'CPU/IO %s' % job, 'us',
                                 [r[job]['cpu'] * 1e6 if r[job]['cpu'] else None
                                  for r in mine_all],
                                 [r[job]['cpu'] * 1e6 if r[job]['cpu'] else None
                                  for r in theirs_all], GOAL_CPU))
    notes = ['blk: peer = qemu-storage-daemon vhost-user-blk export; guest accel %s; %s'
             % (accel, caching)]
    for name, count in hangs.items():
        if count:
            notes.append('blk: %d boot(s) against %s hung (guest I/O never completed) and were '
                         'made again' % (count, name))
    print()
    print(benchlib.format_table(rows))
    for n in notes:
        print(n)
    if args.json:
        benchlib.write_results(args.json, rows, notes)


if __name__ == '__main__':
    main()
