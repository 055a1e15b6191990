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
"""A definition field with its optional trait plugin, from a file's entry.

``fields`` alone (a path, a list of paths or a number), or a mapping with
``fields`` and ``plugin`` (a name, or ``{name, parameters}``), as in
Ceilometer's files.
"""

from telemetry_lib.exceptions import PluginLoadError
from telemetry_lib.notification.fields import Field
from telemetry_lib.notification.fields import FieldError
from telemetry_lib.notification.traits import TraitPlugin
from telemetry_lib import plugins


def load_plugin(spec):
    """The :class:`TraitPlugin` a ``plugin:`` entry names, built.

    :raises FieldError: naming what is wrong.
    """
    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, dict):
        name = spec.get('name')
        params = spec.get('parameters') or {}
        if not isinstance(name, str):
            raise FieldError('plugin needs a name')
        if not isinstance(params, dict):
            raise FieldError('plugin %r: parameters must be a mapping'
                             % name)
    else:
        raise FieldError('plugin must be a name or a mapping, not %r'
                         % (spec,))
    try:
        cls = plugins.load_class(plugins.TRAIT_PLUGIN_NAMESPACE, name,
                                 TraitPlugin)
    except PluginLoadError as exc:
        raise FieldError(str(exc)) from None
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise FieldError('plugin %r: %s' % (name, exc)) from None


def field_of(name, spec, compiler):
    """The :class:`Field` an entry describes.

    :raises FieldError: for a path that does not parse, an unknown plugin
        or bad parameters.
    """
    plugin = None
    if isinstance(spec, dict):
        if 'fields' not in spec:
            raise FieldError("'fields' is required")
        if spec.get('plugin') is not None:
            plugin = load_plugin(spec['plugin'])
        spec = spec['fields']
    return Field(name, spec, compiler, plugin)
