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
"""``measures show``, ``measures plot``, ``meter list``, ``resource list``."""

import datetime
import re

from cliff import command
from cliff import lister

from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.sample import to_utc_datetime
from telemetry_lib.storage import base as storage_base
from telemetry_lib.timeutils import UTC

_RELATIVE = re.compile(r'^-?(\d+(?:\.\d+)?)([smhdw])$')
_UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}


def parse_time(text, now=None):
    """``now``, a time ago (``90s``, ``15m``, ``2h``, ``1d``, ``1w``; a
    leading ``-`` is allowed) or ISO 8601.
    """
    if text is None:
        return None
    now = now or datetime.datetime.now(UTC)
    if text == 'now':
        return now
    m = _RELATIVE.match(text)
    if m:
        return now - datetime.timedelta(
            seconds=float(m.group(1)) * _UNITS[m.group(2)])
    return to_utc_datetime(text, 'time')


def open_storage(app):
    storage = storage_base.load_storage(app.conf, app.conf.storage.url)
    storage.start()
    return storage


class _Query:
    """The arguments and query shared by show and plot."""

    @staticmethod
    def add_arguments(parser):
        parser.add_argument('meter', metavar='METER',
                            help='The meter (see "meter list").')
        parser.add_argument('--resource', metavar='ID',
                            help='One resource (default: all, aggregated).')
        parser.add_argument('--start', default='1h',
                            help='A time ago (15m, 2h, 1d, 1w), now, or ISO '
                                 '8601 (default: 1h ago).')
        parser.add_argument('--stop', help='As --start (default: now).')
        parser.add_argument('--granularity', type=float, metavar='SECONDS',
                            help='Bucket width; without it one resource '
                                 'shows its raw measures, all resources '
                                 'use 60.')
        parser.add_argument('--aggregation',
                            choices=storage_base.AGGREGATIONS,
                            help='What each bucket shows (default: mean); '
                                 'needs --granularity for one resource, '
                                 'whose raw measures are not aggregated. '
                                 'rate: per second, for cumulative meters.')

    @staticmethod
    def run(app, args):
        """``(points, unit)``.

        :raises TelemetryError: for an unknown meter or resource, or an
            aggregation asked of raw measures.
        """
        granularity = args.granularity
        if granularity is not None and not 0 < granularity < float('inf'):
            raise TelemetryError('--granularity must be a number of '
                                 'seconds > 0, not %s' % granularity)
        if granularity is None and args.resource is None:
            granularity = 60.0
        if granularity is None and args.aggregation:
            raise TelemetryError('--aggregation %s needs --granularity: '
                                 'the raw measures of one resource are '
                                 'not aggregated' % args.aggregation)
        storage = open_storage(app)
        try:
            units = {name: unit for name, _, unit in storage.meters()}
            if args.meter not in units:
                raise TelemetryError('no meter %r in %s%s' % (
                    args.meter, storage.url, _known(units)))
            if args.resource is not None and args.resource not in \
                    storage.resources(args.meter):
                raise TelemetryError('no resource %r has measures of %s '
                                     '(see "resource list --meter %s")'
                                     % (args.resource, args.meter,
                                        args.meter))
            return storage.query(
                args.meter, resource_id=args.resource,
                start=parse_time(args.start), stop=parse_time(args.stop),
                granularity=granularity,
                aggregation=args.aggregation or 'mean'), result_unit(
                    units[args.meter], args.aggregation)
        finally:
            storage.close()


def result_unit(unit, aggregation):
    """The unit of an aggregate: a rate is per second, a count has none."""
    if aggregation == 'rate':
        return '%s/s' % unit
    if aggregation == 'count':
        return 'measures'
    return unit


def _known(names, most=10):
    names = sorted(names)
    if not names:
        return ' (it stores no meter yet)'
    return '; known: %s%s' % (', '.join(names[:most]),
                              ', ...' if len(names) > most else '')


class MeasuresShow(lister.Lister):
    """Show the measures of a meter from the configured storage."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _Query.add_arguments(parser)
        return parser

    def take_action(self, args):
        # A known meter with nothing in the range is an empty table, not
        # an error: scripts poll for it.
        points, unit = _Query.run(self.app, args)
        return (('Timestamp', 'Value', 'Unit'),
                [(p.timestamp.isoformat(), p.value, unit) for p in points])


class MeasuresPlot(command.Command):
    """Plot the measures of a meter: in the terminal, or as a PNG."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        _Query.add_arguments(parser)
        parser.add_argument('--output', metavar='FILE.png',
                            help='Write a PNG picture instead.')
        parser.add_argument('--width', type=int,
                            help='Terminal columns (default: all).')
        parser.add_argument('--height', type=int, default=20,
                            help='Terminal rows (default 20).')
        return parser

    def take_action(self, args):
        points, unit = _Query.run(self.app, args)
        if not points:
            raise TelemetryError('no measures of %s in that time range'
                                 % args.meter)
        title = '%s%s (%s)' % (args.meter, ' on %s' % args.resource
                               if args.resource else '',
                               args.aggregation or 'mean'
                               if args.granularity or not args.resource
                               else 'raw')
        ylabel = '%s (%s)' % (args.meter, unit)
        if args.output:
            self._png(points, title, ylabel, args.output)
            self.app.stdout.write('wrote %s\n' % args.output)
        else:
            self._terminal(points, title, ylabel, args.width, args.height)
        return 0

    def _terminal(self, points, title, ylabel, width, height):
        import plotext
        plotext.clear_figure()
        plotext.date_form('Y-m-d H:M:S')
        plotext.plot([p.timestamp.strftime('%Y-%m-%d %H:%M:%S')
                      for p in points], [p.value for p in points],
                     marker='braille')
        plotext.title(title)
        plotext.xlabel('time (UTC)')
        plotext.ylabel(ylabel)
        plotext.plotsize(width, height)
        text = plotext.build()
        if not getattr(self.app.stdout, 'isatty', lambda: False)():
            text = plotext.uncolorize(text)
        self.app.stdout.write(text + '\n')

    @staticmethod
    def _png(points, title, ylabel, path):
        try:
            import matplotlib
        except ImportError:
            raise TelemetryError("writing a PNG needs matplotlib: pip "
                                 "install 'telemetry_lib[plot]'") from None
        matplotlib.use('Agg')
        from matplotlib import dates
        from matplotlib import pyplot
        fig, ax = pyplot.subplots(figsize=(10, 4), dpi=100)
        ax.plot([p.timestamp for p in points], [p.value for p in points],
                linewidth=1.5)
        ax.set_title(title)
        ax.set_xlabel('time (UTC)')
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_formatter(dates.DateFormatter('%H:%M:%S'))
        fig.autofmt_xdate()
        fig.tight_layout()
        try:
            fig.savefig(path, format='png')
        except OSError as exc:
            raise TelemetryError('cannot write %s: %s' % (path, exc)) \
                from None
        finally:
            pyplot.close(fig)


class MeterList(lister.Lister):
    """List the meters in the configured storage."""

    def take_action(self, args):
        storage = open_storage(self.app)
        try:
            return ('Meter', 'Type', 'Unit'), storage.meters()
        finally:
            storage.close()


class ResourceList(lister.Lister):
    """List the resources in the configured storage."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--meter', help='Only resources of this meter.')
        return parser

    def take_action(self, args):
        storage = open_storage(self.app)
        try:
            return ('Resource',), [(r,) for r in storage.resources(
                args.meter)]
        finally:
            storage.close()
