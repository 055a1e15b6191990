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
"""``sample collect`` and ``sample publish``."""

import datetime
import fnmatch
import sys
import time

from cliff import lister

from telemetry_lib import delivery
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.pollsters import loader as pollster_loader
from telemetry_lib.timeutils import UTC

COLLECT_FIELDS = ('name', 'type', 'unit', 'volume', 'resource_id',
                  'timestamp')


class SampleCollect(lister.Lister):
    """Run the installed pollsters now and print their samples.

    Without --once the pollsters run twice, a second apart, and the second
    run is printed, so utilisation meters have something to compare with.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--meter', default='*', metavar='GLOB',
                            help='Only meters matching this glob.')
        parser.add_argument('--once', action='store_true',
                            help='Poll once (utilisation may read 0).')
        return parser

    def take_action(self, args):
        pollsters = {name: p for name, p in pollster_loader.load_pollsters(
            self.app.conf).items()
            if any(fnmatch.fnmatchcase(m, args.meter) for m in p.meters)}
        skipped = {}
        for p in pollsters.values():
            p.start()
        try:
            if not args.once:
                self._poll(pollsters, args.meter, skipped)
                time.sleep(1.0)
            # Columns named as Sample's fields, so that
            # ``sample collect -f json | sample publish URL`` round-trips.
            rows = [(s.name, s.type, s.unit, s.volume, s.resource_id,
                     s.timestamp.isoformat())
                    for s in self._poll(pollsters, args.meter, skipped)]
        finally:
            deadline = lifecycle.Deadline(5.0)
            for p in pollsters.values():
                p.close(deadline.left())
        # What cannot run here (no libvirt, no endpoint ...) is said, not
        # fatal: the others' samples are what was asked for.
        for name, reason in sorted(skipped.items()):
            print('skipped %s: %s' % (name, reason), file=sys.stderr)
        if pollsters and len(skipped) == len(pollsters):
            raise TelemetryError('no pollster matching %r can run here'
                                 % args.meter)
        return (COLLECT_FIELDS, rows)

    @staticmethod
    def _poll(pollsters, pattern, skipped):
        now = datetime.datetime.now(UTC)
        samples = []
        for name, p in pollsters.items():
            if name in skipped:
                continue
            try:
                samples.extend(s for s in p.poll(now)
                               if fnmatch.fnmatchcase(s.name, pattern))
            except TelemetryError as exc:
                skipped[name] = str(exc).splitlines()[0][:300]
        return samples


class SamplePublish(lister.Lister):
    """Publish samples read as JSON from stdin through a publisher URL.

    Input: a JSON list (or JSON lines) of samples, in our field names
    (name, type, unit, volume, resource_id, ...; what ``sample collect -f
    json`` prints) or in Ceilometer's wire form (counter_name, ...).
    Delivery options in the URL apply. Prints what was published, retried
    and dropped, and why anything was not delivered; the exit code is 1 if
    anything was dropped, failed or left undelivered. ``--timeout`` bounds
    the whole delivery.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('url', metavar='URL',
                            help='Publisher URL, as in a pipeline.yaml '
                                 'sink, delivery options included.')
        parser.add_argument('--timeout', type=_seconds, default=30.0,
                            help='Seconds to deliver before giving up, '
                                 'connecting included (default 30).')
        return parser

    #: What it publishes, and the delivery kind.
    kind = 'samples'

    def read(self, text):
        """``(items, problems)`` from stdin's text."""
        return read_samples(text)

    def take_action(self, args):
        items, bad = self.read(self.app.stdin.read())
        for problem in bad:
            print('invalid %s: %s' % (self.kind[:-1], problem),
                  file=sys.stderr)
        d = delivery.build(self.app.conf, args.url, self.kind)
        if self.kind != 'samples' and not d.publisher.supports_events:
            raise TelemetryError('%s does not publish %s'
                                 % (d.publisher.url, self.kind))
        d.start()
        d.put(items)
        outcome = d.close(args.timeout)
        st = d.stats()
        self._failed = bool(bad or st.dropped_total or outcome.pending)
        if outcome.reason:
            print('not delivered: %s' % outcome.reason, file=sys.stderr)
        rows = [('read', len(items) + len(bad)), ('invalid', len(bad)),
                ('published', st.published), ('retried', st.retried),
                ('pending', outcome.pending)]
        rows += [('dropped: %s' % reason, n)
                 for reason, n in sorted(st.dropped.items())]
        return ('What', 'Count'), rows

    def run(self, parsed_args):
        self._failed = False
        status = super().run(parsed_args)
        return status or (1 if self._failed else 0)


def _seconds(text):
    import argparse
    import math
    try:
        value = float(text)
    except ValueError:
        value = float('nan')
    if not math.isfinite(value) or not 0 < value <= 86400:
        raise argparse.ArgumentTypeError('%r is not a number of seconds '
                                         'from 0 to 86400' % text)
    return value


def read_items(text):
    """The items of a JSON list, one JSON value, or JSON lines."""
    text = text.strip()
    if not text:
        return []
    try:
        data = jsoncodec.loads(text)
        return data if isinstance(data, list) else [data]
    except jsoncodec.DecodeError:
        try:
            return [jsoncodec.loads(line) for line in text.splitlines()
                    if line.strip()]
        except jsoncodec.DecodeError as exc:
            raise TelemetryError('input is neither JSON nor JSON lines: %s'
                                 % exc) from None


def parse_items(text, parse):
    """``(items, problems)``: ``parse`` of each item of ``text`` (see
    :func:`read_items`); an item it refuses is a problem, not an error.
    """
    items, problems = [], []
    for i, item in enumerate(read_items(text)):
        try:
            items.append(parse(item))
        except InvalidSample as exc:
            problems.append('item %d: %s' % (i, exc))
    return items, problems


def read_samples(text):
    """Samples from a JSON list or JSON lines; ``(samples, problems)``."""
    return parse_items(text, ceilometer.from_plain_dict)
