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
"""Every option of telemetry_lib, for oslo-config-generator and the docs.

The options are declared beside the code that reads them; this module only
gathers them (entry point ``oslo.config.opts``: ``telemetry_lib``).
"""

import itertools

from oslo_config import cfg
from oslo_log import log

from telemetry_lib.agent import coordination
from telemetry_lib.agent import http as agent_http
from telemetry_lib.agent import options as agent_options
from telemetry_lib.alarm import receiver
from telemetry_lib.alarm import service as alarm_service
from telemetry_lib.api import service as api_service
from telemetry_lib.clients import gnocchi as gnocchi_client
from telemetry_lib.clients import keystone
from telemetry_lib.collector import sockets
from telemetry_lib.delivery import options as delivery_options
from telemetry_lib.notification import converter as notification_conv
from telemetry_lib.notification import listener as notification
from telemetry_lib.pipeline import manager as pipeline_manager
from telemetry_lib.pollsters.compute import pollsters as compute
from telemetry_lib.pollsters.dynamic import pollster as dynamic
from telemetry_lib.pollsters import probe
from telemetry_lib.publisher import amqp1 as amqp1_publisher
from telemetry_lib.publisher import base as publisher_base
from telemetry_lib.publisher import notifier as notifier_publisher
from telemetry_lib.storage import base as storage_base
from telemetry_lib.storage import sqlite as sqlite_storage


def list_opts():
    return [
        ('DEFAULT', itertools.chain(delivery_options.STATE_OPTS)),
        ('agent', itertools.chain(agent_options.AGENT_OPTS,
                                  agent_http.HTTP_OPTS)),
        (alarm_service.GROUP, itertools.chain(alarm_service.OPTS,
                                              api_service.ALARM_DB_OPTS)),
        (api_service.GROUP, itertools.chain(api_service.OPTS)),
        (receiver.GROUP, itertools.chain(receiver.OPTS)),
        (amqp1_publisher.GROUP, itertools.chain(amqp1_publisher.OPTS)),
        (compute.GROUP, itertools.chain(compute.OPTS)),
        (coordination.GROUP, itertools.chain(coordination.OPTS)),
        (sockets.GROUP, itertools.chain(sockets.OPTS)),
        (delivery_options.GROUP, itertools.chain(delivery_options.OPTS)),
        (gnocchi_client.GROUP, itertools.chain(gnocchi_client.OPTS)),
        (keystone.GROUP, itertools.chain(keystone.list_opts())),
        (notifier_publisher.GROUP, itertools.chain(notifier_publisher.OPTS)),
        (notification.GROUP, itertools.chain(notification_conv.OPTS,
                                             notification.OPTS)),
        (pipeline_manager.GROUP, itertools.chain(pipeline_manager.OPTS)),
        (probe.GROUP, itertools.chain(probe.OPTS)),
        ('polling', itertools.chain(agent_options.POLLING_OPTS,
                                    dynamic.OPTS)),
        (publisher_base.GROUP, itertools.chain(publisher_base.OPTS)),
        (storage_base.GROUP, itertools.chain(storage_base.OPTS,
                                             sqlite_storage.OPTS)),
    ]


def register_all(conf):
    """Register every option on ``conf`` (the caller's, never global)."""
    for group, opts in list_opts():
        if group == keystone.GROUP:
            # keystoneauth registers its plugin's options itself, once
            # auth_type is known; listing them is for the sample file.
            keystone.register_opts(conf)
            continue
        conf.register_opts(list(opts),
                           group=None if group == 'DEFAULT' else group)


def service_conf(argv, prog, default_config_files=None):
    """The configuration of a service (``telemetry-agent``,
    ``telemetry-api``, the WSGI application): every option and oslo.log's
    registered, ``argv`` parsed, logging set up.

    :raises oslo_config.cfg.Error: for bad arguments or files.
    """
    conf = cfg.ConfigOpts()
    register_all(conf)
    log.register_options(conf)
    conf(argv, project='telemetry_lib', prog=prog,
         default_config_files=default_config_files)
    log.setup(conf, 'telemetry_lib')
    return conf
