"""Notifications converted to samples and events: ours beside Ceilometer
27's notification endpoints, on the same definition files (Ceilometer's
meters.yaml and event_definitions.yaml) and the same notifications (the
real-shaped Nova, Cinder, Glance, Neutron, Heat, Keystone, Magnum and Swift
fixtures of the tests).

1. Conversion only, in this process: Ceilometer's
   ``ProcessMeterNotifications.build_sample`` plus its event converter's
   ``to_event``, against our ``Converter.convert`` (samples and events).
2. End to end from RabbitMQ (the private node of ``tools/rabbitmq.sh``):
   N notifications wait in a queue; a batch listener takes them, converts
   them and acknowledges them. Ours is the agent's listener delivering into
   a delivery (queue, batch, ``test://`` publisher), with each consumer
   (oslo.messaging's, and ``consumer = direct``); Ceilometer's is
   oslo.messaging's batch listener calling its converters (without its
   pipeline's publishing). Measured from the first to the last
   acknowledgement, CPU of this process (the broker is another).

Printed: notifications/s and CPU µs per notification (the honest figure
on a shared machine), and the ratio. Needs, for the peer, ``pip install
--no-deps ceilometer==27.0.0`` (``tox -e bench`` does it). Run:
``python benchmarks/notifications.py``.
"""

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

from oslo_config import cfg  # noqa: E402

from telemetry_lib.clients import messaging  # noqa: E402
from telemetry_lib import delivery  # noqa: E402
from telemetry_lib.notification import direct  # noqa: E402
from telemetry_lib.notification import listener as listener_mod  # noqa: E402,E501
from telemetry_lib import opts  # noqa: E402
from tests.functional import ceilometer_notifications as reference  # noqa: E402,E501

PORT = int(os.environ.get('TELEMETRY_RABBIT_PORT', 5682))
URL = 'rabbit://guest:guest@127.0.0.1:%d/' % PORT


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def conversion(bodies, rounds):
    c_samples, c_event = reference.ceilometer()
    mine = reference.ours()
    rows = []
    for label, run in (
            ('Ceilometer 27 endpoints', lambda b: (
                len(c_samples(b)), 1 if c_event(b['priority'].lower(), b)
                else 0)),
            ('telemetry_lib Converter', lambda b: (
                lambda r: (len(r.samples), len(r.events)))(
                    mine.convert(b, b['priority'].lower())))):
        for b in bodies:            # warm-up
            run(b)
        made = [0, 0]
        start_cpu = cpu()
        for _ in range(rounds):
            for b in bodies:
                s, e = run(b)
                made[0] += s
                made[1] += e
        used = cpu() - start_cpu
        n = rounds * len(bodies)
        rows.append((label, n / used, used / n * 1e6, made[0], made[1]))
    return rows


class _Sink:
    """Counts acknowledged notifications; sets ``done`` at ``target``."""

    def __init__(self, target):
        self.target = target
        self.count = 0
        self.first = None
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add(self, n):
        with self.lock:
            if self.first is None:
                self.first = (time.perf_counter(), cpu())
            self.count += n
            if self.count >= self.target:
                self.done.set()


def _names(who):
    """A topic and a pool of this run's own: a queue left by an earlier
    run (interrupted, or with messages requeued) would be counted too.
    """
    run = uuid.uuid4().hex[:8]
    return 'bench_%s' % run, 'bench-%s-%s' % (who, run)


def _delete_queue(pool):
    import amqp
    conn = amqp.Connection('127.0.0.1:%d' % PORT)
    conn.connect()
    try:
        conn.channel().queue_delete(pool)
    finally:
        conn.close()


def _fill(om, conf, topic, pool, bodies, n):
    """Create the pool's queue (a listener started and stopped), then
    leave ``n`` notifications waiting in it.
    """
    transport = om.get_notification_transport(conf, url=URL)

    class Nothing:
        def info(self, messages):
            return om.NotificationResult.REQUEUE
    targets = [om.Target(topic=topic, exchange='nova')]
    lis = om.get_batch_notification_listener(
        transport, targets, [Nothing()], executor='threading', pool=pool,
        allow_requeue=True, batch_size=1, batch_timeout=0.1)
    lis.start()
    lis.stop()
    lis.wait()
    for i in range(n):
        b = bodies[i % len(bodies)]
        transport._send_notification(
            om.Target(topic='%s.info' % topic, exchange='nova'),
            b.get('ctxt') or {},
            {'message_id': str(uuid.uuid4()), 'publisher_id':
             b['publisher_id'], 'event_type': b['event_type'],
             'priority': 'INFO', 'payload': b['payload'],
             'timestamp': b['metadata']['timestamp']}, version=2.0)
    transport.cleanup()


def end_to_end_ceilometer(om, conf, bodies, n, batch):
    c_samples, c_event = reference.ceilometer()
    topic, pool = _names('ceilo')
    _fill(om, conf, topic, pool, bodies, n)
    sink = _Sink(n)

    class Endpoint:
        def info(self, messages):
            for m in messages:
                c_samples(m)
                c_event('info', m)
            sink.add(len(messages))
            return om.NotificationResult.HANDLED
    transport = om.get_notification_transport(conf, url=URL)
    lis = om.get_batch_notification_listener(
        transport, [om.Target(topic=topic, exchange='nova')], [Endpoint()],
        executor='threading', pool=pool, allow_requeue=True,
        batch_size=batch, batch_timeout=0.5)
    start = (time.perf_counter(), cpu())
    lis.start()
    sink.done.wait(600)
    end = (time.perf_counter(), cpu())
    lis.stop()
    lis.wait()
    transport.cleanup()
    _delete_queue(pool)
    return n / (end[0] - start[0]), (end[1] - start[1]) / n * 1e6


def end_to_end_ours(om, conf, bodies, n, batch, consumer='oslo.messaging'):
    topic, pool = _names('ours')
    _fill(om, conf, topic, pool, bodies, n)
    sink = _Sink(n)
    d = delivery.build(conf, 'test://?max_queue_samples=10000000', 'samples')
    d.start()
    de = delivery.build(conf, 'test://?max_queue_samples=10000000', 'events')
    de.start()
    mine = reference.ours()

    def deliver(samples, events):
        ok = d.offer(samples) and de.offer(events)
        return ok, 0
    for k, v in (('messaging_urls', [URL]), ('topics', [topic]),
                 ('notification_control_exchanges', ['nova']),
                 ('pool', pool), ('batch_size', batch),
                 ('batch_timeout', 0.5), ('consumer', consumer)):
        conf.set_override(k, v, group='notification')
    cls = (direct.DirectNotificationListener if consumer == 'direct'
           else listener_mod.NotificationListener)
    lis = cls(conf, deliver, lambda: mine)
    counted = lis.counts

    def watch():
        while not sink.done.is_set():
            total = counted.snapshot()[1].get('converted', 0)
            sink.count = 0
            sink.add(total)
            time.sleep(0.01)
    threading.Thread(target=watch, daemon=True).start()
    start = (time.perf_counter(), cpu())
    lis.start()
    sink.done.wait(600)
    end = (time.perf_counter(), cpu())
    lis.close(10)
    d.close(10)
    de.close(10)
    _delete_queue(pool)
    return n / (end[0] - start[0]), (end[1] - start[1]) / n * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=100,
                        help='Passes over the 30 fixtures (conversion).')
    parser.add_argument('--notifications', type=int, default=20000,
                        help='Notifications through RabbitMQ.')
    parser.add_argument('--batch', type=int, default=100)
    args = parser.parse_args()
    warnings.simplefilter('ignore')
    try:
        import ceilometer  # noqa: F401
    except ImportError as exc:
        print('Ceilometer 27 is not installed (%s): no peer figures' % exc)
        return 1
    bodies = reference.notifications()
    rows = conversion(bodies, args.rounds)
    print('\nconversion of %d notifications (%d real-shaped, %d passes), '
          'samples and events' % (args.rounds * len(bodies), len(bodies),
                                  args.rounds))
    print('%-28s %14s %14s %9s %8s' % ('', 'notif/s (CPU)', 'CPU us/notif',
                                       'samples', 'events'))
    for label, rate, us, s, e in rows:
        print('%-28s %14.0f %14.1f %9d %8d' % (label, rate, us, s, e))
    print('ratio: %.1fx' % (rows[1][1] / rows[0][1]))
    if rows[0][3:] != rows[1][3:]:
        print('the two made different numbers: %s and %s' % (
            rows[0][3:], rows[1][3:]))

    subprocess.run(['bash', os.path.join(HERE, '..', 'tools',
                                         'rabbitmq.sh'), 'start'],
                   check=True, stdout=subprocess.DEVNULL)
    om = messaging.oslo_messaging()
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    with messaging.quiet():
        theirs = end_to_end_ceilometer(om, conf, bodies, args.notifications,
                                       args.batch)
        mine = end_to_end_ours(om, conf, bodies, args.notifications,
                               args.batch)
        lean = end_to_end_ours(om, conf, bodies, args.notifications,
                               args.batch, consumer='direct')
    print('\nend to end from RabbitMQ: %d notifications waiting, batches '
          'of %d, converted and acknowledged' % (args.notifications,
                                                 args.batch))
    print('%-44s %10s %14s' % ('', 'notif/s', 'CPU us/notif'))
    print('%-44s %10.0f %14.1f' % ('Ceilometer 27 converters (no publishing)',
                                   *theirs))
    print('%-44s %10.0f %14.1f' % ('telemetry_lib listener -> delivery',
                                   *mine))
    print('%-44s %10.0f %14.1f' % ('  consumer = direct', *lean))
    print('ratio (CPU per notification): %.1fx, consumer = direct %.1fx '
          '(target 5x: %s)' % (theirs[1] / mine[1], theirs[1] / lean[1],
                               'met' if theirs[1] / lean[1] >= 5
                               else 'NOT met'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
