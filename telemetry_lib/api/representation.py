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
"""An alarm as Aodh's API reads and writes it: the request body checked
field by field with Aodh's messages and status codes, turned into the
database's columns; a stored alarm turned back into Aodh's JSON (the rule
under ``<type>_rule``, naive UTC times, trust ids scrubbed from action
URLs), so ``aodhclient`` and Heat read it unchanged.
"""

import datetime
import logging
from urllib import parse
import zoneinfo

import croniter

from telemetry_lib.alarm import aodh_rules
from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules
from telemetry_lib.api import context
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import jsoncodec
from telemetry_lib import plugins

LOG = logging.getLogger(__name__)
DEFAULT_REASON = 'Not evaluated yet'
MANUAL_REASON = 'Manually set via API'
ACTION_FIELDS = ('ok_actions', 'alarm_actions', 'insufficient_data_actions')
#: Fields the API sets itself: accepted in a body (aodhclient's update
#: sends the whole alarm back) and ignored.
READ_ONLY = ('alarm_id', 'timestamp', 'state_timestamp', 'state_reason',
             'evaluate_timestamp')
_FIELDS = {'name', 'type', 'description', 'enabled', 'severity', 'state',
           'repeat_actions', 'time_constraints', 'user_id', 'project_id',
           } | set(ACTION_FIELDS) | set(READ_ONLY)
_RULE_DEFAULTS = {'comparison_operator': aodh_rules.DEFAULT_OPERATOR}
_GNOCCHI_DEFAULTS = {'evaluation_periods': 1, 'granularity': 60}


class Invalid(context.APIError):
    """A request Aodh would refuse (400 unless said)."""


def rule_classes():
    """``{type: rule class}`` of every rule plugin that loads (one that
    does not is left out, with its error logged): built once by the API,
    not per request -- reading the installed entry points costs
    milliseconds.
    """
    classes, broken = {}, []
    for name in plugins.names(rules.RULE_NAMESPACE):
        try:
            classes[name] = rules.load_rule_class(name, 'alarm type')
        except ConfigError as exc:
            broken.append((name, exc))
    for name, exc in broken:        # outside except: said once by oslo.log
        LOG.error('alarm type %s is not offered: %s', name, exc)
    return classes


def _invalid_input(field, value, why):
    return Invalid('Invalid input for field/attribute %s. Value: %r. %s'
                   % (field, value, why))


def parse_alarm(body, ctx, max_actions=-1, action_schemes=None,
                classes=None):
    """The columns of the alarm ``body`` describes (no ids, owners or
    timestamps: the caller sets them).

    :param classes: ``{type: rule class}`` (:func:`rule_classes`).
    :raises Invalid: for anything Aodh refuses, with its message.
    """
    if not isinstance(body, dict):
        raise Invalid('The alarm must be a JSON object')
    classes = classes if classes is not None else rule_classes()
    kinds = sorted(classes)
    unknown = sorted(k for k in body if k not in _FIELDS
                     and not (k.endswith('_rule') and k[:-5] in kinds))
    if unknown:
        raise Invalid('Unknown attribute for argument data: %s'
                      % unknown[0])
    name = body.get('name')
    if not isinstance(name, str) or not name:
        raise _invalid_input('name', name, 'Mandatory field missing.')
    kind = body.get('type')
    if kind not in kinds:
        raise _invalid_input('type', kind, 'Value should be one of: %s'
                             % ', '.join(kinds))
    given = [k for k in kinds if body.get('%s_rule' % k)]
    rule = body.get('%s_rule' % kind)
    if not rule:
        raise Invalid('%s_rule must be set for %s type alarm' % (kind, kind))
    if len(given) > 1:
        raise Invalid('%s_rule and %s_rule cannot be set at the same time'
                      % tuple(given[:2]))
    alarm = {'name': name, 'type': kind,
             'rule': _rule(kind, rule, classes[kind])}
    alarm['description'] = _text(body, 'description',
                                 '%s alarm rule' % kind)
    for field, default in (('enabled', True), ('repeat_actions', False)):
        value = body.get(field)
        if value is None:
            value = default         # null is "not given", as wsme reads it
        if not isinstance(value, bool):
            raise _invalid_input(field, value, 'Wrong type. Expected '
                                 "'<class 'bool'>', got '%s'"
                                 % type(value))
        alarm[field] = value
    alarm['severity'] = _enum(body, 'severity', model.SEVERITIES, 'low')
    if body.get('state') is not None:
        alarm['state'] = _enum(body, 'state', model.STATES, None)
    alarm['time_constraints'] = _constraints(body.get('time_constraints'))
    for field in ACTION_FIELDS:
        alarm[field] = _actions(body, field, ctx, max_actions,
                                action_schemes)
    for field in ('user_id', 'project_id'):
        if body.get(field) is not None:
            alarm[field] = _text(body, field, None)
    return alarm


def _text(body, field, default):
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _invalid_input(field, value, 'Wrong type. Expected a string.')
    return value


def _enum(body, field, choices, default):
    value = body.get(field)
    if value is None:
        return default
    if value not in choices:
        raise _invalid_input(field, value, 'Value should be one of: %s'
                             % ', '.join(choices))
    return value


def _rule(kind, rule, cls):
    if not isinstance(rule, dict):
        raise Invalid('%s_rule must be a JSON object' % kind)
    # null is "not given", as wsme reads it (Heat sends its unset
    # properties so).
    rule = {k: v for k, v in rule.items() if v is not None}
    if issubclass(cls, aodh_rules.AodhThresholdRule):
        for field, default in _RULE_DEFAULTS.items():
            rule.setdefault(field, default)
        if 'threshold' in rule and isinstance(rule['threshold'], int) \
                and not isinstance(rule['threshold'], bool):
            rule['threshold'] = float(rule['threshold'])
    if issubclass(cls, aodh_rules.GnocchiRule):
        for field, default in _GNOCCHI_DEFAULTS.items():
            rule.setdefault(field, default)
    try:
        cls(rule, '%s_rule' % kind)
    except ConfigError as exc:
        field = (exc.field or '').replace('rule.', '', 1)
        raise Invalid('Invalid input for field/attribute %s. Value: %r. %s'
                      % (field or '%s_rule' % kind,
                         rule.get(field) if field else rule,
                         exc.reason)) from None
    return rule


def _constraints(value):
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid_input('time_constraints', value, 'Wrong type. '
                             'Expected a list.')
    out, names = [], set()
    for tc in value:
        if not isinstance(tc, dict):
            raise _invalid_input('time_constraints', tc, 'Wrong type. '
                                 'Expected an object.')
        for field in ('name', 'start', 'duration'):
            if tc.get(field) is None:
                raise _invalid_input(field, None, 'Mandatory field '
                                     'missing.')
        if not isinstance(tc['name'], str):
            raise _invalid_input('name', tc['name'], 'Wrong type. Expected '
                                 'a string.')
        start, duration = tc['start'], tc['duration']
        if isinstance(duration, str) and duration.isdigit():
            duration = int(duration)        # aodhclient sends text
        if not isinstance(start, str) or not croniter.croniter.is_valid(
                start):
            raise _invalid_input('start', start, 'Not a cron expression.')
        if isinstance(duration, bool) or not isinstance(duration, int) \
                or duration < 0:
            raise _invalid_input('duration', duration, 'Value should be '
                                 'greater or equal to 0')
        timezone = tc.get('timezone') or ''
        if timezone:
            try:
                zoneinfo.ZoneInfo(timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise Invalid('Timezone %s is not valid' % timezone)
        if tc['name'] in names:
            raise Invalid('Time constraint names must be unique for a '
                          'given alarm.')
        names.add(tc['name'])
        out.append({'name': str(tc['name']), 'start': start,
                    'duration': duration, 'timezone': timezone,
                    'description': tc.get('description') or (
                        'Time constraint at %s lasting for %s seconds'
                        % (start, duration))})
    return out


def _actions(body, field, ctx, max_actions, schemes):
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or any(not isinstance(a, str)
                                          for a in value):
        raise _invalid_input(field, value, 'Wrong type. Expected a list '
                             'of strings.')
    actions = list(dict.fromkeys(value))       # duplicates dropped, as Aodh
    if 0 < max_actions < len(actions):
        raise Invalid('%s count exceeds maximum value %d'
                      % (field, max_actions))
    known = schemes if schemes is not None else set(
        plugins.names(plugins.ALARM_ACTION_NAMESPACE))
    for action in actions:
        try:
            url = parse.urlsplit(action)
        except ValueError:
            raise Invalid('Unable to parse action %s' % action) from None
        if url.scheme not in known:
            raise Invalid('Unsupported action %s' % action)
        if url.scheme in ('log', 'test') and not ctx.is_admin:
            raise Invalid('You are not authorized to create action: %s'
                          % action, 401)
        if url.scheme.startswith('trust+') and '@' in url.netloc:
            raise Invalid('trust URL cannot contain a trust ID.')
    return actions


def _naive(value):
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.timezone.utc).replace(
                tzinfo=None)
        return value.isoformat()
    return value


def scrub(action):
    """An action URL without the trust id Aodh keeps in it."""
    url = parse.urlsplit(action)
    if url.scheme.startswith('trust+') and '@' in url.netloc:
        url = url._replace(netloc=url.netloc.rsplit('@', 1)[-1])
        return url.geturl()
    return action


def render(alarm):
    """Aodh's JSON of a stored alarm."""
    out = {k: alarm.get(k) for k in (
        'alarm_id', 'name', 'description', 'enabled', 'type', 'severity',
        'state', 'state_reason', 'repeat_actions', 'user_id', 'project_id')}
    for field in ('timestamp', 'state_timestamp', 'evaluate_timestamp'):
        out[field] = _naive(alarm.get(field))
    for field in ACTION_FIELDS:
        out[field] = [scrub(a) for a in alarm.get(field) or []]
    out['time_constraints'] = alarm.get('time_constraints') or []
    out['%s_rule' % alarm['type']] = alarm.get('rule') or {}
    return out


def render_change(change):
    """Aodh's JSON of a history entry (``detail`` is JSON text)."""
    return {'event_id': change['event_id'], 'alarm_id': change['alarm_id'],
            'type': change['type'],
            'detail': jsoncodec.dumps(change['detail']).decode(),
            'user_id': change.get('user_id'),
            'project_id': change.get('project_id'),
            'on_behalf_of': change.get('on_behalf_of'),
            'severity': change.get('severity'),
            'timestamp': _naive(change['timestamp'])}


BY_RESOURCES = 'gnocchi_aggregation_by_resources_threshold'


def scope_to_project(alarm, project_id, owner_id=None):
    """Narrow the Gnocchi searches of ``alarm`` (its rule, or its
    composite's leaves) to ``project_id``'s resources, as Aodh does for a
    caller who is not an admin: those the project created, or -- when
    ``owner_id``, the project Ceilometer writes as, is known -- those that
    project created for ``project_id``.
    """
    mine = {'=': {'created_by_project_id': project_id}}
    if owner_id:
        mine = {'or': [mine, {'and': [
            {'=': {'created_by_project_id': owner_id}},
            {'=': {'project_id': project_id}}]}]}

    def narrow(rule):
        query = jsoncodec.loads(rule['query'])
        parts = query.get('and') if isinstance(query, dict) else None
        if isinstance(parts, list) and parts and parts[0] == mine:
            return          # narrowed when it was made (an update)
        rule['query'] = jsoncodec.dumps({'and': [mine, query]}).decode()

    if alarm['type'] == BY_RESOURCES:
        narrow(alarm['rule'])
    elif alarm['type'] == 'composite':
        stack = [alarm['rule']]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if node.get('type') == BY_RESOURCES and isinstance(
                        node.get('query'), str):
                    narrow(node)
                stack.extend(v for k, v in node.items()
                             if k in ('and', 'or'))
            elif isinstance(node, list):
                stack.extend(node)
