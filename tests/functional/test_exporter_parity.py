"""The ``ceilometer`` scheme of the exporter against Ceilometer 27's own
exporter code (installed in the test environment with --no-deps): the
same samples give the same series, and a real Prometheus scraping both
gets the same result from a recording rule written for Ceilometer's.
"""

import datetime
import os
import subprocess
import textwrap

import prometheus_client
from prometheus_client import parser
import requests

from telemetry_lib.formats import ceilometer as wire
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import Sample
from tests import base
from tests.unit import test_compute

NOW = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def samples():
    """A compute agent's samples (Ceilometer's metadata), and the shapes
    its exporter has labels for.
    """
    from telemetry_lib.pollsters.compute import instance
    from telemetry_lib.pollsters.compute import meters
    xml = test_compute.XML.replace(
        '<nova:root', '<nova:serverGroup uuid="sg-1"/><nova:root')
    inst = instance.parse(xml, 'compute-0')
    out = [s for group in ('cpu', 'memory', 'disk', 'network', 'state')
           for s in meters.samples(group, inst, test_compute.STATS, NOW)]
    out += [
        Sample('volume.service.health', 'gauge', 'status', 1,
               resource_id='cinder-volume-host1', timestamp=NOW,
               resource_metadata={'binary': 'cinder-volume',
                                  'zone': 'nova', 'status': 'up'}),
        Sample('loadbalancer.operating', 'gauge', 'status', 1,
               resource_id='lb-1', project_id='p-2', timestamp=NOW,
               resource_metadata={'name': 'lb', 'availability_zone': 'az1'}),
        Sample('alarm.state', 'gauge', 'state', 1, resource_id='a-1',
               timestamp=NOW, resource_metadata={'alarm_state': 'alarm'}),
        Sample('image.size', 'gauge', 'B', 123, resource_id='img-1',
               project_id='p', timestamp=NOW),
    ]
    return out


def series(text):
    """``{(name, type, labels without empty ones): value}``."""
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            labels = frozenset((k, v) for k, v in s.labels.items() if v)
            out[(s.name, fam.type, labels)] = s.value
    return out


class ParityTest(base.TestCase):

    def ceilometer_exporter(self, sample_list):
        from ceilometer.polling import prom_exporter
        prom_exporter.CEILOMETER_REGISTRY = prometheus_client.\
            CollectorRegistry()
        prom_exporter.collect_metrics([wire.sample_to_wire(s)
                                       for s in sample_list])
        return prom_exporter

    def ours(self, sample_list, url='prometheus://?scheme=ceilometer'):
        pub = publisher_base.load_publisher(self.conf, url)
        pub.start()
        self.addCleanup(pub.close)
        pub.publish_samples(sample_list)
        return pub


class TestSeriesParity(ParityTest):

    def test_the_same_series_as_ceilometer_s_exporter(self):
        sample_list = samples()
        theirs = series(prometheus_client.generate_latest(
            self.ceilometer_exporter(sample_list).CEILOMETER_REGISTRY
        ).decode())
        ours = series(self.ours(sample_list).exposition('')[1].decode())
        assert len(theirs) == len(sample_list)
        assert ours == theirs, set(ours) ^ set(theirs)
        # The labels an autoscaling rule groups by are there.
        cpu = [labels for (name, _, labels) in ours
               if name == 'ceilometer_cpu'][0]
        assert ('server_group', 'sg-1') in cpu
        assert ('flavor_name', 'm1.small') in cpu and (
            'flavor_id', 'f-2') in cpu

    def test_a_new_cycle_replaces_the_old_series(self):
        first = samples()
        pub = self.ours(first)
        later = NOW + datetime.timedelta(seconds=300)
        # The next cycle polls one resource only: the others' series go,
        # as Ceilometer's exporter purges a pollster's metric each cycle.
        pub.publish_samples([first[0].replace(timestamp=later, volume=7)])
        got = series(pub.exposition('')[1].decode())
        name = 'ceilometer_' + first[0].name.replace('.', '_')
        cpu = {k: v for k, v in got.items() if k[0] == name}
        assert list(cpu.values()) == [7.0]
        # A late sample of the old cycle does not come back.
        pub.publish_samples([first[0]])
        assert series(pub.exposition('')[1].decode()) == got


class TestRecordingRule(ParityTest):
    """A real Prometheus scrapes Ceilometer's exporter and ours; a rule
    written for Ceilometer's series gives the same result on both.
    """

    def test_rule_results_match(self):
        sample_list = samples()
        theirs_port, ours_port, prom_port = (base.free_port()
                                             for _ in range(3))
        self.ceilometer_exporter(sample_list).export('127.0.0.1',
                                                     theirs_port)
        self.ours(sample_list, 'prometheus://?scheme=ceilometer&port=%d'
                  % ours_port)
        self.write_file('rules.yml', textwrap.dedent('''
            groups:
              - name: autoscaling
                interval: 1s
                rules:
                  - record: group:cpu:sum
                    expr: sum by (job, server_group, flavor_name) (ceilometer_cpu)
                  - record: group:memory_usage:avg
                    expr: avg by (job, server_group) (ceilometer_memory_usage)
        '''))  # noqa: E501
        self.write_file('prometheus.yml', textwrap.dedent('''
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: ["%s/rules.yml"]
            scrape_configs:
              - job_name: ceilometer
                static_configs: [{targets: ["127.0.0.1:%d"]}]
              - job_name: ours
                static_configs: [{targets: ["127.0.0.1:%d"]}]
        ''' % (self.tmpdir, theirs_port, ours_port)))
        log = open(os.path.join(self.tmpdir, 'prom.log'), 'w')
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            ['prometheus', '--config.file=%s/prometheus.yml' % self.tmpdir,
             '--storage.tsdb.path=%s/tsdb' % self.tmpdir,
             '--web.listen-address=127.0.0.1:%d' % prom_port],
            stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)

        def results(rule):
            try:
                body = requests.get('http://127.0.0.1:%d/api/v1/query'
                                    % prom_port, params={'query': rule},
                                    timeout=5).json()
            except (requests.RequestException, ValueError):
                return {}
            return {r['metric']['job']: (
                tuple(sorted((k, v) for k, v in r['metric'].items()
                             if k not in ('job', '__name__'))),
                float(r['value'][1]))
                for r in body.get('data', {}).get('result', [])}
        for rule in ('group:cpu:sum', 'group:memory_usage:avg'):
            assert base.wait_until(lambda: len(results(rule)) == 2, 60), (
                rule, results(rule), open(log.name).read()[-1500:])
            got = results(rule)
            assert got['ceilometer'] == got['ours'], got
