"""Real libvirt domains for the compute pollster tests (tools/libvirt.sh):
a tiny guest (Debian's cloud kernel, a busybox initramfs) that reads and
writes its disk and sends packets every second, with Nova's metadata in
its XML.
"""

import os
import subprocess
import uuid

from tests import base

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                     'tools', 'libvirt.sh')
URI = 'qemu:///system'
GUEST = os.environ.get('TELEMETRY_LIBVIRT_GUEST',
                       '/var/tmp/telemetry-libvirt/guest')
NOVA_NS = 'http://openstack.org/xmlns/libvirt/nova/1.1'

XML = '''<domain type='qemu'>
  <name>%(domain)s</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <nova:instance xmlns:nova="%(ns)s">
      <nova:package version="27.0.0"/>
      <nova:name>%(display)s</nova:name>
      <nova:creationTime>2026-12-02 10:00:00</nova:creationTime>
      <nova:flavor name="m1.tiny" id="%(flavor_id)s">
        <nova:memory>128</nova:memory><nova:disk>1</nova:disk>
        <nova:swap>0</nova:swap><nova:ephemeral>0</nova:ephemeral>
        <nova:vcpus>1</nova:vcpus>
      </nova:flavor>
      <nova:owner>
        <nova:user uuid="%(user)s">demo</nova:user>
        <nova:project uuid="%(project)s">demo</nova:project>
      </nova:owner>
      <nova:root type="image" uuid="%(image)s"/>
    </nova:instance>
  </metadata>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>%(guest)s/vmlinuz</kernel>
    <initrd>%(guest)s/initrd.gz</initrd>
    <cmdline>console=ttyS0 panic=-1</cmdline>
  </os>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%(disk)s'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='ethernet'>
      <mac address='%(mac)s'/>
      <target dev='%(tap)s' managed='yes'/>
      <model type='virtio'/>
    </interface>
    <memballoon model='virtio'><stats period='1'/></memballoon>
    <serial type='file'><source path='%(console)s'/></serial>
  </devices>
</domain>
'''


def start():
    out = subprocess.run(['bash', TOOLS, 'start'], capture_output=True,
                         text=True, timeout=900)
    if out.returncode:
        raise RuntimeError('tools/libvirt.sh start: %s' % out.stderr[-2000:])


def connect():
    import libvirt
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    return libvirt.open(URI)


class Guest:
    """One domain of the test's own; ``running=False`` defines it only
    (a shut-off instance).
    """

    def __init__(self, test, conn, running=True, project='p-1'):
        self.conn = conn
        self.uuid = str(uuid.uuid4())
        short = self.uuid[:8]
        self.domain_name = 'instance-%s' % short
        self.display = 'vm-%s' % short
        self.project = project
        self.tap = 'tap%s' % short
        self.console = os.path.join(test.tmpdir, '%s.log' % short)
        disk = os.path.join(test.tmpdir, '%s.qcow2' % short)
        subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', disk,
                        '64M'], check=True, timeout=60)
        mac = 'fa:16:3e:%s:%s:%s' % (short[0:2], short[2:4], short[4:6])
        xml = XML % {'domain': self.domain_name, 'uuid': self.uuid,
                     'ns': NOVA_NS, 'display': self.display,
                     'flavor_id': 'f-tiny', 'user': 'u-1', 'project': project,
                     'image': 'img-1', 'guest': GUEST, 'disk': disk,
                     'mac': mac, 'tap': self.tap, 'console': self.console}
        if running:
            self.dom = conn.createXML(xml, 0)
        else:
            self.dom = conn.defineXML(xml)
        test.addCleanup(self.remove)

    def booted(self):
        try:
            with open(self.console, errors='replace') as f:
                return 'telemetry guest up' in f.read()
        except OSError:
            return False

    def wait_booted(self, timeout=60):
        assert base.wait_until(self.booted, timeout, 0.2), self.console

    def destroy(self):
        import libvirt
        try:
            self.dom.destroy()
        except libvirt.libvirtError:
            pass

    def remove(self):
        """Destroy and undefine, on a connection of its own: the test's
        may have died with a libvirtd restart.
        """
        import libvirt
        conn = connect()
        try:
            dom = conn.lookupByUUIDString(self.uuid)
        except libvirt.libvirtError:
            return conn.close()
        for step in (dom.destroy, dom.undefine):
            try:
                step()
            except libvirt.libvirtError:
                pass
        conn.close()
