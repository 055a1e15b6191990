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
"""Logging at a bounded rate, for trouble that repeats.

A peer that stays down fails every batch; logging each failure floods the
log, logging the first one only hides that it lasts. These loggers say the
first occurrence at once, then at most once per ``interval`` with what
happened since, for as long as it goes on. They live on the lowest floor so
publishers, clients and the delivery core can all use them.
"""

import collections
import logging
import time


class RateLimitedLog:
    """Each kind of message at most once per ``interval`` seconds.

    :param name: prefixed to every message (a publisher's masked URL).
    :param clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, logger, name, interval=60.0, clock=time.monotonic):
        self._log = logger
        self._name = name
        self._interval = interval
        self._clock = clock
        self._last = {}
        self._since = collections.Counter()

    def _due(self, kind):
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            return False
        self._last[kind] = now
        return True

    def dropped(self, reason, count, detail=''):
        """Count a loss; say it now or with the next one that is due."""
        self._since[reason] += count
        if not self._due(('dropped', reason)):
            return
        total, self._since[reason] = self._since[reason], 0
        self._log.warning('%s: dropped %d item(s) (%s)%s', self._name,
                          total, reason, ': %s' % detail if detail else '')

    def problem(self, kind, message, *args, level=logging.WARNING):
        if self._due(kind):
            self._log.log(level, '%s: ' + message, self._name, *args)


class FailureLog:
    """Tells how a streak of failures goes: when it starts, while it lasts
    (at most once per ``interval``, with the count of failed attempts since
    it began) and when it ends.
    """

    def __init__(self, logger, name, interval=60.0, clock=time.monotonic):
        self._log = logger
        self._name = name
        self._interval = interval
        self._clock = clock
        self.since = None           # monotonic start of the streak
        self.attempts = 0
        self.last_error = None
        self._last_said = None

    def failed(self, error, retrying):
        now = self._clock()
        self.attempts += 1
        self.last_error = error
        then = ('retrying' if retrying else 'not retrying')
        if self.since is None:
            self.since = self._last_said = now
            self._log.warning('%s: publish failed (%s): %s', self._name,
                              then, error)
        elif now - self._last_said >= self._interval:
            self._last_said = now
            self._log.warning('%s: still failing after %.0fs and %d failed '
                              'attempt(s) (%s): %s', self._name,
                              now - self.since, self.attempts, then, error)

    def succeeded(self):
        if self.since is None:
            return
        self._log.info('%s: publishing again after %.0fs and %d failed '
                       'attempt(s)', self._name, self._clock() - self.since,
                       self.attempts)
        self.since = self._last_said = self.last_error = None
        self.attempts = 0

    def failing_for(self):
        """Seconds the current streak has lasted; 0 when none."""
        return 0.0 if self.since is None else self._clock() - self.since
