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
"""Event definitions: Ceilometer's ``event_definitions.yaml``, unchanged.

A notification becomes one event, by the *last* definition whose
``event_type`` globs match (Ceilometer's rule, so YAML merges can refine an
earlier entry); a catch-all keeps the default traits of any other unless
unmatched notifications are to be dropped. A trait whose value does not fit
its type is left out and reported, not the whole event.
"""

import fnmatch

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.notification import fields as fields_mod
from telemetry_lib.notification.plugins import field_of
from telemetry_lib import sample as sample_mod
from telemetry_lib import yamlfile

TRAIT_TYPES = {'text': sample_mod.TraitType.TEXT,
               'int': sample_mod.TraitType.INT,
               'float': sample_mod.TraitType.FLOAT,
               'datetime': sample_mod.TraitType.DATETIME}
#: Ceilometer's text traits are cut to this many characters.
TEXT_LIMIT = 255

DEFAULT_TRAITS = {
    'service': {'type': 'text', 'fields': 'publisher_id'},
    'request_id': {'type': 'text', 'fields': 'ctxt.request_id'},
    'project_id': {'type': 'text',
                   'fields': ['payload.tenant_id', 'ctxt.project_id']},
    'user_id': {'type': 'text', 'fields': ['payload.user_id',
                                           'ctxt.user_id']},
    'tenant_id': {'type': 'text',
                  'fields': ['payload.tenant_id', 'ctxt.project_id']},
}


class TraitDefinition:
    __slots__ = ('name', 'dtype', 'field', 'is_text')

    def __init__(self, name, cfg, compiler):
        type_name = cfg.get('type', 'text') if isinstance(cfg, dict) \
            else 'text'
        if type_name not in TRAIT_TYPES:
            raise fields_mod.FieldError(
                'type must be one of %s, not %r'
                % (', '.join(TRAIT_TYPES), type_name))
        self.name = name
        self.dtype = TRAIT_TYPES[type_name]
        self.is_text = self.dtype == sample_mod.TraitType.TEXT
        self.field = field_of(name, cfg, compiler)

    def to_trait(self, body):
        """The trait, ``None`` when the notification has no value for it.

        :raises InvalidSample: when the value does not fit the type.
        """
        value = self.field.first(body)
        if value is None:
            return None
        if self.is_text:
            if type(value) is not str:
                value = (value.decode('utf-8', 'replace')
                         if isinstance(value, bytes) else str(value))
            return sample_mod.Trait.text(self.name, value[:TEXT_LIMIT])
        dtype = self.dtype
        # Nova says '' for a date it has not got yet.
        if value == '':
            return None
        if dtype == sample_mod.TraitType.INT and isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise InvalidSample('trait %r: %r is not an integer'
                                    % (self.name, value)) from None
        elif dtype == sample_mod.TraitType.INT and isinstance(value, float):
            value = int(value)
        return sample_mod.Trait(self.name, dtype, value)


class EventDefinition:
    """One entry of the file: event type globs (``!`` excludes) and
    traits.

    :raises ConfigError: naming the file and line.
    """

    def __init__(self, cfg, path, compiler, raw_levels=()):
        self.path = path
        self.line = getattr(cfg, 'line', None)
        if not isinstance(cfg, dict):
            raise ConfigError('an event definition must be a mapping',
                              path=path, line=self.line)
        for key in ('event_type', 'traits'):
            if key not in cfg:
                raise ConfigError('required field %r missing' % key,
                                  path=path, line=self.line)
        types = cfg['event_type']
        types = [types] if isinstance(types, str) else types
        if not isinstance(types, list) or not all(
                isinstance(t, str) for t in types):
            raise ConfigError('event_type must be a glob or a list of them',
                              path=path, line=self.line)
        self.included = [t for t in types if not t.startswith('!')]
        self.excluded = [t[1:] for t in types if t.startswith('!')]
        if self.excluded and not self.included:
            self.included = ['*']
        self.raw_levels = frozenset(raw_levels)
        traits = cfg['traits'] or {}
        if not isinstance(traits, dict):
            raise ConfigError('traits must be a mapping', path=path,
                              line=self.line)
        self.traits = {}
        for name, spec in list(DEFAULT_TRAITS.items()) + list(
                traits.items()):
            try:
                self.traits[name] = TraitDefinition(name, spec, compiler)
            except (fields_mod.FieldError, ValueError, TypeError) as exc:
                raise ConfigError(
                    str(exc), path=path,
                    line=getattr(spec, 'line', self.line),
                    where='event %s, trait %r' % (types, name)) from None
        self._traits = tuple(self.traits.values())

    @property
    def is_catchall(self):
        return '*' in self.included and not self.excluded

    def matches(self, event_type):
        return (any(fnmatch.fnmatchcase(event_type, t)
                    for t in self.included)
                and not any(fnmatch.fnmatchcase(event_type, t)
                            for t in self.excluded))

    def to_event(self, body, priority, problems):
        """The event of ``body``; a trait that does not fit its type is
        left out and appended to ``problems`` as ``(kind, detail)``.
        """
        traits = []
        for t in self._traits:
            try:
                trait = t.to_trait(body)
            except InvalidSample as exc:
                problems.append(('bad_trait', str(exc)))
                continue
            if trait is not None:
                traits.append(trait)
        meta = body['metadata']
        return sample_mod.Event(
            message_id=meta['message_id'], event_type=body['event_type'],
            generated=meta['timestamp'], traits=traits,
            raw=body if priority in self.raw_levels else {})


def load_file(path, compiler, raw_levels=(), drop_unmatched=False):
    """The definitions of ``path``, last first (the order they are tried
    in), with a catch-all at the end unless ``drop_unmatched``.
    """
    data = yamlfile.load(path)
    if data is None:
        data = []
    if not isinstance(data, list):
        raise ConfigError('the top level must be a list of event '
                          'definitions', path=path)
    definitions = [EventDefinition(cfg, path, compiler, raw_levels)
                   for cfg in reversed(data)]
    if not drop_unmatched and not any(d.is_catchall for d in definitions):
        definitions.append(EventDefinition(
            {'event_type': '*', 'traits': {}}, path, compiler, raw_levels))
    return definitions
