"""The seed's autoscaling loop with this library in place of
prometheus-am-executor: the agent's exporter is scraped by a real
Prometheus whose rule fires, a real Alertmanager posts to the agent's
receiver (with a bearer token), and the receiver signals a real Heat's
scaling policy. Alertmanager's re-sends do not scale twice; a later
downscale alert brings the group back.

Prometheus and Alertmanager here are the test's own processes (binaries
from tools/prometheus.sh), on free ports, so their rules and routes do
not touch the shared ones.
"""

import json
import os
import subprocess
import textwrap
import time

from tests import base
from tests.functional import heat
from tests.functional import test_agent

TOKEN = 'am-token-5d1f'


class TestAlertmanagerScalesHeat(test_agent.AgentTest):

    def launch(self, name, *args):
        log = open(os.path.join(self.tmpdir, name + '.log'), 'w')
        self.addCleanup(log.close)
        proc = subprocess.Popen(list(args), stdout=log,
                                stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (proc.kill(), proc.wait(10)))
        return proc

    def tails(self):
        out = []
        for name in ('prometheus', 'alertmanager'):
            with open(os.path.join(self.tmpdir, name + '.log')) as f:
                out.append('%s: %s' % (name, f.read()[-1500:]))
        return '\n'.join(out + [self.output()[-1500:]])

    def test_alert_to_heat_once_per_window_then_down(self):
        heat.start()
        stack = heat.Stack(heat.session())
        self.addCleanup(stack.delete)
        exporter, prom, am = (base.free_port() for _ in range(3))
        down_at = int(time.time()) + 25
        rules = self.write_file('rules.yml', textwrap.dedent('''
            groups:
              - name: scaling
                interval: 1s
                rules:
                  - alert: MemorySeen
                    expr: >-
                      ceilometer_host_memory_used > 0
                      and on() vector(time()) < %d
                    labels:
                      severity: upscale
                      tenant_stack_name: %s
                      tenant_stack_id: %s
                  - alert: Quiet
                    expr: vector(time()) > %d
                    labels:
                      severity: downscale
                      tenant_stack_name: %s
                      tenant_stack_id: %s
        ''' % (down_at, stack.name, stack.id, down_at, stack.name,
               stack.id)))
        self.write_file('prometheus.yml', textwrap.dedent('''
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: [%s]
            alerting:
              alertmanagers:
                - static_configs: [{targets: ["127.0.0.1:%d"]}]
            scrape_configs:
              - job_name: agent
                static_configs: [{targets: ["127.0.0.1:%d"]}]
        ''' % (rules, am, exporter)))
        self.write_file('alertmanager.yml', textwrap.dedent('''
            route:
              receiver: telemetry
              group_by: [alertname]
              group_wait: 0s
              group_interval: 1s
              repeat_interval: 3s
            receivers:
              - name: telemetry
                webhook_configs:
                  - url: http://127.0.0.1:%d/alertmanager
                    send_resolved: true
                    http_config:
                      authorization: {type: Bearer, credentials: %s}
        ''' % (self.port, TOKEN)))
        routes = self.write_file('routes.yaml', textwrap.dedent('''
            routes:
              - name: up
                match: {severity: upscale}
                action: "heat://{tenant_stack_name}/{tenant_stack_id}/scale_up"
                repeat: 600
              - name: down
                match: {severity: downscale}
                action: >-
                  heat://{tenant_stack_name}/{tenant_stack_id}/scale_down
                # Heat drops a signal that comes while the group updates;
                # at the minimum size a repeat does nothing, so this one
                # may come again.
                repeat: 5
        '''))
        with open(self.conf_file, 'a') as f:
            f.write('[receiver]\nroutes_file = %s\nbearer_tokens = %s\n'
                    % (routes, TOKEN))
            f.write(heat.service_credentials())
        self.start('''
            sources:
              - name: all
                meters: ["host.memory.*"]
                sinks: [exporter]
            sinks:
              - name: exporter
                publishers: ["prometheus://?port=%d&max_latency=0"]
        ''' % exporter)
        self.launch('alertmanager', 'prometheus-alertmanager',
                    '--config.file=%s/alertmanager.yml' % self.tmpdir,
                    '--storage.path=%s/am' % self.tmpdir,
                    '--web.listen-address=127.0.0.1:%d' % am,
                    '--cluster.listen-address=')
        self.launch('prometheus', 'prometheus',
                    '--config.file=%s/prometheus.yml' % self.tmpdir,
                    '--storage.tsdb.path=%s/prom' % self.tmpdir,
                    '--web.listen-address=127.0.0.1:%d' % prom)

        def counts():
            page = self.get('/metrics')[1]
            return {o: test_agent.metric(page, 'telemetry_receiver_total',
                                         outcome=o) or 0
                    for o in ('actions_queued', 'alerts_deduplicated',
                              'rejected_auth')}
        assert stack.wait_size(2, 40), (stack.size(), counts(),
                                        self.tails())
        # Alertmanager re-sends every 3 s: deduplicated, not re-scaled.
        assert base.wait_until(
            lambda: counts()['alerts_deduplicated'] >= 2, 20), counts()
        assert stack.size() == 2
        # Then the downscale alert brings it back to one.
        assert stack.wait_size(1, 60), (stack.size(), counts())
        # The up action once; the down one at least once.
        assert counts()['actions_queued'] >= 2
        assert counts()['rejected_auth'] == 0
        assert self.stop() == 0
        # And the operator can read what was decided for each alert.
        out = self.cli('--config-file', self.conf_file, 'alarm', 'webhooks',
                       '--limit', '1000', '-f', 'json')
        assert out.returncode == 0, out.stderr
        outcomes = {(r['Route'], r['Outcome']) for r in json.loads(
            out.stdout)}
        assert {('up', 'actions_queued'), ('up', 'alerts_deduplicated'),
                ('down', 'actions_queued')} <= outcomes, outcomes


class TestReceiverSurvivesKill9(test_agent.AgentTest):
    """A webhook accepted (200) while Heat is down, the agent killed with
    kill -9 before it could signal: after a restart the spooled action is
    sent, once.
    """

    def test_accepted_webhook_is_signalled_after_kill_9(self):
        import json
        import signal
        import urllib.request
        heat.start()
        stack = heat.Stack(heat.session())
        self.addCleanup(stack.delete)
        spare = heat.SpareAPI(base.free_port())
        self.addCleanup(spare.stop)
        signal_url = stack.output('up_signal_url').replace(
            ':18004/', ':%d/' % spare.port)
        routes = self.write_file('routes.yaml', textwrap.dedent('''
            routes:
              - name: up
                match: {severity: upscale}
                action: "heat+%s?max_latency=0&max_retries=-1&retry_max_delay=0.5&spool_dir=%s/spool"
        ''' % (signal_url, self.tmpdir)))  # noqa: E501
        with open(self.conf_file, 'a') as f:
            f.write('[receiver]\nroutes_file = %s\nbearer_tokens = %s\n'
                    % (routes, TOKEN))
            f.write(heat.service_credentials())
        self.start()
        body = json.dumps({'version': '4', 'groupKey': 'g', 'alerts': [{
            'status': 'firing', 'fingerprint': 'f',
            'labels': {'severity': 'upscale'}}]}).encode()
        req = urllib.request.Request(
            'http://127.0.0.1:%d/alertmanager' % self.port, data=body,
            headers={'Authorization': 'Bearer ' + TOKEN})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        # Heat is unreachable: the action waits in the spool.
        assert base.wait_until(lambda: (test_agent.metric(
            self.get('/metrics')[1], 'telemetry_delivery_pending',
            kind='actions') or 0) == 1, 10)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        spare.start()
        self.start()
        assert stack.wait_size(2, 60), stack.size()
        heat.settle(3)
        assert stack.size() == 2
        page = self.get('/metrics')[1]
        # Recovered from the spool and published once, in the new process.
        assert test_agent.metric(page, 'telemetry_delivery_published_total',
                                 kind='actions') == 1
        assert self.stop() == 0
