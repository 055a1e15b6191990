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
"""Dynamic pollster definitions: Ceilometer's ``pollsters.d/*.yaml``,
validated as Ceilometer validates them, each problem one
:class:`~telemetry_lib.exceptions.ConfigError` naming the file, the line,
the pollster and the field.

Three kinds, as in Ceilometer: an OpenStack API (``endpoint_type`` from
the Keystone catalog + ``url_path``), a non-OpenStack API (``url_path`` a
whole URL, optionally with ``module``/``authentication_object``), and a
host command (``host_command``).
"""

import importlib
import os
import re

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.pollsters.dynamic import expression
from telemetry_lib import yamlfile

_NAME = re.compile(r'^([\w-]+)(\.[\w-]+)*(\.{[\w-]+})?$')
_MULTI = re.compile(r'^\[([^\]]+)\]\.?(.*)$')
TYPES = ('gauge', 'delta', 'cumulative')
HANDLERS = ('json', 'xml', 'text')

# Field: (default, type or types). Absent from here: refused as unknown.
_FIELDS = {
    'name': (None, str), 'sample_type': (None, str), 'unit': (None, str),
    'value_attribute': (None, str), 'endpoint_type': (None, str),
    'url_path': (None, str), 'metadata_fields': ([], list),
    'skip_sample_values': ([], list), 'value_mapping': ({}, dict),
    'default_value': (-1, (int, float, str)),
    'metadata_mapping': ({}, dict), 'preserve_mapped_metadata': (
        True, bool), 'response_entries_key': (None, str),
    'next_sample_url_attribute': (None, str),
    'user_id_attribute': ('user_id', str),
    'resource_id_attribute': ('id', str),
    'project_id_attribute': ('project_id', str),
    'headers': ({}, dict), 'timeout': (30, (int, float, type(None))),
    'namespaces': ('central', (str, list)),
    'extra_metadata_fields_cache_seconds': (3600, (int, float)),
    'extra_metadata_fields': ([], list),
    'extra_metadata_fields_skip': ([{}], list),
    'response_handlers': (['json'], list), 'base_metadata': ({}, dict),
    'host_command': (None, str), 'module': (None, str),
    'authentication_object': (None, str),
    'authentication_parameters': ('', str),
    'barbican_secret_id': (None, str),
}
_EXTRA_FIELDS = ('name', 'endpoint_type', 'url_path', 'value', 'headers',
                 'next_sample_url_attribute', 'response_entries_key',
                 'extra_metadata_fields_cache_seconds', 'response_handlers')


class Attribute:
    """``"key.nested | op | op"``: a path into an entry, then operations.

    ``"."`` is the entry itself; a key present as is wins over a dotted
    path (``OS-EXT-AZ:availability_zone``).
    """

    def __init__(self, text, names=('value',)):
        self.text = text
        parts = expression.split_operations(text)
        self.key = parts[0]
        self.operations = [expression.Expression(op, names)
                           for op in parts[1:] if op]

    def __call__(self, entry, **env):
        value = lookup(entry, self.key)
        for op in self.operations:
            value = op(value=value, **env)
        return value


def lookup(entry, key):
    if key in ('.', ''):
        return entry
    if isinstance(entry, dict) and key in entry:
        return entry[key]
    value = entry
    for part in key.split('.'):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and \
                int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class Definition:
    """One validated pollster definition."""

    def __init__(self, data, path):
        self.path = path
        self.line = getattr(data, 'line', None)
        if not isinstance(data, dict):
            self._fail(None, 'each pollster is a mapping')
        self.name = data.get('name')
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            self._fail('name', 'must be a dotted meter name (at most one '
                               'trailing .{field}), not %r' % (self.name,))
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            self._fail(unknown[0], 'unknown field (known: %s)' % ', '.join(
                sorted(_FIELDS)))
        for field, (default, types) in _FIELDS.items():
            value = data.get(field, default)
            if value is not None and not isinstance(value, types) or \
                    isinstance(value, bool) and types in (
                        (int, float), (int, float, type(None))):
                self._fail(field, 'has the wrong type: %s' % (
                    type(value).__name__))
            setattr(self, field, value)
        self.kind = ('command' if self.host_command else
                     'external' if self.module or is_absolute(self.url_path)
                     else 'openstack')
        required = {'openstack': ('sample_type', 'unit', 'value_attribute',
                                  'endpoint_type', 'url_path'),
                    'external': ('sample_type', 'unit', 'value_attribute',
                                 'url_path'),
                    'command': ('sample_type', 'unit', 'value_attribute',
                                'host_command')}[self.kind]
        for field in required:
            if not getattr(self, field):
                self._fail(field, 'is required')
        if self.sample_type not in TYPES:
            self._fail('sample_type', 'must be one of %s, not %r'
                       % (', '.join(TYPES), self.sample_type))
        bad = [h for h in self.response_handlers if h not in HANDLERS]
        if bad or not self.response_handlers:
            self._fail('response_handlers', 'must list some of %s' % (
                ', '.join(HANDLERS)))
        if 'xml' in self.response_handlers:
            try:
                importlib.import_module('xmltodict')
            except ImportError:
                self._fail('response_handlers', 'xml needs xmltodict '
                                                '(pip install xmltodict)')
        if self.timeout is not None and not 0 < self.timeout <= 3600:
            self._fail('timeout', 'must be seconds from 0 to 3600')
        self._compile()

    def _fail(self, field, message):
        raise ConfigError(message, path=self.path, line=self.line,
                          where="pollster %r" % (getattr(self, 'name', None)
                                                 or '?'), field=field)

    def _attribute(self, field, text, names=('value',)):
        if not isinstance(text, str):
            self._fail(field, 'must be a text ("key.path | operation"), '
                              'not %s' % type(text).__name__)
        try:
            return Attribute(text, names)
        except expression.UnsafeExpression as exc:
            self._fail(field, str(exc))

    def _compile(self):
        multi = _MULTI.match(self.value_attribute)
        self.multi_key = self.multi_attr = None
        placeholder = re.search(r'{([\w-]+)}', self.name)
        if multi:
            if not placeholder:
                self._fail('value_attribute', '[list] needs a {field} in '
                                              'the name')
            self.multi_key = multi.group(1)
            self.multi_attr = self._attribute('value_attribute',
                                              multi.group(2) or '.')
            self.placeholder = placeholder.group(1)
        elif placeholder:
            self._fail('name', '{%s} needs a value_attribute of the form '
                               '[list].field' % placeholder.group(1))
        else:
            self.value = self._attribute('value_attribute',
                                         self.value_attribute)
        self.ids = {f: self._attribute(f, getattr(self, f))
                    for f in ('user_id_attribute', 'project_id_attribute',
                              'resource_id_attribute')}
        if not all(isinstance(f, str) for f in self.metadata_fields):
            self._fail('metadata_fields', 'must be a list of strings')
        self.metadata = [(f, self._attribute('metadata_fields', f))
                         for f in self.metadata_fields]
        self.entries = (self._attribute('response_entries_key',
                                        self.response_entries_key)
                        if self.response_entries_key else None)
        self.next_url = (self._attribute('next_sample_url_attribute',
                                         self.next_sample_url_attribute)
                         if self.next_sample_url_attribute else None)
        if not all(isinstance(v, (str, int, float)) for v in
                   self.value_mapping.values()):
            self._fail('value_mapping', 'maps values to numbers')
        self.extras = []
        for extra in self.extra_metadata_fields:
            if not isinstance(extra, dict) or not all(
                    extra.get(k) for k in ('name', 'url_path', 'value')):
                self._fail('extra_metadata_fields', 'each needs a name, a '
                                                    'url_path and a value')
            unknown = sorted(set(extra) - set(_EXTRA_FIELDS))
            if unknown:
                self._fail('extra_metadata_fields', 'unknown field %r'
                           % unknown[0])
            names = ('value', 'sample', 'extra_metadata_captured')
            try:
                url = expression.Expression(extra['url_path'], names[1:])
            except expression.UnsafeExpression as exc:
                self._fail('extra_metadata_fields', str(exc))
            self.extras.append((extra, url, self._attribute(
                'extra_metadata_fields', extra['value'])))
        if self.module or self.authentication_object:
            if not (self.module and self.authentication_object):
                self._fail('module', 'module and authentication_object go '
                                     'together')

    def authentication(self):
        """The ``requests`` auth object of a non-OpenStack API, built as
        Ceilometer builds it (the operator's module and class).
        """
        if not self.module:
            return None
        try:
            cls = getattr(importlib.import_module(self.module),
                          self.authentication_object)
        except (ImportError, AttributeError) as exc:
            raise ConfigError('cannot load %s.%s: %s' % (
                self.module, self.authentication_object, exc),
                path=self.path, line=self.line,
                where='pollster %r' % self.name) from None
        params = [p.strip() for p in self.authentication_parameters.split(
            ',') if p.strip()]
        return cls(*params)


def is_absolute(url):
    return isinstance(url, str) and re.match(r'^https?://', url) is not None


def load_file(path):
    data = yamlfile.load(path)
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError('the top level must be a list of pollsters',
                          path=path)
    return [Definition(d, path) for d in data]


def load_dirs(dirs):
    """Every definition of every ``*.yaml`` in ``dirs`` (sorted), by name;
    a name defined twice is an error.
    """
    found = {}
    for directory in dirs:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if not name.endswith(('.yaml', '.yml')):
                continue
            for d in load_file(os.path.join(directory, name)):
                if d.name in found:
                    raise ConfigError('pollster %r is also defined in %s'
                                      % (d.name, found[d.name].path),
                                      path=d.path, line=d.line)
                found[d.name] = d
    return found
