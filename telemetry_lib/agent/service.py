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
"""The polling agent: polling.yaml → pollsters → pipeline → publishers.

Signals: SIGTERM or SIGINT stops polling, flushes every publisher within
``[agent] shutdown_timeout`` and exits 0 (a second one exits at once);
SIGHUP reloads polling.yaml and pipeline.yaml: publishers named again keep
running (queues, spools, connections, ports, counters), new ones start,
removed ones are drained and closed; a broken file or a publisher that
cannot start keeps the running pipeline and logs one clear error.
"""

import collections
import logging
import math
import os
import threading

from telemetry_lib.agent import alarming
from telemetry_lib.agent import coordination
from telemetry_lib.agent import http as agent_http
from telemetry_lib.agent.http import AgentHTTPServer
from telemetry_lib.agent import inputs
from telemetry_lib.agent import notifications
from telemetry_lib.agent.options import AGENT_OPTS
from telemetry_lib.agent.options import find_config_file
from telemetry_lib.agent.options import register_opts
from telemetry_lib.agent.scheduler import Scheduler
from telemetry_lib.agent import signals
from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import receiver
from telemetry_lib.alarm import service as alarm_service
from telemetry_lib.clients import identity
from telemetry_lib.clients import keystone
from telemetry_lib import delivery
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import lifecycle
from telemetry_lib.pipeline import definitions
from telemetry_lib.pipeline import PipelineDefinition
from telemetry_lib.pipeline import PipelineManager
from telemetry_lib.pipeline import PollingDefinition
from telemetry_lib.pollsters import loader as pollster_loader

LOG = logging.getLogger(__name__)


class Agent(lifecycle.Component):
    """Builds and runs the polling agent from ``conf``.

    Construction loads and validates the files and builds every publisher,
    with no I/O; :meth:`start` starts them, the HTTP endpoint and polling.

    :raises ConfigError: when a file or publisher is invalid.
    """

    def __init__(self, conf, pollsters=None):
        register_opts(conf)
        for opt in AGENT_OPTS + agent_http.HTTP_OPTS:
            value = conf.agent[opt.name]
            if isinstance(value, float) and not math.isfinite(value):
                # oslo.config lets "nan" and "inf" through min/max.
                raise ConfigError('must be a finite number, not %r' % value,
                                  where='[agent] %s' % opt.name)
        self.conf = conf
        self.reloads = collections.Counter()
        self._pollsters = (pollsters if pollsters is not None
                           else pollster_loader.load_pollsters(conf))
        self._lock = threading.Lock()
        # Routes in progress per pipeline: a reload waits for those on the
        # old pipeline before it closes what only the old one used, so a
        # poll that was running during the reload loses nothing.
        self._routing = threading.Condition(self._lock)
        self._users = collections.Counter()
        self._reload_requested = threading.Event()
        self._last_totals = {}
        self.pool = delivery.DeliveryPool(conf, alarm_service.pool_factory)
        # The storage drivers alarms read, built once (file alarms and the
        # database's alike), kept across reloads.
        self.storages = evaluator.Storages(conf)
        self.alarms = None
        self.receiver = None
        self.notified = None
        (self.pipeline, self.polling, self.alarms,
         self.receiver, self.notified) = self._load()
        self.notifications = None
        if self.notified is not None:
            self.notifications = notifications.Notifications(
                conf, self._notification_pipelines)
        self.names = None
        if conf.polling.identity_name_discovery:
            self.names = identity.NameCache(
                lambda: keystone.make_session(conf),
                ttl=conf.polling.identity_name_ttl,
                max_entries=conf.polling.identity_name_cache_size)
        self.inputs = None
        if inputs.enabled(conf):
            self.inputs = inputs.SocketInputs(
                conf, lambda: self._notification_pipelines()[0])
        self.coordinator = None
        coordination.register_opts(conf)
        if conf.coordination.backend_url:
            self.coordinator = coordination.Coordinator(conf)
        self.scheduler = self._scheduler(self.polling)
        self.alarming = None
        if alarming.enabled(conf):
            self.alarming = alarming.Alarming(
                conf, self.pool, self.storages,
                self.coordinator.share if self.coordinator else None,
                self._file_alarms)
            if self.notifications is not None:
                self.notifications.on_events = self.alarming.on_events
        self.http = None
        if conf.agent.http_enabled:
            self.http = AgentHTTPServer(self, conf.agent.http_host,
                                        conf.agent.http_port,
                                        conf.agent.healthz_high_water,
                                        conf.agent.healthz_failing_after)

    # -- building ----------------------------------------------------------

    def files(self):
        """The resolved paths of the files the agent would load now."""
        return (find_config_file(self.conf, self.conf.polling.cfg_file),
                find_config_file(self.conf,
                                 self.conf.pipeline.pipeline_cfg_file))

    def _load(self):
        polling_path, pipeline_path = self.files()
        polling = PollingDefinition.load(polling_path)
        for problem in polling.unmatched(
                m for p in self._pollsters.values() for m in p.meters):
            LOG.warning('%s; it polls nothing', problem)
        definition = PipelineDefinition.load(
            pipeline_path, check_url=definitions.publisher_installed)
        pipeline = PipelineManager(self.conf, definition, pool=self.pool)
        alarms = None
        alarms_path = self.conf.alarms.definitions_file
        if alarms_path:
            # The state store and storage drivers outlive a reload.
            old = self.alarms
            alarms = alarm_service.AlarmService(
                self.conf, find_config_file(self.conf, alarms_path),
                self.pool, store=old.store if old else None,
                storages=self.storages)
        rcv = None
        routes = self.conf.receiver.routes_file
        if routes:
            store = (alarms.store if alarms else self.receiver.store
                     if self.receiver else alarm_service.open_store(
                         self.conf))
            rcv = receiver.Receiver(
                self.conf, receiver.load_routes(find_config_file(
                    self.conf, routes)), self._action_delivery,
                targets_file=os.path.join(os.path.dirname(
                    alarm_service.state_file(self.conf)),
                    'receiver-targets.json'), store=store,
                release=self._release_action)
            if self.receiver is not None:
                # Dedupe windows and cooldowns go on across a reload.
                rcv.inherit(self.receiver)
        notified = None
        if notifications.enabled(self.conf):
            notified = notifications.Loaded(self.conf, self.pool,
                                            find_config_file)
        return pipeline, polling, alarms, rcv, notified

    def _file_alarms(self):
        alarms = self.alarms
        return (alarms.definition, alarms.store) if alarms else (None, None)

    def _notification_pipelines(self):
        with self._lock:
            return self.pipeline, self.notified

    def _action_delivery(self, url):
        return self.pool.acquire(url, 'actions').start()

    def _release_action(self, url):
        self.pool.release(url, 'actions', self.conf.agent.shutdown_timeout)

    def _keys(self, pipeline, alarms, rcv, notified=None):
        keys = pipeline.keys | (alarms.keys if alarms else set())
        if notified is not None:
            keys |= notified.keys
        if rcv is not None:
            keys |= {self.pool.key(u, 'actions') for u in rcv.targets()}
        if self.alarming is not None:
            keys |= self.alarming.keys
        return keys

    def _scheduler(self, polling, stats=None):
        return Scheduler(polling, self._pollsters, self._route,
                         self._cycle_done,
                         workers=self.conf.agent.pollster_workers,
                         stats=stats, partition=self.coordinator.share
                         if self.coordinator else None)

    def pipelines(self):
        with self._lock:
            return [self.pipeline]

    def _route(self, samples):
        if self.names is not None:
            samples = self.names.fill(samples)
        with self._lock:
            pipeline = self.pipeline
            self._users[id(pipeline)] += 1
        try:
            pipeline.publish(samples)
        finally:
            with self._lock:
                self._users[id(pipeline)] -= 1
                if not self._users[id(pipeline)]:
                    del self._users[id(pipeline)]
                    self._routing.notify_all()

    def _cycle_done(self, interval, samples, pollsters, seconds):
        parts = []
        for st in self.pool.stats():
            last = self._last_totals.get(st.name, (0, 0, 0))
            now = (st.published, st.dropped_total, st.pending)
            self._last_totals[st.name] = now
            # The name without its query: options make it long, and this
            # line comes every cycle.
            short = '%s (%s)' % (st.name.split('?', 1)[0].rsplit(' (', 1)[0],
                                 st.kind)
            parts.append('%s: published %d, dropped %d, pending %d%s' % (
                short, now[0] - last[0], now[1] - last[1], now[2],
                ' (failing for %.0fs)' % st.failing_for
                if st.failing_for else ''))
        LOG.info('polling every %ss: %d samples from %d pollsters in '
                 '%.2fs; since the last cycle: %s', interval, samples,
                 pollsters, seconds, '; '.join(parts) or 'no publisher')

    # -- running -----------------------------------------------------------

    def describe(self):
        """Lines telling a person what the agent does and where data goes."""
        lines = ['polling from %s' % self.polling.path,
                 'pipeline from %s' % self.pipeline.definition.path]
        if self.alarms is not None:
            lines.append('%d alarm(s) from %s, state in %s' % (
                len(self.alarms.definition.alarms),
                self.alarms.definition.path, self.alarms.store.path))
        lines += ['polling %s every %ss' % (', '.join(sorted(
            j.name for j in jobs)), interval)
            for interval, jobs in sorted(self.scheduler.groups.items())]
        if not self.scheduler.groups:
            lines.append('no installed pollster matches %s'
                         % self.polling.path)
        for url, d in sorted(self.pipeline.deliveries.items()):
            where = getattr(getattr(d.publisher, 'storage', None), 'path',
                            None)
            lines.append('samples go to %s%s' % (
                d.publisher.url, ' (%s)' % where if where else ''))
        if self.notifications is not None:
            lines += self.notifications.describe(self.notified)
        if self.inputs is not None:
            lines += self.inputs.describe()
        if self.receiver is not None and self.http is not None:
            lines.append('Alertmanager receiver at %s%s: %d route(s) from '
                         '%s; its actions spool in %s' % (
                             self.http.url, self.conf.receiver.path,
                             len(self.receiver.routes),
                             self.conf.receiver.routes_file,
                             self.conf.delivery.spool_dir))
        if self.http is not None:
            lines.append('metrics at %s/metrics, health at %s/healthz'
                         % (self.http.url, self.http.url))
        if self.alarming is not None:
            lines.extend(self.alarming.describe())
        return lines

    def start(self):
        """Start the publishers, the HTTP endpoint and polling.

        :raises ConfigError: when one cannot start; nothing keeps running.
        """
        try:
            for p in self._pollsters.values():
                p.start()
            self.pipeline.start()
            if self.notified is not None:
                self.notified.events.start()
            if self.alarms is not None:
                self.alarms.start()
            if self.receiver is not None:
                self.receiver.recover()
            if self.notifications is not None:
                self.notifications.start()
            if self.inputs is not None:
                self.inputs.start()
            if self.names is not None:
                self.names.start()
            if self.http is not None:
                self.http.start()
            if self.alarming is not None:
                self.alarming.start()
        except ConfigError:
            deadline = lifecycle.Deadline(2.0)
            for part in (self.alarming, self.http, self.notifications,
                         self.inputs, *self._pollsters.values()):
                if part is not None:
                    part.close(deadline.left(1.0))
            self.pool.close(0)
            raise
        if self.coordinator is not None:
            self.coordinator.start()
        self.scheduler.start()

    def request_reload(self):
        self._reload_requested.set()

    def reload(self):
        """Load the YAML files again and switch to them, keeping every
        publisher they name again; keep the running pipeline if they or a
        new publisher are broken. Returns True when the new one runs.
        """
        with self._lock:
            old = self.pipeline
        old_alarms = self.alarms
        problem = None
        try:
            pipeline, polling, alarms, rcv, notified = self._load()
            if (notified is None) != (self.notified is None):
                raise ConfigError('turning the notification listener on or '
                                  'off needs a restart',
                                  where='[notification] messaging_urls')
            pipeline.start()
            if notified is not None:
                notified.events.start()
            if alarms is not None:
                for d in alarms.deliveries.values():
                    d.start()
        except Exception as exc:
            problem = (str(exc) if isinstance(exc, ConfigError)
                       else '%s: %s' % (type(exc).__name__, exc))
        if problem is not None:
            # Logged outside the except block: oslo.log would append the
            # exception again. Said before it is counted, so whoever sees
            # the counter move finds the line.
            LOG.error('Reload failed, the running pipeline stays: %s',
                      problem)
            # Close what only the failed pipeline had made.
            self.pool.retain(self._keys(old, old_alarms, self.receiver,
                                        self.notified), 0)
            self.reloads['failed'] += 1
            return False
        old_scheduler = self.scheduler
        old_scheduler.close(timeout=1.0)
        with self._lock:
            self.pipeline, self.polling = pipeline, polling
            self.notified = notified
        if old_alarms is not None:
            old_alarms.close(timeout=5.0)
        self.alarms = alarms
        self.receiver = rcv
        if alarms is not None:
            alarms.start()
        self.scheduler = self._scheduler(polling, old_scheduler.stats)
        self.scheduler.start(resume=old_scheduler.next_ticks())
        with self._lock:
            # put() is bounded (block_timeout at most): so is this wait.
            self._routing.wait_for(lambda: not self._users[id(old)], 30.0)
        self.pool.retain(self._keys(pipeline, alarms, rcv, notified),
                         self.conf.agent.shutdown_timeout)
        self.reloads['ok'] += 1
        LOG.info('Reloaded: polling from %s, pipeline from %s', polling.path,
                 pipeline.definition.path)
        return True

    def close(self, timeout=None):
        """Stop polling, listening and evaluating, then flush and close
        every publisher, all within ``timeout`` seconds (``[agent]
        shutdown_timeout`` when None; each part gets what is left of one
        deadline). Returns the :class:`~telemetry_lib.lifecycle.Outcome`:
        a part per publisher, and one per other part that did not stop.
        """
        deadline = lifecycle.Deadline(self.conf.agent.shutdown_timeout
                                      if timeout is None else timeout)
        parts = {}

        def close(name, part, cap):
            if part is not None:
                parts[name] = part.close(deadline.left(cap))
        close('polling', self.scheduler, 1.0)
        # Then nothing more is taken off the bus (what was taken is
        # acknowledged or left there) or a socket.
        close('notification listener', self.notifications, 5.0)
        close('receivers', self.inputs, 1.0)
        close('identity names', self.names, 1.0)
        close('alarms', self.alarms, 1.0)
        close('alarming', self.alarming, 2.0)
        # Leave the groups now: the others take this share at their next
        # poll rather than after the membership timeout.
        close('coordination', self.coordinator, 2.0)
        for name, pollster in sorted(self._pollsters.items()):
            close('pollster %s' % name, pollster, 1.0)
        close('storage', self.storages, 1.0)
        delivered = self.pool.close(deadline.left())
        if self.http is not None:
            parts['HTTP'] = self.http.close(min(2.0,
                                                max(0.1, deadline.left())))
        # After the HTTP server: the Alertmanager receiver records its
        # decisions there until then.
        store = (self.alarms.store if self.alarms is not None
                 else self.receiver.store if self.receiver is not None
                 else None)
        close('alarm state', store, 1.0)
        for name, outcome in sorted(delivered.parts.items()):
            if not outcome:
                LOG.warning('%s: %d item(s) not delivered at shutdown '
                            '(%d dropped, %d left in the spool)%s', name,
                            outcome.pending + outcome.dropped,
                            outcome.dropped, outcome.spooled,
                            ': %s' % outcome.reason if outcome.reason
                            else '')
        for name, outcome in sorted(parts.items()):
            if not outcome.finished:
                LOG.warning('%s did not stop within the shutdown timeout: '
                            '%s', name, outcome.reason)
        parts.update(delivered.parts)
        return lifecycle.Outcome.of(parts)

    def loss_report(self):
        """Lines saying, per publisher, what was dropped since start and
        why, and what is left in a spool; empty when nothing was.
        """
        lines = []
        for st in self.pool.stats():
            if st.dropped_total:
                lines.append('%s: dropped %d (%s)' % (
                    st.name, st.dropped_total, ', '.join(
                        '%s %d' % kv for kv in sorted(st.dropped.items()))))
            if st.pending:
                lines.append('%s: %d left in the spool for the next start'
                             % (st.name, st.pending))
        return lines

    def run(self):
        """Run until SIGTERM/SIGINT; return the process exit code."""
        inbox = signals.Inbox()
        # Before start(): a signal that comes while it runs waits in the
        # inbox, and the stop follows as soon as start() returns.
        inbox.install()
        try:
            self.start()
            while True:
                got = inbox.wait(1.0)
                stop = [s for s in got if s in signals.STOP]
                if stop:
                    LOG.info('Signal %d: stopping', stop[0])
                    break
                if got or self._reload_requested.is_set():
                    self._reload_requested.clear()
                    self.reload()
            self.close()
        finally:
            inbox.close()
        return 0
