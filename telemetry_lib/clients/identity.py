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
"""Project and user names from Keystone, for samples that carry only ids.

Ceilometer 24+ fills ``project_name`` and ``user_name``
(``identity_name_discovery``) and its consumers group by them (RHOSO's
dashboards, CloudKitty's rating rules, Watcher's Prometheus datasource).
:class:`NameCache` answers from memory only, so a poll never waits on
Keystone: a name not known yet is looked up by one background thread
(through the keystoneauth1 session of ``[service_credentials]``) and filled
in the samples of a later poll. Bounded and counted: at most
``max_entries`` names, each kept ``ttl`` seconds (a name Keystone does not
know, ``negative_ttl``); at most ``queue_size`` lookups waiting (more are
counted and asked again later); every request bounded by ``timeout``; a
failure (Keystone down) is counted and the id asked again after
``negative_ttl``.
"""

import collections
import logging
import queue
import threading
import time

from telemetry_lib import lifecycle
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

_MISSING = object()


class NameCache(lifecycle.Component):
    """``names(project_id, user_id) -> (project_name, user_name)``.

    :param session_factory: ``f() -> keystoneauth1 Session``, called once
        by :meth:`start`.
    """

    def __init__(self, session_factory, ttl=600.0, negative_ttl=60.0,
                 max_entries=10000, timeout=5.0, queue_size=1000,
                 interface='public', clock=time.monotonic):
        self._session_factory = session_factory
        self.ttl, self.negative_ttl = ttl, negative_ttl
        self.max_entries = max_entries
        self.timeout = timeout
        self.interface = interface
        self._clock = clock
        self._entries = collections.OrderedDict()   # (kind, id) -> (name, t)
        self._asked = set()
        self._lock = threading.Lock()
        self._queue = queue.Queue(queue_size)
        self._thread = None
        self._session = None
        self._stop = threading.Event()
        self._problems = ratelog.RateLimitedLog(LOG, 'identity names')
        self.counts = collections.Counter()

    def start(self):
        if self._thread is not None:
            return
        self._session = self._session_factory()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='identity names')
        self._thread.start()

    def close(self, timeout=None):
        self._stop.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        thread, self._thread = self._thread, None
        if thread is not None and lifecycle.Deadline(timeout).join([thread]):
            return lifecycle.Outcome.unfinished(
                'a Keystone name lookup was still running')
        return lifecycle.DONE

    # -- answering, from memory only ---------------------------------------

    def names(self, project_id, user_id):
        return (self._name('projects', project_id),
                self._name('users', user_id))

    def _name(self, kind, ident):
        if not ident:
            return None
        key = (kind, ident)
        now = self._clock()
        with self._lock:
            found = self._entries.get(key, _MISSING)
            if found is not _MISSING and found[1] > now:
                self._entries.move_to_end(key)
                self.counts['hits'] += 1
                return found[0]
            self.counts['misses'] += 1
            if key in self._asked:
                return None
            self._asked.add(key)
        try:
            self._queue.put_nowait(key)
        except queue.Full:
            with self._lock:
                self._asked.discard(key)
                self.counts['queue_full'] += 1
        return None

    def hit_ratio(self):
        with self._lock:
            total = self.counts['hits'] + self.counts['misses']
            return self.counts['hits'] / total if total else 0.0

    # -- looking up, in the background -------------------------------------

    def _run(self):
        while not self._stop.is_set():
            key = self._queue.get()
            if key is None:
                return
            name, ttl = self._lookup(*key)
            with self._lock:
                self._asked.discard(key)
                self._entries[key] = (name, self._clock() + ttl)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)

    def _lookup(self, kind, ident):
        """``(name or None, seconds to keep it)``."""
        self.counts['lookups'] += 1
        try:
            resp = self._session.get(
                '/%s/%s' % (kind, ident), raise_exc=False,
                timeout=self.timeout,
                endpoint_filter={'service_type': 'identity',
                                 'interface': self.interface,
                                 'version': (3, 0)})
        except Exception as exc:
            self.counts['failures'] += 1
            self._problems.problem('failed', 'Keystone lookup of %s %s '
                                   'failed: %s: %s', kind[:-1], ident,
                                   type(exc).__name__, str(exc)[:200])
            return None, self.negative_ttl
        if resp.status_code == 404:
            self.counts['not_found'] += 1
            return None, self.negative_ttl
        if resp.status_code != 200:
            self.counts['failures'] += 1
            self._problems.problem('status', 'Keystone answered %d to the '
                                   'lookup of %s %s', resp.status_code,
                                   kind[:-1], ident)
            return None, self.negative_ttl
        try:
            name = resp.json()[kind[:-1]]['name']
        except (ValueError, KeyError, TypeError):
            self.counts['failures'] += 1
            return None, self.negative_ttl
        self.counts['found'] += 1
        return (name if isinstance(name, str) else None), self.ttl

    def fill(self, samples):
        """``samples`` with the names this cache knows filled in (those
        that have them, or no id, are left as they are).
        """
        out = []
        for s in samples:
            if (s.project_id and not s.project_name) or (
                    s.user_id and not s.user_name):
                pname, uname = self.names(s.project_id, s.user_id)
                if (pname and not s.project_name) or (
                        uname and not s.user_name):
                    s = s.replace(project_name=s.project_name or pname,
                                  user_name=s.user_name or uname)
                else:
                    self.counts['samples_without_names'] += 1
            out.append(s)
        return out
