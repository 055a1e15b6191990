"""The delivery core and the http publisher against a real HTTP peer."""

import os
import signal
import subprocess
import sys
import threading
import time

from telemetry_lib import delivery
from telemetry_lib import InvalidURL
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import Sample
from tests import base
from tests.functional.http_peer import HttpPeer

HERE = os.path.dirname(os.path.abspath(__file__))
FAST = 'max_latency=0&retry_initial_delay=0.02&retry_max_delay=0.2'


def samples(n, start=0, prefix='s'):
    return [Sample('net.bytes', 'cumulative', 'B', i, resource_id='vm-%d' % i,
                   id='%s-%d' % (prefix, i))
            for i in range(start, start + n)]


wait_until = base.wait_until


class HttpTest(base.TestCase):

    def peer(self, **kw):
        peer = HttpPeer(**kw).start()
        self.addCleanup(peer.stop)
        self.addCleanup(peer.gate.set)
        return peer

    def build(self, url):
        d = delivery.build(self.conf, url).start()
        self.addCleanup(d.close, 1)
        return d


class TestFaults(HttpTest):

    def test_peer_refuses_for_a_while_then_recovers(self):
        peer = self.peer()
        peer.status = 503
        d = self.build(peer.url + '?max_retries=-1&' + FAST)
        d.put(samples(300))
        assert wait_until(lambda: peer.requests >= 3)
        assert d.stats().published == 0
        peer.status = 200
        assert d.flush(10)
        ids = [item['id'] for item in peer.items()]
        assert sorted(ids) == sorted('s-%d' % i for i in range(300))
        assert len(ids) == len(set(ids)), 'a sample was delivered twice'
        st = d.stats()
        assert st.published == 300 and st.dropped == {}
        assert st.retried >= 300 and st.errors >= 3
        assert peer.content_types[0] == 'application/json'

    def test_peer_down_then_started(self):
        peer = HttpPeer()       # not listening yet: connection refused
        self.addCleanup(peer.stop)
        d = self.build(peer.url + '?max_retries=-1&' + FAST)
        d.put(samples(50))
        assert wait_until(lambda: d.stats().errors >= 2)
        peer.start()
        assert d.flush(10)
        assert len(peer.items()) == 50 and d.stats().dropped == {}

    def test_4xx_is_permanent_not_retried(self):
        peer = self.peer()
        peer.status = 400
        d = self.build(peer.url + '?max_retries=-1&' + FAST)
        with self.assertLogs('telemetry_lib.delivery.core', 'WARNING') as cm:
            d.put(samples(20))
            assert d.flush(10)
        st = d.stats()
        assert st.dropped == {'permanent': 20} and st.failed == 20
        assert peer.requests == 1
        assert any('HTTP 400' in line for line in cm.output)

    def test_429_is_retried_after_the_time_asked(self):
        peer = self.peer()
        peer.status, peer.retry_after = 429, 0.3
        d = self.build(peer.url + '?max_latency=0&retry_initial_delay=0.01'
                       '&retry_max_delay=5')
        started = time.monotonic()
        d.put(samples(5))
        assert wait_until(lambda: peer.requests == 1)
        peer.status = 200
        assert d.flush(10)
        assert time.monotonic() - started >= 0.3
        assert len(peer.items()) == 5 and peer.requests == 2

    def test_per_item_posts_report_partial_failure(self):
        peer = self.peer()
        d = self.build(peer.url + '?batch=false&' + FAST)
        d.put(samples(3))
        assert d.flush(10)
        assert [b['id'] for b in peer.bodies] == ['s-0', 's-1', 's-2']

    def test_bad_url_options(self):
        for url in ('http://h/?timeout=x', 'http:///nohost'):
            with self.assertRaises(InvalidURL):
                publisher_base.load_publisher(self.conf, url)


class TestOverflowWithRealPeer(HttpTest):
    """One sample is held in flight at the peer while 150 more arrive at a
    queue of 100: the counts must say exactly what was dropped.
    """

    def run_policy(self, policy):
        peer = self.peer()
        peer.gate.clear()
        d = self.build(peer.url + '?overflow=%s&max_queue_samples=100&'
                       'max_batch_size=1&block_timeout=0.3&%s'
                       % (policy, FAST))
        d.put(samples(1, prefix='first'))
        assert peer.entered.wait(10)
        accepted = d.put(samples(150))
        peer.gate.set()
        assert d.flush(20)
        st = d.stats()
        got = [item['id'] for item in peer.items()]
        assert st.received == 151
        assert st.published == len(got) == 100
        assert st.dropped == {'overflow': 51}
        assert accepted == 99
        return got

    def test_drop_newest(self):
        got = self.run_policy('drop_newest')
        assert got == ['first-0'] + ['s-%d' % i for i in range(99)]

    def test_drop_oldest(self):
        got = self.run_policy('drop_oldest')
        assert got == ['first-0'] + ['s-%d' % i for i in range(51, 150)]

    def test_block(self):
        got = self.run_policy('block')
        assert got == ['first-0'] + ['s-%d' % i for i in range(99)]


class TestSpoolKill9(HttpTest):

    def child(self, url, spool_dir, count, *extra):
        return subprocess.Popen(
            [sys.executable, os.path.join(HERE, 'spool_child.py'), url,
             spool_dir, str(count)] + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def test_kill_9_loses_nothing_accepted(self):
        peer = HttpPeer()           # down while the first process runs
        self.addCleanup(peer.stop)
        spool_dir = os.path.join(self.tmpdir, 'spool')
        url = peer.url + '?spool=true&max_retries=-1&' + FAST
        first = self.child(url, spool_dir, 500)
        line = first.stdout.readline()
        assert line.startswith('ACCEPTED 500'), (line, first.stderr.read())
        time.sleep(0.2)     # let it fail a few sends on the dead peer
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert first.returncode == -signal.SIGKILL

        peer.start()
        second = self.child(url, spool_dir, 0, '--flush')
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert 'RECOVERED 500' in out and 'PENDING 0' in out, out
        ids = [item['id'] for item in peer.items()]
        assert sorted(ids) == sorted('k-%d' % i for i in range(500))


class TestTLS(HttpTest):

    def setUp(self):
        super().setUp()
        self.cert, self.key = self.self_signed_cert()

    def test_verification_is_on_by_default(self):
        peer = self.peer(certfile=self.cert, keyfile=self.key)
        d = self.build(peer.url + '?max_retries=0&' + FAST)
        with self.assertLogs('telemetry_lib.delivery', 'WARNING') as cm:
            d.put(samples(2))
            assert d.flush(10)
        assert d.stats().dropped == {'retries_exhausted': 2}
        assert any('CERTIFICATE_VERIFY_FAILED' in line or 'SSL' in line
                   for line in cm.output), cm.output

    def test_with_the_right_ca(self):
        peer = self.peer(certfile=self.cert, keyfile=self.key)
        d = self.build(peer.url + '?verify_ssl=%s&%s' % (self.cert, FAST))
        d.put(samples(2))
        assert d.flush(10)
        assert len(peer.items()) == 2


class TestConcurrentProducers(HttpTest):

    def test_many_threads_put_while_delivering(self):
        peer = self.peer()
        d = self.build(peer.url + '?max_batch_size=100&' + FAST)
        threads = [threading.Thread(target=d.put, args=(samples(
            200, start=t * 1000),)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert d.flush(20)
        assert len(set(item['id'] for item in peer.items())) == 1600


class LyingPeer:
    """A raw TCP peer that answers every request with ``head`` and then a
    body of ``size`` bytes, ``pace`` seconds between chunks of ``chunk``:
    a peer that trickles, or one that sends far more than anyone asked.
    """

    def __init__(self, head, size, chunk, pace):
        import socket
        self.head, self.size, self.chunk, self.pace = head, size, chunk, pace
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,),
                             daemon=True).start()

    def _answer(self, conn):
        try:
            conn.recv(65536)
            conn.sendall(self.head % self.size)
            sent = 0
            while sent < self.size and not self.stop.is_set():
                conn.sendall(b'x' * self.chunk)
                sent += self.chunk
                if self.pace:
                    time.sleep(self.pace)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stop.set()
        self.sock.close()


class TestPeersThatLie(HttpTest):

    HEAD = b'HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n'

    def peer_that(self, **kw):
        peer = LyingPeer(self.HEAD, **kw)
        self.addCleanup(peer.close)
        return peer

    def test_a_trickling_answer_is_bounded_by_the_timeout(self):
        # One byte every 0.2 s: each read is quick, the whole is not.
        peer = self.peer_that(size=10 ** 6, chunk=1, pace=0.2)
        pub = publisher_base.load_publisher(
            self.conf, 'http://127.0.0.1:%d/in?timeout=1' % peer.port)
        started = time.monotonic()
        from telemetry_lib import RetryableError
        with self.assertRaises(RetryableError) as ctx:
            pub.publish_samples(samples(3))
        took = time.monotonic() - started
        assert took < 3, took
        assert 'timed out after 1.0s' in str(ctx.exception)

    def test_a_huge_error_body_is_read_only_in_part(self):
        import resource
        peer = self.peer_that(size=300 * 2 ** 20, chunk=2 ** 16, pace=0)
        pub = publisher_base.load_publisher(
            self.conf, 'http://127.0.0.1:%d/in?timeout=10' % peer.port)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        from telemetry_lib import RetryableError
        with self.assertRaises(RetryableError) as ctx:
            pub.publish_samples(samples(3))
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                    - before) / 1024.0
        assert time.monotonic() - started < 5
        assert grown_mb < 20, grown_mb
        assert 'HTTP 500' in str(ctx.exception)
        assert len(str(ctx.exception)) < 1500
