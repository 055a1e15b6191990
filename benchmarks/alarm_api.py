"""The alarming API and the alarm database's evaluation at scale, beside
Aodh's own evaluator.

* API: ``telemetry-api`` (noauth) on a fresh PostgreSQL database; 10,000
  alarms created over HTTP by 4 client threads (100 projects); then
  project lists (100 alarms each) and an admin's ``all_projects`` page of
  1,000. Latency p50/p99 per request, and the server's CPU per request
  (read from /proc).
* Evaluation: the 10,000 alarms (prometheus type, one series each among
  100 in the test Prometheus, every alarm's query text its own) split by a
  hash ring among 3 evaluator processes, as 3 agents split them; one cycle
  each, at once, as the evaluator's loop runs it (its turns' queries asked
  a hundred to a request): wall time and CPU per agent.
* Per evaluation, beside Aodh: the same 1,000 alarms evaluated by Aodh 23's
  PrometheusEvaluator (tools/aodh.sh's virtualenv; one request an alarm)
  and by ours (rule, state store, the batched time write), the steady
  state after a warm-up pass; CPU microseconds per evaluation each, and
  the Prometheus server's CPU over each run. Target: ours >= 5x fewer.

Needs tools/sqldb.sh, tools/prometheus.sh and tools/aodh.sh started.
Run: ``python benchmarks/alarm_api.py [--alarms 10000]``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests
import sqlalchemy as sa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from telemetry_lib.alarm.db import store  # noqa: E402
from tests import base  # noqa: E402

PG = 'postgresql+psycopg2://postgres@127.0.0.1:5432/%s'
PROM = 'prometheus://127.0.0.1:%s' % os.environ.get('TELEMETRY_PROM_PORT',
                                                    '19090')
PUSH = 'http://127.0.0.1:%s' % os.environ.get('TELEMETRY_PUSHGATEWAY_PORT',
                                              '19091')
PROM_PID = '/var/tmp/telemetry-prometheus/prometheus.pid'
AODH = os.environ.get('TELEMETRY_AODH_PYTHON',
                      '/var/tmp/telemetry-aodh-venv/bin/python')
DRIVER = os.path.join(os.path.dirname(HERE), 'tests', 'functional',
                      'aodh_driver.py')
SERIES = 100


def proc_cpu(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def prom_cpu():
    """CPU seconds of the test Prometheus (tools/prometheus.sh), or 0."""
    try:
        with open(PROM_PID) as f:
            return proc_cpu(int(f.read()))
    except (OSError, ValueError):
        return 0.0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def rule(i, job):
    # Every alarm's query its own (the i!= matcher changes the text, not
    # the answer): no two alarms share an answer, on either side.
    return {'query': 'tl_bench{job="%s",i="%d",i!="a%d"}' % (
        job, i % SERIES, i),
        'threshold': 50.0, 'comparison_operator': 'gt'}


def bench_api(url, count, tmp, job):
    port = base.free_port()
    conf = os.path.join(tmp, 'api.conf')
    with open(conf, 'w') as f:
        f.write('[api]\nauth_strategy = noauth\nport = %d\nworkers = 8\n'
                '[alarms]\ndatabase_connection = %s\n' % (port, url))
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), 'telemetry-api'),
         '--config-file', conf], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    api = 'http://127.0.0.1:%d/v2/alarms' % port
    try:
        assert base.wait_until(lambda: _up(api), 60), 'API did not start'
        created, lock = [], threading.Lock()
        cpu0 = proc_cpu(server.pid)

        def worker(k):
            session = requests.Session()
            for i in range(k, count, 4):
                project = 'p%d' % (i % 100)
                body = {'name': 'a%d' % i, 'type': 'prometheus',
                        'prometheus_rule': rule(i, job),
                        'alarm_actions': ['http://127.0.0.1:9/hook']}
                t = time.monotonic()
                resp = session.post(api, json=body, headers={
                    'X-User-Id': 'u', 'X-Project-Id': project,
                    'X-Roles': 'member'}, timeout=60)
                took = time.monotonic() - t
                assert resp.status_code == 201, resp.text
                with lock:
                    created.append(took)
        threads = [threading.Thread(target=worker, args=(k,))
                   for k in range(4)]
        wall = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - wall
        create_cpu = proc_cpu(server.pid) - cpu0
        lists, pages = [], []
        session = requests.Session()
        cpu0 = proc_cpu(server.pid)
        for i in range(200):
            t = time.monotonic()
            resp = session.get(api, headers={
                'X-User-Id': 'u', 'X-Project-Id': 'p%d' % (i % 100),
                'X-Roles': 'member'}, timeout=60)
            lists.append(time.monotonic() - t)
            assert len(resp.json()) == count // 100
        list_cpu = proc_cpu(server.pid) - cpu0
        for i in range(20):
            t = time.monotonic()
            resp = session.get(
                api + '?q.field=all_projects&q.op=eq&q.value=true&limit='
                '1000', headers={'X-User-Id': 'a', 'X-Project-Id': 'a',
                                 'X-Roles': 'admin'}, timeout=60)
            pages.append(time.monotonic() - t)
            assert len(resp.json()) == 1000
        print('API (telemetry-api, PostgreSQL, noauth):')
        print('  create  %6d alarms in %.1fs: p50 %.1f ms, p99 %.1f ms, '
              'server CPU %.0f us/request' % (
                  count, wall, 1000 * statistics.median(created),
                  1000 * pct(created, 0.99), 1e6 * create_cpu / count))
        print('  list    one project (%d alarms), 200 times: p50 %.1f ms, '
              'p99 %.1f ms, server CPU %.0f us/request' % (
                  count // 100, 1000 * statistics.median(lists),
                  1000 * pct(lists, 0.99), 1e6 * list_cpu / 200))
        print('  list    all_projects, limit 1000, 20 times: p50 %.1f ms, '
              'p99 %.1f ms' % (1000 * statistics.median(pages),
                               1000 * pct(pages, 0.99)))
    finally:
        server.terminate()
        server.wait(30)


def _up(api):
    try:
        return requests.get(api.rsplit('/v2', 1)[0] + '/', timeout=2).ok
    except requests.RequestException:
        return False


def evaluator_cycle(url, member, members):
    """One evaluation cycle of this member's share (a child process)."""
    from tooz import hashring

    from telemetry_lib.alarm import dbalarms
    from telemetry_lib.alarm import evaluator
    from telemetry_lib.storage import base as storage_base
    conf = _conf()
    ring = hashring.HashRing(['m%d' % m for m in range(members)])
    me = 'm%d' % member

    def share(group, ids):
        return [i for i in ids if me in ring.get_nodes(i.encode())]
    db = store.AlarmDB(url).start()
    alarms = dbalarms.DatabaseAlarms(db, 60, 3600, share)
    prom = storage_base.load_storage(conf, PROM)
    ev = evaluator.Evaluator(alarms, alarms, lambda u=None: prom,
                             lambda u: _Null())
    mine = list(alarms.alarms.values())
    ev.evaluate_all(mine)                   # warm-up: states settle
    alarms.flush()
    # As the evaluator's loop does: a turn's queries asked together.
    cpu, wall = time.process_time(), time.monotonic()
    ev.evaluate_all(mine)
    alarms.flush()
    print(json.dumps({'alarms': len(mine), 'cpu': time.process_time() - cpu,
                      'wall': time.monotonic() - wall}))


class _Null:
    def put(self, items):
        pass


def _conf():
    from oslo_config import cfg

    from telemetry_lib import opts
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib')
    return conf


def bench_cycle(url):
    procs = [subprocess.Popen([sys.executable, __file__, '--cycle', url,
                               '--member', str(m)], stdout=subprocess.PIPE,
                              text=True) for m in range(3)]
    print('Evaluation cycle, 3 agents at once (hash ring), steady state:')
    for m, p in enumerate(procs):
        out = json.loads(p.communicate(timeout=1800)[0])
        print('  agent %d: %5d alarms, cycle %.1fs, CPU %.1fs (%.0f us '
              'per evaluation)' % (m, out['alarms'], out['wall'],
                                   out['cpu'],
                                   1e6 * out['cpu'] / max(1, out['alarms'])))


def bench_versus_aodh(url, count, job):
    db = store.AlarmDB(url).start()
    rows = db.list(limit=count)
    db.close()
    cases = [{'id': r['alarm_id'], 'type': 'prometheus', 'rule': r['rule'],
              'state': 'insufficient data'} for r in rows]
    prom0 = prom_cpu()
    out = subprocess.run([AODH, DRIVER], input=json.dumps({
        'bench': True, 'prometheus': PROM.split('//', 1)[1],
        'gnocchi': 'http://127.0.0.1:18041', 'cases': cases}),
        capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = json.loads(out.stdout)
    theirs_prom = prom_cpu() - prom0
    ids = {r['alarm_id'] for r in rows}
    prom0 = prom_cpu()
    ours = json.loads(subprocess.run(
        [sys.executable, __file__, '--cycle', url, '--member', '0',
         '--members', '1', '--only', ','.join(sorted(ids))],
        capture_output=True, text=True, timeout=1800).stdout)
    ours_prom = prom_cpu() - prom0
    a = 1e6 * theirs['cpu'] / len(cases)
    o = 1e6 * ours['cpu'] / ours['alarms']
    print('Per evaluation, %d prometheus alarms, steady state, CPU (and '
          'the Prometheus server\'s CPU over the whole run, warm-up '
          'included):' % len(cases))
    print('  Aodh 23 PrometheusEvaluator  %7.0f us  (%.2fs wall)  '
          'server %.2fs' % (a, theirs['wall'], theirs_prom))
    print('  telemetry_lib                %7.0f us  (%.2fs wall)  '
          'server %.2fs  -> %.1fx' % (o, ours['wall'], ours_prom, a / o))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--alarms', type=int, default=10000)
    parser.add_argument('--versus', type=int, default=1000)
    parser.add_argument('--cycle')
    parser.add_argument('--member', type=int, default=0)
    parser.add_argument('--members', type=int, default=3)
    parser.add_argument('--only')
    args = parser.parse_args()
    if args.cycle:
        if args.only:
            only = set(args.only.split(','))
            from telemetry_lib.alarm import dbalarms
            real = dbalarms.DatabaseAlarms.load

            def load(self):
                real(self)
                self._alarms = {k: v for k, v in self._alarms.items()
                                if k in only}
            dbalarms.DatabaseAlarms.load = load
        return evaluator_cycle(args.cycle, args.member, args.members)
    name = 'telemetry_bench_%s' % uuid.uuid4().hex[:8]
    admin = sa.create_engine(PG % 'postgres', isolation_level='AUTOCOMMIT')
    with admin.connect() as conn:
        conn.execute(sa.text('CREATE DATABASE %s' % name))
    job = 'bench-%s' % uuid.uuid4().hex[:6]
    body = ''.join('tl_bench{i="%d"} %d\n' % (i, i) for i in range(SERIES))
    requests.put('%s/metrics/job/%s' % (PUSH, job), data=body,
                 timeout=10).raise_for_status()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bench_api(PG % name, args.alarms, tmp, job)
        bench_cycle(PG % name)
        bench_versus_aodh(PG % name, args.versus, job)
    finally:
        requests.delete('%s/metrics/job/%s' % (PUSH, job), timeout=10)
        with admin.connect() as conn:
            conn.execute(sa.text(
                'SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                'WHERE datname = :n'), {'n': name})
            conn.execute(sa.text('DROP DATABASE %s' % name))


if __name__ == '__main__':
    main()
