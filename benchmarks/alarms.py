"""Alarms: one evaluation cycle of many threshold alarms over SQLite, and
the Alertmanager receiver's latency from webhook to action request.

* Evaluation: N resources each with a day of 10 s data (8,640 measures)
  in the embedded SQLite storage, N threshold alarms (mean over 3 periods
  of 60 s), one cycle timed (wall and CPU). Target: under 1 s for 1,000
  alarms. The peer is the bare minimum of the same cycle: each alarm's
  raw measures of the window fetched by primary key and averaged in
  Python, with no rule, state or history (Aodh does not run here).
* Receiver: webhooks posted one after another to the receiver on a real
  HTTP endpoint, each routed to an http:// action whose peer (standing in
  for Heat, answering at once) records when the request arrives: the
  latency webhook sent -> action request received, p50/p99, and CPU per
  webhook in our process. Target: p99 under 50 ms.

Run: ``tox -e bench`` or ``python benchmarks/alarms.py``.
"""

import argparse
import datetime
import http.server
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

from oslo_config import cfg

from telemetry_lib.alarm import actions
from telemetry_lib.alarm import definitions
from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import receiver
from telemetry_lib.alarm import state
from telemetry_lib import delivery
from telemetry_lib.httpserver import GetServer
from telemetry_lib import opts
from telemetry_lib import Sample
from telemetry_lib.storage import base as storage_base

UTC = datetime.timezone.utc


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_conf(tmp):
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib')
    conf.set_override('state_path', tmp)
    return conf


def bench_evaluation(conf, tmp, n):
    url = 'sqlite://%s/bench.sqlite' % tmp
    storage = storage_base.load_storage(conf, url)
    now = datetime.datetime.now(UTC).replace(second=0, microsecond=0)
    start = now - datetime.timedelta(days=1)
    print('writing %d resources x 8,640 measures...' % n, file=sys.stderr)
    for r in range(n):
        storage.write([Sample('cpu_util', 'gauge', '%', (i % 100),
                              resource_id='vm-%d' % r,
                              timestamp=start + datetime.timedelta(
                                  seconds=10 * i)) for i in range(8640)])
    data = {'alarms': [{
        'name': 'a%d' % r, 'rule': {
            'meter': 'cpu_util', 'resource_id': 'vm-%d' % r,
            'granularity': 60, 'evaluation_periods': 3, 'threshold': 50,
            'storage': url},
        'alarm_actions': ['log://']} for r in range(n)]}
    definition = definitions.AlarmsDefinition.from_data(data)
    store = state.StateStore('%s/alarms.sqlite' % tmp)
    storages = evaluator.Storages(conf)
    queued = []

    class Sink:
        def put(self, items):
            queued.extend(items)
            return len(items)
    ev = evaluator.Evaluator(definition, store, storages,
                             lambda u: Sink())
    at = now
    results = []
    for _ in range(3):
        c0, w0 = cpu(), time.perf_counter()
        for alarm in definition.alarms.values():
            ev.evaluate(alarm, at)
        results.append((time.perf_counter() - w0, cpu() - c0))
    wall, used = min(results)
    assert ev.errors == 0 and ev.evaluations == 3 * n, (ev.errors,
                                                        ev.evaluations)
    verdict, _ = ev.evaluate(next(iter(definition.alarms.values())), at)
    assert len(verdict.reason_data['values']) == 3, verdict

    # The peer: raw rows of the window, averaged in Python.
    import sqlite3
    db = sqlite3.connect(storage.path)
    c0, w0 = cpu(), time.perf_counter()
    lo = (now - datetime.timedelta(minutes=3)).timestamp()
    for r in range(n):
        rows = db.execute(
            'SELECT ts, value FROM measure WHERE meter = (SELECT id FROM '
            'meter WHERE name = ?) AND resource = (SELECT id FROM resource '
            'WHERE resource_id = ?) AND ts >= ? AND ts < ?',
            ('cpu_util', 'vm-%d' % r, lo, now.timestamp())).fetchall()
        buckets = {}
        for ts, value in rows:
            buckets.setdefault(int(ts // 60), []).append(value)
        [statistics.mean(v) for v in buckets.values()]
    peer = (time.perf_counter() - w0, cpu() - c0)
    storages.close()
    store.close()
    return wall, used, peer, len(queued)


class _Peer(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    arrivals = {}

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers[
            'Content-Length'])))
        self.arrivals[body['reason_data']['labels']['n']] = \
            time.perf_counter()
        self.send_response(200)
        self.send_header('Content-Length', '0')
        self.end_headers()


def bench_receiver(conf, tmp, n):
    peer = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Peer)
    threading.Thread(target=peer.serve_forever, daemon=True).start()
    routes_path = os.path.join(tmp, 'routes.yaml')
    with open(routes_path, 'w') as f:
        f.write('routes:\n  - name: r\n    match: {severity: up}\n'
                '    action: "http://127.0.0.1:%d/{n}?max_latency=0&'
                'spool=false"\n    repeat: 0\n' % peer.server_address[1])
    conf.set_override('bearer_tokens', ['t'], group='receiver')
    pool = delivery.DeliveryPool(conf, factory=actions.build)
    # As in the agent: each decision is kept in the alarm state file.
    store = state.StateStore(os.path.join(tmp, 'receiver.sqlite'))
    rcv = receiver.Receiver(conf, receiver.load_routes(routes_path),
                            lambda u: pool.acquire(u, 'actions').start(),
                            store=store)
    server = GetServer('127.0.0.1', 0, lambda p, a: None,
                       post=lambda p, h, b: rcv.handle(h, b)).start()
    sent = {}
    c0, w0 = cpu(), time.perf_counter()
    for i in range(n):
        body = json.dumps({'version': '4', 'groupKey': 'g%d' % i,
                           'alerts': [{'status': 'firing', 'labels': {
                               'severity': 'up', 'n': str(i % 20)},
                               'fingerprint': str(i)}]}).encode()
        req = urllib.request.Request(server.url + '/alertmanager',
                                     data=body, headers={
                                         'Authorization': 'Bearer t'})
        sent[i] = time.perf_counter()
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        key = str(i % 20)
        deadline = time.monotonic() + 5
        while _Peer.arrivals.get(key, 0) < sent[i] and \
                time.monotonic() < deadline:
            time.sleep(0.0002)
        sent[i] = _Peer.arrivals[key] - sent[i]
    wall, used = time.perf_counter() - w0, cpu() - c0
    lat = sorted(sent.values())
    server.close()
    pool.close(2)
    store.close()
    peer.shutdown()
    return (lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99) - 1] * 1000,
            n / wall, used / n * 1e6)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--alarms', type=int, default=1000)
    parser.add_argument('--webhooks', type=int, default=500)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix='telemetry-bench-alarms-')
    conf = make_conf(tmp)
    wall, used, peer, queued = bench_evaluation(conf, tmp, args.alarms)
    print('\nalarm evaluation, %d threshold alarms (mean of 3 x 60 s) over '
          'SQLite, a day of 10 s data each' % args.alarms)
    print('%-34s %10s %10s %14s' % ('', 'wall s', 'CPU s', 'CPU us/alarm'))
    print('%-34s %10.3f %10.3f %14.0f' % (
        'telemetry_lib evaluator', wall, used, used / args.alarms * 1e6))
    print('%-34s %10.3f %10.3f %14.0f' % (
        'peer: bare query + Python mean', peer[0], peer[1],
        peer[1] / args.alarms * 1e6))
    print('target: one cycle under 1 s: %s'
          % ('met' if wall < 1 else 'NOT met'))
    p50, p99, rate, cpu_us = bench_receiver(conf, tmp, args.webhooks)
    print('\nreceiver: %d webhooks, webhook sent -> action request '
          'received' % args.webhooks)
    print('%-34s %10s %10s %12s %14s' % ('', 'p50 ms', 'p99 ms',
                                         'webhooks/s', 'CPU us/webhook'))
    print('%-34s %10.2f %10.2f %12.0f %14.0f' % (
        'telemetry_lib receiver', p50, p99, rate, cpu_us))
    print('target: p99 under 50 ms: %s' % ('met' if p99 < 50 else
                                           'NOT met'))


if __name__ == '__main__':
    main()
