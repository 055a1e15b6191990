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
from keystoneauth1 import session as ka_session
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

#: Scopes a trust-scoped token must not carry besides the trust.
_UNSCOPED = dict.fromkeys(('project_id', 'project_name', 'project_domain_id',
                           'project_domain_name', 'domain_id', 'domain_name',
                           'system_scope'))


def trust_session(conf, trust_id):
    """A session of ``[service_credentials]``' user scoped to
    ``trust_id``: its token acts as the trust's trustor (Aodh's
    ``trust+http`` notifications).

    :raises ConfigError: when no auth plugin is configured.
    """
    register_opts(conf)
    try:
        auth = ka_loading.load_auth_from_conf_options(
            conf, GROUP, trust_id=trust_id, **_UNSCOPED)
    except (ka_exc.MissingRequiredOptions, TypeError) as exc:
        raise ConfigError('[%s]: %s' % (GROUP, exc)) from None
    if auth is None:
        raise ConfigError('[%s] auth_type is not set: trust+ actions need '
                          'Keystone credentials' % GROUP)
    return ka_loading.load_session_from_conf_options(conf, GROUP, auth=auth)


def create_trust(service_session, caller_auth, project_id, roles,
                 interface='public'):
    """A trust from the caller (``caller_auth``: keystonemiddleware's plugin
    of their token) to the service user, on ``project_id`` with
    ``roles``, impersonating: its id. Blocking; keystoneauth's exceptions
    pass through.
    """
    trustee = service_session.get_user_id()
    caller = ka_session.Session(auth=caller_auth)
    trustor = caller.get_user_id()
    resp = caller.post('/OS-TRUST/trusts', endpoint_filter={
        'service_type': 'identity', 'interface': interface, 'version': 3},
        json={'trust': {'trustor_user_id': trustor,
                        'trustee_user_id': trustee,
                        'project_id': project_id, 'impersonation': True,
                        'roles': [{'name': r} for r in roles]}})
    return resp.json()['trust']['id']


def delete_trust(caller_auth, trust_id, interface='public'):
    """Delete a trust with the caller's token (its trustor's)."""
    caller = ka_session.Session(auth=caller_auth)
    caller.delete('/OS-TRUST/trusts/%s' % trust_id, endpoint_filter={
        'service_type': 'identity', 'interface': interface, 'version': 3})
