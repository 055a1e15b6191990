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

proton's reactor is not thread-safe, so it runs alone in one thread; a
caller hands it a batch through an ``EventInjector`` and waits on the
batch's ``threading.Event``. Inside, messages are sent as link credit
allows, all of a batch in flight at once, never one round trip each.

Every batch has a deadline: a router that grants no credit (an address with
no consumer), a connection that does not come up, or a peer that does not
settle makes the rest of the batch ``TIMEOUT``, never a hang. The client
reconnects by itself with backoff, rotating through its hosts, and builds
fresh links on each new connection.

Per message, the work in this thread is the cost that matters (an STF
envelope carries ~30 samples): messages are encoded here, without a proton
``Message`` each (:func:`~telemetry_lib.clients.amqp1_batch.encode_message`,
the same bytes), and the handler
is flat -- it takes the few proton events it needs itself instead of
proton's ``MessagingHandler``, which passes every event through four
handlers to arrive at the same callbacks.
"""

import collections
import itertools
import logging
import ssl as pyssl
import threading

from proton import Delivery
from proton import Endpoint
from proton.reactor import ApplicationEvent
from proton.reactor import AtLeastOnce
from proton.reactor import AtMostOnce
from proton.reactor import Container
from proton.reactor import EventInjector
from proton import SSLDomain

from telemetry_lib.clients.amqp1_batch import Batch
from telemetry_lib.clients.amqp1_batch import encode_message
from telemetry_lib.clients.amqp1_batch import message_prefix
from telemetry_lib.clients.amqp1_batch import Outcome
from telemetry_lib import ratelog

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
        self._handler = _Handler(self, tls, user, password, sasl_mechanisms,
                                 allow_insecure, heartbeat, reconnect_min,
                                 reconnect_max, anonymous_relay)
        self._container_id = container_id
        # The reactor and its wake-up pipe are made by start(): built and
        # dropped unstarted (pipeline validate, a failed reload), a sender
        # holds no descriptor and no memory of proton's.
        self._container = self._injector = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='amqp1 %s' % name)

    def start(self):
        """Start the I/O thread, which connects (and reconnects)."""
        if self._container is not None or self._closed:
            return
        self._container = Container(self._handler)
        if self._container_id:
            self._container.container_id = self._container_id
        self._injector = EventInjector()
        self._container.selectable(self._injector)
        self._thread.start()

    def _run(self):
        try:
            self._container.run()
        except Exception:
            LOG.exception('%s: the AMQP 1.0 I/O thread failed', self.name)
            self._handler.fail_all(Outcome.DISCONNECTED, 'I/O thread died')

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
        self._injector.trigger(ApplicationEvent('batch', subject=batch))
        # The reactor's own deadline ends the batch; this one only guards
        # against a dead I/O thread.
        if not batch.done.wait(timeout + 5.0):
            batch.fail_rest(Outcome.TIMEOUT, 'the I/O thread did not answer')
        return batch

    def close(self, timeout=None):
        if self._closed:
            return
        self._closed = True
        if self._thread.ident is not None and self._thread.is_alive():
            self._injector.trigger(ApplicationEvent('stop_client'))
            self._thread.join(timeout if timeout is not None else 5.0)


class _Handler:
    """Lives in the I/O thread; every method here runs there.

    proton calls ``on_<event>`` for each event it has a method for, and
    nothing else: the connection's life (opened, lost, closed by either
    side), credit, and the outcome of each delivery.
    """

    #: Seconds a closing connection may take to flush and close.
    CLOSE_GRACE = 3.0

    def __init__(self, client, tls, user, password, mechanisms,
                 allow_insecure, heartbeat, reconnect_min, reconnect_max,
                 anonymous_relay):
        self._client = client
        self._tls = tls
        self._user = user
        self._password = password
        self._mechanisms = mechanisms or ('PLAIN' if user else 'ANONYMOUS')
        self._allow_insecure = allow_insecure
        self._heartbeat = heartbeat
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._anonymous_relay = anonymous_relay
        self._delay = reconnect_min
        self._host_index = 0
        self._container = None
        self._conn = None
        self._opened = False
        self._relay = False
        self._stopping = False
        self._senders = {}          # address (None: anonymous) -> Sender
        self._queues = {}           # address -> deque of (batch, index)
        self._prefixes = {}         # address -> encoded header, properties
        self._in_flight = {}        # Delivery -> (batch, index)
        self._batches = set()
        self._tags = itertools.count()
        self.last_error = 'not connected yet'
        self._log = ratelog.RateLimitedLog(LOG, client.name)

    # -- connection ----------------------------------------------------------

    def on_reactor_init(self, event):
        self._container = event.container
        self._connect()

    def _connect(self):
        if self._stopping:
            return
        host, port = self._client.hosts[self._host_index]
        self._host_index = (self._host_index + 1) % len(self._client.hosts)
        scheme = 'amqps' if self._tls else 'amqp'
        url = '%s://%s:%d' % (scheme, host, port)
        kwargs = dict(reconnect=False, sasl_enabled=True,
                      allowed_mechs=self._mechanisms,
                      allow_insecure_mechs=self._allow_insecure)
        if self._user:
            kwargs.update(user=self._user, password=self._password or '')
        if self._heartbeat:
            kwargs['heartbeat'] = self._heartbeat
        if self._tls:
            kwargs['ssl_domain'] = self._tls.domain()
        LOG.debug('%s: connecting to %s', self._client.name, url)
        self._conn = self._container.connect(url, **kwargs)
        self._opened = False

    def on_connection_remote_open(self, event):
        # proton wraps one C object in a new Python object per event:
        # compare with ==, never with `is`.
        if (event.connection != self._conn
                or not event.connection.state & Endpoint.LOCAL_ACTIVE):
            return
        self._opened = True
        self._delay = self._reconnect_min
        caps = event.connection.remote_offered_capabilities or ()
        self._relay = self._anonymous_relay is True or (
            self._anonymous_relay == 'auto' and 'ANONYMOUS-RELAY' in [
                str(c) for c in caps])
        LOG.info('%s: connected to %s%s', self._client.name,
                 event.connection.connected_address,
                 ' (anonymous relay)' if self._relay else '')
        self.last_error = ''
        for address in list(self._queues):
            self._pump(self._sender(address))

    def _lost(self, reason):
        """The connection is gone: fail what was in flight, retry later."""
        if self._conn is None:
            return
        self.last_error = reason
        # Every reconnection fails the same way while the peer is down:
        # said once a minute, not once a try.
        self._log.problem('lost', '%s: %s', 'connection lost' if
                          self._opened else 'cannot connect', reason)
        conn, self._conn = self._conn, None
        self._opened = False
        self._senders.clear()
        self.fail_all(Outcome.DISCONNECTED, reason)
        try:
            conn.close()
        except Exception:       # pragma: no cover - already torn down
            pass
        if not self._stopping:
            delay, self._delay = self._delay, min(self._delay * 2,
                                                  self._reconnect_max)
            self._container.schedule(delay, _Call(self._connect))

    def on_transport_error(self, event):
        cond = event.transport.condition
        self._lost(_describe(cond) if cond else 'transport error')

    def on_transport_closed(self, event):
        conn = event.connection
        if (self._conn is not None and conn is not None and conn == self._conn
                and conn.state & Endpoint.LOCAL_ACTIVE):
            cond = event.transport.condition if event.transport else None
            self._lost(_describe(cond) if cond else
                       'disconnected' if self._opened else
                       'could not connect')

    on_transport_tail_closed = on_transport_closed

    def on_connection_remote_close(self, event):
        conn = event.connection
        cond = conn.remote_condition
        if cond is not None and cond.name == 'amqp:connection:forced':
            return      # as if the socket closed: the transport says so
        if conn.state & Endpoint.LOCAL_CLOSED:
            self.on_connection_closed(event)
        elif conn == self._conn:
            self._lost('connection closed by the peer: %s'
                       % (cond.description if cond else 'no reason'))
        conn.close()

    def on_connection_local_close(self, event):
        if event.connection.state & Endpoint.REMOTE_CLOSED:
            self.on_connection_closed(event)

    def on_session_remote_close(self, event):
        cond = event.session.remote_condition
        if cond is not None:
            self._lost('session ended by the peer: %s'
                       % (cond.description or 'no reason'))
        event.session.close()

    def on_link_remote_close(self, event):
        link = event.link
        cond = link.remote_condition
        if self._stopping:
            link.close()
            return
        reason = ('link to %s %s: %s' % (
            link.target.address, 'refused' if cond else 'closed by the peer',
            cond.description if cond else 'no reason'))
        self.last_error = reason
        LOG.warning('%s: %s', self._client.name, reason)
        for address, sender in list(self._senders.items()):
            if sender == link:
                del self._senders[address]
                for batch, _ in self._queues.pop(address, ()):
                    batch.fail_rest(Outcome.TIMEOUT, reason)
        link.close()

    # -- sending -------------------------------------------------------------

    def on_batch(self, event):
        batch = event.subject
        self._batches.add(batch)
        self._container.schedule(batch.timeout, _Call(self._expire, batch))
        touched = set()
        for index, (address, _) in enumerate(batch.messages):
            queue = self._queues.get(address)
            if queue is None:
                queue = self._queues[address] = collections.deque()
            queue.append((batch, index))
            touched.add(address)
        if self._opened:
            for address in touched:
                self._pump(self._sender(address))

    def _sender(self, address):
        key = None if self._relay else address
        sender = self._senders.get(key)
        if sender is None:
            options = AtMostOnce() if self._client.presettled \
                else AtLeastOnce()
            sender = self._container.create_sender(
                self._conn, target=key, options=options)
            self._senders[key] = sender
        return sender

    def _pump(self, sender):
        if self._relay:
            if sender != self._senders.get(None):
                return      # a link of a connection that is gone
            addresses = list(self._queues)
        else:
            addresses = [a for a, s in self._senders.items() if s == sender]
        presettled = self._client.presettled
        credit = sender.credit
        for address in addresses:
            queue = self._queues.get(address)
            prefix = self._prefixes.get(address)
            if prefix is None:
                prefix = self._prefixes[address] = message_prefix(address)
            while queue and credit > 0:
                batch, index = queue.popleft()
                if batch.done.is_set():
                    continue
                delivery = sender.delivery(str(next(self._tags)))
                sender.stream(encode_message(prefix,
                                             batch.messages[index][1]))
                sender.advance()
                credit -= 1
                if presettled:
                    delivery.settle()
                    batch.settle(index, Outcome.SENT)
                else:
                    self._in_flight[delivery] = (batch, index)
            if not queue:
                self._queues.pop(address, None)

    def on_link_flow(self, event):
        link = event.link
        if (link.is_sender and link.credit
                and link.state & Endpoint.LOCAL_ACTIVE
                and link.state & Endpoint.REMOTE_ACTIVE):
            self._pump(link)

    def on_delivery(self, event):
        delivery = event.delivery
        if not delivery.updated:
            return
        state = delivery.remote_state
        if state == Delivery.ACCEPTED:
            self._outcome(delivery, Outcome.ACCEPTED)
        elif state == Delivery.REJECTED:
            self._outcome(delivery, Outcome.REJECTED)
        elif state == Delivery.RELEASED:
            self._outcome(delivery, Outcome.RELEASED)
        elif state == Delivery.MODIFIED:
            self._outcome(delivery, Outcome.MODIFIED)
        if delivery.settled:
            delivery.settle()

    def _outcome(self, delivery, outcome):
        found = self._in_flight.pop(delivery, None)
        if found is not None:
            batch, index = found
            batch.settle(index, outcome)
            if batch.done.is_set():
                self._batches.discard(batch)

    def _expire(self, batch):
        if not batch.done.is_set():
            waiting = sum(1 for o in batch.outcomes if o is None)
            batch.fail_rest(Outcome.TIMEOUT, '%d message(s) had no outcome '
                            'after %.1fs%s' % (
                                waiting, batch.timeout,
                                ' (%s)' % self.last_error
                                if self.last_error else ''))
        self._batches.discard(batch)
        for delivery, (b, _) in list(self._in_flight.items()):
            if b is batch:
                del self._in_flight[delivery]

    def fail_all(self, outcome, reason):
        for batch in list(self._batches):
            batch.fail_rest(outcome, reason)
        self._batches.clear()
        self._queues.clear()
        self._in_flight.clear()

    def on_stop_client(self, event):
        # Close the connection and let the reactor end by itself once it is
        # closed: stopping it at once would drop what the transport has not
        # written yet (pre-settled messages count as sent when queued).
        self._stopping = True
        self.fail_all(Outcome.DISCONNECTED, 'sender closed')
        self._client._injector.close()
        if self._conn is not None and self._opened:
            self._conn.close()
            self._container.schedule(self.CLOSE_GRACE,
                                     _Call(self._container.stop))
        else:
            self._container.stop()

    def on_connection_closed(self, event):
        if self._stopping:
            self._container.stop()


class _Call:
    """A reactor timer task calling ``func(*args)``."""

    def __init__(self, func, *args):
        self._func = func
        self._args = args

    def on_timer_task(self, event):
        self._func(*self._args)


def _describe(condition):
    """A proton condition as people read it: "connection refused (to
    127.0.0.1:5672)" rather than "proton:io: Connection refused - ...".
    """
    text = condition.description or condition.name or 'error'
    if condition.name == 'proton:io' and ' - ' in text:
        what, _, where = text.partition(' - ')
        return '%s (%s)' % (what.lower(), where)
    return '%s: %s' % (condition.name, text)
