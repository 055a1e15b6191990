"""The amqp1 and notifier publishers against a real RabbitMQ (AMQP 1.0)."""

import json
import os
import threading
import time
import uuid

from proton.handlers import MessagingHandler
from proton.reactor import Container

from telemetry_lib import delivery
from telemetry_lib import Event
from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import stf
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import RetryableError
from telemetry_lib import Sample
from tests import base
from tests.functional import rabbit
from tests.unit import test_format_collectd

FAST = 'max_latency=0&retry_initial_delay=0.05&retry_max_delay=0.5'


def samples(n, start=0, **kw):
    return [Sample('disk.read.bytes', 'cumulative', 'B', i,
                   resource_id='vm-%d' % i, id='id-%d' % i,
                   resource_metadata={'host': 'compute-0',
                                      'user_metadata': {'stack': 'web'}},
                   **kw)
            for i in range(start, start + n)]


def payload_ids(messages):
    ids = []
    for m in messages:
        ids += [p['message_id'] for p in stf.decode_envelope(m.body)[
            'payload']]
    return ids


class Amqp1Test(base.TestCase):

    node = rabbit.MAIN

    def setUp(self):
        super().setUp()
        self.node.start()

    def receiver(self, address):
        r = rabbit.Receiver(self.node, address)
        self.addCleanup(r.close)
        return r

    def build(self, url, kind='samples'):
        d = delivery.build(self.conf, url, kind).start()
        self.addCleanup(d.close, 2)
        return d


class TestCeilometerFormat(Amqp1Test):

    def run_mode(self, settle, count=500):
        queue = rabbit.unique_queue('ceilo')
        r = self.receiver(queue)
        d = self.build('amqp1://%s/%s?settle=%s&%s'
                       % (self.node.url, queue, settle, FAST))
        d.put(samples(count))
        assert d.flush(20)
        # Closed before anything is read: what was accepted (or, pre-settled,
        # handed to the transport) must still arrive.
        assert d.close(10)
        msgs = r.drain()
        ids = payload_ids(msgs)
        assert sorted(ids) == sorted('id-%d' % i for i in range(count))
        for m in msgs:
            # amqp-value holding a UTF-8 string: the only encoding both
            # sg-bridge and sg-core accept.
            assert isinstance(m.body, str) and not m.inferred
            assert len(m.body.encode()) <= stf.DEFAULT_MAX_BYTES
            assert m.address == queue
            inner = stf.decode_envelope(m.body)
            assert list(inner) == ['message_id', 'publisher_id',
                                   'event_type', 'priority', 'payload',
                                   'timestamp']
            assert inner['event_type'] == 'metering'
            assert inner['publisher_id'].startswith('telemetry.publisher.')
        st = d.stats()
        assert st.published == count and st.dropped == {}
        return msgs

    def test_unsettled(self):
        self.run_mode('unsettled')

    def test_presettled(self):
        # Enough that the transport still holds data when close() comes.
        self.run_mode('presettled', count=20000)

    def test_signed_samples_verify(self):
        self.conf.set_override('telemetry_secret', 's3', group='publisher')
        queue = rabbit.unique_queue('signed')
        r = self.receiver(queue)
        d = self.build('amqp1://%s/%s?%s' % (self.node.url, queue, FAST))
        d.put(samples(20))
        assert d.flush(20)
        for m in r.drain():
            for p in stf.decode_envelope(m.body)['payload']:
                assert ceilometer.verify_signature(p, 's3')

    def test_events(self):
        queue = rabbit.unique_queue('events')
        r = self.receiver(queue)
        d = self.build('amqp1://%s/%s?%s' % (self.node.url, queue, FAST),
                       kind='events')
        d.put([Event(message_id='e%d' % i, event_type='compute.instance.x',
                     traits=[('ratio', 3, 0.5), ('n', 1, None)])
               for i in range(30)])
        assert d.flush(20)
        inner = [stf.decode_envelope(m.body) for m in r.drain()]
        assert all(i['event_type'] == 'event' for i in inner)
        events = [e for i in inner for e in i['payload']]
        assert sorted(e['message_id'] for e in events) == sorted(
            'e%d' % i for i in range(30))
        assert events[0]['traits'] == [['ratio', 1, '0.5']]
        assert d.publisher.adjustments() == {
            stf.FLOAT_TRAIT: 30, stf.NULL_TRAIT: 30}

    def test_sasl_plain_and_failover(self):
        queue = rabbit.unique_queue('failover')
        r = self.receiver(queue)
        dead = base.free_port()
        # The first host refuses; the client moves on to the second.
        d = self.build('amqp1://guest:guest@127.0.0.1:%d,%s/%s?%s'
                       % (dead, self.node.url, queue, FAST))
        d.put(samples(10))
        assert d.flush(20)
        assert len(payload_ids(r.drain())) == 10

    def test_stf_address_is_refused_by_rabbitmq_clearly(self):
        # RabbitMQ cannot route STF's default address and ends the session:
        # a retryable, explained failure -- never a hang.
        pub = publisher_base.load_publisher(
            self.conf, 'amqp1://%s/?send_timeout=3' % self.node.url)
        pub.start()
        self.addCleanup(pub.close, 1)
        assert pub.sample_address == 'anycast/ceilometer/metering.sample'
        started = time.monotonic()
        with self.assertRaises(RetryableError) as ctx:
            pub.publish_samples(samples(3))
        assert time.monotonic() - started < 5
        assert 'anycast/ceilometer/metering.sample' in str(ctx.exception)


class TestCollectdFormat(Amqp1Test):

    def run_mode(self, settle):
        queue = rabbit.unique_queue('collectd')
        r = self.receiver(queue)
        d = self.build('amqp1://%s/%s?format=collectd&settle=%s&%s'
                       % (self.node.url, queue, settle, FAST))
        host = [Sample('host.cpu.time', 'cumulative', 'ns', i * 1000,
                       resource_id='compute-0', timestamp=1714564800 + i,
                       resource_metadata={'host': 'compute-0'})
                for i in range(100)]
        d.put(host)
        assert d.flush(20)
        msgs = r.drain()
        assert len(msgs) == 100
        values = []
        for m in msgs:
            # AMQP binary, as collectd sends (proton gives a memoryview).
            assert isinstance(m.body, (bytes, memoryview))
            (vl,) = json.loads(bytes(m.body))
            assert (vl['plugin'], vl['type'], vl['dstypes']) == (
                'cpu', 'time', ['derive'])
            values.append(vl['values'][0])
        assert sorted(values) == [i * 1000 for i in range(100)]

    def test_instances_keep_their_own_series(self):
        # What the Smart Gateway keys a series on, read off the wire:
        # 12 instances' samples from the real compute mapping stay apart.
        queue = rabbit.unique_queue('collectd')
        r = self.receiver(queue)
        d = self.build('amqp1://%s/%s?format=collectd&%s'
                       % (self.node.url, queue, FAST))
        samples = [s for s in test_format_collectd.awkward_samples()
                   if s.resource_metadata.get('instance_id')][:300]
        d.put(samples)
        assert d.flush(20)
        msgs = r.drain()
        assert len(msgs) == len(samples)
        series = {x for m in msgs for vl in json.loads(bytes(m.body))
                  for x in test_format_collectd.sg_core_series(vl)}
        assert len(series) == len({(s.name, s.resource_id)
                                   for s in samples})
        st = d.stats()
        assert st.published == len(samples) and st.balanced, st

    def test_unsettled(self):
        self.run_mode('unsettled')

    def test_presettled(self):
        self.run_mode('presettled')

    def test_default_address(self):
        pub = publisher_base.load_publisher(
            self.conf, 'amqp1://%s?format=collectd&collectd_instance=east'
            % self.node.url)
        pub.start()
        self.addCleanup(pub.close, 1)
        assert pub.sample_address == 'collectd/east'


class TestURLCompatibility(base.TestCase):

    def test_stf_tripleo_notifier_urls(self):
        for url, sample_addr, event_addr in (
                ('notifier://qdr:5666/?driver=amqp&topic=metering',
                 'anycast/ceilometer/metering.sample',
                 'anycast/ceilometer/metering.sample'),
                ('notifier://qdr:5666/?driver=amqp&topic=event',
                 'anycast/ceilometer/event.sample',
                 'anycast/ceilometer/event.sample'),
                ('notifier://qdr:5666/?driver=amqp',
                 'anycast/ceilometer/metering.sample',
                 'anycast/ceilometer/event.sample'),
                ('qdr://qdr:5666/?topic=cloud1-metering',
                 'anycast/ceilometer/cloud1-metering.sample',
                 'anycast/ceilometer/cloud1-metering.sample')):
            pub = publisher_base.load_publisher(self.conf, url)
            try:
                assert type(pub).__name__ == 'AMQP1Publisher', url
                assert (pub.sample_address, pub.event_address) == (
                    sample_addr, event_addr), url
                assert pub.sender.hosts == [('qdr', 5666)]
            finally:
                pub.close(1)


class NoCreditPeer(MessagingHandler):
    """A real AMQP 1.0 peer (proton) that accepts links but grants credit
    only when told: what a Qpid Dispatch Router does for an address with no
    consumer.
    """

    def __init__(self, port):
        super().__init__(prefetch=0)
        self.port = port
        self.receivers = []
        self.got = []
        self.grant = threading.Event()

    def on_start(self, event):
        self.acceptor = event.container.listen('127.0.0.1:%d' % self.port)
        event.container.schedule(0.05, self)

    def on_timer_task(self, event):
        if self.grant.is_set():
            for r in self.receivers:
                if r.credit < 100:
                    r.flow(100)
        event.container.schedule(0.05, self)

    def on_link_opening(self, event):
        if event.receiver:
            event.receiver.target.address = event.receiver.remote_target\
                .address
            self.receivers.append(event.receiver)

    def on_message(self, event):
        self.got += stf.decode_envelope(event.message.body)['payload']


class TestNoCredit(base.TestCase):

    def test_no_credit_times_out_into_the_queue_then_delivers(self):
        port = base.free_port()
        peer = NoCreditPeer(port)
        container = Container(peer)
        threading.Thread(target=container.run, daemon=True).start()
        self.addCleanup(container.stop)
        d = delivery.build(self.conf, 'amqp1://127.0.0.1:%d?send_timeout=0.5'
                           '&max_retries=-1&%s' % (port, FAST)).start()
        self.addCleanup(d.close, 2)
        d.put(samples(50))
        started = time.monotonic()
        outcome = d.flush(2)
        assert time.monotonic() - started < 3      # no hang
        assert outcome.pending == 50
        st = d.stats()
        assert st.errors >= 2 and st.published == 0 and st.dropped == {}
        peer.grant.set()
        assert d.flush(10)
        assert sorted(p['message_id'] for p in peer.got) == sorted(
            'id-%d' % i for i in range(50))


class TestTLS(Amqp1Test):

    def tls_url(self, ca, **extra):
        query = '&'.join('%s=%s' % kv for kv in extra.items())
        return ('amqp1://guest:guest@localhost:%d/%s?ssl=true&ssl_ca_file=%s'
                '&send_timeout=3&%s' % (self.node.tls_port, self.queue, ca,
                                        query))

    def setUp(self):
        super().setUp()
        self.queue = rabbit.unique_queue('tls')

    def test_verified_connection(self):
        r = self.receiver(self.queue)
        pub = publisher_base.load_publisher(
            self.conf, self.tls_url(os.path.join(self.node.tls_dir,
                                                 'ca.pem')))
        pub.start()
        self.addCleanup(pub.close, 1)
        pub.publish_samples(samples(5))
        assert len(payload_ids(r.drain())) == 5

    def test_amqps_scheme(self):
        r = self.receiver(self.queue)
        pub = publisher_base.load_publisher(
            self.conf, 'amqps://guest:guest@localhost:%d/%s?ssl_ca_file=%s'
            '&send_timeout=3' % (self.node.tls_port, self.queue,
                                 os.path.join(self.node.tls_dir, 'ca.pem')))
        pub.start()
        self.addCleanup(pub.close, 1)
        pub.publish_samples(samples(4))
        assert len(payload_ids(r.drain())) == 4

    def test_wrong_ca_fails_clearly(self):
        pub = publisher_base.load_publisher(
            self.conf, self.tls_url(os.path.join(self.node.tls_dir,
                                                 'other-ca.pem')))
        pub.start()
        self.addCleanup(pub.close, 1)
        with self.assertRaises(RetryableError) as ctx:
            pub.publish_samples(samples(2))
        assert 'certificate verify failed' in str(ctx.exception)

    def test_hostname_verification_can_be_switched_off(self):
        # The certificate names localhost; 127.0.0.1 only passes without
        # the hostname check (as QDR's verifyHostname: false).
        r = self.receiver(self.queue)
        url = self.tls_url(os.path.join(self.node.tls_dir, 'ca.pem'))
        strict = publisher_base.load_publisher(
            self.conf, url.replace('localhost', '127.0.0.1'))
        strict.start()
        self.addCleanup(strict.close, 1)
        with self.assertRaises(RetryableError):
            strict.publish_samples(samples(1))
        lax = publisher_base.load_publisher(
            self.conf, url.replace('localhost', '127.0.0.1')
            + 'ssl_verify_hostname=false')
        lax.start()
        self.addCleanup(lax.close, 1)
        lax.publish_samples(samples(1))
        assert len(r.drain()) == 1


class TestNotifier(Amqp1Test):

    def listen(self, node, topic):
        import oslo_messaging
        transport = oslo_messaging.get_notification_transport(
            self.conf, url='rabbit://guest:guest@%s/' % node.url)
        got = []

        class Endpoint:
            def sample(self, ctxt, publisher_id, event_type, payload,
                       metadata):
                got.append((publisher_id, event_type, payload))

        listener = oslo_messaging.get_notification_listener(
            transport, [oslo_messaging.Target(topic=topic,
                                              exchange='ceilometer')],
            [Endpoint()], executor='threading')
        listener.start()

        def stop():
            listener.stop()
            listener.wait()
            transport.cleanup()
        self.addCleanup(stop)
        return got

    def test_received_by_an_oslo_messaging_listener(self):
        topic = 'metering-%s' % uuid.uuid4().hex[:8]
        got = self.listen(self.node, topic)
        d = self.build('notifier://guest:guest@%s/?topic=%s&%s'
                       % (self.node.url, topic, FAST))
        d.put(samples(40))
        assert d.flush(20)
        assert base.wait_until(lambda: sum(len(p) for _, _, p in got) == 40,
                               20)
        publisher_id, event_type, payload = got[0]
        assert event_type == 'metering'
        assert publisher_id.startswith('telemetry.publisher.')
        ids = [m['message_id'] for _, _, p in got for m in p]
        assert sorted(ids) == sorted('id-%d' % i for i in range(40))
        assert payload[0]['counter_name'] == 'disk.read.bytes'


class TestBrokerOutage(Amqp1Test):
    """On a node of their own, since they stop it."""

    node = rabbit.OUTAGE

    def test_amqp1_spool_delivers_everything_after_the_outage(self):
        queue = rabbit.unique_queue('outage')
        r = self.receiver(queue)
        d = self.build('amqp1://%s/%s?spool=true&spool_dir=%s&max_retries=-1'
                       '&send_timeout=2&%s' % (self.node.url, queue,
                                               self.tmpdir, FAST))
        d.put(samples(100))
        assert d.flush(20)
        r.drain()
        r.close()
        self.node.stop()
        try:
            d.put(samples(100, start=100))
            assert not d.flush(1)
            assert d.stats().pending == 100
        finally:
            self.node.start()
        d.put(samples(100, start=200))
        assert d.flush(60)
        r2 = self.receiver(queue)
        ids = set(payload_ids(r.messages) + payload_ids(r2.drain()))
        assert ids == {'id-%d' % i for i in range(300)}
        st = d.stats()
        assert st.published == 300 and st.dropped == {} and st.retried > 0

    def test_notifier_retries_through_the_outage(self):
        topic = 'metering-%s' % uuid.uuid4().hex[:8]
        got = TestNotifier.listen(self, self.node, topic)
        d = self.build('notifier://guest:guest@%s/?topic=%s&max_retries=-1'
                       '&%s' % (self.node.url, topic, FAST))
        self.node.stop()
        try:
            d.put(samples(30))
            assert not d.flush(2)
        finally:
            self.node.start()
        assert d.flush(60)
        assert base.wait_until(lambda: sum(len(p) for _, _, p in got) >= 30,
                               60)
        ids = {m['message_id'] for _, _, p in got for m in p}
        assert ids == {'id-%d' % i for i in range(30)}
        assert d.stats().retried > 0
