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
"""What Nova writes into a libvirt domain's XML, read as Ceilometer's
``libvirt_metadata`` discovery reads it: the instance's name, flavor,
owner, image, and its disks and interfaces.

Pure functions of the XML text, so they are tested without libvirt.
A domain without Nova's metadata is not an instance (``None``).
"""

import dataclasses
import hashlib
from xml.etree import ElementTree

# Nova has written both; 1.1 is today's.
NOVA_NAMESPACES = ('http://openstack.org/xmlns/libvirt/nova/1.1',
                   'http://openstack.org/xmlns/libvirt/nova/1.0')


@dataclasses.dataclass
class Disk:
    device: str                 # the guest's name: vda
    source: str = ''            # the host's file or volume


@dataclasses.dataclass
class Interface:
    name: str                   # the host's tap: tap1234
    mac: str = ''
    fref: str = None            # a filterref's filter, if any
    parameters: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Instance:
    id: str                     # the domain's UUID: Nova's instance id
    domain_name: str            # instance-0000002a
    name: str                   # the server's display name
    project_id: str
    user_id: str
    flavor: dict
    image: dict = None
    os_type: str = 'hvm'
    architecture: str = ''
    host: str = ''
    server_group: str = None
    disks: list = dataclasses.field(default_factory=list)
    interfaces: list = dataclasses.field(default_factory=list)

    def metadata(self, state=''):
        """Ceilometer's resource metadata of an instance sample."""
        flavor = self.flavor
        md = {
            'display_name': self.name,
            'name': self.domain_name,
            'instance_id': self.id,
            'instance_type': flavor.get('name'),
            # Nova's hostId: the host as the project sees it, hashed.
            'host': hashlib.sha224((self.project_id + self.host).encode(
                'utf-8')).hexdigest(),
            'instance_host': self.host,
            'flavor': dict(flavor),
            'status': _STATUS.get(state, ''),
            'state': _VM_STATE.get(state, ''),
            'task_state': '',
            'image': dict(self.image) if self.image else None,
            'image_ref': self.image['id'] if self.image else None,
            'image_ref_url': None,
            'architecture': self.architecture,
            'os_type': self.os_type,
            'vcpus': flavor.get('vcpus', 0),
            'memory_mb': flavor.get('ram', 0),
            'disk_gb': flavor.get('disk', 0),
            'ephemeral_gb': flavor.get('ephemeral', 0),
            'root_gb': flavor.get('disk', 0) - flavor.get('ephemeral', 0),
        }
        if self.server_group:
            md['user_metadata'] = {'server_group': self.server_group}
        return md


# libvirt's domain states, as Nova names them (vm_state / status).
_VM_STATE = {1: 'active', 2: 'active', 3: 'paused', 4: 'stopped',
             5: 'stopped', 6: 'error', 7: 'suspended'}
_STATUS = {1: 'active', 2: 'active', 3: 'paused', 4: 'shutoff',
           5: 'shutoff', 6: 'error', 7: 'suspended'}
# libvirt's states as Nova's power_state numbers (what power.state is).
POWER_STATE = {0: 0, 1: 1, 2: 1, 3: 3, 4: 4, 5: 4, 6: 6, 7: 7}


def _int(element, path):
    found = element.find(path) if element is not None else None
    try:
        return int(found.text)
    except (AttributeError, TypeError, ValueError):
        return 0


def parse(xml_text, host):
    """The :class:`Instance` a domain's XML describes, or ``None`` when
    it carries no Nova metadata.

    :raises ValueError: XML that does not parse.
    """
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise ValueError('domain XML does not parse: %s' % exc) from None
    for ns in NOVA_NAMESPACES:
        nova = root.find('./metadata/{%s}instance' % ns)
        if nova is not None:
            break
    else:
        return None

    def find(path):
        return nova.find(path.replace('n:', '{%s}' % ns))

    user, project = find('n:owner/n:user'), find('n:owner/n:project')
    flavor_el = find('n:flavor')
    if user is None or project is None or flavor_el is None:
        return None
    q = '{%s}' % ns
    flavor = {'id': flavor_el.get('id'), 'name': flavor_el.get('name'),
              'vcpus': _int(flavor_el, q + 'vcpus'),
              'ram': _int(flavor_el, q + 'memory'),
              'disk': _int(flavor_el, q + 'disk'),
              'ephemeral': _int(flavor_el, q + 'ephemeral'),
              'swap': _int(flavor_el, q + 'swap')}
    image_el = nova.find(q + "root[@type='image']")
    name_el = find('n:name')
    os_type = root.find('./os/type')
    return Instance(
        id=(root.findtext('uuid') or '').strip(),
        domain_name=(root.findtext('name') or '').strip(),
        name=name_el.text if name_el is not None and name_el.text else '',
        project_id=project.get('uuid', ''), user_id=user.get('uuid', ''),
        flavor=flavor,
        image={'id': image_el.get('uuid')} if image_el is not None
        else None,
        os_type=(os_type.text or 'hvm') if os_type is not None else 'hvm',
        architecture=os_type.get('arch', '') if os_type is not None
        else '',
        host=host,
        server_group=(find('n:serverGroup').get('uuid')
                      if find('n:serverGroup') is not None else None),
        disks=[Disk(d.find('target').get('dev'),
                    (d.find('source').get('file') or d.find('source').get(
                        'dev') or d.find('source').get('name') or '')
                    if d.find('source') is not None else '')
               for d in root.findall('./devices/disk')
               if d.get('device', 'disk') == 'disk'
               and d.find('target') is not None],
        interfaces=[_interface(i) for i in root.findall(
            './devices/interface') if i.find('target') is not None])


def _interface(el):
    fref = el.find('filterref')
    return Interface(
        name=el.find('target').get('dev'),
        mac=el.find('mac').get('address', '') if el.find('mac') is not None
        else '',
        fref=fref.get('filter') if fref is not None else None,
        parameters={p.get('name'): p.get('value')
                    for p in fref.findall('parameter')}
        if fref is not None else {})
