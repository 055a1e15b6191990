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
"""``pushgateway://HOST:9091/metrics/job/JOB[/LABEL/VALUE...]``, and
Ceilometer's ``prometheus://HOST:9091/metrics/job/JOB...``.

One request per batch per grouping key, in text format 0.0.4 with the right
content type, label values escaped, no timestamps (the Pushgateway refuses
them). Grouping-key values with ``/`` or empty go in the path as
``LABEL@base64/<urlsafe base64>``. With ``group_by=resource`` each resource
is a group of its own (``.../resource/<id>``), so the groups of resources
that ended can be DELETEd: on an event whose type is in ``end_events`` (its
``resource_id`` or ``instance_id`` trait names the resource), or after
``expire_after`` seconds without a sample. Groups never expire in the
Pushgateway itself, so without that a deleted VM's metrics stay for ever.

Outcomes: 2xx delivered; 4xx (a timestamped sample, a bad name) permanent;
5xx, timeouts and connection errors retryable.
"""

import base64
import logging
import threading
import time
from urllib import parse


from telemetry_lib.clients import http
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import prometheus as fmt
from telemetry_lib import lifecycle
from telemetry_lib.publisher import base

LOG = logging.getLogger(__name__)

DEFAULT_END_EVENTS = ('compute.instance.delete.end', 'volume.delete.end',
                      'image.delete', 'network.delete.end',
                      'snapshot.delete.end', 'floatingip.delete.end')


def encode_group(labels):
    """The path of a grouping key: ``/job/x/instance/y``, base64 where a
    value has ``/`` or is empty.
    """
    parts = []
    for name, value in labels:
        if value == '' or '/' in value:
            parts.append('%s@base64/%s' % (name, base64.urlsafe_b64encode(
                value.encode()).decode() or '='))
        else:
            parts.append('%s/%s' % (name, parse.quote(value, safe='')))
    return '/' + '/'.join(parts)


def decode_group(path):
    """``[(label, value)]`` from ``/metrics/job/JOB/LABEL/VALUE...``."""
    parts = path.strip('/').split('/')
    if len(parts) < 3 or parts[0] != 'metrics' or parts[1] != 'job' \
            or not len(parts) % 2:
        raise ValueError('expected /metrics/job/JOB[/LABEL/VALUE...]')
    labels = []
    for i in range(1, len(parts), 2):
        name, value = parts[i], parse.unquote(parts[i + 1])
        if name.endswith('@base64'):
            name = name[:-len('@base64')]
            value = '' if value == '=' else base64.urlsafe_b64decode(
                value + '=' * (-len(value) % 4)).decode()
        labels.append((name, value))
    return labels


class PushgatewayPublisher(base.Publisher):
    """Pushes samples to a Prometheus Pushgateway."""

    url_options = frozenset(('method', 'scheme', 'group_by', 'timeout',
                             'verify_ssl', 'end_events', 'expire_after',
                             'ssl'))
    supports_events = True

    def __init__(self, conf, url):
        super().__init__(conf, url)
        if len(url.hosts) != 1:
            raise InvalidURL('the pushgateway publisher needs one host',
                             where=str(url))
        try:
            self.group = decode_group(url.path)
        except ValueError as exc:
            raise InvalidURL('bad grouping key path %r: %s'
                             % (url.path, exc), where=str(url)) from None
        self.method = url.get_str('method', 'POST', choices=('POST', 'PUT'))
        self.scheme = url.get_str('scheme', 'stf', choices=fmt.SCHEMES)
        self.group_by = url.get_str('group_by', '',
                                    choices=('', 'resource'))
        self.timeout = url.get_float('timeout', 5.0, minimum=0.001,
                                     maximum=3600)
        self.end_events = tuple(filter(None, url.get_str(
            'end_events', ','.join(DEFAULT_END_EVENTS)).split(',')))
        self.expire_after = url.get_float('expire_after', 0.0, minimum=0)
        self.verify = url.get_verify()
        scheme = 'https' if url.scheme == 'https' or url.get_bool(
            'ssl', False) else 'http'
        self.base = '%s://%s' % (scheme, url.hosts[0])
        self.auth = ((url.username, url.password or '')
                     if url.username else None)
        self._series_of = fmt.SERIES_OF[self.scheme]
        self._publisher_id = base.publisher_id(conf)
        self._client = http.HttpClient(self.timeout, verify=self.verify,
                                       auth=self.auth)
        self._seen = {}             # resource id -> last push (monotonic)
        self._lock = threading.Lock()

    def group_url(self, extra=()):
        return self.base + '/metrics' + encode_group(self.group + list(
            extra))

    def publish_samples(self, samples):
        groups = {}
        for i, s in enumerate(samples):
            key = s.resource_id if self.group_by else None
            groups.setdefault(key, []).append(i)
        retry, lost, errors = [], [], []
        for resource, indexes in groups.items():
            body = self._body([samples[i] for i in indexes])
            url = self.group_url([('resource', resource)] if resource
                                 else ())
            try:
                self._request(self.method, url, body)
            except RetryableError as exc:
                retry.extend(indexes)
                errors.append(str(exc))
            except PermanentError as exc:
                lost.extend(indexes)
                errors.append(str(exc))
            else:
                if resource is not None:
                    with self._lock:
                        self._seen[resource] = time.monotonic()
        self._expire()
        if retry:
            raise RetryableError('; '.join(errors[:3]), items=retry,
                                 permanent_items=lost)
        if lost:
            raise PermanentError('; '.join(errors[:3]), items=lost)

    def _body(self, samples):
        families = {}
        for s in samples:
            name, type_, labels = self._series_of(s, self._publisher_id)
            fam = families.get(name)
            if fam is None:
                fam = families[name] = fmt.Family(name, type_, '%s (%s)' % (
                    s.name, s.unit))
            new = [n for n in labels if n not in fam.label_names]
            if new:
                fam.label_names.extend(sorted(new))
            # The last value of a series in the batch wins: each (name,
            # labels) once per push.
            fam.series[tuple(sorted(labels.items()))] = (labels, s.volume,
                                                         None)
        return fmt.render(families.values()).encode('utf-8')

    def publish_events(self, events):
        if not self.group_by:
            return      # one group for all: nothing ends with a resource
        for e in events:
            if e.event_type not in self.end_events:
                continue
            resource = e.trait('resource_id') or e.trait('instance_id')
            if resource:
                self.delete_group(str(resource))

    def delete_group(self, resource):
        """DELETE the group of one resource (group_by=resource)."""
        self._request('DELETE', self.group_url([('resource', resource)]),
                      None)
        with self._lock:
            self._seen.pop(resource, None)

    def _expire(self):
        if not (self.expire_after and self.group_by):
            return
        cutoff = time.monotonic() - self.expire_after
        with self._lock:
            old = [r for r, t in self._seen.items() if t < cutoff]
        for resource in old:
            try:
                self.delete_group(resource)
            except (RetryableError, PermanentError) as exc:
                LOG.warning('could not delete the group of %s: %s',
                            resource, exc)

    def _request(self, method, url, body):
        resp = http.publisher_request(
            self._client, method, url, data=body,
            headers={'Content-Type': fmt.TEXT_CONTENT_TYPE}
            if body is not None else {})
        if not resp.ok:
            raise http.publisher_error(resp, '%s %s: HTTP %d %s' % (
                method, url, resp.status, http.short(resp.text)))

    def close(self, timeout=None):
        self._client.close()
        return lifecycle.DONE
