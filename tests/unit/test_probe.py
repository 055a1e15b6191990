"""The website probe against local servers: fast, slow, 500, refused,
a redirect, TLS with a good and a bad certificate."""

import datetime
import http.server
import ssl
import threading
import time

from telemetry_lib.pollsters import probe
from tests import base

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.timezone.utc)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == '/slow':
            time.sleep(3.0)
        status = {'/error': 500, '/moved': 302}.get(self.path, 200)
        body = b'x' * 5000 if status == 200 else b'no\n'
        self.send_response(status)
        if status == 302:
            self.send_header('Location', '/')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class TestProbe(base.TestCase):

    def serve(self, tls=None):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
        server.daemon_threads = True
        # The probe hangs up on /slow: not worth a traceback on stderr.
        server.handle_error = lambda request, address: None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return '%s://127.0.0.1:%d' % ('https' if tls else 'http',
                                      server.server_address[1])

    def poll(self, *urls, **opts):
        for k, v in opts.items():
            self.conf.set_override(k, v, group='probe')
        samples = probe.HTTPProbe(self.conf).poll(NOW, list(urls))
        out = {}
        for s in samples:
            out.setdefault(s.resource_id, {})[s.name] = s
        return out

    def test_fast_slow_error_refused(self):
        url = self.serve()
        refused = 'http://127.0.0.1:%d/' % base.free_port()
        got = self.poll(url + '/', url + '/slow', url + '/error', refused,
                        timeout=0.5)
        ok = got[url + '/']
        assert ok['http.probe.status'].volume == 200
        assert ok['http.probe.success'].volume == 1
        assert ok['http.probe.size'].volume == 5000
        assert ok['http.probe.header.size'].volume > 30
        for phase in ('dns', 'connect', 'tls', 'first_byte', 'total'):
            assert ok['http.probe.%s.time' % phase].volume >= 0
        assert ok['http.probe.tls.time'].volume < 5     # no TLS: ~0 ms
        assert ok['http.probe.first_byte.time'].volume <= \
            ok['http.probe.total.time'].volume
        assert ok['http.probe.status'].resource_metadata['address'] == \
            '127.0.0.1'
        slow = got[url + '/slow']
        assert set(slow) == {'http.probe.status', 'http.probe.success',
                             'http.probe.total.time'}
        assert slow['http.probe.status'].volume == 0
        assert slow['http.probe.status'].resource_metadata['error'] == \
            'timed out'
        # Cut by the 0.5 s timeout, not the 3 s the server takes (with
        # room for a loaded machine).
        assert 450 <= slow['http.probe.total.time'].volume < 2500
        error = got[url + '/error']
        assert error['http.probe.status'].volume == 500
        assert error['http.probe.success'].volume == 0
        down = got[refused]['http.probe.status']
        assert down.volume == 0
        assert down.resource_metadata['error'] == 'connection refused'

    def test_redirects_only_when_asked(self):
        url = self.serve()
        got = self.poll(url + '/moved')
        assert got[url + '/moved']['http.probe.status'].volume == 302
        got = self.poll(url + '/moved', max_redirects=1)
        assert got[url + '/moved']['http.probe.status'].volume == 200

    def test_tls_verified_and_a_bad_certificate_fails(self):
        cert, key = self.self_signed_cert()
        url = self.serve(tls=(cert, key))
        bad = self.poll(url + '/')[url + '/']['http.probe.status']
        assert bad.volume == 0
        assert 'certificate' in bad.resource_metadata['error']
        good = self.poll(url + '/', ca_file=cert)[url + '/']
        assert good['http.probe.status'].volume == 200
        assert good['http.probe.tls.time'].volume > 0

    def test_bad_urls_and_secrets(self):
        got = self.poll('ftp://x/', 'http://user:pw1@127.0.0.1:1/',
                        'http://no-such-host.invalid/')
        assert got['ftp://x/']['http.probe.status'].resource_metadata[
            'error'] == 'not an http(s) URL'
        assert 'http://user:***@127.0.0.1:1/' in got
        dns = got['http://no-such-host.invalid/']['http.probe.status']
        assert dns.resource_metadata['error'].startswith('DNS lookup failed')
