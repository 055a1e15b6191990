#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""The one HTTP stack of the library: the agent's ``/metrics``,
``/healthz`` and Alertmanager receiver, and exporter publishers on a port
of their own, all served by cheroot (CherryPy's maintained WSGI server).

Bounded on purpose, so a careless or hostile client costs little:

* a connection waits for its first byte (and between keep-alive
  requests) in a selector, not in a thread, and is closed after
  ``idle_timeout`` seconds of silence; at most ``max_connections`` wait
  so, one more is answered 503 and closed at once;
* ``threads`` workers read and answer requests, each read bounded by the
  idle timeout; ready requests beyond them queue (``max_connections``
  places, then 503);
* a request body over ``max_body`` is answered 413 without being read;
  request headers are limited to 64 KiB;
* TLS when a certificate and key are given, and client certificates
  required when a client CA is. The handshake happens in a worker, under
  the idle timeout, so a client that connects and stays silent cannot
  stall the accept loop;
* IPv4 and IPv6 addresses both work;
* a handler's exception is a 500 and one logged line, never a traceback.
"""

import http
import logging
import queue
import ssl
import threading

from cheroot.ssl import builtin as cheroot_ssl
from cheroot import wsgi

from telemetry_lib.exceptions import ConfigError

LOG = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
_BUSY = (b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n'
         b'Connection: close\r\n\r\n')


class _Headers:
    """Case-insensitive ``get`` over a WSGI environ's request headers."""

    def __init__(self, environ):
        self._environ = environ

    def get(self, name, default=None):
        key = name.upper().replace('-', '_')
        if key not in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            key = 'HTTP_' + key
        return self._environ.get(key, default)


class _LazyTLS(cheroot_ssl.BuiltinSSLAdapter):
    """cheroot's adapter does the TLS handshake in its accept loop: one
    silent client would stall every other one for the idle timeout. Here
    the socket is wrapped without a handshake; OpenSSL does it on the
    worker's first read, under that worker's timeout.
    """

    def wrap(self, sock):
        s = self.context.wrap_socket(sock, server_side=True,
                                     do_handshake_on_connect=False)
        return s, {'wsgi.url_scheme': 'https', 'HTTPS': 'on'}


class _Server(wsgi.Server):
    label = 'http'
    max_waiting = 32

    def process_conn(self, conn):
        # cheroot hands a new connection straight to a worker, which then
        # waits up to the idle timeout for its first byte: a few silent
        # clients would hold every worker. Here a new connection first
        # waits in cheroot's selector, with the idle keep-alive ones,
        # where waiting costs a file descriptor and no thread; the
        # selector expires it after the idle timeout. Past max_waiting
        # it is answered 503 at once.
        if getattr(conn, 'telemetry_waited', False):
            try:
                self.requests.put(conn)
            except queue.Full:
                self._refuse(conn)
            return
        conn.telemetry_waited = True
        if self._connections._num_connections >= self.max_waiting:
            self._refuse(conn)
        else:
            self._connections.put(conn)

    def _refuse(self, conn):
        # Not cheroot's own 503 path: it leaves the answer in a buffer
        # and the socket open. A TLS client gets no answer (that would
        # need a handshake, here in the accept loop): it is closed.
        if self.ssl_adapter is None:
            try:
                conn.socket.sendall(_BUSY)
            except OSError:
                pass
        conn.close()

    def error_log(self, msg='', level=logging.INFO, traceback=False):
        # cheroot's own notes (a client gone mid-request, a failed TLS
        # handshake) are the client's problem: one debug line, no
        # traceback on stderr.
        text = str(msg).strip().splitlines()
        LOG.debug('%s: %s', self.label, text[0] if text else level)


def _reply(status, ctype, body):
    return status, ctype, body


NOT_FOUND = _reply(404, 'text/plain', b'not found\n')


class GetServer:
    """Serves ``handle(path, accept) -> (status, content_type, body)`` (or
    ``None`` for 404) for GET and HEAD, and, when given,
    ``post(path, headers, body)`` the same way for POST.

    Construction does no I/O; :meth:`start` binds (and raises
    ``ConfigError`` when it cannot, or when the certificate or key cannot
    be read); :meth:`stop` must be called (cheroot's workers are not
    daemon threads).
    """

    def __init__(self, host, port, handle, name='http', idle_timeout=10.0,
                 max_connections=32, post=None, max_body=1024 * 1024,
                 threads=4, cert_file=None, key_file=None, client_ca=None):
        if bool(cert_file) != bool(key_file):
            raise ConfigError('TLS needs both a certificate and a key file',
                              where=name)
        if client_ca and not cert_file:
            raise ConfigError('client certificates need TLS: a certificate '
                              'and a key file', where=name)
        self._client_ca = client_ca
        self._handle = handle
        self._post = post
        self._max_body = max_body
        self._name = name
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._threads = threads
        self._tls = (cert_file, key_file) if cert_file else None
        self._server = None
        self.host, self.port = host, port

    @property
    def url(self):
        host = '[%s]' % self.host if ':' in self.host else self.host
        return '%s://%s:%d' % ('https' if self._tls else 'http', host,
                               self.port)

    # -- the WSGI application ----------------------------------------------

    def _dispatch(self, environ):
        method = environ['REQUEST_METHOD']
        path = environ.get('PATH_INFO') or '/'
        if method in ('GET', 'HEAD'):
            return self._handle(path, environ.get('HTTP_ACCEPT') or '')
        if method != 'POST' or self._post is None:
            return _reply(405, 'text/plain', b'method not allowed\n')
        try:
            length = int(environ.get('CONTENT_LENGTH') or -1)
        except ValueError:
            length = -1
        if length < 0:
            return _reply(411, 'text/plain', b'length required\n')
        if length > self._max_body:     # cheroot answers first; a bound
            return _reply(413, 'text/plain', b'body too large\n')
        body = environ['wsgi.input'].read(length)
        return self._post(path, _Headers(environ), body)

    def _app(self, environ, start_response):
        try:
            reply = self._dispatch(environ) or NOT_FOUND
        except Exception as exc:
            LOG.error('%s: %s %s failed: %s: %s', self._name,
                      environ.get('REQUEST_METHOD'),
                      environ.get('PATH_INFO'), type(exc).__name__, exc)
            reply = _reply(500, 'text/plain', b'internal error\n')
        status, ctype, body = reply
        start_response('%d %s' % (status, http.HTTPStatus(status).phrase),
                       [('Content-Type', ctype),
                        ('Content-Length', str(len(body)))])
        return [] if environ['REQUEST_METHOD'] == 'HEAD' else [body]

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self._app,
                         numthreads=self._threads, server_name=self._name,
                         timeout=self._idle_timeout, shutdown_timeout=2,
                         request_queue_size=128,
                         accepted_queue_size=self._max_connections,
                         accepted_queue_timeout=0)
        server.label = self._name
        server.max_waiting = self._max_connections
        server.keep_alive_conn_limit = self._max_connections
        server.max_request_body_size = self._max_body
        server.max_request_header_size = MAX_HEADER_BYTES
        try:
            if self._tls:
                server.ssl_adapter = _LazyTLS(*self._tls)
                if self._client_ca:
                    ctx = server.ssl_adapter.context
                    ctx.load_verify_locations(cafile=self._client_ca)
                    ctx.verify_mode = ssl.CERT_REQUIRED
            server.prepare()
        except (OSError, ssl.SSLError, UnicodeError) as exc:
            if server.ready:
                server.stop()
            cause = exc.__cause__ or exc
            raise ConfigError('cannot listen on %s:%s: %s'
                              % (self.host, self.port,
                                 getattr(cause, 'strerror', None) or cause),
                              where=self._name) from None
        self.host, self.port = server.bind_addr[:2]
        self._server = server
        threading.Thread(target=server.serve, daemon=True,
                         name=self._name).start()
        return self

    def stop(self):
        server, self._server = self._server, None
        if server is not None:
            server.stop()
