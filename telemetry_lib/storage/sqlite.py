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
"""``sqlite://`` (the embedded default) or ``sqlite:///PATH``.

Measures live in one ``WITHOUT ROWID`` table whose primary key is
``(meter, resource, ts)``: the table *is* the index a time-range query of one
meter and resource walks, and writing the same measure twice (at-least-once
delivery) replaces it instead of storing it twice. Meter and resource names
are interned in small tables so each measure row stays about 30 bytes.

WAL mode lets the CLI read while the agent writes; writers in several
processes wait for each other (``busy_timeout``). The storage objects of
one process on one file share one connection
(:mod:`telemetry_lib.clients.sqlitedb`), and nothing opens a second
descriptor of a live database: closing one would drop SQLite's locks and
let another process delete the WAL under the writer. Measures older than
``[storage] sqlite_retention`` are deleted, at most once a minute, series by
series along the primary key.
"""

import logging
import os
import sqlite3
import threading
import time

from oslo_config import cfg

from telemetry_lib.clients import sqlitedb
from telemetry_lib.exceptions import StorageError
from telemetry_lib.exceptions import StorageUnavailable
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.storage import aggregate
from telemetry_lib.storage import base

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('sqlite_path', default='',
               help='SQLite file of sqlite:// (a URL with a path names its '
                    'own). Empty: telemetry_lib/telemetry.sqlite under '
                    '$XDG_DATA_HOME (~/.local/share).'),
    cfg.IntOpt('sqlite_retention', default=7 * 24 * 3600, min=0,
               help='Seconds measures are kept in SQLite; 0 keeps them for '
                    'ever.'),
    cfg.FloatOpt('sqlite_busy_timeout', default=10.0, min=0, max=3600,
                 help='Seconds a write waits for another process holding '
                      'the database.'),
]

_SCHEMA = '''
CREATE TABLE IF NOT EXISTS meter (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
    type TEXT NOT NULL, unit TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resource (
    id INTEGER PRIMARY KEY, resource_id TEXT UNIQUE NOT NULL,
    project_id TEXT, user_id TEXT, metadata TEXT);
CREATE TABLE IF NOT EXISTS series (
    meter INTEGER NOT NULL, resource INTEGER NOT NULL,
    PRIMARY KEY (meter, resource)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS measure (
    meter INTEGER NOT NULL, resource INTEGER NOT NULL, ts REAL NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (meter, resource, ts)) WITHOUT ROWID;
'''

_SQL_AGGREGATES = {'mean': 'AVG(value)', 'min': 'MIN(value)',
                   'max': 'MAX(value)', 'sum': 'SUM(value)',
                   'count': 'COUNT(value)'}


def default_path():
    data = os.environ.get('XDG_DATA_HOME') or os.path.join(
        os.path.expanduser('~'), '.local', 'share')
    return os.path.join(data, 'telemetry_lib', 'telemetry.sqlite')


class SQLiteStorage(base.StorageDriver):
    """Measures in an SQLite file (see the module docstring)."""

    RETENTION_EVERY = 60.0

    def __init__(self, conf, url):
        super().__init__(conf, url)
        conf.register_opts(OPTS, group=base.GROUP)
        opts = conf[base.GROUP]
        self.path = url.path if url.path not in ('', '/') else (
            opts.sqlite_path or default_path())
        self.retention = opts.sqlite_retention
        self._open_lock = threading.Lock()
        self._busy_timeout = opts.sqlite_busy_timeout
        # Created by the first write, not on open: a reader (the CLI) with
        # a mistyped path must not leave an empty database behind.
        self._shared = None
        self._closed = False
        if not os.path.exists(self.path):
            self._check_creatable()
        self._meter_ids = {}
        self._resource_ids = {}
        self._resource_md = {}
        self._series = set()
        self._last_retention = 0.0

    # -- writing -----------------------------------------------------------

    def _connection(self, create):
        """The shared connection (made on first use); ``create``: a writer,
        which may create the file.
        """
        with self._open_lock:
            if self._closed:
                raise StorageUnavailable('SQLite storage %s is closed'
                                         % self.path)
            if self._shared is not None:
                return self._shared
            if not create and not os.path.exists(self.path):
                raise StorageError(
                    'no SQLite storage at %s yet: it is created when the '
                    'first samples are stored (telemetry-agent does within '
                    'one polling interval)' % self.path)
            try:
                self._shared = sqlitedb.acquire(
                    self.path, self._busy_timeout,
                    setup=lambda db: db.executescript(_SCHEMA),
                    pragmas=('journal_mode=WAL', 'synchronous=NORMAL'))
            except (sqlite3.Error, OSError) as exc:
                raise StorageError('cannot open SQLite storage %s: %s'
                                   % (self.path, exc)) from None
            return self._shared

    @property
    def _db(self):
        # Only under the shared connection's lock.
        return self._shared.db

    def _check_creatable(self):
        # A sink whose file cannot be created fails now, at start, rather
        # than dropping its first batch.
        parent = os.path.dirname(os.path.abspath(self.path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent,
                                                      os.W_OK | os.X_OK):
            raise StorageError('cannot create SQLite storage %s: %s is not '
                               'a writable directory' % (self.path, parent))

    def _meter_id(self, s):
        key = (s.name, s.type, s.unit)
        mid = self._meter_ids.get(key)
        if mid is None:
            self._db.execute('INSERT INTO meter (name, type, unit) '
                             'VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE '
                             'SET type = excluded.type, unit = excluded.unit',
                             key)
            mid = self._meter_ids[key] = self._db.execute(
                'SELECT id FROM meter WHERE name = ?', (s.name,)
            ).fetchone()[0]
        return mid

    def _resource_id(self, s):
        rid = self._resource_ids.get(s.resource_id)
        if rid is None:
            self._db.execute('INSERT OR IGNORE INTO resource (resource_id) '
                             'VALUES (?)', (s.resource_id,))
            rid = self._resource_ids[s.resource_id] = self._db.execute(
                'SELECT id FROM resource WHERE resource_id = ?',
                (s.resource_id,)).fetchone()[0]
        if self._resource_md.get(rid) != (s.project_id, s.user_id,
                                          s.resource_metadata):
            # Only when it changed: most samples repeat their resource's.
            self._resource_md[rid] = (s.project_id, s.user_id,
                                      s.resource_metadata)
            self._db.execute(
                'UPDATE resource SET project_id = ?, user_id = ?, '
                'metadata = ? WHERE id = ?',
                (s.project_id, s.user_id,
                 jsoncodec.dumps(s.resource_metadata).decode(), rid))
        return rid

    def write(self, samples):
        if not samples:
            return
        shared = self._connection(create=True)
        with shared.lock:
            try:
                self._db.execute('BEGIN IMMEDIATE')
                try:
                    rows = []
                    new_series = []
                    for s in samples:
                        pair = (self._meter_id(s), self._resource_id(s))
                        if pair not in self._series:
                            self._series.add(pair)
                            new_series.append(pair)
                        rows.append(pair + (s.timestamp.timestamp(),
                                            s.volume))
                    self._db.executemany(
                        'INSERT OR REPLACE INTO measure VALUES (?, ?, ?, ?)',
                        rows)
                    self._db.executemany(
                        'INSERT OR IGNORE INTO series VALUES (?, ?)',
                        new_series)
                    self._db.execute('COMMIT')
                except BaseException:
                    self._db.execute('ROLLBACK')
                    # The caches may name rows the rollback removed.
                    self._meter_ids.clear()
                    self._resource_ids.clear()
                    self._resource_md.clear()
                    self._series.clear()
                    raise
                self._maybe_expire()
            except sqlite3.OperationalError as exc:
                raise StorageUnavailable('SQLite write to %s failed: %s'
                                         % (self.path, exc)) from None
            except sqlite3.Error as exc:
                raise StorageError('SQLite write to %s failed: %s'
                                   % (self.path, exc)) from None

    def _maybe_expire(self):
        now = time.time()
        if not self.retention or now - self._last_retention < \
                self.RETENTION_EVERY:
            return
        self._last_retention = now
        self.expire(now - self.retention)

    def expire(self, before):
        """Delete measures older than ``before`` (POSIX seconds); return how
        many. Series by series, so each delete walks the primary key.
        """
        shared = self._shared
        if shared is None:
            return 0            # nothing was ever written
        with shared.lock:
            return self._expire(before)

    def _expire(self, before):
        pairs = self._db.execute('SELECT meter, resource FROM series'
                                 ).fetchall()
        self._db.execute('BEGIN IMMEDIATE')
        deleted = 0
        for meter, resource in pairs:
            deleted += self._db.execute(
                'DELETE FROM measure WHERE meter = ? AND resource = ? AND '
                'ts < ?', (meter, resource, before)).rowcount
        self._db.execute('COMMIT')
        if deleted:
            LOG.info('%s: deleted %d measures older than the retention',
                     self.path, deleted)
        return deleted

    # -- reading -----------------------------------------------------------

    def _ids(self, meter, resource_id):
        row = self._db.execute('SELECT id FROM meter WHERE name = ?',
                               (meter,)).fetchone()
        if row is None:
            return None, None
        if resource_id is None:
            return row[0], None
        res = self._db.execute('SELECT id FROM resource WHERE '
                               'resource_id = ?', (resource_id,)).fetchone()
        return row[0], (res[0] if res else -1)

    def query(self, meter, *, resource_id=None, start=None, stop=None,
              granularity=None, aggregation='mean'):
        base.check_query(aggregation, granularity, resource_id)
        lo = start.timestamp() if start else float('-inf')
        hi = stop.timestamp() if stop else float('inf')
        shared = self._connection(create=False)
        with shared.lock:
            try:
                return self._query(meter, resource_id, lo, hi, granularity,
                                   aggregation)
            except sqlite3.Error as exc:
                raise StorageUnavailable('SQLite query of %s failed: %s'
                                         % (self.path, exc)) from None

    def _query(self, meter, resource_id, lo, hi, granularity, aggregation):
        mid, rid = self._ids(meter, resource_id)
        if mid is None:
            return []
        where = 'meter = ? AND ts >= ? AND ts < ?'
        args = [mid, lo, hi]
        if rid is not None:
            where = 'meter = ? AND resource = ? AND ts >= ? AND ts < ?'
            args = [mid, rid, lo, hi]
        if granularity is None:
            rows = self._db.execute('SELECT ts, value FROM measure WHERE '
                                    + where + ' ORDER BY ts', args)
            return aggregate.to_points(rows.fetchall())
        bucket = 'CAST(ts / ? AS INTEGER) * ?'
        if aggregation in _SQL_AGGREGATES:
            rows = self._db.execute(
                'SELECT %s AS b, %s FROM measure WHERE %s GROUP BY b '
                'ORDER BY b' % (bucket, _SQL_AGGREGATES[aggregation], where),
                [granularity, granularity] + args)
            return aggregate.to_points(rows.fetchall())
        if aggregation == 'last':
            # SQLite gives a bare column the value of the MAX() row.
            rows = self._db.execute(
                'SELECT %s AS b, value, MAX(ts) FROM measure WHERE %s '
                'GROUP BY b ORDER BY b' % (bucket, where),
                [granularity, granularity] + args)
            return aggregate.to_points((b, v) for b, v, _ in rows)
        per_resource = {}
        for res, ts, value in self._db.execute(
                'SELECT resource, ts, value FROM measure WHERE ' + where
                + ' ORDER BY resource, ts', args):
            per_resource.setdefault(res, []).append((ts, value))
        return aggregate.to_points(aggregate.across(
            per_resource.values(), granularity, aggregation))

    def resources(self, meter=None):
        shared = self._connection(create=False)
        with shared.lock:
            db = shared.db
            if meter is None:
                rows = db.execute(
                    'SELECT DISTINCT r.resource_id FROM series s JOIN '
                    'resource r ON r.id = s.resource ORDER BY 1')
            else:
                rows = db.execute(
                    'SELECT r.resource_id FROM series s JOIN meter m ON '
                    'm.id = s.meter JOIN resource r ON r.id = s.resource '
                    'WHERE m.name = ? ORDER BY 1', (meter,))
            return [r for r, in rows]

    def meters(self):
        shared = self._connection(create=False)
        with shared.lock:
            return [tuple(r) for r in shared.db.execute(
                'SELECT name, type, unit FROM meter ORDER BY name')]

    def start(self):
        """Open the database if it exists (a writer creates it with its
        first batch, a reader never does).
        """
        if os.path.exists(self.path):
            self._connection(create=False)

    def close(self, timeout=None):
        with self._open_lock:
            self._closed = True
            shared, self._shared = self._shared, None
        if shared is not None:
            shared.release()
        return lifecycle.DONE
