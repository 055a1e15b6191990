"""Alarm rules, states, history and actions, time injected."""

import contextlib
import datetime
import textwrap

from telemetry_lib.alarm import actions
from telemetry_lib.alarm import definitions
from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import model
from telemetry_lib.alarm import state
from telemetry_lib import ConfigError
from telemetry_lib import Sample
from telemetry_lib.storage import base as storage_base
from telemetry_lib import StorageUnavailable
from tests import base

UTC = datetime.timezone.utc
#: A whole minute, so buckets of 60 s start on it.
T0 = datetime.datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(minutes):
    return T0 + datetime.timedelta(minutes=minutes)


ALARMS = '''
alarms:
  - name: cpu_high
    severity: moderate
    rule:
      meter: cpu
      resource_id: vm1
      granularity: 60
      evaluation_periods: 3
      comparison_operator: gt
      threshold: 80
    alarm_actions: ["log://"]
    ok_actions: ["log://"]
'''


class AlarmTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.storage = storage_base.load_storage(self.conf, 'memory://')
        self.store = state.StateStore('%s/alarms.sqlite' % self.tmpdir)
        self.addCleanup(self.store.close)
        self.queued = []

    def feed(self, values, start=0, meter='cpu', resource='vm1'):
        """One value in each minute from ``start``."""
        half = datetime.timedelta(seconds=30)
        self.storage.write([Sample(meter, 'gauge', '%', v,
                                   resource_id=resource,
                                   timestamp=at(start + i) + half)
                            for i, v in enumerate(values)])

    def load(self, text=ALARMS):
        path = self.write_file('alarms.yaml', textwrap.dedent(text))
        return definitions.AlarmsDefinition.load(
            path, check_url=actions.check_installed)

    def evaluator(self, definition):
        class Recorder:
            def __init__(rec, url):
                rec.url = url

            def put(rec, items):
                self.queued.extend((rec.url, i) for i in items)
        return evaluator.Evaluator(definition, self.store,
                                   lambda url: self.storage, Recorder)


class TestThreshold(AlarmTest):

    def verdict(self, values, current=model.OK, now_minute=3):
        self.feed(values)
        alarm = self.load().alarms['cpu_high']
        return alarm.rule.evaluate(lambda url: self.storage,
                                   at(now_minute), current)

    def test_all_breach_is_alarm(self):
        v = self.verdict([90, 95, 91])
        assert v.state == model.ALARM
        assert v.reason_data['values'] == [90, 95, 91]
        assert 'all 3 mean value(s) gt 80' in v.reason

    def test_none_breach_is_ok(self):
        assert self.verdict([10, 20, 30]).state == model.OK

    def test_mixed_keeps_the_state(self):
        assert self.verdict([90, 10, 95]).state is None

    def test_mixed_from_insufficient_data_follows_the_latest(self):
        v = self.verdict([10, 90, 95], current=model.INSUFFICIENT_DATA)
        assert v.state == model.ALARM
        self.storage = storage_base.load_storage(self.conf, 'memory://')
        v = self.verdict([90, 95, 10], current=model.INSUFFICIENT_DATA)
        assert v.state == model.OK

    def test_missing_periods_are_insufficient_data(self):
        v = self.verdict([90, 95], now_minute=3)
        # Minute 2 has nothing: two of three periods.
        assert v.state == model.INSUFFICIENT_DATA
        assert '2 of 3 period(s)' in v.reason

    def test_the_current_bucket_is_not_used(self):
        # At 12:03:10 the bucket 12:03 is still filling: not evaluated.
        self.feed([90, 95, 91, 5])
        alarm = self.load().alarms['cpu_high']
        v = alarm.rule.evaluate(lambda url: self.storage,
                                at(3) + datetime.timedelta(seconds=10),
                                model.OK)
        assert v.reason_data['values'] == [90, 95, 91]

    def test_all_resources_aggregated(self):
        self.feed([90, 90, 90], resource='a')
        self.feed([0, 0, 0], resource='b')
        alarm = self.load(ALARMS.replace('      resource_id: vm1\n', '')
                          .replace('threshold: 80', 'threshold: 40')
                          ).alarms['cpu_high']
        v = alarm.rule.evaluate(lambda url: self.storage, at(3), model.OK)
        assert v.reason_data['values'] == [45, 45, 45]
        assert v.state == model.ALARM

    def test_storage_trouble_changes_nothing(self):
        def broken(url):
            raise StorageUnavailable('down')
        alarm = self.load().alarms['cpu_high']
        assert alarm.rule.evaluate(broken, at(3), model.OK).state is None


class TestComposite(AlarmTest):

    TEXT = '''
    alarms:
      - name: both
        type: composite
        rule:
          %s:
            - {meter: cpu, resource_id: vm1, threshold: 80,
               granularity: 60}
            - {meter: mem, resource_id: vm1, threshold: 80,
               granularity: 60}
    '''

    def state(self, op, cpu, mem):
        self.storage = storage_base.load_storage(self.conf, 'memory://')
        if cpu is not None:
            self.feed([cpu], start=2)
        if mem is not None:
            self.feed([mem], start=2, meter='mem')
        alarm = self.load(self.TEXT % op).alarms['both']
        return alarm.rule.evaluate(lambda url: self.storage, at(3),
                                   model.OK).state

    def test_truth_tables(self):
        alarm, ok, unknown = (model.ALARM, model.OK,
                              model.INSUFFICIENT_DATA)
        assert self.state('and', 90, 90) == alarm
        assert self.state('and', 90, 10) == ok
        assert self.state('and', 90, None) == unknown
        assert self.state('or', 90, 10) == alarm
        assert self.state('or', 10, 10) == ok
        assert self.state('or', 10, None) == unknown


class TestEvaluator(AlarmTest):

    def test_transitions_history_and_actions(self):
        ev = self.evaluator(self.load())
        alarm = ev.definition.alarms['cpu_high']
        # No data, never evaluated: insufficient data, no change.
        _, t = ev.evaluate(alarm, at(3))
        assert t is None and self.queued == []
        self.feed([90, 95, 91])
        _, t = ev.evaluate(alarm, at(3))
        assert (t.previous, t.current) == (model.INSUFFICIENT_DATA,
                                           model.ALARM)
        (url, action), = self.queued
        assert url == 'log://'
        assert action.body['alarm_name'] == 'cpu_high'
        assert action.body['severity'] == 'moderate'
        assert action.body['current'] == 'alarm'
        assert set(action.body) >= {'alarm_id', 'previous', 'reason',
                                    'reason_data'}
        # Unchanged state: nothing again.
        _, t = ev.evaluate(alarm, at(3))
        assert t is None and len(self.queued) == 1
        hist = self.store.history('cpu_high')
        assert [h['current'] for h in hist] == [model.ALARM]
        assert hist[0]['reason_data']['values'] == [90, 95, 91]

    def test_state_survives_a_restart(self):
        self.feed([90, 95, 91])
        ev = self.evaluator(self.load())
        ev.evaluate(ev.definition.alarms['cpu_high'], at(3))
        self.store.close()
        self.store = state.StateStore('%s/alarms.sqlite' % self.tmpdir)
        self.queued.clear()
        ev = self.evaluator(self.load())
        _, t = ev.evaluate(ev.definition.alarms['cpu_high'], at(3))
        assert t is None and self.queued == []
        assert self.store.get('cpu_high')[0] == model.ALARM

    def test_repeat_actions(self):
        self.feed([90, 95, 91, 99])
        ev = self.evaluator(self.load(ALARMS.replace(
            'severity: moderate', 'severity: moderate\n    repeat_actions: '
            'true')))
        alarm = ev.definition.alarms['cpu_high']
        ev.evaluate(alarm, at(3))
        ev.evaluate(alarm, at(4))
        assert len(self.queued) == 2
        assert len(self.store.history('cpu_high')) == 1

    def test_history_is_bounded(self):
        self.store.keep = 3
        ev = self.evaluator(self.load())
        alarm = ev.definition.alarms['cpu_high']
        for i in range(8):
            self.storage = storage_base.load_storage(self.conf, 'memory://')
            self.feed([90 if i % 2 else 10] * 3)
            ev.evaluate(alarm, at(3))
        assert len(self.store.history('cpu_high')) == 3

    def test_actions_go_through_a_real_delivery(self):
        from telemetry_lib import delivery
        pool = delivery.DeliveryPool(self.conf, factory=actions.build)
        self.addCleanup(pool.close, 2)

        def acquire(url):
            return pool.acquire(url, 'actions').start()
        self.feed([90, 95, 91])
        ev = evaluator.Evaluator(self.load(), self.store,
                                 lambda url: self.storage, acquire)
        with self.assertLogs('telemetry_lib.alarm.actions', 'WARNING') as cm:
            ev.evaluate(ev.definition.alarms['cpu_high'], at(3))
            assert pool.deliveries()[0].flush(5)
        assert 'alarm cpu_high (moderate): insufficient data -> alarm' in \
            cm.output[0]
        st = pool.stats()[0]
        assert st.published == 1 and st.balanced


class TestDefinitions(AlarmTest):

    def test_errors_name_file_line_alarm_and_field(self):
        for change, words in (
                (('threshold: 80', 'threshold: .nan'),
                 "field 'rule.threshold': must be a finite number"),
                (('severity: moderate', 'severity: huge'),
                 "field 'severity': must be one of low"),
                (('["log://"]', '["nope://x"]'), "unknown action 'nope'"),
                (('comparison_operator: gt', 'comparison_operator: >'),
                 "field 'rule.comparison_operator'"),
                (('    severity: moderate\n', '    colour: red\n'),
                 "field 'colour': unknown field"),
                (('evaluation_periods: 3', 'evaluation_periods: 0'),
                 'must be at least 1')):
            with self.assertRaises(ConfigError) as ctx:
                self.load(ALARMS.replace(*change))
            text = str(ctx.exception)
            assert words in text, text
            assert "alarm 'cpu_high'" in text and 'alarms.yaml:' in text
            assert len(text.splitlines()) == 1


class TestTurns(AlarmTest):
    """The evaluator's loop evaluates its due alarms a turn at a time: one
    time for the turn, its alarms' instant queries handed to the storage
    together before the first is evaluated.
    """

    def test_queries_of_a_turn_are_asked_together(self):
        class Prom(storage_base.StorageDriver):
            """Answers ``vN`` with N; records what it was told."""

            def __init__(self, conf):
                self.told, self.asked = [], []

            def write(self, samples):
                pass

            def query(self, *args, **kwargs):
                return []

            def resources(self, meter=None):
                return []

            def meters(self):
                return []

            @contextlib.contextmanager
            def prefetched(prom, expressions, when):
                prom.told.append((list(expressions), when))
                yield

            def instant_query(prom, expression, when):
                prom.asked.append((expression, when))
                return [({}, float(expression[1:]))]

        prom = Prom(self.conf)
        self.storage = prom
        text = 'alarms:\n' + ''.join(
            '  - name: a%d\n    type: promql\n    rule: {query: v%d, '
            'threshold: 50}\n' % (i, i) for i in range(12))
        ev = self.evaluator(self.load(text))
        ev.TURN = 5
        alarms = list(ev.definition.alarms.values())
        ev.evaluate_all(alarms)
        # 12 alarms, 5 a turn: three turns, each told before it asks.
        assert [len(e) for e, _ in prom.told] == [5, 5, 2]
        assert [e for told, _ in prom.told for e in told] == [
            'v%d' % i for i in range(12)]
        turns = [when for _, when in prom.told]
        assert [w for _, w in prom.asked] == [
            turns[i // 5] for i in range(12)]
        assert {self.store.get('a%d' % i)[0] for i in range(12)} == {
            model.OK}
        ev2 = self.evaluator(self.load(text.replace('v11', 'v99')))
        ev2.evaluate_all(list(ev2.definition.alarms.values()))
        assert self.store.get('a11')[0] == model.ALARM


class TestTrustHeatAction(base.TestCase):

    def setUp(self):
        super().setUp()
        path = self.write_file('ks.conf', (
            '[service_credentials]\nauth_type = password\n'
            'auth_url = http://127.0.0.1:9/v3\nusername = u\npassword = p\n'
            'user_domain_name = Default\n'))
        self.conf(['--config-file', path])

    def action(self, url):
        from telemetry_lib.alarm import autohealing
        from telemetry_lib.url import TelemetryURL
        return autohealing.TrustHeatAction(self.conf, TelemetryURL.parse(url))

    def test_the_url_carries_its_trust(self):
        from telemetry_lib.exceptions import InvalidURL
        with self.assertRaises(InvalidURL) as ctx:
            self.action('trust+heat://')
        assert 'trust id' in str(ctx.exception)
        assert self.action('trust+heat://t1:delete@').client is not None

    def test_reason_data_without_a_stack_is_permanent_and_asks_nothing(self):
        from telemetry_lib.exceptions import PermanentError
        action = self.action('trust+heat://t1@')
        asked = []
        action.client.find_by_physical_id = lambda *a: asked.append(a)
        bodies = [{'alarm_id': 'a', 'reason_data': {'type': 'threshold'}},
                  {'alarm_id': 'b', 'reason_data': {'stack_id': 's'}},
                  {'alarm_id': 'c', 'reason_data': 'nonsense'}, 'nonsense']
        with self.assertRaises(PermanentError) as ctx:
            action.publish_actions([(str(i), b)
                                    for i, b in enumerate(bodies)])
        assert list(ctx.exception.items) == [0, 1, 2, 3]
        assert 'stack_id and asg_id' in str(ctx.exception)
        assert asked == []

    def test_marks_the_members_holding_the_sick_ones_then_updates(self):
        action = self.action('trust+heat://t1@')
        calls = []
        holders = {'m1': 'member-a', 'm2': 'member-a', 'm3': None}
        action.client.find_by_physical_id = lambda stack, pid: (
            [{'parent_resource': holders[pid]}] if holders[pid] else [])
        action.client.mark_unhealthy = lambda *a: calls.append(('mark',) + a)
        action.client.update_existing = lambda s: calls.append(('update', s))
        action.publish_actions([('a', {'alarm_id': 'a', 'reason_data': {
            'stack_id': 'top', 'asg_id': 'grp', 'unhealthy_members': [
                {'id': 'm1'}, {'id': 'm2'}, {'id': 'm3'}, 'junk']}})])
        assert calls == [('mark', 'grp', 'member-a',
                          'unhealthy load balancer member'),
                         ('update', 'top')]
