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
"""``notification convert`` and ``event publish``."""

import json

from cliff import command

from telemetry_lib.agent.service import find_config_file
from telemetry_lib.cmd.commands.sample import parse_items
from telemetry_lib.cmd.commands.sample import read_items
from telemetry_lib.cmd.commands.sample import SamplePublish
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec
from telemetry_lib.notification import converter


class NotificationConvert(command.Command):
    """Convert notifications with the definition files and print what they
    yield: the operator's tool to write and debug a definition.

    FILE holds one notification, a JSON list of them, or JSON lines, each
    as oslo.messaging delivers it (event_type, publisher_id, payload, ctxt,
    metadata: {message_id, timestamp}), as the message decoded from the bus
    (message_id, timestamp, ``_context_*`` at the top level, as Nova's
    documentation shows them) or as the oslo envelope on the bus
    (``{"oslo.message": "..."}``). Prints JSON: per notification its
    samples, event and anything left out; exit code 1 when one could not
    be converted.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('file', metavar='FILE',
                            help='Notification JSON ("-" for stdin).')
        parser.add_argument('--priority', default='info',
                            help='Priority they came with (default info).')
        return parser

    def take_action(self, args):
        conv = converter.Converter.from_conf(self.app.conf,
                                             find_config_file)
        if args.file == '-':
            text = self.app.stdin.read()
        else:
            try:
                with open(args.file, encoding='utf-8') as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise TelemetryError('%s: %s' % (args.file, getattr(
                    exc, 'strerror', None) or exc)) from None
        name = 'stdin' if args.file == '-' else args.file
        try:
            items = read_items(text)
        except TelemetryError as exc:
            raise TelemetryError('%s: %s' % (name, exc)) from None
        failed = False
        out = []
        for i, body in enumerate(items):
            try:
                body = _unwrap(body)
                result = conv.convert(body, args.priority.lower())
                entry = {
                    'notification': i, 'event_type': body['event_type'],
                    'samples': [ceilometer.sample_to_wire(s)
                                for s in result.samples],
                    'events': ceilometer.events_to_wire(result.events),
                    'left_out': ['%s: %s' % p for p in result.problems]}
                # Printable, or it is this notification's error.
                json.dumps(entry, default=str)
            except (InvalidSample, RecursionError, ValueError,
                    TypeError) as exc:
                failed = True
                reason = (str(exc) if isinstance(exc, InvalidSample)
                          else '%s: %s' % (type(exc).__name__, exc))
                out.append({'notification': i, 'error': '%s: notification '
                            '%d: %s' % (name, i, reason[:300])})
                continue
            out.append(entry)
        self.app.stdout.write(json.dumps(out, indent=1, default=str) + '\n')
        return 1 if failed else 0


def _unwrap(body):
    """A notification as oslo.messaging hands it to a listener, from the
    oslo 2.0 envelope as it sits on the bus, or from the message decoded
    from it (``message_id``, ``timestamp`` and ``_context_*`` at the top
    level, as in Nova's documentation and Ceilometer's test fixtures).
    """
    if not isinstance(body, dict):
        return body
    msg = body
    if isinstance(body.get('oslo.message'), str):
        try:
            msg = jsoncodec.loads(body['oslo.message'])
        except jsoncodec.DecodeError:
            return body
        if not isinstance(msg, dict):
            return body
    elif 'metadata' in body or 'message_id' not in body:
        return body
    ctxt = {k[len('_context_'):]: v for k, v in msg.items()
            if k.startswith('_context_')}
    return {'event_type': msg.get('event_type'),
            'publisher_id': msg.get('publisher_id'),
            'payload': msg.get('payload'), 'ctxt': ctxt,
            'metadata': {'message_id': msg.get('message_id'),
                         'timestamp': msg.get('timestamp')}}


class EventPublish(SamplePublish):
    """Publish events read as JSON from stdin through a publisher URL.

    Input: a JSON list (or JSON lines) of events in Ceilometer's form
    (event_type, message_id, generated, traits: [[name, dtype, value]],
    raw) -- what ``notification convert`` prints under "events". As
    ``sample publish``: prints what was published and dropped; exit code 1
    if anything was not delivered.
    """

    kind = 'events'

    def read(self, text):
        return parse_items(text, ceilometer.event_from_wire)
