#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Copyright 2026 The libvhostuser-glib authors
#
# Python devices and threads. By default a Python device runs on one thread,
# the main context's; a queue may be moved to a worker thread's context. The
# library must never wait for that thread while the caller may hold the GIL
# (dispose runs under it when PyGObject drops a wrapper), nor wait forever for
# a queue thread that stopped, nor hold a lock while it calls into Python.
# The programs' cases run in child processes, so that a deadlock is a test
# failure (a timeout) and not a hung test program.

import faulthandler
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import vhufrontend as F  # noqa: E402
import vhuguest  # noqa: E402

import gi  # noqa: E402

gi.require_version('VhostUser', '1.0')
from gi.repository import GLib  # noqa: E402

# A worker thread running a main loop on its own context; and a device that
# records which thread its handlers run on. Also used by the child programs.
COMMON = textwrap.dedent('''
    import threading
    import gi
    gi.require_version('VhostUser', '1.0')
    from gi.repository import GLib, VhostUser


    class Worker(threading.Thread):
        def __init__(self):
            super().__init__(daemon=True)
            self.context = GLib.MainContext.new()
            self.loop = GLib.MainLoop.new(self.context, False)
            self.running = threading.Event()

        def run(self):
            self.context.push_thread_default()
            self.context.invoke_full(GLib.PRIORITY_DEFAULT, self.running.set)
            self.loop.run()
            self.context.pop_thread_default()

        def stop(self):
            self.loop.quit()
            self.join()


    class Echo(VhostUser.Device):
        def __init__(self):
            super().__init__(num_queues=1)
            self.kicked_on = set()
            self.stopped_on = set()
            self.served = 0

        def do_queue_kicked(self, queue):
            self.kicked_on.add(threading.get_ident())
            for element in queue:
                queue.push(element, element.write(0, element.read()))
                self.served += 1

        def do_queue_stopped(self, queue):
            self.stopped_on.add(threading.get_ident())
''')
# Worker and Echo, here as in the children.
namespace = {}
exec(COMMON, namespace)
Worker, Echo = namespace['Worker'], namespace['Echo']


def run_child(body, timeout=30, **kwargs):
    """Runs COMMON + @body in a child Python; returns the CompletedProcess
    (a hang is a subprocess.TimeoutExpired, so a failure)."""
    return subprocess.run([sys.executable, '-c', COMMON + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


class ThreadTest(unittest.TestCase):

    def setUp(self):
        # A deadlock fails the test program with every thread's stack,
        # rather than hanging it until meson's timeout.
        faulthandler.dump_traceback_later(60, exit=True)
        self.addCleanup(faulthandler.cancel_dump_traceback_later)
        self.worker = Worker()
        self.worker.start()
        self.assertTrue(self.worker.running.wait(10))
        self.addCleanup(lambda: self.worker.is_alive() and self.worker.stop())
        self.device = Echo()
        self.device.get_queue(0).set_context(self.worker.context)
        self.fe = F.Frontend.for_device(self.device)
        self.ram = self.fe.start()

    def echo(self, data):
        ram = self.ram
        out, back = ram.alloc(len(data)), ram.alloc(len(data))
        ram.write(out, data)
        written = self.fe.request(self.fe.rings[0], [(out, len(data), False),
                                                      (back, len(data), True)])
        return ram.read(back, written)

    def test_single_threaded_by_default(self):
        device = Echo()
        fe = F.Frontend.for_device(device)
        self.addCleanup(fe.close)
        ram = fe.start()
        buf = ram.alloc(4)
        ram.write(buf, b'ping')
        self.assertEqual(fe.request(fe.rings[0], [(buf, 4, False), (ram.alloc(4), 4, True)]), 4)
        self.assertEqual(device.kicked_on, {threading.get_ident()})
        self.assertEqual(device.get_queue(0).get_context(), GLib.MainContext.default())

    def test_queue_on_worker(self):
        self.assertEqual(self.echo(b'hello worker'), b'hello worker')
        self.assertEqual(self.device.kicked_on, {self.worker.ident})
        # The front-end goes away: the queue stops on its own thread, while
        # the device's thread waits (without the GIL: PyGObject releases it
        # around every call into the library).
        self.fe.close()
        self.assertEqual(self.device.stopped_on, {self.worker.ident})
        self.assertFalse(self.device.get_connected())

    def test_disconnect_from_python(self):
        self.assertEqual(self.echo(b'x' * 100), b'x' * 100)
        self.device.disconnect()
        self.assertEqual(self.device.stopped_on, {self.worker.ident})
        self.assertTrue(self.fe.is_closed())
        self.fe.close()

    def test_disconnect_after_worker_stopped(self):
        """The queue's thread is gone: the device stops the queue itself
        instead of waiting forever."""
        self.assertEqual(self.echo(b'abc'), b'abc')
        self.worker.stop()
        self.device.disconnect()
        self.assertEqual(self.device.stopped_on, {threading.get_ident()})
        self.assertTrue(self.fe.is_closed())
        self.fe.close()

    def test_dispose_while_connected(self):
        """The last reference goes while connected and the worker runs:
        PyGObject disposes with the GIL held; nothing may wait for the
        worker (it would need the GIL for do_queue_stopped)."""
        self.assertEqual(self.echo(b'abc'), b'abc')
        changes = []
        queue = self.device.get_queue(0)
        queue.connect('notify::started',
                      lambda q, pspec: changes.append((q.get_started(), threading.get_ident())))
        self.fe.device = None
        self.device = None
        self.assertTrue(self.fe.is_closed())
        # The queue is reset on its own thread, later; the device lives
        # until then.
        done = threading.Event()
        self.worker.context.invoke_full(GLib.PRIORITY_LOW, done.set)
        self.assertTrue(done.wait(10))
        self.assertEqual(changes, [(False, self.worker.ident)])
        self.fe.close()


class ProgramExitTest(unittest.TestCase):
    """A device program with a queue on a worker thread, connected to a
    front-end (this process), must exit without a deadlock."""

    PROGRAM = '''
        import signal, sys
        worker = Worker()
        worker.start()
        worker.running.wait()
        device = Echo()
        device.get_queue(0).set_context(worker.context)
        program = VhostUser.BackendProgram.new('rng')
        program.parse([sys.argv[0], '--socket-path=' + SOCK])
        status = program.run(device)
        print('run returned', status, 'served', device.served, flush=True)
        MODE = sys.argv[1] if len(sys.argv) > 1 else ''
        if MODE == 'join':
            worker.stop()
        sys.exit(status)
    '''

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix='vhu-py-threads-')
        self.addCleanup(tmp.cleanup)
        self.sock = os.path.join(tmp.name, 'dev.sock')

    def start(self, *args):
        body = 'SOCK = %r\n' % self.sock + textwrap.dedent(self.PROGRAM)
        proc = vhuguest.start_backend([sys.executable, '-c', COMMON + body, *args], self.sock,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc

    def serve_and_stop(self, *args, disconnect_first=False):
        proc = self.start(*args)
        fe = F.Frontend.connect(self.sock)
        ram = fe.start()
        for i in range(10):
            buf = ram.alloc(8)
            ram.write(buf, b'%8d' % i)
            back = ram.alloc(8)
            self.assertEqual(fe.request(fe.rings[0], [(buf, 8, False), (back, 8, True)]), 8)
            self.assertEqual(ram.read(back, 8), b'%8d' % i)
        if disconnect_first:
            fe.close()
        status = vhuguest.stop_backend(proc, timeout=20)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(status, 0, err)
        self.assertIn('run returned 0 served 10', out)
        if not disconnect_first:
            self.assertTrue(fe.is_closed())
            fe.close()

    def test_sigterm_while_connected(self):
        self.serve_and_stop()

    def test_sigterm_then_join_worker(self):
        self.serve_and_stop('join')

    def test_sigterm_after_disconnect(self):
        self.serve_and_stop(disconnect_first=True)

    def test_exit_while_connected(self):
        """The program leaves (sys.exit from the main context) with the
        front-end connected and the worker running: interpreter shutdown
        drops the device."""
        proc = run_child('''
            import os, socket, sys
            sys.path.insert(0, %r)
            import vhufrontend as F
            worker = Worker()
            worker.start()
            worker.running.wait()
            device = Echo()
            device.get_queue(0).set_context(worker.context)
            fe = F.Frontend.for_device(device)
            ram = fe.start()
            buf = ram.alloc(8)
            print(fe.request(fe.rings[0], [(buf, 8, False), (ram.alloc(8), 8, True)]),
                  device.kicked_on == {worker.ident}, flush=True)
            sys.exit(0)
        ''' % HERE)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stdout.split(), ['8', 'True'])


if __name__ == '__main__':
    vhuguest.tap_main()
