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
"""The listener contract: what every ``telemetry_lib.listener`` plugin is.

A listener is pushed to -- the bus, a socket -- rather than called on an
interval: Ceilometer's *collector* side. The udp/tcp receivers of
:mod:`telemetry_lib.collector.sockets` and the notification listener of
:mod:`telemetry_lib.notification.listener` are listeners.
"""

import abc

from telemetry_lib import lifecycle


class Listener(lifecycle.Component):
    """Base class of every listener plugin (``telemetry_lib.listener``):
    a collector that is pushed to, rather than called on an interval.

    * Construction validates its options and does no I/O; :meth:`start`
      connects and starts its own threads.
    * What it receives goes to ``deliver(samples, events)``, which returns
      ``(accepted, queued)``: when not accepted (the publishers' queues are
      past their high water), the listener keeps the messages with their
      source (a message bus redelivers them) and slows down -- it never
      drops them for back-pressure.
    * :meth:`close` returns within its timeout (an
      :class:`~telemetry_lib.lifecycle.Outcome`), having acknowledged only
      what ``deliver`` accepted.

    :param conf: the caller's ``ConfigOpts``.
    :param deliver: see above; called from the listener's threads.
    """

    #: The ``transport`` label of its counts on ``/metrics``.
    kind = None

    def __init__(self, conf, deliver):
        self.conf = conf
        self.deliver = deliver

    def snapshot(self):
        """``{what: count}`` for ``/metrics``: ``messages``, ``samples``
        and drops by reason (``malformed``, ``bad_signature``,
        ``oversize``, ``refused``). None by default.
        """
        return {}

    @abc.abstractmethod
    def start(self):
        """Connect and start listening.

        :raises ConfigError: when it cannot (bad URL, driver missing).
        """

    @abc.abstractmethod
    def close(self, timeout=None):
        """Stop listening within ``timeout`` seconds; return an
        :class:`~telemetry_lib.lifecycle.Outcome`.
        """

    def describe(self):
        """One line saying what it listens to, credentials masked."""
        return type(self).__name__
