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
"""telemetry_lib: collect cloud telemetry and deliver it without silent loss.

Only the names in ``__all__`` are the public API; importing this package has
no side effect beyond a ``NullHandler`` on its logger.
"""

import logging

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidQuery
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import PluginLoadError
from telemetry_lib.exceptions import PublishError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.exceptions import StorageError
from telemetry_lib.exceptions import StorageUnavailable
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.sample import Event
from telemetry_lib.sample import Sample
from telemetry_lib.sample import SampleType
from telemetry_lib.sample import Trait
from telemetry_lib.sample import TraitType
from telemetry_lib.url import TelemetryURL

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    'ConfigError', 'Event', 'InvalidQuery', 'InvalidSample', 'InvalidURL',
    'PermanentError', 'PluginLoadError', 'PublishError', 'RetryableError',
    'Sample', 'SampleType', 'StorageError', 'StorageUnavailable',
    'TelemetryError', 'TelemetryURL', 'Trait', 'TraitType',
]
