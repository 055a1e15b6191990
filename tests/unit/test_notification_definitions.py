"""Meter and event definitions: Ceilometer's files, feature by feature."""

import datetime
import json
import os

import yaml

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.notification import converter
from telemetry_lib.notification import fields
from tests import base

UTC = datetime.timezone.utc
CEILO = os.path.join(base.DATA_DIR, 'ceilometer')
FIXTURES = os.path.join(os.path.dirname(base.DATA_DIR), '..', 'fixtures',
                        'notifications', 'openstack.json')


def notifications():
    with open(FIXTURES) as f:
        return {b['event_type']: b for b in json.load(f)}


def note(event_type, payload, ctxt=None, publisher='svc.host', mid='m-1',
         ts='2026-11-30 10:00:00.5'):
    return {'event_type': event_type, 'publisher_id': publisher,
            'payload': payload, 'ctxt': ctxt or {},
            'metadata': {'message_id': mid, 'timestamp': ts}}


class DefinitionsTest(base.TestCase):

    def converter(self, meters=None, events=None, **opts):
        """A converter of ``meters`` (a list of definitions, or a dir) and
        ``events`` (a list of definitions, or a path).
        """
        meters_dir = meters if isinstance(meters, str) else None
        if meters_dir is None:
            meters_dir = os.path.join(self.tmpdir, 'meters.d')
            os.makedirs(meters_dir, exist_ok=True)
            self.write_file('meters.d/m.yaml', yaml.safe_dump(
                {'metric': meters or []}))
        if events is None:
            events = []
        if not isinstance(events, str):
            events = self.write_file('events.yaml', yaml.safe_dump(events))
        self.conf.set_override('meter_definitions_dirs', [meters_dir],
                               group='notification')
        self.conf.set_override('event_definitions_file', events,
                               group='notification')
        for k, v in opts.items():
            self.conf.set_override(k, v, group='notification')
        return converter.Converter.from_conf(self.conf)

    def ceilometer(self):
        return self.converter(os.path.join(CEILO, 'meters.d'), os.path.join(
            CEILO, 'event_definitions.yaml'))


class TestFields(base.TestCase):
    """Compiled paths against jsonpath-rw-ext's own evaluation."""

    SPECS = [
        'payload.a', '$.payload.a.b', 'payload.*', 'payload.list[*].x',
        'payload.list[1]', 'payload.list[5]', 'payload.s[0]',
        'payload.list[?(@.x > 1)].x', "payload.list[?(@.n = 'b')].x",
        'payload.list[?n=a].x', 'payload.a.b * 100', '$.payload.n + 1',
        '$.payload.s + "_" + $.payload.t', 'payload.s.`split(-, 1, -1)`',
        'payload.s.`sub(/-.*/, )`', '(payload.none)|(payload.a.b)',
        'payload.list.[*].x', 'payload.d[*]', 'payload.a.b[*]',
        'payload.list[0:2].n', "payload.'dotted.key'", 'payload.list[*]',
        'missing.x', '$', 'payload.nested.*.v',
    ]
    BODIES = [
        {'payload': {'a': {'b': 3}, 'list': [{'x': 1, 'n': 'a'},
                                             {'x': 2, 'n': 'b'},
                                             {'x': '3', 'n': 'c'}],
                     's': 'ab-cd-ef', 't': 'z', 'n': 4, 'd': {'k': 1},
                     'dotted.key': 'dk', 'none': None,
                     'nested': {'p': {'v': 1}, 'q': {'v': None}}}},
        {'payload': {'a': None, 'list': 'text', 's': 5, 'n': 'x'}},
        {'payload': {'a': [1, 2], 'list': [], 'd': 'str'}},
        {'payload': None}, {},
    ]

    def test_compiled_paths_match_the_library(self):
        compiler = fields.Compiler()
        for spec in self.SPECS + self._specs_of_ceilometer_files():
            tree = compiler._parser_tree(spec)
            generic = fields._generic(tree)
            mine = compiler.getter(spec)
            for body in self.BODIES + list(notifications().values()):
                try:
                    expected = generic(body)
                except (TypeError, KeyError, AttributeError):
                    # Where the library raises (len() of a number …) a
                    # compiled path matches nothing.
                    expected = []
                got = mine(body)
                self.assertEqual(expected, got, '%s on %s' % (spec, body))

    def test_every_path_of_ceilometer_files_is_compiled(self):
        compiler = fields.Compiler()
        for spec in self._specs_of_ceilometer_files():
            getter = compiler.getter(spec)
            self.assertIn(getter.__qualname__.split('.')[0],
                          ('_walker', '_compiled'), spec)

    @staticmethod
    def _specs_of_ceilometer_files():
        specs = set()

        def walk(value):
            if isinstance(value, dict):
                if 'fields' in value:
                    walk(value['fields'])
                for k, v in value.items():
                    if k not in ('fields', 'plugin', 'event_type', 'type',
                                 'lookup'):
                        walk(v)
            elif isinstance(value, list):
                if all(isinstance(v, str) for v in value) and len(value) > 1:
                    specs.add('|'.join('(%s)' % v for v in value))
                for v in value:
                    walk(v)
            elif isinstance(value, str) and ('.' in value or '$' in value):
                specs.add(value)
        with open(os.path.join(CEILO, 'meters.d', 'meters.yaml')) as f:
            walk(yaml.safe_load(f)['metric'])
        with open(os.path.join(CEILO, 'event_definitions.yaml')) as f:
            walk([d['traits'] for d in yaml.safe_load(f)])
        return sorted(specs)

    def test_a_path_that_does_not_parse_is_a_field_error(self):
        with self.assertRaisesRegex(fields.FieldError, 'does not parse'):
            fields.Compiler().getter('payload.[[')


class TestMeters(DefinitionsTest):

    def test_volume_created_as_ceilometer_names_it(self):
        conv = self.ceilometer()
        body = notifications()['volume.create.end']
        (s,) = conv.convert(body).samples
        self.assertEqual(
            (s.name, s.type, s.unit, s.volume, s.user_id, s.project_id,
             s.resource_id),
            ('volume.size', 'gauge', 'GiB', 10, body['ctxt']['user_id'],
             body['payload']['tenant_id'], body['payload']['volume_id']))
        self.assertEqual({
            'display_name': 'data-1',
            'volume_type': body['payload']['volume_type'],
            'volume_type_id': body['payload']['volume_type'],
            'image_id': '6b1c8a4e-2f3d-4a5b-9c7d-8e9f0a1b2c3d'},
            s.resource_metadata)
        self.assertEqual(datetime.datetime(2026, 11, 30, 10, 20, 4, 500000,
                                           tzinfo=UTC), s.timestamp)

    def test_instance_meters_regex_excludes_create_start(self):
        conv = self.ceilometer()
        n = notifications()
        self.assertEqual([], conv.convert(
            n['compute.instance.create.start']).samples)
        names = sorted(s.name for s in conv.convert(
            n['compute.instance.create.end']).samples)
        self.assertEqual(['compute.instance.booting.time',
                          'disk.ephemeral.size', 'disk.root.size', 'memory',
                          'vcpus'], names)

    def test_timedelta_plugin_and_reserved_user_metadata(self):
        conv = self.ceilometer()
        samples = {s.name: s for s in conv.convert(
            notifications()['compute.instance.create.end']).samples}
        booting = samples['compute.instance.booting.time']
        self.assertEqual(38.0, booting.volume)
        # metering.* keys, dots made underscores; other keys left out.
        self.assertEqual({'server_group': '3a1f0c1e-5d2b-4c7a-9e8f-'
                          '0b1c2d3e4f5a', 'stack':
                          'arn:openstack:heat::d7e6/stacks/asg/11'},
                         samples['memory'].resource_metadata['user_metadata'])
        self.assertEqual('m1.small',
                         samples['memory'].resource_metadata['flavor_name'])

    def test_lookup_makes_one_sample_per_element(self):
        conv = self.ceilometer()
        samples = conv.convert(
            notifications()['magnum.bay.metrics.update']).samples
        self.assertEqual(
            [('memory.util', '%', 41.5), ('cpu.util', '%', 12.25),
             ('pods', 'pod', 7)],
            [(s.name, s.unit, s.volume) for s in samples])
        self.assertEqual({'bay-0001'}, {s.resource_id for s in samples})

    def test_filters_arithmetic_and_concatenation(self):
        conv = self.ceilometer()
        samples = {s.name: s for s in conv.convert(
            notifications()['compute.metrics.update']).samples}
        pct = samples['compute.node.cpu.percent']
        self.assertAlmostEqual(2.7501485834103515, pct.volume)
        self.assertEqual('compute-0_compute-0.localdomain', pct.resource_id)
        self.assertEqual('libvirt.LibvirtDriver',
                         pct.resource_metadata['source'])
        self.assertEqual(2400, samples['compute.node.cpu.frequency'].volume)

    def test_no_metadata_fields_means_the_payload(self):
        conv = self.ceilometer()
        (s,) = conv.convert(notifications()['image.upload']).samples
        self.assertEqual('image.upload',
                         s.resource_metadata['event_type'])
        self.assertEqual('image.localhost', s.resource_metadata['host'])
        self.assertEqual('qcow2', s.resource_metadata['disk_format'])

    def test_split_in_a_path(self):
        conv = self.ceilometer()
        samples = conv.convert(notifications()['capacity.pool.cinder']
                               ).samples
        self.assertEqual({'controller-0@lvm'},
                         {s.resource_metadata['provider'] for s in samples})

    def test_a_redelivered_notification_gives_the_same_sample_ids(self):
        conv = self.ceilometer()
        body = notifications()['compute.instance.exists']
        first = [s.id for s in conv.convert(body).samples]
        self.assertEqual(first, [s.id for s in conv.convert(body).samples])
        self.assertEqual(len(first), len(set(first)))

    def test_a_missing_volume_is_a_problem_not_an_exception(self):
        conv = self.converter([{
            'name': 'x.size', 'event_type': 'x.*', 'type': 'gauge',
            'unit': 'B', 'volume': '$.payload.size',
            'resource_id': '$.payload.id'}, {
            'name': 'x.count', 'event_type': 'x.*', 'type': 'delta',
            'unit': 'B', 'volume': 1, 'resource_id': '$.payload.id'}])
        r = conv.convert(note('x.create', {'id': 'r1'}))
        self.assertEqual(['x.count'], [s.name for s in r.samples])
        self.assertEqual('bad_sample', r.problems[0][0])
        self.assertIn('no volume', r.problems[0][1])

    def test_numeric_string_volume_and_id(self):
        conv = self.converter([{
            'name': 'x.size', 'event_type': 'x', 'type': 'gauge',
            'unit': 'B', 'volume': '$.payload.size',
            'resource_id': '$.payload.id'}])
        (s,) = conv.convert(note('x', {'id': 42, 'size': '10.5'})).samples
        self.assertEqual((10.5, '42'), (s.volume, s.resource_id))

    def test_the_last_of_a_file_wins_and_the_first_file(self):
        d = os.path.join(self.tmpdir, 'defs')
        os.makedirs(d)
        one = {'event_type': 'x', 'type': 'gauge', 'unit': 'B',
               'resource_id': '$.payload.id', 'name': 'x.size'}
        self.write_file('defs/a.yaml', yaml.safe_dump({'metric': [
            dict(one, volume=1), dict(one, volume=2)]}))
        self.write_file('defs/b.yaml', yaml.safe_dump({'metric': [
            dict(one, volume=3)]}))
        conv = self.converter(d)
        (s,) = conv.convert(note('x', {'id': 'r'})).samples
        self.assertEqual(2, s.volume)

    def test_errors_name_the_file_and_line(self):
        cases = [
            ({'name': 'x', 'event_type': 'x', 'type': 'gauge'},
             'required field.*unit, volume, resource_id'),
            ({'name': 'x', 'event_type': 'x', 'type': 'sometimes',
              'unit': 'B', 'volume': 1, 'resource_id': 'a'},
             'type must be one of'),
            ({'name': 'x', 'event_type': 'x', 'type': 'gauge', 'unit': 'B',
              'volume': '$.payload.[[', 'resource_id': 'a'},
             'volume: JSONPath .* does not parse'),
            ({'name': 'x', 'event_type': 'x', 'type': 'gauge', 'unit': 'B',
              'volume': {'fields': 'a', 'plugin': 'nosuch'},
              'resource_id': 'a'}, "unknown trait_plugin 'nosuch'"),
            ({'name': 'x', 'event_type': 'x', 'type': 'gauge', 'unit': 'B',
              'volume': {'fields': 'a', 'plugin': {
                  'name': 'split', 'parameters': {'colour': 1}}},
              'resource_id': 'a'}, "plugin 'split'"),
            ({'name': 'x', 'event_type': '(', 'type': 'gauge', 'unit': 'B',
              'volume': 1, 'resource_id': 'a'}, 'regular expressions'),
            ({'name': '$.payload.n', 'event_type': 'x', 'type': 'gauge',
              'unit': 'B', 'volume': {'fields': ['a', 'b'],
                                      'plugin': 'timedelta'},
              'resource_id': 'a', 'lookup': ['name', 'volume']},
             'TimedeltaPlugin cannot give one value per element'),
        ]
        for definition, pattern in cases:
            path = self.write_file('bad.yaml', '# a comment\nmetric:\n%s'
                                   % yaml.safe_dump([definition]))
            with self.assertRaises(ConfigError) as ctx:
                self.converter(self.tmpdir)
            msg = str(ctx.exception)
            self.assertRegex(msg, pattern)
            self.assertIn('%s:3' % path, msg)

    def test_a_literal_unit_that_is_no_path(self):
        conv = self.converter([{
            'name': 'x.rate', 'event_type': 'x', 'type': 'gauge',
            'unit': 'B/s', 'volume': 1, 'resource_id': '$.payload.id'}])
        (s,) = conv.convert(note('x', {'id': 'r'})).samples
        self.assertEqual('B/s', s.unit)


class TestEvents(DefinitionsTest):

    def test_instance_event_traits(self):
        conv = self.ceilometer()
        body = notifications()['compute.instance.create.end']
        (e,) = conv.convert(body).events
        self.assertEqual(body['metadata']['message_id'], e.message_id)
        self.assertEqual(datetime.datetime(2026, 11, 30, 10, 12, 41, 718392,
                                           tzinfo=UTC), e.generated)
        self.assertEqual(('compute', 'compute-0.localdomain'),
                         (e.trait('service'), e.trait('host')))
        self.assertEqual(body['payload']['instance_id'],
                         e.trait('instance_id'))
        self.assertEqual(2048, e.trait('memory_mb'))
        self.assertEqual(datetime.datetime(2026, 11, 30, 10, 12, 41,
                                           tzinfo=UTC), e.trait('launched_at'))
        # Nova's '' for a date not set yet is no trait.
        self.assertIsNone(e.trait('deleted_at'))
        self.assertEqual({}, e.raw)

    def test_last_matching_definition_wins_and_exclusions(self):
        conv = self.converter(events=[
            {'event_type': '*', 'traits': {'a': {'fields': 'payload.a'}}},
            {'event_type': ['x.*', '!x.skip'],
             'traits': {'b': {'fields': 'payload.b', 'type': 'int'}}}])
        (e,) = conv.convert(note('x.go', {'a': 1, 'b': '7'})).events
        self.assertEqual((None, 7), (e.trait('a'), e.trait('b')))
        (e,) = conv.convert(note('x.skip', {'a': 1, 'b': 7})).events
        self.assertEqual(('1', None), (e.trait('a'), e.trait('b')))

    def test_unmatched_get_default_traits_unless_dropped(self):
        conv = self.converter(events=[{'event_type': 'x', 'traits': {}}])
        (e,) = conv.convert(note('y', {'tenant_id': 'p'},
                                 publisher='svc.h')).events
        self.assertEqual(('p', 'svc.h'), (e.trait('project_id'),
                                          e.trait('service')))
        conv = self.converter(events=[{'event_type': 'x', 'traits': {}}],
                              drop_unmatched_notifications=True)
        self.assertEqual([], conv.convert(note('y', {})).events)

    def test_store_raw_for_chosen_priorities(self):
        conv = self.converter(events=[{'event_type': '*', 'traits': {}}],
                              store_raw=['error'])
        body = note('y', {})
        self.assertEqual({}, conv.convert(body, 'info').events[0].raw)
        self.assertEqual(body, conv.convert(body, 'error').events[0].raw)

    def test_trait_plugins(self):
        conv = self.converter(events=[{'event_type': '*', 'traits': {
            'host': {'fields': 'publisher_id',
                     'plugin': {'name': 'split',
                                'parameters': {'segment': 1,
                                               'max_split': 1}}},
            'flags': {'type': 'int', 'fields': ['payload.a', 'payload.b'],
                      'plugin': {'name': 'bitfield', 'parameters': {
                          'initial_bitfield': 8, 'flags': [
                              {'path': 'payload.a', 'bit': 0},
                              {'path': 'payload.b', 'bit': 1,
                               'value': 'yes'}]}}},
            'state': {'fields': 'payload.state', 'plugin': {
                'name': 'map', 'parameters': {
                    'values': {'ACTIVE': 'up'}, 'default': 'other',
                    'case_sensitive': False}}},
            'took': {'type': 'float', 'fields': ['payload.t0', 'payload.t1'],
                     'plugin': 'timedelta'}}}])
        (e,) = conv.convert(note('y', {
            'a': 1, 'b': 'no', 'state': 'active', 't0': '2026-01-01T00:00:00',
            't1': '2026-01-01 00:01:30+00:00'}, publisher='compute.h1.x')
        ).events
        self.assertEqual('h1.x', e.trait('host'))
        self.assertEqual(9, e.trait('flags'))
        self.assertEqual('up', e.trait('state'))
        self.assertEqual(90.0, e.trait('took'))

    def test_a_value_of_the_wrong_type_leaves_that_trait_out(self):
        conv = self.converter(events=[{'event_type': '*', 'traits': {
            'n': {'type': 'int', 'fields': 'payload.n'},
            'when': {'type': 'datetime', 'fields': 'payload.when'},
            'text': {'fields': 'payload.text'}}}])
        r = conv.convert(note('y', {'n': 'many', 'when': 'soon',
                                    'text': 'x' * 300}))
        (e,) = r.events
        self.assertEqual((None, None), (e.trait('n'), e.trait('when')))
        self.assertEqual(255, len(e.trait('text')))
        self.assertEqual(['bad_trait', 'bad_trait'], [p[0] for p in
                                                      r.problems])

    def test_errors_name_the_file_and_line(self):
        cases = [([{'event_type': 'x'}], "'traits' missing"),
                 ([{'event_type': 'x', 'traits': {'a': {
                     'type': 'colour', 'fields': 'a'}}}], 'type must be'),
                 ([{'event_type': 'x', 'traits': {'a': {
                     'fields': 'a.[['}}}], 'does not parse'),
                 ({'event_type': 'x'}, 'must be a list')]
        for data, pattern in cases:
            with self.assertRaisesRegex(ConfigError, 'events.yaml.*'
                                        + pattern):
                self.converter(events=data)


class TestConvert(DefinitionsTest):

    def test_not_a_notification(self):
        conv = self.ceilometer()
        for body, pattern in [
                ([], 'must be a mapping'), ({}, 'without an event_type'),
                ({'event_type': 'x', 'metadata': {}}, 'message_id'),
                ({'event_type': 'x', 'metadata': 'no'}, 'message_id')]:
            with self.assertRaisesRegex(InvalidSample, pattern):
                conv.convert(body)

    def test_a_definition_that_chokes_costs_only_its_meter(self):
        conv = self.converter([{
            'name': 'x.ratio', 'event_type': 'x', 'type': 'gauge',
            'unit': '1', 'volume': '$.payload.l[?(@.x > 1)].x',
            'resource_id': '$.payload.id'}, {
            'name': 'x.one', 'event_type': 'x', 'type': 'gauge',
            'unit': '1', 'volume': 1, 'resource_id': '$.payload.id'}])
        r = conv.convert(note('x', {'l': [{'x': {}}], 'id': 'r'}))
        self.assertEqual(['x.one'], [s.name for s in r.samples])
        self.assertEqual('definition_failed', r.problems[0][0])
        self.assertIn("meter 'x.ratio': TypeError", r.problems[0][1])
