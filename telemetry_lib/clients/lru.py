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
"""A bounded LRU with expiry, for what drivers remember about a peer's
objects (attribute hashes, metric ids).
"""

import collections
import threading
import time


class AttributeCache:
    """Bounded LRU of ``resource id -> attribute hash`` with expiry; every
    operation is O(1).
    """

    def __init__(self, size=10000, ttl=3600.0, clock=time.monotonic):
        self._data = collections.OrderedDict()
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            value, stamp = item
            if self._clock() - stamp > self._ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def set(self, key, value):
        with self._lock:
            self._data[key] = (value, self._clock())
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def discard(self, key):
        with self._lock:
            self._data.pop(key, None)
