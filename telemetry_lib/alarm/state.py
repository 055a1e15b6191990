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
"""Alarm states and their history, in SQLite beside the default storage.

The state survives a restart, so an unchanged state is not announced
again. History is bounded: the newest ``keep`` transitions per alarm.
"""

import datetime
import sqlite3
import threading

from telemetry_lib.alarm import model
from telemetry_lib.clients import sqlitedb
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.timeutils import UTC

_SCHEMA = '''
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT NOT NULL,
    changed REAL NOT NULL, evaluated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
    ts REAL NOT NULL, previous TEXT NOT NULL, current TEXT NOT NULL,
    reason TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_name ON history (name, id);
CREATE TABLE IF NOT EXISTS webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
    alert TEXT NOT NULL, route TEXT NOT NULL, outcome TEXT NOT NULL,
    target TEXT NOT NULL);
'''


class StateStore(lifecycle.Component):
    """States and transitions of alarms, shared by the agent and the CLI.

    :param path: the SQLite file (created owner-only on first use).
    :param keep: transitions kept per alarm.
    :param keep_webhooks: receiver decisions kept (all routes together).
    """

    def __init__(self, path, keep=1000, keep_webhooks=10000):
        self.path = path
        self.keep = keep
        self.keep_webhooks = keep_webhooks
        self._db = None
        self._lock = threading.Lock()

    def _conn(self):
        if self._db is None:
            try:
                # Survives a crash of the process (not a power cut) without
                # an fsync per evaluation: 1,000 alarms a cycle stay cheap.
                db = sqlitedb.connect(
                    self.path, timeout=5.0,
                    pragmas=('journal_mode=WAL', 'synchronous=NORMAL'))
                db.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError('cannot open the alarm state: %s' % exc,
                                  path=self.path) from None
            self._db = db
        return self._db

    def get(self, name):
        """``(state, reason, changed)`` or ``(insufficient data, '', None)``
        for an alarm never evaluated.
        """
        with self._lock:
            row = self._conn().execute(
                'SELECT state, reason, changed FROM state WHERE name = ?',
                (name,)).fetchone()
        if row is None:
            return model.INSUFFICIENT_DATA, '', None
        return row[0], row[1], _time(row[2])

    def states(self):
        """``{name: (state, reason, changed, evaluated)}``."""
        with self._lock:
            rows = self._conn().execute(
                'SELECT name, state, reason, changed, evaluated FROM state'
            ).fetchall()
        return {r[0]: (r[1], r[2], _time(r[3]), _time(r[4])) for r in rows}

    def record(self, name, evaluation, now, transition=None):
        """Save an evaluation; with ``transition``, the new state and a
        history entry.
        """
        ts = now.timestamp()
        with self._lock:
            db = self._conn()
            db.execute('BEGIN IMMEDIATE')
            try:
                if transition is not None:
                    db.execute(
                        'INSERT INTO state (name, state, reason, changed, '
                        'evaluated) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) '
                        'DO UPDATE SET state = excluded.state, reason = '
                        'excluded.reason, changed = excluded.changed, '
                        'evaluated = excluded.evaluated',
                        (name, transition.current, transition.reason, ts, ts))
                    db.execute(
                        'INSERT INTO history (name, ts, previous, current, '
                        'reason, data) VALUES (?, ?, ?, ?, ?, ?)',
                        (name, ts, transition.previous, transition.current,
                         transition.reason,
                         jsoncodec.dumps(transition.reason_data).decode()))
                    db.execute(
                        'DELETE FROM history WHERE name = ? AND id <= ('
                        'SELECT id FROM history WHERE name = ? ORDER BY id '
                        'DESC LIMIT 1 OFFSET ?)', (name, name, self.keep))
                else:
                    db.execute('UPDATE state SET evaluated = ? WHERE name = ?',
                               (ts, name))
            except BaseException:
                db.execute('ROLLBACK')
                raise
            db.execute('COMMIT')

    def history(self, name, limit=100):
        """The newest transitions of ``name`` first, as dicts."""
        with self._lock:
            rows = self._conn().execute(
                'SELECT ts, previous, current, reason, data FROM history '
                'WHERE name = ? ORDER BY id DESC LIMIT ?',
                (name, limit)).fetchall()
        return [{'timestamp': _time(ts), 'previous': prev, 'current': cur,
                 'reason': reason, 'reason_data': jsoncodec.loads(data)}
                for ts, prev, cur, reason, data in rows]

    def log_webhooks(self, now, decisions):
        """Save the receiver's decisions on one webhook's alerts:
        ``[(alert, route, outcome, target), ...]``; the oldest beyond
        ``keep_webhooks`` go.
        """
        ts = now.timestamp()
        with self._lock:
            db = self._conn()
            db.execute('BEGIN IMMEDIATE')
            try:
                db.executemany(
                    'INSERT INTO webhooks (ts, alert, route, outcome, '
                    'target) VALUES (?, ?, ?, ?, ?)',
                    [(ts,) + tuple(d) for d in decisions])
                db.execute('DELETE FROM webhooks WHERE id <= (SELECT MAX(id) '
                           'FROM webhooks) - ?', (self.keep_webhooks,))
            except BaseException:
                db.execute('ROLLBACK')
                raise
            db.execute('COMMIT')

    def webhooks(self, limit=100):
        """The newest receiver decisions first, as dicts."""
        with self._lock:
            rows = self._conn().execute(
                'SELECT ts, alert, route, outcome, target FROM webhooks '
                'ORDER BY id DESC LIMIT ?', (limit,)).fetchall()
        return [{'timestamp': _time(ts), 'alert': alert, 'route': route,
                 'outcome': outcome, 'target': target}
                for ts, alert, route, outcome, target in rows]

    def close(self, timeout=None):
        if not self._lock.acquire(timeout=-1 if timeout is None
                                  else max(0.0, timeout)):
            return lifecycle.Outcome.unfinished(
                'the alarm state store was busy')
        try:
            if self._db is not None:
                self._db.close()
                self._db = None
        finally:
            self._lock.release()
        return lifecycle.DONE


def _time(ts):
    return None if ts is None else datetime.datetime.fromtimestamp(
        ts, UTC)
