"""Exporter, Pushgateway publisher and PromQL storage driver against a real
Prometheus and Pushgateway (started by tools/prometheus.sh)."""

import datetime
import json
import math
import os
import socket
import subprocess
import time
import uuid

import requests

from telemetry_lib import delivery
from telemetry_lib import Event
from telemetry_lib.exceptions import StorageUnavailable
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import Sample
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base as storage_base
from tests import base
from tests.functional.test_agent import AgentTest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, '..', '..', 'tools', 'prometheus.sh')
PROM = os.environ.get('TELEMETRY_PROM_URL', 'http://127.0.0.1:19090')
GATEWAY = os.environ.get('TELEMETRY_PUSHGATEWAY_URL',
                         'http://127.0.0.1:19091')
TARGETS = os.environ.get('TELEMETRY_PROM_TARGETS',
                         '/var/tmp/telemetry-prometheus/targets')
UTC = datetime.timezone.utc


def start_services():
    subprocess.run(['bash', TOOLS, 'start'], check=True,
                   capture_output=True, timeout=600)


def promql(query):
    body = requests.get(PROM + '/api/v1/query', params={'query': query},
                        timeout=10).json()
    assert body['status'] == 'success', body
    return body['data']['result']


class PromTest(base.TestCase):

    def setUp(self):
        super().setUp()
        start_services()
        self.storage = storage_base.load_storage(
            self.conf, 'prometheus://' + PROM.split('://', 1)[1])
        self.addCleanup(self.storage.close)

    def scrape(self, port):
        """Have Prometheus scrape 127.0.0.1:port (file discovery)."""
        path = os.path.join(TARGETS, '%s.json' % uuid.uuid4().hex)
        with open(path + '.tmp', 'w') as f:
            json.dump([{'targets': ['127.0.0.1:%d' % port]}], f)
        os.rename(path + '.tmp', path)
        self.addCleanup(os.unlink, path)

    def scraped_exporter(self):
        """An exporter on a port of its own that Prometheus scrapes."""
        port = base.free_port()
        exporter = publisher_base.load_publisher(
            self.conf, 'prometheus://?port=%d&timestamps=true' % port)
        exporter.start()
        self.addCleanup(exporter.close)
        self.scrape(port)
        self.wait_scraped(port)
        return exporter

    def wait_scraped(self, port):
        """Until Prometheus has scraped the target once."""
        assert base.wait_until(lambda: any(
            s['value'][1] == '1' for s in promql(
                'up{instance="127.0.0.1:%d"}' % port)), 30)


class TestExporterScrapedByPrometheus(PromTest):

    def scraped(self, meter, resource, ts):
        """Wait until Prometheus holds the sample of ``ts`` (one scrape
        per sample: the next must not replace it before it is scraped).
        """
        def there():
            got = self.storage.query(meter, resource_id=resource,
                                     start=_dt(ts - 60), stop=_dt(ts + 60))
            return ms(ts) in {ms(p.timestamp.timestamp()) for p in got}
        assert base.wait_until(there, 30, interval=0.1), (meter, ts)

    def test_values_read_back_through_the_storage_driver(self):
        exporter = self.scraped_exporter()
        meter = 'tl.test.%s' % uuid.uuid4().hex[:8]
        start = time.time()
        sent = []
        for i in range(12):
            ts = time.time()
            value = float((i * 7) % 5 + i)
            exporter.publish_samples([Sample(
                meter, 'gauge', 'B', value, resource_id='res-1',
                timestamp=ts, resource_metadata={
                    'display_name': 'say "hi"\\ back\nnow'})])
            sent.append((ts, value))
            self.scraped(meter, 'res-1', ts)
        stop = time.time() + 1
        got = self.storage.query(meter, resource_id='res-1',
                                 start=_dt(start - 1), stop=_dt(stop))
        # Prometheus keeps milliseconds: compare at that precision.
        assert [(ms(p.timestamp.timestamp()), p.value) for p in got] \
            == [(ms(ts), v) for ts, v in sent]
        for aggregation in ('mean', 'min', 'max', 'sum', 'count', 'last'):
            got = {p.timestamp.timestamp(): p.value for p in
                   self.storage.query(meter, resource_id='res-1',
                                      start=_dt(start - 1), stop=_dt(stop),
                                      granularity=3,
                                      aggregation=aggregation)}
            want = dict(aggregate.aggregate(
                [(ms(t) / 1000, v) for t, v in sent], 3, aggregation))
            # The same buckets; a mean to the last bit only where both
            # sum in the same order (Prometheus keeps a running mean).
            assert set(got) == set(want), (aggregation, got, want)
            assert all(math.isclose(got[t], want[t], rel_tol=1e-12)
                       for t in want), (aggregation, got, want)
        # The label value with a quote, a backslash and a newline came back
        # intact from Prometheus.
        (series,) = promql('%s{resource="res-1"}' % self.storage.metric(
            meter))
        assert series['metric']['resource_name'] == \
            'say "hi"\\ back\nnow'
        assert series['metric']['counter'] == meter

    def test_rate_of_a_counter(self):
        exporter = self.scraped_exporter()
        meter = 'tl.count.%s' % uuid.uuid4().hex[:8]
        start = time.time()
        # 11 s of samples, each scraped before the next: at least two
        # whole 3 s buckets lie inside.
        now = start
        while now - start < 11:
            now = time.time()
            # Exactly 100 per second of real time, whatever the jitter.
            exporter.publish_samples([Sample(
                meter, 'cumulative', 'B', 100.0 * (now - start),
                resource_id='r', timestamp=now)])
            last = now
            self.scraped(meter, 'r', now)
        got = self.storage.query(meter, resource_id='r', start=_dt(start),
                                 stop=_dt(time.time()), granularity=3,
                                 aggregation='rate')
        # Windows that the samples cover: 100 per second, steadily.
        full = [p for p in got if start < p.timestamp.timestamp()
                and p.timestamp.timestamp() + 3 <= last]
        assert len(full) >= 2, got
        assert all(abs(p.value - 100.0) < 1.0 for p in full), got


class TestAgentWithExporter(AgentTest, PromTest):

    def test_agent_scraped_by_prometheus_read_back_by_the_cli(self):
        self.scrape(self.port)
        # The same Prometheus keeps earlier runs' series of this host: look
        # only at what this agent produced.
        since = datetime.datetime.now(UTC).isoformat()
        self.start('''
            sources:
              - name: all
                meters: ["host.memory.*"]
                sinks: [both]
            sinks:
              - name: both
                publishers:
                  - "sqlite://%s/db.sqlite?max_latency=0"
                  - "prometheus://?timestamps=true"
        ''' % self.tmpdir)
        host = socket.gethostname()
        status, page = self.get('/metrics')
        assert status == 200
        assert base.wait_until(lambda: 'ceilometer_host_memory_used{' in
                               self.get('/metrics')[1], 20)
        assert 'telemetry_delivery_published_total' in self.get(
            '/metrics')[1]

        def run_show(storage, *extra, stop):
            out = self.cli('--storage', storage, 'measures', 'show',
                           'host.memory.used', '--resource', host,
                           '--start', since, '--stop',
                           datetime.datetime.fromtimestamp(
                               stop, UTC).isoformat(), '-f', 'json',
                           *extra)
            if out.returncode != 0:
                return None, out.stderr
            return [(ms(datetime.datetime.fromisoformat(
                r['Timestamp']).timestamp()) / 1000, r['Value'])
                for r in json.loads(out.stdout)], ''

        def show(storage, *extra, stop):
            rows, error = run_show(storage, *extra, stop=stop)
            assert rows is not None, error
            return rows

        prom_url = 'prometheus://' + PROM.split('://', 1)[1]
        seen = {}

        def scraped_enough():
            # Until Prometheus has scraped the agent a few times, the CLI
            # says "no meter" (exit 1): a "not yet", not a failure.
            seen['stop'] = time.time() - 0.5
            seen['rows'], seen['error'] = run_show(prom_url,
                                                   stop=seen['stop'])
            return seen['rows'] is not None and len(seen['rows']) >= 4
        assert base.wait_until(scraped_enough, 90, interval=1.0), seen
        stop, from_prom = seen['stop'], seen['rows']
        from_sqlite = show('sqlite://%s/db.sqlite' % self.tmpdir, stop=stop)
        # Whatever Prometheus scraped is what the agent polled and stored.
        assert set(from_prom) <= set(from_sqlite), (from_prom, from_sqlite)
        # The exporter holds the latest value only, so a scrape can miss a
        # poll: aggregate what Prometheus holds (proven the agent's above).
        want = dict(aggregate.aggregate(from_prom, 2, 'max'))
        got = dict(show(prom_url, '--granularity', '2', '--aggregation',
                        'max', stop=stop))
        # Buckets wholly inside the window read back: a bucket that runs
        # past ``stop`` also holds points polled after it.
        since_ts = datetime.datetime.fromisoformat(since).timestamp()
        common = {t for t in set(want) & set(got)
                  if t >= since_ts and t + 2 <= stop}
        assert len(common) >= 1, (want, got)
        assert all(got[t] == want[t] for t in common), (want, got)
        assert self.stop() == 0


class TestPushgateway(PromTest):

    def gateway_groups(self):
        data = requests.get(GATEWAY + '/api/v1/metrics', timeout=10).json()
        return [g['labels'] for g in data['data']]

    def test_push_scrape_delete_and_escaping(self):
        job = 'tl-%s' % uuid.uuid4().hex[:8]
        d = delivery.build(self.conf, 'prometheus://%s/metrics/job/%s/'
                           'site@base64/%s?group_by=resource&max_latency=0'
                           % (GATEWAY.split('://', 1)[1], job, 'ZWFzdC8x'),
                           kind='samples').start()
        self.addCleanup(d.close, 2)
        meter = 'tl.push.%s' % uuid.uuid4().hex[:8]
        tricky = 'a "quoted" \\ back\nslash'
        d.put([Sample(meter, 'gauge', 'B', 10 + i, resource_id='vm-%d' % i,
                      resource_metadata={'display_name': tricky})
               for i in range(3)])
        assert d.flush(10)
        assert d.stats().published == 3
        groups = [g for g in self.gateway_groups() if g.get('job') == job]
        assert sorted(g['resource'] for g in groups) == ['vm-0', 'vm-1',
                                                         'vm-2']
        assert all(g['site'] == 'east/1' for g in groups)
        # Prometheus scraped the gateway (honor_labels): our labels, intact.
        metric = self.storage.metric(meter)
        assert base.wait_until(lambda: len(promql(metric)) == 3, 20)
        values = sorted(float(s['value'][1]) for s in promql(metric))
        assert values == [10, 11, 12]
        assert all(s['metric']['resource_name'] == tricky
                   for s in promql(metric))
        # An ended resource: its group is deleted from the gateway.
        events = delivery.build(self.conf, 'prometheus://%s/metrics/job/%s/'
                                'site@base64/%s?group_by=resource'
                                '&max_latency=0'
                                % (GATEWAY.split('://', 1)[1], job,
                                   'ZWFzdC8x'), kind='events').start()
        self.addCleanup(events.close, 2)
        events.put([Event(event_type='compute.instance.delete.end',
                          traits=[('resource_id', 1, 'vm-1')])])
        assert events.flush(10)
        groups = [g for g in self.gateway_groups() if g.get('job') == job]
        assert sorted(g['resource'] for g in groups) == ['vm-0', 'vm-2']

    def test_inconsistent_push_is_permanent_and_counted(self):
        job = 'tl-%s' % uuid.uuid4().hex[:8]
        meter = 'tl.clash.%s' % uuid.uuid4().hex[:8]
        url = 'pushgateway://%s/metrics/job/%s?group_by=resource&' \
              'max_latency=0' % (GATEWAY.split('://', 1)[1], job)
        d = delivery.build(self.conf, url).start()
        self.addCleanup(d.close, 2)
        d.put([Sample(meter, 'gauge', 'B', 1, resource_id='a')])
        assert d.flush(10)
        # The same name as a counter in another group: the gateway says 400.
        d.put([Sample(meter, 'cumulative', 'B', 1, resource_id='b')])
        assert d.flush(10)
        st = d.stats()
        assert st.published == 1 and st.dropped == {'permanent': 1}


class TestStorageErrors(base.TestCase):

    def test_unreachable_and_bad_queries(self):
        from telemetry_lib import StorageError
        s = storage_base.load_storage(self.conf, 'prometheus://127.0.0.1:1')
        self.addCleanup(s.close)
        with self.assertRaises(StorageError) as ctx:
            s.query('cpu', resource_id='x')
        assert ctx.exception.retryable
        with self.assertRaises(StorageError) as ctx:
            s.query('cpu', granularity=60, aggregation='last')
        assert 'one resource only' in str(ctx.exception)


class TestAlarmParity(base.TestCase):
    """The same threshold alarm over the same samples gives the same
    transitions on Prometheus as on the embedded SQLite storage. The
    samples are in the past, so they are backfilled (``promtool tsdb
    create-blocks-from openmetrics``) into a Prometheus of this test's
    own, on a free port.
    """

    def prometheus_with(self, samples):
        from telemetry_lib.formats import prometheus as fmt
        om = ['# TYPE %s gauge\n' % fmt.stf_meter_name('memory.usage')]
        om += ['%s %s %.3f\n' % (fmt.series_prefix(
            fmt.stf_meter_name(s.name), ('resource',),
            {'resource': s.resource_id}
        ).rstrip(), repr(float(s.volume)), s.timestamp.timestamp())
            for s in samples]
        source = self.write_file('samples.om', ''.join(om) + '# EOF\n')
        data = os.path.join(self.tmpdir, 'tsdb')
        subprocess.run(['promtool', 'tsdb', 'create-blocks-from',
                        'openmetrics', source, data], check=True,
                       capture_output=True, timeout=120)
        config = self.write_file('prometheus.yml', 'global: {}\n')
        port = base.free_port()
        log = open(os.path.join(self.tmpdir, 'prometheus.log'), 'w')
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            ['prometheus', '--config.file=' + config,
             '--storage.tsdb.path=' + data,
             '--web.listen-address=127.0.0.1:%d' % port],
            stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)

        def ready():
            try:
                return requests.get('http://127.0.0.1:%d/-/ready' % port,
                                    timeout=2).status_code == 200
            except requests.RequestException:
                return False
        assert base.wait_until(ready, 60), open(log.name).read()[-2000:]
        storage = storage_base.load_storage(self.conf,
                                            'prometheus://127.0.0.1:%d'
                                            % port)
        self.addCleanup(storage.close)
        return storage

    def test_threshold_transitions_match_sqlite(self):
        from tests.functional import parity
        start, end = parity.window(time.time())
        samples = parity.samples(start, lambda v, ts: Sample(
            'memory.usage', 'gauge', 'B', v, resource_id='vm-parity',
            timestamp=ts))
        sqlite = storage_base.load_storage(
            self.conf, 'sqlite://%s/parity.sqlite' % self.tmpdir)
        self.addCleanup(sqlite.close)
        sqlite.write(samples)
        prometheus = self.prometheus_with(samples)
        rule = parity.rule('vm-parity')
        assert len(rule.statistics(prometheus, parity.at(end))) == 3
        on_sqlite = parity.transitions(rule, sqlite, start)
        assert on_sqlite == parity.transitions(rule, prometheus, start)
        assert [s for s, _ in on_sqlite] == parity.EXPECTED


def ms(ts):
    """Whole milliseconds, as the exporter writes timestamps."""
    return int(ts * 1000 + 1e-6)


def _dt(ts):
    return datetime.datetime.fromtimestamp(ts, UTC)


class TestBatchedInstantQueries(PromTest):
    """An evaluator's turn asks its alarms' queries a hundred in one
    request: every answer is the one the query gets on its own -- series,
    labels, NaN, nothing, or the same refusal.
    """

    def setUp(self):
        super().setUp()
        self.job = 'batch-%s' % uuid.uuid4().hex[:8]
        body = ''.join('tl_batch{i="%d"} %d\n' % (i, i) for i in range(5))
        requests.put('%s/metrics/job/%s' % (GATEWAY, self.job), data=body,
                     timeout=10).raise_for_status()
        self.addCleanup(requests.delete, '%s/metrics/job/%s' % (
            GATEWAY, self.job), timeout=10)
        assert base.wait_until(lambda: len(promql(
            'tl_batch{job="%s"}' % self.job)) == 5, 60, interval=0.2)

    def answer(self, expression, at):
        """What instant_query says: its series (sorted) or its error."""
        try:
            got = self.storage.instant_query(expression, at)
        except Exception as exc:
            return ('error', type(exc).__name__, str(exc))
        return sorted((sorted(labels.items()), repr(value))
                      for labels, value in got)

    def test_answers_equal_those_asked_one_by_one(self):
        sel = 'tl_batch{job="%s"}' % self.job
        expressions = [
            sel, 'max(%s)' % sel, '%s > 2' % sel, '%s / 0' % sel,
            'tl_batch{job="%s",i="none"}' % self.job,       # nothing
            'scalar(max(%s))' % sel, '1',                    # scalars
            '%s[1m]' % sel, 'rate(',                         # refused
            'vector(7)', 'sum by (i) (%s)' % sel,
        ] + ['%s + %d' % (sel, n) for n in range(150)]      # > one batch
        at = datetime.datetime.now(UTC)
        alone = {e: self.answer(e, at) for e in expressions}
        assert alone['rate('][0] == 'error'
        assert alone['tl_batch{job="%s",i="none"}' % self.job] == []
        requests_made = []
        real = self.storage._client.request

        def counted(*args, **kwargs):
            requests_made.append(args[0])
            return real(*args, **kwargs)
        self.storage._client.request = counted
        with self.storage.prefetched(expressions, at):
            first = len(requests_made)
            together = {e: self.answer(e, at) for e in expressions}
        assert together == alone
        # The refused ones were found by halving, then asked alone.
        assert first < len(expressions) // 4, first
        # Next turn: the loners are known, the rest is two requests.
        requests_made.clear()
        with self.storage.prefetched(expressions, at):
            assert len(requests_made) == 2, requests_made
            again = {e: self.answer(e, at) for e in expressions}
        assert again == alone
        assert len(requests_made) == 2 + 4      # the four loners, alone

    def test_a_server_that_is_down_leaves_each_query_to_itself(self):
        down = storage_base.load_storage(
            self.conf, 'prometheus://127.0.0.1:%d' % base.free_port())
        self.addCleanup(down.close)
        at = datetime.datetime.now(UTC)
        with down.prefetched(['up', 'vector(1)'], at):
            for e in ('up', 'vector(1)'):
                with self.assertRaises(StorageUnavailable):
                    down.instant_query(e, at)
