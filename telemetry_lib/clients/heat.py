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
"""Heat, for alarm actions: a Keystone session from ``[service_credentials]``
(keystoneauth1's own options, as Ceilometer and Aodh configure them) and
the scaling signal of a resource.

What a signal proves: Heat answers 200 to every signal it accepts and
scales later; a signal arriving during a policy's cooldown, with the group
at its minimum or maximum, or while the group is updating, is dropped by
Heat without an error. "Delivered" here means Heat accepted the signal.
"""

import copy
import urllib.parse

from keystoneauth1 import exceptions as ka_exc
from keystoneauth1 import loading as ka_loading
from oslo_config import cfg

from telemetry_lib.clients import http
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib.formats import jsoncodec

GROUP = 'service_credentials'
OPTS = [
    cfg.StrOpt('region_name', help='Region of the Heat endpoint.'),
    cfg.StrOpt('interface', default='public',
               choices=('public', 'internal', 'admin'),
               help='Catalog interface of the Heat endpoint.'),
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
_RETRY = (ka_exc.ConnectFailure, ka_exc.ConnectTimeout,
          ka_exc.DiscoveryFailure, ka_exc.ServiceUnavailable,
          ka_exc.GatewayTimeout, ka_exc.BadGateway,
          ka_exc.InternalServerError, ka_exc.RequestTimeout)


class HeatClient:
    """Signals Heat resources through one Keystone session."""

    def __init__(self, session, interface='public', region=None,
                 timeout=10.0):
        self.session = session
        self.filter = {'service_type': 'orchestration',
                       'interface': interface}
        if region:
            self.filter['region_name'] = region
        self.timeout = timeout

    def _call(self, method, url, **kwargs):
        absolute = url.startswith(('http://', 'https://'))
        try:
            return self.session.request(
                url, method, raise_exc=False, timeout=self.timeout,
                endpoint_filter=None if absolute else self.filter,
                **kwargs)
        except _RETRY as exc:
            raise RetryableError('Heat or Keystone unreachable: %s'
                                 % exc) from None
        except ka_exc.ClientException as exc:
            raise PermanentError('Keystone refused: %s' % exc) from None

    def stack_path(self, stack):
        """``stacks/NAME/ID`` of a stack given by name or id."""
        if '/' in stack:
            return 'stacks/%s' % stack
        resp = self._call('GET', '/stacks/%s' % urllib.parse.quote(stack),
                          redirect=False)
        if resp.status_code in (301, 302) and resp.headers.get('location'):
            path = urllib.parse.urlsplit(resp.headers['location']).path
            return 'stacks/' + path.split('/stacks/', 1)[1]
        if resp.status_code == 200:
            body = resp.json().get('stack', {})
            return 'stacks/%s/%s' % (body.get('stack_name'), body.get('id'))
        self._raise('GET stack %s' % stack, resp)

    def signal(self, url_or_stack, resource=None, body=None):
        """POST a signal: to a full ``signal_url``, or to the resource of
        a stack through the catalog's orchestration endpoint.
        """
        if resource is None:
            target = url_or_stack
        else:
            target = '/%s/resources/%s/signal' % (
                self.stack_path(url_or_stack), urllib.parse.quote(resource))
        resp = self._call('POST', target, data=jsoncodec.dumps(body or {}),
                          headers={'Content-Type': 'application/json'})
        if 200 <= resp.status_code < 300:
            return
        self._raise('signal %s' % (target,), resp)

    @staticmethod
    def _raise(what, resp):
        detail = '%s: HTTP %d %s' % (what, resp.status_code,
                                     http.short(_heat_message(resp)))
        if http.retryable(resp.status_code):
            raise RetryableError(detail,
                                 retry_after=http.retry_after(resp.headers))
        raise PermanentError(detail)


def _heat_message(resp):
    try:
        body = resp.json()
    except ValueError:
        return resp.text
    error = body.get('error') if isinstance(body, dict) else None
    if isinstance(error, dict):
        return error.get('message') or error.get('explanation') or str(error)
    return body.get('explanation') or str(body)
