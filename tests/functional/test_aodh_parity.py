"""Parity with Aodh's own evaluator code (Aodh 23, tools/aodh.sh): the same
alarms -- prometheus, the gnocchi_* types and composites of them -- from
every starting state, evaluated by Aodh's evaluators (driven by
tests/functional/aodh_driver.py in Aodh's virtualenv) and by our rules, on
the same data in the real Prometheus and Gnocchi. Same resulting state
and, when it changes, the same reason and reason data.
"""

import datetime
import json
import os
import subprocess
import uuid

import requests

from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules
from telemetry_lib.storage import base as storage_base
from tests import base
from tests.functional import alarming

AODH_PYTHON = os.environ.get('TELEMETRY_AODH_PYTHON',
                             '/var/tmp/telemetry-aodh-venv/bin/python')
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'aodh_driver.py')
PROM_HOST = alarming.PROMETHEUS.split('//', 1)[1]
GNOCCHI = 'http://127.0.0.1:%s' % os.environ.get('TELEMETRY_GNOCCHI_PORT',
                                                 '18041')
STATES = (model.OK, model.ALARM, model.INSUFFICIENT_DATA)
#: Series per case: one value per instance.
SERIES = {'high': [90, 95], 'low': [10, 20], 'up': [10, 90],
          'down': [90, 10], 'nan': ['NaN'], 'one': [55]}


def run_aodh(cases):
    out = subprocess.run([AODH_PYTHON, DRIVER], input=json.dumps({
        'prometheus': PROM_HOST, 'gnocchi': GNOCCHI, 'cases': cases}),
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


class ParityTest(base.TestCase):

    def compare(self, cases):
        aodh = run_aodh(cases)
        now = datetime.datetime.now(datetime.timezone.utc)
        problems = []
        for case, theirs in zip(cases, aodh):
            cls = rules.load_rule_class(case['type'], 'parity')
            rule = cls(json.loads(json.dumps(case['rule'])), 'parity')
            ours = rule.evaluate(self.storages, now, case['state'])
            mine = ours.state or case['state']
            aodh_state = theirs[0] if theirs else case['state']
            # Through JSON: NaN (a value Prometheus can give) equals itself.
            if mine != aodh_state or (theirs and mine != case['state'] and (
                    ours.reason != theirs[1] or json.dumps(
                        ours.reason_data, sort_keys=True) != json.dumps(
                            theirs[2], sort_keys=True))):
                problems.append('%s from %s: Aodh %r, ours %r' % (
                    case['id'], case['state'], theirs,
                    (ours.state, ours.reason, ours.reason_data)))
        assert not problems, '\n'.join(problems)
        return aodh


class TestPrometheusParity(ParityTest):

    def setUp(self):
        super().setUp()
        self.job = 'parity-%s' % uuid.uuid4().hex[:8]
        for case, values in SERIES.items():
            body = ''.join('tl_parity{instance="i%d"} %s\n' % (i, v)
                           for i, v in enumerate(values))
            requests.put('%s/metrics/job/%s/case/%s' % (
                alarming.PUSHGATEWAY, self.job, case), data=body,
                timeout=10).raise_for_status()
        self.addCleanup(requests.delete, '%s/metrics/job/%s' % (
            alarming.PUSHGATEWAY, self.job), timeout=10)
        self.prom = storage_base.load_storage(self.conf, alarming.PROMETHEUS)
        self.addCleanup(self.prom.close)
        want = sum(len(v) for v in SERIES.values())
        assert base.wait_until(lambda: len(self.prom.instant_query(
            'tl_parity{job="%s"}' % self.job)) == want, 60)

    def storages(self, url=None):
        return self.prom

    def query(self, case):
        return 'tl_parity{job="%s",case="%s"}' % (self.job, case)

    def test_prometheus_type(self):
        cases = []
        for case in list(SERIES) + ['missing']:
            for op, threshold in (('gt', 50), ('lt', 50), ('ge', 55)):
                for state in STATES:
                    cases.append({
                        'id': '%s %s %s' % (case, op, threshold),
                        'type': 'prometheus', 'state': state,
                        'rule': {'query': self.query(case),
                                 'threshold': float(threshold),
                                 'comparison_operator': op}})
        results = self.compare(cases)
        # The cases cover every outcome Aodh has.
        seen = {(r or [None])[0] for r in results}
        assert {None, 'ok', 'alarm', 'insufficient data'} <= seen, seen

    def test_composite_of_prometheus_rules(self):
        def leaf(case, op='gt'):
            return {'type': 'prometheus', 'query': self.query(case),
                    'threshold': 50.0, 'comparison_operator': op}
        shapes = {
            'and(high, low)': {'and': [leaf('high'), leaf('low')]},
            'or(high, low)': {'or': [leaf('high'), leaf('low')]},
            'and(high, up)': {'and': [leaf('high'), leaf('up')]},
            'or(low, down)': {'or': [leaf('low'), leaf('down')]},
            'and(high, missing)': {'and': [leaf('high'), leaf('missing')]},
            'or(low, missing)': {'or': [leaf('low'), leaf('missing')]},
            'or(missing, and(high, up))': {'or': [
                leaf('missing'), {'and': [leaf('high'), leaf('up')]}]},
            'and(or(up, down), high)': {'and': [
                {'or': [leaf('up'), leaf('down', 'lt')]}, leaf('high')]},
        }
        self.compare([{'id': name, 'type': 'composite', 'state': state,
                       'rule': rule}
                      for name, rule in shapes.items() for state in STATES])
