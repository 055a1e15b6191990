#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""The agent's signals, handed to its main loop without taking a lock.

A Python signal handler runs in the main thread between two bytecodes --
possibly while that thread holds a lock: an ``Event``'s while it waits on
it, a logging handler's while it writes. A handler that takes the same
lock (``Event.set()``, a log call) deadlocks the main thread, while the
daemon threads go on polling: how an agent once logged "Signal 2:
stopping" and polled on until SIGKILL. So these handlers only append to a
deque and write a byte to a pipe, neither of which takes a Python lock;
the main loop logs, stops and reloads.

A second stop signal while the first is being served exits at once
(status 1), written straight to standard error.
"""

import collections
import os
import select
import signal

from telemetry_lib.wakeup import WakePipe

STOP = (signal.SIGTERM, signal.SIGINT)
RELOAD = (signal.SIGHUP,)


class Inbox:
    """Signals received, for :meth:`wait` in the main thread.

    Construction opens a pipe; :meth:`install` sets the handlers (main
    thread only); :meth:`close` puts the previous ones back.
    """

    def __init__(self):
        self._pending = collections.deque()
        self._wake = WakePipe()
        self._previous = {}
        #: Set by the first stop signal, read by the handler of the next.
        self.stopping = False

    def install(self):
        for signum in STOP:
            self._previous[signum] = signal.signal(signum, self._on_stop)
        for signum in RELOAD:
            self._previous[signum] = signal.signal(signum, self._on_signal)

    def _on_stop(self, signum, frame):
        if self.stopping:
            os.write(2, b'telemetry-agent: second signal: exiting now\n')
            os._exit(1)
        self.stopping = True
        self._on_signal(signum, frame)

    def _on_signal(self, signum, frame):
        self._pending.append(signum)
        self._wake.wake()

    def wait(self, timeout):
        """The signals received since the last call, in order; waits up
        to ``timeout`` seconds for one when there are none.
        """
        if not self._pending:
            select.select([self._wake], [], [], timeout)
        self._wake.drain()
        got = []
        while self._pending:
            got.append(self._pending.popleft())
        return got

    def close(self):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        self._wake.close()
