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
"""The one lifecycle every part the agent runs follows.

Publishers, storage drivers, pollsters, listeners, the scheduler, the
evaluator, the HTTP server, coordination, the pipeline and the agent
itself are :class:`Component`\\ s:

* **construction** validates and does no I/O (no socket, file, thread);
* :meth:`Component.start` does the I/O: connects, binds, opens, spawns;
* :meth:`Component.flush` (where the part buffers) and
  :meth:`Component.close` return within their ``timeout`` with an
  :class:`Outcome`, whatever a peer does.

A part made of parts hands one :class:`Deadline` down, so the whole close
is bounded by the caller's timeout rather than by the sum of its parts'.
"""

import abc
import dataclasses
import time
import types
import typing

_NO_PARTS = types.MappingProxyType({})


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a ``flush`` or ``close`` achieved.

    True when it finished in time with nothing pending and nothing dropped.
    A part made of parts sums theirs and keeps each in :attr:`parts`.
    """

    #: items neither delivered nor dropped when it returned.
    pending: int = 0
    #: of those, items left in a durable spool for the next start.
    spooled: int = 0
    #: items dropped because the part closed before sending them.
    dropped: int = 0
    #: why, when it did not finish or something is pending or dropped.
    reason: str = ''
    #: False when time ran out before the part had stopped (a thread still
    #: running, a peer still holding the connection).
    finished: bool = True
    #: ``{name: Outcome}`` of the parts, for a composite part.
    parts: typing.Mapping[str, 'Outcome'] = dataclasses.field(
        default_factory=lambda: _NO_PARTS, compare=False, repr=False)

    def __bool__(self):
        return self.finished and self.pending == 0 and self.dropped == 0

    @classmethod
    def unfinished(cls, reason, pending=0):
        """A part that did not stop within its timeout."""
        return cls(pending=pending, reason=reason, finished=False)

    @classmethod
    def of(cls, parts):
        """The sum of ``{name: Outcome}``; its reason names each part that
        did not drain.
        """
        parts = dict(parts)
        bad = ['%s: %s' % (name, o.reason or 'not drained')
               for name, o in sorted(parts.items()) if not o]
        return cls(pending=sum(o.pending for o in parts.values()),
                   spooled=sum(o.spooled for o in parts.values()),
                   dropped=sum(o.dropped for o in parts.values()),
                   reason='; '.join(bad),
                   finished=all(o.finished for o in parts.values()),
                   parts=types.MappingProxyType(parts))


#: What a part with nothing to drain returns.
DONE = Outcome()


class Deadline:
    """One point in (monotonic) time that a close hands down to its parts.

    :param timeout: seconds from now; ``None`` never expires.
    """

    def __init__(self, timeout, clock=time.monotonic):
        self._clock = clock
        self.at = None if timeout is None else clock() + max(0.0, timeout)

    def left(self, cap=None):
        """Seconds left (at most ``cap``); ``None`` for no deadline and no
        cap.
        """
        if self.at is None:
            return cap
        rest = max(0.0, self.at - self._clock())
        return rest if cap is None else min(cap, rest)

    def join(self, threads):
        """Join ``threads`` until the deadline; return those still alive."""
        for t in threads:
            t.join(self.left())
        return [t for t in threads if t.is_alive()]


class Component(metaclass=abc.ABCMeta):
    """The lifecycle contract (see the module docstring).

    The defaults suit a part with nothing to open or drain; a part that
    holds a connection, a file or a thread overrides :meth:`start` and
    :meth:`close`, and one that buffers overrides :meth:`flush`.
    """

    def start(self):
        """Do the I/O construction did not: connect, bind, open, spawn.

        :raises telemetry_lib.exceptions.ConfigError: when it cannot start
            at all; a peer that is down is not that.
        """

    def flush(self, timeout=None):
        """Send what is buffered, within ``timeout`` seconds.

        :returns: :class:`Outcome`.
        """
        return DONE

    def close(self, timeout=None):
        """Release what :meth:`start` took, within ``timeout`` seconds;
        after this, the part is used no more.

        :returns: :class:`Outcome`.
        """
        return DONE
