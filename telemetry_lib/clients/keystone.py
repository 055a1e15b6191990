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
"""Keystone: one session from ``[service_credentials]``, for every client.

keystoneauth1's own options, as Ceilometer and Aodh configure them, plus
the catalog interface and region of the endpoints looked up through it.
Used by Heat alarm actions and OpenStack dynamic pollsters.
"""

import copy

from keystoneauth1 import exceptions as ka_exc
from keystoneauth1 import loading as ka_loading
from oslo_config import cfg

from telemetry_lib.exceptions import ConfigError

GROUP = 'service_credentials'
OPTS = [
    cfg.StrOpt('region_name',
               help='Region of the endpoints (Heat, dynamic pollsters).'),
    cfg.StrOpt('interface', default='public',
               choices=('public', 'internal', 'admin'),
               help='Catalog interface of the endpoints (Heat, dynamic '
                    'pollsters).'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    ka_loading.register_auth_conf_options(conf, GROUP)
    ka_loading.register_session_conf_options(conf, GROUP)


def list_opts():
    """For oslo-config-generator: ours, the session's and the password
    plugin's (the usual choice).
    """
    password = []
    for opt in ka_loading.get_auth_plugin_conf_options('password'):
        # Listed for the sample file; required only once auth_type says
        # password (keystoneauth registers them itself then).
        opt = copy.copy(opt)
        opt.required = False
        password.append(opt)
    return (OPTS + ka_loading.get_session_conf_options()
            + ka_loading.get_auth_common_conf_options() + password)


def make_session(conf):
    """A keystoneauth1 session for ``[service_credentials]``.

    :raises ConfigError: when no auth plugin is configured.
    """
    register_opts(conf)
    try:
        auth = ka_loading.load_auth_from_conf_options(conf, GROUP)
    except ka_exc.MissingRequiredOptions as exc:
        raise ConfigError('[%s]: %s' % (GROUP, exc)) from None
    if auth is None:
        raise ConfigError('[%s] auth_type is not set: Heat actions and '
                          'OpenStack dynamic pollsters need Keystone '
                          'credentials' % GROUP)
    return ka_loading.load_session_from_conf_options(conf, GROUP, auth=auth)


#: keystoneauth failures worth a retry: Keystone or Heat unreachable or
#: overloaded. (A refused password is not retried: no retry fixes it.)
RETRY = (ka_exc.ConnectFailure, ka_exc.ConnectTimeout,
         ka_exc.DiscoveryFailure, ka_exc.ServiceUnavailable,
         ka_exc.GatewayTimeout, ka_exc.BadGateway,
         ka_exc.InternalServerError, ka_exc.RequestTimeout)
