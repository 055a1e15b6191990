"""The alarming API of a real agent, as OpenStack drives Aodh's: behind the
test Keystone (keystonemiddleware's auth_token), found through the
catalog's ``alarming`` service, driven by python-aodhclient's own CLI and
by a real Heat's ``OS::Aodh::*`` resources, its alarms in PostgreSQL and
evaluated against the test Prometheus. One class (stestr gives a class one
worker): the catalog names one port.
"""

import json
import os
import uuid

import requests

from tests import base
from tests.functional import alarming
from tests.functional import heat
from tests.functional import http_peer
from tests.functional import test_agent
from tests.functional import test_alarm_db


def _json(output):
    return json.loads(output[output.index('{') if output.lstrip().startswith(
        '{') else output.index('['):])


#: Heat's autoscaling guide, with Prometheus (as RHOSO scales), Gnocchi
#: and composite alarms: written as Heat's documentation writes them.
SCALING = '''
heat_template_version: wallaby
parameters:
  high:
    type: number
    default: 50
resources:
  group:
    type: OS::Heat::AutoScalingGroup
    properties:
      min_size: 1
      max_size: 3
      resource:
        type: OS::Heat::TestResource
        properties:
          value: member
  scale_up:
    type: OS::Heat::ScalingPolicy
    properties:
      adjustment_type: change_in_capacity
      auto_scaling_group_id: {get_resource: group}
      cooldown: 1
      scaling_adjustment: 1
  scale_down:
    type: OS::Heat::ScalingPolicy
    properties:
      adjustment_type: change_in_capacity
      auto_scaling_group_id: {get_resource: group}
      cooldown: 1
      scaling_adjustment: -1
  load_high:
    type: OS::Aodh::PrometheusAlarm
    properties:
      description: Scale up when the load is high
      query: max(tl_load{group="%(group)s"})
      comparison_operator: gt
      threshold: {get_param: high}
      alarm_actions:
        - str_replace:
            template: trust+url
            params:
              url: {get_attr: [scale_up, signal_url]}
  load_low:
    type: OS::Aodh::PrometheusAlarm
    properties:
      description: Scale down when the load is low
      query: max(tl_load{group="%(group)s"})
      comparison_operator: lt
      threshold: 20
      alarm_actions:
        - {get_attr: [scale_down, alarm_url]}
  cpu_alarm_high:
    type: OS::Aodh::GnocchiAggregationByResourcesAlarm
    properties:
      description: Scale up if CPU > 80%%
      metric: cpu
      aggregation_method: rate:mean
      granularity: 300
      evaluation_periods: 1
      threshold: 800000000.0
      resource_type: instance
      comparison_operator: gt
      alarm_actions:
        - str_replace:
            template: trust+url
            params:
              url: {get_attr: [scale_up, signal_url]}
      query:
        str_replace:
          template: '{"=": {"server_group": "stack_id"}}'
          params:
            stack_id: {get_param: "OS::stack_id"}
  both_high:
    type: OS::Aodh::CompositeAlarm
    properties:
      description: Load and CPU high together
      composite_rule:
        operator: and
        rules:
          - type: prometheus
            query: max(tl_load{group="%(group)s"})
            threshold: 90
            comparison_operator: gt
          - type: prometheus
            query: count(tl_load{group="%(group)s"})
            threshold: 0
            comparison_operator: gt
outputs:
  size:
    value: {get_attr: [group, current_size]}
'''
ALARMS = ('load_high', 'load_low', 'cpu_alarm_high', 'both_high')

#: A group whose members are nested stacks, as a load-balanced member (a
#: server and its pool member) is; the test resource inside each stands
#: for the pool member Aodh's health evaluator names.
HEALING = {
    'heat_template_version': '2018-08-31',
    'resources': {'group': {
        'type': 'OS::Heat::AutoScalingGroup',
        'properties': {'min_size': 2, 'max_size': 2, 'resource': {
            'type': 'OS::Heat::ResourceGroup', 'properties': {
                'count': 1, 'resource_def': {
                    'type': 'OS::Heat::TestResource',
                    'properties': {'value': 'member'}}}}}}}}


class TestAodhCompatibleAPI(test_agent.AgentTest):

    def setUp(self):
        super().setUp()
        heat.start()
        alarming.ensure_keystone_objects()
        _, self.db_url = test_alarm_db.fresh_database(self)
        with open(self.conf_file, 'a') as f:
            f.write(alarming.agent_conf(self.db_url))
        self.start()
        assert base.wait_until(self._api_up, 60), self.output()

    def _api_up(self):
        try:
            return requests.get(alarming.API_URL + '/', timeout=2).ok
        except requests.RequestException:
            return False

    def aodh(self, *args, **kw):
        rc, out = alarming.aodh(*args, **kw)
        assert rc == 0, (args, out, self.output()[-3000:])
        return out

    def test_aodhclient_cli_through_keystone(self):
        out = self.aodh('alarm', 'create', '--name', 'cpu_high', '--type',
                        'prometheus', '--query', 'max(up)', '--threshold',
                        '5', '--comparison-operator', 'gt', '--severity',
                        'moderate', '--alarm-action', 'http://hook/up',
                        '-f', 'json')
        alarm = _json(out)
        alarm_id = alarm['alarm_id']
        assert alarm['threshold'] == 5.0 and alarm['severity'] == 'moderate'
        listed = _json(self.aodh('alarm', 'list', '-f', 'json'))
        assert [a['alarm_id'] for a in listed] == [alarm_id]
        shown = _json(self.aodh('alarm', 'show', alarm_id, '-f', 'json'))
        assert shown['query'] == 'max(up)' and shown['type'] == 'prometheus'
        updated = _json(self.aodh('alarm', 'update', alarm_id,
                                  '--threshold', '9', '-f', 'json'))
        assert updated['threshold'] == 9.0 and updated['query'] == 'max(up)'
        # max(up) is 1 on the test Prometheus: below 9, the evaluator says
        # ok; then, disabled (so no evaluation undoes it), set by hand.
        assert base.wait_until(lambda: _json(self.aodh(
            'alarm', 'show', alarm_id, '-f', 'json'))['state'] == 'ok', 30)
        self.aodh('alarm', 'update', alarm_id, '--enabled', 'False')
        self.aodh('alarm', 'state', 'set', '--state', 'alarm', alarm_id)
        state = _json(self.aodh('alarm', 'state', 'get', alarm_id,
                                '-f', 'json'))
        assert state['state'] == 'alarm'
        history = _json(self.aodh('alarm-history', 'show', alarm_id,
                                  '-f', 'json'))
        kinds = [h['type'] for h in history]
        assert kinds[0] == 'state transition' and kinds[-1] == 'creation'
        assert 'rule change' in kinds
        # Another project's member sees nothing of it.
        rc, out = alarming.aodh('alarm', 'show', alarm_id,
                                user=alarming.OTHER[0],
                                password=alarming.OTHER[1],
                                project=alarming.OTHER[2])
        assert rc != 0 and '404' in out, out
        rc, out = alarming.aodh('alarm', 'list', '-f', 'json',
                                user=alarming.OTHER[0],
                                password=alarming.OTHER[1],
                                project=alarming.OTHER[2])
        assert rc == 0 and _json(out) == [], out
        # A member's Gnocchi search is narrowed to its project's
        # resources: created by it, or by the project Ceilometer writes as
        # (looked up in Keystone) for it -- as Aodh narrows it.
        rc, out = alarming.aodh(
            'alarm', 'create', '--name', 'group', '--type',
            'gnocchi_aggregation_by_resources_threshold', '--metric', 'cpu',
            '--resource-type', 'instance', '--query',
            '{"=": {"server_group": "g1"}}', '--aggregation-method', 'mean',
            '--threshold', '50', '-f', 'json', user=alarming.OTHER[0],
            password=alarming.OTHER[1], project=alarming.OTHER[2])
        assert rc == 0, out
        made = _json(out)
        service = alarming.session().get(
            '/projects?name=service', endpoint_filter=alarming.KS).json()[
                'projects'][0]['id']
        assert json.loads(made['query']) == {'and': [
            {'or': [{'=': {'created_by_project_id': made['project_id']}},
                    {'and': [{'=': {'created_by_project_id': service}},
                             {'=': {'project_id': made['project_id']}}]}]},
            {'=': {'server_group': 'g1'}}]}, made
        # No token: 401 from auth_token, nothing else said.
        resp = requests.get(alarming.API_URL + '/v2/alarms', timeout=10)
        assert resp.status_code == 401
        self.aodh('alarm', 'delete', alarm_id)
        rc, out = alarming.aodh('alarm', 'show', alarm_id)
        assert rc != 0 and '404' in out, out

    def test_trust_action_signs_with_a_trust_and_the_trust_goes(self):
        peer = http_peer.HttpPeer().start()
        self.addCleanup(peer.stop)
        out = self.aodh('alarm', 'create', '--name', 'always', '--type',
                        'prometheus', '--query', 'max(up)', '--threshold',
                        # Not 0: aodhclient takes 0 for "not given".
                        '0.5', '--comparison-operator', 'gt',
                        '--alarm-action', 'trust+http://127.0.0.1:%d/hook'
                        % peer.port, '-f', 'json')
        alarm = _json(out)
        # The trust id is scrubbed from what the API says ...
        assert alarm['alarm_actions'] == [
            'trust+http://127.0.0.1:%d/hook' % peer.port], alarm
        sess = alarming.session()
        me = sess.get_user_id()
        trusts = sess.get('/OS-TRUST/trusts?trustor_user_id=%s' % me,
                          endpoint_filter=alarming.KS).json()['trusts']
        ours = [t for t in trusts if t['impersonation']]
        assert ours, trusts
        # ... and the notification comes with a token of that trust.
        assert base.wait_until(lambda: peer.bodies, 60), self.output()[-3000:]
        assert peer.bodies[0]['alarm_id'] == alarm['alarm_id']
        assert peer.bodies[0]['current'] == 'alarm'
        token = peer.headers[0]['X-Auth-Token']
        checked = sess.get('/auth/tokens', endpoint_filter=alarming.KS,
                           headers={'X-Subject-Token': token}).json()
        trust = checked['token']['OS-TRUST:trust']
        assert trust['id'] in {t['id'] for t in ours}
        assert trust['trustor_user']['id'] == me
        self.aodh('alarm', 'delete', alarm['alarm_id'])
        left = sess.get('/OS-TRUST/trusts?trustor_user_id=%s' % me,
                        endpoint_filter=alarming.KS).json()['trusts']
        assert trust['id'] not in {t['id'] for t in left}

    def test_keystone_down_when_a_trust_action_fires(self):
        # The agent signs its trust tokens at a Keystone of this test's
        # own (same database and keys), which the test stops.
        spare = heat.SpareKeystone(base.free_port(),
                                   os.path.join(self.tmpdir, 'keystone'))
        spare.start()
        self.addCleanup(spare.stop)
        with open(self.conf_file, 'a') as f:
            f.write(heat.service_credentials(spare.url))
        self.proc.terminate()
        self.proc.wait(30)
        self.start()
        assert base.wait_until(self._api_up, 60), self.output()
        peer = http_peer.HttpPeer().start()
        self.addCleanup(peer.stop)
        group = uuid.uuid4().hex
        alarm = _json(self.aodh(
            'alarm', 'create', '--name', 'load', '--type', 'prometheus',
            '--query', 'max(tl_load{group="%s"})' % group, '--threshold',
            '50', '--comparison-operator', 'gt', '--alarm-action',
            'trust+http://127.0.0.1:%d/hook?retry_max_delay=0.5' % peer.port,
            '-f', 'json'))
        spare.stop()
        alarming.push_load(group, 95)
        # The transition is saved; its notification waits for a token.
        assert base.wait_until(lambda: _json(self.aodh(
            'alarm', 'show', alarm['alarm_id'], '-f', 'json'))['state']
            == 'alarm', 60)
        assert base.wait_until(lambda: (self.actions('failing_seconds')
                                        or 0) > 0, 60), self.output()[-3000:]
        assert peer.bodies == []
        spare.start()
        assert base.wait_until(lambda: peer.bodies, 60), self.output()[-3000:]
        # Once: the delivery published one item and holds nothing more.
        assert base.wait_until(lambda: self.actions('pending') == 0, 30)
        assert self.actions('published_total') == 1
        assert self.actions('received_total') == 1
        assert self.actions('dropped_total') is None
        assert [b['alarm_id'] for b in peer.bodies] == [alarm['alarm_id']]
        assert peer.bodies[0]['current'] == 'alarm'

    def actions(self, name):
        """A delivery metric of the agent's alarm actions."""
        return test_agent.metric(self.get('/metrics')[1],
                                 'telemetry_delivery_' + name,
                                 kind='actions')

    def alarm(self, stack, resource):
        return _json(self.aodh('alarm', 'show', stack.physical_id(resource),
                               '-f', 'json'))

    def test_stack_lifecycle_drives_the_alarms_and_the_group(self):
        group = uuid.uuid4().hex
        sess = alarming.session()
        stack = heat.Stack(sess, template=SCALING % {'group': group})
        self.addCleanup(stack.delete)
        made = {name: self.alarm(stack, name) for name in ALARMS}
        assert made['load_high']['type'] == 'prometheus'
        assert made['load_high']['threshold'] == 50.0
        assert made['load_high']['alarm_actions'][0].startswith(
            'trust+http://127.0.0.1:18004/v1/')
        assert made['cpu_alarm_high']['type'] == \
            'gnocchi_aggregation_by_resources_threshold'
        assert json.loads(made['cpu_alarm_high']['query']) == {
            '=': {'server_group': stack.id}}
        assert made['both_high']['type'] == 'composite'
        me = sess.get_user_id()
        # High load: the trust+ signal_url grows the group.
        alarming.push_load(group, 95)
        assert stack.wait_size(3, 90), (stack.size(), self.alarm(
            stack, 'load_high'), self.output()[-3000:])
        assert self.alarm(stack, 'both_high')['state'] == 'alarm'
        # Low load: the pre-signed alarm_url shrinks it.
        alarming.push_load(group, 5)
        assert stack.wait_size(1, 90), (stack.size(), self.alarm(
            stack, 'load_low'))
        # A stack update changes the threshold in place.
        stack.action('update', {'parameters': {'high': 70}})
        assert self.alarm(stack, 'load_high')['threshold'] == 70.0
        # Suspend disables every alarm, resume enables them again.
        stack.action('suspend')
        assert not any(self.alarm(stack, n)['enabled'] for n in ALARMS)
        stack.action('resume')
        assert all(self.alarm(stack, n)['enabled'] for n in ALARMS)
        # Delete: the alarms go, and the trusts they held with them.
        ids = [stack.physical_id(n) for n in ALARMS]
        # The trusts our alarms hold, read where the API keeps them (its
        # answers scrub them) -- not every trust made meanwhile: Heat makes
        # its own for the stack, and deletes them on its own time.
        held = self.trust_ids(ids)
        assert len(held) == 2, held     # load_high's and cpu_alarm_high's
        stored = {t['id'] for t in sess.get(
            '/OS-TRUST/trusts?trustor_user_id=%s' % me,
            endpoint_filter=alarming.KS).json()['trusts']}
        assert held <= stored, (held, stored)
        stack.delete()
        assert base.wait_until(lambda: stack.status() in (
            'DELETE_COMPLETE', 'DELETE_FAILED') if self._exists(stack)
            else True, 120)
        for alarm_id in ids:
            rc, out = alarming.aodh('alarm', 'show', alarm_id)
            assert rc != 0 and '404' in out, out
        left = {t['id'] for t in sess.get(
            '/OS-TRUST/trusts?trustor_user_id=%s' % me,
            endpoint_filter=alarming.KS).json()['trusts']}
        assert not held & left, (held, left)

    def trust_ids(self, alarm_ids):
        """The trust ids in these alarms' stored action URLs."""
        from urllib import parse

        from telemetry_lib.alarm.db import store
        db = store.AlarmDB(self.db_url).start()
        try:
            return {parse.urlsplit(url).username
                    for alarm_id in alarm_ids
                    for field in ('alarm_actions', 'ok_actions',
                                  'insufficient_data_actions')
                    for url in db.get(alarm_id)[field]
                    if url.startswith('trust+')}
        finally:
            db.close()

    @staticmethod
    def _exists(stack):
        try:
            stack.status()
            return True
        except Exception:
            return False

    def test_trust_heat_action_replaces_an_unhealthy_member(self):
        # The API makes the trust of a trust+heat:// action as Aodh does;
        # the body is what Aodh's loadbalancer_member_health evaluator
        # sends (no Octavia here to make one), its member a resource inside
        # one of the group's members.
        out = self.aodh('alarm', 'create', '--name', 'heal', '--type',
                        'prometheus', '--query', 'max(up)', '--threshold',
                        '0.5', '--enabled', 'False', '--alarm-action',
                        'trust+heat://', '-f', 'json')
        alarm = _json(out)
        # Scrubbed of its trust as Aodh scrubs it (urlunsplit drops the
        # '//' of a URL without a host: Aodh 23 says 'trust+heat:' too).
        assert alarm['alarm_actions'] == ['trust+heat:'], alarm
        (trust,) = self.trust_ids([alarm['alarm_id']])
        sess = alarming.session()
        stack = heat.Stack(sess, template=HEALING)
        self.addCleanup(stack.delete)
        group = stack.physical_id('group')
        before = self.members(sess, stack)
        assert len(before) == 2, before
        sick_member, sick = sorted(before.items())[0]
        url = 'trust+heat://%s@' % trust
        conf = self.conf_with_credentials()
        from telemetry_lib.alarm import actions
        d = actions.build(conf, url)
        d.start()
        self.addCleanup(d.close, 5)
        d.put([(alarm['alarm_id'], {
            'alarm_id': alarm['alarm_id'], 'alarm_name': 'heal',
            'severity': 'low', 'previous': 'ok', 'current': 'alarm',
            'reason': 'member down', 'reason_data': {
                'type': 'loadbalancer_member_health', 'stack_id': stack.id,
                'asg_id': group, 'unhealthy_members': [{'id': sick}]}})])
        assert d.flush(60), d.stats()
        st = d.stats()
        assert st.published == 1 and st.balanced, st
        # Heat replaces the member marked unhealthy, and only that one.
        assert base.wait_until(
            lambda: stack.status() == 'UPDATE_COMPLETE' and sick not in
            self.members(sess, stack).values(), 120, interval=0.5), (
                stack.status(), self.members(sess, stack))
        after = self.members(sess, stack)
        assert len(after) == 2 and sick not in after.values(), after
        kept = {m: p for m, p in before.items() if m != sick_member}
        assert set(kept.values()) <= set(after.values()), (before, after)

    def members(self, sess, stack):
        """``{member name in the group: physical id of its resource}``."""
        found = sess.get('/stacks/%s/%s/resources?nested_depth=3'
                         % (stack.name, stack.id),
                         endpoint_filter=heat.Stack.ENDPOINT).json()
        return {r['parent_resource']: r['physical_resource_id']
                for r in found['resources']
                if r['resource_type'] == 'OS::Heat::TestResource'}

    def conf_with_credentials(self):
        from oslo_config import cfg

        from telemetry_lib import opts
        conf = cfg.ConfigOpts()
        opts.register_all(conf)
        path = os.path.join(self.tmpdir, 'credentials.conf')
        with open(path, 'w') as f:
            f.write(heat.service_credentials())
        conf(['--config-file', path], project='telemetry_lib')
        conf.set_override('state_path', self.tmpdir)
        return conf
