import datetime

from telemetry_lib import Event
from telemetry_lib import InvalidSample
from telemetry_lib import Sample
from telemetry_lib import Trait
from telemetry_lib import TraitType
from tests import base

UTC = datetime.timezone.utc


def make(**kw):
    args = dict(name='cpu', type='cumulative', unit='ns', volume=1,
                resource_id='r1')
    args.update(kw)
    return Sample(**args)


class TestSample(base.TestCase):

    def test_fields_and_defaults(self):
        s = make(user_id='u', project_id='p')
        assert s.name == 'cpu' and s.type == 'cumulative'
        assert s.source == 'openstack'
        assert s.resource_metadata == {}
        assert s.timestamp.tzinfo is UTC
        assert len(s.id) == 36 and s.id[14] == '4'

    def test_ceilometer_positional_order(self):
        s = Sample('cpu', 'gauge', '%', 5.5, 'user', 'project', 'res')
        assert (s.user_id, s.project_id, s.resource_id) == (
            'user', 'project', 'res')

    def test_immutable(self):
        s = make()
        with self.assertRaises(AttributeError):
            s.volume = 2

    def test_metadata_is_copied(self):
        md = {'a': 1}
        s = make(resource_metadata=md)
        md['a'] = 2
        assert s.resource_metadata == {'a': 1}

    def test_ids_are_unique(self):
        assert len({make().id for _ in range(1000)}) == 1000

    def test_timestamp_forms(self):
        expected = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        for ts in ('2024-05-01T12:00:00Z', '2024-05-01T12:00:00',
                   '2024-05-01T14:00:00+02:00', 1714564800,
                   ' 2024-05-01T12:00:00z ', '2024-05-01 12:00:00+00:00',
                   datetime.datetime(2024, 5, 1, 12, 0)):
            assert make(timestamp=ts).timestamp == expected, ts

    def test_bad_values_are_clear_errors(self):
        cases = [
            (dict(type='counter'), 'type must be one of'),
            # An unhashable type from a wire: refused, not a TypeError.
            (dict(type=['gauge']), 'type must be one of'),
            (dict(volume='12'), 'volume must be a number'),
            (dict(volume=None), 'volume must be a number'),
            (dict(volume=True), 'volume must be a number'),
            (dict(volume=float('nan')), 'volume must be finite'),
            (dict(volume=float('inf')), 'volume must be finite'),
            (dict(name=''), 'name must be a non-empty string'),
            (dict(resource_id=None), 'resource_id must be a non-empty'),
            (dict(resource_metadata=['x']), 'resource_metadata must be a '
                                            'mapping'),
            (dict(timestamp='yesterday'), 'not an ISO 8601'),
            (dict(user_id=5), 'user_id must be a string'),
            # Issue 20: accepted before.
            (dict(monotonic_time=True), 'monotonic_time must be a finite'),
            (dict(monotonic_time=False), 'monotonic_time must be a finite'),
            (dict(monotonic_time=float('nan')), 'monotonic_time must be'),
            (dict(volume=' 2 '), 'volume must be a number'),
            (dict(volume='1_000'), 'volume must be a number'),
            (dict(resource_id=''), 'resource_id must be a non-empty'),
            (dict(id=7), 'id must be a string'),
            (dict(source=''), 'source must be a non-empty string'),
            (dict(unit=None), 'unit must be a string'),
            (dict(project_name=b'p'), 'project_name must be a string'),
            (dict(resource_metadata={1: 'x'}), 'resource_metadata cannot '
                                               'be sent'),
        ]
        for kw, message in cases:
            with self.assertRaises(InvalidSample) as ctx:
                make(**kw)
            assert message in str(ctx.exception), (kw, ctx.exception)

    def test_str_subclasses_are_strings(self):
        # The fast check knows only str itself; a subclass takes the slow
        # path and is accepted there.
        class Name(str):
            pass
        s = make(name=Name('cpu'), resource_id=Name('r'), user_id=Name('u'),
                 id=Name('i'))
        assert (s.name, s.resource_id, s.user_id, s.id) == ('cpu', 'r', 'u',
                                                            'i')

    def test_replace_validates(self):
        s = make()
        assert s.replace(volume=3).volume == 3
        with self.assertRaises(InvalidSample):
            s.replace(volume='x')

    def test_numeric_types_are_normalised(self):
        import decimal
        import fractions
        assert make(volume=decimal.Decimal('1.5')).volume == 1.5
        assert make(volume=fractions.Fraction(1, 4)).volume == 0.25


class TestEvent(base.TestCase):

    def test_trait_conversion(self):
        assert Trait('n', TraitType.INT, '5').value == 5
        assert Trait('n', TraitType.FLOAT, '2.5').value == 2.5
        assert Trait('n', TraitType.TEXT, 7).value == '7'
        assert Trait('n', TraitType.DATETIME, '2024-05-01T12:00:00'
                     ).value.tzinfo is UTC
        assert Trait('n', TraitType.TEXT, None).value is None
        assert Trait('n', None, 'x').dtype == 0

    def test_bad_traits(self):
        for dtype, value in ((TraitType.INT, 'five'), (TraitType.INT, True),
                             (TraitType.FLOAT, 'x'), (9, 1),
                             (TraitType.DATETIME, 'soon')):
            with self.assertRaises(InvalidSample):
                Trait('n', dtype, value)

    def test_event(self):
        e = Event(event_type='compute.instance.create.end',
                  traits=[('instance_id', 1, 'abc'), Trait('n', 2, 3)])
        assert e.trait('instance_id') == 'abc'
        assert e.trait('missing', 'd') == 'd'
        assert e.generated.tzinfo is UTC
        with self.assertRaises(InvalidSample):
            Event(event_type='')
        with self.assertRaises(InvalidSample):
            Event(event_type='x', traits=['not-a-triple'])
