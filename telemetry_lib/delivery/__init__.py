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
"""The delivery core: queueing, batching, retries, spool and loss counting,
one :class:`Delivery` per publisher, kept in a :class:`DeliveryPool` that
outlives pipeline reloads.
"""

from telemetry_lib.delivery.core import Delivery
from telemetry_lib.delivery import options as _options
from telemetry_lib.delivery.options import DeliveryOptions
from telemetry_lib.delivery.pool import DeliveryPool
from telemetry_lib.delivery.pool import drain
from telemetry_lib.delivery.stats import DeliveryStats
from telemetry_lib.lifecycle import Outcome
from telemetry_lib.publisher.base import load_publisher
from telemetry_lib.url import TelemetryURL


def build(conf, url, kind='samples', namespace=None, base_class=None):
    """The publisher a URL names, behind its own :class:`Delivery`, not
    started: construction validates and does no I/O; call ``start()``.

    Delivery options come from ``[delivery]`` in ``conf``, overridden by
    those in the URL's query; the rest of the query goes to the publisher.
    ``namespace`` and ``base_class`` name another family of publishers
    (alarm actions); publishers by default.

    :raises telemetry_lib.exceptions.ConfigError: (or its subclasses
        ``InvalidURL``, ``PluginLoadError``) for anything wrong in the URL.
    """
    if not isinstance(url, TelemetryURL):
        url = TelemetryURL.parse(url)
    opts = DeliveryOptions.from_conf(conf).with_url(url)
    publisher = load_publisher(conf, url.without(_options.URL_OPTIONS),
                               namespace, base_class)
    return Delivery(publisher, kind=kind, options=opts,
                    name='%s (%s)' % (url, kind),
                    key=url.geturl(with_password=True))


__all__ = ['Delivery', 'DeliveryOptions', 'DeliveryPool', 'DeliveryStats',
           'Outcome', 'build', 'drain']
