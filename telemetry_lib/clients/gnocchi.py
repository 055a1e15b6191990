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
"""The one Gnocchi client of the library (gnocchiclient on keystoneauth1).

Used by the ``gnocchi`` publisher and storage driver alike. Auth modes:
``keystone`` (password, the ``[keystone_authtoken]``-style settings of the
seed deployment), Gnocchi's ``basic`` and ``noauth``. A URL's host is the
endpoint (``gnocchi://gnocchi.example:8041``); without one, ``[gnocchi]
endpoint`` or, with Keystone, the catalog says where Gnocchi is.
"""

from gnocchiclient import auth as gnocchi_auth
from gnocchiclient import client as gnocchi_client
from keystoneauth1 import exceptions as ka_exceptions
from keystoneauth1 import session as ka_session
from oslo_config import cfg
import requests

from telemetry_lib.clients import http
from telemetry_lib.exceptions import ConfigError

GROUP = 'gnocchi'
OPTS = [
    cfg.StrOpt('auth_mode', default='basic',
               choices=('keystone', 'basic', 'noauth'),
               help='How to authenticate to Gnocchi.'),
    cfg.StrOpt('endpoint', help='Gnocchi URL, when the publisher URL names '
                                'no host (default with keystone: the '
                                'catalog; else http://127.0.0.1:8041).'),
    cfg.StrOpt('user', default='admin',
               help='User of the basic and noauth modes.'),
    cfg.StrOpt('project_id', help='Project of the noauth mode.'),
    cfg.StrOpt('auth_url', help='Keystone URL (keystone mode).'),
    cfg.StrOpt('username', help='Keystone user (keystone mode).'),
    cfg.StrOpt('password', secret=True,
               help='Keystone password (keystone mode).'),
    cfg.StrOpt('project_name', default='service',
               help='Keystone project (keystone mode).'),
    cfg.StrOpt('user_domain_name', default='Default',
               help="Domain of the Keystone user (keystone mode)."),
    cfg.StrOpt('project_domain_name', default='Default',
               help="Domain of the Keystone project (keystone mode)."),
    cfg.StrOpt('region_name', help='Region in the Keystone catalog.'),
    cfg.StrOpt('interface', default='internal',
               help='Endpoint interface in the Keystone catalog.'),
    cfg.FloatOpt('timeout', default=10.0, min=0.001, max=3600,
                 help='Seconds for each HTTP request to Gnocchi.'),
    cfg.IntOpt('pool_size', default=10, min=1,
               help='HTTP connections kept to Gnocchi, and threads that '
                    'create or update resources concurrently.'),
    cfg.StrOpt('ca_file', help='CA bundle to verify Gnocchi with.'),
    cfg.BoolOpt('insecure', default=False,
                help="Skip TLS verification (don't)."),
]

#: Gnocchi cannot be reached, or Keystone will not let us in (a wrong
#: password, a project the user has no role on, no ``metric`` service in
#: the catalog, Keystone itself down). Neither says anything about the
#: data, so both are retried: the samples wait in the queue or spool while
#: the operator fixes the network or the credentials. keystoneauth's
#: exceptions all derive from its ``ClientException``; Gnocchi's own HTTP
#: answers come as gnocchiclient's exceptions instead.
UNAVAILABLE = (ka_exceptions.ClientException,
               requests.ConnectionError, requests.Timeout)


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


def make_client(conf, url=None):
    """A ``gnocchiclient`` v1 client for ``conf`` (and the URL's host)."""
    register_opts(conf)
    opts = conf[GROUP]
    endpoint = opts.endpoint
    if url is not None and url.hosts:
        scheme = 'https' if url.get_bool('ssl', False) else 'http'
        endpoint = '%s://%s' % (scheme, url.hosts[0])
    if opts.auth_mode == 'keystone':
        missing = [name for name in ('auth_url', 'username', 'password')
                   if not opts[name]]
        if missing:
            raise ConfigError('[%s] auth_mode = keystone needs %s'
                              % (GROUP, ', '.join(missing)))
        from keystoneauth1.identity import v3
        plugin = v3.Password(
            auth_url=opts.auth_url, username=opts.username,
            password=opts.password, project_name=opts.project_name,
            user_domain_name=opts.user_domain_name,
            project_domain_name=opts.project_domain_name)
    elif opts.auth_mode == 'noauth':
        plugin = gnocchi_auth.GnocchiNoAuthPlugin(
            opts.user, opts.project_id or opts.user, 'admin',
            endpoint or 'http://127.0.0.1:8041')
    else:
        plugin = gnocchi_auth.GnocchiBasicPlugin(
            opts.user, endpoint or 'http://127.0.0.1:8041')
    pooled = http.session(opts.pool_size)
    verify = False if opts.insecure else (opts.ca_file or True)
    sess = ka_session.Session(auth=plugin, session=pooled,
                              timeout=opts.timeout, verify=verify)
    adapter = {'interface': opts.interface, 'region_name': opts.region_name}
    if endpoint and opts.auth_mode == 'keystone':
        adapter['endpoint_override'] = endpoint
    return gnocchi_client.Client('1', session=sess, adapter_options=adapter)
