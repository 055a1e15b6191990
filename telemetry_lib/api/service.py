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
"""Running the API: its options (``[api]``), the alarm database's
(``[alarms] database_connection``), the application with Keystone's
``auth_token`` in front, and a server for it on the library's HTTP stack.
"""

import logging
import os
import time
from urllib.parse import quote as name_quote

from keystonemiddleware import auth_token
from oslo_config import cfg

from telemetry_lib.alarm.db import store as db_store
from telemetry_lib.alarm import service as alarm_service
from telemetry_lib.api import app
from telemetry_lib.api import trusts
from telemetry_lib.clients import keystone
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import httpserver
from telemetry_lib import lifecycle

LOG = logging.getLogger(__name__)
GROUP = 'api'
OPTS = [
    cfg.BoolOpt('enabled', default=False,
                help='Serve the Aodh-compatible API from the agent (the '
                     'telemetry-api command serves it on its own).'),
    cfg.HostAddressOpt('host', default='127.0.0.1',
                       help='Address the API listens on.'),
    cfg.PortOpt('port', default=8042,
                help="Port of the API (Aodh's is 8042)."),
    cfg.StrOpt('auth_strategy', default='keystone',
               choices=('keystone', 'noauth'),
               help='keystone: tokens checked by keystonemiddleware '
                    '([keystone_authtoken]); noauth: the X-User-Id, '
                    'X-Project-Id and X-Roles headers are believed (tests '
                    'and closed networks only).'),
    cfg.IntOpt('workers', default=8, min=1, max=256,
               help='Threads answering API requests.'),
    cfg.IntOpt('alarm_max_actions', default=-1,
               help='Most actions per state of an alarm; <= 0: no limit.'),
    cfg.IntOpt('project_alarm_quota', default=-1,
               help='Most alarms of a project; < 0: no limit.'),
    cfg.IntOpt('user_alarm_quota', default=-1,
               help='Most alarms of a user; < 0: no limit.'),
    cfg.StrOpt('gnocchi_external_project_owner', default='service',
               help='Project (name) Ceilometer writes to Gnocchi as: a '
                    "member's gnocchi_aggregation_by_resources alarm sees "
                    'the resources its project created, and those this '
                    'project created for it (as Aodh).'),
    cfg.StrOpt('gnocchi_external_domain_name', default='Default',
               help='Domain of gnocchi_external_project_owner.'),
]
ALARM_DB_OPTS = [
    cfg.StrOpt('database_connection', secret=True,
               help='SQLAlchemy URL of the alarm database (the API\'s '
                    'alarms, their state and history), shared by every '
                    'agent that serves or evaluates them, e.g. '
                    'postgresql+psycopg2://user:pass@host/aodh. Default: '
                    'SQLite beside the alarm state file.'),
    cfg.BoolOpt('evaluate_database', default=False,
                help='Evaluate the alarm database\'s alarms in the agent '
                     '(with [coordination] backend_url, agents share '
                     'them).'),
    cfg.FloatOpt('database_evaluation_interval', default=60.0, min=1.0,
                 help='Seconds between evaluations of an API alarm.'),
    cfg.FloatOpt('database_refresh', default=10.0, min=0.1,
                 help='Seconds between reads of the alarm database.'),
    cfg.StrOpt('coordination_group', default='alarm-evaluators',
               help='tooz group of the agents that share the alarm '
                    "database's alarms ([coordination] backend_url)."),
    cfg.StrOpt('prometheus_storage', default='',
               help='Storage URL prometheus-type API alarms query '
                    '(prometheus://host:9090). Empty: [storage] url.'),
    cfg.StrOpt('gnocchi_storage', default='',
               help='Storage URL gnocchi_*-type API alarms query '
                    '(gnocchi://). Empty: [storage] url.'),
]


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)
    conf.register_opts(ALARM_DB_OPTS, group=alarm_service.GROUP)
    alarm_service.register_opts(conf)
    keystone.register_opts(conf)


def database_url(conf):
    register_opts(conf)
    url = conf[alarm_service.GROUP].database_connection
    if url:
        return url
    return 'sqlite:///' + os.path.join(
        os.path.dirname(alarm_service.state_file(conf)), 'alarm-db.sqlite')


def open_database(conf):
    """The alarm database of ``conf`` (not started: no I/O)."""
    return db_store.AlarmDB(database_url(conf))


def build_app(conf, db, files=None):
    """The WSGI application: the API behind ``auth_token`` (or noauth).

    :param files: ``() -> (AlarmsDefinition or None, StateStore or
        None)`` for the alarms file's alarms.
    """
    register_opts(conf)
    opts = conf[GROUP]
    trust = None
    if opts.auth_strategy == 'keystone':
        keystone.register_opts(conf)
        session = []

        def service_session():
            if not session:
                session.append(keystone.make_session(conf))
            return session[0]
        trust = trusts.Trusts(service_session,
                              conf[keystone.GROUP].interface)
        owner = _project_lookup(service_session,
                                opts.gnocchi_external_project_owner,
                                opts.gnocchi_external_domain_name)
    else:
        owner = None
    api = app.AlarmAPI(db, files, trust, opts.alarm_max_actions,
                       opts.project_alarm_quota, opts.user_alarm_quota,
                       owner)
    if opts.auth_strategy == 'noauth':
        return api
    guarded = auth_token.AuthProtocol(api, {'oslo_config_config': conf})

    def application(environ, start_response):
        # Version discovery needs no token, as Aodh's paste pipeline has
        # it: clients ask before they authenticate.
        if environ.get('PATH_INFO') in ('', '/'):
            return api(environ, start_response)
        return guarded(environ, start_response)
    return application


def _project_lookup(session, name, domain, ttl=3600.0):
    """``() -> id or None`` of project ``name`` in ``domain``, asked of
    Keystone with the service's session at most once per ``ttl`` (a
    failure is logged and means ``None`` until then, as Aodh does).
    """
    found = {}
    endpoint = {'service_type': 'identity', 'interface': 'public',
                'version': 3}

    def lookup():
        now = time.monotonic()
        if found and now - found['at'] < ttl:
            return found['id']
        project_id = None
        try:
            sess = session()
            domains = sess.get('/domains?name=%s' % name_quote(domain),
                               endpoint_filter=endpoint).json()['domains']
            if domains:
                projects = sess.get(
                    '/projects?name=%s&domain_id=%s' % (
                        name_quote(name), domains[0]['id']),
                    endpoint_filter=endpoint).json()['projects']
                project_id = projects[0]['id'] if projects else None
        except Exception as exc:    # Keystone's, the session's, JSON's
            LOG.warning('cannot find project %s in domain %s: %s', name,
                        domain, exc)
        found.update(at=now, id=project_id)
        return project_id
    return lookup


class APIServer(lifecycle.Component):
    """The API on the library's HTTP server: ``start()`` binds, migrates
    the database and serves; ``stop(timeout)`` is bounded.
    """

    def __init__(self, conf, db=None, files=None):
        register_opts(conf)
        opts = conf[GROUP]
        self.db = db or open_database(conf)
        self.app = build_app(conf, self.db, files)
        self.server = httpserver.GetServer(
            opts.host, opts.port, None, name='alarming API',
            threads=opts.workers, app=self.app, max_connections=256,
            idle_timeout=30.0, request_timeout=30.0)

    @property
    def url(self):
        return self.server.url

    def start(self):
        try:
            self.db.start()
        except db_store.DatabaseUnavailable as exc:
            # The API answers 503 until the database does.
            raise ConfigError(str(exc), where='[alarms] '
                              'database_connection') from None
        self.server.start()
        return self

    def close(self, timeout=2.0):
        deadline = lifecycle.Deadline(timeout)
        outcome = self.server.close(deadline.left())
        self.db.close(deadline.left())
        return outcome
