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
"""``prometheus://[user:pass@]host:9090[/prefix]?scheme=stf``: queries a
Prometheus server, so ``measures show``/``plot`` (and alarms) work on it.

A meter maps to its metric by the same naming scheme the exporter uses
(``stf``: ``ceilometer_<name>``; its ``resource`` label is the resource
id). Aggregations become PromQL over a window of ``granularity`` seconds,
evaluated by ``/api/v1/query_range`` with ``step = granularity``; the point
of a bucket ``[t, t + g)`` is the window ending 1 ms before ``t + g`` (the
resolution of Prometheus timestamps), so a sample stamped exactly ``t + g``
falls in the next bucket, as it does in every other driver. Prometheus 2
closes a range at both ends and 3 opens it at the start, so the window is
1 ms shorter on a 2.x server (asked once, from ``/status/buildinfo``):

=========  =====================================  ============================
mean       ``avg_over_time(m[g])``                across resources:
                                                  ``sum(sum_over_time) /
                                                  sum(count_over_time)``
min, max   ``min_over_time``, ``max_over_time``   ``min(...)``, ``max(...)``
sum        ``sum_over_time``                      ``sum(...)``
count      ``count_over_time``                    ``sum(...)``
last       ``last_over_time``                     one resource only
rate       ``rate(m[g])``                         ``sum(rate(...))``
=========  =====================================  ============================

Without a granularity, the raw measures of one resource come from a range
selector.

Alarms' instant queries asked at one time (an evaluator's turn, see
:meth:`PrometheusStorage.prefetched`) go up to :data:`BATCH` in one request:
each is labelled apart with ``label_replace`` and joined with ``or``, and
the answer is split back by that label. An expression Prometheus refuses
inside a batch (a scalar, a range, a mistake) is found by halving the
batch, and is asked on its own from then on.

Options: ``scheme``, ``token`` (bearer), ``verify_ssl`` (or a CA path),
``timeout``. Writing goes through an exporter or a Pushgateway, never to
this driver.
"""

import collections
import contextlib
import datetime
import math
import threading
import time
from urllib import parse

from telemetry_lib.clients import http
from telemetry_lib.exceptions import InvalidQuery
from telemetry_lib.exceptions import StorageError
from telemetry_lib.exceptions import StorageUnavailable
from telemetry_lib.formats import prometheus as fmt
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base
from telemetry_lib.timeutils import UTC


#: Most bytes of an answer read: a query that would return more is refused
#: with one line rather than held in memory.
MAX_ANSWER = 64 * 1024 * 1024

_OVER_TIME = {'mean': 'avg_over_time', 'min': 'min_over_time',
              'max': 'max_over_time', 'sum': 'sum_over_time',
              'count': 'count_over_time', 'last': 'last_over_time'}
_ACROSS = {'min': 'min', 'max': 'max', 'sum': 'sum', 'count': 'sum',
           'rate': 'sum'}
_TYPES = {'counter': 'cumulative', 'gauge': 'gauge'}

#: Instant queries asked in one request by ``prefetched``.
BATCH = 100
#: The label that tells the queries of a batch apart in its answer.
BATCH_LABEL = 'telemetry_lib_batch'
#: Expressions remembered as not batchable (asked on their own).
_LONERS_KEPT = 10000
#: What reading an answer of the wrong shape raises.
_UNREADABLE = (KeyError, TypeError, ValueError, IndexError, AttributeError)


def _label_value(value):
    return value.replace('\\', '\\\\').replace('"', '\\"')


class PrometheusStorage(base.StorageDriver):
    """Reads measures back from Prometheus' HTTP API."""

    def __init__(self, conf, url):
        super().__init__(conf, url)
        if len(url.hosts) != 1:
            raise StorageError('a prometheus storage URL names one host, as '
                               'in prometheus://127.0.0.1:9090')
        self.scheme = url.get_str('scheme', 'stf', choices=fmt.SCHEMES)
        scheme = 'https' if url.get_bool('ssl', False) else 'http'
        self.base = '%s://%s%s' % (scheme, url.hosts[0],
                                   url.path.rstrip('/'))
        self.timeout = url.get_float('timeout', 10.0, minimum=0.001)
        self.verify = url.get_verify()
        self._names = {}            # meter -> metric name (openmetrics)
        self._prefetched = {}       # (expression, time) -> series
        self._loners = collections.OrderedDict()  # not batchable
        # Two evaluators (file and database alarms) may share this driver:
        # each turn adds its answers and takes away only its own.
        self._batch_lock = threading.Lock()
        self._closed_ranges = None  # Prometheus < 3: [t - r, t] not (t - r, t]
        token = url.get('token')
        self._client = http.HttpClient(
            self.timeout, verify=self.verify, max_body=MAX_ANSWER,
            headers={'Authorization': 'Bearer ' + token} if token else None,
            auth=(url.username, url.password or '')
            if url.username and not token else None)

    def instant_query(self, expression, at=None):
        """A PromQL expression evaluated by the server at ``at`` (a
        datetime; now by default): ``[(labels, value)]``, one per series.

        :raises InvalidQuery: for an expression the server refuses.
        :raises StorageUnavailable: when the server cannot be reached.
        """
        if at is not None:
            found = self._prefetched.get((expression, at.timestamp()))
            if found is not None:
                return list(found)
        params = {'query': expression}
        if at is not None:
            params['time'] = at.timestamp()
        try:
            data = self._get('/api/v1/query', **params)
        except StorageError as exc:
            if exc.retryable:
                raise
            raise InvalidQuery(str(exc)) from None
        if not isinstance(data, dict):
            raise StorageError('Prometheus at %s answered %r, not a query '
                               'result' % (self.base, type(data).__name__))
        kind = data.get('resultType')
        if kind not in ('scalar', 'vector'):
            raise InvalidQuery('%r gives a %s, not an instant vector'
                               % (expression, kind))
        try:
            if kind == 'scalar':
                return [({}, float(data['result'][1]))]
            return [(dict(series.get('metric') or {}),
                     float(series['value'][1])) for series in data['result']]
        except _UNREADABLE:
            raise self._unreadable() from None

    @contextlib.contextmanager
    def prefetched(self, expressions, at):
        """Ask ``expressions`` at ``at`` in batches of :data:`BATCH`; within
        the block :meth:`instant_query` answers them from there. What a
        batch could not answer is asked on its own, as without this.
        """
        when = at.timestamp()
        found = {}
        with self._batch_lock:
            wanted = [e for e in dict.fromkeys(expressions)
                      if e not in self._loners]
        for i in range(0, len(wanted), BATCH):
            self._batch(wanted[i:i + BATCH], when, found)
        mine = {(e, when): series for e, series in found.items()}
        with self._batch_lock:
            # A new dict each time: instant_query reads it without a lock.
            self._prefetched = {**self._prefetched, **mine}
        try:
            yield
        finally:
            with self._batch_lock:
                self._prefetched = {k: v for k, v in
                                    self._prefetched.items()
                                    if k not in mine}

    def _batch(self, expressions, when, found):
        """Answers of ``expressions`` into ``found``; a batch refused is
        halved until the expression Prometheus refuses is alone (then
        remembered as a loner); one that fails otherwise is left out.
        """
        joined = ' or '.join(
            'label_replace((%s), "%s", "%d", "", "")' % (e, BATCH_LABEL, i)
            for i, e in enumerate(expressions))
        try:
            data = self._get('/api/v1/query', method='POST', query=joined,
                             time=when)
        except StorageError as exc:
            if exc.retryable:
                return          # down or slow: each is asked on its own
            if len(expressions) == 1:
                self._loner(expressions[0])
                return
            half = len(expressions) // 2
            self._batch(expressions[:half], when, found)
            self._batch(expressions[half:], when, found)
            return
        answers = {i: [] for i in range(len(expressions))}
        try:
            if data['resultType'] != 'vector':
                return
            for series in data['result']:
                labels = dict(series['metric'])
                index = int(labels.pop(BATCH_LABEL))
                answers[index].append((labels, float(series['value'][1])))
        except _UNREADABLE:
            return              # not what was asked: trust none of it
        for i, e in enumerate(expressions):
            found[e] = answers[i]

    def _loner(self, expression):
        with self._batch_lock:
            self._loners[expression] = True
            while len(self._loners) > _LONERS_KEPT:
                self._loners.popitem(last=False)

    # -- the HTTP API ------------------------------------------------------

    def _get(self, path, method='GET', **params):
        try:
            if method == 'POST':
                # A batch can outgrow a URL: its query goes in the body.
                resp = self._client.request(
                    'POST', self.base + path,
                    data=parse.urlencode(params), headers={
                        'Content-Type': 'application/x-www-form-urlencoded'})
            else:
                resp = self._client.request('GET', self.base + path,
                                            params=params)
        except http.Unanswered as exc:
            raise StorageUnavailable('Prometheus at %s: %s'
                                     % (self.base, exc)) from None
        if resp.truncated:
            raise StorageError('Prometheus at %s answered more than %d '
                               'bytes: ask for a shorter range or a coarser '
                               'granularity' % (self.base, MAX_ANSWER))
        try:
            body = jsoncodec.loads(resp.text)
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        if resp.status != 200 or body.get('status') != 'success':
            raise StorageError('Prometheus at %s answered HTTP %d: %s'
                               % (self.base, resp.status,
                                  body.get('error') or http.short(resp.text)),
                               retryable=http.retryable(resp.status))
        if 'data' not in body:
            raise StorageError('Prometheus at %s answered success without '
                               'data' % self.base)
        return body['data']

    # -- naming --------------------------------------------------------------

    def metric(self, meter):
        """The metric name of ``meter`` under this driver's scheme."""
        if self.scheme == 'stf':
            return fmt.stf_meter_name(meter)
        # The openmetrics names carry units: ask Prometheus once per meter
        # it has not seen yet, not on every query.
        if meter not in self._names:
            self._meter_index()
        try:
            return self._names[meter]
        except KeyError:
            raise StorageError('no metric of meter %r in Prometheus'
                               % meter) from None

    def _selector(self, meter, resource_id):
        sel = self.metric(meter)
        if resource_id is not None:
            sel += '{resource="%s"}' % _label_value(resource_id)
        return sel

    # -- queries -------------------------------------------------------------

    def query(self, meter, *, resource_id=None, start=None, stop=None,
              granularity=None, aggregation='mean'):
        base.check_query(aggregation, granularity, resource_id)
        stop_ts = (stop or datetime.datetime.now(UTC)).timestamp()
        start_ts = start.timestamp() if start else stop_ts - 3600
        sel = self._selector(meter, resource_id)
        if granularity is None:
            window = max(1, int(math.ceil(stop_ts - start_ts)))
            data = self._get('/api/v1/query', query='%s[%ds]' % (sel, window),
                             time=stop_ts)
            try:
                points = [(float(t), float(v)) for series in data['result']
                          for t, v in series['values']
                          if start_ts <= float(t) < stop_ts]
            except _UNREADABLE:
                raise self._unreadable() from None
            return aggregate.to_points(sorted(points))
        if aggregation == 'last' and resource_id is None:
            raise StorageError('the prometheus driver gives "last" for one '
                               'resource only; name one with --resource')
        range_ms = int(round(granularity * 1000))
        if self._ranges_closed():
            range_ms -= 1
        expr = self._expression(sel, range_ms, aggregation,
                                resource_id is None)
        # A bucket [t, t + g) is the window that ends 1 ms before t + g.
        first = aggregate.bucket_start(start_ts, granularity) + granularity
        data = self._get('/api/v1/query_range', query=expr,
                         start='%.3f' % (first - 0.001),
                         end='%.3f' % (stop_ts + granularity - 0.001),
                         step=granularity)
        points = {}
        try:
            for series in data['result']:
                for t, v in series['values']:
                    bucket = round(float(t) + 0.001 - granularity, 3)
                    if start_ts - granularity < bucket < stop_ts:
                        points[bucket] = float(v)
        except _UNREADABLE:
            raise self._unreadable() from None
        return aggregate.to_points(sorted(points.items()))

    def _unreadable(self):
        return StorageError('Prometheus at %s answered a result this '
                            'driver cannot read' % self.base)

    def _ranges_closed(self):
        if self._closed_ranges is None:
            major = 3           # unless told otherwise: the current one
            try:
                version = self._get('/api/v1/status/buildinfo')['version']
                major = int(version.split('.', 1)[0])
            except StorageError as exc:
                if exc.retryable:
                    raise       # unreachable: ask again on the next query
            except (KeyError, TypeError, ValueError):
                pass            # a proxy that hides or mangles buildinfo
            self._closed_ranges = major < 3
        return self._closed_ranges

    @staticmethod
    def _expression(sel, range_ms, aggregation, across):
        window = '%s[%dms]' % (sel, range_ms)
        if aggregation == 'rate':
            expr = 'rate(%s)' % window
        else:
            expr = '%s(%s)' % (_OVER_TIME[aggregation], window)
        if not across:
            return expr
        if aggregation == 'mean':
            return 'sum(sum_over_time(%s)) / sum(count_over_time(%s))' % (
                window, window)
        return '%s(%s)' % (_ACROSS[aggregation], expr)

    def _series(self, match=None):
        """Label sets of the last day's series matching ``match`` (by
        default, every series this driver's scheme writes).
        """
        if match is None:
            match = ('{__name__=~"ceilometer_.+"}' if self.scheme == 'stf'
                     else '{resource!=""}')
        return self._get('/api/v1/series', **{
            'match[]': match, 'start': time.time() - 86400})

    def resources(self, meter=None):
        data = self._series(self.metric(meter) if meter else None)
        try:
            return sorted({s['resource'] for s in data
                           if s.get('resource')})
        except _UNREADABLE:
            raise self._unreadable() from None

    def _meter_index(self):
        """``[(meter, type, unit)]`` from the series' labels."""
        data = self._series()
        types = {}
        try:
            for name, info in self._get('/api/v1/metadata').items():
                types[name] = _TYPES.get(info[0].get('type'), 'delta')
        except (StorageError, IndexError, AttributeError):
            pass
        found = {}
        try:
            for s in data:
                meter = s.get('counter') or s['__name__']
                self._names[meter] = s['__name__']
                found[meter] = (meter, types.get(s['__name__'], 'gauge'),
                                s.get('unit', ''))
        except _UNREADABLE:
            raise self._unreadable() from None
        return sorted(found.values())

    def meters(self):
        return self._meter_index()

    def write(self, samples):
        raise StorageError('the prometheus storage driver only reads: '
                           'publish through prometheus:// (exporter) or '
                           'pushgateway:// instead')

    def close(self, timeout=None):
        self._client.close()
        return lifecycle.DONE
