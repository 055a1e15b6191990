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
  other statuses permanent.
"""

import logging

from telemetry_lib import delivery
from telemetry_lib.delivery import options as delivery_options
from telemetry_lib import plugins
from telemetry_lib.publisher import base
from telemetry_lib.publisher import http as http_publisher
from telemetry_lib.url import TelemetryURL

LOG = logging.getLogger(__name__)

ACTION_NAMESPACE = plugins.ALARM_ACTION_NAMESPACE


class LogAction(base.Publisher):
    """``log://``: says each notification in the log."""

    def publish_actions(self, actions):
        for _, body in actions:
            LOG.log(logging.WARNING if body.get('current') == 'alarm'
                    else logging.INFO,
                    'alarm %s (%s): %s -> %s: %s', body.get('alarm_name'),
                    body.get('severity'), body.get('previous'),
                    body.get('current'), body.get('reason'))

    def publish_samples(self, samples):
        raise NotImplementedError


class WebhookAction(http_publisher.HttpPublisher):
    """``http(s)://``: Aodh's REST notifier, one POST per notification."""

    def __init__(self, conf, url):
        super().__init__(conf, url)
        # Aodh posts one notification per request; so do we, and report
        # exactly which failed.
        self.batch = False

    def publish_actions(self, actions):
        self._post_all([body for _, body in actions])


def check_installed(url):
    """A ``check_url`` for alarm files: the scheme names an action."""
    plugins.require(ACTION_NAMESPACE, url.scheme)


def build(conf, url, kind='actions'):
    """The action a URL names, behind its own delivery (not started):
    the factory of an alarm :class:`~telemetry_lib.delivery.DeliveryPool`.
    """
    if not isinstance(url, TelemetryURL):
        url = TelemetryURL.parse(url)
    opts = delivery_options.DeliveryOptions.from_conf(conf).with_url(url)
    cls = plugins.load_class(ACTION_NAMESPACE, url.scheme,
                             base=base.Publisher)
    action = cls(conf, url.without(delivery_options.URL_OPTIONS))
    return delivery.Delivery(action, kind='actions', options=opts,
                             name='%s (actions)' % url,
                             key=url.geturl(with_password=True))
