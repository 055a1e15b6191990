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
"""``otlp+https://collector:4318/v1/metrics``: OTLP/HTTP metrics, to an
OpenTelemetry Collector or any OTLP receiver.

A batch is one request: an ``ExportMetricsServiceRequest``
(:mod:`telemetry_lib.formats.otlp`: gauge, cumulative and delta sums,
nanosecond timestamps, resource attributes), protobuf by default or
OTLP/JSON (``encoding=json``), gzip-compressed (``compression=none`` turns
it off).

OTLP's outcomes: 2xx delivered -- with a *partial success*, the data points
the receiver says it rejected are counted
(``telemetry_publisher_adjustments_total{reason="otlp_rejected"}``) and
its message logged (at most once a minute): it does not say which;
429, 502, 503 and 504 retried (``Retry-After`` honoured); any other status
is permanent, as the specification says.

URL options: ``encoding``, ``compression``, ``header`` (``Name:Value``,
repeated), ``token`` (bearer), ``region`` (``cloud.region``), ``timeout``
(10 s), ``verify_ssl``, ``clientcert`` and ``clientkey``; basic
authentication from the URL's user and password.
"""

import collections
import gzip
import logging
import socket
import threading

from telemetry_lib.clients import http
from telemetry_lib.formats import otlp
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base
from telemetry_lib import ratelog

LOG = logging.getLogger(__name__)

#: What OTLP/HTTP says to retry.
RETRYABLE = frozenset((429, 502, 503, 504))


class OTLPPublisher(base.Publisher):
    """Sends batches as OTLP/HTTP metrics export requests."""

    url_options = frozenset(('encoding', 'compression', 'region')) | \
        http.CLIENT_URL_OPTIONS

    def __init__(self, conf, url):
        super().__init__(conf, url)
        self.encoding = url.get_str('encoding', 'protobuf',
                                    choices=tuple(otlp.CONTENT_TYPES))
        self.gzip = url.get_str('compression', 'gzip',
                                choices=('gzip', 'none')) == 'gzip'
        self.region = url.get('region')
        headers = {'Content-Type': otlp.CONTENT_TYPES[self.encoding]}
        if self.gzip:
            headers['Content-Encoding'] = 'gzip'
        self._client, self.target = http.client_for_url(url, headers, 10.0)
        if not url.path or url.path == '/':
            self.target = self.target.rstrip('/') + '/v1/metrics'
        self._host = conf.publisher.host or socket.gethostname()
        self._rejected = collections.Counter()
        self._lock = threading.Lock()
        self._log = ratelog.RateLimitedLog(LOG, str(url))

    def publish_samples(self, samples):
        body = otlp.encode(otlp.export_request(samples, self._host,
                                               self.region), self.encoding)
        if self.gzip:
            body = gzip.compress(body, compresslevel=5)
        resp = http.publisher_request(self._client, 'POST', self.target,
                                      data=body)
        if resp.ok:
            rejected, message = otlp.partial_success(
                resp.content, self.encoding)
            if rejected:
                with self._lock:
                    self._rejected['otlp_rejected'] += rejected
                self._log.problem('partial', 'the receiver rejected %d data '
                                  'point(s): %s', rejected,
                                  http.short(message))
            return
        raise http.publisher_error(
            resp, 'POST %s of %d sample(s): HTTP %d %s' % (
                self.target, len(samples), resp.status,
                http.short(resp.text)), RETRYABLE.__contains__)

    def adjustments(self):
        with self._lock:
            return dict(self._rejected)

    def close(self, timeout=None):
        self._client.close()
        return lifecycle.DONE
