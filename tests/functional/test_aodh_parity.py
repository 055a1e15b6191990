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

    def test_repeat_actions_announce_what_aodh_announces(self):
        # With repeat_actions Aodh notifies on every evaluation that has a
        # state -- ok, alarm, insufficient data, and mixed statistics as
        # the state it stays in -- with its reason; ours must announce the
        # same thing, or nothing where Aodh says nothing.
        from telemetry_lib.alarm import definitions
        from telemetry_lib.alarm import evaluator
        cases = [{'id': '%s %s %s' % (case, op, state), 'type': kind,
                  'state': state, 'repeat_actions': True, 'rule': rule}
                 for case in list(SERIES) + ['missing']
                 for op in ('gt', 'lt')
                 for state in STATES
                 for kind, rule in (
                     ('prometheus', {'query': self.query(case),
                                     'threshold': 50.0,
                                     'comparison_operator': op}),
                     ('composite', {'or': [{
                         'type': 'prometheus', 'query': self.query(case),
                         'threshold': 50.0, 'comparison_operator': op}, {
                         'type': 'prometheus', 'query': self.query('missing'),
                         'threshold': 50.0, 'comparison_operator': op}]}))]
        aodh = run_aodh(cases)

        class Store:
            def __init__(self, state):
                self.state = state

            def get(self, key):
                return self.state, None, None

            def record(self, *args):
                pass
        problems = []
        for case, theirs in zip(cases, aodh):
            cls = rules.load_rule_class(case['type'], 'parity')
            alarm = definitions.AlarmDefinition(
                case['id'], cls(json.loads(json.dumps(case['rule'])),
                                'parity'), repeat_actions=True)
            ev = evaluator.Evaluator(None, Store(case['state']),
                                     self.storages, None)
            _, said = ev.evaluate(alarm, dispatch=False)
            ours = [said.current, said.reason, said.reason_data] \
                if said is not None else None
            if json.dumps(ours, sort_keys=True) != json.dumps(
                    theirs, sort_keys=True):
                problems.append('%s: Aodh %r, ours %r' % (case['id'],
                                                          theirs, ours))
        assert not problems, '\n'.join(problems)
        # Every kind of announcement happened, and a silence.
        said = {(r or [None])[0] for r in aodh}
        assert {None, 'ok', 'alarm', 'insufficient data'} <= said, said

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


class TestGnocchiParity(ParityTest):
    """Measures in the real Gnocchi (tools/gnocchi.sh), minute buckets
    written four minutes back; Aodh's Gnocchi evaluators and ours read them
    through the measures and aggregates APIs.
    """

    #: Values per minute bucket, oldest first, per scenario.
    SCENARIOS = {'high': [90, 91, 92, 93], 'low': [10, 11, 12, 13],
                 'up': [10, 10, 10, 90], 'down': [90, 90, 90, 10]}

    def setUp(self):
        super().setUp()
        from gnocchiclient import exceptions as gnocchi_exc
        from telemetry_lib.clients import gnocchi as gnocchi_client
        self.gnocchi = storage_base.load_storage(
            self.conf, 'gnocchi://%s' % GNOCCHI.split('//', 1)[1])
        self.addCleanup(self.gnocchi.close)
        client = gnocchi_client.make_client(self.conf, self.gnocchi._url)
        try:
            client.archive_policy.create({
                'name': 'parity-60', 'aggregation_methods': [
                    'mean', 'max', 'min', 'sum', 'count'],
                'definition': [{'granularity': '60s', 'points': 120}]})
        except gnocchi_exc.ArchivePolicyAlreadyExists:
            pass
        self.tag = 'parity-%s' % uuid.uuid4().hex[:8]
        now = datetime.datetime.now(datetime.timezone.utc).replace(
            second=30, microsecond=0)
        self.resources, self.metrics = {}, {}
        for name, values in self.SCENARIOS.items():
            for i in range(2):
                rid = '%s-%s-%d' % (self.tag, name, i)
                res = client.resource.create('generic', {
                    'id': rid, 'user_id': '%s-%s' % (self.tag, name),
                    'project_id': self.tag,
                    'metrics': {'cpu': {'archive_policy_name':
                                        'parity-60'}}})
                self.resources.setdefault(name, []).append(rid)
                self.metrics.setdefault(name, []).append(
                    res['metrics']['cpu'])
                client.metric.add_measures(res['metrics']['cpu'], [
                    {'timestamp': (now - datetime.timedelta(
                        minutes=len(values) - k)).isoformat(),
                     'value': v + i} for k, v in enumerate(values)])
        # metricd has processed them when the aggregates API shows them
        # (it has no refresh).
        for name, ids in self.metrics.items():
            assert base.wait_until(lambda ids=ids: len(
                self.gnocchi.aggregates(
                    ['aggregate', 'mean', ['metric', ids[-1], 'mean']],
                    granularity=60) or []) >= 4, 120), name

    def storages(self, url=None):
        return self.gnocchi

    def rule(self, op='gt', periods=2, method='mean', threshold=50.0):
        return {'aggregation_method': method, 'granularity': 60,
                'evaluation_periods': periods, 'threshold': threshold,
                'comparison_operator': op}

    def compare(self, cases):
        # Both sides must read the same minute buckets: not within the
        # last seconds of a minute.
        assert base.wait_until(
            lambda: datetime.datetime.now().second < 40, 30)
        return super().compare(cases)

    def test_gnocchi_types(self):
        cases = []
        for name in self.SCENARIOS:
            for op, periods, method in (('gt', 2, 'mean'), ('lt', 1, 'max'),
                                        ('gt', 4, 'min'), ('gt', 9, 'mean')):
                shared = self.rule(op, periods, method)
                for state in STATES:
                    key = '%s %s %d %s' % (name, op, periods, method)
                    cases += [
                        {'id': 'resource ' + key, 'state': state,
                         'type': 'gnocchi_resources_threshold',
                         'rule': dict(shared, metric='cpu',
                                      resource_type='generic',
                                      resource_id=self.resources[name][0])},
                        {'id': 'metrics ' + key, 'state': state,
                         'type': 'gnocchi_aggregation_by_metrics_threshold',
                         'rule': dict(shared,
                                      metrics=self.metrics[name][:1])},
                        {'id': 'resources ' + key, 'state': state,
                         'type': 'gnocchi_aggregation_by_resources_threshold',
                         'rule': dict(shared, metric='cpu',
                                      resource_type='generic',
                                      query=json.dumps({'=': {
                                          'user_id': '%s-%s' % (
                                              self.tag, name)}}))}]
        cases.append({'id': 'no such resource', 'state': model.OK,
                      'type': 'gnocchi_resources_threshold',
                      'rule': dict(self.rule(), metric='cpu',
                                   resource_type='generic',
                                   resource_id=str(uuid.uuid4()))})
        results = self.compare(cases)
        seen = {(r or [None])[0] for r in results}
        assert {None, 'ok', 'alarm', 'insufficient data'} <= seen, seen

    def test_aodh_cannot_aggregate_several_metrics_and_we_can(self):
        rule = dict(self.rule(), metrics=self.metrics['high'])
        case = {'id': 'two metrics', 'state': model.OK, 'rule': rule,
                'type': 'gnocchi_aggregation_by_metrics_threshold'}
        theirs, = run_aodh([case])
        # Aodh 23 sends one "metric" operand per metric; Gnocchi 4.7
        # answers 400, and the alarm can only be insufficient data.
        assert theirs[0] == 'insufficient data', theirs
        assert "'aggregate' operation invalid" in theirs[1], theirs
        cls = rules.load_rule_class(case['type'], 'parity')
        ours = cls(dict(rule), 'parity').evaluate(
            self.storages, datetime.datetime.now(datetime.timezone.utc),
            model.OK)
        # Mean of the two metrics (v and v + 1) at the last two minutes.
        assert ours.state == model.ALARM, ours
        assert ours.reason_data['most_recent'] == 93.5, ours


class TestEventParity(ParityTest):
    """Aodh's event evaluator and ours on the same events and alarms (no
    service needed: the events are the data).
    """

    def test_event_type(self):
        from telemetry_lib.alarm import event_rules
        rules_ = {
            'any': {'event_type': '*', 'query': []},
            'pattern': {'event_type': 'compute.instance.*', 'query': []},
            'state': {'event_type': 'compute.instance.*', 'query': [
                {'field': 'traits.state', 'op': 'eq', 'value': 'error',
                 'type': 'string'}]},
            'vcpus': {'event_type': '*', 'query': [
                {'field': 'traits.vcpus', 'op': 'ge', 'value': '4',
                 'type': 'integer'},
                {'field': 'traits.ratio', 'op': 'lt', 'value': '0.5',
                 'type': 'float'}]},
        }
        events = {
            'error': ('compute.instance.update', 'error', 8, 0.25),
            'active': ('compute.instance.update', 'active', 8, 0.25),
            'small': ('compute.instance.update', 'error', 2, 0.25),
            'image': ('image.update', 'error', 8, 0.75),
        }
        cases = []
        for rname, rule in rules_.items():
            for ename, (etype, state, vcpus, ratio) in events.items():
                for current in STATES:
                    for repeat in (False, True):
                        cases.append({
                            'id': '%s/%s/%s' % (rname, ename, repeat),
                            'type': 'event', 'state': current,
                            'repeat_actions': repeat, 'rule': rule,
                            'event': {
                                'message_id': 'm-%s' % ename,
                                'event_type': etype,
                                'generated': '2026-01-05T12:00:00',
                                'traits': [['state', 1, state],
                                           ['vcpus', 2, vcpus],
                                           ['ratio', 3, ratio],
                                           ['project_id', 1, 'p']],
                                'raw': {}}})
        aodh = run_aodh(cases)
        problems = []
        for case, theirs in zip(cases, aodh):
            rule = event_rules.EventRule(case['rule'], 'parity')
            ours = None
            skip = (case['state'] == model.ALARM
                    and not case['repeat_actions'])
            if not skip and rule.matches(case['event']):
                verdict = rule.fired(case['event'])
                ours = [verdict.state, verdict.reason, verdict.reason_data]
            if json.dumps(ours, sort_keys=True) != json.dumps(
                    theirs, sort_keys=True):
                problems.append('%s from %s: Aodh %r, ours %r' % (
                    case['id'], case['state'], theirs, ours))
        assert not problems, '\n'.join(problems[:10])
        assert any(aodh) and not all(aodh)
