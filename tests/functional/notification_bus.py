"""OpenStack services' side of the bus, for the notification tests.

Notifications are sent the way Nova, Cinder or Glance send them: by
oslo.messaging's own ``Notifier`` with an oslo.context ``RequestContext``,
on the service's control exchange. A capturing listener on a pool of its
own receives the same notifications as the agent, in the form oslo.messaging
hands them over: what the tests feed to Ceilometer's converters.
"""

import json
import subprocess
import threading
import time
import uuid

import kombu
from oslo_config import cfg
from oslo_context import context as oslo_context
import oslo_messaging as om
from oslo_messaging import opts as om_opts

from tests.functional import rabbit

URL = 'rabbit://guest:guest@%s/' % rabbit.MAIN.url
EXCHANGES = {'compute': 'nova', 'volume': 'cinder', 'image': 'glance',
             'network': 'neutron', 'orchestration': 'heat',
             'identity': 'keystone', 'magnum': 'magnum'}


def exchange_of(publisher_id):
    return EXCHANGES.get(publisher_id.split('.')[0].split('-')[0],
                         'ceilometer')


def _conf(exchange):
    conf = cfg.ConfigOpts()
    for group, opts in om_opts.list_opts():
        conf.register_opts(opts, group=group)
    conf([], project='notifier')
    conf.set_override('control_exchange', exchange)
    return conf


class Services:
    """Notifiers on every exchange, on ``topic``."""

    def __init__(self, topic):
        self.topic = topic
        self._transports = {}

    def _notifier(self, exchange, publisher_id):
        transport = self._transports.get(exchange)
        if transport is None:
            transport = self._transports[exchange] = \
                om.get_notification_transport(_conf(exchange), url=URL)
        return om.Notifier(transport, publisher_id=publisher_id,
                           driver='messagingv2', topics=[self.topic])

    def send(self, body):
        """Send a fixture notification as its service would."""
        ctxt = body.get('ctxt') or {}
        context = oslo_context.RequestContext(
            user_id=ctxt.get('user_id'), project_id=ctxt.get('project_id'),
            request_id=ctxt.get('request_id'), roles=ctxt.get('roles'),
            is_admin=ctxt.get('is_admin', False))
        notifier = self._notifier(exchange_of(body['publisher_id']),
                                  body['publisher_id'])
        getattr(notifier, body.get('priority', 'INFO').lower())(
            context, body['event_type'], body['payload'])

    def send_raw(self, exchange, priority, text):
        """A message that is no oslo.messaging notification at all."""
        with kombu.Connection('amqp://guest:guest@%s//' % rabbit.MAIN.url
                              ) as conn:
            conn.Producer().publish(
                text, exchange=kombu.Exchange(exchange, type='topic',
                                              durable=False),
                routing_key='%s.%s' % (self.topic, priority),
                content_type='application/json', content_encoding='utf-8',
                serializer=None)

    def close(self):
        for t in self._transports.values():
            t.cleanup()
        # oslo.messaging's notify declares <topic>.<priority> queues that
        # nobody here reads: gone with the test.
        with kombu.Connection('amqp://guest:guest@%s//' % rabbit.MAIN.url
                              ) as conn:
            for priority in ('info', 'error', 'sample'):
                try:
                    conn.default_channel.queue_delete(
                        '%s.%s' % (self.topic, priority))
                except Exception:
                    pass


class Capture:
    """Receives every notification of ``topic`` on a pool of its own."""

    def __init__(self, topic, exchanges=None):
        self.bodies = []
        self.lock = threading.Lock()
        conf = _conf('openstack')
        self.transport = om.get_notification_transport(conf, url=URL)
        capture = self

        class Endpoint:
            def _take(self, priority, messages):
                with capture.lock:
                    for m in messages:
                        capture.bodies.append(dict(m, priority=priority))
                return om.NotificationResult.HANDLED

            def info(self, messages):
                return self._take('info', messages)

            def error(self, messages):
                return self._take('error', messages)

        targets = [om.Target(topic=topic, exchange=e)
                   for e in exchanges or set(EXCHANGES.values()) | {
                       'ceilometer'}]
        self.pool = 'capture-%s' % uuid.uuid4().hex[:8]
        self.listener = om.get_batch_notification_listener(
            self.transport, targets, [Endpoint()], executor='threading',
            batch_size=100, batch_timeout=0.2, pool=self.pool)
        self.listener.start()
        # Bound to every exchange, for its two priorities (info and
        # error), before anything is sent.
        wanted = len(targets) * 2
        deadline = time.monotonic() + 60
        while bindings(self.pool) < wanted and time.monotonic() < deadline:
            time.sleep(0.5)

    def wait_for(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= n:
                    return list(self.bodies)
            time.sleep(0.1)
        return list(self.bodies)

    def close(self):
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


def ready_messages(queue, node=rabbit.MAIN):
    """Messages ready (not delivered, or requeued) in ``queue``."""
    with kombu.Connection('amqp://guest:guest@%s//' % node.url) as conn:
        return conn.default_channel.queue_declare(
            queue=queue, passive=True).message_count


def bindings(queue):
    """How many bindings lead to ``queue`` (rabbitmqctl)."""
    out = subprocess.run(
        ['rabbitmqctl', '-q', '-n', rabbit.MAIN.env['TELEMETRY_RABBIT_NODE'],
         'list_bindings', 'destination_name'], capture_output=True,
        text=True, timeout=60)
    return sum(1 for line in out.stdout.splitlines()
               if line.strip() == queue)


def queue_exists(queue):
    try:
        ready_messages(queue)
        return True
    except Exception:
        return False


def queue_exists_on(node, queue):
    try:
        ready_messages(queue, node)
        return True
    except Exception:
        return False


def fresh_fixtures(bodies):
    """The fixtures with new resource ids, so a run never meets the
    resources (ended or not) a previous run left in Gnocchi.
    """
    text = json.dumps(bodies)
    for old in ('9f2c6f3e-5b1a-4d7e-8c2b-6a1e2f3d4c5b',
                '4b8e0f9a-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
                '6b1c8a4e-2f3d-4a5b-9c7d-8e9f0a1b2c3d',
                'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d',
                '0c7d1e2f-3a4b-4c5d-9e6f-7a8b9c0d1e2f'):
        text = text.replace(old, str(uuid.uuid4()))
    return json.loads(text)
