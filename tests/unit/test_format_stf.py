"""One test per Smart Gateway rule (shared/reference/wire-formats.md §1-2)."""

import datetime
import json
import re

from telemetry_lib import Event
from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import stf
from telemetry_lib import Sample
from tests import base

UTC = datetime.timezone.utc
NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
INNER_KEYS = ['message_id', 'publisher_id', 'event_type', 'priority',
              'payload', 'timestamp']


def sample(i=0, **kw):
    args = dict(name='disk.read.bytes', type='cumulative', unit='B',
                volume=100 + i, resource_id='vm-%d' % i,
                timestamp='2024-05-01T11:59:50Z', project_id='p',
                resource_metadata={'host': 'compute-0', 'display_name': 'vm'})
    args.update(kw)
    return Sample(**args)


def envelope(body):
    outer = json.loads(body)
    return outer, json.loads(outer['request']['oslo.message'])


class TestCeilometerEnvelope(base.TestCase):

    def test_envelope_and_key_order(self):
        enc = stf.encode_samples([sample()], 'telemetry.publisher.h',
                                 now=NOW)
        (chunk,) = enc.chunks
        outer, inner = envelope(chunk.body)
        assert list(outer) == ['request', 'context']
        assert outer['context'] == {}
        assert outer['request']['oslo.version'] == '2.0'
        assert isinstance(outer['request']['oslo.message'], str)
        assert list(inner) == INNER_KEYS
        assert inner['event_type'] == 'metering'
        assert inner['priority'] == 'SAMPLE'
        assert inner['publisher_id'] == 'telemetry.publisher.h'
        assert re.match(r'^[0-9a-f-]{36}$', inner['message_id'])
        assert chunk.indexes == [0]

    def test_timestamps(self):
        enc = stf.encode_samples([sample()], 'p', now=NOW)
        _, inner = envelope(enc.chunks[0].body)
        # The envelope: oslo's format, UTC, no zone.
        assert inner['timestamp'] == '2024-05-01 12:00:00.123456'
        # The sample: ISO 8601 with a zone, or the Smart Gateway drops it.
        assert inner['payload'][0]['timestamp'] == \
            '2024-05-01T11:59:50+00:00'

    def test_volume_is_a_json_number(self):
        enc = stf.encode_samples([sample(volume=12.5)], 'p', now=NOW)
        _, inner = envelope(enc.chunks[0].body)
        assert inner['payload'][0]['counter_volume'] == 12.5

    def test_payload_is_ceilometer_metering_messages_signed(self):
        enc = stf.encode_samples([sample(), sample(1)], 'p', secret='s',
                                 now=NOW)
        _, inner = envelope(enc.chunks[0].body)
        assert [m['counter_name'] for m in inner['payload']] == [
            'disk.read.bytes'] * 2
        for m in inner['payload']:
            assert ceilometer.verify_signature(m, 's')

    def test_split_keeps_every_message_under_the_limit(self):
        samples = [sample(i, resource_metadata={
            'host': 'compute-0', 'blob': 'x' * (i % 7 * 100)})
            for i in range(300)]
        enc = stf.encode_samples(samples, 'telemetry.publisher.h',
                                 max_bytes=4000, now=NOW)
        assert len(enc.chunks) > 10 and not enc.oversize
        seen = []
        for chunk in enc.chunks:
            assert len(chunk.body) <= 4000
            _, inner = envelope(chunk.body)
            assert [m['resource_id'] for m in inner['payload']] == [
                'vm-%d' % i for i in chunk.indexes]
            seen += chunk.indexes
        assert seen == list(range(300))

    def test_size_is_exact(self):
        # Packing is greedy: one more sample would not have fitted.
        samples = [sample(i) for i in range(50)]
        enc = stf.encode_samples(samples, 'p', max_bytes=3000, now=NOW)
        first, second = enc.chunks[0], enc.chunks[1]
        bigger = stf.encode_samples(samples[:len(first.indexes) + 1], 'p',
                                    max_bytes=10 ** 6, now=NOW)
        assert len(bigger.chunks[0].body) > 3000 >= len(first.body)
        assert second.indexes[0] == len(first.indexes)

    def test_packing_by_bisection_is_the_greedy_loop(self):
        # Without an oversize item the chunks' ends are found by
        # bisection; with one, item by item: the same chunks either way.
        import random
        rng = random.Random(3)
        for _ in range(50):
            items = [b'x' * rng.randrange(1, 900)
                     for _ in range(rng.randrange(1, 80))]
            fast, _ = stf._pack(items, 'metering', 'p', 3000, NOW)
            slow, oversize = stf._pack(items + [b'y' * 5000], 'metering',
                                       'p', 3000, NOW)
            assert oversize == [len(items)]
            assert [c.indexes for c in fast] == [c.indexes for c in slow]
            assert all(len(c.body) <= 3000 for c in fast)

    def test_non_ascii_counts_in_bytes(self):
        samples = [sample(i, resource_metadata={'name': 'ü' * 500})
                   for i in range(20)]
        enc = stf.encode_samples(samples, 'p', max_bytes=5000, now=NOW)
        assert all(len(c.body) <= 5000 for c in enc.chunks)
        assert sum(len(c.indexes) for c in enc.chunks) == 20

    def test_oversize_sample_is_reported_not_sent(self):
        enc = stf.encode_samples(
            [sample(0), sample(1, resource_metadata={'x': 'y' * 5000}),
             sample(2)], 'p', max_bytes=2000, now=NOW)
        assert enc.oversize == [1]
        assert [i for c in enc.chunks for i in c.indexes] == [0, 2]

    def test_quotes_and_trailing_backslashes_are_made_safe(self):
        s = sample(resource_id='vm"1', resource_metadata={
            'display_name': 'my "vm"', 'path': 'C:\\dir\\',
            'ok': 'a\\b', 'nested': {'k"': 'v'}})
        enc = stf.encode_samples([s, sample(1)], 'p', secret='k', now=NOW)
        body = enc.chunks[0].body
        _, inner = envelope(body)
        first = inner['payload'][0]
        assert first['resource_id'] == "vm'1"
        md = first['resource_metadata']
        assert md['display_name'] == "my 'vm'"
        assert md['path'] == 'C:\\dir'
        assert md['ok'] == 'a\\b'        # an inner backslash is harmless
        assert md['nested'] == {"k'": 'v'}
        assert ceilometer.verify_signature(first, 'k')
        assert enc.adjustments == {stf.QUOTE: 3, stf.BACKSLASH: 1}
        # The Smart Gateway's rule: no payload string holds an escaped quote.
        for m in inner['payload']:
            assert '\\"' not in json.dumps(m)

    def test_user_metadata_values_become_strings(self):
        s = sample(resource_metadata={'user_metadata': {
            'stack': 'web', 'count': 3, 'flag': True, 'none': None}})
        enc = stf.encode_samples([s], 'p', now=NOW)
        _, inner = envelope(enc.chunks[0].body)
        umd = inner['payload'][0]['resource_metadata']['user_metadata']
        assert umd == {'stack': 'web', 'count': '3', 'flag': 'true',
                       'none': 'null'}
        assert enc.adjustments == {stf.USER_METADATA: 3}

    def test_clean_samples_are_not_touched(self):
        enc = stf.encode_samples([sample(i) for i in range(10)], 'p',
                                 now=NOW)
        assert enc.adjustments == {}

    def test_address(self):
        assert stf.envelope_address('metering') == \
            'anycast/ceilometer/metering.sample'
        assert stf.envelope_address('cloud1-metering') == \
            'anycast/ceilometer/cloud1-metering.sample'


class TestEvents(base.TestCase):

    def test_float_traits_as_text_and_null_traits_omitted(self):
        e = Event(message_id='m', event_type='compute.instance.update',
                  generated='2024-05-01T12:00:00Z',
                  traits=[('ratio', 3, 0.25), ('gone', 1, None),
                          ('count', 2, 4), ('at', 4, '2024-05-01T11:00Z'),
                          ('name', 1, 'say "hi"')])
        enc = stf.encode_events([e], 'telemetry.publisher.h', secret='k',
                                now=NOW)
        _, inner = envelope(enc.chunks[0].body)
        assert inner['event_type'] == 'event'
        (msg,) = inner['payload']
        assert msg['traits'] == [['ratio', 1, '0.25'], ['count', 2, 4],
                                 ['at', 4, '2024-05-01T11:00:00+00:00'],
                                 ['name', 1, "say 'hi'"]]
        assert ceilometer.verify_signature(msg, 'k')
        assert enc.adjustments == {stf.FLOAT_TRAIT: 1, stf.NULL_TRAIT: 1,
                                   stf.QUOTE: 1}
        assert msg['generated'] == '2024-05-01T12:00:00+00:00'
