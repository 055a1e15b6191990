"""The alarm database goes away under a running agent (a TCP proxy in
front of PostgreSQL is cut) and comes back: the API answers 503 meanwhile,
evaluations save and send nothing, and after it a change that happened
during the outage is saved and notified once -- no state lost, nothing
sent that was not recorded, nothing sent twice.
"""

import textwrap
import uuid

import requests

from tests import base
from tests.functional import alarming
from tests.functional import http_peer
from tests.functional import tcp_proxy
from tests.functional import test_agent
from tests.functional import test_alarm_db

HEADERS = {'X-User-Id': 'u1', 'X-Project-Id': 'p1', 'X-Roles': 'member'}


class TestDatabaseOutage(test_agent.AgentTest):

    def setUp(self):
        super().setUp()
        name, _ = test_alarm_db.fresh_database(self)
        self.proxy = tcp_proxy.TcpProxy(5432).start()
        self.addCleanup(self.proxy.stop)
        self.api_port = base.free_port()
        with open(self.conf_file, 'a') as f:
            f.write(textwrap.dedent('''
                [api]
                enabled = true
                port = %d
                auth_strategy = noauth
                [alarms]
                database_connection = postgresql+psycopg2://postgres@\
127.0.0.1:%d/%s?connect_timeout=2
                evaluate_database = true
                database_evaluation_interval = 1
                database_refresh = 0.5
                prometheus_storage = %s
            ''' % (self.api_port, self.proxy.port, name,
                   alarming.PROMETHEUS)))
        self.start()
        self.api = 'http://127.0.0.1:%d/v2/alarms' % self.api_port
        assert base.wait_until(self._api_up, 60), self.output()
        self.peer = http_peer.HttpPeer().start()
        self.addCleanup(self.peer.stop)

    def _api_up(self):
        try:
            return self.call('GET').ok
        except requests.RequestException:
            return False

    def call(self, method, path='', **kw):
        return requests.request(method, self.api + path, headers=HEADERS,
                                timeout=30, **kw)

    def test_outage_pauses_and_loses_nothing(self):
        group = uuid.uuid4().hex
        hook = 'http://127.0.0.1:%d/hook' % self.peer.port
        alarming.push_load(group, 95)
        resp = self.call('POST', json={
            'name': 'load', 'type': 'prometheus',
            'prometheus_rule': {'query': 'max(tl_load{group="%s"})' % group,
                                'threshold': 50, 'comparison_operator': 'gt'},
            'alarm_actions': [hook], 'ok_actions': [hook]})
        assert resp.status_code == 201, resp.text
        alarm_id = resp.json()['alarm_id']
        assert base.wait_until(lambda: len(self.peer.bodies) == 1, 60), \
            self.output()[-3000:]
        self.proxy.cut()
        assert self.call('GET').status_code == 503
        # The load falls while the database is away: the evaluator sees
        # ok, but saves and sends nothing.
        alarming.push_load(group, 5)
        errors = 'telemetry_alarm_database_errors_total'
        before = test_agent.metric(self.get('/metrics')[1], errors)
        assert base.wait_until(lambda: test_agent.metric(
            self.get('/metrics')[1], errors) >= before + 3, 60)
        assert [b['current'] for b in self.peer.bodies] == ['alarm']
        self.proxy.restore()
        assert base.wait_until(lambda: len(self.peer.bodies) >= 2, 60), \
            self.output()[-3000:]
        got = self.call('GET', '/' + alarm_id)
        assert got.status_code == 200 and got.json()['state'] == 'ok'
        history = [h['type'] for h in self.call(
            'GET', '/%s/history' % alarm_id).json()]
        assert history == ['state transition', 'state transition',
                           'creation'], history
        assert base.wait_until(lambda: test_agent.metric(
            self.get('/metrics')[1], 'telemetry_delivery_pending',
            kind='actions') == 0, 30)
        assert [b['current'] for b in self.peer.bodies] == ['alarm', 'ok']
        # The balance: what the action delivery took, it published.
        page = self.get('/metrics')[1]
        received, published = (test_agent.metric(
            page, 'telemetry_delivery_%s_total' % name, kind='actions')
            for name in ('received', 'published'))
        assert received == published == 2, (received, published)
        assert test_agent.metric(page, 'telemetry_delivery_dropped_total',
                                 kind='actions') is None
