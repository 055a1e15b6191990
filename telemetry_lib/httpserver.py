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
"""A small threaded HTTP server for GET endpoints (metrics, health)."""

import http.server
import logging
import threading

from telemetry_lib.exceptions import ConfigError

LOG = logging.getLogger(__name__)


class GetServer:
    """Serves ``handle(path, accept) -> (status, content_type, body)`` (or
    ``None`` for 404) from a daemon thread.
    """

    def __init__(self, host, port, handle, name='http'):
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):
                LOG.debug(name + ': ' + fmt, *args)

            def do_GET(self):
                reply = handle(self.path.split('?', 1)[0],
                               self.headers.get('Accept') or '')
                status, ctype, body = reply or (404, 'text/plain',
                                                b'not found\n')
                self.send_response(status)
                self.send_header('Content-Type', ctype)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        try:
            self._httpd = http.server.ThreadingHTTPServer((host, port),
                                                          Handler)
        except OSError as exc:
            raise ConfigError('cannot listen on %s:%s: %s'
                              % (host, port, exc.strerror or exc),
                              where=name) from None
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self._name = name

    @property
    def url(self):
        return 'http://%s:%d' % (self.host, self.port)

    def start(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True,
                         name=self._name).start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()
