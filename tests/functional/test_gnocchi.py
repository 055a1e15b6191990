"""The gnocchi publisher and storage driver against a real Gnocchi whose
measures live in Ceph (tools/gnocchi.sh)."""

import datetime
import os
import subprocess
import time
import uuid

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib import delivery
from telemetry_lib import Event
from telemetry_lib import Sample
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base as storage_base
from telemetry_lib import StorageError
from tests import base
from tests.functional import parity

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, '..', '..', 'tools', 'gnocchi.sh')
DEFINITIONS = os.path.join(HERE, 'data', 'gnocchi_resources.yaml')
CEPH_CONF = os.environ.get('TELEMETRY_CEPH_CONF',
                           '/var/tmp/telemetry-ceph/ceph.conf')
UTC = datetime.timezone.utc


class Gnocchi:
    def __init__(self, port, directory, metricd=True, auth='basic'):
        self.port = port
        self.env = dict(os.environ, TELEMETRY_GNOCCHI_PORT=str(port),
                        TELEMETRY_GNOCCHI_DIR=directory,
                        TELEMETRY_GNOCCHI_METRICD='1' if metricd else '0',
                        TELEMETRY_GNOCCHI_AUTH=auth)

    def _run(self, action):
        out = subprocess.run(['bash', TOOLS, action], env=self.env,
                             capture_output=True, text=True, timeout=900)
        if out.returncode:
            raise RuntimeError('tools/gnocchi.sh %s: %s' % (action,
                                                            out.stderr))
        return dict(line.split('=', 1) for line in out.stdout.splitlines()
                    if '=' in line)

    def start(self):
        self.settings = self._run('start')
        return self

    def stop(self):
        self._run('stop')
        # Wait until the API no longer answers.
        base.wait_until(lambda: subprocess.run(
            ['curl', '-fsS', '-o', '/dev/null', '-u', 'admin:',
             'http://127.0.0.1:%d/v1/status' % self.port]).returncode != 0,
            20)

    @property
    def host(self):
        return '127.0.0.1:%d' % self.port


MAIN = Gnocchi(18041, '/var/tmp/telemetry-gnocchi')
#: An API of its own (same indexer and Ceph) for the outage test.
OUTAGE = Gnocchi(18042, '/var/tmp/telemetry-gnocchi-outage', metricd=False)
#: One behind Keystone (tools/keystone.sh), in its catalog as "metric".
KEYSTONE = Gnocchi(18043, '/var/tmp/telemetry-gnocchi-keystone',
                   metricd=False, auth='keystone')


class GnocchiTest(base.TestCase):

    gnocchi = MAIN

    def setUp(self):
        super().setUp()
        self.gnocchi.start()
        self.prefix = 'tl-%s' % uuid.uuid4().hex[:8]
        self.storage = storage_base.load_storage(
            self.conf, 'gnocchi://%s' % MAIN.host)
        self.addCleanup(self.storage.close)
        self.client = gnocchi_client.make_client(
            self.conf, self.storage._url)

    def build(self, kind='samples', extra=''):
        d = delivery.build(self.conf, 'gnocchi://%s?resources_definition_'
                           'file=%s&max_latency=0&retry_initial_delay=0.05'
                           '&retry_max_delay=0.5%s' % (
                               self.gnocchi.host, DEFINITIONS, extra),
                           kind).start()
        self.addCleanup(d.close, 5)
        # Let the background thread create the archive policy and types.
        writer = d.publisher.writer
        assert base.wait_until(lambda: not writer.pending_policies
                               and not writer.pending_types, 30)
        return d

    def vm(self, i, name, volume, ts, **md):
        metadata = {'display_name': 'vm-%d' % i, 'host': 'compute-0',
                    'flavor': {'name': 'm1.small'}, 'disk_name': 'vda',
                    'instance_id': '%s-vm-%d' % (self.prefix, i)}
        metadata.update(md)
        return Sample(name, 'gauge', 'B', volume, user_id='u', project_id='p',
                      resource_id='%s-vm-%d' % (self.prefix, i),
                      timestamp=ts, resource_metadata=metadata)


class TestPublishAndReadBack(GnocchiTest):

    def test_several_resource_types_arrive_in_ceph(self):
        d = self.build()
        now = int(time.time()) - 30
        sent = {}
        samples = []
        for i in range(3):
            for k in range(5):
                s = self.vm(i, 'memory.usage', 100 * i + k, now + k)
                samples.append(s)
                sent.setdefault((s.resource_id, s.name), []).append(
                    (now + k, float(s.volume)))
        disk = Sample('disk.device.read.bytes', 'cumulative', 'B', 4096,
                      resource_id='%s-vm-0-vda' % self.prefix,
                      timestamp=now, resource_metadata={
                          'disk_name': 'vda',
                          'instance_id': '%s-vm-0' % self.prefix})
        volume = Sample('volume.size', 'gauge', 'GB', 20,
                        resource_id='%s-vol/1' % self.prefix, timestamp=now,
                        resource_metadata={'display_name': 'data'})
        host = Sample('host.cpu.util', 'gauge', '%', 42.5,
                      resource_id='%s-host' % self.prefix, timestamp=now,
                      resource_metadata={'host': 'compute-0'})
        d.put(samples + [disk, volume, host])
        assert d.flush(30)
        assert d.stats().published == 18
        # Read back after metricd processed them (no refresh).
        storage = storage_base.load_storage(
            self.conf, 'gnocchi://%s?refresh=false' % MAIN.host)
        self.addCleanup(storage.close)

        def read(rid, meter):
            return [(p.timestamp.timestamp(), p.value) for p in
                    storage.query(meter, resource_id=rid, granularity=1,
                                  aggregation='mean')]
        for (rid, meter), points in sent.items():
            assert base.wait_until(lambda: read(rid, meter) == points, 60), \
                (rid, read(rid, meter), points)
        assert base.wait_until(lambda: read(
            volume.resource_id, 'volume.size') == [(now, 20.0)], 60)
        assert base.wait_until(lambda: read(
            host.resource_id, 'host.cpu.util') == [(now, 42.5)], 60)
        # '/' is not allowed in a Gnocchi resource id: it became '_'.
        res = self.client.resource.get('tl_volume',
                                       '%s-vol_1' % self.prefix)
        assert res['display_name'] == 'data'
        inst = self.client.resource.get('tl_instance',
                                        '%s-vm-1' % self.prefix)
        assert (inst['display_name'], inst['host'], inst['flavor_name']) \
            == ('vm-1', 'compute-0', 'm1.small')
        disk_res = self.client.resource.get('tl_disk', disk.resource_id)
        assert disk_res['instance_id'] == '%s-vm-0' % self.prefix
        # The measures are in Ceph: metricd wrote the metric's objects.
        metric_id = inst['metrics']['memory.usage']
        objects = subprocess.run(
            ['rados', '-c', CEPH_CONF, '-p', 'gnocchi', 'ls'],
            capture_output=True, text=True, timeout=60).stdout
        assert metric_id in objects
        # Aggregations through the storage driver, over what was sent.
        rid = '%s-vm-2' % self.prefix
        for aggregation in ('mean', 'max', 'min', 'sum', 'count', 'last'):
            got = [(p.timestamp.timestamp(), p.value) for p in storage.query(
                'memory.usage', resource_id=rid, granularity=60,
                aggregation=aggregation)]
            want = aggregate.aggregate(sent[(rid, 'memory.usage')], 60,
                                       aggregation)
            assert got == want, (aggregation, got, want)
        assert self.prefix + '-vm-1' in storage.resources('memory.usage')

    def test_aggregates_across_resources(self):
        d = self.build()
        # A meter of this test alone (no definition: generic resources), so
        # no other test's resources join the aggregate.
        meter = '%s.load' % self.prefix
        now = int(time.time()) // 60 * 60 - 120
        series = []
        for r in range(3):
            points = [(now + 10 * k, float(r * 10 + k)) for k in range(4)]
            series.append(points)
            d.put([Sample(meter, 'gauge', '1', v, resource_id='%s-node-%d'
                          % (self.prefix, r), timestamp=t)
                   for t, v in points])
        assert d.flush(30)
        assert d.stats().published == 12
        # Across resources Gnocchi reads only what metricd processed.
        storage = storage_base.load_storage(self.conf, 'gnocchi://%s'
                                            % MAIN.host)
        self.addCleanup(storage.close)

        def across(aggregation, granularity=60):
            return [(p.timestamp.timestamp(), p.value) for p in
                    storage.query(meter, granularity=granularity,
                                  aggregation=aggregation,
                                  start=_dt(now - 60), stop=_dt(now + 120))]
        want = aggregate.across(series, 60, 'count')
        assert base.wait_until(lambda: across('count') == want, 60), (
            across('count'), want)
        # Each resource has as many measures per bucket, so the mean of
        # the resources' means is the mean of all.
        for aggregation in ('max', 'min', 'sum', 'mean'):
            assert across(aggregation) == aggregate.across(
                series, 60, aggregation), aggregation
        assert across('max', 1) == aggregate.across(series, 1, 'max')

    def test_requests_unknown_created_once_unchanged_never_patched(self):
        d = self.build()
        writer = d.publisher.writer
        ts = time.time() - 60
        before = dict(writer.requests)

        def delta():
            return {k: writer.requests[k] - before.get(k, 0)
                    for k in ('batch', 'create', 'patch')}
        d.put([self.vm(i, 'memory.usage', i, ts) for i in range(4)])
        assert d.flush(30)
        # One batch refused for unknown resources, four created at once,
        # the batch sent again.
        assert delta() == {'batch': 2, 'create': 4, 'patch': 0}
        before = dict(writer.requests)
        d.put([self.vm(i, 'memory.usage', i, ts + 1) for i in range(4)])
        assert d.flush(30)
        assert delta() == {'batch': 1, 'create': 0, 'patch': 0}
        before = dict(writer.requests)
        d.put([self.vm(i, 'memory.usage', i, ts + 2,
                       display_name='renamed' if i == 2 else 'vm-%d' % i)
               for i in range(4)])
        assert d.flush(30)
        assert delta() == {'batch': 1, 'create': 0, 'patch': 1}
        res = self.client.resource.get('tl_instance',
                                       '%s-vm-2' % self.prefix)
        assert res['display_name'] == 'renamed'

    def test_an_event_ends_a_resource_and_its_disks(self):
        d = self.build()
        rid = '%s-vm-0' % self.prefix
        disk = Sample('disk.device.read.bytes', 'cumulative', 'B', 1,
                      resource_id='%s-vda' % rid, timestamp=time.time() - 10,
                      resource_metadata={'disk_name': 'vda',
                                         'instance_id': rid})
        other = disk.replace(resource_id='%s-vm-1-vda' % self.prefix,
                             resource_metadata={'instance_id': 'another'})
        d.put([self.vm(0, 'cpu', 1, time.time() - 10), disk, other])
        assert d.flush(30)
        assert self.client.resource.get('tl_instance', rid)[
            'ended_at'] is None
        events = self.build('events')
        events.put([Event(event_type='compute.instance.delete.start',
                          generated='2030-01-01T00:00:00Z',
                          traits=[('instance_id', 1, rid)])])
        assert events.flush(30)
        assert events.stats().published == 1
        ended = self.client.resource.get('tl_instance', rid)['ended_at']
        assert ended.startswith('2030-01-01T00:00:00')
        # event_associated_resources: its disk ended with it, not another.
        assert self.client.resource.get('tl_disk', disk.resource_id)[
            'ended_at'].startswith('2030-01-01T00:00:00')
        assert self.client.resource.get('tl_disk', other.resource_id)[
            'ended_at'] is None

    def test_bad_archive_policy_costs_only_its_metrics(self):
        d = self.build()
        ts = time.time() - 10
        good = self.vm(0, 'memory.usage', 7, ts)
        bad = Sample('broken.meter', 'gauge', '1', 1,
                     resource_id='%s-host' % self.prefix, timestamp=ts,
                     resource_metadata={'host': 'h'})
        with self.assertLogs('telemetry_lib.delivery.core', 'WARNING') as cm:
            d.put([good, bad])
            assert d.flush(30)
        st = d.stats()
        assert st.published == 1 and st.dropped == {'permanent': 1}
        assert any('archive policy no-such-policy does not exist' in line
                   for line in cm.output), cm.output
        assert d.publisher.adjustments() == {'unknown_archive_policy': 1}
        assert [p.value for p in self.storage.query(
            'memory.usage', resource_id=good.resource_id, granularity=1)] \
            == [7]


class TestGnocchiOutage(GnocchiTest):
    """Against an API of its own, since it is stopped."""

    gnocchi = OUTAGE

    def test_nothing_lost_while_gnocchi_is_down(self):
        d = self.build(extra='&spool=true&spool_dir=%s&max_retries=-1'
                       % self.tmpdir)
        ts = int(time.time()) - 120
        d.put([self.vm(i, 'memory.usage', i, ts) for i in range(5)])
        assert d.flush(30)
        self.gnocchi.stop()
        try:
            d.put([self.vm(i, 'memory.usage', 10 + i, ts + 1)
                   for i in range(5)])
            assert not d.flush(2)
            assert d.stats().pending == 5
        finally:
            self.gnocchi.start()
        d.put([self.vm(i, 'memory.usage', 20 + i, ts + 2) for i in range(5)])
        assert d.flush(60)
        st = d.stats()
        assert st.published == 15 and st.dropped == {} and st.retried > 0
        for i in range(5):
            got = [p.value for p in self.storage.query(
                'memory.usage', resource_id='%s-vm-%d' % (self.prefix, i),
                granularity=1)]
            assert got == [i, 10 + i, 20 + i], got


class TestKeystoneAuth(GnocchiTest):
    """Keystone password auth, as the seed's [keystone_authtoken]."""

    gnocchi = KEYSTONE

    def login(self, password=None):
        ks = self.gnocchi.settings
        self.conf.set_override('auth_mode', 'keystone', 'gnocchi')
        self.conf.set_override('auth_url', ks['TELEMETRY_KEYSTONE_URL'],
                               'gnocchi')
        self.conf.set_override('username', ks['TELEMETRY_KEYSTONE_USER'],
                               'gnocchi')
        self.conf.set_override(
            'password', password or ks['TELEMETRY_KEYSTONE_PASSWORD'],
            'gnocchi')
        self.conf.set_override('interface', 'public', 'gnocchi')

    def test_publish_and_read_back_with_the_catalog_endpoint(self):
        self.login()
        # No host in the URLs: the Keystone catalog says where Gnocchi is.
        d = delivery.build(self.conf, 'gnocchi://?resources_definition_file'
                           '=%s&max_latency=0' % DEFINITIONS).start()
        self.addCleanup(d.close, 5)
        writer = d.publisher.writer
        assert base.wait_until(lambda: not writer.pending_policies
                               and not writer.pending_types, 30)
        ts = int(time.time()) - 30
        d.put([self.vm(i, 'memory.usage', 5 + i, ts) for i in range(3)])
        assert d.flush(30)
        assert d.stats().published == 3 and d.stats().dropped == {}
        storage = storage_base.load_storage(self.conf, 'gnocchi://')
        self.addCleanup(storage.close)
        for i in range(3):
            got = [p.value for p in storage.query(
                'memory.usage', resource_id='%s-vm-%d' % (self.prefix, i),
                granularity=1)]
            assert got == [5 + i], got
        # Created under the Keystone user, not the basic API's "admin" (so
        # Gnocchi derived another UUID from the same original id).
        (res,) = self.client.resource.search(
            resource_type='tl_instance', query={'=': {
                'original_resource_id': '%s-vm-0' % self.prefix}})
        assert res['created_by_user_id'] not in ('', 'admin'), res
        assert res['display_name'] == 'vm-0'

    def test_a_wrong_password_is_retried_not_dropped(self):
        self.login(password='not-the-password')
        d = delivery.build(self.conf, 'gnocchi://%s?resources_definition_'
                           'file=%s&max_latency=0&retry_initial_delay=0.05'
                           '&retry_max_delay=0.2&max_retries=-1'
                           % (self.gnocchi.host, DEFINITIONS)).start()
        self.addCleanup(d.close, 1)
        with self.assertLogs('telemetry_lib.delivery.core', 'WARNING') as cm:
            d.put([self.vm(0, 'memory.usage', 1, time.time())])
            # Keystone hashes the password on every try: slow under load.
            assert base.wait_until(lambda: d.stats().retried > 0, 60)
        st = d.stats()
        assert st.pending == 1 and st.retried > 0 and st.dropped == {}
        assert any('Gnocchi unavailable' in line and '401' in line
                   for line in cm.output), cm.output
        storage = storage_base.load_storage(self.conf, 'gnocchi://%s'
                                            % self.gnocchi.host)
        self.addCleanup(storage.close)
        with self.assertRaises(StorageError) as ctx:
            storage.meters()
        assert ctx.exception.retryable


def _dt(ts):
    return datetime.datetime.fromtimestamp(ts, UTC)


class TestAlarmParity(GnocchiTest):
    """The same threshold alarm over the same samples gives the same
    transitions on Gnocchi (on Ceph) as on the embedded SQLite storage.
    """

    def test_threshold_transitions_match_sqlite(self):
        d = self.build()
        start, end = parity.window(time.time())
        samples = parity.samples(start, lambda v, ts: self.vm(
            0, 'memory.usage', v, ts))
        d.put(samples)
        assert d.flush(30)
        sqlite = storage_base.load_storage(
            self.conf, 'sqlite://%s/parity.sqlite' % self.tmpdir)
        self.addCleanup(sqlite.close)
        sqlite.write(samples)
        rule = parity.rule(samples[0].resource_id)
        assert base.wait_until(lambda: len(rule.statistics(
            self.storage, parity.at(end))) == 3, 60)
        on_sqlite = parity.transitions(rule, sqlite, start)
        assert on_sqlite == parity.transitions(rule, self.storage, start)
        assert [s for s, _ in on_sqlite] == parity.EXPECTED
