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
"""Thin stevedore wrappers: find plugins by name, list a namespace.

Plugins are setup.cfg entry points; any installed distribution may add some,
so a third party extends telemetry_lib without touching it. A name that
matches nothing is an error listing the names that do exist.
"""

from importlib import metadata

from stevedore import driver
from stevedore import exception as stevedore_exc

from telemetry_lib.exceptions import PluginLoadError

PUBLISHER_NAMESPACE = 'telemetry_lib.publisher'
STORAGE_NAMESPACE = 'telemetry_lib.storage'
POLLSTER_NAMESPACE = 'telemetry_lib.pollster'

ALARM_RULE_NAMESPACE = 'telemetry_lib.alarm.rule'
ALARM_ACTION_NAMESPACE = 'telemetry_lib.alarm.action'
TRAIT_PLUGIN_NAMESPACE = 'telemetry_lib.trait_plugin'
LISTENER_NAMESPACE = 'telemetry_lib.listener'

NAMESPACES = (PUBLISHER_NAMESPACE, STORAGE_NAMESPACE, POLLSTER_NAMESPACE,
              ALARM_RULE_NAMESPACE, ALARM_ACTION_NAMESPACE,
              TRAIT_PLUGIN_NAMESPACE, LISTENER_NAMESPACE)

#: Names a Ceilometer pipeline may use whose driver this release does not
#: ship yet, so a user learns that rather than "unknown publisher".
_NOT_BUILT_YET = {
    PUBLISHER_NAMESPACE: frozenset((
        'zaqar', 'opentelemetryhttp')),
}


def entry_points(namespace):
    """The entry points of ``namespace``, without importing any plugin."""
    return metadata.entry_points(group=namespace)


def names(namespace):
    """Sorted names of the plugins installed in ``namespace``."""
    return sorted({ep.name for ep in entry_points(namespace)})


def require(namespace, name):
    """Raise :class:`PluginLoadError` unless ``name`` is installed in
    ``namespace``; imports nothing.
    """
    if name not in names(namespace):
        raise PluginLoadError(_unknown_message(
            namespace, namespace.rpartition('.')[2], name))


def load_class(namespace, name, base=None):
    """Import the plugin ``name`` of ``namespace`` and return its class.

    :param base: when given, the class must be a subclass of it.
    :raises PluginLoadError: when no plugin has that name (the message lists
        those that exist), when it fails to import, or when it is not a
        subclass of ``base``.
    """
    label = namespace.rpartition('.')[2]
    # Ask first: stevedore would log its own error for an unknown name.
    require(namespace, name)

    def _raise(manager, entrypoint, exc):
        raise PluginLoadError('%s %r (%s) failed to load: %s: %s'
                              % (label, name, entrypoint.value,
                                 type(exc).__name__, exc)) from exc

    try:
        mgr = driver.DriverManager(namespace, name, invoke_on_load=False,
                                   on_load_failure_callback=_raise)
    except stevedore_exc.NoMatches:
        raise PluginLoadError(_unknown_message(namespace, label, name)) \
            from None
    except stevedore_exc.MultipleMatches as exc:
        raise PluginLoadError('%s %r is registered by more than one '
                              'installed distribution: %s'
                              % (label, name, exc)) from None
    cls = mgr.driver
    if base is not None and not (isinstance(cls, type)
                                 and issubclass(cls, base)):
        raise PluginLoadError('%s %r (%s) is not a subclass of %s.%s'
                              % (label, name, getattr(cls, '__name__', cls),
                                 base.__module__, base.__qualname__))
    return cls


def _unknown_message(namespace, label, name):
    known = names(namespace)
    if name in _NOT_BUILT_YET.get(namespace, ()):
        return ('%s %r is not built in this release of telemetry_lib yet; '
                'installed: %s' % (label, name, ', '.join(known) or 'none'))
    return ('unknown %s %r; installed: %s'
            % (label, name, ', '.join(known) or 'none'))
