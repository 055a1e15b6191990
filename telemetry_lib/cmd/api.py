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
"""``telemetry-api``: serve the Aodh-compatible alarming API on its own
(an agent serves it too with ``[api] enabled``; a WSGI server can run
:mod:`telemetry_lib.api.wsgi`). The alarms file's alarms are shown
read-only when ``[alarms] definitions_file`` is set.
"""

import logging
import sys

from oslo_config import cfg

from telemetry_lib.agent import signals
from telemetry_lib.api import service
from telemetry_lib.api import wsgi
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib import opts

LOG = logging.getLogger(__name__)


def main(argv=None):
    try:
        conf = opts.service_conf(sys.argv[1:] if argv is None else argv,
                                 'telemetry-api')
    except cfg.Error as exc:
        print('telemetry-api: %s' % exc, file=sys.stderr)
        return 2
    inbox = signals.Inbox()
    inbox.install()
    try:
        server = service.APIServer(conf, files=wsgi.file_alarms(conf))
        server.start()
        print('telemetry-api: the alarming API at %s, alarms in %s'
              % (server.url, server.db), flush=True)
        while not [s for s in inbox.wait(1.0) if s in signals.STOP]:
            pass
        LOG.info('stopping')
        server.close(5.0)
    except TelemetryError as exc:
        print('telemetry-api: %s' % exc, file=sys.stderr)
        return 1
    finally:
        inbox.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
