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
"""Samples as collectd value lists, as collectd's amqp1 plugin writes them.

A value list's identity is ``host/plugin-plugin_instance/type-type_instance``
and the Smart Gateway makes one series of each identity (labels ``host``,
``plugin_instance``, ``type_instance``). So every resource must give its
own identity, or its values overwrite each other's:

* **instance resources** (the metadata names an ``instance_id``: the
  instance itself, its disks and its interfaces) are laid out as collectd's
  virt plugin lays out a domain with ``HostnameFormat "uuid hostname"`` and
  the server name as plugin instance: host ``<instance uuid>:<compute
  node>``, plugin ``virt``, type and type instance from :data:`VIRT_METERS`
  (the disk or interface name as type instance), values in collectd's units;
* **host resources** (the resource id is the host, or ``host:device``):
  host, plugin = the meter's first segment after an optional ``host.``,
  type = the rest joined with ``_`` (``value`` if none), plugin instance =
  the device;
* **any other resource** (a volume, an image, a dynamic pollster's
  object): the same plugin and type, host = ``resource_metadata['host']``
  (else the resource id) and the resource id as plugin instance.

Pure functions; the publisher owns the transport.
"""

import typing

from telemetry_lib.formats.stf import Chunk
from telemetry_lib.formats.stf import DEFAULT_MAX_BYTES
from telemetry_lib import jsoncodec

DSTYPES = {'gauge': 'gauge', 'cumulative': 'derive', 'delta': 'absolute'}

_MIB = 1024 * 1024


class VirtMeter(typing.NamedTuple):
    """Where a Ceilometer instance meter goes in collectd's virt layout."""

    type: str
    type_instance: typing.Optional[str]     # None: the device's name
    dsname: str
    dstype: typing.Optional[str]            # None: from the sample's type
    factor: float = 1


#: Ceilometer's compute meters → collectd virt plugin identities (types.db
#: names; memory in bytes as collectd reports it). A meter that is not
#: here keeps its name (dots made ``_``) as the type, under ``virt``.
VIRT_METERS = {
    'cpu': VirtMeter('virt_cpu_total', '', 'value', 'derive'),
    'memory': VirtMeter('memory', 'total', 'value', 'gauge', _MIB),
    'memory.usage': VirtMeter('memory', 'used', 'value', 'gauge', _MIB),
    'memory.resident': VirtMeter('memory', 'rss', 'value', 'gauge', _MIB),
    'memory.available': VirtMeter('memory', 'available', 'value', 'gauge',
                                  _MIB),
    'memory.swap.in': VirtMeter('memory', 'swap_in', 'value', 'gauge',
                                _MIB),
    'memory.swap.out': VirtMeter('memory', 'swap_out', 'value', 'gauge',
                                 _MIB),
    'disk.device.read.bytes': VirtMeter('disk_octets', None, 'read',
                                        'derive'),
    'disk.device.write.bytes': VirtMeter('disk_octets', None, 'write',
                                         'derive'),
    'disk.device.read.requests': VirtMeter('disk_ops', None, 'read',
                                           'derive'),
    'disk.device.write.requests': VirtMeter('disk_ops', None, 'write',
                                            'derive'),
    'disk.device.read.latency': VirtMeter('disk_time', None, 'read',
                                          'derive'),
    'disk.device.write.latency': VirtMeter('disk_time', None, 'write',
                                           'derive'),
    'disk.device.capacity': VirtMeter('disk_capacity', None, 'value',
                                      'gauge'),
    'disk.device.allocation': VirtMeter('disk_allocation', None, 'value',
                                        'gauge'),
    'disk.device.usage': VirtMeter('disk_physical', None, 'value', 'gauge'),
    'network.incoming.bytes': VirtMeter('if_octets', None, 'rx', 'derive'),
    'network.outgoing.bytes': VirtMeter('if_octets', None, 'tx', 'derive'),
    'network.incoming.packets': VirtMeter('if_packets', None, 'rx',
                                          'derive'),
    'network.outgoing.packets': VirtMeter('if_packets', None, 'tx',
                                          'derive'),
    'network.incoming.packets.drop': VirtMeter('if_dropped', None, 'rx',
                                               'derive'),
    'network.outgoing.packets.drop': VirtMeter('if_dropped', None, 'tx',
                                               'derive'),
    'network.incoming.packets.error': VirtMeter('if_errors', None, 'rx',
                                                'derive'),
    'network.outgoing.packets.error': VirtMeter('if_errors', None, 'tx',
                                                'derive'),
}


def _str(value):
    return value if isinstance(value, str) else (
        '' if value is None else str(value))


def _device(sample, md, instance_id):
    """A disk's or an interface's name, '' for the instance itself."""
    if md.get('disk_name'):
        return _str(md['disk_name'])
    if md.get('mac') and md.get('name'):        # an interface: its tap
        return _str(md['name'])
    rid = sample.resource_id or ''
    if rid and rid != instance_id:
        return rid[len(instance_id) + 1:] if rid.startswith(
            instance_id + '-') else rid
    return ''


def _instance(sample, md, instance_id, interval):
    node = _str(md.get('instance_host') or md.get('host'))
    device = _device(sample, md, instance_id)
    virt = VIRT_METERS.get(sample.name)
    if virt is None:
        virt = VirtMeter(sample.name.replace('.', '_'), None, 'value', None)
    volume = sample.volume
    if virt.factor != 1 and volume is not None:
        volume = volume * virt.factor
    return {
        'values': [volume],
        'dstypes': [virt.dstype or DSTYPES[sample.type]],
        'dsnames': [virt.dsname],
        'time': sample.timestamp.timestamp(),
        'interval': float(interval),
        'host': '%s:%s' % (instance_id, node) if node else instance_id,
        'plugin': 'virt',
        'plugin_instance': _str(md.get('display_name')),
        'type': virt.type,
        'type_instance': (device if virt.type_instance is None
                          else virt.type_instance),
    }


def value_list(sample, interval):
    """One collectd value list (a dict) for a sample: the module's rules."""
    md = sample.resource_metadata or {}
    instance_id = md.get('instance_id')
    if instance_id and isinstance(instance_id, str):
        return _instance(sample, md, instance_id, interval)
    parts = sample.name.split('.')
    if parts[0] == 'host' and len(parts) > 1:
        parts = parts[1:]
    rid = sample.resource_id or ''
    host = _str(md.get('host'))
    if not host:
        host, _, device = rid.partition(':')
    elif rid == host:
        device = ''
    elif rid.startswith(host + ':'):
        device = rid[len(host) + 1:]
    else:
        device = rid
    return {
        'values': [sample.volume],
        'dstypes': [DSTYPES[sample.type]],
        'dsnames': ['value'],
        'time': sample.timestamp.timestamp(),
        'interval': float(interval),
        'host': host,
        'plugin': parts[0],
        'plugin_instance': device,
        'type': '_'.join(parts[1:]) or 'value',
        'type_instance': '',
    }


def encode(samples, interval, per_message=1, max_bytes=DEFAULT_MAX_BYTES):
    """collectd JSON bodies (bytes): ``(chunks, oversize)``.

    At most ``per_message`` value lists a message (1, as collectd sends)
    and never more than ``max_bytes`` a body: the Smart Gateway drops a
    larger message whole. A value list that is too large alone is left out
    and its index returned in ``oversize``.
    """
    chunks, oversize = [], []
    body, indexes, size = [], [], 2          # "[" and "]"
    for i, s in enumerate(samples):
        one = jsoncodec.dumps(value_list(s, interval))
        if len(one) + 2 > max_bytes:
            oversize.append(i)
            continue
        if body and (len(body) >= per_message
                     or size + 1 + len(one) > max_bytes):
            chunks.append(Chunk(b'[' + b','.join(body) + b']', indexes))
            body, indexes, size = [], [], 2
        size += len(one) + (1 if body else 0)
        body.append(one)
        indexes.append(i)
    if body:
        chunks.append(Chunk(b'[' + b','.join(body) + b']', indexes))
    return chunks, oversize
