"""SQLite storage: write rate and query latency.

Side by side in one run:

* telemetry_lib's ``sqlite`` driver (interned names, ``WITHOUT ROWID``
  measure table keyed by (meter, resource, ts));
* the schema one writes first: one table with text columns, a rowid and an
  index on (meter, resource, ts), the same WAL settings, one transaction
  per batch -- the peer;
* the ``memory`` driver, as the no-I/O limit.

Writes: samples/s for batches of 1, 100 and 1,000 samples (10 resources x
N meters, like a polling cycle). Queries: one meter of one resource over
one day at 10 s resolution (8,640 measures), raw and aggregated.

Run: ``tox -e bench`` or ``python benchmarks/sqlite_storage.py``.
"""

import argparse
import datetime
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time

from oslo_config import cfg

from telemetry_lib import opts
from telemetry_lib import Sample
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base as storage_base

UTC = datetime.timezone.utc
DAY_POINTS = 8640


class NaiveSQLite:
    """The peer: what a first implementation looks like."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute('PRAGMA journal_mode=WAL')
        self.db.execute('PRAGMA synchronous=NORMAL')
        self.db.execute('CREATE TABLE sample (meter TEXT, resource TEXT, '
                        'ts REAL, value REAL, type TEXT, unit TEXT, '
                        'project TEXT, metadata TEXT)')
        self.db.execute('CREATE INDEX sample_idx ON sample '
                        '(meter, resource, ts)')

    def write(self, samples):
        self.db.execute('BEGIN')
        self.db.executemany(
            'INSERT INTO sample VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            [(s.name, s.resource_id, s.timestamp.timestamp(), s.volume,
              s.type, s.unit, s.project_id, repr(s.resource_metadata))
             for s in samples])
        self.db.execute('COMMIT')

    def query(self, meter, *, resource_id=None, start=None, stop=None,
              granularity=None, aggregation='mean'):
        args = (meter, resource_id, start.timestamp(), stop.timestamp())
        # The same Point objects as the drivers return, for a fair race.
        if granularity is None:
            return aggregate.to_points(self.db.execute(
                'SELECT ts, value FROM sample WHERE meter = ? AND '
                'resource = ? AND ts >= ? AND ts < ? ORDER BY ts',
                args).fetchall())
        return aggregate.to_points(self.db.execute(
            'SELECT CAST(ts / ? AS INTEGER) * ? AS b, AVG(value) FROM sample '
            'WHERE meter = ? AND resource = ? AND ts >= ? AND ts < ? '
            'GROUP BY b ORDER BY b', (granularity, granularity) + args
        ).fetchall())

    def close(self, timeout=None):
        self.db.close()


def batches(batch_size, total, start):
    meters = max(1, batch_size // 10)
    out, t = [], start
    for _ in range(total // batch_size):
        out.append([Sample('bench.m%d' % m, 'gauge', 'B', float(r * m),
                           resource_id='res-%d' % r, timestamp=t,
                           resource_metadata={'host': 'h', 'r': r})
                    for m in range(meters)
                    for r in range(min(10, batch_size))][:batch_size])
        t += 10
    return out


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_rate(store, batch_size, total):
    """``(samples/s, CPU us per sample)``."""
    data = batches(batch_size, total, 1.7e9)
    started, used = time.perf_counter(), _cpu()
    for batch in data:
        store.write(batch)
    return (total / (time.perf_counter() - started),
            (_cpu() - used) / total * 1e6)


def query_latency(store, repeat, **kw):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        points = store.query('bench.day', resource_id='res-day', **kw)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, len(points)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=20000)
    parser.add_argument('--repeat', type=int, default=20)
    args = parser.parse_args()
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    conf.set_override('sqlite_retention', 0, group='storage')
    tmp = tempfile.mkdtemp(prefix='tl-bench-')

    def unique(name):
        return os.path.join(tmp, '%s-%d.sqlite' % (name, time.monotonic_ns()))

    factories = [
        ('telemetry_lib sqlite', lambda: storage_base.load_storage(
            conf, 'sqlite://' + unique('ours'))),
        ('peer: naive one-table SQLite', lambda: NaiveSQLite(
            unique('naive'))),
        ('limit: memory driver', lambda: storage_base.load_storage(
            conf, 'memory://')),
    ]

    print('\nWrites: samples/s and (CPU us per sample) (%d samples per run; '
          '2,000 for batch 1)\n' % args.samples)
    header = '%-32s %18s %18s %18s' % ('store', 'batch 1', 'batch 100',
                                       'batch 1000')
    print(header)
    print('-' * len(header))
    for label, make in factories:
        rates = []
        for size in (1, 100, 1000):
            store = make()
            n = min(args.samples, 2000) if size == 1 else args.samples
            rates.append(write_rate(store, size, n))
            store.close()
        print('%-32s %18s %18s %18s' % ((label,) + tuple(
            '{:,.0f} ({:.1f})'.format(r, us) for r, us in rates)))

    print('\nQuery one meter of one resource over 1 day at 10 s (%d '
          'measures), median of %d, ms\n' % (DAY_POINTS, args.repeat))
    header = '%-32s %10s %14s %14s' % ('store', 'raw', 'mean per 5m',
                                       'rate per 5m')
    print(header)
    print('-' * len(header))
    start = datetime.datetime(2024, 5, 1, tzinfo=UTC)
    day = [Sample('bench.day', 'cumulative', 'B', float(i * 100),
                  resource_id='res-day', timestamp=start.timestamp() + i * 10)
           for i in range(DAY_POINTS)]
    others = batches(1000, 100000, start.timestamp())
    stop = start + datetime.timedelta(days=1)
    for label, make in factories:
        store = make()
        for batch in others:        # other series around it
            store.write(batch)
        store.write(day)
        raw, n = query_latency(store, args.repeat, start=start, stop=stop)
        assert n == DAY_POINTS, (label, n)
        mean, n = query_latency(store, args.repeat, start=start, stop=stop,
                                granularity=300, aggregation='mean')
        assert n == DAY_POINTS * 10 // 300, (label, n)
        if label.startswith('peer'):
            rate = '-'
        else:
            rate = '%.2f' % query_latency(store, args.repeat, start=start,
                                          stop=stop, granularity=300,
                                          aggregation='rate')[0]
        print('%-32s %10.2f %14.2f %14s' % (label, raw, mean, rate))
        store.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
