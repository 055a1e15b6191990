"""Project and user names filled from the real Keystone (tools/keystone.sh):
names found and cached, unknown ids cached negatively, and with Keystone
unreachable the samples still flow at once, without names, counted.
"""

import sys

from keystoneauth1.identity import v3
from keystoneauth1 import session as ka_session

from telemetry_lib.clients import identity
from telemetry_lib import Sample
from tests import base
from tests.functional import heat


def ids(sess):
    def one(kind, name):
        return sess.get('/%s?name=%s' % (kind, name), endpoint_filter={
            'service_type': 'identity', 'interface': 'public'}
        ).json()[kind][0]['id']
    return one('projects', heat.PROJECT), one('users', heat.USER)


class TestNamesFromKeystone(base.TestCase):

    def test_names_filled_and_cached(self):
        sess = heat.session()
        project, user = ids(sess)
        cache = identity.NameCache(lambda: sess)
        cache.start()
        self.addCleanup(cache.close, 5)
        samples = [Sample('m', 'gauge', '1', i, resource_id='r%d' % i,
                          project_id=project, user_id=user)
                   for i in range(100)]
        unknown = Sample('m', 'gauge', '1', 0, resource_id='x',
                         project_id='no-such-project', user_id=user)

        def filled():
            out = cache.fill(samples + [unknown])
            return all(s.project_name == heat.PROJECT
                       and s.user_name == heat.USER for s in out[:-1])
        assert base.wait_until(filled, 30, interval=0.05), cache.counts
        assert base.wait_until(lambda: cache.counts['not_found'] == 1, 30), \
            cache.counts
        before = dict(cache.counts)
        for _ in range(10):
            out = cache.fill(samples + [unknown])
        # Once known (the unknown id too, negatively), every answer is a
        # hit: 2,020 answers, no lookup.
        assert cache.counts['misses'] == before['misses']
        assert cache.counts['hits'] - before['hits'] == 10 * 101 * 2
        assert out[-1].project_name is None and out[-1].user_name == \
            heat.USER
        assert cache.counts['found'] == 2
        assert cache.counts['not_found'] == 1, cache.counts
        assert cache.counts['lookups'] == 3
        # Printed for the note (the misses are the polls made while the
        # three lookups were under way).
        print('identity name cache: hit ratio %.3f, %s'
              % (cache.hit_ratio(), dict(cache.counts)), file=sys.stderr)

    def test_keystone_down_samples_still_flow(self):
        dead = 'http://127.0.0.1:%d/v3' % base.free_port()
        sess = ka_session.Session(auth=v3.Password(
            auth_url=dead, username='u', password='p', project_name='p',
            user_domain_name='Default', project_domain_name='Default'))
        cache = identity.NameCache(lambda: sess, timeout=2)
        cache.start()
        self.addCleanup(cache.close, 5)
        samples = [Sample('m', 'gauge', '1', 1, resource_id='r',
                          project_id='p1', user_id='u1')]
        out = cache.fill(samples)
        assert out == samples          # at once, unchanged
        assert base.wait_until(lambda: cache.counts['failures'] == 2, 30), \
            cache.counts
        assert cache.fill(samples) == samples
        assert cache.counts['samples_without_names'] == 2
