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
"""Every pollster the agent can run: the installed plugins and the dynamic
pollsters of ``[polling] pollsters_definitions_dirs``.

Apart from :mod:`telemetry_lib.pollsters.base` so that the dynamic
pollsters (which are pollsters) and the loader (which makes them) do not
import each other.
"""

from telemetry_lib.exceptions import ConfigError
from telemetry_lib import plugins
from telemetry_lib.pollsters import base
from telemetry_lib.pollsters.dynamic import pollster as dynamic


def load_pollsters(conf, names=None):
    """Instantiate the installed pollsters, all or those in ``names``,
    and (without ``names``) the dynamic pollsters of
    ``[polling] pollsters_definitions_dirs``.

    :returns: ``{entry point or definition name: Pollster}``.
    :raises ConfigError: for a bad dynamic pollster definition.
    """
    found = {}
    for name in names or plugins.names(plugins.POLLSTER_NAMESPACE):
        cls = plugins.load_class(plugins.POLLSTER_NAMESPACE, name,
                                 base=base.Pollster)
        found[name] = cls(conf)
    if names is None:
        for name, pollster in dynamic.load_all(conf).items():
            if name in found:
                raise ConfigError('dynamic pollster %r has the name of an '
                                  'installed one' % name)
            found[name] = pollster
    return found
