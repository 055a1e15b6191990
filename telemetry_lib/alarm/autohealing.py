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
"""``trust+heat://TRUST_ID@``: Aodh's autohealing action.

What ``OS::Aodh::LBMemberHealthAlarm`` sends: an alarm whose reason data
names a Heat stack (``stack_id``), its autoscaling group (``asg_id``, the
group's nested stack) and the group's failed members
(``unhealthy_members``, ``[{"id": ...}]``, the physical ids of resources
somewhere inside the group's members). For each, the member of the group
that holds it is marked unhealthy, then the stack is updated in place, so
Heat replaces those members -- with a token scoped to the Keystone trust
the API made from the alarm's creator, as Aodh does.

Delivered once Heat has accepted the update. A member Heat no longer
knows is skipped (it is gone already); reason data without a stack or a
group is permanent (logged, never retried); Heat or Keystone unreachable
and 5xx are retried. Marking is idempotent, so a retry after a partial
failure marks again and updates once.
"""

import logging

from telemetry_lib.alarm.actions import Action
from telemetry_lib.clients import heat
from telemetry_lib.clients import keystone
from telemetry_lib.exceptions import InvalidURL
from telemetry_lib.exceptions import PermanentError

LOG = logging.getLogger(__name__)

REASON = 'unhealthy load balancer member'


class TrustHeatAction(Action):
    """``trust+heat://TRUST_ID[:delete]@`` (see the module docstring)."""

    url_options = frozenset(('timeout',))

    def __init__(self, conf, url):
        super().__init__(conf, url)
        if not url.username:
            raise InvalidURL('a trust+heat action carries its trust id: '
                             'trust+heat://TRUST_ID@ (the alarming API '
                             'makes it from trust+heat://)', where=str(url))
        keystone.register_opts(conf)
        self.timeout = url.get_float('timeout', 30.0, minimum=0.001,
                                     maximum=3600)
        opts = conf[keystone.GROUP]
        self.client = heat.HeatClient(
            keystone.trust_session(conf, url.username), opts.interface,
            opts.region_name, self.timeout)

    def publish_actions(self, actions):
        self.publish_each(actions, self._heal)

    def _heal(self, body):
        body = body if isinstance(body, dict) else {}
        data = body.get('reason_data')
        data = data if isinstance(data, dict) else {}
        stack, group = data.get('stack_id'), data.get('asg_id')
        if not (isinstance(stack, str) and stack and isinstance(group, str)
                and group):
            raise PermanentError('alarm %s: its reason data names no '
                                 'stack_id and asg_id to heal'
                                 % body.get('alarm_id'))
        members = data.get('unhealthy_members')
        ids = [m.get('id') for m in members if isinstance(m, dict)] \
            if isinstance(members, list) else []
        # Heat and Keystone trouble come out of the client as retryable or
        # permanent errors, the trust's token included.
        unhealthy = []
        for member in filter(None, ids):
            found = self.client.find_by_physical_id(stack, str(member))
            if found and isinstance(found[0], dict) and \
                    found[0].get('parent_resource'):
                unhealthy.append(found[0]['parent_resource'])
        if not unhealthy:
            LOG.warning('alarm %s: no member of stack %s holds %s; nothing '
                        'to heal', body.get('alarm_id'), stack,
                        ', '.join(map(str, ids)) or 'no member')
            return
        for resource in dict.fromkeys(unhealthy):
            self.client.mark_unhealthy(group, resource, REASON)
            LOG.info('alarm %s: marked %s of group %s unhealthy',
                     body.get('alarm_id'), resource, group)
        self.client.update_existing(stack)
        LOG.info('alarm %s: stack %s updated to replace %s',
                 body.get('alarm_id'), stack, ', '.join(unhealthy))
