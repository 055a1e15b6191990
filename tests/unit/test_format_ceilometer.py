import hashlib
import hmac
import json

from telemetry_lib import Event
from telemetry_lib.formats import ceilometer
from telemetry_lib import InvalidSample
from telemetry_lib import Sample
from tests import base

SAMPLE_KEYS = ['source', 'counter_name', 'counter_type', 'counter_unit',
               'counter_volume', 'user_id', 'user_name', 'project_id',
               'project_name', 'resource_id', 'timestamp',
               'resource_metadata', 'message_id', 'monotonic_time',
               'message_signature']


def reference_signature(message, secret):
    """Ceilometer's algorithm, written from its definition: sorted pairs,
    nested mappings flattened as ``a:b``, lists as str() of their
    bytes-for-strings form, one HMAC update per name and per value.
    """

    def list_form(v):
        if isinstance(v, dict):
            return {list_form(k): list_form(x) for k, x in sorted(v.items())}
        if isinstance(v, (list, tuple)):
            return [list_form(x) for x in v]
        if isinstance(v, str):
            return v.encode('utf-8')
        return v

    def pairs(d):
        for name, value in sorted(d.items()):
            if isinstance(value, dict):
                for sub, subvalue in pairs(value):
                    yield '%s:%s' % (name, sub), subvalue
            elif isinstance(value, (list, tuple)):
                yield name, list_form(value)
            else:
                yield name, value

    mac = hmac.new(secret.encode(), b'', hashlib.sha256)
    for name, value in pairs(message):
        if name == 'message_signature':
            continue
        mac.update(str(name).encode('utf-8'))
        mac.update(str(value).encode('utf-8'))
    return mac.hexdigest()


def sample(**kw):
    args = dict(name='disk.read.bytes', type='cumulative', unit='B',
                volume=1234, user_id='u1', project_id='p1',
                resource_id='inst-1', timestamp='2024-05-01T12:00:00.5Z',
                resource_metadata={'host': 'compute-0', 'flavor': {
                    'vcpus': 2, 'name': 'm1.small'},
                    'tags': ['a', 'b'], 'ratio': 0.5, 'none': None,
                    'nested': [{'z': 1, 'a': 'x'}]},
                user_name='alice', project_name='demo')
    args.update(kw)
    return Sample(**args)


class TestSampleWire(base.TestCase):

    def test_key_order_and_values(self):
        msg = ceilometer.sample_to_wire(sample())
        assert list(msg) == SAMPLE_KEYS
        assert msg['counter_volume'] == 1234
        assert msg['timestamp'] == '2024-05-01T12:00:00.500000+00:00'
        assert msg['message_signature'] == ''

    def test_publisher_id_is_included_when_given(self):
        msg = ceilometer.sample_to_wire(sample(), publisher_id='p')
        assert msg['publisher_id'] == 'p'

    def test_round_trip(self):
        s = sample()
        back = ceilometer.sample_from_wire(
            json.loads(json.dumps(ceilometer.sample_to_wire(s))))
        assert back == s

    def test_numeric_string_volume_is_converted(self):
        msg = ceilometer.sample_to_wire(sample())
        msg['counter_volume'] = '12.5'
        assert ceilometer.sample_from_wire(msg).volume == 12.5
        msg['counter_volume'] = 'twelve'
        with self.assertRaises(InvalidSample) as ctx:
            ceilometer.sample_from_wire(msg)
        assert 'counter_volume' in str(ctx.exception)

    def test_missing_keys_are_named(self):
        with self.assertRaises(InvalidSample) as ctx:
            ceilometer.sample_from_wire({'counter_name': 'x'})
        assert 'counter_type' in str(ctx.exception)
        with self.assertRaises(InvalidSample):
            ceilometer.sample_from_wire(['not', 'a', 'dict'])

    def test_plain_dict(self):
        s = ceilometer.from_plain_dict({'name': 'cpu', 'type': 'gauge',
                                        'unit': '%', 'volume': 3,
                                        'resource_id': 'r'})
        assert s.volume == 3
        with self.assertRaises(InvalidSample) as ctx:
            ceilometer.from_plain_dict({'name': 'cpu', 'colour': 'red'})
        assert 'colour' in str(ctx.exception)


class TestSignature(base.TestCase):

    def test_literal_vector(self):
        # The definition applied by hand: pairs sorted, nested flattened.
        message = {'b': {'y': 2, 'x': 'one'}, 'a': 1.5,
                   'message_signature': 'ignored'}
        expected = hmac.new(b'secret', b'a1.5b:xoneb:y2',
                            hashlib.sha256).hexdigest()
        assert ceilometer.compute_signature(message, 'secret') == expected

    def test_list_values_follow_ceilometer(self):
        message = {'l': ['x', {'k': 'v'}]}
        expected = hmac.new(b's', b"l[b'x', {b'k': b'v'}]",
                            hashlib.sha256).hexdigest()
        assert ceilometer.compute_signature(message, 's') == expected

    def test_sample_signature_matches_reference(self):
        for kw in ({}, {'resource_metadata': {}}, {'volume': 0.1},
                   {'user_name': None, 'monotonic_time': 12.25},
                   {'resource_metadata': {'ü': 'ñ', 'deep': {'a': {'b': [
                       1, 'two']}}}}):
            for pub in (None, 'telemetry.publisher.h'):
                msg = ceilometer.sample_to_wire(sample(**kw), 'k3y', pub)
                assert msg['message_signature'] == reference_signature(
                    msg, 'k3y'), kw

    def test_a_batch_sharing_metadata_signs_each_sample_exactly(self):
        # Samples of one resource share their metadata's values (the
        # signature text of the metadata is flattened once per batch):
        # every one must still sign as the reference does, including
        # copies whose values differ, and values equal but not the same.
        flavor = {'id': '2', 'name': 'm1', 'vcpus': 1}
        md = {'display_name': 'vm', 'flavor': flavor, 'nan': float('nan'),
              'none': None, 'n': 1}
        batch = [sample(resource_metadata=md, volume=i) for i in range(5)]
        batch.append(sample(resource_metadata=dict(md, n=2)))
        batch.append(sample(resource_metadata=dict(md, n=1.0)))
        batch.append(sample(resource_metadata=dict(md, nan=None)))
        batch.append(sample(resource_metadata=dict(md, flavor=dict(
            flavor, vcpus=2))))
        for msg in ceilometer.samples_to_wire(batch, 'k3y', 'p'):
            assert msg['message_signature'] == reference_signature(
                msg, 'k3y'), msg['resource_metadata']
        assert len({m['message_signature'] for m in
                    ceilometer.samples_to_wire(batch[5:9], 'k3y')}) == 4

    def test_verifies_after_json_round_trip(self):
        msgs = ceilometer.samples_to_wire([sample(), sample(volume=2.5)],
                                          'k3y')
        for received in json.loads(json.dumps(msgs)):
            assert ceilometer.verify_signature(received, 'k3y')
            assert reference_signature(received, 'k3y') == \
                received['message_signature']
            received['counter_volume'] += 1
            assert not ceilometer.verify_signature(received, 'k3y')

    def test_no_secret(self):
        msg = ceilometer.sample_to_wire(sample(), '')
        assert msg['message_signature'] == ''
        assert ceilometer.verify_signature(msg, None)
        assert ceilometer.compute_signature(msg, None) == ''

    def test_wrong_secret_fails(self):
        msg = ceilometer.sample_to_wire(sample(), 'right')
        assert not ceilometer.verify_signature(msg, 'wrong')


class TestEventWire(base.TestCase):

    def test_event_round_trip_and_signature(self):
        e = Event(message_id='m1', event_type='compute.instance.exists',
                  generated='2024-05-01T12:00:00Z',
                  traits=[('id', 1, 'abc'), ('size', 2, 3),
                          ('ratio', 3, 0.5),
                          ('at', 4, '2024-05-01T11:00:00Z')],
                  raw={'payload': {'a': 1}})
        msg = ceilometer.event_to_wire(e, 'k')
        assert list(msg) == ['message_id', 'event_type', 'generated',
                             'traits', 'raw', 'message_signature']
        assert msg['traits'][3] == ['at', 4, '2024-05-01T11:00:00+00:00']
        received = json.loads(json.dumps(msg))
        assert ceilometer.verify_signature(received, 'k')
        assert reference_signature(received, 'k') == \
            msg['message_signature']
        assert ceilometer.event_from_wire(received) == e

    def test_bad_event(self):
        with self.assertRaises(InvalidSample):
            ceilometer.event_from_wire({'traits': []})
        with self.assertRaises(InvalidSample):
            ceilometer.event_from_wire({'event_type': 'x', 'traits': 5})


def test_the_batch_hmac_is_rfc_2104():
    import hashlib
    import hmac
    from telemetry_lib.formats import ceilometer as wire
    for key in (b'k', b'x' * 63, b'y' * 64, b'z' * 65, b'w' * 200,
                'sécret'.encode()):
        for data in (b'', b'a', b'text' * 500):
            assert wire._Hmac(key).hexdigest(data[:7], data[7:]) == hmac.new(
                key, data, hashlib.sha256).hexdigest()
