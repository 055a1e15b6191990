#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""``alarm validate|list|show|history|evaluate``."""

import contextlib
import datetime
import sys

from cliff import command
from cliff import lister
from cliff import show

from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import model
from telemetry_lib.alarm import service
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.timeutils import UTC


def _file(app, args):
    path = getattr(args, 'alarms', None) or (
        service.register_opts(app.conf) or app.conf.alarms.definitions_file)
    if not path:
        raise TelemetryError('no alarms file: give --alarms FILE or set '
                             '[alarms] definitions_file')
    return service.load(path)


@contextlib.contextmanager
def _store(app):
    """The alarm state store, closed after use."""
    store = service.open_store(app.conf)
    try:
        yield store
    finally:
        store.close()


def _alarm(definition, name):
    alarm = definition.alarms.get(name)
    if alarm is None:
        raise TelemetryError('no alarm %r in %s (alarms: %s)' % (
            name, definition.path, ', '.join(sorted(definition.alarms))
            or 'none'))
    return alarm


class _WithFile:
    @staticmethod
    def add(parser):
        parser.add_argument('--alarms', metavar='FILE',
                            help='Alarms file (default: [alarms] '
                                 'definitions_file).')


class AlarmValidate(command.Command):
    """Check an alarms file: one line per problem, exit 1 if any."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('file', metavar='FILE',
                            help='The alarms file to check.')
        return parser

    def take_action(self, args):
        try:
            definition = service.load(args.file)
        except ConfigError as exc:
            for line in str(exc).splitlines():
                print(line, file=sys.stderr)
            return 1
        print('%s: valid (%d alarm(s))' % (args.file,
                                           len(definition.alarms)))
        return 0


class AlarmList(lister.Lister):
    """List the alarms of the file with their current state. The file is
    FILE, ``--alarms FILE`` or ``[alarms] definitions_file``.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _WithFile.add(parser)
        parser.add_argument('file', metavar='FILE', nargs='?',
                            help='Alarms file (the same as --alarms).')
        return parser

    def take_action(self, args):
        if args.file and args.alarms and args.file != args.alarms:
            raise TelemetryError('give the alarms file once: %s or --alarms '
                                 '%s' % (args.file, args.alarms))
        args.alarms = args.alarms or args.file
        definition = _file(self.app, args)
        with _store(self.app) as store:
            states = store.states()
        rows = []
        for name, alarm in sorted(definition.alarms.items()):
            current, reason, changed, _ = states.get(
                name, (model.INSUFFICIENT_DATA, '', None, None))
            rows.append((name, alarm.type, alarm.severity, current,
                         changed.isoformat() if changed else '',
                         alarm.enabled))
        return ('Name', 'Type', 'Severity', 'State', 'Changed',
                'Enabled'), rows


class _OneAlarm(show.ShowOne):
    """A command about one alarm of the file."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _WithFile.add(parser)
        parser.add_argument('name', metavar='NAME', help='The alarm.')
        return parser


class AlarmShow(_OneAlarm):
    """Show one alarm: its definition and state."""

    def take_action(self, args):
        alarm = _alarm(_file(self.app, args), args.name)
        with _store(self.app) as store:
            current, reason, changed = store.get(alarm.name)
        fields = [('name', alarm.name), ('id', alarm.id),
                  ('type', alarm.type), ('description', alarm.description),
                  ('severity', alarm.severity), ('enabled', alarm.enabled),
                  ('evaluation_interval', alarm.interval),
                  ('repeat_actions', alarm.repeat_actions),
                  ('rule', dict(alarm.rule.data)), ('state', current),
                  ('reason', reason),
                  ('changed', changed.isoformat() if changed else '')]
        fields += [(field, list(alarm.actions.get(st, ())))
                   for st, field in service.definitions.ACTION_FIELDS.items()]
        return tuple(zip(*fields))


class AlarmHistory(lister.Lister):
    """The state changes of one alarm, newest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        # Taken like the other alarm commands' (the history itself is in
        # the state file, [alarms] state_file).
        _WithFile.add(parser)
        parser.add_argument('name', metavar='NAME', help='The alarm.')
        parser.add_argument('--limit', type=int, default=50,
                            help='Most transitions shown (default 50).')
        return parser

    def take_action(self, args):
        if args.alarms:
            _alarm(_file(self.app, args), args.name)
        with _store(self.app) as store:
            rows = store.history(args.name, max(1, min(args.limit, 10000)))
        if not rows:
            print('no state change of %r recorded in %s' % (
                args.name, store.path), file=sys.stderr)
        return ('Timestamp', 'Previous', 'Current', 'Reason'), [
            (h['timestamp'].isoformat(), h['previous'], h['current'],
             h['reason']) for h in rows]


class AlarmWebhooks(lister.Lister):
    """What the Alertmanager receiver decided for each alert it was
    sent, newest first (kept in the alarm state file, bounded).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--limit', type=int, default=50,
                            help='Most decisions shown (default 50).')
        return parser

    def take_action(self, args):
        with _store(self.app) as store:
            rows = store.webhooks(max(1, min(args.limit, 10000)))
        return ('Timestamp', 'Alert', 'Route', 'Outcome', 'Target'), [
            (h['timestamp'].isoformat(), h['alert'], h['route'],
             h['outcome'], h['target']) for h in rows]


class AlarmEvaluate(_OneAlarm):
    """Evaluate one alarm now against its storage and print the values
    and the decision; records nothing and sends no action.
    """

    def take_action(self, args):
        alarm = _alarm(_file(self.app, args), args.name)
        storages = evaluator.Storages(self.app.conf)
        try:
            with _store(self.app) as store:
                current = store.get(alarm.name)[0]
            verdict = alarm.rule.evaluate(
                storages, datetime.datetime.now(UTC), current)
        finally:
            storages.close(5.0)
        decision = verdict.state or current
        return (('alarm', 'current state', 'decision', 'changes', 'reason',
                 'values'),
                (alarm.name, current, decision, decision != current,
                 verdict.reason, verdict.reason_data.get('values',
                                                         verdict.reason_data)))
