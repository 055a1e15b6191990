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
"""A small threaded HTTP server for GET endpoints (metrics, health).

Bounded on purpose: a connection that sends nothing for ``idle_timeout``
seconds is closed, and at most ``max_connections`` are served at once (one
more is closed as soon as it is accepted), so idle or slow clients cannot
pile up threads. IPv4 and IPv6 addresses both work.
"""

import http.server
import ipaddress
import logging
import socket
import threading

from telemetry_lib.exceptions import ConfigError

LOG = logging.getLogger(__name__)


def _family(host):
    try:
        return (socket.AF_INET6 if ipaddress.ip_address(host).version == 6
                else socket.AF_INET)
    except ValueError:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return infos[0][0] if infos else socket.AF_INET


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    slots = None
    refused = 0

    def process_request(self, request, client_address):
        # Past the limit a connection is closed at once: a flood of idle
        # sockets costs neither threads nor the accept loop.
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class GetServer:
    """Serves ``handle(path, accept) -> (status, content_type, body)`` (or
    ``None`` for 404) from daemon threads.

    Construction does no I/O; :meth:`start` binds (and raises
    ``ConfigError`` when it cannot).
    """

    def __init__(self, host, port, handle, name='http', idle_timeout=10.0,
                 max_connections=32, post=None, max_body=1024 * 1024):
        self._host = host
        self._port = port
        self._handle = handle
        self._post = post
        self._max_body = max_body
        self._name = name
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._httpd = None
        self.host, self.port = host, port

    def _handler_class(self):
        handle, name = self._handle, self._name
        post, max_body = self._post, self._max_body

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = self._idle_timeout
            protocol_version = 'HTTP/1.1'

            def log_message(self, fmt, *args):
                LOG.debug(name + ': ' + fmt, *args)

            def do_POST(self):
                reply = None
                if post is not None:
                    try:
                        length = int(self.headers.get('Content-Length'))
                    except (TypeError, ValueError):
                        length = -1
                    if length < 0:
                        reply = (411, 'text/plain', b'length required\n')
                    elif length > max_body:
                        # Not read: the connection is closed instead.
                        self.close_connection = True
                        reply = (413, 'text/plain', b'body too large\n')
                    else:
                        reply = post(self.path.split('?', 1)[0],
                                     self.headers, self.rfile.read(length))
                self._reply(reply)

            def do_GET(self):
                self._reply(handle(self.path.split('?', 1)[0],
                                   self.headers.get('Accept') or ''))

            def handle_one_request(self):
                # A handler's bug is one logged line and a 500 for that
                # request, never a traceback on stderr.
                try:
                    super().handle_one_request()
                except (OSError, ValueError):
                    self.close_connection = True
                except Exception as exc:
                    LOG.error('%s: %s %s failed: %s: %s', name,
                              getattr(self, 'command', '?'),
                              getattr(self, 'path', '?'),
                              type(exc).__name__, exc)
                    self.close_connection = True
                    try:
                        self._reply((500, 'text/plain',
                                     b'internal error\n'))
                    except OSError:
                        pass

            def _reply(self, reply):
                status, ctype, body = reply or (404, 'text/plain',
                                                b'not found\n')
                self.send_response(status)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    @property
    def url(self):
        host = '[%s]' % self.host if ':' in self.host else self.host
        return 'http://%s:%d' % (host, self.port)

    def start(self):
        if self._httpd is not None:
            return self
        server_class = type('Server', (_Server,), {
            'address_family': _family(self._host),
            'slots': threading.BoundedSemaphore(self._max_connections)})
        try:
            self._httpd = server_class((self._host, self._port),
                                       self._handler_class())
        except (OSError, UnicodeError) as exc:
            raise ConfigError('cannot listen on %s:%s: %s'
                              % (self._host, self._port,
                                 getattr(exc, 'strerror', None) or exc),
                              where=self._name) from None
        self.host, self.port = self._httpd.server_address[:2]
        threading.Thread(target=self._httpd.serve_forever, daemon=True,
                         name=self._name).start()
        return self

    def stop(self):
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd = None
