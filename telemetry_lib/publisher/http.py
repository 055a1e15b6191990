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
"""``http(s)://[user:pass@]host[:port]/path?timeout=5&verify_ssl=...``

POSTs each batch as one JSON array, in the body Ceilometer's HTTP publisher
sends (samples as their field dictionaries, events serialised), so an
endpoint written for Ceilometer reads ours unchanged.

URL options (Ceilometer's names): ``timeout`` (seconds, default 5),
``verify_ssl`` (``true`` by default, ``false``, or a CA bundle path),
``clientcert`` and ``clientkey`` (client certificate), ``batch`` (``false``
sends one POST per item), ``raw_only`` (events: only the raw notification
payloads). Other query options are passed on to the endpoint, as Ceilometer
does. ``max_retries`` is the delivery core's retry limit here: this
publisher itself never retries.

Outcomes: 2xx delivered; 408, 425, 429 and 5xx, timeouts and connection
errors are retryable (``Retry-After`` honoured); any other status is
permanent.
"""

from telemetry_lib.clients import http
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base

_OWN_OPTIONS = frozenset(('timeout', 'verify_ssl', 'clientcert', 'clientkey',
                          'batch', 'raw_only', 'ssl'))
_HEADERS = {'Content-Type': 'application/json'}


def _sample_body(sample):
    body = sample._asdict()
    body['timestamp'] = sample.timestamp.isoformat()
    return body


class HttpPublisher(base.Publisher):
    """POSTs JSON batches to an HTTP(S) endpoint."""

    supports_events = True

    def __init__(self, conf, url):
        # Unknown options are forwarded to the endpoint, not warned about.
        self.url_options = frozenset(k for k, _ in url.query)
        super().__init__(conf, url)
        if not url.hosts:
            raise InvalidURL('the http publisher needs a host',
                             where=str(url))
        if len(url.hosts) > 1:
            raise InvalidURL('the http publisher takes one host',
                             where=str(url))
        self.timeout = url.get_float('timeout', 5.0, minimum=0.001,
                                     maximum=3600)
        self.verify = url.get_verify()
        cert, key = url.get('clientcert'), url.get('clientkey')
        self.cert = (cert, key) if cert and key else cert
        self.batch = url.get_bool('batch', True)
        self.raw_only = url.get_bool('raw_only', False)
        self.auth = ((url.username, url.password or '')
                     if url.username else None)
        scheme = url.scheme if url.scheme in ('http', 'https') else (
            'https' if url.get_bool('ssl', False) else 'http')
        self.target = '%s://%s%s' % (scheme, url.hosts[0], url.path or '/')
        self._params = [(k, v) for k, v in url.query
                        if k not in _OWN_OPTIONS]
        self._client = http.HttpClient(self.timeout, verify=self.verify,
                                       cert=self.cert, auth=self.auth)
        #: More headers a subclass sends (an alarm action's token).
        self._headers = None

    def publish_samples(self, samples):
        self._post_all([_sample_body(s) for s in samples])

    def publish_events(self, events):
        if self.raw_only:
            bodies = [e.raw.get('payload') for e in events]
            keep = [i for i, b in enumerate(bodies) if b]
            bodies = [bodies[i] for i in keep]
        else:
            bodies = ceilometer.events_to_wire(events)
        self._post_all(bodies)

    def _post_all(self, bodies):
        if not bodies:
            return
        if self.batch:
            self._post(jsoncodec.dumps(bodies), len(bodies))
            return
        # One POST per item, as Ceilometer's batch=False: report exactly
        # which failed so the delivered ones are not sent again.
        failures = {}
        for i, body in enumerate(bodies):
            try:
                self._post(jsoncodec.dumps(body), 1)
            except (RetryableError, PermanentError) as exc:
                failures[i] = exc
        if failures:
            retryable = [i for i, e in failures.items()
                         if isinstance(e, RetryableError)]
            first = next(iter(failures.values()))
            if retryable:
                raise RetryableError(str(first), items=retryable)
            raise PermanentError(str(first), items=list(failures))

    def _post(self, data, count):
        resp = http.publisher_request(
            self._client, 'POST', self.target, data=data,
            params=self._params,
            headers=dict(_HEADERS, **self._headers) if self._headers
            else _HEADERS)
        if not resp.ok:
            raise http.publisher_error(
                resp, 'POST %s of %d item(s), %d bytes: HTTP %d %s'
                % (self.target, count, len(data), resp.status,
                   http.short(resp.text)))

    def close(self, timeout=None):
        self._client.close()
        return lifecycle.DONE
