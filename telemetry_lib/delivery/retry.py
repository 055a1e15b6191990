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
"""How long to wait before the next retry."""

import random


class RetryPolicy:
    """Exponential backoff with "equal jitter".

    The n-th retry (n >= 1) waits a random time between half and all of
    ``min(max_delay, initial_delay * 2 ** (n - 1))``: never zero, so a dead
    peer is not hammered, and spread out, so many agents that lost the same
    peer do not come back in step.

    :param max_retries: retries allowed per batch; -1 for no limit.
    :param rng: a ``random.Random`` (tests pass a seeded one).
    """

    def __init__(self, initial_delay, max_delay, max_retries, rng=None):
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.max_retries = max_retries
        self._rng = rng or random.Random()

    def allows(self, retry_number):
        """Whether retry number ``retry_number`` (1-based) may happen."""
        return self.max_retries < 0 or retry_number <= self.max_retries

    def delay(self, retry_number, requested=None):
        """Seconds to wait before retry ``retry_number``.

        :param requested: what the peer asked for (``Retry-After``); honoured
            up to ``max_delay``.
        """
        if requested is not None and requested >= 0:
            return min(requested, self.max_delay)
        cap = min(self.max_delay,
                  self.initial_delay * (2 ** min(retry_number - 1, 62)))
        return cap / 2 + self._rng.random() * cap / 2
