"""Remote write bodies and the publisher's outcomes, against a receiver in
this process that decodes what arrives (snappy, protobuf) as Prometheus
does: refuses a batch holding a poisoned value with 400, as Prometheus 2.42
refuses a whole request for one out-of-bounds sample.
"""

import datetime

from telemetry_lib import delivery
from telemetry_lib.formats import remote_write as rw
from telemetry_lib import Sample
from tests import base
from tests.post_receiver import PostReceiver

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
POISON = -666.0


def sample(i, name='cpu', resource='vm1', value=None, **kw):
    return Sample(name, 'cumulative', 'ns', float(i) if value is None
                  else value, resource_id=resource, project_id='p',
                  timestamp=T0 + datetime.timedelta(seconds=i),
                  resource_metadata={'host': 'h1', 'display_name': 'web'},
                  **kw)


class Receiver(PostReceiver):
    """Stores what it accepts; answers what the test says."""

    def __init__(self):
        self.stored = []            # (labels dict, timestamp, value)
        self.requests = []
        self.status = None          # force this status
        self.retry_after = None
        super().__init__(self.respond)

    def respond(self, headers, body):
        self.requests.append(headers)
        status = self.status or self.take(body)
        return status, ({'Retry-After': self.retry_after}
                        if self.retry_after is not None else {}), b''

    def take(self, body):
        try:
            request = rw.parse(body)
        except ValueError:
            return 400
        got = [({lb.name: lb.value for lb in ts.labels}, s.timestamp,
                s.value) for ts in request.timeseries for s in ts.samples]
        if any(v == POISON for _, _, v in got):
            return 400          # the whole request, as Prometheus 2.42
        self.stored.extend(got)
        return 204


class TestFormat(base.TestCase):

    def test_series_labels_samples_and_metadata(self):
        samples = [sample(2), sample(1), sample(3, resource='vm2'),
                   Sample('memory.usage', 'gauge', 'MB', 5.5,
                          resource_id='vm1', timestamp=T0)]
        request = rw.parse(rw.compress(rw.write_request(samples, 'stf',
                                                        'pub')))
        series = {tuple((lb.name, lb.value) for lb in ts.labels):
                  [(s.timestamp, s.value) for s in ts.samples]
                  for ts in request.timeseries}
        assert len(series) == 3
        ms = int(T0.timestamp() * 1000)
        for labels, points in series.items():
            names = [n for n, _ in labels]
            # __name__ first, then sorted, and nothing empty.
            assert names[0] == '__name__' and names[1:] == sorted(names[1:])
            assert all(v for _, v in labels)
            assert points == sorted(points)
        vm1 = [p for labels, p in series.items()
               if {('resource', 'vm1'),
                   ('__name__', 'ceilometer_cpu')} <= set(labels)]
        assert vm1 == [[(ms + 1000, 1.0), (ms + 2000, 2.0)]]
        meta = {m.metric_family_name: (m.type, m.unit)
                for m in request.metadata}
        assert meta == {'ceilometer_cpu': (1, 'ns'),
                        'ceilometer_memory_usage': (2, 'MB')}

    def test_every_naming_scheme(self):
        for scheme, name in (('stf', 'ceilometer_cpu'),
                             ('ceilometer', 'ceilometer_cpu'),
                             ('openmetrics', 'cpu_nanoseconds_total')):
            request = rw.parse(rw.compress(rw.write_request(
                [sample(1)], scheme, 'pub')))
            (ts,) = request.timeseries
            assert ts.labels[0].value == name, (scheme, ts.labels)


class TestPublisher(base.TestCase):

    def setUp(self):
        super().setUp()
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)

    def deliver(self, query=''):
        d = delivery.build(self.conf, (
            'remote-write+http://u:pw@127.0.0.1:%d/api/v1/write?'
            'max_latency=0&retry_initial_delay=0.01&header=X-Scope-OrgID:t1'
            '%s' % (self.receiver.port, query)))
        d.start()
        self.addCleanup(d.close, 5)
        return d

    def test_delivered_with_the_spec_headers_and_auth(self):
        d = self.deliver()
        d.put([sample(i) for i in range(50)])
        assert d.flush(10)
        assert len(self.receiver.stored) == 50
        headers = self.receiver.requests[0]
        assert headers['content-encoding'] == 'snappy'
        assert headers['content-type'] == 'application/x-protobuf'
        assert headers['x-prometheus-remote-write-version'] == '0.1.0'
        assert headers['x-scope-orgid'] == 't1'
        assert headers['authorization'].startswith('Basic ')
        st = d.stats()
        assert st.published == 50 and st.balanced

    def test_one_refused_sample_is_dropped_the_others_stored(self):
        d = self.deliver('&max_batch_size=64')
        batch = [sample(i) for i in range(40)]
        batch[17] = sample(17, value=POISON)
        d.put(batch)
        assert d.flush(10)
        assert sorted(v for _, _, v in self.receiver.stored) == [
            float(i) for i in range(40) if i != 17]
        st = d.stats()
        assert st.published == 39 and st.dropped == {'permanent': 1}
        assert st.balanced
        # Halving, not one request a sample.
        assert len(self.receiver.requests) <= 2 * 6 + 1, \
            len(self.receiver.requests)

    def test_5xx_and_429_retried_other_4xx_permanent(self):
        d = self.deliver('&max_retries=-1')
        self.receiver.status, self.receiver.retry_after = 503, '0'
        d.put([sample(1)])
        assert base.wait_until(lambda: d.stats().errors >= 2, 10)
        self.receiver.status = 429
        assert base.wait_until(lambda: d.stats().errors >= 4, 10)
        self.receiver.status = None
        assert d.flush(10)
        assert d.stats().published == 1
        self.receiver.status = 401
        d.put([sample(2), sample(3)])
        assert d.flush(10)
        st = d.stats()
        # Not halved: the request, not the samples, is at fault.
        assert st.dropped == {'permanent': 2} and st.balanced
        assert len(self.receiver.stored) == 1

    def test_bad_url_options_are_one_line(self):
        from telemetry_lib.exceptions import InvalidURL
        for url in ('remote-write+http://127.0.0.1:9/w?header=novalue',
                    'remote-write+http://127.0.0.1:9/w?'
                    'header=X-A:b%0d%0aX-B:c',
                    'remote-write+http://127.0.0.1:9/w?header=Bad%20Name:v',
                    'remote-write+http://127.0.0.1:9/w?scheme=nope',
                    'remote-write+http://a:1,b:2/w'):
            with self.assertRaises(InvalidURL) as ctx:
                delivery.build(self.conf, url)
            assert '\n' not in str(ctx.exception)
