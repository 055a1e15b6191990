"""Samples/s stored into Gnocchi (on Ceph), and HTTP requests per 1,000.

Both publishers are fed the same stream of notifications, each through its
own real path, with the same resource definitions file:

* telemetry_lib: every notification's samples are ``put`` into the
  ``gnocchi`` publisher's delivery, which batches them (up to 1,000);
* Ceilometer 27: its notification agent calls ``GnocchiPublisher.
  publish_samples`` once per notification; here with its default
  (in-memory dict) resource cache and a gnocchiclient on the same endpoint.
  Its constructor asks Keystone for a project id to filter; that lookup is
  the one part left out (filtering is off): the publish path is its own.

Two shapes of notification: one per resource with its 5 meters (what
notification-driven meters look like), and one per meter with all 200
resources (a pollster's batch). One polling cycle is 1,000 samples; the
first cycle creates the resources (cold), the others are the steady state.
Requests are counted on each client's HTTP session.

Needs tools/gnocchi.sh start (run here) and, for the peer, Ceilometer 27 and
what its publisher imports (``tox -e bench`` installs them).
"""

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
import uuid

from oslo_config import cfg
from requests import adapters

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib import delivery
from telemetry_lib import opts
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import Sample
from telemetry_lib.url import TelemetryURL

HERE = os.path.dirname(os.path.abspath(__file__))
HOST = '127.0.0.1:%s' % os.environ.get('TELEMETRY_GNOCCHI_PORT', '18041')
DEFINITIONS = os.path.join(HERE, 'gnocchi_bench_resources.yaml')
METERS = ('bench.cpu', 'bench.memory', 'bench.disk.read', 'bench.disk.write',
          'bench.net.in')


class CountingAdapter(adapters.HTTPAdapter):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.count = 0
        self._lock = threading.Lock()

    def send(self, *args, **kwargs):
        with self._lock:
            self.count += 1
        return super().send(*args, **kwargs)


def counted_client(conf):
    client = gnocchi_client.make_client(conf, TelemetryURL.parse(
        'gnocchi://' + HOST))
    counter = CountingAdapter(pool_maxsize=10, max_retries=0)
    client.api.session.session.mount('http://', counter)
    return client, counter


def cycles(prefix, n_cycles, resources):
    start = time.time() - n_cycles - 60
    out = []
    for c in range(n_cycles):
        batch = []
        for r in range(resources):
            for m, meter in enumerate(METERS):
                batch.append(Sample(
                    meter, 'gauge', 'B', float(c * 10 + m), user_id='u',
                    project_id='p', resource_id='%s-%04d' % (prefix, r),
                    timestamp=start + c, resource_metadata={
                        'display_name': 'vm-%d' % r, 'host': 'compute-%d'
                        % (r % 8)}))
        out.append(batch)
    return out


def notifications(cycle, shape):
    """A cycle's samples as the notifications that would carry them."""
    if shape == 'resource':
        key = (lambda s: s.resource_id)
    else:
        key = (lambda s: s.name)
    groups = {}
    for s in cycle:
        groups.setdefault(key(s), []).append(s)
    return list(groups.values())


def run(publish, finish, counter, batches, shape):
    started = time.perf_counter()
    for note in notifications(batches[0], shape):
        publish(note)
    finish()
    cold = time.perf_counter() - started
    cold_requests = counter.count
    started, used = time.perf_counter(), _cpu()
    for batch in batches[1:]:
        for note in notifications(batch, shape):
            publish(note)
    finish()
    warm = time.perf_counter() - started
    used = _cpu() - used
    warm_requests = counter.count - cold_requests
    n = sum(len(b) for b in batches[1:])
    return (len(batches[0]) / cold, cold_requests, n / warm,
            warm_requests * 1000.0 / n, used / n * 1e6)


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ours(conf, batches, shape):
    pub = publisher_base.load_publisher(
        conf, 'gnocchi://%s?resources_definition_file=%s'
        % (HOST, DEFINITIONS))
    client, counter = counted_client(conf)
    pub.writer.client = client
    pub.start()
    deadline = time.time() + 30
    while (pub.writer.pending_policies or pub.writer.pending_types) and \
            time.time() < deadline:
        time.sleep(0.1)
    d = delivery.Delivery(pub, options=delivery.DeliveryOptions(
        max_batch_size=1000, max_latency=1.0)).start()
    result = run(d.put, lambda: d.flush(600), counter, batches, shape)
    assert d.stats().published == sum(len(b) for b in batches)
    d.close(10)
    return result


def ceilometer(conf, batches, shape):
    try:
        from ceilometer import cache_utils
        from ceilometer.publisher import gnocchi as cgnocchi
        from ceilometer import sample as csample
    except ImportError as exc:
        return 'Ceilometer not installed (%s)' % exc
    pub = object.__new__(cgnocchi.GnocchiPublisher)
    pub.conf = conf
    pub.enable_filter_project = False
    pub.filter_project = pub.filter_domain = None
    pub.resources_definition, pub.archive_policies_definition = (
        cgnocchi.GnocchiPublisher._load_definitions(conf, None, DEFINITIONS))
    pub.metric_map = {m: rd for rd in pub.resources_definition
                      for m in rd.metrics}
    pub._ks_client = None
    pub.cache = cache_utils.CacheClient(
        cache_utils.get_dict_cache_region(), conf)
    pub._gnocchi_project_id = None
    pub._gnocchi_project_id_lock = threading.Lock()
    pub._gnocchi_resource_lock = cgnocchi.LockedDefaultDict(threading.Lock)
    pub._already_logged_event_types = set()
    pub._already_logged_metric_names = set()
    pub._already_configured_archive_policies = False
    client, counter = counted_client(conf)
    pub._gnocchi = client
    theirs = [[csample.Sample(
        name=s.name, type=s.type, unit=s.unit, volume=s.volume,
        user_id=s.user_id, project_id=s.project_id,
        resource_id=s.resource_id, timestamp=s.timestamp.isoformat(),
        resource_metadata=s.resource_metadata) for s in b] for b in batches]
    return run(pub.publish_samples, lambda: None, counter, theirs, shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cycles', type=int, default=11)
    parser.add_argument('--resources', type=int, default=200)
    args = parser.parse_args()
    subprocess.run(['bash', os.path.join(HERE, '..', 'tools', 'gnocchi.sh'),
                    'start'], check=True, stdout=subprocess.DEVNULL)
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    gnocchi_client.register_opts(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    rows = []
    for shape, what in (('resource', 'a notification per resource '
                         '(5 samples)'),
                        ('meter', 'a notification per meter (%d samples)'
                         % args.resources)):
        for label, func in (('telemetry_lib gnocchi publisher', ours),
                            ('Ceilometer 27 GnocchiPublisher', ceilometer)):
            prefix = 'bench-%s' % uuid.uuid4().hex[:8]
            rows.append(('%s, %s' % (label, what), func(conf, cycles(
                prefix, args.cycles, args.resources), shape)))
    print('\nInto Gnocchi 4.7 on Ceph (127.0.0.1): %d cycles of %d '
          'resources x %d meters\n' % (args.cycles, args.resources,
                                       len(METERS)))
    header = '%-70s %14s %10s %16s %16s %14s' % (
        'publisher', 'cold samples/s', 'cold req.', 'steady samples/s',
        'req./1000 samples', 'CPU us/sample')
    print(header)
    print('-' * len(header))
    for label, result in rows:
        if isinstance(result, str):
            print('%-70s %s' % (label, result))
            continue
        cold, cold_req, warm, per1000, us = result
        print('%-70s %14s %10d %16s %16.1f %14.1f' % (
            label, '{:,.0f}'.format(cold), cold_req,
            '{:,.0f}'.format(warm), per1000, us))
    print('CPU us/sample: this process, steady state (the Gnocchi API '
          'and metricd run elsewhere)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
