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
"""The agent's notification side: definitions, event pipeline, listener.

Built when ``[notification] messaging_urls`` names a bus. The definitions
and the event pipeline are reloaded with the other files; the listener
keeps running across a reload and converts each batch with the
definitions current when the batch arrives.
"""

from telemetry_lib import lifecycle
from telemetry_lib.notification import converter as conv_mod
from telemetry_lib.notification import listener as listener_mod
from telemetry_lib.pipeline import definitions
from telemetry_lib.pipeline import PipelineDefinition
from telemetry_lib.pipeline import PipelineManager
from telemetry_lib import plugins


def register_opts(conf):
    listener_mod.register_opts(conf)


def enabled(conf):
    register_opts(conf)
    return bool(conf.notification.messaging_urls)


class Loaded:
    """What one load of the files gave: the converter and the event
    pipeline (sharing the agent's delivery pool).
    """

    def __init__(self, conf, pool, find_file):
        self.converter = conv_mod.Converter.from_conf(conf, find_file)
        path = find_file(conf, conf.pipeline.event_pipeline_cfg_file)
        self.events = PipelineManager(
            conf, PipelineDefinition.load(
                path, 'events', check_url=definitions.publisher_installed),
            pool=pool)

    @property
    def keys(self):
        return self.events.keys


class Notifications(lifecycle.Component):
    """Owns the listener; :meth:`deliver` is what it calls.

    :param pipelines: ``f() -> (sample PipelineManager, Loaded)``, the
        current ones.
    """

    def __init__(self, conf, pipelines):
        self.conf = conf
        self._pipelines = pipelines
        cls = plugins.load_class(plugins.LISTENER_NAMESPACE, {
            'direct': 'notification-direct'}.get(
                conf.notification.consumer, 'notification'))
        self.listener = cls(conf, self.deliver,
                            lambda: self._pipelines()[1].converter)
        self.high_water = conf.notification.high_water
        #: ``f(events)``: who else sees the converted events (the event
        #: alarms), after the pipelines took them.
        self.on_events = None

    def start(self):
        self.listener.start()

    def close(self, timeout=None):
        return self.listener.close(timeout)

    def deliver(self, samples, events):
        """Queue a batch's samples and events everywhere they go, or say
        it must come again: ``(accepted, pairs queued)``.
        """
        pipeline, loaded = self._pipelines()
        ok, queued = pipeline.offer(samples, self.high_water)
        if not ok:
            return False, queued
        ok, more = loaded.events.offer(events, self.high_water)
        if ok and self.on_events is not None:
            self.on_events(events)
        return ok, queued + more

    def describe(self, loaded):
        lines = [self.listener.describe(), loaded.converter.describe()]
        for url, d in sorted(loaded.events.deliveries.items()):
            lines.append('events go to %s' % d.publisher.url)
        return lines
