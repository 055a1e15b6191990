"""Delivery.offer and the listener's handling of a batch (no bus: the
batch is handed to it as oslo.messaging would)."""

import random


from telemetry_lib import delivery
from telemetry_lib.notification import converter
from telemetry_lib.notification import listener as listener_mod
from telemetry_lib.pipeline import PipelineDefinition
from telemetry_lib.pipeline import PipelineManager
from tests import base
from tests.unit.test_delivery import balanced
from tests.unit.test_delivery import samples
from tests.unit.test_delivery import ScriptedPublisher

URL = 'rabbit://user:secret@127.0.0.1:5672/'


class TestOffer(base.TestCase):

    def delivery(self, **opts):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = delivery.Delivery(pub, options=delivery.DeliveryOptions(
            max_latency=60, **opts), rng=random.Random(1)).start()
        self.addCleanup(pub.gate.set)
        self.addCleanup(d.close, 1)
        return d, pub

    def test_all_or_nothing_below_the_high_water(self):
        d, pub = self.delivery(max_queue_samples=100)
        assert d.offer(samples(70), 0.8)
        # 70 + 20 > 80: refused, nothing queued, nothing counted.
        assert not d.offer(samples(20), 0.8)
        st = d.stats()
        assert (st.received, st.pending, st.dropped_total) == (70, 70, 0)
        assert d.offer(samples(10), 0.8)
        assert d.stats().received == 80 and balanced(d.stats())

    def test_refused_by_bytes_too(self):
        d, _ = self.delivery(max_queue_bytes=20000)
        assert d.offer(samples(5), 0.8)
        before = d.stats()
        # Far under the item bound, far over 0.8 of the byte bound.
        assert not d.offer(samples(100), 0.8)
        after = d.stats()
        assert (after.received, after.pending) == (before.received,
                                                   before.pending)
        assert balanced(after)

    def test_refused_once_closed_or_not_started(self):
        pub = ScriptedPublisher(self.conf)
        d = delivery.Delivery(pub)
        assert not d.offer(samples(1))
        d.start()
        d.close(1)
        assert not d.offer(samples(1))
        assert d.stats().received == 0


class FakeDeliver:
    def __init__(self, answers=()):
        self.answers = list(answers)
        self.batches = []

    def __call__(self, samples, events):
        self.batches.append((list(samples), list(events)))
        return self.answers.pop(0) if self.answers else (True, 0)


def note(event_type, payload, mid):
    return {'event_type': event_type, 'publisher_id': 'volume.h',
            'payload': payload, 'ctxt': {},
            'metadata': {'message_id': mid,
                         'timestamp': '2026-11-30 10:00:00'}}


VOL = {'volume_id': 'v1', 'size': 10, 'tenant_id': 'p', 'user_id': 'u'}


class TestBatch(base.TestCase):

    def listener(self, deliver, **opts):
        self.conf.set_override('messaging_urls', [URL], group='notification')
        self.conf.set_override('requeue_delay', 0, group='notification')
        for k, v in opts.items():
            self.conf.set_override(k, v, group='notification')
        conv = converter.Converter.from_conf(self.conf, lambda c, n: (
            converter.os.path.join(converter.DATA_DIR, n)))
        return listener_mod.NotificationListener(self.conf, deliver,
                                                 lambda: conv)

    def test_converted_and_acknowledged(self):
        deliver = FakeDeliver()
        lis = self.listener(deliver)
        result = lis.process('info', [note('volume.create.end', VOL, 'a'),
                                      note('volume.delete.end', VOL, 'b')])
        assert result is True
        (samples_, events), = deliver.batches
        assert [s.name for s in samples_] == ['volume.size'] * 2
        assert [e.event_type for e in events] == ['volume.create.end',
                                                  'volume.delete.end']
        by_type, totals = lis.counts.snapshot()
        assert by_type['volume.create.end'] == {'received': 1,
                                                'converted': 1}
        assert (totals['samples'], totals['events']) == (2, 2)

    def test_requeued_when_a_queue_is_past_its_high_water(self):
        deliver = FakeDeliver([(False, 3)])
        lis = self.listener(deliver)
        batch = [note('volume.create.end', VOL, 'a')]
        assert lis.process('info', batch) is False
        assert lis.process('info', batch) is True
        by_type, totals = lis.counts.snapshot()
        assert by_type['volume.create.end'] == {
            'received': 2, 'requeued': 1, 'converted': 1}
        assert totals['duplicated'] == 3

    def test_poison_is_counted_once_and_never_requeued(self):
        deliver = FakeDeliver([(False, 0)])
        lis = self.listener(deliver)
        poison = {'event_type': 'volume.create.end', 'payload': {},
                  'metadata': {'message_id': 'p1'}}    # no timestamp
        batch = [poison, note('volume.create.end', VOL, 'a')]
        with self.assertLogs(listener_mod.LOG, 'WARNING') as logs:
            assert lis.process('info', batch) is False
            assert lis.process('info', batch) is True
        by_type, _ = lis.counts.snapshot()
        assert by_type['volume.create.end']['poisoned'] == 1
        assert by_type['volume.create.end']['converted'] == 1
        assert len(logs.records) == 1
        assert 'malformed' in logs.output[0]
        # The good one was offered both times, the poison never.
        assert [len(s) for s, _ in deliver.batches] == [1, 1]

    def test_not_a_mapping_and_a_crashing_delivery(self):
        lis = self.listener(FakeDeliver())
        assert lis.process('info', ['text', 42]) is True
        assert lis.counts.snapshot()[0]['(none)']['poisoned'] == 2

        def broken(samples, events):
            raise RuntimeError('bug')
        lis = self.listener(broken)
        with self.assertLogs(listener_mod.LOG, 'ERROR'):
            assert lis.process('info', [note('x', {}, 'a')]) is False

    def test_no_url_and_a_bad_url_are_config_errors(self):
        from telemetry_lib.exceptions import ConfigError
        with self.assertRaisesRegex(ConfigError, 'no URL'):
            listener_mod.NotificationListener(self.conf, None, None)
        self.conf.set_override('messaging_urls', ['rabbit://u:pw@h:notaport/'],
                               group='notification')
        with self.assertRaises(ConfigError) as ctx:
            listener_mod.NotificationListener(self.conf, None, None)
        assert 'pw' not in str(ctx.exception)

    def test_describe_masks_the_password(self):
        lis = self.listener(FakeDeliver())
        assert 'secret' not in lis.describe()
        assert 'user:***@' in lis.describe()


class TestPipelineOffer(base.TestCase):

    def test_partial_acceptance_is_reported(self):
        path = self.write_file('p.yaml', '''
sources:
  - name: s
    meters: ["*"]
    sinks: [a, b]
sinks:
  - name: a
    publishers: ["test://a?max_queue_samples=100"]
  - name: b
    publishers: ["test://b?max_queue_samples=10"]
''')
        pm = PipelineManager(self.conf, PipelineDefinition.load(path)).start()
        self.addCleanup(pm.close, 1)
        assert pm.offer(samples(5), 1.0) == (True, 10)
        assert pm.offer(samples(6), 1.0) == (False, 0)
        assert pm.offer([], 1.0) == (True, 0)
