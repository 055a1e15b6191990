"""The agent's signal inbox: a storm of signals while the main thread is
busy with locks (logging, events) never deadlocks it, and a stop signal
always reaches the loop.

The old handlers called ``Event.set()`` and logged; a signal landing while
the main thread held that lock hung the agent for good while its daemon
threads polled on (issue 21, "Signal 2: stopping" and no stop).
"""

import os
import signal
import subprocess
import sys
import textwrap

import telemetry_lib
from telemetry_lib.agent import signals
from tests import base

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(
    telemetry_lib.__file__)))

STORM = textwrap.dedent('''
    import logging, os, signal, sys, threading, time
    from telemetry_lib.agent import signals

    log = logging.getLogger('storm')
    log.addHandler(logging.StreamHandler(open(os.devnull, 'w')))
    log.setLevel(logging.INFO)
    inbox = signals.Inbox()
    inbox.install()
    main = threading.get_ident()
    busy = threading.Event()

    def storm():
        for i in range(int(sys.argv[1])):
            signal.pthread_kill(main, signal.SIGHUP)
            if i % 50 == 0:
                time.sleep(0.0001)
        signal.pthread_kill(main, signal.SIGTERM)
    threading.Thread(target=storm, daemon=True).start()
    seen = 0
    while True:
        # The main thread spends its time inside locks, as the agent's
        # does: an Event's and the logging handler's.
        busy.clear()
        busy.wait(0)
        log.info('tick %d', seen)
        got = inbox.wait(0.001)
        seen += len(got)
        if signal.SIGTERM in got:
            break
    inbox.close()
    print('stopped after %d signal(s)' % seen)
''')


class TestInbox(base.TestCase):

    def test_a_signal_storm_never_deadlocks_the_loop(self):
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.Popen([sys.executable, '-c', STORM, '20000'],
                                stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            self.fail('the main loop hung under a signal storm: %r'
                      % err[-2000:])
        assert proc.returncode == 0, err[-2000:]
        assert out.startswith(b'stopped after '), (out, err[-2000:])

    def test_second_stop_exits_at_once(self):
        script = textwrap.dedent('''
            import os, signal, time
            from telemetry_lib.agent import signals
            inbox = signals.Inbox()
            inbox.install()
            os.kill(os.getpid(), signal.SIGTERM)
            assert inbox.wait(5) == [signal.SIGTERM]
            # Stopping takes long; a second signal must not wait for it.
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(60)
        ''')
        env = dict(os.environ, PYTHONPATH=ROOT)
        proc = subprocess.run([sys.executable, '-c', script], env=env,
                              capture_output=True, timeout=50)
        assert proc.returncode == 1, proc.stderr
        assert b'second signal: exiting now' in proc.stderr

    def test_signals_come_in_order_and_close_restores(self):
        before = signal.getsignal(signal.SIGHUP)
        inbox = signals.Inbox()
        inbox.install()
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            got = []
            assert base.wait_until(
                lambda: got.extend(inbox.wait(0.1)) or got, 10)
            assert got == [signal.SIGHUP]
            assert inbox.wait(0) == []
        finally:
            inbox.close()
        assert signal.getsignal(signal.SIGHUP) is before
