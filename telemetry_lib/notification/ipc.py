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
"""What other Ceilometer agents send over the bus: samples and events
already made, to be taken as they are rather than converted.

* **Polling IPC.** A Ceilometer polling agent (compute, central, ipmi) does
  not publish: it sends what it polled to the notification agent as a
  ``sample``-priority notification with event type ``telemetry.polling``
  and payload ``{"samples": [<metering messages>]}`` (Ceilometer's
  ``polling/manager.py``; its ``TelemetryIpc`` endpoint turns them back
  into samples, ``user_name`` and ``project_name`` optional).
* **The notifier publisher.** Ceilometer's ``notifier://`` publisher (and
  ours) sends a ``metering`` notification whose payload is the list of
  metering messages, on the ``metering`` topic, and an ``event``
  notification whose payload is the list of serialised events, on the
  ``event`` topic -- what Ceilometer's collector used to receive.

Each message becomes a :class:`~telemetry_lib.Sample` (or
:class:`~telemetry_lib.Event`) unchanged -- id, timestamp, metadata, names
-- after its signature is verified when a telemetry secret is set
(Ceilometer's ``verify_signature``: an unsigned or tampered message is
dropped and counted, never published).
"""

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.formats import ceilometer

EVENT_TYPE = 'telemetry.polling'
#: The event types whose payload is made of finished samples or events.
EVENT_TYPES = frozenset((EVENT_TYPE, 'metering', 'event'))


def convert(body, secret=None):
    """``(samples, events, problems)`` of one notification of
    :data:`EVENT_TYPES`; ``problems`` are ``(kind, detail)``:
    ``bad_signature``, ``bad_sample`` or ``bad_event`` for a message left
    out.

    :raises InvalidSample: when the payload is not the list it must be
        (the notification is poison).
    """
    event_type = body['event_type']
    payload = body.get('payload')
    if event_type == EVENT_TYPE:
        messages = payload.get('samples') if isinstance(payload, dict) \
            else None
        where = 'payload without a "samples" list'
    else:
        messages = payload
        where = 'payload is not a list of %s messages' % event_type
    if not isinstance(messages, list):
        raise InvalidSample('%s: %s' % (event_type, where))
    events = event_type == 'event'
    parse = ceilometer.event_from_wire if events else \
        ceilometer.sample_from_wire
    found, problems = [], []
    for i, msg in enumerate(messages):
        if secret and not (isinstance(msg, dict)
                           and ceilometer.verify_signature(msg, secret)):
            problems.append(('bad_signature', '%s %d (%s): its signature '
                             'does not verify with the telemetry secret'
                             % ('event' if events else 'sample', i,
                                _name(msg))))
            continue
        try:
            found.append(parse(msg))
        except InvalidSample as exc:
            problems.append(('bad_event' if events else 'bad_sample',
                             '%s %d: %s' % ('event' if events else 'sample',
                                            i, exc)))
    return ([], found, problems) if events else (found, [], problems)


def samples_of(body, secret=None):
    """``(samples, problems)`` of a ``telemetry.polling`` or ``metering``
    notification (see :func:`convert`).
    """
    samples, _, problems = convert(body, secret)
    return samples, problems


def _name(msg):
    if not isinstance(msg, dict):
        return '?'
    name = msg.get('counter_name', msg.get('event_type'))
    return name if isinstance(name, str) else '?'
