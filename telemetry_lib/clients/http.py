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
"""The one HTTP client, and what every HTTP-speaking part agrees on:
which answers are worth a retry, how a failure reads, what a peer's
``Retry-After`` means.

:class:`HttpClient` is the only place a ``requests`` session is made
(``tests/unit/test_floors.py`` checks it): no retries inside (the delivery
core owns them), TLS verified unless the URL says otherwise, a deadline
over the whole exchange (a peer trickling its answer cannot hold a thread
past it), the body read to a bound, and failures said as people say them
("connection refused"), never with a password. :func:`publisher_error`
maps a status to the delivery core's errors, so the http and pushgateway
publishers, the alarm webhooks, the Prometheus storage driver and the
dynamic pollsters never disagree on whether a 429 or a 503 comes back.
"""

import errno
import os
import socket
import ssl
import time
import typing

import requests
from requests import adapters
from urllib3 import exceptions as urllib3_exc

from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError

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


def _read(resp, deadline, limit):
    """``(text, truncated)``: at most ``limit`` bytes of a streamed
    response's body, read before the monotonic ``deadline``, and whether
    there was more; the response is closed (its connection not reused if
    the body was not read to its end).

    :raises DeadlineExceeded: when time runs out first.
    """
    limit += 1      # one byte more tells a body of exactly limit bytes
    chunks, size = [], 0
    raw = resp.raw
    # read1() returns what has arrived (read(n) would wait for all n bytes
    # of a peer sending one a second); each call waits at most the socket's
    # read timeout, and the deadline is checked between calls. Decoded
    # (gzip), and bounded after decoding.
    try:
        while size < limit:
            if time.monotonic() > deadline:
                raise DeadlineExceeded('the answer took longer than its '
                                       'deadline')
            chunk = raw.read1(min(8192, limit - size), decode_content=True)
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
    body = b''.join(chunks)
    return body[:limit - 1].decode('utf-8', 'replace'), len(body) >= limit


class Unanswered(Exception):
    """A request that got no answer: refused, reset, timed out, a TLS
    failure. ``str()`` says which, as people say it; ``timed_out`` tells
    a timeout apart.
    """

    def __init__(self, text, timed_out=False):
        super().__init__(text)
        self.timed_out = timed_out


class Response(typing.NamedTuple):
    status: int
    headers: typing.Mapping
    text: str
    #: Whether the body was longer than the client's ``max_body``.
    truncated: bool

    @property
    def ok(self):
        return 200 <= self.status < 300


def session(pool_size=10):
    """A ``requests`` session that never retries by itself, with a
    connection pool of ``pool_size`` per host: for a library that wants
    one (keystoneauth under gnocchiclient); ours use :class:`HttpClient`.
    """
    http = requests.Session()
    pool = adapters.HTTPAdapter(pool_connections=pool_size,
                                pool_maxsize=pool_size, max_retries=0)
    http.mount('http://', pool)
    http.mount('https://', pool)
    return http


class HttpClient:
    """Requests to HTTP peers, as the module says.

    Construction does no I/O. Safe to share between threads for requests
    (``requests`` sessions are, for this use).

    :param timeout: seconds a whole request may take, by default.
    :param verify: ``True``, ``False`` or a CA bundle path.
    :param cert: a client certificate path, or ``(cert, key)``.
    :param auth: ``(user, password)`` for basic authentication.
    :param headers: sent with every request (``Authorization`` included).
    :param max_body: most bytes of an answer read; the rest is left unread
        and the response says ``truncated``.
    """

    def __init__(self, timeout=10.0, verify=True, cert=None, auth=None,
                 headers=None, max_body=MAX_BODY):
        self.timeout = timeout
        self.max_body = max_body
        # No retries inside: the delivery core (or the next poll) retries.
        self._session = session()
        # What requests reads from the environment on *every* request
        # (proxies, no_proxy, the CA bundle: a scan of os.environ costing
        # ~0.6 ms, more than the rest of a small request) is read once
        # here and per host instead; the behaviour is requests' own.
        self._session.trust_env = False
        self._proxies = {}
        if verify is True:
            verify = (os.environ.get('REQUESTS_CA_BUNDLE')
                      or os.environ.get('CURL_CA_BUNDLE') or True)
        self.verify, self.cert, self.auth = verify, cert, auth
        if headers:
            self._session.headers.update(headers)

    def request(self, method, url, *, data=None, params=None, headers=None,
                timeout=None):
        """One exchange, within ``timeout`` (the client's by default).

        :returns: a :class:`Response` whatever its status.
        :raises Unanswered: when there is no answer in time.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        try:
            resp = self._session.request(
                method, url, data=data, params=params, headers=headers,
                timeout=timeout, stream=True, verify=self.verify,
                cert=self.cert, auth=self.auth, proxies=self._proxy(url))
            text, truncated = _read(resp, deadline, self.max_body)
        except requests.Timeout:
            raise Unanswered('timed out after %ss' % timeout,
                             timed_out=True) from None
        except requests.RequestException as exc:
            raise Unanswered(describe(exc)) from None
        return Response(resp.status_code, resp.headers, text, truncated)

    def _proxy(self, url):
        """The environment's proxies for ``url``'s host (``http_proxy``,
        ``no_proxy``, ...), looked up once per scheme and host.
        """
        key = url.split('/', 3)[:3]
        key = '/'.join(key)
        found = self._proxies.get(key)
        if found is None:
            found = self._proxies[key] = requests.utils.get_environ_proxies(
                url)
        return found

    def close(self):
        self._session.close()


def publisher_error(response, detail):
    """The delivery core's error for a ``response`` that is not 2xx:
    :class:`RetryableError` (with the peer's ``Retry-After``) or
    :class:`PermanentError`, saying ``detail``.
    """
    if retryable(response.status):
        return RetryableError(detail,
                              retry_after=retry_after(response.headers))
    return PermanentError(detail)
