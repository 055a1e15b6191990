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
"""Deliveries that outlive the pipelines using them.

A reload builds a new pipeline from the same pool: a publisher URL (and
kind) it names again gets the running delivery back, with its queue, spool,
connections, listening port and counters; a new URL gets a new delivery,
started with the new pipeline; a URL no pipeline names any more is drained
and closed in the background, and its last counters stay visible.
"""

import collections
import dataclasses
import logging
import threading
import time

from telemetry_lib import lifecycle
from telemetry_lib.url import TelemetryURL

LOG = logging.getLogger(__name__)


def drain(deliveries, method, timeout=None):
    """Call ``flush`` or ``close`` (``method``) on every delivery at once,
    all within ``timeout`` seconds; return their
    :class:`~telemetry_lib.lifecycle.Outcome`, each in its ``parts`` by
    name.

    A delivery that did not answer in time (it bounds itself, so only a bug
    gets here) is reported with what it still holds.
    """
    deliveries = list(deliveries)
    outcomes = {}
    deadline = None if timeout is None else time.monotonic() + timeout

    def one(d):
        outcomes[d.name] = getattr(d, method)(timeout)

    threads = [threading.Thread(target=one, args=(d,), daemon=True,
                                name='%s %s' % (method, d.name))
               for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        # Each delivery bounds itself; the margin covers thread switches.
        t.join(None if deadline is None
               else max(0.0, deadline + 0.25 - time.monotonic()))
    for d in deliveries:
        if d.name not in outcomes:
            outcomes[d.name] = lifecycle.Outcome.unfinished(
                '%s did not return in time' % method,
                pending=d.stats().pending)
    return lifecycle.Outcome.of(outcomes)


class DeliveryPool(lifecycle.Component):
    """The deliveries of an agent (or any embedding service), keyed by kind
    and publisher URL as written (delivery options included).

    :param conf: the caller's ``ConfigOpts``.
    :param factory: ``f(conf, url, kind) -> Delivery`` (not started);
        defaults to :func:`telemetry_lib.delivery.build`.
    :param keep_retired: how many closed deliveries' counters to keep
        showing (a removed publisher's totals must not vanish from
        ``/metrics`` at once).
    """

    #: Seconds :meth:`acquire` waits for a retiring delivery of the same
    #: URL to release its spool file or port.
    HANDOVER_TIMEOUT = 10.0

    def __init__(self, conf, factory=None, keep_retired=100):
        if factory is None:
            from telemetry_lib.delivery import build as factory
        self._conf = conf
        self._factory = factory
        self._keep_retired = keep_retired
        self._lock = threading.Lock()
        self._live = {}
        self._retired = collections.OrderedDict()
        self._closers = {}          # key -> (delivery, closing thread)

    @staticmethod
    def key(url, kind):
        """``(kind, URL with its password)``; ``url`` is text or parsed."""
        if not isinstance(url, TelemetryURL):
            url = TelemetryURL.parse(url)
        return (kind, url.geturl(with_password=True))

    def acquire(self, url, kind):
        """The delivery of ``url`` and ``kind``: the running one, or a new
        one (not started).

        :raises telemetry_lib.exceptions.ConfigError: for a bad URL.
        """
        if not isinstance(url, TelemetryURL):
            url = TelemetryURL.parse(url)
        key = self.key(url, kind)
        with self._lock:
            found = self._live.get(key)
            closing = self._closers.get(key)
        if found is not None:
            return found
        if closing is not None and closing[1].is_alive():
            self._hand_over(*closing)
        made = self._factory(self._conf, url, kind)
        with self._lock:
            found = self._live.setdefault(key, made)
        if found is not made:
            made.close(0)
        return found

    def _hand_over(self, retiring, closer):
        """A URL named again while its old delivery is still being closed
        (a reload, then a quick reload back): the old one must let go of
        its spool file (or port) before the new one opens it. With a
        spool, its drain is cut short -- what it holds stays in the spool
        for the new one; otherwise it finishes draining, within the bound.
        """
        if retiring.spool_file:
            retiring.hurry()
        closer.join(self.HANDOVER_TIMEOUT)
        if closer.is_alive():
            LOG.warning('%s: the delivery being retired did not let go in '
                        '%.0fs', retiring.name, self.HANDOVER_TIMEOUT)

    def _remember(self, deliveries):
        """Keep showing the counters of ``deliveries`` (under the lock)."""
        for d in deliveries:
            self._retired.pop(d.name, None)
            self._retired[d.name] = d
        while len(self._retired) > self._keep_retired:
            self._retired.popitem(last=False)

    def retain(self, keys, timeout=None):
        """Keep the deliveries of ``keys``; drain and close the others in
        the background within ``timeout`` seconds. Returns those closed.
        """
        keys = set(keys)
        with self._lock:
            gone = [(k, d) for k, d in self._live.items() if k not in keys]
            self._live = {k: d for k, d in self._live.items() if k in keys}
            self._remember(d for _, d in gone)
        return self._close_in_background(gone, timeout)

    def release(self, url, kind, timeout=None):
        """Drain and close the delivery of ``url`` and ``kind`` in the
        background, as if no pipeline named it any more.
        """
        key = self.key(url, kind)
        with self._lock:
            d = self._live.pop(key, None)
            if d is None:
                return []
            self._remember([d])
        return self._close_in_background([(key, d)], timeout)

    def _close_in_background(self, gone, timeout):
        for key, d in gone:
            if not d.started:
                d.close(0)      # never started: nothing to drain
                continue
            t = threading.Thread(target=self._retire, args=(d, timeout),
                                 daemon=True, name='retire %s' % d.name)
            t.start()
            with self._lock:
                self._closers = {k: c for k, c in self._closers.items()
                                 if c[1].is_alive()}
                self._closers[key] = (d, t)
        return [d for _, d in gone]

    @staticmethod
    def _retire(d, timeout):
        outcome = d.close(timeout)
        if outcome:
            LOG.info('%s: no longer in any pipeline; drained and closed',
                     d.name)
        else:
            LOG.warning('%s: no longer in any pipeline; closed with %d '
                        'item(s) dropped and %d left in the spool%s',
                        d.name, outcome.dropped, outcome.spooled,
                        ': %s' % outcome.reason if outcome.reason else '')

    def deliveries(self):
        """The live deliveries."""
        with self._lock:
            return list(self._live.values())

    def stats(self, retired=True):
        """Stats of the live deliveries, then (unless ``retired`` is false)
        of the retired and closed ones whose name no live delivery has
        taken again -- what ``/metrics`` and a loss report show; health
        is judged on the live ones alone.
        """
        with self._lock:
            live = list(self._live.values())
            names = {d.name for d in live}
            gone = [d for n, d in self._retired.items()
                    if n not in names] if retired else []
        return [d.stats() for d in live + gone]

    def close(self, timeout=None):
        """Close every delivery at once within ``timeout`` seconds, and
        wait for those being retired; return their
        :class:`~telemetry_lib.lifecycle.Outcome` (one part per delivery).
        Their counters stay readable (:meth:`stats`), for the report a
        service prints when it stops.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            live, self._live = list(self._live.values()), {}
            self._remember(live)
            closers = [t for _, t in self._closers.values()]
        outcomes = drain(live, 'close', timeout)
        for t in closers:
            t.join(None if deadline is None
                   else max(0.0, deadline - time.monotonic()))
        if any(t.is_alive() for t in closers):
            return dataclasses.replace(
                outcomes, finished=False, reason=(
                    outcomes.reason or 'a retired publisher was still '
                    'draining'))
        return outcomes
