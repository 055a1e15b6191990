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
"""The AMQP 1.0 sender's I/O thread: proton's engine on our own socket.

proton's protocol engine (connection, transport with SASL and TLS,
collector) is C; its Python reactor (``Container``) is not: it wraps every
engine event in Python objects and passes it through several handlers,
which cost ~100 us of CPU per message -- more than encoding the ~30
samples an STF message carries. This loop drives the same engine itself:
one ``poll`` over the socket and a wake-up pipe, bytes pumped between
the socket and the transport, and the few events it needs read straight
from the collector (``cproton``, the C API proton's own classes call,
reached only through the fence of
:mod:`telemetry_lib.clients.proton_engine`).
proton's Python classes are used where nothing is hot: setting up the
connection, reading error conditions.

Everything here runs in the one I/O thread; the caller's thread only
appends to :attr:`IOLoop.commands` and calls :meth:`IOLoop.wake`.
"""

import collections
import errno
import heapq
import itertools
import logging
import os
import select
import socket
import time
import uuid

from proton import Link

from telemetry_lib.clients.amqp1_batch import encode_message
from telemetry_lib.clients.amqp1_batch import message_prefix
from telemetry_lib.clients.amqp1_batch import Outcome
from telemetry_lib.clients import proton_engine as engine
from telemetry_lib.clients.proton_engine import pn
from telemetry_lib import ratelog
from telemetry_lib.wakeup import WakePipe

LOG = logging.getLogger('telemetry_lib.clients.amqp1')

_POLL_FAILED = select.POLLERR | select.POLLHUP | select.POLLNVAL

_OUTCOMES = engine.OUTCOMES


class IOLoop:
    """One AMQP 1.0 connection at a time, reconnected with backoff."""

    #: Seconds a closing connection may take to flush and close.
    CLOSE_GRACE = 3.0
    #: Seconds a TCP connection may take to be set up.
    CONNECT_TIMEOUT = 10.0

    def __init__(self, client, tls, user, password, mechanisms,
                 allow_insecure, heartbeat, reconnect_min, reconnect_max,
                 anonymous_relay, container_id):
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
        self._container_id = container_id or str(uuid.uuid4())
        self._delay = reconnect_min
        self._host_index = 0
        #: ('batch', Batch) or ('stop',), from the caller's thread.
        self.commands = collections.deque()
        self._wake = None
        self._timers = []           # heap of (when, seq, func, args)
        self._seq = itertools.count()
        self._stopping = self._done = False
        # The connection, when there is one.
        self._sock = self._conn = self._transport = None
        self._collector = self._session = None
        self._where = ''
        self._connecting = self._opened = self._relay = False
        self._deadline = None       # the transport's next tick
        self._senders = {}          # address (None: relay) -> Link
        self._links = {}            # link address (int) -> sender key
        self._queues = {}           # address -> deque of (batch, index)
        self._prefixes = {}         # address -> encoded header, properties
        self._in_flight = {}        # delivery address (int) -> (batch, i)
        self._batches = set()
        self._tags = itertools.count()
        self.last_error = 'not connected yet'
        self._log = ratelog.RateLimitedLog(LOG, client.name)

    # -- the loop ----------------------------------------------------------

    def open(self):
        """The wake-up pipe (made by the caller's thread, before the loop
        starts, so that :meth:`wake` always has one).
        """
        self._wake = WakePipe()

    def wake(self):
        self._wake.wake()

    def run(self):
        try:
            self._connect()
            while not self._done:
                self._step()
        finally:
            self._drop_connection()
            # The write end stays open until close_pipe() (see WakePipe).
            self._wake.close_read()

    def close_pipe(self):
        """Close the pipe's write end, once the loop has ended."""
        self._wake.close_write()

    def _step(self):
        now = time.monotonic()
        timeout = 1.0
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - now))
        if self._deadline:
            timeout = min(timeout, max(0.0, self._deadline - now))
        # poll, not select: an agent may hold more than 1,024 descriptors.
        poller = select.poll()
        poller.register(self._wake.fileno(), select.POLLIN)
        sock, t = self._sock, self._transport
        wanted = 0
        if sock is not None:
            if self._connecting:
                wanted = select.POLLOUT
            else:
                can_read, can_write = engine.wants(t)
                wanted = ((select.POLLIN if can_read else 0)
                          | (select.POLLOUT if can_write else 0))
            if wanted:
                poller.register(sock, wanted)
        events = dict(poller.poll(timeout * 1000.0))
        # An error or hang-up is seen by the recv or send it wakes.
        got = events.get(sock.fileno(), 0) if wanted else 0
        if got & _POLL_FAILED:
            got |= wanted
        if events.get(self._wake.fileno()):
            self._wake.drain()
        while self.commands:
            command = self.commands.popleft()
            if command[0] == 'batch':
                self._on_batch(command[1])
            else:
                self._on_stop()
        if got and sock is self._sock:
            if self._connecting:
                self._on_connected()
            else:
                if got & select.POLLIN:
                    self._read()
                if got & select.POLLOUT and self._sock is sock:
                    self._write()
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, func, args = heapq.heappop(self._timers)
            func(*args)
        if self._transport is not None and not self._connecting:
            deadline = self._transport.tick(time.time())
            # proton's ticks are wall-clock seconds; ours are monotonic.
            self._deadline = (now + max(0.0, deadline - time.time())
                              if deadline else None)
        self._process_events()

    def schedule(self, delay, func, *args):
        heapq.heappush(self._timers, (time.monotonic() + delay,
                                      next(self._seq), func, args))

    # -- the connection ----------------------------------------------------

    def _connect(self):
        if self._stopping:
            return
        hosts = self._client.hosts
        host, port = hosts[self._host_index]
        self._host_index = (self._host_index + 1) % len(hosts)
        self._where = '%s:%d' % (host, port)
        LOG.debug('%s: connecting to %s', self._client.name, self._where)
        conn, transport, collector = engine.new_engine(
            host, self._container_id, self._user, self._password,
            self._mechanisms, self._allow_insecure, self._heartbeat,
            self._tls)
        self._conn, self._transport, self._collector = (conn, transport,
                                                        collector)
        self._session = None
        self._opened = False
        self._deadline = None
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)[0]
            self._sock = socket.socket(family, kind, proto)
            self._sock.setblocking(False)
            err = self._sock.connect_ex(address)
        except OSError as exc:
            self._lost(self._io_error(exc))
            return
        if err not in (0, errno.EINPROGRESS):
            self._lost(self._io_error(OSError(err, os.strerror(err))))
            return
        self._connecting = True
        self.schedule(self.CONNECT_TIMEOUT, self._connect_timeout, self._sock)

    def _connect_timeout(self, sock):
        # A peer that drops the SYN would leave the socket connecting for
        # minutes, and no other host would be tried meanwhile.
        if self._sock is sock and self._connecting:
            self._lost('connection timed out after %.0fs (to %s)'
                       % (self.CONNECT_TIMEOUT, self._where))

    def _on_connected(self):
        err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._lost(self._io_error(OSError(err, os.strerror(err))))
            return
        self._connecting = False
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _io_error(self, exc):
        text = exc.strerror or str(exc)
        return '%s (to %s)' % (text[:1].lower() + text[1:], self._where)

    def _read(self):
        try:
            engine.read_into(self._transport, self._sock)
        except OSError as exc:
            self._lost(self._io_error(exc))

    def _write(self):
        try:
            engine.write_from(self._transport, self._sock)
        except OSError as exc:
            self._lost(self._io_error(exc))

    def _drop_connection(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:       # pragma: no cover - already closed
                pass
        if self._transport is not None:
            try:
                self._transport.unbind()
            except Exception:       # pragma: no cover - already torn down
                pass
        self._conn = self._transport = self._collector = None
        self._session = None
        self._connecting = self._opened = False
        self._deadline = None
        self._senders.clear()
        self._links.clear()

    def _lost(self, reason):
        """The connection is gone: fail what was in flight, retry later."""
        if self._conn is None:
            return
        self.last_error = reason
        if self._stopping:
            self._drop_connection()
            self._done = True
            return
        # Every reconnection fails the same way while the peer is down:
        # said once a minute, not once a try.
        self._log.problem('lost', '%s: %s', 'connection lost' if
                          self._opened else 'cannot connect', reason)
        self._drop_connection()
        self.fail_all(Outcome.DISCONNECTED, reason)
        delay, self._delay = self._delay, min(self._delay * 2,
                                              self._reconnect_max)
        self.schedule(delay, self._connect)

    # -- events --------------------------------------------------------------

    def _process_events(self):
        collector = self._collector
        while collector is not None and collector is self._collector:
            impl = engine.handle(collector)
            event = pn.pn_collector_peek(impl)
            if event == pn.ffi.NULL:
                return
            kind = pn.pn_event_type(event)
            if kind == pn.PN_DELIVERY:
                self._on_delivery(pn.pn_event_delivery(event))
            elif kind == pn.PN_LINK_FLOW:
                self._on_flow(pn.pn_event_link(event))
            elif kind == pn.PN_CONNECTION_REMOTE_OPEN:
                self._on_remote_open()
            elif kind == pn.PN_CONNECTION_REMOTE_CLOSE:
                self._on_connection_remote_close()
            elif kind == pn.PN_SESSION_REMOTE_CLOSE:
                self._on_session_remote_close()
            elif kind == pn.PN_LINK_REMOTE_CLOSE:
                self._on_link_remote_close(Link.wrap(pn.pn_event_link(event)))
            elif kind in (pn.PN_TRANSPORT_ERROR, pn.PN_TRANSPORT_CLOSED):
                cond = self._transport.condition
                self._lost(engine.describe(cond) if cond else
                           'transport error' if kind == pn.PN_TRANSPORT_ERROR
                           else 'disconnected' if self._opened else
                           'could not connect')
            if collector is self._collector:
                pn.pn_collector_pop(impl)

    def _on_remote_open(self):
        conn = self._conn
        self._opened = True
        self._delay = self._reconnect_min
        caps = conn.remote_offered_capabilities or ()
        self._relay = self._anonymous_relay is True or (
            self._anonymous_relay == 'auto' and 'ANONYMOUS-RELAY' in [
                str(c) for c in caps])
        LOG.info('%s: connected to %s%s', self._client.name, self._where,
                 ' (anonymous relay)' if self._relay else '')
        self.last_error = ''
        self._session = conn.session()
        self._session.open()
        for address in list(self._queues):
            self._pump(self._sender(address))

    def _on_connection_remote_close(self):
        conn = self._conn
        cond = conn.remote_condition
        if cond is not None and cond.name == 'amqp:connection:forced':
            return      # as if the socket closed: the transport says so
        if self._stopping:
            self._drop_connection()
            self._done = True
            return
        self._lost('connection closed by the peer: %s'
                   % (cond.description if cond else 'no reason'))

    def _on_session_remote_close(self):
        session = self._session
        cond = session.remote_condition if session is not None else None
        if cond is not None:
            self._lost('session ended by the peer: %s'
                       % (cond.description or 'no reason'))
        elif session is not None:
            session.close()

    def _on_link_remote_close(self, link):
        cond = link.remote_condition
        if self._stopping:
            link.close()
            return
        reason = ('link to %s %s: %s' % (
            link.target.address, 'refused' if cond else 'closed by the peer',
            cond.description if cond else 'no reason'))
        self.last_error = reason
        LOG.warning('%s: %s', self._client.name, reason)
        key = self._links.pop(pn.addressof(engine.handle(link)), 0)
        if key != 0 and self._senders.pop(key, None) is not None:
            for batch, _ in self._queues.pop(key, ()):
                batch.fail_rest(Outcome.TIMEOUT, reason)
        link.close()

    # -- sending -------------------------------------------------------------

    def _on_batch(self, batch):
        if self._stopping:
            batch.fail_rest(Outcome.DISCONNECTED, 'sender closed')
            return
        self._batches.add(batch)
        self.schedule(batch.timeout, self._expire, batch)
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
            sender = self._session.sender('%s-%s' % (
                key or 'relay', uuid.uuid4()))
            if key is not None:
                sender.target.address = key
            if self._client.presettled:
                sender.snd_settle_mode = Link.SND_SETTLED
            else:
                sender.snd_settle_mode = Link.SND_UNSETTLED
                sender.rcv_settle_mode = Link.RCV_FIRST
            sender.open()
            self._senders[key] = sender
            self._links[pn.addressof(engine.handle(sender))] = key
        return sender

    def _pump(self, sender):
        link = engine.handle(sender)
        if self._relay:
            addresses = list(self._queues)
        else:
            addresses = [a for a, s in self._senders.items()
                         if s is sender]
        presettled = self._client.presettled
        credit = pn.pn_link_credit(link)
        for address in addresses:
            queue = self._queues.get(address)
            prefix = self._prefixes.get(address)
            if prefix is None:
                prefix = self._prefixes[address] = message_prefix(address)
            while queue and credit > 0:
                batch, index = queue.popleft()
                if batch.done.is_set():
                    continue
                delivery = pn.pn_delivery(link, b'%d' % next(self._tags))
                pn.pn_link_send(link, encode_message(
                    prefix, batch.messages[index][1]))
                pn.pn_link_advance(link)
                credit -= 1
                if presettled:
                    pn.pn_delivery_settle(delivery)
                    batch.settle(index, Outcome.SENT)
                else:
                    self._in_flight[pn.addressof(delivery)] = (batch, index)
            if not queue:
                self._queues.pop(address, None)

    def _on_flow(self, link):
        key = self._links.get(pn.addressof(link), 0)
        if key == 0 or not pn.pn_link_credit(link):
            return
        state = pn.pn_link_state(link)
        if state & pn.PN_LOCAL_ACTIVE and state & pn.PN_REMOTE_ACTIVE:
            self._pump(self._senders[key])

    def _on_delivery(self, delivery):
        if not pn.pn_delivery_updated(delivery):
            return
        outcome = _OUTCOMES.get(pn.pn_delivery_remote_state(delivery))
        if outcome is not None:
            found = self._in_flight.pop(pn.addressof(delivery), None)
            if found is not None:
                batch, index = found
                batch.settle(index, outcome)
                if batch.done.is_set():
                    self._batches.discard(batch)
        if pn.pn_delivery_settled(delivery):
            pn.pn_delivery_settle(delivery)

    def _expire(self, batch):
        if not batch.done.is_set():
            waiting = sum(1 for o in batch.outcomes if o is None)
            batch.fail_rest(Outcome.TIMEOUT, '%d message(s) had no outcome '
                            'after %.1fs%s' % (
                                waiting, batch.timeout,
                                ' (%s)' % self.last_error
                                if self.last_error else ''))
        self._batches.discard(batch)
        for key, (b, _) in list(self._in_flight.items()):
            if b is batch:
                del self._in_flight[key]

    def fail_all(self, outcome, reason):
        for batch in list(self._batches):
            batch.fail_rest(outcome, reason)
        self._batches.clear()
        self._queues.clear()
        self._in_flight.clear()

    def _on_stop(self):
        # Close the connection and end once it is closed, or after a grace
        # period: ending at once would drop what the transport has not
        # written yet (pre-settled messages count as sent when queued).
        if self._stopping:
            return
        self._stopping = True
        self.fail_all(Outcome.DISCONNECTED, 'sender closed')
        if self._conn is not None and self._opened:
            self._conn.close()
            self.schedule(self.CLOSE_GRACE, self._end)
        else:
            self._end()

    def _end(self):
        self._done = True
