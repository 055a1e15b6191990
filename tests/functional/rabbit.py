"""Private RabbitMQ nodes for the functional tests (tools/rabbitmq.sh)."""

import os
import subprocess
import uuid

from proton.utils import BlockingConnection

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                     'tools', 'rabbitmq.sh')


class Node:
    """A node the script starts; ``name`` picks its ports and directory."""

    def __init__(self, name='telemetry-test', port=5682, tls_port=5681,
                 dist_port=25682):
        self.env = dict(os.environ,
                        TELEMETRY_RABBIT_NODE='%s@localhost' % name,
                        TELEMETRY_RABBIT_PORT=str(port),
                        TELEMETRY_RABBIT_TLS_PORT=str(tls_port),
                        TELEMETRY_RABBIT_DIST_PORT=str(dist_port))
        self.port = port
        self.tls_port = tls_port
        # tools/rabbitmq.sh keeps each node in /var/tmp/<name>-rabbit.
        self.tls_dir = '/var/tmp/%s-rabbit/tls' % name

    def _run(self, action):
        out = subprocess.run(['bash', TOOLS, action], env=self.env,
                             capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise RuntimeError('tools/rabbitmq.sh %s failed: %s'
                               % (action, out.stderr))

    def start(self):
        self._run('start')
        return self

    def stop(self):
        self._run('stop')

    @property
    def url(self):
        return '127.0.0.1:%d' % self.port


#: The shared node (started before the tests by tox); tests use their own
#: queues on it.
MAIN = Node()
#: A node only the outage tests use, since they stop and start it.
OUTAGE = Node('telemetry-outage', port=5692, tls_port=5691,
              dist_port=25692)


def unique_queue(prefix='q'):
    return '/queue/%s-%s' % (prefix, uuid.uuid4().hex[:12])


class Receiver:
    """An independent proton receiver that accepts everything."""

    def __init__(self, node, address, credit=1000):
        self.conn = BlockingConnection('amqp://%s' % node.url,
                                       allowed_mechs='ANONYMOUS', timeout=30)
        self.link = self.conn.create_receiver(address, credit=credit)
        self.messages = []

    def drain(self, quiet=1.0, limit=1000000):
        """Receive until nothing came for ``quiet`` seconds."""
        while len(self.messages) < limit:
            try:
                msg = self.link.receive(timeout=quiet)
            except Exception:
                break
            self.link.accept()
            self.messages.append(msg)
        return self.messages

    def close(self):
        try:
            self.conn.close()
        except Exception:
            pass
