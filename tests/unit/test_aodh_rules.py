"""Aodh's alarm types with Aodh's semantics, and the evaluation of the
alarm database's alarms (state saved, history, actions, outage, share,
time constraints). Parity with Aodh's own evaluator code is checked in
tests/functional/test_aodh_parity.py.
"""

import datetime

from telemetry_lib.alarm import aodh_rules
from telemetry_lib.alarm.db import store
from telemetry_lib.alarm import dbalarms
from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import model
from telemetry_lib.alarm import timeconstraints
from telemetry_lib import ConfigError
from telemetry_lib.exceptions import NotFound
from telemetry_lib.exceptions import StorageUnavailable
from tests import base
from tests.unit import test_alarm_db

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)


class FakePrometheus:
    url = 'prometheus://fake'

    def __init__(self, values):
        self.values = values
        self.queries = []

    def instant_query(self, query, at=None):
        self.queries.append((query, at))
        if isinstance(self.values, Exception):
            raise self.values
        return [({'instance': str(i)}, v) for i, v in enumerate(self.values)]


class FakeGnocchi:
    url = 'gnocchi://fake'

    def __init__(self, rows):
        self.rows = rows
        self.calls = []

    def aggregates(self, operations, **kwargs):
        self.calls.append((operations, kwargs))
        return self.rows

    def measures(self, *args):
        self.calls.append(args)
        if self.rows is None:
            raise NotFound('no such resource', 'resource')
        return self.rows


def verdict(rule, storage, current=model.INSUFFICIENT_DATA):
    return rule.evaluate(lambda url: storage, NOW, current)


class TestPrometheusType(base.TestCase):
    def rule(self, **fields):
        data = {'query': 'avg(cpu)', 'threshold': 80.0,
                'comparison_operator': 'gt'}
        data.update(fields)
        return aodh_rules.PrometheusRule(data, 'alarm x')

    def test_all_none_mixed_and_nothing(self):
        rule = self.rule()
        v = verdict(rule, FakePrometheus([90, 85]), model.OK)
        self.assertEqual(model.ALARM, v.state)
        self.assertEqual('Transition to alarm due to 2 samples outside '
                         'threshold, most recent: 85', v.reason)
        self.assertEqual({'type': 'threshold', 'disposition': 'outside',
                          'count': 2, 'most_recent': 85}, v.reason_data)
        v = verdict(rule, FakePrometheus([10, 20]), model.OK)
        self.assertEqual((model.OK, 'Remaining as ok due to 2 samples '
                          'inside threshold, most recent: 20'),
                         (v.state, v.reason))
        # Mixed: the latest decides from insufficient data, else no change.
        self.assertEqual(model.ALARM, verdict(
            rule, FakePrometheus([10, 90])).state)
        self.assertIsNone(verdict(rule, FakePrometheus([10, 90]),
                                  model.OK).state)
        v = verdict(rule, FakePrometheus([]), model.OK)
        self.assertEqual((model.INSUFFICIENT_DATA, 'datapoints are unknown'),
                         (v.state, v.reason))
        # Already insufficient: no change, as Aodh does not refresh it.
        self.assertIsNone(verdict(rule, FakePrometheus([])).state)

    def test_nan_breaches_nothing_and_outage_is_insufficient(self):
        rule = self.rule()
        self.assertEqual(model.OK, verdict(
            rule, FakePrometheus([float('nan')])).state)
        v = verdict(rule, FakePrometheus(StorageUnavailable('down')),
                    model.ALARM)
        self.assertEqual(model.INSUFFICIENT_DATA, v.state)
        self.assertIn('down', v.reason)

    def test_default_operator_is_eq_and_fields_are_checked(self):
        self.assertEqual('eq', aodh_rules.PrometheusRule(
            {'query': 'up', 'threshold': 1}, 'a').operator)
        for data in ({'threshold': 1}, {'query': 'up'},
                     {'query': 'up', 'threshold': 1,
                      'comparison_operator': 'over'}):
            self.assertRaises(ConfigError, aodh_rules.PrometheusRule,
                              data, 'a')

    def test_a_storage_without_promql_is_insufficient_data(self):
        class Other:
            url = 'sqlite://'
        v = verdict(self.rule(), Other(), model.OK)
        self.assertEqual(model.INSUFFICIENT_DATA, v.state)


class TestGnocchiTypes(base.TestCase):
    RULE = {'metric': 'cpu', 'resource_type': 'instance',
            'query': '{"=": {"server_group": "g1"}}',
            'aggregation_method': 'mean', 'granularity': 60,
            'evaluation_periods': 2, 'threshold': 50,
            'comparison_operator': 'gt'}

    def test_by_resources_asks_what_aodh_asks(self):
        rule = aodh_rules.GnocchiResourcesAggregationRule(dict(self.RULE),
                                                          'a')
        gnocchi = FakeGnocchi([('t1', 60, 40.0), ('t2', 300, 99.0),
                               ('t3', 60, 70.0), ('t4', 60, 80.0)])
        v = verdict(rule, gnocchi, model.OK)
        self.assertEqual(model.ALARM, v.state)
        self.assertEqual(80.0, v.reason_data['most_recent'])
        (operations, kwargs), = gnocchi.calls
        self.assertEqual(['aggregate', 'mean', ['metric', 'cpu', 'mean']],
                         operations)
        self.assertEqual({'=': {'server_group': 'g1'}}, kwargs['search'])
        self.assertEqual('instance', kwargs['resource_type'])
        self.assertEqual(NOW - datetime.timedelta(seconds=180),
                         kwargs['start'])

    def test_rate_and_too_few_points(self):
        rule = aodh_rules.GnocchiMetricsRule({
            'metrics': ['m1', 'm2'], 'aggregation_method': 'rate:mean',
            'evaluation_periods': 3, 'threshold': 1}, 'a')
        gnocchi = FakeGnocchi([('t1', 60, 1.0)])
        v = verdict(rule, gnocchi, model.OK)
        self.assertEqual((model.INSUFFICIENT_DATA,
                          '3 datapoints are unknown'), (v.state, v.reason))
        # Gnocchi's syntax for several metrics (not Aodh's, which Gnocchi
        # refuses).
        self.assertEqual(['aggregate', 'rate:mean',
                          ['metric', ['m1', 'mean'], ['m2', 'mean']]],
                         gnocchi.calls[0][0])
        v = verdict(rule, FakeGnocchi(None), model.OK)
        self.assertIn('does not exist', v.reason)

    def test_resource_rule_and_bad_query(self):
        rule = aodh_rules.GnocchiResourcesRule({
            'metric': 'cpu', 'resource_id': 'vm1', 'threshold': 5,
            'aggregation_method': 'max', 'comparison_operator': 'lt'}, 'a')
        self.assertEqual(model.ALARM, verdict(
            rule, FakeGnocchi([('t', 60, 1.0)])).state)
        v = verdict(rule, FakeGnocchi(None), model.OK)
        self.assertEqual((model.INSUFFICIENT_DATA,
                          'resource vm1 does not exists'),
                         (v.state, v.reason))
        for query in ('{', '[1]'):
            self.assertRaises(ConfigError,
                              aodh_rules.GnocchiResourcesAggregationRule,
                              dict(self.RULE, query=query), 'a')


class TestTimeConstraints(base.TestCase):
    def test_within(self):
        tc = [{'name': 'office', 'start': '0 9 * * 1-5', 'duration': 3600 * 8,
               'timezone': 'Europe/Paris'}]
        monday = datetime.datetime(2026, 1, 5, tzinfo=UTC)
        self.assertTrue(timeconstraints.within(
            tc, monday.replace(hour=8, minute=0)))      # 09:00 Paris
        self.assertFalse(timeconstraints.within(
            tc, monday.replace(hour=7, minute=59)))
        self.assertFalse(timeconstraints.within(
            tc, monday.replace(hour=16, minute=1)))
        self.assertFalse(timeconstraints.within(
            tc, monday.replace(day=10, hour=10)))       # a Saturday
        self.assertTrue(timeconstraints.within([], monday))


class TestDatabaseAlarms(base.TestCase):
    def setUp(self):
        super().setUp()
        self.db = store.AlarmDB('sqlite://').start()
        self.addCleanup(self.db.close)
        self.queued = []
        self.prometheus = FakePrometheus([90.0])

    def alarm(self, **fields):
        fields.setdefault('alarm_actions', ['http://hook/up'])
        return self.db.create(test_alarm_db.new_alarm(**fields))

    def evaluator(self, share=None, clock=None):
        alarms = dbalarms.DatabaseAlarms(self.db, 60, 0.0, share, {
            'prometheus': 'prometheus://fake'})

        class Recorder:
            def __init__(rec, url):
                rec.url = url

            def put(rec, items):
                self.queued.extend((rec.url, i) for i in items)
        storages = []

        def storage(url):
            storages.append(url)
            return self.prometheus
        self.storages = storages
        return evaluator.Evaluator(alarms, alarms, storage, Recorder,
                                   clock=clock or NOW.timestamp)

    def test_transition_saved_with_aodh_history_and_action(self):
        row = self.alarm()
        ev = self.evaluator()
        alarm, = ev.definition.alarms.values()
        _, t = ev.evaluate(alarm, NOW)
        self.assertEqual(['prometheus://fake'], self.storages)
        got = self.db.get(row['alarm_id'])
        self.assertEqual('alarm', got['state'])
        self.assertTrue(got['state_reason'].startswith('Transition to alarm'))
        change, = self.db.changes(row['alarm_id'])
        self.assertEqual(('state transition', 'alarm', 'p1'), (
            change['type'], change['detail']['state'],
            change['on_behalf_of']))
        (url, action), = self.queued
        self.assertEqual('http://hook/up', url)
        self.assertEqual((row['alarm_id'], 'cpu', 'alarm'), (
            action.body['alarm_id'], action.body['alarm_name'],
            action.body['current']))
        # Same verdict again: nothing new, only its time -- written with
        # the others of the turn when the evaluator asks for the alarms.
        later = NOW + datetime.timedelta(minutes=1)
        ev.evaluate(alarm, later)
        self.assertEqual(1, len(self.queued))
        self.assertEqual(1, len(self.db.changes(row['alarm_id'])))
        self.assertEqual(NOW, self.db.get(row['alarm_id'])[
            'evaluate_timestamp'])
        ev.definition.alarms
        got = self.db.get(row['alarm_id'])
        self.assertEqual((later, 'alarm'), (got['evaluate_timestamp'],
                                            got['state']))

    def test_database_down_records_and_sends_nothing(self):
        row = self.alarm()
        ev = self.evaluator()
        alarm, = ev.definition.alarms.values()
        self.db.close()
        self.db.url = store.sa.engine.make_url(
            'postgresql+psycopg2://u@127.0.0.1:%d/x?connect_timeout=2'
            % base.free_port())
        self.assertRaises(store.DatabaseUnavailable, ev.evaluate, alarm,
                          NOW)
        self.assertEqual([], self.queued)
        # The alarms read before are still evaluated.
        self.assertEqual([row['alarm_id']], list(ev.definition.alarms))
        self.assertEqual(1, ev.definition.refresh_errors)

    def test_share_disabled_and_broken_rows(self):
        mine = self.alarm(name='mine')
        self.alarm(name='theirs')
        self.alarm(name='off', enabled=False)
        self.alarm(name='broken', type='nope')
        asked = []

        def share(group, ids):
            asked.append((group, sorted(ids)))
            return [mine['alarm_id']]
        ev = self.evaluator(share)
        self.assertEqual([mine['alarm_id']], list(ev.definition.alarms))
        self.assertEqual('alarm-evaluators', asked[0][0])
        self.assertEqual(3, len(asked[0][1]))

    def test_time_constraints_skip_evaluation(self):
        self.alarm(time_constraints=[{
            'name': 'never now', 'start': '0 0 1 1 *', 'duration': 60,
            'timezone': ''}])
        ev = self.evaluator()
        self.assertEqual([], ev.due(NOW.timestamp(), {}))


class TestCompositeOfAodhTypes(TestDatabaseAlarms):
    def test_every_leaf_reads_the_storage_of_its_kind(self):
        self.alarm(type='composite', rule={'and': [
            {'type': 'prometheus', 'query': 'a', 'threshold': 1,
             'comparison_operator': 'gt'},
            {'or': [{'type': 'prometheus', 'query': 'b', 'threshold': 1,
                     'comparison_operator': 'gt'},
                    {'type': 'prometheus', 'query': 'c', 'threshold': 1,
                     'comparison_operator': 'gt'}]}]})
        ev = self.evaluator()
        alarm, = ev.definition.alarms.values()
        verdict, _ = ev.evaluate(alarm, NOW)
        self.assertEqual(model.ALARM, verdict.state)
        self.assertEqual(['prometheus://fake'] * 3, self.storages)


class TestEventAlarms(TestDatabaseAlarms):
    RULE = {'event_type': 'compute.instance.*', 'query': [
        {'field': 'traits.state', 'op': 'eq', 'value': 'error',
         'type': 'string'},
        {'field': 'traits.vcpus', 'op': 'ge', 'value': '4',
         'type': 'integer'}]}

    def event(self, event_type='compute.instance.update', state='error',
              vcpus=8, project='p1'):
        return {'message_id': 'm1', 'event_type': event_type,
                'generated': '2026-01-05T12:00:00', 'raw': {},
                'traits': [['state', 1, state], ['vcpus', 2, vcpus],
                           ['project_id', 1, project]]}

    def test_matching_is_aodhs(self):
        from telemetry_lib.alarm import event_rules
        rule = event_rules.EventRule(self.RULE, 'a')
        assert rule.matches(self.event())
        assert not rule.matches(self.event(event_type='image.update'))
        assert not rule.matches(self.event(state='active'))
        assert not rule.matches(self.event(vcpus=2))
        verdict = rule.fired(self.event())
        self.assertEqual(model.ALARM, verdict.state)
        self.assertTrue(verdict.reason.startswith(
            'Event <id=m1,event_type=compute.instance.update> hits the '
            'query <query=[{"field": "traits.state"'), verdict.reason)
        self.assertEqual('p1', event_rules.event_project(self.event()))
        for bad in ({'query': 'x'}, {'query': [{'field': 'f'}]},
                    {'query': [{'field': 'traits.a', 'value': 'x',
                                'type': 'integer'}]},
                    {'query': [{'field': 'traits.a', 'value': 1,
                                'op': 'like'}]}):
            self.assertRaises(ConfigError, event_rules.EventRule, bad, 'a')

    def test_event_alarms_fire_on_events_not_on_the_interval(self):
        from telemetry_lib.agent import alarming
        row = self.alarm(type='event', rule=dict(self.RULE))
        self.alarm(type='event', rule=dict(self.RULE), project_id='p2',
                   name='other project')
        ev = self.evaluator(share=lambda group, ids: [])
        self.assertEqual([], ev.due(NOW.timestamp(), {}))
        # Every agent holds the event alarms, whatever its share.
        part = alarming.Alarming.__new__(alarming.Alarming)
        part.alarms, part.evaluator = ev.definition, ev
        part._event(self.event())
        self.assertEqual([(row['alarm_id'], 'alarm')], [
            (a.body['alarm_id'], a.body['current'])
            for _, a in self.queued])
        self.assertEqual('alarm', self.db.get(row['alarm_id'])['state'])
        # Fired already, no repeat_actions: not again.
        ev.definition.load()
        part._event(self.event())
        self.assertEqual(1, len(self.queued))
