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
"""Routing: each sample (or event) to every sink whose source selects it.

A :class:`PipelineManager` routes to one delivery per distinct publisher
URL; a URL named by several sinks is one publisher, and an item reaching it
by several routes is delivered to it once. The deliveries come from a
:class:`~telemetry_lib.delivery.DeliveryPool`: its own, or one shared with
the pipelines that replace it on reload.
"""

import logging

from oslo_config import cfg

from telemetry_lib import delivery
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import lifecycle
from telemetry_lib.pipeline.definitions import PipelineDefinition

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('pipeline_cfg_file', default='pipeline.yaml',
               help='Sample pipeline definition (Ceilometer format). A '
                    'relative name is looked up in the config directories, '
                    "then among the package's defaults."),
    cfg.StrOpt('event_pipeline_cfg_file', default='event_pipeline.yaml',
               help='Event pipeline definition (Ceilometer format), used '
                    'when the notification listener runs. Looked up like '
                    'pipeline_cfg_file.'),
]
GROUP = 'pipeline'


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class PipelineManager(lifecycle.Component):
    """Routes items to deliveries as a pipeline definition says.

    Construction validates every sink and publisher and does no I/O;
    :meth:`start` starts the deliveries (connections, listening ports,
    spools). :meth:`flush` and :meth:`close` return an
    :class:`~telemetry_lib.lifecycle.Outcome` (a part per publisher) within
    their timeout.

    :param conf: the caller's ``ConfigOpts``.
    :param definition: a :class:`PipelineDefinition`.
    :param delivery_factory: ``f(conf, url, kind) -> Delivery``; the
        default builds the URL's publisher with :func:`delivery.build`.
    :param pool: a :class:`~telemetry_lib.delivery.DeliveryPool` to take
        the deliveries from (shared across reloads); by default the
        pipeline has its own, closed with it.
    :raises ConfigError: when a publisher cannot be built, naming the file,
        line and sink.
    """

    def __init__(self, conf, definition, delivery_factory=None, pool=None):
        self.definition = definition
        self.kind = definition.kind
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else delivery.DeliveryPool(
            conf, delivery_factory)
        self.deliveries = {}
        try:
            for sink in definition.sinks.values():
                for url in sink.publishers:
                    if url not in self.deliveries:
                        self.deliveries[url] = self._acquire(sink, url)
        except Exception:
            if self._owns_pool:
                self.pool.close(0)
            raise
        self._routes = [
            (source.filter, tuple(dict.fromkeys(
                self.deliveries[url]
                for sink in source.sinks
                for url in definition.sinks[sink].publishers)))
            for source in definition.sources]
        self._by_name = {}

    def _where(self, sink, url, exc):
        return ConfigError(exc.reason if exc.where else str(exc),
                           path=self.definition.path, line=sink.line,
                           where="sink %r, publisher %r%s"
                           % (sink.name, str(url), ' (%s)' % exc.where
                              if exc.where else ''))

    def _acquire(self, sink, url):
        try:
            d = self.pool.acquire(url, self.kind)
        except ConfigError as exc:
            raise self._where(sink, url, exc) from None
        if self.kind == 'events' and not d.publisher.supports_events:
            raise ConfigError('publisher %r does not publish events'
                              % str(url), path=self.definition.path,
                              line=sink.line, where='sink %r' % sink.name)
        return d

    @property
    def keys(self):
        """The pool keys of this pipeline's deliveries."""
        return {self.pool.key(url, self.kind) for url in self.deliveries}

    def start(self):
        """Start every delivery not running yet.

        :raises ConfigError: naming the sink and publisher that could not
            start (a port in use, a locked spool); the deliveries this call
            started are closed again.
        """
        started = []
        try:
            for sink in self.definition.sinks.values():
                for url in sink.publishers:
                    d = self.deliveries[url]
                    if d.started:
                        continue
                    try:
                        d.start()
                    except ConfigError as exc:
                        raise self._where(sink, url, exc) from None
                    started.append(d)
        except Exception:
            delivery.drain(started, 'close', 0)
            raise
        return self

    @classmethod
    def from_file(cls, conf, path, kind='samples', **kwargs):
        return cls(conf, PipelineDefinition.load(path, kind), **kwargs)

    def targets(self, name):
        """The deliveries an item called ``name`` goes to."""
        targets = self._by_name.get(name)
        if targets is None:
            found = {}
            for selects, deliveries in self._routes:
                if selects(name):
                    found.update(dict.fromkeys(deliveries))
            targets = self._by_name[name] = tuple(found)
        return targets

    def _split(self, items):
        name_of = ((lambda s: s.name) if self.kind == 'samples'
                   else (lambda e: e.event_type))
        per_delivery = {}
        for item in items:
            for d in self.targets(name_of(item)):
                per_delivery.setdefault(d, []).append(item)
        return per_delivery

    def publish(self, items):
        """Route a batch; return the number of (item, delivery) pairs
        accepted. Never raises for a publisher's trouble.
        """
        if not items:
            return 0
        return sum(d.put(batch) for d, batch in self._split(items).items())

    def offer(self, items, high_water=1.0):
        """Route a batch only if every delivery it goes to takes all of its
        share below ``high_water`` (see :meth:`Delivery.offer`).

        :returns: ``(accepted, pairs)``: whether every delivery took its
            share, and how many (item, delivery) pairs were queued -- when
            not accepted, those are queued yet will come again with the
            redelivered items.
        """
        if not items:
            return True, 0
        per_delivery = self._split(items)
        if not all(d.has_room(len(b), high_water)
                   for d, b in per_delivery.items()):
            return False, 0
        queued = 0
        for d, batch in per_delivery.items():
            if not d.offer(batch, high_water):
                return False, queued
            queued += len(batch)
        return True, queued

    def flush(self, timeout=None):
        """Flush every delivery at once, all within ``timeout``; return
        their :class:`~telemetry_lib.lifecycle.Outcome` (one part per
        publisher).
        """
        return delivery.drain(self.deliveries.values(), 'flush', timeout)

    def close(self, timeout=None):
        """Close every delivery at once, all within ``timeout``; return
        their :class:`~telemetry_lib.lifecycle.Outcome`. A pipeline on a
        shared pool leaves its deliveries to the pool's owner.
        """
        if not self._owns_pool:
            return lifecycle.DONE
        return self.pool.close(timeout)

    def stats(self):
        return [d.stats() for d in self.deliveries.values()]

    def sinks(self):
        """``{sink name: [Delivery, ...]}``."""
        return {name: [self.deliveries[url] for url in sink.publishers]
                for name, sink in self.definition.sinks.items()}
