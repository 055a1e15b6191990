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
"""The agent's HTTP endpoint: ``/metrics`` and ``/healthz``.

Self-metrics come from a prometheus_client collector on a private registry
(never the process-global one, so an embedding service keeps its own), read
from the delivery and pollster counters at scrape time: nothing is counted
twice and a scrape costs nothing between scrapes.
"""

import logging

from prometheus_client import core
from prometheus_client import exposition
from prometheus_client import registry as prom_registry

from telemetry_lib.delivery import stats as delivery_stats
from telemetry_lib.formats import jsoncodec
from telemetry_lib.httpserver import GetServer

LOG = logging.getLogger(__name__)


class AgentCollector(prom_registry.Collector):
    """Exports the agent's counters; ``agent`` gives ``pipelines()``,
    ``scheduler`` and ``reloads``.
    """

    def __init__(self, agent):
        self._agent = agent

    def collect(self):
        d = _Families('telemetry_delivery_', ('publisher', 'kind'))
        received = d.counter('received', 'Items offered to a publisher.')
        published = d.counter('published', 'Items a publisher confirmed.')
        retried = d.counter('retried', 'Item sends retried after a '
                                       'retryable failure.')
        failed = d.counter('failed', 'Items a publisher failed for good.')
        dropped = core.CounterMetricFamily(
            'telemetry_delivery_dropped', 'Items lost, by reason.',
            labels=('publisher', 'kind', 'reason'))
        pending = d.gauge('pending', 'Items queued, in flight or spooled.')
        pending_bytes = d.gauge('pending_bytes', 'Bytes queued.')
        latency = core.HistogramMetricFamily(
            'telemetry_delivery_publish_seconds',
            'Duration of publish calls.', labels=('publisher', 'kind'))
        for pipeline in self._agent.pipelines():
            for st in pipeline.stats():
                labels = (st.name, st.kind)
                received.add_metric(labels, st.received + st.recovered)
                published.add_metric(labels, st.published)
                retried.add_metric(labels, st.retried)
                failed.add_metric(labels, st.failed)
                pending.add_metric(labels, st.pending)
                pending_bytes.add_metric(labels, st.pending_bytes)
                for reason, count in sorted(st.dropped.items()):
                    dropped.add_metric(labels + (reason,), count)
                latency.add_metric(labels, [
                    (_le(bound), count) for bound, count in zip(
                        delivery_stats.LATENCY_BUCKETS, st.latency_buckets)],
                    sum_value=st.latency_sum)
        yield from d.families()
        yield dropped
        yield latency
        adjusted = core.CounterMetricFamily(
            'telemetry_publisher_adjustments',
            'Changes a publisher made so its consumer accepts what it '
            'sends, by reason.', labels=('publisher', 'reason'))
        for pipeline in self._agent.pipelines():
            for d in pipeline.deliveries.values():
                for reason, count in sorted(
                        d.publisher.adjustments().items()):
                    adjusted.add_metric((str(d.publisher.url), reason),
                                        count)
        yield adjusted

        p = _Families('telemetry_pollster_', ('pollster',))
        runs = p.counter('runs', 'Pollster runs.')
        errors = p.counter('errors', 'Pollster runs that raised.')
        overruns = p.counter('overruns', 'Ticks skipped because the last '
                                         'run was still going.')
        samples = p.counter('samples', 'Samples polled.')
        seconds = core.SummaryMetricFamily(
            'telemetry_pollster_duration_seconds', 'Pollster run time.',
            labels=('pollster',))
        scheduler = self._agent.scheduler
        for name, st in sorted(scheduler.stats.items()) if scheduler else ():
            runs.add_metric((name,), st.runs)
            errors.add_metric((name,), st.errors)
            overruns.add_metric((name,), st.overruns)
            samples.add_metric((name,), st.samples)
            seconds.add_metric((name,), st.runs, st.seconds_sum)
        yield from p.families()
        yield seconds
        reloads = core.CounterMetricFamily(
            'telemetry_agent_reloads', 'SIGHUP reloads, by result.',
            labels=('result',))
        for result, count in sorted(self._agent.reloads.items()):
            reloads.add_metric((result,), count)
        yield reloads


class _Families:
    def __init__(self, prefix, labels):
        self._prefix, self._labels, self._all = prefix, labels, []

    def counter(self, name, doc):
        f = core.CounterMetricFamily(self._prefix + name, doc,
                                     labels=self._labels)
        self._all.append(f)
        return f

    def gauge(self, name, doc):
        f = core.GaugeMetricFamily(self._prefix + name, doc,
                                   labels=self._labels)
        self._all.append(f)
        return f

    def families(self):
        return iter(self._all)


def _le(bound):
    return '+Inf' if bound == float('inf') else repr(bound)


def health(pipelines, high_water):
    """Problems that make ``/healthz`` fail, as short texts.

    A sink is unhealthy when every one of its publishers is failing; a
    queue is, past ``high_water`` (a fraction of its bound).
    """
    problems = []
    for pipeline in pipelines:
        for sink, deliveries in pipeline.sinks().items():
            stats = [d.stats() for d in deliveries]
            if stats and all(st.failing for st in stats):
                problems.append('sink %s: no working publisher' % sink)
            for st in stats:
                if st.pending >= high_water * st.capacity:
                    problems.append('%s: queue at %d of %d'
                                    % (st.name, st.pending, st.capacity))
    return problems


def publisher_routes(pipelines):
    """``{path: [handler, ...]}`` the pipelines' publishers serve."""
    routes = {}
    for pipeline in pipelines:
        for d in pipeline.deliveries.values():
            for path, handler in d.publisher.http_routes().items():
                routes.setdefault(path, []).append(handler)
    return routes


class AgentHTTPServer(GetServer):
    """Serves ``/metrics`` and ``/healthz`` from a daemon thread."""

    def __init__(self, agent, host, port, high_water):
        registry = prom_registry.CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector(agent))

        def handle(path, accept):
            routes = publisher_routes(agent.pipelines())
            if path == '/metrics':
                # Exporter publishers on /metrics serve beside the agent's
                # own metrics: one scrape target. Both are text 0.0.4.
                body = exposition.generate_latest(registry) + b''.join(
                    route('')[1] for route in routes.get(path, ()))
                return 200, exposition.CONTENT_TYPE_LATEST, body
            if path in routes:
                return (200,) + routes[path][0](accept)
            if path == '/healthz':
                problems = health(agent.pipelines(), high_water)
                return (503 if problems else 200, 'application/json',
                        jsoncodec.dumps({'status': 'fail' if problems
                                         else 'ok', 'problems': problems}))
            return None

        super().__init__(host, port, handle, name='agent http')
