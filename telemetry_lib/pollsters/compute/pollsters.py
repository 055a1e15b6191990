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
"""The compute pollsters (``telemetry_lib.pollster`` entry points
``compute.cpu``, ``compute.memory``, ``compute.disk``,
``compute.network``, ``compute.state``, ``compute.perf``): each asks
libvirt for the statistics of its own meters only, so a
``polling.yaml`` that wants ``cpu`` reads no block statistics; all share
one inspector (one connection, one cache of domain XML).
"""

import socket

from oslo_config import cfg

from telemetry_lib import lifecycle
from telemetry_lib.pollsters import base
from telemetry_lib.pollsters.compute import inspector
from telemetry_lib.pollsters.compute import meters

GROUP = 'compute'
OPTS = [
    cfg.StrOpt('libvirt_uri', default='qemu:///system',
               help="libvirt's connection URI (opened read-only)."),
    cfg.StrOpt('host',
               help="This compute host's name as Nova knows it "
                    "([DEFAULT] host of nova.conf); default: the "
                    'machine\'s host name.'),
    cfg.FloatOpt('metadata_ttl', default=600.0, min=0, max=86400,
                 help="Seconds a domain's XML (Nova's metadata, disks, "
                      'interfaces) is reused before it is read again; a '
                      'restarted domain is read at once.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class ComputePollster(base.Pollster):
    """Samples of one group of meters for every instance on this host."""

    group = None

    def __init__(self, conf):
        super().__init__(conf)
        register_opts(conf)
        self.inspector = None
        self.meters, self._flags = meters.GROUPS[self.group]

    def start(self):
        """Take this agent's one inspector for the configured URI (the
        connection opens at the first poll).
        """
        if self.inspector is None:
            opts = self.conf[GROUP]
            self.inspector = inspector.acquire(
                self.conf, opts.libvirt_uri,
                opts.host or socket.gethostname(), opts.metadata_ttl)

    def close(self, timeout=None):
        """Give the inspector back; the last compute pollster to close
        closes the libvirt connection.
        """
        found, self.inspector = self.inspector, None
        if found is not None and not inspector.release(self.conf, found,
                                                       timeout):
            return lifecycle.Outcome.unfinished(
                'a libvirt call still held the connection')
        return lifecycle.DONE

    def poll(self, timestamp, resources=None):
        found = self.inspector
        if found is None:
            # Polled without start() (a one-off collect): start now.
            self.start()
            found = self.inspector
        out = []
        for instance, stats in found.domains(self._flags):
            out.extend(meters.samples(self.group, instance, stats,
                                      timestamp))
        return out


class CPUPollster(ComputePollster):
    """``cpu`` (ns, cumulative) and ``vcpus``."""
    group = 'cpu'


class MemoryPollster(ComputePollster):
    """``memory``, ``memory.usage``, ``.resident``, ``.available``,
    ``.swap.in``, ``.swap.out``.
    """
    group = 'memory'


class DiskPollster(ComputePollster):
    """``disk.device.*`` per disk, ``disk.root.size``,
    ``disk.ephemeral.size``.
    """
    group = 'disk'


class NetworkPollster(ComputePollster):
    """``network.incoming|outgoing.bytes|packets[.drop|.error]`` per
    interface.
    """
    group = 'network'


class StatePollster(ComputePollster):
    """``power.state`` (Nova's power state numbers)."""
    group = 'state'


class PerfPollster(ComputePollster):
    """``perf.*`` and memory bandwidth, where the host's CPU has the
    counters and the domain enables them.
    """
    group = 'perf'
