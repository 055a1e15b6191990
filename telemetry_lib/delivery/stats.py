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
"""What a delivery counts.

Every item that enters a delivery ends in exactly one of: published,
dropped (with a reason), or still pending (queued, in flight or spooled).
So ``received + recovered == published + sum(dropped.values()) + pending``
holds at every moment (a snapshot is taken under the delivery's lock), and
after ``close``; a test or an operator can check it.
"""

import collections
import dataclasses
import typing

#: Reasons an item is dropped.
DROP_OVERFLOW = 'overflow'            # the queue was full
DROP_PERMANENT = 'permanent'          # the publisher said it can never work
DROP_RETRIES_EXHAUSTED = 'retries_exhausted'
DROP_PUBLISHER_ERROR = 'publisher_error'  # the publisher raised a bug
DROP_SHUTDOWN = 'shutdown'            # closed before delivery, no spool
DROP_CLOSED = 'closed'                # offered after close()
DROP_UNENCODABLE = 'unencodable'      # could not be written to the spool
DROP_INVALID = 'invalid'              # an item no publisher could encode

#: Reasons that mean the publisher failed (rather than the queue).
FAILURE_REASONS = (DROP_PERMANENT, DROP_RETRIES_EXHAUSTED,
                   DROP_PUBLISHER_ERROR, DROP_INVALID)

#: Upper bounds (seconds) of the publish latency histogram buckets.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0, float('inf'))


@dataclasses.dataclass(frozen=True)
class DeliveryStats:
    """A snapshot of one delivery's counters."""

    name: str
    kind: str
    #: items offered to the delivery since this process began, whether the
    #: queue took them or (counted in ``dropped``) not.
    received: int
    #: items found in the spool at start, left by an earlier process.
    recovered: int
    #: items the publisher confirmed.
    published: int
    #: items sent again at least once after a retryable failure.
    retried: int
    #: items lost, by reason (see the ``DROP_*`` constants).
    dropped: typing.Mapping[str, int]
    #: items queued, in flight or spooled now.
    pending: int
    pending_bytes: int
    #: publish calls, and those that raised.
    batches: int
    errors: int
    #: publish latency: cumulative counts per ``LATENCY_BUCKETS`` bound.
    latency_buckets: typing.Tuple[int, ...]
    latency_sum: float
    #: whether the last publish call failed (and none succeeded since).
    failing: bool
    #: the queue bound, to judge ``pending`` against.
    capacity: int
    #: seconds since the first failure of the current streak (0 if none).
    failing_for: float = 0.0
    #: the last error of the current streak, for people.
    last_error: typing.Optional[str] = None

    @property
    def balanced(self):
        """``received + recovered == published + dropped + pending``."""
        return (self.received + self.recovered
                == self.published + self.dropped_total + self.pending)

    @property
    def failed(self):
        """Items the publisher failed for good (a subset of ``dropped``)."""
        return sum(self.dropped.get(r, 0) for r in FAILURE_REASONS)

    @property
    def dropped_total(self):
        return sum(self.dropped.values())


class Counters:
    """The mutable counters behind :class:`DeliveryStats`.

    Not thread-safe by itself: the delivery updates it under its lock.
    """

    def __init__(self):
        self.received = 0
        self.recovered = 0
        self.published = 0
        self.retried = 0
        self.dropped = collections.Counter()
        self.batches = 0
        self.errors = 0
        self._latency_counts = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.failing = False

    def observe_latency(self, seconds):
        self.latency_sum += seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self._latency_counts[i] += 1
                break

    def snapshot(self, name, kind, pending, pending_bytes, capacity,
                 failing_for=0.0, last_error=None):
        cumulative, total = [], 0
        for count in self._latency_counts:
            total += count
            cumulative.append(total)
        return DeliveryStats(
            name=name, kind=kind, received=self.received,
            recovered=self.recovered, published=self.published,
            retried=self.retried, dropped=dict(self.dropped),
            pending=pending, pending_bytes=pending_bytes,
            batches=self.batches, errors=self.errors,
            latency_buckets=tuple(cumulative), latency_sum=self.latency_sum,
            failing=self.failing, capacity=capacity,
            failing_for=failing_for, last_error=last_error)
