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
"""A storage driver as a pipeline sink: ``sqlite://``, ``memory://``.

The publisher of a scheme writes into the storage driver of the same name
and URL, so ``sqlite:///var/lib/telemetry/db.sqlite`` in a sink stores there
and ``telemetry-lib measures show`` reads it back.
"""

import logging

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.exceptions import StorageError
from telemetry_lib.publisher import base
from telemetry_lib.storage import base as storage_base

LOG = logging.getLogger(__name__)


class StoragePublisher(base.Publisher):
    """Writes each batch through ``storage_base.load_storage(url)``."""

    def __init__(self, conf, url):
        super().__init__(conf, url)
        try:
            self.storage = storage_base.load_storage(conf, url)
        except StorageError as exc:
            raise ConfigError(str(exc), where=str(url)) from None

    def start(self):
        problem = None
        try:
            self.storage.start()
        except StorageError as exc:
            if not exc.retryable:
                raise ConfigError(str(exc), where=str(self.url)) from None
            problem = exc
        if problem is not None:
            # Busy or away for now: the first write tries again, and the
            # delivery core retries it.
            LOG.warning('%s: %s', self.url, problem)

    def publish_samples(self, samples):
        try:
            self.storage.write(samples)
        except StorageError as exc:
            if exc.retryable:
                raise RetryableError(str(exc)) from None
            raise PermanentError(str(exc)) from None

    def close(self, timeout=None):
        return self.storage.close(timeout)
