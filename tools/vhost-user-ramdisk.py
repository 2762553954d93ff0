#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""vhost-user-ramdisk.py: a virtio-blk RAM disk of --size bytes, in Python.
Requests IN, OUT, FLUSH and GET_ID, zero-copy (memoryviews of guest memory)
or, with --copy, through copies."""

import argparse
import struct
import sys

import gi

gi.require_version('VhostUser', '1.0')
from gi.repository import VhostUser  # noqa: E402
from gi.repository.VhostUser import copy_from_views, copy_to_views  # noqa: E402

F_SEG_MAX, F_FLUSH = 2, 9              # feature bits
IN, OUT, FLUSH, GET_ID = 0, 1, 4, 8    # request types
OK, IOERR, UNSUPP = 0, 1, 2            # status
DISK_ID = b'vhost-user-ramdisk\0\0'     # GET_ID: 20 bytes
HEADER = struct.Struct('<IIQ')         # type, reserved, sector


class RamDisk(VhostUser.Device):
    def __init__(self, size, copy=False):
        super().__init__(num_queues=1)
        self.disk, self.copy = memoryview(bytearray(size)), copy
        # capacity in sectors, size_max, seg_max; the rest of the space is 0
        self.config = struct.pack('<QII', size // 512, 0, 126).ljust(256, b'\0')

    def do_get_features(self):
        return VhostUser.Device.do_get_features(self) | 1 << F_SEG_MAX | 1 << F_FLUSH

    def do_get_config(self, offset, size):
        return self.config[offset:offset + size]

    def do_queue_kicked(self, queue):
        # A batch of (element, out views, in views) per call: views of guest
        # memory itself, or none with --copy (the copying helpers then).
        while batch := [(e, (), ()) for e in queue] if self.copy else queue.pop_batch():
            queue.push_batch(batch, [self.serve(*request) for request in batch])

    def serve(self, element, outs, ins):  # returns how many bytes it wrote
        copy = self.copy
        out_size, in_size = ((element.get_out_size(), element.get_in_size()) if copy
                             else (sum(map(len, outs)), sum(map(len, ins))))
        if in_size < 1:
            return 0                    # no room for a status: dropped
        head = element.read(0, 16) if copy else outs[0] if outs and len(outs[0]) >= 16 else None
        if head is None:                # a header across buffers, or short
            head = bytearray(16)
            del head[copy_from_views(outs, 0, head):]
        kind, _, sector = HEADER.unpack_from(head) if len(head) >= 16 else (-1, 0, 0)
        length = in_size - 1 if kind == IN else out_size - 16
        disk, status, written = self.disk[sector * 512:sector * 512 + length], OK, 0
        if kind in (IN, OUT) and (length % 512 or len(disk) < length):
            status = IOERR
        elif kind == IN:
            written = element.write(0, disk) if copy else copy_to_views(ins, 0, disk)
        elif kind == OUT and copy:
            disk[:] = element.read(16, length)
        elif kind == OUT:
            copy_from_views(outs, 16, disk)
        elif kind == GET_ID:
            written = element.write(0, DISK_ID[:in_size - 1])
        elif kind != FLUSH:
            status = UNSUPP
        if not copy and len(ins[-1]):
            ins[-1][-1] = status        # the status byte ends the request
        else:
            element.write(in_size - 1, bytes((status,)))
        return written + 1


def disk_size(text):
    unit = 10 + 10 * 'KMG'.index(text[-1]) if text[-1:] in ('K', 'M', 'G') else 0
    size = int(text[:-1] if unit else text) << unit
    if size <= 0 or size % 512:
        raise ValueError(text)
    return size


def main(argv):
    program = VhostUser.BackendProgram.new('block')
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--size', default='64M', type=disk_size,
                        help='the disk size: bytes, or with a K, M or G suffix (64M)')
    parser.add_argument('--copy', action='store_true', help='copy instead of zero-copy')
    args = program.parse_args(parser, argv)
    if program.get_print_capabilities():
        return program.run(None)
    return program.run(RamDisk(args.size, args.copy))


if __name__ == '__main__':
    sys.exit(main(sys.argv))
