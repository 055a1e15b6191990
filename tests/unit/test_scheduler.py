import textwrap
import threading
import time

from telemetry_lib.agent.scheduler import Scheduler
from telemetry_lib.pipeline import PollingDefinition
from telemetry_lib.pollsters import base as pollster_base
from telemetry_lib import Sample
from tests import base


class FakePollster(pollster_base.Pollster):
    def __init__(self, conf, meters, delay=0.0, fail=False):
        super().__init__(conf)
        self.meters = meters
        self.delay = delay
        self.fail = fail
        self.calls = []
        self.release = threading.Event()
        self.release.set()

    def poll(self, timestamp, resources=None):
        self.calls.append((time.monotonic(), timestamp))
        if self.delay:
            self.release.wait(self.delay)
        if self.fail:
            raise RuntimeError('broken pollster')
        return [Sample(m, 'gauge', '1', 1, resource_id='r',
                       timestamp=timestamp) for m in self.meters]


def polling(text):
    return PollingDefinition.from_data(_yaml(text))


def _yaml(text):
    import yaml
    return yaml.safe_load(textwrap.dedent(text))


class TestScheduler(base.TestCase):

    def scheduler(self, definition, pollsters, **kw):
        got = []
        lock = threading.Lock()

        def on_samples(samples):
            with lock:
                got.extend(samples)
        s = Scheduler(definition, pollsters, on_samples, **kw)
        self.addCleanup(s.close, 1)
        return s, got

    def test_slow_pollster_does_not_delay_another_interval(self):
        slow = FakePollster(self.conf, ('slow.m',), delay=30)
        slow.release.clear()
        fast = FakePollster(self.conf, ('fast.m',))
        definition = polling('''
            sources:
              - {name: slow, interval: 0.05, meters: ["slow.*"]}
              - {name: fast, interval: 0.01, meters: ["fast.*"]}
        ''')
        s, got = self.scheduler(definition, {'slow': slow, 'fast': fast})
        s.start()
        # While slow is stuck in its first run, fast keeps being polled
        # and slow's next ticks are skipped, not doubled. (Counts, not
        # times: no assertion here depends on the machine's speed.)
        assert base.wait_until(lambda: (len(fast.calls) >= 5
                                        and s.stats['slow'].overruns >= 1),
                               10)
        assert len(slow.calls) == 1
        slow.release.set()

    def test_a_resumed_interval_keeps_its_cadence(self):
        # After a reload the new scheduler waits for the old one's next
        # tick instead of polling at once (an extra poll).
        p = FakePollster(self.conf, ('m',))
        definition = polling('''
            sources:
              - {name: s, interval: 10, meters: ["*"]}
        ''')
        now = [1000.0]
        s, _ = self.scheduler(definition, {'p': p}, clock=lambda: now[0])
        s.start(resume={10: 1500.0})
        assert s.next_ticks() == {10: 1500.0}
        s.close(1)
        assert p.calls == []
        fresh, _ = self.scheduler(definition, {'p': p},
                                  clock=lambda: now[0])
        fresh.start()
        assert base.wait_until(lambda: len(p.calls) == 1, 5)

    def test_slow_pollster_does_not_delay_one_in_the_same_tick(self):
        slow = FakePollster(self.conf, ('a',), delay=5)
        slow.release.clear()
        quick = FakePollster(self.conf, ('b',))
        definition = polling('''
            sources:
              - {name: s, interval: 60, meters: ["*"]}
        ''')
        s, got = self.scheduler(definition, {'slow': slow, 'quick': quick})
        s.tick(s.groups[60])
        assert base.wait_until(lambda: [x.name for x in got] == ['b'], 2)
        slow.release.set()
        assert base.wait_until(lambda: len(got) == 2, 2)

    def test_one_timestamp_per_run_and_meter_filter(self):
        multi = FakePollster(self.conf, ('host.a', 'host.b', 'other.c'))
        definition = polling('''
            sources:
              - {name: s, interval: 60, meters: ["host.*"]}
        ''')
        s, got = self.scheduler(definition, {'multi': multi})
        for f in s.tick(s.groups[60]):
            f.result(5)
        assert sorted(x.name for x in got) == ['host.a', 'host.b']
        assert len({x.timestamp for x in got}) == 1
        assert got[0].timestamp == multi.calls[0][1]

    def test_pollster_shared_by_sources_of_one_interval_runs_once(self):
        p = FakePollster(self.conf, ('a', 'b'))
        definition = polling('''
            sources:
              - {name: s1, interval: 30, meters: ["a"]}
              - {name: s2, interval: 30, meters: ["b"]}
        ''')
        s, got = self.scheduler(definition, {'p': p})
        assert len(s.groups[30]) == 1
        for f in s.tick(s.groups[30]):
            f.result(5)
        assert len(p.calls) == 1 and len(got) == 2

    def test_errors_are_counted_and_polling_goes_on(self):
        broken = FakePollster(self.conf, ('x',), fail=True)
        cycles = []
        definition = polling('''
            sources:
              - {name: s, interval: 60, meters: ["*"]}
        ''')
        s, got = self.scheduler(definition, {'broken': broken},
                                on_cycle=lambda *a: cycles.append(a))
        with self.assertLogs('telemetry_lib.agent.scheduler', 'ERROR'):
            for _ in range(2):
                for f in s.tick(s.groups[60], 60):
                    f.result(5)
        assert s.stats['broken'].errors == 2 and s.stats['broken'].runs == 2
        assert base.wait_until(lambda: len(cycles) == 2, 2)
        assert cycles[0][:3] == (60, 0, 1)

    def test_unmatched_pollsters_are_not_scheduled(self):
        p = FakePollster(self.conf, ('disk.x',))
        definition = polling('''
            sources:
              - {name: s, interval: 5, meters: ["cpu*"]}
        ''')
        s, _ = self.scheduler(definition, {'p': p})
        assert s.groups == {}
