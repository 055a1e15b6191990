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
"""The Aodh v2 alarming API as a WSGI application.

``/`` (version discovery), ``/v2/capabilities``, ``/v2/alarms`` (list
with Aodh's ``q.field/q.op/q.value`` filters, ``limit``, ``marker``
and ``sort``; create), ``/v2/alarms/{id}`` (get, replace, delete),
``/v2/alarms/{id}/state`` (get, set) and ``/v2/alarms/{id}/history``,
with Aodh's bodies, status codes and error document (``{"error_message":
{"faultstring": ...}}``, what aodhclient shows). Alarms of the alarms file
are listed to admins (``all_projects=true``) and read-only.

Every answer is JSON; a database that does not answer is a 503, a bug a
500 with one logged line -- never a traceback to the client.
"""

import logging
import re

import webob

from telemetry_lib.alarm.db import store as db_store
from telemetry_lib.alarm import model
from telemetry_lib.api import context
from telemetry_lib.api.context import APIError
from telemetry_lib.api import query
from telemetry_lib.api import representation as rep
from telemetry_lib import jsoncodec
from telemetry_lib import plugins

LOG = logging.getLogger(__name__)

_ALARM = re.compile(r'^/v2/alarms/([^/]+)(?:/(state|history))?/?$')
_QUERY_FIELDS = {'all_projects', 'user_id', 'project_id', 'type', 'name',
                 'enabled', 'state', 'severity', 'timestamp',
                 'repeat_actions'}
_SORT_KEYS = ('name', 'type', 'state', 'severity', 'timestamp',
              'state_timestamp', 'enabled', 'alarm_id', 'user_id',
              'project_id')
_BOOLEAN = {'true': True, 'false': False, '1': True, '0': False}


def _json(status, data):
    resp = webob.Response(status=status, content_type='application/json',
                          charset=None)
    resp.body = jsoncodec.dumps(data)
    return resp


def _fault(status, message):
    return _json(status, {'error_message': {
        'faultcode': 'Client' if status < 500 else 'Server',
        'faultstring': message, 'debuginfo': None}})


class AlarmAPI:
    """The application: ``db`` an :class:`~telemetry_lib.alarm.db.
    store.AlarmDB` (started), ``files`` ``() -> (AlarmsDefinition or
    None, StateStore or None)`` for the alarms file's alarms, ``trust`` a
    :class:`~telemetry_lib.api.trusts.Trusts` (or ``None``: no
    ``trust+`` actions).
    """

    def __init__(self, db, files=None, trust=None, max_actions=-1,
                 project_quota=-1, user_quota=-1, gnocchi_owner=None):
        self.db = db
        #: ``() -> project id or None``: the project Ceilometer writes to
        #: Gnocchi as (for the scoping of members' Gnocchi searches).
        self.gnocchi_owner = gnocchi_owner or (lambda: None)
        self.files = files or (lambda: (None, None))
        self.trust = trust
        self.max_actions = max_actions
        self.project_quota = project_quota
        self.user_quota = user_quota
        self.classes = rep.rule_classes()
        known = set(plugins.names(plugins.ALARM_ACTION_NAMESPACE))
        #: Action schemes an alarm may use (``trust+`` needs ``trust``).
        self.schemes = known if trust else {
            s for s in known if not s.startswith('trust+')}

    def __call__(self, environ, start_response):
        req = webob.Request(environ)
        said = None             # (level, what went wrong) for the log
        try:
            resp = self.route(req, context.Context.from_environ(environ))
        except APIError as exc:
            if exc.status >= 500:       # Keystone's trouble with a trust
                said = (logging.WARNING, exc)
            resp = _fault(exc.status, str(exc))
        except db_store.DatabaseUnavailable as exc:
            said = (logging.WARNING, exc)
            resp = _fault(503, 'the alarm database is unavailable')
        except db_store.DatabaseError as exc:
            said = (logging.ERROR, exc)
            resp = _fault(500, 'the alarm database refused the change')
        except Exception as exc:
            said = (logging.ERROR, '%s: %s' % (type(exc).__name__, exc))
            resp = _fault(500, 'internal error')
        if said is not None:
            # Outside the except blocks: oslo.log would append the
            # exception to the line again.
            LOG.log(said[0], 'API: %s %s: %s', req.method, req.path, said[1])
        return resp(environ, start_response)

    # -- routing -------------------------------------------------------------

    def route(self, req, ctx):
        path, method = req.path_info.rstrip('/') or '/', req.method
        if path in ('/', '/v2'):
            return self._allow(method, 'GET') or _json(200, _versions(req))
        if path == '/v2/capabilities':
            return self._allow(method, 'GET') or _json(200, _CAPABILITIES)
        if path == '/v2/alarms':
            if method == 'GET':
                return _json(200, self.list(req, ctx))
            if method == 'POST':
                alarm = self.create(_body(req), ctx)
                resp = _json(201, alarm)
                resp.location = '%s/v2/alarms/%s' % (
                    req.host_url, alarm['alarm_id'])
                return resp
            return self._allow(method, 'GET, POST')
        if path == '/v2/query/alarms':
            return self._allow(method, 'POST') or _json(
                200, self.query(_body(req), ctx))
        match = _ALARM.match(path)
        if not match:
            raise APIError('The resource could not be found.', 404)
        alarm_id, sub = match.groups()
        if sub is None:
            if method == 'GET':
                return _json(200, rep.render(self._find(alarm_id, ctx)))
            if method == 'PUT':
                return _json(200, self.replace(alarm_id, _body(req), ctx))
            if method == 'DELETE':
                self.delete(alarm_id, ctx)
                return webob.Response(status=204)
            return self._allow(method, 'GET, PUT, DELETE')
        if sub == 'state':
            if method == 'GET':
                return _json(200, self._find(alarm_id, ctx)['state'])
            if method == 'PUT':
                return _json(200, self.set_state(alarm_id, _body(req), ctx))
            return self._allow(method, 'GET, PUT')
        return self._allow(method, 'GET') or _json(
            200, self.history(alarm_id, req, ctx))

    @staticmethod
    def _allow(method, allowed):
        if method not in allowed.split(', '):
            resp = _fault(405, 'The method %s is not allowed here'
                          % method)
            resp.allow = allowed
            return resp
        return None

    # -- reading -------------------------------------------------------------

    def _find(self, alarm_id, ctx, writing=False):
        alarm = self.db.get(alarm_id, ctx.limited_to_project())
        if alarm is None:
            alarm = self._file_alarm(alarm_id, ctx)
            if alarm is not None and writing:
                raise APIError('Alarm %s is defined in the alarms file: '
                               'it is read-only here' % alarm_id, 403)
        if alarm is None:
            raise APIError('Alarm %s not found' % alarm_id, 404)
        return alarm

    def _file_alarms(self):
        definition, states = self.files()
        if definition is None:
            return []
        return [file_alarm(a, states) for a in definition.alarms.values()]

    def _file_alarm(self, alarm_id, ctx):
        if not ctx.is_admin:
            return None
        for alarm in self._file_alarms():
            if alarm['alarm_id'] == alarm_id:
                return alarm
        return None

    def list(self, req, ctx):
        filters, all_projects = {}, False
        fields = req.GET.getall('q.field')
        ops = req.GET.getall('q.op') or ['eq'] * len(fields)
        values = req.GET.getall('q.value')
        if not len(fields) == len(ops) == len(values):
            raise APIError('q.field, q.op and q.value must come in '
                           'threes')
        for field, op, value in zip(fields, ops, values):
            if field not in _QUERY_FIELDS:
                raise APIError('Invalid input for field/attribute field. '
                               'Value: %r. only fields %s are allowed'
                               % (field, sorted(_QUERY_FIELDS)))
            if op != 'eq':
                raise APIError("Invalid input for field/attribute op. "
                               "Value: %r. only operations {'eq'} are allowed"
                               % op)
            if field in ('enabled', 'repeat_actions', 'all_projects'):
                if value.lower() not in _BOOLEAN:
                    raise APIError('Unable to convert the value %s from '
                                   'the data type string to boolean' % value)
                value = _BOOLEAN[value.lower()]
            if field == 'all_projects':
                all_projects = value
            elif field == 'timestamp':
                raise APIError('Unable to filter alarms on timestamp')
            else:
                filters[field] = value
        if all_projects and not ctx.is_admin:
            raise context.Forbidden('RBAC Authorization Failed', 403)
        if not all_projects:
            requested = filters.setdefault('project_id', ctx.project_id)
            if not ctx.is_admin and requested != ctx.project_id:
                raise context.Forbidden('Not Authorized to access project '
                                        '%s' % requested, 401)
        limit = _limit(req)
        sort = _sort(req)
        marker = req.GET.get('marker')
        try:
            found = self.db.list(filters, limit=limit, marker=marker,
                                 sort=sort)
        except KeyError:
            raise APIError('Invalid marker %s' % marker) from None
        result = [rep.render(a) for a in found]
        if all_projects and marker is None:
            result += [rep.render(a) for a in self._file_alarms()
                       if all(a.get(k) == v for k, v in filters.items())]
        return result

    def query(self, body, ctx):
        try:
            predicate, orderby, limit = query.parse(body)
        except query.BadQuery as exc:
            raise APIError(str(exc)) from None
        scope = ctx.limited_to_project()
        found = [rep.render(a) for a in self.db.list(
            {'project_id': scope})]
        if scope is None:
            found += [rep.render(a) for a in self._file_alarms()]
        result = query.sort([a for a in found if predicate(a)], orderby)
        return result[:limit] if limit else result

    def history(self, alarm_id, req, ctx):
        alarm = self.db.get(alarm_id, ctx.limited_to_project())
        if alarm is None and self._file_alarm(alarm_id, ctx) is None:
            raise APIError('Alarm %s not found' % alarm_id, 404)
        changes = self.db.changes(alarm_id, ctx.limited_to_project(),
                                  limit=_limit(req) or 100)
        return [rep.render_change(c) for c in changes]

    # -- writing -------------------------------------------------------------

    def _change(self, ctx, alarm, kind, detail, now):
        return {'alarm_id': alarm['alarm_id'], 'type': kind,
                'detail': detail, 'user_id': ctx.user_id,
                'project_id': ctx.project_id,
                'on_behalf_of': alarm.get('project_id') or ctx.project_id,
                'severity': alarm.get('severity'), 'timestamp': now}

    def _parse(self, body, ctx):
        alarm = rep.parse_alarm(body, ctx, self.max_actions, self.schemes,
                                self.classes)
        if not ctx.is_admin:
            rep.scope_to_project(alarm, ctx.project_id, self.gnocchi_owner())
        return alarm

    def create(self, body, ctx):
        alarm = self._parse(body, ctx)
        for field, mine in (('user_id', ctx.user_id),
                            ('project_id', ctx.project_id)):
            asked = alarm.get(field)
            if asked is not None and asked != mine and not ctx.is_admin:
                raise context.Forbidden('Not Authorized to access %s %s'
                                        % (field[:-3], asked), 401)
            alarm[field] = asked or mine
        self._check_quota(alarm)
        now = db_store.utcnow()
        alarm.update(alarm_id=db_store.new_id(), timestamp=now,
                     state_timestamp=now, state_reason=rep.DEFAULT_REASON)
        alarm.setdefault('state', model.INSUFFICIENT_DATA)
        if self.trust is not None:
            self.trust.attach(alarm, ctx)
        detail = {k: v for k, v in rep.render(alarm).items()
                  if k not in ('timestamp', 'state_timestamp',
                               'evaluate_timestamp')}
        try:
            stored = self.db.create(alarm, self._change(
                ctx, alarm, db_store.CREATION, detail, now))
        except BaseException:
            if self.trust is not None:
                self.trust.release(alarm, ctx)
            raise
        return rep.render(stored)

    def _check_quota(self, alarm):
        if self.project_quota >= 0 and self.db.count(
                project_id=alarm['project_id']) >= self.project_quota or \
                self.user_quota >= 0 and self.db.count(
                    user_id=alarm['user_id']) >= self.user_quota:
            raise APIError('Alarm quota exceeded for user %s on project '
                           '%s' % (alarm['user_id'], alarm['project_id']), 403)

    def replace(self, alarm_id, body, ctx):
        old = self._find(alarm_id, ctx, writing=True)
        alarm = self._parse(body, ctx)
        for field in ('user_id', 'project_id'):
            if not ctx.is_admin or alarm.get(field) is None:
                alarm[field] = old[field]
        now = db_store.utcnow()
        alarm['timestamp'] = now
        state = alarm.get('state') or old['state']
        alarm['state'] = state
        if state != old['state']:
            alarm.update(state_timestamp=now,
                         state_reason=rep.MANUAL_REASON)
        if self.trust is not None:
            self.trust.attach(alarm, ctx, old)
        before, after = rep.render(old), rep.render(alarm | {
            'alarm_id': alarm_id})
        change = {k: v for k, v in after.items() if before.get(k) != v
                  and k not in ('timestamp', 'state_timestamp')}
        stored = self.db.update(alarm_id, alarm, self._change(
            ctx, old, db_store.RULE_CHANGE, change, now) if change else None)
        if stored is None:
            raise APIError('Alarm %s not found' % alarm_id, 404)
        return rep.render(stored)

    def delete(self, alarm_id, ctx):
        old = self._find(alarm_id, ctx, writing=True)
        now = db_store.utcnow()
        if not self.db.delete(alarm_id, self._change(
                ctx, old, db_store.DELETION, {'state': old['state']}, now)):
            raise APIError('Alarm %s not found' % alarm_id, 404)
        if self.trust is not None:
            self.trust.release(old, ctx)

    def set_state(self, alarm_id, state, ctx):
        old = self._find(alarm_id, ctx, writing=True)
        if state not in model.STATES:
            raise APIError("Invalid input for field/attribute state. "
                           "Value: %r. Value should be one of: %s"
                           % (state, ', '.join(model.STATES)))
        now = db_store.utcnow()
        self.db.update(alarm_id, {
            'state': state, 'state_timestamp': now,
            'state_reason': rep.MANUAL_REASON}, self._change(
                ctx, old, db_store.STATE_TRANSITION,
                {'state': state, 'state_reason': rep.MANUAL_REASON}, now))
        return state


def file_alarm(definition, states):
    """An alarm of the alarms file as the API shows it (read-only)."""
    state, reason, changed = (states.get(definition.name) if states
                              else (model.INSUFFICIENT_DATA,
                                    rep.DEFAULT_REASON, None))
    return {'alarm_id': definition.id, 'name': definition.name,
            'type': definition.type,
            'description': definition.description,
            'enabled': definition.enabled,
            'severity': definition.severity, 'state': state,
            'state_reason': reason, 'state_timestamp': changed,
            'timestamp': None, 'evaluate_timestamp': None,
            'repeat_actions': definition.repeat_actions, 'user_id': None,
            'project_id': None, 'time_constraints': [],
            'rule': dict(definition.rule.data),
            'ok_actions': list(definition.actions.get(model.OK, ())),
            'alarm_actions': list(definition.actions.get(model.ALARM, ())),
            'insufficient_data_actions': list(definition.actions.get(
                model.INSUFFICIENT_DATA, ()))}


def _body(req):
    try:
        return jsoncodec.loads(req.body or b'null')
    except jsoncodec.DecodeError as exc:
        raise APIError('The request body is not JSON: %s' % exc) \
            from None


def _limit(req):
    value = req.GET.get('limit')
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise APIError('Limit must be positive')
    return int(value)


def _sort(req):
    out = []
    for item in req.GET.getall('sort'):
        key, _, direction = item.partition(':')
        direction = direction or 'asc'
        if key not in _SORT_KEYS or direction not in ('asc', 'desc'):
            raise APIError('Invalid sort %s: keys %s, directions asc '
                           'and desc' % (item, ', '.join(_SORT_KEYS)))
        out.append((key, direction))
    return out


def _versions(req):
    v2 = {'id': 'v2', 'status': 'stable', 'updated': '2013-02-13T00:00:00Z',
          'links': [{'rel': 'self', 'href': req.host_url + '/v2'}],
          'media-types': [{'base': 'application/json',
                           'type': 'application/vnd.openstack.telemetry-'
                                   'v2+json'}]}
    return {'versions': {'values': [v2]}, 'default_version': v2}


_CAPABILITIES = {
    'api': {'alarms:query:simple': True, 'alarms:query:complex': False,
            'alarms:history:query:simple': True,
            'alarms:history:query:complex': False},
    'alarm_storage': {'storage:production_ready': True},
}
