"""Receivers of Ceilometer's udp:// and tcp:// publishers: what they take,
what they refuse and count, and back-pressure. Fed by our own tcp:// and
udp:// publishers (Ceilometer's byte for byte, tested elsewhere) and by
raw sockets for what no publisher sends.
"""

import socket
import struct
import threading

import msgpack

from telemetry_lib.collector import sockets
from telemetry_lib.formats import ceilometer
from telemetry_lib import Sample
from tests import base


class Sink:
    """``deliver``: takes everything, or refuses while ``full`` is set."""

    def __init__(self):
        self.samples = []
        self.full = threading.Event()
        self.lock = threading.Lock()

    def __call__(self, samples, events):
        if self.full.is_set():
            return False, 0
        with self.lock:
            self.samples.extend(samples)
        return True, len(samples)

    def count(self):
        with self.lock:
            return len(self.samples)


def wire(i, secret=None):
    s = Sample('cpu', 'cumulative', 'ns', i, resource_id='r%d' % i,
               user_id='u', project_id='p', resource_metadata={'n': i})
    return s, msgpack.packb(ceilometer.sample_to_wire(s, secret),
                            use_bin_type=True)


def frame(data):
    return struct.pack('<Q', len(data)) + data


class ReceiverTest(base.TestCase):

    def receiver(self, cls, secret=None, **opts):
        sockets.register_opts(self.conf)
        option = 'udp_listen' if cls is sockets.UDPReceiver else 'tcp_listen'
        self.conf.set_override(option, '127.0.0.1:0', group='collector')
        for k, v in opts.items():
            self.conf.set_override(k, v, group='collector')
        if secret:
            self.conf.set_override('telemetry_secret', secret,
                                   group='publisher')
        sink = Sink()
        r = cls(self.conf, sink)
        r.start()
        self.addCleanup(r.close, 5)
        return r, sink


class TestTCP(ReceiverTest):

    def test_frames_become_samples_and_bad_ones_are_counted(self):
        r, sink = self.receiver(sockets.TCPReceiver, secret='k')
        sent = [wire(i, 'k') for i in range(200)]
        _, unsigned = wire(1000)
        s, signed = wire(1001, 'k')
        tampered = signed.replace(b'r1001', b'r9999')
        data = b''.join(frame(d) for _, d in sent) + frame(unsigned) + \
            frame(tampered) + frame(b'\xc1not msgpack') + frame(
                msgpack.packb({'no': 'sample'}))
        with socket.create_connection(r.address) as c:
            # Trickled in small pieces: frames cut anywhere.
            for i in range(0, len(data), 97):
                c.sendall(data[i:i + 97])
        assert base.wait_until(lambda: r.snapshot().get('messages') == 204,
                               10), r.snapshot()
        assert base.wait_until(lambda: sink.count() == 200, 10)
        assert [x.id for x in sink.samples] == [x.id for x, _ in sent]
        assert sink.samples == [x for x, _ in sent]
        counts = r.snapshot()
        # With a secret, a message without a valid signature is refused
        # before it is read as a sample.
        assert counts['bad_signature'] == 3 and counts['malformed'] == 1

    def test_an_oversized_frame_closes_the_connection(self):
        r, sink = self.receiver(sockets.TCPReceiver, max_message_bytes=64)
        with socket.create_connection(r.address) as c:
            c.sendall(struct.pack('<Q', 10 ** 9))
            c.settimeout(10)
            assert c.recv(10) == b''            # closed by the receiver
        assert r.snapshot()['oversize'] == 1

    def test_past_high_water_it_stops_reading_then_delivers(self):
        r, sink = self.receiver(sockets.TCPReceiver, retry_delay=0.05)
        sink.full.set()
        sent = [wire(i) for i in range(50)]
        with socket.create_connection(r.address) as c:
            c.sendall(b''.join(frame(d) for _, d in sent))
            assert base.wait_until(
                lambda: r.snapshot().get('messages') == 50, 10)
            assert sink.count() == 0
            sink.full.clear()
            assert base.wait_until(lambda: sink.count() == 50, 10)
        assert r.snapshot()['samples'] == 50

    def test_a_cut_frame_is_counted_while_pipelines_refuse(self):
        # The sender leaves mid-frame while the pipelines are past high
        # water: the whole frames wait and are delivered, the cut one is
        # counted (it was dropped without a word before).
        r, sink = self.receiver(sockets.TCPReceiver, retry_delay=0.05)
        sink.full.set()
        sent = [wire(i) for i in range(3)]
        cut = frame(wire(99)[1])[:20]
        with socket.create_connection(r.address) as c:
            c.sendall(b''.join(frame(d) for _, d in sent) + cut)
        assert base.wait_until(
            lambda: r.snapshot().get('messages') == 3, 10), r.snapshot()
        # Whether the end of the connection was read with the refused
        # frames or after they were taken, the cut frame is counted.
        sink.full.clear()
        assert base.wait_until(lambda: sink.count() == 3 and r.snapshot(
        ).get('malformed') == 1, 10), r.snapshot()
        assert r.snapshot()['samples'] == 3

    def test_connections_are_bounded(self):
        r, _ = self.receiver(sockets.TCPReceiver, max_connections=2)
        socks = [socket.create_connection(r.address) for _ in range(2)]
        self.addCleanup(lambda: [s.close() for s in socks])
        assert base.wait_until(
            lambda: r.snapshot().get('connections') == 2, 10)
        extra = socket.create_connection(r.address)
        self.addCleanup(extra.close)
        extra.settimeout(10)
        assert extra.recv(10) == b''
        assert r.snapshot()['connections_refused'] == 1


class TestUDP(ReceiverTest):

    def test_datagrams_become_samples(self):
        r, sink = self.receiver(sockets.UDPReceiver, secret='k')
        sent = [wire(i, 'k') for i in range(100)]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for _, d in sent:
                c.sendto(d, r.address)
            c.sendto(wire(7)[1], r.address)                # unsigned
            c.sendto(b'\x00' * 2000, r.address)            # garbage
        assert base.wait_until(
            lambda: r.snapshot().get('messages') == 102, 10), r.snapshot()
        assert base.wait_until(lambda: sink.count() == 100, 10)
        assert sorted(s.id for s in sink.samples) == sorted(
            s.id for s, _ in sent)
        counts = r.snapshot()
        assert counts['bad_signature'] == 1 and counts['malformed'] == 1
        assert r.kernel_dropped() == 0

    def test_refused_by_full_pipelines_is_counted(self):
        r, sink = self.receiver(sockets.UDPReceiver)
        sink.full.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            for i in range(20):
                c.sendto(wire(i)[1], r.address)
        assert base.wait_until(
            lambda: r.snapshot().get('refused') == 20, 10), r.snapshot()

    def test_an_address_in_use_is_one_line(self):
        from telemetry_lib.exceptions import ConfigError
        r, _ = self.receiver(sockets.UDPReceiver)
        self.conf.set_override('udp_listen', '%s:%d' % r.address,
                               group='collector')
        other = sockets.UDPReceiver(self.conf, Sink())
        with self.assertRaises(ConfigError) as ctx:
            other.start()
        assert 'cannot listen on 127.0.0.1' in str(ctx.exception)


class TestTruncated(ReceiverTest):

    def test_a_frame_cut_short_at_close_is_counted(self):
        r, sink = self.receiver(sockets.TCPReceiver)
        _, data = wire(1)
        with socket.create_connection(r.address) as c:
            c.sendall(frame(data) + frame(data)[:-3])
        assert base.wait_until(lambda: r.snapshot().get('malformed') == 1,
                               10), r.snapshot()
        assert sink.count() == 1
