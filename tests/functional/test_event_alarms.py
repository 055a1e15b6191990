"""Aodh's ``event`` alarms on a real agent: a service's notification on
the test RabbitMQ, converted by the agent's listener, fires the event
alarm of its project made through the API (its webhook called with Aodh's
reason); an event that does not match, or of another project, does not.
"""

import copy
import json
import os

import requests

from tests import base
from tests.functional import http_peer
from tests.functional import test_agent
from tests.functional import test_notifications

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures',
                        'notifications', 'openstack.json')


def create_end():
    with open(FIXTURES) as f:
        for body in json.load(f):
            if body['event_type'] == 'compute.instance.create.end':
                return body
    raise AssertionError('no compute.instance.create.end fixture')


class TestEventAlarms(test_notifications.NotificationAgentTest):

    def test_a_notification_fires_its_projects_event_alarm(self):
        self.api_port = base.free_port()
        self.configure(['test://'], ['test://'], extra=(
            '[api]\nenabled = true\nport = %d\nauth_strategy = noauth\n'
            '[alarms]\ndatabase_connection = sqlite:///%s/alarms.db\n'
            'evaluate_database = true\ndatabase_refresh = 0.2\n'
            % (self.api_port, self.tmpdir)))
        self.start()
        peer = http_peer.HttpPeer().start()
        self.addCleanup(peer.stop)
        body = create_end()
        project = body['payload']['tenant_id']
        api = 'http://127.0.0.1:%d/v2/alarms' % self.api_port
        assert base.wait_until(lambda: _up(api), 60), self.output()
        headers = {'X-User-Id': 'u', 'X-Project-Id': project,
                   'X-Roles': 'member'}
        resp = requests.post(api, headers=headers, timeout=30, json={
            'name': 'instance up', 'type': 'event',
            'event_rule': {'event_type': 'compute.instance.*', 'query': [
                {'field': 'traits.state', 'op': 'eq', 'value': 'active',
                 'type': 'string'}]},
            'alarm_actions': ['http://127.0.0.1:%d/hook' % peer.port]})
        assert resp.status_code == 201, resp.text
        alarm = resp.json()
        # The agent reads the alarm database every database_refresh
        # seconds (Aodh's listener caches event alarms for a minute): an
        # event before that finds no alarm.
        assert base.wait_until(lambda: test_agent.metric(
            self.get('/metrics')[1], 'telemetry_alarm_database_alarms') == 1,
            60), self.diagnose()
        # Not these: another state, another project.
        other_state = copy.deepcopy(body)
        other_state['payload']['state'] = 'building'
        other_project = copy.deepcopy(body)
        other_project['payload']['tenant_id'] = 'someone-else'
        self.services.send(other_state)
        self.services.send(other_project)
        assert base.wait_until(lambda: _events_seen(self) == 2, 60), \
            self.diagnose()
        self.services.send(body)
        assert base.wait_until(lambda: peer.bodies, 60), self.diagnose()
        notice, = peer.bodies
        assert notice['alarm_id'] == alarm['alarm_id']
        assert notice['current'] == 'alarm'
        assert notice['reason'].startswith(
            'Event <id=%s,event_type=compute.instance.create.end> hits the '
            'query' % notice['reason_data']['event']['message_id']), notice
        got = requests.get(api + '/' + alarm['alarm_id'], headers=headers,
                           timeout=30).json()
        assert got['state'] == 'alarm'
        # Fired already and no repeat_actions: the same event again sends
        # nothing more.
        self.services.send(body)
        assert base.wait_until(lambda: _events_seen(self) == 4, 60)
        assert len(peer.bodies) == 1


def _up(api):
    try:
        return requests.get(api, timeout=2, headers={
            'X-Project-Id': 'p', 'X-Roles': 'member'}).ok
    except requests.RequestException:
        return False


def _events_seen(test):
    return test_agent.metric(
        test.get('/metrics')[1],
        'telemetry_alarm_database_events_total') or 0
