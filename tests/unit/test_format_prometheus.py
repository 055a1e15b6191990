import textwrap

from telemetry_lib.formats import prometheus as fmt
from telemetry_lib.publisher.prometheus import SeriesStore
from telemetry_lib.publisher import pushgateway
from telemetry_lib import Sample
from tests import base


def vm_sample(name='disk.ephemeral.size', type_='gauge', volume=20,
              resource='vm-1', md=None, **more_md):
    metadata = {'host': 'compute-0', 'display_name': 'web',
                'name': 'instance-0001'}
    metadata.update(md or {})
    metadata.update(more_md)
    return Sample(name, type_, 'GB', volume, user_id='u1', project_id='p1',
                  resource_id=resource, timestamp=1714564800.5,
                  resource_metadata=metadata, user_name='alice',
                  project_name='demo')


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class TestFloats(base.TestCase):

    def test_go_formatting(self):
        cases = {1234: '1234', 12.5: '12.5', 1.2345e11: '1.2345e+11',
                 1e-05: '1e-05', 0.0001: '0.0001', 1234567: '1.234567e+06',
                 100000: '100000', 1000000: '1e+06', -3.5: '-3.5',
                 0.1: '0.1', 0: '0', 1e21: '1e+21', 123456.789: '123456.789',
                 float('nan'): 'NaN', float('inf'): '+Inf',
                 float('-inf'): '-Inf', 2.5e-300: '2.5e-300',
                 1714564800.5: '1.7145648005e+09'}
        for value, text in cases.items():
            assert fmt.format_value(value) == text, (value, text)


class TestEscaping(base.TestCase):

    def test_label_values_and_help(self):
        assert fmt.escape_label_value('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
        assert fmt.escape_help('x\\y\nz "q"') == 'x\\\\y\\nz "q"'
        assert fmt.metric_name('ceilometer_cpu-l3.x') == \
            'ceilometer_cpu_l3_x'
        assert fmt.label_name('9lives') == '_9lives'


class TestSTFScheme(base.TestCase):

    def render(self, samples, **kw):
        store = SeriesStore('stf', 'telemetry.publisher.ctl', clock=Clock(),
                            **kw)
        assert store.update(samples) == []
        return store.render()

    def test_golden(self):
        text = self.render([vm_sample(),
                            vm_sample('cpu', 'cumulative', 1.2e9, unit='ns')])
        assert text == textwrap.dedent('''\
            # HELP ceilometer_disk_ephemeral_size disk.ephemeral.size (GB)
            # TYPE ceilometer_disk_ephemeral_size gauge
            ceilometer_disk_ephemeral_size{counter="disk.ephemeral.size",disk="size",project="p1",project_name="demo",publisher="telemetry.publisher.ctl",resource="vm-1",resource_name="web:instance-0001",type="ephemeral",unit="GB",user="u1",user_name="alice",vm_instance="compute-0"} 20
            # HELP ceilometer_cpu cpu (GB)
            # TYPE ceilometer_cpu counter
            ceilometer_cpu{counter="cpu",cpu="vm-1",project="p1",project_name="demo",publisher="telemetry.publisher.ctl",resource="vm-1",resource_name="web:instance-0001",type="cpu",unit="GB",user="u1",user_name="alice",vm_instance="compute-0"} 1.2e+09
            ''')  # noqa: E501

    def test_types(self):
        text = self.render([vm_sample('a', 'cumulative'),
                            vm_sample('b', 'gauge'),
                            vm_sample('c', 'delta')])
        assert '# TYPE ceilometer_a counter\n' in text
        assert 'ceilometer_a_total' not in text
        assert '# TYPE ceilometer_b gauge\n' in text
        assert '# TYPE ceilometer_c untyped\n' in text

    def test_metadata_differing_between_resources_keeps_one_label_set(self):
        samples = [
            vm_sample(resource='vm-1', user_metadata={'stack': 'web'}),
            vm_sample(resource='vm-2', md={'display_name': '', 'name': ''}),
            vm_sample(resource='vm-3', user_metadata={'role': 'db'}),
        ]
        text = self.render(samples)
        lines = [line for line in text.splitlines()
                 if not line.startswith('#')]
        assert len(lines) == 3
        names = [[kv.split('=')[0] for kv in
                  line[line.index('{') + 1:line.index('}')].split('",')]
                 for line in lines]
        assert names[0] == names[1] == names[2]
        assert 'stack' in names[0] and 'role' in names[0]
        assert 'stack=""' in lines[1] and 'resource_name=""' in lines[1]

    def test_unique_series_last_value_wins(self):
        text = self.render([vm_sample(volume=1), vm_sample(volume=2)])
        assert text.count('\nceilometer_disk_ephemeral_size{') == 1
        assert text.endswith('} 2\n')

    def test_label_values_escaped(self):
        text = self.render([vm_sample(display_name='say "hi"\\\nbye')])
        assert 'resource_name="say \\"hi\\"\\\\\\nbye:instance-0001"' \
            in text

    def test_timestamps_optional(self):
        text = self.render([vm_sample()], timestamps=True)
        assert text.splitlines()[-1].endswith(' 20 1714564800500')


class TestOpenMetricsScheme(base.TestCase):

    def test_golden_text_and_openmetrics(self):
        store = SeriesStore('openmetrics', clock=Clock())
        store.update([
            Sample('host.memory.used', 'gauge', 'B', 1024,
                   resource_id='h', resource_metadata={'host': 'h'}),
            Sample('host.cpu.time', 'cumulative', 'ns', 5e9,
                   resource_id='h', resource_metadata={'host': 'h'})])
        assert store.render() == textwrap.dedent('''\
            # HELP host_memory_used_bytes host.memory.used (B)
            # TYPE host_memory_used_bytes gauge
            host_memory_used_bytes{host="h",project="",resource="h",user=""} 1024
            # HELP host_cpu_time_nanoseconds_total host.cpu.time (ns)
            # TYPE host_cpu_time_nanoseconds_total counter
            host_cpu_time_nanoseconds_total{host="h",project="",resource="h",user=""} 5e+09
            ''')  # noqa: E501
        om = store.render(openmetrics=True)
        assert '# TYPE host_cpu_time_nanoseconds counter\n' in om
        assert '\nhost_cpu_time_nanoseconds_total{' in om
        assert om.endswith('# EOF\n')


class TestStore(base.TestCase):

    def test_series_limit_and_type_conflict(self):
        store = SeriesStore('stf', max_series=2, clock=Clock())
        refused = store.update([vm_sample(resource='a'),
                                vm_sample(resource='b'),
                                vm_sample(resource='c'),
                                vm_sample(resource='a', type_='delta')])
        assert refused == [2, 3] and len(store) == 2
        assert store.rejected == {'series_limit': 1, 'type_conflict': 1}

    def test_stale_series_expire_by_their_own_interval(self):
        clock = Clock()
        store = SeriesStore('stf', stale_multiple=3, default_interval=60,
                            clock=clock)
        store.update([vm_sample(resource='fast'), vm_sample(resource='slow')])
        clock.now += 10
        store.update([vm_sample(resource='fast')])     # every 10 s
        clock.now += 35                                # 35 s > 3 x 10 s
        assert store.expire() == 1
        assert 'resource="slow"' in store.render()
        assert 'resource="fast"' not in store.render()
        clock.now += 200                               # > 3 x 60 s
        assert store.expire() == 1 and len(store) == 0
        assert store.render() == ''

    def test_render_is_the_reference_renderer_byte_for_byte(self):
        values = [0, 0.0, -0.0, 1, 12.0, -7.0, 999999.0, 1e6, 1234567.0,
                  0.5, -2.25, 1e-05, 1.2345e+11, 2 ** 63 - 1, -3, 10 ** 6,
                  -999999.0, 0.1 + 0.2]
        for stamped in (False, True):
            store = SeriesStore('stf', clock=Clock(), timestamps=stamped)
            for round_ in range(2):
                store.update([vm_sample(volume=v + round_,
                                        resource='vm-%d' % i)
                              for i, v in enumerate(values)])
                fast = store.render()
                assert fast == fmt.render(store._snapshot(),
                                          timestamps=stamped), stamped
                # Unchanged values: the cached lines, the same bytes.
                assert store.render() == fast

    def test_expiry_is_not_missed_when_a_series_speeds_up(self):
        clock = Clock()
        store = SeriesStore('stf', stale_multiple=3, default_interval=60,
                            clock=clock)
        store.update([vm_sample(resource='a')])
        assert store.expire() == 0          # the next expiry: 180 s on
        clock.now += 5
        store.update([vm_sample(resource='a')])    # now every 5 s
        clock.now += 16
        assert store.expire() == 1

    def test_a_series_added_after_an_empty_pass_expires(self):
        clock = Clock()
        store = SeriesStore('stf', stale_multiple=3, default_interval=10,
                            clock=clock)
        assert store.expire() == 0          # nothing yet: no next expiry
        store.update([vm_sample()])
        clock.now += 31
        assert store.expire() == 1

    def test_a_new_series_with_a_short_interval_is_not_missed(self):
        clock = Clock()
        store = SeriesStore('stf', stale_multiple=3, default_interval=60,
                            clock=clock)
        store.update([vm_sample(resource='slow')])
        clock.now += 1000
        store.update([vm_sample(resource='slow')])     # every 1000 s
        assert store.expire() == 0          # next expiry: 3000 s on
        store.update([vm_sample(resource='new')])
        clock.now += 181                    # > 3 x 60 s for the new one
        assert store.expire() == 1
        assert 'resource="slow"' in store.render()

    def test_changing_the_interval_takes_effect(self):
        clock = Clock()
        store = SeriesStore('stf', default_interval=1e9, clock=clock)
        store.update([vm_sample()])
        assert store.expire() == 0
        store.default_interval = 1
        clock.now += 10
        assert store.expire() == 1


class TestPushgatewayPaths(base.TestCase):

    def test_grouping_key_round_trip(self):
        for labels, path in (
                ([('job', 'ceilometer')], '/job/ceilometer'),
                ([('job', 'c'), ('instance', 'a/b')],
                 '/job/c/instance@base64/YS9i'),
                ([('job', 'c'), ('empty', '')], '/job/c/empty@base64/='),
                ([('job', 'c'), ('sp', 'a b')], '/job/c/sp/a%20b')):
            assert pushgateway.encode_group(labels) == path
            assert pushgateway.decode_group('/metrics' + path) == labels

    def test_bad_paths(self):
        for path in ('/metrics', '/metrics/job', '/x/job/a',
                     '/metrics/job/a/odd'):
            with self.assertRaises(ValueError):
                pushgateway.decode_group(path)


class TestPortInUse(base.TestCase):

    def test_a_taken_port_is_a_clear_error(self):
        import socket

        from telemetry_lib import ConfigError
        from telemetry_lib.publisher import base as publisher_base
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            s.listen()
            port = s.getsockname()[1]
            # Building it binds nothing (pipeline validate does that);
            # starting it fails clearly.
            pub = publisher_base.load_publisher(
                self.conf, 'prometheus://?port=%d' % port)
            with self.assertRaises(ConfigError) as ctx:
                pub.start()
            assert 'cannot listen on 127.0.0.1:%d' % port in str(
                ctx.exception)


class TestListenAndTLS(base.TestCase):
    """Ceilometer's exporter options: several listen addresses (IPv6 too)
    and TLS with client certificates.
    """

    def test_several_addresses_and_client_certificates(self):
        import ssl
        import subprocess
        import urllib.request

        from telemetry_lib.publisher import base as publisher_base
        cert, key = self.self_signed_cert()
        # A client certificate of its own, signed by nobody but itself.
        ccert, ckey = self.tmpdir + '/c.pem', self.tmpdir + '/ck.pem'
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048',
                        '-nodes', '-keyout', ckey, '-out', ccert, '-days',
                        '1', '-subj', '/CN=scraper'], check=True,
                       capture_output=True, timeout=60)
        ports = (base.free_port(), base.free_port())
        pub = publisher_base.load_publisher(
            self.conf, 'prometheus://?scheme=ceilometer&listen=127.0.0.1:%d,'
            '127.0.0.1:%d&cert_file=%s&key_file=%s&client_ca=%s'
            % (ports + (cert, key, ccert)))
        pub.start()
        self.addCleanup(pub.close)
        assert [p for _, p in pub.addresses] == list(ports)
        pub.publish_samples([Sample('cpu', 'cumulative', 'ns', 5,
                                    resource_id='r')])
        for port in ports:
            ctx = ssl.create_default_context(cafile=cert)
            ctx.load_cert_chain(ccert, ckey)
            with urllib.request.urlopen('https://127.0.0.1:%d/metrics'
                                        % port, context=ctx,
                                        timeout=5) as r:
                assert b'ceilometer_cpu{' in r.read()
        bare = ssl.create_default_context(cafile=cert)
        with self.assertRaises((ssl.SSLError, OSError)):
            urllib.request.urlopen('https://127.0.0.1:%d/metrics' % ports[0],
                                   context=bare, timeout=5).read()
        # The IPv6 form parses too.
        from telemetry_lib.publisher import prometheus
        assert prometheus._listen('[::1]:9101,0.0.0.0:9101', 'u') == [
            ('::1', 9101), ('0.0.0.0', 9101)]

    def test_bad_listen_and_tls_alone_are_refused(self):
        from telemetry_lib import InvalidURL
        from telemetry_lib.publisher import base as publisher_base
        for url in ('prometheus://?listen=nohost',
                    'prometheus://?listen=h:99999',
                    'prometheus://?listen=h:1&port=2',
                    'prometheus://?cert_file=c&key_file=k',
                    'prometheus://?port=1&client_ca=x'):
            with self.assertRaises(InvalidURL, msg=url):
                publisher_base.load_publisher(self.conf, url)


class TestScrapeFamilies(base.TestCase):
    """The agent's own metrics, rendered by our renderer, read the same as
    prometheus_client renders the same families (its parser reads both).
    """

    def families(self, ours):
        from prometheus_client import core
        kinds = {'counter': (fmt.CounterFamily, core.CounterMetricFamily),
                 'gauge': (fmt.GaugeFamily, core.GaugeMetricFamily),
                 'histogram': (fmt.HistogramFamily,
                               core.HistogramMetricFamily),
                 'summary': (fmt.SummaryFamily, core.SummaryMetricFamily)}
        pick = 0 if ours else 1
        c = kinds['counter'][pick]('t_sent', 'Sent "items"\\ \n.',
                                   labels=('publisher', 'kind'))
        c.add_metric(('file:///x?a="b"', 'samples'), 12)
        c.add_metric(('http://h\\y', 'events'), 1.5e20)
        g = kinds['gauge'][pick]('t_pending', 'Queued.', labels=())
        g.add_metric((), 0.25)
        h = kinds['histogram'][pick]('t_seconds', 'Latency.',
                                     labels=('publisher',))
        h.add_metric(('p',), [('0.1', 3), ('1.0', 5), ('+Inf', 6)],
                     sum_value=2.5)
        s = kinds['summary'][pick]('t_run_seconds', 'Runs.',
                                   labels=('pollster',))
        s.add_metric(('host.cpu',), 4, 0.75)
        empty = kinds['counter'][pick]('t_never', 'Nothing yet.',
                                       labels=('x',))
        return [c, g, h, s, empty]

    def parsed(self, text):
        from prometheus_client import parser
        return sorted(
            (f.name, f.type, f.documentation, s.name,
             tuple(sorted(s.labels.items())), s.value)
            for f in parser.text_string_to_metric_families(text)
            for s in f.samples)

    def test_same_as_prometheus_client(self):
        from prometheus_client import exposition
        from prometheus_client import registry

        class Collector(registry.Collector):
            def collect(inner):
                return self.families(ours=False)
        reg = registry.CollectorRegistry(auto_describe=False)
        reg.register(Collector())
        theirs = exposition.generate_latest(reg).decode()
        mine = fmt.render_scrape(self.families(ours=True))
        assert self.parsed(mine) == self.parsed(theirs)
        assert '# TYPE t_never_total counter' in mine
