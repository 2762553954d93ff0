# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
"""A tiny Linux guest for end-to-end tests of vhost-user back-ends.

The guest is Debian's own kernel (fetched with ``apt-get download``, never
installed) booted directly through its PVH entry, and an initramfs made of
busybox-static, the virtio modules and an ``/init`` that loads them, runs one
shell script, reports the script's exit status on the serial console and
powers off.  Under TCG a boot and power-off takes a few seconds.

Typical use::

    import vhuguest

    proc = vhuguest.start_backend([rng, '--socket-path=' + sock], sock)
    result = vhuguest.run_guest('dd if=/dev/hwrng bs=64 count=1 | wc -c',
                                qemu_args=['-chardev', 'socket,id=c0,path=' + sock,
                                           '-device', 'vhost-user-rng-pci,chardev=c0'])
    assert result.returncode == 0
    assert vhuguest.stop_backend(proc) == 0

Everything downloaded or built goes under a cache directory
(``$VHU_GUEST_CACHE``, else ``$XDG_CACHE_HOME/vhuguest``) and is reused by
later runs; a file lock makes concurrent test processes build it only once.

Standard library only: it runs under Debian's /usr/bin/python3.
"""

import fcntl
import json
import lzma
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

__all__ = [
    'GuestError',
    'GuestResult',
    'Qmp',
    'build_guest',
    'file_layer',
    'run_guest',
    'guest_accel',
    'guest_manifest',
    'start_backend',
    'stop_backend',
    'tap_main',
]

# Bump when the layout of the cache or the base initramfs changes.
_BUILD_VERSION = 1

KERNEL_META_PACKAGE = 'linux-image-amd64'

# Modules the guest loads at boot (with their dependencies).  Requested
# modules that the kernel has built in are skipped.
GUEST_MODULES = (
    'virtio_pci',
    'virtio_blk',
    'virtio_net',
    'virtio-rng',
    'virtio_console',
    'virtio_input',
    'virtiofs',
    'vmw_vsock_virtio_transport',
)

QEMU = os.environ.get('VHU_QEMU', 'qemu-system-x86_64')
BUSYBOX = '/bin/busybox'

# No dots in parameter names: "a.b=" would be taken as a module parameter.
_KERNEL_CMDLINE = 'console=ttyS0 quiet panic=-1 rdinit=/init'

# Extra time the host allows for the kernel to reach /init, on top of the
# guest's own watchdog, before it kills QEMU.
_HOST_GRACE = 60


class GuestError(RuntimeError):
    """The guest did not report a result (QEMU failed, the kernel panicked,
    the host-side limit expired) or the guest could not be built."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------
# Small helpers

def _log(message):
    print('vhuguest: ' + message, file=sys.stderr, flush=True)


def _default_cache_dir():
    env = os.environ.get('VHU_GUEST_CACHE')
    if env:
        return env
    base = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    return os.path.join(base, 'vhuguest')


def _run(argv, cwd=None):
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, check=False)
    if proc.returncode != 0:
        raise GuestError('%s failed (exit %d):\n%s%s'
                         % (' '.join(argv), proc.returncode, proc.stdout,
                            proc.stderr))
    return proc.stdout


class _FileLock:
    """An exclusive fcntl.flock on a file, as a context manager."""

    def __init__(self, path):
        self._path = path
        self._fd = -1

    def __enter__(self):
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                           0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1
        return False


def _write_atomic(path, data):
    tmp = '%s.tmp%d' % (path, os.getpid())
    with open(tmp, 'wb') as f:
        f.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# ELF bits: the .modinfo section of kernel modules, PT_INTERP of busybox

def _elf64_sections(data):
    """Yields (name, bytes) for each section of a little-endian ELF64 file."""
    if data[:4] != b'\x7fELF' or data[4] != 2 or data[5] != 1:
        raise GuestError('not a little-endian ELF64 file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)

    def header(index):
        return struct.unpack_from('<IIQQQQIIQQ', data, shoff + index * shentsize)

    strtab = header(shstrndx)
    stroff = strtab[4]
    for i in range(shnum):
        sh = header(i)
        name_end = data.index(b'\0', stroff + sh[0])
        name = data[stroff + sh[0]:name_end].decode('ascii', 'replace')
        sh_type, offset, size = sh[1], sh[4], sh[5]
        if sh_type == 8:  # SHT_NOBITS
            yield name, b''
        else:
            yield name, data[offset:offset + size]


def _modinfo(path):
    """The key=value pairs of a module's .modinfo section."""
    with open(path, 'rb') as f:
        data = f.read()
    info = {}
    for name, body in _elf64_sections(data):
        if name != '.modinfo':
            continue
        for item in body.split(b'\0'):
            key, sep, value = item.partition(b'=')
            if sep:
                info.setdefault(key.decode(), value.decode(errors='replace'))
    return info


def _elf_is_static(path):
    with open(path, 'rb') as f:
        data = f.read(65536)
    if data[:4] != b'\x7fELF' or data[4] != 2:
        return False
    phoff, = struct.unpack_from('<Q', data, 0x20)
    phentsize, phnum = struct.unpack_from('<HH', data, 0x36)
    for i in range(phnum):
        p_type, = struct.unpack_from('<I', data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            return False
    return True


def _modname(name):
    return name.replace('-', '_')


# ---------------------------------------------------------------------------
# cpio, "newc" format, written directly so no cpio tool is needed

class _Cpio:
    def __init__(self):
        self._chunks = []
        self._ino = 1000
        self._dirs = set()

    def _entry(self, name, mode, data=b'', nlink=1, rdev=(0, 0)):
        self._ino += 1
        encoded = name.encode() + b'\0'
        fields = (self._ino, mode, 0, 0, nlink, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(encoded), 0)
        header = b'070701' + b''.join(b'%08X' % v for v in fields)
        self._chunks.append(header + encoded)
        self._chunks.append(b'\0' * (-(len(header) + len(encoded)) % 4))
        self._chunks.append(data)
        self._chunks.append(b'\0' * (-len(data) % 4))

    def dir(self, name):
        name = name.strip('/')
        if not name or name in self._dirs:
            return
        self.dir(os.path.dirname(name))
        self._dirs.add(name)
        self._entry(name, stat.S_IFDIR | 0o755, nlink=2)

    def file(self, name, data, mode=0o644):
        name = name.strip('/')
        self.dir(os.path.dirname(name))
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        name = name.strip('/')
        self.dir(os.path.dirname(name))
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        name = name.strip('/')
        self.dir(os.path.dirname(name))
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def finish(self):
        """The archive, with its trailer, padded to 512 bytes so that
        another archive can follow it."""
        self._entry('TRAILER!!!', 0, nlink=1)
        archive = b''.join(self._chunks)
        return archive + b'\0' * (-len(archive) % 512)


# ---------------------------------------------------------------------------
# The guest's /init, run by busybox sh

_INIT = r'''#!/bin/sh
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /tmp /run
mount -t tmpfs tmpfs /tmp
. /vhu/config
# The watchdog: a hung script becomes a "timeout" result, never a hung test.
(
  sleep "$VHU_TIMEOUT"
  echo "$VHU_TAG:timeout"
  echo "$VHU_TAG:dmesg"
  dmesg
  poweroff -f
) </dev/null &
while read -r module; do
  insmod "/lib/modules/$module" || echo "$VHU_TAG:insmod-failed $module"
done </lib/modules/load-order
dmesg -n 1
stty -echo 2>/dev/null
echo "$VHU_TAG:begin"
cd /tmp
/bin/sh /vhu/script
rc=$?
cd /
echo "$VHU_TAG:exit $rc"
if [ "$rc" -ne 0 ]; then
  echo "$VHU_TAG:dmesg"
  dmesg
fi
poweroff -f
sleep 10
'''


# ---------------------------------------------------------------------------
# Building the guest

def _resolve_kernel_package():
    out = _run(['apt-cache', 'depends', KERNEL_META_PACKAGE])
    for line in out.splitlines():
        m = re.match(r'\s*\|?Depends:\s*(linux-image-\S+)', line)
        if m:
            return m.group(1)
    raise GuestError('apt-cache depends %s names no linux-image package:\n%s'
                     % (KERNEL_META_PACKAGE, out))


def _extract_vmlinux(bzimage_path):
    """The ELF vmlinux inside a bzImage: its xz-compressed payload."""
    with open(bzimage_path, 'rb') as f:
        data = f.read()
    magic = b'\xfd7zXZ\x00'
    start = data.find(magic)
    while start >= 0:
        try:
            vmlinux = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data[start:])
        except lzma.LZMAError:
            vmlinux = b''
        if vmlinux[:4] == b'\x7fELF':
            return vmlinux
        start = data.find(magic, start + 1)
    raise GuestError('%s has no xz-compressed ELF payload' % bzimage_path)


def _module_closure(modroot):
    """(load order, skipped built-ins) for GUEST_MODULES in the tree
    modroot (lib/modules/VERSION)."""
    paths = {}
    for dirpath, _dirs, files in os.walk(os.path.join(modroot, 'kernel')):
        for fname in files:
            if fname.endswith('.ko'):
                paths[_modname(fname[:-3])] = os.path.join(dirpath, fname)
    builtin = set()
    with open(os.path.join(modroot, 'modules.builtin'), encoding='utf-8') as f:
        for line in f:
            base = os.path.basename(line.strip())
            if base.endswith('.ko'):
                builtin.add(_modname(base[:-3]))

    order = []
    visiting = set()
    skipped = []

    def visit(name):
        if name in order:
            return
        if name in builtin:
            if name not in skipped:
                skipped.append(name)
            return
        if name not in paths:
            raise GuestError('kernel module %s is neither a module nor built in'
                             % name)
        if name in visiting:
            raise GuestError('module dependency loop at %s' % name)
        visiting.add(name)
        deps = _modinfo(paths[name]).get('depends', '')
        for dep in filter(None, deps.split(',')):
            visit(_modname(dep))
        visiting.discard(name)
        order.append(name)

    for module in GUEST_MODULES:
        visit(_modname(module))
    return [(name, paths[name]) for name in order], skipped


def _build_kernel(cache_dir):
    """Downloads and unpacks the kernel package; returns the stamp dict."""
    package = _resolve_kernel_package()
    kdir = os.path.join(cache_dir, package)
    stamp_path = os.path.join(kdir, 'stamp.json')
    try:
        with open(stamp_path, encoding='utf-8') as f:
            stamp = json.load(f)
        if stamp.get('version') == _BUILD_VERSION:
            return stamp
    except (OSError, ValueError):
        pass

    _log('building the guest kernel from %s in %s' % (package, kdir))
    shutil.rmtree(kdir, ignore_errors=True)
    os.makedirs(kdir)
    download = os.path.join(kdir, 'download')
    os.makedirs(download)
    try:
        _run(['apt-get', 'download', package], cwd=download)
    except GuestError as e:
        raise GuestError('%s\n(apt-get download needs the package lists: '
                         'run .ci/install-deps or apt-get update)' % e) from None
    debs = [f for f in os.listdir(download) if f.endswith('.deb')]
    if len(debs) != 1:
        raise GuestError('apt-get download %s left %r' % (package, debs))
    tree = os.path.join(kdir, 'tree')
    _run(['dpkg-deb', '-x', os.path.join(download, debs[0]), tree])

    boot = os.path.join(tree, 'boot')
    vmlinuz = [f for f in os.listdir(boot) if f.startswith('vmlinuz-')]
    if len(vmlinuz) != 1:
        raise GuestError('%s holds %r, expected one vmlinuz' % (boot, vmlinuz))
    release = vmlinuz[0][len('vmlinuz-'):]
    _write_atomic(os.path.join(kdir, 'vmlinux'),
                  _extract_vmlinux(os.path.join(boot, vmlinuz[0])))
    shutil.copy(os.path.join(boot, 'config-' + release),
                os.path.join(kdir, 'config'))

    modroot = os.path.join(tree, 'lib', 'modules', release)
    modules, builtin = _module_closure(modroot)
    moddir = os.path.join(kdir, 'modules')
    os.makedirs(moddir)
    for name, path in modules:
        shutil.copy(path, os.path.join(moddir, name + '.ko'))

    stamp = {
        'version': _BUILD_VERSION,
        'package': package,
        'deb': debs[0],
        'release': release,
        'modules': [name for name, _path in modules],
        'builtin': builtin,
    }
    shutil.rmtree(tree)
    shutil.rmtree(download)
    _write_atomic(stamp_path, json.dumps(stamp, indent=1).encode())
    return stamp


def _build_initramfs(kdir, kstamp, path):
    if not _elf_is_static(BUSYBOX):
        raise GuestError('%s is missing or not static: install busybox-static'
                         % BUSYBOX)
    applets = _run([BUSYBOX, '--list-full']).split()

    cpio = _Cpio()
    for d in ('dev', 'proc', 'sys', 'tmp', 'run', 'root', 'vhu',
              'bin', 'sbin', 'usr/bin', 'usr/sbin', 'lib/modules'):
        cpio.dir(d)
    cpio.chardev('dev/console', 5, 1)
    cpio.chardev('dev/null', 1, 3, 0o666)
    with open(BUSYBOX, 'rb') as f:
        cpio.file('bin/busybox', f.read(), 0o755)
    for applet in applets:
        if applet not in ('bin/busybox', 'linuxrc'):
            cpio.symlink(applet, '/bin/busybox')
    for name in kstamp['modules']:
        with open(os.path.join(kdir, 'modules', name + '.ko'), 'rb') as f:
            cpio.file('lib/modules/%s.ko' % name, f.read())
    cpio.file('lib/modules/load-order',
              ''.join('%s.ko\n' % n for n in kstamp['modules']).encode())
    cpio.file('init', _INIT.encode(), 0o755)
    _write_atomic(path, cpio.finish())


def build_guest(cache_dir=None):
    """Builds the guest once and returns (kernel, initrd) paths.

    The kernel is the PVH-bootable vmlinux of the package that
    linux-image-amd64 depends on; the initrd is the base initramfs
    (busybox-static, the GUEST_MODULES closure, /init).  run_guest appends a
    per-run layer with the script.  Results are cached under @cache_dir
    (default: $VHU_GUEST_CACHE) with a stamp; a file lock serialises
    concurrent builds.
    """
    cache_dir = os.path.abspath(cache_dir or _default_cache_dir())
    os.makedirs(cache_dir, exist_ok=True)
    stamp_path = os.path.join(cache_dir, 'guest.json')
    with _FileLock(os.path.join(cache_dir, '.lock')):
        try:
            with open(stamp_path, encoding='utf-8') as f:
                stamp = json.load(f)
            if (stamp.get('version') == _BUILD_VERSION
                    and os.path.exists(stamp['kernel'])
                    and os.path.exists(stamp['initrd'])):
                return stamp['kernel'], stamp['initrd']
        except (OSError, ValueError, KeyError):
            pass

        started = time.monotonic()
        kstamp = _build_kernel(cache_dir)
        kdir = os.path.join(cache_dir, kstamp['package'])
        initrd = os.path.join(cache_dir, 'initramfs-%s.cpio' % kstamp['release'])
        _build_initramfs(kdir, kstamp, initrd)
        stamp = {
            'version': _BUILD_VERSION,
            'kernel': os.path.join(kdir, 'vmlinux'),
            'initrd': initrd,
            'release': kstamp['release'],
            'modules': kstamp['modules'],
            'builtin': kstamp['builtin'],
        }
        _write_atomic(stamp_path, json.dumps(stamp, indent=1).encode())
        _log('guest built in %.1f s: kernel %s, modules %s (built in: %s)'
             % (time.monotonic() - started, kstamp['release'],
                ' '.join(kstamp['modules']), ' '.join(kstamp['builtin']) or '-'))
        return stamp['kernel'], stamp['initrd']


def guest_manifest(cache_dir=None):
    """What build_guest built: a dict with 'kernel', 'initrd', 'release'
    (the kernel release), 'modules' (loaded by /init, in order) and
    'builtin' (requested modules the kernel has built in)."""
    build_guest(cache_dir)
    cache_dir = os.path.abspath(cache_dir or _default_cache_dir())
    with open(os.path.join(cache_dir, 'guest.json'), encoding='utf-8') as f:
        return json.load(f)


# ---------------------------------------------------------------------------
# Running the guest

class GuestResult:
    """What a guest run reported.

    output: everything the script printed (stdout and stderr), lines
        joined with '\\n', carriage returns removed.
    returncode: the script's exit status as reported by /init, or None
        when the guest watchdog expired (then timed_out is True).
    timed_out: True when /init's watchdog cut the script short.
    accel: "kvm" or "tcg".
    console: the whole serial console log (kernel messages, markers).
    dmesg: the kernel log /init printed after a failure or timeout, or ''.
    boot_time: seconds from QEMU's start until the script started.
    wall_time: seconds from QEMU's start until it exited.
    qemu_returncode, qemu_stderr: QEMU's exit status and error output.
    """

    def __init__(self):
        self.output = ''
        self.returncode = None
        self.timed_out = False
        self.accel = None
        self.console = ''
        self.dmesg = ''
        self.boot_time = None
        self.wall_time = None
        self.qemu_returncode = None
        self.qemu_stderr = ''

    def lines(self, prefix=''):
        """The output lines that start with @prefix, with @prefix removed."""
        return [line[len(prefix):] for line in self.output.split('\n')
                if line.startswith(prefix)]

    def describe(self, tail=40):
        """A summary for assertion messages: the last @tail lines of the
        kernel log, of the script's output and of QEMU's errors."""
        def last(text):
            return '\n'.join(text.split('\n')[-tail:])

        return ('returncode=%r timed_out=%r accel=%s qemu_returncode=%r\n'
                '--- dmesg (tail) ---\n%s\n--- output (tail) ---\n%s\n'
                '--- qemu stderr (tail) ---\n%s'
                % (self.returncode, self.timed_out, self.accel,
                   self.qemu_returncode, last(self.dmesg), last(self.output),
                   last(self.qemu_stderr)))

    def __repr__(self):
        return ('<GuestResult returncode=%r timed_out=%r accel=%s>'
                % (self.returncode, self.timed_out, self.accel))


_accel_verdict = None
_accel_lock = threading.Lock()


def _kvm_openable():
    try:
        fd = os.open('/dev/kvm', os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _probe_kvm(cache_dir):
    """Whether a short boot under KVM reports a result."""
    try:
        probe = _run_guest_with('echo vhu-kvm-probe', (), 1, 128, timeout=10,
                                accel='kvm', host_limit=15,
                                cache_dir=cache_dir)
    except GuestError as e:
        _log('/dev/kvm does not boot the guest, using TCG: %s'
             % str(e).split('\n', 1)[0])
        return False
    return probe.returncode == 0 and probe.lines() == ['vhu-kvm-probe']


def guest_accel(cache_dir=None):
    """"kvm" when a short probe boot under KVM succeeds, else "tcg".

    $VHU_GUEST_ACCEL forces a choice.  The verdict is cached for the process
    and, keyed by the host's boot id, in the cache directory, so that the
    test processes of one run probe once.
    """
    global _accel_verdict
    with _accel_lock:
        if _accel_verdict is not None:
            return _accel_verdict
        forced = os.environ.get('VHU_GUEST_ACCEL')
        if forced:
            _accel_verdict = forced
            return forced
        if not _kvm_openable():
            _accel_verdict = 'tcg'
            return 'tcg'
        build_guest(cache_dir)
        cache_dir = os.path.abspath(cache_dir or _default_cache_dir())
        try:
            with open('/proc/sys/kernel/random/boot_id', encoding='ascii') as f:
                boot_id = f.read().strip()
        except OSError:
            boot_id = 'unknown'
        verdict_path = os.path.join(cache_dir, 'accel-' + boot_id)
        with _FileLock(os.path.join(cache_dir, '.accel-lock')):
            try:
                with open(verdict_path, encoding='ascii') as f:
                    verdict = f.read().strip()
            except OSError:
                verdict = ''
            if verdict not in ('kvm', 'tcg'):
                verdict = 'kvm' if _probe_kvm(cache_dir) else 'tcg'
                _write_atomic(verdict_path, verdict.encode())
        _accel_verdict = verdict
        return verdict


def file_layer(files):
    """An uncompressed cpio archive (bytes) of arbitrary files, for
    run_guest's extra_layers.

    files: a mapping of guest paths (e.g. '/opt/fio/fio') to a host path
        (its contents and permission bits are copied; symbolic links are
        followed) or to bytes (mode 0644) or to a (bytes, mode) pair.
        Directories are created as needed.
    """
    cpio = _Cpio()
    for name in sorted(files):
        source = files[name]
        if isinstance(source, (bytes, bytearray)):
            data, mode = bytes(source), 0o644
        elif isinstance(source, tuple):
            data, mode = bytes(source[0]), source[1]
        else:
            with open(source, 'rb') as f:
                data = f.read()
            mode = stat.S_IMODE(os.stat(source).st_mode)
        cpio.file(name, data, mode)
    return cpio.finish()


def _script_layer(script, timeout, tag):
    cpio = _Cpio()
    cpio.file('vhu/script', script.encode(), 0o755)
    cpio.file('vhu/config', ('VHU_TIMEOUT=%d\nVHU_TAG=%s\n'
                             % (timeout, tag)).encode())
    return cpio.finish()


class _Console:
    """Reads QEMU's serial output (its stdout) on a thread and follows the
    /init protocol."""

    def __init__(self, proc, tag, on_line, started):
        self._proc = proc
        self._tag = tag
        self._on_line = on_line
        self._started = started
        self.raw = []
        self.output = []
        self.dmesg = []
        self.returncode = None
        self.timed_out = False
        self.finished = False
        self.boot_time = None
        self.error = None
        self._state = 'boot'
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def send(self, text):
        """Writes @text to the guest's console input (the script's stdin)."""
        with self._send_lock:
            try:
                self._proc.stdin.write(text.encode())
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def _read(self):
        marker = self._tag + ':'
        for raw in iter(self._proc.stdout.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\r\n').replace('\r', '')
            self.raw.append(line)
            at = line.find(marker)
            if at >= 0:
                # SeaBIOS leaves its last line unterminated.
                word, _sep, arg = line[at + len(marker):].partition(' ')
                if word == 'begin':
                    self._state = 'script'
                    self.boot_time = time.monotonic() - self._started
                elif word == 'exit':
                    self._state = 'done'
                    self.finished = True
                    try:
                        self.returncode = int(arg)
                    except ValueError:
                        self.returncode = None
                elif word == 'timeout':
                    self._state = 'done'
                    self.finished = True
                    self.timed_out = True
                elif word == 'dmesg':
                    self._state = 'dmesg'
                continue
            if self._state == 'script':
                self.output.append(line)
                if self._on_line is not None and self.error is None:
                    try:
                        self._on_line(line, self.send)
                    except BaseException as e:  # re-raised by run_guest
                        self.error = e
                        self._proc.kill()
            elif self._state == 'dmesg':
                self.dmesg.append(line)

    def join(self):
        self._thread.join()


def _qemu_argv(kernel, initrd, accel, smp, mem_mib, qemu_args):
    argv = [
        QEMU,
        '-nographic', '-nodefaults', '-no-user-config', '-no-reboot',
        '-accel', accel,
        '-M', 'q35,memory-backend=mem',
        '-object', 'memory-backend-memfd,id=mem,size=%dM,share=on' % mem_mib,
        '-m', '%dM' % mem_mib,
        '-smp', str(smp),
        '-kernel', kernel,
        '-initrd', initrd,
        '-append', _KERNEL_CMDLINE,
        '-serial', 'stdio',
        '-monitor', 'none',
    ]
    if accel == 'kvm':
        argv += ['-cpu', 'host']
    return argv + list(qemu_args)


class Qmp:
    """A minimal QMP client, given to run_guest's before_start callback
    while the guest is paused (QEMU runs with -S)."""

    def __init__(self, path, proc, timeout=20):
        deadline = time.monotonic() + timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self._sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    self._sock.close()
                    raise GuestError('no QMP monitor at %s' % path) from None
                time.sleep(0.02)
        self._sock.settimeout(timeout)
        self._file = self._sock.makefile('rwb')
        self._receive()  # the greeting
        self.execute('qmp_capabilities')

    def _receive(self):
        while True:
            line = self._file.readline()
            if not line:
                raise GuestError('QEMU closed its QMP monitor')
            message = json.loads(line)
            if 'event' not in message:
                return message

    def execute(self, command, arguments=None):
        """Runs a QMP command; returns its "return" value or raises
        GuestError with QEMU's error description."""
        message = {'execute': command}
        if arguments:
            message['arguments'] = arguments
        self._file.write(json.dumps(message).encode() + b'\n')
        self._file.flush()
        reply = self._receive()
        if 'error' in reply:
            raise GuestError('QMP %s: %s' % (command, reply['error'].get('desc')))
        return reply.get('return')

    def wait_chardev_connected(self, label, timeout=10):
        """Waits until the socket chardev @label has connected (a chardev
        with reconnect=N connects in the background, after devices were
        realized)."""
        deadline = time.monotonic() + timeout
        while True:
            for chardev in self.execute('query-chardev'):
                if (chardev['label'] == label
                        and not chardev['filename'].startswith('disconnected:')):
                    return
            if time.monotonic() > deadline:
                raise GuestError('chardev %s did not connect within %d s'
                                 % (label, timeout))
            time.sleep(0.02)

    def close(self):
        self._file.close()
        self._sock.close()


def _run_guest_with(script, qemu_args, smp, mem_mib, timeout, accel,
                    host_limit=None, on_line=None, before_start=None,
                    cache_dir=None, extra_layers=()):
    kernel, base_initrd = build_guest(cache_dir)
    tag = 'VHU-' + secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix='vhuguest-') as tmp:
        initrd = os.path.join(tmp, 'initrd')
        with open(initrd, 'wb') as out, open(base_initrd, 'rb') as base:
            shutil.copyfileobj(base, out, 1 << 20)
            for layer in extra_layers:
                if isinstance(layer, (bytes, bytearray)):
                    out.write(layer)
                else:
                    with open(layer, 'rb') as f:
                        shutil.copyfileobj(f, out, 1 << 20)
            out.write(_script_layer(script, timeout, tag))
        argv = _qemu_argv(kernel, initrd, accel, smp, mem_mib, qemu_args)
        qmp_path = os.path.join(tmp, 'qmp.sock')
        if before_start is not None:
            argv += ['-S', '-qmp', 'unix:%s,server=on,wait=off' % qmp_path]
        stderr_path = os.path.join(tmp, 'qemu.stderr')
        result = GuestResult()
        result.accel = accel
        started = time.monotonic()
        with open(stderr_path, 'wb') as stderr:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=stderr,
                                    start_new_session=True)
        console = _Console(proc, tag, on_line, started)
        limit = host_limit if host_limit is not None else timeout + _HOST_GRACE
        qmp = None
        try:
            if before_start is not None:
                qmp = Qmp(qmp_path, proc)
                before_start(qmp)
                qmp.execute('cont')
            proc.wait(timeout=limit)
            host_killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            host_killed = True
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            console.join()
            if qmp is not None:
                qmp.close()
            proc.stdin.close()
            proc.stdout.close()
        result.wall_time = time.monotonic() - started
        result.qemu_returncode = proc.returncode
        with open(stderr_path, 'rb') as f:
            result.qemu_stderr = f.read().decode('utf-8', 'replace')

    result.output = '\n'.join(console.output)
    result.console = '\n'.join(console.raw)
    result.dmesg = '\n'.join(console.dmesg)
    result.returncode = console.returncode
    result.timed_out = console.timed_out
    result.boot_time = console.boot_time
    if console.error is not None:
        raise console.error
    if not console.finished:
        why = ('the host killed QEMU after %d s' % limit if host_killed
               else 'QEMU exited with status %d' % proc.returncode)
        raise GuestError('the guest reported no result: %s\n'
                         '--- console (tail) ---\n%s\n--- qemu stderr ---\n%s'
                         % (why, '\n'.join(console.raw[-60:]),
                            result.qemu_stderr[-4000:]), result)
    return result


def run_guest(script, qemu_args=(), smp=1, mem_mib=256, timeout=120,
              on_line=None, before_start=None, cache_dir=None, extra_layers=()):
    """Boots the guest, runs @script (busybox sh) in it and returns a
    GuestResult.

    qemu_args: extra QEMU arguments, e.g. ['-chardev',
        'socket,id=c0,path=SOCK', '-device', 'vhost-user-rng-pci,chardev=c0'].
        Guest RAM is a shared memfd, as vhost-user needs.
    timeout: seconds /init's watchdog gives the module loading and the script;
        then the result has timed_out set.  The host kills QEMU if no
        result arrives within timeout + 60 s and raises GuestError.
    on_line: optional callable(line, send), called on a reader thread for
        each line the script prints, as it prints it; send(text) writes to
        the script's standard input (the guest console), so a script can
        wait for the host with `read -r reply`.  An exception it raises
        kills QEMU and is re-raised here.
    before_start: optional callable(qmp): QEMU then starts paused (-S) with
        a QMP monitor, the callable gets a Qmp client (e.g. to wait for a
        reconnecting chardev and device_add a device on a pcie-root-port),
        then the guest starts.  QEMU 7.2 realizes vhost-user-rng and most
        other vhost-user devices at once, so a chardev with reconnect=N
        (which connects in the background) needs this.
    extra_layers: uncompressed cpio archives (bytes, or paths of files
        holding one, e.g. made by file_layer()) added to the guest's root
        file system, after the base initramfs and before the script.

    Raises GuestError when the guest reports no result (QEMU error, kernel
    panic, host-side limit).
    """
    accel = guest_accel(cache_dir)
    return _run_guest_with(script, qemu_args, smp, mem_mib, timeout, accel,
                           on_line=on_line, before_start=before_start,
                           cache_dir=cache_dir, extra_layers=extra_layers)


# ---------------------------------------------------------------------------
# Back-end programs

def _unix_socket_listening(path):
    """Whether some socket listens on @path, from /proc/net/unix (without
    connecting, which a back-end would see as a front-end)."""
    try:
        with open('/proc/net/unix', encoding='utf-8', errors='replace') as f:
            next(f)
            for line in f:
                fields = line.split(None, 7)
                if len(fields) == 8 and fields[7].rstrip('\n') == path:
                    if int(fields[3], 16) & 0x10000:  # __SO_ACCEPTCON
                        return True
    except OSError:
        return os.path.exists(path)
    return False


def start_backend(argv, socket_path, timeout=10, **popen_kwargs):
    """Starts a back-end program and waits until it listens on @socket_path.

    A stale socket file at @socket_path is removed first.  Raises
    GuestError if the program exits or does not listen within @timeout
    seconds.  Extra keyword arguments go to subprocess.Popen.
    """
    socket_path = os.path.abspath(socket_path)
    try:
        if stat.S_ISSOCK(os.lstat(socket_path).st_mode):
            os.unlink(socket_path)
    except FileNotFoundError:
        pass
    proc = subprocess.Popen(list(argv), **popen_kwargs)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise GuestError('%s exited with status %d before listening on %s'
                             % (argv[0], proc.returncode, socket_path))
        if _unix_socket_listening(socket_path):
            return proc
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise GuestError('%s did not listen on %s within %d s'
                             % (argv[0], socket_path, timeout))
        time.sleep(0.02)


def stop_backend(proc, timeout=10):
    """Sends SIGTERM to a back-end, waits and returns its exit status
    (negative: killed by that signal).  A back-end still running after
    @timeout seconds is killed with SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _log('%s ignored SIGTERM for %d s: killing it' % (proc.args[0], timeout))
            proc.kill()
            proc.wait()
    return proc.returncode


def tools_dir():
    """The build's tools directory ($VHU_TOOLS_DIR)."""
    return os.environ.get('VHU_TOOLS_DIR', '')


# ---------------------------------------------------------------------------
# Running unittest test cases as TAP (meson's protocol: 'tap')

class _TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.count = 0

    def _report(self, ok, test, directive='', err=None):
        self.count += 1
        print('%s %d - %s%s' % ('ok' if ok else 'not ok', self.count,
                                test.id(), directive), flush=True)
        if err is not None:
            sys.stderr.write(self._exc_info_to_string(err, test))
            sys.stderr.flush()

    def startTest(self, test):
        super().startTest(test)
        print('# %s' % test.id(), file=sys.stderr, flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._report(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report(False, test, err=err)

    def addError(self, test, err):
        super().addError(test, err)
        self._report(False, test, err=err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._report(True, test, ' # SKIP ' + reason.replace('\n', ' '))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._report(True, test, ' # TODO expected failure')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._report(False, test, ' # unexpected success')


def tap_main(module='__main__'):
    """Runs the unittest test cases of @module (or those named on the command
    line), printing TAP on stdout and the details on stderr; exits 0 when
    all passed."""
    loader = unittest.TestLoader()
    names = sys.argv[1:]
    mod = sys.modules[module]
    if names:
        suite = loader.loadTestsFromNames(names, mod)
    else:
        suite = loader.loadTestsFromModule(mod)
    result = _TapResult()
    suite.run(result)
    print('1..%d' % result.count, flush=True)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
    # python3 vhuguest.py [SCRIPT]: builds the guest and runs SCRIPT in it.
    res = run_guest(sys.argv[1] if len(sys.argv) > 1 else 'uname -a; cat /proc/cmdline',
                    timeout=60)
    print(res.output)
    print('returncode=%r timed_out=%r accel=%s boot=%.2fs wall=%.2fs'
          % (res.returncode, res.timed_out, res.accel, res.boot_time or -1,
             res.wall_time))
    sys.exit(0 if res.returncode == 0 else 1)
