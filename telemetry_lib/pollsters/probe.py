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
"""``http.probe``: a website probe, per URL, with the figures of the
seed's pycurl exporter -- DNS lookup, TCP connect, TLS handshake, time to
first byte, total time, status code, header and body size, download
speed -- as samples.

The URLs are the ``resources`` of the ``polling.yaml`` source::

    sources:
      - name: websites
        interval: 60
        meters: ["http.probe.*"]
        resources:
          - https://www.example.org/
          - http://10.0.0.5:8080/health

Each phase is timed on its own socket (requests and urllib3 hide
them), one connection per probe, never reused. A site that cannot be
reached still gives ``http.probe.status`` 0 and ``http.probe.success``
0, with the reason in the ``error`` metadata: a missing sample would look
like a probe that did not run. Times are in milliseconds, as the seed's.
"""

import concurrent.futures
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse

from oslo_config import cfg

from telemetry_lib.clients import http as http_words
from telemetry_lib.masking import redact
from telemetry_lib.pollsters import base
from telemetry_lib.sample import Sample

GROUP = 'probe'
OPTS = [
    cfg.FloatOpt('timeout', default=5.0, min=0.01, max=300,
                 help='Seconds for one whole probe (every phase and the '
                      'body together).'),
    cfg.IntOpt('max_redirects', default=0, min=0, max=10,
               help='Redirects followed (0: a 3xx is the answer). The '
                    'times are those of the last request.'),
    cfg.BoolOpt('verify_ssl', default=True,
                help="Verify the server's certificate and name (a failure "
                     'is a probe failure).'),
    cfg.StrOpt('ca_file', help='CA bundle to verify with (default: the '
                               "system's)."),
    cfg.IntOpt('max_body_bytes', default=1024 * 1024, min=0,
               max=1024 ** 3,
               help='Body bytes read at most; the size and speed count '
                    'what was read.'),
    cfg.IntOpt('concurrency', default=16, min=1, max=256,
               help='Probes run at once.'),
]

METERS = (
    ('http.probe.status', 'status'), ('http.probe.success', 'bool'),
    ('http.probe.dns.time', 'ms'), ('http.probe.connect.time', 'ms'),
    ('http.probe.tls.time', 'ms'), ('http.probe.first_byte.time', 'ms'),
    ('http.probe.total.time', 'ms'), ('http.probe.header.size', 'B'),
    ('http.probe.size', 'B'), ('http.probe.speed', 'B/s'),
)


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class ProbeFailed(Exception):
    """One probe's failure, as a short reason."""


class _Result:
    def __init__(self, url):
        self.url = url
        self.times = {}
        self.status = 0
        self.header_size = self.size = 0
        self.error = None
        self.address = None


class HTTPProbe(base.Pollster):
    """Probes every URL of its sources, concurrently, each within
    ``[probe] timeout``.
    """

    meters = tuple(name for name, _ in METERS)

    def __init__(self, conf):
        super().__init__(conf)
        register_opts(conf)
        self.opts = conf[GROUP]
        self.host = socket.gethostname()
        self._tls = ssl.create_default_context(cafile=self.opts.ca_file)
        if not self.opts.verify_ssl:
            self._tls.check_hostname = False
            self._tls.verify_mode = ssl.CERT_NONE

    def poll(self, timestamp, resources=None):
        urls = list(dict.fromkeys(resources or ()))
        if not urls:
            return []
        workers = min(self.opts.concurrency, len(urls))
        with concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix='probe') as pool:
            results = list(pool.map(self.probe, urls))
        out = []
        for r in results:
            out.extend(self._samples(r, timestamp))
        return out

    # -- one probe -----------------------------------------------------------

    def probe(self, url):
        result = _Result(url)
        started = time.monotonic()
        deadline = started + self.opts.timeout
        try:
            for _ in range(self.opts.max_redirects + 1):
                location = self._request(url, result, deadline)
                if location is None:
                    break
                url = urllib.parse.urljoin(url, location)
        except ProbeFailed as exc:
            result.error = str(exc)
            result.status = 0
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result.error = _reason(exc)
            result.status = 0
        result.times['total'] = (time.monotonic() - started) * 1000
        return result

    def _request(self, url, result, deadline):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ProbeFailed('not an http(s) URL')
        port = parts.port or (443 if parts.scheme == 'https' else 80)
        t0 = time.monotonic()
        address = self._resolve(parts.hostname, port)
        t1 = time.monotonic()
        sock = socket.socket(address[0], socket.SOCK_STREAM)
        try:
            sock.settimeout(_left(deadline))
            sock.connect(address[4])
            t2 = time.monotonic()
            result.address = address[4][0]
            if parts.scheme == 'https':
                sock.settimeout(_left(deadline))
                sock = self._tls.wrap_socket(sock,
                                             server_hostname=parts.hostname)
            t3 = time.monotonic()
            conn = http.client.HTTPConnection(parts.hostname, port,
                                              timeout=_left(deadline))
            conn.sock = sock
            path = parts.path or '/'
            if parts.query:
                path += '?' + parts.query
            conn.putrequest('GET', path, skip_accept_encoding=True)
            conn.putheader('User-Agent', 'telemetry_lib-probe')
            conn.putheader('Connection', 'close')
            conn.endheaders()
            sock.settimeout(_left(deadline))
            resp = conn.getresponse()
            t4 = time.monotonic()
            result.status = resp.status
            result.header_size = len(str(resp.msg)) + len(
                'HTTP/1.1 %d %s\r\n\r\n' % (resp.status, resp.reason))
            size = 0
            while size < self.opts.max_body_bytes:
                sock.settimeout(_left(deadline))
                chunk = resp.read1(min(65536,
                                       self.opts.max_body_bytes - size))
                if not chunk:
                    break
                size += len(chunk)
            t5 = time.monotonic()
            result.size = size
            result.times.update(
                dns=(t1 - t0) * 1000, connect=(t2 - t1) * 1000,
                tls=(t3 - t2) * 1000, first_byte=(t4 - t0) * 1000,
                body=(t5 - t4))
            location = resp.getheader('Location')
            return location if 300 <= resp.status < 400 and location \
                else None
        finally:
            sock.close()

    @staticmethod
    def _resolve(host, port):
        try:
            ipaddress.ip_address(host)
            flags = socket.AI_NUMERICHOST
        except ValueError:
            flags = 0
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=flags)
        except socket.gaierror as exc:
            raise ProbeFailed('DNS lookup failed: %s' % exc.strerror) \
                from None
        return infos[0]

    # -- samples -------------------------------------------------------------

    def _samples(self, r, timestamp):
        url = redact(r.url)
        md = {'url': url, 'probe_host': self.host,
              'address': r.address, 'error': r.error}
        success = 1 if r.error is None and 0 < r.status < 400 else 0
        values = {'http.probe.status': r.status,
                  'http.probe.success': success,
                  'http.probe.total.time': r.times['total']}
        if r.error is None:
            t = r.times
            values.update({
                'http.probe.dns.time': t['dns'],
                'http.probe.connect.time': t['connect'],
                'http.probe.tls.time': t['tls'],
                'http.probe.first_byte.time': t['first_byte'],
                'http.probe.header.size': r.header_size,
                'http.probe.size': r.size,
                'http.probe.speed': r.size / t['body'] if t['body'] > 0
                else 0.0})
        return [Sample(name, 'gauge', unit, values[name], resource_id=url,
                       timestamp=timestamp, resource_metadata=md)
                for name, unit in METERS if name in values]


def _left(deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProbeFailed('timed out')
    return left


def _reason(exc):
    if isinstance(exc, socket.gaierror):
        return 'DNS lookup failed: %s' % exc.strerror
    return http_words.describe_socket_error(exc)
