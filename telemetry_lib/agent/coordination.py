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
"""Sharing the resources of a polling source among agents, with tooz.

Agents that run the same source (a list of URLs to probe, of endpoints to
poll) join one tooz group per source and pollster, and each polls only
the resources its member owns on the group's hash ring (tooz's
partitioner: md5 of the resource's text, the same in every process and
after every restart, never Python's salted ``hash()``). An agent that
dies stops heartbeating; once the backend forgets it (its membership
timeout: ``membership_timeout`` in a Redis URL, 30 s by default), the
others take its share at their next poll. A restarted agent joins again
as a new member.

No ``[coordination] backend_url``: every agent polls everything. The
backend unreachable: this agent polls everything too (duplicates rather
than gaps), says so once a minute, and tries again.
"""

import logging
import os
import socket
import threading
import time
import uuid

from oslo_config import cfg

from telemetry_lib import lifecycle
from telemetry_lib.masking import redact
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

GROUP = 'coordination'
OPTS = [
    cfg.StrOpt('backend_url', secret=True,
               help='tooz backend URL, e.g. redis://127.0.0.1:6379?'
                    'membership_timeout=10 (the driver, such as redis, '
                    'must be installed). Empty: no partitioning, every '
                    'agent polls every resource.'),
    cfg.FloatOpt('heartbeat_interval', default=1.0, min=0.1, max=60,
                 help="Seconds between this agent's heartbeats; keep it "
                      "well under the backend's membership timeout."),
    cfg.FloatOpt('retry_interval', default=10.0, min=0.1, max=3600,
                 help='Seconds between attempts to reach the backend '
                      'while it is down.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class Coordinator(lifecycle.Component):
    """One tooz member for one agent.

    Construction does no I/O; :meth:`start` starts a thread that does all
    of it -- connecting (tooz's Redis driver retries for a minute before
    it gives up), heartbeats, joining groups, reading their members --
    so :meth:`share`, called from pollster threads, never waits on the
    backend longer than ``join_timeout``: it reads the last ring seen.
    """

    def __init__(self, conf, member_id=None, clock=time.monotonic,
                 join_timeout=2.0):
        register_opts(conf)
        opts = conf[GROUP]
        self.url = opts.backend_url
        self.heartbeat_interval = opts.heartbeat_interval
        self.retry_interval = opts.retry_interval
        self.join_timeout = join_timeout
        self.member_id = (member_id or '%s-%d-%s' % (
            socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8]))
        self._me = self.member_id.encode()
        self._clock = clock
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._coord = None
        self._wanted = set()
        self._joined = set()
        self._rings = {}            # group -> (members frozenset, HashRing)
        self._next_try = 0.0
        self._stop = threading.Event()
        self._thread = None
        self._log = ratelog.RateLimitedLog(LOG, 'coordination')
        self.stats = {}             # group -> (members, owned, total)
        self.fallbacks = 0          # polls that took everything
        self.errors = 0
        #: Times a group's members changed after it first had some: each
        #: moves resources from one agent to another.
        self.ring_changes = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name='coordination')
        self._thread.start()
        return self

    def close(self, timeout=None):
        """Leave every group (the others take over at their next beat
        rather than after the membership timeout) and close, within
        ``timeout`` seconds: tooz's calls take no timeout, so a backend
        that hangs is left to a daemon thread.
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def left(default):
            return default if deadline is None else max(
                0.0, deadline - time.monotonic())
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(left(self.heartbeat_interval + 5))
        coord, self._coord = self._coord, None
        if coord is None:
            return lifecycle.DONE
        groups = list(self._joined)

        def leave():
            for group in groups:
                try:
                    coord.leave_group(group).get()
                except Exception:   # leaving is a courtesy; expiry works
                    pass
            try:
                coord.stop()
            except Exception:
                pass
        worker = threading.Thread(target=leave, daemon=True,
                                  name='coordination-stop')
        worker.start()
        worker.join(left(None))
        if worker.is_alive():
            LOG.warning('coordination: leaving the groups did not finish '
                        'within %.1fs; left to finish in the background',
                        timeout)
            return lifecycle.Outcome.unfinished(
                'leaving the coordination groups did not finish in time')
        return lifecycle.DONE

    def _run(self):
        while not self._stop.is_set():
            try:
                self._beat()
            except Exception as exc:    # tooz raises its own and drivers'
                self._failed(exc)
            with self._changed:
                self._changed.wait(self.heartbeat_interval)

    def _beat(self):
        if self._coord is None:
            if self._clock() < self._next_try:
                return
            from tooz import coordination
            coord = coordination.get_coordinator(self.url, self._me)
            coord.start(start_heart=False)
            if self._stop.is_set():
                # stop() ran while tooz was connecting (its Redis driver
                # retries for a minute): nobody else will close this one.
                coord.stop()
                return
            self._coord = coord
            LOG.info('coordination: member %s of %s', self.member_id,
                     redact(self.url))
        coord = self._coord
        coord.heartbeat()
        with self._lock:
            # share() adds to it from pollster threads.
            wanted = sorted(self._wanted)
        for group in wanted:
            if group not in self._joined:
                self._join(coord, group)
            members = frozenset(coord.get_members(group).get())
            if self._me not in members:
                # Expired while we could not beat: join again.
                self._joined.discard(group)
                self._join(coord, group)
                members = frozenset(coord.get_members(group).get())
            current = self._rings.get(group)
            if current is None or current[0] != members:
                if current is not None:
                    self.ring_changes += 1
                from tooz import hashring
                self._rings[group] = (members, hashring.HashRing(members))
        with self._changed:
            self._changed.notify_all()

    def _join(self, coord, group):
        from tooz import coordination
        try:
            coord.join_group_create(group, capabilities={'weight': 1})
        except coordination.MemberAlreadyExist:
            pass
        self._joined.add(group)

    def _failed(self, exc):
        if self._stop.is_set():
            # A failure that ends after stop() (tooz gave up connecting) is
            # no news: a stopped member says nothing more.
            return
        self.errors += 1
        self._next_try = self._clock() + self.retry_interval
        self._log.problem('down', 'backend %s: %s: %s; polling every '
                          'resource until it is back', redact(self.url),
                          type(exc).__name__, str(exc)[:200],
                          level=logging.ERROR)
        coord, self._coord = self._coord, None
        self._joined.clear()
        self._rings.clear()
        if coord is not None:
            try:
                coord.stop()
            except Exception:       # already broken: nothing to release
                pass

    # -- partitioning --------------------------------------------------------

    def share(self, group, resources):
        """The part of ``resources`` this agent polls for ``group``."""
        resources = list(resources)
        key = group.encode()
        with self._changed:
            if key not in self._wanted:
                self._wanted.add(key)
                self._changed.notify_all()      # join now, not next beat
                self._changed.wait_for(lambda: key in self._rings
                                       or self._stop.is_set(),
                                       self.join_timeout)
        ring = self._rings.get(key)
        if ring is None:
            self.fallbacks += 1
            return resources
        members, hashring = ring
        mine = [r for r in resources
                if self._me in hashring.get_nodes(str(r).encode())]
        self.stats[group] = (len(members), len(mine), len(resources))
        return mine
