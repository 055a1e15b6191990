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
"""The agent's collector inputs: receivers of Ceilometer's ``udp://`` and
``tcp://`` publishers, started when ``[collector] udp_listen`` or
``tcp_listen`` is set, and the listeners ``[collector] listeners`` names
(third parties' included). What they receive goes through the current
sample pipeline, all-or-nothing below ``[collector] high_water``.
"""

from telemetry_lib.collector import base as collector_base
from telemetry_lib.collector import sockets
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import lifecycle
from telemetry_lib import plugins


def enabled(conf):
    sockets.register_opts(conf)
    return bool(conf.collector.udp_listen or conf.collector.tcp_listen
                or conf.collector.listeners)


class SocketInputs(lifecycle.Component):
    """Owns the receivers and listeners.

    :param pipeline: ``f() -> PipelineManager``, the current sample one.
    """

    def __init__(self, conf, pipeline):
        sockets.register_opts(conf)
        self._pipeline = pipeline
        self.high_water = conf.collector.high_water
        self.receivers = []
        names = [name for name, option in (('udp', 'udp_listen'),
                                           ('tcp', 'tcp_listen'))
                 if conf.collector[option]]
        names += [n for n in conf.collector.listeners if n not in names]
        for name in names:
            if name in ('notification', 'notification-direct'):
                raise ConfigError('the notification listener starts from '
                                  '[notification] messaging_urls, not '
                                  '[collector] listeners',
                                  where='[collector] listeners')
            cls = plugins.load_class(plugins.LISTENER_NAMESPACE, name,
                                     base=collector_base.Listener)
            self.receivers.append(cls(conf, self.deliver))

    def deliver(self, samples, events):
        return self._pipeline().offer(samples, self.high_water)

    def start(self):
        try:
            for r in self.receivers:
                r.start()
        except Exception:
            self.close(1.0)
            raise

    def close(self, timeout=None):
        """Stop every receiver, all within ``timeout`` seconds."""
        deadline = lifecycle.Deadline(timeout)
        return lifecycle.Outcome.of(
            {r.describe(): r.close(deadline.left()) for r in self.receivers})

    def describe(self):
        return [r.describe() for r in self.receivers]
