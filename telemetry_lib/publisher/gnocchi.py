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
"""``gnocchi://[host:port]?archive_policy=...&resources_definition_file=...``

Samples and resource-changing events into Gnocchi, one request per
delivery batch. How (batched writes by metric id, concurrent resource
creation, an attribute-hash LRU that spares unchanged resources a PATCH,
archive policies and resource types ensured in the background) is
:mod:`telemetry_lib.clients.gnocchi_writer`'s, shared with the storage
driver. 5xx, timeouts and connection errors are retryable; other 4xx
permanent, logged with sizes, never the payload.
"""

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.clients import gnocchi_resources
from telemetry_lib.clients.gnocchi_writer import GnocchiWriter
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base


class GnocchiPublisher(base.Publisher):
    """Publishes samples (and resource-changing events) into Gnocchi."""

    url_options = frozenset(('archive_policy', 'filter_project',
                             'resources_definition_file', 'unmapped',
                             'cache_size', 'cache_ttl', 'ssl'))
    supports_events = True

    def __init__(self, conf, url):
        super().__init__(conf, url)
        gnocchi_client.register_opts(conf)
        definitions = gnocchi_resources.ResourceDefinitions.load(
            url.get_str('resources_definition_file'))
        self.writer = GnocchiWriter(
            gnocchi_client.make_client(conf, url), definitions,
            archive_policy=url.get_str('archive_policy'),
            filter_project=url.get_str('filter_project'),
            unmapped=url.get_str('unmapped', 'generic',
                                 choices=('generic', 'drop')),
            workers=conf[gnocchi_client.GROUP].pool_size,
            cache_size=url.get_int('cache_size', 10000, minimum=1),
            cache_ttl=url.get_float('cache_ttl', 3600.0, minimum=0),
            name=str(url))

    def start(self):
        self.writer.start()

    def publish_samples(self, samples):
        self._raise(*self.writer.write(samples))

    def publish_events(self, events):
        self._raise(*self.writer.events(events))

    @staticmethod
    def _raise(retry, lost, errors):
        if retry:
            raise RetryableError('; '.join(errors[:3]), items=retry,
                                 permanent_items=lost)
        if lost:
            raise PermanentError('; '.join(errors[:3]), items=lost)

    def adjustments(self):
        return dict(self.writer.adjustments)

    def close(self, timeout=None):
        self.writer.close()
        return lifecycle.DONE
