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
"""Masking what may be a secret in text shown to people.

Used by :class:`~telemetry_lib.url.TelemetryURL` and by every error
message (:class:`~telemetry_lib.exceptions.ConfigError` masks its own
text), so a password typed into a URL never reaches a log, a CLI's output
or ``/healthz``, even in a URL too broken to parse.
"""

import re

#: Query options whose values are credentials: masked like the password.
SECRET_OPTIONS = frozenset((
    'password', 'token', 'secret', 'api_key', 'apikey', 'access_token',
    'auth_token', 'ssl_key_password', 'telemetry_secret', 'key_password',
    # A heat-api-cfn pre-signed URL's signature lets its holder scale.
    'signature',
    # Remote write and OTLP send extra headers: Authorization among them.
    'header'))

_SECRET_QUERY = re.compile(r'(?i)(\b(?:%s)=)[^&#\s]*' % '|'.join(
    re.escape(name) for name in sorted(SECRET_OPTIONS)))
# The user name may be empty (``http://:secret@host``).
_USERINFO = re.compile(r'([^\s/:@?&=\'"]*):(.*)@')


def redact(text):
    """``text`` (a URL, parsable or not, or a message quoting one) with
    whatever may be a password masked: the user info's password (up to the
    last ``@``, so a password holding ``/``, ``?``, ``#`` or ``@`` is
    masked whole) and the values of secret query options. For error
    messages: it masks too much rather than too little.
    """
    if not isinstance(text, str):
        return text
    if '@' in text:
        head, sep, rest = text.rpartition('://') if '://' in text.split(
            '@', 1)[0] else ('', '', text)
        text = head + sep + _USERINFO.sub(lambda m: m.group(1) + ':***@',
                                          rest, count=1)
    return _SECRET_QUERY.sub(lambda m: m.group(1) + '***', text)


def scrub(text, *secrets):
    """``text`` :func:`redact`-ed, and with each of ``secrets`` masked
    wherever it stands -- whole or in the pieces another parser may have
    cut it into at a delimiter (oslo.messaging splits a URL's hosts at
    commas before it looks for the password, and quotes the piece).
    """
    text = redact(text)
    for secret in secrets:
        if not secret:
            continue
        pieces = [secret] + [p for p in re.split(r'[^\w]+', secret)
                             if len(p) >= 3]
        for piece in sorted(set(pieces), key=len, reverse=True):
            text = text.replace(piece, '***')
    return text
