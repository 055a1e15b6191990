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
"""``file:///PATH?max_bytes=N&backup_count=M``: JSON lines on disk.

One line per sample, in Ceilometer's metering message form (signed when a
telemetry secret is set), or per event, in its serialised form. With both
``max_bytes`` and ``backup_count`` the file rotates as Ceilometer's does
(``PATH.1`` is the newest backup); a batch is never split across files.
Ceilometer's ``json`` flag is accepted and changes nothing: lines are always
JSON.
"""

import errno
import os

from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base

#: errno values no retry will cure (the operator must act).
_PERMANENT_ERRNOS = frozenset((errno.EACCES, errno.EPERM, errno.EISDIR,
                               errno.ENOTDIR, errno.EROFS,
                               errno.ENAMETOOLONG))


class FilePublisher(base.Publisher):
    """Appends JSON lines to a file, rotating it by size."""

    url_options = frozenset(('max_bytes', 'backup_count', 'json'))
    supports_events = True

    def __init__(self, conf, url):
        super().__init__(conf, url)
        if not url.path or url.path == '/':
            raise InvalidURL('the file publisher needs a path, as in '
                             'file:///var/log/telemetry/samples.json',
                             where=str(url))
        self.path = url.path
        problem = _unwritable(self.path)
        if problem:
            raise InvalidURL(problem, where=str(url))
        self.max_bytes = url.get_int('max_bytes', 0, minimum=0)
        self.backup_count = url.get_int('backup_count', 0, minimum=0)
        self._secret = conf.publisher.telemetry_secret
        self._file = None

    def start(self):
        parent = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise InvalidURL('cannot create %s: %s' % (parent, exc.strerror),
                             where=str(self.url)) from None

    def publish_samples(self, samples):
        self._write(ceilometer.samples_to_json(samples, self._secret))

    def publish_events(self, events):
        self._write([jsoncodec.dumps(m) for m in ceilometer.events_to_wire(
            events, self._secret)])

    def _write(self, lines):
        data = b'\n'.join(lines) + b'\n' if lines else b''
        try:
            if self._should_rotate(len(data)):
                self._rotate()
            if self._file is None:
                # Owner-only by default: samples carry project and user ids.
                self._file = os.fdopen(os.open(
                    self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                    0o600), 'ab')
            self._file.write(data)
            self._file.flush()
        except OSError as exc:
            self.close()
            if exc.errno in _PERMANENT_ERRNOS:
                raise PermanentError('cannot write %s: %s'
                                     % (self.path, exc.strerror)) from None
            raise RetryableError('cannot write %s: %s'
                                 % (self.path, exc.strerror)) from None

    def _should_rotate(self, incoming):
        if not (self.max_bytes and self.backup_count):
            return False
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return False
        return size > 0 and size + incoming > self.max_bytes

    def _rotate(self):
        self.close()
        for i in range(self.backup_count - 1, 0, -1):
            older = '%s.%d' % (self.path, i)
            if os.path.exists(older):
                os.replace(older, '%s.%d' % (self.path, i + 1))
        os.replace(self.path, self.path + '.1')

    def close(self, timeout=None):
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        return lifecycle.DONE


def _unwritable(path):
    """Why ``path`` cannot be appended to, or ``''``: checked without
    touching anything, so ``pipeline validate`` can tell.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return '%s is a directory, not a file' % path
    if os.path.exists(path):
        return ('' if os.access(path, os.W_OK)
                else '%s is not writable' % path)
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return '%s is not a directory' % parent
    if not os.access(parent, os.W_OK | os.X_OK):
        return ('cannot create %s: %s is not a writable directory'
                % (path, parent))
    return ''
