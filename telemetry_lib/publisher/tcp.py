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
"""``tcp://host:port`` and ``udp://host:port``: samples in Ceilometer's
socket format, for the Smart Gateway's (sg-core) socket transport.

The wire, as Ceilometer 27's ``tcp`` publisher writes it and sg-core's
``socket`` transport with the ``ceilometer-metrics`` handler (``source:
tcp``) reads it: one frame per sample, an 8-byte little-endian length then
the msgpack (``use_bin_type``) of the metering message -- the
``counter_*`` dictionary, with ``publisher_id`` (sg-core refuses a message
without it) and ``message_signature``. UDP: the msgpack alone, one
datagram per sample. The port defaults to Ceilometer's 4952. sg-core
reads into a 64 KiB buffer: ``max_message_size`` (65,527 bytes of msgpack
by default) refuses, as ``permanent``, a sample that would not fit.

Where Ceilometer drops the rest of a batch when a reconnect fails, here a
failed write is retried by the delivery core (and spooled if asked). TCP
has no acknowledgement: what a receiver that closes or dies had not yet
read is lost with it. So after a broken or closed connection, the last
``replay_bytes`` (4 MiB) already written are sent again first: at least
once, the duplicates counted as ``replayed``. Writes have a deadline
(``timeout``): a receiver that stops reading fails the batch, which is
retried, and never holds the worker. No TLS: sg-core's socket transport
has none.
"""

import collections
import logging
import select
import socket
import time

import msgpack

from telemetry_lib.clients import http as http_words
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import msgpack_wire
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)
DEFAULT_PORT = 4952
#: sg-core's read buffer (65,535 bytes) less the length prefix.
TCP_MAX_MESSAGE = 65535 - 8
UDP_MAX_MESSAGE = 65507


def _describe(exc):
    if isinstance(exc, socket.timeout):
        return 'timed out (the receiver is not reading)'
    return http_words.describe_socket_error(exc)


class _SocketPublisher(base.Publisher):

    url_options = frozenset(('timeout', 'max_message_size', 'sg_compat'))
    default_max = TCP_MAX_MESSAGE

    def __init__(self, conf, url):
        super().__init__(conf, url)
        if len(url.hosts) != 1 or not url.hosts[0].host:
            raise InvalidURL('needs one host, as in %s://127.0.0.1:%d'
                             % (url.scheme, DEFAULT_PORT), where=str(url))
        host = url.hosts[0]
        self.address = (host.host, host.port or DEFAULT_PORT)
        self.timeout = url.get_float('timeout', 5.0, minimum=0.001,
                                     maximum=3600)
        self.max_message_size = url.get_int(
            'max_message_size', self.default_max, minimum=64,
            maximum=self.default_max if url.scheme == 'udp' else 2 ** 31)
        self._secret = conf.publisher.telemetry_secret
        # Ceilometer's socket publishers sign with the bare host name; it
        # is sg-core's "publisher" label.
        self._publisher_id = conf.publisher.host or socket.gethostname()
        # Reused: msgpack.packb builds a Packer per call.
        self._packer = msgpack.Packer(use_bin_type=True)
        # sg-core drops, uncounted, a sample whose user_metadata holds a
        # value that is not a string: made strings, as on the AMQP path,
        # unless the receiver is not sg-core.
        self.sg_compat = url.get_bool('sg_compat', True)
        self._adjusted = collections.Counter()
        self._log = ratelog.RateLimitedLog(LOG, str(url))

    @property
    def target(self):
        host, port = self.address
        return '%s://%s:%d' % (self.url.scheme, '[%s]' % host
                               if ':' in host else host, port)

    def _encode(self, samples):
        """``(frames, too_big indexes)``: a frame is the msgpack body after
        its length (8 bytes).
        """
        encoded = self._bodies(samples, framed=True)
        limit = self.max_message_size + 8
        if max(map(len, encoded), default=0) <= limit:
            return encoded, []
        return ([f for f in encoded if len(f) <= limit],
                [i for i, f in enumerate(encoded) if len(f) > limit])

    def _bodies(self, samples, framed=False):
        """The msgpack of each sample's metering message, as sg-core
        takes them.
        """
        bodies, counts = msgpack_wire.encode(
            samples, self._secret, self._publisher_id, self.sg_compat,
            self._packer, framed)
        if counts:
            self._adjusted.update(counts)
            self._log.problem('adjust', 'changed what the Smart Gateway '
                              'would drop: %s', dict(counts))
        return bodies

    def adjustments(self):
        return dict(self._adjusted)

    def _refuse(self, too_big, count):
        if too_big:
            raise PermanentError('%d of %d sample(s) larger than '
                                 'max_message_size=%d once encoded' % (
                                     len(too_big), count,
                                     self.max_message_size), items=too_big)


class TCPPublisher(_SocketPublisher):
    """Frames on one persistent TCP connection."""

    url_options = _SocketPublisher.url_options | {'replay_bytes'}

    def __init__(self, conf, url):
        super().__init__(conf, url)
        self.replay_bytes = url.get_int('replay_bytes', 4 * 1024 * 1024,
                                        minimum=0, maximum=1024 ** 3)
        self._sock = None
        self._broken = False
        self._recent = collections.deque()      # (bytes, frames)
        self._recent_size = 0
        self.replayed = 0

    def start(self):
        # A receiver down now is not an error: the first publish fails
        # and is retried.
        try:
            self._connect(time.monotonic() + self.timeout)
        except OSError:
            self._sock = None

    def _connect(self, deadline):
        sock = socket.create_connection(
            self.address, timeout=max(0.001, deadline - time.monotonic()))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _peer_closed(self):
        try:
            readable, _, _ = select.select([self._sock], [], [], 0)
            return bool(readable) and self._sock.recv(
                1, socket.MSG_PEEK) == b''
        except OSError:
            return True

    def _drop(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _send(self, data):
        deadline = time.monotonic() + self.timeout
        if self._sock is not None and self._peer_closed():
            # Closed (restarted?) since the last batch: what it had not
            # read may be lost with it.
            self._drop()
            self._broken = True
        replay, replay_frames = b'', 0
        if self._sock is None:
            self._connect(deadline)
            if self._broken and self._recent:
                replay = b''.join(c for c, _ in self._recent)
                replay_frames = sum(n for _, n in self._recent)
        self._sock.settimeout(max(0.001, deadline - time.monotonic()))
        # One deadline for the whole write (Python 3.5+ sendall).
        self._sock.sendall(replay + data if replay else data)
        self._broken = False
        self.replayed += replay_frames

    def _remember(self, data, frames):
        if not self.replay_bytes:
            return
        self._recent.append((data, frames))
        self._recent_size += len(data)
        while self._recent and self._recent_size > self.replay_bytes:
            old, _ = self._recent.popleft()
            self._recent_size -= len(old)

    def publish_samples(self, samples):
        encoded, too_big = self._encode(samples)
        if encoded:
            data = b''.join(encoded)
            try:
                self._send(data)
            except OSError as exc:
                self._drop()
                self._broken = True
                raise RetryableError('%s: %s' % (self.target,
                                                 _describe(exc))) from None
            self._remember(data, len(encoded))
        self._refuse(too_big, len(samples))

    def adjustments(self):
        out = super().adjustments()
        if self.replayed:
            out['replayed'] = self.replayed
        return out

    def close(self, timeout=None):
        self._drop()
        return lifecycle.DONE


class UDPPublisher(_SocketPublisher):
    """One datagram per sample; UDP may lose them without a word, as
    Ceilometer's (which also omits the ``publisher_id`` sg-core needs).
    """

    default_max = UDP_MAX_MESSAGE

    def __init__(self, conf, url):
        super().__init__(conf, url)
        self._sock = None

    def start(self):
        family = socket.AF_INET6 if ':' in self.address[0] else \
            socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.settimeout(self.timeout)

    def publish_samples(self, samples):
        too_big, failed, last = [], [], None
        for i, body in enumerate(self._bodies(samples)):
            if len(body) > self.max_message_size:
                too_big.append(i)
                continue
            try:
                self._sock.sendto(body, self.address)
            except OSError as exc:
                failed.append(i)
                last = exc
        if failed:
            raise RetryableError('%s: %s' % (self.target, _describe(last)),
                                 items=failed)
        self._refuse(too_big, len(samples))

    def close(self, timeout=None):
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return lifecycle.DONE
