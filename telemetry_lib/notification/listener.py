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
"""The notification listener: OpenStack notifications from the message bus.

oslo.messaging batch listeners on each ``[notification] messaging_urls``
transport, on ``<topic>.<priority>`` of every control exchange, as
Ceilometer's notification agent listens. A batch is converted, then handed
to ``deliver``; it is acknowledged only when every publisher's queue took
what it yields (in memory, or on disk with a spool). When a queue is past
its high water the batch is requeued and the worker waits
``requeue_delay`` before taking more, so the notifications wait on the bus,
not in memory. A notification that cannot be converted (not a
notification, or one a definition chokes on) is counted, logged once per
kind, and acknowledged -- or sent to ``poison_topic`` -- never requeued, so
it cannot block the queue. A message oslo.messaging itself cannot decode
(not JSON) is rejected by oslo.messaging; it is counted here as
``undecodable`` (RabbitMQ dead-letters it if the queue has a policy).
"""

import collections
import logging
import threading

from oslo_config import cfg

from telemetry_lib.clients import messaging
from telemetry_lib.collector import base
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib import lifecycle
from telemetry_lib import masking
from telemetry_lib.notification import converter as conv_mod
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

#: Ceilometer's default exchanges: where each service sends.
EXCHANGES = ['nova', 'glance', 'neutron', 'cinder', 'heat', 'keystone',
             'trove', 'zaqar', 'swift', 'ceilometer', 'magnum', 'dns',
             'ironic', 'aodh', 'manila']
PRIORITIES = ('audit', 'critical', 'debug', 'error', 'info', 'sample',
              'warn')

OPTS = [
    cfg.MultiStrOpt('messaging_urls', default=[], secret=True,
                    help='Transport URLs to listen on (rabbit://user:pass@'
                         'host:port/vhost); one listener per URL. None: no '
                         'notification listener.'),
    cfg.ListOpt('topics', default=['notifications'],
                help='Notification topics (the services\' '
                     '[oslo_messaging_notifications] topics).'),
    cfg.ListOpt('notification_control_exchanges', default=EXCHANGES,
                help='Exchanges the services send notifications to.'),
    cfg.StrOpt('pool',
               help='Listener pool: agents of one pool share the '
                    'notifications, each pool gets all of them (a queue '
                    'of its own).'),
    cfg.IntOpt('batch_size', default=100, min=1, max=10000,
               help='Notifications converted and acknowledged together.'),
    cfg.FloatOpt('batch_timeout', default=1.0, min=0.01, max=60,
                 help='Seconds to wait for a batch to fill.'),
    cfg.IntOpt('workers', default=1, min=1, max=64,
               help='Listeners per URL (each with its own connection).'),
    cfg.FloatOpt('high_water', default=0.8, min=0.01, max=1.0,
                 help='Requeue a batch when a publisher queue it goes to '
                      'would be fuller than this fraction of its bound.'),
    cfg.FloatOpt('requeue_delay', default=1.0, min=0, max=60,
                 help='Seconds a worker waits after requeuing a batch.'),
    cfg.IntOpt('prefetch', default=0, min=0,
               help='Most unacknowledged notifications RabbitMQ sends '
                    'each listener; 0 uses 2 x batch_size, which bounds '
                    'the memory of a listener that is requeuing.'),
    cfg.StrOpt('consumer', default='oslo.messaging',
               choices=[('oslo.messaging', 'oslo.messaging\'s batch '
                         'listener, any of its drivers'),
                        ('direct', 'the library\'s own AMQP 0-9-1 consumer '
                         'of oslo.messaging\'s notification format, '
                         'RabbitMQ only: the same notifications, queues and '
                         'acknowledgements at a fraction of the CPU')],
               help='What reads the notifications from the bus.'),
    cfg.StrOpt('poison_topic',
               help='Topic (on the same transport) that receives a '
                    'notification that cannot be converted; unset: it is '
                    'acknowledged, counted and logged.'),
]
GROUP = 'notification'

#: Distinct event types counted by name; the rest count as "other".
MAX_EVENT_TYPES = 1000


def register_opts(conf):
    conv_mod.register_opts(conf)
    conf.register_opts(OPTS, group=GROUP)


#: Seconds start() waits for the buses to answer before it returns and
#: leaves the connecting to its thread.
CONNECT_WAIT = 10.0


class Counts:
    """What became of the notifications, by event type (thread-safe)."""

    OUTCOMES = ('received', 'converted', 'requeued', 'poisoned')

    def __init__(self):
        self._lock = threading.Lock()
        self.by_type = collections.defaultdict(collections.Counter)
        self.totals = collections.Counter()

    def add(self, outcome, event_type=None, n=1):
        with self._lock:
            if event_type is not None:
                if (event_type not in self.by_type
                        and len(self.by_type) >= MAX_EVENT_TYPES):
                    event_type = 'other'
                self.by_type[event_type][outcome] += n
            self.totals[outcome] += n

    def snapshot(self):
        with self._lock:
            return ({t: dict(c) for t, c in self.by_type.items()},
                    dict(self.totals))


class _Undecodable(logging.Filter):
    """Turns oslo.messaging's traceback for a message it cannot decode
    into a count and one line.
    """

    def __init__(self, listener):
        super().__init__()
        self._listener = listener

    def filter(self, record):
        if not str(record.msg).startswith(messaging.UNDECODABLE):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        self._listener.counts.add('undecodable')
        self._listener.problems.problem(
            'undecodable', 'a message on the bus is no notification (%s: '
            '%s); rejected', type(exc).__name__, exc)
        return False


class _Endpoint:
    def __init__(self, listener):
        self._l = listener
        for priority in PRIORITIES:
            setattr(self, priority, self._handler(priority))

    def _handler(self, priority):
        om = self._l._om

        def handle(messages):
            if self._l.process(priority, messages):
                return om.NotificationResult.HANDLED
            return om.NotificationResult.REQUEUE
        return handle


class NotificationListener(base.Listener):
    """Notifications → samples and events → ``deliver``.

    :param converter: ``f() -> Converter``, called per batch, so a reload
        that replaces the definitions takes effect at the next batch.
    """

    def __init__(self, conf, deliver, converter):
        super().__init__(conf, deliver)
        register_opts(conf)
        oslo_messaging = messaging.oslo_messaging()
        self._om = oslo_messaging
        opts = conf[GROUP]
        self.opts = opts
        self.urls = list(opts.messaging_urls)
        if not self.urls:
            raise ConfigError('no URL to listen on',
                              where='[notification] messaging_urls')
        for url in self.urls:
            try:
                oslo_messaging.TransportURL.parse(conf, url)
            except (oslo_messaging.InvalidTransportURL, ValueError) as exc:
                raise ConfigError('oslo.messaging refused %s: %s' % (
                    masking.redact(url),
                    masking.scrub(str(exc), _password_of(url))),
                    where='[notification] messaging_urls') from None
        if not opts.topics or not opts.notification_control_exchanges:
            raise ConfigError('needs at least one topic and one exchange',
                              where='[notification]')
        self._converter = converter
        self.counts = Counts()
        self.problems = ratelog.RateLimitedLog(LOG, 'notifications')
        self._stopping = threading.Event()
        self._transports = []
        self._listeners = []
        self._lock = threading.Lock()
        self._connector = None
        self._connected = threading.Event()
        self._filter = _Undecodable(self)
        self._poison_lock = threading.Lock()
        # Ids of poison notifications already counted: one that comes again
        # with a requeued batch is neither counted nor sent twice.
        self._poisoned = collections.OrderedDict()

    def describe(self):
        return ('notifications from %s (topics %s, %d exchanges)' % (
            ', '.join(masking.redact(u) for u in self.urls),
            ', '.join(self.opts.topics),
            len(self.opts.notification_control_exchanges)))

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        """Make the transports (a driver that refuses a URL is a
        ``ConfigError`` here) and return; a thread connects each bus as
        soon as it answers, and keeps trying, with backoff, while it does
        not -- a bus down or hung at start holds neither the agent's start
        nor its stop.
        """
        logging.getLogger(messaging.RABBIT_LOGGER).addFilter(
            self._filter)
        self._stopping.clear()
        self._make_transports()
        self._connected.clear()
        self._connector = threading.Thread(
            target=self._connect_all, args=(list(self._transports),),
            daemon=True, name='notification-connect')
        self._connector.start()
        # Return listening when the bus answers (notifications sent right
        # after are then queued, not dropped for want of a queue), but
        # never wait long on a bus that does not.
        if not self._connected.wait(CONNECT_WAIT):
            LOG.warning('notifications: not listening yet after %.0fs (the '
                        'bus does not answer); still trying', CONNECT_WAIT)

    def _make_transports(self):
        """oslo.messaging's transports, one per URL (no connection yet):
        its driver registers the ``[oslo_messaging_rabbit]`` options then.
        """
        om = self._om
        try:
            for url in self.urls:
                transport = om.get_notification_transport(self.conf, url=url)
                self._transports.append(transport)
        except Exception as exc:
            self.close(0)
            raise ConfigError('cannot listen: %s: %s' % (
                type(exc).__name__, masking.redact(str(exc))),
                where='[notification] messaging_urls') from None
        rabbit = getattr(self.conf, 'oslo_messaging_rabbit', None)
        if rabbit is not None and not rabbit.rabbit_qos_prefetch_count:
            # Without a prefetch bound RabbitMQ pushes the whole queue to
            # a listener that is requeuing.
            self.conf.set_override('rabbit_qos_prefetch_count',
                                   self.prefetch,
                                   group='oslo_messaging_rabbit')

    @property
    def prefetch(self):
        """Most unacknowledged notifications the broker sends a worker."""
        return self.opts.prefetch or 2 * self.opts.batch_size

    def _connect_all(self, transports):
        om, opts = self._om, self.opts
        targets = [om.Target(topic=topic, exchange=exchange)
                   for topic in opts.topics
                   for exchange in opts.notification_control_exchanges]
        for url, transport in zip(self.urls, transports):
            delay = 1.0
            while not self._stopping.is_set():
                problem = messaging.probe(self.conf, url, 10.0)
                if problem is None:
                    break
                self.counts.add('connect_failed')
                self.problems.problem(
                    ('connect', url), 'cannot reach %s: %s; trying again',
                    masking.redact(url), problem)
                self._stopping.wait(delay)
                delay = min(delay * 2, 30.0)
            for _ in range(opts.workers):
                if self._stopping.is_set():
                    return
                try:
                    with messaging.quiet():
                        listener = om.get_batch_notification_listener(
                            transport, targets, [_Endpoint(self)],
                            executor='threading', allow_requeue=True,
                            pool=opts.pool, batch_size=opts.batch_size,
                            batch_timeout=opts.batch_timeout)
                        listener.start()
                except Exception as exc:
                    LOG.error('notifications: cannot listen on %s: %s: %s',
                              masking.redact(url), type(exc).__name__,
                              masking.redact(str(exc)))
                    break
                with self._lock:
                    late = self._stopping.is_set()
                    if not late:
                        self._listeners.append(listener)
                if late:
                    # close() ran without this one: it is ours to stop.
                    listener.stop()
                    listener.wait()
                    return
        self._connected.set()

    def close(self, timeout=None):
        with self._lock:
            self._stopping.set()
            listeners, transports = self._listeners, self._transports
            self._listeners, self._transports = [], []

        def shut_down():
            for listener in listeners:
                try:
                    listener.stop()
                except Exception as exc:     # pragma: no cover
                    LOG.debug('listener stop: %s', exc)
            for listener in listeners:
                listener.wait()
            for transport in transports:
                try:
                    transport.cleanup()
                except Exception as exc:     # pragma: no cover
                    LOG.debug('transport cleanup: %s', exc)
        # oslo.messaging's wait() and a transport's cleanup() take no
        # timeout (and a broker that is gone can hold them): a thread keeps
        # them to ours.
        worker = threading.Thread(target=shut_down, daemon=True,
                                  name='notification-listener-stop')
        worker.start()
        worker.join(timeout)
        logging.getLogger(messaging.RABBIT_LOGGER
                          ).removeFilter(self._filter)
        if worker.is_alive():
            LOG.warning('notifications: the listener did not stop within '
                        '%.1fs; left to finish in the background', timeout)
            return lifecycle.Outcome.unfinished(
                'the notification listener did not stop in time')
        return lifecycle.DONE

    # -- a batch -------------------------------------------------------------

    def process(self, priority, messages):
        """Convert and deliver one batch of one priority (the bodies an
        oslo.messaging batch listener hands its endpoints); ``True`` when
        it is done with (acknowledge it), ``False`` when the publishers'
        queues could not take it (requeue it).
        """
        converter = self._converter()
        samples, events, types = [], [], collections.Counter()
        event_types = [_event_type(body) for body in messages]
        # Counted once per type, not once per notification (a lock each).
        for event_type, n in collections.Counter(event_types).items():
            self.counts.add('received', event_type, n)
        for body, event_type in zip(messages, event_types):
            if self._poisoned and self._already_poisoned(body):
                continue
            try:
                result = converter.convert(body, priority)
            except InvalidSample as exc:
                self._poison(priority, body, event_type, 'malformed', exc)
                continue
            except Exception as exc:
                self._poison(priority, body, event_type, 'conversion_failed',
                             exc)
                continue
            for kind, detail in result.problems:
                self.counts.add(kind, event_type)
                self.problems.problem((kind, event_type), '%s: %s (%s)',
                                      event_type, detail, kind)
            samples.extend(result.samples)
            events.extend(result.events)
            types[event_type] += 1
        try:
            accepted, queued = self.deliver(samples, events)
        except Exception as exc:
            LOG.error('notifications: delivering a batch failed: %s: %s',
                      type(exc).__name__, exc)
            accepted, queued = False, 0
        if not accepted:
            for event_type, n in types.items():
                self.counts.add('requeued', event_type, n)
            if queued:
                self.counts.add('duplicated', n=queued)
            self.problems.problem(
                'requeue', 'publisher queues past their high water: %d '
                'notification(s) left on the bus for later', sum(
                    types.values()), level=logging.INFO)
            self._stopping.wait(self.opts.requeue_delay)
            return False
        for event_type, n in types.items():
            self.counts.add('converted', event_type, n)
        self.counts.add('samples', n=len(samples))
        self.counts.add('events', n=len(events))
        return True

    @staticmethod
    def _metadata(body):
        meta = body.get('metadata') if isinstance(body, dict) else None
        return meta if isinstance(meta, dict) else {}

    def _message_id(self, body):
        # Only a text id is one: a list there made the poison memo raise,
        # which oslo.messaging answers with a requeue, for ever.
        mid = self._metadata(body).get('message_id')
        return mid if isinstance(mid, str) else None

    def _already_poisoned(self, body):
        mid = self._message_id(body)
        with self._poison_lock:
            return mid is not None and mid in self._poisoned

    def _poison(self, priority, body, event_type, kind, exc):
        mid = self._message_id(body)
        if mid is not None:
            with self._poison_lock:
                self._poisoned[mid] = True
                while len(self._poisoned) > 10000:
                    self._poisoned.popitem(last=False)
        self.counts.add('poisoned', event_type)
        where = ''
        if self.opts.poison_topic:
            where = self._dead_letter(priority, body)
        self.problems.problem(
            ('poison', kind, event_type), '%s: cannot convert (%s: %s); %s',
            event_type, kind, masking.redact(str(exc))[:300],
            where or 'acknowledged and dropped')

    def _dead_letter(self, priority, body):
        om = self._om
        body = body if isinstance(body, dict) else {'payload': body}
        message = {'message_id': self._message_id(body) or '',
                   'publisher_id': body.get('publisher_id'),
                   'event_type': body.get('event_type'),
                   'priority': priority.upper(),
                   'payload': body.get('payload'),
                   'timestamp': self._metadata(body).get('timestamp')}
        topic = '%s.%s' % (self.opts.poison_topic, priority)
        try:
            # Any of the transports: the poison topic is on the first bus.
            messaging.send_notification(
                self._transports[0], om.Target(topic=topic),
                body.get('ctxt') or {}, message, retry=0)
        except Exception as exc:    # stopping (no transport), bus gone …
            self.counts.add('poison_lost')
            return 'could not be sent to %s either (%s: %s)' % (
                topic, type(exc).__name__, masking.redact(str(exc)))
        self.counts.add('dead_lettered')
        return 'sent to %s' % topic


def _event_type(body):
    event_type = body.get('event_type') if isinstance(body, dict) else None
    return event_type if isinstance(event_type, str) else '(none)'


def _password_of(url):
    """The password in a transport URL, as far as it can be told."""
    userinfo = url.partition('://')[2].rpartition('@')[0]
    return userinfo.partition(':')[2] or None
