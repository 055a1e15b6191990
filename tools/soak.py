#!/usr/bin/env python3
"""Soak the agent: a publisher that flaps, reloads, and the balance checked
at every scrape.

Runs ``telemetry-agent`` (this checkout) for ``--minutes`` with the host
pollsters every 0.5 s into three publishers: a file, an HTTP collector that
this script stops and starts every ``--flap`` seconds (spooled), and the
same collector without a spool. Every 2 s it scrapes ``/metrics`` and
checks, for every publisher,
``received == published + dropped + pending``; it reads the agent's RSS
from /proc; every 5 minutes it sends SIGHUP. At the end it prints a table
and exits 1 if any scrape did not balance or if RSS grew by more than
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
import subprocess
import sys
import tempfile
import threading
import time
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
    import socket
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--flap', type=float, default=20.0,
                        help='Seconds the collector is up, then down.')
    parser.add_argument('--rss-growth', type=float, default=20.0)
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix='telemetry-soak-')
    agent_port, peer_port = free_port(), free_port()
    peer = Collector(peer_port)
    peer.start()
    with open(os.path.join(tmp, 'polling.yaml'), 'w') as f:
        f.write('sources:\n  - name: host\n    interval: 0.5\n'
                '    meters: ["host.*"]\n')
    pipeline = os.path.join(tmp, 'pipeline.yaml')
    with open(pipeline, 'w') as f:
        f.write('''sources:
  - name: all
    meters: ["*"]
    sinks: [file, spooled, memory]
sinks:
  - name: file
    publishers: ["file://%(tmp)s/out.json?max_bytes=50000000&backup_count=1"]
  - name: spooled
    publishers: ["http://127.0.0.1:%(peer)d/a?spool=true&spool_dir=%(tmp)s\
/spool&max_retries=-1&retry_max_delay=2&max_queue_samples=20000"]
  - name: memory
    publishers: ["http://127.0.0.1:%(peer)d/b?max_retries=-1&\
retry_max_delay=2&max_queue_samples=5000"]
''' % {'tmp': tmp, 'peer': peer_port})
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
    rss = []
    next_flap, up = started + args.flap, True
    next_reload = started + 300
    time.sleep(3)
    try:
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= next_flap:
                (peer.stop if up else peer.start)()
                up = not up
                next_flap = now + args.flap
            if now >= next_reload:
                proc.send_signal(signal.SIGHUP)
                reloads += 1
                next_reload = now + 300
            for name, c in scrape(agent_port).items():
                scrapes += 1
                if c['received'] != c['published'] + c['dropped'] + \
                        c['pending']:
                    unbalanced += 1
                    print('UNBALANCED %s: %s' % (name, dict(c)),
                          flush=True)
            rss.append((now - started, rss_mb(proc.pid)))
            time.sleep(2)
        if not up:
            peer.start()
        time.sleep(10)              # let the collector catch up
        final = scrape(agent_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        peer.stop()
    settled = [mb for t, mb in rss if t >= 300] or [mb for _, mb in rss]
    growth = settled[-1] - settled[0]
    print('\nsoak: %.0f min, collector flapping every %.0f s, %d reloads, '
          'agent exit %d' % (args.minutes, args.flap, reloads, code))
    print('%-58s %10s %10s %8s %8s' % (
        'publisher', 'received', 'published', 'dropped', 'pending'))
    for name, c in sorted(final.items()):
        print('%-58s %10d %10d %8d %8d' % (name[:58], c['received'],
                                           c['published'], c['dropped'],
                                           c['pending']))
    print('collector accepted %d items (at least once)' % peer.items)
    print('scrapes checked: %d publisher snapshots, unbalanced: %d'
          % (scrapes, unbalanced))
    print('RSS MB: start %.1f, after 5 min %.1f, min %.1f, max %.1f, end '
          '%.1f (growth after 5 min %.1f)'
          % (rss[0][1], settled[0], min(m for _, m in rss),
             max(m for _, m in rss), rss[-1][1], growth))
    print('agent log: %s' % log.name)
    return 1 if unbalanced or growth > args.rss_growth or code else 0


if __name__ == '__main__':
    sys.exit(main())
