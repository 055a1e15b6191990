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
"""The alarms file: ``[alarms] definitions_file``, validated like the
pipeline files (one line per problem, naming file, line, alarm and field).

.. code-block:: yaml

    alarms:
      - name: cpu_high
        type: threshold              # a telemetry_lib.alarm.rule entry point
        description: CPU busy on the compute host
        severity: moderate           # low, moderate, critical
        evaluation_interval: 60      # seconds (with jitter)
        repeat_actions: false
        rule:
          meter: host.cpu.util
          resource_id: compute-0     # or none: all resources aggregated
          aggregation: mean
          granularity: 60
          evaluation_periods: 3
          comparison_operator: gt
          threshold: 80
        alarm_actions: ["log://", "https://hooks.example/alarm"]
        ok_actions: ["log://"]
        insufficient_data_actions: []
"""

import hashlib

from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import ConfigErrors
from telemetry_lib.url import redact
from telemetry_lib.url import TelemetryURL
from telemetry_lib import yamlfile

ACTION_FIELDS = {
    model.ALARM: 'alarm_actions',
    model.OK: 'ok_actions',
    model.INSUFFICIENT_DATA: 'insufficient_data_actions',
}
_KNOWN = {'name', 'type', 'description', 'severity', 'evaluation_interval',
          'repeat_actions', 'enabled', 'rule'} | set(ACTION_FIELDS.values())


class AlarmDefinition:
    """One validated alarm."""

    def __init__(self, name, rule, kind='threshold', description='',
                 severity='low', interval=60.0, repeat_actions=False,
                 enabled=True, actions=None, line=None):
        self.name = name
        self.rule = rule
        self.type = kind
        self.description = description
        self.severity = severity
        self.interval = interval
        self.repeat_actions = repeat_actions
        self.enabled = enabled
        #: ``{state: (url text, ...)}``
        self.actions = actions or {}
        self.line = line
        # Stable across processes and restarts (never Python's hash()).
        self.id = hashlib.sha256(name.encode()).hexdigest()[:32]
        #: The key of its state (the alarm database's alarms: their id).
        self.state_key = name
        #: Aodh's ``time_constraints`` (``name``, ``start`` cron,
        #: ``duration`` seconds, ``timezone``).
        self.time_constraints = ()


class AlarmsDefinition:
    """A validated alarms file."""

    def __init__(self, alarms, path=None):
        self.alarms = {a.name: a for a in alarms}
        self.path = path

    @classmethod
    def load(cls, path, check_url=None):
        return cls.from_data(yamlfile.load(path), path, check_url)

    @classmethod
    def from_data(cls, data, path=None, check_url=None):
        """:param check_url: ``f(TelemetryURL)`` raising ``ConfigError``
        for an action URL that cannot work (e.g. an unknown scheme).
        """
        if not isinstance(data, dict) or not isinstance(
                data.get('alarms'), list):
            raise ConfigError('the top level must be a mapping with an '
                              '"alarms" list', path=path,
                              line=getattr(data, 'line', None))
        problems, alarms, seen = [], [], set()
        for item in data['alarms']:
            try:
                alarm = _alarm(item, path, check_url)
            except ConfigError as exc:
                problems.append(exc)
                continue
            if alarm.name in seen:
                problems.append(ConfigError('duplicated alarm name %r'
                                            % alarm.name, path=path,
                                            line=alarm.line))
            seen.add(alarm.name)
            alarms.append(alarm)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise ConfigErrors(problems)
        return cls(alarms, path)


def _alarm(data, path, check_url):
    line = getattr(data, 'line', None)
    if not isinstance(data, dict):
        raise ConfigError('each alarm must be a mapping, not %r' % (data,),
                          path=path, line=line)
    name = data.get('name')
    if not isinstance(name, str) or not name:
        raise ConfigError('each alarm needs a "name"', path=path, line=line,
                          field='name')
    where = 'alarm %r' % name

    def fail(field, message):
        raise ConfigError(message, path=path, line=line, where=where,
                          field=field)

    unknown = sorted(str(k) for k in data if k not in _KNOWN)
    if unknown:
        fail(unknown[0], 'unknown field (known: %s)'
             % ', '.join(sorted(_KNOWN)))
    kind = data.get('type', 'threshold')
    if not isinstance(kind, str):
        fail('type', 'must name a rule type, not %r' % (kind,))
    rule = rules.load_rule_class(kind, where, path)(data.get('rule'),
                                                    where, path)
    severity = data.get('severity', 'low')
    if severity not in model.SEVERITIES:
        fail('severity', 'must be one of %s, not %r'
             % (', '.join(model.SEVERITIES), severity))
    interval = data.get('evaluation_interval', 60)
    if isinstance(interval, bool) or not isinstance(
            interval, (int, float)) or not 1 <= interval <= 86400:
        fail('evaluation_interval', 'must be a number of seconds from 1 to '
             '86400, not %r' % (interval,))
    flags = {}
    for field, default in (('repeat_actions', False), ('enabled', True)):
        flags[field] = data.get(field, default)
        if not isinstance(flags[field], bool):
            fail(field, 'must be true or false, not %r' % (flags[field],))
    description = data.get('description', '')
    if not isinstance(description, str):
        fail('description', 'must be a string')
    actions = {}
    for state, field in ACTION_FIELDS.items():
        urls = data.get(field) or []
        if not isinstance(urls, list) or any(
                not isinstance(u, str) for u in urls):
            fail(field, 'must be a list of action URLs')
        for text in urls:
            try:
                url = TelemetryURL.parse(text)
                if check_url is not None:
                    check_url(url)
            except ConfigError as exc:
                fail(field, '%r: %s' % (redact(text), exc.reason))
        actions[state] = tuple(urls)
    return AlarmDefinition(name, rule, kind, description, severity,
                           float(interval), flags['repeat_actions'],
                           flags['enabled'], actions, line)
