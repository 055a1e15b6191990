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
"""The agent's options (``[agent]``, ``[polling]``) and where it finds
its files.
"""

import os

from oslo_config import cfg

from telemetry_lib.agent import http as agent_http
from telemetry_lib.agent import notifications
from telemetry_lib.alarm import receiver
from telemetry_lib.alarm import service as alarm_service
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.pipeline import manager as pipeline_manager

POLLING_OPTS = [
    cfg.StrOpt('cfg_file', default='polling.yaml',
               help='Polling definition (Ceilometer format). A relative '
                    'name is looked up in the config directories, then '
                    "among the package's defaults."),
    cfg.BoolOpt('identity_name_discovery', default=False,
                help="Fill polled samples' project_name and user_name from "
                     'Keystone ([service_credentials]), as Ceilometer 24+ '
                     'does. Names are cached and looked up in the '
                     'background: a poll never waits; a name not known yet '
                     'comes with a later poll.'),
    cfg.FloatOpt('identity_name_ttl', default=600.0, min=1, max=86400,
                 help='Seconds a project or user name is kept.'),
    cfg.IntOpt('identity_name_cache_size', default=10000, min=1,
               max=10000000,
               help='Names kept at most (least recently used go).'),
]
AGENT_OPTS = [
    cfg.BoolOpt('http_enabled', default=True,
                help='Serve /metrics and /healthz.'),
    cfg.HostAddressOpt('http_host', default='127.0.0.1',
                       help='Address of the /metrics and /healthz endpoint '
                            '(IPv4 or IPv6); loopback unless you mean to '
                            'expose it.'),
    cfg.PortOpt('http_port', default=9610,
                help='Port of the endpoint; 0 picks a free one.'),
    cfg.FloatOpt('shutdown_timeout', default=10.0, min=0, max=3600,
                 help='Seconds to flush publishers on SIGTERM/SIGINT, and '
                      'to drain a publisher a reload removed.'),
    cfg.FloatOpt('healthz_high_water', default=0.9, min=0, max=1,
                 help='/healthz fails when a queue holds more than this '
                      'fraction of its bound.'),
    cfg.FloatOpt('healthz_failing_after', default=60.0, min=0, max=86400,
                 help='/healthz fails when a publisher has been failing '
                      '(every publish since the first failure failed) for '
                      'longer than this many seconds.'),
    cfg.IntOpt('pollster_workers', default=4, min=1, max=256,
               help='Threads that run pollsters.'),
]

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'data')


def register_opts(conf):
    conf.register_opts(POLLING_OPTS, group='polling')
    conf.register_opts(AGENT_OPTS, group='agent')
    conf.register_opts(agent_http.HTTP_OPTS, group='agent')
    pipeline_manager.register_opts(conf)
    alarm_service.register_opts(conf)
    receiver.register_opts(conf)
    notifications.register_opts(conf)


def find_config_file(conf, name):
    """An absolute or existing path as is; else the file in the config
    directories; else the package's default of that name. Returned
    absolute, so the agent can say which file it runs on.
    """
    if os.path.isabs(name) or os.path.exists(name):
        return os.path.abspath(name)
    found = conf.find_file(name)
    if found:
        return os.path.abspath(found)
    default = os.path.join(DATA_DIR, os.path.basename(name))
    if os.path.exists(default):
        return default
    raise ConfigError('not found in the config directories nor among the '
                      'defaults', path=name)
