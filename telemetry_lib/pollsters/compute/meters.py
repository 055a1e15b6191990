#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""libvirt's bulk domain statistics as Ceilometer's compute samples:
the same names, types, units, resource ids and resource metadata, so
Ceilometer's ``polling.yaml``, ``pipeline.yaml``, ``gnocchi_resources.yaml``
and STF's dashboards work unchanged.

``stats`` is one domain's dictionary from libvirt's
``getAllDomainStats()`` (``cpu.time``, ``balloon.rss``,
``block.0.rd.bytes`` ...). A statistic libvirt does not report gives no
sample (as Ceilometer, which logs it as unavailable): a guest without its
balloon driver has no ``memory.usage``. A domain that is not running
gives only what Ceilometer still reports for it: ``power.state``,
``vcpus``, ``memory`` and the flavor's disk sizes.
"""

from telemetry_lib.pollsters.compute.instance import POWER_STATE
from telemetry_lib.sample import Sample

GAUGE, CUMULATIVE = 'gauge', 'cumulative'
RUNNING_STATES = (1, 2, 3)      # running, blocked, paused: counters read

# libvirt's VIR_DOMAIN_STATS_* bits (as in libvirt.h), so this module needs
# no libvirt: the inspector asks for what the meters of a group read.
STATS_STATE, STATS_CPU, STATS_BALLOON, STATS_VCPU = 1, 2, 4, 8
STATS_INTERFACE, STATS_BLOCK, STATS_PERF = 16, 32, 64

# Instance meters: (name, type, unit, stat key, divisor).
_MEMORY = (
    ('memory.resident', GAUGE, 'MB', 'balloon.rss', 1024),
    ('memory.swap.in', CUMULATIVE, 'MB', 'balloon.swap_in', 1024),
    ('memory.swap.out', CUMULATIVE, 'MB', 'balloon.swap_out', 1024),
    ('memory.available', GAUGE, 'MB', 'balloon.available', 1024),
)
_PERF = (
    ('perf.cpu.cycles', GAUGE, 'cycle', 'perf.cpu_cycles', 1),
    ('perf.instructions', GAUGE, 'instruction', 'perf.instructions', 1),
    ('perf.cache.references', GAUGE, 'count', 'perf.cache_references', 1),
    ('perf.cache.misses', GAUGE, 'count', 'perf.cache_misses', 1),
    ('memory.bandwidth.total', GAUGE, 'B/s', 'perf.mbmt', 1),
    ('memory.bandwidth.local', GAUGE, 'B/s', 'perf.mbml', 1),
    ('cpu_l3_cache', GAUGE, 'B', 'perf.cmt', 1),
)
# Per disk: (name, type, unit, key under block.N.).
_DISK = (
    ('disk.device.read.bytes', CUMULATIVE, 'B', 'rd.bytes'),
    ('disk.device.read.requests', CUMULATIVE, 'request', 'rd.reqs'),
    ('disk.device.write.bytes', CUMULATIVE, 'B', 'wr.bytes'),
    ('disk.device.write.requests', CUMULATIVE, 'request', 'wr.reqs'),
    ('disk.device.read.latency', CUMULATIVE, 'ns', 'rd.times'),
    ('disk.device.write.latency', CUMULATIVE, 'ns', 'wr.times'),
    ('disk.device.capacity', GAUGE, 'B', 'capacity'),
    ('disk.device.allocation', GAUGE, 'B', 'allocation'),
    ('disk.device.usage', GAUGE, 'B', 'physical'),
)
# Per interface: (name, unit, key under net.N.).
_NET = (
    ('network.incoming.bytes', 'B', 'rx.bytes'),
    ('network.incoming.packets', 'packet', 'rx.pkts'),
    ('network.incoming.packets.drop', 'packet', 'rx.drop'),
    ('network.incoming.packets.error', 'packet', 'rx.errs'),
    ('network.outgoing.bytes', 'B', 'tx.bytes'),
    ('network.outgoing.packets', 'packet', 'tx.pkts'),
    ('network.outgoing.packets.drop', 'packet', 'tx.drop'),
    ('network.outgoing.packets.error', 'packet', 'tx.errs'),
)

#: The meters of each pollster group, and the statistics they read.
GROUPS = {
    'cpu': (('cpu', 'vcpus'), STATS_STATE | STATS_CPU | STATS_VCPU),
    'memory': (('memory', 'memory.usage') + tuple(m[0] for m in _MEMORY),
               STATS_STATE | STATS_BALLOON),
    'disk': (tuple(m[0] for m in _DISK) + ('disk.root.size',
                                           'disk.ephemeral.size'),
             STATS_STATE | STATS_BLOCK),
    'network': (tuple(m[0] for m in _NET), STATS_STATE | STATS_INTERFACE),
    'state': (('power.state',), STATS_STATE),
    'perf': (tuple(m[0] for m in _PERF), STATS_STATE | STATS_PERF),
}


class _Maker:
    """Samples of one instance at one time, sharing its metadata."""

    def __init__(self, instance, state, timestamp):
        self.instance = instance
        self.timestamp = timestamp
        self.metadata = instance.metadata(state)

    def device(self, extra):
        """The metadata of a disk's or interface's samples, built once
        for all of its meters.
        """
        return dict(self.metadata, **extra)

    def __call__(self, name, type_, unit, volume, resource_id=None,
                 metadata=None):
        md = self.metadata if metadata is None else metadata
        return Sample(name, type_, unit, volume,
                      user_id=self.instance.user_id,
                      project_id=self.instance.project_id,
                      resource_id=resource_id or self.instance.id,
                      timestamp=self.timestamp, resource_metadata=md)


def samples(group, instance, stats, timestamp):
    """The samples of one pollster ``group`` for one domain."""
    state = stats.get('state.state', 0)
    make = _Maker(instance, state, timestamp)
    running = state in RUNNING_STATES
    return list(_GROUP_FUNCS[group](make, instance, stats, running))


def _cpu(make, instance, stats, running):
    vcpus = stats.get('vcpu.current') or instance.flavor.get('vcpus')
    if vcpus:
        yield make('vcpus', GAUGE, 'vcpu', vcpus)
    if running and 'cpu.time' in stats:
        yield make('cpu', CUMULATIVE, 'ns', stats['cpu.time'],
                   metadata=make.device({'cpu_number': vcpus or 0}))


def _memory(make, instance, stats, running):
    ram = instance.flavor.get('ram') or (
        stats.get('balloon.maximum', 0) // 1024)
    if ram:
        yield make('memory', GAUGE, 'MB', ram)
    if not running:
        return
    if 'balloon.available' in stats and 'balloon.unused' in stats:
        yield make('memory.usage', GAUGE, 'MB', (
            stats['balloon.available'] - stats['balloon.unused']) / 1024)
    for name, type_, unit, key, divisor in _MEMORY:
        if key in stats:
            yield make(name, type_, unit, stats[key] / divisor)


def _disk(make, instance, stats, running):
    flavor = instance.flavor
    yield make('disk.root.size', GAUGE, 'GB',
               flavor.get('disk', 0) - flavor.get('ephemeral', 0))
    yield make('disk.ephemeral.size', GAUGE, 'GB',
               flavor.get('ephemeral', 0))
    if not running:
        return
    for i in range(stats.get('block.count', 0)):
        prefix = 'block.%d.' % i
        device = stats.get(prefix + 'name')
        if not device:
            continue
        rid = '%s-%s' % (instance.id, device)
        md = make.device({'disk_name': device})
        for name, type_, unit, key in _DISK:
            if prefix + key in stats:
                yield make(name, type_, unit, stats[prefix + key], rid, md)


def _network(make, instance, stats, running):
    if not running:
        return
    known = {i.name: i for i in instance.interfaces}
    for i in range(stats.get('net.count', 0)):
        prefix = 'net.%d.' % i
        tap = stats.get(prefix + 'name')
        vnic = known.get(tap)
        if not tap or vnic is None:
            continue
        rid = vnic.fref or '%s-%s-%s' % (instance.domain_name, instance.id,
                                         tap)
        md = make.device({'name': tap, 'mac': vnic.mac, 'fref': vnic.fref,
                          'parameters': dict(vnic.parameters),
                          'vnic_name': vnic.fref or tap})
        for name, unit, key in _NET:
            if prefix + key in stats:
                yield make(name, CUMULATIVE, unit, stats[prefix + key], rid,
                           md)


def _state(make, instance, stats, running):
    yield make('power.state', GAUGE, 'state',
               POWER_STATE.get(stats.get('state.state', 0), 0))


def _perf(make, instance, stats, running):
    if not running:
        return
    for name, type_, unit, key, _ in _PERF:
        if key in stats:
            yield make(name, type_, unit, stats[key])


_GROUP_FUNCS = {'cpu': _cpu, 'memory': _memory, 'disk': _disk,
                'network': _network, 'state': _state, 'perf': _perf}
