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
"""The agent's share of the alarm database: the Aodh-compatible API
(``[api] enabled``) and the evaluation of the database's alarms
(``[alarms] evaluate_database``), their actions on the agent's delivery
pool like every other alarm's.
"""

import logging
import queue
import threading

from telemetry_lib.alarm.db import store as db_store
from telemetry_lib.alarm import dbalarms
from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import event_rules
from telemetry_lib.alarm import service as alarm_service
from telemetry_lib.api import service as api_service
from telemetry_lib.formats import ceilometer
from telemetry_lib import lifecycle
from telemetry_lib import ratelog

#: Events waiting for the event alarms, at most (more are counted, dropped).
EVENT_QUEUE = 10000

LOG = logging.getLogger(__name__)


def enabled(conf):
    api_service.register_opts(conf)
    return conf.api.enabled or conf[alarm_service.GROUP].evaluate_database


class Alarming(lifecycle.Component):
    """Construction builds (no I/O); :meth:`start` connects the database
    (an unreachable one is retried by every evaluation and API call),
    binds the API and starts evaluating; :meth:`stop` is bounded.

    :param share: ``f(group, ids) -> ids`` (the agent's coordinator) or
        ``None`` (this agent evaluates every alarm).
    :param files: ``() -> (AlarmsDefinition or None, StateStore or
        None)``, the alarms file's alarms for the API.
    """

    def __init__(self, conf, pool, storages, share=None, files=None):
        api_service.register_opts(conf)
        opts = conf[alarm_service.GROUP]
        self.pool = pool
        self.db = api_service.open_database(conf)
        self.api = (api_service.APIServer(conf, self.db, files)
                    if conf.api.enabled else None)
        self.alarms = self.evaluator = None
        self._urls = set()
        if opts.evaluate_database:
            self.alarms = dbalarms.DatabaseAlarms(
                self.db, opts.database_evaluation_interval,
                opts.database_refresh, share, {
                    'prometheus': opts.prometheus_storage or None,
                    'gnocchi': opts.gnocchi_storage or None},
                group=opts.coordination_group)
            self.evaluator = evaluator.Evaluator(
                self.alarms, self.alarms, storages, self._delivery)
        self._events = queue.Queue(EVENT_QUEUE)
        self._event_thread = None
        #: Events matched against the event alarms, and those dropped
        #: because the queue was full.
        self.events_seen = self.events_dropped = 0
        self._log = ratelog.RateLimitedLog(LOG, 'event alarms')

    def on_events(self, events):
        """Events the notification listener converted: queued for the
        event alarms (never blocks the listener; a full queue drops and
        counts them).
        """
        if self.evaluator is None or not events or \
                not self.alarms.has_event_alarms:
            return
        try:
            self._events.put_nowait(events)
            return
        except queue.Full:
            pass
        # A flood says so once a minute, with the count since.
        self.events_dropped += len(events)
        self._log.dropped('queue of %d batches full' % EVENT_QUEUE,
                          len(events))

    def _event_loop(self):
        while True:
            events = self._events.get()
            if events is None:
                return
            for event in events:
                self.events_seen += 1
                problem = None
                try:
                    self._event(ceilometer.event_to_wire(event))
                except Exception as exc:
                    problem = '%s: %s' % (type(exc).__name__, exc)
                if problem is not None:
                    # The database away, a bad trait: this event's alarms
                    # wait for the next matching one.
                    self._log.problem('event', '%s failed: %s',
                                      event.event_type, problem,
                                      level=logging.ERROR)

    def _event(self, event):
        project = event_rules.event_project(event)
        for alarm in self.alarms.event_alarms(project):
            state, _, _ = self.alarms.get(alarm.state_key)
            if state == 'alarm' and not alarm.repeat_actions:
                continue        # fired already (Aodh's rule)
            if alarm.enabled and alarm.rule.matches(event):
                self.evaluator.fire(alarm, alarm.rule.fired(event))

    def _delivery(self, url):
        delivery = self.pool.acquire(url, 'actions')
        self._urls.add(url)
        return delivery.start()

    @property
    def keys(self):
        """The pool keys of the action deliveries in use (kept on reload)."""
        return {self.pool.key(url, 'actions') for url in self._urls}

    def describe(self):
        lines = []
        if self.api is not None:
            lines.append('alarming API (Aodh v2) at %s' % self.api.url)
        if self.evaluator is not None:
            lines.append('evaluating the alarms of %s' % self.db)
        return lines

    def start(self):
        problem = None
        try:
            self.db.start()
        except db_store.DatabaseUnavailable as exc:
            problem = exc
        if problem is not None:
            # Said outside the except block: oslo.log would append the
            # exception a second time.
            LOG.warning('%s; retrying with every request and evaluation',
                        problem)
        if self.api is not None:
            self.api.server.start()
        if self.evaluator is not None:
            self.evaluator.start()
            self._event_thread = threading.Thread(
                target=self._event_loop, daemon=True, name='event alarms')
            self._event_thread.start()
        return self

    def close(self, timeout=2.0):
        """Stop the event thread, the evaluator and the API, then the
        database, all within ``timeout`` seconds.
        """
        deadline = lifecycle.Deadline(2.0 if timeout is None else timeout)
        parts = {}
        if self._event_thread is not None:
            try:
                self._events.put_nowait(None)
            except queue.Full:
                pass            # a daemon thread: it goes with the process
            if deadline.join([self._event_thread]):
                parts['event alarms'] = lifecycle.Outcome.unfinished(
                    'an event alarm was still being evaluated')
        if self.evaluator is not None:
            parts['evaluator'] = self.evaluator.close(deadline.left())
        if self.api is not None:
            parts['API'] = self.api.server.close(deadline.left())
        self.db.close(deadline.left())
        return lifecycle.Outcome.of(parts)
