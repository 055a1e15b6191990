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
"""Aggregation of raw measures into buckets: pure functions.

Shared by the drivers that aggregate in Python (``memory``, and ``sqlite``
for ``rate``), so every driver means the same by each aggregation.
Timestamps here are POSIX seconds; buckets start at multiples of the
granularity since the epoch, as in Gnocchi and Prometheus.
"""

import datetime

from telemetry_lib.storage.base import Point
from telemetry_lib.timeutils import UTC


def bucket_start(ts, granularity):
    return ts - ts % granularity


def to_points(pairs):
    """``[(posix_seconds, value)]`` as :class:`Point` objects."""
    fromts = datetime.datetime.fromtimestamp
    return [Point(fromts(ts, UTC), value) for ts, value in pairs]


def aggregate(series, granularity, aggregation):
    """Aggregate one resource's sorted ``[(ts, value)]``.

    :returns: ``[(bucket_start, value)]``, oldest first; buckets without
        measures are absent (and so is the first bucket of a ``rate``,
        which has nothing before it to compare with unless it holds two
        measures).
    """
    if aggregation == 'rate':
        return rates(series, granularity)
    buckets = {}
    for ts, value in series:
        buckets.setdefault(bucket_start(ts, granularity), []).append(value)
    reduce = _REDUCERS[aggregation]
    return [(b, reduce(values)) for b, values in sorted(buckets.items())]


def rates(series, granularity):
    """Per-second rate of change of a cumulative series, per bucket.

    A bucket's rate runs from the last measure before it (or its own first
    one) to its last measure. A value lower than the one before is a counter
    reset: the increase is the new value, as Prometheus counts it.
    """
    out = []
    prev = None                       # (ts, value) of the last measure seen
    bucket = None
    first = last = None
    increase = 0.0
    for ts, value in series:
        b = bucket_start(ts, granularity)
        if b != bucket:
            if bucket is not None and first is not None and last[0] > \
                    first[0]:
                out.append((bucket, increase / (last[0] - first[0])))
            bucket, first, increase = b, prev, 0.0
        if prev is not None and first is not None:
            delta = value - prev[1]
            increase += delta if delta >= 0 else value
        if first is None:
            first = (ts, value)
        prev = last = (ts, value)
    if bucket is not None and first is not None and last[0] > first[0]:
        out.append((bucket, increase / (last[0] - first[0])))
    return out


def sum_series(per_resource):
    """Add per-resource series ``[[(bucket, value)], ...]`` bucket by
    bucket: how rates of several resources combine.
    """
    merged = {}
    for series in per_resource:
        for b, value in series:
            merged[b] = merged.get(b, 0.0) + value
    return sorted(merged.items())


def across(series_list, granularity, aggregation):
    """Aggregate several resources' series as one.

    ``rate`` is the sum of the resources' rates; every other aggregation
    is computed over all their measures together.
    """
    if aggregation == 'rate':
        return sum_series(rates(s, granularity) for s in series_list)
    merged = sorted(p for s in series_list for p in s)
    return aggregate(merged, granularity, aggregation)


def _mean(values):
    return sum(values) / len(values)


_REDUCERS = {
    'mean': _mean,
    'min': min,
    'max': max,
    'sum': sum,
    'count': len,
    'last': lambda values: values[-1],
}
