"""The HTTP stack under the attacks of issue 20 (items 2 and 3): slow
headers, idle floods, pipelining and half-closed sockets. The probe is
``/healthz``; it must be answered *while* the attack is still going on,
which is a condition, not a timing.
"""

import re
import socket
import threading
import urllib.request

from telemetry_lib.httpserver import GetServer
from tests import base


def _ok(path, accept):
    return (200, 'text/plain', b'ok\n') if path == '/healthz' else None


class AttackTest(base.TestCase):

    def serve(self, **kw):
        kw.setdefault('threads', 4)
        kw.setdefault('max_connections', 64)
        server = GetServer('127.0.0.1', 0, _ok, **kw)
        self.addCleanup(server.close)
        return server.start()

    def probe(self, server):
        with urllib.request.urlopen(server.url + '/healthz',
                                    timeout=10) as r:
            return r.status, r.read()

    def connect(self, server, count):
        socks = [socket.create_connection((server.host, server.port),
                                          timeout=10)
                 for _ in range(count)]
        self.addCleanup(lambda: [s.close() for s in socks])
        return socks


class TestSlowHeaders(AttackTest):

    def test_trickled_headers_hold_no_worker_and_are_cut(self):
        # As many trickling clients as workers, and more.
        server = self.serve(idle_timeout=30, request_timeout=3)
        socks = self.connect(server, 8)
        head = b'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ' + b'a' * 40
        for s in socks:
            s.sendall(head[:1])
        sent = 1
        # Each probe is answered while every trickler is mid-head.
        for _ in range(3):
            for s in socks:
                s.sendall(head[sent:sent + 1])
            sent += 1
            assert self.probe(server) == (200, b'ok\n')
        # The request deadline, not the idle one, closes them: each gets
        # a 408 and EOF although it kept sending.
        for s in socks:
            s.settimeout(20)
            data = b''
            while True:
                try:
                    s.sendall(b'a')
                except OSError:
                    pass
                try:
                    chunk = s.recv(4096)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    # Our last byte reached a closed socket: the end.
                    break
                if not chunk:
                    break
                data += chunk
            assert data.startswith(b'HTTP/1.1 408'), data
        assert server.counts['request_timeout'] == 8


class TestIdleFlood(AttackTest):

    def test_healthz_gets_through_300_idle_connections(self):
        server = self.serve(idle_timeout=30)
        threads_before = threading.active_count()
        self.connect(server, 300)
        # Every one of them is still open (30 s idle timeout), yet the
        # probe evicts the longest idle and is answered.
        for _ in range(5):
            assert self.probe(server) == (200, b'ok\n')
        assert server.counts['evicted'] >= 300 - 64
        assert threading.active_count() <= threads_before

    def test_a_flood_of_busy_connections_is_refused_503(self):
        server = self.serve(idle_timeout=30, max_connections=8,
                            request_timeout=30)
        # Half-sent requests are not idle: they are not evicted.
        busy = self.connect(server, 8)
        for s in busy:
            s.sendall(b'GET /healthz HTTP/1.1\r\n')
        assert base.wait_until(lambda: len(server._conns) == 8, 10)
        extra = self.connect(server, 1)[0]
        assert extra.recv(4096).startswith(b'HTTP/1.1 503')
        for s in busy:
            s.sendall(b'\r\n')
            assert s.recv(4096).startswith(b'HTTP/1.1 200')


class TestPipeliningAndHalfClose(AttackTest):

    def test_pipelined_requests_are_answered_in_order(self):
        server = self.serve(post=lambda p, h, b: (200, 'text/plain',
                                                  b'got %d\n' % len(b)))
        s = self.connect(server, 1)[0]
        s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
                  b'POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n'
                  b'\r\nabcGET /nope HTTP/1.1\r\nHost: x\r\n'
                  b'Connection: close\r\n\r\n')
        data = b''
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        statuses = re.findall(rb'HTTP/1\.1 \d+ [^\r]*', data)
        assert statuses == [b'HTTP/1.1 200 OK', b'HTTP/1.1 200 OK',
                            b'HTTP/1.1 404 Not Found'], data
        assert b'got 3\n' in data

    def test_half_closed_after_a_request_is_answered(self):
        server = self.serve()
        s = self.connect(server, 1)[0]
        s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
        s.shutdown(socket.SHUT_WR)
        data = b''.join(iter(lambda: s.recv(4096), b''))
        assert data.startswith(b'HTTP/1.1 200'), data

    def test_half_closed_mid_request_frees_the_connection(self):
        server = self.serve()
        socks = self.connect(server, 20)
        for s in socks:
            s.sendall(b'GET /healthz HTTP/1.1\r\nHo')
            s.shutdown(socket.SHUT_WR)
        assert base.wait_until(lambda: not server._conns, 10)
        assert self.probe(server) == (200, b'ok\n')

    def test_an_oversized_head_is_431(self):
        server = self.serve()
        s = self.connect(server, 1)[0]
        s.sendall(b'GET /healthz HTTP/1.1\r\n' + b'X: ' + b'a' * 70000)
        assert s.recv(4096).startswith(b'HTTP/1.1 431')

    def test_garbage_is_400_and_stop_is_bounded(self):
        server = self.serve()
        s = self.connect(server, 1)[0]
        s.sendall(b'\x16\x03\x01 nonsense\r\n\r\n')
        assert s.recv(4096).startswith(b'HTTP/1.1 400')
        self.connect(server, 10)
        # Every thread ends, held connections or not.
        assert server.close(2.0)


class TestProbeAmidAFlood(base.TestCase):

    def test_a_request_waiting_unread_is_not_evicted(self):
        # The soak found it: a /healthz probe accepted in the same burst
        # as a flood was evicted as "idle" before its bytes were read.
        import selectors

        from telemetry_lib import http11
        server = GetServer('127.0.0.1', 0, _ok)
        sel = selectors.DefaultSelector()
        self.addCleanup(sel.close)
        pairs = [socket.socketpair() for _ in range(2)]
        self.addCleanup(lambda: [s.close() for p in pairs for s in p])
        probe, idle = (http11.Conn(p[0], False, now)
                       for p, now in zip(pairs, (1.0, 2.0)))
        pairs[0][1].sendall(b'GET /healthz HTTP/1.1\r\n\r\n')
        for conn in (probe, idle):
            server._conns[conn.sock.fileno()] = conn
            sel.register(conn.sock, selectors.EVENT_READ, conn)
        # The probe is the older one, yet its request waits unread.
        assert server._evict_idle(sel)
        assert idle.closed and not probe.closed
        assert not server._evict_idle(sel)
        assert server.counts['evicted'] == 1
