"""``[notification] consumer = direct`` beside oslo.messaging's batch
listener on a real RabbitMQ: the same notifications, sent by
oslo.messaging's own Notifier as the services send them, on two pools of
one topic (each pool a queue that gets all of them), hand the converter the
same bodies and make the same samples, events and counts; a batch the
publishers cannot take stays on the bus; a bus that vanishes and comes
back loses nothing.
"""

import socket
import threading
import time
import uuid

from oslo_config import cfg

from telemetry_lib.formats import ceilometer as ceilometer_format
from telemetry_lib.notification import direct
from telemetry_lib.notification import listener as listener_mod
from telemetry_lib import opts
from telemetry_lib import Sample
from tests import base
from tests.functional import ceilometer_notifications as reference
from tests.functional import notification_bus as bus
from tests.functional import rabbit
from tests.functional.tcp_proxy import TcpProxy

ROUTES = 15 * len(listener_mod.PRIORITIES)


class Recorder:
    """A listener's ``deliver`` and what its ``process`` was handed."""

    def __init__(self, refuse=0):
        self.lock = threading.Lock()
        self.samples, self.events, self.bodies = [], [], []
        self.refuse = refuse

    def deliver(self, samples, events):
        with self.lock:
            if self.refuse:
                self.refuse -= 1
                return False, 0
            self.samples += samples
            self.events += events
        return True, 0

    def watch(self, lis):
        process = lis.process

        def recording(priority, messages):
            handled = process(priority, messages)
            if handled:
                with self.lock:
                    self.bodies += [(priority, m) for m in messages]
            return handled
        lis.process = recording


class DirectTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.topic = 'tl_direct_%s' % uuid.uuid4().hex[:8]
        self.services = bus.Services(self.topic)
        self.addCleanup(self.services.close)

    def listener(self, consumer, recorder, url=bus.URL, **overrides):
        conf = cfg.ConfigOpts()
        opts.register_all(conf)
        conf([], project='telemetry_lib', default_config_files=[])
        pool = 'tl-%s-%s' % (consumer.replace('.', '-'),
                             uuid.uuid4().hex[:8])
        settings = dict(messaging_urls=[url], topics=[self.topic],
                        pool=pool, batch_timeout=0.2, requeue_delay=0.1,
                        consumer=consumer)
        settings.update(overrides)
        for key, value in settings.items():
            conf.set_override(key, value, group='notification')
        cls = (direct.DirectNotificationListener if consumer == 'direct'
               else listener_mod.NotificationListener)
        converter = reference.ours()
        lis = cls(conf, recorder.deliver, lambda: converter)
        recorder.watch(lis)
        lis.start()
        self.addCleanup(lis.close, 10)
        lis.pool = pool
        self.addCleanup(_delete_queue, pool)
        assert base.wait_until(lambda: bus.bindings(pool) >= ROUTES, 60,
                               interval=0.5), bus.bindings(pool)
        return lis

    def converted(self, lis):
        return lis.counts.snapshot()[1].get('converted', 0)


def _delete_queue(name):
    import kombu
    with kombu.Connection('amqp://guest:guest@%s//' % rabbit.MAIN.url
                          ) as conn:
        try:
            conn.default_channel.queue_delete(name)
        except Exception:
            pass


def _wire(samples):
    return sorted((ceilometer_format.sample_to_wire(s) for s in samples),
                  key=lambda m: m['message_id'])


def _events(events):
    return sorted((ceilometer_format.event_to_wire(e) for e in events),
                  key=lambda m: m['message_id'])


class TestSameAsOsloMessaging(DirectTest):

    def test_same_bodies_samples_events_and_counts(self):
        theirs, ours = Recorder(), Recorder()
        oslo = self.listener('oslo.messaging', theirs)
        lean = self.listener('direct', ours)
        fixtures = reference.notifications()
        for body in fixtures:
            self.services.send(body)
        # Ceilometer's polling agents' IPC: a sample-priority notification.
        self.services.send({
            'publisher_id': 'ceilometer.polling',
            'event_type': 'telemetry.polling', 'priority': 'SAMPLE',
            'payload': {'samples': [ceilometer_format.sample_to_wire(
                Sample('cpu', 'cumulative', 'ns', i, user_id='u',
                       project_id='p', resource_id='vm-%d' % i,
                       resource_metadata={'host': 'compute-1'}))
                for i in range(3)]}})
        # No notifications: both reject them, and count them.
        self.services.send_raw('nova', 'info', 'not JSON {')
        self.services.send_raw('nova', 'info', '[1, 2]')
        sent = len(fixtures) + 1

        def both_done():
            return all(self.converted(lis) >= sent and lis.counts.snapshot(
            )[1].get('undecodable', 0) >= 2 for lis in (oslo, lean))
        assert base.wait_until(both_done, 120, interval=0.2), (
            oslo.counts.snapshot()[1], lean.counts.snapshot()[1])

        def by_id(bodies):
            return sorted(bodies, key=lambda pb: pb[1]['metadata'][
                'message_id'])
        assert len(ours.bodies) == sent
        assert by_id(ours.bodies) == by_id(theirs.bodies)
        assert ours.samples and ours.events
        assert _wire(ours.samples) == _wire(theirs.samples)
        assert _events(ours.events) == _events(theirs.events)
        assert lean.counts.snapshot() == oslo.counts.snapshot()


class TestAcknowledgedOnlyWhenQueued(DirectTest):

    def test_refused_batches_come_again_and_nothing_is_lost(self):
        ours = Recorder(refuse=3)
        lean = self.listener('direct', ours, batch_size=10)
        fixtures = reference.notifications()
        for body in fixtures:
            self.services.send(body)
        assert base.wait_until(
            lambda: self.converted(lean) >= len(fixtures), 120,
            interval=0.2), lean.counts.snapshot()
        totals = lean.counts.snapshot()[1]
        assert totals.get('requeued', 0) > 0, totals
        ids = [m['metadata']['message_id'] for _, m in ours.bodies]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == len(
            fixtures)
        assert bus.ready_messages(lean.pool) == 0

    def test_closed_while_refusing_leaves_every_notification_queued(self):
        ours = Recorder(refuse=10 ** 6)
        lean = self.listener('direct', ours, batch_size=10)
        fixtures = reference.notifications()
        for body in fixtures:
            self.services.send(body)
        assert base.wait_until(
            lambda: lean.counts.snapshot()[1].get('requeued', 0) > 0, 60,
            interval=0.2)
        assert lean.close(10).finished
        assert base.wait_until(
            lambda: bus.ready_messages(lean.pool) == len(fixtures), 30,
            interval=0.2), bus.ready_messages(lean.pool)
        assert ours.samples == [] and ours.bodies == []


class TestABusThatVanishes(DirectTest):

    def test_cut_and_restored_every_notification_arrives(self):
        proxy = TcpProxy(rabbit.MAIN.port).start()
        self.addCleanup(proxy.stop)
        ours = Recorder()
        lean = self.listener(
            'direct', ours,
            url='rabbit://guest:guest@127.0.0.1:%d/' % proxy.port)
        fixtures = reference.notifications()
        half = len(fixtures) // 2
        for body in fixtures[:half]:
            self.services.send(body)
        assert base.wait_until(lambda: self.converted(lean) >= half, 60,
                               interval=0.2)
        proxy.cut()
        # Sent while the consumer is cut off: they wait in its queue.
        for body in fixtures[half:]:
            self.services.send(body)
        assert base.wait_until(
            lambda: lean.counts.snapshot()[1].get('connection_lost', 0)
            + lean.counts.snapshot()[1].get('connect_failed', 0) > 0, 60,
            interval=0.2), lean.counts.snapshot()
        proxy.restore()
        assert base.wait_until(
            lambda: len({m['metadata']['message_id']
                         for _, m in ours.bodies}) >= len(fixtures), 120,
            interval=0.2), lean.counts.snapshot()

    def test_start_and_close_while_the_bus_hangs_are_bounded(self):
        # A peer that takes the connection and never says a word.
        hung = socket.socket()
        hung.bind(('127.0.0.1', 0))
        hung.listen(8)
        self.addCleanup(hung.close)
        conf = cfg.ConfigOpts()
        opts.register_all(conf)
        conf([], project='telemetry_lib', default_config_files=[])
        for key, value in dict(
                messaging_urls=['rabbit://guest:guest@127.0.0.1:%d/'
                                % hung.getsockname()[1]],
                topics=[self.topic], consumer='direct').items():
            conf.set_override(key, value, group='notification')
        lis = direct.DirectNotificationListener(conf, Recorder().deliver,
                                                reference.ours)
        started = time.monotonic()
        lis.start()
        took_start = time.monotonic() - started
        started = time.monotonic()
        outcome = lis.close(2)
        took_close = time.monotonic() - started
        # start() waits CONNECT_WAIT at most; close() its own bound.
        assert took_start < listener_mod.CONNECT_WAIT + 3, took_start
        assert took_close < 4, (took_close, outcome)
