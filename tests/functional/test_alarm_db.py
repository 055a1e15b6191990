"""The alarm database's contract (tests/unit/test_alarm_db.py) on the real
backends an operator shares between agents: PostgreSQL and MariaDB
(tools/sqldb.sh), each test in a schema of its own, migrated by the code
under test. And what several agents starting together and a database that
goes away do to it.
"""

import subprocess
import threading
import uuid

import sqlalchemy as sa

from telemetry_lib.alarm.db import store
from tests import base
from tests.unit import test_alarm_db

PG = 'postgresql+psycopg2://postgres@127.0.0.1:5432/%s'
MARIADB = 'mysql+pymysql://root@127.0.0.1:3306/%s?charset=utf8mb4'


def fresh_database(test, server=PG):
    """A new empty database on ``server`` for ``test`` (dropped after):
    ``(its name, its URL)``.
    """
    name = 'telemetry_alarms_%s' % uuid.uuid4().hex[:10]
    admin = sa.create_engine(server % ('postgres' if server == PG
                                       else 'mysql'),
                             isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.execute(sa.text('CREATE DATABASE %s' % name))

    def drop():
        with admin.connect() as conn:
            if server == PG:
                conn.execute(sa.text(
                    'SELECT pg_terminate_backend(pid) FROM '
                    'pg_stat_activity WHERE datname = :n'), {'n': name})
            conn.execute(sa.text('DROP DATABASE %s' % name))
        admin.dispose()
    test.addCleanup(drop)
    return name, server % name


class _Backend:
    server = None

    def setUp(self):
        super().setUp()
        self.name, self.url = fresh_database(self, self.server)
        self.db = store.AlarmDB(self.url).start()
        self.addCleanup(self.db.close)

    def test_agents_starting_together_migrate_once(self):
        dbs = [store.AlarmDB(self.url) for _ in range(4)]
        errors = []

        def start(db):
            try:
                db.start()
            except Exception as exc:      # reported below
                errors.append(exc)
        threads = [threading.Thread(target=start, args=(db,)) for db in dbs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for db in dbs:
            db.close()
        self.assertEqual([], errors)
        engine = sa.create_engine(self.url)
        with engine.connect() as conn:
            version = conn.execute(sa.text(
                'SELECT version_num FROM alarm_alembic_version')).all()
        engine.dispose()
        self.assertEqual([('0001',)], [tuple(r) for r in version])


class TestPostgreSQL(_Backend, test_alarm_db.Contract, base.TestCase):
    server = PG

    def test_a_killed_connection_is_reconnected(self):
        alarm = self.db.create(test_alarm_db.new_alarm())
        # Every server-side connection of this database killed, as a
        # PostgreSQL restart or failover does.
        subprocess.run(['su', 'postgres', '-c', "psql -h 127.0.0.1 -qc "
                        "\"SELECT pg_terminate_backend(pid) FROM "
                        "pg_stat_activity WHERE datname = '%s'\"" % self.name],
                       check=True, capture_output=True)
        # pool_pre_ping: the next call reconnects instead of failing.
        self.assertEqual(alarm['alarm_id'],
                         self.db.get(alarm['alarm_id'])['alarm_id'])


class TestMariaDB(_Backend, test_alarm_db.Contract, base.TestCase):
    server = MARIADB
