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

:class:`HttpClient` speaks urllib3 directly (requests' per-request cost
was most of an alarm evaluation's); :func:`session`, for the libraries
that want one, is the only place a ``requests`` session is made
(``tests/unit/test_floors.py`` checks it). No retries inside (the delivery
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
import re
import socket
import ssl
import threading
import time
import typing
from urllib import parse

import requests
from requests import adapters
import urllib3
from urllib3 import exceptions as urllib3_exc

from telemetry_lib.exceptions import InvalidURL
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
    if isinstance(exc, urllib3_exc.MaxRetryError) and isinstance(
            exc.reason, Exception):
        exc = exc.reason            # urllib3's wrapper of the real failure
    if _timed_out(exc):
        return 'timed out'
    if isinstance(exc, (requests.exceptions.SSLError, urllib3_exc.SSLError,
                        ssl.SSLError)):
        return 'TLS error: %s' % short(exc.__context__ or exc, 160)
    seen, cause = set(), exc
    while isinstance(cause, BaseException) and id(cause) not in seen:
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


def _timed_out(exc):
    if isinstance(exc, urllib3_exc.MaxRetryError) and isinstance(
            exc.reason, Exception):
        exc = exc.reason
    # urllib3 makes a refused connection a kind of connect timeout.
    return isinstance(exc, (requests.Timeout, urllib3_exc.TimeoutError)) \
        and not isinstance(exc, urllib3_exc.NewConnectionError)


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


class DeadlineExceeded(urllib3_exc.TimeoutError):
    """The whole exchange took longer than its deadline (a peer trickling
    its answer a byte at a time resets every per-read timeout).
    """


def _read(resp, deadline, limit):
    """``(body, truncated)``: at most ``limit`` bytes of a response's
    body, read before the monotonic ``deadline``, and whether there was
    more; the connection goes back to the pool only when the body was read
    to its end.

    :raises DeadlineExceeded: when time runs out first.
    """
    limit += 1      # one byte more tells a body of exactly limit bytes
    chunks, size, ended = [], 0, False
    # read1() returns what has arrived (read(n) would wait for all n bytes
    # of a peer sending one a second); each call waits at most the socket's
    # read timeout, and the deadline is checked between calls. Decoded
    # (gzip), and bounded after decoding.
    try:
        while size < limit:
            if time.monotonic() > deadline:
                raise DeadlineExceeded('the answer took longer than its '
                                       'deadline')
            chunk = resp.read1(min(65536, limit - size), decode_content=True)
            if not chunk:
                ended = True
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        if not ended:
            resp.close()
        resp.release_conn()
    body = b''.join(chunks)
    return body[:limit - 1], len(body) >= limit


#: No retries (the delivery core retries), redirects followed as requests
#: follows them, every status returned.
_NO_RETRIES = urllib3.Retry(total=None, connect=0, read=0, other=0,
                            status=0, redirect=5, raise_on_redirect=False,
                            raise_on_status=False)


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
    #: The body as it came (a protobuf answer is not text).
    content: bytes = b''

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
        # urllib3 itself, not requests over it: requests costs ~0.7 ms of
        # CPU a request (settings merged, hooks, cookies, the environment
        # read), four times urllib3's -- the whole of an alarm evaluation's
        # budget. What requests would take from the environment (the CA
        # bundle, proxies) is read here, with requests' own functions.
        if verify is True:
            verify = (os.environ.get('REQUESTS_CA_BUNDLE')
                      or os.environ.get('CURL_CA_BUNDLE')
                      or requests.certs.where())
        self.verify, self.cert, self.auth = verify, cert, auth
        cert_file, key_file = (cert if isinstance(cert, (tuple, list))
                               else (cert, None))
        self._tls = {'cert_reqs': 'CERT_NONE' if verify is False
                     else 'CERT_REQUIRED',
                     'ca_certs': verify if isinstance(verify, str) else None,
                     'cert_file': cert_file, 'key_file': key_file}
        if verify is False:
            self._tls['assert_hostname'] = False
        self._headers = dict(headers or {})
        if isinstance(auth, (tuple, list)):
            self._headers.update(urllib3.util.make_headers(
                basic_auth='%s:%s' % tuple(auth)))
        self._direct = urllib3.PoolManager(num_pools=10, maxsize=10,
                                           **self._tls)
        self._proxied = {}          # proxy URL -> ProxyManager
        self._routes = {}           # scheme://host -> manager
        self._lock = threading.Lock()

    def _manager(self, url):
        """The pool manager for ``url``: direct, or through the proxy the
        environment names for its host (``http_proxy``, ``no_proxy``...),
        looked up once per scheme and host.
        """
        key = '/'.join(url.split('/', 3)[:3])
        manager = self._routes.get(key)
        if manager is None:
            proxies = requests.utils.get_environ_proxies(url)
            proxy = proxies.get(key.split(':', 1)[0]) or proxies.get('all')
            with self._lock:
                if proxy is None:
                    manager = self._direct
                else:
                    manager = self._proxied.get(proxy)
                    if manager is None:
                        manager = self._proxied[proxy] = \
                            urllib3.ProxyManager(proxy, num_pools=10,
                                                 maxsize=10, **self._tls)
                self._routes[key] = manager
        return manager

    def request(self, method, url, *, data=None, params=None, headers=None,
                timeout=None):
        """One exchange, within ``timeout`` (the client's by default).

        :returns: a :class:`Response` whatever its status.
        :raises Unanswered: when there is no answer in time.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if params:
            url += ('&' if '?' in url else '?') + parse.urlencode(
                params, doseq=True)
        sent = dict(self._headers, **headers) if headers else self._headers
        if isinstance(data, str):
            data = data.encode('utf-8')
        if self.auth is not None and not isinstance(self.auth,
                                                    (tuple, list)):
            # A requests auth object (a dynamic pollster's, as Ceilometer
            # loads them): let it sign a prepared request, send that.
            prepared = self.auth(requests.Request(
                method, url, headers=sent, data=data).prepare())
            url, sent, data = (prepared.url, dict(prepared.headers),
                               prepared.body)
        try:
            resp = self._manager(url).urlopen(
                method, url, body=data, headers=sent,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                retries=_NO_RETRIES, preload_content=False,
                decode_content=True)
            content, truncated = _read(resp, deadline, self.max_body)
        except (urllib3_exc.HTTPError, OSError) as exc:
            if _timed_out(exc):
                raise Unanswered('timed out after %ss' % timeout,
                                 timed_out=True) from None
            raise Unanswered(describe(exc)) from None
        return Response(resp.status, resp.headers,
                        content.decode('utf-8', 'replace'), truncated,
                        content)

    def close(self):
        self._direct.clear()
        with self._lock:
            for manager in self._proxied.values():
                manager.clear()


def publisher_error(response, detail, is_retryable=retryable):
    """The delivery core's error for a ``response`` that is not 2xx:
    :class:`RetryableError` (with the peer's ``Retry-After``) when
    ``is_retryable(status)`` (:func:`retryable` unless a protocol says
    otherwise), else :class:`PermanentError`, saying ``detail``.
    """
    if is_retryable(response.status):
        return RetryableError(detail,
                              retry_after=retry_after(response.headers))
    return PermanentError(detail)


def publisher_request(client, method, url, **kwargs):
    """``client.request(...)`` for a publisher: a peer that does not
    answer is a :class:`RetryableError` naming the request.
    """
    try:
        return client.request(method, url, **kwargs)
    except Unanswered as exc:
        raise RetryableError('%s %s failed: %s' % (method, url, exc)
                             ) from None


_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_CONTROL = re.compile(r'[\x00-\x1f\x7f]')

#: The URL options :func:`client_for_url` reads.
CLIENT_URL_OPTIONS = frozenset(('header', 'token', 'timeout', 'verify_ssl',
                                'clientcert', 'clientkey'))


def client_for_url(url, headers, timeout):
    """``(HttpClient, target)`` for a ``SCHEME+http(s)://`` publisher URL:
    ``header=Name:Value`` options (repeatable) and a bearer ``token``
    added to ``headers``, basic authentication from the URL's user (unless
    a token is given), ``verify_ssl``, ``clientcert``/``clientkey``,
    ``timeout`` (``timeout`` by default); ``target`` is the plain
    ``http(s)://host/path``.

    :raises InvalidURL: for a URL without one host, or a header option
        that is not ``Name:Value``.
    """
    if len(url.hosts) != 1:
        raise InvalidURL('a %s URL names one host, not %d' % (
            url.scheme, len(url.hosts)), where=str(url))
    headers = dict(headers)
    for key, value in url.query:
        if key != 'header':
            continue
        name, sep, text = value.partition(':')
        name, text = name.strip(), text.strip()
        # A line break would end the header and start another one:
        # refused here rather than by http.client at every request.
        if not sep or not _HEADER_NAME.match(name) or _CONTROL.search(text):
            raise InvalidURL('header wants Name:Value (a token, then text '
                             'without control characters)', where=str(url))
        headers[name] = text
    token = url.get('token')
    if token:
        headers['Authorization'] = 'Bearer ' + token
    cert, key = url.get('clientcert'), url.get('clientkey')
    client = HttpClient(
        url.get_float('timeout', timeout, minimum=0.001, maximum=3600),
        verify=url.get_verify(), cert=(cert, key) if cert and key else cert,
        headers=headers, auth=(url.username, url.password or '')
        if url.username and not token else None)
    target = '%s://%s%s' % (url.scheme.split('+', 1)[-1], url.hosts[0],
                            url.path or '/')
    return client, target
