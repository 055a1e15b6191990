"""The embedded SQLite store shared by several processes, the way it lost
data once (issue 20, item 0): the agent writes and evaluates an alarm on the
default store while other processes -- the CLI reading measures, evaluating
the alarm and publishing samples -- open and close the same file in a loop.
Every sample any of them published is there afterwards, and the agent's
WAL is never deleted under its live connection.
"""

import json
import os
import sqlite3
import textwrap
import threading
import time

from tests import base
from tests.functional import test_agent

ALARMS = '''
alarms:
  - name: busy
    evaluation_interval: 1
    rule:
      meter: host.memory.used
      aggregation: count
      granularity: 5
      evaluation_periods: 1
      comparison_operator: ge
      threshold: 1
    alarm_actions: ["log://"]
'''

CLI_BATCHES = 25
PER_BATCH = 4


def deleted_files(pid):
    """Files the process holds open that were unlinked under it."""
    found = []
    fd_dir = '/proc/%d/fd' % pid
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return found
    for name in names:
        try:
            target = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if 'sqlite' in target and target.endswith('(deleted)'):
            found.append(target)
    return found


class TestSharedDefaultStore(test_agent.AgentTest):

    def test_agent_cli_and_evaluator_on_one_file_lose_nothing(self):
        alarms = self.write_file('alarms.yaml', textwrap.dedent(ALARMS))
        with open(self.conf_file, 'a') as f:
            f.write('[alarms]\ndefinitions_file = %s\n' % alarms)
        self.start()
        db_path = os.path.join(self.tmpdir, 'data', 'telemetry_lib',
                               'telemetry.sqlite')
        host = os.uname().nodename
        # Readable once the first poll is committed (the file exists a
        # moment before): only then do the readers' failures mean anything.
        assert base.wait_until(lambda: self.cli(
            'measures', 'show', 'host.memory.used', '--resource', host,
            '-f', 'json').returncode == 0, 60), self.output()

        stop = threading.Event()
        seen_deleted = []
        failures = []

        def watch():
            while not stop.is_set():
                seen_deleted.extend(deleted_files(self.proc.pid))
                stop.wait(0.05)

        def read_loop(args):
            while not stop.is_set():
                out = self.cli(*args)
                if out.returncode not in (0,):
                    failures.append((args, out.returncode, out.stderr))

        watcher = threading.Thread(target=watch)
        readers = [
            threading.Thread(target=read_loop, args=(
                ('measures', 'show', 'host.memory.used', '--resource',
                 host, '-f', 'json'),)),
            threading.Thread(target=read_loop, args=(
                ('--config-file', self.conf_file, 'alarm', 'evaluate',
                 'busy', '-f', 'json'),)),
        ]
        for t in [watcher] + readers:
            t.start()
        try:
            published = 0
            # Recent: older ones would fall to the store's retention.
            t0 = time.time() - 600
            for batch in range(CLI_BATCHES):
                samples = [{'name': 'cli.probe', 'type': 'gauge',
                            'unit': '1', 'volume': batch * PER_BATCH + i,
                            'resource_id': 'r%d' % i,
                            'timestamp': t0 + batch}
                           for i in range(PER_BATCH)]
                out = self.cli('sample', 'publish', 'sqlite://', '-f',
                               'json', stdin=json.dumps(samples))
                assert out.returncode == 0, out.stderr
                published += len(samples)
        finally:
            stop.set()
            for t in [watcher] + readers:
                t.join(120)
        assert not failures, failures[:3]
        assert not seen_deleted, sorted(set(seen_deleted))

        # The agent's own count of what it stored, read before it stops.
        page = self.get('/metrics')[1]
        assert self.stop() == 0, self.output()
        agent_published = sum(
            float(line.rsplit(' ', 1)[1]) for line in page.splitlines()
            if line.startswith('telemetry_delivery_published_total{')
            and 'sqlite://' in line)
        assert agent_published > 0, page

        db = sqlite3.connect(db_path)
        self.addCleanup(db.close)
        cli_rows = db.execute(
            'SELECT COUNT(*) FROM measure JOIN meter ON meter.id = '
            'measure.meter WHERE meter.name = ?', ('cli.probe',)
        ).fetchone()[0]
        assert cli_rows == published == CLI_BATCHES * PER_BATCH
        host_rows = db.execute(
            'SELECT COUNT(*) FROM measure JOIN meter ON meter.id = '
            'measure.meter WHERE meter.name LIKE ?', ('host.%',)
        ).fetchone()[0]
        # Everything the agent had counted as published when the page was
        # read is stored (it went on polling until it stopped).
        assert host_rows >= agent_published, (host_rows, agent_published)
        evaluations = self.cli('--config-file', self.conf_file, 'alarm',
                               'history', 'busy', '-f', 'json')
        assert evaluations.returncode == 0, evaluations.stderr
        assert any(h['Current'] == 'alarm'
                   for h in json.loads(evaluations.stdout))
