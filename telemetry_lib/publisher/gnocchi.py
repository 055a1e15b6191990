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

The writing itself is :mod:`telemetry_lib.clients.gnocchi_writer`'s, shared
with the storage driver. Where Ceilometer's Gnocchi publisher loses data
and time, this one:

* sends one request per delivery batch, however many polls or
  notifications it holds: ``batch_resources_metrics_measures(create_metrics
  =True)`` while it meets new resources or metrics, then, once it knows
  their metric ids, ``batch_metrics_measures`` by id, which costs Gnocchi
  about half as much per measure;
* on "Unknown resources" creates the missing ones concurrently (409 is
  fine) and resends; a resource that cannot be created costs only its own
  measures;
* keeps a bounded LRU of each resource's attribute hash (canonical JSON), so
  an unchanged resource is never PATCHed again, and a changed one once;
* ensures archive policies and resource types in a background thread, with
  retries, never blocking measures; measures waiting for one of them are
  retried, while a policy nobody defines is a permanent error for its
  metrics only;
* leaves ``filter_project`` off by default: it exists to stop a feedback
  loop when Gnocchi stores into Swift, and only hides the service project's
  resources on Ceph.

5xx, timeouts and connection errors are retryable; other 4xx permanent,
logged with sizes, never the payload.
"""

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.clients import gnocchi_resources
from telemetry_lib.clients.gnocchi_writer import GnocchiWriter
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
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
