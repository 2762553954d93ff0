# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
"""PyGObject overrides for VhostUser-1.0.

What they add to the introspected API:

* Device subclasses: every ``do_*`` method a subclass defines is wrapped so
  that a failure reaches the C side as a clean error, never as a silent
  success. An exception raised in a vfunc that returns a GError (do_get_config,
  do_set_config, ...) becomes that GError (a GLib.Error passes unchanged, any
  other exception becomes VhostUser.Error.FAILED with its text); a wrong return
  type is such a failure too. In do_get_features, do_get_protocol_features and
  the signal class handlers (do_queue_kicked, ...), which have no error to
  return, it goes to VhostUser.Device.report_error(): the front-end's request
  fails and the device emits protocol-error. GBytes results may be returned as
  bytes-like objects; boolean ones must be True or False, or raise.

* BackendProgram.parse_args(parser, argv): the program conventions with an
  argparse parser for the program's own options.

* VirtqElement, copying: read(offset, length) -> bytes from the
  device-readable buffers, write(offset, data) -> int into the
  device-writable ones (any bytes-like data).

* VirtqElement, zero-copy: get_views() -> (out_views, in_views), lists of
  memoryviews over the element's buffers in guest memory, read-only for the
  device-readable segments and writable for the device-writable ones (also
  get_out_views() and get_in_views()); VhostUser.slice_views(views, offset,
  length) picks a byte range out of them, VhostUser.copy_to_views() and
  copy_from_views() copy between them and the device's own buffers. In
  batches: Virtqueue.pop_batch() -> [(element, out_views, in_views), ...]
  and Virtqueue.push_batch(batch, written), two calls into the library for
  a whole kick's worth of requests. They are the library's own mapping of
  guest memory, so a front-end that shrinks the memory file under it cannot
  crash the device (the library's fault guard covers them).

  The rule: a view is valid until its element goes back to the driver.
  Virtqueue.push() and fill() release the views get_views() made of the
  element, push_batch(batch) those of the batch, and any later use of them
  raises ValueError. A view (or a slice made of it) keeps its element (a
  batch's views: the batch's elements), and with it the guest memory it was
  popped from, mapped for as long as it lives, even across a memory-table
  change, so it can never point at unmapped memory; but once the element is
  pushed the guest owns those bytes again: do not keep slices past the push.
  The views cover the addresses below 2**47 that Linux maps by default.
"""

import ctypes
import functools
import sys
import threading
import weakref

from gi.repository import GLib

from ..module import get_introspection_module
from ..overrides import override

VhostUser = get_introspection_module('VhostUser')

__all__ = []

_MAX_UINT64 = (1 << 64) - 1

# ---------------------------------------------------------------------------
# Errors from Python methods


def _failure(exc):
    """The GLib.Error the C side gets for @exc: a new one, which refers
    neither to @exc nor to its frames."""
    if isinstance(exc, GLib.Error):
        return GLib.Error.new_literal(GLib.quark_from_string(exc.domain), exc.message, exc.code)
    return GLib.Error.new_literal(VhostUser.error_quark(),
                                  '%s: %s' % (type(exc).__name__, exc),
                                  int(VhostUser.Error.FAILED))


def _print_exception(exc):
    # Not through sys.last_traceback: its frames would keep the popped
    # elements alive, and the driver waiting for them.
    sys.excepthook(type(exc), exc, exc.__traceback__)


class _Depth(threading.local):
    value = 0


# How many wrapped vfuncs are running in this thread: only the outermost
# one (called from C) turns exceptions into errors; one a subclass calls
# while chaining up lets them through to its caller.
_depth = _Depth()


def _check_uint64(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError('%s() must return an int, not %s' % (name, type(value).__name__))
    if not 0 <= value <= _MAX_UINT64:
        raise ValueError('%s() returned %d, which is not a 64-bit feature mask' % (name, value))
    return value


def _check_bytes(name, value):
    if isinstance(value, GLib.Bytes):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return GLib.Bytes.new(bytes(value))
    if value is None:
        raise TypeError('%s() returned None: return the bytes or raise GLib.Error' % name)
    raise TypeError('%s() must return GLib.Bytes or bytes, not %s' % (name, type(value).__name__))


def _check_bool(name, value):
    if value is True or value is False:
        return value
    raise TypeError('%s() must return True or False (or raise GLib.Error), not %r'
                    % (name, value))


def _check_fd(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError('%s() must return a file descriptor, not %s' % (name, type(value).__name__))
    return value


# vfunc name -> (what its result must be, what it returns after a failure,
#                whether it has a GError to fail with)
_VFUNCS = {
    'do_get_features': (_check_uint64, 0, False),
    'do_get_protocol_features': (_check_uint64, 0, False),
    'do_get_config': (_check_bytes, None, True),
    'do_set_config': (_check_bool, False, True),
    'do_set_mtu': (_check_bool, False, True),
    'do_send_rarp': (_check_bool, False, True),
    'do_save_state': (_check_bytes, None, True),
    'do_load_state': (_check_bool, False, True),
    'do_get_shared_object': (_check_fd, -1, True),
    'do_features_negotiated': (None, None, False),
    'do_queue_started': (None, None, False),
    'do_queue_stopped': (None, None, False),
    'do_queue_kicked': (None, None, False),
    'do_reset': (None, None, False),
    'do_disconnected': (None, None, False),
}


def _wrap_vfunc(name, func, check, failed, throws):
    @functools.wraps(func)
    def wrapper(self, *args):
        _depth.value += 1
        try:
            result = func(self, *args)
            if _depth.value > 1 or check is None:
                return result
            return check(name, result)
        except BaseException as exc:
            if _depth.value > 1 or not isinstance(exc, Exception):
                raise
            if not isinstance(exc, GLib.Error):
                _print_exception(exc)
            failure = _failure(exc)
        finally:
            _depth.value -= 1
        # Out of the except clause: nothing made from here on refers to the
        # exception (as __context__), whose frames hold popped elements.
        if throws:
            raise failure  # PyGObject makes it the vfunc's GError
        self.report_error(failure)
        return failed

    wrapper._vhu_wrapped = True
    return wrapper


def _wrap_protocol_error(func):
    # An exception here has nowhere to go but stderr.
    @functools.wraps(func)
    def wrapper(self, error):
        try:
            return func(self, error)
        except Exception as exc:
            _print_exception(exc)

    wrapper._vhu_wrapped = True
    return wrapper


class Device(VhostUser.Device):
    """A vhost-user device: subclass it and override do_* methods."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # Runs before PyGObject hooks the do_* methods up as vfuncs.
        for name, value in list(cls.__dict__.items()):
            if not callable(value) or getattr(value, '_vhu_wrapped', False):
                continue
            if name in _VFUNCS:
                check, failed, throws = _VFUNCS[name]
                setattr(cls, name, _wrap_vfunc(name, value, check, failed, throws))
            elif name == 'do_protocol_error':
                setattr(cls, name, _wrap_protocol_error(value))


Device = override(Device)
__all__.append('Device')

# ---------------------------------------------------------------------------
# Element buffers


# The lowest address a mapping can have (Linux's default mmap_min_addr).
_BASE = 0x10000


class _Span(ctypes.c_ubyte * ((1 << 47) - _BASE)):
    """This process's address space from _BASE on, as a buffer: views of
    guest memory are slices of it at the addresses the library maps the
    buffers at; only such slices are handed out. It holds the element(s)
    whose buffers they are, which keep that memory mapped."""
    __slots__ = ('elements',)


def _memory(elements):
    """A byte memoryview of the address space that keeps @elements alive."""
    span = _Span.from_address(_BASE)
    span.elements = elements
    return memoryview(span).cast('B')


def _make_views(memory, segments, at, n_out, n_in):
    """The views of n_out + n_in segments (address, length pairs) from
    segments[at] on: read-only ones, then writable ones."""
    outs = []
    ins = []
    end = at + 2 * n_out
    for i in range(at, end, 2):
        start = segments[i] - _BASE
        outs.append(memory[start:start + segments[i + 1]].toreadonly())
    for i in range(end, end + 2 * n_in, 2):
        start = segments[i] - _BASE
        ins.append(memory[start:start + segments[i + 1]])
    return outs, ins


class VirtqElement(VhostUser.VirtqElement):

    def read(self, offset=0, length=None):
        """Copies from the device-readable buffers, from @offset on: at most
        @length bytes (all there is by default). Returns bytes."""
        if length is None:
            length = max(0, self.get_out_size() - offset)
        return self.read_bytes(offset, length).get_data()

    def write(self, offset, data):
        """Copies bytes-like @data into the device-writable buffers at
        @offset, as far as they reach. Returns the number of bytes copied."""
        if not isinstance(data, bytes):
            data = bytes(data)
        return VhostUser.VirtqElement.write(self, offset, data)

    def get_views(self):
        """Zero-copy: (out_views, in_views), memoryviews over the
        device-readable (read-only) and the device-writable (writable)
        buffers, valid until the element is pushed (see the module's
        documentation)."""
        segments, n_out = self.get_segments()
        memory = _memory(self)
        outs, ins = _make_views(memory, segments, 0, n_out, len(segments) // 2 - n_out)
        memory.release()
        self._track(outs, ins)
        return outs, ins

    def _track(self, outs, ins):
        # Weak references: the views refer to the element, not back.
        refs = self.__dict__.setdefault('_vhu_views', [])
        for view in outs:
            refs.append(weakref.ref(view))
        for view in ins:
            refs.append(weakref.ref(view))

    def get_out_views(self):
        """The read-only views of get_views()."""
        return self.get_views()[0]

    def get_in_views(self):
        """The writable views of get_views()."""
        return self.get_views()[1]

    def release_views(self):
        """Releases the views get_views() or Virtqueue.pop_batch() gave:
        using them raises ValueError from now on. Virtqueue.push(), fill()
        and push_batch() call it."""
        for ref in self.__dict__.pop('_vhu_views', ()):
            view = ref()
            if view is not None:
                view.release()


VirtqElement = override(VirtqElement)
__all__.append('VirtqElement')


def slice_views(views, offset, length):
    """The bytes [@offset, @offset + @length) of the buffers a list of views
    (from VirtqElement.get_views()) covers, as a list of slices of them, in
    order: zero-copy. Shorter when the buffers end before."""
    if views:
        first = views[0]
        if offset + length <= len(first):  # the usual case
            return [first[offset:offset + length]] if length > 0 else []
    pieces = []
    for view in views:
        size = len(view)
        if offset < size and length > 0:
            piece = view[offset:offset + length]
            pieces.append(piece)
            length -= len(piece)
        offset = max(0, offset - size)
    return pieces


__all__.append('slice_views')


def copy_to_views(views, offset, data):
    """Copies bytes-like @data into the buffers a list of views covers, from
    byte @offset of them on, straight into guest memory; returns how many
    bytes fitted."""
    size = len(data)
    if views:
        first = views[0]
        if offset + size <= len(first):  # the usual case
            first[offset:offset + size] = data
            return size
    data = memoryview(data).cast('B')
    done = 0
    for piece in slice_views(views, offset, len(data)):
        size = len(piece)
        piece[:] = data[done:done + size]
        done += size
    return done


def copy_from_views(views, offset, into):
    """Copies from the buffers a list of views covers, from byte @offset of
    them on, straight into the writable bytes-like @into, as much as it
    holds; returns how many bytes there were."""
    size = len(into)
    if views:
        first = views[0]
        if offset + size <= len(first):  # the usual case
            into[:] = first[offset:offset + size]
            return size
    into = memoryview(into).cast('B')
    done = 0
    for piece in slice_views(views, offset, len(into)):
        size = len(piece)
        into[done:done + size] = piece
        done += size
    return done


__all__ += ['copy_to_views', 'copy_from_views']


class Virtqueue(VhostUser.Virtqueue):

    def push(self, element, written):
        """Returns @element to the driver (see the C documentation) and
        releases its views."""
        VhostUser.Virtqueue.push(self, element, written)
        element.release_views()

    def fill(self, element, written, offset):
        """Returns @element as part of a batch (see the C documentation) and
        releases its views."""
        VhostUser.Virtqueue.fill(self, element, written, offset)
        element.release_views()

    def pop_batch(self, max=256):
        """Zero-copy, in batches: takes up to @max available elements at
        once and returns the batch, a list of (element, out_views,
        in_views), the views as VirtqElement.get_views() makes them. Give
        the batch back with push_batch(), which releases its views. Raises
        GLib.Error when the ring is broken and nothing could be taken."""
        elements, segments = VhostUser.Virtqueue.pop_batch(self, max)
        if not elements:
            return []
        memory = _memory(elements)
        base = _BASE
        batch = []
        at = 0
        for element in elements:
            end = at + 2 + 2 * segments[at]
            stop = end + 2 * segments[at + 1]
            outs = [memory[segments[i] - base:segments[i] - base + segments[i + 1]].toreadonly()
                    for i in range(at + 2, end, 2)]
            ins = [memory[segments[i] - base:segments[i] - base + segments[i + 1]]
                   for i in range(end, stop, 2)]
            batch.append((element, outs, ins))
            at = stop
        memory.release()
        return batch

    def push_batch(self, batch, written):
        """Returns the elements of @batch (from pop_batch(); or a list of
        elements) to the driver, each with the number of bytes in @written,
        with one used-index update (see the C documentation), and releases
        their views."""
        if batch and isinstance(batch[0], tuple):
            VhostUser.Virtqueue.push_batch(self, [entry[0] for entry in batch], written)
            for _, outs, ins in batch:
                for view in outs:
                    view.release()
                for view in ins:
                    view.release()
        else:
            VhostUser.Virtqueue.push_batch(self, batch, written)
            for element in batch:
                element.release_views()

    def __iter__(self):
        """The available elements, popped one by one until the queue is
        empty (or broken: then the iteration stops and the ring is marked
        broken)."""
        while True:
            try:
                element = self.pop()
            except GLib.Error:
                return
            if element is None:
                return
            yield element


Virtqueue = override(Virtqueue)
__all__.append('Virtqueue')

# ---------------------------------------------------------------------------
# Programs


class BackendProgram(VhostUser.BackendProgram):

    def parse_args(self, parser, argv=None):
        """Parses @argv (sys.argv by default) with @parser, an
        argparse.ArgumentParser that knows the program's own options, to
        which the common options of every back-end program are added
        (--socket-path, --fd, --print-capabilities: --help shows them all),
        then with VhostUser.BackendProgram.parse(), which applies the
        conventions (mutually exclusive options, socket activation). Returns
        the namespace argparse made; exits with status 2 on an option
        argparse refuses and 1 on one the conventions refuse."""
        argv = list(sys.argv if argv is None else argv)
        common = parser.add_argument_group('vhost-user back-end options')
        common.add_argument('--socket-path', metavar='PATH',
                            help='listen for front-ends on a unix socket at PATH')
        common.add_argument('--fd', metavar='FDNUM',
                            help='serve front-ends through the inherited socket FDNUM')
        common.add_argument('--print-capabilities', action='store_true',
                            help="print the back-end's capabilities as JSON and exit")
        args = parser.parse_args(argv[1:])
        self.props.ignore_unknown_options = True
        try:
            self.parse(argv)
        except GLib.Error as e:
            parser.exit(1, '%s: %s\n' % (parser.prog, e.message))
        return args


BackendProgram = override(BackendProgram)
__all__.append('BackendProgram')
