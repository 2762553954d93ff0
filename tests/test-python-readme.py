#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# The Python example of README.md ("Writing a device in Python") runs as
# shown: the first python code block of that section is saved as a program,
# which prints its capabilities, serves random bytes to the pure-Python
# front-end over --socket-path, and stops with status 0 on SIGTERM.

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vhufrontend as F  # noqa: E402
import vhuguest  # noqa: E402

SRCDIR = os.environ.get('VHU_SRCDIR', os.path.dirname(HERE))
SECTION = '## Writing a device in Python'


def readme_example():
    """The first python code block of the section, or None."""
    with open(os.path.join(SRCDIR, 'README.md'), encoding='utf-8') as f:
        text = f.read()
    start = text.find(SECTION + '\n')
    if start < 0:
        return None
    end = text.find('\n## ', start + len(SECTION))
    section = text[start:end if end >= 0 else len(text)]
    match = re.search(r'^```python\n(.*?)^```$', section, re.S | re.M)
    return match.group(1) if match else None


class ReadmeTest(unittest.TestCase):

    def setUp(self):
        self.code = readme_example()
        self.assertIsNotNone(self.code, 'README.md has no "%s" section with a python '
                             'code block' % SECTION)
        tmp = tempfile.TemporaryDirectory(prefix='vhu-readme-')
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.program = os.path.join(self.dir, 'rng.py')
        with open(self.program, 'w') as f:
            f.write(self.code)

    def test_print_capabilities(self):
        out = subprocess.run([sys.executable, self.program, '--print-capabilities'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        self.assertEqual(json.loads(out), {'type': 'rng', 'features': []})

    def test_serves_random_bytes(self):
        sock = os.path.join(self.dir, 'rng.sock')
        proc = vhuguest.start_backend([sys.executable, self.program, '--socket-path=' + sock],
                                      sock)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        fe = F.Frontend.connect(sock)
        ram = fe.start()
        samples = []
        for size in (16, 4096):
            buf = ram.alloc(size)
            ram.write(buf, bytes(size))
            self.assertEqual(fe.request(fe.rings[0], [(buf, size, True)]), size)
            samples.append(ram.read(buf, size))
        self.assertNotEqual(samples[0], bytes(16))
        self.assertGreater(len(set(samples[1])), 200)  # 4 KiB of random bytes
        self.assertEqual(vhuguest.stop_backend(proc), 0)
        fe.close()


if __name__ == '__main__':
    vhuguest.tap_main()
