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
"""A pipe that wakes a thread blocked in ``poll``/``select``.

:meth:`WakePipe.wake` takes no Python lock, so it may be called from any
thread and from a signal handler. The two ends close separately: the
waiting side closes its read end when its loop ends, the owner closes the
write end later, so a late :meth:`~WakePipe.wake` fails quietly rather
than writing into whatever file reused the descriptor's number.
"""

import os


class WakePipe:
    """Construction opens the pipe, both ends non-blocking."""

    def __init__(self):
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)

    def fileno(self):
        """The end to wait on (``None`` once closed)."""
        return self._read

    def wake(self):
        fd = self._write
        if fd is None:
            return
        try:
            os.write(fd, b'\0')
        except OSError:
            # Already awake (the pipe is full), or the reader is gone.
            pass

    def drain(self):
        """Empty the pipe, after a wake-up."""
        try:
            while os.read(self._read, 4096):
                pass
        except (BlockingIOError, TypeError):
            pass

    def close_read(self):
        fd, self._read = self._read, None
        if fd is not None:
            os.close(fd)

    def close_write(self):
        fd, self._write = self._write, None
        if fd is not None:
            os.close(fd)

    def close(self):
        self.close_read()
        self.close_write()
