"""Samples/s end to end to RabbitMQ's AMQP 1.0, side by side in one run.

* telemetry_lib ``amqp1``, acknowledged (unsettled: every message ACCEPTED
  by the broker) and pre-settled, through the delivery core;
* peer (a): the old oslo.messaging AMQP 1.0 driver's pattern -- one
  blocking send per message with proton's ``BlockingConnection``, the same
  STF envelopes (so only the transport pattern differs);
* peer (b): Ceilometer 27's ``notifier://`` publisher over oslo.messaging's
  rabbit driver (AMQP 0-9-1, the same broker), 1,000 samples per call as a
  pipeline flush sends them.

A separate consumer process drains each queue while the publishers run.
Needs the private node of ``tools/rabbitmq.sh start`` (started here if not
running) and, for peer (b), Ceilometer 27 (``tox -e bench`` installs it).
"""

import argparse
import datetime
import gc
import os
import resource
import subprocess
import sys
import time
import uuid

from oslo_config import cfg

from telemetry_lib import delivery
from telemetry_lib.formats import stf
from telemetry_lib import opts
from telemetry_lib import Sample

HERE = os.path.dirname(os.path.abspath(__file__))
PORT = int(os.environ.get('TELEMETRY_RABBIT_PORT', 5682))
BROKER = '127.0.0.1:%d' % PORT
UTC = datetime.timezone.utc


def cpu():
    """CPU seconds of this process (every thread): the figure the other
    processes on a shared machine do not move.
    """
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_samples(n):
    now = datetime.datetime.now(UTC)
    return [Sample('disk.read.bytes', 'cumulative', 'B', i, user_id='u',
                   project_id='p', resource_id='vm-%d' % (i % 500),
                   timestamp=now, resource_metadata={
                       'host': 'compute-%d' % (i % 8), 'display_name': 'vm',
                       'flavor': {'name': 'm1.small', 'vcpus': 1}})
            for i in range(n)]


def consume(address, quiet=3.0):
    """Child process: drain ``address``; print how many messages.

    It shares the 2 cores with the broker and the publisher under test, so
    it takes each delivery's bytes and accepts it without decoding it: a
    BlockingConnection receiving and decoding every message cost as much
    CPU as the publisher.
    """
    from proton import Delivery
    from proton.handlers import FlowController
    from proton.reactor import Container

    class Drain:
        def __init__(self):
            self.handlers = [FlowController(2000)]
            self.count = 0
            self.last = 0.0

        def on_reactor_init(self, event):
            self.container = event.container
            conn = event.container.connect('amqp://%s' % BROKER,
                                           allowed_mechs='ANONYMOUS')
            event.container.create_receiver(conn, address)

        def on_link_remote_open(self, event):
            self.last = time.monotonic()
            print('READY', flush=True)
            self.container.schedule(quiet, self)

        def on_delivery(self, event):
            delivery = event.delivery
            if delivery.partial:
                return
            event.receiver.recv(delivery.pending)
            delivery.update(Delivery.ACCEPTED)
            delivery.settle()
            self.count += 1
            self.last = time.monotonic()

        def on_timer_task(self, event):
            # Stop once nothing arrived for `quiet` seconds (a minute if
            # nothing arrived at all).
            idle = time.monotonic() - self.last
            if idle >= (quiet if self.count else 60):
                event.container.stop()
            else:
                self.container.schedule(quiet, self)

    drain = Drain()
    Container(drain).run()
    print(drain.count, flush=True)


class Consumer:
    def __init__(self, address):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, '--consume', address],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == 'READY'

    def wait(self):
        out, _ = self.proc.communicate(timeout=600)
        return int(out.strip() or 0)


def ours(conf, samples, settle):
    queue = '/queue/bench-%s' % uuid.uuid4().hex[:8]
    consumer = Consumer(queue)
    d = delivery.build(conf, 'amqp1://%s/%s?settle=%s&max_batch_size=5000'
                       '&max_latency=0&max_queue_samples=%d&max_queue_bytes=%d'
                       % (BROKER, queue, settle, len(samples) + 1, 2 ** 31)
                       ).start()
    started, c0 = time.perf_counter(), cpu()
    d.put(samples)
    outcome = d.flush(600)
    took, used = time.perf_counter() - started, cpu() - c0
    st = d.stats()
    d.close(5)
    messages = consumer.wait()
    assert outcome and st.published == len(samples), (outcome, st)
    return len(samples) / took, messages, used / len(samples) * 1e6


def blocking(samples):
    from proton import Message
    from proton.utils import BlockingConnection
    queue = '/queue/bench-%s' % uuid.uuid4().hex[:8]
    consumer = Consumer(queue)
    conn = BlockingConnection('amqp://%s' % BROKER,
                              allowed_mechs='ANONYMOUS', timeout=60)
    sender = conn.create_sender(queue)
    started, c0 = time.perf_counter(), cpu()
    sent = 0
    for i in range(0, len(samples), 1000):
        enc = stf.encode_samples(samples[i:i + 1000], 'telemetry.publisher.b')
        for chunk in enc.chunks:
            sender.send(Message(body=chunk.body.decode(), address=queue))
            sent += 1
    took, used = time.perf_counter() - started, cpu() - c0
    conn.close()
    return len(samples) / took, consumer.wait(), used / len(samples) * 1e6


def ceilometer_notifier(samples):
    from urllib import parse
    try:
        from ceilometer import messaging as cmessaging
        from ceilometer.publisher import messaging as cpub
        from ceilometer.publisher import utils as cutils
        from ceilometer import sample as csample
    except ImportError as exc:
        return None, 'Ceilometer not installed (%s)' % exc, None
    conf = cfg.ConfigOpts()
    conf.register_opts(cpub.NOTIFIER_OPTS, group='publisher_notifier')
    conf.register_opts(cutils.OPTS, group='publisher')
    conf.register_opts([cfg.StrOpt('host', default='bench')])
    conf([], default_config_files=[])
    cmessaging.setup()
    topic = 'bench-%s' % uuid.uuid4().hex[:8]
    theirs = [csample.Sample(
        name=s.name, type=s.type, unit=s.unit, volume=s.volume,
        user_id=s.user_id, project_id=s.project_id,
        resource_id=s.resource_id, timestamp=s.timestamp.isoformat(),
        resource_metadata=s.resource_metadata) for s in samples]
    pub = cpub.SampleNotifierPublisher(conf, parse.urlparse(
        'notifier://guest:guest@%s/?topic=%s' % (BROKER, topic)))
    started, c0 = time.perf_counter(), cpu()
    for i in range(0, len(theirs), 1000):
        pub.publish_samples(theirs[i:i + 1000])
    took, used = time.perf_counter() - started, cpu() - c0
    return (len(samples) / took, 'notifications of 1,000 samples each',
            used / len(samples) * 1e6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=200000)
    parser.add_argument('--blocking-samples', type=int, default=20000)
    parser.add_argument('--consume', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.consume:
        consume(args.consume)
        return 0
    subprocess.run(['bash', os.path.join(HERE, '..', 'tools',
                                         'rabbitmq.sh'), 'start'],
                   check=True, stdout=subprocess.DEVNULL)
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    samples = make_samples(args.samples)
    # The input (200,000 samples made up front, which no agent holds
    # outside its queue) is moved out of the garbage collector's way, for
    # every path alike: otherwise each full collection walks it and bills
    # the path under test. The queue's own objects are collected as usual.
    gc.freeze()
    rows = []
    for settle, label in (('unsettled', 'acknowledged'),
                          ('presettled', 'pre-settled')):
        rate, msgs, us = ours(conf, samples, settle)
        rows.append(('telemetry_lib amqp1 (pipelined)', label, rate, us,
                     '%d messages <= %d bytes' % (msgs,
                                                  stf.DEFAULT_MAX_BYTES)))
    rate, msgs, us = blocking(samples[:args.blocking_samples])
    rows.append(('peer a: one blocking send per message', 'acknowledged',
                 rate, us, '%d messages, same envelopes' % msgs))
    rate, note, us = ceilometer_notifier(samples[:50000])
    rows.append(('peer b: Ceilometer 27 notifier:// (rabbit)',
                 'AMQP 0-9-1', rate, us, note))
    print('\nSamples/s to RabbitMQ 3.10 on 127.0.0.1 (%d samples for ours, '
          '%d for peer a, 50,000 for peer b)\n'
          % (args.samples, args.blocking_samples))
    header = '%-44s %-13s %12s %9s  %s' % (
        'path', 'delivery', 'samples/s', 'CPU us', 'note')
    print(header)
    print('-' * len(header))
    for path, mode, rate, us, note in rows:
        print('%-44s %-13s %12s %9s  %s' % (
            path, mode, '-' if rate is None else '{:,.0f}'.format(rate),
            '-' if us is None else '%.1f' % us, note))
    print('\nCPU us: CPU microseconds of this process (all threads, '
          'getrusage) per sample; the broker and consumer run elsewhere.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
