"""Ceilometer's polling IPC both ways, against Ceilometer 27's own code.

Ceilometer's polling agents send what they poll to the notification agent
as ``telemetry.polling`` sample notifications. Ours must take them in place
of ``ceilometer-agent-notification`` -- every sample equal to what was
sent, signatures verified -- and our ``notifier://...?format=ipc`` must
feed an existing Ceilometer notification agent: its ``TelemetryIpc``
endpoint builds from our messages the samples we sent.
"""

import datetime
import json
import os
import threading
import types
import uuid

import oslo_messaging as om

from telemetry_lib import delivery
from telemetry_lib import Sample
from tests import base
from tests.functional import notification_bus as bus
from tests.functional.test_notifications import NotificationAgentTest

UTC = datetime.timezone.utc
SECRET = 'ipc-s3cret'
COUNT = 300
# What a polling manager's task needs of its manager to send.
POLLING_CONF = types.SimpleNamespace(polling=types.SimpleNamespace(
    enable_notifications=True, enable_prometheus_exporter=False))


def ceilometer_samples(n, now):
    from ceilometer import sample as c_sample
    return [c_sample.Sample(
        name='cpu' if i % 2 else 'memory.usage',
        type='cumulative' if i % 2 else 'gauge',
        unit='ns' if i % 2 else 'MB', volume=float(i * 1000 + 0.5),
        user_id='user-%d' % (i % 3), project_id='project-%d' % (i % 4),
        resource_id='instance-%d' % (i % 17),
        timestamp=(now - datetime.timedelta(seconds=n - i)).isoformat(),
        resource_metadata={'host': 'compute-1', 'flavor': {'vcpus': 2},
                           'display_name': 'vm %d' % (i % 17),
                           'user_metadata': {'stack': 'web'}},
        user_name='name-of-user-%d' % (i % 3) if i % 5 else None,
        project_name='name-of-project-%d' % (i % 4) if i % 5 else None)
        for i in range(n)]


class TestCeilometerPollingIntoOurs(NotificationAgentTest):

    def test_every_sample_equal_and_bad_signatures_dropped(self):
        from ceilometer.polling import manager as c_manager
        from ceilometer.publisher import utils as c_utils
        out = os.path.join(self.tmpdir, 'out.json')
        self.configure(['file://%s?max_latency=0' % out,
                        'sqlite://%s/db.sqlite?max_latency=0' % self.tmpdir],
                       ['test://'],
                       extra='[publisher]\ntelemetry_secret = %s\n' % SECRET)
        self.start()
        now = datetime.datetime.now(UTC)
        sent = [c_utils.meter_message_from_counter(s, SECRET)
                for s in ceilometer_samples(COUNT, now)]
        tampered = dict(sent[0], counter_volume=1e9,
                        message_id=str(uuid.uuid4()))
        unsigned = c_utils.meter_message_from_counter(
            ceilometer_samples(1, now)[0], '')
        unsigned['message_id'] = str(uuid.uuid4())
        # Ceilometer 27's polling task sends through its manager's
        # notifier: the same Notifier as Ceilometer's polling manager.
        task = types.SimpleNamespace(manager=types.SimpleNamespace(
            conf=POLLING_CONF,
            notifier=self.services._notifier('ceilometer',
                                             'ceilometer.polling')))
        batches = [sent[i:i + 50] for i in range(0, COUNT, 50)]
        batches[-1] = batches[-1] + [tampered, unsigned]
        for batch in batches:
            c_manager.PollingTask._send_notification(task, batch)

        def written():
            if not os.path.exists(out):
                return 0
            with open(out) as f:
                # Whole lines only: the last may be being written.
                return f.read().count('\n')
        assert base.wait_until(lambda: written() >= COUNT, 60), \
            self.diagnose()
        assert base.wait_until(
            lambda: self.total('bad_signature') == 2, 30), self.diagnose()
        with open(out) as f:
            got = {m['message_id']: m for m in map(json.loads, f)}
        assert len(got) == COUNT, len(got)
        assert tampered['message_id'] not in got
        assert unsigned['message_id'] not in got
        keys = ('counter_name', 'counter_type', 'counter_unit',
                'counter_volume', 'user_id', 'project_id', 'resource_id',
                'resource_metadata', 'source', 'user_name', 'project_name')
        for msg in sent:
            mine = got[msg['message_id']]
            assert {k: mine.get(k) for k in keys} == {
                k: msg.get(k) for k in keys}, (mine, msg)
            assert datetime.datetime.fromisoformat(mine['timestamp']) == \
                datetime.datetime.fromisoformat(msg['timestamp'])
        # And stored: one row per sample.
        # The SQLite sink may trail the file one: wait for it.
        path = os.path.join(self.tmpdir, 'db.sqlite')
        assert base.wait_until(
            lambda: base.stored_measures(path) == COUNT, 60), \
            base.stored_measures(path)
        # No event is made of the polling agents' samples.
        assert self.total('events') == 0
        assert self.stop() == 0


class TestOursIntoCeilometer(base.TestCase):

    def test_ceilometer_telemetry_ipc_builds_our_samples(self):
        from ceilometer.telemetry import notifications as c_notifications
        topic = 'tl_ipc_%s' % uuid.uuid4().hex[:8]
        received = []
        lock = threading.Lock()

        class Endpoint:
            def sample(self, messages):
                with lock:
                    received.extend(messages)
                return om.NotificationResult.HANDLED

        transport = om.get_notification_transport(bus._conf('ceilometer'),
                                                  url=bus.URL)
        self.addCleanup(transport.cleanup)
        pool = 'tl-ceilo-%s' % uuid.uuid4().hex[:8]
        listener = om.get_batch_notification_listener(
            transport, [om.Target(topic=topic, exchange='ceilometer')],
            [Endpoint()], executor='threading', batch_size=100,
            batch_timeout=0.2, pool=pool)
        listener.start()
        self.addCleanup(listener.wait)
        self.addCleanup(listener.stop)
        assert base.wait_until(lambda: bus.bindings(pool) >= 1, 60,
                               interval=0.2)
        now = datetime.datetime.now(UTC)
        ours = [Sample('cpu', 'cumulative', 'ns', i * 1e9,
                       resource_id='instance-%d' % (i % 7),
                       project_id='p', user_id='u',
                       timestamp=now - datetime.timedelta(seconds=i),
                       resource_metadata={'host': 'h', 'n': i},
                       user_name='alice', project_name='demo')
                for i in range(COUNT)]
        self.conf.set_override('telemetry_secret', SECRET, group='publisher')
        d = delivery.build(self.conf, '%s?format=ipc&topic=%s&max_latency=0'
                           % (bus.URL.replace('rabbit://', 'notifier://'),
                              topic)).start()
        d.put(ours)
        assert d.close(30)
        st = d.stats()
        assert st.published == COUNT and st.received == (
            st.published + st.dropped_total + st.pending)

        def built():
            with lock:
                messages = list(received)
            return [s for m in messages for s in
                    c_notifications.TelemetryIpc.build_sample(None, m)]
        assert base.wait_until(lambda: len(built()) >= COUNT, 60)
        with lock:
            assert {m['event_type'] for m in received} == {
                'telemetry.polling'}
            assert {m['publisher_id'] for m in received} == {
                'ceilometer.polling'}
        theirs = {s.id: s for s in built()}
        assert len(theirs) == COUNT
        from ceilometer.publisher import utils as c_utils
        for s in ours:
            c = theirs[s.id]
            assert (c.name, c.type, c.unit, c.volume, c.resource_id,
                    c.user_id, c.project_id, c.resource_metadata,
                    c.user_name, c.project_name) == (
                s.name, s.type, s.unit, s.volume, s.resource_id, s.user_id,
                s.project_id, s.resource_metadata, s.user_name,
                s.project_name)
            assert datetime.datetime.fromisoformat(c.timestamp) == \
                s.timestamp
        # Signed as Ceilometer signs: its verify accepts each message.
        with lock:
            wire = [m for n in received for m in n['payload']['samples']]
        assert len(wire) == COUNT
        assert all(c_utils.verify_signature(m, SECRET) for m in wire)
