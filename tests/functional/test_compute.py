"""The compute pollsters against real libvirt domains (tools/libvirt.sh):
Ceilometer's meters from guests that run, read and write their disk and
send packets; shut-off and vanishing domains; libvirt restarting; and the
samples through a pipeline into Gnocchi with Ceilometer's resource
definitions.

One class: its tests share the machine's libvirtd, and one restarts it.
"""

import datetime
import subprocess
import threading
import time

from telemetry_lib import delivery
from telemetry_lib.exceptions import PollsterError
from telemetry_lib.pollsters.compute import pollsters
from tests import base
from tests.functional import libvirt_guest
from tests.functional import test_gnocchi

UTC = datetime.timezone.utc
CLASSES = (pollsters.CPUPollster, pollsters.MemoryPollster,
           pollsters.DiskPollster, pollsters.NetworkPollster,
           pollsters.StatePollster, pollsters.PerfPollster)
RUNNING_METERS = {
    'cpu', 'vcpus', 'memory', 'memory.usage', 'memory.resident',
    'memory.available', 'memory.swap.in', 'memory.swap.out',
    'disk.root.size', 'disk.ephemeral.size', 'disk.device.read.bytes',
    'disk.device.read.requests', 'disk.device.write.bytes',
    'disk.device.write.requests', 'disk.device.read.latency',
    'disk.device.write.latency', 'disk.device.capacity',
    'disk.device.allocation', 'disk.device.usage',
    'network.incoming.bytes', 'network.incoming.packets',
    'network.incoming.packets.drop', 'network.incoming.packets.error',
    'network.outgoing.bytes', 'network.outgoing.packets',
    'network.outgoing.packets.drop', 'network.outgoing.packets.error',
    'power.state'}


class TestCompute(test_gnocchi.GnocchiTest):

    def setUp(self):
        super().setUp()
        libvirt_guest.start()
        self.conn = libvirt_guest.connect()
        self.addCleanup(self.conn.close)
        self.pollsters = [cls(self.conf) for cls in CLASSES]
        for p in self.pollsters:
            p.start()
            self.addCleanup(p.close, 5.0)

    def poll(self, instance_id=None):
        now = datetime.datetime.now(UTC)
        out = [s for p in self.pollsters for s in p.poll(now)]
        if instance_id is None:
            return out
        return [s for s in out
                if s.resource_metadata.get('instance_id') == instance_id]

    @staticmethod
    def by_name(samples):
        return {s.name: s for s in samples}

    def test_meters_of_a_running_guest_move(self):
        guest = libvirt_guest.Guest(self, self.conn)
        guest.wait_booted()
        # The balloon statistics come once a second after boot.
        assert base.wait_until(lambda: 'memory.usage' in self.by_name(
            self.poll(guest.uuid)), 20)
        first = self.by_name(self.poll(guest.uuid))
        assert set(first) == RUNNING_METERS, set(first) ^ RUNNING_METERS
        moving = ('cpu', 'disk.device.read.bytes',
                  'disk.device.write.requests', 'network.outgoing.packets')
        last = {}

        def moved():
            # The guest works every second: wait until each counter has.
            last['poll'] = self.by_name(self.poll(guest.uuid))
            got = last['poll']
            return all(n in got and got[n].volume > first[n].volume
                       for n in moving)
        base.wait_until(moved, 30, interval=0.5)
        second = last['poll']
        for name in moving:
            assert second[name].volume > first[name].volume, (
                name, first[name].volume, second[name].volume)
        cpu = second['cpu']
        assert (cpu.type, cpu.unit, cpu.resource_id) == (
            'cumulative', 'ns', guest.uuid)
        assert cpu.project_id == guest.project and cpu.user_id == 'u-1'
        md = cpu.resource_metadata
        assert md['display_name'] == guest.display
        assert md['name'] == guest.domain_name
        assert md['flavor']['name'] == 'm1.tiny' == md['instance_type']
        assert md['flavor']['id'] == 'f-tiny' and md['image_ref'] == 'img-1'
        assert md['cpu_number'] == 1 and md['status'] == 'active'
        assert 0 < second['memory.usage'].volume <= 128
        assert second['memory'].volume == 128
        assert second['power.state'].volume == 1
        disk = second['disk.device.read.bytes']
        assert disk.resource_id == '%s-vda' % guest.uuid
        assert disk.resource_metadata['disk_name'] == 'vda'
        assert second['disk.device.capacity'].volume == 64 * 1024 * 1024
        net = second['network.outgoing.packets']
        assert net.resource_id == '%s-%s-%s' % (guest.domain_name,
                                                guest.uuid, guest.tap)
        assert net.resource_metadata['vnic_name'] == guest.tap
        assert net.resource_metadata['mac'].startswith('fa:16:3e:')

    def test_a_shut_off_instance_has_its_state_and_flavor_only(self):
        guest = libvirt_guest.Guest(self, self.conn, running=False)
        got = self.by_name(self.poll(guest.uuid))
        assert set(got) == {'power.state', 'vcpus', 'memory',
                            'disk.root.size', 'disk.ephemeral.size'}, got
        assert got['power.state'].volume == 4       # Nova's SHUTDOWN
        assert got['power.state'].resource_metadata['status'] == 'shutoff'

    def test_a_domain_destroyed_while_polled(self):
        guests = [libvirt_guest.Guest(self, self.conn) for _ in range(3)]
        errors, stop = [], threading.Event()

        def keep_polling():
            while not stop.is_set():
                try:
                    self.poll()
                except Exception as exc:    # noqa: any error fails it
                    errors.append(exc)
        t = threading.Thread(target=keep_polling)
        t.start()
        for g in guests[1:]:
            g.destroy()
            time.sleep(0.05)
        stop.set()
        t.join(30)
        assert errors == []
        ids = {s.resource_metadata.get('instance_id') for s in self.poll()}
        assert guests[0].uuid in ids
        assert not ids & {g.uuid for g in guests[1:]}

    def test_libvirt_restart_is_counted_then_reconnected(self):
        guest = libvirt_guest.Guest(self, self.conn)
        cpu = self.pollsters[0]
        assert self.by_name(cpu.poll(datetime.datetime.now(UTC)))
        subprocess.run(['pkill', '-x', 'libvirtd'], check=False)
        assert base.wait_until(lambda: subprocess.run(
            ['pgrep', '-x', 'libvirtd'], capture_output=True).returncode,
            20)
        with self.assertRaises(PollsterError) as ctx:
            cpu.poll(datetime.datetime.now(UTC))
        assert 'libvirt' in str(ctx.exception)
        assert '\n' not in str(ctx.exception)
        libvirt_guest.start()
        self.conn = libvirt_guest.connect()
        got = [s for s in cpu.poll(datetime.datetime.now(UTC))
               if s.resource_id == guest.uuid]
        assert {s.name for s in got} == {'cpu', 'vcpus'}
        assert cpu.inspector.reconnects == 2

    def test_through_a_pipeline_into_gnocchi_as_instances(self):
        from telemetry_lib.agent import service
        guest = libvirt_guest.Guest(self, self.conn)
        guest.wait_booted()
        definitions = service.find_config_file(self.conf,
                                               'gnocchi_resources.yaml')
        d = delivery.build(self.conf, 'gnocchi://%s?resources_definition_'
                           'file=%s&max_latency=0&retry_initial_delay=0.05'
                           '&retry_max_delay=0.5' % (self.gnocchi.host,
                                                     definitions)).start()
        self.addCleanup(d.close, 5)
        writer = d.publisher.writer
        assert base.wait_until(lambda: not writer.pending_policies
                               and not writer.pending_types, 60)
        samples = self.poll(guest.uuid)
        d.put(samples)
        assert d.flush(30)
        st = d.stats()
        assert st.published == len(samples) and st.balanced, st
        inst = self.client.resource.get('instance', guest.uuid)
        assert inst['display_name'] == guest.display
        assert inst['flavor_name'] == 'm1.tiny'
        assert inst['flavor_id'] == 'f-tiny'
        assert inst['image_ref'] == 'img-1'
        assert inst['project_id'] == guest.project
        assert {'cpu', 'memory.usage', 'vcpus', 'power.state'} <= set(
            inst['metrics'])
        disk = self.client.resource.get('instance_disk',
                                        '%s-vda' % guest.uuid)
        assert disk['instance_id'] == guest.uuid and disk['name'] == 'vda'
        nic = self.client.resource.get('instance_network_interface',
                                       '%s-%s-%s' % (guest.domain_name,
                                                     guest.uuid, guest.tap))
        assert nic['name'] == guest.tap
        assert 'network.outgoing.packets' in nic['metrics']

    def test_in_stf_s_ceilometer_format_over_amqp1(self):
        from telemetry_lib.formats import stf
        from tests.functional import rabbit
        rabbit.MAIN.start()
        guest = libvirt_guest.Guest(self, self.conn)
        guest.wait_booted()
        queue = rabbit.unique_queue('compute')
        r = rabbit.Receiver(rabbit.MAIN, queue)
        self.addCleanup(r.close)
        d = delivery.build(self.conf, 'amqp1://%s/%s?max_latency=0'
                           % (rabbit.MAIN.url, queue)).start()
        self.addCleanup(d.close, 2)
        samples = self.poll(guest.uuid)
        d.put(samples)
        assert d.flush(20)
        got = {p['counter_name']: p for m in r.drain()
               for p in stf.decode_envelope(m.body)['payload']}
        assert set(got) == {s.name for s in samples}
        cpu = got['cpu']
        assert (cpu['counter_type'], cpu['counter_unit'],
                cpu['resource_id'], cpu['project_id']) == (
            'cumulative', 'ns', guest.uuid, guest.project)
        assert cpu['resource_metadata']['display_name'] == guest.display
        nic = got['network.outgoing.bytes']
        assert nic['resource_metadata']['vnic_name'] == guest.tap
