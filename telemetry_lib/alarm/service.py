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
"""Alarms inside a long-running service: the options, the file, the
evaluator and the deliveries of the action URLs, on a shared pool.
"""

import os

from oslo_config import cfg

from telemetry_lib.alarm import actions
from telemetry_lib.alarm import definitions
from telemetry_lib.alarm import evaluator
from telemetry_lib.alarm import state
from telemetry_lib import delivery
from telemetry_lib import lifecycle

GROUP = 'alarms'
OPTS = [
    cfg.StrOpt('definitions_file', default='',
               help='Alarms file (YAML; see the user guide). Empty: no '
                    'alarms. Reloaded on SIGHUP with the pipelines.'),
    cfg.StrOpt('state_file',
               help='SQLite file of alarm states and history (default: '
                    'alarms.sqlite beside the default SQLite storage).'),
    cfg.IntOpt('history_size', default=1000, min=1, max=1000000,
               help='Transitions kept per alarm.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def state_file(conf):
    register_opts(conf)
    if conf[GROUP].state_file:
        return conf[GROUP].state_file
    from telemetry_lib.storage import sqlite
    return os.path.join(os.path.dirname(sqlite.default_path()),
                        'alarms.sqlite')


def open_store(conf):
    """The alarm state store of ``conf`` (opened on first use)."""
    return state.StateStore(state_file(conf),
                            keep=conf[GROUP].history_size)


def pool_factory(conf, url, kind):
    """Deliveries for a pool shared by pipelines and alarms."""
    if kind == 'actions':
        return actions.build(conf, url)
    return delivery.build(conf, url, kind)


def load(path):
    return definitions.AlarmsDefinition.load(
        path, check_url=actions.check_installed)


class AlarmService(lifecycle.Component):
    """The alarms of one file, evaluated, their actions on ``pool``.

    Construction loads and validates the file and builds the action
    deliveries (no I/O); :meth:`start` starts them and the evaluator.

    :raises ConfigError: for a bad file or action URL.
    """

    def __init__(self, conf, path, pool, store=None, storages=None):
        self.conf = conf
        self.definition = load(path)
        self.pool = pool
        self.store = store or open_store(conf)
        self.storages = storages or evaluator.Storages(conf)
        self.deliveries = {}
        for alarm in self.definition.alarms.values():
            for urls in alarm.actions.values():
                for url in urls:
                    if url not in self.deliveries:
                        self.deliveries[url] = pool.acquire(url, 'actions')
        self.evaluator = evaluator.Evaluator(
            self.definition, self.store, self.storages,
            self.deliveries.__getitem__)

    @property
    def keys(self):
        return {self.pool.key(url, 'actions') for url in self.deliveries}

    def start(self):
        for d in self.deliveries.values():
            d.start()
        self.evaluator.start()
        return self

    def close(self, timeout=None):
        """Stop evaluating (the deliveries are the pool's to close)."""
        return self.evaluator.close(timeout)
