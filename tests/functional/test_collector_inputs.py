"""The agent as Ceilometer's collector: Ceilometer 27's own ``udp://`` and
``tcp://`` publishers (installed with --no-deps) send to the agent's
receivers; every sample is stored equal to what was sent, signatures are
verified, a tampered and an unsigned message are refused and counted.
And a receiver killed mid-stream: our ``tcp://`` publisher's retries and
replay deliver what it sent once, counted once.
"""

import datetime
import json
import os
import signal
import textwrap
import time

from tests import base
from tests.functional import test_agent
from tests.functional.test_notifications import NO_POLLING

SECRET = 'collector-s3cret'
COUNT = 10000
UTC = datetime.timezone.utc


def ceilometer_conf():
    from ceilometer.publisher import utils as c_utils
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf.register_opts(c_utils.OPTS, group='publisher')
    conf.register_opts([cfg.StrOpt('host', default='compute-1')])
    conf([])
    conf.set_override('telemetry_secret', SECRET, group='publisher')
    return conf


def ceilometer_samples(n, tag):
    from ceilometer import sample as c_sample
    now = datetime.datetime.now(UTC)
    return [c_sample.Sample(
        name='cpu' if i % 2 else 'memory.usage',
        type='cumulative' if i % 2 else 'gauge',
        unit='ns' if i % 2 else 'MB', volume=float(i),
        user_id='u', project_id='p', resource_id='%s-%d' % (tag, i % 50),
        timestamp=(now - datetime.timedelta(milliseconds=n - i)).isoformat(),
        resource_metadata={'host': 'compute-1', 'i': i},
        user_name='alice') for i in range(n)]


class CollectorTest(test_agent.AgentTest):

    def start_collector(self, transport, port=0, pipeline_extra=''):
        self.write_file('polling.yaml', NO_POLLING)
        self.out = os.path.join(self.tmpdir, 'out.json')
        self.db = os.path.join(self.tmpdir, 'db.sqlite')
        self.port_in = port or base.free_port()
        with open(self.conf_file, 'a') as f:
            f.write(textwrap.dedent('''
                [publisher]
                telemetry_secret = %s
                [collector]
                %s_listen = 127.0.0.1:%d
            ''') % (SECRET, transport, self.port_in))
        return self.start('''
            sources:
              - name: all
                meters: ["*", "!host.*"]
                sinks: [all]
            sinks:
              - name: all
                publishers:
                  - "file://%s?max_latency=0"
                  - "sqlite://%s?max_latency=0"
        ''' % (self.out, self.db))

    def metric(self, name, **labels):
        return test_agent.metric(self.get('/metrics')[1], name, **labels) \
            or 0

    def stored(self):
        """The file sink's messages by id; a line being written (no end
        yet) is left for the next read.
        """
        if not os.path.exists(self.out):
            return {}
        found = {}
        with open(self.out) as f:
            for line in f:
                if not line.endswith('\n'):
                    break
                try:
                    m = json.loads(line)
                except ValueError:
                    # kill -9 can cut a line; the next agent writes on.
                    continue
                found[m['message_id']] = m
        return found

    def check_equal(self, sent):
        got = self.stored()
        keys = ('counter_name', 'counter_type', 'counter_unit',
                'counter_volume', 'user_id', 'project_id', 'resource_id',
                'resource_metadata', 'user_name')
        for s in sent:
            mine = got[s.id]
            assert (mine['counter_name'], mine['counter_volume'],
                    mine['resource_id'], mine['resource_metadata'],
                    mine['user_name']) == (
                s.name, s.volume, s.resource_id, s.resource_metadata,
                s.user_name), (mine, s)
            assert all(k in mine for k in keys)
            assert datetime.datetime.fromisoformat(mine['timestamp']) == \
                datetime.datetime.fromisoformat(s.timestamp)


class TestCeilometerPublishersIntoOurs(CollectorTest):

    def send_bad(self, pub):
        """A tampered and an unsigned sample through Ceilometer's own
        publisher (its conf's secret changed for each).
        """
        bad = ceilometer_samples(2, 'bad')
        pub.conf.set_override('telemetry_secret', 'not-the-secret',
                              group='publisher')
        pub.publish_samples(bad[:1])
        pub.conf.set_override('telemetry_secret', '', group='publisher')
        pub.publish_samples(bad[1:])
        return bad

    def run_transport(self, transport):
        from ceilometer.publisher import tcp as c_tcp
        from ceilometer.publisher import udp as c_udp
        from oslo_utils import netutils
        self.start_collector(transport)
        url = netutils.urlsplit('%s://127.0.0.1:%d'
                                % (transport, self.port_in))
        pub = (c_tcp.TCPPublisher if transport == 'tcp'
               else c_udp.UDPPublisher)(ceilometer_conf(), url)
        self.addCleanup(lambda: pub.socket and pub.socket.close())
        sent = ceilometer_samples(COUNT, transport)
        for i in range(0, COUNT, 100):
            pub.publish_samples(sent[i:i + 100])
            if transport == 'udp':
                # A datagram the kernel drops is gone (UDP): pace the
                # sender on what the receiver has taken.
                # (100 datagrams in flight at most: well inside the
                # kernel's default receive buffer, counted in truesize.)
                base.wait_until(lambda: self.metric(
                    'telemetry_collector_messages_total',
                    transport='udp') >= i, 30)
        bad = self.send_bad(pub)
        assert base.wait_until(lambda: len(self.stored()) >= COUNT, 120), \
            (len(self.stored()), self.get('/metrics')[1][-3000:])
        assert base.wait_until(lambda: self.metric(
            'telemetry_collector_dropped_total', transport=transport,
            reason='bad_signature') == 2, 30), self.output()
        got = self.stored()
        assert len(got) == COUNT and not {s.id for s in bad} & set(got)
        self.check_equal(sent)
        assert self.metric('telemetry_collector_samples_total',
                           transport=transport) == COUNT
        # The SQLite sink may trail the file one: wait for it.
        assert base.wait_until(
            lambda: base.stored_measures(self.db) == COUNT, 60), \
            base.stored_measures(self.db)
        if transport == 'udp':
            assert self.metric('telemetry_collector_dropped_total',
                               transport='udp', reason='kernel_dropped') == 0
        assert self.stop() == 0

    def test_tcp(self):
        self.run_transport('tcp')

    def test_udp(self):
        self.run_transport('udp')


class TestReceiverRestart(CollectorTest):

    def test_killed_mid_stream_our_publisher_delivers_once(self):
        from telemetry_lib import delivery
        from telemetry_lib import Sample
        self.start_collector('tcp')
        self.conf.set_override('telemetry_secret', SECRET,
                               group='publisher')
        d = delivery.build(
            self.conf, 'tcp://127.0.0.1:%d?max_latency=0&max_retries=-1&'
            'retry_max_delay=0.5&max_batch_size=50' % self.port_in).start()
        self.addCleanup(d.close, 5)
        now = time.time()
        sent = [Sample('m', 'gauge', '1', i, resource_id='r%d' % (i % 20),
                       timestamp=now - 600 + i * 0.001) for i in range(4000)]
        d.put(sent[:2000])
        assert base.wait_until(lambda: len(self.stored()) >= 500, 60)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        d.put(sent[2000:])
        # Same files, same port: the agent comes back.
        self.log.close()
        self.log = open(os.path.join(self.tmpdir, 'agent2.log'), 'w+')
        self.proc = __import__('subprocess').Popen(
            [__import__('sys').executable, '-m', 'telemetry_lib.cmd.agent',
             '--config-file', self.conf_file], stdout=self.log,
            stderr=__import__('subprocess').STDOUT, env=self.env)
        assert base.wait_until(self._up, 30), self.output()
        assert d.flush(120), d.stats()
        st = d.stats()
        assert st.published == 4000
        assert st.received + st.recovered == (
            st.published + st.dropped_total + st.pending)

        # Every sample stored, once each: replayed frames (sent again
        # after the broken connection) land on the SQLite primary key, not
        # as new rows. (The file sink is no proof across a kill -9: the
        # line being written when the agent died is cut, and the next
        # agent's first line joins it.)
        assert base.wait_until(
            lambda: base.stored_measures(self.db) == 4000, 60), \
            base.stored_measures(self.db)
        assert self.stop() == 0
