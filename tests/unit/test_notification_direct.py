"""The direct consumer's decoding and settling, without a bus (the
functional tests compare it with oslo.messaging's on a real RabbitMQ).
"""

import json
import zlib


from telemetry_lib.exceptions import ConfigError
from telemetry_lib.notification import direct
from tests import base
from tests.fuzzing_bus import Channel
from tests.fuzzing_bus import Message

INNER = {'message_id': 'm1', 'publisher_id': 'compute.host-1',
         'event_type': 'compute.instance.exists', 'priority': 'INFO',
         'payload': {'instance_id': 'i'}, 'timestamp': '2026-12-05 10:00:00',
         '_unique_id': 'u', '_context_user_id': 'alice',
         '_context_roles': ['admin']}
BODY = {'ctxt': {'user_id': 'alice', 'roles': ['admin'],
                 'client_timeout': None},
        'publisher_id': 'compute.host-1',
        'event_type': 'compute.instance.exists',
        'payload': {'instance_id': 'i'},
        'metadata': {'message_id': 'm1',
                     'timestamp': '2026-12-05 10:00:00'}}


def envelope(inner):
    return json.dumps({'oslo.version': '2.0',
                       'oslo.message': json.dumps(inner)}).encode()


class TestDecode(base.TestCase):

    def test_the_envelope_the_bare_dict_and_compressed(self):
        for raw, headers in (
                (envelope(INNER), None),
                (json.dumps(INNER).encode(), None),
                (zlib.compress(envelope(INNER)),
                 {'compression': 'application/x-gzip'})):
            assert direct.decode(Message(raw, 1, headers)) == ('info', BODY)

    def test_what_oslo_messaging_rejects_is_undecodable(self):
        for raw, headers in (
                (b'not json', None), (b'[1, 2]', None),
                (json.dumps({'oslo.version': '3.0',
                             'oslo.message': '{}'}).encode(), None),
                (json.dumps({'oslo.version': '2.0',
                             'oslo.message': 7}).encode(), None),
                (envelope(INNER), {'compression': 'application/x-lzma'})):
            self.assertRaises(direct.Undecodable, direct.decode,
                              Message(raw, 1, headers))

    def test_queue_arguments_are_oslo_messagings(self):
        rabbit = {'rabbit_ha_queues': False, 'rabbit_quorum_queue': True,
                  'rabbit_quorum_delivery_limit': 5,
                  'rabbit_quorum_max_memory_length': 0,
                  'rabbit_quorum_max_memory_bytes': 0}

        class Group(dict):
            __getattr__ = dict.__getitem__
        assert direct.queue_arguments(Group(rabbit)) == {
            'x-queue-type': 'quorum', 'x-delivery-limit': 5}
        rabbit.update(rabbit_quorum_queue=False, rabbit_ha_queues=True)
        assert direct.queue_arguments(Group(rabbit)) == {
            'x-ha-policy': 'all'}


class TestBatch(base.TestCase):

    def listener(self, answers):
        self.conf.set_override('messaging_urls',
                               ['rabbit://guest:guest@127.0.0.1/'],
                               group='notification')
        self.conf.set_override('requeue_delay', 0, group='notification')
        got = []

        class Converter:
            def convert(self, body, priority):
                got.append((priority, body['metadata']['message_id']))

                class Result:
                    samples, events, problems = [], [], []
                return Result()

        def deliver(samples, events):
            return answers.pop(0), 0
        lis = direct.DirectNotificationListener(self.conf, deliver,
                                                lambda: Converter())
        return lis, got

    def test_one_ack_for_a_batch_that_went_well(self):
        lis, got = self.listener([True, True])
        error = dict(INNER, priority='ERROR', message_id='m2')
        batch = [Message(envelope(INNER), 1), Message(envelope(error), 2)]
        channel = Channel([1, 2])
        lis._handle(channel, batch)
        assert channel.settled == {1: 'ack', 2: 'ack'}
        # Grouped by priority, as oslo.messaging's dispatcher does.
        assert got == [('error', 'm2'), ('info', 'm1')]

    def test_refused_group_requeued_bad_message_rejected(self):
        lis, got = self.listener([False, True])
        error = dict(INNER, priority='ERROR', message_id='m2')
        batch = [Message(envelope(INNER), 1), Message(b'{', 2),
                 Message(envelope(error), 3)]
        channel = Channel([1, 2, 3])
        lis._handle(channel, batch)
        assert channel.settled == {1: 'ack', 2: 'reject', 3: 'requeue'}
        totals = lis.counts.snapshot()[1]
        assert totals['undecodable'] == 1 and totals['requeued'] == 1

    def test_an_odd_message_id_is_no_reason_to_requeue_for_ever(self):
        lis, _ = self.listener([True])
        body = dict(BODY, metadata={'message_id': ['a'], 'timestamp': 't'})
        assert lis.process('info', [body]) is True

    def test_not_rabbitmq_is_a_config_error(self):
        self.conf.set_override('messaging_urls', ['kafka://127.0.0.1:9092'],
                               group='notification')
        self.assertRaises(ConfigError, direct.DirectNotificationListener,
                          self.conf, lambda s, e: (True, 0), lambda: None)


class TestOption(base.TestCase):

    def test_the_agent_picks_the_consumer_by_option(self):
        from telemetry_lib.agent import notifications
        notifications.register_opts(self.conf)
        self.conf.set_override('messaging_urls',
                               ['rabbit://guest:guest@127.0.0.1/'],
                               group='notification')
        for consumer, cls in (('oslo.messaging', 'NotificationListener'),
                              ('direct', 'DirectNotificationListener')):
            self.conf.set_override('consumer', consumer,
                                   group='notification')
            n = notifications.Notifications(self.conf, lambda: None)
            assert type(n.listener).__name__ == cls
        self.assertRaises(ValueError, self.conf.set_override, 'consumer',
                          'kombu', group='notification')
