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
"""``remote-write+https://[user:pass@]host[:port]/api/v1/write``: Prometheus
remote write 1.0, to Prometheus itself (``--web.enable-remote-write-
receiver``), Mimir, Thanos Receive, Cortex or VictoriaMetrics.

Each batch is one request: a snappy-compressed ``WriteRequest``
(:mod:`telemetry_lib.formats.remote_write`), the samples' own timestamps,
series named by ``scheme`` (``stf`` by default, as sg-core names them;
``ceilometer``, as Ceilometer's exporter; ``openmetrics``). With the
delivery core's spool, what a receiver that was down missed is sent when it
returns, oldest first, so the series have no gap.

The specification's outcomes: 2xx delivered; 5xx and 429 retried with
backoff (``Retry-After`` honoured); any other 4xx is about the data, so
the batch is halved until the samples the receiver refuses are alone --
those are dropped (counted, reason ``permanent``), the others delivered
(receivers take a sample sent twice as one). At most
:data:`MAX_REQUESTS` requests a batch; what is left unsplit then is
dropped with the rest of the refused.

URL options: ``scheme``, ``metadata`` (``true``: type, unit and help per
family), ``token`` (a bearer token), ``header`` (``Name:Value``, repeated:
``X-Scope-OrgID:tenant`` for Mimir or Cortex), ``timeout`` (seconds,
default 30), ``verify_ssl`` (or a CA bundle path), ``clientcert`` and
``clientkey``. Basic authentication from the URL's user and password.
"""

from telemetry_lib.clients import http
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import prometheus as fmt
from telemetry_lib.formats import remote_write as rw
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base

#: Requests one batch may take while finding the samples refused.
MAX_REQUESTS = 64


class _Refused(Exception):
    """A 4xx other than 429: the receiver will not take these samples."""


class RemoteWritePublisher(base.Publisher):
    """Sends batches as Prometheus remote write requests."""

    url_options = frozenset(('scheme', 'metadata')) | \
        http.CLIENT_URL_OPTIONS

    def __init__(self, conf, url):
        super().__init__(conf, url)
        self.scheme = url.get_str('scheme', 'stf', choices=fmt.SCHEMES)
        self.metadata = url.get_bool('metadata', True)
        self._client, self.target = http.client_for_url(url, rw.HEADERS,
                                                        30.0)
        self._publisher_id = base.publisher_id(conf)

    def publish_samples(self, samples):
        todo = [list(range(len(samples)))]
        refused, requests, last = [], 0, None
        while todo:
            chunk = todo.pop(0)
            if requests >= MAX_REQUESTS:
                refused.extend(chunk)
                continue
            requests += 1
            try:
                self._post([samples[i] for i in chunk])
            except _Refused as exc:
                last = exc
                if len(chunk) == 1:
                    refused.extend(chunk)
                else:
                    half = len(chunk) // 2
                    todo[:0] = [chunk[:half], chunk[half:]]
            except RetryableError as exc:
                # What was sent stays sent; the rest comes again.
                unsent = chunk + [i for c in todo for i in c]
                raise RetryableError(str(exc), items=sorted(unsent),
                                     permanent_items=sorted(refused),
                                     retry_after=exc.retry_after) from None
        if refused:
            raise PermanentError('%d of %d sample(s) refused: %s' % (
                len(refused), len(samples), last), items=sorted(refused))

    def _post(self, samples):
        body = rw.compress(rw.write_request(
            samples, self.scheme, self._publisher_id, self.metadata))
        resp = http.publisher_request(self._client, 'POST', self.target,
                                      data=body)
        if resp.ok:
            return
        detail = 'POST %s of %d sample(s): HTTP %d %s' % (
            self.target, len(samples), resp.status, http.short(resp.text))
        if resp.status >= 500 or resp.status == 429:
            raise RetryableError(detail,
                                 retry_after=http.retry_after(resp.headers))
        if resp.status in (400, 422):
            raise _Refused(detail)
        # 401, 403, 404, 413...: about the request, not these samples.
        raise PermanentError(detail)

    def close(self, timeout=None):
        self._client.close()
        return lifecycle.DONE
