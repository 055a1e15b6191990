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
"""``prometheus://?scheme=stf``: a Prometheus exporter of the latest samples.

It keeps the latest value of each series (at most ``max_series``) and serves
them: beside the agent's own metrics on its ``/metrics`` (the default), on
another ``path`` of the agent's endpoint, or on a ``port`` of its own. A
series not updated for ``stale_multiple`` times its own sample interval
(``default_interval`` until it has one) is dropped, so a deleted VM's series
disappear. A scrape costs the live series only: each line is rendered when
its value changes.

Ceilometer's ``prometheus://HOST:9091/metrics/job/JOB`` is a Pushgateway URL
and is served by :mod:`telemetry_lib.publisher.pushgateway`.
"""

import collections
import logging
import threading
import time

from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.formats import prometheus as fmt
from telemetry_lib.httpserver import GetServer
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base
from telemetry_lib.url import parse_host

LOG = logging.getLogger(__name__)


class _Series:
    # ``prefix`` (name and labels) outlives value changes; ``line`` does not.
    __slots__ = ('labels', 'value', 'timestamp', 'prefix', 'line', 'seen',
                 'gap')

    def __init__(self, labels):
        self.labels = labels
        self.prefix = None
        self.line = None
        self.seen = None
        self.gap = None


class SeriesStore:
    """The exporter's state: latest value per series, bounded, expiring.

    :param clock: monotonic seconds (tests pass their own).
    """

    @property
    def default_interval(self):
        return self._default_interval

    @default_interval.setter
    def default_interval(self, value):
        self._default_interval = value
        self._next_expiry = 0.0

    @property
    def stale_multiple(self):
        return self._stale_multiple

    @stale_multiple.setter
    def stale_multiple(self, value):
        self._stale_multiple = value
        self._next_expiry = 0.0

    def __init__(self, scheme='stf', publisher_id='', max_series=100000,
                 stale_multiple=3.0, default_interval=60.0,
                 timestamps=False, clock=time.monotonic):
        self._series_of = fmt.SERIES_OF[scheme]
        # Ceilometer's exporter serves a metric's newest polling cycle
        # only: its series of an older cycle go when a newer one starts.
        self._newest_cycle = {} if scheme == 'ceilometer' else None
        self._previous = {}         # family -> its older cycle's series
        self._publisher_id = publisher_id
        self.max_series = max_series
        # The earliest moment a series may go stale: expire() has nothing
        # to do before it (and a scrape of 100k series need not look).
        self._next_expiry = 0.0
        self.stale_multiple = stale_multiple
        self.default_interval = default_interval
        self.timestamps = timestamps
        self._clock = clock
        self._lock = threading.Lock()
        self._families = {}
        self._names = collections.defaultdict(set)     # family -> labels
        self._count = 0
        self.rejected = collections.Counter()

    def __len__(self):
        return self._count

    def update(self, samples):
        """Take the latest values; return the indexes refused (series limit
        or a type that contradicts the family's).
        """
        refused = []
        now = self._clock()
        with self._lock:
            for i, sample in enumerate(samples):
                name, type_, labels = self._series_of(sample,
                                                      self._publisher_id)
                fam = self._families.get(name)
                if fam is None:
                    fam = self._families[name] = fmt.Family(
                        name, type_, '' if self._newest_cycle is not None
                        else '%s (%s)' % (sample.name, sample.unit))
                if self._newest_cycle is not None and not self._cycle(
                        fam, sample.timestamp.timestamp()):
                    self.rejected['superseded'] += 1
                    continue
                elif fam.type != type_:
                    self.rejected['type_conflict'] += 1
                    refused.append(i)
                    continue
                if not labels.keys() <= self._names[name]:
                    self._widen(fam, labels)
                    self._names[name] = set(fam.label_names)
                key = tuple(labels.get(n, '') for n in fam.label_names)
                series = fam.series.get(key)
                if series is None:
                    if self._count >= self.max_series:
                        self.rejected['series_limit'] += 1
                        refused.append(i)
                        continue
                    previous = self._previous.get(name)
                    series = previous.pop(key, None) if previous else None
                    if series is None:
                        series = _Series(labels)
                    fam.series[key] = series
                    self._count += 1
                elif series.seen is not None:
                    series.gap = now - series.seen
                series.value = sample.volume
                series.timestamp = sample.timestamp.timestamp()
                series.seen = now
                series.line = None
                # New or seen again, it may now go stale before the moment
                # expire() waits for.
                expiry = now + self._stale_multiple * (
                    series.gap or self._default_interval)
                if expiry < self._next_expiry:
                    self._next_expiry = expiry
        return refused

    def _cycle(self, fam, ts):
        """Whether a sample of time ``ts`` belongs to the newest cycle of
        ``fam`` (a newer one starts a cycle and drops the older series).
        """
        newest = self._newest_cycle.get(fam.name)
        if newest is not None and ts < newest:
            return False
        if newest is None or ts > newest:
            self._newest_cycle[fam.name] = ts
            # Out of the scrape now; kept aside so a series the new cycle
            # polls again keeps its rendered prefix.
            self._previous[fam.name] = fam.series
            self._count -= len(fam.series)
            fam.series = {}
        return True

    @staticmethod
    def _widen(fam, labels):
        """A label never seen in this family: add it to every series (as an
        empty value), so the family's label set stays one.
        """
        new = sorted(n for n in labels if n not in fam.label_names)
        if not new:
            return
        fam.label_names.extend(new)
        rekeyed = {}
        for series in fam.series.values():
            series.prefix = series.line = None
            rekeyed[tuple(series.labels.get(n, '') for n in
                          fam.label_names)] = series
        fam.series = rekeyed

    def expire(self):
        """Drop the series whose sources went quiet; return how many."""
        now = self._clock()
        gone = 0
        with self._lock:
            if now < self._next_expiry:
                return 0
            multiple, default = self._stale_multiple, self._default_interval
            soonest = float('inf')
            for fam in self._families.values():
                dead = []
                for key, s in fam.series.items():
                    expiry = s.seen + multiple * (s.gap or default)
                    if now > expiry:
                        dead.append(key)
                    elif expiry < soonest:
                        soonest = expiry
                for key in dead:
                    del fam.series[key]
                gone += len(dead)
            self._count -= gone
            self._next_expiry = soonest
        return gone

    def render(self, openmetrics=False):
        """The exposition text of every live series."""
        self.expire()
        with self._lock:
            if openmetrics:
                return fmt.render(self._snapshot(), openmetrics=True,
                                  timestamps=self.timestamps)
            return ''.join(self._lines())

    def _lines(self):
        value_of = fmt.format_value
        stamped = self.timestamps
        out = []
        add = out.append
        for fam in self._families.values():
            if not fam.series:
                continue
            add('# HELP %s %s\n# TYPE %s %s\n' % (
                fam.name, fmt.escape_help(fam.help), fam.name, fam.type))
            for s in fam.series.values():
                line = s.line
                if line is None:
                    prefix = s.prefix
                    if prefix is None:
                        prefix = s.prefix = fmt.series_prefix(
                            fam.name, fam.label_names, s.labels)
                    v = s.value
                    # Most values: a whole number below a million, which
                    # is its integer's digits (format_value's first case).
                    if type(v) is float and -1e6 < v < 1e6 and \
                            v.is_integer() and v != 0 and not stamped:
                        line = '%s%d\n' % (prefix, v)
                    else:
                        line = prefix + value_of(v) + (
                            ' %d\n' % int(s.timestamp * 1000) if stamped
                            else '\n')
                    s.line = line
                add(line)
        return out

    def _snapshot(self):
        for fam in self._families.values():
            copy = fmt.Family(fam.name, fam.type, fam.help, fam.label_names)
            copy.series = {k: (s.labels, s.value, s.timestamp)
                           for k, s in fam.series.items()}
            yield copy


class PrometheusExporter(base.Publisher):
    """Exports the latest samples for Prometheus to scrape."""

    url_options = frozenset(('scheme', 'max_series', 'stale_multiple',
                             'default_interval', 'timestamps', 'port',
                             'host', 'path', 'format', 'cert_file',
                             'key_file', 'client_ca', 'listen'))

    @classmethod
    def for_url(cls, url):
        if url.hosts and url.path.startswith('/metrics/job'):
            from telemetry_lib.publisher import pushgateway
            return pushgateway.PushgatewayPublisher
        return cls

    def __init__(self, conf, url):
        super().__init__(conf, url)
        scheme = url.get_str('scheme', 'stf', choices=fmt.SCHEMES)
        self.store = SeriesStore(
            scheme, base.publisher_id(conf),
            max_series=url.get_int('max_series', 100000, minimum=1),
            stale_multiple=url.get_float('stale_multiple', 3.0,
                                         minimum=1.0),
            default_interval=url.get_float('default_interval', 60.0,
                                           minimum=0.001),
            timestamps=url.get_bool('timestamps', False))
        # STF's names would change under OpenMetrics (counters get
        # _total), so the stf scheme is always served as text.
        self.format = url.get_str('format', 'text' if scheme == 'stf'
                                  else 'auto',
                                  choices=('auto', 'text', 'openmetrics'))
        self.path = url.get_str('path', '/metrics')
        self._servers = []
        self.port = url.get_int('port', None, minimum=0, maximum=65535)
        self.host = url.get_str('host', '127.0.0.1')
        # Ceilometer's prometheus_listen_addresses: several host:port.
        self.listen = _listen(url.get_str('listen', ''), str(url))
        if self.listen and self.port is not None:
            raise InvalidURL('listen and port are two ways to say the '
                             'same: use one', where=str(url))
        if not self.listen and self.port is not None:
            self.listen = [(self.host, self.port)]
        self.tls = (url.get_str('cert_file', None),
                    url.get_str('key_file', None))
        self.client_ca = url.get_str('client_ca', None)
        if (any(self.tls) or self.client_ca) and (
                not self.listen or not all(self.tls)):
            raise InvalidURL('cert_file and key_file go together (and '
                             'client_ca with them), with a port of the '
                             "exporter's own (the agent's endpoint has its "
                             'own http_cert_file)', where=str(url))
        if (not self.listen and self.path == '/metrics'
                and self.format == 'openmetrics'):
            # The agent's /metrics is text 0.0.4; one body cannot mix two
            # exposition formats.
            raise InvalidURL('format=openmetrics needs a port or a path of '
                             "its own: the agent's /metrics is served as "
                             'text', where=str(url))

    def start(self):
        if self._servers:
            return
        try:
            for host, port in self.listen:
                self._servers.append(GetServer(
                    host, port,
                    lambda path, accept: (200,) + self.exposition(accept)
                    if path == self.path else None,
                    name='prometheus exporter', cert_file=self.tls[0],
                    key_file=self.tls[1], client_ca=self.client_ca).start())
        except Exception:
            self.close()
            raise

    @property
    def address(self):
        """``(host, port)`` of its (first) own server, if it has one."""
        return (self._servers[0].host, self._servers[0].port) \
            if self._servers else None

    @property
    def addresses(self):
        return [(s.host, s.port) for s in self._servers]

    def publish_samples(self, samples):
        refused = self.store.update(samples)
        if refused:
            raise PermanentError('%d sample(s) refused: %s' % (
                len(refused), dict(self.store.rejected)), items=refused)

    def exposition(self, accept=''):
        """``(content_type, body)`` for a scrape with this Accept header."""
        om = self.format == 'openmetrics' or (
            self.format == 'auto' and 'application/openmetrics-text'
            in (accept or ''))
        body = self.store.render(openmetrics=om).encode('utf-8')
        return (fmt.OPENMETRICS_CONTENT_TYPE if om
                else fmt.TEXT_CONTENT_TYPE), body

    def http_routes(self):
        """Paths the agent's endpoint serves for this publisher (none when
        it has a server of its own).
        """
        if self.listen:
            return {}
        return {self.path: self.exposition}

    def adjustments(self):
        return dict(self.store.rejected)

    def close(self, timeout=None):
        deadline = lifecycle.Deadline(timeout)
        servers, self._servers = self._servers, []
        return lifecycle.Outcome.of(
            {server.url: server.close(deadline.left(2.0))
             for server in servers})


def _listen(text, where):
    """``"127.0.0.1:9101,[::1]:9101"`` -> ``[(host, port), ...]``."""
    out = []
    for item in filter(None, (t.strip() for t in text.split(','))):
        host = parse_host(item, where)
        if host.port is None:
            raise InvalidURL('listen wants host:port[,host:port...] (IPv6 '
                             'in brackets), not %r' % item, where=where)
        out.append((host.host, host.port))
    return out
