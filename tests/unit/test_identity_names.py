"""Project and user names from Keystone: cached, bounded, never waited
for. A scripted session stands in for keystoneauth1's here; the
functional test uses the real Keystone.
"""

import threading

from telemetry_lib.clients import identity
from telemetry_lib import Sample
from tests import base


class Response:
    def __init__(self, status, body=None):
        self.status_code, self._body = status, body

    def json(self):
        return self._body


class Session:
    """Knows project p1 and user u1; ``down`` makes every call fail."""

    def __init__(self):
        self.calls = []
        self.down = False
        self.gate = threading.Event()
        self.gate.set()

    def get(self, path, **kw):
        self.gate.wait(10)
        self.calls.append(path)
        if self.down:
            raise ConnectionError('connection refused')
        known = {'/projects/p1': {'project': {'name': 'demo'}},
                 '/users/u1': {'user': {'name': 'alice'}}}
        if path in known:
            return Response(200, known[path])
        return Response(404)


def sample(project='p1', user='u1'):
    return Sample('m', 'gauge', '1', 1, resource_id='r',
                  project_id=project, user_id=user)


class TestNameCache(base.TestCase):

    def cache(self, session, **kw):
        now = [0.0]
        c = identity.NameCache(lambda: session, clock=lambda: now[0], **kw)
        c.start()
        self.addCleanup(c.close, 5)
        return c, now

    def test_first_poll_does_not_wait_later_ones_have_the_names(self):
        session = Session()
        session.gate.clear()                    # Keystone is slow
        c, _ = self.cache(session)
        (s,) = c.fill([sample()])
        assert (s.project_name, s.user_name) == (None, None)
        assert c.counts['samples_without_names'] == 1
        session.gate.set()
        assert base.wait_until(lambda: c.counts['found'] == 2, 10)
        (s,) = c.fill([sample()])
        assert (s.project_name, s.user_name) == ('demo', 'alice')
        for _ in range(8):
            c.fill([sample()])
        assert session.calls.count('/projects/p1') == 1
        assert c.hit_ratio() > 0.8

    def test_unknown_ids_are_cached_negatively_and_expire(self):
        session = Session()
        c, now = self.cache(session, negative_ttl=60, ttl=600)
        c.fill([sample('nope', 'nobody')])
        assert base.wait_until(lambda: c.counts['not_found'] == 2, 10)
        c.fill([sample('nope', 'nobody')])
        assert len(session.calls) == 2          # not asked again
        now[0] += 61
        c.fill([sample('nope', 'nobody')])
        assert base.wait_until(lambda: len(session.calls) == 4, 10)

    def test_keystone_down_samples_flow_without_names_counted(self):
        session = Session()
        session.down = True
        c, _ = self.cache(session)
        out = c.fill([sample(), sample()])
        assert len(out) == 2 and all(s.project_name is None for s in out)
        assert base.wait_until(lambda: c.counts['failures'] == 2, 10)

    def test_bounded(self):
        session = Session()
        c, _ = self.cache(session, max_entries=3, queue_size=2)
        session.gate.clear()
        c.fill([sample('a%d' % i, None) for i in range(10)])
        # Two waiting (and perhaps one taken by the thread); the others
        # counted, and asked again at a later poll.
        full = c.counts['queue_full']
        assert 7 <= full <= 8
        session.gate.set()
        assert base.wait_until(
            lambda: c.counts['lookups'] == 10 - full, 10), c.counts
        c.fill([sample('b%d' % i, None) for i in range(2)])
        assert base.wait_until(
            lambda: c.counts['lookups'] == 12 - full, 10), c.counts
        assert len(c._entries) <= 3

    def test_names_given_are_kept(self):
        c, _ = self.cache(Session())
        s = sample().replace(project_name='given')
        assert c.fill([s])[0].project_name == 'given'


class TestAgentFillsPolledSamples(base.TestCase):

    def test_route_fills_names_before_the_pipeline(self):
        from telemetry_lib.agent import service
        polling = self.write_file('polling.yaml', 'sources:\n  - name: s\n'
                                  '    interval: 3600\n    meters: ["m"]\n')
        pipeline = self.write_file(
            'pipeline.yaml', 'sources:\n  - name: all\n    meters: ["*"]\n'
            '    sinks: [t]\nsinks:\n  - name: t\n'
            '    publishers: ["test://?max_latency=0"]\n')
        service.register_opts(self.conf)
        self.conf.set_override('cfg_file', polling, group='polling')
        self.conf.set_override('identity_name_discovery', True,
                               group='polling')
        self.conf.set_override('pipeline_cfg_file', pipeline,
                               group='pipeline')
        self.conf.set_override('http_enabled', False, group='agent')
        agent = service.Agent(self.conf, pollsters={})
        self.addCleanup(agent.pool.close, 5)
        assert agent.names is not None
        agent.names = identity.NameCache(Session)
        agent.names.start()
        self.addCleanup(agent.names.close, 5)
        agent.pipeline.start()
        agent._route([sample()])
        assert base.wait_until(lambda: agent.names.counts['found'] == 2, 10)
        agent._route([sample()])
        (d,) = agent.pipeline.deliveries.values()
        assert d.flush(5)
        got = d.publisher.samples
        assert [(s.project_name, s.user_name) for s in got] == [
            (None, None), ('demo', 'alice')]
