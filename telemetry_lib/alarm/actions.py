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
"""Alarm actions (entry points ``telemetry_lib.alarm.action``): what an
alarm's state change does, delivered by the delivery core like any
publisher's batch -- queued, retried with backoff, spooled when asked,
counted on ``/metrics``; never sent from inside the evaluator.

* ``log://``: a log line per notification.
* ``http://`` and ``https://``: a POST per notification with Aodh's REST
  notifier body (``alarm_name``, ``alarm_id``, ``severity``, ``previous``,
  ``current``, ``reason``, ``reason_data``), TLS verified by default; the
  http publisher's options (``timeout``, ``verify_ssl``, ``clientcert``)
  apply. 2xx delivered; 408/425/429/5xx and connection errors retried;
  other statuses permanent. A ScalingPolicy's pre-signed ``alarm_url``
  (heat-api-cfn) is such a URL: it needs no token.
* ``heat://STACK/RESOURCE`` (``STACK`` a name or ``NAME/ID``): a Heat
  signal to that resource -- a ``OS::Heat::ScalingPolicy`` scales its
  group -- through the catalog's orchestration endpoint, with a token of
  ``[service_credentials]``; ``heat+https://...`` (or ``heat+http``) posts
  to a full native ``signal_url`` with that token. A 4xx from Heat is
  permanent and logged with Heat's message; 5xx, connection errors and
  Keystone outages are retried. Heat acts on ``current: alarm`` only.
* ``trust+http(s)://TRUST_ID@host/path``: Aodh's trust notifier -- the
  REST body with a token scoped to the Keystone trust the API made when
  the alarm was created (a Heat ``signal_url`` behind ``trust+``).
* ``trust+heat://TRUST_ID@``: Aodh's autohealing, in
  :mod:`telemetry_lib.alarm.autohealing`.
"""

import abc
import logging

from keystoneauth1 import exceptions as ka_exc

from telemetry_lib.clients import heat
from telemetry_lib.clients import http as http_client
from telemetry_lib.clients import keystone
from telemetry_lib import delivery
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib import plugins
from telemetry_lib.publisher import base
from telemetry_lib.publisher import http as http_publisher

LOG = logging.getLogger(__name__)

ACTION_NAMESPACE = plugins.ALARM_ACTION_NAMESPACE


class Action(base.Publisher):
    """Base class of every alarm action plugin
    (``telemetry_lib.alarm.action``).

    The publisher contract (:class:`~telemetry_lib.publisher.base.Publisher`:
    blocking, no retries inside, ``RetryableError``/``PermanentError``
    naming the failed items, no I/O in construction), for batches of alarm
    notifications -- ``(id, body)`` pairs, ``body`` Aodh's notification
    (``alarm_name``, ``alarm_id``, ``severity``, ``previous``,
    ``current``, ``reason``, ``reason_data``) -- instead of samples. The
    same delivery core queues, retries and counts them.
    """

    @abc.abstractmethod
    def publish_actions(self, actions):
        """Carry out a batch of ``(id, body)`` notifications."""

    def publish_samples(self, samples):
        raise PermanentError('alarm action %s carries alarm notifications, '
                             'not samples' % self.url.scheme)

    @staticmethod
    def publish_each(actions, send):
        """``send(body)`` for every action, one at a time; those that
        failed raise together -- the retryable to be sent again, the
        permanent dropped -- so the others count as delivered.
        """
        failed, first = [], None
        for i, (_, body) in enumerate(actions):
            try:
                send(body)
            except (RetryableError, PermanentError) as exc:
                failed.append((i, exc))
                first = first or exc
        if not failed:
            return
        retry = [i for i, e in failed if isinstance(e, RetryableError)]
        lost = [i for i, e in failed if not isinstance(e, RetryableError)]
        if retry:
            raise RetryableError(str(first), items=retry,
                                 permanent_items=lost)
        raise PermanentError(str(first), items=lost)


class LogAction(Action):
    """``log://``: says each notification in the log."""

    def publish_actions(self, actions):
        for _, body in actions:
            LOG.log(logging.WARNING if body.get('current') == 'alarm'
                    else logging.INFO,
                    'alarm %s (%s): %s -> %s: %s', body.get('alarm_name'),
                    body.get('severity'), body.get('previous'),
                    body.get('current'), body.get('reason'))


class WebhookAction(Action, http_publisher.HttpPublisher):
    """``http(s)://``: Aodh's REST notifier, one POST per notification."""

    def __init__(self, conf, url):
        super().__init__(conf, url)
        # Aodh posts one notification per request; so do we, and report
        # exactly which failed.
        self.batch = False

    def publish_actions(self, actions):
        self._post_all([body for _, body in actions])


class HeatAction(Action):
    """``heat://STACK/RESOURCE``, ``heat+http(s)://signal_url``."""

    url_options = frozenset(('timeout',))

    def __init__(self, conf, url):
        super().__init__(conf, url)
        keystone.register_opts(conf)
        if url.scheme == 'heat':
            parts = [h.host for h in url.hosts[:1]] + [
                p for p in url.path.split('/') if p]
            if len(parts) < 2:
                raise InvalidURL('a Heat action names a stack and a '
                                 'resource: heat://STACK/RESOURCE',
                                 where=str(url))
            self.stack, self.resource = '/'.join(parts[:-1]), parts[-1]
            self.target = None
        else:
            self.stack = self.resource = None
            self.target = url.with_scheme(url.scheme.split('+', 1)[1]
                                          ).geturl(with_password=True)
        self.timeout = url.get_float('timeout', 10.0, minimum=0.001,
                                     maximum=3600)
        self._session = keystone.make_session(conf)  # validates, no I/O
        opts = conf[keystone.GROUP]
        self.client = heat.HeatClient(self._session, opts.interface,
                                      opts.region_name, self.timeout)

    def publish_actions(self, actions):
        self.publish_each(actions, self._signal)

    def _signal(self, body):
        if self.target:
            self.client.signal(self.target, body=body)
        else:
            self.client.signal(self.stack, self.resource, body)


class TrustWebhookAction(WebhookAction):
    """``trust+http(s)://TRUST_ID[:delete]@host/path``: Aodh's trust
    notifier -- the REST body, posted with a token of ``[service_credentials]``
    scoped to the Keystone trust in the URL (made by the API when the alarm
    was created), so the target (a Heat ``signal_url``, say) sees the alarm's
    creator. Keystone unreachable: retried; the trust gone: permanent.
    """

    def __init__(self, conf, url):
        super().__init__(conf, url)
        if not url.username:
            raise InvalidURL('a trust+ action carries its trust id: '
                             'trust+http://TRUST_ID@host/path',
                             where=str(url))
        scheme = url.scheme.split('+', 1)[1]
        self.target = '%s://%s%s' % (scheme, url.hosts[0], url.path or '/')
        self.auth = None
        self._client = http_client.HttpClient(
            self.timeout, verify=self.verify, cert=self.cert)
        self._session = keystone.trust_session(conf, url.username)

    def _post(self, data, count):
        try:
            token = self._session.get_token()
        except keystone.RETRY as exc:
            raise RetryableError('Keystone: %s' % exc) from None
        except ka_exc.ClientException as exc:
            raise PermanentError('Keystone refused the trust token: %s'
                                 % exc) from None
        self._headers = {'X-Auth-Token': token}
        super()._post(data, count)


def check_installed(url):
    """A ``check_url`` for alarm files: the scheme names an action."""
    plugins.require(ACTION_NAMESPACE, url.scheme)


def build(conf, url, kind='actions'):
    """The action a URL names, behind its own delivery (not started):
    the factory of an alarm :class:`~telemetry_lib.delivery.DeliveryPool`.
    """
    return delivery.build(conf, url, 'actions', namespace=ACTION_NAMESPACE,
                          base_class=Action)
