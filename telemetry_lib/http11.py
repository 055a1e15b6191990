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
"""HTTP/1.1 as :mod:`telemetry_lib.httpserver` speaks it: a request head
parsed, an answer written, a connection's state -- pure functions and
small objects, no threads; the only I/O is a zero-time readability
check and a bounded write.
"""

import http
import io
import select
import selectors
import ssl
import sys
import time
from urllib import parse

#: The answer to a connection refused or evicted.
BUSY = (b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n'
        b'Connection: close\r\n\r\n')
CONTINUE = b'HTTP/1.1 100 Continue\r\n\r\n'


class Headers:
    """Case-insensitive ``get`` over a request's headers."""

    def __init__(self, pairs):
        self._map = {k.lower(): v for k, v in pairs}

    def get(self, name, default=None):
        return self._map.get(name.lower(), default)


class Request:
    __slots__ = ('method', 'path', 'headers', 'body', 'keep_alive', 'query',
                 'pairs')

    def __init__(self, method, path, headers, body, keep_alive, query='',
                 pairs=()):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.query = query
        self.pairs = pairs


class BadRequest(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


class Conn:
    """One client connection, owned by the I/O thread or by one worker."""

    __slots__ = ('sock', 'buf', 'handshaking', 'last_active',
                 'request_started', 'head', 'continued', 'closed')

    def __init__(self, sock, handshaking, now):
        self.sock = sock
        self.buf = bytearray()
        self.handshaking = handshaking
        self.last_active = now
        self.request_started = None     # first byte of the current request
        self.head = None
        self.continued = False
        self.closed = False

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


def parse_head(raw):
    """``(method, path, headers pairs, keep_alive, length, expect,
    query)``.
    """
    try:
        text = raw.decode('iso-8859-1')
    except UnicodeDecodeError:           # pragma: no cover - latin-1
        raise BadRequest(400)
    lines = text.split('\r\n')
    parts = lines[0].split(' ')
    if len(parts) != 3 or not parts[2].startswith('HTTP/1.'):
        raise BadRequest(400)
    method, target, version = parts
    pairs = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(':')
        if not sep or not name or name != name.strip():
            raise BadRequest(400)
        pairs.append((name.lower(), value.strip()))
    headers = dict(pairs)
    lengths = {v for k, v in pairs if k == 'content-length'}
    if 'transfer-encoding' in headers:
        length = None                   # chunked bodies are not taken
    elif not lengths:
        length = 0 if method not in ('POST', 'PUT', 'PATCH') else None
    elif len(lengths) > 1 or not next(iter(lengths)).isdigit():
        raise BadRequest(400)
    else:
        length = int(next(iter(lengths)))
    connection = headers.get('connection', '').lower()
    keep_alive = ('close' not in connection if version == 'HTTP/1.1'
                  else 'keep-alive' in connection)
    target, _, query = target.partition('?')
    path = parse.unquote(target, errors='replace') or '/'
    expect = headers.get('expect', '').lower() == '100-continue'
    return method, path, pairs, keep_alive, length, expect, query


def response(status, ctype, body, head_only, keep_alive, headers=()):
    lines = ['HTTP/1.1 %d %s' % (status, _phrase(status)),
             'Content-Type: %s' % ctype,
             'Content-Length: %d' % len(body)]
    lines.extend('%s: %s' % pair for pair in headers)
    if not keep_alive:
        lines.append('Connection: close')
    head = ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1')
    return head if head_only else head + body


def _phrase(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return 'Status'


def reply(status, ctype, body):
    return status, ctype, body


NOT_FOUND = reply(404, 'text/plain', b'not found\n')


def readable_now(sock):
    """Whether ``sock`` has bytes (or an EOF) waiting to be read."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


def status_only(status):
    return response(status, 'text/plain', b'', True, False)


def send_within(sock, data, timeout):
    """Write ``data`` to a non-blocking ``sock`` within ``timeout``
    seconds, however the client reads: ``True`` (all sent), ``False``
    (the connection failed) or ``None`` (the time ran out).
    """
    deadline = time.monotonic() + timeout
    view = memoryview(data)
    sel = selectors.DefaultSelector()
    try:
        sel.register(sock, selectors.EVENT_WRITE)
        while view:
            try:
                sent = sock.send(view[:262144])
                view = view[sent:]
                continue
            except (BlockingIOError, InterruptedError,
                    ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except (OSError, ssl.SSLError):
                return False
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                return None
        return True
    finally:
        sel.close()


def call_wsgi(app, request, server_name, server_port, scheme):
    """Run a WSGI application on a whole request: ``(status, content
    type, body, other headers)``. The server side of PEP 3333, for the
    small applications the library serves (no streaming, no
    ``write()``-style answers beyond collecting them).
    """
    environ = {
        'REQUEST_METHOD': request.method,
        'SCRIPT_NAME': '',
        'PATH_INFO': request.path,
        'QUERY_STRING': request.query,
        'SERVER_NAME': server_name,
        'SERVER_PORT': str(server_port),
        'SERVER_PROTOCOL': 'HTTP/1.1',
        'CONTENT_LENGTH': str(len(request.body)),
        'wsgi.version': (1, 0),
        'wsgi.url_scheme': scheme,
        'wsgi.input': io.BytesIO(request.body),
        'wsgi.errors': sys.stderr,
        'wsgi.multithread': True,
        'wsgi.multiprocess': False,
        'wsgi.run_once': False,
    }
    for name, value in request.pairs:
        key = name.upper().replace('-', '_')
        if key in ('CONTENT_TYPE', 'CONTENT_LENGTH'):
            if key == 'CONTENT_TYPE':
                environ[key] = value
            continue
        key = 'HTTP_' + key
        environ[key] = ('%s,%s' % (environ[key], value)) if key in environ \
            else value
    answer = {}

    def start_response(status, headers, exc_info=None):
        answer['status'] = int(status.split(' ', 1)[0])
        answer['headers'] = headers
        return answer.setdefault('written', []).append

    result = app(environ, start_response)
    try:
        body = b''.join(answer.get('written', [])) + b''.join(result)
    finally:
        close = getattr(result, 'close', None)
        if close is not None:
            close()
    ctype, others = 'text/plain', []
    for name, value in answer['headers']:
        lower = name.lower()
        if lower == 'content-type':
            ctype = value
        elif lower not in ('content-length', 'connection',
                           'transfer-encoding'):
            others.append((name, value))
    return answer['status'], ctype, body, others
