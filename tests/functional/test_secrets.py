"""No password reaches any output: the agent's log (start, failures,
reload errors, shutdown), the CLI (pipeline validate, sample publish),
/metrics and /healthz. Every URL below carries the same distinctive
secret, as a password or as a secret option, towards real peers that
refuse it or are down.
"""

import json
import signal

from tests import base
from tests.functional import rabbit
from tests.functional import test_agent

SECRET = 'Tl-Pw-7c1e9b'


class TestNoPasswordAnywhere(test_agent.AgentTest):

    def test_secret_never_printed(self):
        rabbit.MAIN.start()
        dead = base.free_port()
        urls = [
            # RabbitMQ refuses this user: authentication failures logged.
            'amqp1://nobody:%s@%s//queue/secret-test?max_latency=0&'
            'max_retries=-1&retry_max_delay=0.2' % (SECRET, rabbit.MAIN.url),
            # Nothing listens: connection refused, over and over.
            'http://user:%s@127.0.0.1:%d/in?max_latency=0&max_retries=-1&'
            'retry_max_delay=0.2' % (SECRET, dead),
            'gnocchi://127.0.0.1:%d?token=%s&max_latency=0' % (dead, SECRET),
            'remote-write+http://user:%s@127.0.0.1:%d/api/v1/write?'
            'max_latency=0&max_retries=-1&retry_max_delay=0.2'
            % (SECRET, dead),
            'otlp+http://127.0.0.1:%d/v1/metrics?token=%s&header=X-Key:%s&'
            'max_latency=0&max_retries=-1&retry_max_delay=0.2' % (
                dead, SECRET, SECRET),
        ]
        pipeline = ('sources:\n  - name: all\n    meters: ["*"]\n'
                    '    sinks: [k]\nsinks:\n  - name: k\n    publishers:\n'
                    + ''.join('      - "%s"\n' % u for u in urls))
        with open(self.conf_file, 'a') as f:
            f.write('[agent]\nhealthz_failing_after = 0.5\n'
                    'shutdown_timeout = 1\n')
        self.start(pipeline)
        assert base.wait_until(lambda: self.get('/healthz')[0] == 503, 20)
        outputs = [self.get('/metrics')[1], self.get('/healthz')[1]]
        assert 'failing for' in outputs[1]

        # A reload with a broken URL that still carries the secret.
        with open(self.pipeline_path, 'w') as f:
            f.write(pipeline.replace('http://user', 'ht>tp://user'))
        self.proc.send_signal(signal.SIGHUP)
        assert base.wait_until(
            lambda: 'Reload failed' in self.output(), 10), self.output()
        for args in (('pipeline', 'validate', self.pipeline_path),
                     ('sample', 'publish', '--timeout', '2', urls[1])):
            out = self.cli(*args, stdin=json.dumps([{
                'name': 'm', 'type': 'gauge', 'unit': '1', 'volume': 1,
                'resource_id': 'r'}]))
            outputs += [out.stdout, out.stderr]
            assert out.returncode != 0 and out.stderr
        assert self.stop() == 0
        outputs.append(self.output())
        everything = '\n'.join(outputs)
        assert 'connection refused' in everything
        assert SECRET not in everything, [
            line for line in everything.splitlines() if SECRET in line][:5]
