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
"""What an alarm is, what an evaluation says, and what an action carries.

States and the notification body are Aodh's, so a webhook written for
Aodh's REST notifier reads ours unchanged.
"""

import dataclasses
import datetime
import typing

from telemetry_lib.sample import new_message_id

OK = 'ok'
ALARM = 'alarm'
INSUFFICIENT_DATA = 'insufficient data'
STATES = (OK, ALARM, INSUFFICIENT_DATA)
SEVERITIES = ('low', 'moderate', 'critical')


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A rule's verdict: the state it points to (``None``: no change) and
    why, with the values that decided it.
    """

    state: typing.Optional[str]
    reason: str
    reason_data: dict = dataclasses.field(default_factory=dict)
    #: What an alarm with ``repeat_actions`` announces when this verdict
    #: changes nothing (``state`` ``None``): Aodh's evaluators re-announce
    #: the current state, with their reason, where a verdict stays silent
    #: without it. ``None``: nothing.
    repeat: typing.Optional['Evaluation'] = None


@dataclasses.dataclass(frozen=True)
class Transition:
    """An alarm's state change (or, with ``repeat_actions``, a repeat)."""

    alarm: str
    previous: str
    current: str
    reason: str
    reason_data: dict
    timestamp: datetime.datetime
    severity: str = 'low'
    alarm_id: str = ''


class Action(typing.NamedTuple):
    """One notification to one action URL: an item of an action delivery.

    ``body`` is Aodh's REST notifier body (``alarm_name``, ``alarm_id``,
    ``severity``, ``previous``, ``current``, ``reason``, ``reason_data``);
    ``id`` makes a retried or spooled action recognisable.
    """

    id: str
    body: dict

    @classmethod
    def from_transition(cls, transition):
        return cls(new_message_id(), {
            'alarm_name': transition.alarm,
            'alarm_id': transition.alarm_id,
            'severity': transition.severity,
            'previous': transition.previous,
            'current': transition.current,
            'reason': transition.reason,
            'reason_data': transition.reason_data,
            'timestamp': transition.timestamp.isoformat(),
        })
