#!/usr/bin/env python3
"""Soak the agent: publishers that flap, reloads between two pipelines,
connection floods, and the balance and /healthz checked throughout.

Runs ``telemetry-agent`` (this checkout) for ``--minutes`` with the host
pollsters every 0.5 s into a file, an HTTP collector that this script stops
and starts every ``--flap`` seconds (spooled), and the same collector
without a spool. Every ``--reload`` seconds (60) it switches the pipeline
file between that one and one without the spooled publisher and sends
SIGHUP, so a spool is retired and taken back again and again. Every
``--flood`` seconds (300) it opens 300 idle connections and 8 slow-loris
clients to the agent's HTTP port for 20 s and probes ``/healthz`` during
it. Every 2 s it scrapes ``/metrics`` and checks, for every publisher,
``received + recovered == published + dropped + pending``; reads
``/healthz`` (answered within 1 s? naming only publishers of the running
pipeline?); and reads the agent's RSS. At the end it prints a table and
exits 1 if any scrape did not balance, ``/healthz`` did not answer in time
or named a removed publisher, a reload failed, or RSS grew by more than
``--rss-growth`` MB after the first five minutes.

    python tools/soak.py --minutes 30

Not run in CI (it takes as long as you ask).
"""

import argparse
import collections
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

_SERIES = re.compile(r'^telemetry_delivery_(received|published|pending|'
                     r'dropped)(?:_total)?\{(.*)\} (\S+)$')


class Collector:
    """An HTTP collector that counts the items it accepted."""

    def __init__(self, port):
        self.port = port
        self.items = 0
        self.lock = threading.Lock()
        self._server = None

    def start(self):
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers['Content-Length']))
                with collector.lock:
                    collector.items += len(json.loads(body))
                self.send_response(200)
                self.send_header('Content-Length', '0')
                self.end_headers()

        self._server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever,
                         daemon=True).start()

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port,
                                timeout=10) as r:
        page = r.read().decode()
    pubs = collections.defaultdict(lambda: collections.Counter())
    for line in page.splitlines():
        m = _SERIES.match(line)
        if m:
            what, labels, value = m.groups()
            name = re.search(r'publisher="([^"]*)"', labels).group(1)
            pubs[name][what] += float(value)
    return pubs


def rss_mb(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return 0.0


def healthz(port, timeout=1.0):
    """``(status or None, problems, seconds)``."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen('http://127.0.0.1:%d/healthz' % port,
                                    timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except OSError:
        return None, [], time.monotonic() - started
    try:
        problems = json.loads(body).get('problems', [])
    except ValueError:
        problems = ['(not JSON)']
    return status, problems, time.monotonic() - started


class Flood:
    """300 idle connections and 8 slow-loris clients, for ``seconds``."""

    def __init__(self, port, seconds=20.0):
        self.port, self.seconds = port, seconds
        self.stop = threading.Event()

    def run(self):
        idle = []
        for _ in range(300):
            try:
                idle.append(socket.create_connection(
                    ('127.0.0.1', self.port), timeout=5))
            except OSError:
                pass
        loris = threading.Thread(target=self._loris, daemon=True)
        loris.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        loris.join(10)
        for s in idle:
            s.close()

    def _loris(self):
        socks = []
        for _ in range(8):
            try:
                s = socket.create_connection(('127.0.0.1', self.port),
                                             timeout=5)
                s.sendall(b'GET /healthz HTTP/1.1\r\nX-')
                socks.append(s)
            except OSError:
                pass
        while not self.stop.wait(1.0):
            for s in socks:
                try:
                    s.sendall(b'a')
                except OSError:
                    pass
        for s in socks:
            s.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--flap', type=float, default=20.0,
                        help='Seconds the collector is up, then down.')
    parser.add_argument('--reload', type=float, default=60.0,
                        help='Seconds between reloads (two pipelines in '
                             'turn).')
    parser.add_argument('--flood', type=float, default=300.0,
                        help='Seconds between connection floods.')
    parser.add_argument('--rss-growth', type=float, default=20.0)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix='telemetry-soak-')
    agent_port, peer_port = free_port(), free_port()
    peer = Collector(peer_port)
    peer.start()
    with open(os.path.join(tmp, 'polling.yaml'), 'w') as f:
        f.write('sources:\n  - name: host\n    interval: 0.5\n'
                '    meters: ["host.*"]\n')
    sinks = {
        'file': 'file://%s/out.json?max_bytes=50000000&backup_count=1'
                % tmp,
        'spooled': 'http://127.0.0.1:%d/a?spool=true&spool_dir=%s/spool&'
                   'max_retries=-1&retry_max_delay=2&max_queue_samples=20000'
                   % (peer_port, tmp),
        'memory': 'http://127.0.0.1:%d/b?max_retries=-1&retry_max_delay=2&'
                  'max_queue_samples=5000' % peer_port}
    pipelines = [('file', 'spooled', 'memory'), ('file', 'memory')]

    def pipeline_text(names):
        return 'sources:\n  - name: all\n    meters: ["*"]\n' \
            '    sinks: [%s]\nsinks:\n%s' % (', '.join(names), ''.join(
                '  - name: %s\n    publishers: ["%s"]\n' % (n, sinks[n])
                for n in names))
    pipeline = os.path.join(tmp, 'pipeline.yaml')
    with open(pipeline, 'w') as f:
        f.write(pipeline_text(pipelines[0]))
    conf = os.path.join(tmp, 'agent.conf')
    with open(conf, 'w') as f:
        f.write('[agent]\nhttp_port = %d\nshutdown_timeout = 10\n'
                '[polling]\ncfg_file = %s/polling.yaml\n'
                '[pipeline]\npipeline_cfg_file = %s\n'
                % (agent_port, tmp, pipeline))
    log = open(os.path.join(tmp, 'agent.log'), 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'telemetry_lib.cmd.agent',
                             '--config-file', conf], stdout=log,
                            stderr=subprocess.STDOUT,
                            env=dict(os.environ, XDG_DATA_HOME=tmp))
    started = time.monotonic()
    end = started + args.minutes * 60
    scrapes = unbalanced = reloads = 0
    probes = slow = untruthful = flood_probes = 0
    worst = 0.0
    current = 0
    last_reload = started
    rss = []
    next_flap, up = started + args.flap, True
    next_reload = started + args.reload
    next_flood = started + args.flood
    flood = None
    while healthz(agent_port)[0] is None and proc.poll() is None and \
            time.monotonic() < started + 30:
        time.sleep(0.2)
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_flap:
                (peer.stop if up else peer.start)()
                up = not up
                next_flap = now + args.flap
            if now >= next_reload:
                current = 1 - current
                with open(pipeline + '.tmp', 'w') as f:
                    f.write(pipeline_text(pipelines[current]))
                os.replace(pipeline + '.tmp', pipeline)
                proc.send_signal(signal.SIGHUP)
                reloads += 1
                last_reload = now
                next_reload = now + args.reload
            if now >= next_flood and flood is None:
                flood = Flood(agent_port)
                threading.Thread(target=flood.run, daemon=True).start()
                next_flood = now + args.flood
            if flood is not None and flood.stop.is_set():
                flood = None
            for name, c in scrape(agent_port).items():
                scrapes += 1
                if c['received'] != c['published'] + c['dropped'] + \
                        c['pending']:
                    unbalanced += 1
                    print('UNBALANCED %s: %s' % (name, dict(c)),
                          flush=True)
            status, problems, took = healthz(agent_port)
            probes += 1
            flood_probes += flood is not None
            worst = max(worst, took)
            if status is None:
                slow += 1
                print('HEALTHZ no answer within 1 s (%s)'
                      % ('flood' if flood else 'quiet'), flush=True)
            # A reload takes effect within a poll of the signal: right
            # after one, a problem of the pipeline just left is not untrue.
            live = [sinks[n].split('?')[0] for n in pipelines[current]]
            if now - last_reload > 5:
                for problem in problems:
                    if any(problem.startswith(u) for u in live):
                        continue
                    untruthful += 1
                    print('HEALTHZ names %s' % problem[:120], flush=True)
            rss.append((now - started, rss_mb(proc.pid)))
            time.sleep(2)
        if not up:
            peer.start()
        time.sleep(10)              # let the collector catch up
        final = scrape(agent_port)
        page = urllib.request.urlopen(
            'http://127.0.0.1:%d/metrics' % agent_port, timeout=10
        ).read().decode()
        failed_reloads = sum(
            float(line.rsplit(' ', 1)[1]) for line in page.splitlines()
            if line.startswith('telemetry_agent_reloads_total{')
            and 'result="failed"' in line)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        peer.stop()
    settled = [mb for t, mb in rss if t >= 300] or [mb for _, mb in rss]
    growth = settled[-1] - settled[0]
    print('\nsoak: %.0f min, collector flapping every %.0f s, %d reloads '
          '(%d failed), floods every %.0f s, agent exit %d'
          % (args.minutes, args.flap, reloads, failed_reloads, args.flood,
             code))
    print('%-58s %10s %10s %8s %8s' % (
        'publisher', 'received', 'published', 'dropped', 'pending'))
    for name, c in sorted(final.items()):
        print('%-58s %10d %10d %8d %8d' % (name[:58], c['received'],
                                           c['published'], c['dropped'],
                                           c['pending']))
    print('collector accepted %d items (at least once)' % peer.items)
    print('scrapes checked: %d publisher snapshots, unbalanced: %d'
          % (scrapes, unbalanced))
    print('/healthz: %d probes (%d during floods), %d not answered within '
          '1 s, slowest %.3f s, %d naming a publisher not running'
          % (probes, flood_probes, slow, worst, untruthful))
    print('RSS MB: start %.1f, after 5 min %.1f, min %.1f, max %.1f, end '
          '%.1f (growth after 5 min %.1f)'
          % (rss[0][1], settled[0], min(m for _, m in rss),
             max(m for _, m in rss), rss[-1][1], growth))
    print('agent log: %s' % log.name)
    return 1 if (unbalanced or growth > args.rss_growth or code or slow
                 or untruthful or failed_reloads) else 0


if __name__ == '__main__':
    sys.exit(main())
