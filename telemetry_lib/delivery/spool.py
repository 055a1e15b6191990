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
"""The durable spool: a publisher's queue in an SQLite file.

Why SQLite: a committed transaction in WAL mode survives a ``kill -9`` of the
process (and, with ``spool_fsync``, a power failure), rows keep arrival order
by their integer key, and deleting what a publisher confirmed is one
statement. Items are stored as Ceilometer wire JSON, so a spool can be read
with the ``sqlite3`` shell when something goes wrong.

An item is written before ``put`` returns (one transaction per ``put``, not
per item) and deleted only when its publisher confirmed it or it was dropped
and counted. A file is held with an exclusive lock, so two processes cannot
share one spool by mistake.
"""

import logging
import operator
import sqlite3

from telemetry_lib.clients import sqlitedb
from telemetry_lib.delivery.buffer import ITEM
from telemetry_lib.delivery.buffer import KEY
from telemetry_lib.delivery.buffer import SIZE
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec

LOG = logging.getLogger(__name__)
_ITEM = operator.itemgetter(ITEM)
_SIZE = operator.itemgetter(SIZE)


class SampleCodec:
    """Samples as unsigned Ceilometer metering messages."""

    @staticmethod
    def encode_many(samples):
        return ceilometer.samples_to_json(samples)

    @staticmethod
    def decode(blob):
        return ceilometer.sample_from_wire(jsoncodec.loads(blob))


class EventCodec:
    """Events as unsigned Ceilometer event messages."""

    @staticmethod
    def encode_many(events):
        return [jsoncodec.dumps(ceilometer.event_to_wire(e)) for e in events]

    @staticmethod
    def decode(blob):
        return ceilometer.event_from_wire(jsoncodec.loads(blob))


class ActionCodec:
    """Alarm actions (``(id, body)`` pairs) as JSON arrays."""

    @staticmethod
    def encode_many(actions):
        return [jsoncodec.dumps([a[0], a[1]]) for a in actions]

    @staticmethod
    def decode(blob):
        action_id, body = jsoncodec.loads(blob)
        return action_id, body


CODECS = {'samples': SampleCodec, 'events': EventCodec,
          'actions': ActionCodec}


class SpoolStore:
    """A store (see :mod:`telemetry_lib.delivery.buffer`) in SQLite."""

    def __init__(self, path, codec, fsync=False):
        self.path = path
        self._codec = codec
        try:
            # Owner-only (the spool holds samples with project ids), and
            # never a second descriptor on the file (see sqlitedb).
            self._db = sqlitedb.connect(
                path, timeout=1.0,
                pragmas=('journal_mode=WAL',
                         'synchronous=%s' % ('FULL' if fsync else 'NORMAL'),
                         'locking_mode=EXCLUSIVE'))
            self._db.execute('CREATE TABLE IF NOT EXISTS items ('
                             'id INTEGER PRIMARY KEY AUTOINCREMENT, '
                             'body BLOB NOT NULL)')
            # Take the exclusive lock now, so a second process fails here.
            self._db.execute('BEGIN IMMEDIATE')
            self._db.execute('COMMIT')
            self.count, self.nbytes = self._db.execute(
                'SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM items'
            ).fetchone()
        except sqlite3.OperationalError as exc:
            raise ConfigError('cannot open the spool: %s (is another '
                              'process using it?)' % exc, path=path) from None
        except OSError as exc:
            raise ConfigError('cannot create the spool directory: %s' % exc,
                              path=path) from None
        self.recovered = self.count
        self._in_flight = {}        # key -> size
        self._head_key = 0          # keys <= this are in flight or gone

    @property
    def in_flight(self):
        return len(self._in_flight)

    @property
    def queued(self):
        return self.count - len(self._in_flight)

    def prepare(self, items):
        try:
            blobs = self._codec.encode_many(items)
        except (jsoncodec.EncodeError, TypeError, ValueError):
            # One bad item must not cost the batch: encode one by one.
            blobs = []
            for item in items:
                try:
                    blobs.extend(self._codec.encode_many((item,)))
                except (jsoncodec.EncodeError, TypeError, ValueError) as exc:
                    LOG.warning('%s: cannot spool %r: %s', self.path, item,
                                exc)
        return ([[b, len(b), None] for b in blobs],
                len(items) - len(blobs))

    @staticmethod
    def sizes(entries):
        return map(_SIZE, entries)

    @staticmethod
    def size_of(entries):
        return sum(map(_SIZE, entries))

    @staticmethod
    def items_of(entries):
        return list(map(_ITEM, entries))

    def append(self, entries):
        if not entries:
            return
        self._db.execute('BEGIN')
        try:
            for entry in entries:
                entry[KEY] = self._db.execute(
                    'INSERT INTO items (body) VALUES (?)', (entry[ITEM],)
                ).lastrowid
                entry[ITEM] = None  # on disk now; the worker reads it back
        except BaseException:
            self._db.execute('ROLLBACK')
            raise
        self._db.execute('COMMIT')
        self.count += len(entries)
        self.nbytes += self.size_of(entries)

    def take(self, max_items):
        rows = self._db.execute(
            'SELECT id, body FROM items WHERE id > ? ORDER BY id LIMIT ?',
            (self._head_key, max_items)).fetchall()
        entries, unreadable = [], []
        for key, body in rows:
            self._head_key = key
            try:
                item = self._codec.decode(body)
            except (InvalidSample, jsoncodec.DecodeError) as exc:
                # Written by us, so only disk corruption gets here.
                LOG.error('%s: spooled item %d is unreadable and is '
                          'deleted: %s', self.path, key, exc)
                unreadable.append([None, len(body), key])
                continue
            self._in_flight[key] = len(body)
            entries.append([item, len(body), key])
        if unreadable:
            self._in_flight.update((e[KEY], e[SIZE]) for e in unreadable)
            self.settle(unreadable)
        return entries

    def settle(self, entries):
        if not entries:
            return
        self._db.execute('BEGIN')
        self._db.executemany('DELETE FROM items WHERE id = ?',
                             [(e[KEY],) for e in entries])
        self._db.execute('COMMIT')
        for e in entries:
            self._in_flight.pop(e[KEY], None)
        self.count -= len(entries)
        self.nbytes -= self.size_of(entries)

    def release(self, entries):
        for e in entries:
            self._in_flight.pop(e[KEY], None)
        if not self._in_flight:
            # The rows are still there: read from the oldest again.
            self._head_key = 0

    def evict_oldest(self, items_needed, bytes_needed):
        floor = max(self._in_flight, default=0)
        count = size = 0
        doomed = []
        cursor = self._db.execute(
            'SELECT id, LENGTH(body) FROM items WHERE id > ? ORDER BY id',
            (floor,))
        for key, length in cursor:
            if count >= items_needed and size >= bytes_needed:
                break
            doomed.append((key,))
            count += 1
            size += length
        cursor.close()
        if doomed:
            self._db.execute('BEGIN')
            self._db.executemany('DELETE FROM items WHERE id = ?', doomed)
            self._db.execute('COMMIT')
        self.count -= count
        self.nbytes -= size
        return count, size

    def close(self):
        try:
            self._db.close()
        except sqlite3.Error as exc:  # pragma: no cover - best effort
            LOG.warning('%s: error closing the spool: %s', self.path, exc)
