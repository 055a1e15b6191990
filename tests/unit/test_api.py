"""The Aodh-compatible API (noauth) over an SQLite alarm database:
Aodh's bodies, status codes, messages and project scoping.
(aodhclient, Keystone and Heat drive it in tests/functional/test_api.py.)
"""

import json

import webob

from telemetry_lib.alarm.db import store
from telemetry_lib.alarm import definitions
from telemetry_lib.alarm import state
from telemetry_lib.api import app
from tests import base

ADMIN = ('admin-user', 'admin-project', 'admin')
ALICE = ('alice', 'p1', 'member')
BOB = ('bob', 'p2', 'member')


def prometheus_alarm(**fields):
    body = {'name': 'cpu_high', 'type': 'prometheus',
            'prometheus_rule': {'query': 'avg(cpu)', 'threshold': 80,
                                'comparison_operator': 'gt'},
            'alarm_actions': ['http://hooks.example/up']}
    body.update(fields)
    return body


class APITest(base.TestCase):
    def setUp(self):
        super().setUp()
        self.db = store.AlarmDB('sqlite://').start()
        self.addCleanup(self.db.close)
        self.files = (None, None)
        self.api = app.AlarmAPI(self.db, lambda: self.files)

    def call(self, method, path, body=None, who=ALICE, raw=None):
        req = webob.Request.blank(path, method=method)
        req.headers['X-User-Id'], req.headers['X-Project-Id'], \
            req.headers['X-Roles'] = who
        if raw is not None:
            req.body = raw
        elif body is not None:
            req.body = json.dumps(body).encode()
            req.content_type = 'application/json'
        resp = req.get_response(self.api)
        data = json.loads(resp.body) if resp.body else None
        return resp.status_int, data

    def fault(self, status, method, path, body=None, who=ALICE):
        got, data = self.call(method, path, body, who)
        self.assertEqual(status, got, data)
        return data['error_message']['faultstring']

    def create(self, who=ALICE, **fields):
        status, alarm = self.call('POST', '/v2/alarms',
                                  prometheus_alarm(**fields), who)
        self.assertEqual(201, status, alarm)
        return alarm


class TestAlarms(APITest):
    def test_create_returns_aodhs_representation(self):
        alarm = self.create()
        self.assertEqual({'comparison_operator': 'gt', 'threshold': 80.0,
                          'query': 'avg(cpu)'}, alarm['prometheus_rule'])
        self.assertEqual(('alice', 'p1'), (alarm['user_id'],
                                           alarm['project_id']))
        self.assertEqual(('insufficient data', 'Not evaluated yet'),
                         (alarm['state'], alarm['state_reason']))
        self.assertEqual('prometheus alarm rule', alarm['description'])
        for field in ('enabled', 'repeat_actions', 'severity', 'timestamp',
                      'state_timestamp', 'ok_actions',
                      'insufficient_data_actions', 'time_constraints'):
            self.assertIn(field, alarm)
        self.assertNotIn('rule', alarm)
        status, got = self.call('GET', '/v2/alarms/' + alarm['alarm_id'])
        self.assertEqual((200, alarm), (status, got))

    def test_defaults_are_aodhs(self):
        alarm = self.create(prometheus_rule={'query': 'up',
                                             'threshold': 1})
        self.assertEqual('eq', alarm['prometheus_rule']['comparison_operator'])
        status, alarm = self.call('POST', '/v2/alarms', {
            'name': 'g', 'type': 'gnocchi_resources_threshold',
            'gnocchi_resources_threshold_rule': {
                'metric': 'cpu', 'resource_id': 'r', 'resource_type':
                'instance', 'threshold': 1, 'aggregation_method': 'mean'}})
        self.assertEqual(201, status, alarm)
        rule = alarm['gnocchi_resources_threshold_rule']
        self.assertEqual((1, 60), (rule['evaluation_periods'],
                                   rule['granularity']))

    def test_validation_messages(self):
        cases = [
            ({'type': 'prometheus'}, 'name'),
            (prometheus_alarm(type='nope'), 'Value should be one of'),
            (prometheus_alarm(prometheus_rule=None),
             'prometheus_rule must be set for prometheus type alarm'),
            (prometheus_alarm(composite_rule={'or': []}),
             'cannot be set at the same time'),
            (prometheus_alarm(prometheus_rule={'threshold': 1}), 'query'),
            (prometheus_alarm(prometheus_rule={'query': 'up',
                                               'threshold': 'x'}),
             'threshold'),
            (prometheus_alarm(severity='huge'), 'severity'),
            (prometheus_alarm(enabled='yes'), 'enabled'),
            (prometheus_alarm(bogus=1), 'Unknown attribute'),
            (prometheus_alarm(alarm_actions=['nope://x']),
             'Unsupported action nope://x'),
            (prometheus_alarm(alarm_actions='http://x'), 'alarm_actions'),
            (prometheus_alarm(time_constraints=[
                {'name': 'a', 'start': 'not cron', 'duration': 1}]),
             'start'),
            (prometheus_alarm(time_constraints=[
                {'name': 'a', 'start': '0 11 * * *', 'duration': 1,
                 'timezone': 'Mars/Olympus'}]), 'Timezone Mars/Olympus'),
            (prometheus_alarm(time_constraints=[
                {'name': 'a', 'start': '0 11 * * *', 'duration': 1}] * 2),
             'must be unique'),
            ([1, 2], 'JSON object'),
        ]
        for body, words in cases:
            message = self.fault(400, 'POST', '/v2/alarms', body)
            self.assertIn(words, message, body)
        status, data = self.call('POST', '/v2/alarms', raw=b'{not json')
        self.assertEqual(400, status)
        self.assertEqual([], self.db.list())

    def test_duplicate_actions_dropped_and_log_admin_only(self):
        alarm = self.create(alarm_actions=['http://a/', 'http://a/'])
        self.assertEqual(['http://a/'], alarm['alarm_actions'])
        message = self.fault(401, 'POST', '/v2/alarms',
                             prometheus_alarm(alarm_actions=['log://']))
        self.assertIn('not authorized to create action: log://', message)
        self.create(who=ADMIN, alarm_actions=['log://'])

    def test_time_constraints_get_aodhs_description(self):
        alarm = self.create(time_constraints=[
            {'name': 'nightly', 'start': '0 23 * * *', 'duration': '3600',
             'timezone': 'Europe/Ljubljana'}])
        self.assertEqual([{'name': 'nightly', 'start': '0 23 * * *',
                           'duration': 3600, 'timezone': 'Europe/Ljubljana',
                           'description': 'Time constraint at 0 23 * * * '
                           'lasting for 3600 seconds'}],
                         alarm['time_constraints'])

    def test_project_scoping(self):
        mine = self.create()
        theirs = self.create(who=BOB, name='bob')
        status, listed = self.call('GET', '/v2/alarms')
        self.assertEqual([mine['alarm_id']], [a['alarm_id'] for a in listed])
        for method, suffix, body in (('GET', '', None),
                                     ('PUT', '', prometheus_alarm()),
                                     ('DELETE', '', None),
                                     ('GET', '/state', None),
                                     ('PUT', '/state', 'ok'),
                                     ('GET', '/history', None)):
            message = self.fault(404, method, '/v2/alarms/%s%s' % (
                theirs['alarm_id'], suffix), body)
            self.assertEqual('Alarm %s not found' % theirs['alarm_id'],
                             message)
        self.fault(401, 'GET', '/v2/alarms?q.field=project_id&q.op=eq'
                   '&q.value=p2')
        self.fault(403, 'GET', '/v2/alarms?q.field=all_projects&q.op=eq'
                   '&q.value=true')
        self.fault(401, 'POST', '/v2/alarms', prometheus_alarm(
            project_id='p2'))
        # The admin sees its own project's by default, all when asked.
        status, listed = self.call('GET', '/v2/alarms', who=ADMIN)
        self.assertEqual([], listed)
        status, listed = self.call(
            'GET', '/v2/alarms?q.field=all_projects&q.op=eq&q.value=true',
            who=ADMIN)
        self.assertEqual(2, len(listed))
        status, got = self.call('GET', '/v2/alarms/' + theirs['alarm_id'],
                                who=ADMIN)
        self.assertEqual(200, status)
        made = self.create(who=ADMIN, project_id='p2')
        self.assertEqual('p2', made['project_id'])

    def test_filters_pagination_and_sort(self):
        a = self.create(name='a', severity='critical')
        b = self.create(name='b')
        status, listed = self.call('GET', '/v2/alarms?q.field=severity&'
                                   'q.op=eq&q.value=critical')
        self.assertEqual([a['alarm_id']], [x['alarm_id'] for x in listed])
        status, listed = self.call('GET', '/v2/alarms?limit=1&marker='
                                   + a['alarm_id'])
        self.assertEqual([b['alarm_id']], [x['alarm_id'] for x in listed])
        status, listed = self.call('GET', '/v2/alarms?sort=name:desc')
        self.assertEqual(['b', 'a'], [x['name'] for x in listed])
        self.fault(400, 'GET', '/v2/alarms?q.field=rule&q.op=eq&q.value=1')
        self.fault(400, 'GET', '/v2/alarms?q.field=name&q.op=lt&q.value=1')
        self.fault(400, 'GET', '/v2/alarms?q.field=enabled&q.op=eq'
                   '&q.value=maybe')
        self.fault(400, 'GET', '/v2/alarms?limit=0')
        self.fault(400, 'GET', '/v2/alarms?sort=rule:asc')
        self.fault(400, 'GET', '/v2/alarms?marker=nope')

    def test_update_state_history_delete(self):
        alarm = self.create()
        path = '/v2/alarms/' + alarm['alarm_id']
        body = dict(alarm, prometheus_rule=dict(alarm['prometheus_rule'],
                                                threshold=90))
        status, new = self.call('PUT', path, body)
        self.assertEqual(200, status, new)
        self.assertEqual(90.0, new['prometheus_rule']['threshold'])
        self.assertEqual('Not evaluated yet', new['state_reason'])
        self.assertEqual(alarm['state_timestamp'], new['state_timestamp'])
        status, got = self.call('PUT', path + '/state', 'alarm')
        self.assertEqual((200, 'alarm'), (status, got))
        self.assertEqual((200, 'alarm'), self.call('GET', path + '/state'))
        status, got = self.call('GET', path)
        self.assertEqual('Manually set via API', got['state_reason'])
        message = self.fault(400, 'PUT', path + '/state', 'bad')
        self.assertIn('state', message)
        status, history = self.call('GET', path + '/history')
        self.assertEqual(['state transition', 'rule change', 'creation'],
                         [h['type'] for h in history])
        self.assertEqual({'prometheus_rule': new['prometheus_rule']},
                         {k: v for k, v in json.loads(
                             history[1]['detail']).items()
                          if k == 'prometheus_rule'})
        self.assertEqual(204, self.call('DELETE', path)[0])
        self.fault(404, 'GET', path)
        status, history = self.call('GET', path + '/history', who=ADMIN)
        self.assertEqual(404, status)
        self.assertEqual('deletion', self.db.changes(
            alarm['alarm_id'])[0]['type'])

    def test_update_keeps_owner_for_members(self):
        alarm = self.create()
        body = dict(alarm, project_id='p2', user_id='bob')
        status, new = self.call('PUT', '/v2/alarms/' + alarm['alarm_id'],
                                body)
        self.assertEqual((200, 'p1', 'alice'), (
            status, new['project_id'], new['user_id']))

    def test_complex_query(self):
        self.create(name='a', severity='critical')
        self.create(name='b')
        self.create(who=BOB, name='c', severity='critical')
        status, found = self.call('POST', '/v2/query/alarms', {
            'filter': json.dumps({'and': [{'=': {'severity': 'critical'}},
                                          {'=~': {'name': '^[a-z]$'}}]}),
            'orderby': json.dumps([{'name': 'desc'}])})
        self.assertEqual((200, ['a']), (status, [a['name'] for a in found]))
        status, found = self.call('POST', '/v2/query/alarms', {
            'filter': json.dumps({'in': {'name': ['a', 'b', 'c']}}),
            'orderby': json.dumps([{'name': 'desc'}]), 'limit': 5},
            who=ADMIN)
        self.assertEqual(['c', 'b', 'a'], [a['name'] for a in found])
        for bad in ({'filter': '{"=": {"rule": 1}}'}, {'filter': '{'},
                    {'filter': '{"xor": []}'}, {'orderby': '[{"x": 1}]'},
                    {'limit': -1}, {'filter': '{"=~": {"name": "("}}'}):
            self.fault(400, 'POST', '/v2/query/alarms', bad)

    def test_discovery_capabilities_and_unknown_paths(self):
        status, versions = self.call('GET', '/')
        self.assertEqual('v2', versions['default_version']['id'])
        status, caps = self.call('GET', '/v2/capabilities')
        self.assertTrue(caps['api']['alarms:query:simple'])
        self.fault(404, 'GET', '/v2/nothing')
        self.fault(405, 'PATCH', '/v2/alarms')
        self.fault(405, 'POST', '/v2/capabilities')

    def test_database_down_is_503_and_nothing_half_done(self):
        alarm = self.create()
        self.db.close()
        self.db.url = store.sa.engine.make_url(
            'postgresql+psycopg2://u@127.0.0.1:%d/x?connect_timeout=2'
            % base.free_port())
        message = self.fault(503, 'GET', '/v2/alarms')
        self.assertEqual('the alarm database is unavailable', message)
        self.fault(503, 'POST', '/v2/alarms', prometheus_alarm())
        self.fault(503, 'GET', '/v2/alarms/' + alarm['alarm_id'])


class TestFileAlarms(APITest):
    def test_file_alarms_are_read_only_for_admins(self):
        path = self.write_file('alarms.yaml', '''
alarms:
  - name: disk_full
    rule: {meter: disk.usage, threshold: 90, comparison_operator: gt}
    alarm_actions: ["log://"]
''')
        definition = definitions.AlarmsDefinition.load(path)
        states = state.StateStore(self.tmpdir + '/state.sqlite')
        self.addCleanup(states.close)
        self.files = (definition, states)
        alarm_id = definition.alarms['disk_full'].id
        status, listed = self.call(
            'GET', '/v2/alarms?q.field=all_projects&q.op=eq&q.value=true',
            who=ADMIN)
        self.assertEqual(['disk_full'], [a['name'] for a in listed])
        self.assertEqual('threshold', listed[0]['type'])
        status, got = self.call('GET', '/v2/alarms/' + alarm_id, who=ADMIN)
        self.assertEqual((200, 'insufficient data'), (status, got['state']))
        self.fault(404, 'GET', '/v2/alarms/' + alarm_id)
        self.fault(403, 'DELETE', '/v2/alarms/' + alarm_id, who=ADMIN)
        self.fault(403, 'PUT', '/v2/alarms/%s/state' % alarm_id, 'ok',
                   who=ADMIN)


class TestGnocchiScoping(APITest):
    RULE = {'metric': 'cpu', 'resource_type': 'instance',
            'query': '{"=": {"server_group": "g1"}}',
            'aggregation_method': 'mean', 'threshold': 50}

    def setUp(self):
        super().setUp()
        self.api.gnocchi_owner = lambda: 'ceilometer-project'

    def body(self, **fields):
        body = {'name': 'group', 'type':
                'gnocchi_aggregation_by_resources_threshold',
                'gnocchi_aggregation_by_resources_threshold_rule':
                dict(self.RULE)}
        body.update(fields)
        return body

    def test_a_members_search_sees_its_projects_resources_only(self):
        status, alarm = self.call('POST', '/v2/alarms', self.body())
        self.assertEqual(201, status, alarm)
        rule = alarm['gnocchi_aggregation_by_resources_threshold_rule']
        mine = {'or': [{'=': {'created_by_project_id': 'p1'}}, {'and': [
            {'=': {'created_by_project_id': 'ceilometer-project'}},
            {'=': {'project_id': 'p1'}}]}]}
        self.assertEqual({'and': [mine, {'=': {'server_group': 'g1'}}]},
                         json.loads(rule['query']))
        # aodhclient's update sends it back: not narrowed twice.
        status, again = self.call('PUT', '/v2/alarms/' + alarm['alarm_id'],
                                  dict(alarm, severity='critical'))
        self.assertEqual(200, status, again)
        self.assertEqual(rule, again[
            'gnocchi_aggregation_by_resources_threshold_rule'])

    def test_an_admins_search_and_composites(self):
        status, alarm = self.call('POST', '/v2/alarms', self.body(),
                                  who=ADMIN)
        rule = alarm['gnocchi_aggregation_by_resources_threshold_rule']
        self.assertEqual({'=': {'server_group': 'g1'}},
                         json.loads(rule['query']))
        self.api.gnocchi_owner = lambda: None
        leaf = dict(self.RULE, type='gnocchi_aggregation_by_resources_'
                    'threshold')
        status, alarm = self.call('POST', '/v2/alarms', {
            'name': 'c', 'type': 'composite', 'composite_rule': {
                'or': [leaf, {'and': [leaf, {
                    'type': 'prometheus', 'query': 'up', 'threshold': 1}]}]}})
        self.assertEqual(201, status, alarm)
        leaves = [alarm['composite_rule']['or'][0],
                  alarm['composite_rule']['or'][1]['and'][0]]
        for leaf in leaves:
            self.assertEqual({'and': [
                {'=': {'created_by_project_id': 'p1'}},
                {'=': {'server_group': 'g1'}}]}, json.loads(leaf['query']))
