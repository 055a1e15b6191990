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
"""The alarms of the alarm database, for the evaluator: read every few
seconds, built into rules, this agent's share of them only.

Several agents evaluate one database: each takes the alarms the tooz hash
ring gives it (``share('alarms', ids)``, the partitioning pollsters use),
so in a stable ring no alarm is evaluated twice, and when an agent dies the
ring moves its alarms to the others at their next refresh. The database
unreachable: the last alarms read go on being evaluated, their verdicts are
not saved (and their actions not sent) until it answers again -- nothing
recorded is lost, nothing is announced that was not recorded.
"""

import logging
import threading
import time

from telemetry_lib.alarm.db import store as db_store
from telemetry_lib.alarm import definitions
from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)
GROUP = 'alarm-evaluators'


def build(row, storages=None, classes=None):
    """An :class:`~telemetry_lib.alarm.definitions.AlarmDefinition` of a
    database row (``storages``: ``{storage kind: URL}`` for rules that
    name none).

    :raises ConfigError: for a row no rule plugin accepts (a type whose
        plugin is gone, say).
    """
    where = 'alarm %s' % row['alarm_id']
    cls = (classes or {}).get(row['type'])
    if cls is None:
        # Reading entry points costs milliseconds: once per type.
        cls = rules.load_rule_class(row['type'], where)
        if classes is not None:
            classes[row['type']] = cls
    rule = cls(row['rule'], where)
    for leaf in (rule.leaves() if isinstance(rule, rules.CompositeRule)
                 else (rule,)):
        kind = getattr(leaf, 'storage_kind', None)
        if kind and leaf.storage is None and (storages or {}).get(kind):
            leaf.storage = storages[kind]
    alarm = definitions.AlarmDefinition(
        row['name'], rule, row['type'], row['description'],
        row['severity'], repeat_actions=row['repeat_actions'],
        enabled=row['enabled'], actions={
            state: tuple(row.get(field) or ())
            for state, field in definitions.ACTION_FIELDS.items()})
    alarm.id = alarm.state_key = row['alarm_id']
    alarm.time_constraints = tuple(row.get('time_constraints') or ())
    alarm.owner = (row.get('user_id'), row.get('project_id'))
    return alarm


class DatabaseAlarms:
    """The database's enabled alarms this agent evaluates (the
    ``definition`` of an :class:`~telemetry_lib.alarm.evaluator.Evaluator`)
    and their states (its ``store``).

    :param db: a :class:`~telemetry_lib.alarm.db.store.AlarmDB`.
    :param interval: the evaluation interval of every database alarm.
    :param refresh: seconds between reads of the database.
    :param share: ``f(group, ids) -> ids`` of this agent (``None``: all).
    :param storages: ``{storage kind: URL}`` (``prometheus``, ``gnocchi``).
    """

    path = None

    def __init__(self, db, interval=60.0, refresh=10.0, share=None,
                 storages=None, clock=time.monotonic, group=GROUP):
        self.db = db
        self.interval = interval
        self.refresh = refresh
        self._share = share
        self.group = group
        self._storages = storages or {}
        self._clock = clock
        self._next = 0.0
        self._built = {}        # alarm id -> (row timestamp, definition)
        self._alarms = {}
        self._states = {}       # alarm id -> (state, reason, changed)
        self._touched = {}      # alarm id -> evaluation time, unsaved
        # The evaluator's thread and the event alarms' both record.
        self._touch_lock = threading.Lock()
        self._classes = {}      # alarm type -> rule class
        self._by_project = {}   # project -> its event alarms
        self._log = ratelog.RateLimitedLog(LOG, 'alarm database')
        self.refreshes = 0
        self.refresh_errors = 0

    @property
    def alarms(self):
        # The evaluator asks at each turn of its loop: the verdicts of the
        # last turn that changed nothing are written now, in one statement.
        self.flush()
        if self._clock() >= self._next:
            self._next = self._clock() + self.refresh
            self.load()
        return self._alarms

    @property
    def count(self):
        """Alarms held now (no read of the database)."""
        return len(self._alarms)

    def load(self):
        """Read the database now (the last alarms stay if it fails)."""
        try:
            rows, problem = self.db.list({'enabled': True}), None
        except db_store.DatabaseUnavailable as exc:
            rows, problem = None, exc
        if problem is not None:
            # Outside the except block: oslo.log would repeat the exception.
            self.refresh_errors += 1
            self._log.problem('unavailable', '%s; evaluating the %d '
                              'alarm(s) read before', problem,
                              len(self._alarms))
            return
        # Event alarms are every agent's: an event reaches the agent whose
        # listener took it, whichever agent the ring gives the alarm to.
        mine = {r['alarm_id'] for r in rows if r['type'] != 'event'}
        if self._share is not None:
            mine = set(self._share(self.group, sorted(mine)))
        mine |= {r['alarm_id'] for r in rows if r['type'] == 'event'}
        built, alarms, states, by_project = {}, {}, {}, {}
        for row in rows:
            alarm_id = row['alarm_id']
            if alarm_id not in mine:
                continue
            seen = self._built.get(alarm_id)
            if seen is not None and seen[0] == row['timestamp']:
                alarm = seen[1]
            else:
                try:
                    alarm = build(row, self._storages, self._classes)
                except ConfigError as exc:
                    self._log.problem(('bad', alarm_id), 'alarm %s cannot '
                                      'be evaluated: %s', alarm_id, exc,
                                      level=logging.ERROR)
                    continue
            alarm.interval = self.interval
            built[alarm_id] = (row['timestamp'], alarm)
            alarms[alarm_id] = alarm
            states[alarm_id] = (row['state'], row['state_reason'],
                                row['state_timestamp'])
            if row['type'] == 'event':
                by_project.setdefault(row.get('project_id') or '',
                                      []).append(alarm)
        self._built, self._alarms, self._states = built, alarms, states
        self._by_project = by_project
        self.refreshes += 1

    @property
    def has_event_alarms(self):
        return bool(self._by_project)

    def event_alarms(self, project):
        """The event alarms of ``project`` (as last read)."""
        return list(self._by_project.get(project, ()))

    # -- the evaluator's state store ---------------------------------------

    def get(self, key):
        return self._states.get(key, (model.INSUFFICIENT_DATA, '', None))

    def states(self):
        return dict(self._states)

    def flush(self):
        """Write the evaluation times of the unchanged verdicts."""
        with self._touch_lock:
            touched, self._touched = self._touched, {}
        if not touched:
            return
        try:
            self.db.touch(touched, max(touched.values()))
            return
        except db_store.DatabaseError as exc:
            problem = exc
        # Only the times are lost: the states did not change.
        self.refresh_errors += 1
        self._log.problem('touch', 'evaluation times not saved: %s', problem)

    def record(self, key, evaluation, now, transition=None):
        """Save a verdict; raises ``DatabaseUnavailable`` (the evaluator
        then counts an error and sends nothing). A verdict that changes
        nothing only has its time written, with the others of its turn
        (as Aodh, which leaves an unchanged alarm's row alone).
        """
        current = self._states.get(key, (None,))[0]
        if transition is None and evaluation.state in (None, current):
            with self._touch_lock:
                self._touched[key] = now
            return
        alarm = self._alarms.get(key)
        change = None
        if transition is not None and alarm is not None:
            user_id, project_id = alarm.owner
            change = {'alarm_id': key, 'type': db_store.STATE_TRANSITION,
                      'detail': {'state': transition.current,
                                 'transition_reason': transition.reason},
                      'user_id': user_id, 'project_id': project_id,
                      'on_behalf_of': project_id,
                      'severity': alarm.severity, 'timestamp': now}
        self.db.save_evaluation(key, evaluation.state, evaluation.reason,
                                now, change)
        if evaluation.state is not None:
            old = self._states.get(key, (None, None, None))
            self._states[key] = (evaluation.state, evaluation.reason,
                                 now if transition is not None else old[2])

    def history(self, key, limit=100):
        return self.db.changes(key, limit=limit)
