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
"""Dynamic pollsters at work: fetch (an OpenStack API through the
catalog with a Keystone token, any other URL, or a host command), follow
the pages, take the entries, make the samples.

A fetch that fails (unreachable, an HTTP error, a body that does not
parse) fails the poll with one line (:class:`PollsterError`), counted by
the agent. An entry that gives no sample (no resource id, a value in
``skip_sample_values``, a value that is not a number after
``value_mapping``, an operation that fails on it) is skipped and
counted, with a warning at most once a minute per pollster and reason.
"""

import collections
import logging
import subprocess
import time
import urllib.parse

import requests

from oslo_config import cfg

from telemetry_lib.clients import http as http_words
from telemetry_lib.clients import keystone
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import PollsterError
from telemetry_lib import jsoncodec
from telemetry_lib.masking import redact
from telemetry_lib.pollsters import base
from telemetry_lib.pollsters.dynamic import definition as definition_mod
from telemetry_lib.pollsters.dynamic import expression
from telemetry_lib import ratelog
from telemetry_lib.sample import Sample

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.ListOpt('pollsters_definitions_dirs',
                default=['/etc/telemetry_lib/pollsters.d'],
                help="Directories of dynamic pollster definitions "
                     "(Ceilometer's pollsters.d format; point it at "
                     "/etc/ceilometer/pollsters.d to reuse those). Read at "
                     'start.'),
]
MAX_PAGES = 1000
MAX_RESPONSE = 64 * 1024 * 1024


def register_opts(conf):
    conf.register_opts(OPTS, group='polling')


def load_all(conf):
    """``{name: DynamicPollster}`` of every definition found.

    :raises ConfigError: for a bad file or definition.
    """
    register_opts(conf)
    return {name: DynamicPollster(conf, d) for name, d in
            definition_mod.load_dirs(
                conf.polling.pollsters_definitions_dirs).items()}


class DynamicPollster(base.Pollster):
    """One definition of ``pollsters.d``."""

    def __init__(self, conf, definition):
        super().__init__(conf)
        self.definition = definition
        self.meters = (definition.name,)
        self._session = None
        self._auth = definition.authentication()
        if definition.kind == 'openstack' or definition.extras:
            try:
                self._session = keystone.make_session(conf)
            except ConfigError as exc:
                # Say which definition needs the credentials.
                raise ConfigError(str(exc), path=definition.path,
                                  line=definition.line,
                                  where='pollster %r' % definition.name
                                  ) from None
            self._opts = conf[keystone.GROUP]
        self._http = http_words.HttpClient(
            definition.timeout, auth=self._auth, max_body=MAX_RESPONSE)
        self._cache = {}            # url -> (expiry, parsed response)
        self._log = ratelog.RateLimitedLog(LOG, definition.name)
        self.skipped = collections.Counter()

    def declared_meter(self, name):
        # Multi-metric: "dynamic.x.{category}" makes "dynamic.x.get_obj".
        return self.definition.name

    # -- fetching ------------------------------------------------------------

    def _endpoint(self, service_type):
        try:
            url = self._session.get_endpoint(
                service_type=service_type, interface=self._opts.interface,
                region_name=self._opts.region_name)
        except Exception as exc:        # keystoneauth's many errors
            raise PollsterError('no %s endpoint in the catalog: %s' % (
                service_type, http_words.short(exc, 160))) from None
        if not url:
            raise PollsterError('no %s endpoint in the catalog'
                                % service_type)
        return url

    def _url(self, path, endpoint_type):
        if definition_mod.is_absolute(path):
            return path
        # As Ceilometer: "v2.0/x" goes under the endpoint, "/v3/x" replaces
        # its path.
        endpoint = self._endpoint(endpoint_type)
        return urllib.parse.urljoin(endpoint.rstrip('/') + '/', path)

    def _get(self, url, openstack, headers, handlers):
        d = self.definition
        if openstack:
            try:
                resp = self._session.get(url, headers=headers or None,
                                         timeout=d.timeout, raise_exc=False)
            except Exception as exc:
                raise PollsterError('GET %s: %s' % (
                    redact(url), http_words.describe(exc)
                    if isinstance(exc, requests.RequestException)
                    else http_words.short(exc, 160))) from None
            status, text = resp.status_code, resp.text
            too_large = len(resp.content) > MAX_RESPONSE
        else:
            try:
                answer = self._http.request('GET', url,
                                            headers=headers or None)
            except http_words.Unanswered as exc:
                raise PollsterError('GET %s: %s' % (redact(url), exc)
                                    ) from None
            status, text, too_large = (answer.status, answer.text,
                                       answer.truncated)
        if status >= 400:
            raise PollsterError('GET %s: HTTP %d: %s' % (
                redact(url), status, http_words.short(text, 160)))
        if too_large:
            raise PollsterError('GET %s: answer larger than %d bytes' % (
                redact(url), MAX_RESPONSE))
        return _parse(text, handlers, url)

    def _run_command(self, command):
        try:
            out = subprocess.run(command, shell=True, capture_output=True,
                                 text=True, errors='replace',
                                 timeout=self.definition.timeout)
        except subprocess.TimeoutExpired:
            raise PollsterError('command %r timed out after %ss' % (
                command, self.definition.timeout)) from None
        if out.returncode:
            raise PollsterError('command %r exited %d: %s' % (
                command, out.returncode, http_words.short(out.stderr, 160)))
        return _parse(out.stdout, self.definition.response_handlers,
                      command)

    def _responses(self):
        """Every page of the definition's answer."""
        d = self.definition
        if d.kind == 'command':
            yield self._run_command(d.host_command)
            return
        url = self._url(d.url_path, d.endpoint_type)
        seen = set()
        while url and url not in seen and len(seen) < MAX_PAGES:
            seen.add(url)
            response = self._get(url, d.kind == 'openstack', d.headers,
                                 d.response_handlers)
            yield response
            url = None
            if d.next_url is not None:
                try:
                    url = d.next_url(response)
                except expression.EvaluationError:
                    url = None      # no next link on the last page
                if url and not definition_mod.is_absolute(url):
                    url = self._url(url, d.endpoint_type)

    # -- sampling ------------------------------------------------------------

    def poll(self, timestamp, resources=None):
        out = []
        for response in self._responses():
            for entry in self._entries(response):
                out.extend(self._samples(entry, timestamp))
        return out

    def _entries(self, response):
        d = self.definition
        if d.entries is not None:
            try:
                value = d.entries(response)
            except expression.EvaluationError as exc:
                raise PollsterError('response_entries_key: %s' % exc) \
                    from None
        elif isinstance(response, dict) and response:
            # As Ceilometer: without response_entries_key, the first key.
            value = next(iter(response.values()))
        else:
            value = response
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    def _skip(self, reason, detail=''):
        self.skipped[reason] += 1
        self._log.problem(reason, 'entry skipped: %s%s', reason,
                          ': %s' % detail if detail else '')

    def _samples(self, entry, timestamp):
        d = self.definition
        try:
            ids = {k: a(entry) for k, a in d.ids.items()}
            md = dict(d.base_metadata)
            for text, attr in d.metadata:
                md[text] = attr(entry)
            if d.multi_key:
                values = [(d.name.replace('{%s}' % d.placeholder, str(
                    item.get(d.placeholder))), d.multi_attr(item))
                    for item in (definition_mod.lookup(entry, d.multi_key)
                                 or []) if isinstance(item, dict)]
            else:
                values = [(d.name, d.value(entry))]
        except expression.EvaluationError as exc:
            self._skip('operation failed', str(exc))
            return []
        for old, new in d.metadata_mapping.items():
            if old in md:
                md[new] = md[old]
                if not d.preserve_mapped_metadata:
                    del md[old]
        resource_id = ids['resource_id_attribute']
        if resource_id is None or resource_id == '':
            self._skip('no resource id', d.resource_id_attribute)
            return []
        samples = []
        for name, value in values:
            if value in d.skip_sample_values:
                self.skipped['skip_sample_values'] += 1
                continue
            if d.value_mapping:
                value = d.value_mapping.get(value, d.value_mapping.get(
                    str(value), d.default_value))
            try:
                volume = float(value) if not isinstance(value, bool) \
                    else int(value)
            except (TypeError, ValueError):
                self._skip('value not a number', '%s=%r' % (name, value))
                continue
            if d.extras:
                self._enrich(md, name, volume, ids, resource_id)
            try:
                samples.append(Sample(
                    name, d.sample_type, d.unit, volume,
                    user_id=_text(ids['user_id_attribute']),
                    project_id=_text(ids['project_id_attribute']),
                    resource_id=str(resource_id), timestamp=timestamp,
                    resource_metadata=md))
            except ValueError as exc:
                self._skip('invalid sample', str(exc))
        return samples

    def _enrich(self, md, name, volume, ids, resource_id):
        d = self.definition
        sample = {'name': name, 'volume': volume, 'resource_id': resource_id,
                  'user_id': ids['user_id_attribute'],
                  'project_id': ids['project_id_attribute'],
                  'resource_metadata': dict(md)}
        captured = {}
        for extra, url_expr, value_attr in d.extras:
            try:
                path = url_expr(sample=sample,
                                extra_metadata_captured=captured)
                endpoint = extra.get('endpoint_type', d.endpoint_type)
                url = self._url(path, endpoint)
                ttl = extra.get('extra_metadata_fields_cache_seconds',
                                d.extra_metadata_fields_cache_seconds)
                cached = self._cache.get(url)
                if cached is None or cached[0] < time.monotonic():
                    response = self._get(url, not definition_mod.is_absolute(
                        path), extra.get('headers') or {}, extra.get(
                        'response_handlers', ['json']))
                    cached = (time.monotonic() + ttl, response)
                    if len(self._cache) > 10000:
                        self._cache.clear()
                    self._cache[url] = cached
                value = value_attr(cached[1])
            except (PollsterError, expression.EvaluationError) as exc:
                self._skip('extra metadata failed', str(exc))
                continue
            captured[extra['name']] = value
            md.setdefault(extra['name'], value)


def _text(value):
    return None if value is None else str(value)


def _parse(text, handlers, where):
    for handler in handlers:
        try:
            if handler == 'json':
                return jsoncodec.loads(text)
            if handler == 'xml':
                import xmltodict
                return xmltodict.parse(text)
            return [{'out': text}]
        except Exception:       # the next handler may understand it
            continue
    raise PollsterError('%s: the answer is not %s' % (
        redact(str(where))[:200], ' nor '.join(handlers)))
