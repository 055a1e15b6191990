"""Alarm actions against a real Heat (tools/heat.sh): an
AutoScalingGroup scales when an alarm signals its policy -- by name
through the catalog, through the native signal_url with a token, and
through the pre-signed alarm_url -- and an alarm on the embedded agent's
SQLite samples scales it with no Prometheus anywhere.
"""

import os
import textwrap

from telemetry_lib.alarm import actions
from telemetry_lib.alarm import model
from telemetry_lib import delivery
from tests import base
from tests.functional import heat
from tests.functional import test_agent

FAST = '?max_latency=0&retry_initial_delay=0.1&retry_max_delay=0.5'
# A bound, not a timing: Heat's engine answers slowly while the
# machine runs the other functional tests beside this one.
FLUSH = 60


def alarm_action(current='alarm'):
    import datetime
    return model.Action.from_transition(model.Transition(
        'scale', 'ok', current, 'test', {}, datetime.datetime.now(
            datetime.timezone.utc), 'moderate', 'a1'))


class HeatTest(base.TestCase):

    def setUp(self):
        super().setUp()
        heat.start()
        path = self.write_file('creds.conf', heat.service_credentials())
        self.conf(['--config-file', path], project='telemetry_lib')
        self.conf.set_override('state_path', self.tmpdir)
        self.stack = heat.Stack(heat.session())
        self.addCleanup(self.stack.delete)

    def deliver(self, url):
        pool = delivery.DeliveryPool(self.conf, factory=actions.build)
        self.addCleanup(pool.close, 5)
        return pool.acquire(url, 'actions').start()


class TestHeatActions(HeatTest):

    def test_three_ways_to_signal_a_policy(self):
        assert self.stack.size() == 1
        by_name = self.deliver('heat://%s/scale_up%s' % (self.stack.name,
                                                         FAST))
        by_name.put([alarm_action()])
        assert by_name.flush(FLUSH)
        assert self.stack.wait_size(2), self.stack.size()
        self.stack.wait_quiet()
        signal_url = self.stack.output('up_signal_url')
        native = self.deliver('heat+' + signal_url + FAST.replace('?', '&')
                              if '?' in signal_url else
                              'heat+' + signal_url + FAST)
        native.put([alarm_action()])
        assert native.flush(FLUSH)
        assert self.stack.wait_size(3), self.stack.size()
        self.stack.wait_quiet()
        down = self.deliver('heat://%s/%s/scale_down%s' % (
            self.stack.name, self.stack.id, FAST))
        down.put([alarm_action()])
        assert down.flush(FLUSH) and self.stack.wait_size(2)
        self.stack.wait_quiet()
        presigned = self.deliver(self.stack.output('up_alarm_url')
                                 + FAST.replace('?', '&') + '&timeout=30')
        presigned.put([alarm_action()])
        assert presigned.flush(FLUSH)
        assert self.stack.wait_size(3), self.stack.size()
        for d in (by_name, native, down, presigned):
            st = d.stats()
            assert st.published == 1 and st.balanced, st

    def test_a_missing_resource_is_permanent_with_heat_s_message(self):
        d = self.deliver('heat://%s/no_such_policy%s' % (self.stack.name,
                                                         FAST))
        d.put([alarm_action()])
        assert d.flush(FLUSH)
        st = d.stats()
        assert st.dropped == {'permanent': 1}, st
        assert 'HTTP 404' in st.last_error and 'no_such_policy' in \
            st.last_error

    def test_heat_down_then_back_the_signal_happens_once(self):
        # A heat-api of this test's own, on its own port: stopping it
        # leaves Heat up for the tests running beside this one.
        spare = heat.SpareAPI(base.free_port())
        self.addCleanup(spare.stop)
        signal_url = self.stack.output('up_signal_url').replace(
            ':18004/', ':%d/' % spare.port)
        d = self.deliver('heat+%s%s&max_retries=-1' % (signal_url, FAST))
        d.put([alarm_action()])
        assert base.wait_until(lambda: d.stats().errors >= 2, 20)
        st = d.stats()
        assert st.pending == 1 and st.published == 0
        assert 'unreachable' in st.last_error.lower() or \
            'refused' in st.last_error.lower(), st.last_error
        spare.start()
        assert base.wait_until(lambda: d.stats().published == 1, 60)
        assert self.stack.wait_size(2), self.stack.size()
        heat.settle(3)
        assert self.stack.size() == 2       # once, not once per retry

    def test_keystone_down_then_back_the_signal_happens_once(self):
        """Tokens come from a Keystone of this test's own, down when the
        alarm fires: retried, counted, then signalled once it is back.
        """
        keystone = heat.SpareKeystone(base.free_port(),
                                      os.path.join(self.tmpdir, 'ks'))
        self.addCleanup(keystone.stop)
        path = self.write_file('spare.conf', heat.service_credentials(
            keystone.url))
        self.conf(['--config-file', path], project='telemetry_lib')
        d = self.deliver('heat://%s/scale_up%s&max_retries=-1'
                         % (self.stack.name, FAST))
        d.put([alarm_action()])
        assert base.wait_until(lambda: d.stats().errors >= 2, 30)
        st = d.stats()
        assert st.pending == 1 and st.published == 0 and st.dropped == {}
        assert 'keystone' in st.last_error.lower(), st.last_error
        assert self.stack.size() == 1
        keystone.start()
        assert base.wait_until(lambda: d.stats().published == 1, 60), \
            d.stats()
        assert self.stack.wait_size(2), self.stack.size()
        heat.settle(3)
        assert self.stack.size() == 2
        assert d.stats().balanced


class TestAgentScalesHeat(test_agent.AgentTest):
    """No Prometheus: SQLite samples cross a threshold, the agent's
    evaluator signals the policy, the group grows.
    """

    def test_threshold_on_sqlite_scales_the_group(self):
        heat.start()
        stack = heat.Stack(heat.session())
        self.addCleanup(stack.delete)
        path = self.write_file('alarms.yaml', textwrap.dedent('''
            alarms:
              - name: memory_seen
                evaluation_interval: 1
                rule:
                  meter: host.memory.used
                  aggregation: count
                  # 5 s buckets: a pause of the loaded machine is not
                  # missing data (insufficient data, then alarm again).
                  granularity: 5
                  evaluation_periods: 2
                  comparison_operator: ge
                  threshold: 1
                alarm_actions: ["heat://%s/scale_up%s"]
        ''' % (stack.name, FAST)))
        with open(self.conf_file, 'a') as f:
            f.write('[alarms]\ndefinitions_file = %s\nstate_file = %s\n'
                    % (path, os.path.join(self.tmpdir, 'alarms.sqlite')))
            f.write(heat.service_credentials())
        self.start()
        assert stack.wait_size(2, 60), (stack.size(), self.output())
        assert base.wait_until(lambda: test_agent.metric(
            self.get('/metrics')[1], 'telemetry_alarm_state',
            alarm='memory_seen', state='alarm') == 1, 20)
        assert self.stop() == 0
