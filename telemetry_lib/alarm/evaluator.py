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
"""The alarm evaluator: each alarm on its interval (with jitter), its
state and history kept, its actions handed to deliveries.

A transition (or, with ``repeat_actions``, every evaluation, as Aodh's)
becomes one :class:`~telemetry_lib.alarm.model.Action` per URL of the
new state's actions, put on that URL's delivery -- queued, retried,
spooled and counted like any batch; the evaluator never waits for a peer.
The state is saved before the actions are queued: a crash between the two
loses those actions (use ``spool=true`` on an action URL for them to
survive one once queued), and never repeats them after a restart.
"""

import collections
import contextlib
import datetime
import logging
import random
import threading
import time

from telemetry_lib.alarm import model
from telemetry_lib.alarm import timeconstraints
from telemetry_lib import lifecycle
from telemetry_lib.storage import base as storage_base
from telemetry_lib.timeutils import UTC

LOG = logging.getLogger(__name__)


class Evaluator(lifecycle.Component):
    """Evaluates a set of alarms.

    :param definition: an :class:`~telemetry_lib.alarm.definitions.
        AlarmsDefinition`.
    :param store: a :class:`~telemetry_lib.alarm.state.StateStore`.
    :param storages: ``f(url or None) -> StorageDriver``.
    :param actions: ``f(url text) -> Delivery`` (started), for the action
        URLs; typically ``DeliveryPool.acquire`` of an alarm pool.
    :param clock: seconds since the epoch (tests pass their own).
    """

    #: Alarms evaluated at one time, their queries asked together.
    TURN = 500

    def __init__(self, definition, store, storages, actions,
                 clock=time.time, rng=None):
        self.definition = definition
        self.store = store
        self._storages = storages
        self._actions = actions
        self._clock = clock
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self.evaluations = 0
        self.errors = 0
        self.transitions = 0

    def now(self):
        return datetime.datetime.fromtimestamp(self._clock(), UTC)

    def evaluate(self, alarm, now=None, dispatch=True):
        """Evaluate one alarm now; return ``(Evaluation, Transition or
        None)``. The transition is recorded and, with ``dispatch``, its
        actions queued.
        """
        now = now or self.now()
        current, _, _ = self.store.get(alarm.state_key)
        try:
            verdict = alarm.rule.evaluate(self._storages, now, current)
        except Exception as exc:
            # A rule's bug must not stop the others.
            with self._lock:
                self.errors += 1
            LOG.error('alarm %s: evaluation failed: %s: %s', alarm.name,
                      type(exc).__name__, exc)
            return model.Evaluation(None, 'evaluation failed: %s' % exc), \
                None
        with self._lock:
            self.evaluations += 1
        return verdict, self._apply(alarm, verdict, now, current, dispatch)

    def prefetched(self, alarms, now):
        """A context in which the instant queries of ``alarms`` at ``now``
        have been asked together, per storage (Prometheus: a hundred in
        one request), so that evaluating them one by one at ``now`` asks
        nothing more. A storage that cannot be had is left to the rules
        to report.
        """
        wanted = collections.defaultdict(list)
        for alarm in alarms:
            for url, expression in alarm.rule.instant_queries():
                wanted[url].append(expression)
        stack = contextlib.ExitStack()
        for url, expressions in wanted.items():
            try:
                storage = self._storages(url)
            except Exception:       # said by each rule as it evaluates
                continue
            stack.enter_context(storage.prefetched(expressions, now))
        return stack

    def fire(self, alarm, verdict, now=None):
        """Apply a verdict made elsewhere (an event alarm's, on an event):
        recorded and its actions queued as an evaluation's would be.
        """
        now = now or self.now()
        current, _, _ = self.store.get(alarm.state_key)
        return self._apply(alarm, verdict, now, current, True)

    def _apply(self, alarm, verdict, now, current, dispatch):
        if alarm.repeat_actions and verdict.state is None and \
                verdict.repeat is not None:
            verdict = verdict.repeat
        state = verdict.state
        changed = state is not None and state != current
        # Aodh's repeat_actions: every evaluation that has a state
        # announces it, whatever it is.
        repeat = (state is not None and state == current
                  and alarm.repeat_actions)
        transition = None
        if changed or repeat:
            transition = model.Transition(
                alarm.name, current, state, verdict.reason,
                verdict.reason_data, now, alarm.severity, alarm.id)
        self.store.record(alarm.state_key, verdict, now,
                          transition if changed else None)
        if changed:
            with self._lock:
                self.transitions += 1
            LOG.info('alarm %s: %s -> %s: %s', alarm.name, current, state,
                     verdict.reason)
        if transition is not None and dispatch:
            self._dispatch(alarm, transition)
        return transition

    def _dispatch(self, alarm, transition):
        for url in alarm.actions.get(transition.current, ()):
            action = model.Action.from_transition(transition)
            try:
                self._actions(url).put([action])
            except Exception as exc:
                LOG.error('alarm %s: cannot queue action %s: %s',
                          alarm.name, url, exc)

    def due(self, now_ts, next_at):
        now = None
        due = []
        for a in self.definition.alarms.values():
            if not a.enabled or next_at.get(a.state_key, 0) > now_ts or \
                    not getattr(a.rule, 'periodic', True):
                continue
            if a.time_constraints:
                now = now or datetime.datetime.fromtimestamp(now_ts, UTC)
                if not timeconstraints.within(a.time_constraints, now):
                    # Aodh's rule: outside its constraints an alarm is
                    # not evaluated at all (its state stays).
                    next_at[a.state_key] = now_ts + a.interval
                    continue
            due.append(a)
        return due

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='alarm evaluator')
        self._thread.start()
        return self

    def _run(self):
        next_at = {}
        while not self._stop.is_set():
            now_ts = self._clock()
            due = self.due(now_ts, next_at)
            if len(next_at) > len(self.definition.alarms):
                # Alarms deleted from the database: forget their times.
                for key in set(next_at) - {
                        a.state_key
                        for a in self.definition.alarms.values()}:
                    del next_at[key]
            self.evaluate_all(due)
            for alarm in due:
                # Jitter: many alarms (and agents) do not query in step.
                next_at[alarm.state_key] = now_ts + alarm.interval * (
                    0.9 + 0.2 * self._rng.random())
            wait = min([t for t in next_at.values()] or [now_ts + 1.0]) - \
                self._clock()
            self._stop.wait(min(max(wait, 0.05), 1.0))

    def evaluate_all(self, alarms):
        """Evaluate ``alarms``, :attr:`TURN` at a time: each turn at one
        time, its alarms' queries asked together. Errors are counted and
        said, never raised.
        """
        for i in range(0, len(alarms), self.TURN):
            if self._stop.is_set():
                return
            self._turn(alarms[i:i + self.TURN])

    def _turn(self, alarms):
        now = self.now()
        try:
            prefetched = self.prefetched(alarms, now)
        except Exception as exc:    # a driver's bug: ask one by one
            LOG.error('alarms: asking their queries together failed: %s: '
                      '%s', type(exc).__name__, exc)
            prefetched = contextlib.ExitStack()
        with prefetched:
            for alarm in alarms:
                if self._stop.is_set():
                    return
                try:
                    self.evaluate(alarm, now)
                except Exception as exc:
                    # The state store failing (a full disk) must not stop
                    # the evaluator: the next interval tries again.
                    with self._lock:
                        self.errors += 1
                    LOG.error('alarm %s: cannot record its evaluation: '
                              '%s: %s', alarm.name, type(exc).__name__, exc)

    def close(self, timeout=None):
        """Stop evaluating within ``timeout`` seconds (an evaluation in
        flight finishes on its daemon thread).
        """
        self._stop.set()
        if self._thread is not None and lifecycle.Deadline(timeout).join(
                [self._thread]):
            return lifecycle.Outcome.unfinished(
                'an alarm evaluation was still running')
        return lifecycle.DONE


class Storages(lifecycle.Component):
    """Storage drivers by URL, built once; ``None`` is ``[storage] url``."""

    def __init__(self, conf):
        self._conf = conf
        self._drivers = {}
        self._lock = threading.Lock()

    def __call__(self, url=None):
        url = url or self._conf.storage.url
        with self._lock:
            driver = self._drivers.get(url)
            if driver is None:
                driver = storage_base.load_storage(self._conf, url)
                driver.start()
                self._drivers[url] = driver
            return driver

    def close(self, timeout=None):
        deadline = lifecycle.Deadline(timeout)
        with self._lock:
            drivers, self._drivers = self._drivers, {}
        return lifecycle.Outcome.of(
            {url or 'default': d.close(deadline.left())
             for url, d in drivers.items()})
