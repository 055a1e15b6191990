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
"""

import dataclasses
import hashlib
import logging
import os
import threading
import time

from telemetry_lib.delivery.buffer import Buffer
from telemetry_lib.delivery.buffer import MemoryStore
from telemetry_lib.delivery.options import DeliveryOptions
from telemetry_lib.delivery.retry import RetryPolicy
from telemetry_lib.delivery import spool
from telemetry_lib.delivery import stats as st
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError

LOG = logging.getLogger(__name__)

KINDS = ('samples', 'events')


@dataclasses.dataclass(frozen=True)
class DrainOutcome:
    """What :meth:`Delivery.flush` or :meth:`Delivery.close` achieved."""

    #: items neither delivered nor dropped when it returned.
    pending: int
    #: of those, items left in the durable spool for the next start.
    spooled: int = 0
    #: items dropped because the delivery closed before sending them.
    dropped: int = 0

    def __bool__(self):
        return self.pending == 0 and self.dropped == 0


def spool_path(spool_dir, url, kind):
    """The spool file of one publisher URL and kind.

    Named by a hash of the full URL (password included, so two accounts on
    one host do not share a spool) with the scheme in clear for people.
    """
    digest = hashlib.sha256(url.geturl(with_password=True).encode()
                            ).hexdigest()[:16]
    return os.path.join(spool_dir, '%s-%s-%s.sqlite' % (url.scheme, kind,
                                                        digest))


class Delivery:
    """Queues items for one publisher and delivers them in batches.

    :param publisher: a :class:`~telemetry_lib.publisher.base.Publisher`.
    :param kind: ``'samples'`` or ``'events'``.
    :param options: :class:`DeliveryOptions`.
    :param name: used in logs and stats; defaults to the publisher URL.
    :param rng: ``random.Random`` for the retry jitter (tests seed it).
    """

    def __init__(self, publisher, kind='samples', options=None, name=None,
                 rng=None):
        if kind not in KINDS:
            raise ValueError('kind must be one of %s' % (KINDS,))
        self.publisher = publisher
        self.kind = kind
        self.options = options or DeliveryOptions()
        self.name = name or '%s (%s)' % (publisher.url, kind)
        self._send = (publisher.publish_samples if kind == 'samples'
                      else publisher.publish_events)
        self._retry = RetryPolicy(self.options.retry_initial_delay,
                                  self.options.retry_max_delay,
                                  self.options.max_retries, rng)
        self._counters = st.Counters()
        self._loss_log = st.LossLog(LOG, self.name)
        if self.options.spool:
            store = spool.SpoolStore(
                spool_path(self.options.spool_dir, publisher.url, kind),
                spool.CODECS[kind], fsync=self.options.spool_fsync)
            if store.recovered:
                LOG.info('%s: %d %s left in the spool by an earlier run '
                         'will be delivered', self.name, store.recovered,
                         kind)
        else:
            store = MemoryStore()
        self._counters.recovered = store.recovered
        self._buffer = Buffer(store, self.options, self._counters,
                              self._loss_log)
        self._abort = threading.Event()
        self._closed = False
        self._worker = threading.Thread(target=self._run, daemon=True,
                                        name='delivery %s' % self.name)
        self._worker.start()

    # -- public API --------------------------------------------------------

    def put(self, items):
        """Queue items; return how many were accepted (the rest were
        dropped under the overflow policy and counted).
        """
        if not items:
            return 0
        return self._buffer.put(items)

    def flush(self, timeout=None):
        """Send everything queued now; wait until it is delivered or dropped,
        at most ``timeout`` seconds. Returns a :class:`DrainOutcome`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        buf = self._buffer
        with buf.lock:
            buf.flushing += 1
            buf.changed.notify_all()
            try:
                while buf.store.count and self._worker.is_alive():
                    remaining = (None if deadline is None
                                 else deadline - time.monotonic())
                    if remaining is not None and remaining <= 0:
                        break
                    buf.changed.wait(remaining)
            finally:
                buf.flushing -= 1
            return DrainOutcome(pending=buf.store.count)

    def close(self, timeout=None):
        """Stop accepting, deliver what is queued within ``timeout`` seconds,
        then release the publisher.

        What could not be delivered in time stays in the spool when there is
        one, and is otherwise dropped and counted (reason ``shutdown``).
        Never raises; returns a :class:`DrainOutcome`.
        """
        buf = self._buffer
        with buf.lock:
            if self._closed:
                return DrainOutcome(pending=0)
            self._closed = True
            buf.closing = True
            buf.changed.notify_all()
        self._worker.join(timeout)
        if self._worker.is_alive():
            # Out of time: the worker gives its batch back at its next step.
            self._abort.set()
            with buf.lock:
                buf.changed.notify_all()
            self._worker.join(min(1.0, timeout or 1.0))
        with buf.lock:
            pending = buf.store.count
            if self.options.spool:
                outcome = DrainOutcome(pending=pending, spooled=pending)
            else:
                buf.drop_locked(st.DROP_SHUTDOWN, pending,
                                'closed before delivery')
                outcome = DrainOutcome(pending=0, dropped=pending)
            if not self._worker.is_alive():
                buf.store.close()
        try:
            self.publisher.close(timeout)
        except Exception:
            LOG.exception('%s: error while closing the publisher', self.name)
        return outcome

    def stats(self):
        """A :class:`~telemetry_lib.delivery.stats.DeliveryStats` snapshot."""
        buf = self._buffer
        with buf.lock:
            return self._counters.snapshot(self.name, self.kind,
                                           buf.store.count, buf.store.nbytes,
                                           self.options.max_queue_samples)

    # -- the worker --------------------------------------------------------

    def _run(self):
        while not self._abort.is_set():
            try:
                entries = self._buffer.next_batch()
            except Exception:
                LOG.exception('%s: cannot read the queue; delivery stops',
                              self.name)
                return
            if entries is None:
                return
            if entries:
                self._deliver(entries)

    def _deliver(self, entries):
        buf = self._buffer
        attempt = 0
        while True:
            items = [e.item for e in entries]
            started = time.monotonic()
            try:
                self._send(items)
            except RetryableError as exc:
                entries = self._settle_failure(entries, exc, started)
                attempt += 1
                if not self._retry.allows(attempt):
                    buf.settle(entries, 0, st.DROP_RETRIES_EXHAUSTED,
                               'gave up after %d retries: %s'
                               % (attempt - 1, exc))
                    return
                delay = self._retry.delay(attempt, exc.retry_after)
                self._loss_log.problem(
                    'retry', 'publish failed, retrying %d item(s) in %.1fs '
                    '(retry %d): %s', len(entries), delay, attempt, exc)
                if self._wait_before_retry(delay):
                    buf.release(entries)
                    return
                with buf.lock:
                    self._counters.retried += len(entries)
            except PermanentError as exc:
                entries = self._settle_failure(entries, exc, started)
                buf.settle(entries, 0, st.DROP_PERMANENT, str(exc))
                return
            except Exception as exc:
                self._record(started, failed=True)
                LOG.exception('%s: the publisher raised an unexpected '
                              'error; its %d item(s) are dropped',
                              self.name, len(entries))
                buf.settle(entries, 0, st.DROP_PUBLISHER_ERROR,
                           '%s: %s' % (type(exc).__name__, exc))
                return
            else:
                self._record(started)
                buf.settle(entries, len(entries))
                return

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
            self._counters.observe_latency(time.monotonic() - started)

    def _wait_before_retry(self, delay):
        """Sleep ``delay`` seconds; True when told to abort instead."""
        return self._abort.wait(delay)
