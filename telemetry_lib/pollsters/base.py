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
"""The pollster contract: what every ``telemetry_lib.pollster`` plugin is.

Called on an interval by the agent's scheduler (the pushed-to inputs are
:mod:`telemetry_lib.collector`'s listeners).
"""

import abc

from telemetry_lib import lifecycle


class Pollster(lifecycle.Component):
    """Base class of every pollster plugin (``telemetry_lib.pollster``).

    * ``meters`` lists every meter name it can produce, so ``polling.yaml``
      globs select pollsters without running them.
    * ``poll`` is called from a worker thread, never concurrently with
      itself; it may block (a slow one does not delay other pollsters) and
      returns the samples of one run, all stamped with ``timestamp``.
    * It may raise: the agent counts and logs the error and polls again at
      the next interval.
    * **Lifecycle** (:mod:`telemetry_lib.lifecycle`): construction does no
      I/O; the agent calls :meth:`start` before the first poll and
      :meth:`close` when it stops, which releases what the pollster holds
      (a connection, a pool) within its timeout.

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
