from telemetry_lib import InvalidURL
from telemetry_lib import TelemetryURL
from tests import base


class TestURL(base.TestCase):

    def test_ceilometer_forms(self):
        cases = {
            'gnocchi': ('gnocchi', (), ''),
            'gnocchi://': ('gnocchi', (), ''),
            'gnocchi://?archive_policy=low&filter_project=service':
                ('gnocchi', (), ''),
            'notifier://qdr.example:5666/?driver=amqp&topic=metering':
                ('notifier', (('qdr.example', 5666),), '/'),
            'prometheus://gw:9091/metrics/job/ceilometer/host/h1':
                ('prometheus', (('gw', 9091),), '/metrics/job/ceilometer/host'
                                                '/h1'),
            'file:///var/log/ceilometer/samples.json?max_bytes=10&json':
                ('file', (), '/var/log/ceilometer/samples.json'),
            'https://user:p%40ss@collector:8443/in': ('https', (
                ('collector', 8443),), '/in'),
            'udp://10.0.0.1:4952': ('udp', (('10.0.0.1', 4952),), ''),
            'amqp1://a:5672,b:5673/anycast/x': ('amqp1', (
                ('a', 5672), ('b', 5673)), '/anycast/x'),
            'http://[::1]:8080/': ('http', (('::1', 8080),), '/'),
        }
        for text, (scheme, hosts, path) in cases.items():
            url = TelemetryURL.parse(text)
            assert url.scheme == scheme, text
            assert tuple(tuple(h) for h in url.hosts) == hosts, text
            assert url.path == path, text

    def test_credentials_and_masking(self):
        url = TelemetryURL.parse('https://user:p%40ss@collector:8443/in')
        assert (url.username, url.password) == ('user', 'p@ss')
        assert 'p@ss' not in str(url) and 'p%40ss' not in repr(url)
        assert '***' in str(url)
        assert 'p%40ss' in url.geturl(with_password=True)

    def test_options(self):
        url = TelemetryURL.parse('x://?a=1&a=2&flag&b=no&f=0.5')
        assert url.get('a') == '2'
        assert url.get_int('a') == 2
        assert url.get_bool('flag') is True
        assert url.get_bool('b') is False
        assert url.get_bool('missing', True) is True
        assert url.get_float('f') == 0.5
        assert url.unknown_options({'a', 'b'}) == ['f', 'flag']
        assert url.without({'a'}).options == {'flag': '', 'b': 'no',
                                              'f': '0.5'}

    def test_bad_option_names_option_and_url(self):
        url = TelemetryURL.parse('http://h/?timeout=soon')
        with self.assertRaises(InvalidURL) as ctx:
            url.get_int('timeout')
        assert "option 'timeout' must be an integer, not 'soon'" in str(
            ctx.exception)
        assert 'http://h/' in str(ctx.exception)

    def test_bad_urls(self):
        for text in ('', '   ', '://x', '1http://x', 'http://h:99999/',
                     'http://h:port/', 'http://[::1/', None):
            with self.assertRaises(InvalidURL):
                TelemetryURL.parse(text)

    def test_password_not_in_errors(self):
        with self.assertRaises(InvalidURL) as ctx:
            TelemetryURL.parse('http://u:hunter2@h:notaport/')
        assert 'hunter2' not in str(ctx.exception)

    def test_an_empty_user_name_still_masks_the_password(self):
        # Issue 20 item 7.
        url = TelemetryURL.parse('http://:S3cret@h:80/x')
        assert url.password == 'S3cret'
        assert 'S3cret' not in str(url) and 'S3cret' not in repr(url)
        assert str(url) == 'http://:***@h:80/x'
        from telemetry_lib import masking
        assert 'S3cret' not in masking.redact("bad: 'http://:S3cret@h:x/'")
        assert 'S3cr' not in masking.scrub(
            "invalid literal for int() with base 10: 'S3cr'", 'S3cr,et')

    def test_a_comma_in_a_notifier_password(self):
        # Issue 20 item 7: oslo.messaging cut the password at the comma
        # (its host separator) and echoed the first piece.
        from telemetry_lib.publisher import base as publisher_base
        pub = publisher_base.load_publisher(
            self.conf, 'notifier://u:S3cr,et@127.0.0.1:5672/')
        assert pub._transport_url.startswith('rabbit://u:S3cr%2Cet@')
        pub.close()

    def test_non_ascii_digits_and_control_characters(self):
        # Issue 20 item 8: '²' passes str.isdigit() but not int().
        for text in ('http://h:²/x', 'http://h:٣٠/',
                     'file:///tmp/x\x00y', 'file:///tmp/x%00y',
                     'http://h/x%0a'):
            with self.assertRaises(InvalidURL) as ctx:
                TelemetryURL.parse(text)
            assert len(str(ctx.exception).splitlines()) == 1

    def test_tls_verification_option(self):
        for query, expected in (('', True), ('?verify_ssl=true', True),
                                ('?verify_ssl', True),
                                ('?verify_ssl=no', False),
                                ('?verify_ssl=False', False),
                                ('?verify_ssl=/etc/ca.pem', '/etc/ca.pem')):
            assert TelemetryURL.parse('https://h/' + query).get_verify() \
                == expected, query
