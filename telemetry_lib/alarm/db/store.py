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
"""The alarm database (:class:`AlarmDB`): alarms, their state and their
history, read and written by the API and the evaluators of every agent.

Construction checks the URL (no I/O); :meth:`AlarmDB.start` connects and
brings the schema to the newest Alembic revision, one agent at a time (an
advisory lock on PostgreSQL and MariaDB); :meth:`AlarmDB.close` lets the
connections go. Every method is blocking, runs in one transaction and
either does all it says or nothing; a database that cannot be reached
raises :class:`DatabaseUnavailable` (the API answers 503, the evaluator
waits for the next interval), a statement it refuses
:class:`DatabaseError` -- never a driver's exception.
"""

import contextlib
import datetime
import os
import sqlite3
import threading

from alembic import command as alembic_command
from alembic import config as alembic_config
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from telemetry_lib.alarm.db import schema
from telemetry_lib.clients import sqlitedb
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.masking import redact
from telemetry_lib.sample import new_message_id
from telemetry_lib.timeutils import UTC

_MIGRATIONS = os.path.join(os.path.dirname(__file__), 'migrations')
_LOCK_ID = 0x74656c65            # "tele": the migration advisory lock
#: Alarm fields a list may be filtered on (Aodh's, but ``all_projects``).
FILTERS = ('alarm_id', 'user_id', 'project_id', 'type', 'name', 'enabled',
           'state', 'severity', 'repeat_actions')
CREATION = 'creation'
RULE_CHANGE = 'rule change'
STATE_TRANSITION = 'state transition'
DELETION = 'deletion'


class DatabaseError(TelemetryError):
    """The alarm database refused a statement (a conflict, a bug)."""


class DatabaseUnavailable(DatabaseError):
    """The alarm database cannot be reached now; try again later."""


#: Driver failures that mean "not now" rather than "never".
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError,
                sa_exc.DisconnectionError, sa_exc.TimeoutError)


#: A new alarm or change id (a random UUID, as Aodh's).
new_id = new_message_id


def utcnow():
    return datetime.datetime.now(UTC)


def _naive(value):
    """Aware UTC -> the naive UTC the columns hold."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _aware(value):
    return None if value is None else value.replace(tzinfo=UTC)


class AlarmDB(lifecycle.Component):
    """Alarms, state and history in one SQL database.

    :param url: an SQLAlchemy URL (``postgresql+psycopg2://...``,
        ``mysql+pymysql://...``, ``sqlite:////path``).
    :raises ConfigError: for a URL SQLAlchemy cannot parse or whose
        driver is not installed.
    """

    def __init__(self, url, pool_size=5):
        try:
            self.url = sa.engine.make_url(url)
            self.url.get_dialect()
        except (sa_exc.ArgumentError, sa_exc.NoSuchModuleError,
                ValueError) as exc:
            raise ConfigError('not a database URL SQLAlchemy can use: %s'
                              % exc, where='alarm database') from None
        self.pool_size = pool_size
        self.engine = None
        self._lock = threading.Lock()
        # SQLite: one connection for the process (sqlitedb's rule), so one
        # statement at a time; other backends use their pool.
        self._serial = (threading.RLock()
                        if self.url.get_backend_name() == 'sqlite'
                        else contextlib.nullcontext())

    def __str__(self):
        return redact(self.url.render_as_string(hide_password=True))

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        """Connect and migrate; idempotent.

        :raises DatabaseUnavailable: the database cannot be reached.
        """
        with self._lock:
            if self.engine is not None:
                return self
            engine = self._engine()
            try:
                with self._serial, engine.begin() as conn:
                    self._migrate(conn)
            except sa_exc.SQLAlchemyError as exc:
                engine.dispose()
                raise DatabaseUnavailable('alarm database %s: %s'
                                          % (self, _brief(exc))) from None
            self.engine = engine
        return self

    def _engine(self):
        if self.url.get_backend_name() == 'sqlite':
            path = self.url.database
            if not path or path == ':memory:':
                def creator():
                    return sqlite3.connect(':memory:', isolation_level=None,
                                           check_same_thread=False)
            else:
                def creator():
                    try:
                        return sqlitedb.connect(path, 30, (
                            'journal_mode=WAL', 'synchronous=NORMAL'))
                    except OSError as exc:
                        # A DB-API error, so SQLAlchemy reports it like
                        # any other failure to connect.
                        raise sqlite3.OperationalError(
                            'cannot create %s: %s' % (
                                path, exc.strerror or exc)) from None
            engine = sa.create_engine('sqlite://',
                                      poolclass=sa.pool.StaticPool,
                                      creator=creator)
            # The connection is in autocommit mode: SQLAlchemy's
            # transaction must say BEGIN itself to be one (SQLAlchemy's
            # documented recipe for pysqlite).
            sa.event.listen(engine, 'begin', lambda conn: conn.exec_driver_sql(
                'BEGIN IMMEDIATE'))
            return engine
        return sa.create_engine(self.url, pool_size=self.pool_size,
                                max_overflow=self.pool_size,
                                pool_pre_ping=True, pool_recycle=3600,
                                pool_timeout=10)

    def _migrate(self, conn):
        backend = self.url.get_backend_name()
        # Several agents starting together must not all create the tables.
        if backend == 'postgresql':
            conn.execute(sa.text('SELECT pg_advisory_xact_lock(%d)'
                                 % _LOCK_ID))
        elif backend in ('mysql', 'mariadb'):
            conn.execute(sa.text("SELECT GET_LOCK('telemetry_alarm_db', 60)"))
        cfg = alembic_config.Config()
        cfg.set_main_option('script_location', _MIGRATIONS)
        cfg.attributes['connection'] = conn
        try:
            alembic_command.upgrade(cfg, 'head')
        finally:
            if backend in ('mysql', 'mariadb'):
                conn.execute(sa.text(
                    "SELECT RELEASE_LOCK('telemetry_alarm_db')"))

    def close(self, timeout=None):
        with self._lock:
            if self.engine is not None:
                self.engine.dispose()
                self.engine = None
        return lifecycle.DONE

    def _run(self, func):
        """``func(connection)`` in one transaction."""
        engine = self.engine
        if engine is None:
            self.start()
            engine = self.engine
        try:
            with self._serial, engine.begin() as conn:
                return func(conn)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailable('alarm database %s: %s'
                                      % (self, _brief(exc))) from None
        except sa_exc.SQLAlchemyError as exc:
            raise DatabaseError('alarm database %s: %s'
                                % (self, _brief(exc))) from None

    # -- alarms --------------------------------------------------------------

    def create(self, alarm, change=None):
        """Insert ``alarm`` (a mapping of the ``alarm`` columns) and its
        ``creation`` change; return it as stored.
        """
        row = _to_row(alarm)

        def insert(conn):
            # Parameters apart from the statement: SQLAlchemy compiles it
            # once and caches it.
            conn.execute(schema.alarm.insert(), row)
            if change is not None:
                conn.execute(schema.alarm_change.insert(),
                             _change_row(change))
        self._run(insert)
        return _from_row(row)

    def get(self, alarm_id, project_id=None):
        found = self.list({'alarm_id': alarm_id,
                           'project_id': project_id}, limit=1)
        return found[0] if found else None

    def list(self, filters=None, limit=None, marker=None, sort=()):
        """Alarms matching every ``filters`` field (``None`` values are
        ignored), oldest first by ``timestamp`` then id, or by ``sort``
        (``[(column, 'asc' or 'desc')]``); ``marker`` an alarm id to start
        after (with the default order).
        """
        table = schema.alarm
        query = sa.select(table)
        for field, value in (filters or {}).items():
            if field not in FILTERS:
                raise ValueError('cannot filter alarms on %r' % field)
            if value is not None:
                query = query.where(table.c[field] == value)
        if sort:
            query = query.order_by(*[
                table.c[k].desc() if d == 'desc' else table.c[k].asc()
                for k, d in sort], table.c.alarm_id)
        else:
            query = query.order_by(table.c.timestamp, table.c.alarm_id)

        def select(conn):
            q = query
            if marker is not None:
                at = conn.execute(sa.select(table.c.timestamp).where(
                    table.c.alarm_id == marker)).scalar()
                if at is None:
                    raise KeyError(marker)
                q = q.where(sa.or_(table.c.timestamp > at, sa.and_(
                    table.c.timestamp == at, table.c.alarm_id > marker)))
            if limit is not None:
                q = q.limit(limit)
            return [_from_row(r._mapping) for r in conn.execute(q)]
        return self._run(select)

    def update(self, alarm_id, values, change=None):
        """Set ``values`` on an alarm (and record ``change``); the alarm
        as stored after, or ``None`` when it does not exist.
        """
        row = _to_row(values, partial=True)

        def write(conn):
            done = conn.execute(schema.alarm.update().where(
                schema.alarm.c.alarm_id == alarm_id).values(**row))
            if not done.rowcount:
                return None
            if change is not None:
                conn.execute(schema.alarm_change.insert(),
                             _change_row(change))
            return conn.execute(sa.select(schema.alarm).where(
                schema.alarm.c.alarm_id == alarm_id)).first()
        found = self._run(write)
        return _from_row(found._mapping) if found is not None else None

    def delete(self, alarm_id, change=None):
        """Delete an alarm (its history stays, as Aodh keeps it); whether
        it existed.
        """
        def remove(conn):
            done = conn.execute(schema.alarm.delete().where(
                schema.alarm.c.alarm_id == alarm_id))
            if done.rowcount and change is not None:
                conn.execute(schema.alarm_change.insert(),
                             _change_row(change))
            return bool(done.rowcount)
        return self._run(remove)

    def save_evaluation(self, alarm_id, state, reason, now, change=None):
        """An evaluator's verdict: ``state``/``state_reason`` (with
        ``state_timestamp`` when ``state`` changes) and
        ``evaluate_timestamp``; ``change`` the ``state transition``.
        Touches no definition field, so an API update in between is kept.
        """
        table = schema.alarm
        values = {'evaluate_timestamp': _naive(now)}
        if state is not None:
            values.update(state=state, state_reason=reason)
        if change is not None:
            values['state_timestamp'] = _naive(now)

        def write(conn):
            done = conn.execute(table.update().where(
                table.c.alarm_id == alarm_id).values(**values))
            if done.rowcount and change is not None:
                conn.execute(schema.alarm_change.insert(),
                             _change_row(change))
            return bool(done.rowcount)
        return self._run(write)

    def touch(self, alarm_ids, now):
        """``evaluate_timestamp`` of alarms evaluated with no change, in
        one statement (the steady state writes nothing else).
        """
        ids = list(alarm_ids)
        if not ids:
            return
        table = schema.alarm

        def write(conn):
            for i in range(0, len(ids), 500):
                conn.execute(table.update().where(
                    table.c.alarm_id.in_(ids[i:i + 500])).values(
                        evaluate_timestamp=_naive(now)))
        self._run(write)

    def changes(self, alarm_id, on_behalf_of=None, limit=100):
        """An alarm's history, newest first."""
        table = schema.alarm_change
        query = sa.select(table).where(table.c.alarm_id == alarm_id)
        if on_behalf_of is not None:
            query = query.where(table.c.on_behalf_of == on_behalf_of)
        query = query.order_by(table.c.timestamp.desc(),
                               table.c.event_id).limit(limit)

        def select(conn):
            out = []
            for r in conn.execute(query):
                d = dict(r._mapping)
                d['detail'] = jsoncodec.loads(d['detail'])
                d['timestamp'] = _aware(d['timestamp'])
                out.append(d)
            return out
        return self._run(select)

    def count(self, project_id=None, user_id=None):
        table = schema.alarm
        query = sa.select(sa.func.count()).select_from(table)
        if project_id is not None:
            query = query.where(table.c.project_id == project_id)
        if user_id is not None:
            query = query.where(table.c.user_id == user_id)
        return self._run(lambda conn: conn.execute(query).scalar())

    def ping(self):
        """Whether the database answers now."""
        try:
            self._run(lambda conn: conn.execute(sa.text('SELECT 1')))
            return True
        except DatabaseUnavailable:
            return False


def _to_row(alarm, partial=False):
    row = {}
    for column in schema.alarm.columns:
        name = column.name
        if name not in alarm:
            if not partial and name in schema.JSON_FIELDS:
                row[name] = '[]' if name != 'rule' else '{}'
            continue
        value = alarm[name]
        if name in schema.JSON_FIELDS:
            value = jsoncodec.dumps(value).decode()
        elif isinstance(value, datetime.datetime):
            value = _naive(value)
        row[name] = value
    return row


def _from_row(row):
    alarm = dict(row)
    for name in schema.JSON_FIELDS:
        value = alarm.get(name)
        if isinstance(value, str):
            alarm[name] = jsoncodec.loads(value)
    for name in ('timestamp', 'state_timestamp', 'evaluate_timestamp'):
        if isinstance(alarm.get(name), datetime.datetime):
            alarm[name] = _aware(alarm[name])
    return alarm


def _change_row(change):
    row = dict(change)
    row.setdefault('event_id', new_id())
    row['detail'] = jsoncodec.dumps(row.get('detail') or {}).decode()
    row['timestamp'] = _naive(row.get('timestamp') or utcnow())
    return row


def _brief(exc):
    """A driver's error in one line, without its SQL and parameters."""
    orig = getattr(exc, 'orig', None) or exc
    text = str(orig).strip().splitlines()
    return '%s: %s' % (type(orig).__name__, text[0] if text else '')
