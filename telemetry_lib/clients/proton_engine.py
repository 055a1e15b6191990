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
"""The fence around proton's C API: the one module that touches
``cproton`` and the ``_impl`` handles of proton's Python classes.

:mod:`telemetry_lib.clients.amqp1_io` drives proton's engine itself
(proton's reactor costs ~100 us of CPU a message). That needs the C
functions proton's own classes call, which are not proton's public API.
Everything it needs is named in :data:`NEEDED` and checked when this module
is imported: a proton release that lacks one fails at the publisher's
start with one line naming what is missing and the releases this was
tested with, never with an ``AttributeError`` in the I/O thread.
``tests/unit/test_seams.py`` is the canary.
"""

from proton import Collector
from proton import Connection
from proton import SSL
from proton import Transport

from telemetry_lib.clients.amqp1_batch import Outcome

#: The proton releases this fence was checked against.
TESTED = '0.37 to 0.40'

#: Every ``cproton`` name used, through this module, by the I/O loop.
NEEDED = (
    'addressof', 'ffi',
    'pn_collector_peek', 'pn_collector_pop',
    'pn_event_type', 'pn_event_link', 'pn_event_delivery',
    'pn_delivery', 'pn_delivery_updated', 'pn_delivery_settled',
    'pn_delivery_remote_state', 'pn_delivery_settle',
    'pn_link_credit', 'pn_link_send', 'pn_link_advance', 'pn_link_state',
    'pn_transport_capacity', 'pn_transport_push', 'pn_transport_pending',
    'pn_transport_peek', 'pn_transport_pop', 'pn_transport_close_tail',
    'pn_transport_close_head',
    'PN_ACCEPTED', 'PN_REJECTED', 'PN_RELEASED', 'PN_MODIFIED',
    'PN_CONNECTION_REMOTE_OPEN', 'PN_CONNECTION_REMOTE_CLOSE',
    'PN_SESSION_REMOTE_CLOSE', 'PN_LINK_REMOTE_CLOSE', 'PN_LINK_FLOW',
    'PN_DELIVERY', 'PN_TRANSPORT_ERROR', 'PN_TRANSPORT_CLOSED',
    'PN_LOCAL_ACTIVE', 'PN_REMOTE_ACTIVE',
)


def _load():
    try:
        import cproton
    except ImportError as exc:
        raise ImportError('python-qpid-proton has no cproton module (%s); '
                          'the amqp1 publisher was tested with proton %s'
                          % (exc, TESTED)) from None
    missing = [n for n in NEEDED if not hasattr(cproton, n)]
    if missing:
        raise ImportError('this python-qpid-proton lacks %s in its C API; '
                          'the amqp1 publisher was tested with proton %s'
                          % (', '.join(missing), TESTED))
    return cproton


#: ``cproton``, checked.
pn = _load()

OUTCOMES = {pn.PN_ACCEPTED: Outcome.ACCEPTED,
            pn.PN_REJECTED: Outcome.REJECTED,
            pn.PN_RELEASED: Outcome.RELEASED,
            pn.PN_MODIFIED: Outcome.MODIFIED}


def handle(obj):
    """The C handle of one of proton's Python objects."""
    return obj._impl


def new_engine(host, container_id, user, password, mechanisms,
               allow_insecure, heartbeat, tls):
    """``(connection, transport, collector)``, the connection opened
    locally, SASL and TLS set up; public API only.
    """
    conn = Connection()
    conn.container = container_id
    conn.hostname = host
    if user:
        conn.user = user
        conn.password = password or ''
    transport = Transport()
    sasl = transport.sasl()
    sasl.allow_insecure_mechs = allow_insecure
    sasl.allowed_mechs(mechanisms)
    transport.bind(conn)
    if heartbeat:
        transport.idle_timeout = heartbeat
    if tls:
        SSL(transport, tls.domain()).peer_hostname = host
    collector = Collector()
    conn.collect(collector)
    conn.open()
    return conn, transport, collector


def wants(transport):
    """``(room for input, output waiting)`` of the transport."""
    t = transport._impl
    return (pn.pn_transport_capacity(t) > 0,
            pn.pn_transport_pending(t) > 0)


def read_into(transport, sock):
    """Move what the socket has into the transport; ``OSError`` from the
    socket propagates.
    """
    t = transport._impl
    capacity = pn.pn_transport_capacity(t)
    if capacity <= 0:
        return
    try:
        data = sock.recv(capacity)
    except BlockingIOError:
        return
    if data:
        pn.pn_transport_push(t, data)
    else:
        # The peer closed the socket: nothing more goes either way.
        pn.pn_transport_close_tail(t)
        pn.pn_transport_close_head(t)


def write_from(transport, sock):
    """Send what the transport has for the socket; ``OSError`` from the
    socket propagates.
    """
    t = transport._impl
    pending = pn.pn_transport_pending(t)
    if pending <= 0:
        return
    n, data = pn.pn_transport_peek(t, pending)
    if n < 0:
        return
    try:
        sent = sock.send(data)
    except BlockingIOError:
        return
    pn.pn_transport_pop(t, sent)


def describe(condition):
    """A proton condition as people read it: "connection refused (to
    127.0.0.1:5672)" rather than "proton:io: Connection refused - ...".
    """
    text = condition.description or condition.name or 'error'
    if condition.name == 'proton:io' and ' - ' in text:
        what, _, where = text.partition(' - ')
        return '%s (%s)' % (what.lower(), where)
    return '%s: %s' % (condition.name, text)
