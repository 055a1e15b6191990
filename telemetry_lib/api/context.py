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
"""Who is asking, and Aodh's default rules for what they may do.

The identity comes from the headers keystonemiddleware's ``auth_token``
sets (``X-User-Id``, ``X-Project-Id``, ``X-Roles``) -- or, with
``auth_strategy = noauth``, from the same headers as the client sent
them, as Aodh's noauth mode does (tests and a closed network only).

Aodh's default policy, fixed here: a member of a project sees and
changes its project's alarms; a user with the ``admin`` role sees and
changes every project's (``all_projects=true`` to list them all) and
may create alarms for another project; only an admin may use ``log://``
actions (they write into the service's own log).
"""

import dataclasses
import typing

from telemetry_lib.exceptions import brief


class APIError(Exception):
    """An answer other than success: ``status`` and Aodh's message (one
    line, bounded: a request's own values are echoed in it).
    """

    status = 400

    def __init__(self, message, status=None):
        super().__init__(brief(' '.join(str(message).split()), 1000))
        if status is not None:
            self.status = status


class Forbidden(APIError):
    """An action the caller's roles do not allow (an Aodh 401/403)."""

    status = 403


@dataclasses.dataclass(frozen=True)
class Context:
    user_id: typing.Optional[str]
    project_id: typing.Optional[str]
    roles: tuple = ()
    #: keystonemiddleware's plugin of the caller's token (for trusts).
    auth_plugin: typing.Any = None

    @classmethod
    def from_environ(cls, environ):
        roles = environ.get('HTTP_X_ROLES') or environ.get('HTTP_X_ROLE')
        return cls(environ.get('HTTP_X_USER_ID') or None,
                   environ.get('HTTP_X_PROJECT_ID')
                   or environ.get('HTTP_X_TENANT_ID') or None,
                   tuple(r.strip() for r in (roles or '').split(',')
                         if r.strip()),
                   environ.get('keystone.token_auth'))

    @property
    def is_admin(self):
        return 'admin' in self.roles

    def limited_to_project(self):
        """The project the caller is confined to (None: admin)."""
        return None if self.is_admin else self.project_id

    def check_owner(self, alarm):
        """Raise unless the caller may see alarm (a stored mapping)."""
        if not self.is_admin and alarm.get('project_id') != self.project_id:
            raise Forbidden('Not Authorized to access project %s'
                            % alarm.get('project_id'), 401)
