"""Small operator-facing guarantees, one test each."""

import os
import socket
import urllib.error
import urllib.request

from telemetry_lib import delivery
from telemetry_lib.httpserver import GetServer
from telemetry_lib import InvalidURL
from telemetry_lib.storage import base as storage_base
from telemetry_lib.url import TelemetryURL
from tests import base


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(('::1', 0))
        return True
    except OSError:
        return False


class TestEndpoint(base.TestCase):

    def serve(self, host):
        server = GetServer(host, 0, lambda path, accept: (
            200, 'text/plain', b'ok\n') if path == '/x' else None)
        self.addCleanup(server.close)
        return server.start()

    def test_ipv6_loopback(self):
        if not _has_ipv6_loopback():
            self.skipTest('this machine has no IPv6 loopback')
        server = self.serve('::1')
        assert server.url.startswith('http://[::1]:')
        with urllib.request.urlopen(server.url + '/x', timeout=5) as r:
            assert r.read() == b'ok\n'

    def test_construction_binds_nothing(self):
        port = base.free_port()
        GetServer('127.0.0.1', port, lambda p, a: None)
        with socket.socket() as s:
            s.bind(('127.0.0.1', port))

    def test_idle_connections_are_closed(self):
        """300 idle connections: 4 workers and 32 waiting places; the
        others get a 503 at once, those waiting are closed by the idle
        timeout; no thread is added; then it serves again.
        """
        import threading
        server = GetServer('127.0.0.1', 0, lambda p, a: None,
                           idle_timeout=5, max_connections=32, threads=4)
        self.addCleanup(server.close)
        server.start()
        threads_before = threading.active_count()
        idle = [socket.create_connection((server.host, server.port),
                                         timeout=20) for _ in range(300)]
        assert threading.active_count() - threads_before <= 1
        answers = []
        for s in idle:
            with s:                         # read until the server closes
                data = b''.join(iter(lambda: s.recv(4096), b''))
            answers.append(data.split(b'\r\n')[0])
        refused = answers.count(b'HTTP/1.1 503 Service Unavailable')
        assert refused + answers.count(b'') == 300, set(answers)
        assert refused >= 300 - 32 - 1, refused
        assert base.wait_until(
            lambda: threading.active_count() <= threads_before, 5)
        with self.assertRaises(urllib.error.HTTPError) as ctx:
            urllib.request.urlopen(server.url + '/missing', timeout=5)
        assert ctx.exception.code == 404

    def test_silent_clients_hold_no_worker(self):
        """Ten connections that never speak, two workers, a 30 s idle
        timeout: a scrape is still answered.
        """
        server = GetServer('127.0.0.1', 0, lambda p, a: (
            200, 'text/plain', b'ok\n'), idle_timeout=30, threads=2)
        self.addCleanup(server.close)
        server.start()
        silent = [socket.create_connection((server.host, server.port))
                  for _ in range(10)]
        self.addCleanup(lambda: [s.close() for s in silent])
        with urllib.request.urlopen(server.url + '/x', timeout=5) as r:
            assert r.read() == b'ok\n'

    def test_tls(self):
        import ssl
        cert, key = self.self_signed_cert()
        server = GetServer('127.0.0.1', 0, lambda p, a: (
            200, 'text/plain', b'ok\n'), idle_timeout=30, threads=2,
            cert_file=cert, key_file=key)
        self.addCleanup(server.close)
        server.start()
        assert server.url.startswith('https://')
        # Silent clients must not stall the handshakes of the others.
        silent = [socket.create_connection((server.host, server.port))
                  for _ in range(5)]
        self.addCleanup(lambda: [s.close() for s in silent])
        ctx = ssl.create_default_context(cafile=cert)
        with urllib.request.urlopen(server.url + '/x', timeout=5,
                                    context=ctx) as r:
            assert r.read() == b'ok\n'
        # Plain HTTP on the TLS port: refused, not hung.
        with self.assertRaises((urllib.error.URLError, OSError)):
            urllib.request.urlopen(server.url.replace('https', 'http')
                                   + '/x', timeout=5)

    def test_tls_needs_both_files_and_readable_ones(self):
        from telemetry_lib.exceptions import ConfigError
        with self.assertRaises(ConfigError):
            GetServer('127.0.0.1', 0, lambda p, a: None, cert_file='c')
        server = GetServer('127.0.0.1', 0, lambda p, a: None,
                           cert_file='/nonexistent/c', key_file='/k')
        with self.assertRaises(ConfigError) as ctx:
            server.start()
        assert 'cannot listen' in str(ctx.exception)

    def test_methods_and_bounds(self):
        server = GetServer('127.0.0.1', 0, lambda p, a: (
            200, 'text/plain', b'ok\n'), max_body=10,
            post=lambda p, h, b: (200, 'text/plain', b'%d\n' % len(b)))
        self.addCleanup(server.close)
        server.start()

        def call(method, data=None):
            req = urllib.request.Request(server.url + '/x', data=data,
                                         method=method)
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return r.status, r.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()
        assert call('HEAD') == (200, b'')
        assert call('POST', b'12345') == (200, b'5\n')
        assert call('POST', b'x' * 11)[0] == 413
        assert call('PUT', b'x')[0] == 405


class TestSecrets(base.TestCase):

    def test_secret_query_options_are_masked(self):
        url = TelemetryURL.parse('gnocchi://u:pw@h/?token=tok123&x=1')
        text = str(url) + repr(url)
        assert 'pw' not in text and 'tok123' not in text
        assert 'token=***' in text and 'x=1' in text
        assert 'tok123' in url.geturl(with_password=True)

    def test_a_password_with_a_slash_is_not_echoed(self):
        try:
            TelemetryURL.parse('amqp1://user:se/cr?et@host:bad/')
        except InvalidURL as exc:
            assert 'se/cr' not in str(exc) and 'et@' not in str(exc)
            assert "port 'bad'" in str(exc)
        else:
            raise AssertionError('a bad port must be refused')
        url = TelemetryURL.parse('amqp1://user:se/cr?et@host:5672/x')
        assert url.password == 'se/cr?et' and url.hosts[0].port == 5672

    def test_storage_url_option_is_secret(self):
        opt = [o for o in storage_base.OPTS if o.name == 'url'][0]
        assert opt.secret


class TestSpoolNames(base.TestCase):

    def test_same_publisher_different_options_different_spools(self):
        common = 'test://?spool=true&spool_dir=%s' % self.tmpdir
        a = delivery.build(self.conf, common + '&max_batch_size=10')
        b = delivery.build(self.conf, common + '&max_batch_size=20')
        assert a.spool_file != b.spool_file
        a.start()
        b.start()               # would fail on a locked, shared file
        self.addCleanup(a.close, 1)
        self.addCleanup(b.close, 1)
        assert os.stat(a.spool_file).st_mode & 0o777 == 0o600


class TestAMQPCredentials(base.TestCase):

    def test_plain_in_clear_off_loopback_is_refused(self):
        from telemetry_lib.publisher import base as publisher_base
        with self.assertRaises(InvalidURL) as ctx:
            publisher_base.load_publisher(
                self.conf, 'amqp1://user:%s@192.0.2.10:5672/x' % 'pw1')
        assert 'in clear' in str(ctx.exception)
        assert 'pw1' not in str(ctx.exception)
        for url in ('amqp1://user:pw@127.0.0.1/x',
                    'amqp1://user:pw@[::1]/x',
                    'amqps://user:pw@192.0.2.10/x',
                    'amqp1://user:pw@192.0.2.10/x?ssl=true',
                    'amqp1://user:pw@192.0.2.10/x?sasl_allow_insecure=true',
                    'amqp1://192.0.2.10/x'):
            pub = publisher_base.load_publisher(self.conf, url)
            pub.close(0)
        pub = publisher_base.load_publisher(self.conf,
                                            'amqps://u:p@192.0.2.10/x')
        assert pub.sender.hosts == [('192.0.2.10', 5671)]


class TestHandlerBugs(base.TestCase):

    def test_a_failing_handler_is_a_500_and_one_log_line(self):
        def boom(path, headers, body):
            raise KeyError('bug')
        server = GetServer('127.0.0.1', 0, lambda p, a: None, post=boom)
        self.addCleanup(server.close)
        server.start()
        req = urllib.request.Request(server.url + '/x', data=b'{}')
        with self.assertLogs('telemetry_lib.httpserver', 'ERROR') as cm:
            with self.assertRaises(urllib.error.HTTPError) as ctx:
                urllib.request.urlopen(req, timeout=5)
        assert ctx.exception.code == 500
        assert 'KeyError' in cm.output[0]
        assert 'Traceback' not in '\n'.join(cm.output)
