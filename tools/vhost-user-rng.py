#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""vhost-user-rng.py: a virtio entropy device, in Python. One request queue,
no feature bits, no config space: each request's device-writable buffers are
filled from os.getrandom()."""

import argparse
import os
import sys

import gi

gi.require_version('VhostUser', '1.0')
from gi.repository import VhostUser  # noqa: E402


class Rng(VhostUser.Device):
    def __init__(self, max_request=65536):
        super().__init__(num_queues=1)
        self.max_request = max_request

    def do_queue_kicked(self, queue):
        n = 0
        for n, element in enumerate(queue, 1):
            wanted = min(element.get_in_size(), self.max_request)
            written = element.write(0, os.getrandom(wanted)) if wanted else 0
            queue.fill(element, written, n - 1)
        queue.flush(n)
        queue.notify()


def positive(text):
    if int(text) < 1:
        raise ValueError(text)
    return int(text)


def main(argv):
    program = VhostUser.BackendProgram.new('rng')
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--max-request', type=positive, default=65536, metavar='BYTES',
                        help='the most random bytes one request gets (65536)')
    args = program.parse_args(parser, argv)
    if program.get_print_capabilities():
        return program.run(None)
    return program.run(Rng(args.max_request))


if __name__ == '__main__':
    sys.exit(main(sys.argv))
