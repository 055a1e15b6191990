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
"""What every HTTP-speaking driver agrees on: which answers are worth a
retry, how a failure reads, what a peer's ``Retry-After`` means.

One place, so the http and pushgateway publishers and the Prometheus
storage driver never disagree on whether a 429 or a 503 comes back.
"""

import errno
import socket
import ssl
import time

import requests
from urllib3 import exceptions as urllib3_exc

#: Statuses that may succeed later, besides every 5xx.
RETRYABLE_STATUS = frozenset((408, 425, 429))


def retryable(status):
    """Whether an HTTP status is worth a retry."""
    return status >= 500 or status in RETRYABLE_STATUS


def short(value, limit=200):
    """One line of at most ``limit`` characters."""
    text = str(value).strip().replace('\n', ' ')
    return text if len(text) <= limit else text[:limit] + '...'


ERRNO_WORDS = {
    errno.ECONNREFUSED: 'connection refused',
    errno.ECONNRESET: 'connection reset by the peer',
    errno.EHOSTUNREACH: 'host unreachable',
    errno.ENETUNREACH: 'network unreachable',
    errno.ETIMEDOUT: 'connection timed out',
}


def describe(exc):
    """What went wrong with a request, as people say it ("connection
    refused"), not urllib3's nesting of pools and retries.
    """
    if isinstance(exc, requests.Timeout):
        return 'timed out'
    if isinstance(exc, requests.exceptions.SSLError):
        return 'TLS error: %s' % short(exc.__context__ or exc, 160)
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) and cause.errno in ERRNO_WORDS:
            return ERRNO_WORDS[cause.errno]
        cause = cause.__cause__ or cause.__context__ or getattr(
            cause, 'reason', None)
    text = str(exc)
    for words in ERRNO_WORDS.values():
        if words in text.lower():
            return words
    if 'Name or service not known' in text or 'nodename nor' in text:
        return 'unknown host'
    return short(exc)


def describe_socket_error(exc):
    """What a plain socket's failure means, as people say it: for the
    publishers and probes that speak to sockets themselves.
    """
    if isinstance(exc, socket.timeout):
        return 'timed out'
    if isinstance(exc, socket.gaierror):
        return 'cannot resolve: %s' % exc.strerror
    if isinstance(exc, ssl.SSLCertVerificationError):
        return 'TLS certificate: %s' % (exc.verify_message or exc)
    if isinstance(exc, ssl.SSLError):
        return 'TLS error: %s' % short(exc.reason or exc, 120)
    words = ERRNO_WORDS.get(getattr(exc, 'errno', None))
    return words or short('%s: %s' % (type(exc).__name__, exc), 160)


def retry_after(headers):
    """Seconds a peer asked us to wait, or ``None``."""
    value = headers.get('Retry-After')
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None     # an HTTP date: fall back to our own backoff


#: Most bytes of a response body read (an error page: only its start is
#: ever shown; a 300 MiB answer must not become 300 MiB of memory).
MAX_BODY = 64 * 1024


class DeadlineExceeded(requests.Timeout):
    """The whole exchange took longer than its deadline (a peer trickling
    its answer a byte at a time resets every per-read timeout).
    """


def read_body(resp, deadline, limit=MAX_BODY):
    """At most ``limit`` bytes of a streamed response's body, read before
    the monotonic ``deadline``; the response is closed (its connection not
    reused if the body was not read to its end).

    :raises DeadlineExceeded: when time runs out first.
    """
    chunks, size = [], 0
    raw = resp.raw
    # read1() returns what has arrived (read(n) would wait for all n bytes
    # of a peer sending one a second); each call waits at most the socket's
    # read timeout, and the deadline is checked between calls.
    read = getattr(raw, 'read1', None) or raw.read
    try:
        while size < limit:
            if time.monotonic() > deadline:
                raise DeadlineExceeded('the answer took longer than its '
                                       'deadline')
            chunk = read(min(8192, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except (requests.exceptions.ChunkedEncodingError,
            urllib3_exc.ProtocolError) as exc:
        raise requests.ConnectionError(str(exc)) from None
    except urllib3_exc.ReadTimeoutError as exc:
        raise requests.Timeout(str(exc)) from None
    finally:
        resp.close()
    return b''.join(chunks)[:limit].decode('utf-8', 'replace')
