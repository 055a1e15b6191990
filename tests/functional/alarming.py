"""The alarming API of an agent in front of the test Keystone
(tools/keystone.sh): the catalog's ``alarming`` service pointing at it,
a second project with a member user, the agent's configuration, and
``aodh`` (python-aodhclient's CLI) run as a user.
"""

import os
import subprocess
import sys

from keystoneauth1.identity import v3
from keystoneauth1 import session as ka_session

from tests.functional import heat

#: The catalog names one URL: the class that serves it owns this port.
API_PORT = 18142
API_URL = 'http://127.0.0.1:%d' % API_PORT
ADMIN_PASSWORD = os.environ.get('TELEMETRY_KEYSTONE_ADMIN_PASSWORD',
                                'admin-secret')
OTHER = ('alarm-bob', 'bob-secret', 'alarm-tenant-b')
PROMETHEUS = 'prometheus://127.0.0.1:%s' % os.environ.get(
    'TELEMETRY_PROM_PORT', '19090')
PUSHGATEWAY = 'http://127.0.0.1:%s' % os.environ.get(
    'TELEMETRY_PUSHGATEWAY_PORT', '19091')
KS = {'service_type': 'identity', 'interface': 'public'}


def session(user=heat.USER, password=heat.PASSWORD, project=heat.PROJECT):
    return ka_session.Session(auth=v3.Password(
        auth_url=heat.KEYSTONE, username=user, password=password,
        project_name=project, user_domain_name='Default',
        project_domain_name='Default'))


def _id(sess, collection, name):
    found = sess.get('/%s?name=%s' % (collection, name),
                     endpoint_filter=KS).json()[collection]
    return found[0]['id'] if found else None


def _make(sess, collection, key, body):
    return sess.post('/' + collection, endpoint_filter=KS,
                     json={key: body}).json()[key]['id']


def ensure_keystone_objects():
    """Idempotent: ``alarming`` in the catalog, the other project and its
    member user.
    """
    admin = session('admin', ADMIN_PASSWORD, 'admin')
    service = _id(admin, 'services', 'telemetry-alarming') or _make(
        admin, 'services', 'service', {'name': 'telemetry-alarming',
                                       'type': 'alarming'})
    endpoints = admin.get('/endpoints?service_id=%s' % service,
                          endpoint_filter=KS).json()['endpoints']
    for stale in [e for e in endpoints if e['url'] != API_URL]:
        admin.delete('/endpoints/%s' % stale['id'], endpoint_filter=KS)
    if not any(e['url'] == API_URL for e in endpoints):
        for iface in ('public', 'internal', 'admin'):
            _make(admin, 'endpoints', 'endpoint', {
                'service_id': service, 'interface': iface, 'url': API_URL,
                'region_id': 'RegionOne'})
    user, password, project = OTHER
    project_id = _id(admin, 'projects', project) or _make(
        admin, 'projects', 'project', {'name': project,
                                       'domain_id': 'default'})
    user_id = _id(admin, 'users', user) or _make(
        admin, 'users', 'user', {'name': user, 'password': password,
                                 'domain_id': 'default'})
    role = _id(admin, 'roles', 'member')
    admin.put('/projects/%s/users/%s/roles/%s' % (project_id, user_id, role),
              endpoint_filter=KS)


def agent_conf(db_url):
    """The agent's options: the API behind auth_token, the database's
    alarms evaluated every second against the test Prometheus.
    """
    return ('[api]\nenabled = true\nport = %d\nauth_strategy = keystone\n'
            '[alarms]\ndatabase_connection = %s\nevaluate_database = true\n'
            'database_evaluation_interval = 1\ndatabase_refresh = 0.5\n'
            'prometheus_storage = %s\n'
            '[keystone_authtoken]\nwww_authenticate_uri = %s\n'
            'auth_url = %s\nauth_type = password\nusername = %s\n'
            'password = %s\nproject_name = %s\nuser_domain_name = Default\n'
            'project_domain_name = Default\n'
            % (API_PORT, db_url, PROMETHEUS, heat.KEYSTONE, heat.KEYSTONE,
               heat.USER, heat.PASSWORD, heat.PROJECT)
            + heat.service_credentials())


def aodh(*args, user=heat.USER, password=heat.PASSWORD,
         project=heat.PROJECT):
    """python-aodhclient's ``aodh`` CLI, as ``user``: ``(rc, output)``."""
    env = dict(os.environ, OS_AUTH_URL=heat.KEYSTONE, OS_USERNAME=user,
               OS_PASSWORD=password, OS_PROJECT_NAME=project,
               OS_USER_DOMAIN_NAME='Default',
               OS_PROJECT_DOMAIN_NAME='Default', OS_AUTH_TYPE='password',
               OS_INTERFACE='public', OS_REGION_NAME='RegionOne')
    exe = os.path.join(os.path.dirname(sys.executable), 'aodh')
    out = subprocess.run([exe] + list(args), env=env, capture_output=True,
                         text=True, timeout=120)
    return out.returncode, out.stdout + out.stderr


def push_load(group, value):
    """``tl_load{group=...}`` through the Pushgateway (Prometheus scrapes
    it every 500 ms).
    """
    import requests
    resp = requests.put('%s/metrics/job/tl/group/%s' % (PUSHGATEWAY, group),
                        data='tl_load %s\n' % value, timeout=10)
    resp.raise_for_status()
