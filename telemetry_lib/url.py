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
"""Publisher and storage URLs.

The form is ``scheme://[user:pass@]host[:port][,host2]/path?opt=val``.

Every form a Ceilometer ``pipeline.yaml`` uses parses: a bare name
(``gnocchi``), an empty authority (``gnocchi://``, ``file:///var/x``),
several hosts (``amqp1://a:5672,b:5672/``) and IPv6 literals. The scheme
names the plugin; the query holds its options, the last value winning when
one is repeated, as in Ceilometer. The password never appears in
``str()`` or ``repr()``.
"""

import math
import re
import typing
from urllib import parse

from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.masking import redact
from telemetry_lib.masking import SECRET_OPTIONS


_CONTROL = re.compile('[\x00-\x1f\x7f]')
_TRUE = frozenset(('1', 'true', 'yes', 'on', 'y', 't'))
_FALSE = frozenset(('0', 'false', 'no', 'off', 'n', 'f'))


class Host(typing.NamedTuple):
    host: str
    port: typing.Optional[int]

    def __str__(self):
        host = '[%s]' % self.host if ':' in self.host else self.host
        return host if self.port is None else '%s:%d' % (host, self.port)


class TelemetryURL:
    """A parsed publisher or storage URL (immutable)."""

    __slots__ = ('scheme', 'username', 'password', 'hosts', 'path',
                 'query', '_text')

    def __init__(self, scheme, username=None, password=None, hosts=(),
                 path='', query=(), text=None):
        self.scheme = scheme
        self.username = username
        self.password = password
        self.hosts = tuple(hosts)
        self.path = path
        #: ``(name, value)`` pairs in URL order.
        self.query = tuple(query)
        self._text = text

    @classmethod
    def parse(cls, text):
        """Parse ``text``; a bare name means ``name://``.

        :raises InvalidURL: for an empty text, a bad scheme, host or port.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidURL('a URL must be a non-empty string, not %r'
                             % (text,))
        text = text.strip()
        if _CONTROL.search(text) or _CONTROL.search(parse.unquote(text)):
            # A NUL would reach open() or a socket as an odd ValueError.
            raise InvalidURL('%r holds a control character (such as NUL); '
                             'refused' % _redact(text))
        if '://' not in text:
            text += '://'
        scheme, _, rest = text.partition('://')
        scheme = scheme.lower()
        if not scheme or not (scheme[0].isalpha() and all(
                c.isalnum() or c in '+-._' for c in scheme)):
            raise InvalidURL('%r has no valid scheme' % _redact(text))
        userinfo, rest = _split_userinfo(rest)
        authority, path, query = _split_rest(rest)
        username = password = None
        if userinfo is not None:
            username, sep, password = userinfo.partition(':')
            username = parse.unquote(username) or None
            password = parse.unquote(password) if sep else None
        hosts = tuple(_parse_host(h, text) for h in authority.split(',')
                      if h) if authority else ()
        try:
            pairs = parse.parse_qsl(query, keep_blank_values=True,
                                    strict_parsing=False)
        except ValueError as exc:
            raise InvalidURL('%r: bad query: %s' % (_redact(text), exc)) \
                from None
        return cls(scheme, username, password, hosts, parse.unquote(path),
                   pairs, text)

    # -- options -----------------------------------------------------------

    @property
    def options(self):
        """Query options as a dict; the last of a repeated name wins."""
        return dict(self.query)

    def has_option(self, name):
        return any(k == name for k, _ in self.query)

    def get(self, name, default=None):
        value = default
        for key, val in self.query:
            if key == name:
                value = val
        return value

    def get_str(self, name, default=None, choices=None):
        value = self.get(name)
        if value is None:
            return default
        if choices is not None and value not in choices:
            self._bad(name, value, 'one of %s'
                      % ', '.join(c for c in choices if c is not None))
        return value

    def get_int(self, name, default=None, minimum=None, maximum=2 ** 62):
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self._bad(name, raw, 'an integer')
        if minimum is not None and value < minimum:
            self._bad(name, raw, 'an integer >= %d' % minimum)
        if maximum is not None and value > maximum:
            self._bad(name, raw, 'an integer <= %d' % maximum)
        return value

    def get_float(self, name, default=None, minimum=None, maximum=1e9):
        """A finite number in ``[minimum, maximum]``: NaN and infinity are
        refused (``timeout=nan`` would drop every batch, ``max_latency=nan``
        spin a core).
        """
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self._bad(name, raw, 'a number')
        if not math.isfinite(value):
            self._bad(name, raw, 'a finite number')
        if minimum is not None and value < minimum:
            self._bad(name, raw, 'a number >= %s' % minimum)
        if maximum is not None and value > maximum:
            self._bad(name, raw, 'a number <= %g' % maximum)
        return value

    def get_bool(self, name, default=False):
        raw = self.get(name)
        if raw is None:
            return default
        if raw == '':
            # ``file:///x?json`` is Ceilometer's way to switch a flag on.
            return True
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        self._bad(name, raw, 'a boolean (true/false)')

    def get_verify(self, name='verify_ssl'):
        """TLS verification as requests takes it: ``True`` (the default),
        ``False``, or the path of a CA bundle.
        """
        raw = self.get(name)
        if raw is None or raw == '' or raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        return raw

    def unknown_options(self, known):
        """Option names in the URL that are not in ``known``, sorted."""
        return sorted({k for k, _ in self.query} - set(known))

    def without(self, names):
        """A copy without the options in ``names``."""
        names = set(names)
        return TelemetryURL(self.scheme, self.username, self.password,
                            self.hosts, self.path,
                            [(k, v) for k, v in self.query if k not in names])

    def with_scheme(self, scheme):
        return TelemetryURL(scheme, self.username, self.password, self.hosts,
                            self.path, self.query)

    def _bad(self, name, value, expected):
        shown = '***' if name.lower() in SECRET_OPTIONS else value
        raise InvalidURL("option '%s' must be %s, not %r"
                         % (name, expected, shown), where=str(self))

    # -- rendering ---------------------------------------------------------

    def netloc(self, with_password=False):
        auth = ''
        if self.username is not None or self.password is not None:
            auth = parse.quote(self.username or '', safe='')
            if self.password is not None:
                auth += ':' + (parse.quote(self.password, safe='')
                               if with_password else '***')
            auth += '@'
        return auth + ','.join(str(h) for h in self.hosts)

    def geturl(self, with_password=False, with_query=True):
        """The URL as text; the password masked unless asked for."""
        text = '%s://%s%s' % (self.scheme, self.netloc(with_password),
                              parse.quote(self.path, safe='/:@'))
        if with_query and self.query:
            query = self.query if with_password else [
                (k, '***' if k.lower() in SECRET_OPTIONS else v)
                for k, v in self.query]
            text += '?' + parse.urlencode(query, safe='*')
        return text

    def __str__(self):
        return self.geturl()

    def __repr__(self):
        return '<TelemetryURL %s>' % self.geturl()

    def __eq__(self, other):
        return (isinstance(other, TelemetryURL)
                and self.geturl(True) == other.geturl(True))

    def __hash__(self):
        return hash(self.geturl(True))


def _split_userinfo(rest):
    """``(userinfo or None, the rest)``.

    The user info ends at the last ``@`` before the host: a password with
    an unencoded ``/``, ``?`` or ``#`` is still taken as a password (and
    never echoed as a host or a port), as long as what precedes its ``:``
    cannot be a host with a port.
    """
    if rest.startswith('/') or '@' not in rest:
        return None, rest
    first_at = rest.index('@')
    head = rest[:first_at]
    delims = [i for i in (head.find(c) for c in '/?#') if i >= 0]
    if delims:
        user, sep, after = head.partition(':')
        cut = min(delims)
        if not sep or len(user) >= cut or after[:cut - len(user) - 1
                                                ].isdigit():
            # "host/path?x=a@b" or "host:80/x@y": the @ is not user info.
            return None, rest
    ends = [i for i in (rest.find(c, first_at) for c in '/?#') if i >= 0]
    end = min(ends) if ends else len(rest)
    at = rest.rindex('@', 0, end)
    return rest[:at], rest[at + 1:]


def _split_rest(rest):
    query = ''
    if '?' in rest:
        rest, _, query = rest.partition('?')
    rest = rest.partition('#')[0]
    if '/' in rest:
        authority, slash, path = rest.partition('/')
        path = slash + path
    else:
        authority, path = rest, ''
    return authority, path, query


def _parse_host(text, url):
    if text.startswith('['):
        host, sep, port = text[1:].partition(']')
        if not sep or (port and not port.startswith(':')):
            raise InvalidURL('%r: bad IPv6 host %r' % (_redact(url), text))
        port = port[1:]
    else:
        host, _, port = text.partition(':')
    if not host:
        raise InvalidURL('%r: empty host in %r' % (_redact(url), text))
    if port:
        # isdigit() alone takes '²' and other digits int() refuses.
        if not (port.isascii() and port.isdigit()) or not \
                0 < int(port) < 65536:
            raise InvalidURL('%r: port %r is not a number from 1 to 65535'
                             % (_redact(url), port))
        return Host(host, int(port))
    return Host(host, None)


_redact = redact
#: ``host[:port]`` / ``[v6]:port`` -> :class:`Host` (for options that
#: list addresses).
parse_host = _parse_host
