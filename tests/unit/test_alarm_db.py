"""The alarm database on SQLite (the contract is run against PostgreSQL
and MariaDB in tests/functional/test_alarm_db.py).
"""

import datetime
import os
import threading

from telemetry_lib.alarm.db import store
from tests import base


def new_alarm(**fields):
    now = store.utcnow()
    alarm = {'alarm_id': store.new_id(), 'name': 'cpu', 'type': 'prometheus',
             'description': 'd', 'enabled': True, 'severity': 'low',
             'user_id': 'u1', 'project_id': 'p1', 'timestamp': now,
             'state': 'insufficient data', 'state_reason': 'Not evaluated',
             'state_timestamp': now, 'repeat_actions': False,
             'rule': {'query': 'up', 'threshold': 1.0,
                      'comparison_operator': 'gt'},
             'alarm_actions': ['log://'], 'time_constraints': []}
    alarm.update(fields)
    return alarm


class Contract:
    """What every backend must do; ``self.db`` is started."""

    def test_create_get_list(self):
        a = self.db.create(new_alarm())
        b = self.db.create(new_alarm(project_id='p2', name='mem',
                                     timestamp=a['timestamp']
                                     + datetime.timedelta(seconds=1)))
        got = self.db.get(a['alarm_id'])
        self.assertEqual(a['rule'], got['rule'])
        self.assertEqual(['log://'], got['alarm_actions'])
        self.assertEqual([], got['ok_actions'])
        self.assertEqual(a['timestamp'], got['timestamp'])
        self.assertEqual(datetime.timezone.utc, got['timestamp'].tzinfo)
        self.assertIsNone(self.db.get(a['alarm_id'], project_id='p2'))
        ids = [x['alarm_id'] for x in self.db.list({'project_id': 'p1'})]
        self.assertEqual([a['alarm_id']], ids)
        ids = [x['alarm_id'] for x in self.db.list()]
        self.assertEqual([a['alarm_id'], b['alarm_id']], ids)
        page = self.db.list(marker=a['alarm_id'])
        self.assertEqual([b['alarm_id']], [x['alarm_id'] for x in page])
        by_name = self.db.list(sort=[('name', 'desc')])
        self.assertEqual(['mem', 'cpu'], [x['name'] for x in by_name])
        self.assertEqual(1, len(self.db.list(limit=1)))
        self.assertRaises(KeyError, self.db.list, marker='nope')
        self.assertRaises(ValueError, self.db.list, {'rule': 'x'})
        self.assertEqual(1, self.db.count(project_id='p1'))

    def test_update_and_history(self):
        a = new_alarm()
        a = self.db.create(a, {'alarm_id': a['alarm_id'],
                               'type': store.CREATION, 'detail': {}})
        out = self.db.update(a['alarm_id'], {'enabled': False, 'rule': {
            'query': 'down', 'threshold': 2.0}}, {
                'alarm_id': a['alarm_id'], 'type': store.RULE_CHANGE,
                'detail': {'enabled': False}})
        self.assertFalse(out['enabled'])
        self.assertEqual('down', out['rule']['query'])
        self.assertEqual('cpu', out['name'])
        self.assertIsNone(self.db.update('nope', {'enabled': True}))
        changes = self.db.changes(a['alarm_id'])
        self.assertEqual([store.RULE_CHANGE, store.CREATION],
                         [c['type'] for c in changes])
        self.assertEqual({'enabled': False}, changes[0]['detail'])

    def test_evaluation_keeps_definition_changes(self):
        a = self.db.create(new_alarm())
        self.db.update(a['alarm_id'], {'severity': 'critical'})
        now = store.utcnow()
        self.assertTrue(self.db.save_evaluation(
            a['alarm_id'], 'alarm', 'breached', now, {
                'alarm_id': a['alarm_id'], 'type': store.STATE_TRANSITION,
                'detail': {'state': 'alarm'}, 'timestamp': now}))
        got = self.db.get(a['alarm_id'])
        self.assertEqual(('alarm', 'breached', 'critical'),
                         (got['state'], got['state_reason'],
                          got['severity']))
        self.assertEqual(now, got['state_timestamp'])
        self.assertEqual(now, got['evaluate_timestamp'])
        # No change: evaluated, state time kept.
        later = now + datetime.timedelta(seconds=5)
        self.db.save_evaluation(a['alarm_id'], None, 'mixed', later)
        got = self.db.get(a['alarm_id'])
        self.assertEqual(('alarm', now, later), (
            got['state'], got['state_timestamp'], got['evaluate_timestamp']))
        self.assertFalse(self.db.save_evaluation('nope', 'ok', 'r', now))

    def test_delete_keeps_history(self):
        a = self.db.create(new_alarm())
        self.assertTrue(self.db.delete(a['alarm_id'], {
            'alarm_id': a['alarm_id'], 'type': store.DELETION,
            'detail': {'state': 'ok'}}))
        self.assertFalse(self.db.delete(a['alarm_id']))
        self.assertIsNone(self.db.get(a['alarm_id']))
        self.assertEqual([store.DELETION], [
            c['type'] for c in self.db.changes(a['alarm_id'])])

    def test_a_refused_statement_is_not_an_outage(self):
        a = self.db.create(new_alarm())
        with self.assertRaises(store.DatabaseError) as ctx:
            self.db.create(new_alarm(alarm_id=a['alarm_id']))
        self.assertNotIsInstance(ctx.exception, store.DatabaseUnavailable)

    def test_alarm_and_its_change_are_one_transaction(self):
        a = self.db.create(new_alarm(), {'alarm_id': 'x', 'event_id': 'e1',
                                         'type': store.CREATION})
        b = new_alarm()
        # The change's id is taken: the alarm must not stay either.
        self.assertRaises(store.DatabaseError, self.db.create, b, {
            'alarm_id': b['alarm_id'], 'event_id': 'e1',
            'type': store.CREATION})
        self.assertIsNone(self.db.get(b['alarm_id']))
        self.assertIsNotNone(self.db.get(a['alarm_id']))

    def test_unicode_and_big_rules(self):
        rule = {'query': 'sum(x{name="\u00e9\u4e2d"}) ' + 'or y ' * 20000,
                'threshold': 1.0}
        a = self.db.create(new_alarm(name='\u00e9\u4e2d\U0001f600',
                                     rule=rule))
        got = self.db.get(a['alarm_id'])
        self.assertEqual(rule, got['rule'])
        self.assertEqual('\u00e9\u4e2d\U0001f600', got['name'])

    def test_concurrent_writers(self):
        a = self.db.create(new_alarm())
        errors = []

        def work(i):
            try:
                for j in range(10):
                    self.db.save_evaluation(
                        a['alarm_id'], 'ok', 'r%d-%d' % (i, j),
                        store.utcnow(), {'alarm_id': a['alarm_id'],
                                         'type': store.STATE_TRANSITION,
                                         'detail': {}})
            except Exception as exc:      # reported below
                errors.append(exc)
        threads = [threading.Thread(target=work, args=(i,))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual([], errors)
        self.assertEqual(40, len(self.db.changes(a['alarm_id'],
                                                 limit=1000)))


class TestSQLiteFile(Contract, base.TestCase):
    def setUp(self):
        super().setUp()
        self.path = os.path.join(self.tmpdir, 'alarms.sqlite')
        self.db = store.AlarmDB('sqlite:///' + self.path).start()
        self.addCleanup(self.db.close)

    def test_file_is_owner_only_and_migrations_rerun(self):
        self.assertEqual(0o600, os.stat(self.path).st_mode & 0o777)
        a = self.db.create(new_alarm())
        again = store.AlarmDB('sqlite:///' + self.path).start()
        self.addCleanup(again.close)
        self.assertEqual(a['alarm_id'], again.get(a['alarm_id'])['alarm_id'])


class TestSQLiteMemory(Contract, base.TestCase):
    def setUp(self):
        super().setUp()
        self.db = store.AlarmDB('sqlite://').start()
        self.addCleanup(self.db.close)


class TestURLAndOutage(base.TestCase):
    def test_bad_urls_are_one_line_config_errors(self):
        for url in ('nonsense', 'nosuchdb://x/y', 'postgresql+nodriver://x'):
            with self.assertRaises(store.ConfigError) as ctx:
                store.AlarmDB(url)
            self.assertNotIn('\n', str(ctx.exception))

    def test_a_sqlite_file_that_cannot_be_made_is_one_line(self):
        blocker = self.write_file('not-a-dir', '')
        db = store.AlarmDB('sqlite:///%s/alarms.db' % blocker)
        with self.assertRaises(store.DatabaseUnavailable) as ctx:
            db.start()
        self.assertIn('cannot create', str(ctx.exception))
        self.assertNotIn('\n', str(ctx.exception))

    def test_unreachable_database_is_unavailable_not_a_traceback(self):
        port = base.free_port()
        db = store.AlarmDB('postgresql+psycopg2://u:s3cret@127.0.0.1:%d/x'
                           '?connect_timeout=2' % port)
        with self.assertRaises(store.DatabaseUnavailable) as ctx:
            db.start()
        self.assertNotIn('s3cret', str(ctx.exception))
        self.assertNotIn('\n', str(ctx.exception))
        self.assertFalse(db.ping())
        self.assertRaises(store.DatabaseUnavailable, db.list)
        self.assertNotIn('s3cret', str(db))
