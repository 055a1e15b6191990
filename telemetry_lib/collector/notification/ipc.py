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
"""Ceilometer's polling IPC, the receiving side.

A Ceilometer polling agent (compute, central, ipmi) does not publish: it
sends what it polled to the notification agent as a ``sample``-priority
notification with event type ``telemetry.polling`` and payload
``{"samples": [<metering messages>]}`` (Ceilometer's
``polling/manager.py``; its ``TelemetryIpc`` endpoint turns them back into
samples, ``user_name`` and ``project_name`` optional). Here each message
becomes a :class:`~telemetry_lib.Sample` unchanged -- id, timestamp,
metadata and names -- after its signature is verified when a telemetry
secret is set (Ceilometer's ``verify_signature``: an unsigned or tampered
message is dropped and counted, never published).
"""

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.formats import ceilometer

EVENT_TYPE = 'telemetry.polling'


def samples_of(body, secret=None):
    """``(samples, problems)`` of one ``telemetry.polling`` notification;
    ``problems`` are ``(kind, detail)``: ``bad_signature`` or
    ``bad_sample`` for a message left out.

    :raises InvalidSample: when the payload carries no list of samples
        (the notification is poison).
    """
    payload = body.get('payload')
    messages = payload.get('samples') if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        raise InvalidSample('%s: payload without a "samples" list'
                            % EVENT_TYPE)
    samples, problems = [], []
    for i, msg in enumerate(messages):
        if secret and not (isinstance(msg, dict)
                           and ceilometer.verify_signature(msg, secret)):
            problems.append(('bad_signature', 'sample %d (%s): its '
                             'signature does not verify with the telemetry '
                             'secret' % (i, _name(msg))))
            continue
        try:
            samples.append(ceilometer.sample_from_wire(msg))
        except InvalidSample as exc:
            problems.append(('bad_sample', 'sample %d: %s' % (i, exc)))
    return samples, problems


def _name(msg):
    name = msg.get('counter_name') if isinstance(msg, dict) else None
    return name if isinstance(name, str) else '?'
