"""Alarms on the embedded agent: samples in SQLite cross a threshold, the
evaluator changes the state, the webhook action reaches a real HTTP peer
with Aodh's body -- retried while the peer is down -- and a restart does
not send it again.
"""

import json
import os
import textwrap

from tests import base
from tests.functional.http_peer import HttpPeer
from tests.functional import test_agent

ALARMS = '''
alarms:
  - name: host_busy
    severity: critical
    evaluation_interval: 1
    rule:
      meter: host.memory.used
      aggregation: count
      # 5 s buckets: the agent's restart below leaves a gap of a few
      # seconds, which must not read as missing data (that would be a
      # real change: insufficient data, then alarm again).
      granularity: 5
      evaluation_periods: 2
      comparison_operator: ge
      threshold: 1
    alarm_actions:
      - "%s?max_retries=-1&retry_max_delay=0.3&max_latency=0"
      - "log://"
'''


class TestAlarmsOnTheAgent(test_agent.AgentTest):

    def test_threshold_to_webhook_retried_and_not_repeated(self):
        peer = HttpPeer()                   # down at first
        self.addCleanup(peer.stop)
        path = self.write_file('alarms.yaml', textwrap.dedent(
            ALARMS % peer.url))
        with open(self.conf_file, 'a') as f:
            f.write('[alarms]\ndefinitions_file = %s\nstate_file = %s\n'
                    % (path, os.path.join(self.tmpdir, 'alarms.sqlite')))
        self.start()
        assert base.wait_until(lambda: test_agent.metric(
            self.get('/metrics')[1], 'telemetry_alarm_state',
            alarm='host_busy', state='alarm') == 1, 40), self.output()
        # The webhook is down: the action waits and is retried.
        label = {'publisher': '%s?max_retries=-1&retry_max_delay=0.3&'
                 'max_latency=0 (actions)' % peer.url}
        assert base.wait_until(lambda: (test_agent.metric(
            self.get('/metrics')[1], 'telemetry_delivery_pending',
            **label) or 0) == 1, 10)
        peer.start()
        assert base.wait_until(lambda: peer.bodies, 10)
        body = peer.bodies[0]
        assert body['alarm_name'] == 'host_busy'
        assert (body['previous'], body['current']) == (
            'insufficient data', 'alarm')
        assert body['severity'] == 'critical'
        # Polled every 0.5 s: about ten measures in each 5 s bucket.
        assert len(body['reason_data']['values']) == 2
        assert all(v >= 1 for v in body['reason_data']['values'])
        assert base.wait_until(
            lambda: 'alarm host_busy (critical): insufficient data -> '
            'alarm' in self.output(), 10), self.output()
        assert self.stop() == 0
        # A restart finds the state: no second notification.
        self.start()
        assert base.wait_until(lambda: (test_agent.metric(
            self.get('/metrics')[1], 'telemetry_alarm_evaluations_total')
            or 0) >= 3, 20)
        assert len(peer.bodies) == 1, peer.bodies
        out = self.cli('--config-file', self.conf_file, 'alarm', 'history',
                       'host_busy', '-f', 'json')
        history = json.loads(out.stdout)
        assert [h['Current'] for h in history] == ['alarm']
        assert self.stop() == 0


class TestPromQLRule(base.TestCase):
    """The promql rule against the real Prometheus of tools/prometheus.sh
    (it scrapes itself, so ``up`` has a series).
    """

    def rule(self, query, operator, threshold):
        from telemetry_lib.alarm import rules
        return rules.PromQLRule({'query': query, 'threshold': threshold,
                                 'comparison_operator': operator},
                                "alarm 'p'")

    def test_states_from_a_real_server(self):
        import datetime
        from telemetry_lib.alarm import model
        from telemetry_lib.storage import base as storage_base
        from tests.functional.test_prometheus import PROM
        storage = storage_base.load_storage(
            self.conf, 'prometheus://' + PROM.split('://', 1)[1])
        self.addCleanup(storage.close)
        now = datetime.datetime.now(datetime.timezone.utc)

        def state(query, op='ge', threshold=1):
            return self.rule(query, op, threshold).evaluate(
                lambda url: storage, now, model.OK)
        assert base.wait_until(lambda: state('up').state == model.ALARM, 30)
        assert state('up', 'gt', 5).state == model.OK
        empty = state('nonexistent_metric_xyz')
        assert empty.state == model.INSUFFICIENT_DATA
        broken = state('sum(')
        assert broken.state is None and 'cannot evaluate' in broken.reason
