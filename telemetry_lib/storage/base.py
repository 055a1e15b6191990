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
"""The storage driver contract."""

import abc
import contextlib
import datetime
import typing

from oslo_config import cfg

from telemetry_lib.exceptions import InvalidQuery
from telemetry_lib import lifecycle
from telemetry_lib import plugins
from telemetry_lib.url import TelemetryURL

OPTS = [
    cfg.StrOpt('url', default='sqlite://', secret=True,
               help='Storage the CLI (measures show/plot) reads, as a '
                    'storage URL: sqlite:// (the embedded default), '
                    'sqlite:///PATH, memory://.'),
]
GROUP = 'storage'

#: What ``query`` can compute per bucket of ``granularity`` seconds.
AGGREGATIONS = ('mean', 'min', 'max', 'sum', 'count', 'last', 'rate')


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class Point(typing.NamedTuple):
    """One value of a series: a raw measure, or a bucket's aggregate
    (``timestamp`` is then the start of the bucket).
    """

    timestamp: datetime.datetime
    value: float


class StorageDriver(lifecycle.Component):
    """Base class of every storage driver plugin.

    * ``write`` blocks until the samples are stored; it raises
      :class:`~telemetry_lib.exceptions.StorageError` (``retryable`` says
      whether the same write may succeed later). Writing a sample twice
      stores it once: a series holds one value per timestamp.
    * ``query`` and ``resources`` may run in another process than
      ``write`` (the CLI reading what the agent writes).
    * Drivers are safe to use from several threads.
    * **Lifecycle** (:mod:`telemetry_lib.lifecycle`): construction
      validates and does no I/O; :meth:`start` opens what exists (a
      driver may leave creating its storage to the first write, so a
      reader with a mistyped path leaves nothing behind); :meth:`close`
      returns within its timeout.
    """

    def __init__(self, conf, url):
        register_opts(conf)
        self.conf = conf
        self.url = url

    @abc.abstractmethod
    def write(self, samples):
        """Store a batch of :class:`~telemetry_lib.sample.Sample`."""

    @abc.abstractmethod
    def query(self, meter, *, resource_id=None, start=None, stop=None,
              granularity=None, aggregation='mean'):
        """The series of ``meter`` between ``start`` (included) and
        ``stop`` (excluded).

        :param resource_id: one resource; ``None`` aggregates over all.
        :param granularity: bucket width in seconds; ``None`` returns the
            raw measures (of one resource) without aggregation.
        :param aggregation: one of :data:`AGGREGATIONS`. ``rate`` is the
            per-second rate of change of a cumulative meter (a counter
            reset counts from zero, as in Prometheus); over all resources
            it is the sum of their rates.
        :returns: a list of :class:`Point`, oldest first.
        """

    @abc.abstractmethod
    def resources(self, meter=None):
        """Resource ids that have measures (of ``meter``), sorted."""

    @abc.abstractmethod
    def meters(self):
        """``(name, type, unit)`` of every stored meter, sorted."""

    @contextlib.contextmanager
    def prefetched(self, expressions, at):
        """A hint: within the block, the instant queries ``expressions``
        will be asked at ``at`` (a datetime), one alarm after another. A
        driver that can ask many in one request does so here; answers are
        the same as asked one by one. Nothing by default.
        """
        yield

    def close(self, timeout=None):
        """Release connections within ``timeout`` seconds; after this,
        use it no more. Returns an :class:`~telemetry_lib.lifecycle.Outcome`.
        """
        return lifecycle.DONE


def check_query(aggregation, granularity, resource_id):
    """Validate query arguments; raise ``StorageError`` naming the bad one."""
    if aggregation not in AGGREGATIONS:
        raise InvalidQuery('aggregation must be one of %s, not %r'
                           % (', '.join(AGGREGATIONS), aggregation))
    if granularity is not None and not granularity > 0:
        raise InvalidQuery('granularity must be a number of seconds > 0, '
                           'not %r' % (granularity,))
    if granularity is None and resource_id is None:
        raise InvalidQuery('raw measures (no granularity) need a resource')


def load_storage(conf, url):
    """Build the storage driver a URL names (``sqlite://``, ``memory://``),
    not started.

    :raises telemetry_lib.exceptions.PluginLoadError: for an unknown scheme.
    """
    if not isinstance(url, TelemetryURL):
        url = TelemetryURL.parse(url)
    cls = plugins.load_class(plugins.STORAGE_NAMESPACE, url.scheme,
                             base=StorageDriver)
    return cls(conf, url)
