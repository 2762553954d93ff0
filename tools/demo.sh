#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# tools/demo.sh BUILDDIR: the library serving a device to a real front-end.
#
# Builds nothing: it uses BUILDDIR/tools/vhost-user-blk. In a temporary
# directory it makes a fresh 64 MiB raw image, serves it with
# vhost-user-blk, boots a tiny Linux guest under QEMU (tests/guest/vhuguest.py;
# the first run fetches Debian's kernel into BUILDDIR/guest-cache) that writes
# random data to the disk with O_DIRECT and reads it back, and prints the
# checksums, what the front-end negotiated with the back-end, and the result.
# Everything is stopped and removed afterwards. Exits 0 when the data came
# back intact and the back-end exited cleanly.

set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 BUILDDIR" >&2
  exit 2
fi

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=$(cd "$1" && pwd)
blk=$builddir/tools/vhost-user-blk
if [ ! -x "$blk" ]; then
  echo "demo: $blk is missing: build the project first (meson compile -C $1)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vhu-demo-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

export VHU_GUEST_CACHE=${VHU_GUEST_CACHE:-$builddir/guest-cache}
export PYTHONPATH=$srcdir/tests/guest${PYTHONPATH:+:$PYTHONPATH}

exec /usr/bin/python3 - "$blk" "$tmp" <<'EOF'
import hashlib
import re
import sys
import time

import vhuguest

MIB = 1024 * 1024
blk, tmp = sys.argv[1], sys.argv[2]
image = tmp + '/disk.img'
sock = tmp + '/blk.sock'
log_path = tmp + '/vhost-user-blk.log'
DATA_MIB = 4
OFFSET_MIB = 1

with open(image, 'wb') as f:
    f.truncate(64 * MIB)

print('== libvhostuser-glib demo: vhost-user-blk serving a QEMU guest ==')
print('image:     %s (64 MiB, raw)' % image)
argv = [blk, '--socket-path=' + sock, '--blk-file=' + image,
        '--serial=vhu-demo', '--verbose']
print('back-end:  %s' % ' '.join(argv))
started = time.monotonic()
vhuguest.build_guest()
with open(log_path, 'wb') as log:
    backend = vhuguest.start_backend(argv, sock, stderr=log)
print('front-end: qemu-system-x86_64 (%s) with -device vhost-user-blk-pci'
      % vhuguest.guest_accel())

script = r'''
q=/sys/block/vda
echo "R disk $(cat $q/size) sectors, serial $(cat $q/serial), cache $(cat $q/queue/write_cache)"
head -c %(bytes)d /dev/urandom > /tmp/data
echo "R written $(sha256sum < /tmp/data | cut -d' ' -f1)"
dd if=/tmp/data of=/dev/vda bs=65536 seek=%(seek)d oflag=direct conv=notrunc,fsync 2>/dev/null \
  || echo "R write failed"
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda bs=65536 skip=%(seek)d count=%(count)d iflag=direct 2>/dev/null > /tmp/back
echo "R read $(sha256sum < /tmp/back | cut -d' ' -f1)"
''' % {'bytes': DATA_MIB * MIB, 'seek': OFFSET_MIB * 16, 'count': DATA_MIB * 16}

try:
    result = vhuguest.run_guest(
        script,
        qemu_args=['-chardev', 'socket,id=c0,path=' + sock,
                   '-device', 'vhost-user-blk-pci,chardev=c0'],
        timeout=90)
finally:
    status = vhuguest.stop_backend(backend)

with open(log_path, encoding='utf-8', errors='replace') as f:
    log = f.read()
with open(image, 'rb') as f:
    f.seek(OFFSET_MIB * MIB)
    on_host = hashlib.sha256(f.read(DATA_MIB * MIB)).hexdigest()

values = {}
for line in result.lines('R '):
    key, _sep, value = line.partition(' ')
    values[key] = value
written, read = values.get('written'), values.get('read')

print()
print('guest:     %s' % values.get('disk', '(no disk seen)'))
print('guest:     wrote %d MiB of random data with O_DIRECT, sha256 %s'
      % (DATA_MIB, written))
print('guest:     read it back with O_DIRECT,              sha256 %s' % read)
print('host:      the image file holds,                    sha256 %s' % on_host)
print()
print('what the front-end negotiated (the back-end\'s log; the device starts twice:')
print('for the firmware, SeaBIOS, then for Linux\'s virtio_blk):')
for line in log.splitlines():
    if re.search(r'negotiated|queue \d+ started|requests so far|I/O by', line):
        print('  ' + line)
print()

ok = (result.returncode == 0 and written is not None and written == read == on_host
      and 'write failed' not in values and status == 0)
print('guest boot and run: %.1f s; whole demo: %.1f s'
      % (result.wall_time, time.monotonic() - started))
print('back-end exit status: %d' % status)
if ok:
    print('result: OK: the data came back intact through vhost-user-blk')
    sys.exit(0)
print('result: FAILED')
print(result.describe())
print('--- back-end log ---')
print(log)
sys.exit(1)
EOF
