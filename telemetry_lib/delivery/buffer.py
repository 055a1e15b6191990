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
"""The bounded queue in front of a publisher, and its in-memory store.

:class:`Buffer` owns the bounds, the overflow policy and the hand-off to the
delivery worker; where the items live is a *store*: :class:`MemoryStore`
here, :class:`~telemetry_lib.delivery.spool.SpoolStore` on disk. A store
keeps items in arrival order and knows which ones are in flight (taken by
the worker, not yet settled), which an eviction never touches. Its entries
are its own (the items themselves in memory, rows in the spool): the buffer
and the worker ask the store for their ``sizes``, ``size_of`` and
``items_of``.
"""

import collections
import itertools
import operator
import threading
import time

from telemetry_lib.delivery import stats as st
from telemetry_lib import jsoncodec


#: The spool's entry: ``[item, size, key]``, a list it fills the key into
#: once the item is on disk. The memory store's entries are the items
#: themselves (see :class:`MemoryStore`).
ITEM, SIZE, KEY = 0, 1, 2
_METADATA = operator.attrgetter('resource_metadata')
#: Bytes per item beside its metadata: the sample's own fields.
_BASE = 600
#: Bytes per key of a metadata dict: Python's per-value overheads.
_PER_KEY = 100
_UNENCODABLE = 4096


def approx_size(item):
    """An estimate of an item's memory, to bound the queue in bytes.

    Its metadata (or traits) encoded as JSON, in C, sized twice over plus
    Python's per-value overheads (a key ends in ``":`` in the JSON, so the
    keys of nested dicts count too): it errs high, so ``max_queue_bytes``
    bounds memory (within 1.5 times, measured with 4 KiB values).
    """
    metadata = getattr(item, 'resource_metadata', None)
    if metadata is None:
        traits = getattr(item, 'traits', ())
        return 400 + sum(120 + len(t.name) + (len(t.value) if type(
            t.value) is str else 32) for t in traits)
    try:
        encoded = jsoncodec.dumps(metadata)
    except (TypeError, ValueError, RecursionError):
        return _UNENCODABLE          # it will be refused later; count it
    return _BASE + 2 * len(encoded) + _PER_KEY * encoded.count(b'":')


def batch_size(items):
    """Of samples, the sum of their :func:`approx_size`, from one encoding
    of all their metadata: a few C calls for the batch instead of a Python
    call per sample.
    """
    if not items:
        return 0
    try:
        encoded = jsoncodec.dumps(list(map(_METADATA, items)))
    except (AttributeError, TypeError, ValueError, RecursionError):
        # Not samples (events, actions), or one cannot be encoded: one by
        # one, so that the bad one alone counts as unencodable.
        return sum(map(approx_size, items))
    # The list's brackets and commas are not the items'.
    return (_BASE * len(items) + 2 * (len(encoded) - len(items) - 1)
            + _PER_KEY * encoded.count(b'":'))


_LAST_SIZES = threading.local()


class Batch(list):
    """Items put together, each counting ``each`` bytes; a slice is one
    too.
    """

    __slots__ = ('each',)

    def __init__(self, items, each):
        super().__init__(items)
        self.each = each

    def __getitem__(self, index):
        got = list.__getitem__(self, index)
        return Batch(got, self.each) if isinstance(index, slice) else got


class MemoryStore:
    """Items in memory; lost with the process (use the spool for more).

    Its entries are the items themselves, not an object per item: at
    hundreds of thousands of samples a second, an object per sample (and
    the garbage collector's walks over them) was most of the queue's cost.
    The queue holds the :class:`Batch` es as they were put, each item
    counting its batch's mean size; taking is a few slices in C. What is in
    flight counts as one sum, and a part of it leaves with its share of
    the sum (all of what is left with the last part): exact per batch put
    and taken whole, within a few bytes for the parts a partial failure
    makes.
    """

    def __init__(self):
        self._queue = collections.deque()   # Batches, oldest first
        self._head = 0          # items of the first Batch already taken
        self.count = 0          # queued + in flight
        self.nbytes = 0
        self.in_flight = 0
        self._in_flight_bytes = 0

    recovered = 0

    @property
    def queued(self):
        return self.count - self.in_flight

    def prepare(self, items):
        """A :class:`Batch` of ``items``, and how many could not be
        stored (none: memory takes anything).
        """
        # A pipeline hands the same items, in the same order, to each of its
        # publishers one after the other in one thread: the size of the
        # last batch this thread prepared is reused when it is the same
        # batch again (item by item, by identity; the memo keeps them alive
        # until the next batch).
        last = getattr(_LAST_SIZES, 'memo', None)
        if (last is not None and len(last[0]) == len(items)
                and all(map(operator.is_, items, last[0]))):
            each = last[1]
        else:
            each = -(-batch_size(items) // max(1, len(items)))
            _LAST_SIZES.memo = (tuple(items), each)
        return Batch(items, each), 0

    @staticmethod
    def sizes(batch):
        """Each entry's bytes, of a :class:`Batch` from :meth:`prepare`."""
        return itertools.repeat(batch.each, len(batch))

    def size_of(self, entries):
        """The bytes ``entries`` count for: a :class:`Batch` its own, what
        :meth:`take` gave (or a part of it) its share of the in-flight sum.
        """
        each = getattr(entries, 'each', None)
        if each is not None:
            return each * len(entries)
        return self._share(len(entries))

    @staticmethod
    def items_of(entries):
        return entries

    def _share(self, n):
        if n >= self.in_flight:
            return self._in_flight_bytes
        return self._in_flight_bytes * n // self.in_flight

    def append(self, batch):
        if batch:
            self._queue.append(batch)
            self.count += len(batch)
            self.nbytes += batch.each * len(batch)

    def take(self, max_items):
        queue = self._queue
        taken, size = [], 0
        while queue and len(taken) < max_items:
            chunk, head = queue[0], self._head
            end = head + max_items - len(taken)
            if end >= len(chunk):
                taken += list.__getitem__(chunk, slice(head, None)) \
                    if head else chunk
                size += (len(chunk) - head) * chunk.each
                queue.popleft()
                self._head = 0
            else:
                taken += list.__getitem__(chunk, slice(head, end))
                size += (end - head) * chunk.each
                # The list lives on until its last entry is taken: what it
                # no longer holds must not stay alive with it.
                chunk[head:end] = itertools.repeat(None, end - head)
                self._head = end
        self.in_flight += len(taken)
        self._in_flight_bytes += size
        return taken

    def _leave(self, n):
        """Take ``n`` entries out of flight; the bytes they counted."""
        size = self._share(n)
        self.in_flight -= n
        self._in_flight_bytes -= size
        if not self.in_flight:
            self._in_flight_bytes = 0
        return size

    def settle(self, entries):
        """Forget entries for good (delivered or dropped)."""
        self.nbytes -= self._leave(len(entries))
        self.count -= len(entries)
        if not self.count:
            self.nbytes = 0

    def release(self, entries):
        """Put in-flight entries back at the head, in their order."""
        size = self._leave(len(entries))
        if self._head:
            self._queue[0] = self._queue[0][self._head:]
            self._head = 0
        if entries:
            self._queue.appendleft(Batch(entries, size // len(entries)))

    def evict_oldest(self, items_needed, bytes_needed):
        """Remove the oldest queued (not in-flight) entries until enough
        room is made; return ``(count, bytes)`` removed.
        """
        count = size = 0
        queue = self._queue
        while queue and (count < items_needed or size < bytes_needed):
            chunk = queue[0]
            size += chunk.each
            chunk[self._head] = None
            count += 1
            self._head += 1
            if self._head == len(chunk):
                queue.popleft()
                self._head = 0
        self.count -= count
        self.nbytes = max(0, self.nbytes - size) if self.count else 0
        return count, size

    def discard_all(self):
        """Forget every entry, in flight included; return how many."""
        count = self.count
        self._queue.clear()
        self._head = self.count = self.nbytes = self.in_flight = 0
        self._in_flight_bytes = 0
        return count

    def close(self):
        self._queue.clear()
        self._head = 0


class Buffer:
    """A bounded queue with an overflow policy, shared by one producer side
    (``put``, any thread) and one consumer (the delivery worker).

    All counting of accepted and overflow-dropped items happens here, under
    the buffer's lock, which the delivery also uses for its own counters.
    """

    def __init__(self, store, options, counters, loss_log,
                 clock=time.monotonic):
        self.store = store
        self.options = options
        self.counters = counters
        self.loss_log = loss_log
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._clock = clock
        self._oldest = clock() if store.queued else None
        self.flushing = 0
        self.closing = False
        # Set once close() has counted what is left: a worker coming back
        # late from its publisher must not count its batch a second time.
        self.detached = False

    # -- producer side -----------------------------------------------------

    def put(self, items):
        """Queue ``items`` under the overflow policy; return how many were
        accepted. Never raises for a full queue: drops are counted.
        """
        entries, unstorable = self.store.prepare(items)
        with self.lock:
            self.counters.received += len(items)
            if unstorable:
                self.drop_locked(st.DROP_UNENCODABLE, unstorable)
            if self.closing:
                self.drop_locked(st.DROP_CLOSED, len(entries))
                return 0
            opts = self.options
            if (self.store.count + len(entries) <= opts.max_queue_samples
                    and self.store.nbytes + self.store.size_of(entries)
                    <= opts.max_queue_bytes):
                # Room for all of it (the usual case): what every policy
                # does then, without walking the entries in Python.
                return self._accept(entries)
            policy = opts.overflow
            if policy == 'drop_oldest':
                accepted = self._put_evicting(entries)
            elif policy == 'block':
                accepted = self._put_blocking(entries)
            else:
                accepted = self._put_fitting(entries)
            return accepted

    def offer(self, items, high_water=1.0):
        """Queue every item or none: ``True`` when all were queued (and,
        with a spool, are on disk), ``False`` -- nothing queued, nothing
        counted -- when they would take the queue past ``high_water`` (a
        fraction of its bounds) or it is closing. For a producer that can
        keep its items and retry (a message bus that redelivers), instead
        of the overflow policy's drops.
        """
        entries, unstorable = self.store.prepare(items)
        with self.lock:
            opts = self.options
            size = self.store.size_of(entries)
            if self.closing or (
                    self.store.count + len(entries)
                    > opts.max_queue_samples * high_water) or (
                    self.store.count and self.store.nbytes + size
                    > opts.max_queue_bytes * high_water):
                return False
            self.counters.received += len(items)
            if unstorable:
                self.drop_locked(st.DROP_UNENCODABLE, unstorable)
            self._accept(entries)
            return True

    def has_room(self, count, high_water=1.0):
        """Whether ``count`` more items stay under ``high_water``."""
        with self.lock:
            return not self.closing and (
                self.store.count + count
                <= self.options.max_queue_samples * high_water) and (
                self.store.nbytes
                < self.options.max_queue_bytes * high_water)

    def _fitting_prefix(self, entries):
        room = self.options.max_queue_samples - self.store.count
        byte_room = self.options.max_queue_bytes - self.store.nbytes
        n = 0
        for size in self.store.sizes(entries):
            too_big = size > byte_room and (n or self.store.count)
            if n >= room or too_big:
                break
            byte_room -= size
            n += 1
        return n

    def _accept(self, entries):
        if not entries:
            return 0
        if self.store.queued == 0:
            self._oldest = self._clock()
        self.store.append(entries)
        self.changed.notify_all()
        return len(entries)

    def _put_fitting(self, entries):
        n = self._fitting_prefix(entries)
        if n < len(entries):
            self.drop_locked(st.DROP_OVERFLOW, len(entries) - n,
                             'queue full, newest refused')
        return self._accept(entries[:n])

    def _put_evicting(self, entries):
        opts = self.options
        # Of the incoming items, only the newest that could ever fit.
        keep, size = 0, 0
        for one in reversed(list(self.store.sizes(entries))):
            if keep >= opts.max_queue_samples or (
                    keep and size + one > opts.max_queue_bytes):
                break
            keep += 1
            size += one
        skipped = len(entries) - keep
        entries = entries[skipped:]
        need_items = self.store.count + keep - opts.max_queue_samples
        need_bytes = self.store.nbytes + size - opts.max_queue_bytes
        evicted = skipped
        if need_items > 0 or need_bytes > 0:
            count, _ = self.store.evict_oldest(max(need_items, 0),
                                               max(need_bytes, 0))
            evicted += count
            if self.store.queued == 0:
                self._oldest = None
        # In-flight items cannot be evicted: if they still hold the room,
        # the oldest of the incoming make way, never the newest.
        fit = self._fitting_prefix(entries[::-1])
        evicted += len(entries) - fit
        if evicted:
            self.drop_locked(st.DROP_OVERFLOW, evicted,
                             'queue full, oldest evicted')
        return self._accept(entries[len(entries) - fit:])

    def _put_blocking(self, entries):
        deadline = self._clock() + self.options.block_timeout
        accepted = 0
        while entries:
            n = self._fitting_prefix(entries)
            accepted += self._accept(entries[:n])
            entries = entries[n:]
            if not entries:
                break
            remaining = deadline - self._clock()
            if remaining <= 0 or self.closing:
                self.drop_locked(st.DROP_OVERFLOW, len(entries),
                                 'queue full for %.1fs'
                                 % self.options.block_timeout)
                break
            self.changed.wait(remaining)
        return accepted

    def drop_locked(self, reason, count, detail=''):
        """Count a loss; the caller holds the lock."""
        if count:
            self.counters.dropped[reason] += count
            self.loss_log.dropped(reason, count, detail)

    # -- consumer side -----------------------------------------------------

    def next_batch(self):
        """Block until a batch is due, then take it; ``None`` once closing
        has emptied the queue.
        """
        opts = self.options
        with self.lock:
            while True:
                if self.detached:
                    return None
                queued = self.store.queued
                if queued:
                    age = self._clock() - self._oldest
                    if (queued >= opts.max_batch_size or self.flushing
                            or self.closing or age >= opts.max_latency):
                        taken = self.store.take(opts.max_batch_size)
                        if self.store.queued == 0:
                            self._oldest = None
                        return taken
                    self.changed.wait(opts.max_latency - age)
                elif self.closing or self.detached:
                    return None
                else:
                    self.changed.wait()

    def settle(self, entries, published=0, reason=None, detail=''):
        """Settle in-flight entries: ``published`` of them were delivered,
        the rest are dropped for ``reason``.
        """
        with self.lock:
            if self.detached:
                return
            self.store.settle(entries)
            self.counters.published += published
            self.drop_locked(reason, len(entries) - published, detail)
            self.changed.notify_all()

    def release(self, entries):
        """Return in-flight entries to the head of the queue."""
        with self.lock:
            if self.detached:
                return
            self.store.release(entries)
            if self._oldest is None:
                self._oldest = self._clock()
            self.changed.notify_all()
