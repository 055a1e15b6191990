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
"""Time, the one way: the UTC zone and conversion of what callers and
wires give as a time (aware or naive datetimes, ISO 8601 text, POSIX
seconds) to an aware UTC datetime.
"""

import datetime

from telemetry_lib.exceptions import InvalidSample

UTC = datetime.timezone.utc


def to_utc_datetime(value, field='timestamp'):
    """Return ``value`` as an aware UTC datetime.

    Accepts an aware or naive (taken as UTC) datetime, an ISO 8601 string
    (with or without a zone, ``Z`` included) or POSIX seconds.
    """
    if isinstance(value, datetime.datetime):
        if value.tzinfo is UTC:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except (OverflowError, ValueError):
            # 0001-01-01T00:00+01:00 is before the year 1 in UTC.
            raise InvalidSample('%s %s is out of range in UTC'
                                % (field, value.isoformat())) from None
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(('Z', 'z')):
            text = text[:-1] + '+00:00'
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except (ValueError, OverflowError):
            raise InvalidSample('%s %r is not an ISO 8601 date and time'
                                % (field, value)) from None
        return to_utc_datetime(parsed, field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidSample('%s %r is out of range' % (field, value)) \
                from None
    raise InvalidSample('%s must be a datetime, an ISO 8601 string or POSIX '
                        'seconds, not %s' % (field, type(value).__name__))
