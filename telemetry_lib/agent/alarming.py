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

#: Events waiting for the event alarms, at most (more are counted, dropped).
EVENT_QUEUE = 10000

LOG = logging.getLogger(__name__)


def enabled(conf):
    api_service.register_opts(conf)
    return conf.api.enabled or conf[alarm_service.GROUP].evaluate_database


class Alarming:
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

    def on_events(self, events):
        """Events the notification listener converted: queued for the
        event alarms (never blocks the listener; a full queue drops and
        counts them).
        """
        if self.evaluator is None or not events:
            return
        try:
            self._events.put_nowait(events)
        except queue.Full:
            self.events_dropped += len(events)
            LOG.warning('event alarms: %d event(s) dropped, the queue of '
                        '%d batches is full', len(events), EVENT_QUEUE)

    def _event_loop(self):
        while True:
            events = self._events.get()
            if events is None:
                return
            for event in events:
                self.events_seen += 1
                try:
                    self._event(ceilometer.event_to_wire(event))
                except Exception as exc:
                    # The database away, a bad trait: this event's alarms
                    # wait for the next matching one.
                    LOG.error('event alarms: %s failed: %s: %s',
                              getattr(event, 'event_type', '?'),
                              type(exc).__name__, exc)

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
        try:
            self.db.start()
        except db_store.DatabaseUnavailable as exc:
            LOG.warning('%s; retrying with every request and evaluation',
                        exc)
        if self.api is not None:
            self.api.server.start()
        if self.evaluator is not None:
            self.evaluator.start()
            self._event_thread = threading.Thread(
                target=self._event_loop, daemon=True, name='event alarms')
            self._event_thread.start()
        return self

    def stop(self, timeout=2.0):
        if self._event_thread is not None:
            try:
                self._events.put_nowait(None)
            except queue.Full:
                pass            # a daemon thread: it goes with the process
            self._event_thread.join(timeout / 4)
        if self.evaluator is not None:
            self.evaluator.stop(timeout / 4)
        if self.api is not None:
            self.api.server.stop(timeout / 2)
        self.db.close()
