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
"""The collector contracts."""

import abc

from telemetry_lib.exceptions import ConfigError
from telemetry_lib import plugins


class Pollster(metaclass=abc.ABCMeta):
    """Base class of every pollster plugin (``telemetry_lib.pollster``).

    * ``meters`` lists every meter name it can produce, so ``polling.yaml``
      globs select pollsters without running them.
    * ``poll`` is called from a worker thread, never concurrently with
      itself; it may block (a slow one does not delay other pollsters) and
      returns the samples of one run, all stamped with ``timestamp``.
    * It may raise: the agent counts and logs the error and polls again at
      the next interval.

    :param conf: the caller's ``ConfigOpts``.
    """

    #: Meter names this pollster produces.
    meters = ()

    def __init__(self, conf):
        self.conf = conf

    def declared_meter(self, name):
        """The entry of ``meters`` a sample named ``name`` answers to (a
        pollster that derives names from data overrides it).
        """
        return name

    @abc.abstractmethod
    def poll(self, timestamp, resources=None):
        """Return an iterable of :class:`~telemetry_lib.sample.Sample`.

        :param timestamp: the run's time, to stamp every sample with.
        :param resources: the ``resources`` of the polling.yaml source, if
            any (pollsters that poll one host ignore them).
        """


class Listener(metaclass=abc.ABCMeta):
    """Base class of every listener plugin (``telemetry_lib.listener``):
    a collector that is pushed to, rather than called on an interval.

    * Construction validates its options and does no I/O; :meth:`start`
      connects and starts its own threads.
    * What it receives goes to ``deliver(samples, events)``, which returns
      ``(accepted, queued)``: when not accepted (the publishers' queues are
      past their high water), the listener keeps the messages with their
      source (a message bus redelivers them) and slows down -- it never
      drops them for back-pressure.
    * :meth:`stop` returns within its timeout, having acknowledged only
      what ``deliver`` accepted.

    :param conf: the caller's ``ConfigOpts``.
    :param deliver: see above; called from the listener's threads.
    """

    def __init__(self, conf, deliver):
        self.conf = conf
        self.deliver = deliver

    @abc.abstractmethod
    def start(self):
        """Connect and start listening.

        :raises ConfigError: when it cannot (bad URL, driver missing).
        """

    @abc.abstractmethod
    def stop(self, timeout=None):
        """Stop listening within ``timeout`` seconds."""

    def describe(self):
        """One line saying what it listens to, credentials masked."""
        return type(self).__name__


def load_pollsters(conf, names=None):
    """Instantiate the installed pollsters, all or those in ``names``,
    and (without ``names``) the dynamic pollsters of
    ``[polling] pollsters_definitions_dirs``.

    :returns: ``{entry point or definition name: Pollster}``.
    :raises ConfigError: for a bad dynamic pollster definition.
    """
    found = {}
    for name in names or plugins.names(plugins.POLLSTER_NAMESPACE):
        cls = plugins.load_class(plugins.POLLSTER_NAMESPACE, name,
                                 base=Pollster)
        found[name] = cls(conf)
    if names is None:
        from telemetry_lib.collector.dynamic import pollster as dynamic
        for name, pollster in dynamic.load_all(conf).items():
            if name in found:
                raise ConfigError('dynamic pollster %r has the name of an '
                                  'installed one' % name)
            found[name] = pollster
    return found
