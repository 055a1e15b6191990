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
"""oslo.messaging, imported where needed and without its import noise.

Heavy, and only the notifier publisher and the notification listener use
it: imported on first use. Its eventlet backend warns on import that
eventlet is deprecated -- our code runs on threads and never uses it, so
the warning would only puzzle an operator.
"""

import contextlib
import warnings


@contextlib.contextmanager
def quiet():
    """Around what may import oslo.service's eventlet backend (the
    import, a listener's creation). Not thread-safe: for start-up.
    """
    with warnings.catch_warnings():
        # eventlet's own warning class derives from Warning directly.
        warnings.filterwarnings('ignore',
                                message='(?s).*eventlet is deprecated')
        warnings.simplefilter('ignore', DeprecationWarning)
        yield


def oslo_messaging():
    """The ``oslo_messaging`` module."""
    with quiet():
        import oslo_messaging as om
    return om
