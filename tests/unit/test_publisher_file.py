import json
import os

from telemetry_lib import delivery
from telemetry_lib import Event
from telemetry_lib.formats import ceilometer
from telemetry_lib import InvalidURL
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib import Sample
from tests import base


def samples(n):
    return [Sample('cpu', 'cumulative', 'ns', i, resource_id='r%d' % i)
            for i in range(n)]


class TestFilePublisher(base.TestCase):

    def lines(self, path):
        with open(path) as f:
            return [json.loads(line) for line in f]

    def test_json_lines_in_ceilometer_form_signed(self):
        self.conf.set_override('telemetry_secret', 's3cret',
                               group='publisher')
        path = os.path.join(self.tmpdir, 'out.json')
        pub = publisher_base.load_publisher(self.conf,
                                            'file://%s?json' % path)
        pub.publish_samples(samples(3))
        pub.publish_events([Event(event_type='x.y', traits=[('a', 1, 'b')])])
        pub.close()
        lines = self.lines(path)
        assert [m['counter_volume'] for m in lines[:3]] == [0, 1, 2]
        assert all(ceilometer.verify_signature(m, 's3cret')
                   for m in lines)
        assert lines[3]['event_type'] == 'x.y'

    def test_rotation_by_size(self):
        path = os.path.join(self.tmpdir, 'rot.json')
        pub = publisher_base.load_publisher(
            self.conf, 'file://%s?max_bytes=1500&backup_count=2' % path)
        for _ in range(10):
            pub.publish_samples(samples(3))
        pub.close()
        files = sorted(os.listdir(self.tmpdir))
        assert files == ['rot.json', 'rot.json.1', 'rot.json.2']
        for name in files:
            size = os.path.getsize(os.path.join(self.tmpdir, name))
            assert 0 < size <= 1500, (name, size)
            # A batch is never split across two files.
            assert len(self.lines(os.path.join(self.tmpdir, name))) % 3 == 0

    def test_bad_urls(self):
        for url in ('file://', 'file:///', 'file://%s' % self.tmpdir,
                    'file:///x?max_bytes=lots'):
            with self.assertRaises(InvalidURL):
                publisher_base.load_publisher(self.conf, url)

    def test_unwritable_paths_are_caught_before_start(self):
        # pipeline validate builds publishers: what can be known without
        # touching anything is an error then.
        plain = self.write_file('plain', '')
        for path, why in ((os.path.join(plain, 'x.json'), 'not a directory'),
                          (self.tmpdir, 'is a directory')):
            with self.assertRaises(InvalidURL) as ctx:
                publisher_base.load_publisher(self.conf, 'file://' + path)
            assert why in str(ctx.exception)

    def test_directory_made_at_start_and_files_owner_only(self):
        path = os.path.join(self.tmpdir, 'new', 'dir', 'x.json')
        pub = publisher_base.load_publisher(self.conf, 'file://' + path)
        assert not os.path.exists(os.path.dirname(path))
        pub.start()
        pub.publish_samples(samples(1))
        pub.close()
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700

    def test_missing_directory_is_retryable_then_works(self):
        path = os.path.join(self.tmpdir, 'later', 'x.json')
        d = delivery.build(self.conf, 'file://%s?max_latency=0&'
                           'retry_initial_delay=0.01&retry_max_delay=0.05'
                           '&max_retries=-1' % path).start()
        self.addCleanup(d.close, 1)
        os.rmdir(os.path.dirname(path))     # removed under the agent
        d.put(samples(2))
        assert not d.flush(0.2)
        os.mkdir(os.path.dirname(path))
        assert d.flush(5)
        assert len(self.lines(path)) == 2
        st = d.stats()
        assert st.retried == 2 and st.balanced


class TestSmartGatewayOnSockets(base.TestCase):
    """Issue 21: sg-core's msgpack decoder drops, uncounted, a sample whose
    user_metadata holds a value that is not a string.
    """

    def frames_of(self, url):
        import socket as socket_mod

        import msgpack

        from telemetry_lib.formats import ceilometer
        from telemetry_lib.publisher import base as publisher_base
        from telemetry_lib import Sample
        self.conf.set_override('telemetry_secret', 'k', group='publisher')
        s = Sample('m', 'gauge', '1', 1, resource_id='r', resource_metadata={
            'user_metadata': {'stack': 'web', 'size': 3, 'on': True}})
        server = socket_mod.socket(socket_mod.AF_INET,
                                   socket_mod.SOCK_DGRAM)
        self.addCleanup(server.close)
        server.bind(('127.0.0.1', 0))
        server.settimeout(10)
        pub = publisher_base.load_publisher(
            self.conf, url % server.getsockname()[1])
        pub.start()
        self.addCleanup(pub.close)
        pub.publish_samples([s])
        msg = msgpack.unpackb(server.recv(65535), raw=False)
        assert ceilometer.verify_signature(msg, 'k')
        return msg['resource_metadata']['user_metadata'], pub.adjustments()

    def test_user_metadata_values_become_strings_unless_told(self):
        user_md, adjusted = self.frames_of('udp://127.0.0.1:%d')
        assert user_md == {'stack': 'web', 'size': '3', 'on': 'true'}
        assert adjusted == {'user_metadata_stringified': 1}
        user_md, adjusted = self.frames_of('udp://127.0.0.1:%d?sg_compat='
                                           'false')
        assert user_md == {'stack': 'web', 'size': 3, 'on': True}
        assert adjusted == {}
