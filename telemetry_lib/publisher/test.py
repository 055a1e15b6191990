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
"""``test://``: keeps what it is given in memory.

A real entry point, so tests exercise the real loading path. The URL can make
it fail, to drive the delivery core: ``test://?fail=retryable&fail_times=3``
fails the first three calls with a retryable error (``permanent`` for a
permanent one; ``fail_times=-1`` fails for ever).
"""

import threading

from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base


class TestPublisher(base.Publisher):
    """Records samples and events in :attr:`samples` and :attr:`events`."""

    __test__ = False  # not a test case, whatever pytest thinks of the name
    url_options = frozenset(('fail', 'fail_times'))
    supports_events = True

    def __init__(self, conf, url):
        super().__init__(conf, url)
        self._fail = url.get_str('fail', None,
                                 choices=(None, 'retryable', 'permanent'))
        self._fail_left = url.get_int('fail_times', 0 if self._fail is None
                                      else -1, minimum=-1)
        self._lock = threading.Lock()
        self.samples = []
        self.events = []
        self.calls = 0
        self.closed = False

    def _maybe_fail(self):
        with self._lock:
            self.calls += 1
            if self._fail_left == 0:
                return
            if self._fail_left > 0:
                self._fail_left -= 1
        if self._fail == 'permanent':
            raise PermanentError('test publisher told to fail')
        raise RetryableError('test publisher told to fail')

    def publish_samples(self, samples):
        self._maybe_fail()
        with self._lock:
            self.samples.extend(samples)

    def publish_events(self, events):
        self._maybe_fail()
        with self._lock:
            self.events.extend(events)

    def close(self, timeout=None):
        self.closed = True
        return lifecycle.DONE
