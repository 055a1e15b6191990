"""SIGHUP on a running agent whose pipeline has every kind of publisher that
holds something across a reload: a spooled amqp1:// (real RabbitMQ), a
prometheus:// exporter on its own port (and one on ``listen=``), a
gnocchi:// publisher (real Gnocchi on Ceph), tcp:// and udp:// to local
receivers (sg-core's socket framing), and an http:// collector that is
down. Samples flow throughout; nothing queued may be lost, every counter
continues, and a kept publisher keeps its connection.
"""

import collections
import os
import re
import signal
import socket
import textwrap
import threading
import urllib.request

from telemetry_lib.url import TelemetryURL
from tests import base
from tests.functional import http_peer
from tests.functional import rabbit
from tests.functional import test_agent
from tests.functional import test_gnocchi
from tests.functional.test_tcp import FrameReceiver

_SERIES = re.compile(r'^(telemetry_delivery_\w+?)(?:_total)?\{(.*)\} (\S+)$')


def deliveries(page):
    """``{publisher: {'received': n, 'published': n, 'pending': n,
    'dropped': {reason: n}}}`` from an agent's /metrics page.
    """
    found = collections.defaultdict(lambda: {'dropped': {}})
    for line in page.splitlines():
        m = _SERIES.match(line)
        if not m:
            continue
        name, labels, value = m.groups()
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        what = name[len('telemetry_delivery_'):]
        entry = found[labels['publisher']]
        if what == 'dropped':
            entry['dropped'][labels['reason']] = float(value)
        elif what in ('received', 'published', 'pending'):
            entry[what] = float(value)
    return dict(found)


def assert_balanced(page):
    for name, d in deliveries(page).items():
        assert d['received'] == (d['published'] + sum(d['dropped'].values())
                                 + d['pending']), (name, d)


def _refused(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=1).close()
        return False
    except OSError:
        return True


class TestReloadKeepsEverything(test_agent.AgentTest):

    def setUp(self):
        super().setUp()
        rabbit.MAIN.start()
        test_gnocchi.MAIN.start()
        self.queue = rabbit.unique_queue('reload')
        self.receiver = rabbit.Receiver(rabbit.MAIN, self.queue)
        self.addCleanup(self.receiver.close)
        self.exporter_port = base.free_port()
        self.peer = http_peer.HttpPeer()        # down until told
        self.addCleanup(self.peer.stop)
        self.spool_dir = os.path.join(self.tmpdir, 'spool')
        self.urls = {
            'amqp1': 'amqp1://%s/%s?spool=true&spool_dir=%s&max_latency=0'
                     % (rabbit.MAIN.url, self.queue, self.spool_dir),
            'exporter': 'prometheus://?port=%d' % self.exporter_port,
            'gnocchi': 'gnocchi://%s?max_latency=0&unmapped=generic'
                       % test_gnocchi.MAIN.host,
            'http': '%s?max_latency=0&max_retries=-1&retry_max_delay=0.2'
                    '&spool=true&spool_dir=%s' % (self.peer.url,
                                                  self.spool_dir),
            'file': 'file://%s/added.json?max_latency=0' % self.tmpdir,
        }
        self.tcp = FrameReceiver()
        self.addCleanup(self.tcp.close)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(('127.0.0.1', 0))
        self.addCleanup(self.udp.close)
        self.datagrams = []
        threading.Thread(target=self._read_udp, daemon=True).start()
        self.listen_port = base.free_port()
        self.urls.update({
            'tcp': 'tcp://127.0.0.1:%d?max_latency=0' % self.tcp.port,
            'udp': 'udp://127.0.0.1:%d?max_latency=0'
                   % self.udp.getsockname()[1],
            'listen': 'prometheus://?listen=127.0.0.1:%d'
                      % self.listen_port,
        })

    def _read_udp(self):
        while True:
            try:
                self.datagrams.append(self.udp.recv(65536))
            except OSError:
                return

    def pipeline(self, *names):
        sinks = ''.join('  - name: %s\n    publishers: ["%s"]\n'
                        % (n, self.urls[n]) for n in names)
        return ('sources:\n  - name: all\n    meters: ["host.*"]\n'
                '    sinks: [%s]\nsinks:\n%s' % (', '.join(names), sinks))

    def label(self, name):
        # As the agent prints it: masked, its query encoded.
        return '%s (samples)' % TelemetryURL.parse(self.urls[name])

    def stats(self, name):
        page = self.get('/metrics')[1]
        return deliveries(page).get(self.label(name))

    def scrape_exporter(self, port=None):
        with urllib.request.urlopen('http://127.0.0.1:%d/metrics'
                                    % (port or self.exporter_port),
                                    timeout=5) as r:
            return r.read().decode()

    def reload(self, text, count):
        with open(self.pipeline_path, 'w') as f:
            f.write(text)
        self.proc.send_signal(signal.SIGHUP)
        assert base.wait_until(lambda: test_agent.metric(
            self.get('/metrics')[1], 'telemetry_agent_reloads_total',
            result='ok') == count, 20), self.output()

    def test_reload_keeps_queues_spools_ports_and_counters(self):
        with open(self.conf_file, 'a') as f:
            f.write('[agent]\nhealthz_failing_after = 1\n')
        kept = ('amqp1', 'exporter', 'gnocchi', 'http', 'tcp', 'udp',
                'listen')
        self.start(self.pipeline(*kept))
        assert base.wait_until(lambda: all(
            (self.stats(n) or {}).get('published', 0) > 0
            for n in ('amqp1', 'exporter', 'gnocchi', 'tcp', 'udp',
                      'listen')), 60), self.output()
        assert '# TYPE' in self.scrape_exporter(self.listen_port)
        assert len(self.tcp.conns) == 1
        assert base.wait_until(lambda: self.stats('http')['pending'] > 0, 20)
        assert '# TYPE' in self.scrape_exporter()
        # Failing for more than healthz_failing_after (1 s) since its first
        # failure, which may be less than a second old now.
        assert base.wait_until(lambda: self.get('/healthz')[0] == 503, 20)
        status, body = self.get('/healthz')
        assert status == 503 and self.peer.url in body, body
        before = {n: self.stats(n) for n in self.urls if n != 'file'}
        assert_balanced(self.get('/metrics')[1])

        # 1. The same file again: everything is kept.
        self.reload(self.pipeline(*kept), 1)
        page = self.get('/metrics')[1]
        assert_balanced(page)
        after = deliveries(page)
        for n, old in before.items():
            new = after[self.label(n)]
            # Counters continue: nothing reset, nothing dropped.
            assert new['received'] >= old['received'], (n, old, new)
            assert new['published'] >= old['published'], (n, old, new)
            assert not new['dropped'], (n, new)
        assert after[self.label('http')]['pending'] >= \
            before['http']['pending']
        self.scrape_exporter()          # same port, still served
        self.scrape_exporter(self.listen_port)
        # The socket publishers kept their connection and go on sending.
        frames, grams = len(self.tcp.frames), len(self.datagrams)
        assert base.wait_until(lambda: len(self.tcp.frames) > frames
                               and len(self.datagrams) > grams, 30)
        assert len(self.tcp.conns) == 1

        # 2. A sink added (file), some removed (gnocchi, udp, listen).
        self.reload(self.pipeline('amqp1', 'exporter', 'http', 'file',
                                  'tcp'), 2)
        added = os.path.join(self.tmpdir, 'added.json')
        assert base.wait_until(lambda: os.path.exists(added), 20)
        # Removed publishers drain in the background (a reload does not
        # wait for them): wait until they have, then nothing was dropped.
        removed = [self.label(n) for n in ('gnocchi', 'udp', 'listen')]
        assert base.wait_until(lambda: all(
            deliveries(self.get('/metrics')[1])[label]['pending'] == 0
            for label in removed), 60), deliveries(self.get('/metrics')[1])
        page = self.get('/metrics')[1]
        assert_balanced(page)
        for name in ('gnocchi', 'udp', 'listen'):
            gone = deliveries(page)[self.label(name)]
            # Drained, not dropped; its totals still shown.
            assert gone['pending'] == 0 and not gone['dropped'], gone
            assert gone['published'] >= before[name]['published']
        # The removed exporter's port is free again.
        assert base.wait_until(lambda: _refused(self.listen_port), 10)

        # 3. The collector comes back: what waited through both reloads
        # arrives, and every publisher balances with nothing dropped.
        self.peer.start()
        assert base.wait_until(
            lambda: (self.stats('http')['pending'] == 0
                     and self.stats('http')['published'] > 0), 30), \
            self.stats('http')
        http = self.stats('http')
        assert len(self.peer.items()) >= http['published'] and \
            not http['dropped']
        assert self.get('/healthz')[0] == 200
        assert self.stop() == 0, self.output()
        out = self.output()
        assert 'stopped; nothing was dropped' in out, out
        assert 'Traceback' not in out
        # Every sample amqp1 confirmed is at RabbitMQ, once or more.
        amqp1 = after[self.label('amqp1')]
        assert len(self.receiver.drain()) > 0 and amqp1['published'] > 0

    def test_a_reload_that_cannot_start_keeps_the_running_pipeline(self):
        self.start(self.pipeline('amqp1', 'exporter'))
        taken = self.exporter_port
        # A second exporter on a port that is taken (by the first): the
        # new pipeline cannot start; the old one runs on.
        self.urls['exporter2'] = 'prometheus://?port=%d&x=1' % taken
        self.reload_text = self.pipeline('amqp1', 'exporter', 'exporter2')
        with open(self.pipeline_path, 'w') as f:
            f.write(self.reload_text)
        self.proc.send_signal(signal.SIGHUP)
        assert base.wait_until(lambda: 'Reload failed' in self.output(), 20)
        assert 'cannot listen on 127.0.0.1:%d' % taken in self.output()
        before = self.stats('amqp1')['published']
        assert base.wait_until(
            lambda: self.stats('amqp1')['published'] > before, 20)
        self.scrape_exporter()
        assert self.stop() == 0
        assert 'Traceback' not in self.output()


class TestValidateTouchesNothing(test_agent.AgentTest):
    """pipeline validate on a file naming every network publisher, each
    pointing at a local peer that records any contact.
    """

    def test_no_connection_no_bind_no_request(self):
        import socket
        import threading
        listeners, contacts = [], []

        def listen():
            s = socket.socket()
            s.bind(('127.0.0.1', 0))
            s.listen()
            s.settimeout(0.2)
            listeners.append(s)

            def accept():
                while s.fileno() != -1:
                    try:
                        conn, _ = s.accept()
                    except OSError:
                        continue
                    contacts.append(s.getsockname()[1])
                    conn.close()
            threading.Thread(target=accept, daemon=True).start()
            return s.getsockname()[1]

        ports = [listen() for _ in range(8)]
        free = base.free_port()
        path = self.write_file('all.yaml', textwrap.dedent('''
            sources:
              - name: all
                meters: ["*"]
                sinks: [k]
            sinks:
              - name: k
                publishers:
                  - amqp1://127.0.0.1:%d/anycast/x
                  - gnocchi://127.0.0.1:%d
                  - http://127.0.0.1:%d/in
                  - prometheus://127.0.0.1:%d/metrics/job/x
                  - notifier://127.0.0.1:%d/?driver=rabbit
                  - remote-write+http://127.0.0.1:%d/api/v1/write
                  - otlp+http://127.0.0.1:%d/v1/metrics
                  - amqp1://127.0.0.1:%d/?spool=true&spool_dir=%s/spool
                  - prometheus://?port=%d
        ''' % tuple(ports + [self.tmpdir, free])))
        out = self.cli('pipeline', 'validate', path)
        assert out.returncode == 0, out.stderr
        # A marker connection of our own to each port: the accept queue is
        # first in, first out, so once every marker is taken, anything
        # validate had connected before was taken too.
        for port in ports:
            socket.create_connection(('127.0.0.1', port), 5).close()
        assert base.wait_until(lambda: set(contacts) >= set(ports), 30)
        for s in listeners:
            s.close()
        assert sorted(contacts) == sorted(ports), contacts
        # No port bound, no spool made.
        with socket.socket() as s:
            s.bind(('127.0.0.1', free))
        assert not os.path.exists(os.path.join(self.tmpdir, 'spool'))
