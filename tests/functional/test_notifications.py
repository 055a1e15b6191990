"""The notification listener on a real RabbitMQ, with real-shaped
notifications sent by oslo.messaging's Notifier: samples and events compared
with Ceilometer 27's converters, Gnocchi's resource lifecycle, STF events at
an AMQP 1.0 peer, and no loss when a publisher is down or the agent killed.
"""

import collections
import datetime
import json
import os
import signal
import textwrap
import time
import uuid

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.formats import ceilometer as ceilometer_format
from telemetry_lib.formats import stf
from telemetry_lib.notification import listener as listener_mod
from telemetry_lib.url import TelemetryURL
from tests import base
from tests.functional import ceilometer_notifications as reference
from tests.functional.http_peer import HttpPeer
from tests.functional import notification_bus as bus
from tests.functional import rabbit
from tests.functional import test_agent
from tests.functional.test_agent import AgentTest
from tests.functional.test_agent import metric
from tests.functional import test_gnocchi

UTC = datetime.timezone.utc
NO_POLLING = '''
sources:
  - name: none
    interval: 3600
    meters: ["no.such.meter"]
'''


class NotificationAgentTest(AgentTest):

    def setUp(self):
        super().setUp()
        self.write_file('polling.yaml', NO_POLLING)
        self.topic = 'tl_notifications_%s' % uuid.uuid4().hex[:8]
        self.pool = 'tl-agent-%s' % uuid.uuid4().hex[:8]
        self.services = bus.Services(self.topic)
        self.addCleanup(self.services.close)

    def configure(self, samples, events, extra=''):
        """Pipelines sending every sample to ``samples`` and every event to
        ``events`` (lists of publisher URLs).
        """
        def pipeline(kind, urls):
            return textwrap.dedent('''
                sources:
                  - name: all
                    %s: ["*"]
                    sinks: [all]
                sinks:
                  - name: all
                    publishers: %s
            ''') % ('meters' if kind == 'samples' else 'events',
                    json.dumps(urls))
        p = self.write_file('pipeline.yaml', pipeline('samples', samples))
        e = self.write_file('event_pipeline.yaml', pipeline('events', events))
        with open(self.conf_file, 'a') as f:
            f.write(textwrap.dedent('''
                [pipeline]
                pipeline_cfg_file = %s
                event_pipeline_cfg_file = %s
                [notification]
                messaging_urls = %s
                topics = %s
                pool = %s
                batch_timeout = 0.2
                requeue_delay = 0.2
            ''') % (p, e, bus.URL, self.topic, self.pool) + extra)

    def counts(self, name, **labels):
        return metric(self.get('/metrics')[1],
                      'telemetry_notification_%s_total' % name, **labels)

    def start(self, pipeline=None):
        proc = super().start(pipeline)
        # The agent binds its queue to each exchange and priority after
        # /healthz answers; a notification sent before its binding exists
        # has nowhere to go (as on any bus).
        wanted = 15 * len(listener_mod.PRIORITIES)
        assert base.wait_until(lambda: bus.bindings(self.pool) >= wanted,
                               60, interval=0.5), self.output()
        return proc

    def diagnose(self):
        page = self.get('/metrics')[1]
        return '%s\n%s' % (self.output(), '\n'.join(
            line for line in page.splitlines()
            if line.startswith(('telemetry_notification',
                                'telemetry_delivery_published',
                                'telemetry_delivery_failed',
                                'telemetry_delivery_dropped'))))

    def total(self, name):
        """A per-event-type counter summed over the types."""
        page = self.get('/metrics')[1]
        return sum(float(line.rsplit(' ', 1)[1]) for line in
                   page.splitlines() if line.startswith(
                       'telemetry_notification_%s_total{' % name))


def _wire_samples(path):
    with open(path) as f:
        return [ceilometer_format.sample_from_wire(json.loads(line))
                for line in f if line.strip()]


def _wire_events(path):
    with open(path) as f:
        return [ceilometer_format.event_from_wire(json.loads(line))
                for line in f if line.strip()]


def _stf_trait(name, dtype, value):
    """A Ceilometer trait as STF's format carries it (formats/stf.py)."""
    if dtype == 3:
        return [name, 1, repr(float(value))]
    if dtype == 4:
        return [name, 4, value.replace(tzinfo=value.tzinfo or UTC
                                       ).astimezone(UTC).isoformat()]
    return [name, dtype, value]


class TestAgainstCeilometer(NotificationAgentTest):

    def test_samples_and_events_to_gnocchi_stf_and_files(self):
        gnocchi = test_gnocchi.MAIN.start()
        queue = rabbit.unique_queue('stf-events')
        receiver = rabbit.Receiver(rabbit.MAIN, queue)
        self.addCleanup(receiver.close)
        samples_file = os.path.join(self.tmpdir, 'samples.json')
        events_file = os.path.join(self.tmpdir, 'events.json')
        gnocchi_url = 'gnocchi://%s?max_latency=0.2' % gnocchi.host
        self.configure(
            ['file://%s?max_latency=0.1' % samples_file, gnocchi_url],
            ['file://%s?max_latency=0.1' % events_file, gnocchi_url,
             'amqp1://%s/%s?max_latency=0.1' % (rabbit.MAIN.url, queue)])
        capture = bus.Capture(self.topic)
        self.addCleanup(capture.close)
        self.start()
        fixtures = bus.fresh_fixtures(reference.notifications())
        client = gnocchi_client.make_client(
            self.conf, TelemetryURL.parse('gnocchi://%s' % gnocchi.host))
        by_type = {b['event_type']: b for b in fixtures}
        instance_id = by_type['compute.instance.create.end']['payload'][
            'instance_id']

        def resource(kind, rid):
            try:
                return client.resource.get(kind, rid)
            except Exception:
                return None
        # A server lives a while before it is deleted: the delete events go
        # once Gnocchi knows the resources they end.
        first = [b for b in fixtures if '.delete.' not in b['event_type']
                 and b['event_type'] != 'image.delete']
        for body in first:
            self.services.send(body)
        volume_id = by_type['volume.create.end']['payload']['volume_id']
        image_id = by_type['image.upload']['payload']['id']
        assert base.wait_until(lambda: resource('instance', instance_id)
                               and resource('volume', volume_id)
                               and resource('image', image_id), 60), \
            self.diagnose()
        for body in fixtures:
            if body not in first:
                self.services.send(body)
        received = capture.wait_for(len(fixtures))
        assert len(received) == len(fixtures)
        assert base.wait_until(
            lambda: self.total('converted') == len(fixtures), 60), \
            self.diagnose()

        # Every sample and event is what Ceilometer 27 makes of the same
        # notification, with the same files.
        c_samples, c_event = reference.ceilometer()
        expected_samples = sorted(
            json.dumps(reference.sample_form(s), sort_keys=True)
            for body in received for s in c_samples(body))
        expected_events = {
            e.message_id: e for e in (
                c_event(body['priority'], body) for body in received)}
        assert base.wait_until(lambda: os.path.exists(events_file) and len(
            _wire_events(events_file)) == len(received), 30)
        assert base.wait_until(lambda: len(_wire_samples(samples_file))
                               == len(expected_samples), 30)
        got = sorted(json.dumps(reference.sample_form(s), sort_keys=True)
                     for s in _wire_samples(samples_file))
        assert got == expected_samples
        assert len(got) > 50
        for event in _wire_events(events_file):
            assert reference.event_form(event) == reference.event_form(
                expected_events[event.message_id])

        # STF's event format at the AMQP 1.0 peer.
        stf_events = {}
        deadline = time.monotonic() + 30
        while len(stf_events) < len(received) and \
                time.monotonic() < deadline:
            for msg in receiver.drain(quiet=1.0):
                inner = stf.decode_envelope(msg.body)
                assert inner['event_type'] == 'event'
                for e in inner['payload']:
                    stf_events[e['message_id']] = e
            receiver.messages.clear()
        assert set(stf_events) == set(expected_events)
        for mid, e in stf_events.items():
            theirs = expected_events[mid]
            assert e['event_type'] == theirs.event_type
            assert sorted(map(tuple, e['traits'])) == sorted(
                tuple(_stf_trait(t.name, t.dtype, t.value))
                for t in theirs.traits if t.value is not None)

        # Gnocchi: resources created from samples, the flavor updated by a
        # later notification, ended by the delete events.
        def ended(kind, rid):
            """The ended_at a delete event gave the resource. Read from its
            history: Gnocchi's metricd restores (un-ends) a resource that
            receives a measure newer than its end, as the samples of a
            delete.end notification are.
            """
            try:
                history = client.resource.history(kind, rid)
            except Exception:
                return None
            return next((r['ended_at'] for r in history if r['ended_at']),
                        None)
        assert base.wait_until(lambda: ended('instance', instance_id), 60), \
            self.diagnose()
        (deleted,) = [b for b in received if b['event_type']
                      == 'compute.instance.delete.start']
        assert ended('instance', instance_id).startswith(
            deleted['metadata']['timestamp'].replace(' ', 'T')[:19])
        assert base.wait_until(lambda: ended('volume', volume_id), 60)
        assert base.wait_until(lambda: ended('image', image_id), 60)
        instance = resource('instance', instance_id)
        assert instance['flavor_name'] == 'm1.medium'
        assert {'memory', 'vcpus', 'disk.root.size'} <= set(
            instance['metrics'])
        assert self.total('poisoned') == 0


class TestNoLoss(NotificationAgentTest):

    def _volume_notes(self, n, prefix):
        run = uuid.uuid4().hex[:8]
        return [{'priority': 'INFO', 'event_type': 'volume.exists',
                 'publisher_id': 'volume.host',
                 'ctxt': {'user_id': 'u', 'project_id': 'p'},
                 'payload': {'volume_id': '%s-%s-%d' % (prefix, run, i),
                             'size': i, 'tenant_id': 'p', 'user_id': 'u'}}
                for i in range(n)]

    def test_publisher_down_leaves_notifications_on_the_bus(self):
        peer = HttpPeer()
        self.configure(
            ['%s?max_queue_samples=50&max_latency=0.1'
             '&retry_initial_delay=0.1&retry_max_delay=0.5' % peer.url],
            ['file://%s/events.json?max_latency=0.1' % self.tmpdir],
            extra='batch_size = 20\n')
        self.start()
        notes = self._volume_notes(600, 'down')
        for body in notes:
            self.services.send(body)
        # The publisher is down: its queue fills to the high water, the
        # rest waits in RabbitMQ, none is dropped.
        assert base.wait_until(lambda: (self.total('requeued') or 0) > 0,
                               30), self.output()
        depth = bus.ready_messages(self.pool)
        assert depth >= 600 - 40 - 2 * 20 - 20, depth
        page = self.get('/metrics')[1]
        assert 'telemetry_delivery_dropped_total{' not in page
        peer.start()
        self.addCleanup(peer.stop)
        assert base.wait_until(lambda: len(peer.items()) >= 600, 90), (
            len(peer.items()), self.output())
        assert base.wait_until(lambda: bus.ready_messages(self.pool) == 0,
                               30)
        ids = collections.Counter(i['resource_id'] for i in peer.items())
        assert set(ids) == {n['payload']['volume_id'] for n in notes}
        assert self.total('converted') == 600
        page = self.get('/metrics')[1]
        assert 'telemetry_delivery_dropped_total{' not in page
        assert self.stop() == 0

    def test_kill_9_mid_stream_loses_nothing(self):
        peer = HttpPeer().start()
        self.addCleanup(peer.stop)
        # Acknowledged means queued: in memory that survives a publisher
        # outage, on disk (the spool) a crash too.
        self.configure(['%s?max_latency=0.05&spool=true' % peer.url],
                       ['file://%s/events.json' % self.tmpdir],
                       extra='workers = 2\n[DEFAULT]\nstate_path = %s\n'
                       % self.tmpdir)
        self.start()
        notes = self._volume_notes(3000, 'kill')
        for body in notes[:1500]:
            self.services.send(body)
        assert base.wait_until(lambda: len(peer.items()) > 200, 60)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for body in notes[1500:]:
            self.services.send(body)
        self.start()
        assert base.wait_until(lambda: len({
            i['resource_id'] for i in peer.items()}) == 3000, 120), (
            len({i['resource_id'] for i in peer.items()}), self.diagnose())
        items = peer.items()
        ids = collections.Counter(i['id'] for i in items)
        # At least once: every notification's sample arrived; a repeat
        # carries the same sample id (made from the notification's).
        assert len(ids) == 3000
        duplicates = len(items) - len(ids)
        print('kill -9: %d samples delivered twice' % duplicates)
        assert self.stop() == 0

    def test_a_poison_notification_among_ten_thousand(self):
        poison_topic = 'tl_poison_%s' % uuid.uuid4().hex[:8]
        self.configure(['file://%s/samples.json?max_latency=0.2'
                        % self.tmpdir],
                       ['file://%s/events.json?max_latency=0.2'
                        % self.tmpdir],
                       extra='batch_size = 200\npoison_topic = %s\n'
                       % poison_topic)
        dead_letters = bus.Capture(poison_topic, exchanges=['openstack'])
        self.addCleanup(dead_letters.close)
        self.start()
        notes = self._volume_notes(10000, 'poison')
        for i, body in enumerate(notes):
            if i == 5000:
                # No event type: no definition can say what it is.
                self.services.send(dict(body, event_type=''))
                self.services.send_raw('cinder', 'info', '{not json')
            self.services.send(body)
        assert base.wait_until(
            lambda: self.total('converted') == 10000, 120), self.output()
        assert self.total('poisoned') == 1
        assert self.counts('undecodable') == 1
        # The poison one went to the poison topic, whole.
        (dead,) = dead_letters.wait_for(1, 30)
        assert dead['payload']['volume_id'] == notes[5000]['payload'][
            'volume_id']
        assert self.counts('dead_lettered') == 1
        assert bus.ready_messages(self.pool) == 0
        assert 'Traceback' not in self.output()
        assert base.wait_until(lambda: len(_wire_samples(os.path.join(
            self.tmpdir, 'samples.json'))) == 10000, 30)
        assert self.stop() == 0


class TestReload(NotificationAgentTest):

    EVENTS = '''
- event_type: volume.*
  traits:
    volume_id:
      fields: payload.volume_id
%s
'''

    def test_sighup_reloads_the_definitions_a_broken_one_keeps_them(self):
        events_file = os.path.join(self.tmpdir, 'events.json')
        definitions = self.write_file('event_definitions.yaml',
                                      self.EVENTS % '')
        self.configure(['file://%s/samples.json' % self.tmpdir],
                       ['file://%s?max_latency=0.05' % events_file],
                       extra='event_definitions_file = %s\n' % definitions)
        self.start()
        note = {'priority': 'INFO', 'event_type': 'volume.resize.end',
                'publisher_id': 'volume.host', 'ctxt': {},
                'payload': {'volume_id': 'v1', 'size': 20}}

        def events():
            if not os.path.exists(events_file):
                return []
            return _wire_events(events_file)
        self.services.send(note)
        assert base.wait_until(lambda: len(events()) == 1, 30)
        assert events()[0].trait('size') is None

        self.write_file('event_definitions.yaml', self.EVENTS % (
            '    size:\n      type: int\n      fields: payload.size'))
        self.proc.send_signal(signal.SIGHUP)
        assert base.wait_until(lambda: metric(
            self.get('/metrics')[1], 'telemetry_agent_reloads_total',
            result='ok') == 1, 30), self.output()
        self.services.send(note)
        assert base.wait_until(lambda: len(events()) == 2, 30)
        assert events()[1].trait('size') == 20

        self.write_file('event_definitions.yaml', '- event_type: [\n')
        self.proc.send_signal(signal.SIGHUP)
        assert base.wait_until(lambda: metric(
            self.get('/metrics')[1], 'telemetry_agent_reloads_total',
            result='failed') == 1, 30), self.output()
        assert 'event_definitions.yaml:' in self.output()
        self.services.send(note)
        assert base.wait_until(lambda: len(events()) == 3, 30)
        assert events()[2].trait('size') == 20
        assert 'Traceback' not in self.output()
        assert self.stop() == 0


class TestBrokerGone(NotificationAgentTest):

    # A node of its own: the amqp1 outage tests stop theirs, in parallel.
    node = rabbit.Node('telemetry-notify-outage', port=5702, tls_port=5701,
                       dist_port=25702)

    def test_stop_while_rabbitmq_is_down_is_bounded(self):
        node = self.node.start()
        self.configure(['file://%s/samples.json' % self.tmpdir],
                       ['file://%s/events.json' % self.tmpdir])
        with open(self.conf_file) as f:
            text = f.read().replace(bus.URL, 'rabbit://guest:guest@%s/'
                                    % node.url)
        with open(self.conf_file, 'w') as f:
            f.write(text)
        # Not NotificationAgentTest.start: the bindings are on another node.
        test_agent.AgentTest.start(self)
        assert base.wait_until(lambda: bus.queue_exists_on(node, self.pool),
                               30), self.output()
        node.stop()
        # The listener has seen the bus go and is reconnecting now.
        assert base.wait_until(lambda: any(
            word in self.output().lower() for word in (
                'unreachable', 'reconnect', 'connection refused',
                'connection failed')), 60, interval=0.2), self.output()
        started = time.monotonic()
        assert self.stop() == 0, self.output()
        # [agent] shutdown_timeout is 10 s; the listener gets at most 5.
        assert time.monotonic() - started < 15, self.output()
        assert 'Traceback' not in self.output()
        assert 'guest:guest' not in self.output()
