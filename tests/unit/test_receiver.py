"""The Alertmanager receiver: auth, payloads, routes, dedupe, cooldown,
and its answer only once actions are queued. Time injected.
"""

import base64
import json
import textwrap

from telemetry_lib.alarm import receiver
from telemetry_lib import ConfigError
from tests import base

ROUTES = '''
routes:
  - name: up
    match: {severity: upscale}
    match_re: {tenant_stack_name: "web-.*"}
    action: "heat://{tenant_stack_name}/{tenant_stack_id}/scale_up"
    repeat: 300
    cooldown: 60
  - name: down
    match: {severity: downscale}
    action: "heat://{tenant_stack_name}/{tenant_stack_id}/scale_down"
'''


def payload(*alerts, group='{}:{alertname="HighCPU"}', status='firing'):
    return json.dumps({'version': '4', 'status': status, 'groupKey': group,
                       'alerts': list(alerts)}).encode()


def alert(severity='upscale', stack='web-1', status='firing', **labels):
    labels.update(severity=severity, tenant_stack_name=stack,
                  tenant_stack_id='id-1', alertname='HighCPU')
    return {'status': status, 'labels': labels, 'fingerprint': 'f1',
            'annotations': {'summary': 'CPU high'}}


class FakeDelivery:
    def __init__(self, url, accept=True):
        self.name, self.url, self.items, self.accept = url, url, [], accept

    def put(self, items):
        if not self.accept:
            return 0
        self.items.extend(items)
        return len(items)

    def stats(self):
        class St:
            pending = len(self.items)
        return St()


class ReceiverTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.conf.set_override('bearer_tokens', ['tok-1'], group='receiver')
        self.conf.set_override('username', 'am', group='receiver')
        self.conf.set_override('password', 'pw', group='receiver')
        self.now = [1000.0]
        self.deliveries = {}
        path = self.write_file('routes.yaml', textwrap.dedent(ROUTES))
        self.rcv = receiver.Receiver(self.conf, receiver.load_routes(path),
                                     self.delivery,
                                     clock=lambda: self.now[0])

    def delivery(self, url):
        return self.deliveries.setdefault(url, FakeDelivery(url))

    def post(self, body, auth='Bearer tok-1'):
        status, _, text = self.rcv.handle({'Authorization': auth}, body)
        return status, json.loads(text)

    def sent(self):
        return {url: len(d.items) for url, d in self.deliveries.items()}


class TestReceiver(ReceiverTest):

    def test_auth_required_bearer_or_basic(self):
        assert self.post(payload(alert()), auth='')[0] == 401
        assert self.post(payload(alert()), auth='Bearer nope')[0] == 401
        basic = 'Basic ' + base64.b64encode(b'am:pw').decode()
        assert self.post(payload(alert()), auth=basic)[0] == 200
        assert self.rcv.counts['rejected_auth'] == 2
        assert self.sent() == {'heat://web-1/id-1/scale_up?spool=true': 1}

    def test_bad_payloads_are_400_and_counted(self):
        for body in (b'{', b'[]', b'{"alerts": 3}',
                     json.dumps({'version': '3', 'alerts': []}).encode()):
            assert self.post(body)[0] == 400
        assert self.rcv.counts['rejected_bad'] == 4
        assert self.sent() == {}

    def test_routes_match_each_alert_on_its_own_labels(self):
        status, _ = self.post(payload(
            alert(), alert('downscale', stack='db-1'),
            alert('upscale', stack='db-2'), alert('other')))
        assert status == 200
        assert self.sent() == {
            'heat://web-1/id-1/scale_up?spool=true': 1,
            'heat://db-1/id-1/scale_down?spool=true': 1}
        assert self.rcv.counts['alerts_unmatched'] == 2

    def test_resends_within_the_window_do_not_act_twice(self):
        for _ in range(3):
            assert self.post(payload(alert()))[0] == 200
        self.now[0] += 299
        self.post(payload(alert()))
        assert self.sent() == {'heat://web-1/id-1/scale_up?spool=true': 1}
        assert self.rcv.counts['alerts_deduplicated'] == 3
        self.now[0] += 2            # window over, cooldown long over
        self.post(payload(alert()))
        assert self.sent() == {'heat://web-1/id-1/scale_up?spool=true': 2}

    def test_cooldown_per_target(self):
        self.post(payload(alert(), group='g1'))
        self.now[0] += 10
        self.post(payload(alert(), group='g2'))      # another group
        assert self.rcv.counts['alerts_cooldown'] == 1
        assert self.sent() == {'heat://web-1/id-1/scale_up?spool=true': 1}

    def test_resolved_ignored_unless_asked(self):
        self.post(payload(alert(status='resolved'), status='resolved'))
        assert self.sent() == {}
        assert self.rcv.counts['alerts_resolved_ignored'] == 1

    def test_503_when_the_action_cannot_be_queued(self):
        url = 'heat://web-1/id-1/scale_up?spool=true'
        self.deliveries[url] = FakeDelivery(url, accept=False)
        status, body = self.post(payload(alert()))
        assert status == 503 and 'refused' in body['message']
        # Not remembered: Alertmanager's re-send is acted on.
        self.deliveries[url].accept = True
        assert self.post(payload(alert()))[0] == 200
        assert len(self.deliveries[url].items) == 1

    def test_label_values_cannot_reshape_the_url(self):
        self.post(payload(alert(stack='web-x/../../evil?spool=false')))
        assert list(self.sent()) == [
            'heat://web-x%2F..%2F..%2Fevil%3Fspool%3Dfalse/id-1/'
            'scale_up?spool=true']


class TestRoutesFile(base.TestCase):

    def test_errors(self):
        for text, words in (
                ('routes: [{name: a, action: "heat://{x-y}/p"}]',
                 'label names'),
                ('routes: [{name: a, action: "x://", match_re: {a: "("}}]',
                 'not a regular expression'),
                ('routes: [{name: a}]', "field 'action'"),
                ('routes: [{name: a, action: "x://", repeat: .nan}]',
                 "field 'repeat'")):
            path = self.write_file('r.yaml', text)
            with self.assertRaises(ConfigError) as ctx:
                receiver.load_routes(path)
            assert words in str(ctx.exception), str(ctx.exception)

    def test_credentials_are_required(self):
        with self.assertRaises(ConfigError):
            receiver.Receiver(self.conf, [], lambda url: None)


class TestBadTargets(ReceiverTest):

    def test_a_label_that_makes_no_url_is_counted_not_raised(self):
        path = self.write_file('bad.yaml', 'routes:\n  - name: r\n'
                               '    match: {severity: upscale}\n'
                               '    action: "http://h:{port}/x"\n')
        self.rcv.routes = receiver.load_routes(path)
        status, _ = self.post(payload(dict(alert(), labels={
            'severity': 'upscale', 'port': 'notaport'})))
        assert status == 200
        assert self.rcv.counts['actions_bad_url'] == 1 and self.sent() == {}


class TestHistory(ReceiverTest):

    def test_each_decision_is_kept_bounded_and_masked(self):
        import os
        from telemetry_lib.alarm import state
        store = state.StateStore(os.path.join(self.tmpdir, 'a.sqlite'),
                                 keep_webhooks=5)
        self.addCleanup(store.close)
        self.rcv.store = store
        routes = self.write_file('r2.yaml', textwrap.dedent('''
            routes:
              - name: hook
                match: {severity: upscale}
                action: "https://h/x?token={tenant_stack_id}"
        '''))
        self.rcv.routes = receiver.load_routes(routes)
        self.post(payload(alert(), alert('none'), {'labels': 3}))
        self.post(payload(alert()))
        rows = store.webhooks()
        assert [(r['alert'], r['route'], r['outcome']) for r in rows] == [
            ('HighCPU', 'hook', 'alerts_deduplicated'),
            ('', '', 'alerts_malformed'),
            ('HighCPU', '', 'alerts_unmatched'),
            ('HighCPU', 'hook', 'actions_queued')]
        assert rows[3]['target'] == 'https://h/x?token=***&spool=true'
        for _ in range(5):
            self.post(payload(alert()))
        assert len(store.webhooks()) == 5
        assert self.post(payload(alert()), auth='')[0] == 401
        assert len(store.webhooks()) == 5       # counted, not kept


class TestIncidentsAndTargets(ReceiverTest):

    def test_a_new_incident_in_the_repeat_window_acts_again(self):
        # Issue 20 item 12: resolved, then firing again 25 s later (a
        # second spike): Alertmanager gives it a new startsAt.
        first = dict(alert(), startsAt='2026-12-05T10:00:00Z')
        assert self.post(payload(first))[0] == 200
        self.now[0] += 10
        self.post(payload(first))                       # a re-send
        assert self.rcv.counts['alerts_deduplicated'] == 1
        self.now[0] += 61                               # past the cooldown
        second = dict(alert(), startsAt='2026-12-05T10:01:11Z')
        assert self.post(payload(second))[0] == 200
        assert self.sent() == {'heat://web-1/id-1/scale_up?spool=true': 2}

    def test_targets_are_bounded(self):
        # Issue 20 item 9: 300 alerts with 300 distinct targets made 300
        # deliveries, threads and spools.
        self.conf.set_override('max_targets', 5, group='receiver')
        released = []

        def release(url):
            released.append(url)
            self.deliveries.pop(url, None)
        rcv = receiver.Receiver(self.conf, self.rcv.routes, self.delivery,
                                clock=lambda: self.now[0],
                                release=release)
        alerts = [alert(stack='web-%d' % i) for i in range(300)]
        # Every target keeps an action waiting (FakeDelivery never
        # sends): none can give its place up.
        status, _, _ = rcv.handle({'Authorization': 'Bearer tok-1'},
                                  payload(*alerts))
        assert status == 200
        assert len(self.deliveries) == 5
        assert rcv.counts['actions_refused_targets'] == 295
        assert released == []
        # Once their actions are sent, the longest unused ones make room.
        for d in self.deliveries.values():
            d.items.clear()
        self.now[0] += 1000
        rcv.handle({'Authorization': 'Bearer tok-1'},
                   payload(*[alert(stack='web-new-%d' % i) for i in range(3)]))
        assert len(released) == 3 and len(self.deliveries) == 5
        assert rcv.counts['targets_evicted'] == 3
        assert len(rcv.targets()) == 5

    def test_without_a_release_a_full_receiver_refuses(self):
        self.conf.set_override('max_targets', 2, group='receiver')
        rcv = receiver.Receiver(self.conf, self.rcv.routes, self.delivery,
                                clock=lambda: self.now[0])
        rcv.handle({'Authorization': 'Bearer tok-1'}, payload(
            *[alert(stack='web-%d' % i) for i in range(4)]))
        assert len(self.deliveries) == 2
        assert rcv.counts['actions_refused_targets'] == 2
