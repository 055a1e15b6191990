"""The CLI commands in process, on SQLite storage written by the test."""

import contextlib
import datetime
import io
import json
import os
import threading

from telemetry_lib.cmd import cli
from telemetry_lib.pollsters import host
from telemetry_lib import Sample
from telemetry_lib.storage import base as storage_base
from tests import base

UTC = datetime.timezone.utc


class CLITest(base.TestCase):

    def setUp(self):
        super().setUp()
        self.url = 'sqlite://%s/db.sqlite' % self.tmpdir
        self.now = now = datetime.datetime.now(UTC)
        storage = storage_base.load_storage(self.conf, self.url)
        storage.write([Sample(
            'host.cpu.time', 'cumulative', 'ns', i * 1e9, resource_id='h1',
            timestamp=now - datetime.timedelta(seconds=60 - i * 10))
            for i in range(6)])
        storage.close()

    def run_cli(self, *args, stdin=''):
        out, err = io.StringIO(), io.StringIO()
        app = cli.TelemetryApp()
        app.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(
                err):
            app.stdout, app.stderr = out, err
            code = app.run(['--storage', self.url] + list(args))
        return code, out.getvalue(), err.getvalue()


class TestMeasures(CLITest):

    def test_show_has_units(self):
        code, out, _ = self.run_cli('measures', 'show', 'host.cpu.time',
                                    '--resource', 'h1', '-f', 'json')
        assert code == 0
        rows = json.loads(out)
        assert len(rows) == 6 and {r['Unit'] for r in rows} == {'ns'}

    def test_unknown_meter_and_resource_fail_clearly(self):
        for args, words in (
                (('nope',), "no meter 'nope'"),
                (('host.cpu.time', '--resource', 'h9'),
                 "no resource 'h9' has measures of host.cpu.time")):
            for command in ('show', 'plot'):
                code, _, err = self.run_cli('measures', command, *args)
                assert code != 0 and words in err, (command, err)
                assert 'Traceback' not in err

    def test_aggregation_without_granularity_is_an_error(self):
        code, _, err = self.run_cli('measures', 'show', 'host.cpu.time',
                                    '--resource', 'h1', '--aggregation',
                                    'rate')
        assert code != 0 and 'needs --granularity' in err
        code, out, _ = self.run_cli('measures', 'show', 'host.cpu.time',
                                    '--resource', 'h1', '--aggregation',
                                    'rate', '--granularity', '10', '-f',
                                    'json')
        assert code == 0 and json.loads(out)

    def test_every_option_has_help(self):
        app = cli.TelemetryApp()
        app.options = app.parser.parse_args([])
        app.initialize_app([])
        for name in ('measures show', 'measures plot', 'sample publish',
                     'sample collect', 'resource list',
                     'pipeline validate', 'alarm validate', 'alarm list',
                     'alarm show', 'alarm history', 'alarm evaluate'):
            cmd_factory, _, _ = app.command_manager.find_command(
                name.split())
            parser = cmd_factory(app, None).get_parser(name)
            for action in parser._actions:
                if action.dest in ('help', 'formatter', 'columns',
                                   'quote_mode', 'noindent', 'max_width',
                                   'fit_width', 'print_empty',
                                   'sort_columns', 'sort_direction'):
                    continue
                assert action.help, (name, action.dest)


class TestPollingTypos(CLITest):

    def test_a_meter_no_pollster_produces_is_said(self):
        # Issue 21: "cpuu" validated as valid and polled nothing, silently.
        path = self.write_file('polling.yaml', 'sources:\n  - name: s\n'
                               '    interval: 10\n'
                               '    meters: ["cpuu", "host.*"]\n')
        code, out, err = self.run_cli('pipeline', 'validate', path)
        assert code == 0 and 'valid (polling)' in out
        assert ("warning: %s:2: source 's', meter 'cpuu': no installed "
                "pollster produces it (did you mean cpu" % path) in err
        assert 'host.*' not in err


class TestAggregateUnits(CLITest):

    def test_rate_is_per_second_and_count_has_no_unit(self):
        # Issue 21: a rate of host.cpu.time was labelled "ns".
        for aggregation, unit in (('rate', 'ns/s'), ('count', 'measures'),
                                  ('max', 'ns')):
            code, out, err = self.run_cli(
                'measures', 'show', 'host.cpu.time', '--resource', 'h1',
                '--granularity', '20', '--aggregation', aggregation,
                '-f', 'json')
            assert code == 0, err
            assert {r['Unit'] for r in json.loads(out)} == {unit}


class TestSampleRoundTrip(CLITest):

    def test_collect_json_feeds_publish(self):
        code, out, _ = self.run_cli('sample', 'collect', '--once',
                                    '--meter', 'host.memory.*', '-f',
                                    'json')
        assert code == 0
        collected = json.loads(out)
        assert collected
        assert set(collected[0]) >= {'name', 'volume', 'resource_id'}
        target = 'file://%s/out.json?max_latency=0' % self.tmpdir
        code, out, err = self.run_cli('sample', 'publish', target, '-f',
                                      'json', stdin=out)
        rows = {r['What']: r['Count'] for r in json.loads(out)}
        assert code == 0, err
        assert rows['invalid'] == 0
        assert rows['published'] == len(collected)


class TestCollectWhatCanRun(CLITest):

    def test_a_pollster_that_cannot_run_is_skipped_and_said(self):
        # Issue 21: the README's tour broke here on a host without
        # libvirt-python -- every installed pollster ran, one failed, and
        # the command printed nothing and exited 1.
        from telemetry_lib.exceptions import PollsterError
        from telemetry_lib.pollsters import base as pollster_base
        from telemetry_lib.pollsters import loader as pollster_loader

        class Broken(pollster_base.Pollster):
            meters = ('broken.meter',)

            def poll(self, now, resources=None):
                raise PollsterError('needs something this host lacks')
        real = pollster_loader.load_pollsters

        def load(conf):
            found = real(conf)
            found['broken'] = Broken(conf)
            return found
        pollster_loader.load_pollsters = load
        self.addCleanup(setattr, pollster_loader, 'load_pollsters', real)
        code, out, err = self.run_cli('sample', 'collect', '--once', '-f',
                                      'json')
        assert code == 0, err
        names = {s['name'] for s in json.loads(out)}
        assert 'host.memory.used' in names
        assert 'skipped broken: needs something this host lacks' in err
        code, out, err = self.run_cli('sample', 'collect', '--once',
                                      '--meter', 'broken.*')
        assert code == 1
        assert "no pollster matching 'broken.*' can run here" in err


class TestCPUUtilisation(base.TestCase):

    def test_right_from_any_thread(self):
        # psutil.cpu_percent keeps one reference per thread: polled from a
        # pool, it read 0 or 100. Ours must not depend on the thread.
        import psutil
        fields = psutil.cpu_times()._fields
        pollster = host.CPUPollster(self.conf)
        ticks = [0]

        def times():
            ticks[0] += 1
            t = ticks[0] * 10.0
            # Each step: 10 s pass, half of them busy.
            values = dict.fromkeys(fields, 0.0)
            values.update(user=t / 2, idle=t / 2)
            return psutil._common.scputimes(**values) if hasattr(
                psutil._common, 'scputimes') else type(
                psutil.cpu_times())(**values)

        assert pollster.utilisation(times()) is None     # no reference
        results = []

        def poll():
            results.append(pollster.utilisation(times()))
        for _ in range(6):
            t = threading.Thread(target=poll)
            t.start()
            t.join()
        assert results == [50.0] * 6


class TestAlarmCommands(CLITest):

    ALARMS = '''
alarms:
  - name: busy
    severity: critical
    rule:
      meter: host.cpu.time
      resource_id: h1
      aggregation: count
      granularity: 10
      evaluation_periods: 2
      comparison_operator: ge
      threshold: 1
    alarm_actions: ["log://"]
'''

    def setUp(self):
        super().setUp()
        # One sample every 10 s goes on for the next minute: the last two
        # complete 10-s buckets hold one each even when the evaluation
        # runs after a bucket boundary that setUp's clock had not reached
        # (it did, now and then, on a loaded machine).
        storage = storage_base.load_storage(self.conf, self.url)
        storage.write([Sample(
            'host.cpu.time', 'cumulative', 'ns', (6 + i) * 1e9,
            resource_id='h1', timestamp=self.now + datetime.timedelta(
                seconds=i * 10)) for i in range(7)])
        storage.close()
        self.path = self.write_file('alarms.yaml', self.ALARMS)
        self.state = self.write_file('alarms.conf', '[alarms]\n'
                                     'state_file = %s/alarms.sqlite\n'
                                     % self.tmpdir)

    def run_alarm(self, *args):
        return self.run_cli('--config-file', self.state, 'alarm', *args)

    def test_validate(self):
        code, out, _ = self.run_alarm('validate', self.path)
        assert code == 0 and 'valid (1 alarm(s))' in out
        bad = self.write_file('bad.yaml', self.ALARMS.replace(
            'threshold: 1', 'threshold: lots'))
        code, _, err = self.run_alarm('validate', bad)
        assert code == 1 and "alarm 'busy', field 'rule.threshold'" in err

    def test_evaluate_list_show_history(self):
        code, out, err = self.run_alarm('evaluate', 'busy', '--alarms',
                                        self.path, '-f', 'json')
        assert code == 0, err
        result = json.loads(out)
        # The samples are one per 10 s over the last minute: the two last
        # complete buckets hold one each.
        assert result['decision'] == 'alarm' and result['changes'] is True
        assert result['values'] == [1, 1]
        # evaluate records nothing:
        code, out, _ = self.run_alarm('list', '--alarms', self.path, '-f',
                                      'json')
        (row,) = json.loads(out)
        assert (row['Name'], row['State'], row['Severity']) == (
            'busy', 'insufficient data', 'critical')
        code, out, _ = self.run_alarm('show', 'busy', '--alarms', self.path,
                                      '-f', 'json')
        shown = json.loads(out)
        assert shown['alarm_actions'] == ['log://']
        assert shown['rule']['meter'] == 'host.cpu.time'
        code, out, _ = self.run_alarm('history', 'busy', '-f', 'json')
        assert code == 0 and json.loads(out) == []
        code, _, err = self.run_alarm('show', 'nope', '--alarms', self.path)
        assert code != 0 and "no alarm 'nope'" in err

    def test_the_file_as_the_newcomer_gives_it(self):
        # Issue 21: "alarm list FILE" failed (rc 2), "alarm history"
        # refused --alarms and said nothing when there was no history.
        code, out, err = self.run_alarm('list', self.path, '-f', 'json')
        assert code == 0, err
        assert [r['Name'] for r in json.loads(out)] == ['busy']
        code, out, err = self.run_alarm('history', 'busy', '--alarms',
                                        self.path, '-f', 'json')
        assert code == 0 and json.loads(out) == []
        assert "no state change of 'busy' recorded in" in err
        code, _, err = self.run_alarm('history', 'nope', '--alarms',
                                      self.path)
        assert code != 0 and "no alarm 'nope'" in err


class TestNotificationCommands(CLITest):

    FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)),
                            'fixtures', 'notifications', 'openstack.json')

    def test_convert_then_publish_the_events(self):
        code, out, err = self.run_cli('notification', 'convert',
                                      self.FIXTURES)
        assert code == 0, err
        converted = json.loads(out)
        assert len(converted) == 30
        by_type = {c['event_type']: c for c in converted}
        (vol,) = by_type['volume.create.end']['samples']
        assert (vol['counter_name'], vol['counter_volume']) == (
            'volume.size', 10)
        events = [e for c in converted for e in c['events']]
        target = 'file://%s/events.json?max_latency=0' % self.tmpdir
        code, out, err = self.run_cli('event', 'publish', target, '-f',
                                      'json', stdin=json.dumps(events))
        rows = {r['What']: r['Count'] for r in json.loads(out)}
        assert code == 0, err
        assert (rows['read'], rows['published']) == (30, 30)
        with open(os.path.join(self.tmpdir, 'events.json')) as f:
            assert len(f.read().splitlines()) == 30

    def test_the_envelope_on_the_bus_and_a_bad_one(self):
        inner = {'message_id': 'm1', 'publisher_id': 'image.h',
                 'event_type': 'image.upload', 'priority': 'INFO',
                 'timestamp': '2026-11-29 08:00:03.1',
                 'payload': {'id': 'i1', 'size': 5, 'owner': 'p'},
                 '_context_user_id': 'u'}
        path = self.write_file('n.json', json.dumps([
            {'oslo.version': '2.0', 'oslo.message': json.dumps(inner)},
            {'event_type': 'x'}]))
        code, out, _ = self.run_cli('notification', 'convert', path)
        assert code == 1
        first, second = json.loads(out)
        assert first['samples'][0]['counter_volume'] == 5
        assert first['events'][0]['traits'][0] == ['service', 1, 'image.h']
        assert 'message_id' in second['error']

    def test_a_broken_definition_file_is_one_line(self):
        bad = self.write_file('events.yaml', '- event_type: x\n  traits: [\n')
        code, _, err = self.run_cli(
            '--config-file', self.write_file('c.conf', (
                '[notification]\nevent_definitions_file = %s\n' % bad)),
            'notification', 'convert', self.FIXTURES)
        assert code != 0
        assert 'events.yaml:' in err and 'Traceback' not in err

    def test_event_publish_to_a_publisher_without_events(self):
        code, _, err = self.run_cli('event', 'publish', self.url,
                                    stdin='[]')
        assert code != 0 and 'does not publish events' in err


class TestAssets(CLITest):

    def test_list_show_write(self):
        code, out, _ = self.run_cli('assets', 'list', '-f', 'json')
        assert code == 0
        assert {a['Name'] for a in json.loads(out)} == {
            'prometheus-rules', 'grafana-agent', 'grafana-instances'}
        code, out, _ = self.run_cli('assets', 'show', 'grafana-agent')
        assert code == 0 and json.loads(out)['uid'] == 'telemetry-lib-agent'
        target = os.path.join(self.tmpdir, 'assets')
        code, out, _ = self.run_cli('assets', 'write', target, '-f', 'json')
        assert code == 0 and len(json.loads(out)) == 3
        with open(os.path.join(target, 'prometheus',
                               'prometheus-rules.yaml')) as f:
            assert 'vm:cpu_usage:ratio' in f.read()
        # Not over what is there, unless asked; one line either way.
        code, _, err = self.run_cli('assets', 'write', target)
        assert code == 1 and 'exists; --force' in err
        assert 'Traceback' not in err
        code, _, _ = self.run_cli('assets', 'write', target, '--force')
        assert code == 0
        code, _, err = self.run_cli('assets', 'show', 'nope')
        assert code == 1 and "no asset 'nope'" in err
