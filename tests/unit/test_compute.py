"""The compute meter mapping, without libvirt: one domain's XML and bulk
statistics against the samples Ceilometer's pollsters make from the same
facts (names, types, units, resource ids, volumes, metadata).
"""

import datetime

from telemetry_lib.pollsters.compute import instance
from telemetry_lib.pollsters.compute import meters
from tests import base

NOW = datetime.datetime(2026, 12, 2, 10, 0, tzinfo=datetime.timezone.utc)
UUID = '6f1b4a52-0c3e-4c1e-9d7a-1c2b3d4e5f60'
XML = '''<domain type='kvm' id='7'>
  <name>instance-0000002a</name>
  <uuid>%s</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>web-1</nova:name>
      <nova:flavor name="m1.small" id="f-2">
        <nova:memory>2048</nova:memory><nova:disk>20</nova:disk>
        <nova:swap>0</nova:swap><nova:ephemeral>5</nova:ephemeral>
        <nova:vcpus>2</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="u-1">alice</nova:user>
        <nova:project uuid="p-1">demo</nova:project>
      </nova:owner>
      <nova:root type="image" uuid="img-1"/>
    </nova:instance>
  </metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/var/lib/nova/instances/x/disk'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'><target dev='hda'/></disk>
    <interface type='bridge'>
      <mac address='fa:16:3e:11:22:33'/>
      <target dev='tap0123'/>
    </interface>
  </devices>
</domain>''' % UUID

STATS = {
    'state.state': 1, 'cpu.time': 123456789, 'vcpu.current': 2,
    'balloon.maximum': 2097152, 'balloon.available': 2000000,
    'balloon.unused': 1000000, 'balloon.rss': 512000,
    'balloon.swap_in': 2048, 'balloon.swap_out': 1024,
    'block.count': 1, 'block.0.name': 'vda', 'block.0.rd.bytes': 1000,
    'block.0.rd.reqs': 10, 'block.0.wr.bytes': 2000, 'block.0.wr.reqs': 20,
    'block.0.rd.times': 300, 'block.0.wr.times': 400,
    'block.0.capacity': 21474836480, 'block.0.allocation': 1048576,
    'block.0.physical': 2097152,
    'net.count': 2, 'net.0.name': 'tap0123', 'net.0.rx.bytes': 11,
    'net.0.rx.pkts': 12, 'net.0.rx.drop': 13, 'net.0.rx.errs': 14,
    'net.0.tx.bytes': 15, 'net.0.tx.pkts': 16, 'net.0.tx.drop': 17,
    'net.0.tx.errs': 18,
    # An interface not in the XML (hot-plugged since): no sample.
    'net.1.name': 'tap9999', 'net.1.rx.bytes': 1,
}
DISK = '%s-vda' % UUID
NIC = 'instance-0000002a-%s-tap0123' % UUID

# What Ceilometer's pollsters make of these facts: (name, type, unit,
# resource id, volume), from their tables (instance_stats.py, disk.py,
# net.py: volumes in MB are KiB / 1024; memory.usage is available - unused).
CEILOMETER = {
    ('cpu', 'cumulative', 'ns', UUID, 123456789),
    ('vcpus', 'gauge', 'vcpu', UUID, 2),
    ('memory', 'gauge', 'MB', UUID, 2048),
    ('memory.usage', 'gauge', 'MB', UUID, 1000000 / 1024),
    ('memory.resident', 'gauge', 'MB', UUID, 500),
    ('memory.available', 'gauge', 'MB', UUID, 2000000 / 1024),
    ('memory.swap.in', 'cumulative', 'MB', UUID, 2),
    ('memory.swap.out', 'cumulative', 'MB', UUID, 1),
    ('disk.root.size', 'gauge', 'GB', UUID, 15),
    ('disk.ephemeral.size', 'gauge', 'GB', UUID, 5),
    ('disk.device.read.bytes', 'cumulative', 'B', DISK, 1000),
    ('disk.device.read.requests', 'cumulative', 'request', DISK, 10),
    ('disk.device.write.bytes', 'cumulative', 'B', DISK, 2000),
    ('disk.device.write.requests', 'cumulative', 'request', DISK, 20),
    ('disk.device.read.latency', 'cumulative', 'ns', DISK, 300),
    ('disk.device.write.latency', 'cumulative', 'ns', DISK, 400),
    ('disk.device.capacity', 'gauge', 'B', DISK, 21474836480),
    ('disk.device.allocation', 'gauge', 'B', DISK, 1048576),
    ('disk.device.usage', 'gauge', 'B', DISK, 2097152),
    ('network.incoming.bytes', 'cumulative', 'B', NIC, 11),
    ('network.incoming.packets', 'cumulative', 'packet', NIC, 12),
    ('network.incoming.packets.drop', 'cumulative', 'packet', NIC, 13),
    ('network.incoming.packets.error', 'cumulative', 'packet', NIC, 14),
    ('network.outgoing.bytes', 'cumulative', 'B', NIC, 15),
    ('network.outgoing.packets', 'cumulative', 'packet', NIC, 16),
    ('network.outgoing.packets.drop', 'cumulative', 'packet', NIC, 17),
    ('network.outgoing.packets.error', 'cumulative', 'packet', NIC, 18),
    ('power.state', 'gauge', 'state', UUID, 1),
}
# The keys of Ceilometer's instance sample metadata
# (compute/pollsters/util.py), for a Nova-metadata instance.
CEILOMETER_MD_KEYS = {
    'display_name', 'name', 'instance_id', 'instance_type', 'host',
    'instance_host', 'flavor', 'status', 'state', 'task_state', 'image',
    'image_ref', 'image_ref_url', 'architecture', 'os_type', 'vcpus',
    'memory_mb', 'disk_gb', 'ephemeral_gb', 'root_gb'}


def all_samples(stats=STATS):
    inst = instance.parse(XML, 'compute-0')
    return [s for group in meters.GROUPS
            for s in meters.samples(group, inst, stats, NOW)]


class TestMapping(base.TestCase):

    def test_same_samples_as_ceilometer(self):
        got = all_samples()
        assert {(s.name, s.type, s.unit, s.resource_id, s.volume)
                for s in got} == CEILOMETER
        for s in got:
            assert (s.user_id, s.project_id, s.timestamp) == (
                'u-1', 'p-1', NOW)
        groups = {g: set(names) for g, (names, _) in meters.GROUPS.items()}
        assert {s.name for s in got} <= set().union(*groups.values())

    def test_metadata_as_ceilometer(self):
        got = {s.name: s.resource_metadata for s in all_samples()}
        md = got['memory.usage']
        assert set(md) == CEILOMETER_MD_KEYS
        assert md['display_name'] == 'web-1'
        assert md['name'] == 'instance-0000002a'
        assert md['flavor'] == {'id': 'f-2', 'name': 'm1.small', 'vcpus': 2,
                                'ram': 2048, 'disk': 20, 'ephemeral': 5,
                                'swap': 0}
        assert (md['instance_type'], md['image_ref'], md['instance_host'],
                md['status'], md['state']) == (
            'm1.small', 'img-1', 'compute-0', 'active', 'active')
        assert md['root_gb'] == 15 and md['architecture'] == 'x86_64'
        # Nova's hostId: sha224 of project id + host.
        import hashlib
        assert md['host'] == hashlib.sha224(b'p-1compute-0').hexdigest()
        assert got['cpu']['cpu_number'] == 2
        assert got['disk.device.read.bytes']['disk_name'] == 'vda'
        nic = got['network.incoming.bytes']
        assert (nic['name'], nic['vnic_name'], nic['mac'], nic['fref'],
                nic['parameters']) == ('tap0123', 'tap0123',
                                       'fa:16:3e:11:22:33', None, {})

    def test_a_filterref_names_the_interface(self):
        xml = XML.replace("<target dev='tap0123'/>", (
            "<target dev='tap0123'/><filterref filter='nova-instance-x'>"
            "<parameter name='IP' value='10.0.0.3'/></filterref>"))
        inst = instance.parse(xml, 'h')
        (s, *_) = meters.samples('network', inst, STATS, NOW)
        assert s.resource_id == 'nova-instance-x'
        assert s.resource_metadata['parameters'] == {'IP': '10.0.0.3'}

    def test_shut_off_reports_state_and_flavor_only(self):
        got = {s.name: s.volume for s in all_samples({'state.state': 5})}
        assert got == {'power.state': 4, 'vcpus': 2, 'memory': 2048,
                       'disk.root.size': 15, 'disk.ephemeral.size': 5}

    def test_no_balloon_driver_no_memory_usage(self):
        stats = {k: v for k, v in STATS.items()
                 if k not in ('balloon.available', 'balloon.unused')}
        names = {s.name for s in all_samples(stats)}
        assert 'memory.usage' not in names and 'memory.resident' in names

    def test_perf_counters_when_libvirt_has_them(self):
        stats = dict(STATS, **{'perf.cpu_cycles': 7, 'perf.cmt': 8})
        got = {s.name: (s.volume, s.unit) for s in all_samples(stats)}
        assert got['perf.cpu.cycles'] == (7, 'cycle')
        assert got['cpu_l3_cache'] == (8, 'B')

    def test_power_states_are_nova_s(self):
        for libvirt_state, nova in ((0, 0), (1, 1), (2, 1), (3, 3), (4, 4),
                                    (5, 4), (6, 6), (7, 7)):
            got = {s.name: s.volume for s in all_samples(
                {'state.state': libvirt_state})}
            assert got['power.state'] == nova


class TestDomainXML(base.TestCase):

    def test_domains_without_nova_metadata_are_not_instances(self):
        assert instance.parse('<domain><name>x</name></domain>', 'h') is None

    def test_nova_1_0_namespace(self):
        xml = XML.replace('nova/1.1', 'nova/1.0')
        assert instance.parse(xml, 'h').name == 'web-1'

    def test_broken_xml_is_a_value_error(self):
        with self.assertRaises(ValueError):
            instance.parse('<domain', 'h')

    def test_disks_and_interfaces(self):
        inst = instance.parse(XML, 'h')
        assert [(d.device, d.source) for d in inst.disks] == [
            ('vda', '/var/lib/nova/instances/x/disk')]   # no cdrom
        assert [i.name for i in inst.interfaces] == ['tap0123']


class FakeError(Exception):
    def __init__(self, code, message='gone'):
        super().__init__(message)
        self.code = code

    def get_error_code(self):
        return self.code

    def get_error_message(self):
        return str(self)


class FakeDomain:
    def __init__(self, uuid, xml, vanish=False):
        self.uuid, self.xml, self.vanish, self.reads = uuid, xml, vanish, 0

    def UUIDString(self):
        return self.uuid

    def ID(self):
        return 7

    def XMLDesc(self, flags):
        self.reads += 1
        if self.vanish:
            raise FakeError(FakeLibvirt.VIR_ERR_NO_DOMAIN)
        return self.xml


class FakeConn:
    def __init__(self, records, fail=None):
        self.records, self.fail, self.closed = records, fail, False

    def isAlive(self):
        return not self.closed

    def getAllDomainStats(self, flags, more):
        if self.fail:
            raise self.fail
        return self.records

    def close(self):
        self.closed = True


class FakeLibvirt:
    """The libvirt module, as far as the inspector uses it."""
    VIR_ERR_NO_DOMAIN = 42
    libvirtError = FakeError

    def __init__(self, conns):
        self.conns = list(conns)

    def openReadOnly(self, uri):
        if not self.conns:
            raise FakeError(38, 'Failed to connect socket: No such file')
        return self.conns.pop(0)


class TestInspector(base.TestCase):

    def inspector(self, *conns, **kw):
        from telemetry_lib.pollsters.compute import inspector
        now = [0.0]
        return inspector.Inspector('qemu:///system', 'h', libvirt=FakeLibvirt(
            conns), clock=lambda: now[0], **kw), now

    def test_a_domain_gone_before_its_xml_is_skipped(self):
        ok = FakeDomain(UUID, XML)
        gone = FakeDomain('other', XML, vanish=True)
        insp, _ = self.inspector(FakeConn([(gone, {}), (ok, STATS)]))
        got = insp.domains(1)
        assert [(i.id, s) for i, s in got] == [(UUID, STATS)]

    def test_xml_read_once_until_ttl_or_restart(self):
        dom = FakeDomain(UUID, XML)
        insp, now = self.inspector(FakeConn([(dom, STATS)]),
                                   metadata_ttl=60)
        for _ in range(3):
            insp.domains(1)
        assert dom.reads == 1
        now[0] = 61
        insp.domains(1)
        assert dom.reads == 2

    def test_libvirt_down_is_one_line_then_a_reconnect(self):
        from telemetry_lib.exceptions import PollsterError
        dead = FakeConn([], fail=FakeError(38, 'End of file while reading'))
        insp, _ = self.inspector(dead, FakeConn([(FakeDomain(UUID, XML),
                                                  STATS)]))
        with self.assertRaises(PollsterError) as ctx:
            insp.domains(1)
        assert 'End of file' in str(ctx.exception) and dead.closed
        assert len(insp.domains(1)) == 1 and insp.reconnects == 2
        with self.assertRaises(PollsterError) as ctx:
            self.inspector()[0].domains(1)
        assert 'cannot connect to libvirt at qemu:///system' in str(
            ctx.exception)


class TestOneInspector(base.TestCase):

    def test_the_pollsters_of_an_agent_share_one(self):
        # Issue 22: each of the six opened its own libvirt connection and
        # parsed every domain's XML for itself.
        from oslo_config import cfg
        from telemetry_lib.pollsters.compute import pollsters
        mine = [cls(self.conf) for cls in (
            pollsters.CPUPollster, pollsters.MemoryPollster,
            pollsters.DiskPollster, pollsters.NetworkPollster,
            pollsters.StatePollster, pollsters.PerfPollster)]
        for p in mine:
            p.start()
        assert len({id(p.inspector) for p in mine}) == 1
        other = cfg.ConfigOpts()
        other([], project='telemetry_lib')
        theirs = pollsters.CPUPollster(other)
        theirs.start()
        assert theirs.inspector is not mine[0].inspector
        assert theirs.close(1.0)

    def test_the_last_pollster_to_close_closes_the_connection(self):
        from telemetry_lib.pollsters.compute import pollsters
        mine = [pollsters.CPUPollster(self.conf),
                pollsters.MemoryPollster(self.conf)]
        for p in mine:
            p.start()
        shared = mine[0].inspector
        conn = FakeConn([])
        shared._conn = conn
        assert mine[0].close(1.0)
        assert not conn.closed and shared._conn is conn
        assert mine[1].close(1.0)
        assert conn.closed and shared._conn is None
        # Started again (a reload keeps the pollsters), a new one is made.
        mine[0].start()
        assert mine[0].inspector is not shared
        assert mine[0].close(1.0)
