"""The one HTTP client: a deadline over the whole exchange, a bounded
body, failures said in one line, statuses mapped in one place.
"""

import gzip
from http import server as http_server
import socket
import threading

from telemetry_lib.clients import http
from telemetry_lib import PermanentError
from telemetry_lib import RetryableError
from tests import base


class Handler(http_server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == '/big':
            body = b'x' * 5000
            status = 200
        elif self.path == '/busy':
            body, status = b'slow down', 429
        elif self.path == '/gone':
            body, status = b'no such thing', 404
        elif self.path == '/gzip':
            body, status = gzip.compress(b'{"zipped": true}'), 200
        elif self.path == '/auth':
            body = (self.headers.get('Authorization') or '').encode()
            status = 200
        else:
            body, status = b'{"ok": true}', 200
        self.send_response(status)
        if status == 429:
            self.send_header('Retry-After', '7')
        if self.path == '/gzip':
            self.send_header('Content-Encoding', 'gzip')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TestHttpClient(base.TestCase):

    def setUp(self):
        super().setUp()
        self.server = http_server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = 'http://127.0.0.1:%d' % self.server.server_port
        self.client = http.HttpClient(5, max_body=1000)
        self.addCleanup(self.client.close)

    def test_an_answer(self):
        r = self.client.request('GET', self.url + '/')
        assert r.ok and r.text == '{"ok": true}' and not r.truncated

    def test_a_compressed_answer_is_decoded(self):
        # Prometheus gzips its API answers; the raw bytes are no JSON.
        r = self.client.request('GET', self.url + '/gzip')
        assert r.text == '{"zipped": true}'

    def test_the_body_is_bounded(self):
        r = self.client.request('GET', self.url + '/big')
        assert r.truncated and len(r.text) == 1000

    def test_statuses_map_to_the_delivery_core(self):
        busy = self.client.request('GET', self.url + '/busy')
        exc = http.publisher_error(busy, 'GET busy')
        assert isinstance(exc, RetryableError) and exc.retry_after == 7
        gone = self.client.request('GET', self.url + '/gone')
        assert isinstance(http.publisher_error(gone, 'GET gone'),
                          PermanentError)

    def test_basic_auth_from_a_pair_or_a_requests_auth_object(self):
        import requests
        for auth in (('u', 'p'), requests.auth.HTTPBasicAuth('u', 'p')):
            client = http.HttpClient(5, auth=auth)
            self.addCleanup(client.close)
            r = client.request('GET', self.url + '/auth')
            assert r.text == 'Basic dTpw', (auth, r.text)

    def test_params_are_encoded(self):
        r = self.client.request('GET', self.url + '/', params={'q': 'a b'})
        assert r.ok

    def test_an_unverified_certificate_is_one_line(self):
        cert, key = self.self_signed_cert()
        import ssl
        tls = http_server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        threading.Thread(target=tls.serve_forever, daemon=True).start()
        self.addCleanup(tls.server_close)
        self.addCleanup(tls.shutdown)
        url = 'https://127.0.0.1:%d/' % tls.server_port
        with self.assertRaises(http.Unanswered) as ctx_:
            self.client.request('GET', url)
        assert str(ctx_.exception).startswith('TLS error'), ctx_.exception
        assert '\n' not in str(ctx_.exception)
        trusting = http.HttpClient(5, verify=cert)
        self.addCleanup(trusting.close)
        assert trusting.request('GET', url).ok

    def test_no_answer_is_one_line(self):
        port = base.free_port()
        with self.assertRaises(http.Unanswered) as ctx:
            self.client.request('GET', 'http://127.0.0.1:%d/' % port)
        assert str(ctx.exception) == 'connection refused'

    def test_a_trickling_peer_is_cut_at_the_deadline(self):
        listener = socket.socket()
        listener.bind(('127.0.0.1', 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        stop = threading.Event()

        def trickle():
            conn, _ = listener.accept()
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n'
                         b'\r\n')
            while not stop.wait(0.1):
                try:
                    conn.sendall(b'x')
                except OSError:
                    break
            conn.close()
        threading.Thread(target=trickle, daemon=True).start()
        self.addCleanup(stop.set)
        client = http.HttpClient(1.0)
        self.addCleanup(client.close)
        with self.assertRaises(http.Unanswered) as ctx:
            client.request('GET', 'http://127.0.0.1:%d/'
                           % listener.getsockname()[1])
        assert ctx.exception.timed_out
