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
"""``notifier://[user:pass@]host:port[/vhost]?topic=metering``: Ceilometer's
notifier publisher, over oslo.messaging's rabbit driver.

Compatible with Ceilometer's: exchange ``ceilometer``, routing key
``<topic>.sample``, the oslo 2.0 envelope around a ``metering`` (or
``event``) notification whose payload is the list of metering messages.
With ``driver=amqp`` (STF's pipeline files) the URL is served by the native
AMQP 1.0 publisher instead (:mod:`telemetry_lib.publisher.amqp1`):
oslo.messaging no longer has that driver.

The difference that matters: oslo.messaging's ``Notifier`` logs and swallows
a failed send, so Ceilometer loses the batch without a trace. This publisher
sends through the transport, whose failure reaches the delivery core as a
``RetryableError``: retried, spooled, or dropped and counted -- never lost
silently.

With ``format=ipc`` it sends samples as a Ceilometer *polling* agent does,
so that this library's pollsters can feed an existing
``ceilometer-agent-notification``: a ``sample``-priority notification with
event type ``telemetry.polling``, publisher id ``ceilometer.polling`` and
payload ``{"samples": [<metering messages>]}`` on the ``notifications``
topic (Ceilometer's ``TelemetryIpc`` endpoint turns them back into
samples).
"""

import datetime
import logging
from urllib import parse

from oslo_config import cfg

from telemetry_lib.clients import messaging
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import stf
from telemetry_lib import lifecycle
from telemetry_lib import masking
from telemetry_lib.publisher import amqp1
from telemetry_lib.publisher import base
from telemetry_lib.sample import new_message_id
from telemetry_lib.timeutils import UTC

LOG = logging.getLogger(__name__)

GROUP = 'notifier'
#: What Ceilometer's polling agents send their samples as.
IPC_EVENT_TYPE = 'telemetry.polling'
OPTS = [
    cfg.StrOpt('exchange', default='ceilometer',
               help='Exchange of the notifications (Ceilometer: '
                    'ceilometer).'),
]


class NotifierPublisher(base.Publisher):
    """Sends Ceilometer notifications through oslo.messaging (rabbit)."""

    url_options = frozenset(('topic', 'driver', 'exchange', 'vhost',
                             'format'))
    supports_events = True

    @classmethod
    def for_url(cls, url):
        if url.get('driver') == 'amqp':
            return amqp1.AMQP1Publisher
        return cls

    def __init__(self, conf, url):
        super().__init__(conf, url)
        conf.register_opts(OPTS, group=GROUP)
        oslo_messaging = messaging.oslo_messaging()
        self._om = oslo_messaging
        driver = url.get_str('driver', 'rabbit')
        if driver not in ('rabbit', 'kafka'):
            raise InvalidURL('driver must be rabbit (or amqp, served by the '
                             'amqp1 publisher), not %r' % driver,
                             where=str(url))
        self.topic = url.get_str('topic')
        self.ipc = url.get_str('format', 'metering',
                               choices=('metering', 'ipc')) == 'ipc'
        self.exchange = url.get_str('exchange', conf[GROUP].exchange)
        transport_url = None
        if url.hosts:
            auth = ''
            if url.username or url.password:
                # Quoted: oslo.messaging unquotes them, and cuts an
                # unquoted password at a comma (its host separator).
                auth = '%s:%s@' % (parse.quote(url.username or '', safe=''),
                                   parse.quote(url.password or '', safe=''))
            transport_url = '%s://%s%s%s' % (
                driver, auth, ','.join(str(h) for h in url.hosts),
                url.path or '/')
        try:
            # Parsed now, so a bad URL fails validation; the transport
            # (a driver and its connection pool) is made by start().
            oslo_messaging.TransportURL.parse(conf, transport_url)
        except (oslo_messaging.InvalidTransportURL, ValueError) as exc:
            raise InvalidURL('oslo.messaging refused it: %s'
                             % masking.scrub(str(exc), url.password),
                             where=str(url)) from None
        self._transport_url = transport_url
        self.transport = None
        self.secret = conf.publisher.telemetry_secret
        self.publisher_id = ('ceilometer.polling' if self.ipc
                             else base.publisher_id(conf))

    def start(self):
        if self.transport is not None:
            return
        try:
            self.transport = self._om.get_notification_transport(
                self.conf, url=self._transport_url)
        except (self._om.InvalidTransportURL, self._om.DriverLoadFailure,
                ValueError) as exc:
            raise InvalidURL('oslo.messaging refused it: %s'
                             % masking.scrub(str(exc), self.url.password),
                             where=str(self.url)) from None

    def publish_samples(self, samples):
        messages = ceilometer.samples_to_wire(samples, self.secret)
        if self.ipc:
            self._send(self.topic or 'notifications', IPC_EVENT_TYPE,
                       {'samples': messages})
        else:
            self._send(self.topic or 'metering', 'metering', messages)

    def publish_events(self, events):
        self._send(self.topic or 'event', 'event',
                   ceilometer.events_to_wire(events, self.secret))

    def _send(self, topic, event_type, payload):
        message = {
            'message_id': new_message_id(),
            'publisher_id': self.publisher_id,
            'event_type': event_type,
            'priority': 'SAMPLE',
            'payload': payload,
            'timestamp': stf.oslo_timestamp(datetime.datetime.now(UTC)),
        }
        target = self._om.Target(topic='%s.sample' % topic,
                                 exchange=self.exchange)
        try:
            # The transport, not the Notifier: it raises when the send
            # fails (retry=0: the delivery core owns retries).
            messaging.send_notification(self.transport, target, {},
                                        message, retry=0)
        except Exception as exc:
            raise RetryableError('notification to %s/%s.sample failed: %s: '
                                 '%s' % (self.exchange, topic,
                                         type(exc).__name__, exc)) from None

    def close(self, timeout=None):
        if self.transport is None:
            return lifecycle.DONE
        try:
            self.transport.cleanup()
        except Exception as exc:     # pragma: no cover - best effort
            LOG.debug('transport cleanup: %s', exc)
        return lifecycle.DONE
