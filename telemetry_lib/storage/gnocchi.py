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
"""``gnocchi://[host:port]``: the storage API over Gnocchi.

One resource: the metric's measures with ``aggregation`` and
``granularity`` (``refresh=true`` by default, so measures metricd has not
processed yet are included). All resources: Gnocchi's aggregates API over
every resource that has the metric. ``rate`` is Gnocchi's ``rate:last``;
the archive policy must offer the aggregation asked for. Without a
granularity, the finest one the archive policy keeps. Writes go through the
publisher's writer (one batch request, resources created as needed).
"""

import datetime

from gnocchiclient import exceptions as gnocchi_exc

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.clients import gnocchi_resources
from telemetry_lib.clients.gnocchi_writer import GnocchiWriter
from telemetry_lib.exceptions import NotFound
from telemetry_lib.exceptions import StorageError
from telemetry_lib.exceptions import StorageUnavailable
from telemetry_lib import lifecycle
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base
from telemetry_lib.timeutils import UTC

_METHODS = {'mean': 'mean', 'min': 'min', 'max': 'max', 'sum': 'sum',
            'count': 'count', 'last': 'last', 'rate': 'rate:last'}
#: How the resources' per-bucket values combine across resources.
_ACROSS = {'mean': 'mean', 'min': 'min', 'max': 'max', 'sum': 'sum',
           'count': 'sum', 'last': 'mean', 'rate': 'sum'}


class GnocchiStorage(base.StorageDriver):
    """Reads (and writes) measures in Gnocchi."""

    def __init__(self, conf, url):
        super().__init__(conf, url)
        gnocchi_client.register_opts(conf)
        self.client = gnocchi_client.make_client(conf, url)
        self.refresh = url.get_bool('refresh', True)
        self._url = url
        self._writer = None

    def _call(self, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except gnocchi_exc.NotFound:
            return None
        except gnocchi_exc.ClientException as exc:
            raise StorageError('Gnocchi: %s' % exc, retryable=(
                exc.code or 500) >= 500) from None
        except gnocchi_client.UNAVAILABLE as exc:
            raise StorageUnavailable('Gnocchi unavailable: %s' % exc) from None

    def write(self, samples):
        if self._writer is None:
            self._writer = GnocchiWriter(
                self.client, gnocchi_resources.ResourceDefinitions.load(
                    self._url.get_str('resources_definition_file')),
                archive_policy=self._url.get_str('archive_policy'))
            self._writer.start()
        retry, lost, errors = self._writer.write(samples)
        if retry or lost:
            raise StorageError('; '.join(errors[:3]), retryable=bool(retry))

    def query(self, meter, *, resource_id=None, start=None, stop=None,
              granularity=None, aggregation='mean'):
        base.check_query(aggregation, granularity, resource_id)
        method = _METHODS[aggregation]
        times = {}
        if start:
            times['start'] = start.isoformat()
        if stop:
            times['stop'] = stop.isoformat()
        if resource_id is not None:
            rows = self._call(
                self.client.metric.get_measures, meter,
                resource_id=resource_id.replace('/', '_'),
                aggregation='mean' if granularity is None else method,
                granularity=granularity, refresh=self.refresh, **times)
        else:
            ids = self._metric_ids(meter)
            if not ids:
                return []
            # By metric id, not by a resource search: a search walks every
            # resource of the type, which on a real cloud is most of them.
            # Gnocchi's aggregates API has no refresh: across resources it
            # reads what metricd has processed.
            data = self._call(
                self.client.aggregates.fetch,
                ['aggregate', _ACROSS[aggregation],
                 ['metric'] + [[mid, method] for mid in ids]],
                granularity=granularity, needed_overlap=0, fill=None,
                **times)
            rows = (data or {}).get('measures', {}).get('aggregated', [])
        if not rows:
            return []
        finest = min(g for _, g, _ in rows)
        lo = start.timestamp() if start else float('-inf')
        hi = stop.timestamp() if stop else float('inf')
        points = []
        for ts, g, value in rows:
            if g != finest:
                continue
            t = _timestamp(ts)
            if lo <= t < hi:
                points.append((t, value))
        return aggregate.to_points(points)

    def measures(self, metric, resource_id, aggregation, granularity,
                 start, stop):
        """A resource's metric as Gnocchi keeps it: ``[(timestamp,
        granularity, value)]`` (what Aodh's ``gnocchi_resources_threshold``
        reads).

        :raises NotFound: naming what does not exist, as Gnocchi says.
        """
        kinds = ((gnocchi_exc.ResourceNotFound, 'resource'),
                 (gnocchi_exc.MetricNotFound, 'metric'),
                 (gnocchi_exc.NotFound, 'aggregation'))
        try:
            return self._call(
                self._raising, self.client.metric.get_measures, metric,
                resource_id=resource_id, aggregation=aggregation,
                granularity=granularity, start=start.isoformat(),
                stop=stop.isoformat(), refresh=self.refresh)
        except _Missing as missing:
            exc = missing.args[0]
            kind = next(k for cls, k in kinds if isinstance(exc, cls))
            raise NotFound('Gnocchi: %s' % exc, kind) from None

    @staticmethod
    def _raising(func, *args, **kwargs):
        """``func``, its NotFound kept apart from ``_call``'s ``None``."""
        try:
            return func(*args, **kwargs)
        except gnocchi_exc.NotFound as exc:
            raise _Missing(exc) from None

    def aggregates(self, operations, search=None, resource_type='generic',
                   granularity=None, start=None, stop=None):
        """Gnocchi's aggregates API (``needed_overlap=0``, as Aodh asks):
        ``[(timestamp, granularity, value)]`` of the aggregate, or ``None``
        when a metric or the aggregation does not exist.
        """
        kwargs = {}
        if search is not None:
            kwargs.update(search=search, resource_type=resource_type)
        data = self._call(self.client.aggregates.fetch, operations,
                          granularity=granularity, needed_overlap=0,
                          start=start.isoformat() if start else None,
                          stop=stop.isoformat() if stop else None, **kwargs)
        if data is None:
            return None
        if isinstance(data, dict) and 'measures' in data:
            data = data['measures']
        if isinstance(data, dict):
            data = data.get('aggregated', [])
        return [tuple(row) for row in data]

    def _metric_ids(self, meter):
        """The ids of every metric named ``meter`` (of live resources and
        ended ones alike), one page of 1,000 per request.
        """
        ids, marker = [], None
        while True:
            params = {'name': meter, 'limit': 1000}
            if marker:
                params['marker'] = marker
            page = self._call(self.client.api.get, 'v1/metric',
                              params=params)
            page = page.json() if page is not None else []
            ids.extend(m['id'] for m in page)
            if len(page) < 1000:
                return ids
            marker = page[-1]['id']

    def resources(self, meter=None):
        found, marker = [], None
        while True:
            page = self._call(self.client.resource.list,
                              resource_type='generic', limit=1000,
                              marker=marker) or []
            for r in page:
                if meter is None or meter in (r.get('metrics') or {}):
                    found.append(r.get('original_resource_id') or r['id'])
            if len(page) < 1000:
                return sorted(found)
            marker = page[-1]['id']

    def meters(self):
        metrics = self._call(self.client.metric.list) or []
        return sorted({(m['name'], 'gauge', m.get('unit') or '')
                       for m in metrics if m.get('name')})

    def close(self, timeout=None):
        if self._writer is not None:
            self._writer.close()
        return lifecycle.DONE


class _Missing(Exception):
    """A NotFound carried past ``_call`` (which turns it into ``None``)."""


def _timestamp(value):
    if isinstance(value, datetime.datetime):
        dt = value
    else:
        dt = datetime.datetime.fromisoformat(str(value).replace('Z',
                                                                '+00:00'))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()
