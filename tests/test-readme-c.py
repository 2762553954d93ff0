#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# The C example of README.md ("Writing a device in C") builds and runs as
# shown: the first c code block of that section is compiled against the
# freshly built library, prints its capabilities, answers the pure-Python
# front-end over --socket-path (every request comes back, nothing written)
# and stops with status 0 on SIGTERM.

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vhufrontend as F  # noqa: E402
import vhuguest  # noqa: E402

SRCDIR = os.environ.get('VHU_SRCDIR', os.path.dirname(HERE))
BUILDDIR = os.environ['VHU_BUILD_ROOT']
SECTION = '## Writing a device in C'


def readme_example():
    """The first c code block of the section, or None."""
    with open(os.path.join(SRCDIR, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    start = text.find(SECTION + '\n')
    if start < 0:
        return None
    end = text.find('\n## ', start + len(SECTION))
    section = text[start:end if end >= 0 else len(text)]
    match = re.search(r'^```c\n(.*?)^```$', section, re.S | re.M)
    return match.group(1) if match else None


class ReadmeCTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        code = readme_example()
        if code is None:
            raise AssertionError('README.md has no "%s" section with a c code block' % SECTION)
        cls.tmp = tempfile.TemporaryDirectory(prefix='vhu-readme-c-')
        cls.program = os.path.join(cls.tmp.name, 'my-device')
        source = cls.program + '.c'
        with open(source, 'w') as f:
            f.write(code)
        cc = os.environ.get('CC', shutil.which('cc') or 'cc')
        glib = subprocess.run(['pkg-config', '--cflags', '--libs', 'gio-unix-2.0'],
                              capture_output=True, text=True, check=True).stdout
        libdir = os.path.join(BUILDDIR, 'libvhostuser-glib')
        cmd = ([cc, '-Wall', '-Werror', '-o', cls.program, source,
                '-I' + SRCDIR, '-I' + BUILDDIR, '-I' + libdir]
               + shlex.split(glib) + ['-L' + libdir, '-lvhostuser-glib-1.0',
                                      '-Wl,-rpath,' + libdir])
        built = subprocess.run(cmd, capture_output=True, text=True)
        if built.returncode != 0:
            raise AssertionError('the README example does not build:\n%s\n%s'
                                 % (' '.join(cmd), built.stderr))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_print_capabilities(self):
        out = subprocess.run([self.program, '--print-capabilities'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        self.assertEqual(json.loads(out), {'type': 'rng', 'features': []})

    def test_serves_and_stops(self):
        sock = os.path.join(self.tmp.name, 'dev.sock')
        proc = vhuguest.start_backend([self.program, '--socket-path=' + sock], sock)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        fe = F.Frontend.connect(sock)
        ram = fe.start()
        for size in (16, 4096):
            buf = ram.alloc(size)
            # The example writes nothing: the request comes back with 0 bytes.
            self.assertEqual(fe.request(fe.rings[0], [(buf, size, True)]), 0)
        self.assertEqual(vhuguest.stop_backend(proc), 0)
        self.assertFalse(os.path.exists(sock))
        fe.close()


if __name__ == '__main__':
    vhuguest.tap_main()
