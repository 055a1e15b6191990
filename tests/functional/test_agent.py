"""telemetry-agent as a real process; what it stored read back by the CLI."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request

from tests import base
from tests.functional.http_peer import HttpPeer

POLLING = '''
sources:
  - name: host
    interval: 0.5
    meters: ["host.*"]
'''


def metric(text, name, **labels):
    """The value of one series in a Prometheus text page, or None."""
    for line in text.splitlines():
        if not line.startswith(name + '{') and not line.startswith(
                name + ' '):
            continue
        if all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.rsplit(' ', 1)[1])
    return None


class AgentTest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.port = base.free_port()
        self.env = dict(os.environ, XDG_DATA_HOME=os.path.join(
            self.tmpdir, 'data'))
        self.write_file('polling.yaml', POLLING)
        self.conf_file = self.write_file('agent.conf', textwrap.dedent('''
            [agent]
            http_port = %d
            shutdown_timeout = 10
            [polling]
            cfg_file = %s/polling.yaml
        ''' % (self.port, self.tmpdir)))

    def start(self, pipeline=None):
        if pipeline is not None:
            path = self.write_file('pipeline.yaml', textwrap.dedent(pipeline))
            with open(self.conf_file, 'a') as f:
                f.write('[pipeline]\npipeline_cfg_file = %s\n' % path)
            self.pipeline_path = path
        self.log = open(os.path.join(self.tmpdir, 'agent.log'), 'w+')
        self.addCleanup(self.log.close)
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'telemetry_lib.cmd.agent',
             '--config-file', self.conf_file],
            stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        self.addCleanup(self._kill)
        assert base.wait_until(self._up, 30), self.output()
        return self.proc

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    scheme, tls = 'http', None          # tls: an ssl context

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError('agent exited: %s' % self.output())
        try:
            urllib.request.urlopen('%s://127.0.0.1:%d/healthz'
                                   % (self.scheme, self.port), timeout=1,
                                   context=self.tls)
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def output(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def get(self, path):
        try:
            with urllib.request.urlopen('%s://127.0.0.1:%d%s'
                                        % (self.scheme, self.port, path),
                                        timeout=5, context=self.tls) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def cli(self, *args, stdin=''):
        out = subprocess.run(
            [sys.executable, '-m', 'telemetry_lib.cmd.cli'] + list(args),
            capture_output=True, text=True, env=self.env, timeout=60,
            input=stdin)
        return out

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.proc.wait(30)


def reload_count(test, result='failed'):
    return metric(test.get('/metrics')[1], 'telemetry_agent_reloads_total',
                  result=result)


class TestEmbeddedDefault(AgentTest):

    def test_polls_stores_and_the_cli_reads_it_back(self):
        self.start()
        host = socket.gethostname()
        assert base.wait_until(lambda: len(json.loads(self.cli(
            'measures', 'show', 'host.memory.used', '--resource', host,
            '-f', 'json').stdout or '[]')) >= 3, 30), self.output()
        out = self.cli('measures', 'show', 'host.memory.used',
                       '--resource', host, '-f', 'json')
        rows = json.loads(out.stdout)
        assert all(r['Value'] > 0 for r in rows)
        meters = json.loads(self.cli('meter', 'list', '-f', 'json').stdout)
        names = {m['Meter'] for m in meters}
        assert {'host.cpu.time', 'host.memory.used',
                'host.network.incoming.bytes'} <= names
        rate = json.loads(self.cli(
            'measures', 'show', 'host.cpu.time', '--resource', host,
            '--granularity', '1', '--aggregation', 'rate', '-f',
            'json').stdout)
        # CPU time grows by at most (cores x 1e9) ns each second. Slack:
        # the kernel counts in 10 ms ticks per field, and a sample carries
        # its run's scheduled time, read a few ms later, so one 1 s bucket
        # can show a few percent more (2.05e9 seen on 2 cores).
        assert rate and all(0 <= r['Value'] <= os.cpu_count() * 1.2e9
                            for r in rate), rate
        png = os.path.join(self.tmpdir, 'mem.png')
        out = self.cli('measures', 'plot', 'host.memory.used', '--resource',
                       host, '--output', png)
        assert out.returncode == 0, out.stderr
        with open(png, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
        out = self.cli('measures', 'plot', 'host.memory.used', '--resource',
                       host, '--width', '60', '--height', '10')
        assert out.returncode == 0 and 'host.memory.used' in out.stdout
        assert self.stop() == 0
        assert 'samples go to sqlite://' in self.output()

    def test_metrics_move_and_health_is_ok(self):
        self.start()
        status, first = self.get('/metrics')
        assert status == 200
        assert base.wait_until(lambda: (metric(
            self.get('/metrics')[1], 'telemetry_delivery_published_total')
            or 0) > (metric(first, 'telemetry_delivery_published_total')
                     or 0), 20)
        _, page = self.get('/metrics')
        assert metric(page, 'telemetry_pollster_runs_total',
                      pollster='host.cpu') >= 1
        assert metric(page, 'telemetry_delivery_publish_seconds_count') >= 1
        status, body = self.get('/healthz')
        assert status == 200 and json.loads(body)['status'] == 'ok'
        assert self.stop() == 0


class TestTLS(AgentTest):

    def test_metrics_and_health_over_https_only(self):
        import ssl
        cert, key = self.self_signed_cert()
        with open(self.conf_file, 'a') as f:
            f.write('[agent]\nhttp_cert_file = %s\nhttp_key_file = %s\n'
                    % (cert, key))
        self.scheme = 'https'
        self.tls = ssl.create_default_context(cafile=cert)
        self.start()
        status, text = self.get('/metrics')
        assert status == 200 and 'telemetry_agent_' in text, text[:200]
        assert self.get('/healthz')[0] == 200
        with self.assertRaises(OSError):
            urllib.request.urlopen('http://127.0.0.1:%d/healthz'
                                   % self.port, timeout=5)
        assert self.stop() == 0
        assert 'Traceback' not in self.output()

    def test_a_missing_key_is_one_line_and_exit_1(self):
        with open(self.conf_file, 'a') as f:
            f.write('[agent]\nhttp_cert_file = /nonexistent.pem\n')
        out = subprocess.run(
            [sys.executable, '-m', 'telemetry_lib.cmd.agent',
             '--config-file', self.conf_file], capture_output=True,
            text=True, env=self.env, timeout=60)
        assert out.returncode == 1, out
        assert 'certificate and a key' in out.stderr, out.stderr
        assert 'Traceback' not in out.stderr + out.stdout


class TestLifecycle(AgentTest):

    PIPELINE = '''
        sources:
          - name: all
            meters: ["*"]
            sinks: [to_file]
        sinks:
          - name: to_file
            publishers:
              - file://%s/out.json?max_latency=60&max_batch_size=100000
    '''

    def lines(self):
        path = os.path.join(self.tmpdir, 'out.json')
        if not os.path.exists(path):
            return 0
        with open(path) as f:
            return sum(1 for _ in f)

    def test_sigterm_flushes_the_queues_and_exits_0(self):
        self.start(self.PIPELINE % self.tmpdir)

        def polled():
            page = self.get('/metrics')[1]
            return sum(metric(page, 'telemetry_pollster_samples_total',
                              pollster=p) or 0
                       for p in ('host.cpu', 'host.memory', 'host.disk',
                                 'host.network'))
        # Wait for a poll, not for a time: a loaded machine polls late.
        assert base.wait_until(lambda: polled() > 0, 30)
        # Batches wait up to 60 s: nothing is written before the flush.
        assert self.lines() == 0
        polled = polled()
        assert self.stop() == 0, self.output()
        assert self.lines() >= polled

    def test_sighup_with_a_broken_pipeline_keeps_the_old_one(self):
        self.start(self.PIPELINE.replace('max_latency=60', 'max_latency=0')
                   % self.tmpdir)
        assert base.wait_until(lambda: self.lines() > 0, 20)
        from tests.unit.test_yamlfile import BOMB
        broken = [
            ('sources: [oops\n', 'invalid YAML'),
            # A list where a sink name goes: this used to kill the agent.
            ('sources:\n  - name: all\n    meters: ["*"]\n'
             '    sinks: [[to_file]]\nsinks:\n  - name: to_file\n'
             '    publishers: ["test://"]\n', 'must list sink names'),
            (BOMB, 'aliases used too often'),
        ]
        for count, (text, words) in enumerate(broken, 1):
            with open(self.pipeline_path, 'w') as f:
                f.write(text)
            self.proc.send_signal(signal.SIGHUP)
            assert base.wait_until(lambda: reload_count(self) == count, 10), \
                self.output()
            assert words in self.output(), self.output()
            before = self.lines()
            assert base.wait_until(lambda: self.lines() > before, 10)
            assert self.proc.poll() is None
        assert 'Traceback' not in self.output()
        assert self.stop() == 0

    def test_sighup_with_a_good_pipeline_switches(self):
        self.start(self.PIPELINE.replace('max_latency=60', 'max_latency=0')
                   % self.tmpdir)
        with open(self.pipeline_path, 'w') as f:
            f.write(textwrap.dedent(self.PIPELINE).replace(
                'out.json', 'new.json').replace('max_latency=60',
                                                'max_latency=0')
                % self.tmpdir)
        self.proc.send_signal(signal.SIGHUP)
        assert base.wait_until(lambda: os.path.exists(os.path.join(
            self.tmpdir, 'new.json')), 10), self.output()
        assert self.stop() == 0


class TestSignalStorm(AgentTest):

    def test_sighups_then_sigterm_stop_within_the_bound(self):
        # Issue 21: an agent once logged "Signal 2: stopping" and polled on
        # until SIGKILL -- its handlers took locks the main thread could
        # hold. Now they only queue the signal for the main loop.
        with open(self.conf_file, 'a') as f:
            f.write('[agent]\nshutdown_timeout = 2\n')
        self.start()
        for _ in range(40):
            self.proc.send_signal(signal.SIGHUP)
        self.proc.send_signal(signal.SIGTERM)
        # Reloads already taken finish first; each is bounded, so is this.
        assert self.proc.wait(60) == 0, self.output()
        out = self.output()
        assert 'Signal 15: stopping' in out, out
        assert 'Traceback' not in out, out


class TestDeadSinkBesideALiveOne(AgentTest):

    def test_file_keeps_receiving_while_http_is_dead(self):
        dead = HttpPeer()           # never started: connection refused
        with open(self.conf_file, 'a') as f:
            f.write('[agent]\nshutdown_timeout = 1\n'
                    'healthz_failing_after = 1\n')
        self.start('''
            sources:
              - name: all
                meters: ["*"]
                sinks: [to_file, to_collector]
            sinks:
              - name: to_file
                publishers: ["file://%s/out.json?max_latency=0"]
              - name: to_collector
                publishers: ["%s?max_latency=0&max_retries=-1&\
retry_max_delay=0.2&max_queue_samples=500"]
        ''' % (self.tmpdir, dead.url))
        path = os.path.join(self.tmpdir, 'out.json')
        assert base.wait_until(lambda: os.path.exists(path), 10)
        size = os.path.getsize(path)
        assert base.wait_until(lambda: os.path.getsize(path) > size, 10)

        dead_url = ('%s?max_latency=0&max_retries=-1&retry_max_delay=0.2&'
                    'max_queue_samples=500' % dead.url)

        def dead_stats():
            page = self.get('/metrics')[1]
            labels = {'publisher': '%s (samples)' % dead_url}
            return (metric(page, 'telemetry_delivery_pending', **labels),
                    metric(page, 'telemetry_delivery_dropped_total',
                           reason='overflow', **labels),
                    metric(page, 'telemetry_delivery_published_total',
                           **labels))
        # The dead sink's queue fills to its bound, then overflows.
        assert base.wait_until(lambda: (dead_stats()[1] or 0) > 0, 30), \
            dead_stats()
        pending, dropped, published = dead_stats()
        assert pending == 500 and published == 0
        status, body = self.get('/healthz')
        assert status == 503
        problems = json.loads(body)['problems']
        assert any(p.startswith(dead_url) and 'failing for' in p
                   and 'connection refused' in p for p in problems), problems
        assert any('queue at 500 of 500' in p for p in problems), problems
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0
