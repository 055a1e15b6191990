"""collectd value lists: every resource its own series in the Smart Gateway
(shared/reference/wire-formats.md §2), instances laid out as collectd's
virt plugin lays out domains.
"""

import json
import os

from telemetry_lib.formats import collectd
from telemetry_lib import Sample
from tests import base
from tests.unit import test_compute


def sg_core_series(vl):
    """The series the Smart Gateway's collectd handler makes of a value
    list: its naming rule (wire-formats.md §2) and its three labels, an
    empty instance becoming ``base``.
    """
    out = []
    for i, ds in enumerate(vl['dsnames']):
        name = 'collectd_%s_%s' % (vl['plugin'], vl['type'])
        if vl['type'] == vl['plugin']:
            name = 'collectd_%s' % vl['plugin']
        if ds != 'value':
            name += '_' + ds
        if vl['dstypes'][i] in ('counter', 'derive'):
            name += '_total'
        out.append((name, vl['host'], vl['plugin_instance'] or 'base',
                    vl['type_instance'] or 'base'))
    return out


def awkward_samples():
    """Samples as a cloud sends them: 40 instances' own, disk and
    interface samples from the real compute mapping, host samples and
    samples of other resources (volumes) that all name one host.
    """
    samples = []
    for n in range(40):
        uuid = '00000000-0000-4000-8000-%012d' % n
        xml = test_compute.XML.replace(test_compute.UUID, uuid).replace(
            'instance-0000002a', 'instance-%08x' % n).replace(
            'web-1', 'web-%d' % (n % 3))        # display names repeat
        inst = test_compute.instance.parse(xml, 'compute-%d' % (n % 2))
        for group in test_compute.meters.GROUPS:
            samples += test_compute.meters.samples(
                group, inst, test_compute.STATS, test_compute.NOW)
    for host in ('compute-0', 'compute-1'):
        md = {'host': host}
        samples.append(Sample('host.cpu.time', 'cumulative', 'ns', 1,
                              resource_id=host, resource_metadata=md))
        for dev in ('eth0', 'eth1'):
            samples.append(Sample(
                'host.network.incoming.bytes', 'cumulative', 'B', 1,
                resource_id='%s:%s' % (host, dev),
                resource_metadata=dict(md, device=dev)))
    for n in range(20):
        samples.append(Sample('volume.size', 'gauge', 'GB', n,
                              resource_id='vol-%d' % n,
                              resource_metadata={'host': 'cinder@lvm'}))
    return samples


class TestEverySeriesItsOwn(base.TestCase):

    def test_no_two_resources_share_a_series(self):
        samples = awkward_samples()
        resources = {(s.name, s.resource_id) for s in samples}
        series = [x for s in samples
                  for x in sg_core_series(collectd.value_list(s, 10))]
        # Before: instances took the hashed host id as host and no
        # instance anywhere, so 40 instances' values overwrote each other.
        assert len(series) == len(samples)
        assert len(set(series)) == len(resources)

    def test_the_handler_accepts_every_value_list(self):
        for s in awkward_samples():
            vl = collectd.value_list(s, 10)
            assert vl['host'] and vl['plugin'] and vl['type']
            assert len(vl['values']) == len(vl['dstypes']) == \
                len(vl['dsnames']) == 1
            assert vl['dstypes'][0] in ('gauge', 'derive', 'absolute')
            assert all(isinstance(vl[k], str) for k in (
                'host', 'plugin', 'plugin_instance', 'type',
                'type_instance'))


class TestVirtLayout(base.TestCase):

    def setUp(self):
        super().setUp()
        got = test_compute.all_samples()
        self.by_name = {s.name: collectd.value_list(s, 10) for s in got}
        self.host = '%s:compute-0' % test_compute.UUID

    def test_instance_cpu_and_memory(self):
        cpu = self.by_name['cpu']
        assert (cpu['host'], cpu['plugin'], cpu['plugin_instance'],
                cpu['type'], cpu['type_instance']) == (
            self.host, 'virt', 'web-1', 'virt_cpu_total', '')
        assert sg_core_series(cpu)[0][0] == \
            'collectd_virt_virt_cpu_total_total'
        mem = self.by_name['memory']
        assert (mem['type'], mem['type_instance'], mem['values']) == (
            'memory', 'total', [2048 * 1024 * 1024])
        assert sg_core_series(mem)[0][0] == 'collectd_virt_memory'

    def test_disks_and_interfaces_are_type_instances(self):
        rd = self.by_name['disk.device.read.bytes']
        assert (rd['host'], rd['type'], rd['type_instance'],
                rd['dsnames']) == (self.host, 'disk_octets', 'vda',
                                   ['read'])
        assert sg_core_series(rd)[0][0] == \
            'collectd_virt_disk_octets_read_total'
        tx = self.by_name['network.outgoing.bytes']
        assert (tx['type'], tx['type_instance'], tx['dsnames']) == (
            'if_octets', 'tap0123', ['tx'])

    def test_a_meter_outside_the_table_keeps_its_name(self):
        ps = self.by_name['power.state']
        assert (ps['plugin'], ps['type'], ps['type_instance']) == (
            'virt', 'power_state', '')
        root = self.by_name['disk.root.size']
        assert (root['type'], root['values']) == ('disk_root_size', [15])

    def test_every_table_entry_is_documented(self):
        path = os.path.join(os.path.dirname(__file__), '..', '..', 'doc',
                            'source', 'user', 'stf.rst')
        with open(path, encoding='utf-8') as f:
            doc = f.read()
        for meter in collectd.VIRT_METERS:
            assert '``%s``' % meter in doc, meter


class TestCollectd(base.TestCase):

    def test_value_list_fields(self):
        s = Sample('host.cpu.time', 'cumulative', 'ns', 12345,
                   resource_id='compute-0', timestamp=1714564800.123,
                   resource_metadata={'host': 'compute-0'})
        (chunk,), oversize = collectd.encode([s], interval=30)
        assert oversize == []
        body = json.loads(chunk.body)
        assert isinstance(body, list) and len(body) == 1
        assert body[0] == {
            'values': [12345], 'dstypes': ['derive'], 'dsnames': ['value'],
            'time': 1714564800.123, 'interval': 30.0, 'host': 'compute-0',
            'plugin': 'cpu', 'plugin_instance': '', 'type': 'time',
            'type_instance': ''}
        assert isinstance(chunk.body, bytes)

    def test_device_is_the_plugin_instance(self):
        s = Sample('host.network.incoming.bytes', 'cumulative', 'B', 1,
                   resource_id='compute-0:eth0')
        v = collectd.value_list(s, 10)
        assert (v['host'], v['plugin'], v['plugin_instance'], v['type']) \
            == ('compute-0', 'network', 'eth0', 'incoming_bytes')
        g = collectd.value_list(Sample('memory', 'gauge', 'MB', 1,
                                       resource_id='h'), 10)
        assert (g['plugin'], g['type'], g['dstypes']) == (
            'memory', 'value', ['gauge'])
        for v in (v, g):
            assert len(v['values']) == len(v['dstypes']) == \
                len(v['dsnames'])

    def test_several_per_message(self):
        samples = [Sample('cpu', 'gauge', '%', i, resource_id='h')
                   for i in range(5)]
        chunks, _ = collectd.encode(samples, 10, per_message=2)
        assert [c.indexes for c in chunks] == [[0, 1], [2, 3], [4]]

    def test_max_message_size_is_respected(self):
        # The Smart Gateway drops a message over its buffer whole: many
        # value lists per message are split by size, and one too large
        # alone is left out (and counted by the publisher).
        samples = [Sample('cpu', 'gauge', '%', i, resource_id='h%d' % i)
                   for i in range(200)]
        samples[7] = Sample('cpu', 'gauge', '%', 7, resource_id='x' * 3000)
        chunks, oversize = collectd.encode(samples, 10, per_message=100,
                                           max_bytes=2048)
        assert oversize == [7]
        assert all(len(c.body) <= 2048 for c in chunks)
        assert sorted(i for c in chunks for i in c.indexes) == [
            i for i in range(200) if i != 7]
        for c in chunks:
            assert len(json.loads(c.body)) == len(c.indexes)
