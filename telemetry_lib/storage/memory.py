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
"""``memory://``: series in a dict, for tests and short-lived embedding."""

import bisect
import threading

from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base


class MemoryStorage(base.StorageDriver):
    """Keeps every series in memory; lost with the process."""

    def __init__(self, conf, url):
        super().__init__(conf, url)
        self._lock = threading.Lock()
        self._series = {}       # (meter, resource) -> {ts: value}
        self._meters = {}       # meter -> (type, unit)

    def write(self, samples):
        with self._lock:
            for s in samples:
                self._meters[s.name] = (s.type, s.unit)
                self._series.setdefault((s.name, s.resource_id), {})[
                    s.timestamp.timestamp()] = s.volume

    def _points(self, meter, resource_id, start, stop):
        lo = start.timestamp() if start else float('-inf')
        hi = stop.timestamp() if stop else float('inf')
        with self._lock:
            found = [sorted(points.items())
                     for (m, r), points in self._series.items()
                     if m == meter and resource_id in (None, r)]
        return [s[bisect.bisect_left(s, (lo,)):bisect.bisect_left(s, (hi,))]
                for s in found]

    def query(self, meter, *, resource_id=None, start=None, stop=None,
              granularity=None, aggregation='mean'):
        base.check_query(aggregation, granularity, resource_id)
        series = self._points(meter, resource_id, start, stop)
        if granularity is None:
            return aggregate.to_points(series[0] if series else [])
        return aggregate.to_points(aggregate.across(series, granularity,
                                                    aggregation))

    def resources(self, meter=None):
        with self._lock:
            return sorted({r for m, r in self._series
                           if meter in (None, m)})

    def meters(self):
        with self._lock:
            return sorted((m, t, u) for m, (t, u) in self._meters.items())
