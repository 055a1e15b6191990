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
"""``telemetry-agent``: run the polling agent."""

import logging
import sys

from oslo_config import cfg

from telemetry_lib.agent import service
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib import opts


def main(argv=None):
    try:
        conf = opts.service_conf(sys.argv[1:] if argv is None else argv,
                                 'telemetry-agent')
    except cfg.Error as exc:
        print('telemetry-agent: %s' % exc, file=sys.stderr)
        return 2
    logging.getLogger('proton').setLevel(logging.WARNING)
    try:
        agent = service.Agent(conf)
    except TelemetryError as exc:
        print('telemetry-agent: %s' % exc, file=sys.stderr)
        return 1
    for line in agent.describe():
        print('telemetry-agent: %s' % line, flush=True)
    try:
        status = agent.run()
    except TelemetryError as exc:
        print('telemetry-agent: %s' % exc, file=sys.stderr)
        return 1
    lost = agent.loss_report()
    for line in lost or ['stopped; nothing was dropped']:
        print('telemetry-agent: %s' % line, flush=True)
    return status


if __name__ == '__main__':
    sys.exit(main())
