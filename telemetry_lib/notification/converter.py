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
"""Notifications → samples and events, by the definition files.

A notification here is the mapping oslo.messaging hands a batch listener
(and Ceilometer's endpoints): ``event_type``, ``publisher_id``, ``payload``,
``ctxt`` and ``metadata`` with ``message_id`` and ``timestamp``.
"""

import dataclasses
import os

from oslo_config import cfg

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.notification import events as events_mod
from telemetry_lib.notification import fields as fields_mod
from telemetry_lib.notification import ipc
from telemetry_lib.notification import meters as meters_mod
from telemetry_lib.publisher import base as publisher_base

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'data')

OPTS = [
    cfg.MultiStrOpt('meter_definitions_dirs',
                    default=['/etc/telemetry_lib/meters.d',
                             os.path.join(DATA_DIR, 'meters.d')],
                    help="Directories of meter definition files "
                         "(Ceilometer's meters.d format), each .yaml file in "
                         'name order; a meter defined again is skipped.'),
    cfg.StrOpt('event_definitions_file', default='event_definitions.yaml',
               help="Event definitions (Ceilometer's format). A relative "
                    'name is looked up in the config directories, then '
                    "among the package's defaults."),
    cfg.BoolOpt('drop_unmatched_notifications', default=False,
                help='Make no event of a notification no definition '
                     'matches (otherwise it gets the default traits).'),
    cfg.ListOpt('store_raw', default=[],
                help='Priorities (info, error …) whose notifications are '
                     'kept whole in their event.'),
    cfg.ListOpt('reserved_metadata_namespace', default=['metering.'],
                help='Prefixes of instance metadata keys copied into a '
                     "sample's user_metadata."),
    cfg.ListOpt('reserved_metadata_keys', default=[],
                help='Instance metadata keys copied into user_metadata '
                     'besides those under the prefixes.'),
    cfg.IntOpt('reserved_metadata_length', default=256, min=1,
               help='Longest user_metadata string value kept.'),
]
GROUP = 'notification'


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


@dataclasses.dataclass
class Result:
    """What one notification gave."""

    samples: list
    events: list
    #: ``(kind, detail)`` for each thing left out: ``bad_sample`` (a
    #: sample the definition could not fill), ``bad_trait``.
    problems: list


class Converter:
    """Converts notifications with a set of meter and event definitions.

    Thread-safe once built. The definitions matching an event type are
    found once per event type and remembered (a bounded number of types).

    :param meters: :class:`~.meters.MeterDefinition` list.
    :param events: :class:`~.events.EventDefinition` list, in the order
        they are tried; empty for no events.
    """

    #: Distinct event types remembered; past it, matching is redone.
    CACHE_TYPES = 4096

    def __init__(self, meters, events, files=(), secret=None):
        self.meters = list(meters)
        self.events = list(events)
        self.files = list(files)
        #: The telemetry secret: Ceilometer polling agents' samples
        #: (``telemetry.polling``) must carry its signature when set.
        self.secret = secret
        self._meters_of = {}
        self._event_of = {}

    @classmethod
    def from_conf(cls, conf, find_file=None, samples=True, events=True):
        """Load the files ``conf`` names.

        :param find_file: ``f(conf, name) -> path`` for the event file.
        :raises ConfigError: naming the file and line.
        """
        register_opts(conf)
        opts = conf.notification
        compiler = fields_mod.Compiler()
        meters, files = [], []
        if samples:
            meters, files = meters_mod.load_dirs(
                opts.meter_definitions_dirs, compiler,
                meters_mod.UserMetadata(opts.reserved_metadata_namespace,
                                        opts.reserved_metadata_keys,
                                        opts.reserved_metadata_length))
        defs = []
        if events:
            path = (find_file(conf, opts.event_definitions_file)
                    if find_file else opts.event_definitions_file)
            defs = events_mod.load_file(
                path, compiler, [p.lower() for p in opts.store_raw],
                opts.drop_unmatched_notifications)
            files.append(path)
        conf.register_opts(publisher_base.OPTS, group=publisher_base.GROUP)
        return cls(meters, defs, files, secret=conf[
            publisher_base.GROUP].telemetry_secret or None)

    def _lookup(self, cache, event_type, find):
        found = cache.get(event_type)
        if found is None:
            found = find(event_type)
            if len(cache) >= self.CACHE_TYPES:
                cache.clear()
            cache[event_type] = found
        return found

    def meters_for(self, event_type):
        return self._lookup(self._meters_of, event_type, lambda t: tuple(
            d for d in self.meters if d.matches(t)))

    def event_for(self, event_type):
        return self._lookup(self._event_of, event_type, lambda t: next(
            (d for d in self.events if d.matches(t)), False))

    def convert(self, body, priority='info', samples=True, events=True):
        """The samples and events of one notification.

        :raises InvalidSample: when ``body`` is no notification (not a
            mapping, no event type, no message id or timestamp).
        """
        check(body)
        if body['event_type'] in ipc.EVENT_TYPES:
            # Samples or events another Ceilometer agent already made (its
            # polling agents, its notifier publisher): they go to the
            # pipelines as they are, and make no other event.
            found, evs, problems = ipc.convert(body, self.secret)
            return Result(found if samples else [], evs if events else [],
                          problems)
        try:
            return self._convert(body, priority, samples, events)
        except RecursionError:
            # A payload nested a thousand levels deep: poison, not a
            # crash of whoever converts it.
            raise InvalidSample('%s: the notification is nested too deeply '
                                'to convert' % body['event_type']) from None

    def _convert(self, body, priority, samples, events):
        event_type = body['event_type']
        problems = []
        out = []
        if samples:
            index = 0
            memo = {}
            for d in self.meters_for(event_type):
                try:
                    rows = d.to_dicts(body, memo)
                except InvalidSample as exc:
                    problems.append(('bad_sample', str(exc)))
                    continue
                except Exception as exc:
                    # A payload the definition's paths choke on (a number
                    # where a list was expected …): this meter only.
                    problems.append(('definition_failed', 'meter %r: %s: %s'
                                     % (d.name, type(exc).__name__, exc)))
                    continue
                for row in rows:
                    try:
                        out.append(meters_mod.build_sample(row, body, index))
                    except InvalidSample as exc:
                        problems.append(('bad_sample', str(exc)))
                    index += 1
        evs = []
        if events:
            d = self.event_for(event_type)
            if d:
                evs.append(d.to_event(body, priority, problems))
        return Result(out, evs, problems)

    def describe(self):
        return '%d meter and %d event definitions from %s' % (
            len(self.meters), len(self.events), ', '.join(self.files))


def check(body):
    """Raise :class:`InvalidSample` unless ``body`` has the fields every
    conversion needs.
    """
    if not isinstance(body, dict):
        raise InvalidSample('a notification must be a mapping, not %s'
                            % type(body).__name__)
    event_type = body.get('event_type')
    if not isinstance(event_type, str) or not event_type:
        raise InvalidSample('notification without an event_type')
    meta = body.get('metadata')
    if not isinstance(meta, dict) or not isinstance(
            meta.get('message_id'), str) or not meta.get('timestamp'):
        raise InvalidSample('%s: notification without metadata message_id '
                            'and timestamp' % event_type)
