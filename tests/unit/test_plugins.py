import datetime
import socket

import tl_thirdparty_example as example

from telemetry_lib.agent import inputs
from telemetry_lib.alarm import actions
from telemetry_lib.alarm.definitions import AlarmsDefinition
from telemetry_lib.alarm import model
from telemetry_lib.collector import sockets
from telemetry_lib import delivery
from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec
from telemetry_lib.notification import plugins as trait_plugins
from telemetry_lib import PermanentError
from telemetry_lib import PluginLoadError
from telemetry_lib import plugins
from telemetry_lib.pollsters import loader
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import Sample
from telemetry_lib.storage import base as storage_base
from tests import base


class TestPlugins(base.TestCase):

    def test_builtin_publishers_listed(self):
        names = plugins.names(plugins.PUBLISHER_NAMESPACE)
        for name in ('test', 'file', 'http', 'https'):
            assert name in names

    def test_unknown_scheme_lists_installed(self):
        with self.assertRaises(PluginLoadError) as ctx:
            publisher_base.load_publisher(self.conf, 'nosuch://x')
        message = str(ctx.exception)
        assert "unknown publisher 'nosuch'" in message
        assert 'file' in message and 'http' in message

    def test_known_but_not_built_says_so(self):
        with self.assertRaises(PluginLoadError) as ctx:
            publisher_base.load_publisher(self.conf, 'zaqar://h/q')
        assert 'not built in this release' in str(ctx.exception)

    def test_third_party_distribution_is_found(self):
        # tl_thirdparty_example is a separate distribution installed in the
        # test environment (tests/fixtures/thirdparty_plugin).
        assert 'thirdparty' in plugins.names(plugins.PUBLISHER_NAMESPACE)
        pub = publisher_base.load_publisher(self.conf,
                                            'thirdparty://?label=x')
        assert type(pub).__module__ == 'tl_thirdparty_example'
        assert pub.label == 'x'
        d = delivery.Delivery(pub, options=delivery.DeliveryOptions(
            max_latency=0)).start()
        self.addCleanup(d.close, 1)
        from telemetry_lib import Sample
        d.put([Sample('m', 'gauge', '1', 1, resource_id='r')])
        assert d.flush(5)
        assert len(pub.received) == 1
        d.close(1)

    def test_not_a_subclass(self):
        with self.assertRaises(PluginLoadError) as ctx:
            plugins.load_class('oslo.config.opts', 'telemetry_lib',
                               base=publisher_base.Publisher)
        assert 'not a subclass' in str(ctx.exception)


class TestExamplesOfEveryNamespace(base.TestCase):
    """The contributor guide's example plugins (another distribution,
    tests/fixtures/thirdparty_plugin), each found through its entry point
    and run through telemetry_lib's own machinery.
    """

    def test_every_namespace_has_an_example(self):
        found = {ns: [n for n in plugins.names(ns)
                      if plugins.load_class(ns, n).__module__
                      == example.__name__]
                 for ns in plugins.NAMESPACES}
        assert all(found.values()), found

    def test_storage(self):
        st = storage_base.load_storage(self.conf, 'latest://')
        t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        st.write([Sample('m', 'gauge', 'B', v, resource_id='r',
                         timestamp=t0 + datetime.timedelta(seconds=v))
                  for v in (3, 1, 2)])
        assert [p.value for p in st.query('m', resource_id='r')] == [3]
        assert [p.value for p in st.query('m', granularity=60,
                                          aggregation='count')] == [1]
        assert st.resources() == ['r'] and st.meters() == [('m', 'gauge',
                                                            'B')]

    def test_pollster_through_the_loader(self):
        (p,) = loader.load_pollsters(self.conf, ['example.uptime']).values()
        (s,) = p.poll(None)
        assert s.name == 'example.uptime' and s.volume > 0

    def test_rule_and_action_in_an_alarms_file(self):
        out = self.tmpdir + '/alarms.jsonl'
        path = self.write_file('alarms.yaml', '''
alarms:
  - name: quiet
    type: stale
    rule: {meter: example.uptime, max_age: 60}
    alarm_actions: ["jsonl://%s"]
''' % out)
        alarm = AlarmsDefinition.load(
            path, check_url=actions.check_installed).alarms['quiet']
        assert alarm.actions[model.ALARM] == ('jsonl://%s' % out,)
        st = storage_base.load_storage(self.conf, 'latest://')
        now = datetime.datetime.now(datetime.timezone.utc)
        verdict = alarm.rule.evaluate(lambda url: st, now, model.OK)
        assert verdict.state == model.ALARM, verdict
        st.write([Sample('example.uptime', 'gauge', 's', 5, resource_id='h',
                         timestamp=now)])
        assert alarm.rule.evaluate(lambda url: st, now + datetime.timedelta(
            seconds=1), model.ALARM).state == model.OK
        d = actions.build(self.conf, 'jsonl://%s?max_latency=0' % out)
        d.start()
        self.addCleanup(d.close, 1)
        d.put([('a1', {'alarm_name': 'quiet', 'current': 'alarm'})])
        assert d.flush(5)
        with open(out) as f:
            assert '"alarm_name":"quiet"' in f.read()
        st_ = d.stats()
        assert st_.published == 1 and st_.balanced, st_

    def test_an_action_refuses_samples_and_a_publisher_is_no_action(self):
        d = actions.build(self.conf, 'jsonl:///tmp/x')
        with self.assertRaises(PermanentError):
            d.publisher.publish_samples([Sample('m', 'gauge', '1', 1,
                                                resource_id='r')])
        with self.assertRaises(PluginLoadError):
            actions.build(self.conf, 'thirdparty://')

    def test_trait_plugin_in_a_definition(self):
        plugin = trait_plugins.load_plugin('upper')
        assert plugin.trait_values([('a', 'x'), ('b', 1)]) == ['X', 1]

    def test_listener_started_by_the_agent_option(self):
        path = self.tmpdir + '/in.sock'
        sockets.register_opts(self.conf)
        self.conf.set_override('listeners', ['example_unix'],
                               group='collector')
        got = []

        class Pipeline:
            def offer(self, samples, high_water):
                got.extend(samples)
                return True, len(samples)
        self.conf.register_opts(example.OPTS, group='example_unix')
        self.conf.set_override('path', path, group='example_unix')
        assert inputs.enabled(self.conf)
        ins = inputs.SocketInputs(self.conf, lambda: Pipeline())
        ins.start()
        self.addCleanup(ins.close, 2)
        s = Sample('m', 'gauge', '1', 7, resource_id='r')
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
            c.sendto(jsoncodec.dumps(ceilometer.sample_to_wire(s)), path)
            c.sendto(b'not json', path)
        assert base.wait_until(lambda: len(got) == 1 and (
            ins.receivers[0].snapshot()['malformed'] == 1), 10)
        assert got[0].id == s.id
        assert ins.describe() == ['UnixListener']
