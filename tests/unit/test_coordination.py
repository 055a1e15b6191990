"""Partitioning with tooz's file driver (a second backend beside the
functional tests' Redis): shares are disjoint, complete, the same in
every process, and taken over when a member leaves; an unreachable
backend means polling everything.
"""

import os
import threading
import time

from telemetry_lib.agent import coordination
from tests import base

RESOURCES = ['http://site-%d.example/' % i for i in range(300)]


class TestPartitioning(base.TestCase):

    def member(self, name, url=None):
        self.conf.set_override('backend_url', url or 'file://%s' % (
            os.path.join(self.tmpdir, 'tooz')), group='coordination')
        self.conf.set_override('retry_interval', 0.1, group='coordination')
        self.conf.set_override('heartbeat_interval', 0.1,
                               group='coordination')
        c = coordination.Coordinator(self.conf, member_id=name).start()
        self.addCleanup(c.close)
        return c

    def settled(self, members, group='g'):
        for m in members:
            m.share(group, RESOURCES)       # each joins
        assert base.wait_until(lambda: all(
            len(m._rings.get(group.encode(), ((),))[0]) == len(members)
            for m in members), 10)
        return [m.share(group, RESOURCES) for m in members]

    def test_disjoint_complete_and_deterministic(self):
        members = [self.member('agent-%d' % i) for i in range(3)]
        shares = self.settled(members)
        assert sum(len(s) for s in shares) == 300
        assert set().union(*map(set, shares)) == set(RESOURCES)
        assert all(50 < len(s) < 150 for s in shares), [len(s)
                                                        for s in shares]
        assert members[0].stats['g'] == (3, len(shares[0]), 300)
        for m in members:
            m.close()
        import shutil
        shutil.rmtree(os.path.join(self.tmpdir, 'tooz'))
        # Other processes, later, same members: the same shares.
        again = self.settled([self.member('agent-%d' % i)
                              for i in range(3)])
        assert again == shares

    def test_a_member_that_leaves_is_taken_over(self):
        members = [self.member('agent-%d' % i) for i in range(3)]
        self.settled(members)
        before = members[0].ring_changes
        members[2].close()
        shares = self.settled(members[:2])
        assert sum(len(s) for s in shares) == 300
        assert set().union(*map(set, shares)) == set(RESOURCES)
        # The survivors saw the ring move (and count it).
        assert members[0].ring_changes > before

    def test_groups_are_independent(self):
        a, b = self.member('a'), self.member('b')
        self.settled([a, b], 'g1')
        assert len(a.share('g2', RESOURCES)) == 300     # b is not in g2

    def test_backend_down_polls_everything_at_once_and_says_so(self):
        # tooz's Redis driver retries a refused connection for a minute:
        # a poll must not wait for it. An unwritable file backend fails
        # at once and shows the log line.
        slow = self.member('lonely', 'redis://127.0.0.1:%d'
                           % base.free_port())
        assert slow.share('g', RESOURCES) == RESOURCES
        assert slow.fallbacks == 1
        with self.assertLogs('telemetry_lib.agent.coordination',
                             'ERROR') as cm:
            broken = self.member('b', 'file:///proc/no-such-dir/x')
            assert broken.share('g', RESOURCES) == RESOURCES
            assert base.wait_until(lambda: broken.errors >= 1, 5)
        assert 'polling every resource' in cm.output[0]
        assert 'Traceback' not in '\n'.join(cm.output)


class TestStopIsBounded(base.TestCase):

    def test_a_backend_that_hangs_on_leave(self):
        # tooz's leave_group(...).get() takes no timeout: a Redis that
        # stopped answering held the agent's stop (issue 22).
        release = threading.Event()
        self.addCleanup(release.set)

        class Hung:
            def leave_group(self, group):
                return self

            def get(self):
                release.wait(60)

            def stop(self):
                pass
        c = coordination.Coordinator(self.conf, member_id='m')
        c._coord = Hung()
        c._joined = {b'g'}
        started = time.monotonic()
        with self.assertLogs('telemetry_lib.agent.coordination') as logs:
            c.close(0.5)
        took = time.monotonic() - started
        assert took < 5.0, took
        assert 'left to finish in the background' in logs.output[0]
