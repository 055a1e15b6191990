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
"""oslo.messaging, imported where needed and without its import noise --
and the fence around the two places we reach past its public API.

Heavy, and only the notifier publisher and the notification listener use
it: imported on first use. Its eventlet backend warns on import that
eventlet is deprecated -- our code runs on threads and never uses it, so
the warning would only puzzle an operator.

The seams (``tests/unit/test_seams.py`` is their canary):

* :func:`send_notification` uses ``Transport._send_notification``, because
  the public ``Notifier`` logs a failed send and returns, and the delivery
  core must know to retry. Without it, the public ``Notifier`` is used,
  with a warning once that failures can then not be retried.
* :data:`RABBIT_LOGGER` and :data:`UNDECODABLE` name the rabbit driver's
  logger and the words of its record for a message it cannot decode, which
  the notification listener turns into a count and one line instead of a
  traceback.
"""

import contextlib
import logging
import socket
import time
import warnings

LOG = logging.getLogger(__name__)

#: The rabbit driver's logger, and how its record of an undecodable
#: message begins.
RABBIT_LOGGER = 'oslo.messaging._drivers.impl_rabbit'
UNDECODABLE = 'Failed to process message'

_warned = []


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


def send_notification(transport, target, ctxt, message, retry=0):
    """Send one notification (``message``: the oslo message dict) to
    ``target``; raises whatever the driver raises when it was not sent.
    """
    send = getattr(transport, '_send_notification', None)
    if send is not None:
        send(target, ctxt, message, version=2.0, retry=retry)
        return
    if not _warned:
        _warned.append(True)
        LOG.warning('this oslo.messaging has no Transport._send_notification:'
                    ' notifications go through its public Notifier, which '
                    'logs a failed send instead of reporting it, so such a '
                    'send cannot be retried')
    om = oslo_messaging()
    topic, _, priority = target.topic.rpartition('.')
    notifier = om.Notifier(transport, message['publisher_id'],
                           driver='messaging', topics=[topic], retry=retry)
    getattr(notifier, priority.lower() or 'info')(
        ctxt, message['event_type'], message['payload'])


#: What a RabbitMQ broker is sent first: AMQP 0-9-1's protocol header.
_AMQP_HEADER = b'AMQP\x00\x00\x09\x01'


def probe(conf, url, timeout):
    """Whether a bus answers, within ``timeout`` seconds: ``None`` when
    one of the URL's hosts does, else why not in one line.

    oslo.messaging's rabbit driver, asked to listen, retries a broker that
    is down -- or that accepts connections and never answers -- for ever,
    inside the call; this asks first, with a deadline. Only the rabbit
    transport is probed (``None`` for the others).
    """
    om = oslo_messaging()
    parsed = om.TransportURL.parse(conf, url)
    if (parsed.transport or 'rabbit') not in ('rabbit', 'amqp', 'kombu'):
        return None
    problems = []
    deadline = time.monotonic() + timeout
    for host in parsed.hosts or ():
        where = '%s:%s' % (host.hostname, host.port or 5672)
        left = deadline - time.monotonic()
        if left <= 0:
            problems.append('%s: no time left' % where)
            continue
        try:
            with socket.create_connection(
                    (host.hostname, host.port or 5672), timeout=left) as s:
                s.settimeout(max(0.001, deadline - time.monotonic()))
                s.sendall(_AMQP_HEADER)
                if s.recv(8):
                    return None
                problems.append('%s closed the connection' % where)
        except socket.timeout:
            problems.append('%s did not answer in %.0fs' % (where, timeout))
        except OSError as exc:
            problems.append('%s: %s' % (where, exc.strerror or exc))
    return '; '.join(problems) or 'no host in the URL'
