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
"""Heat, for alarm actions: the scaling signal of a resource, and the
autohealing calls (find a resource by its physical id, mark it unhealthy,
update the stack in place), through a Keystone session
(:mod:`telemetry_lib.clients.keystone`).

What a signal proves: Heat answers 200 to every signal it accepts and
scales later; a signal arriving during a policy's cooldown, with the group
at its minimum or maximum, or while the group is updating, is dropped by
Heat without an error. "Delivered" here means Heat accepted the signal.
"""

import urllib.parse

from keystoneauth1 import exceptions as ka_exc

from telemetry_lib.clients import http
from telemetry_lib.clients.keystone import RETRY
from telemetry_lib.exceptions import PermanentError
from telemetry_lib.exceptions import RetryableError
from telemetry_lib import jsoncodec


class HeatClient:
    """Calls Heat through one Keystone session."""

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
        except RETRY as exc:
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

    def find_by_physical_id(self, stack, physical_id, depth=3):
        """Resources of ``stack`` (and its nested stacks, ``depth``
        deep) whose physical id is ``physical_id``, as Heat lists them.
        """
        path = self.stack_path(stack)
        resp = self._call('GET', '/%s/resources' % path, params={
            'nested_depth': depth, 'physical_resource_id': physical_id})
        if resp.status_code != 200:
            self._raise('list the resources of %s' % stack, resp)
        try:
            found = resp.json()['resources']
        except (ValueError, KeyError, TypeError):
            raise PermanentError('Heat listed the resources of %s in a form '
                                 'this client cannot read' % stack) from None
        return found if isinstance(found, list) else []

    def mark_unhealthy(self, stack, resource, reason):
        """Mark ``resource`` of ``stack`` unhealthy: the next update of
        the stack replaces it.
        """
        path = '/%s/resources/%s' % (self.stack_path(stack),
                                     urllib.parse.quote(resource))
        resp = self._call('PATCH', path, data=jsoncodec.dumps({
            'mark_unhealthy': True, 'resource_status_reason': reason}),
            headers={'Content-Type': 'application/json'})
        if not 200 <= resp.status_code < 300:
            self._raise('mark %s of %s unhealthy' % (resource, stack), resp)

    def update_existing(self, stack):
        """Update ``stack`` with its own template and parameters (Heat's
        ``PATCH``): what is unhealthy is replaced.
        """
        path = '/%s' % self.stack_path(stack)
        resp = self._call('PATCH', path, data=jsoncodec.dumps({}),
                          headers={'Content-Type': 'application/json'})
        if not 200 <= resp.status_code < 300:
            self._raise('update %s' % stack, resp)

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
