#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# The files data/ installs for each back-end program, checked against the
# programs themselves:
#   - the QEMU vhost-user back-end descriptors (QEMU's
#     docs/interop/vhost-user.json, VhostUserBackend): valid JSON, the
#     members of the schema only, "type" one of VHostUserBackendType,
#     "binary" the absolute installed path of the program, and the same type
#     as the program's --print-capabilities;
#   - --print-capabilities itself: valid JSON, the right type and features,
#     exit status 0, nothing else done (no socket made, no file opened for
#     writing, even with --socket-path and the program's own options given);
#   - the systemd socket and service templates: the socket path, the binary,
#     no --socket-path or --fd (socket activation), and `systemd-analyze
#     verify` finds nothing to say about them.
#
# Environment (set by tests/meson.build): VHU_DATA_DIR (<build>/data),
# VHU_TOOLS_DIR (<build>/tools), VHU_LIBEXECDIR (where the programs are
# installed), VHU_PROGRAMS (the programs this build defines, comma-separated).

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

# docs/interop/vhost-user.json, VHostUserBackendType.
QEMU_BACKEND_TYPES = {
    '9p', 'balloon', 'block', 'caif', 'console', 'crypto', 'gpu', 'input',
    'net', 'rng', 'rpmsg', 'rproc-serial', 'scsi', 'vsock', 'fs',
}
# The features the schema defines, per type (VHostUserBackendBlockFeature).
QEMU_FEATURES = {
    'block': {'read-only', 'blk-file'},
}

# What each program is, and the features it must report.
PROGRAMS = {
    'blk': {'type': 'block', 'features': {'blk-file', 'read-only'},
            'options': ['--blk-file=/nonexistent/image', '--read-only']},
    'net': {'type': 'net', 'features': set(), 'options': []},
    'rng': {'type': 'rng', 'features': set(),
            'options': ['--max-bytes=64', '--period=1000']},
}


def env_dir(name):
    value = os.environ.get(name)
    if not value:
        raise AssertionError('%s is not set (run through meson test)' % name)
    return value


def built_programs():
    return [p for p in os.environ.get('VHU_PROGRAMS', '').split(',') if p]


class DescriptorTest(unittest.TestCase):

    def setUp(self):
        self.data_dir = env_dir('VHU_DATA_DIR')
        self.tools_dir = env_dir('VHU_TOOLS_DIR')
        self.libexecdir = env_dir('VHU_LIBEXECDIR')

    def descriptor(self, short):
        path = os.path.join(self.data_dir,
                            '50-libvhostuser-glib-%s.json' % short)
        with open(path, encoding='utf-8') as f:
            return json.load(f)

    def program(self, short):
        path = os.path.join(self.tools_dir, 'vhost-user-' + short)
        self.assertTrue(os.access(path, os.X_OK),
                        '%s is not built' % path)
        return path

    def print_capabilities(self, short, extra=()):
        """Runs --print-capabilities in an empty directory, with a socket
        path there: returns the parsed JSON after checking that nothing
        else happened."""
        with tempfile.TemporaryDirectory(prefix='vhu-caps-') as tmp:
            sock = os.path.join(tmp, 'sock')
            argv = [self.program(short), '--print-capabilities',
                    '--socket-path=' + sock] + list(extra)
            r = subprocess.run(argv, cwd=tmp, capture_output=True, text=True,
                               timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr, '')
            self.assertEqual(os.listdir(tmp), [],
                             '--print-capabilities made files')
        self.assertTrue(r.stdout.endswith('\n'))
        caps = json.loads(r.stdout)
        self.assertIsInstance(caps, dict)
        return caps

    def test_descriptors(self):
        for short, info in PROGRAMS.items():
            with self.subTest(program=short):
                d = self.descriptor(short)
                self.assertIsInstance(d, dict)
                self.assertLessEqual(set(d), {'description', 'type', 'binary',
                                              'tags'})
                for key in ('description', 'type', 'binary'):
                    self.assertIn(key, d)
                    self.assertIsInstance(d[key], str)
                    self.assertNotEqual(d[key].strip(), '')
                self.assertIn(d['type'], QEMU_BACKEND_TYPES)
                self.assertEqual(d['type'], info['type'])
                self.assertTrue(os.path.isabs(d['binary']), d['binary'])
                self.assertEqual(os.path.normpath(d['binary']), d['binary'])
                self.assertEqual(d['binary'],
                                 os.path.join(self.libexecdir,
                                              'vhost-user-' + short))
                if 'tags' in d:
                    self.assertTrue(all(isinstance(t, str) for t in d['tags']))

    def test_capabilities_match(self):
        programs = built_programs()
        self.assertIn('rng', programs)
        for short in programs:
            info = PROGRAMS[short]
            with self.subTest(program=short):
                d = self.descriptor(short)
                caps = self.print_capabilities(short, info['options'])
                self.assertEqual(set(caps), {'type', 'features'})
                self.assertEqual(caps['type'], d['type'])
                features = caps['features']
                self.assertIsInstance(features, list)
                self.assertTrue(all(isinstance(f, str) for f in features))
                self.assertEqual(len(features), len(set(features)))
                self.assertEqual(set(features), info['features'])
                if caps['type'] in QEMU_FEATURES:
                    self.assertLessEqual(set(features),
                                         QEMU_FEATURES[caps['type']])

    def test_systemd_units(self):
        for short in PROGRAMS:
            program = 'vhost-user-' + short
            with self.subTest(program=short):
                with open(os.path.join(self.data_dir, program + '@.socket'),
                          encoding='utf-8') as f:
                    socket_unit = f.read()
                with open(os.path.join(self.data_dir, program + '@.service'),
                          encoding='utf-8') as f:
                    service_unit = f.read()
                self.assertIn('\nListenStream=/run/vhost-user/%s-%%i.sock\n'
                              % short, socket_unit)
                self.assertIn('\nAccept=no\n', socket_unit)
                exec_start = re.findall(r'^ExecStart=(.*)$', service_unit,
                                        re.MULTILINE)
                self.assertEqual(len(exec_start), 1)
                argv = exec_start[0].split()
                self.assertEqual(argv[0], self.descriptor(short)['binary'])
                self.assertFalse(any(a.startswith(('--socket-path', '--fd'))
                                     for a in argv))
                self.assertIn('\nRequires=%s@%%i.socket\n' % program,
                              service_unit)

    def test_systemd_verify(self):
        analyze = shutil.which('systemd-analyze')
        if analyze is None:
            self.skipTest('systemd-analyze is not installed')
        for short in built_programs():
            program = 'vhost-user-' + short
            with self.subTest(program=short), \
                    tempfile.TemporaryDirectory(prefix='vhu-units-') as tmp:
                binary = self.descriptor(short)['binary']
                # An instance of each template, the binary pointing at the
                # build's program (verify checks that it is executable).
                for suffix in ('socket', 'service'):
                    with open(os.path.join(self.data_dir,
                                           '%s@.%s' % (program, suffix)),
                              encoding='utf-8') as f:
                        text = f.read().replace(binary, self.program(short))
                    with open(os.path.join(tmp, '%s@test.%s'
                                           % (program, suffix)),
                              'w', encoding='utf-8') as f:
                        f.write(text)
                r = subprocess.run([analyze, 'verify', '--man=no',
                                    os.path.join(tmp, program + '@test.socket'),
                                    os.path.join(tmp, program
                                                 + '@test.service')],
                                   cwd=tmp, capture_output=True, text=True,
                                   timeout=60, stdin=subprocess.DEVNULL)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                # Unknown keys are only warned about: no warning at all.
                self.assertEqual(r.stderr.strip(), '', r.stderr)


if __name__ == '__main__':
    unittest.main(verbosity=2)
