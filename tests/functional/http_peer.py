"""A real HTTP server on 127.0.0.1 that the tests steer.

It answers POSTs with the status the test sets, can hold requests at a gate
(to keep a batch in flight), and records every JSON body it accepted.
"""

import http.server
import json
import ssl
import threading

from tests import base


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body go out in two writes; with Nagle on, the client's
    # delayed ACK costs 40 ms a request.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):   # keep test output quiet
        pass

    def do_POST(self):
        peer = self.server.peer
        length = int(self.headers.get('Content-Length', 0))
        body = self.rfile.read(length)
        peer.requests += 1
        peer.entered.set()
        peer.gate.wait(30)
        status = peer.status
        if 200 <= status < 300:
            with peer.lock:
                peer.bodies.append(json.loads(body))
                peer.content_types.append(self.headers.get('Content-Type'))
                peer.headers.append(dict(self.headers))
        reply = b'{}' if status < 400 else b'{"error": "told to fail"}'
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(reply)))
        if peer.retry_after is not None and status >= 400:
            self.send_header('Retry-After', str(peer.retry_after))
        self.end_headers()
        self.wfile.write(reply)


class HttpPeer:
    """``start()`` listens (again, on the same port after ``stop()``)."""

    def __init__(self, port=0, certfile=None, keyfile=None):
        self.port = port or base.free_port()
        self.certfile, self.keyfile = certfile, keyfile
        self.status = 200
        self.retry_after = None
        self.bodies = []
        self.content_types = []
        self.headers = []
        self.requests = 0
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self._server = None

    @property
    def url(self):
        scheme = 'https' if self.certfile else 'http'
        return '%s://127.0.0.1:%d/ingest' % (scheme, self.port)

    def start(self):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', self.port),
                                                 _Handler)
        server.daemon_threads = True
        server.peer = self
        if self.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.certfile, self.keyfile)
            server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def items(self):
        with self.lock:
            return [item for body in self.bodies for item in body]
