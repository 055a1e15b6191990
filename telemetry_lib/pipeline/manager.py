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

A :class:`PipelineManager` owns one delivery per distinct publisher URL; a
URL named by several sinks is one publisher, and an item reaching it by
several routes is delivered to it once.
"""

import logging
import threading

from oslo_config import cfg

from telemetry_lib import delivery
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.pipeline.definitions import PipelineDefinition

LOG = logging.getLogger(__name__)

OPTS = [
    cfg.StrOpt('pipeline_cfg_file', default='pipeline.yaml',
               help='Sample pipeline definition (Ceilometer format). A '
                    'relative name is looked up in the config directories, '
                    "then among the package's defaults."),
    cfg.StrOpt('event_pipeline_cfg_file', default='event_pipeline.yaml',
               help='Event pipeline definition (Ceilometer format).'),
]
GROUP = 'pipeline'


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class PipelineManager:
    """Routes items to deliveries as a pipeline definition says.

    :param conf: the caller's ``ConfigOpts``.
    :param definition: a :class:`PipelineDefinition`.
    :param delivery_factory: ``f(conf, url, kind) -> Delivery``; the
        default builds the URL's publisher with :func:`delivery.build`.
    :raises ConfigError: when a publisher cannot be built, naming the file,
        line and sink.
    """

    def __init__(self, conf, definition, delivery_factory=delivery.build):
        self.definition = definition
        self.kind = definition.kind
        self.deliveries = {}
        try:
            for sink in definition.sinks.values():
                for url in sink.publishers:
                    if url not in self.deliveries:
                        self.deliveries[url] = self._build(
                            conf, delivery_factory, sink, url)
        except Exception:
            self.close(0)
            raise
        self._routes = [
            (source.filter, tuple(dict.fromkeys(
                self.deliveries[url]
                for sink in source.sinks
                for url in definition.sinks[sink].publishers)))
            for source in definition.sources]
        self._by_name = {}

    def _build(self, conf, factory, sink, url):
        try:
            d = factory(conf, url, self.kind)
        except ConfigError as exc:
            raise ConfigError(exc.reason if exc.where else str(exc),
                              path=self.definition.path, line=sink.line,
                              where="sink %r, publisher %r%s"
                              % (sink.name, url, ' (%s)' % exc.where
                                 if exc.where else '')) from None
        if self.kind == 'events' and not d.publisher.supports_events:
            d.close(0)
            raise ConfigError('publisher %r does not publish events' % url,
                              path=self.definition.path, line=sink.line,
                              where='sink %r' % sink.name)
        return d

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

    def publish(self, items):
        """Route a batch; return the number of (item, delivery) pairs
        accepted. Never raises for a publisher's trouble.
        """
        if not items:
            return 0
        name_of = ((lambda s: s.name) if self.kind == 'samples'
                   else (lambda e: e.event_type))
        per_delivery = {}
        for item in items:
            for d in self.targets(name_of(item)):
                per_delivery.setdefault(d, []).append(item)
        return sum(d.put(batch) for d, batch in per_delivery.items())

    def flush(self, timeout=None):
        """Flush every delivery; True when all drained in time."""
        return all([bool(d.flush(timeout))
                    for d in self.deliveries.values()])

    def close(self, timeout=None):
        """Close every delivery at once, all within ``timeout``; return
        ``{url: DrainOutcome}``.
        """
        outcomes = {}

        def close_one(url, d):
            outcomes[url] = d.close(timeout)
        threads = [threading.Thread(target=close_one, args=item,
                                    daemon=True)
                   for item in self.deliveries.items()]
        for t in threads:
            t.start()
        for t in threads:
            # Delivery.close bounds itself; the margin covers its last step.
            t.join(None if timeout is None else timeout + 2.0)
        return outcomes

    def stats(self):
        return [d.stats() for d in self.deliveries.values()]

    def sinks(self):
        """``{sink name: [Delivery, ...]}``."""
        return {name: [self.deliveries[url] for url in sink.publishers]
                for name, sink in self.definition.sinks.items()}
