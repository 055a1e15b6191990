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
"""``amqp1://`` (alias ``qdr://``; ``amqps://`` with TLS): STF over AMQP
1.0 to a Qpid Dispatch Router, natively on python-qpid-proton.

URL: ``amqp1://[user:pass@]host:port[,host2:port2]/[address]?option=...``.
Ceilometer's ``notifier://host:port/?driver=amqp&topic=metering`` (what
STF's TripleO templates write) lands here too, with the same addresses.

Formats: ``ceilometer`` (default: the oslo 2.0 envelope to
``anycast/ceilometer/<topic>.sample``, body an AMQP string) and ``collectd``
(value lists to ``collectd/<instance>``, body binary, as collectd sends).
Delivery: ``settle=unsettled`` (default; at least once: ACCEPTED completes,
RELEASED/MODIFIED and timeouts are retryable, REJECTED is permanent) or
``settle=presettled`` (fire and forget, for multicast addresses).
"""

import collections
import ipaddress
import logging

from oslo_config import cfg

from telemetry_lib.clients import amqp1 as client
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import collectd
from telemetry_lib.formats import stf
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

GROUP = 'amqp1'
OPTS = [
    cfg.StrOpt('username', help='SASL user (PLAIN); empty for ANONYMOUS. '
                                'A user in the URL wins.'),
    cfg.StrOpt('password', secret=True, help='SASL password.'),
    cfg.StrOpt('sasl_mechanisms',
               help='Space-separated SASL mechanisms to allow (default: '
                    'PLAIN with a user, else ANONYMOUS).'),
    cfg.BoolOpt('sasl_allow_insecure', default=False,
                help='Allow PLAIN (a password in clear) over a connection '
                     'without TLS to a host off loopback. Loopback routers '
                     'are always allowed; elsewhere use amqps:// or '
                     'ssl=true.'),
    cfg.BoolOpt('ssl', default=False, help='Connect with TLS.'),
    cfg.StrOpt('ssl_ca_file', help='CA bundle to verify the router with '
                                   '(default: the system bundle).'),
    cfg.StrOpt('ssl_cert_file', help='Client certificate (PEM).'),
    cfg.StrOpt('ssl_key_file', help='Client key (PEM).'),
    cfg.StrOpt('ssl_key_password', secret=True,
               help='Password of the client key.'),
    cfg.BoolOpt('ssl_verify_hostname', default=True,
                help="Check the router's name against its certificate (as "
                     "QDR's verifyHostname)."),
    cfg.StrOpt('container_id', help='AMQP container id (default: random).'),
    cfg.FloatOpt('send_timeout', default=30.0, min=0.01, max=3600,
                 help='Seconds a batch may wait for credit, a connection '
                      'and its outcomes before it is retried.'),
    cfg.FloatOpt('heartbeat', min=0.1, max=3600,
                 help='Idle timeout (seconds) to detect a silent peer.'),
    cfg.FloatOpt('reconnect_min', default=0.1, min=0, max=3600,
                 help='First wait before reconnecting.'),
    cfg.FloatOpt('reconnect_max', default=10.0, min=0, max=3600,
                 help='Longest wait between reconnections.'),
    cfg.IntOpt('max_message_size', default=stf.DEFAULT_MAX_BYTES, min=512,
               help="Largest message body, in bytes; batches are split to "
                    "stay under it (STF's Smart Gateway drops messages "
                    "larger than its 16384-byte buffer)."),
]

_OWN_OPTIONS = frozenset(
    o.name for o in OPTS) | {'format', 'settle', 'topic', 'address',
                             'event_address', 'collectd_instance',
                             'collectd_interval', 'values_per_message',
                             'anonymous_relay', 'driver'}
FORMATS = ('ceilometer', 'collectd')
DEFAULT_PORT = 5672
DEFAULT_TLS_PORT = 5671


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def _is_loopback(host):
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AMQP1Publisher(base.Publisher):
    """Publishes to a Qpid Dispatch Router (or any AMQP 1.0 peer)."""

    url_options = _OWN_OPTIONS
    supports_events = True

    def __init__(self, conf, url):
        super().__init__(conf, url)
        register_opts(conf)
        opts = conf[GROUP]

        def opt(name, getter='get_str', **kw):
            value = getattr(url, getter)(name, **kw)
            return opts[name] if value is None else value

        self.format = url.get_str('format', 'ceilometer', choices=FORMATS)
        self.presettled = url.get_str(
            'settle', 'unsettled',
            choices=('unsettled', 'presettled')) == 'presettled'
        self.timeout = opt('send_timeout', 'get_float', minimum=0.01,
                           maximum=3600)
        self.max_bytes = opt('max_message_size', 'get_int', minimum=512)
        topic = url.get_str('topic')
        # The path's first slash separates it from the host, as in any URL:
        # amqp1://qdr/anycast/x sends to "anycast/x"; a leading slash in
        # the address itself (RabbitMQ's "/queue/q") is written twice,
        # amqp1://rabbit//queue/q, or given as ?address=/queue/q.
        path = url.path[1:] if url.path.startswith('/') else url.path
        explicit = url.get_str('address') or path or None
        if self.format == 'collectd':
            self.sample_address = explicit or 'collectd/%s' % url.get_str(
                'collectd_instance', 'telemetry')
        else:
            self.sample_address = explicit or stf.envelope_address(
                topic or 'metering')
        self.event_address = url.get_str('event_address') or explicit or \
            stf.envelope_address(topic or 'event')
        self.interval = url.get_float('collectd_interval', 10.0,
                                      minimum=0.001)
        self.per_message = url.get_int('values_per_message', 1, minimum=1)
        relay = url.get_str('anonymous_relay', 'auto',
                            choices=('auto', 'true', 'false'))
        port = DEFAULT_TLS_PORT if url.scheme == 'amqps' else DEFAULT_PORT
        hosts = [(h.host, h.port or port) for h in url.hosts] or [
            ('127.0.0.1', port)]
        use_tls = (url.scheme == 'amqps'
                   or opt('ssl', 'get_bool', default=None))
        tls = None
        if use_tls:
            tls = client.TLSOptions(
                ca_file=opt('ssl_ca_file'), cert_file=opt('ssl_cert_file'),
                key_file=opt('ssl_key_file'),
                key_password=opts.ssl_key_password,
                verify_hostname=opt('ssl_verify_hostname', 'get_bool',
                                    default=None))
        user = url.username or opts.username
        if url.username and url.password is None:
            raise InvalidURL('a user without a password', where=str(url))
        mechanisms = opt('sasl_mechanisms')
        plain = 'PLAIN' in (mechanisms.split() if mechanisms
                            else ['PLAIN'] if user else [])
        allow_insecure = opt('sasl_allow_insecure', 'get_bool',
                             default=None)
        loopback = all(_is_loopback(h) for h, _ in hosts)
        if plain and not use_tls and not allow_insecure and not loopback:
            raise InvalidURL('SASL PLAIN would send the password in clear '
                             'to %s: use amqps:// (or ssl=true), or set '
                             'sasl_allow_insecure=true if that network is '
                             'trusted' % ', '.join(h for h, _ in hosts),
                             where=str(url))
        self.secret = conf.publisher.telemetry_secret
        self.publisher_id = base.publisher_id(conf)
        self._adjustments = collections.Counter()
        self._log = ratelog.RateLimitedLog(LOG, str(url))
        self.sender = client.AMQP1Sender(
            hosts, presettled=self.presettled, tls=tls, user=user,
            password=url.password if url.username else opts.password,
            sasl_mechanisms=mechanisms,
            allow_insecure=bool(allow_insecure or loopback),
            container_id=opt('container_id'),
            heartbeat=opt('heartbeat', 'get_float', minimum=0.1),
            reconnect_min=opt('reconnect_min', 'get_float', minimum=0),
            reconnect_max=opt('reconnect_max', 'get_float', minimum=0),
            anonymous_relay={'auto': 'auto', 'true': True,
                             'false': False}[relay],
            name=str(url))

    # -- publishing ------------------------------------------------------

    def publish_samples(self, samples):
        if self.format == 'collectd':
            chunks, oversize = collectd.encode(
                samples, self.interval, self.per_message, self.max_bytes)
            self._send(self.sample_address, chunks, oversize, len(samples))
            return
        enc = stf.encode_samples(samples, self.publisher_id, self.secret,
                                 self.max_bytes)
        self._note(enc.adjustments)
        self._send(self.sample_address, enc.chunks, enc.oversize,
                   len(samples))

    def publish_events(self, events):
        if self.format == 'collectd':
            raise PermanentError('the collectd format carries no events')
        enc = stf.encode_events(events, self.publisher_id, self.secret,
                                self.max_bytes)
        self._note(enc.adjustments)
        self._send(self.event_address, enc.chunks, enc.oversize,
                   len(events))

    def _note(self, adjustments):
        if adjustments:
            self._adjustments.update(adjustments)
            self._log.problem('adjust', 'changed what the Smart Gateway '
                              'would drop: %s', dict(adjustments))

    def _send(self, address, chunks, oversize, count):
        if oversize:
            self._adjustments['oversize_dropped'] += len(oversize)
        body = [(address, c.body if self.format == 'collectd'
                 else c.body.decode('utf-8')) for c in chunks]
        batch = self.sender.send(body, self.timeout)
        retry, lost = [], list(oversize)
        counts = collections.Counter()
        for chunk, outcome in zip(chunks, batch.outcomes):
            counts[outcome.value] += 1
            if outcome is client.Outcome.REJECTED:
                lost.extend(chunk.indexes)
            elif not outcome.delivered:
                retry.extend(chunk.indexes)
        if not retry and not lost:
            return
        summary = ', '.join('%d %s' % (n, o) for o, n in sorted(
            counts.items()))
        if counts.get(client.Outcome.RELEASED.value):
            # What a router does with a message no consumer takes (the
            # anonymous relay) and RabbitMQ with a full or missing target.
            summary += '; released by the peer: no consumer on %s?' % (
                address)
        detail = '%s: %d message(s) (%s)%s%s' % (
            address, len(chunks), summary,
            '; %d sample(s) too large for %d bytes' % (
                len(oversize), self.max_bytes) if oversize else '',
            ': %s' % batch.detail if batch.detail else '')
        if retry:
            raise RetryableError(detail, items=retry, permanent_items=lost)
        raise PermanentError(detail, items=lost)

    def adjustments(self):
        return dict(self._adjustments)

    def start(self):
        if self.presettled:
            LOG.warning('%s: settle=presettled: messages count as published '
                        'when sent; a router with no consumer for the '
                        'address drops them and nobody is told', self.url)
        self.sender.start()

    def close(self, timeout=None):
        if not self.sender.close(timeout):
            return lifecycle.Outcome.unfinished(
                'the AMQP I/O thread did not stop in time')
        return lifecycle.DONE
