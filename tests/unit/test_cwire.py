"""The compiled metering-message encoder against the pure-Python path.

``formats._cwire`` must give byte for byte what ``samples_to_wire`` and
orjson give (and the same exceptions): every case here runs both.
"""

import collections
import datetime
import random

import orjson

from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import msgpack_wire
from telemetry_lib import Sample
from tests import base

UTC = datetime.timezone.utc
SECRET = 'change this for valid signing'
# Every ASCII character, the ones JSON escapes included, and UTF-8 of two,
# three and four bytes.
# STF's: metadata whose user_metadata holds a value that is not a string.
FLAG = ('user_metadata', None)
#: The same test as a Python callable: the general form of ``flag``.
FLAG_CALL = ('user_metadata', lambda md: any(
    type(v) is not str for v in md['user_metadata'].values()))
ALPHABET = [chr(c) for c in range(128)] + ['é', '\u2028', '✓', '😀']


def text(rng, n=12):
    return ''.join(rng.choice(ALPHABET) for _ in range(rng.randrange(n)))


def value(rng, depth=0):
    kind = rng.randrange(9 if depth < 2 else 6)
    return [lambda: text(rng), lambda: rng.randrange(-2 ** 63, 2 ** 63),
            lambda: rng.random() * 10 ** rng.randrange(-5, 25),
            lambda: None, lambda: rng.choice([True, False]),
            lambda: 2 ** 64 - 1,
            lambda: {text(rng, 6): value(rng, depth + 1)
                     for _ in range(rng.randrange(4))},
            lambda: [value(rng, depth + 1) for _ in range(rng.randrange(4))],
            lambda: tuple(text(rng) for _ in range(2))][kind]()


def samples(rng, n, per_resource):
    stamps = [datetime.datetime(2024, 5, 1, 12, 0, s, s * 1000, tzinfo=UTC)
              for s in range(3)]
    out, md = [], None
    for i in range(n):
        if i % per_resource == 0:
            md = {text(rng, 8): value(rng) for _ in range(rng.randrange(6))}
            md['user_metadata'] = {'stack': text(rng), 'n': value(rng)}
        out.append(Sample(
            text(rng) or 'm', rng.choice(['gauge', 'delta', 'cumulative']),
            text(rng), rng.choice([rng.randrange(-10 ** 18, 10 ** 18),
                                   rng.random() * 1e6, 0, 2 ** 64 - 1]),
            user_id=rng.choice([None, text(rng)]),
            project_id=rng.choice([None, text(rng)]),
            resource_id=text(rng) or 'r', timestamp=rng.choice(stamps),
            resource_metadata=md, source=text(rng) or 'openstack',
            monotonic_time=rng.choice([None, rng.random()]),
            user_name=rng.choice([None, text(rng)]),
            project_name=rng.choice([None, text(rng)])))
    return out


def outcome(func, *args):
    try:
        return func(*args)
    except Exception as exc:
        return type(exc), str(exc)


class CompiledEncoderTest(base.TestCase):

    def setUp(self):
        super().setUp()
        # The build makes it wherever a C compiler is (CI has one); a
        # missing module would make every case below compare the Python
        # path with itself.
        self.assertIsNotNone(ceilometer._cwire,
                             'telemetry_lib.formats._cwire was not built')

    def assert_same(self, batch, secret, publisher_id=None, embedded=False,
                    flag=None):
        args = (batch, secret, publisher_id, embedded, flag)
        compiled = outcome(ceilometer.encode_json, *args)
        python = outcome(ceilometer._py_encode_json, *args)
        self.assertEqual(python, compiled)
        return compiled

    def test_random_samples_byte_for_byte(self):
        rng = random.Random(15)
        for per_resource in (1, 7, 30):
            batch = samples(rng, 300, per_resource)
            for secret in (SECRET, None):
                for publisher_id in (None, 'telemetry.publisher.x"y'):
                    for embedded in (False, True):
                        items, _ = self.assert_same(
                            batch, secret, publisher_id, embedded, FLAG)
                        self.assertEqual(300, len(items))

    def test_messages_are_the_dicts_json_and_verify(self):
        batch = samples(random.Random(2), 50, 5)
        items, _ = ceilometer.encode_json(batch, SECRET)
        dicts = ceilometer.samples_to_wire(batch, SECRET)
        self.assertEqual([orjson.dumps(d) for d in dicts], items)
        for item in items:
            self.assertTrue(ceilometer.verify_signature(orjson.loads(item),
                                                        SECRET))

    def test_embedded_is_the_json_as_a_string(self):
        batch = samples(random.Random(3), 50, 5)
        plain, _ = ceilometer.encode_json(batch, SECRET)
        embedded, _ = ceilometer.encode_json(batch, SECRET, embedded=True)
        self.assertEqual([orjson.dumps(p.decode())[1:-1] for p in plain],
                         embedded)

    def test_flagged_quotes_and_metadata(self):
        clean = Sample('cpu', 'gauge', 'ns', 1, resource_id='r',
                       resource_metadata={'a': 'b'})
        quoted = clean._replace(resource_id='r"1')
        backslash = clean._replace(
            resource_metadata={'path': 'C:\\'})
        flagged_md = clean._replace(
            resource_metadata={'user_metadata': {'n': 1}})
        batch = [clean, quoted, clean, backslash, flagged_md]
        for flag in (FLAG, FLAG_CALL):
            _, flagged = self.assert_same(batch, SECRET, None, True, flag)
            self.assertEqual([1, 3, 4], flagged)
        _, flagged = self.assert_same(batch, None)
        self.assertEqual([1, 3], flagged)

    def test_shared_metadata_is_not_confused(self):
        # Copies of one mapping share value objects; a changed value or
        # key order is a different metadata block.
        nested = {'vcpus': 1}
        base_md = {'host': 'a', 'flavor': nested}
        batch = [Sample('m', 'gauge', 'B', i, resource_id='r',
                        resource_metadata=md) for i, md in enumerate([
                            base_md, dict(base_md), {'host': 'b',
                                                     'flavor': nested},
                            {'flavor': nested, 'host': 'a'}, dict(base_md)])]
        items, _ = self.assert_same(batch, SECRET)
        self.assertIn(b'"host":"b"', items[2])

    def test_dicts_of_one_shape_sort_alike_and_ints_print_as_str(self):
        # The compiled path remembers the sorted keys of each shape (keys
        # in insertion order) and prints ints itself: the same shapes in
        # other orders, other shapes, and the ints str() prints specially
        # (bool, the 64-bit edges) give the Python path's bytes.
        rng = random.Random(21)
        keys = ['k%02d' % i for i in range(12)]
        mds = []
        for i in range(300):
            shape = keys[:rng.randrange(1, 13)]
            if rng.random() < 0.5:
                shape = rng.sample(shape, len(shape))
            mds.append({k: rng.choice([
                i, -i, 0, True, False, 2 ** 63 - 1, -2 ** 63, 2 ** 64 - 1,
                -(2 ** 63) + 1, "v", {"z": i, "a": -1}]) for k in shape})
        batch = [Sample('m', 'gauge', 'B', i, resource_id='r',
                        resource_metadata=md) for i, md in enumerate(mds)]
        self.assert_same(batch, SECRET)

    def test_errors_are_the_python_paths(self):
        ok = Sample('m', 'gauge', 'B', 1, resource_id='r')
        for bad in (ok._replace(resource_id='\ud800'),
                    ok._replace(resource_metadata={1: 'int key'}),
                    ok._replace(resource_metadata={'x': object()}),
                    ok._replace(volume=2 ** 64)):
            for secret in (SECRET, None):
                for embedded in (False, True):
                    got = self.assert_same([ok, bad], secret, None,
                                           embedded)
                    self.assertIsInstance(got[0], type, got)

    def test_odd_metadata_takes_the_same_path_to_the_same_bytes(self):
        class Text(str):
            pass

        class Items(list):
            pass

        deep = {'leaf': 1}
        for _ in range(40):
            deep = {'d': deep}
        odd = [collections.OrderedDict([('b', 1), ('a', {'x': None})]),
               {'s': Text('sub"class'), 'l': Items([1, 'x']),
                't': ('a', b'b'.decode()), 'f': 0.1, 'b': False},
               deep, {}, {'k': [{'z': 1, 'a': [True, None]}]}]
        batch = [Sample('m', 'gauge', 'B', 1, resource_id='r',
                        resource_metadata=md) for md in odd]
        for secret in (SECRET, None):
            self.assert_same(batch, secret, None, True)


class TestCompiledMsgpack(base.TestCase):
    """The tcp:// and udp:// bodies: the compiled path's bytes are
    msgpack's over samples_to_wire (and, for sg-core, the stringified
    user_metadata), whatever the values.
    """

    def setUp(self):
        super().setUp()
        self.assertIsNotNone(msgpack_wire._cwire,
                             'telemetry_lib.formats._cwire was not built')

    def python(self, batch, secret, publisher_id, sg_compat, framed=False):
        import collections

        import msgpack
        counts = collections.Counter()
        return (msgpack_wire._py_bodies(
            batch, secret, publisher_id,
            msgpack.Packer(use_bin_type=True), sg_compat, counts,
            framed), counts)

    def test_random_samples_byte_for_byte(self):
        rng = random.Random(16)
        for per_resource in (1, 7, 30):
            batch = samples(rng, 300, per_resource)
            for secret in (SECRET, None):
                for publisher_id in (None, 'host-1', 'h' * 300):
                    for sg_compat in (False, True):
                        args = (batch, secret, publisher_id, sg_compat)
                        self.assertEqual(self.python(*args),
                                         msgpack_wire.encode(*args))
        for framed in (False, True):
            self.assertEqual(
                self.python(batch, SECRET, 'h', True, framed),
                msgpack_wire.encode(batch, SECRET, 'h', True, None, framed))
        # The ints' every width and sign, the str headers' every size.
        edges = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1,
                 2 ** 32, 2 ** 63 - 1, -1, -32, -33, -128, -129, -32768,
                 -32769, -2 ** 31, -2 ** 31 - 1, -2 ** 63, 2 ** 64 - 1]
        batch = [Sample('m', 'gauge', 'x' * n, v, resource_id='r' * (n + 1),
                        resource_metadata={'n': v})
                 for v, n in zip(edges, (0, 31, 32, 255, 256, 65535,
                                         65536, 1, 2, 3) * 3)]
        # One timestamp made twice: equal, the same tzinfo -- formatted
        # once; another tzinfo object or another time is formatted again.
        import datetime
        t = datetime.datetime(2026, 1, 2, 3, 4, 5, 6,
                              tzinfo=datetime.timezone.utc)
        stamps = [t, t.replace(), t + datetime.timedelta(microseconds=1),
                  t.replace(tzinfo=datetime.timezone(datetime.timedelta(0)))]
        batch += [Sample('m', 'gauge', 'B', 1, resource_id='r',
                         timestamp=ts) for ts in stamps]
        for secret in (SECRET, None):
            self.assertEqual(self.python(batch, secret, 'h', True),
                             msgpack_wire.encode(batch, secret, 'h', True))
            self.assertEqual(
                ceilometer._py_encode_json(batch, secret, 'h'),
                ceilometer.encode_json(batch, secret, 'h'))

    def test_the_python_path_when_the_compiled_one_fails(self):
        batch = samples(random.Random(17), 20, 3)
        want = self.python(batch, SECRET, 'h', True)
        real = msgpack_wire._cwire

        class Broken:
            @staticmethod
            def encode_msgpack(*args):
                raise RuntimeError('a bug')
        msgpack_wire._cwire = Broken
        try:
            before = ceilometer.compiled_fallbacks()
            assert msgpack_wire.encode(batch, SECRET, 'h', True) == want
            assert ceilometer.compiled_fallbacks() == before + 1
        finally:
            msgpack_wire._cwire = real
