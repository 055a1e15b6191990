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
"""Opening SQLite files without breaking SQLite's locks.

SQLite coordinates processes with POSIX advisory locks, and POSIX releases
*every* lock a process holds on a file when *any* descriptor of that file is
closed (SQLite's "How To Corrupt An SQLite Database File", section 2.2). So
nothing here ever opens and closes a descriptor of a database file that may
be live: a file is created owner-only with ``O_EXCL`` (which opens nothing
when it exists) before the first connection, under a lock, and everything
after that is SQLite's own doing.

Every SQLite file of the library (the embedded store, the spool, the alarm
state) is opened through :func:`connect` or :func:`acquire`. ``acquire``
hands the callers of one process one shared connection per file (with one
lock), so the ``sqlite://`` publisher, the evaluator and the CLI reading the
same store in one process are one connection owner, not three.
"""

import os
import sqlite3
import threading

_CREATE_LOCK = threading.Lock()


def _create(path):
    """Create ``path`` owner-only if it does not exist; open nothing if it
    does. Called under ``_CREATE_LOCK``.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    # A brand-new empty file: no connection of this process can hold a
    # lock on it yet (every connection is made under _CREATE_LOCK).
    os.close(fd)


def connect(path, timeout, pragmas=()):
    """A new connection to ``path`` (created owner-only if missing), in
    autocommit mode, usable from any thread (the caller serialises).

    :raises OSError: the file or its directory cannot be created.
    :raises sqlite3.Error: SQLite cannot open it or a pragma failed.
    """
    with _CREATE_LOCK:
        _create(path)
        db = sqlite3.connect(path, isolation_level=None, timeout=timeout,
                             check_same_thread=False)
    try:
        for pragma in pragmas:
            db.execute('PRAGMA ' + pragma)
    except BaseException:
        db.close()
        raise
    return db


class Shared:
    """One process's connection to one file, shared by reference count.

    ``lock`` serialises every user of ``db``; ``release()`` closes it when
    the last user lets go.
    """

    def __init__(self, key, db):
        self.key = key
        self.db = db
        self.lock = threading.RLock()
        self.users = 1

    def release(self):
        with _SHARED_LOCK:
            self.users -= 1
            if self.users > 0:
                return
            if _SHARED.get(self.key) is self:
                del _SHARED[self.key]
        with self.lock:
            try:
                self.db.close()
            except sqlite3.Error:
                pass


# Process-wide on purpose: POSIX locks are per process, so the owner of a
# file's connection has to be too. Keyed by the file's identity (device,
# inode), so two spellings of one path share and a replaced file does not.
_SHARED = {}
_SHARED_LOCK = threading.Lock()


def acquire(path, timeout, setup=None, pragmas=()):
    """The process's shared connection to ``path``; ``setup(db)`` runs once,
    when the connection is made (a schema, say). Call ``release()`` on the
    result when done.
    """
    with _SHARED_LOCK:
        key = None
        try:
            st = os.stat(path)
            key = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            pass
        shared = _SHARED.get(key) if key else None
        if shared is not None:
            shared.users += 1
            return shared
        db = connect(path, timeout, pragmas)
        try:
            if setup is not None:
                setup(db)
            st = os.stat(path)
        except BaseException:
            db.close()
            raise
        shared = _SHARED[(st.st_dev, st.st_ino)] = Shared(
            (st.st_dev, st.st_ino), db)
        return shared
