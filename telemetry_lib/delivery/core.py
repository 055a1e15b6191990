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
"""One delivery per publisher: queue, batch, retry, spool, count.

The only place in the library that retries, drops or spools. Producers call
:meth:`Delivery.put` from any thread; it never blocks longer than the
overflow policy says and never raises for a publisher's trouble. One worker
thread takes batches and calls the publisher.

Lifecycle: construction validates and does no I/O; :meth:`Delivery.start`
opens the spool, starts the publisher (connections, listening sockets) and
the worker; :meth:`Delivery.flush` and :meth:`Delivery.close` return within
their timeout with a :class:`~telemetry_lib.lifecycle.Outcome`.
"""

import dataclasses
import hashlib
import logging
import os
import threading
import time
import traceback

from telemetry_lib.delivery.buffer import Buffer
from telemetry_lib.delivery.buffer import MemoryStore
from telemetry_lib.delivery.options import DeliveryOptions
from telemetry_lib.delivery.retry import RetryPolicy
from telemetry_lib.delivery import spool
from telemetry_lib.delivery import stats as st
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib import lifecycle
from telemetry_lib.lifecycle import Outcome
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

KINDS = ('samples', 'events', 'actions')

#: Exceptions a publisher raises for an item it cannot encode (a bug in
#: the item more often than in the publisher): the batch is split to find
#: the item, and only that one is dropped.
_ENCODING_ERRORS = (TypeError, ValueError, OverflowError)


def spool_path(spool_dir, key, scheme, kind):
    """The spool file of one delivery.

    Named by a hash of ``key`` (the publisher URL as written, delivery
    options and password included: two sinks with the same publisher and
    different options, or two accounts on one host, never share a file)
    with the scheme in clear for people.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(spool_dir, '%s-%s-%s.sqlite' % (scheme, kind,
                                                        digest))


def _remaining(deadline, clock=time.monotonic):
    return None if deadline is None else max(0.0, deadline - clock())


class Delivery(lifecycle.Component):
    """Queues items for one publisher and delivers them in batches.

    :param publisher: a :class:`~telemetry_lib.publisher.base.Publisher`.
    :param kind: ``'samples'``, ``'events'`` or ``'actions'`` (alarm
        notifications: ``(id, body)`` pairs).
    :param options: :class:`DeliveryOptions`.
    :param name: used in logs and stats; defaults to the publisher URL.
    :param rng: ``random.Random`` for the retry jitter (tests seed it).
    :param key: what identifies this delivery across restarts (names its
        spool); defaults to the publisher URL.
    :param clock: monotonic seconds, for batching ages and failure times.
    """

    def __init__(self, publisher, kind='samples', options=None, name=None,
                 rng=None, key=None, clock=time.monotonic):
        if kind not in KINDS:
            raise ValueError('kind must be one of %s' % (KINDS,))
        self.publisher = publisher
        self.kind = kind
        self.options = options or DeliveryOptions()
        self.name = name or '%s (%s)' % (publisher.url, kind)
        self.key = key or publisher.url.geturl(with_password=True)
        self._clock = clock
        self._send = {'samples': publisher.publish_samples,
                      'events': publisher.publish_events,
                      'actions': publisher.publish_actions}[kind]
        self._retry = RetryPolicy(self.options.retry_initial_delay,
                                  self.options.retry_max_delay,
                                  self.options.max_retries, rng)
        self._counters = st.Counters()
        self._loss_log = ratelog.RateLimitedLog(LOG, self.name,
                                                clock=clock)
        self._failures = ratelog.FailureLog(LOG, self.name, clock=clock)
        self._buffer = None
        self._worker = None
        self._abort = threading.Event()
        self._state_lock = threading.Lock()
        self._state = 'new'         # -> started -> closed
        self._closed_outcome = None

    @property
    def spool_file(self):
        if not self.options.spool:
            return None
        return spool_path(self.options.spool_dir, self.key,
                          self.publisher.url.scheme, self.kind)

    @property
    def started(self):
        return self._state == 'started'

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        """Open the spool, start the publisher and the worker. Idempotent.

        :raises telemetry_lib.exceptions.ConfigError: when the spool or the
            publisher cannot start (a locked spool, a port in use); nothing
            is left running then.
        """
        with self._state_lock:
            if self._state != 'new':
                return self
            if self.options.spool:
                self._adopt_legacy_spool()
                store = spool.SpoolStore(self.spool_file,
                                         spool.CODECS[self.kind],
                                         fsync=self.options.spool_fsync)
                if store.recovered:
                    LOG.info('%s: %d %s left in the spool by an earlier run '
                             'will be delivered', self.name,
                             store.recovered, self.kind)
            else:
                store = MemoryStore()
            try:
                self.publisher.start()
            except BaseException:
                store.close()
                raise
            self._counters.recovered = store.recovered
            self._buffer = Buffer(store, self.options, self._counters,
                                  self._loss_log, clock=self._clock)
            self._worker = threading.Thread(target=self._run, daemon=True,
                                            name='delivery %s' % self.name)
            self._worker.start()
            self._state = 'started'
        return self

    def _adopt_legacy_spool(self):
        """Take over a spool named as earlier releases named it (by the
        publisher URL without its delivery options): what an upgrade finds
        there is delivered, not left behind.
        """
        new = self.spool_file
        old = spool_path(self.options.spool_dir,
                         self.publisher.url.geturl(with_password=True),
                         self.publisher.url.scheme, self.kind)
        if old == new or os.path.exists(new) or not os.path.exists(old):
            return
        try:
            for suffix in ('-wal', '-shm', ''):
                if os.path.exists(old + suffix):
                    os.replace(old + suffix, new + suffix)
            LOG.info('%s: took over the spool %s of an earlier release',
                     self.name, old)
        except OSError as exc:
            LOG.error('%s: cannot take over the spool %s: %s', self.name,
                      old, exc)

    def put(self, items):
        """Queue items; return how many were accepted (the rest were
        dropped under the overflow policy and counted).

        :raises RuntimeError: before :meth:`start` (a programming error;
            after :meth:`close`, items are counted as dropped instead).
        """
        if not items:
            return 0
        buf = self._buffer
        if buf is None:
            if self._state == 'closed':
                with self._state_lock:
                    self._counters.received += len(items)
                    self._counters.dropped[st.DROP_CLOSED] += len(items)
                return 0
            raise RuntimeError('%s: put() before start()' % self.name)
        return buf.put(items)

    def offer(self, items, high_water=1.0):
        """Queue all of ``items`` or none of them; see
        :meth:`Buffer.offer`. ``False`` when not started or closed.
        """
        buf = self._buffer
        if buf is None:
            return False
        return buf.offer(items, high_water) if items else True

    def has_room(self, count, high_water=1.0):
        """Whether :meth:`offer` of ``count`` items would likely succeed."""
        buf = self._buffer
        return buf is not None and buf.has_room(count, high_water)

    def flush(self, timeout=None):
        """Send everything queued now; wait until it is delivered or dropped,
        at most ``timeout`` seconds. Returns a
        :class:`~telemetry_lib.lifecycle.Outcome`.
        """
        buf = self._buffer
        if buf is None:
            return lifecycle.DONE
        deadline = None if timeout is None else self._clock() + timeout
        with buf.lock:
            buf.flushing += 1
            buf.changed.notify_all()
            try:
                while buf.store.count and self._worker.is_alive():
                    remaining = _remaining(deadline, self._clock)
                    if remaining == 0:
                        break
                    buf.changed.wait(remaining)
            finally:
                buf.flushing -= 1
            pending = buf.store.count
        return Outcome(pending=pending, reason=self._why(pending))

    def close(self, timeout=None):
        """Stop accepting, deliver what is queued within ``timeout`` seconds,
        then release the publisher. Returns within ``timeout`` (plus a few
        milliseconds) whatever the publisher does; never raises.

        What could not be delivered in time stays in the spool when there is
        one (``pending`` and ``spooled``), and is otherwise dropped and
        counted (reason ``shutdown``), including a batch still in the hands
        of a publisher that did not return: the peer may have it or not, and
        it is counted once, as dropped, whatever the publisher says later.
        """
        deadline = None if timeout is None else self._clock() + timeout
        with self._state_lock:
            if self._state == 'closed':
                return self._closed_outcome
            was_started, self._state = self._state == 'started', 'closed'
            if not was_started:
                self._closed_outcome = lifecycle.DONE
                return self._closed_outcome
        buf = self._buffer
        with buf.lock:
            buf.closing = True
            buf.changed.notify_all()
        # Leave a part of the time to close the publisher itself.
        reserve = 0.0 if timeout is None else min(1.0, timeout * 0.2)
        self._worker.join(None if deadline is None
                          else max(0.0, deadline - reserve - self._clock()))
        if self._worker.is_alive():
            self._abort.set()
            with buf.lock:
                buf.changed.notify_all()
            self._worker.join(min(0.05, _remaining(deadline, self._clock)
                                  or 0.0))
        with buf.lock:
            pending = buf.store.count
            reason = self._why(pending)
            if self.options.spool:
                outcome = Outcome(pending=pending, spooled=pending,
                                  reason=reason)
            else:
                count = buf.store.discard_all()
                buf.drop_locked(st.DROP_SHUTDOWN, count,
                                'closed before delivery%s'
                                % (': ' + reason if reason else ''))
                outcome = Outcome(pending=0, dropped=count, reason=reason)
            # A worker still inside the publisher settles nothing when it
            # comes back: what it holds was counted just now.
            buf.detached = True
            if not self._worker.is_alive():
                buf.store.close()
        if not self._close_publisher(deadline):
            outcome = dataclasses.replace(
                outcome, finished=False, reason='; '.join(filter(None, (
                    outcome.reason, 'the publisher did not close in time'))))
        self._closed_outcome = outcome
        return outcome

    def hurry(self):
        """Cut a :meth:`close` in progress short: stop delivering now, so
        what is queued stays in the spool (or, without one, is dropped and
        counted by ``close``) and the spool file is released. For a
        successor that needs the same spool (a quick reload back); a
        delivery not closing stops delivering too.
        """
        self._abort.set()
        buf = self._buffer
        if buf is not None:
            with buf.lock:
                buf.changed.notify_all()

    def _close_publisher(self, deadline):
        def close():
            try:
                self.publisher.close(_remaining(deadline, self._clock))
            except Exception:
                LOG.exception('%s: error while closing the publisher',
                              self.name)
        closer = threading.Thread(target=close, daemon=True,
                                  name='close %s' % self.name)
        closer.start()
        closer.join(_remaining(deadline, self._clock))
        if closer.is_alive():
            LOG.warning('%s: the publisher did not close in time; its '
                        'connections are abandoned', self.name)
            return False
        return True

    def _why(self, pending):
        if not pending:
            return ''
        if self._failures.last_error:
            return str(self._failures.last_error)
        return 'not confirmed in time'

    def stats(self):
        """A :class:`~telemetry_lib.delivery.stats.DeliveryStats` snapshot,
        taken under the lock: the balance holds in every snapshot.
        """
        buf = self._buffer
        if buf is None:
            with self._state_lock:
                return self._counters.snapshot(
                    self.name, self.kind, 0, 0,
                    self.options.max_queue_samples)
        with buf.lock:
            failures = self._failures
            return self._counters.snapshot(
                self.name, self.kind, buf.store.count, buf.store.nbytes,
                self.options.max_queue_samples,
                failing_for=failures.failing_for(),
                last_error=(None if failures.last_error is None
                            else str(failures.last_error)))

    # -- the worker --------------------------------------------------------

    def _run(self):
        buf = self._buffer
        try:
            while not self._abort.is_set():
                try:
                    entries = buf.next_batch()
                except Exception:
                    LOG.exception('%s: cannot read the queue; delivery '
                                  'stops', self.name)
                    return
                if entries is None:
                    return
                if entries:
                    self._deliver(entries)
        finally:
            with buf.lock:
                if buf.detached:
                    buf.store.close()

    def _deliver(self, entries):
        buf = self._buffer
        attempt = 0
        while True:
            items = buf.store.items_of(entries)
            started = self._clock()
            # The outcome is handled after the try: a log line written
            # inside an except block gets the exception appended again by
            # oslo.log's formatter.
            try:
                self._send(items)
                error = None
            except Exception as exc:
                error = exc
            if error is None:
                self._record(started)
                self._failures.succeeded()
                buf.settle(entries, len(entries))
                return
            if isinstance(error, RetryableError):
                entries = self._settle_failure(entries, error, started)
                attempt += 1
                allowed = self._retry.allows(attempt)
                self._failures.failed(error, retrying=allowed)
                if not allowed:
                    buf.settle(entries, 0, st.DROP_RETRIES_EXHAUSTED,
                               'gave up after %d retries: %s'
                               % (attempt - 1, error))
                    return
                delay = self._retry.delay(attempt, error.retry_after)
                if self._wait_before_retry(delay):
                    buf.release(entries)
                    return
                if attempt == 1:
                    # Items, not attempts: 300 samples retried six times
                    # are 300 retried samples.
                    with buf.lock:
                        self._counters.retried += len(entries)
                continue
            if isinstance(error, PermanentError):
                entries = self._settle_failure(entries, error, started)
                self._failures.failed(error, retrying=False)
                buf.settle(entries, 0, st.DROP_PERMANENT, str(error))
                return
            self._record(started, failed=True)
            if isinstance(error, _ENCODING_ERRORS):
                self._isolate(entries, error)
                return
            self._failures.failed(error, retrying=False)
            LOG.error('%s: the publisher raised an unexpected error; its '
                      '%d item(s) are dropped: %s', self.name, len(entries),
                      ''.join(traceback.format_exception(
                          type(error), error, error.__traceback__)))
            buf.settle(entries, 0, st.DROP_PUBLISHER_ERROR,
                       '%s: %s' % (type(error).__name__, error))
            return

    def _isolate(self, entries, exc):
        """One item the publisher cannot encode must not cost its batch:
        send the halves on their own until the bad item is alone, and drop
        that one as ``invalid``.
        """
        if len(entries) == 1:
            self._buffer.settle(entries, 0, st.DROP_INVALID,
                                'cannot be encoded: %s: %s'
                                % (type(exc).__name__, exc))
            return
        half = len(entries) // 2
        for part in (entries[:half], entries[half:]):
            if self._abort.is_set():
                self._buffer.release(part)
            else:
                self._deliver(part)

    def _settle_failure(self, entries, exc, started):
        """Settle the items a partial failure says were delivered (and
        those it says failed for good); return the entries that failed.
        """
        self._record(started, failed=True)
        lost = set(getattr(exc, 'permanent_items', ()))
        if lost:
            self._buffer.settle([e for i, e in enumerate(entries)
                                 if i in lost], 0, st.DROP_PERMANENT,
                                'rejected by the peer')
        if exc.items is None:
            return [e for i, e in enumerate(entries) if i not in lost]
        failed_idx = set(i for i in exc.items if 0 <= i < len(entries))
        failed = [e for i, e in enumerate(entries) if i in failed_idx]
        delivered = [e for i, e in enumerate(entries)
                     if i not in failed_idx and i not in lost]
        self._buffer.settle(delivered, len(delivered))
        return failed

    def _record(self, started, failed=False):
        with self._buffer.lock:
            self._counters.batches += 1
            self._counters.errors += failed
            self._counters.failing = failed
            self._counters.observe_latency(self._clock() - started)

    def _wait_before_retry(self, delay):
        """Sleep ``delay`` seconds; True when told to abort instead."""
        return self._abort.wait(delay)
