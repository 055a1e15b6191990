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
"""Keystone trusts for ``trust+http(s)://`` actions, as Aodh makes them.

When an alarm with a ``trust+`` action is created or updated, the
caller's token (keystonemiddleware's plugin) makes a trust from the
caller to the service user (``[service_credentials]``) on the caller's
project with the caller's roles, impersonating; its id goes into the
action URL (``trust+http://TRUST_ID:delete@host/path`` -- ``:delete`` on
the URL that owns it, as Aodh writes it) and is scrubbed from every answer.
An update keeps the alarm's trust; a trust no action uses any more, and
the alarm's trust on delete, is deleted. The action
(:class:`~telemetry_lib.alarm.actions.TrustWebhookAction`) posts with a
token of that trust.
"""

import logging
from urllib import parse

from keystoneauth1 import exceptions as ka_exc

from telemetry_lib.api import context
from telemetry_lib.api import representation as rep
from telemetry_lib.clients import keystone

LOG = logging.getLogger(__name__)


class TrustError(context.APIError):
    """Keystone refused or could not make the trust (503 unless said)."""

    status = 503


def _trusts_in(alarm):
    """The trust ids an alarm's action URLs own (``ID:delete@``)."""
    for field in rep.ACTION_FIELDS:
        for action in alarm.get(field) or ():
            url = parse.urlsplit(action)
            if url.scheme.startswith('trust+') and url.username and \
                    url.password == 'delete':
                yield url.username


class Trusts:
    """Makes and deletes the trusts of ``trust+`` actions.

    :param session: ``() -> keystoneauth1 Session`` of the service user.
    """

    def __init__(self, session, interface='public'):
        self._session = session
        self.interface = interface

    def attach(self, alarm, ctx, old=None):
        """Put a trust id into ``alarm``'s ``trust+`` URLs (reusing
        ``old``'s), and delete the trusts of ``old`` left unused.
        """
        previous = set(_trusts_in(old)) if old else set()
        trust_id = next(iter(previous), None)
        used = False
        for field in rep.ACTION_FIELDS:
            actions = alarm.get(field) or []
            for i, action in enumerate(actions):
                url = parse.urlsplit(action)
                if not url.scheme.startswith('trust+'):
                    continue
                if trust_id is None:
                    trust_id = self._create(ctx)
                netloc = '%s%s@%s' % (trust_id, '' if used else ':delete',
                                      url.netloc)
                used = True
                actions[i] = url._replace(netloc=netloc).geturl()
        for stale in previous - ({trust_id} if used else set()):
            self._delete(ctx, stale)

    def release(self, alarm, ctx):
        for trust_id in _trusts_in(alarm):
            self._delete(ctx, trust_id)

    def _create(self, ctx):
        if ctx.auth_plugin is None:
            raise TrustError('trust+ actions need a Keystone token (the '
                             'API runs with auth_strategy=keystone)', 400)
        try:
            return keystone.create_trust(self._session(), ctx.auth_plugin,
                                         ctx.project_id, ctx.roles,
                                         self.interface)
        except ka_exc.HttpError as exc:
            status = exc.http_status or 503
            raise TrustError('Keystone refused the trust: %s' % exc.message,
                             400 if status < 500 else 503) from None
        except ka_exc.ClientException as exc:
            raise TrustError('cannot make the trust: %s' % exc) from None

    def _delete(self, ctx, trust_id):
        if ctx.auth_plugin is None:
            return
        problem = None
        try:
            keystone.delete_trust(ctx.auth_plugin, trust_id, self.interface)
        except ka_exc.NotFound:
            pass
        except ka_exc.ClientException as exc:
            problem = exc
        if problem is not None:
            # The alarm change stands; a trust left behind is harmless
            # (nothing names it any more) and Keystone's to expire.
            LOG.warning('cannot delete trust %s: %s', trust_id, problem)
