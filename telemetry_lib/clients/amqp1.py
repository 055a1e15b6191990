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
"""An AMQP 1.0 sender on python-qpid-proton, with its own I/O thread.

proton's engine is not thread-safe, so it runs alone in one thread
(:mod:`telemetry_lib.clients.amqp1_io`); a caller hands it a batch through
a command queue and a wake-up pipe and waits on the batch's
``threading.Event``. Inside, messages are sent as link credit allows, all
of a batch in flight at once, never one round trip each.

Every batch has a deadline: a router that grants no credit (an address with
no consumer), a connection that does not come up, or a peer that does not
settle makes the rest of the batch ``TIMEOUT``, never a hang. The client
reconnects by itself with backoff, rotating through its hosts, and builds
fresh links on each new connection.
"""

import logging
import ssl as pyssl
import threading

from proton import SSLDomain

from telemetry_lib.clients.amqp1_batch import Batch
from telemetry_lib.clients.amqp1_batch import Outcome
from telemetry_lib.clients import amqp1_io

LOG = logging.getLogger(__name__)


class TLSOptions:
    """Client TLS settings (as a Qpid Dispatch Router ``sslProfile``)."""

    def __init__(self, ca_file=None, cert_file=None, key_file=None,
                 key_password=None, verify_hostname=True):
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.key_password = key_password
        self.verify_hostname = verify_hostname

    def domain(self):
        domain = SSLDomain(SSLDomain.MODE_CLIENT)
        ca = self.ca_file or pyssl.get_default_verify_paths().cafile
        if ca:
            domain.set_trusted_ca_db(ca)
        if self.cert_file:
            domain.set_credentials(self.cert_file, self.key_file,
                                   self.key_password)
        domain.set_peer_authentication(
            SSLDomain.VERIFY_PEER_NAME if self.verify_hostname
            else SSLDomain.VERIFY_PEER, ca)
        return domain


class AMQP1Sender:
    """Sends batches of (address, body) over one AMQP 1.0 connection.

    :param hosts: ``[(host, port)]``, tried in turn (failover).
    :param presettled: send pre-settled (at most once) instead of waiting
        for each message's outcome (at least once).
    :param tls: a :class:`TLSOptions`, or ``None`` for plain TCP.
    :param user: SASL user (PLAIN); ``None`` for ANONYMOUS.
    :param password: never logged.
    """

    def __init__(self, hosts, presettled=False, tls=None, user=None,
                 password=None, sasl_mechanisms=None, allow_insecure=True,
                 container_id=None, heartbeat=None, reconnect_min=0.1,
                 reconnect_max=10.0, anonymous_relay='auto', name='amqp1'):
        self.hosts = list(hosts)
        self.presettled = presettled
        self.name = name
        # Holds no descriptor and no memory of proton's until start():
        # built and dropped unstarted (pipeline validate, a failed reload),
        # a sender costs nothing.
        self._io = amqp1_io.IOLoop(
            self, tls, user, password, sasl_mechanisms, allow_insecure,
            heartbeat, reconnect_min, reconnect_max, anonymous_relay,
            container_id)
        self._started = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='amqp1 %s' % name)

    @property
    def last_error(self):
        return self._io.last_error

    def start(self):
        """Start the I/O thread, which connects (and reconnects)."""
        if self._started or self._closed:
            return
        self._started = True
        self._io.open()
        self._thread.start()

    def _run(self):
        try:
            self._io.run()
        except Exception:
            LOG.exception('%s: the AMQP 1.0 I/O thread failed', self.name)
            self._io.fail_all(Outcome.DISCONNECTED, 'I/O thread died')

    def send(self, messages, timeout):
        """Send ``[(address, body)]``; block until every message has an
        outcome or ``timeout`` seconds passed. Returns the :class:`Batch`.

        A ``str`` body goes as an AMQP string, ``bytes`` as binary, both in
        an amqp-value section.
        """
        batch = Batch(messages, timeout)
        if self._closed or not self._thread.is_alive():
            batch.fail_rest(Outcome.DISCONNECTED, 'sender closed'
                            if self._closed else 'sender not started')
            return batch
        self._io.commands.append(('batch', batch))
        self._io.wake()
        # The I/O thread's own deadline ends the batch; this one only
        # guards against a dead I/O thread.
        if not batch.done.wait(timeout + 5.0):
            batch.fail_rest(Outcome.TIMEOUT, 'the I/O thread did not answer')
        return batch

    def close(self, timeout=None):
        """Stop the I/O thread within ``timeout`` (5 s when None); return
        whether it stopped.
        """
        if self._closed:
            return not self._thread.is_alive()
        self._closed = True
        if self._thread.ident is None:
            return True
        if self._thread.is_alive():
            self._io.commands.append(('stop',))
            self._io.wake()
            self._thread.join(timeout if timeout is not None else 5.0)
        if not self._thread.is_alive():
            self._io.close_pipe()
            return True
        return False
