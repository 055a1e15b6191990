"""The Prometheus rules and Grafana dashboards shipped in the package
(``telemetry-lib assets``): the rules pass ``promtool check rules`` and
their unit tests (``promtool test rules``: every alert fires and resolves,
every recording rule gives its value); every panel query of every
dashboard returns data from a real Prometheus that loads the rules and
scrapes a real agent polling its host and a running libvirt guest.
"""

import json
import os
import subprocess
import sys

import requests

from tests import base
from tests.functional import libvirt_guest
from tests.functional.test_agent import AgentTest

HERE = os.path.dirname(os.path.abspath(__file__))
RULES_TEST = os.path.join(HERE, 'data', 'prometheus-rules-test.yaml')

POLLING = '''
sources:
  - name: host
    interval: 1
    meters: ["host.cpu.util", "host.memory.used"]
  - name: compute
    interval: 1
    meters: ["cpu", "vcpus", "memory", "memory.usage",
             "disk.device.read.bytes", "disk.device.write.bytes",
             "network.incoming.bytes", "network.outgoing.bytes"]
'''


class TestOperatorAssets(AgentTest):

    def assets(self):
        out = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), 'telemetry-lib'),
             'assets', 'write', os.path.join(self.tmpdir, 'assets')],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return os.path.join(self.tmpdir, 'assets')

    def test_rules_check_and_pass_their_unit_tests(self):
        rules = os.path.join(self.assets(), 'prometheus',
                             'prometheus-rules.yaml')
        out = subprocess.run(['promtool', 'check', 'rules', rules],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert 'SUCCESS: 15 rules found' in out.stdout, out.stdout
        out = subprocess.run(['promtool', 'test', 'rules', RULES_TEST],
                             capture_output=True, text=True, timeout=120,
                             cwd=os.path.dirname(RULES_TEST))
        assert out.returncode == 0, out.stdout + out.stderr
        # Every rule of the file has a test.
        with open(RULES_TEST) as f:
            tests = f.read()
        with open(rules) as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.strip().startswith(('- alert:', '- record:'))]
        assert len(names) == 15
        missing = [n for n in names if n not in tests]
        assert not missing, missing

    def test_every_dashboard_panel_returns_data(self):
        assets = self.assets()
        libvirt_guest.start()
        conn = libvirt_guest.connect()
        self.addCleanup(conn.close)
        guest = libvirt_guest.Guest(self, conn)
        self.write_file('polling.yaml', POLLING)
        exporter = base.free_port()
        self.start('''
            sources:
              - name: all
                meters: ["*"]
                sinks: [prom]
            sinks:
              - name: prom
                publishers:
                  - "prometheus://127.0.0.1:%d"
        ''' % exporter)
        prom = base.free_port()
        config = self.write_file('prometheus.yml', '''
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["%s/prometheus/prometheus-rules.yaml"]
scrape_configs:
  - job_name: agent
    static_configs: [{targets: ["127.0.0.1:%d"]}]
  - job_name: exporter
    static_configs: [{targets: ["127.0.0.1:%d"]}]
''' % (assets, self.port, exporter))
        log = open(os.path.join(self.tmpdir, 'prometheus.log'), 'w')
        self.addCleanup(log.close)
        proc = subprocess.Popen(
            ['prometheus', '--config.file=' + config,
             '--storage.tsdb.path=' + os.path.join(self.tmpdir, 'tsdb'),
             '--web.listen-address=127.0.0.1:%d' % prom],
            stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(proc.wait, 30)
        self.addCleanup(proc.terminate)
        queries = []
        for name in ('telemetry-agent.json', 'instances.json'):
            with open(os.path.join(assets, 'grafana', name)) as f:
                board = json.load(f)
            queries += [(name, panel['title'], target['expr'])
                        for panel in board['panels']
                        for target in panel['targets']]
        assert len(queries) >= 15

        def series(expr):
            try:
                body = requests.get('http://127.0.0.1:%d/api/v1/query'
                                    % prom, params={'query': expr},
                                    timeout=5).json()
            except (requests.RequestException, ValueError):
                return []
            return body.get('data', {}).get('result', [])
        empty = {}

        def all_answer():
            empty.clear()
            for board, title, expr in queries:
                if not series(expr):
                    empty.setdefault(board, []).append((title, expr))
            return not empty
        assert base.wait_until(all_answer, 180, interval=2.0), (
            empty, self.output()[-2000:])
        # The guest is among the instances the panels show.
        cpu = series('vm:cpu_usage:ratio')
        assert guest.uuid in {s['metric'].get('resource') for s in cpu}, cpu
