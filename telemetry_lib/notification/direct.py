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
"""The direct notification consumer (``[notification] consumer = direct``):
oslo.messaging's notification wire format read from RabbitMQ with py-amqp,
without oslo.messaging's per-message machinery.

Most of the CPU an oslo.messaging batch listener spends on a notification
is its own and kombu's per-message work, not the conversion; this reads
the same queues the same way and hands the converter the same bodies:

* **Queues** as oslo.messaging's rabbit driver declares them for a
  notification listener: on every control exchange (type ``topic``), a
  queue per ``<topic>.<priority>`` -- or, with a ``pool``, one queue named
  after the pool -- bound with the routing key ``<topic>.<priority>``,
  with the ``[oslo_messaging_rabbit]`` options that shape them (durable,
  auto-delete, HA or quorum arguments), so either consumer can take over
  the other's queues.
* **Messages**: the oslo 2.0 envelope (``oslo.version``, ``oslo.message``)
  or a bare 1.0 dict, JSON, the context in its ``_context_*`` keys; a
  batch is grouped by priority and each group goes to
  :meth:`NotificationListener.process` as the oslo.messaging dispatcher
  sends it.
* **Acknowledgements**: only when ``process`` says the group is done (one
  ``basic.ack`` for the batch when all is); a group the publishers could
  not take is requeued; a message that is no notification is rejected
  without requeue (RabbitMQ dead-letters it if the queue has a policy),
  counted as ``undecodable`` -- what oslo.messaging does. A connection lost
  with messages unacknowledged has them delivered again: at least once.

RabbitMQ only (``rabbit://`` URLs, several hosts tried in order);
``tests/functional/test_notifications_direct.py`` feeds the same queue
contents to both consumers and compares what they make.
"""

import bz2
import collections
import itertools
import logging
import operator
import socket
import ssl
import threading
import time
import zlib

import amqp

from telemetry_lib.exceptions import ConfigError
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib import masking
from telemetry_lib.notification import listener as base

LOG = logging.getLogger(__name__)

#: Seconds between two looks at the stop flag (and heartbeats) while the
#: bus is quiet.
TICK = 0.2
#: Seconds to connect (TCP, TLS and the AMQP handshake) to one host.
CONNECT_TIMEOUT = 10.0
#: What kombu names its compressions in a message's headers.
_DECOMPRESS = {'application/x-gzip': zlib.decompress,
               'application/x-bz2': bz2.decompress,
               'zlib': zlib.decompress, 'bzip2': bz2.decompress}
_CONTEXT = '_context_'
_PRIORITY = operator.itemgetter(0)


#: Bytes asked of the socket at once: py-amqp reads each frame's header,
#: payload and end byte with a recv() of its own -- nine system calls a
#: notification -- and keeps what a recv() gives beyond what it asked for.
READ_AHEAD = 16384


def read_ahead(conn):
    """Make ``conn`` read the socket ``READ_AHEAD`` bytes at a time.

    The one place we reach past py-amqp's public API (its plain TCP
    transport's ``_quick_recv``; ``tests/unit/test_seams.py`` is the
    canary): left as it is for TLS, and when the attribute is gone.
    """
    transport = getattr(conn, 'transport', None)
    recv = getattr(transport, '_quick_recv', None)
    if not isinstance(transport, amqp.transport.TCPTransport) or \
            recv is None:
        return False
    transport._quick_recv = lambda n: recv(max(n, READ_AHEAD))
    return True


class Undecodable(ValueError):
    """A message that is no oslo.messaging notification."""


def decode(message):
    """``(priority, body)`` of one AMQP message, ``body`` as an
    oslo.messaging batch listener hands it to its endpoints.

    :raises Undecodable: for what oslo.messaging would reject.
    """
    raw = message.body
    compression = (message.headers or {}).get('compression')
    try:
        if compression:
            raw = _DECOMPRESS[compression](raw)
        msg = jsoncodec.loads(raw)
        if type(msg) is dict and 'oslo.version' in msg \
                and 'oslo.message' in msg:
            if str(msg['oslo.version']).partition('.')[0] != '2':
                raise Undecodable('envelope version %s is not 2.x'
                                  % msg['oslo.version'])
            msg = jsoncodec.loads(msg['oslo.message'])
    except KeyError:
        raise Undecodable('unknown compression %r' % compression) from None
    except (jsoncodec.DecodeError, TypeError, OSError, ValueError) as exc:
        raise Undecodable('%s: %s' % (type(exc).__name__, exc)) from None
    if type(msg) is not dict:
        raise Undecodable('a %s, not a message' % type(msg).__name__)
    ctxt = {key[9:]: msg.pop(key) for key in
            [k for k in msg if type(k) is str and k.startswith(_CONTEXT)]}
    msg.pop('_msg_id', None)
    msg.pop('_reply_q', None)
    msg.pop('_unique_id', None)
    # oslo.messaging's context keeps the RPC timeout, None for a
    # notification.
    ctxt['client_timeout'] = msg.pop('_timeout', None)
    priority = msg.get('priority', '')
    priority = priority.lower() if type(priority) is str else ''
    return priority, {
        'ctxt': ctxt, 'publisher_id': msg.get('publisher_id'),
        'event_type': msg.get('event_type'), 'payload': msg.get('payload'),
        'metadata': {'message_id': msg.get('message_id'),
                     'timestamp': msg.get('timestamp')}}


def queue_arguments(rabbit):
    """The arguments oslo.messaging's rabbit driver declares a
    notification queue with, from ``[oslo_messaging_rabbit]``: RabbitMQ
    refuses a second declaration that differs.
    """
    if rabbit is None:
        return {}
    args = {}
    if rabbit.rabbit_ha_queues:
        args['x-ha-policy'] = 'all'
    if rabbit.rabbit_quorum_queue:
        args['x-queue-type'] = 'quorum'
        for option, key in (('rabbit_quorum_delivery_limit',
                             'x-delivery-limit'),
                            ('rabbit_quorum_max_memory_length',
                             'x-max-in-memory-length'),
                            ('rabbit_quorum_max_memory_bytes',
                             'x-max-in-memory-bytes')):
            if rabbit[option]:
                args[key] = rabbit[option]
    return args


class _Bus:
    """Where one transport URL points, and how to declare its queues."""

    def __init__(self, conf, url, om, opts):
        parsed = om.TransportURL.parse(conf, url)
        if (parsed.transport or 'rabbit') not in ('rabbit', 'kombu'):
            raise ConfigError('the direct consumer reads RabbitMQ only, '
                              'not %s: use consumer = oslo.messaging'
                              % parsed.transport,
                              where='[notification] messaging_urls')
        if not parsed.hosts:
            raise ConfigError('no host in %s' % masking.redact(url),
                              where='[notification] messaging_urls')
        self.url = url
        self.hosts = parsed.hosts
        self.virtual_host = parsed.virtual_host or '/'
        self.routes = [(exchange, '%s.%s' % (topic, priority))
                       for exchange in opts.notification_control_exchanges
                       for topic in opts.topics
                       for priority in base.PRIORITIES]
        self.pool = opts.pool

    def connect(self, rabbit, stopping):
        """A connected ``amqp.Connection`` to the first host that answers
        (``stopping()`` true: no more hosts are tried).

        :raises OSError, amqp.exceptions.AMQPError: when none does.
        """
        problems = []
        for host in self.hosts:
            conn = amqp.Connection(
                '%s:%d' % (host.hostname, host.port or 5672),
                userid=host.username or 'guest',
                password=host.password or 'guest',
                virtual_host=self.virtual_host,
                login_method=rabbit.rabbit_login_method if rabbit else None,
                ssl=_ssl_context(rabbit),
                connect_timeout=CONNECT_TIMEOUT,
                read_timeout=CONNECT_TIMEOUT, write_timeout=CONNECT_TIMEOUT,
                heartbeat=(rabbit.heartbeat_timeout_threshold if rabbit
                           else 60))
            try:
                conn.connect()
                read_ahead(conn)
                return conn
            except (OSError, amqp.exceptions.AMQPError) as exc:
                problems.append('%s:%s: %s' % (host.hostname, host.port,
                                               exc))
            if stopping():
                break
        raise ConnectionError('; '.join(problems))

    def declare(self, channel, rabbit):
        """Declare the exchanges, queues and bindings; the queue names."""
        durable = bool(rabbit and (rabbit.amqp_durable_queues
                                   or rabbit.rabbit_quorum_queue))
        auto_delete = bool(rabbit and rabbit.amqp_auto_delete)
        args = queue_arguments(rabbit)
        queues = []
        for exchange, key in self.routes:
            channel.exchange_declare(exchange, 'topic', durable=durable,
                                     auto_delete=auto_delete)
            name = self.pool or key
            if name not in queues:
                channel.queue_declare(name, durable=durable,
                                      auto_delete=auto_delete,
                                      arguments=args)
                queues.append(name)
            channel.queue_bind(name, exchange, key)
        return queues


def _ssl_context(rabbit):
    if rabbit is None or not rabbit.ssl:
        return False
    context = ssl.create_default_context(cafile=rabbit.ssl_ca_file or None)
    if rabbit.ssl_cert_file:
        context.load_cert_chain(rabbit.ssl_cert_file,
                                rabbit.ssl_key_file or None)
    context.check_hostname = bool(
        rabbit.ssl_enforce_hostname_verification)
    return context


class DirectNotificationListener(base.NotificationListener):
    """:class:`~telemetry_lib.notification.listener.NotificationListener`
    reading RabbitMQ itself: the same options, counts, conversion,
    back-pressure and poison handling; ``workers`` connections per URL.
    """

    def __init__(self, conf, deliver, converter):
        super().__init__(conf, deliver, converter)
        self._buses = [_Bus(conf, url, self._om, self.opts)
                       for url in self.urls]
        self._threads = []
        self._up = collections.Counter()

    def start(self):
        """Start a thread per worker that connects, declares and consumes,
        reconnecting with backoff; return once each URL has a consumer, or
        after ``CONNECT_WAIT`` seconds with a warning.
        """
        self._stopping.clear()
        # For the [oslo_messaging_rabbit] options and the poison topic.
        self._make_transports()
        self._connected.clear()
        self._up.clear()
        for bus in self._buses:
            for n in range(self.opts.workers):
                t = threading.Thread(target=self._run, args=(bus,),
                                     daemon=True, name='notification-direct'
                                     ' %s/%d' % (masking.redact(bus.url), n))
                t.start()
                self._threads.append(t)
        if not self._connected.wait(base.CONNECT_WAIT):
            LOG.warning('notifications: not listening yet after %.0fs (the '
                        'bus does not answer); still trying',
                        base.CONNECT_WAIT)

    def close(self, timeout=None):
        deadline = lifecycle.Deadline(timeout)
        with self._lock:
            self._stopping.set()
            threads, self._threads = self._threads, []
            transports, self._transports = self._transports, []
        for t in threads:
            t.join(deadline.left())
        stuck = [t.name for t in threads if t.is_alive()]
        for transport in transports:
            # Never connected unless a poison notification was sent.
            closer = threading.Thread(target=transport.cleanup, daemon=True)
            closer.start()
            closer.join(deadline.left())
        if stuck:
            LOG.warning('notifications: %s did not stop within %.1fs; left '
                        'to finish in the background', ', '.join(stuck),
                        timeout)
            return lifecycle.Outcome.unfinished(
                'the notification consumer did not stop in time')
        return lifecycle.DONE

    # -- one worker ----------------------------------------------------------

    def _run(self, bus):
        delay = 1.0
        # Registered by oslo.messaging's driver when start() made the
        # transports.
        rabbit = getattr(self.conf, 'oslo_messaging_rabbit', None)
        while not self._stopping.is_set():
            try:
                conn = bus.connect(rabbit, self._stopping.is_set)
            except (OSError, amqp.exceptions.AMQPError) as exc:
                self.counts.add('connect_failed')
                self.problems.problem(
                    ('connect', bus.url), 'cannot reach %s: %s; trying '
                    'again', masking.redact(bus.url),
                    masking.redact(str(exc)))
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            problem, channel, tags = None, None, []
            try:
                channel = conn.channel()
                channel.basic_qos(0, self.prefetch, False)
                pending = []
                for name in bus.declare(channel, rabbit):
                    tags.append(channel.basic_consume(
                        name, callback=pending.append))
                delay = 1.0
                self._mark_up(bus)
                self._consume(conn, channel, pending)
            except (OSError, amqp.exceptions.AMQPError) as exc:
                problem = exc
            finally:
                _close_quietly(conn, channel, None if problem else tags)
            if problem is not None and not self._stopping.is_set():
                self.counts.add('connection_lost')
                self.problems.problem(
                    ('lost', bus.url), 'lost %s: %s: %s; reconnecting',
                    masking.redact(bus.url), type(problem).__name__,
                    masking.redact(str(problem)))
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)

    def _mark_up(self, bus):
        with self._lock:
            self._up[bus.url] += 1
            if all(self._up[b.url] for b in self._buses):
                self._connected.set()

    def _consume(self, conn, channel, pending):
        """Take batches until told to stop; what is unacknowledged when it
        stops goes back to the queue with the connection.
        """
        opts = self.opts
        first = None
        ticked = time.monotonic()
        while not self._stopping.is_set():
            # One timeout for every wait: py-amqp sets the socket's timeout
            # around each frame it reads when it changes, twice a frame. A
            # batch goes out at most TICK after its timeout.
            try:
                conn.drain_events(timeout=TICK)
            except socket.timeout:
                pass
            now = time.monotonic()
            if now - ticked >= TICK:
                conn.heartbeat_tick()
                ticked = now
            if pending and first is None:
                first = now
            if pending and (len(pending) >= opts.batch_size
                            or now - first >= opts.batch_timeout):
                batch = pending[:opts.batch_size]
                del pending[:opts.batch_size]
                self._handle(channel, batch)
                first = time.monotonic() if pending else None

    def _handle(self, channel, batch):
        """Decode, process by priority and settle one batch."""
        groups, rejected = [], []
        for message in batch:
            try:
                priority, body = decode(message)
            except Undecodable as exc:
                self.counts.add('undecodable')
                self.problems.problem(
                    'undecodable', 'a message on the bus is no notification '
                    '(%s); rejected', exc)
                rejected.append(message)
                continue
            groups.append((priority, body, message))
        for message in rejected:
            channel.basic_reject(message.delivery_tag, requeue=False)
        done, again = [], []
        groups.sort(key=_PRIORITY)
        for priority, group in itertools.groupby(groups, _PRIORITY):
            group = list(group)
            messages = [m for _, _, m in group]
            if priority not in base.PRIORITIES:
                # What oslo.messaging's dispatcher does: a warning, and
                # the message acknowledged (here once a minute, however
                # many come).
                self.problems.problem(
                    'priority', 'unknown priority %r; %d notification(s) '
                    'acknowledged', priority[:50], len(group))
                done += messages
            elif self.process(priority, [b for _, b, _ in group]):
                done += messages
            else:
                again += messages
        if not again and not rejected and done:
            channel.basic_ack(max(m.delivery_tag for m in done),
                              multiple=True)
            return
        for message in done:
            channel.basic_ack(message.delivery_tag)
        for message in again:
            channel.basic_reject(message.delivery_tag, requeue=True)


def _close_quietly(conn, channel, tags):
    """Close a connection, its consumers first when it is healthy (what
    the broker sends meanwhile is not acknowledged, so it is queued again
    as the channel closes).
    """
    try:
        for tag in tags or ():
            channel.basic_cancel(tag)
        conn.close()
    except Exception as exc:    # a broker gone: the socket goes anyway
        LOG.debug('notification consumer: closing: %s', exc)
        try:
            conn.collect()
        except Exception:       # pragma: no cover
            pass
