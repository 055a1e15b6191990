"""Dynamic pollsters against real APIs: Keystone's and Gnocchi's through
the Keystone catalog (with a metadata enrichment from Keystone), and
Prometheus's HTTP API as a non-OpenStack API."""

import datetime
import os
import textwrap

import requests

from telemetry_lib.pollsters.dynamic import pollster as dynamic
from tests import base
from tests.functional import heat
from tests.functional import test_gnocchi
from tests.functional import test_prometheus

NOW = datetime.datetime.now(datetime.timezone.utc)

DEFINITIONS = '''
- name: "dynamic.keystone.project.enabled"
  sample_type: "gauge"
  unit: "project"
  value_attribute: "enabled"
  endpoint_type: "identity"
  url_path: "/v3/projects"
  response_entries_key: "projects"
  project_id_attribute: "id"
  metadata_fields: ["name", "domain_id"]
  metadata_mapping: {"name": "display_name"}
  extra_metadata_fields:
    - name: "domain_name"
      endpoint_type: "identity"
      url_path: >-
        '/v3/domains/' + str(sample['resource_metadata']['domain_id'])
      value: "domain.name"

- name: "dynamic.gnocchi.archive_policy.definitions"
  sample_type: "gauge"
  unit: "definition"
  value_attribute: "definition | len(value)"
  endpoint_type: "metric"
  url_path: "v1/archive_policy"
  resource_id_attribute: "name"

- name: "dynamic.prometheus.target.up"
  sample_type: "gauge"
  unit: "target"
  value_attribute: "health"
  url_path: "%(prom)s/api/v1/targets"
  response_entries_key: "data.activeTargets"
  resource_id_attribute: "scrapeUrl"
  metadata_fields: ["labels.job", "lastError"]
  value_mapping: {"up": 1}
  default_value: 0
'''


class TestRealAPIs(base.TestCase):

    def setUp(self):
        super().setUp()
        heat.start()                        # Keystone and its objects
        test_gnocchi.KEYSTONE.start()       # "metric" in the catalog
        test_prometheus.start_services()
        path = self.write_file('creds.conf', heat.service_credentials())
        self.conf(['--config-file', path], project='telemetry_lib')
        directory = os.path.join(self.tmpdir, 'pollsters.d')
        os.mkdir(directory)
        with open(os.path.join(directory, 'apis.yaml'), 'w') as f:
            f.write(textwrap.dedent(DEFINITIONS) % {
                'prom': test_prometheus.PROM})
        self.conf.set_override('pollsters_definitions_dirs', [directory],
                               group='polling')
        self.pollsters = dynamic.load_all(self.conf)

    def poll(self, name):
        return {s.resource_id: s for s in self.pollsters[name].poll(NOW)}

    def test_keystone_projects_through_the_catalog_enriched(self):
        got = self.poll('dynamic.keystone.project.enabled')
        service = [s for s in got.values()
                   if s.resource_metadata.get('display_name') == 'service']
        assert len(service) == 1, got
        s = service[0]
        assert s.volume == 1 and s.project_id == s.resource_id
        assert s.resource_metadata['domain_id'] == 'default'
        assert s.resource_metadata['domain_name'] == 'Default'

    def test_gnocchi_through_the_catalog(self):
        got = self.poll('dynamic.gnocchi.archive_policy.definitions')
        truth = requests.get('http://%s/v1/archive_policy'
                             % test_gnocchi.MAIN.host, auth=('admin', ''),
                             timeout=10).json()
        assert {p['name']: len(p['definition']) for p in truth} == {
            name: s.volume for name, s in got.items()}

    def test_prometheus_as_a_non_openstack_api(self):
        got = self.poll('dynamic.prometheus.target.up')
        pushgateway = [s for s in got.values()
                       if s.resource_metadata['labels.job'] == 'pushgateway']
        assert len(pushgateway) == 1 and pushgateway[0].volume == 1, got
