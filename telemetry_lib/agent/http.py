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

Self-metrics are families made at scrape time from the delivery, pollster
and listener counters (nothing is counted twice, a scrape costs nothing
between scrapes, and no process-global registry is touched, so an
embedding service keeps its own), rendered by the same module as the
exporter's series (:mod:`telemetry_lib.formats.prometheus`).
"""

import logging

from oslo_config import cfg

from telemetry_lib.collector import sockets
from telemetry_lib.delivery import stats as delivery_stats
from telemetry_lib.formats import ceilometer as ceilometer_format
from telemetry_lib.formats import prometheus as fmt
from telemetry_lib.httpserver import GetServer
from telemetry_lib import jsoncodec

LOG = logging.getLogger(__name__)


class AgentCollector:
    """Exports the agent's counters; ``agent`` gives ``pool``,
    ``scheduler`` and ``reloads``.
    """

    def __init__(self, agent):
        self._agent = agent

    def collect(self):
        d = _Families('telemetry_delivery_', ('publisher', 'kind'))
        received = d.counter('received', 'Items offered to a publisher.')
        published = d.counter('published', 'Items a publisher confirmed.')
        retried = d.counter('retried', 'Items sent again at least once '
                                       'after a retryable failure.')
        failed = d.counter('failed', 'Items a publisher failed for good.')
        dropped = fmt.CounterFamily(
            'telemetry_delivery_dropped', 'Items lost, by reason.',
            labels=('publisher', 'kind', 'reason'))
        pending = d.gauge('pending', 'Items queued, in flight or spooled.')
        pending_bytes = d.gauge('pending_bytes', 'Bytes queued.')
        failing_for = d.gauge('failing_seconds', 'Seconds since the first '
                              'failure of a streak of failed publishes; 0 '
                              'when the last one worked.')
        latency = fmt.HistogramFamily(
            'telemetry_delivery_publish_seconds',
            'Duration of publish calls.', labels=('publisher', 'kind'))
        for st in self._agent.pool.stats():
            labels = (st.name, st.kind)
            received.add_metric(labels, st.received + st.recovered)
            published.add_metric(labels, st.published)
            retried.add_metric(labels, st.retried)
            failed.add_metric(labels, st.failed)
            pending.add_metric(labels, st.pending)
            pending_bytes.add_metric(labels, st.pending_bytes)
            failing_for.add_metric(labels, st.failing_for)
            for reason, count in sorted(st.dropped.items()):
                dropped.add_metric(labels + (reason,), count)
            latency.add_metric(labels, [
                (_le(bound), count) for bound, count in zip(
                    delivery_stats.LATENCY_BUCKETS, st.latency_buckets)],
                sum_value=st.latency_sum)
        yield from d.families()
        yield dropped
        yield latency
        adjusted = fmt.CounterFamily(
            'telemetry_publisher_adjustments',
            'Changes a publisher made so its consumer accepts what it '
            'sends, by reason.', labels=('publisher', 'reason'))
        for d in self._agent.pool.deliveries():
            for reason, count in sorted(d.publisher.adjustments().items()):
                adjusted.add_metric((d.name, reason), count)
        yield adjusted

        p = _Families('telemetry_pollster_', ('pollster',))
        runs = p.counter('runs', 'Pollster runs.')
        errors = p.counter('errors', 'Pollster runs that raised.')
        overruns = p.counter('overruns', 'Ticks skipped because the last '
                                         'run was still going.')
        samples = p.counter('samples', 'Samples polled.')
        seconds = fmt.SummaryFamily(
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
        fallbacks = fmt.CounterFamily(
            'telemetry_wire_compiled_fallbacks', 'Batches the compiled '
            'wire encoder failed on and the Python path encoded.')
        fallbacks.add_metric((), ceilometer_format.compiled_fallbacks())
        yield fallbacks
        reloads = fmt.CounterFamily(
            'telemetry_agent_reloads', 'SIGHUP reloads, by result.',
            labels=('result',))
        for result, count in sorted(self._agent.reloads.items()):
            reloads.add_metric((result,), count)
        yield reloads
        alarms = getattr(self._agent, 'alarms', None)
        if alarms is not None:
            yield from _alarm_families(alarms)
        alarming = getattr(self._agent, 'alarming', None)
        if alarming is not None and alarming.evaluator is not None:
            yield from _database_alarm_families(alarming)
        rcv = getattr(self._agent, 'receiver', None)
        if rcv is not None:
            counts = fmt.CounterFamily(
                'telemetry_receiver', 'Alertmanager webhooks and alerts, '
                'by what became of them.', labels=('outcome',))
            for outcome, count in sorted(rcv.counts.items()):
                counts.add_metric((outcome,), count)
            yield counts
        coord = getattr(self._agent, 'coordinator', None)
        if coord is not None:
            yield from _coordination_families(coord)
        notes = getattr(self._agent, 'notifications', None)
        if notes is not None:
            yield from _notification_families(notes.listener.counts)
        inputs = getattr(self._agent, 'inputs', None)
        if inputs is not None:
            yield from _input_families(inputs.receivers)
        names = getattr(self._agent, 'names', None)
        if names is not None:
            family = fmt.CounterFamily(
                'telemetry_identity_names', 'Project and user name '
                'lookups (identity_name_discovery), by outcome: hits and '
                'misses of the cache, Keystone lookups found, not_found and '
                'failures, queue_full, samples_without_names.',
                labels=('outcome',))
            for outcome, count in sorted(dict(names.counts).items()):
                family.add_metric((outcome,), count)
            yield family


#: Per event type: what became of each notification.
_BY_TYPE = (
    ('received', 'Notifications taken off the bus (redeliveries too).'),
    ('converted', 'Notifications converted and queued for every publisher, '
                  'then acknowledged.'),
    ('requeued', 'Notifications left on the bus because a publisher queue '
                 'was past its high water.'),
    ('poisoned', 'Notifications that could not be converted: acknowledged '
                 '(or sent to the poison topic), never requeued.'),
    ('bad_sample', 'Samples a meter definition could not fill (no volume, '
                   'no resource id …).'),
    ('bad_trait', 'Traits left out of an event: a value not of its type.'),
    ('definition_failed', 'Meter definitions that failed on a notification.'),
    ('bad_signature', 'Samples and events of other Ceilometer agents '
                      '(telemetry.polling, metering, event) whose signature '
                      'did not verify with the telemetry secret: dropped, '
                      'never published.'),
    ('bad_event', 'Events of an event notification (Ceilometer\'s notifier '
                  'publisher) that could not be read.'),
)
#: Totals only.
_TOTALS = (
    ('samples', 'Samples made from notifications.'),
    ('events', 'Events made from notifications.'),
    ('undecodable', 'Messages on the bus that were no notification (not '
                    'JSON), rejected.'),
    ('duplicated', 'Samples and events queued from a batch that was then '
                   'requeued: they will be queued again.'),
    ('dead_lettered', 'Poison notifications sent to the poison topic.'),
    ('poison_lost', 'Poison notifications the poison topic refused.'),
    ('connect_failed', 'Attempts to reach a bus that failed (down, or '
                       'not answering); tried again with backoff.'),
)


def _notification_families(counts):
    by_type, totals = counts.snapshot()
    for name, doc in _BY_TYPE:
        family = fmt.CounterFamily(
            'telemetry_notification_' + name, doc, labels=('event_type',))
        for event_type, c in sorted(by_type.items()):
            if c.get(name):
                family.add_metric((event_type,), c[name])
        yield family
    for name, doc in _TOTALS:
        family = fmt.CounterFamily('telemetry_notification_' + name,
                                   doc)
        family.add_metric((), totals.get(name, 0))
        yield family


def _input_families(receivers):
    messages = fmt.CounterFamily(
        'telemetry_collector_messages', "Datagrams and frames received from "
        "Ceilometer's socket publishers.", labels=('transport',))
    samples = fmt.CounterFamily(
        'telemetry_collector_samples', 'Samples received and taken by the '
        'pipelines.', labels=('transport',))
    dropped = fmt.CounterFamily(
        'telemetry_collector_dropped', 'Messages dropped, by reason: '
        'malformed, bad_signature (unsigned or tampered), oversize, '
        'refused (the pipelines past their high water: UDP cannot wait), '
        'kernel_dropped (UDP: the socket buffer was full).',
        labels=('transport', 'reason'))
    for r in receivers:
        counts = r.snapshot()
        kind = r.kind or type(r).__name__
        messages.add_metric((kind,), counts.get('messages', 0))
        samples.add_metric((kind,), counts.get('samples', 0))
        for reason in sockets.DROPS:
            dropped.add_metric((kind, reason), counts.get(reason, 0))
        kernel = getattr(r, 'kernel_dropped', lambda: None)()
        if kernel is not None:
            dropped.add_metric((kind, 'kernel_dropped'), kernel)
    yield messages
    yield samples
    yield dropped


def _coordination_families(coord):
    members = fmt.GaugeFamily(
        'telemetry_coordination_members', 'Agents on the hash ring of a '
        'partitioned source, as this agent last saw it.', labels=('group',))
    owned = fmt.GaugeFamily(
        'telemetry_coordination_owned', 'Resources of the group this agent '
        'polls.', labels=('group',))
    total = fmt.GaugeFamily(
        'telemetry_coordination_resources', 'Resources of the group.',
        labels=('group',))
    for group, (m, o, t) in sorted(coord.stats.items()):
        members.add_metric((group,), m)
        owned.add_metric((group,), o)
        total.add_metric((group,), t)
    yield members
    yield owned
    yield total
    for name, doc, value in (
            ('fallbacks', 'Polls of every resource because the backend '
             'was unreachable.', coord.fallbacks),
            ('errors', 'Failures to reach the coordination backend.',
             coord.errors),
            ('ring_changes', "Times a group's members changed as this "
             'agent saw them; each moves resources between agents.',
             coord.ring_changes)):
        family = fmt.CounterFamily('telemetry_coordination_' + name,
                                   doc)
        family.add_metric((), value)
        yield family


def _alarm_families(alarms):
    ev = alarms.evaluator
    for name, doc, value in (
            ('evaluations', 'Alarm evaluations.', ev.evaluations),
            ('transitions', 'Alarm state changes.', ev.transitions),
            ('errors', 'Alarm evaluations that failed.', ev.errors)):
        family = fmt.CounterFamily('telemetry_alarm_' + name, doc)
        family.add_metric((), value)
        yield family
    states = fmt.GaugeFamily(
        'telemetry_alarm_state', 'An alarm is in this state (1) or not.',
        labels=('alarm', 'state'))
    known = alarms.store.states()
    for name in sorted(alarms.definition.alarms):
        current = known.get(name, ('insufficient data',))[0]
        for state in ('ok', 'alarm', 'insufficient data'):
            states.add_metric((name, state), 1 if state == current else 0)
    yield states


def _database_alarm_families(alarming):
    ev, source = alarming.evaluator, alarming.alarms
    for name, doc, value in (
            ('evaluations', 'Evaluations of the alarm database\'s alarms.',
             ev.evaluations),
            ('transitions', 'Their state changes.', ev.transitions),
            ('errors', 'Their evaluations that failed or were not saved.',
             ev.errors),
            ('refresh_errors', 'Reads of the alarm database that failed.',
             source.refresh_errors),
            ('events', 'Events matched against the event alarms.',
             alarming.events_seen),
            ('events_dropped', 'Events the event alarms never saw (their '
             'queue was full).', alarming.events_dropped)):
        family = fmt.CounterFamily('telemetry_alarm_database_' + name, doc)
        family.add_metric((), value)
        yield family
    owned = fmt.GaugeFamily(
        'telemetry_alarm_database_alarms', 'Alarms of the database this '
        'agent evaluates (its share of the hash ring).')
    owned.add_metric((), source.count)
    yield owned


class _Families:
    def __init__(self, prefix, labels):
        self._prefix, self._labels, self._all = prefix, labels, []

    def counter(self, name, doc):
        f = fmt.CounterFamily(self._prefix + name, doc,
                              labels=self._labels)
        self._all.append(f)
        return f

    def gauge(self, name, doc):
        f = fmt.GaugeFamily(self._prefix + name, doc,
                            labels=self._labels)
        self._all.append(f)
        return f

    def families(self):
        return iter(self._all)


def _le(bound):
    return '+Inf' if bound == float('inf') else repr(bound)


def health(stats, high_water, failing_after):
    """Problems that make ``/healthz`` fail, as short texts.

    A publisher is unhealthy when every publish has failed for longer than
    ``failing_after`` seconds, or when its queue holds more than
    ``high_water`` (a fraction) of its bound.
    """
    problems = []
    for st in stats:
        # An action target with nothing waiting (a receiver target whose
        # stack is gone) is not a problem now: it sends only when told to.
        if st.failing_for > failing_after and (
                st.pending or st.kind != 'actions'):
            problems.append('%s: failing for %.0fs, %d pending: %s'
                            % (st.name, st.failing_for, st.pending,
                               (st.last_error or '')[:200]))
        if st.pending >= high_water * st.capacity:
            problems.append('%s: queue at %d of %d'
                            % (st.name, st.pending, st.capacity))
    return problems


def publisher_routes(deliveries):
    """``{path: [handler, ...]}`` the publishers serve."""
    routes = {}
    for d in deliveries:
        for path, handler in d.publisher.http_routes().items():
            routes.setdefault(path, []).append(handler)
    return routes


HTTP_OPTS = [
    cfg.IntOpt('http_threads', default=4, min=1, max=256,
               help='Workers answering /metrics, /healthz and the '
                    'receiver. A connection waiting for its request '
                    'holds no worker.'),
    cfg.IntOpt('http_max_connections', default=64, min=1, max=65536,
               help='Connections held at once. One more evicts the '
                    'longest-idle connection that has sent nothing '
                    '(answered 503), and is itself answered 503 only '
                    'when all are busy with a request.'),
    cfg.FloatOpt('http_idle_timeout', default=10.0, min=0.1, max=3600,
                 help='Seconds a connection may stay silent (before a '
                      'request or between keep-alive requests), or an '
                      'answer take to be read, before it is closed.'),
    cfg.FloatOpt('http_request_timeout', default=10.0, min=0.1, max=3600,
                 help='Seconds a request (TLS handshake, head and body) '
                      'may take to arrive from its first byte, however '
                      'it trickles; then it is answered 408 and closed.'),
    cfg.StrOpt('http_cert_file',
               help='PEM certificate (chain) to serve HTTPS; needs '
                    'http_key_file.'),
    cfg.StrOpt('http_key_file',
               help='PEM private key of http_cert_file.'),
]


class AgentHTTPServer(GetServer):
    """Serves ``/metrics``, ``/healthz`` and the receiver."""

    def __init__(self, agent, host, port, high_water, failing_after=60.0):
        collector = AgentCollector(agent)

        def handle(path, accept):
            routes = publisher_routes(agent.pool.deliveries())
            if path == '/metrics':
                # Exporter publishers on /metrics serve beside the agent's
                # own metrics: one scrape target, all in text 0.0.4 (an
                # exporter there cannot be set to OpenMetrics).
                body = fmt.render_scrape(
                    collector.collect()).encode('utf-8') + b''.join(
                    route('text/plain')[1] for route in routes.get(path, ()))
                return 200, fmt.TEXT_CONTENT_TYPE, body
            if path in routes:
                return (200,) + routes[path][0](accept)
            if path == '/healthz':
                # Live publishers only: a removed one failing is no
                # problem of the agent's any more.
                problems = health(agent.pool.stats(retired=False),
                                  high_water,
                                  failing_after)
                return (503 if problems else 200, 'application/json',
                        jsoncodec.dumps({'status': 'fail' if problems
                                         else 'ok', 'problems': problems}))
            return None

        def post(path, headers, body):
            rcv = agent.receiver
            if rcv is None or path != agent.conf.receiver.path:
                return None
            return rcv.handle(headers, body)

        opts = agent.conf.agent
        super().__init__(host, port, handle, name='agent http', post=post,
                         max_body=agent.conf.receiver.max_body,
                         threads=opts.http_threads,
                         max_connections=opts.http_max_connections,
                         idle_timeout=opts.http_idle_timeout,
                         request_timeout=opts.http_request_timeout,
                         cert_file=opts.http_cert_file,
                         key_file=opts.http_key_file)
