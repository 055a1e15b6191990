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
"""Receivers of Ceilometer's socket publishers -- the collector's inputs.

Ceilometer's ``udp://`` publisher sends one datagram per sample, a msgpack
metering message; its ``tcp://`` publisher (and ours) sends each one
framed by its length in 8 little-endian bytes. These listeners
(``telemetry_lib.listener`` entry points ``udp`` and ``tcp``) take them,
verify each message's signature when ``[publisher] telemetry_secret`` is
set, and hand the samples to the pipelines.

Bounded and counted: a datagram or frame over ``max_message_bytes`` is
refused (a TCP stream that announces one is closed: it cannot be
resynchronised); a message that is not msgpack, not a metering message,
unsigned or wrongly signed is dropped and counted by reason
(:attr:`SocketReceiver.counts`, on ``/metrics``). Back-pressure: when the
pipelines' queues are past their high water, the TCP receiver stops
reading (the senders' buffers fill, as TCP meant them to) and tries again
after ``retry_delay``; UDP cannot wait, so what the pipelines refuse is
counted (``refused``), and what the kernel dropped before the receiver
read it is read from ``/proc/net/udp`` (``kernel_dropped``). At most
``max_connections`` TCP connections; one that stays silent for
``idle_timeout`` is closed. Both bind ``127.0.0.1`` unless told otherwise.
"""

import collections
import logging
import os
import selectors
import socket
import struct
import threading
import time

import msgpack
from oslo_config import cfg

from telemetry_lib.collector import base
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.formats import ceilometer
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

GROUP = 'collector'
OPTS = [
    cfg.ListOpt('listeners', default=[],
                help='Other listeners to start (names of '
                     'telemetry_lib.listener entry points, a third '
                     "party's included); udp and tcp start from "
                     'udp_listen and tcp_listen, the notification listener '
                     'from [notification].'),
    cfg.StrOpt('udp_listen', default='',
               help="host:port to receive Ceilometer's udp:// publisher's "
                    'datagrams on (empty: off; e.g. 127.0.0.1:4952).'),
    cfg.StrOpt('tcp_listen', default='',
               help="host:port to receive Ceilometer's tcp:// publisher's "
                    'frames on (empty: off; e.g. 127.0.0.1:4952).'),
    cfg.IntOpt('max_message_bytes', default=1024 * 1024, min=64,
               max=64 * 1024 * 1024,
               help='Largest datagram or frame taken; a TCP connection '
                    'announcing a larger one is closed.'),
    cfg.IntOpt('max_connections', default=64, min=1, max=65536,
               help='TCP connections held at once; more are refused.'),
    cfg.FloatOpt('idle_timeout', default=300.0, min=1, max=86400,
                 help='Seconds a TCP connection may stay silent.'),
    cfg.FloatOpt('retry_delay', default=0.5, min=0.01, max=60,
                 help='Seconds before a batch the pipelines refused (past '
                      'their high water) is offered again.'),
    cfg.FloatOpt('high_water', default=0.8, min=0.01, max=1.0,
                 help="Fraction of a publisher queue's bound past which "
                      'the receivers stop reading (TCP) or count what '
                      'they refuse (UDP).'),
]

#: Reasons a message is dropped, as counted.
DROPS = ('malformed', 'bad_signature', 'oversize', 'refused')
_LENGTH = struct.Struct('<Q')
_BATCH = 500


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class Dropped(Exception):
    """A message not taken: ``reason`` (one of :data:`DROPS`) and why."""

    def __init__(self, reason, detail):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def decode(data, secret):
    """A :class:`~telemetry_lib.Sample` from one msgpack metering message.

    :raises Dropped: ``malformed`` or ``bad_signature``.
    """
    try:
        msg = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as exc:
        raise Dropped('malformed', 'not msgpack: %s'
                      % str(exc)[:100]) from None
    if secret and not (isinstance(msg, dict)
                       and ceilometer.verify_signature(msg, secret)):
        raise Dropped('bad_signature', 'the signature does not verify with '
                      'the telemetry secret')
    try:
        return ceilometer.sample_from_wire(msg)
    except (InvalidSample, TypeError, ValueError) as exc:
        raise Dropped('malformed', str(exc)[:200]) from None


def _address(text, option):
    """``(host, port)`` of ``host:port`` or ``[v6]:port``; port 0 picks a
    free one.
    """
    host, sep, port = text.strip().rpartition(':')
    host = host[1:-1] if host.startswith('[') and host.endswith(']') \
        else host
    if not sep or not host or not (port.isascii() and port.isdigit()) or \
            int(port) > 65535:
        raise ConfigError('must be host:port (such as 127.0.0.1:4952), not '
                          '%r' % text, where='[%s] %s' % (GROUP, option))
    return host, int(port)


class SocketReceiver(base.Listener):
    """What the UDP and TCP receivers share: options, counts, delivery."""

    option = None
    kind = None

    def __init__(self, conf, deliver):
        super().__init__(conf, deliver)
        register_opts(conf)
        conf.register_opts(publisher_base.OPTS, group=publisher_base.GROUP)
        self.opts = conf[GROUP]
        self.secret = conf[publisher_base.GROUP].telemetry_secret or None
        self.address = _address(self.opts[self.option], self.option)
        self.counts = collections.Counter()
        self._lock = threading.Lock()
        self._problems = ratelog.RateLimitedLog(LOG, '%s receiver'
                                                % self.kind)
        self._stopping = threading.Event()
        self._thread = None
        self.sock = None

    def describe(self):
        host, port = self.address
        return '%s samples received on %s:%d' % (self.kind, host, port)

    def count(self, what, n=1):
        with self._lock:
            self.counts[what] += n

    def take(self, data):
        """One message's sample, or ``None`` (counted, logged once in a
        while). The caller counts the messages, once a batch.
        """
        if len(data) > self.opts.max_message_bytes:
            self._drop('oversize', '%d bytes, more than max_message_bytes'
                       % len(data))
            return None
        try:
            return decode(data, self.secret)
        except Dropped as exc:
            self._drop(exc.reason, exc.detail)
            return None

    def _drop(self, reason, detail):
        self.count(reason)
        self._problems.problem(reason, '%s dropped (%s): %s', self.kind,
                               reason, detail)

    def offer(self, samples):
        """Whether the pipelines took ``samples`` (all or none)."""
        if not samples:
            return True
        try:
            accepted, queued = self.deliver(samples, [])
        except Exception as exc:
            LOG.error('%s receiver: delivering failed: %s: %s', self.kind,
                      type(exc).__name__, exc)
            accepted, queued = False, 0
        if accepted:
            self.count('samples', len(samples))
        elif queued:
            self.count('duplicated', queued)
        return accepted

    def snapshot(self):
        with self._lock:
            return dict(self.counts)

    def _bind(self, kind):
        family = socket.AF_INET6 if ':' in self.address[0] else \
            socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            if kind == socket.SOCK_STREAM:
                # (On UDP it would let two receivers share the port.)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.address)
        except OSError as exc:
            sock.close()
            raise ConfigError('cannot listen on %s:%d: %s' % (
                self.address[0], self.address[1],
                exc.strerror or exc), where='[%s] %s'
                % (GROUP, self.option)) from None
        self.address = sock.getsockname()[:2]
        return sock

    def close(self, timeout=None):
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and lifecycle.Deadline(timeout).join([thread]):
            return lifecycle.Outcome.unfinished(
                'the %s receiver did not stop in time' % self.kind)
        return lifecycle.DONE


class UDPReceiver(SocketReceiver):
    """Ceilometer's ``udp://`` publisher's datagrams, one sample each."""

    option = 'udp_listen'
    kind = 'udp'

    def start(self):
        if self._thread is not None:
            return
        self.sock = self._bind(socket.SOCK_DGRAM)
        try:
            # A burst waits in the kernel rather than being dropped (the
            # kernel caps it at net.core.rmem_max).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                 4 * 1024 * 1024)
        except OSError:
            pass
        self.sock.settimeout(0.2)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='udp receiver')
        self._thread.start()

    def _run(self):
        sock, size = self.sock, self.opts.max_message_bytes + 1
        try:
            while not self._stopping.is_set():
                batch, seen = [], 0
                try:
                    data = sock.recv(size)
                    sock.setblocking(False)
                    while True:
                        seen += 1
                        sample = self.take(data)
                        if sample is not None:
                            batch.append(sample)
                        if len(batch) >= _BATCH:
                            break
                        data = sock.recv(size)
                except (BlockingIOError, socket.timeout):
                    pass
                except OSError as exc:
                    if self._stopping.is_set():
                        return
                    LOG.error('udp receiver: %s', exc)
                finally:
                    sock.settimeout(0.2)
                if seen:
                    self.count('messages', seen)
                if batch and not self.offer(batch):
                    # A datagram cannot wait: refused and counted.
                    self._drop('refused', '%d sample(s): the publisher '
                               'queues are past their high water'
                               % len(batch))
                    self.count('refused', len(batch) - 1)
        finally:
            sock.close()

    def kernel_dropped(self):
        """Datagrams the kernel dropped for this socket (its receive
        buffer was full), from ``/proc/net/udp``; ``None`` if unknown.
        """
        sock = self.sock
        if sock is None:
            return None
        try:
            inode = str(os.fstat(sock.fileno()).st_ino)
            name = '/proc/net/udp6' if sock.family == socket.AF_INET6 \
                else '/proc/net/udp'
            with open(name) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 12 and fields[9] == inode:
                        return int(fields[-1])
        except (OSError, ValueError):
            return None
        return None


class _Conn:
    __slots__ = ('sock', 'buf', 'pending', 'last', 'retry_at')

    def __init__(self, sock, now):
        self.sock = sock
        self.buf = bytearray()
        self.pending = []
        self.last = now
        self.retry_at = 0.0


class TCPReceiver(SocketReceiver):
    """Ceilometer's ``tcp://`` publisher's frames: 8 bytes of length
    (little-endian), then one msgpack metering message.
    """

    option = 'tcp_listen'
    kind = 'tcp'

    def start(self):
        if self._thread is not None:
            return
        self.sock = self._bind(socket.SOCK_STREAM)
        self.sock.listen(128)
        self.sock.setblocking(False)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='tcp receiver')
        self._thread.start()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ, None)
        conns = {}
        try:
            while not self._stopping.is_set():
                try:
                    for key, _ in sel.select(0.2):
                        if key.data is None:
                            self._accept(sel, conns)
                        else:
                            self._read(sel, conns, key.data)
                    self._housekeep(sel, conns)
                except Exception:           # pragma: no cover - a bug
                    LOG.exception('tcp receiver: unexpected error')
                    self._stopping.wait(0.2)
        finally:
            for conn in list(conns.values()):
                if conn.pending:
                    # Read, not delivered: the sender counted it sent.
                    self._drop('refused', '%d sample(s) not delivered at '
                               'stop' % len(conn.pending))
                    self.count('refused', len(conn.pending) - 1)
                conn.sock.close()
            sel.close()
            self.sock.close()

    def _accept(self, sel, conns):
        while True:
            try:
                sock, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                LOG.debug('tcp receiver: accept failed: %s', exc)
                return
            if len(conns) >= self.opts.max_connections:
                self.count('connections_refused')
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, time.monotonic())
            conns[sock.fileno()] = conn
            sel.register(sock, selectors.EVENT_READ, conn)
            self.count('connections')

    def _close(self, sel, conns, conn):
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conns.pop(conn.sock.fileno(), None)
        conn.sock.close()

    def _read(self, sel, conns, conn):
        eof = False
        try:
            while len(conn.buf) < 4 * 1024 * 1024:
                data = conn.sock.recv(262144)
                if not data:
                    eof = True
                    break
                conn.buf += data
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            eof = True
        conn.last = time.monotonic()
        if not self._frames(conn):
            self._close(sel, conns, conn)
            return
        if conn.pending and not self.offer(conn.pending):
            # Past high water: stop reading this connection until the
            # batch is taken; the sender's writes wait in TCP's buffers.
            sel.unregister(conn.sock)
            conn.retry_at = time.monotonic() + self.opts.retry_delay
            if eof:
                if conn.buf:
                    self._drop('malformed', 'a frame cut short by the end '
                               'of the connection (%d bytes)'
                               % len(conn.buf))
                conn.buf = None
            return
        conn.pending = []
        if eof:
            if conn.buf:
                # The sender went away in the middle of a frame.
                self._drop('malformed', 'a frame cut short by the end of '
                           'the connection (%d bytes)' % len(conn.buf))
            self._close(sel, conns, conn)

    def _frames(self, conn):
        """Cut whole frames off ``conn.buf`` into ``conn.pending``; False
        when the stream cannot go on (an oversized length).
        """
        buf, at, seen = conn.buf, 0, 0
        limit = self.opts.max_message_bytes
        while len(buf) - at >= 8:
            (length,) = _LENGTH.unpack_from(buf, at)
            if length > limit:
                self._drop('oversize', 'a frame of %d bytes announced: '
                           'connection closed' % length)
                self.count('messages', seen)
                return False
            if len(buf) - at - 8 < length:
                break
            seen += 1
            sample = self.take(bytes(buf[at + 8:at + 8 + length]))
            at += 8 + length
            if sample is not None:
                conn.pending.append(sample)
        del buf[:at]
        if seen:
            self.count('messages', seen)
        return True

    def _housekeep(self, sel, conns):
        now = time.monotonic()
        for conn in list(conns.values()):
            if conn.pending and now >= conn.retry_at:
                if self.offer(conn.pending):
                    conn.pending = []
                    if conn.buf is None:            # the peer had gone
                        self._close(sel, conns, conn)
                        continue
                    sel.register(conn.sock, selectors.EVENT_READ, conn)
                    conn.last = now
                else:
                    conn.retry_at = now + self.opts.retry_delay
                continue
            if not conn.pending and now - conn.last > self.opts.idle_timeout:
                self.count('idle_closed')
                self._close(sel, conns, conn)
