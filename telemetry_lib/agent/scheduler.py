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
"""Calls pollsters on their intervals.

All polling.yaml sources with the same interval share one timer thread; each
tick stamps one timestamp on every sample of that run and hands the
pollsters to a worker pool, so a slow pollster never delays another. A
pollster still running when its next tick comes is skipped for that tick
(counted as an overrun) rather than run twice at once.
"""

import collections
import concurrent.futures
import dataclasses
import datetime
import logging
import threading
import time

from telemetry_lib.exceptions import TelemetryError
from telemetry_lib import lifecycle
from telemetry_lib.timeutils import UTC

LOG = logging.getLogger(__name__)


@dataclasses.dataclass
class PollsterStats:
    """What the agent exports about one pollster."""

    runs: int = 0
    errors: int = 0
    overruns: int = 0
    samples: int = 0
    seconds_sum: float = 0.0
    last_seconds: float = 0.0


class _Job:
    """One pollster under one interval, with the meters its sources want."""

    def __init__(self, name, pollster, filters, resources, source):
        self.name = name
        self.pollster = pollster
        self.filters = filters
        self.resources = resources
        self.sources = [source]
        self.running = False

    @property
    def group(self):
        """The coordination group of agents that run this job."""
        return 'telemetry_lib.%s.%s' % ('+'.join(sorted(self.sources)),
                                        self.name)

    def wanted(self, meter):
        return any(f(meter) for f in self.filters)


class Scheduler(lifecycle.Component):
    """Runs pollsters as a :class:`PollingDefinition` says.

    :param pollsters: ``{name: Pollster}``.
    :param on_samples: called with the (non-empty) sample list of each run,
        from a worker thread.
    :param on_cycle: called with ``(interval, samples, pollsters, seconds)``
        when every run of a tick has finished.
    :param stats: the ``{name: PollsterStats}`` to count in (a reload
        passes the old scheduler's).
    :param clock: monotonic seconds of the timers (tests pass their own).
    :param partition: ``f(group, resources) -> resources`` this agent polls
        (:meth:`~telemetry_lib.agent.coordination.Coordinator.share`), for
        sources that list resources; ``None``: all of them.
    """

    def __init__(self, definition, pollsters, on_samples, on_cycle=None,
                 workers=4, stats=None, clock=time.monotonic,
                 partition=None):
        self._partition = partition
        self._on_samples = on_samples
        self._on_cycle = on_cycle
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix='pollster')
        self._stop = threading.Event()
        self._threads = []
        self._clock = clock
        self._next = {}
        self._lock = threading.Lock()
        # Shared with the scheduler this one replaces on reload, so the
        # pollster counters continue.
        self.stats = (stats if stats is not None
                      else collections.defaultdict(PollsterStats))
        self.groups = self._plan(definition, pollsters)

    @staticmethod
    def _plan(definition, pollsters):
        groups = {}
        for source in definition.sources:
            for name, pollster in pollsters.items():
                if not any(source.filter(m) for m in pollster.meters):
                    continue
                jobs = groups.setdefault(source.interval, {})
                job = jobs.get(name)
                if job is None:
                    jobs[name] = _Job(name, pollster, [source.filter],
                                      list(source.resources), source.name)
                else:
                    job.filters.append(source.filter)
                    job.resources.extend(source.resources)
                    job.sources.append(source.name)
        return {interval: list(jobs.values())
                for interval, jobs in groups.items()}

    def start(self, resume=None):
        """Start the timers.

        :param resume: ``{interval: monotonic time}`` of the next ticks of
            a scheduler this one replaces (:meth:`next_ticks`): an interval
            that existed keeps its cadence instead of polling at once, so a
            reload adds no extra poll.
        """
        resume = resume or {}
        for interval, jobs in sorted(self.groups.items()):
            first = resume.get(interval, self._clock())
            self._next[interval] = first
            t = threading.Thread(target=self._timer,
                                 args=(interval, jobs, first),
                                 name='polling every %ss' % interval,
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def next_ticks(self):
        """``{interval: monotonic time of its next tick}``."""
        return dict(self._next)

    def _timer(self, interval, jobs, next_tick):
        while not self._stop.wait(max(0.0, next_tick - self._clock())):
            self.tick(jobs, interval)
            next_tick += interval
            # Keep the cadence; after a long stall, start again from now
            # instead of firing the missed ticks in a burst.
            if next_tick < self._clock():
                next_tick = self._clock()
            self._next[interval] = next_tick

    def tick(self, jobs, interval=0.0):
        """Submit one run of ``jobs``; return the futures submitted."""
        timestamp = datetime.datetime.now(UTC)
        started = time.monotonic()
        report = {'left': 0, 'samples': 0, 'ran': 0}
        futures = []
        with self._lock:
            runnable = []
            for job in jobs:
                if job.running:
                    self.stats[job.name].overruns += 1
                    LOG.warning('pollster %s is still running from the '
                                'last tick; skipping this one', job.name)
                    continue
                job.running = True
                runnable.append(job)
            report['left'] = len(runnable)
        for job in runnable:
            try:
                future = self._pool.submit(self._run, job, timestamp)
            except RuntimeError:        # the pool is shut down: stopping
                with self._lock:
                    job.running = False
                continue
            future.add_done_callback(
                lambda f, job=job: self._done(f, job, report, interval,
                                              started))
            futures.append(future)
        return futures

    def _run(self, job, timestamp):
        started = time.monotonic()
        try:
            resources = job.resources or None
            if resources and self._partition is not None:
                # An empty share polls nothing: None would mean "all".
                resources = self._partition(job.group, resources)
            declared = job.pollster.declared_meter
            samples = [s for s in job.pollster.poll(timestamp, resources)
                       if job.wanted(declared(s.name))] \
                if resources != [] else []
        except Exception as exc:
            with self._lock:
                self.stats[job.name].errors += 1
            if isinstance(exc, TelemetryError):
                # Expected trouble (libvirt restarting, an API down):
                # one line, and the pollster's own message says why.
                LOG.error('pollster %s failed: %s', job.name, exc)
            else:
                LOG.exception('pollster %s failed', job.name)
            samples = []
        finally:
            took = time.monotonic() - started
            with self._lock:
                st = self.stats[job.name]
                st.runs += 1
                st.seconds_sum += took
                st.last_seconds = took
        if samples:
            with self._lock:
                self.stats[job.name].samples += len(samples)
            try:
                self._on_samples(samples)
            except Exception:
                LOG.exception('routing the samples of %s failed', job.name)
        return len(samples)

    def _done(self, future, job, report, interval, started):
        with self._lock:
            job.running = False
            report['left'] -= 1
            report['ran'] += 1
            if not future.cancelled() and future.exception() is None:
                report['samples'] += future.result()
            last = report['left'] == 0
        if last and self._on_cycle is not None:
            self._on_cycle(interval, report['samples'], report['ran'],
                           time.monotonic() - started)

    def close(self, timeout=None):
        """Stop the timers within ``timeout`` seconds in all; polls still
        running finish in the background, their queued ones cancelled.
        """
        self._stop.set()
        alive = lifecycle.Deadline(timeout).join(self._threads)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if alive:
            return lifecycle.Outcome.unfinished(
                '%d polling timer(s) still running' % len(alive))
        return lifecycle.DONE
