"""The Gnocchi resource definitions (Ceilometer's gnocchi_resources.yaml)
and the client's configuration checks: no server needed."""

import os
import unittest

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.clients import gnocchi_resources as defs
from telemetry_lib import ConfigError
from tests import base

CEILOMETER_FILE = os.path.join(os.path.dirname(__file__), 'data',
                               'ceilometer', 'gnocchi_resources.yaml')


class TestCeilometersFile(base.TestCase):
    """Ceilometer 27's own file, unchanged."""

    def setUp(self):
        super().setUp()
        self.defs = defs.ResourceDefinitions.load(CEILOMETER_FILE)

    def test_meters_map_to_their_resource_type_and_policy(self):
        definition, policy = self.defs.lookup('cpu')
        assert definition.resource_type == 'instance'
        assert policy == 'ceilometer-low-rate'
        definition, policy = self.defs.lookup('memory.usage')
        assert (definition.resource_type, policy) == ('instance',
                                                      'ceilometer-low')
        definition, _ = self.defs.lookup('disk.device.read.bytes')
        assert definition.resource_type == 'instance_disk'
        assert self.defs.lookup('no.such.meter') is None

    def test_flavor_id_takes_the_first_path_present(self):
        instance, _ = self.defs.lookup('cpu')
        paths = instance.attributes['flavor_id']
        assert paths == [['resource_metadata', 'instance_flavor_id'],
                         ['resource_metadata', 'flavor', 'id'],
                         ['resource_metadata', 'flavor_id']]
        sample = {'resource_metadata': {'flavor': {'id': '42'},
                                        'flavor_id': 'not this one'}}
        assert defs.evaluate(paths, sample) == '42'
        assert defs.evaluate(paths, {'resource_metadata': {}}) is None

    def test_instance_events(self):
        actions = {(d.resource_type, action) for d, action in
                   self.defs.for_event('compute.instance.delete.start')}
        assert ('instance', 'delete') in actions
        assert 'instance' in self.defs.resource_types()

    def test_an_instance_ends_its_disks_and_nics(self):
        instance, _ = self.defs.lookup('cpu')
        assert set(instance.associated) == {'instance_disk',
                                            'instance_network_interface'}
        query = instance.associated['instance_disk']
        # The id goes into the parsed query: quotes in it stay data.
        assert defs.fill_query(query, 'vm-"1"') == {
            '=': {'instance_id': 'vm-"1"'}}
        assert query == {'=': {'instance_id': '%s'}}


class TestBrokenDefinitions(base.TestCase):

    def load(self, text):
        path = os.path.join(self.tmpdir, 'gnocchi_resources.yaml')
        with open(path, 'w') as f:
            f.write(text)
        with self.assertRaises(ConfigError) as ctx:
            defs.ResourceDefinitions.load(path)
        assert ctx.exception.path == path
        return str(ctx.exception)

    def test_each_mistake_is_one_clear_error(self):
        cases = {
            'resources: {}\n': 'expected a mapping with a "resources" list',
            'resources:\n  - metrics: [cpu]\n':
                'each resource needs a resource_type',
            'resources:\n  - resource_type: x\n    attributes:\n'
            '      a: resource_metadata.(b|c\n': 'unbalanced parentheses',
            'resources:\n  - resource_type: x\n    metrics:\n'
            '      cpu: ceilometer-low\n':
                'metric cpu: expected a mapping such as '
                '{archive_policy_name: ...}',
            'resources:\n  - resource_type: x\n    attributes:\n'
            '      a: [1, 2]\n': 'attribute a: expected a path',
            'resources: [\n': 'invalid YAML',
            'resources:\n  - resource_type: x\n'
            '    event_associated_resources:\n'
            '      disk: \'{"=": {"instance_id": %s}}\'\n':
                'disk: not a JSON query with %s for the id',
            'resources:\n  - resource_type: x\n'
            '    event_associated_resources:\n'
            '      disk: \'{"=": {"instance_id": "x"}}\'\n':
                'disk: the query has no %s for the id',
        }
        for text, message in cases.items():
            got = self.load(text)
            assert message in got, (text, got)
            assert 'Traceback' not in got


class TestClientOptions(base.TestCase):

    def test_keystone_without_credentials(self):
        self.conf.register_opts(gnocchi_client.OPTS, 'gnocchi')
        self.conf.set_override('auth_mode', 'keystone', 'gnocchi')
        self.conf.set_override('username', 'ceilometer', 'gnocchi')
        with self.assertRaises(ConfigError) as ctx:
            gnocchi_client.make_client(self.conf)
        assert str(ctx.exception) == ('[gnocchi] auth_mode = keystone needs '
                                      'auth_url, password')


class TestWriterErrorPaths(unittest.TestCase):

    def test_the_failures_caught_are_one_flat_tuple_of_exceptions(self):
        from telemetry_lib.clients import gnocchi_writer
        # A tuple nested in an except clause's tuple raises TypeError in
        # place of the error it was meant to catch.
        for cls in gnocchi_writer._ANY_FAILURE:
            assert isinstance(cls, type) and issubclass(cls, BaseException)
        try:
            raise gnocchi_writer.gnocchi_exc.NotFound(404, 'gone')
        except gnocchi_writer._ANY_FAILURE:
            pass

    def test_a_pool_id_survives_the_url_path(self):
        from telemetry_lib.clients import gnocchi_writer
        assert gnocchi_writer._in_path('host@lvm#pool') == 'host%40lvm%23pool'
