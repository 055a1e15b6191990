"""Canaries of the seams: each place we reach past another library's
public API, checked against the release installed. When a library moves
what we use, one of these fails and names it -- before an agent does.
"""

import inspect
import logging

from telemetry_lib.clients import messaging
from telemetry_lib.clients import proton_engine
from telemetry_lib.formats import ceilometer
from telemetry_lib.notification import fields
from telemetry_lib.notification import jsonpath_compiled
from telemetry_lib import Sample
from tests import base


class TestProton(base.TestCase):

    def test_the_c_api_we_call_is_there(self):
        import cproton
        missing = [n for n in proton_engine.NEEDED
                   if not hasattr(cproton, n)]
        assert not missing, missing

    def test_an_engine_exposes_its_handles(self):
        conn, transport, collector = proton_engine.new_engine(
            'localhost', 'canary', None, None, 'ANONYMOUS', False, 0, None)
        pn = proton_engine.pn
        for obj in (conn, transport, collector):
            assert pn.addressof(proton_engine.handle(obj))
        assert proton_engine.wants(transport) == (True, True)

    def test_a_missing_name_is_one_clear_line(self):
        import cproton
        real = proton_engine.NEEDED
        self.addCleanup(setattr, proton_engine, 'NEEDED', real)
        proton_engine.NEEDED = real + ('pn_not_there',)
        with self.assertRaises(ImportError) as ctx:
            proton_engine._load()
        assert 'lacks pn_not_there' in str(ctx.exception)
        assert proton_engine.TESTED in str(ctx.exception)
        assert cproton is not None


class TestOsloMessaging(base.TestCase):

    def test_the_private_send_is_there_with_our_arguments(self):
        om = messaging.oslo_messaging()
        send = om.transport.Transport._send_notification
        params = inspect.signature(send).parameters
        for name in ('target', 'ctxt', 'message', 'version', 'retry'):
            assert name in params, list(params)

    def test_the_rabbit_driver_logs_what_the_listener_filters(self):
        messaging.oslo_messaging()
        from oslo_messaging._drivers import impl_rabbit
        # oslo.log names a module's logger oslo.messaging.*, not the
        # module's oslo_messaging.*.
        log = getattr(impl_rabbit.LOG, 'logger', impl_rabbit.LOG)
        assert log.name == messaging.RABBIT_LOGGER
        assert messaging.UNDECODABLE in inspect.getsource(impl_rabbit)

    def test_without_the_private_send_the_public_notifier_is_used(self):
        sent = []

        class Transport:            # no _send_notification
            pass

        class Notifier:
            def __init__(self, transport, publisher_id, driver, topics,
                         retry):
                sent.append(('new', publisher_id, topics, retry))

            def sample(self, ctxt, event_type, payload):
                sent.append(('sample', event_type, payload))

        om = messaging.oslo_messaging()
        real = om.Notifier
        self.addCleanup(setattr, om, 'Notifier', real)
        om.Notifier = Notifier
        with self.assertLogs('telemetry_lib.clients.messaging',
                             logging.WARNING):
            messaging.send_notification(
                Transport(), om.Target(topic='metering.sample'), {},
                {'publisher_id': 'p', 'event_type': 'metering',
                 'payload': [1]}, retry=0)
        assert sent == [('new', 'p', ['metering'], 0),
                        ('sample', 'metering', [1])]


class TestJsonpathExt(base.TestCase):

    def test_the_node_classes_we_read_are_there(self):
        from jsonpath_rw_ext import _arithmetic
        from jsonpath_rw_ext import _filter
        from jsonpath_rw_ext import _string
        assert fields.jsonpath_compiled is jsonpath_compiled
        assert isinstance(_filter.OPERATOR_MAP, dict)
        for cls in (_filter.Filter, _arithmetic.Operation, _string.Split,
                    _string.Sub):
            assert cls in jsonpath_compiled._MAKERS

    def test_a_renamed_attribute_is_unsupported_not_an_error(self):
        from jsonpath_rw_ext import _string

        class Renamed(_string.Split):
            def __init__(self):
                pass                # no .char, .segment, .max_split
        with self.assertRaises(jsonpath_compiled.Unsupported):
            jsonpath_compiled.compile_node(Renamed())


class TestCompiledEncoder(base.TestCase):

    def test_a_failure_of_the_compiled_path_is_counted_and_logged(self):
        if ceilometer._cwire is None:
            self.skipTest('built without the compiled encoder')

        class Broken:
            def encode_samples(self, *args):
                raise MemoryError('canary')
        s = Sample('cpu', 'gauge', '%', 1, resource_id='r')
        expected = ceilometer.encode_json([s], 'k', 'p')
        self.addCleanup(setattr, ceilometer, '_cwire', ceilometer._cwire)
        self.addCleanup(setattr, ceilometer, '_FALLBACKS',
                        ceilometer._FALLBACKS)
        ceilometer._FALLBACKS = ceilometer._Fallbacks()
        ceilometer._cwire = Broken()
        with self.assertLogs('telemetry_lib.formats.ceilometer') as logs:
            assert ceilometer.encode_json([s], 'k', 'p') == expected
            assert ceilometer.encode_json([s], 'k', 'p') == expected
        assert ceilometer.compiled_fallbacks() == 2
        assert len(logs.output) == 1 and 'MemoryError: canary' in \
            logs.output[0]


class TestPyAmqp(base.TestCase):

    def test_the_tcp_transport_reads_through_quick_recv(self):
        # The direct notification consumer widens py-amqp's reads through
        # this attribute; its _read keeps what a recv gives beyond n.
        import amqp
        from telemetry_lib.notification import direct
        source = inspect.getsource(amqp.transport.TCPTransport)
        assert 'self._quick_recv = self.sock.recv' in source
        assert 'recv = self._quick_recv' in source
        assert 'rbuf[:n], rbuf[n:]' in source

        class Conn:
            transport = amqp.transport.TCPTransport.__new__(
                amqp.transport.TCPTransport)
        asked = []
        Conn.transport._quick_recv = lambda n: asked.append(n) or b''
        assert direct.read_ahead(Conn)
        Conn.transport._quick_recv(7)
        assert asked == [direct.READ_AHEAD]
