"""Compute polling: one cycle of per-instance meters over N real libvirt
domains, ours beside Ceilometer 27's compute pollsters, on the same
libvirtd.

N domains (default 20) with Nova's metadata, one disk and one interface
each, run firmware only (the values do not matter here, the calls do).
One cycle is every meter both produce for every domain: cpu, the
memory.* meters, disk.device.* (bytes, requests, capacity, allocation,
usage), network.* (bytes, packets, drops, errors) and power.state where
Ceilometer has it. Ceilometer's cycle is what its polling manager does:
``libvirt_metadata`` discovery (every domain's metadata and XML), then
each pollster over the instances with one shared per-cycle cache. Its
Nova flavor lookup is replaced by a constant, which only saves it work.

Printed per cycle: wall time, CPU of this process, CPU of libvirtd (the
daemon answers both), and CPU per sample. Steady state: the mean of
``--cycles`` cycles after one warm-up cycle each. Target: at most half of
Ceilometer's CPU per cycle.

Needs tools/libvirt.sh (root) and, for the peer, ``pip install --no-deps
ceilometer==27.0.0`` with python-novaclient, lxml and cachetools (``tox
-e bench`` does it). Run: ``python benchmarks/compute_polling.py``.
"""

import argparse
import datetime
import logging
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
UTC = datetime.timezone.utc
XML = '''<domain type='qemu'>
  <name>bench-%(n)04d</name><uuid>%(uuid)s</uuid>
  <metadata>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:name>bench-vm-%(n)d</nova:name>
      <nova:flavor name="m1.tiny"><nova:memory>32</nova:memory>
        <nova:disk>1</nova:disk><nova:swap>0</nova:swap>
        <nova:ephemeral>0</nova:ephemeral><nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner><nova:user uuid="u-1">u</nova:user>
        <nova:project uuid="p-1">p</nova:project></nova:owner>
      <nova:root type="image" uuid="img-1"/>
    </nova:instance>
  </metadata>
  <memory unit='MiB'>32</memory><vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><driver name='qemu' type='qcow2'/>
      <source file='%(disk)s'/><target dev='vda' bus='virtio'/></disk>
    <interface type='ethernet'><mac address='fa:16:3e:00:%(hi)02x:%(lo)02x'/>
      <target dev='tapb%(n)04d' managed='yes'/><model type='virtio'/>
    </interface>
    <memballoon model='virtio'><stats period='1'/></memballoon>
  </devices>
</domain>'''
# The meters both produce (Ceilometer 27 pollster classes).
CEILOMETER_POLLSTERS = [
    ('instance_stats', ['CPUPollster', 'MemoryUsagePollster',
                        'MemoryResidentPollster', 'MemorySwapInPollster',
                        'MemorySwapOutPollster']),
    ('disk', ['PerDeviceReadBytesPollster', 'PerDeviceReadRequestsPollster',
              'PerDeviceWriteBytesPollster',
              'PerDeviceWriteRequestsPollster', 'PerDeviceCapacityPollster',
              'PerDeviceAllocationPollster', 'PerDevicePhysicalPollster']),
    ('net', ['IncomingBytesPollster', 'IncomingPacketsPollster',
             'OutgoingBytesPollster', 'OutgoingPacketsPollster',
             'IncomingDropPollster', 'OutgoingDropPollster',
             'IncomingErrorsPollster', 'OutgoingErrorsPollster']),
]


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def libvirtd():
    for p in psutil.process_iter(['name']):
        if p.info['name'] == 'libvirtd':
            return p
    sys.exit('libvirtd is not running: run tools/libvirt.sh start')


def daemon_cpu(proc):
    t = proc.cpu_times()
    return t.user + t.system


def make_domains(n, tmp):
    import libvirt
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    conn = libvirt.open('qemu:///system')
    doms = []
    for i in range(n):
        disk = os.path.join(tmp, 'd%d.qcow2' % i)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk,
                        '16M'], check=True)
        doms.append(conn.createXML(XML % {
            'n': i, 'uuid': str(uuid.uuid4()), 'disk': disk,
            'hi': i // 256, 'lo': i % 256}, 0))
    return conn, doms


def measure(cycle, cycles, daemon):
    cycle()                                     # warm-up (connect, cache)
    c0, d0, w0 = cpu(), daemon_cpu(daemon), time.perf_counter()
    count = 0
    for _ in range(cycles):
        count += cycle()
    n = float(cycles)
    return ((time.perf_counter() - w0) / n, (cpu() - c0) / n,
            (daemon_cpu(daemon) - d0) / n, count / n)


def ours():
    from oslo_config import cfg
    from telemetry_lib.pollsters.compute import pollsters
    conf = cfg.ConfigOpts()
    conf([])
    ps = [cls(conf) for cls in (pollsters.CPUPollster,
                                pollsters.MemoryPollster,
                                pollsters.DiskPollster,
                                pollsters.NetworkPollster,
                                pollsters.StatePollster)]

    def cycle():
        now = datetime.datetime.now(UTC)
        return sum(len(p.poll(now)) for p in ps)
    return cycle


def ceilometer():
    try:
        import ceilometer.compute.discovery as discovery
        import ceilometer.compute.pollsters.disk  # noqa: F401
        import ceilometer.compute.pollsters.instance_stats  # noqa: F401
        import ceilometer.compute.pollsters.net  # noqa: F401
        import ceilometer.compute.virt.inspector as virt_inspector
        import ceilometer.compute.virt.libvirt.utils as libvirt_utils
        import ceilometer.keystone_client as keystone_client
        import ceilometer.nova_client as nova_client
        import ceilometer.sample as ceilo_sample
        from oslo_config import cfg
    except ImportError as exc:
        print('Ceilometer 27 is not installed (%s): no peer figures' % exc)
        return None
    # Its per-instance "statistic not available" warnings, by the hundred.
    logging.getLogger('ceilometer').setLevel(logging.ERROR)
    conf = cfg.ConfigOpts()
    conf.register_opts(list(virt_inspector.OPTS) + list(libvirt_utils.OPTS)
                       + list(ceilo_sample.OPTS) + [
                           cfg.StrOpt('host', default=socket.gethostname())])
    conf.register_opts(discovery.OPTS, group='compute')
    conf.register_opts(nova_client.SERVICE_OPTS, group='service_types')
    keystone_client.register_keystoneauth_opts(conf)
    conf([])
    conf.set_override('libvirt_type', 'qemu')
    disc = discovery.InstanceDiscovery(conf)
    disc.get_flavor_id = lambda name: 'f-1'     # no Nova here
    classes = [getattr(sys.modules['ceilometer.compute.pollsters.' + mod],
                       name)
               for mod, names in CEILOMETER_POLLSTERS for name in names]
    ps = [cls(conf) for cls in classes]

    def cycle():
        instances = list(disc.discover(None))
        cache = {}
        return sum(len(list(p.get_samples(None, cache, instances)))
                   for p in ps)
    return cycle


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--domains', type=int, default=20)
    parser.add_argument('--cycles', type=int, default=10)
    args = parser.parse_args()
    daemon = libvirtd()
    tmp = tempfile.mkdtemp(prefix='telemetry-bench-compute-')
    print('starting %d domains...' % args.domains)
    conn, doms = make_domains(args.domains, tmp)
    try:
        rows = [('telemetry_lib (6 pollsters)', measure(ours(), args.cycles,
                                                        daemon))]
        peer = ceilometer()
        if peer is not None:
            rows.append(('Ceilometer 27 (20 pollsters)',
                         measure(peer, args.cycles, daemon)))
    finally:
        for d in doms:
            d.destroy()
        conn.close()
    print('\ncompute polling, one cycle over %d domains (mean of %d)'
          % (args.domains, args.cycles))
    print('%-30s %8s %9s %12s %8s %14s' % (
        '', 'wall ms', 'CPU ms', 'libvirtd ms', 'samples',
        'CPU us/sample'))
    for name, (wall, used, dcpu, count) in rows:
        print('%-30s %8.1f %9.1f %12.1f %8.0f %14.1f' % (
            name, wall * 1e3, used * 1e3, dcpu * 1e3, count,
            used / max(count, 1) * 1e6))
    if len(rows) == 2:
        ratio = rows[0][1][1] / rows[1][1][1]
        print('our CPU per cycle is %.2f of Ceilometer\'s (target: at '
              'most 0.5): %s' % (ratio, 'met' if ratio <= 0.5 else
                                 'NOT met'))


if __name__ == '__main__':
    main()
