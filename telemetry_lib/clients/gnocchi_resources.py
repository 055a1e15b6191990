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
"""Ceilometer's ``gnocchi_resources.yaml``: which meter goes to which
resource type, with which attributes and archive policy.

A user's file loads unchanged. Attribute values are paths into the sample
(``resource_metadata.display_name``) with Ceilometer's alternatives:
``resource_metadata.(instance_flavor_id|(flavor.id)|flavor_id)`` is the
first of the three that has a value.
"""

import fnmatch
import json
import os

from telemetry_lib.exceptions import ConfigError
from telemetry_lib import yamlfile

DEFAULT_FILE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'data', 'gnocchi_resources.yaml')


def parse_path(text):
    """The alternative key paths of an attribute expression, in order."""
    text = text.strip()
    alternatives = [[]]
    i = 0
    while i < len(text):
        if text[i] == '(':
            depth, j = 0, i
            while j < len(text):
                depth += {'(': 1, ')': -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            if depth:
                raise ValueError('unbalanced parentheses in %r' % text)
            options = [p for alt in _split_top(text[i + 1:j])
                       for p in parse_path(alt)]
            alternatives = [a + o for a in alternatives for o in options]
            i = j + 1
        elif text[i] == '.':
            i += 1
        else:
            j = i
            while j < len(text) and text[j] not in '.()':
                j += 1
            alternatives = [a + [text[i:j]] for a in alternatives]
            i = j
    return alternatives


def _split_top(text):
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        depth += {'(': 1, ')': -1}.get(c, 0)
        if c == '|' and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def evaluate(paths, document):
    """The value of the first path that resolves in ``document``."""
    for path in paths:
        value = document
        for key in path:
            if not isinstance(value, dict) or key not in value:
                value = None
                break
            value = value[key]
        if value is not None:
            return value
    return None


class ResourceDefinition:
    """One ``resources:`` entry."""

    def __init__(self, data, default_policy, where, path=None):
        def error(message, field):
            return ConfigError(message, path=path, where=where, field=field,
                               line=getattr(data, 'line', None))
        self.resource_type = data['resource_type']
        metrics = data.get('metrics') or {}
        if isinstance(metrics, list):       # the older list form
            metrics = {m: None for m in metrics}
        if not isinstance(metrics, dict):
            raise error('expected a mapping of meter names', 'metrics')
        self.metrics = {}
        self.patterns = []
        for name, spec in metrics.items():
            if spec is not None and not isinstance(spec, dict):
                raise error('metric %s: expected a mapping such as '
                            '{archive_policy_name: ...}, not %r'
                            % (name, spec), 'metrics')
            policy = (spec or {}).get('archive_policy_name') or \
                default_policy
            if '*' in str(name):
                self.patterns.append((str(name), policy))
            else:
                self.metrics[str(name)] = policy
        attributes = data.get('attributes') or {}
        if not isinstance(attributes, dict):
            raise error('expected a mapping of attribute paths',
                        'attributes')
        self.attributes = {}
        for name, text in attributes.items():
            if not isinstance(text, str):
                raise error('attribute %s: expected a path such as '
                            'resource_metadata.host, not %r' % (name, text),
                            'attributes')
            try:
                self.attributes[name] = parse_path(text)
            except ValueError as exc:
                raise error('attribute %s: %s' % (name, exc),
                            'attributes') from None
        self.event_create = _as_list(data.get('event_create'))
        self.event_delete = _as_list(data.get('event_delete'))
        self.event_update = _as_list(data.get('event_update'))
        self.event_attributes = dict(data.get('event_attributes') or {})
        # Ceilometer's form: {type: '{"=": {"instance_id": "%s"}}'}, the
        # resources an event_delete ends with this one. Parsed here, once;
        # the id goes into the parsed query, so quotes in it are harmless.
        self.associated = {}
        associated = data.get('event_associated_resources') or {}
        if not isinstance(associated, dict):
            raise error('expected a mapping of resource type to query',
                        'event_associated_resources')
        for rtype, template in associated.items():
            try:
                query = json.loads(template)
            except (TypeError, ValueError) as exc:
                raise error('%s: not a JSON query with %%s for the id (%s)'
                            % (rtype, exc), 'event_associated_resources'
                            ) from None
            if '%s' not in json.dumps(query):
                raise error('%s: the query has no %%s for the id' % rtype,
                            'event_associated_resources')
            self.associated[str(rtype)] = query

    def policy_of(self, meter):
        """The archive policy of ``meter``, or ``None`` if not ours."""
        if meter in self.metrics:
            return self.metrics[meter]
        for pattern, policy in self.patterns:
            if fnmatch.fnmatchcase(meter, pattern):
                return policy
        return None


def fill_query(query, resource_id):
    """``query`` with every ``%s`` in its strings replaced by the id."""
    if isinstance(query, dict):
        return {k: fill_query(v, resource_id) for k, v in query.items()}
    if isinstance(query, list):
        return [fill_query(v, resource_id) for v in query]
    if isinstance(query, str):
        return query.replace('%s', resource_id)
    return query


def _as_list(value):
    if not value:
        return ()
    return tuple(value) if isinstance(value, list) else (value,)


class ResourceDefinitions:
    """A loaded ``gnocchi_resources.yaml``."""

    def __init__(self, data, path=None):
        if not isinstance(data, dict) or not isinstance(
                data.get('resources'), list):
            raise ConfigError('expected a mapping with a "resources" list',
                              path=path)
        self.path = path
        self.default_policy = data.get('archive_policy_default',
                                       'ceilometer-low')
        self.archive_policies = list(data.get('archive_policies') or [])
        self.resources = []
        for i, entry in enumerate(data['resources']):
            if not isinstance(entry, dict) or 'resource_type' not in entry:
                raise ConfigError('each resource needs a resource_type',
                                  path=path, line=getattr(entry, 'line',
                                                          None))
            self.resources.append(ResourceDefinition(
                entry, self.default_policy, 'resource %d (%s)' % (
                    i, entry['resource_type']), path))
        self._by_meter = {}

    @classmethod
    def load(cls, path=None):
        path = path or DEFAULT_FILE
        return cls(yamlfile.load(path), path)

    def lookup(self, meter):
        """``(definition, archive policy)`` for ``meter``, or ``None``."""
        found = self._by_meter.get(meter, False)
        if found is False:
            found = None
            for definition in self.resources:
                policy = definition.policy_of(meter)
                if policy is not None:
                    found = (definition, policy)
                    break
            self._by_meter[meter] = found
        return found

    def for_event(self, event_type):
        """``(definition, action)`` pairs an event type triggers."""
        out = []
        for d in self.resources:
            for action, types in (('create', d.event_create),
                                  ('delete', d.event_delete),
                                  ('update', d.event_update)):
                if any(fnmatch.fnmatchcase(event_type, t) for t in types):
                    out.append((d, action))
        return out

    def resource_types(self):
        """``{type: [attribute, ...]}`` to create in Gnocchi."""
        types = {}
        for d in self.resources:
            attrs = types.setdefault(d.resource_type, [])
            for name in list(d.attributes) + [
                    a for a in d.event_attributes if a not in (
                        'id', 'user_id', 'project_id')]:
                if name not in attrs:
                    attrs.append(name)
        return types
