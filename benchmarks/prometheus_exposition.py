"""Rendering 100,000 live series, and scraping them over HTTP.

Side by side in one run, on the same series (STF names and labels):

* telemetry_lib's exporter store: ``render()`` when every value changed
  since the last scrape (each line rendered again: the worst case) and when
  few did (lines cached: the usual case between two polls);
* prometheus_client's ``generate_latest`` over a custom collector that
  yields the same families with the same labels -- the peer;
* a scrape of the exporter's own HTTP endpoint (``urllib``), end to end;
* the ``ceilometer`` scheme beside Ceilometer 27's own exporter code
  (``ceilometer.polling.prom_exporter``, when installed): taking one
  polling cycle of samples, and rendering a scrape.

Run: ``tox -e bench`` or ``python benchmarks/prometheus_exposition.py``.
"""

import argparse
import resource
import statistics
import sys
import time
import urllib.request

from oslo_config import cfg
from prometheus_client import core
from prometheus_client import exposition
from prometheus_client import registry as prom_registry

from telemetry_lib.formats import prometheus as fmt
from telemetry_lib import opts
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib.publisher.prometheus import SeriesStore
from telemetry_lib import Sample

METERS = ('cpu', 'memory.usage', 'disk.device.read.bytes',
          'network.incoming.bytes', 'disk.ephemeral.size')


def make_samples(n, round_=0):
    per_meter = n // len(METERS)
    out = []
    for m, meter in enumerate(METERS):
        type_ = 'cumulative' if m % 2 == 0 else 'gauge'
        for r in range(per_meter):
            out.append(Sample(meter, type_, 'B', float(r * 31 + round_),
                              user_id='u%d' % (r % 100),
                              project_id='p%d' % (r % 40),
                              resource_id='vm-%06d' % r,
                              timestamp=1714564800 + round_,
                              resource_metadata={
                                  'host': 'compute-%d' % (r % 64),
                                  'display_name': 'vm-%d' % r,
                                  'name': 'instance-%06x' % r}))
    return out


class PeerCollector(prom_registry.Collector):
    """What one writes with prometheus_client: families built per scrape
    from the current values.
    """

    def __init__(self, store):
        self.store = store

    def collect(self):
        for fam in self.store._families.values():
            cls = (core.CounterMetricFamily if fam.type == 'counter'
                   else core.GaugeMetricFamily)
            family = cls(fam.name, fam.help, labels=fam.label_names)
            for s in fam.series.values():
                get = s.labels.get
                family.add_metric([get(n, '') for n in fam.label_names],
                                  s.value)
            yield family


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(func, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def cpu_us(func, repeat, per):
    """CPU microseconds per item of ``func()`` over ``per`` items."""
    used = cpu()
    for _ in range(repeat):
        func()
    return (cpu() - used) / repeat / per * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--series', type=int, default=100000)
    parser.add_argument('--repeat', type=int, default=5)
    args = parser.parse_args()
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])

    store = SeriesStore('stf', 'telemetry.publisher.bench',
                        max_series=args.series * 2, default_interval=1e9)
    rounds = [make_samples(args.series, i) for i in range(args.repeat + 1)]
    store.update(rounds[0])
    n = len(store)
    registry = prom_registry.CollectorRegistry(auto_describe=False)
    registry.register(PeerCollector(store))

    # Every value changed: re-render every line.
    store.render()          # series' name-and-labels prefixes, built once
    cold, cold_cpu = [], []
    for i in range(args.repeat):
        store.update(rounds[i + 1])
        started, used = time.perf_counter(), cpu()
        body = store.render()
        cold.append((time.perf_counter() - started) * 1000)
        cold_cpu.append(cpu() - used)
    cold = statistics.median(cold)
    cold_us = statistics.median(cold_cpu) / n * 1e6
    # The fast path's bytes are the reference renderer's.
    same = body == fmt.render(store._snapshot())
    warm = timed(store.render, args.repeat)
    warm_us = cpu_us(store.render, args.repeat, n)
    peer = timed(lambda: exposition.generate_latest(registry), args.repeat)
    peer_us = cpu_us(lambda: exposition.generate_latest(registry),
                     args.repeat, n)
    ours_bytes = len(body.encode())
    peer_bytes = len(exposition.generate_latest(registry))

    exporter = publisher_base.load_publisher(conf, 'prometheus://?port=0')
    exporter.start()
    exporter.store.default_interval = 1e9
    exporter.publish_samples(rounds[0])
    host, port = exporter.address

    def scrape():
        with urllib.request.urlopen('http://%s:%d/metrics' % (host, port),
                                    timeout=60) as r:
            return r.read()
    scrape()
    http = timed(scrape, args.repeat)
    exporter.close()

    print('\nRendering %d live series (text 0.0.4, STF names and labels), '
          'median of %d, ms\n' % (n, args.repeat))
    header = '%-58s %10s %14s %10s %9s' % (
        'path', 'ms', 'CPU us/series', 'MB', 'vs peer')
    print(header)
    print('-' * len(header))
    for label, ms, us, size in (
            ('telemetry_lib render, every value changed', cold, cold_us,
             ours_bytes),
            ('telemetry_lib render, values unchanged (cached lines)', warm,
             warm_us, ours_bytes),
            ('peer: prometheus_client generate_latest, custom collector',
             peer, peer_us, peer_bytes)):
        print('%-58s %10.1f %14.2f %10.1f %8.1fx'
              % (label, ms, us, size / 1e6, peer / ms))
    print('fast render byte for byte the reference renderer: %s'
          % ('yes' if same else 'NO'))
    print('%-58s %10.1f %10.1f %9s' % (
        'scrape of the exporter over HTTP (GET /metrics)', http,
        ours_bytes / 1e6, '-'))
    ceilometer_table(rounds, args.repeat)
    return 0


def ceilometer_table(rounds, repeat):
    """The ``ceilometer`` scheme beside Ceilometer's exporter: one cycle
    of samples taken, then one scrape rendered.
    """
    try:
        from ceilometer.polling import prom_exporter
    except ImportError as exc:
        print('\nCeilometer 27 is not installed (%s): no exporter figures'
              % exc)
        return
    from telemetry_lib.formats import ceilometer as wire
    store = SeriesStore('ceilometer', max_series=len(rounds[0]) * 2,
                        default_interval=1e9)
    dicts = [[wire.sample_to_wire(s) for s in r] for r in rounds]
    ours_take, theirs_take, ours_first = [], [], []
    for i in range(1, repeat + 1):
        started = time.perf_counter()
        store.update(rounds[i])
        ours_take.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        store.render()          # the first scrape after a cycle
        ours_first.append((time.perf_counter() - started) * 1000)
        prom_exporter.CEILOMETER_REGISTRY = prom_registry.CollectorRegistry()
        started = time.perf_counter()
        prom_exporter.collect_metrics(dicts[i])
        theirs_take.append((time.perf_counter() - started) * 1000)
    ours_render = statistics.median(ours_first)
    theirs_render = timed(lambda: exposition.generate_latest(
        prom_exporter.CEILOMETER_REGISTRY), repeat)
    print('\nscheme=ceilometer beside Ceilometer 27\'s exporter, %d series, '
          'median of %d, ms\n' % (len(store), repeat))
    header = '%-40s %14s %14s %9s' % ('', 'take a cycle',
                                      'first scrape', 'scrape x')
    print(header)
    print('-' * len(header))
    print('%-40s %14.1f %14.1f %8.1fx' % (
        'telemetry_lib (scheme=ceilometer)',
        statistics.median(ours_take), ours_render,
        theirs_render / ours_render))
    print('%-40s %14.1f %14.1f %9s' % (
        'Ceilometer 27 prom_exporter',
        statistics.median(theirs_take), theirs_render, '1.0x'))


if __name__ == '__main__':
    sys.exit(main())
