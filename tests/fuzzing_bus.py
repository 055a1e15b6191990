"""The seeded fuzzer of the direct notification consumer's input: AMQP
messages as RabbitMQ hands them over (body bytes, headers, delivery tag),
made from Ceilometer's notification fixtures in every encoding the bus
carries -- the oslo 2.0 envelope, a bare 1.0 dict, kombu's compressions --
and mutated: truncated or random bytes, unknown compressions and envelope
versions, a JSON value that is no message, odd priorities, mutated
notifications. Judged as in :mod:`tests.fuzzing`; beside that, every
message of a batch is settled exactly once (acknowledged, rejected or
requeued) and counted.
"""

import bz2
import copy
import json
import random
import zlib

from telemetry_lib.exceptions import InvalidSample
from tests.fuzzing import _check
from tests.fuzzing import _mutate
from tests.fuzzing import Report
from tests.fuzzing_surfaces import _find_config_file
from tests.fuzzing_surfaces import NOTIFICATIONS


class Message:
    """What py-amqp hands a consumer's callback, as far as it is read."""

    def __init__(self, body, tag, headers=None):
        self.body = body
        self.delivery_tag = tag
        self.headers = headers


class Channel:
    """Records how each delivery tag was settled."""

    def __init__(self, tags):
        self.tags = set(tags)
        self.settled = {}

    def _settle(self, tag, how):
        if tag in self.settled:
            raise AssertionError('tag %d settled twice (%s, then %s)'
                                 % (tag, self.settled[tag], how))
        self.settled[tag] = how

    def basic_ack(self, tag, multiple=False):
        for t in sorted(self.tags) if multiple else [tag]:
            if t <= tag and t not in self.settled:
                self._settle(t, 'ack')
        if not multiple:
            self.settled.setdefault(tag, 'ack')

    def basic_reject(self, tag, requeue):
        self._settle(tag, 'requeue' if requeue else 'reject')


def _inner(body, rng):
    message = {'message_id': body.get('metadata', {}).get('message_id'),
               'publisher_id': body.get('publisher_id'),
               'event_type': body.get('event_type'),
               'priority': rng.choice(['INFO', 'info', 'ERROR', 'SAMPLE',
                                       'WARN', 'nonsense', '', 7, None]),
               'payload': body.get('payload'),
               'timestamp': body.get('metadata', {}).get('timestamp'),
               '_unique_id': 'u%d' % rng.randrange(10 ** 6)}
    for key, value in (body.get('ctxt') or {}).items():
        message['_context_' + key] = value
    if rng.random() < 0.3:
        message = _mutate(message, rng)
    return message


def _encode(message, rng):
    """``(body bytes, headers)`` of one message, in one of the bus's
    encodings, sometimes damaged.
    """
    text = json.dumps(message, default=str)
    choice = rng.random()
    headers = None
    if choice < 0.45:
        raw = json.dumps({'oslo.version': rng.choice(['2.0', '2.0', '2.1',
                                                      '1.0', 3, None]),
                          'oslo.message': text}).encode()
    elif choice < 0.6:
        raw = text.encode()
    elif choice < 0.7:
        raw = zlib.compress(text.encode())
        headers = {'compression': 'application/x-gzip'}
    elif choice < 0.75:
        raw = bz2.compress(text.encode())
        headers = {'compression': rng.choice(['application/x-bz2',
                                              'application/x-lzma'])}
    elif choice < 0.85:
        raw = text.encode()[:rng.randrange(1, max(2, len(text)))]
    elif choice < 0.9:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    else:
        raw = json.dumps(rng.choice([[1, 2], 'text', 42, None,
                                     {'oslo.version': '2.0',
                                      'oslo.message': '[1]'},
                                     {'oslo.version': '2.0',
                                      'oslo.message': 7}])).encode()
    return raw, headers


def run_direct_messages(conf, count, seed=0):
    """Batches of 1 to 8 such messages through the direct consumer's
    handling of a batch (decoding, the converter, ``deliver``,
    acknowledgements), the publishers sometimes refusing.
    """
    from telemetry_lib.notification import converter as conv_mod
    from telemetry_lib.notification import direct
    rng = random.Random(seed)
    report = Report()
    with open(NOTIFICATIONS, encoding='utf-8') as f:
        seeds = json.load(f)
    conv = conv_mod.Converter.from_conf(conf, _find_config_file)
    conf.set_override('messaging_urls', ['rabbit://guest:guest@127.0.0.1/'],
                      group='notification')
    conf.set_override('requeue_delay', 0, group='notification')
    refuse = []

    def deliver(samples, events):
        return (False, 0) if refuse.pop() else (True, 0)
    lis = direct.DirectNotificationListener(conf, deliver, lambda: conv)
    tag = 0
    for _ in range(count):
        batch = []
        for _ in range(rng.randrange(1, 9)):
            tag += 1
            raw, headers = _encode(_inner(copy.deepcopy(rng.choice(seeds)),
                                          rng), rng)
            batch.append(Message(raw, tag, headers))
        refuse[:] = [rng.random() < 0.2 for _ in range(8)]
        channel = Channel(m.delivery_tag for m in batch)

        def handle(batch=batch, channel=channel):
            before = lis.counts.snapshot()[1]
            lis._handle(channel, batch)
            unsettled = channel.tags - set(channel.settled)
            if unsettled:
                raise AssertionError('never settled: %s' % unsettled)
            after = lis.counts.snapshot()[1]
            if any(after.get(k, 0) > before.get(k, 0)
                   for k in ('undecodable', 'poisoned', 'requeued')):
                raise InvalidSample('refused, poisoned or requeued')
        _check(report, [m.body[:200] for m in batch], handle)
    return report
