#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Devices written in Python, driven in this process by the pure-Python
# front-end (vhufrontend.py): vfunc overrides reach the C side (feature bit
# 63, config space), and every way a Python method can fail (GLib.Error,
# another exception, a wrong return type, a missing override) becomes a clean
# error there: an error reply or a closed connection, and protocol-error,
# with the device still serving afterwards.

import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vhufrontend as F  # noqa: E402
import vhuguest  # noqa: E402  (the TAP runner)

import gi  # noqa: E402

gi.require_version('VhostUser', '1.0')
from gi.repository import GLib, VhostUser  # noqa: E402

BIT63 = 1 << 63
CONFIG = bytes(range(64))


class Device(VhostUser.Device):
    """What each method does is chosen by the test through self.mode."""

    def __init__(self, **kwargs):
        super().__init__(num_queues=1, **kwargs)
        self.mode = {}
        self.config = bytearray(CONFIG)
        self.negotiated = []
        self.kicks = 0

    def do_get_features(self):
        how = self.mode.get('features')
        if how == 'raise':
            raise ValueError('no features today')
        if how == 'str':
            return 'lots'
        if how == 'negative':
            return -1
        if how == 'huge':
            return 1 << 64
        return VhostUser.Device.do_get_features(self) | BIT63 | 1 << 5

    def do_get_protocol_features(self):
        if self.mode.get('protocol_features') == 'raise':
            raise RuntimeError('protocol features broke')
        return VhostUser.Device.do_get_protocol_features(self)

    def do_get_config(self, offset, size):
        how = self.mode.get('config')
        if how == 'raise':
            raise KeyError('config')
        if how == 'refuse':
            raise GLib.Error.new_literal(VhostUser.error_quark(), 'not now',
                                         int(VhostUser.Error.STATE))
        if how == 'none':
            return None
        if how == 'int':
            return 42
        if how == 'bytes':
            return bytes(self.config[offset:offset + size])
        if how == 'short':
            return GLib.Bytes.new(bytes(self.config[offset:offset + size - 1]))
        return GLib.Bytes.new(bytes(self.config[offset:offset + size]))

    def do_set_config(self, offset, data, flags):
        how = self.mode.get('set_config')
        if how == 'raise':
            raise ZeroDivisionError('set_config')
        if how == 'none':
            return None
        self.config[offset:offset + data.get_size()] = data.get_data()
        return True

    def do_features_negotiated(self, features):
        self.negotiated.append(features)
        if self.mode.get('negotiated') == 'raise':
            raise ValueError('cannot use these features')

    def do_queue_kicked(self, queue):
        self.kicks += 1
        if self.mode.get('kicked') == 'raise':
            element = queue.pop()  # noqa: F841 (dropped unpushed by the exception)
            raise IndexError('kick handler failed')
        for element in queue:
            queue.push(element, element.write(0, b'served'))


class Chained(Device):
    """Chains up to a Python parent's override."""

    def do_get_config(self, offset, size):
        return super().do_get_config(offset, size)


class NoConfig(VhostUser.Device):
    """Overrides nothing."""


class DeviceTest(unittest.TestCase):

    def make(self, cls=Device):
        device = cls(num_queues=1) if cls is NoConfig else cls()
        errors = []
        device.connect('protocol-error', lambda dev, error: errors.append(error))
        return device, errors

    def connect(self, device):
        fe = F.Frontend.for_device(device)
        self.addCleanup(fe.close)
        return fe

    def quiet(self):
        """Collects, instead of printing them, the Python exceptions the
        overrides hand to sys.excepthook: returns the list of their types
        (not the exceptions: their frames would keep popped elements)."""
        printed = []
        old_hook = sys.excepthook
        sys.excepthook = lambda kind, value, tb: printed.append(kind)
        self.addCleanup(setattr, sys, 'excepthook', old_hook)
        return printed

    # -- what overrides give --------------------------------------------------

    def test_features_keep_bit_63(self):
        device, errors = self.make()
        fe = self.connect(device)
        acked = fe.negotiate(BIT63 | 1 << 5)
        self.assertTrue(fe.offered_features & BIT63)
        self.assertEqual(acked & (BIT63 | 1 << 5), BIT63 | 1 << 5)
        fe.iterate()
        self.assertEqual(device.get_acked_features(), acked)
        self.assertEqual(device.negotiated, [acked])
        self.assertTrue(device.has_feature(63))
        self.assertEqual(errors, [])

    def test_config_space(self):
        device, errors = self.make()
        fe = self.connect(device)
        fe.negotiate()
        self.assertTrue(fe.acked_protocol_features & F.bit(F.PF_CONFIG))
        self.assertEqual(fe.get_config(0, 64), CONFIG)
        self.assertEqual(fe.get_config(8, 4), CONFIG[8:12])
        device.mode['config'] = 'bytes'  # bytes are accepted for GLib.Bytes
        self.assertEqual(fe.get_config(16, 8), CONFIG[16:24])
        status = fe.call_ack(F.SET_CONFIG, struct.pack('<III', 4, 3, 0) + b'xyz')
        self.assertEqual(status, 0)
        self.assertEqual(bytes(device.config[4:7]), b'xyz')
        self.assertEqual(fe.get_config(0, 8), CONFIG[:4] + b'xyz' + CONFIG[7:8])
        self.assertEqual(errors, [])

    def test_chained_override(self):
        device, errors = self.make(Chained)
        fe = self.connect(device)
        fe.negotiate()
        self.assertEqual(fe.get_config(0, 4), CONFIG[:4])
        device.mode['config'] = 'raise'
        stderr = self.quiet()
        self.assertIsNone(fe.get_config(0, 4))
        fe.iterate()
        # One failure, reported once, by the outermost override.
        self.assertEqual([e.message for e in errors], ["KeyError: 'config'"])
        self.assertEqual(stderr, [KeyError])

    # -- failures with a GError to return -------------------------------------

    def config_fails(self, mode, expect_message, expect_code=VhostUser.Error.FAILED,
                     printed=True):
        device, errors = self.make()
        fe = self.connect(device)
        fe.negotiate()
        device.mode['config'] = mode
        stderr = self.quiet()
        self.assertIsNone(fe.get_config(0, 16), 'GET_CONFIG must fail')
        fe.iterate()
        self.assertEqual(len(errors), 1)
        self.assertIn(expect_message, errors[0].message)
        self.assertEqual(errors[0].domain, GLib.quark_to_string(VhostUser.error_quark()))
        self.assertEqual(errors[0].code, int(expect_code))
        self.assertEqual(len(stderr), 1 if printed else 0)
        # The device goes on.
        device.mode['config'] = None
        self.assertEqual(fe.get_config(0, 16), CONFIG[:16])
        self.assertEqual(len(errors), 1)

    def test_config_glib_error_refuses(self):
        self.config_fails('refuse', 'not now', VhostUser.Error.STATE, printed=False)

    def test_config_exception(self):
        self.config_fails('raise', "KeyError: 'config'")

    def test_config_returns_none(self):
        self.config_fails('none', 'returned None')

    def test_config_returns_int(self):
        self.config_fails('int', 'must return GLib.Bytes or bytes, not int')

    def test_config_wrong_size(self):
        # The library checks the size itself: 15 bytes asked for 16.
        self.config_fails('short', 'returned 15 bytes, not 16', printed=False)

    def test_set_config_failures(self):
        device, errors = self.make()
        fe = self.connect(device)
        fe.negotiate()
        stderr = self.quiet()
        payload = struct.pack('<III', 0, 2, 0) + b'ab'
        device.mode['set_config'] = 'raise'
        self.assertNotEqual(fe.call_ack(F.SET_CONFIG, payload), 0)
        device.mode['set_config'] = 'none'
        self.assertNotEqual(fe.call_ack(F.SET_CONFIG, payload), 0)
        fe.iterate()
        self.assertEqual(bytes(device.config[:2]), CONFIG[:2])
        self.assertEqual(len(errors), 2)
        self.assertIn('ZeroDivisionError: set_config', errors[0].message)
        self.assertIn('must return True or False', errors[1].message)
        self.assertEqual(stderr, [ZeroDivisionError, TypeError])
        device.mode['set_config'] = None
        self.assertEqual(fe.call_ack(F.SET_CONFIG, payload), 0)
        self.assertEqual(bytes(device.config[:2]), b'ab')

    def test_missing_config_override(self):
        device, errors = self.make(NoConfig)
        fe = self.connect(device)
        fe.negotiate()
        # Without do_get_config there is no config space to offer...
        self.assertFalse(fe.offered_protocol_features & F.bit(F.PF_CONFIG))
        # ... and a front-end asking anyway is refused.
        self.assertIsNone(fe.get_config(0, 4))
        fe.iterate()
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0].code, int(VhostUser.Error.UNSUPPORTED))
        self.assertEqual(fe.get_u64(F.GET_FEATURES), fe.offered_features)

    # -- failures with no GError to return --------------------------------------

    def features_fail(self, mode, expect_message, which='features'):
        device, errors = self.make()
        device.mode[which] = mode
        stderr = self.quiet()
        fe = self.connect(device)
        # The first request fails (an empty reply where a u64 is owed) and
        # the device closes the connection: nothing can be negotiated.
        with self.assertRaises(F.FrontendError):
            fe.get_u64(F.GET_FEATURES)
        self.assertTrue(fe.is_closed())
        fe.iterate()
        self.assertFalse(device.get_connected())
        messages = [e.message for e in errors]
        self.assertIn(expect_message, messages[0])
        self.assertEqual(len(stderr), 1)
        # Nothing wrong was remembered: the next front-end is served.
        device.mode[which] = None
        fe2 = self.connect(device)
        self.assertTrue(fe2.negotiate() & BIT63 == 0)
        self.assertTrue(fe2.offered_features & BIT63)
        self.assertEqual(fe2.get_config(0, 4), CONFIG[:4])

    def test_features_exception(self):
        self.features_fail('raise', 'ValueError: no features today')

    def test_features_wrong_type(self):
        self.features_fail('str', 'must return an int, not str')

    def test_features_negative(self):
        self.features_fail('negative', 'not a 64-bit feature mask')

    def test_features_too_large(self):
        self.features_fail('huge', 'not a 64-bit feature mask')

    def test_protocol_features_exception(self):
        self.features_fail('raise', 'RuntimeError: protocol features broke',
                           which='protocol_features')

    def test_signal_handler_exception(self):
        device, errors = self.make()
        device.mode['negotiated'] = 'raise'
        stderr = self.quiet()
        fe = self.connect(device)
        fe.offered_features = fe.get_u64(F.GET_FEATURES)
        fe.offered_protocol_features = fe.get_u64(F.GET_PROTOCOL_FEATURES)
        fe.acked_protocol_features = F.bit(F.PF_REPLY_ACK)
        fe.send(F.SET_PROTOCOL_FEATURES, struct.pack('<Q', fe.acked_protocol_features))
        features = F.bit(F.F_VERSION_1) | F.bit(F.F_PROTOCOL_FEATURES)
        # SET_FEATURES fails: its handler raised.
        self.assertNotEqual(fe.call_ack(F.SET_FEATURES, struct.pack('<Q', features)), 0)
        fe.iterate()
        self.assertEqual([e.message for e in errors], ['ValueError: cannot use these features'])
        self.assertEqual(len(stderr), 1)
        device.mode['negotiated'] = None
        self.assertEqual(fe.call_ack(F.SET_FEATURES, struct.pack('<Q', features)), 0)

    def test_kick_handler_exception(self):
        device, errors = self.make()
        fe = self.connect(device)
        ram = fe.start()
        ring = fe.rings[0]
        stderr = self.quiet()
        device.mode['kicked'] = 'raise'
        kicks = device.kicks
        buf = ram.alloc(16)
        ram.write(buf, b'\xee' * 16)
        # The element the handler dropped goes back with nothing written.
        self.assertEqual(fe.request(ring, [(buf, 16, True)]), 0)
        self.assertEqual(ram.read(buf, 16), b'\xee' * 16)
        fe.iterate()
        self.assertEqual([e.message for e in errors], ['IndexError: kick handler failed'])
        self.assertEqual(stderr, [IndexError])
        # The device is still serving the queue.
        device.mode['kicked'] = None
        self.assertEqual(fe.request(ring, [(buf, 16, True)]), 6)
        self.assertEqual(ram.read(buf, 6), b'served')
        self.assertEqual(device.kicks, kicks + 2)
        self.assertEqual(len(errors), 1)

    def test_report_error_outside_requests(self):
        device, errors = self.make()
        device.report_error(GLib.Error.new_literal(VhostUser.error_quark(), 'by hand',
                                                   int(VhostUser.Error.FAILED)))
        self.assertEqual([e.message for e in errors], ['by hand'])


if __name__ == '__main__':
    vhuguest.tap_main()
