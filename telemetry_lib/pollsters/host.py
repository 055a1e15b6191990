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
"""Pollsters of the host the agent runs on, built on psutil.

Meter names follow Ceilometer's dotted style under ``host.``; the resource
id is the host name, or ``<host>:<device>`` for a mount point, a disk or a
network interface. The meters are listed in ``doc/source/user/meters.rst``.
"""

import socket

import psutil

from telemetry_lib.pollsters import base
from telemetry_lib.sample import Sample

GAUGE, CUMULATIVE = 'gauge', 'cumulative'


class HostPollster(base.Pollster):
    """Shared by the host pollsters: the host name and sample making."""

    def __init__(self, conf):
        super().__init__(conf)
        self.host = socket.gethostname()

    def sample(self, name, type_, unit, volume, timestamp, device=None,
               metadata=None):
        md = {'host': self.host}
        if device is not None:
            md['device'] = device
        if metadata:
            md.update(metadata)
        return Sample(name, type_, unit, volume,
                      resource_id=('%s:%s' % (self.host, device)
                                   if device is not None else self.host),
                      timestamp=timestamp, resource_metadata=md)


class CPUPollster(HostPollster):
    """CPU time, utilisation and load averages."""

    meters = ('host.cpu.time', 'host.cpu.util', 'host.cpu.load.1min',
              'host.cpu.load.5min', 'host.cpu.load.15min')

    def __init__(self, conf):
        super().__init__(conf)
        # Utilisation is computed from the times this pollster itself read
        # last, not psutil.cpu_percent(): psutil keeps that reference per
        # thread, and the agent polls from a pool of threads, so the
        # reference would be another thread's (0 or 100 a third of the
        # time). The first poll has no reference: it sends no utilisation
        # rather than one over the few milliseconds since start.
        self._last = None

    @staticmethod
    def _busy_total(times):
        idle = times.idle + getattr(times, 'iowait', 0.0)
        # guest time is already counted in user (Linux): not twice.
        total = sum(times) - getattr(times, 'guest', 0.0) - getattr(
            times, 'guest_nice', 0.0)
        return total - idle, total

    def utilisation(self, times):
        """Percent busy since the last call (0 when no time passed);
        ``None`` on the first call.
        """
        last, self._last = self._last, times
        if last is None:
            return None
        busy, total = self._busy_total(times)
        last_busy, last_total = self._busy_total(last)
        elapsed = total - last_total
        if elapsed <= 0:
            return 0.0
        return round(min(100.0, max(0.0, 100.0 * (busy - last_busy)
                                    / elapsed)), 1)

    def poll(self, timestamp, resources=None):
        times = psutil.cpu_times()
        busy_ns = int((sum(times) - times.idle
                       - getattr(times, 'iowait', 0.0)) * 1e9)
        load1, load5, load15 = psutil.getloadavg()
        ncpu = psutil.cpu_count() or 1
        md = {'cpu_count': ncpu}
        util = self.utilisation(times)
        return [
            self.sample('host.cpu.time', CUMULATIVE, 'ns', busy_ns,
                        timestamp, metadata=md),
        ] + ([] if util is None else [
            self.sample('host.cpu.util', GAUGE, '%', util, timestamp,
                        metadata=md),
        ]) + [
            self.sample('host.cpu.load.1min', GAUGE, 'process', load1,
                        timestamp, metadata=md),
            self.sample('host.cpu.load.5min', GAUGE, 'process', load5,
                        timestamp, metadata=md),
            self.sample('host.cpu.load.15min', GAUGE, 'process', load15,
                        timestamp, metadata=md),
        ]


class MemoryPollster(HostPollster):
    """Memory and swap, in bytes."""

    meters = ('host.memory.total', 'host.memory.used',
              'host.memory.available', 'host.memory.swap.total',
              'host.memory.swap.used')

    def poll(self, timestamp, resources=None):
        vm = psutil.virtual_memory()
        swap = psutil.swap_memory()
        return [
            self.sample('host.memory.total', GAUGE, 'B', vm.total,
                        timestamp),
            self.sample('host.memory.used', GAUGE, 'B', vm.used, timestamp),
            self.sample('host.memory.available', GAUGE, 'B', vm.available,
                        timestamp),
            self.sample('host.memory.swap.total', GAUGE, 'B', swap.total,
                        timestamp),
            self.sample('host.memory.swap.used', GAUGE, 'B', swap.used,
                        timestamp),
        ]


class DiskPollster(HostPollster):
    """File system usage per mount point; I/O per disk."""

    meters = ('host.disk.size.total', 'host.disk.size.used',
              'host.disk.read.bytes', 'host.disk.write.bytes',
              'host.disk.read.requests', 'host.disk.write.requests')

    def poll(self, timestamp, resources=None):
        out = []
        for part in psutil.disk_partitions(all=False):
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError:
                continue        # gone between listing and asking
            md = {'fstype': part.fstype, 'mountpoint': part.mountpoint}
            out.append(self.sample('host.disk.size.total', GAUGE, 'B',
                                   usage.total, timestamp, part.mountpoint,
                                   md))
            out.append(self.sample('host.disk.size.used', GAUGE, 'B',
                                   usage.used, timestamp, part.mountpoint,
                                   md))
        for disk, io in (psutil.disk_io_counters(perdisk=True) or {}).items():
            out.append(self.sample('host.disk.read.bytes', CUMULATIVE, 'B',
                                   io.read_bytes, timestamp, disk))
            out.append(self.sample('host.disk.write.bytes', CUMULATIVE, 'B',
                                   io.write_bytes, timestamp, disk))
            out.append(self.sample('host.disk.read.requests', CUMULATIVE,
                                   'request', io.read_count, timestamp,
                                   disk))
            out.append(self.sample('host.disk.write.requests', CUMULATIVE,
                                   'request', io.write_count, timestamp,
                                   disk))
        return out


class NetworkPollster(HostPollster):
    """Bytes, packets and errors per network interface."""

    meters = ('host.network.incoming.bytes', 'host.network.outgoing.bytes',
              'host.network.incoming.packets',
              'host.network.outgoing.packets',
              'host.network.incoming.errors', 'host.network.outgoing.errors')

    _FIELDS = (('host.network.incoming.bytes', 'B', 'bytes_recv'),
               ('host.network.outgoing.bytes', 'B', 'bytes_sent'),
               ('host.network.incoming.packets', 'packet', 'packets_recv'),
               ('host.network.outgoing.packets', 'packet', 'packets_sent'),
               ('host.network.incoming.errors', 'packet', 'errin'),
               ('host.network.outgoing.errors', 'packet', 'errout'))

    def poll(self, timestamp, resources=None):
        return [self.sample(name, CUMULATIVE, unit, getattr(io, field),
                            timestamp, nic)
                for nic, io in psutil.net_io_counters(pernic=True).items()
                for name, unit, field in self._FIELDS]
