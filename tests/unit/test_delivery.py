import random
import threading
import time

from telemetry_lib import delivery
from telemetry_lib.delivery.retry import RetryPolicy
from telemetry_lib import InvalidURL
from telemetry_lib import PermanentError
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import RetryableError
from telemetry_lib import Sample
from telemetry_lib.url import TelemetryURL
from tests import base

FAST = dict(max_latency=0, retry_initial_delay=0.001, retry_max_delay=0.01)


def samples(n, start=0):
    return [Sample('m', 'gauge', '1', i, resource_id='r%d' % i)
            for i in range(start, start + n)]


wait_until = base.wait_until


def balanced(st):
    """Every item ends published, dropped or pending."""
    return (st.received + st.recovered
            == st.published + st.dropped_total + st.pending)


class ScriptedPublisher(publisher_base.Publisher):
    """Raises what ``script`` says, call by call, then succeeds; can be held
    at a gate to keep a batch in flight.
    """

    def __init__(self, conf, script=(), gated=False):
        super().__init__(conf, TelemetryURL.parse('scripted://'))
        self.script = list(script)
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.batches = []
        self.entered = threading.Event()

    def publish_samples(self, batch):
        self.entered.set()
        self.gate.wait()
        if self.script:
            exc = self.script.pop(0)
            if exc is not None:
                raise exc
        self.batches.append([s.volume for s in batch])

    @property
    def volumes(self):
        return [v for b in self.batches for v in b]


class DeliveryTest(base.TestCase):
    """Every delivery made through :meth:`deliver` or :meth:`track` is
    closed after the test and must balance then, whatever the test did.
    """

    def track(self, d):
        def close_and_check():
            d.close(1)
            st = d.stats()
            assert balanced(st), st
        self.addCleanup(close_and_check)
        return d

    def deliver(self, publisher, **opts):
        return self.track(delivery.Delivery(
            publisher, options=delivery.DeliveryOptions(**opts),
            rng=random.Random(1)).start())


class TestBatching(DeliveryTest):

    def test_batches_by_size(self):
        pub = ScriptedPublisher(self.conf)
        d = self.deliver(pub, max_batch_size=10, max_latency=60)
        d.put(samples(25))
        assert wait_until(lambda: len(pub.batches) == 2)
        assert [len(b) for b in pub.batches] == [10, 10]
        assert d.flush(5)
        assert [len(b) for b in pub.batches] == [10, 10, 5]
        assert pub.volumes == list(range(25))

    def test_batches_by_age(self):
        pub = ScriptedPublisher(self.conf)
        d = self.deliver(pub, max_batch_size=1000, max_latency=0.05)
        started = time.monotonic()
        d.put(samples(3))
        assert wait_until(lambda: pub.volumes == [0, 1, 2])
        assert time.monotonic() - started >= 0.04

    def test_empty_put(self):
        d = self.deliver(ScriptedPublisher(self.conf))
        assert d.put([]) == 0


class TestOutcomes(DeliveryTest):

    def test_retryable_then_success_delivers_once(self):
        pub = ScriptedPublisher(self.conf, [RetryableError('down')] * 3)
        d = self.deliver(pub, **FAST)
        d.put(samples(5))
        assert d.flush(5)
        st = d.stats()
        assert pub.volumes == list(range(5))
        # Five items were retried (three times each): retried counts items.
        assert (st.published, st.retried, st.errors, st.dropped) == (
            5, 5, 3, {})

    def test_retries_exhausted_are_counted(self):
        pub = ScriptedPublisher(self.conf, [RetryableError('down')] * 10)
        d = self.deliver(pub, max_retries=2, **FAST)
        d.put(samples(4))
        assert d.flush(5)
        st = d.stats()
        assert st.dropped == {'retries_exhausted': 4}
        assert st.failed == 4 and st.published == 0 and st.retried == 4
        assert len(pub.script) == 7      # tried 3 times in all
        assert balanced(st)

    def test_permanent_is_not_retried(self):
        pub = ScriptedPublisher(self.conf, [PermanentError('400')])
        d = self.deliver(pub, **FAST)
        d.put(samples(3))
        assert d.flush(5)
        st = d.stats()
        assert st.dropped == {'permanent': 3} and st.retried == 0
        assert st.batches == 1

    def test_partial_permanent_failure_costs_only_its_items(self):
        pub = ScriptedPublisher(self.conf,
                                [PermanentError('bad', items=[1, 3])])
        d = self.deliver(pub, **FAST)
        d.put(samples(5))
        assert d.flush(5)
        st = d.stats()
        assert st.published == 3 and st.dropped == {'permanent': 2}

    def test_partial_retryable_failure_resends_only_its_items(self):
        pub = ScriptedPublisher(self.conf, [RetryableError('x', items=[2])])
        d = self.deliver(pub, **FAST)
        d.put(samples(4))
        assert d.flush(5)
        assert pub.batches == [[2]]      # only the failed one came again
        st = d.stats()
        assert st.published == 4 and st.retried == 1

    def test_unexpected_exception_is_contained(self):
        pub = ScriptedPublisher(self.conf, [KeyError('bug')])
        d = self.deliver(pub, **FAST)
        with self.assertLogs('telemetry_lib.delivery.core', 'ERROR'):
            d.put(samples(2))
            assert d.flush(5)
        d.put(samples(2, 10))
        assert d.flush(5)
        st = d.stats()
        assert st.dropped == {'publisher_error': 2} and st.published == 2
        assert pub.volumes == [10, 11]

    def test_retry_after_is_honoured(self):
        pub = ScriptedPublisher(self.conf,
                                [RetryableError('slow', retry_after=0.2)])
        d = self.deliver(pub, max_latency=0, retry_initial_delay=0.001,
                         retry_max_delay=5)
        started = time.monotonic()
        d.put(samples(1))
        assert d.flush(5)
        assert time.monotonic() - started >= 0.2

    def test_flush_reports_pending_when_peer_is_down(self):
        pub = ScriptedPublisher(self.conf, [RetryableError('down')] * 1000)
        d = self.deliver(pub, max_retries=-1, **FAST)
        d.put(samples(3))
        outcome = d.flush(0.2)
        assert not outcome and outcome.pending == 3
        assert d.close(0.1).dropped == 3


class TestOverflow(DeliveryTest):
    """A batch of one is held in flight at a gate while more arrive."""

    def fill(self, overflow, incoming=15, **opts):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.deliver(pub, overflow=overflow, max_queue_samples=10,
                         max_batch_size=1, **dict(FAST, **opts))
        d.put(samples(1))
        assert pub.entered.wait(5)
        accepted = d.put(samples(incoming, start=100))
        return pub, d, accepted

    def test_drop_newest(self):
        pub, d, accepted = self.fill('drop_newest')
        assert accepted == 9
        pub.gate.set()
        assert d.flush(5)
        st = d.stats()
        assert st.dropped == {'overflow': 6}
        assert pub.volumes == [0] + list(range(100, 109))
        assert balanced(st)

    def test_drop_oldest(self):
        pub, d, accepted = self.fill('drop_oldest')
        d.put(samples(3, start=200))
        pub.gate.set()
        assert d.flush(5)
        st = d.stats()
        # 15 + 3 offered, 9 places: the 9 newest survive.
        assert pub.volumes == [0] + list(range(109, 115)) + [200, 201, 202]
        assert st.dropped == {'overflow': 9}
        assert st.published == 10 and balanced(st)

    def test_block_times_out_then_drops(self):
        started = time.monotonic()
        pub, d, accepted = self.fill('block', block_timeout=0.2)
        assert time.monotonic() - started >= 0.2
        assert accepted == 9
        pub.gate.set()
        assert d.flush(5)
        assert d.stats().dropped == {'overflow': 6}

    def test_block_waits_for_room(self):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.deliver(pub, overflow='block', block_timeout=5,
                         max_queue_samples=10, max_batch_size=5, **FAST)
        d.put(samples(10))
        threading.Timer(0.1, pub.gate.set).start()
        assert d.put(samples(10, start=10)) == 10
        assert d.flush(5)
        st = d.stats()
        assert st.dropped == {} and pub.volumes == list(range(20))

    def test_bytes_bound(self):
        pub = ScriptedPublisher(self.conf, gated=True)
        from telemetry_lib.delivery.buffer import approx_size
        one = approx_size(samples(1)[0])
        d = self.deliver(pub, overflow='drop_newest',
                         max_queue_bytes=max(1024, one * 4 + 10),
                         max_batch_size=1, **FAST)
        accepted = d.put(samples(10))
        assert accepted == 4
        pub.gate.set()
        assert d.flush(5)
        assert d.stats().dropped == {'overflow': 6}


class TestLifecycle(DeliveryTest):

    def test_close_delivers_queued(self):
        pub = ScriptedPublisher(self.conf)
        d = self.track(delivery.Delivery(
            pub, options=delivery.DeliveryOptions(max_latency=60)).start())
        d.put(samples(7))
        outcome = d.close(5)
        assert outcome and pub.volumes == list(range(7))

    def test_close_without_spool_counts_what_is_lost(self):
        pub = ScriptedPublisher(self.conf, [RetryableError('down')] * 1000)
        d = self.track(delivery.Delivery(
            pub, options=delivery.DeliveryOptions(max_retries=-1,
                                                  **FAST)).start())
        d.put(samples(6))
        outcome = d.close(0.2)
        assert outcome.dropped == 6 and not outcome
        assert d.put(samples(2)) == 0
        st = d.stats()
        assert st.dropped == {'shutdown': 6, 'closed': 2}

    def test_close_never_hangs_on_a_stuck_publisher(self):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.track(delivery.Delivery(
            pub, options=delivery.DeliveryOptions(**FAST)).start())
        d.put(samples(2))
        assert pub.entered.wait(5)
        started = time.monotonic()
        outcome = d.close(0.3)
        assert time.monotonic() - started < 2.5
        assert outcome.dropped == 2
        pub.gate.set()

    def test_spool_survives_restart(self):
        url = 'test://?fail=retryable&fail_times=-1'
        opts = dict(spool=True, spool_dir=self.tmpdir, max_retries=-1,
                    **FAST)
        down = publisher_base.load_publisher(self.conf, url)
        d = self.track(delivery.Delivery(
            down, options=delivery.DeliveryOptions(**opts)).start())
        sent = samples(50)
        assert d.put(sent) == 50
        outcome = d.close(0.2)
        assert outcome.spooled == 50 and outcome.dropped == 0

        # Same URL, so the same spool file; this time the peer works.
        up = publisher_base.load_publisher(self.conf, url)
        up._fail_left = 0
        d2 = self.track(delivery.Delivery(
            up, options=delivery.DeliveryOptions(**opts)).start())
        assert d2.stats().recovered == 50
        assert d2.flush(5)
        assert [s.id for s in up.samples] == [s.id for s in sent]
        assert up.samples == sent
        st = d2.stats()
        assert st.published == 50 and st.pending == 0 and balanced(st)

    def test_spool_is_exclusive(self):
        opts = delivery.DeliveryOptions(spool=True, spool_dir=self.tmpdir)
        pub = publisher_base.load_publisher(self.conf, 'test://')
        self.track(delivery.Delivery(pub, options=opts).start())
        from telemetry_lib import ConfigError
        with self.assertRaises(ConfigError) as ctx:
            delivery.Delivery(publisher_base.load_publisher(
                self.conf, 'test://'), options=opts).start()
        assert 'another process' in str(ctx.exception)

    def test_spool_overflow_drop_oldest(self):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.deliver(pub, spool=True, spool_dir=self.tmpdir,
                         overflow='drop_oldest', max_queue_samples=5,
                         max_batch_size=1, **FAST)
        d.put(samples(1))
        assert pub.entered.wait(5)
        d.put(samples(8, start=10))
        pub.gate.set()
        assert d.flush(5)
        assert pub.volumes == [0, 14, 15, 16, 17]
        assert d.stats().dropped == {'overflow': 4}


class TestOptions(base.TestCase):

    def test_url_overrides_and_ceilometer_policy(self):
        base_opts = delivery.DeliveryOptions()
        o = base_opts.with_url(TelemetryURL.parse(
            'x://?max_batch_size=7&spool=true&spool_dir=/s&overflow=block'))
        assert (o.max_batch_size, o.spool, o.overflow) == (7, True, 'block')
        o = base_opts.with_url(TelemetryURL.parse(
            'notifier://?policy=drop'))
        assert o.max_retries == 0 and o.overflow == 'drop_newest'
        o = base_opts.with_url(TelemetryURL.parse(
            'notifier://?policy=queue&max_queue_length=50&max_retry=3'))
        assert (o.overflow, o.max_queue_samples, o.max_retries) == (
            'drop_oldest', 50, 3)

    def test_bad_values(self):
        for query in ('overflow=sometimes', 'max_batch_size=0',
                      'max_latency=-1', 'policy=maybe', 'spool=perhaps'):
            with self.assertRaises(InvalidURL):
                delivery.DeliveryOptions(spool_dir='/x').with_url(
                    TelemetryURL.parse('x://?' + query))

    def test_from_conf(self):
        self.conf.set_override('max_batch_size', 42, group='delivery')
        o = delivery.DeliveryOptions.from_conf(self.conf)
        assert o.max_batch_size == 42
        assert o.spool_dir == self.tmpdir + '/spool'


class TestRetryPolicy(base.TestCase):

    def test_backoff_grows_with_jitter_and_cap(self):
        p = RetryPolicy(0.5, 4.0, 5, rng=random.Random(3))
        delays = [p.delay(n) for n in range(1, 8)]
        for n, d in enumerate(delays, 1):
            cap = min(4.0, 0.5 * 2 ** (n - 1))
            assert cap / 2 <= d <= cap
        assert len(set(delays)) == len(delays)
        assert p.allows(5) and not p.allows(6)
        assert RetryPolicy(1, 2, -1).allows(10 ** 6)
        assert p.delay(1, requested=3.0) == 3.0
        assert p.delay(1, requested=60) == 4.0


class TestMixedOutcome(DeliveryTest):

    def test_retryable_with_permanent_items(self):
        pub = ScriptedPublisher(self.conf, [RetryableError(
            'released some, rejected one', items=[0, 1],
            permanent_items=[3])])
        d = self.deliver(pub, **FAST)
        d.put(samples(5))
        assert d.flush(5)
        st = d.stats()
        # 2 and 4 delivered at once, 0 and 1 on the retry, 3 dropped.
        assert pub.batches == [[0, 1]]
        assert st.published == 4 and st.dropped == {'permanent': 1}
        assert st.retried == 2 and balanced(st)


class SlowClosePublisher(ScriptedPublisher):
    """Its close() ignores its timeout, as a buggy driver's would, until
    the test lets it go.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.let_go = threading.Event()

    def close(self, timeout=None):
        self.let_go.wait(30)
        return super().close(timeout)


class TestExactAccounting(DeliveryTest):
    """The balance holds during, at and after close, on every path."""

    def test_close_without_spool_leaves_nothing_pending(self):
        pub = ScriptedPublisher(self.conf, [RetryableError('down')] * 1000)
        d = self.deliver(pub, max_retries=-1, **FAST)
        d.put(samples(6))
        outcome = d.close(0.2)
        st = d.stats()
        assert (outcome.dropped, outcome.pending) == (6, 0)
        # Counted as dropped once, and no longer pending.
        assert st.pending == 0 and st.dropped == {'shutdown': 6}
        assert balanced(st)
        assert 'down' in outcome.reason

    def test_a_batch_back_from_a_stuck_publisher_counts_once(self):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.deliver(pub, **FAST)
        d.put(samples(2))
        assert pub.entered.wait(5)
        outcome = d.close(0.2)
        assert outcome.dropped == 2
        pub.gate.set()          # the publisher returns, "delivered"
        assert base.wait_until(lambda: not d._worker.is_alive(), 10)
        st = d.stats()
        assert st.published == 0 and st.dropped == {'shutdown': 2}
        assert st.pending == 0 and balanced(st)

    def test_close_is_a_bound_even_when_the_publisher_close_is_not(self):
        pub = SlowClosePublisher(self.conf, gated=True)
        d = self.deliver(pub, **FAST)
        d.put(samples(3))
        assert pub.entered.wait(5)
        started = time.monotonic()
        outcome = d.close(0.5)
        took = time.monotonic() - started
        pub.gate.set()
        pub.let_go.set()
        assert took < 0.9, took
        assert outcome.dropped == 3
        # It said so: the publisher was still closing.
        assert not outcome.finished and 'did not close' in outcome.reason

    def test_spooled_close_keeps_in_flight_items_pending(self):
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.deliver(pub, spool=True, spool_dir=self.tmpdir, **FAST)
        d.put(samples(4))
        assert pub.entered.wait(5)
        outcome = d.close(0.2)
        pub.gate.set()
        assert base.wait_until(lambda: not d._worker.is_alive(), 10)
        st = d.stats()
        assert outcome.spooled == 4 and st.pending == 4
        assert st.published == 0 and balanced(st)

    def test_put_before_start_is_a_programming_error(self):
        d = delivery.Delivery(ScriptedPublisher(self.conf))
        with self.assertRaises(RuntimeError):
            d.put(samples(1))
        assert d.close(1)           # never started: nothing to drain

    def test_one_unencodable_item_does_not_poison_its_batch(self):
        url = 'file://%s/out.json?max_latency=0&max_batch_size=100' % (
            self.tmpdir)
        d = self.track(delivery.build(self.conf, url).start())
        nested = {'a': 1}
        batch = samples(100)
        bad = Sample('m', 'gauge', '1', 7, resource_id='bad',
                     resource_metadata={'nested': nested})
        nested['set'] = {1, 2}      # changed after validation
        batch[37] = bad
        d.put(batch)
        assert d.flush(5)
        st = d.stats()
        assert st.published == 99 and st.dropped == {'invalid': 1}
        with open('%s/out.json' % self.tmpdir) as f:
            assert len(f.readlines()) == 99

    def test_failing_time_and_last_error_are_reported(self):
        now = [100.0]
        pub = ScriptedPublisher(self.conf, [RetryableError('down')] * 1000)
        d = self.track(delivery.Delivery(
            pub, options=delivery.DeliveryOptions(max_retries=-1, **FAST),
            clock=lambda: now[0]).start())
        d.put(samples(1))
        assert wait_until(lambda: d.stats().errors >= 1)
        now[0] += 42
        st = d.stats()
        assert st.failing_for == 42 and st.last_error == 'down'


class TestFailureLog(base.TestCase):

    def test_says_start_while_it_lasts_and_end(self):
        from telemetry_lib import ratelog
        now = [0.0]
        log = ratelog.FailureLog(ratelog.logging.getLogger('t.fail'), 'pub',
                                 interval=60, clock=lambda: now[0])
        with self.assertLogs('t.fail', 'INFO') as cm:
            for _ in range(200):    # 200 s of failures, one a second
                log.failed('refused', retrying=True)
                now[0] += 1
            log.succeeded()
        lines = [r.getMessage() for r in cm.records]
        assert len(lines) == 1 + 3 + 1, lines
        assert 'publish failed' in lines[0]
        assert 'still failing after 60s and 61' in lines[1]
        assert 'publishing again after 200s and 200' in lines[-1]
        assert log.failing_for() == 0


class TestPool(base.TestCase):

    def test_same_url_same_delivery_and_retired_counters_stay(self):
        pool = delivery.DeliveryPool(self.conf)
        self.addCleanup(pool.close, 1)
        a = pool.acquire('test://?max_latency=0', 'samples').start()
        assert pool.acquire('test://?max_latency=0', 'samples') is a
        b = pool.acquire('test://?max_latency=0&x=1', 'samples').start()
        assert b is not a
        a.put(samples(3))
        assert a.flush(5)
        pool.retain({pool.key('test://?max_latency=0&x=1', 'samples')}, 1)
        assert wait_until(lambda: not a.started and a.stats().published == 3)
        names = {st.name: st for st in pool.stats()}
        assert names[a.name].published == 3 and b.name in names
        assert pool.deliveries() == [b]

    def test_a_quick_reload_back_takes_the_spool_over(self):
        # Issue 20 item 4: retired with the peer down, the old delivery
        # kept its spool locked while it drained, and naming the URL
        # again a moment later failed with "database is locked".
        self.conf.set_override('state_path', self.tmpdir)
        url = ('test://?fail=retryable&fail_times=-1&spool=true&'
               'max_retries=-1&retry_initial_delay=0.05&max_latency=0')
        pool = delivery.DeliveryPool(self.conf)
        self.addCleanup(pool.close, 1)
        old = pool.acquire(url, 'samples').start()
        old.put(samples(7))
        pool.retain(set(), timeout=60)          # drains for up to 60 s
        new = pool.acquire(url, 'samples')
        assert new is not old
        new.start()                             # the spool is free
        st_old, st_new = old.stats(), new.stats()
        assert st_old.received == 7 and st_old.pending == 7
        assert st_new.recovered == 7 and st_new.pending == 7
        assert balanced(st_old) and balanced(st_new)

    def test_health_is_live_and_a_closed_pool_still_reports(self):
        # Issue 20 items 5 and 6: retired publishers were judged by
        # /healthz for ever, and the shutdown report, read after close,
        # saw only retired ones.
        pool = delivery.DeliveryPool(self.conf)
        gone = pool.acquire('test://?fail=permanent&max_latency=0',
                            'samples').start()
        gone.put(samples(2))
        assert wait_until(lambda: gone.stats().dropped_total == 2)
        pool.retain(set(), 1)
        live = pool.acquire('test://?fail=permanent&x=1&max_latency=0',
                            'samples').start()
        live.put(samples(3))
        assert wait_until(lambda: live.stats().dropped_total == 3)
        assert [st.name for st in pool.stats(retired=False)] == [live.name]
        assert {st.name for st in pool.stats()} == {gone.name, live.name}
        pool.close(1)
        after = {st.name: st for st in pool.stats()}
        assert after[live.name].dropped_total == 3
        assert after[gone.name].dropped_total == 2

    def test_flush_and_close_of_many_take_one_timeout(self):
        pool = delivery.DeliveryPool(self.conf)
        stuck = []
        for i in range(4):
            pub = ScriptedPublisher(self.conf, gated=True)
            d = delivery.Delivery(pub, name='p%d' % i,
                                  options=delivery.DeliveryOptions(**FAST))
            d.start()
            d.put(samples(1))
            stuck.append((pub, d))
        started = time.monotonic()
        flushed = delivery.drain([d for _, d in stuck], 'flush', 0.3)
        assert time.monotonic() - started < 0.8
        closed = delivery.drain([d for _, d in stuck], 'close', 0.3)
        assert time.monotonic() - started < 1.6
        for pub, _ in stuck:
            pub.gate.set()
        assert set(flushed.parts) == set(closed.parts) == {
            'p0', 'p1', 'p2', 'p3'}
        assert all(o.pending == 1 for o in flushed.parts.values())
        assert all(o.dropped == 1 for o in closed.parts.values())
        assert (flushed.pending, closed.dropped) == (4, 4)
        pool.close(0)


class TestByteBound(DeliveryTest):

    def test_memory_stays_near_the_byte_bound_with_large_values(self):
        # 4 KiB metadata values: the old estimate (64 bytes a value) let
        # the queue hold ten times its bound.
        import tracemalloc
        bound = 4 * 1024 * 1024
        pub = ScriptedPublisher(self.conf, gated=True)
        d = self.deliver(pub, max_queue_bytes=bound, max_batch_size=1,
                         **FAST)
        d.put(samples(1))
        assert pub.entered.wait(5)
        tracemalloc.start()
        try:
            base_mem = tracemalloc.get_traced_memory()[0]
            for batch in range(50):
                d.put([Sample('m', 'gauge', '1', i, resource_id='r%d' % i,
                              resource_metadata={
                                  'k%d' % j: ('%d-%d-' % (batch, i)) * 600
                                  for j in range(8)})
                       for i in range(100)])
            held = tracemalloc.get_traced_memory()[0] - base_mem
        finally:
            tracemalloc.stop()
            pub.gate.set()
        st = d.stats()
        assert st.pending_bytes <= bound
        assert st.dropped['overflow'] > 0
        # What the queue keeps alive stays within 1.5x its bound.
        assert held <= 1.5 * bound, held / bound
        # And the estimate is not so high that the queue holds nothing.
        assert st.pending >= 50

    def test_a_batch_counts_what_its_samples_count_one_by_one(self):
        from telemetry_lib.delivery import buffer
        batch = [Sample('m', 'gauge', '1', i, resource_id='r%d' % i,
                        resource_metadata={
                            'k%d' % j: {'nested': 'x' * (i * j)}
                            for j in range(i % 5)})
                 for i in range(40)]
        assert buffer.batch_size(batch) == sum(
            map(buffer.approx_size, batch))
        # Nested keys count: a dict of dicts is more objects.
        flat = Sample('m', 'gauge', '1', 1, resource_id='r',
                      resource_metadata={'a': 'xxxxxxx'})
        deep = Sample('m', 'gauge', '1', 1, resource_id='r',
                      resource_metadata={'a': {'b': 1}})
        assert buffer.approx_size(deep) > buffer.approx_size(flat)
        # One that cannot be encoded (changed after it was validated)
        # counts as much as it does alone, and costs the others nothing.
        bad = Sample('m', 'gauge', '1', 1, resource_id='r',
                     resource_metadata={'a': 1})
        bad.resource_metadata['a'] = {1, 2}
        assert buffer.batch_size(batch + [bad]) == buffer.batch_size(
            batch) + buffer.approx_size(bad)
        assert buffer.batch_size([]) == 0

    def test_every_entry_of_a_batch_leaves_with_the_size_it_came_in(self):
        from telemetry_lib.delivery import buffer
        store = buffer.MemoryStore()
        entries, _ = store.prepare([Sample(
            'm', 'gauge', '1', i, resource_id='r',
            resource_metadata={'v': 'x' * 100 * i})
            for i in range(10)])
        store.append(entries)
        assert store.nbytes >= buffer.batch_size(entries)
        count, size = store.evict_oldest(3, 0)
        assert count == 3
        store.settle(store.take(100))
        assert (store.count, store.nbytes) == (0, 0)


class TestMemoryStore(base.TestCase):
    """The queue keeps batches as they were put; taking, evicting and
    releasing across them keeps the order and lets go of what left.
    """

    class Item:
        def __init__(self, n):
            self.n = n

    def fill(self, store, sizes):
        items, n = [], 0
        for size in sizes:
            batch = [self.Item(n + i) for i in range(size)]
            n += size
            entries, _ = store.prepare(batch)
            store.append(entries)
            items += batch
        return items

    def numbers(self, entries):
        return [e.n for e in entries]

    def test_order_across_batches_partial_takes_and_releases(self):
        import random
        from telemetry_lib.delivery import buffer
        rng = random.Random(7)
        for _ in range(200):
            store = buffer.MemoryStore()
            self.fill(store, [rng.randint(1, 9) for _ in range(6)])
            expected = list(range(store.count))
            got = []
            while store.queued:
                taken = store.take(rng.randint(1, 12))
                if rng.random() < 0.3:
                    store.release(taken)
                    continue
                if rng.random() < 0.3 and store.queued:
                    count, _ = store.evict_oldest(rng.randint(1, 4), 0)
                    start = len(got) + len(taken)
                    del expected[start:start + count]
                got += self.numbers(taken)
                store.settle(taken)
                assert store.nbytes >= 0 and (store.nbytes > 0) == (
                    store.count > 0), (store.nbytes, store.count)
            assert got == expected
            assert (store.count, store.nbytes, store.in_flight) == (0, 0, 0)

    def test_what_was_taken_or_evicted_is_not_kept_alive(self):
        import gc
        import weakref

        from telemetry_lib.delivery import buffer
        store = buffer.MemoryStore()
        refs = [weakref.ref(i) for i in self.fill(store, [10])]
        store.evict_oldest(3, 0)
        taken = store.take(4)
        store.settle(taken)
        del taken
        # The sizes' memo holds the thread's last batch: make it another.
        buffer.MemoryStore().prepare([self.Item(-1)])
        gc.collect()
        assert [r() is None for r in refs] == [True] * 7 + [False] * 3


class TestSpoolUpgrade(DeliveryTest):

    def test_a_spool_named_by_an_earlier_release_is_taken_over(self):
        # Earlier releases named the spool by the publisher URL alone;
        # after an upgrade its items must be delivered, not left behind.
        from telemetry_lib.delivery import core
        url = 'test://?fail=retryable&fail_times=-1'
        down = publisher_base.load_publisher(self.conf, url)
        old = delivery.Delivery(down, options=delivery.DeliveryOptions(
            spool=True, spool_dir=self.tmpdir, max_retries=-1, **FAST),
            key=down.url.geturl(with_password=True)).start()
        old.put(samples(5))
        assert old.close(0.1).spooled == 5
        up = publisher_base.load_publisher(self.conf, url)
        up._fail_left = 0
        d = self.track(delivery.Delivery(
            up, options=delivery.DeliveryOptions(
                spool=True, spool_dir=self.tmpdir, **FAST),
            key=url + '&max_latency=0').start())
        assert d.spool_file != core.spool_path(
            self.tmpdir, down.url.geturl(with_password=True), 'test',
            'samples')
        assert d.stats().recovered == 5 and d.flush(5)
        assert len(up.samples) == 5
