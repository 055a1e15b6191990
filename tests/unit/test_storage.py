import datetime
import os
import subprocess
import sys
import threading
import time

from telemetry_lib import delivery
from telemetry_lib import Sample
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base as storage_base
from telemetry_lib.storage import sqlite as sqlite_storage
from telemetry_lib import StorageError
from tests import base

UTC = datetime.timezone.utc
T0 = 1714564800          # a multiple of 30 s


def at(offset):
    return datetime.datetime.fromtimestamp(T0 + offset, UTC)


def gauge(resource, offset, value, name='m'):
    return Sample(name, 'gauge', 'B', value, resource_id=resource,
                  timestamp=T0 + offset)


def counter(resource, offset, value):
    return Sample('c', 'cumulative', 'ns', value, resource_id=resource,
                  timestamp=T0 + offset)


class StorageContract:
    """The same hand-computed expectations against every driver."""

    url = None

    def setUp(self):
        super().setUp()
        # The fixtures are from 2024: keep them whatever their age.
        self.conf.register_opts(sqlite_storage.OPTS, group='storage')
        self.conf.set_override('sqlite_retention', 0, group='storage')
        self.storage = storage_base.load_storage(self.conf, self.url % {
            'tmp': self.tmpdir})
        self.addCleanup(self.storage.close)
        self.storage.write(
            [gauge('a', 0, 1), gauge('a', 10, 3), gauge('a', 20, 5),
             gauge('a', 30, 4), gauge('a', 65, 10), gauge('b', 5, 7)]
            + [counter('c', o, v) for o, v in (
                (0, 100), (10, 110), (20, 130), (30, 160), (40, 10),
                (50, 30))])

    def values(self, **kw):
        return [(p.timestamp, p.value) for p in self.storage.query(**kw)]

    def test_raw(self):
        assert self.values(meter='m', resource_id='a') == [
            (at(0), 1), (at(10), 3), (at(20), 5), (at(30), 4), (at(65), 10)]
        assert self.values(meter='m', resource_id='a', start=at(10),
                           stop=at(30)) == [(at(10), 3), (at(20), 5)]

    def test_aggregations_one_resource(self):
        expected = {
            'mean': [3, 4, 10], 'min': [1, 4, 10], 'max': [5, 4, 10],
            'sum': [9, 4, 10], 'count': [3, 1, 1], 'last': [5, 4, 10]}
        for aggregation, values in expected.items():
            got = self.values(meter='m', resource_id='a', granularity=30,
                              aggregation=aggregation)
            assert got == list(zip([at(0), at(30), at(60)], values)), \
                aggregation

    def test_across_resources(self):
        assert self.values(meter='m', granularity=30)[0] == (at(0), 4.0)
        assert self.values(meter='m', granularity=30,
                           aggregation='count')[0] == (at(0), 4)
        assert self.values(meter='m', granularity=30,
                           aggregation='last')[0] == (at(0), 5)

    def test_rate_with_counter_reset(self):
        # Bucket 0: 100 -> 130 over 20 s. Bucket 1: from 130 at 20 s:
        # +30, reset to 10 (+10), +20 = 60 over 30 s.
        assert self.values(meter='c', resource_id='c', granularity=30,
                           aggregation='rate') == [(at(0), 1.5),
                                                   (at(30), 2.0)]

    def test_listing(self):
        assert self.storage.resources() == ['a', 'b', 'c']
        assert self.storage.resources('m') == ['a', 'b']
        assert self.storage.meters() == [('c', 'cumulative', 'ns'),
                                         ('m', 'gauge', 'B')]

    def test_unknown_meter_is_empty(self):
        assert self.storage.query('nope', resource_id='a') == []
        assert self.storage.query('m', resource_id='nope') == []

    def test_rewrite_is_idempotent(self):
        self.storage.write([gauge('a', 0, 1), gauge('a', 10, 3)])
        assert len(self.storage.query('m', resource_id='a')) == 5

    def test_bad_queries(self):
        for kw in (dict(aggregation='median', granularity=30),
                   dict(granularity=0, resource_id='a'),
                   dict(granularity=None)):
            with self.assertRaises(StorageError):
                self.storage.query('m', **kw)


class TestMemoryStorage(StorageContract, base.TestCase):
    url = 'memory://'


class TestSQLiteStorage(StorageContract, base.TestCase):
    url = 'sqlite://%(tmp)s/db.sqlite'

    def test_default_path_follows_xdg(self):
        os.environ['XDG_DATA_HOME'] = self.tmpdir
        self.addCleanup(os.environ.pop, 'XDG_DATA_HOME')
        s = storage_base.load_storage(self.conf, 'sqlite://')
        self.addCleanup(s.close)
        assert s.path == os.path.join(self.tmpdir, 'telemetry_lib',
                                      'telemetry.sqlite')

    def test_a_reader_does_not_create_the_database(self):
        path = os.path.join(self.tmpdir, 'typo', 'db.sqlite')
        s = storage_base.load_storage(self.conf, 'sqlite://' + path)
        self.addCleanup(s.close)
        for read in (lambda: s.meters(), lambda: s.resources(),
                     lambda: s.query('m', resource_id='a')):
            with self.assertRaises(StorageError) as ctx:
                read()
            assert 'no SQLite storage at %s yet' % path in str(
                ctx.exception)
        assert not os.path.exists(os.path.dirname(path))
        # The first write creates it; the same driver then reads it.
        s.write([gauge('a', 0, 1)])
        assert s.meters() == [('m', 'gauge', 'B')]

    def test_a_path_that_cannot_be_created_fails_at_once(self):
        blocker = os.path.join(self.tmpdir, 'a-file')
        open(blocker, 'w').close()
        with self.assertRaises(StorageError) as ctx:
            storage_base.load_storage(self.conf, 'sqlite://%s/sub/db.sqlite'
                                      % blocker)
        assert str(ctx.exception) == (
            'cannot create SQLite storage %s/sub/db.sqlite: %s is not a '
            'writable directory' % (blocker, blocker))

    def test_retention(self):
        now = time.time()
        old = [Sample('m', 'gauge', 'B', 1, resource_id='a',
                      timestamp=now - 3 * 86400)]
        self.storage.write(old)
        assert self.storage.expire(now - 86400) == 1 + 6 + 6
        assert self.storage.query('m', resource_id='a') == []

    def test_retention_runs_on_write(self):
        self.conf.set_override('sqlite_retention', 3600, group='storage')
        s = storage_base.load_storage(self.conf, 'sqlite://%s/r.sqlite'
                                      % self.tmpdir)
        self.addCleanup(s.close)
        now = time.time()
        s.write([Sample('m', 'gauge', 'B', 1, resource_id='a',
                        timestamp=now - 7200)])
        s.write([Sample('m', 'gauge', 'B', 2, resource_id='a',
                        timestamp=now)])
        assert [p.value for p in s.query('m', resource_id='a')] == [2]

    def test_reader_in_another_connection_while_writing(self):
        reader = storage_base.load_storage(self.conf, self.url % {
            'tmp': self.tmpdir})
        self.addCleanup(reader.close)
        stop = threading.Event()

        def write():
            i = 0
            while not stop.is_set():
                self.storage.write([gauge('w', 100 + i, i, name='w')])
                i += 1
        t = threading.Thread(target=write)
        t.start()
        try:
            for _ in range(50):
                reader.query('w', resource_id='w')
        finally:
            stop.set()
            t.join()
        assert len(reader.query('w', resource_id='w')) > 0

    def _other_process_opens_and_closes(self, path, times=3):
        # What the CLI or a second agent does: a connection in another
        # process that reads and closes (the last closer checkpoints and
        # deletes the WAL if it can take the locks).
        script = ('import sqlite3, sys\n'
                  'for _ in range(%d):\n'
                  '    db = sqlite3.connect(sys.argv[1])\n'
                  '    db.execute("SELECT COUNT(*) FROM measure").fetchall()\n'
                  '    db.close()\n' % times)
        subprocess.run([sys.executable, '-c', script, path], check=True,
                       timeout=60)

    def test_a_second_storage_object_keeps_the_writers_locks(self):
        # Issue 20 item 0: the publisher and the evaluator on one file in
        # one process. Opening the second used to open and close a
        # descriptor of the live database, which released the writer's
        # POSIX locks; another process closing its connection then
        # deleted the WAL the writer still wrote into.
        path = self.storage.path
        self.storage.write([gauge('a', 0, 1, name='w')])
        for _ in range(3):
            other = storage_base.load_storage(self.conf, 'sqlite://' + path)
            assert ('w', 'gauge', 'B') in other.meters()
            other.close()
            self._other_process_opens_and_closes(path)
            assert os.path.exists(path + '-wal')
        self.storage.write([gauge('a', 60, 2, name='w')])
        self._other_process_opens_and_closes(path)
        assert os.path.exists(path + '-wal')
        self.storage.close()
        fresh = storage_base.load_storage(self.conf, 'sqlite://' + path)
        self.addCleanup(fresh.close)
        assert [p.value for p in fresh.query('w', resource_id='a')] == [1, 2]

    def test_one_connection_per_file_in_a_process(self):
        self.storage.write([gauge('a', 0, 1)])
        other = storage_base.load_storage(
            self.conf, 'sqlite://' + os.path.join(
                self.tmpdir, '.', 'db.sqlite'))
        self.addCleanup(other.close)
        other.meters()
        assert other._shared is self.storage._shared
        assert other._shared.users == 2

    def test_the_file_is_owner_only(self):
        self.storage.write([gauge('a', 0, 1)])
        assert os.stat(self.storage.path).st_mode & 0o777 == 0o600

    def test_as_pipeline_sink(self):
        d = delivery.build(self.conf, 'sqlite://%s/db.sqlite?max_latency=0'
                           % self.tmpdir).start()
        d.put([gauge('z', 0, 42, name='z')])
        assert d.close(5)
        assert [p.value for p in self.storage.query(
            'z', resource_id='z')] == [42]


class TestAggregate(base.TestCase):

    def test_rate_needs_two_points(self):
        assert aggregate.rates([(0, 5)], 10) == []
        assert aggregate.rates([(0, 5), (5, 15)], 10) == [(0, 2.0)]


class TestTypedErrors(base.TestCase):

    def test_a_bad_query_is_not_an_outage(self):
        from telemetry_lib import InvalidQuery
        from telemetry_lib import StorageUnavailable
        storage = storage_base.load_storage(self.conf, 'memory://')
        for kwargs in (dict(aggregation='median', granularity=60),
                       dict(granularity=-1), dict(granularity=None)):
            with self.assertRaises(InvalidQuery) as ctx:
                storage.query('m', **kwargs)
            assert not ctx.exception.retryable
            assert not isinstance(ctx.exception, StorageUnavailable)
        assert StorageUnavailable('down').retryable
