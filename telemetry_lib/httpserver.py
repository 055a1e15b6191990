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
of their own.

It serves a handful of small endpoints to scrapers, probes and webhooks,
and its whole design is that a careless or hostile client costs little:

* one I/O thread reads every request whole -- TLS handshake, head and
  body -- before a worker sees it, so a client that trickles its headers
  a byte a second (slow-loris) or never speaks holds a file descriptor,
  never a worker;
* a request must arrive whole within ``request_timeout`` seconds of its
  first byte, however it trickles; a connection silent for
  ``idle_timeout`` (before a request, or between keep-alive requests) is
  closed;
* at most ``max_connections`` connections are held; one more evicts the
  longest-idle connection that has sent nothing of a request (answered
  503), so a flood of idle connections cannot keep ``/healthz`` out, and
  is itself refused with a 503 only when every held connection is busy
  with a request;
* ``threads`` workers run handlers and write answers, each write bounded
  by ``idle_timeout``; heads are limited to 64 KiB (431), bodies to
  ``max_body`` (413, not read), a body needs a ``Content-Length`` (411);
* keep-alive and pipelined requests, ``HEAD``, ``Expect: 100-continue``,
  IPv4 and IPv6, TLS with client certificates when a CA is given;
* a handler's exception is a 500 and one logged line, never a traceback.
"""

import collections
import logging
import queue
import selectors
import socket
import ssl
import threading
import time

from telemetry_lib.exceptions import ConfigError
from telemetry_lib import http11
from telemetry_lib import lifecycle

LOG = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024
_TICK = 0.25


class GetServer(lifecycle.Component):
    """Serves ``handle(path, accept) -> (status, content_type, body)`` (or
    ``None`` for 404) for GET and HEAD, and, when given,
    ``post(path, headers, body)`` the same way for POST; or, given
    ``app``, hands every request to that WSGI application (bodies taken
    for POST, PUT, PATCH and DELETE).

    Construction does no I/O; :meth:`start` binds (and raises
    ``ConfigError`` when it cannot, or when the certificate or key cannot
    be read); :meth:`stop` returns within its timeout.
    """

    def __init__(self, host, port, handle, name='http', idle_timeout=10.0,
                 max_connections=32, post=None, max_body=1024 * 1024,
                 threads=4, cert_file=None, key_file=None, client_ca=None,
                 request_timeout=None, app=None):
        if bool(cert_file) != bool(key_file):
            raise ConfigError('TLS needs both a certificate and a key file',
                              where=name)
        if client_ca and not cert_file:
            raise ConfigError('client certificates need TLS: a certificate '
                              'and a key file', where=name)
        self._client_ca = client_ca
        self._handle = handle
        self._post = post
        self._app = app
        self._bodies = (('POST', 'PUT', 'PATCH', 'DELETE') if app
                        else ('POST',) if post else ())
        self._max_body = max_body
        self._name = name
        self._idle_timeout = idle_timeout
        self._request_timeout = request_timeout or min(idle_timeout, 10.0)
        self._max_connections = max_connections
        self._threads = threads
        self._tls = (cert_file, key_file) if cert_file else None
        self.host, self.port = host, port
        self._listener = None
        self._context = None
        self._stopping = threading.Event()
        self._work = queue.Queue()
        self._returned = collections.deque()
        self._wake_r = self._wake_w = None
        self._io_thread = None
        self._workers = []
        self._conns = {}              # fileno -> _Conn, the I/O thread's
        self._busy = 0                # requests with a worker or queued
        self._lock = threading.Lock()
        #: What the server refused or cut, by reason.
        self.counts = collections.Counter()

    @property
    def url(self):
        host = '[%s]' % self.host if ':' in self.host else self.host
        return '%s://%s:%d' % ('https' if self._tls else 'http', host,
                               self.port)

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        if self._listener is not None:
            return self
        try:
            if self._tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(*self._tls)
                if self._client_ca:
                    ctx.load_verify_locations(cafile=self._client_ca)
                    ctx.verify_mode = ssl.CERT_REQUIRED
                self._context = ctx
            info = socket.getaddrinfo(self.host, self.port,
                                      type=socket.SOCK_STREAM,
                                      flags=socket.AI_PASSIVE)[0]
            listener = socket.socket(info[0], socket.SOCK_STREAM)
            try:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                    1)
                listener.bind(info[4])
                listener.listen(128)
                listener.setblocking(False)
            except BaseException:
                listener.close()
                raise
        except (OSError, ssl.SSLError, UnicodeError) as exc:
            raise ConfigError('cannot listen on %s:%s: %s'
                              % (self.host, self.port,
                                 getattr(exc, 'strerror', None) or exc),
                              where=self._name) from None
        self.host, self.port = listener.getsockname()[:2]
        self._listener = listener
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping.clear()
        self._io_thread = threading.Thread(target=self._io_loop, daemon=True,
                                           name=self._name)
        self._io_thread.start()
        self._workers = [threading.Thread(target=self._worker, daemon=True,
                                          name='%s worker' % self._name)
                         for _ in range(self._threads)]
        for t in self._workers:
            t.start()
        return self

    def close(self, timeout=2.0):
        """Stop serving within ``timeout`` seconds (2 when None; a handler
        still running then is left to finish on its daemon thread).
        """
        if self._listener is None:
            return lifecycle.DONE
        deadline = lifecycle.Deadline(2.0 if timeout is None else timeout)
        self._stopping.set()
        self._wake()
        for _ in self._workers:
            self._work.put(None)
        alive = deadline.join([self._io_thread] + self._workers)
        self._listener = None
        if alive:
            return lifecycle.Outcome.unfinished(
                '%d HTTP handler(s) still running' % len(alive))
        return lifecycle.DONE

    # -- the I/O thread ------------------------------------------------------

    def _wake(self):
        try:
            self._wake_w.send(b'x')
        except OSError:
            pass                # full (a wake-up is pending) or closed

    def _io_loop(self):
        listener, wake_r, wake_w = self._listener, self._wake_r, self._wake_w
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, 'accept')
        sel.register(self._wake_r, selectors.EVENT_READ, 'wake')
        next_scan = 0.0
        try:
            while not self._stopping.is_set():
                for key, events in sel.select(_TICK):
                    if key.data == 'accept':
                        self._accept(sel)
                    elif key.data == 'wake':
                        try:
                            self._wake_r.recv(4096)
                        except OSError:
                            pass
                    else:
                        self._readable(sel, key.data)
                while self._returned:
                    self._resume(sel, self._returned.popleft())
                now = time.monotonic()
                if now >= next_scan:
                    next_scan = now + _TICK
                    self._expire(sel, now)
        except Exception:              # pragma: no cover - a bug here
            LOG.exception('%s: the I/O loop failed', self._name)
        finally:
            for conn in list(self._conns.values()):
                conn.close()
            self._conns.clear()
            while self._returned:
                self._returned.popleft().close()
            sel.close()
            listener.close()
            wake_r.close()
            wake_w.close()

    def _accept(self, sel):
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors, say: the next loop tries again.
                LOG.debug('%s: accept failed: %s', self._name, exc)
                return
            now = time.monotonic()
            if len(self._conns) + self._busy >= self._max_connections \
                    and not self._evict_idle(sel):
                self.counts['refused'] += 1
                self._refuse(sock)
                continue
            sock.setblocking(False)
            handshaking = False
            if self._context is not None:
                try:
                    sock = self._context.wrap_socket(
                        sock, server_side=True,
                        do_handshake_on_connect=False)
                except (OSError, ssl.SSLError):
                    sock.close()
                    continue
                handshaking = True
            conn = http11.Conn(sock, handshaking, now)
            self._conns[sock.fileno()] = conn
            sel.register(sock, selectors.EVENT_READ, conn)

    def _evict_idle(self, sel):
        """Close the longest-idle connection with nothing of a request
        read; whether there was one.
        """
        idle = sorted((c for c in self._conns.values()
                       if not c.buf and c.request_started is None),
                      key=lambda c: c.last_active)
        for conn in idle:
            # Bytes waiting in the kernel, not yet read (a burst of
            # accepts is handled before the reads): not idle -- that is
            # how a /healthz probe arriving amid a flood looks.
            if http11.readable_now(conn.sock):
                continue
            self.counts['evicted'] += 1
            self._drop(sel, conn, http11.BUSY)
            return True
        return False

    def _refuse(self, sock):
        # A TLS client gets no answer (that would need a handshake here).
        if self._context is None:
            try:
                sock.setblocking(False)
                sock.send(http11.BUSY)
            except OSError:
                pass
        sock.close()

    def _drop(self, sel, conn, answer=None):
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self._conns.pop(conn.sock.fileno(), None)
        if answer is not None and not conn.handshaking:
            try:
                conn.sock.send(answer)
                # Closing with unread bytes sends a reset, which can destroy
                # the answer before the client reads it: read them first.
                if not isinstance(conn.sock, ssl.SSLSocket):
                    conn.sock.shutdown(socket.SHUT_WR)
                    for _ in range(16):
                        conn.sock.recv(65536, socket.MSG_DONTWAIT)
            except (OSError, ssl.SSLError):
                pass
        conn.close()

    def _expire(self, sel, now):
        for conn in list(self._conns.values()):
            if conn.request_started is not None:
                if now - conn.request_started > self._request_timeout:
                    self.counts['request_timeout'] += 1
                    self._drop(sel, conn, http11.status_only(408))
            elif now - conn.last_active > self._idle_timeout:
                self.counts['idle_timeout'] += 1
                self._drop(sel, conn)

    def _readable(self, sel, conn):
        now = time.monotonic()
        if conn.handshaking:
            try:
                conn.sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if conn.request_started is None:
                    conn.request_started = now
                return
            except (OSError, ssl.SSLError, ValueError) as exc:
                LOG.debug('%s: TLS handshake failed: %s', self._name, exc)
                self.counts['tls_failed'] += 1
                self._drop(sel, conn)
                return
            conn.handshaking = False
            conn.request_started = None
            conn.last_active = now
        eof = False
        while len(conn.buf) <= MAX_HEADER_BYTES + self._max_body:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                break
            except (OSError, ssl.SSLError):
                eof = True
                break
            if not data:
                eof = True
                break
            conn.buf += data
        if conn.buf:
            conn.last_active = now
            if conn.request_started is None:
                conn.request_started = now
        if not self._advance(sel, conn) and eof:
            # Half-closed before a whole request: nothing to answer.
            self._drop(sel, conn)

    def _advance(self, sel, conn):
        """Parse what ``conn`` holds; hand a whole request to a worker.
        Whether the connection left the I/O thread (or was closed).
        """
        if conn.head is None:
            end = conn.buf.find(b'\r\n\r\n')
            if end < 0:
                if len(conn.buf) > MAX_HEADER_BYTES:
                    self.counts['head_too_large'] += 1
                    self._drop(sel, conn, http11.status_only(431))
                    return True
                return False
            try:
                head = http11.parse_head(bytes(conn.buf[:end]))
            except http11.BadRequest as exc:
                self.counts['bad_request'] += 1
                self._drop(sel, conn, http11.status_only(exc.status))
                return True
            del conn.buf[:end + 4]
            conn.head = head
        method, path, pairs, keep_alive, length, expect, query = conn.head
        if method in self._bodies and (length is not None
                                       or method != 'DELETE'):
            if length is None:
                return self._answer_now(sel, conn, 411)
            if length > self._max_body:
                self.counts['body_too_large'] += 1
                return self._answer_now(sel, conn, 413)
            if expect and not conn.continued and len(conn.buf) < length:
                conn.continued = True
                try:
                    conn.sock.send(http11.CONTINUE)
                except (OSError, ssl.SSLError):
                    pass
        elif length:
            # A body where none is taken: answered, then closed (the
            # body is not read).
            keep_alive = False
            length = 0
        if len(conn.buf) < (length or 0):
            return False
        body = bytes(conn.buf[:length or 0])
        del conn.buf[:length or 0]
        conn.head = None
        conn.continued = False
        request = http11.Request(method, path, http11.Headers(pairs), body,
                                 keep_alive, query, pairs)
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self._conns.pop(conn.sock.fileno(), None)
        with self._lock:
            self._busy += 1
        self._work.put((conn, request))
        return True

    def _answer_now(self, sel, conn, status):
        self._drop(sel, conn, http11.status_only(status))
        return True

    def _resume(self, sel, conn):
        """A keep-alive connection back from a worker."""
        if self._stopping.is_set():
            conn.close()
            return
        conn.request_started = time.monotonic() if conn.buf else None
        conn.last_active = time.monotonic()
        self._conns[conn.sock.fileno()] = conn
        sel.register(conn.sock, selectors.EVENT_READ, conn)
        if conn.buf or (hasattr(conn.sock, 'pending')
                        and conn.sock.pending()):
            self._readable(sel, conn)

    # -- workers -------------------------------------------------------------

    def _worker(self):
        while True:
            item = self._work.get()
            if item is None:
                return
            conn, request = item
            try:
                self._serve(conn, request)
            finally:
                with self._lock:
                    self._busy -= 1

    def _serve(self, conn, request):
        status, ctype, body, *headers = self._dispatch(request)
        keep_alive = request.keep_alive and not self._stopping.is_set()
        data = http11.response(status, ctype, body,
                               request.method == 'HEAD', keep_alive,
                               headers[0] if headers else ())
        if not self._send(conn, data):
            conn.close()
            return
        if not keep_alive:
            conn.close()
            return
        self._returned.append(conn)
        self._wake()

    def _send(self, conn, data):
        sent = http11.send_within(conn.sock, data, self._idle_timeout)
        if sent is None:
            self.counts['write_timeout'] += 1
        return bool(sent)

    def _dispatch(self, request):
        try:
            if self._app is not None:
                return http11.call_wsgi(self._app, request, self.host,
                                        self.port, 'https' if self._tls
                                        else 'http')
            if request.method in ('GET', 'HEAD'):
                accept = request.headers.get('accept') or ''
                reply = self._handle(request.path, accept)
            elif request.method != 'POST' or self._post is None:
                reply = http11.reply(405, 'text/plain',
                                     b'method not allowed\n')
            else:
                reply = self._post(request.path, request.headers,
                                   request.body)
            return reply or http11.NOT_FOUND
        except Exception as exc:
            LOG.error('%s: %s %s failed: %s: %s', self._name, request.method,
                      request.path, type(exc).__name__, exc)
            return http11.reply(500, 'text/plain', b'internal error\n')
