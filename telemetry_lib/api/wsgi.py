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
"""The API for a WSGI server (uWSGI, gunicorn, mod_wsgi), as Aodh ships
``aodh-api``: ``application = telemetry_lib.api.wsgi:application`` reads
``/etc/telemetry_lib/telemetry_lib.conf`` (or the files of
``TELEMETRY_CONFIG_FILES``, comma-separated) when the server first calls it.
"""

import os
import threading

from telemetry_lib.alarm import definitions
from telemetry_lib.alarm import service as alarm_service
from telemetry_lib.api import service
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import opts


def file_alarms(conf):
    """``() -> (AlarmsDefinition or None, StateStore or None)``: the
    alarms file read when asked (a bad file shows no alarms), its states
    from the state file.
    """
    path = conf[alarm_service.GROUP].definitions_file
    if not path:
        return None
    store = alarm_service.open_store(conf)

    def read():
        try:
            return definitions.AlarmsDefinition.load(path), store
        except ConfigError:
            return None, None
    return read


def build_application(argv=()):
    files = os.environ.get('TELEMETRY_CONFIG_FILES')
    conf = opts.service_conf(list(argv), 'telemetry-api-wsgi',
                             files.split(',') if files else None)
    db = service.open_database(conf)
    return service.build_app(conf, db, file_alarms(conf))


_app = None
_lock = threading.Lock()


def application(environ, start_response):
    global _app
    with _lock:
        if _app is None:
            _app = build_application()
    return _app(environ, start_response)
