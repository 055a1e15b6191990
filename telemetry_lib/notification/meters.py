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
"""Meter definitions: Ceilometer's ``meters.yaml`` / ``meters.d``, unchanged.

A definition turns each notification whose event type matches one of its
regular expressions into one sample -- or, with ``lookup``, into one sample
per element of the payload's lists -- with the names, types, units,
volumes, resource ids and metadata Ceilometer's notification agent gives
the same notification. Where Ceilometer would log and skip a broken
definition, loading here fails with the file and line.
"""

import hashlib
import itertools
import os
import re

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.notification import fields as fields_mod
from telemetry_lib.notification.plugins import field_of
from telemetry_lib import sample as sample_mod
from telemetry_lib import yamlfile

ATTRIBUTES = ('name', 'type', 'volume', 'unit', 'timestamp', 'user_id',
              'project_id', 'resource_id')
REQUIRED = ('name', 'type', 'event_type', 'unit', 'volume', 'resource_id')
# Literal by nature: a name, type or unit that is no JSONPath is taken as
# written (Ceilometer would skip the whole definition).
_LITERAL_OK = ('name', 'type', 'unit')


class UserMetadata:
    """Ceilometer's reserved user metadata: the keys of an instance's
    metadata under a reserved prefix (``metering.``) or named outright,
    dots made underscores, strings cut to a length.
    """

    def __init__(self, namespaces=('metering.',), keys=(), limit=256):
        self.namespaces = tuple(namespaces)
        self.keys = tuple(keys)
        self.limit = limit

    def add(self, source, metadata):
        if not isinstance(source, dict):
            return
        found = {}
        limit = self.limit
        for prefix in self.namespaces:
            for k, v in source.items():
                if isinstance(k, str) and k.startswith(prefix):
                    name = k[len(prefix):].replace('.', '_')
                    if name not in metadata:
                        found[name] = v[:limit] if isinstance(v, str) else v
        for key in self.keys:
            if key in source:
                name = key.replace('.', '_')
                if name not in metadata:
                    v = source[key]
                    found[name] = v[:limit] if isinstance(v, str) else v
        if found:
            metadata['user_metadata'] = found


def _sample_id(message_id, name, resource_id, index):
    # The same notification converted again (after a redelivery) gives the
    # same ids, so a store or a consumer can tell the repeat.
    h = hashlib.md5(('%s/%s/%s/%d' % (message_id, name, resource_id, index)
                     ).encode('utf-8', 'surrogatepass'),
                    usedforsecurity=False).hexdigest()
    return '%s-%s-%s-%s-%s' % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


class MeterDefinition:
    """One entry of a ``metric:`` list.

    :raises ConfigError: naming ``path`` and the entry's line.
    """

    def __init__(self, cfg, path, compiler, user_metadata):
        self.path = path
        self.line = getattr(cfg, 'line', None)
        if not isinstance(cfg, dict):
            raise self._error('a meter definition must be a mapping')
        self.cfg = cfg
        missing = [f for f in REQUIRED if not cfg.get(f)]
        if missing:
            raise self._error('required field(s) missing: %s'
                              % ', '.join(missing))
        self.name = cfg['name']
        lookup = cfg.get('lookup') or []
        self.lookup = [lookup] if isinstance(lookup, str) else list(lookup)
        if not all(isinstance(x, str) and x in ATTRIBUTES
                   for x in self.lookup):
            raise self._error('lookup must name sample fields among %s, not '
                              '%r' % (', '.join(ATTRIBUTES), lookup))
        if 'type' not in self.lookup and cfg['type'] not in \
                sample_mod.SampleType.ALL:
            raise self._error('type must be one of %s, not %r' % (
                ', '.join(sample_mod.SampleType.ALL), cfg['type']))
        types = cfg['event_type']
        types = [types] if isinstance(types, str) else types
        try:
            self._event_types = [re.compile(t) for t in types]
        except (re.error, TypeError) as exc:
            raise self._error('event_type must be regular expressions: %s'
                              % exc) from None
        self.user_metadata = user_metadata
        self._fallback_user = self._field('user_id', 'ctxt.user_id|ctxt.user',
                                          compiler)
        self._fallback_project = self._field(
            'project_id', 'ctxt.project_id|ctxt.tenant_id', compiler)
        self._attributes = []
        for name in ATTRIBUTES:
            spec = cfg.get(name)
            if not spec:
                continue
            try:
                self._attributes.append((name, self._field(name, spec,
                                                           compiler)))
            except ConfigError:
                if name not in _LITERAL_OK or not isinstance(spec, str):
                    raise
        metadata = cfg.get('metadata') or {}
        if not isinstance(metadata, dict):
            raise self._error('metadata must be a mapping')
        self._metadata = [(k, self._field('metadata %s' % k, spec, compiler))
                          for k, spec in metadata.items()]
        self._user_meta = None
        if cfg.get('user_metadata'):
            self._user_meta = self._field('user_metadata',
                                          cfg['user_metadata'], compiler)
        if self.lookup:
            for name, f in self._attributes:
                if f.plugin is not None and \
                        not f.plugin.support_return_all_values:
                    raise self._error('%s: plugin %s cannot give one value '
                                      'per element, which lookup needs'
                                      % (name, type(f.plugin).__name__))

    def _error(self, reason):
        return ConfigError(reason, path=self.path, line=self.line,
                           where='meter %r' % (self.cfg.get('name')
                                               if isinstance(self.cfg, dict)
                                               else None,))

    def _field(self, name, spec, compiler):
        try:
            return field_of(name, spec, compiler)
        except (fields_mod.FieldError, ValueError, TypeError) as exc:
            raise self._error('%s: %s' % (name, exc)) from None

    def matches(self, event_type):
        return any(p.match(event_type) for p in self._event_types)

    # -- conversion ----------------------------------------------------------

    def _metadata_of(self, body, memo):
        md = {}
        for name, f in self._metadata:
            value = f.first(body, memo)
            if value:
                md[name] = value
        if self._user_meta is not None:
            meta = self._user_meta.first(body)
            if meta:
                self.user_metadata.add(meta, md)
        return md

    def to_dicts(self, body, memo=None):
        """The samples of ``body`` as dicts of sample fields (Ceilometer's
        intermediate form, before defaults from the envelope).

        :param memo: a dict shared by the definitions converting one
            notification (see :meth:`Field.first`).
        """
        cfg = self.cfg
        sample = {'name': cfg['name'], 'type': cfg['type'],
                  'unit': cfg['unit'], 'volume': None, 'timestamp': None,
                  'user_id': self._fallback_user.first(body, memo),
                  'project_id': self._fallback_project.first(body, memo),
                  'resource_id': None,
                  'metadata': self._metadata_of(body, memo)}
        if not self.lookup:
            for name, f in self._attributes:
                value = f.first(body, memo)
                if value is not None:
                    sample[name] = value
            return [sample]
        lookup = self.lookup
        sample = {k: [v] for k, v in sample.items()}
        for name, f in self._attributes:
            value = f.values(body, keep_none=True)
            if name in lookup or name == 'name' or value:
                sample[name] = value
        count = len(sample['name'])
        if count == 0:
            return []
        columns = []
        for name in ATTRIBUTES + ('metadata',):
            values = sample[name]
            if len(values) == count:
                columns.append(values)
            elif len(values) == 1 and name not in lookup:
                columns.append(itertools.repeat(values[0]))
            else:
                raise InvalidSample(
                    'meter %r: %d elements have a %r instead of %d'
                    % (self.name, len(values), name, count))
        keys = ATTRIBUTES + ('metadata',)
        return [dict(zip(keys, row)) for row in zip(*columns)]


def _id(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value        # refused by Sample, with its reason


def _volume(value):
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def build_sample(fields, body, index):
    """A :class:`~telemetry_lib.sample.Sample` from :meth:`to_dicts`'s
    fields and the notification ``body``.

    :raises InvalidSample: with the reason.
    """
    metadata = fields['metadata']
    if not metadata:
        # Ceilometer's default metadata: the payload and two envelope
        # fields.
        payload = body.get('payload')
        metadata = dict(payload) if isinstance(payload, dict) else {}
        metadata['event_type'] = body.get('event_type')
        metadata['host'] = body.get('publisher_id')
    timestamp = fields['timestamp'] or body['metadata']['timestamp']
    resource_id = _id(fields['resource_id'])
    name = fields['name']
    if fields['volume'] is None:
        raise InvalidSample('meter %r: no volume in the notification'
                            % (name,))
    if resource_id is None:
        raise InvalidSample('meter %r: no resource id in the notification'
                            % (name,))
    return sample_mod.Sample(
        name=name, type=fields['type'], unit=fields['unit'],
        volume=_volume(fields['volume']), user_id=_id(fields['user_id']),
        project_id=_id(fields['project_id']), resource_id=resource_id,
        timestamp=timestamp, resource_metadata=metadata,
        id=_sample_id(body['metadata'].get('message_id'), name, resource_id,
                      index))


def load_file(path, compiler, user_metadata):
    data = yamlfile.load(path)
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get('metric'),
                                                    list):
        raise ConfigError("the top level must be a mapping with a 'metric' "
                          'list', path=path)
    return [MeterDefinition(cfg, path, compiler, user_metadata)
            for cfg in data['metric']]


def load_dirs(dirs, compiler, user_metadata):
    """The definitions of every ``*.yaml`` in ``dirs`` (each sorted), as
    Ceilometer picks them: a meter defined again is skipped -- the last of
    a file wins within it, the first file wins across files.

    :returns: ``(definitions, files)``.
    """
    found = {}
    files = []
    for directory in dirs:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            if not name.endswith('.yaml'):
                continue
            path = os.path.join(directory, name)
            files.append(path)
            for d in reversed(load_file(path, compiler, user_metadata)):
                key = d.name if isinstance(d.name, str) else repr(d.name)
                found.setdefault(key, d)
    return list(found.values()), files
