"""Memory with every publisher down: does the queue bound hold?

Samples arrive at ``--rate`` per second (10,000 by default) for
``--seconds`` (300) through one pipeline to three publishers that cannot
be reached -- ``http``, ``amqp1`` (STF) and ``tcp``, each to a closed port
on 127.0.0.1 -- with the default overflow policy (drop the oldest). Each
delivery's queue is bounded by ``--max-queue-bytes`` (and 10 million
items, so bytes are what binds). Every 10 seconds the process's resident
memory is printed beside what the queues hold and what they dropped; at
the end, the verdict: RSS must stay under the sum of the bounds + 50 MB,
and each delivery's balance ``received = published + dropped + pending``
must hold, so every sample is accounted for.

The samples are instance samples with Nova's metadata (about 1 KB of
JSON each). CPU µs per sample (queueing and dropping; nothing can be
published) is printed too. Run: ``python benchmarks/memory_bound.py``.
"""

import argparse
import datetime
import gc
import os
import resource
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..'))

from oslo_config import cfg  # noqa: E402

from telemetry_lib import opts  # noqa: E402
from telemetry_lib.pipeline import PipelineDefinition  # noqa: E402
from telemetry_lib.pipeline import PipelineManager  # noqa: E402
from telemetry_lib import Sample  # noqa: E402

UTC = datetime.timezone.utc
MB = 1024 * 1024


def closed_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rss_mb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def metadata(i):
    return {
        'display_name': 'web-%d' % i, 'name': 'instance-%08x' % i,
        'instance_id': 'vm-%d' % i, 'instance_type': 'm1.small',
        'host': '%056x' % i, 'instance_host': 'compute-%d' % (i % 40),
        'flavor': {'id': '2', 'name': 'm1.small', 'vcpus': 1, 'ram': 2048,
                   'disk': 20, 'ephemeral': 0, 'swap': 0},
        'status': 'active', 'state': 'running', 'task_state': '',
        'image': {'id': '6b1c8a4e-2f3d-4a5b-9c7d-8e9f0a1b2c3d'},
        'image_ref': '6b1c8a4e-2f3d-4a5b-9c7d-8e9f0a1b2c3d',
        'architecture': 'x86_64', 'os_type': 'hvm', 'vcpus': 1,
        'memory_mb': 2048, 'disk_gb': 20, 'ephemeral_gb': 0, 'root_gb': 20,
        'user_metadata': {'server_group': 'sg-%d' % (i % 10)}}


def pipeline_file(path, bound):
    opts_q = ('max_queue_bytes=%d&max_queue_samples=10000000'
              '&retry_initial_delay=1&retry_max_delay=5&max_retries=-1'
              % bound)
    urls = ['http://127.0.0.1:%d/x?%s' % (closed_port(), opts_q),
            'amqp1://127.0.0.1:%d/collectd?%s' % (closed_port(), opts_q),
            'tcp://127.0.0.1:%d?%s' % (closed_port(), opts_q)]
    with open(path, 'w') as f:
        f.write('sources:\n  - name: all\n    meters: ["*"]\n'
                '    sinks: [down]\nsinks:\n  - name: down\n'
                '    publishers:\n%s' % ''.join(
                    '      - "%s"\n' % u for u in urls))
    return len(urls)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rate', type=int, default=10000)
    parser.add_argument('--seconds', type=int, default=300)
    parser.add_argument('--max-queue-bytes', type=int, default=64 * MB)
    args = parser.parse_args()
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    path = os.path.join('/tmp', 'memory-bound-%d.yaml' % os.getpid())
    publishers = pipeline_file(path, args.max_queue_bytes)
    pm = PipelineManager(conf, PipelineDefinition.load(path)).start()
    os.unlink(path)
    bound_mb = publishers * args.max_queue_bytes / MB
    # One set of metadata per resource (500 instances), as a poll makes.
    metas = [metadata(i) for i in range(500)]
    gc.collect()
    base_rss = rss_mb()
    print('\nmemory with %d publishers down: %d samples/s for %ds, queue '
          'bound %.0f MB each (%.0f MB in all); RSS at start %.0f MB'
          % (publishers, args.rate, args.seconds, bound_mb / publishers,
             bound_mb, base_rss))
    print('%6s %9s %12s %14s %14s' % ('s', 'RSS MB', 'pending', 'pending MB',
                                      'dropped'))
    batch = args.rate // 10
    sent = 0
    peak = base_rss
    start = time.monotonic()
    start_cpu = cpu()
    next_report = 10
    n = 0
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= args.seconds:
            break
        now = datetime.datetime.now(UTC)
        samples = [Sample('cpu', 'cumulative', 'ns', n + k, user_id='u',
                          project_id='p', resource_id='vm-%d' % ((n + k) %
                                                                 500),
                          timestamp=now,
                          resource_metadata=metas[(n + k) % 500])
                   for k in range(batch)]
        n += batch
        pm.publish(samples)
        sent += len(samples)
        peak = max(peak, rss_mb())
        if elapsed >= next_report:
            stats = pm.stats()
            print('%6.0f %9.0f %12d %14.1f %14d' % (
                elapsed, rss_mb(), sum(s.pending for s in stats),
                sum(s.pending_bytes for s in stats) / MB,
                sum(s.dropped_total for s in stats)))
            next_report += 10
        # Keep the rate: sleep what is left of this tenth of a second.
        delay = start + n / args.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    used = cpu() - start_cpu
    stats = pm.stats()
    balanced = all(s.received + s.recovered == s.published + s.dropped_total
                   + s.pending for s in stats)
    every = all(s.received == sent for s in stats)
    print('sent %d samples to each publisher; CPU %.1f us per sample '
          '(queueing, dropping)' % (sent, used / sent * 1e6))
    for s in stats:
        print('  %s: received %d, published %d, dropped %d (%s), pending %d'
              % (s.name.split('?')[0], s.received, s.published,
                 s.dropped_total, ', '.join('%s %d' % kv for kv in sorted(
                     s.dropped.items())), s.pending))
    limit = bound_mb + 50
    print('peak RSS %.0f MB; limit (bounds + 50 MB) %.0f MB: %s; every '
          'sample accounted for: %s' % (
              peak, limit, 'OK' if peak <= limit else 'OVER',
              'yes' if balanced and every else 'NO'))
    pm.close(1)
    return 0 if peak <= limit and balanced and every else 1


if __name__ == '__main__':
    sys.exit(main())
