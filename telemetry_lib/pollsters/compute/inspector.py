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
"""Reads libvirt: one read-only connection, one bulk statistics call per
poll, and each domain's XML only when it is new, restarted or stale.

Ceilometer's compute agent lists the domains, fetches every domain's
metadata and XML, then asks each pollster's statistics domain by domain,
every cycle. Here ``getAllDomainStats`` returns every domain with the
statistics a pollster group reads in one round trip, and the XML (Nova's
metadata, disks, interfaces) is parsed once per domain and kept for
``metadata_ttl`` seconds, or until the domain restarts.

libvirt gone or restarting: the poll raises
:class:`~telemetry_lib.exceptions.PollsterError` (one line in the log,
counted), the connection is dropped, and the next poll reconnects. A
domain that disappears between the statistics and its XML is skipped.
"""

import logging
import threading
import time
import weakref

from telemetry_lib.exceptions import PollsterError
from telemetry_lib.pollsters.compute import instance as instance_mod

LOG = logging.getLogger(__name__)

_quiet = threading.Lock()
_quieted = []


def _libvirt():
    try:
        import libvirt
    except ImportError:
        raise PollsterError('the compute pollsters need libvirt-python '
                            '(pip install libvirt-python, or the '
                            'distribution package python3-libvirt)'
                            ) from None
    with _quiet:
        if not _quieted:
            # libvirt prints every error on stderr by default; here each
            # one is raised, and said once, in the log.
            libvirt.registerErrorHandler(lambda ctx, err: None, None)
            _quieted.append(True)
    return libvirt


class Inspector:
    """Domains and their statistics from one libvirt URI.

    :param uri: libvirt's connection URI (``qemu:///system``).
    :param host: the compute host's name, as Nova's ``[DEFAULT] host``.
    :param metadata_ttl: seconds a domain's parsed XML is reused.
    :param libvirt: the libvirt module (tests pass a stand-in for the
        failures a real daemon cannot be made to produce on demand).
    """

    def __init__(self, uri, host, metadata_ttl=600.0, clock=time.monotonic,
                 libvirt=None):
        self._libvirt_module = libvirt
        self.uri = uri
        self.host = host
        self.metadata_ttl = metadata_ttl
        self._clock = clock
        self._conn = None
        self._lock = threading.Lock()
        self._known = {}        # uuid -> (domain id, expiry, Instance)
        self._closing = False   # closed while a poll held the connection
        self.reconnects = 0

    def _connection(self, libvirt):
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    return self._conn
            except libvirt.libvirtError:
                pass
            self._drop()
        try:
            self._conn = libvirt.openReadOnly(self.uri)
        except libvirt.libvirtError as exc:
            raise PollsterError('cannot connect to libvirt at %s: %s'
                                % (self.uri, _message(exc))) from None
        self.reconnects += 1
        return self._conn

    def _drop(self):
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:       # already gone: nothing to release
                pass

    def domains(self, stats_flags):
        """``[(Instance, stats dict)]`` of every domain with Nova's
        metadata, running or not.
        """
        libvirt = self._libvirt_module or _libvirt()
        with self._lock:
            conn = self._connection(libvirt)
            try:
                records = conn.getAllDomainStats(stats_flags, 0)
            except libvirt.libvirtError as exc:
                self._drop()
                raise PollsterError('libvirt at %s: %s' % (
                    self.uri, _message(exc))) from None
            found, now = [], self._clock()
            seen = set()
            for dom, stats in records:
                try:
                    instance = self._instance(libvirt, dom, now)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                        LOG.debug('domain %s went away while polled',
                                  dom.UUIDString())
                        continue
                    self._drop()
                    raise PollsterError('libvirt at %s: %s' % (
                        self.uri, _message(exc))) from None
                seen.add(dom.UUIDString())
                if instance is not None:
                    found.append((instance, stats))
            for gone in set(self._known) - seen:
                del self._known[gone]
            if self._closing:
                self._drop()
            return found

    def _instance(self, libvirt, dom, now):
        uuid = dom.UUIDString()
        dom_id = dom.ID()
        cached = self._known.get(uuid)
        if cached is not None and cached[0] == dom_id and cached[1] > now:
            return cached[2]
        try:
            parsed = instance_mod.parse(dom.XMLDesc(0), self.host)
        except ValueError as exc:
            LOG.warning('domain %s: %s', uuid, exc)
            parsed = None
        self._known[uuid] = (dom_id, now + self.metadata_ttl, parsed)
        return parsed

    def close(self, timeout=None):
        """Close the connection; False when a poll held it past
        ``timeout`` (it is dropped when that poll returns).
        """
        if not self._lock.acquire(timeout=-1 if timeout is None
                                  else max(0.0, timeout)):
            self._closing = True
            return False
        try:
            self._drop()
        finally:
            self._lock.release()
        return True


# id(conf) -> {key: [Inspector, users]}; ConfigOpts cannot be a dict key,
# so the entry also goes when its conf is collected (weakref.finalize).
# Reentrant: the collector may run that finalizer inside acquire(), lock
# held.
_shared = {}
_shared_lock = threading.RLock()


def acquire(conf, uri, host, metadata_ttl):
    """The one inspector of an agent (known by its ``conf``) for ``uri``:
    one libvirt connection and one cache of domain XML for all its compute
    pollsters, as Ceilometer's compute agent has one inspector. Each
    pollster that acquires it releases it (:func:`release`); the last one
    closes the connection. No I/O: the connection opens at the first poll.
    """
    key = (uri, host, metadata_ttl)
    with _shared_lock:
        per_conf = _shared.get(id(conf))
        if per_conf is None:
            per_conf = _shared[id(conf)] = {}
            weakref.finalize(conf, _forget, id(conf))
        entry = per_conf.get(key)
        if entry is None:
            entry = per_conf[key] = [Inspector(uri, host, metadata_ttl), 0]
        entry[1] += 1
        return entry[0]


def release(conf, found, timeout=None):
    """One user fewer of ``found``; the last closes its connection
    (within ``timeout``). Returns False when that close did not finish.
    """
    with _shared_lock:
        per_conf = _shared.get(id(conf), {})
        for key, entry in list(per_conf.items()):
            if entry[0] is found:
                entry[1] -= 1
                if entry[1] > 0:
                    return True
                del per_conf[key]
                break
        else:
            return True
    return found.close(timeout)


def _forget(conf_id):
    with _shared_lock:
        for found, _ in _shared.pop(conf_id, {}).values():
            found.close()


def _message(exc):
    try:
        return exc.get_error_message() or str(exc)
    except Exception:
        return str(exc)
