import os
import subprocess
import sys
import textwrap

from telemetry_lib import ConfigError
from telemetry_lib import delivery
from telemetry_lib import Event
from telemetry_lib.pipeline import definitions
from telemetry_lib.pipeline import PipelineDefinition
from telemetry_lib.pipeline import PipelineManager
from telemetry_lib.pipeline import PollingDefinition
from telemetry_lib import Sample
from tests import base

CEILOMETER = os.path.join(base.DATA_DIR, 'ceilometer')


def s(name):
    return Sample(name, 'gauge', '1', 1, resource_id='r')


def as_test_publisher(conf, url, kind):
    """Stand every URL in for a test:// publisher (routing tests only)."""
    d = delivery.build(conf, 'test://?max_latency=0', kind)
    d.original_url = url
    return d


class TestCeilometerFiles(base.TestCase):

    def test_default_pipeline_loads_and_routes_everything(self):
        d = PipelineDefinition.load(os.path.join(CEILOMETER,
                                                 'pipeline.yaml'))
        assert [src.name for src in d.sources] == ['meter_source']
        assert d.sinks['meter_sink'].publishers == ('gnocchi://',)
        mgr = PipelineManager(self.conf, d, as_test_publisher).start()
        self.addCleanup(mgr.close, 1)
        mgr.publish([s('cpu'), s('disk.read.bytes')])
        assert mgr.flush(5)
        (target,) = mgr.deliveries.values()
        assert str(target.original_url) == 'gnocchi://'
        assert [x.name for x in target.publisher.samples] == [
            'cpu', 'disk.read.bytes']

    def test_default_event_pipeline(self):
        d = PipelineDefinition.load(
            os.path.join(CEILOMETER, 'event_pipeline.yaml'), kind='events')
        assert d.sinks['event_sink'].publishers == ('notifier://',)
        mgr = PipelineManager(self.conf, d, as_test_publisher).start()
        self.addCleanup(mgr.close, 1)
        mgr.publish([Event(event_type='compute.instance.create.end')])
        assert mgr.flush(5)
        (target,) = mgr.deliveries.values()
        assert len(target.publisher.events) == 1

    def test_polling_files(self):
        p = PollingDefinition.load(os.path.join(CEILOMETER, 'polling.yaml'))
        (src,) = p.sources
        assert src.interval == 300
        assert src.filter('cpu') and src.filter('volume.size')
        assert not src.filter('disk.usage')
        p = PollingDefinition.load(os.path.join(CEILOMETER,
                                                'polling_all.yaml'))
        assert p.sources[0].filter('anything.at.all')


class TestRouting(base.TestCase):

    def manager(self, text, kind='samples'):
        path = self.write_file('pipeline.yaml', textwrap.dedent(text))
        mgr = PipelineManager.from_file(self.conf, path, kind,
                                        delivery_factory=lambda c, u, k:
                                        delivery.build(c, u, k)).start()
        self.addCleanup(mgr.close, 1)
        return mgr

    def test_globs_excludes_and_shared_publishers(self):
        mgr = self.manager('''
            sources:
              - name: cpu_source
                meters: ["cpu*"]
                sinks: [a, b]
              - name: all_but_disk
                meters: ["!disk.*"]
                sinks: [b]
            sinks:
              - name: a
                publishers: ["test://?max_latency=0&fail_times=0"]
              - name: b
                publishers: ["test://?max_latency=0"]
        ''')
        pa = mgr.deliveries['test://?max_latency=0&fail_times=0']
        pb = mgr.deliveries['test://?max_latency=0']
        mgr.publish([s('cpu'), s('cpu_util'), s('disk.read.bytes'),
                     s('memory')])
        assert mgr.flush(5)
        assert [x.name for x in pa.publisher.samples] == ['cpu', 'cpu_util']
        # b is reached twice by cpu*, and gets each sample once.
        assert [x.name for x in pb.publisher.samples] == [
            'cpu', 'cpu_util', 'memory']

    def test_events_route_on_event_type(self):
        mgr = self.manager('''
            sources:
              - name: e
                events: ["!compute.instance.exists", "!image.*"]
                sinks: [s]
            sinks:
              - name: s
                publishers: ["test://?max_latency=0"]
        ''', kind='events')
        mgr.publish([Event(event_type='compute.instance.create.end'),
                     Event(event_type='compute.instance.exists'),
                     Event(event_type='image.upload')])
        assert mgr.flush(5)
        (d,) = mgr.deliveries.values()
        assert [e.event_type for e in d.publisher.events] == [
            'compute.instance.create.end']

    def test_name_filter_rules(self):
        f = definitions.NameFilter(['*', '!cpu'])
        assert f('memory') and not f('cpu')
        f = definitions.NameFilter(['!a.*', '!b'])
        assert f('c') and not f('a.x') and not f('b')
        f = definitions.NameFilter(['a', 'b.*'])
        assert f('a') and f('b.c') and not f('c')


BROKEN = {
    'bad_yaml': ('sources:\n  - name: x\n    meters: [a\n',
                 # libyaml's wording (PyYAML's own says "expected ...,
                 # but got '<stream end>'"): the loader uses libyaml.
                 "invalid YAML: did not find expected ',' or ']' "
                 '(while parsing a flow sequence that starts on line 3)', 4),
    'not_a_mapping': ('- just\n- a list\n', 'top level must be a mapping',
                      None),
    'no_sinks': ('sources:\n  - name: s\n    meters: ["*"]\n'
                 '    sinks: [k]\n', '"sinks" must be a non-empty list',
                 1),
    'mixed_include_exclude': (
        'sources:\n  - name: s\n    meters: [a, "!b"]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: [test://]\n',
        "source 's', field 'meters': both included and excluded", 2),
    'wildcard_with_include': (
        'sources:\n  - name: s\n    meters: ["*", a]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: [test://]\n',
        'included meter given with the "*" wildcard', 2),
    'duplicate_source': (
        'sources:\n  - name: s\n    meters: ["*"]\n    sinks: [k]\n'
        '  - name: s\n    meters: ["*"]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: [test://]\n',
        "duplicated source name 's'", 5),
    'duplicate_sink': (
        'sources:\n  - name: s\n    meters: ["*"]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: [test://]\n'
        '  - name: k\n    publishers: [test://]\n',
        "duplicated sink name 'k'", 8),
    'dangling_sink': (
        'sources:\n  - name: s\n    meters: ["*"]\n    sinks: [nope]\n'
        'sinks:\n  - name: k\n    publishers: [test://]\n',
        "sink 'nope' is not defined", 2),
    'missing_publishers': (
        'sources:\n  - name: s\n    meters: ["*"]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n',
        "sink 'k', field 'publishers': must be a non-empty list", 6),
    'unknown_publisher': (
        'sources:\n  - name: s\n    meters: ["*"]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: ["kafka://broker:9092"]\n',
        "unknown publisher 'kafka'", 6),
    'bad_publisher_option': (
        'sources:\n  - name: s\n    meters: ["*"]\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: ["http://h/?timeout=x"]\n',
        "option 'timeout' must be a number", 6),
    'missing_meters': (
        'sources:\n  - name: s\n    sinks: [k]\n'
        'sinks:\n  - name: k\n    publishers: [test://]\n',
        "source 's', field 'meters'", 2),
}


class TestBrokenFiles(base.TestCase):

    def test_each_broken_file_gives_one_clear_error(self):
        for name, (text, expected, line) in BROKEN.items():
            path = self.write_file(name + '.yaml', text)
            with self.assertRaises(ConfigError, msg=name) as ctx:
                PipelineManager.from_file(self.conf, path)
            message = str(ctx.exception)
            assert message.startswith(path), (name, message)
            assert expected in message, (name, message)
            if line is not None:
                assert ctx.exception.line == line, (name, message)
                assert '%s:%d: ' % (path, line) in message, (name, message)

    def test_missing_file(self):
        with self.assertRaises(ConfigError) as ctx:
            PipelineDefinition.load(os.path.join(self.tmpdir, 'nope.yaml'))
        assert 'cannot read' in str(ctx.exception)

    def test_polling_rules(self):
        for text, expected in (
                ('sources:\n  - name: p\n    meters: ["*"]\n',
                 "field 'interval': must be a number of seconds from 0.01"),
                ('sources:\n  - name: p\n    interval: .nan\n'
                 '    meters: ["*"]\n', 'not nan'),
                ('sources:\n  - name: p\n    interval: .inf\n'
                 '    meters: ["*"]\n', 'not inf'),
                ('sources:\n  - name: p\n    interval: -5\n'
                 '    meters: ["*"]\n', 'not -5'),
                ('sources:\n  - name: p\n    interval: 5\n'
                 '    meters: ["*"]\n    resources: x\n',
                 "field 'resources': must be a list"),
                ('{}', '"sources" must be a non-empty list')):
            path = self.write_file('polling.yaml', text)
            with self.assertRaises(ConfigError) as ctx:
                PollingDefinition.load(path)
            assert expected in str(ctx.exception), str(ctx.exception)

    def test_no_traceback_reaches_a_user(self):
        # What a CLI shows is str(error): one line, no Python internals.
        path = self.write_file('p.yaml', BROKEN['bad_yaml'][0])
        code = ('import sys\nfrom oslo_config import cfg\n'
                'from telemetry_lib import ConfigError\n'
                'from telemetry_lib.pipeline import PipelineManager\n'
                'c = cfg.ConfigOpts(); c([])\n'
                'try:\n    PipelineManager.from_file(c, sys.argv[1])\n'
                'except ConfigError as e:\n    print(e)\n')
        out = subprocess.run([sys.executable, '-c', code, path],
                             capture_output=True, text=True, timeout=60)
        assert 'Traceback' not in out.stdout + out.stderr
        assert out.stdout.count('\n') == 1 and 'invalid YAML' in out.stdout


class TestAllProblemsReported(base.TestCase):

    def test_every_problem_of_a_file_at_once(self):
        path = self.write_file('many.yaml', textwrap.dedent('''
            sources:
              - name: s1
                meters: [a, "!b"]
                sinks: [k]
              - name: s2
                meters: ["*"]
                sinks: [missing]
            sinks:
              - name: k
                publishers: ["http://h:notaport/"]
        '''))
        with self.assertRaises(definitions.ConfigErrors) as ctx:
            PipelineDefinition.load(path)
        lines = str(ctx.exception).splitlines()
        assert len(ctx.exception.problems) == 3 and len(lines) == 3
        assert "sink 'k'" in lines[0] and "port 'notaport'" in lines[0]
        assert "source 's1'" in lines[1] and "source 's2'" in lines[2]


class TestClose(base.TestCase):

    def test_dead_sinks_close_together_within_the_timeout(self):
        import time
        path = self.write_file('p.yaml', textwrap.dedent('''
            sources:
              - name: s
                meters: ["*"]
                sinks: [k]
            sinks:
              - name: k
                publishers:
                  - "test://?fail=retryable&max_retries=-1&x=1"
                  - "test://?fail=retryable&max_retries=-1&x=2"
                  - "test://?fail=retryable&max_retries=-1&x=3"
        '''))
        mgr = PipelineManager.from_file(self.conf, path).start()
        mgr.publish([s('cpu')])
        started = time.monotonic()
        flushed = mgr.flush(0.5)
        # In parallel, not one after another: one timeout for all.
        assert time.monotonic() - started < 0.9
        assert not flushed and len(flushed.parts) == 3
        started = time.monotonic()
        outcomes = mgr.close(0.5)
        assert time.monotonic() - started < 0.9
        assert not outcomes and set(outcomes.parts) == set(flushed.parts)
        assert sorted(o.dropped for o in outcomes.parts.values()) == [
            1, 1, 1]
        assert outcomes.dropped == 3
