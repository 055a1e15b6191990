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
"""Writing samples and resource changes into Gnocchi: shared by the
``gnocchi://`` publisher and the Gnocchi storage driver.

Where Ceilometer's Gnocchi publisher loses data and time, this one:

* sends one request per delivery batch, however many polls or
  notifications it holds: ``batch_resources_metrics_measures(create_metrics
  =True)`` while it meets new resources or metrics, then, once it knows
  their metric ids, ``batch_metrics_measures`` by id, which costs Gnocchi
  about half as much per measure;
* on "Unknown resources" creates the missing ones concurrently (409 is
  fine) and resends; a resource that cannot be created costs only its own
  measures;
* keeps a bounded LRU of each resource's attribute hash (canonical JSON), so
  an unchanged resource is never PATCHed again, and a changed one once;
* ensures archive policies and resource types in a background thread, with
  retries, never blocking measures; measures waiting for one of them are
  retried, while a policy nobody defines is a permanent error for its
  metrics only;
* leaves ``filter_project`` off by default: it exists to stop a feedback
  loop when Gnocchi stores into Swift, and only hides the service project's
  resources on Ceph.

5xx, timeouts and connection errors are retryable; other 4xx permanent,
logged with sizes, never the payload.
"""

import collections
import concurrent.futures
import hashlib
import logging
import re
import threading
import urllib.parse

from gnocchiclient import exceptions as gnocchi_exc

from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.clients import gnocchi_resources
from telemetry_lib.clients.lru import AttributeCache
from telemetry_lib import jsoncodec
from telemetry_lib import ratelog

#: Gnocchi's answers and the transport's failures. One flat tuple: an
#: ``except`` clause refuses a tuple nested in another (a TypeError raised
#: in place of the error it was meant to catch).
_ANY_FAILURE = (gnocchi_exc.ClientException,) + gnocchi_client.UNAVAILABLE


def _in_path(rid):
    """A resource id as a URL path segment: gnocchiclient puts it there as
    is, and Cinder's pool ids (``host@backend#pool``) end at the ``#``.
    """
    return urllib.parse.quote(rid, safe='')


LOG = logging.getLogger(__name__)
_NO_POLICY = re.compile(r'Archive policy (\S+) does not exist')


def attribute_hash(body):
    """A deterministic digest of a resource's attributes."""
    return hashlib.sha1(jsoncodec.dumps_canonical(body)).hexdigest()


class _Resource:
    __slots__ = ('type', 'body', 'indexes', 'metrics')

    def __init__(self, type_, body):
        self.type = type_
        self.body = body
        self.indexes = []
        self.metrics = {}       # meter -> {'archive_policy_name', 'unit',
        #                                    'measures', 'indexes'}


class GnocchiWriter:
    """Writes samples into Gnocchi; shared by the publisher and the storage
    driver. ``write`` returns ``(retry, lost, errors)`` index lists.
    """

    def __init__(self, client, definitions, archive_policy=None,
                 filter_project=None, unmapped='generic', workers=10,
                 cache_size=10000, cache_ttl=3600.0, name='gnocchi'):
        self.client = client
        self.definitions = definitions
        self.archive_policy = archive_policy
        self.filter_project = filter_project
        self.unmapped = unmapped
        self.cache = AttributeCache(cache_size, cache_ttl)
        # (resource id, meter) -> metric id, for the by-id batch endpoint.
        self.metric_ids = AttributeCache(cache_size * 10, cache_ttl)
        self.requests = collections.Counter()
        self.adjustments = collections.Counter()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix='gnocchi')
        self._log = ratelog.RateLimitedLog(LOG, name)
        self._lock = threading.Lock()
        # What the background thread still has to make sure exists.
        self.pending_policies = {p['name'] for p in
                                 definitions.archive_policies}
        self.pending_types = set(definitions.resource_types()) - {'generic'}
        self._stop = threading.Event()
        self._ensurer = threading.Thread(target=self._ensure, daemon=True,
                                         name='gnocchi ensure')

    def start(self):
        """Start making sure the archive policies and resource types
        exist, in the background (Gnocchi may not be up yet).
        """
        with self._lock:
            if self._ensurer.ident is None and not self._stop.is_set():
                self._ensurer.start()

    # -- background: archive policies and resource types --------------------

    def _ensure(self):
        delay = 0.5
        while not self._stop.is_set() and (self.pending_policies
                                           or self.pending_types):
            for policy in self.definitions.archive_policies:
                if policy['name'] in self.pending_policies:
                    self._ensure_one('policy', policy['name'],
                                     self.client.archive_policy.create,
                                     policy)
            types = self.definitions.resource_types()
            for name in list(self.pending_types):
                self._ensure_one('type', name,
                                 self.client.resource_type.create,
                                 {'name': name, 'attributes': {
                                     a: {'type': 'string', 'required': False,
                                         'max_length': 255}
                                     for a in types[name]}})
            if self.pending_policies or self.pending_types:
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)

    def _ensure_one(self, kind, name, create, body):
        try:
            self._count('ensure_%s' % kind)
            create(body)
        except gnocchi_exc.ClientException as exc:
            if getattr(exc, 'code', None) != 409:
                self._log.problem('ensure', 'cannot create %s %s yet: %s',
                                  kind, name, exc)
                return
        except gnocchi_client.UNAVAILABLE as exc:
            self._log.problem('ensure', 'Gnocchi unavailable while '
                              'ensuring %s %s: %s', kind, name, exc)
            return
        pending = self.pending_policies if kind == 'policy' \
            else self.pending_types
        pending.discard(name)

    # -- samples -----------------------------------------------------------

    def _count(self, what, n=1):
        with self._lock:
            self.requests[what] += n

    def _group(self, samples, lost):
        resources = {}
        for i, s in enumerate(samples):
            if self.filter_project and s.project_id == self.filter_project:
                self.adjustments['filtered_project'] += 1
                continue
            found = self.definitions.lookup(s.name)
            if found is None:
                if self.unmapped == 'drop':
                    self.adjustments['unmapped_meter_dropped'] += 1
                    lost.append(i)
                    continue
                definition, policy = None, self.definitions.default_policy
            else:
                definition, policy = found
            rid = s.resource_id.replace('/', '_')
            res = resources.get(rid)
            if res is None:
                body = {'id': rid, 'project_id': s.project_id,
                        'user_id': s.user_id}
                if definition is not None:
                    doc = {'resource_metadata': s.resource_metadata,
                           'resource_id': s.resource_id,
                           'project_id': s.project_id,
                           'user_id': s.user_id}
                    for attr, paths in definition.attributes.items():
                        value = gnocchi_resources.evaluate(paths, doc)
                        if value is not None:
                            body[attr] = str(value)
                res = resources[rid] = _Resource(
                    definition.resource_type if definition else 'generic',
                    body)
            res.indexes.append(i)
            metric = res.metrics.get(s.name)
            if metric is None:
                metric = res.metrics[s.name] = {
                    'archive_policy_name': self.archive_policy or policy,
                    'unit': s.unit, 'measures': [], 'indexes': []}
            metric['measures'].append({'timestamp': s.timestamp.isoformat(),
                                       'value': s.volume})
            metric['indexes'].append(i)
        return resources

    def write(self, samples):
        lost, retry, errors = [], [], []
        resources = self._group(samples, lost)
        if resources and self._write_by_id(resources, retry, errors):
            self._sync_attributes(resources, set())
            return retry, lost, errors
        created = set()
        rounds = 0
        while resources:
            rounds += 1
            if rounds > 4:
                # Gnocchi keeps saying something we already handled.
                errors.append('gave up after %d attempts' % (rounds - 1))
                for res in resources.values():
                    retry.extend(res.indexes)
                resources = {}
                break
            payload = {rid: {m: {k: v for k, v in spec.items()
                                 if k != 'indexes'}
                             for m, spec in res.metrics.items()}
                       for rid, res in resources.items()}
            try:
                self._count('batch')
                self.client.metric.batch_resources_metrics_measures(
                    payload, create_metrics=True)
                break
            except gnocchi_exc.BadRequest as exc:
                message = getattr(exc, 'message', None)
                if isinstance(message, dict) and message.get(
                        'cause') == 'Unknown resources':
                    unknown = [d['original_resource_id'] if isinstance(
                        d, dict) else d for d in message.get('detail', ())]
                    self._create(resources, unknown, created, retry, lost,
                                 errors)
                    continue
                policy = _NO_POLICY.search(str(message or exc))
                if policy:
                    self._drop_policy(resources, policy.group(1), retry,
                                      lost, errors)
                    continue
                errors.append(self._describe('batch', exc, payload))
                for res in resources.values():
                    lost.extend(res.indexes)
                resources = {}
            except gnocchi_exc.ClientException as exc:
                errors.append(self._describe('batch', exc, payload))
                target = retry if (getattr(exc, 'code', 500) or 500) >= 500 \
                    or exc.code == 429 else lost
                for res in resources.values():
                    target.extend(res.indexes)
                resources = {}
            except gnocchi_client.UNAVAILABLE as exc:
                errors.append('Gnocchi unavailable: %s' % exc)
                for res in resources.values():
                    retry.extend(res.indexes)
                resources = {}
        if resources:
            self._sync_attributes(resources, created)
            self._learn_ids(resources)
        return retry, lost, errors

    def _write_by_id(self, resources, retry, errors):
        """Send by metric id when every metric's id is known; True when
        the batch is settled (delivered or failed), False to send it by
        name instead.
        """
        payload = {}
        for rid, res in resources.items():
            for meter, spec in res.metrics.items():
                mid = self.metric_ids.get((rid, meter))
                if mid is None:
                    return False
                payload[mid] = spec['measures']
        try:
            self._count('batch')
            self.client.metric.batch_metrics_measures(payload)
            return True
        except gnocchi_exc.BadRequest as exc:
            # A metric deleted since (its resource ended): forget the ids
            # and let the by-name path sort it out.
            for rid, res in resources.items():
                for meter in res.metrics:
                    self.metric_ids.discard((rid, meter))
            self._log.problem('by_id', 'by-id batch refused (%s); sending '
                              'by name', str(getattr(exc, 'message', exc))
                              [:200])
            return False
        except gnocchi_exc.ClientException as exc:
            if (exc.code or 500) < 500 and exc.code != 429:
                return False
            errors.append(self._describe('batch', exc, {
                rid: res.metrics for rid, res in resources.items()}))
        except gnocchi_client.UNAVAILABLE as exc:
            errors.append('Gnocchi unavailable: %s' % exc)
        for res in resources.values():
            retry.extend(res.indexes)
        return True

    def _learn_ids(self, resources):
        """Look up, once, the metric ids of resources met by name."""
        unknown = [rid for rid, res in resources.items()
                   if any(self.metric_ids.get((rid, m)) is None
                          for m in res.metrics)]
        for i in range(0, len(unknown), 200):
            chunk = unknown[i:i + 200]
            try:
                self._count('search')
                found = self.client.resource.search(
                    resource_type='generic', limit=len(chunk),
                    query={'in': {'original_resource_id': chunk}})
            except _ANY_FAILURE as exc:
                self._log.problem('ids', 'cannot look up metric ids: %s',
                                  exc)
                return
            for r in found:
                rid = r.get('original_resource_id')
                for meter, mid in (r.get('metrics') or {}).items():
                    self.metric_ids.set((rid, meter), mid)

    def _describe(self, what, exc, payload):
        n = sum(len(m['measures']) for r in payload.values()
                for m in r.values())
        return ('%s of %d measures for %d resources failed: HTTP %s %s'
                % (what, n, len(payload), getattr(exc, 'code', '?'),
                   str(getattr(exc, 'message', exc))[:200]))

    def _drop_policy(self, resources, policy, retry, lost, errors):
        """Take the metrics of a missing archive policy out of the batch:
        retried if it is one being created, lost (counted) otherwise.
        """
        waiting = policy in self.pending_policies
        target = retry if waiting else lost
        if not waiting:
            errors.append('archive policy %s does not exist; its metrics '
                          'are dropped' % policy)
            self.adjustments['unknown_archive_policy'] += 1
        for rid in list(resources):
            res = resources[rid]
            for meter in [m for m, spec in res.metrics.items()
                          if spec['archive_policy_name'] == policy]:
                target.extend(res.metrics.pop(meter)['indexes'])
            if not res.metrics:
                del resources[rid]

    def _create(self, resources, unknown, created, retry, lost, errors):
        """Create the unknown resources concurrently; drop from the batch
        those that could not be created (their samples retried or lost).
        """
        todo = [rid for rid in unknown if rid in resources]
        futures = {self._pool.submit(self._create_one, resources[rid]): rid
                   for rid in todo}
        for future, rid in futures.items():
            outcome = future.result()
            if outcome is None:
                created.add(rid)
                continue
            res = resources.pop(rid)
            kind, message = outcome
            errors.append('resource %s (%s): %s' % (rid, res.type, message))
            (retry if kind == 'retry' else lost).extend(res.indexes)

    def _create_one(self, res):
        self._count('create')
        try:
            self.client.resource.create(res.type, res.body)
        except gnocchi_exc.ClientException as exc:
            if exc.code == 409:
                return None
            if exc.code == 404 and res.type in self.pending_types:
                return 'retry', 'its resource type is not created yet'
            if (exc.code or 500) >= 500:
                return 'retry', str(exc)
            return 'lost', str(exc)
        except gnocchi_client.UNAVAILABLE as exc:
            return 'retry', str(exc)
        self.cache.set(res.body['id'], attribute_hash(res.body))
        return None

    def _sync_attributes(self, resources, created):
        """PATCH the resources whose attributes changed (or are unknown to
        the cache), concurrently; unchanged ones cost nothing.
        """
        changed = []
        for rid, res in resources.items():
            if rid in created:
                continue
            digest = attribute_hash(res.body)
            if self.cache.get(rid) != digest:
                changed.append((rid, res, digest))
        for future in [self._pool.submit(self._patch_one, *c)
                       for c in changed]:
            future.result()

    def _patch_one(self, rid, res, digest):
        self._count('patch')
        body = {k: v for k, v in res.body.items() if k != 'id'}
        try:
            self.client.resource.update(res.type, _in_path(rid), body)
        except _ANY_FAILURE as exc:
            # Attributes are metadata: the measures are stored; try again
            # with the next batch.
            self._log.problem('patch', 'cannot update resource %s: %s',
                              rid, exc)
            return
        self.cache.set(rid, digest)

    # -- events --------------------------------------------------------------

    def events(self, events):
        """Create, update or end resources as events say; ``(retry, lost,
        errors)`` as ``write``.
        """
        retry, lost, errors = [], [], []
        for i, event in enumerate(events):
            for definition, action in self.definitions.for_event(
                    event.event_type):
                id_trait = definition.event_attributes.get('id',
                                                           'resource_id')
                rid = event.trait(id_trait)
                if not rid:
                    continue
                rid = str(rid).replace('/', '_')
                try:
                    self._event_action(definition, action, rid, event)
                except gnocchi_exc.ClientException as exc:
                    errors.append('%s of %s: %s' % (action, rid, exc))
                    if exc.code != 404:
                        ((retry if (exc.code or 500) >= 500 else lost)
                         ).append(i)
                except gnocchi_client.UNAVAILABLE as exc:
                    errors.append(str(exc))
                    retry.append(i)
        return retry, lost, errors

    def _event_action(self, definition, action, rid, event):
        if action == 'delete':
            ended = {'ended_at': event.generated.isoformat()}
            self._count('patch')
            self.client.resource.update(definition.resource_type,
                                        _in_path(rid), ended)
            self.cache.discard(rid)
            self._end_associated(definition, rid, ended)
            return
        body = {attr: str(event.trait(trait))
                for attr, trait in definition.event_attributes.items()
                if attr != 'id' and event.trait(trait) is not None}
        try:
            self._count('create')
            self.client.resource.create(definition.resource_type,
                                        dict(body, id=rid))
        except gnocchi_exc.ClientException as exc:
            if exc.code != 409:
                raise
            self._count('patch')
            self.client.resource.update(definition.resource_type,
                                        _in_path(rid), body)

    def _end_associated(self, definition, rid, ended):
        # An instance's disks and NICs end with it (Ceilometer's
        # event_associated_resources): those not ended yet, found by query.
        for rtype, query in definition.associated.items():
            self._count('search')
            found = self.client.resource.search(
                resource_type=rtype, limit=1000, query={'and': [
                    {'=': {'ended_at': None}},
                    gnocchi_resources.fill_query(query, rid)]})
            for res in found:
                self._count('patch')
                self.client.resource.update(rtype, res['id'], ended)
                self.cache.discard(res.get('original_resource_id'))

    def close(self):
        self._stop.set()
        self._pool.shutdown(wait=False)
