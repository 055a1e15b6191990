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
"""Aodh's ``time_constraints``: an alarm is evaluated only while one of
its constraints holds -- from a start its ``start`` cron expression gives
(in ``timezone``, UTC by default) for ``duration`` seconds.
"""

import datetime
import zoneinfo

import croniter

from telemetry_lib.timeutils import UTC


def within(constraints, now):
    """Whether ``now`` (aware) is inside one of ``constraints``; no
    constraint at all: always.
    """
    if not constraints:
        return True
    for tc in constraints:
        tz = zoneinfo.ZoneInfo(tc['timezone']) if tc.get('timezone') \
            else UTC
        local = now.astimezone(tz)
        # A start exactly now counts: croniter's get_prev is strictly
        # before, so ask from a microsecond later.
        start = croniter.croniter(
            tc['start'], local + datetime.timedelta(microseconds=1)
        ).get_prev(datetime.datetime)
        if start <= local <= start + datetime.timedelta(
                seconds=tc['duration']):
            return True
    return False
