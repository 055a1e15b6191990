from telemetry_lib import delivery
from telemetry_lib import PluginLoadError
from telemetry_lib import plugins
from telemetry_lib.publisher import base as publisher_base
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
