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
"""Aodh's ``event`` alarm type: an alarm that fires when an event of its
project matches -- ``event_type`` (an fnmatch pattern, ``*`` by default)
and every condition of ``query`` (``[{field, op, value, type}]``, ``field``
``traits.NAME`` or a field of the event, ``type`` one of ``string``,
``integer``, ``float``, ``datetime``). Not evaluated on an interval: the
agent hands it the events its notification listener converts (Aodh's
listener gets them from Ceilometer's notifier). A match moves the alarm
to ``alarm`` -- never back to ``ok`` -- with Aodh's reason; an alarm
already in ``alarm`` fires again only with ``repeat_actions``.
"""

import datetime
import fnmatch
import json

from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules
from telemetry_lib.timeutils import UTC

_TYPES = {'string': str, 'integer': int, 'float': float, 'datetime': None}
#: Ceilometer's trait type numbers, as events carry them on the wire.
_WIRE_TYPES = {0: 'string', 1: 'string', 2: 'integer', 3: 'float',
               4: 'datetime'}


def _value(value, kind):
    if kind == 'datetime':
        stamp = value if isinstance(value, datetime.datetime) else \
            datetime.datetime.fromisoformat(str(value).replace('Z',
                                                               '+00:00'))
        return stamp.astimezone(UTC).replace(tzinfo=None) \
            if stamp.tzinfo else stamp
    return _TYPES[kind](value)


class EventRule(rules.Rule):
    """``event_type`` and ``query``, checked at construction."""

    #: Not on the evaluator's interval: events drive it.
    periodic = False

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.event_type = self.text('event_type', '*')
        query = data.get('query') or []
        if not isinstance(query, list):
            self.fail('query', 'must be a list of conditions')
        self.conditions = []
        for i, cond in enumerate(query):
            field = 'query[%d]' % i
            if not isinstance(cond, dict) or not isinstance(
                    cond.get('field'), str) or 'value' not in cond:
                self.fail(field, 'a condition is {field, op, value, type}')
            op = cond.get('op') or 'eq'
            if op not in rules.COMPARISONS:
                self.fail(field + '.op', 'must be one of %s, not %r' % (
                    ', '.join(rules.COMPARISONS), op))
            kind = cond.get('type') or 'string'
            if kind not in _TYPES:
                self.fail(field + '.type', 'must be one of %s, not %r' % (
                    ', '.join(_TYPES), kind))
            try:
                value = (_value(cond['value'], kind)
                         if cond['field'].startswith('traits.')
                         else cond['value'])
            except (TypeError, ValueError):
                self.fail(field + '.value', 'not a %s: %r'
                          % (kind, cond['value']))
            self.conditions.append((cond['field'], rules.COMPARISONS[op],
                                    value))

    def evaluate(self, storages, now, current):
        return model.Evaluation(None, 'event alarms are evaluated on '
                                'events, not on an interval')

    def matches(self, event):
        """Whether ``event`` (Ceilometer's wire form: ``event_type``,
        ``message_id``, ``traits`` as ``[name, type, value]``) meets the
        pattern and every condition.
        """
        event_type = event.get('event_type')
        if not isinstance(event_type, str) or not fnmatch.fnmatchcase(
                event_type, self.event_type):
            return False
        traits = event_traits(event)
        for field, compare, wanted in self.conditions:
            if field.startswith('traits.'):
                have = traits.get(field.split('.', 1)[1])
            else:
                have = event
                for part in field.split('.'):
                    have = have.get(part) if isinstance(have, dict) \
                        else None
            try:
                if have is None or not compare(have, wanted):
                    return False
            except TypeError:
                return False
        return True

    def fired(self, event):
        """Aodh's verdict for a matching ``event``."""
        return model.Evaluation(
            model.ALARM, 'Event <id=%s,event_type=%s> hits the query '
            '<query=%s>.' % (event.get('message_id'),
                             event.get('event_type'),
                             json.dumps(self.data.get('query') or [],
                                        sort_keys=True)),
            {'type': 'event', 'event': event})


def event_traits(event):
    """``{name: value}`` of an event's traits, typed as Aodh types them."""
    traits = {}
    listed = event.get('traits')
    for trait in listed if isinstance(listed, (list, tuple)) else ():
        try:
            name, kind, value = trait
            traits[str(name)] = _value(value, _WIRE_TYPES.get(kind, kind))
        except (TypeError, ValueError, KeyError, OverflowError):
            continue
    return traits


def event_project(event):
    traits = event_traits(event)
    return traits.get('project_id') or traits.get('tenant_id') or ''
