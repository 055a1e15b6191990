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
"""The publisher contract.

A publisher encodes one batch and sends it, and says how it went. Queueing,
batching, retries, back-pressure and loss accounting belong to the delivery
core (:mod:`telemetry_lib.delivery`), which drives every publisher alike.
"""

import abc
import logging
import socket

from oslo_config import cfg

from telemetry_lib.exceptions import PermanentError
from telemetry_lib import lifecycle
from telemetry_lib import plugins
from telemetry_lib.url import TelemetryURL

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('telemetry_secret',
               secret=True,
               default='',
               help='Secret for the HMAC-SHA256 message_signature of '
                    'samples and events, computed as Ceilometer computes '
                    'it so Ceilometer consumers can verify ours. Empty '
                    'turns signing off (its cost is per sample).'),
    cfg.HostAddressOpt('host',
                       help='Name of this host in publisher ids '
                            '(telemetry.publisher.<host>). Defaults to the '
                            'machine host name.'),
]
GROUP = 'publisher'


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def publisher_id(conf):
    """``telemetry.publisher.<host>``, as Ceilometer's publishers sign."""
    return 'telemetry.publisher.%s' % (conf.publisher.host
                                       or socket.gethostname())


class Publisher(lifecycle.Component):
    """Base class of every publisher plugin.

    The contract, which the delivery core relies on:

    * **Blocking.** ``publish_samples`` and ``publish_events`` block until
      the batch is delivered or has failed, and never longer than the
      publisher's own timeout. The delivery core calls them from one worker
      thread per publisher, never concurrently on one instance.
    * **No retries inside.** A publisher tries once. On failure it raises
      :class:`~telemetry_lib.exceptions.RetryableError` (a timeout, a 5xx, a
      peer gone: the same batch may succeed later) or
      :class:`~telemetry_lib.exceptions.PermanentError` (it never will). Both
      may name the failed ``items`` (indexes in the batch) so the rest count
      as delivered. It never swallows an error: returning means delivered.
    * **Duplicates.** Delivery is at least once: after a retry or a restart
      from the spool the same sample (same ``id``) may come again. A
      publisher that can write idempotently should.
    * **Any other exception** is a bug; the core logs it and counts the
      batch as permanently failed. A ``TypeError`` or ``ValueError`` (an
      item that cannot be encoded) makes the core split the batch until the
      item is alone, and drop only that one (reason ``invalid``).
    * **Lifecycle.** The constructor validates and does no I/O (``pipeline
      validate`` builds every publisher of a file). :meth:`start` connects,
      binds and spawns; the delivery calls it once, before the first
      publish. :meth:`close` returns within its ``timeout``.

    :param conf: the caller's ``oslo_config.cfg.ConfigOpts``; options are
        registered on it, never on the global ``cfg.CONF``.
    :param url: the parsed :class:`~telemetry_lib.url.TelemetryURL`.
        Validate its options here and fail loudly (``InvalidURL``).
    """

    #: URL options the publisher reads; others are logged as unknown.
    url_options = frozenset()
    #: Whether ``publish_events`` is implemented.
    supports_events = False

    def __init__(self, conf, url):
        register_opts(conf)
        self.conf = conf
        self.url = url
        unknown = url.unknown_options(self.url_options)
        if unknown:
            LOG.warning('Publisher %s ignores unknown option(s) %s',
                        url, ', '.join(unknown))

    @abc.abstractmethod
    def publish_samples(self, samples):
        """Send a batch of :class:`~telemetry_lib.sample.Sample`."""

    def publish_events(self, events):
        """Send a batch of :class:`~telemetry_lib.sample.Event`."""
        raise PermanentError('publisher %s does not publish events'
                             % self.url.scheme)

    def publish_actions(self, actions):
        """Send a batch of alarm notifications, ``(id, body)`` pairs
        (alarm action plugins only).
        """
        raise PermanentError('publisher %s does not carry alarm actions'
                             % self.url.scheme)

    def start(self):
        """Connect, bind, spawn: the I/O construction must not do.

        :raises telemetry_lib.exceptions.ConfigError: when it cannot start
            at all (a port in use); a peer that is down is not that: the
            first publish fails and is retried.
        """

    def close(self, timeout=None):
        """Release connections and files within ``timeout`` seconds;
        after this, publish no more. Returns an
        :class:`~telemetry_lib.lifecycle.Outcome` (the delivery core holds
        the items, so only ``finished`` and ``reason`` say anything).
        """
        return lifecycle.DONE

    def adjustments(self):
        """``{reason: count}`` of changes made to what was sent so a
        consumer would accept it (the agent exports them).
        """
        return {}

    def http_routes(self):
        """``{path: handler}`` this publisher serves on the agent's HTTP
        endpoint; ``handler(accept_header)`` returns ``(content_type,
        body)``. An exporter uses it; most publishers serve nothing.
        """
        return {}

    @classmethod
    def for_url(cls, url):
        """The class that serves ``url``: a publisher whose URL form
        covers several transports (``notifier://?driver=amqp``) picks one.
        """
        return cls

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.url)


def load_publisher(conf, url, namespace=None, base_class=None):
    """Build the publisher a URL names (``scheme`` = entry point name).

    :param url: text or :class:`TelemetryURL`.
    :param namespace: the entry point namespace (publishers by default),
        and ``base_class`` the class the plugin must derive from.
    :raises telemetry_lib.exceptions.InvalidURL: for a bad URL or option.
    :raises telemetry_lib.exceptions.PluginLoadError: for an unknown scheme
        (the message lists the installed publishers).
    """
    if not isinstance(url, TelemetryURL):
        url = TelemetryURL.parse(url)
    cls = plugins.load_class(namespace or plugins.PUBLISHER_NAMESPACE,
                             url.scheme, base=base_class or Publisher)
    return cls.for_url(url)(conf, url)
