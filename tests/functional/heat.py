"""A real Heat for the autoscaling tests (tools/heat.sh): a stack with an
AutoScalingGroup of test resources and two scaling policies, created and
read through Heat's API with the test Keystone's telemetry user.
"""

import os
import subprocess
import time
import uuid

from keystoneauth1.identity import v3
from keystoneauth1 import session as ka_session

from tests import base

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..',
                     'tools', 'heat.sh')
KEYSTONE = 'http://127.0.0.1:15000/v3'
USER, PASSWORD, PROJECT = 'telemetry', 'telemetry-secret', 'service'

TEMPLATE = '''
heat_template_version: 2018-08-31
resources:
  group:
    type: OS::Heat::AutoScalingGroup
    properties:
      min_size: 1
      max_size: 3
      resource:
        type: OS::Heat::TestResource
        properties:
          value: member
  scale_up:
    type: OS::Heat::ScalingPolicy
    properties:
      adjustment_type: change_in_capacity
      auto_scaling_group_id: {get_resource: group}
      cooldown: %(cooldown)s
      scaling_adjustment: 1
  scale_down:
    type: OS::Heat::ScalingPolicy
    properties:
      adjustment_type: change_in_capacity
      auto_scaling_group_id: {get_resource: group}
      cooldown: %(cooldown)s
      scaling_adjustment: -1
outputs:
  size:
    value: {get_attr: [group, current_size]}
  up_signal_url:
    value: {get_attr: [scale_up, signal_url]}
  up_alarm_url:
    value: {get_attr: [scale_up, alarm_url]}
'''


def start():
    out = subprocess.run(['bash', TOOLS, 'start'], capture_output=True,
                         text=True, timeout=900)
    if out.returncode:
        raise RuntimeError('tools/heat.sh start: %s' % out.stderr[-2000:])


class _Spare:
    """A gunicorn of a shared service's app, on a port of the test's own
    (same configuration, same database), so an outage test can stop it
    without taking the service from the tests running beside it.
    """

    def __init__(self, port):
        self.port = port
        self.proc = None

    def command(self):
        """``(argv, cwd, env, log file)``."""
        raise NotImplementedError

    def start(self):
        argv, cwd, env, log = self.command()
        self.log = open(log, 'a')
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env,
                                     stdout=self.log,
                                     stderr=subprocess.STDOUT)
        assert base.wait_until(lambda: subprocess.run(
            ['curl', '-s', '-o', '/dev/null', 'http://127.0.0.1:%d/'
             % self.port]).returncode == 0, 60)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(20)
            self.proc = None
            self.log.close()


class SpareAPI(_Spare):
    """A heat-api of the test's own (same engine)."""

    def command(self):
        heat_dir = os.environ.get('TELEMETRY_HEAT_DIR',
                                  '/var/tmp/telemetry-heat')
        venv = os.environ.get('TELEMETRY_HEAT_VENV',
                              '/var/tmp/telemetry-heat-venv')
        return ([os.path.join(venv, 'bin', 'gunicorn'), '--bind',
                 '127.0.0.1:%d' % self.port, '--workers', '1',
                 'heat_api_app:application'], heat_dir,
                dict(os.environ, PYTHONPATH=heat_dir),
                os.path.join(heat_dir, 'spare-%d.out' % self.port))


class SpareKeystone(_Spare):
    """A Keystone of the test's own (same database and fernet keys: its
    tokens are good at the shared one, which Heat asks).
    """

    def __init__(self, port, workdir):
        super().__init__(port)
        self.workdir = workdir

    @property
    def url(self):
        return 'http://127.0.0.1:%d/v3' % self.port

    def command(self):
        base_dir = os.environ.get('TELEMETRY_KEYSTONE_DIR',
                                  '/var/tmp/telemetry-keystone')
        venv = os.environ.get('TELEMETRY_KEYSTONE_VENV',
                              '/var/tmp/telemetry-keystone-venv')
        config = os.path.join(base_dir, 'keystone.conf')
        os.makedirs(self.workdir, exist_ok=True)
        # Keystone reads the process' argv as its own options: gunicorn
        # takes everything from ./gunicorn.conf.py.
        with open(os.path.join(self.workdir, 'gunicorn.conf.py'), 'w') as f:
            f.write("bind = '127.0.0.1:%d'\nworkers = 1\n"
                    "wsgi_app = 'keystone.wsgi.api:application'\n"
                    % self.port)
        return ([os.path.join(venv, 'bin', 'gunicorn')], self.workdir,
                dict(os.environ, OS_KEYSTONE_CONFIG_FILES=config),
                os.path.join(self.workdir, 'keystone.log'))


def session():
    auth = v3.Password(auth_url=KEYSTONE, username=USER, password=PASSWORD,
                       project_name=PROJECT, user_domain_name='Default',
                       project_domain_name='Default')
    return ka_session.Session(auth=auth)


def service_credentials(auth_url=KEYSTONE):
    """The [service_credentials] section an agent signs Heat with."""
    return ('[service_credentials]\nauth_type = password\nauth_url = %s\n'
            'username = %s\npassword = %s\nproject_name = %s\n'
            'user_domain_name = Default\nproject_domain_name = Default\n'
            % (auth_url, USER, PASSWORD, PROJECT))


class Stack:
    """A scaling stack; ``size()`` reads the group's size from Heat."""

    ENDPOINT = {'service_type': 'orchestration', 'interface': 'public'}

    def __init__(self, sess, cooldown=1, template=None, parameters=None):
        self.sess = sess
        self.name = 'tl-%s' % uuid.uuid4().hex[:8]
        resp = sess.post('/stacks', endpoint_filter=self.ENDPOINT, json={
            'stack_name': self.name,
            'template': template or TEMPLATE % {'cooldown': cooldown},
            'parameters': parameters or {}, 'timeout_mins': 5})
        self.id = resp.json()['stack']['id']
        assert base.wait_until(lambda: self.status() != 'CREATE_IN_PROGRESS',
                               120), self.status()
        assert self.status() == 'CREATE_COMPLETE', self.show().get(
            'stack_status_reason')

    def action(self, name, body=None):
        """``suspend``/``resume``, or an update with ``body``; waits."""
        if body is not None:
            self.sess.patch('/stacks/%s/%s' % (self.name, self.id),
                            endpoint_filter=self.ENDPOINT, json=body)
        else:
            self.sess.post('/stacks/%s/%s/actions' % (self.name, self.id),
                           endpoint_filter=self.ENDPOINT, json={name: None})
        # Each action of a test is a different one, so its COMPLETE state
        # is new (an update is done once per stack).
        done = '%s_COMPLETE' % name.upper()
        assert base.wait_until(lambda: self.status() in (
            done, '%s_FAILED' % name.upper()), 120), self.status()
        assert self.status() == done, self.show().get('stack_status_reason')

    def physical_id(self, resource):
        return self._get('/resources/%s' % resource)['resource'][
            'physical_resource_id']

    def show(self):
        return self.sess.get('/stacks/%s/%s' % (self.name, self.id),
                             endpoint_filter=self.ENDPOINT).json()['stack']

    def status(self):
        return self.show()['stack_status']

    def output(self, key):
        for out in self.show().get('outputs') or ():
            if out['output_key'] == key:
                return out['output_value']
        return None

    def size(self):
        return self.output('size')

    def wait_size(self, size, timeout=60):
        return base.wait_until(lambda: self.size() == size, timeout,
                               interval=0.5)

    def _get(self, path):
        return self.sess.get('/stacks/%s/%s%s' % (self.name, self.id, path),
                             endpoint_filter=self.ENDPOINT).json()

    def quiet(self):
        """The group is not updating and no policy is scaling or in
        its cooldown: a signal now is acted on (Heat drops the others
        silently).
        """
        group = self._get('/resources/group')['resource']
        if not group['resource_status'].endswith('COMPLETE'):
            return False
        for policy in ('scale_up', 'scale_down'):
            meta = self._get('/resources/%s/metadata' % policy).get(
                'metadata') or {}
            if meta.get('scaling_in_progress'):
                return False
        return True

    def wait_quiet(self, cooldown=1, timeout=60):
        assert base.wait_until(self.quiet, timeout, interval=0.5)
        time.sleep(cooldown + 1)

    def delete(self):
        try:
            self.sess.delete('/stacks/%s/%s' % (self.name, self.id),
                             endpoint_filter=self.ENDPOINT)
        except Exception:
            pass


def settle(seconds=1.5):
    """Wait out a policy's cooldown (Heat drops signals during it)."""
    time.sleep(seconds)
