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
