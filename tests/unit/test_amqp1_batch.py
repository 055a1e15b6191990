"""AMQP 1.0 message bytes and batch outcomes, without a peer."""

from proton import Message

from telemetry_lib.clients import amqp1_batch
from tests import base


class EncodeMessageTest(base.TestCase):

    def test_same_bytes_as_proton(self):
        addresses = [None, 'anycast/ceilometer/metering.sample', 'a' * 250,
                     'b' * 255, 'q/é' * 100]
        bodies = ['', 'x', 'é' * 127, 'y' * 255, 'z' * 256, '✓' * 6000,
                  b'', b'\x00\xff', b'w' * 255, b'v' * 70000]
        for address in addresses:
            prefix = amqp1_batch.message_prefix(address)
            for body in bodies:
                self.assertEqual(
                    bytes(Message(address=address, body=body).encode()),
                    amqp1_batch.encode_message(prefix, body),
                    (address, body[:10]))

    def test_decodes_as_sent(self):
        prefix = amqp1_batch.message_prefix('queue/x')
        msg = Message()
        msg.decode(amqp1_batch.encode_message(prefix, '{"a": "é"}'))
        self.assertEqual(('queue/x', '{"a": "é"}'), (msg.address, msg.body))


class BatchTest(base.TestCase):

    def test_first_outcome_wins_and_the_rest_fail_together(self):
        batch = amqp1_batch.Batch([('a', 'x'), ('a', 'y'), ('a', 'z')], 1.0)
        batch.settle(0, amqp1_batch.Outcome.ACCEPTED)
        batch.settle(0, amqp1_batch.Outcome.REJECTED)
        self.assertFalse(batch.done.is_set())
        batch.fail_rest(amqp1_batch.Outcome.TIMEOUT, 'no credit')
        self.assertTrue(batch.done.is_set())
        self.assertEqual([amqp1_batch.Outcome.ACCEPTED,
                          amqp1_batch.Outcome.TIMEOUT,
                          amqp1_batch.Outcome.TIMEOUT], batch.outcomes)
        self.assertEqual('no credit', batch.detail)


class IOLoopTest(base.TestCase):

    def test_descriptors_past_1024_and_a_refused_peer(self):
        # select() cannot wait on a descriptor numbered 1024 or more; an
        # agent with many connections has such numbers.
        import os
        import resource

        from telemetry_lib.clients import amqp1

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 1200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(2048, hard),
                                                        hard))
            self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE,
                            (soft, hard))
        held = []
        null = os.open(os.devnull, os.O_RDONLY)
        held.append(null)
        while held[-1] < 1100:
            held.append(os.dup(null))
        self.addCleanup(lambda: [os.close(fd) for fd in held])
        sender = amqp1.AMQP1Sender([('127.0.0.1', base.free_port())],
                                   reconnect_min=0.05, name='test')
        sender.start()
        self.addCleanup(sender.close, 2)
        batch = sender.send([('q', 'x')], 2.0)
        assert sender._thread.is_alive()
        assert batch.outcomes == [amqp1_batch.Outcome.DISCONNECTED] or (
            batch.outcomes == [amqp1_batch.Outcome.TIMEOUT]), batch.outcomes
        assert 'refused' in batch.detail or 'refused' in (
            sender.last_error), (batch.detail, sender.last_error)
