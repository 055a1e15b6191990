"""Three agents evaluate one alarm database (PostgreSQL) and share its
alarms through tooz on the machine's Redis, as Aodh's evaluators do: in a
stable ring each alarm has one evaluator; one agent killed with -9, the
two others take its alarms within the membership timeout, and every alarm
is evaluated again.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid

from telemetry_lib.alarm.db import store
from tests import base
from tests.functional import alarming
from tests.functional.test_agent import metric
from tests.functional import test_alarm_db
from tests.unit import test_alarm_db as unit_db

ALARMS = 12
REDIS = 'redis://127.0.0.1:6379?membership_timeout=6'


class TestThreeEvaluators(base.TestCase):

    def setUp(self):
        super().setUp()
        _, self.url = test_alarm_db.fresh_database(self)
        self.db = store.AlarmDB(self.url).start()
        self.addCleanup(self.db.close)
        for i in range(ALARMS):
            self.db.create(unit_db.new_alarm(
                name='a%d' % i, alarm_actions=[], rule={
                    'query': 'vector(%d)' % i, 'threshold': 5.0,
                    'comparison_operator': 'gt'}))
        # A group of its own: members of an earlier run are elsewhere.
        self.group = 'evaluators-%s' % uuid.uuid4().hex[:8]
        self.agents = [self.start_agent(n) for n in range(3)]

    def start_agent(self, n):
        port = base.free_port()
        conf = self.write_file('agent%d.conf' % n, textwrap.dedent('''
            [agent]
            http_port = %d
            [polling]
            cfg_file = %s
            [coordination]
            backend_url = %s
            [alarms]
            database_connection = %s
            evaluate_database = true
            database_evaluation_interval = 1
            database_refresh = 0.5
            coordination_group = %s
            prometheus_storage = %s
        ''' % (port, self.write_file('polling.yaml', textwrap.dedent('''
            sources:
              - name: quiet
                interval: 3600
                meters: ["host.memory.used"]
        ''')),
               REDIS, self.url, self.group, alarming.PROMETHEUS)))
        log = open(os.path.join(self.tmpdir, 'agent%d.log' % n), 'w')
        self.addCleanup(log.close)
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(
            self.tmpdir, 'data%d' % n))
        proc = subprocess.Popen([sys.executable, '-m',
                                 'telemetry_lib.cmd.agent', '--config-file',
                                 conf], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        self.addCleanup(self._kill, proc)
        return proc, port, log.name

    @staticmethod
    def _kill(proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def gauge(self, n, name='telemetry_alarm_database_alarms'):
        proc, port, _ = self.agents[n]
        if proc.poll() is not None:
            return None
        try:
            with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port,
                                        timeout=2) as r:
                return metric(r.read().decode(), name)
        except OSError:
            return None

    def shares(self, alive):
        return [self.gauge(n) for n in alive]

    def output(self):
        text = ''
        for _, _, path in self.agents:
            with open(path) as f:
                text += f.read()[-2000:]
        return text

    def settled(self, alive, reads=3):
        """The live agents' shares add up to every alarm, each has some,
        several reads in a row (a ring still moving does not).
        """
        for _ in range(reads):
            for n in alive:
                if self.agents[n][0].poll() is not None:
                    raise AssertionError('agent %d exited: %s'
                                         % (n, self.output()))
            shares = self.shares(alive)
            if None in shares or 0 in shares or sum(shares) != ALARMS:
                return False
            time.sleep(0.3)
        return True

    def test_one_evaluator_per_alarm_and_a_kill_moves_its_share(self):
        assert base.wait_until(lambda: self.settled(range(3)), 60), (
            self.shares(range(3)), self.output())
        # A stable ring: over a window, at most one evaluation per alarm
        # per interval (0.9 s at the least, with jitter) -- two agents on
        # one alarm would double it.
        evaluations = 'telemetry_alarm_database_evaluations_total'
        before = sum(self.gauge(n, evaluations) for n in range(3))
        started = time.monotonic()
        time.sleep(5)
        after = sum(self.gauge(n, evaluations) for n in range(3))
        window = time.monotonic() - started
        assert after - before <= ALARMS * (window / 0.9 + 2), (
            after - before, window)
        # kill -9: no goodbye; Redis forgets it after 6 s.
        self.agents[1][0].send_signal(signal.SIGKILL)
        self.agents[1][0].wait(10)
        killed = store.utcnow()
        assert base.wait_until(lambda: self.settled([0, 2]), 60), (
            self.shares([0, 2]), self.output())
        # Every alarm -- the dead agent's too -- is evaluated again.
        assert base.wait_until(lambda: all(
            (a['evaluate_timestamp'] or killed) > killed
            for a in self.db.list()), 30), [
                (a['name'], a['evaluate_timestamp']) for a in self.db.list()]
        states = {a['name']: a['state'] for a in self.db.list()}
        assert states == {'a%d' % i: 'alarm' if i > 5 else 'ok'
                          for i in range(ALARMS)}, states
