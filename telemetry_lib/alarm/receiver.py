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
"""The Alertmanager receiver: a webhook that turns alerts into alarm
actions -- what prometheus-am-executor and its shell script did, with
authentication, deduplication and the delivery core's retries and spool.

Alertmanager posts its webhook payload (version 4) to ``/alertmanager``
on the agent's endpoint. Each alert is matched, on its own labels,
against the routes of ``[receiver] routes_file``; the first route that
matches names an action URL, templated from the labels::

    routes:
      - name: scale_up
        match: {severity: upscale}             # equality on labels
        match_re: {tenant_stack_name: "web-.*"}  # regular expressions
        action: "heat://{tenant_stack_name}/{tenant_stack_id}/scale_up"
        repeat: 300        # one action per alert group per 300 s
        cooldown: 60       # and per target, at most one per 60 s
        resolved: false    # resolved alerts do nothing (the default)

Semantics: one action per firing alert group per ``repeat`` window (so
Alertmanager's re-sends do not scale twice), a per-target cooldown and
at most ``max_in_flight`` actions waiting per target. The answer is 200
only once every action is queued -- in the spool, since receiver action
URLs get ``spool=true`` unless they say otherwise -- and 503 when one
could not be, so Alertmanager sends again. Authentication is required
(bearer token or basic auth, as Alertmanager's ``http_config`` sends;
compared in constant time); a bad or missing one is 401.
"""

import base64
import collections
import datetime
import hmac
import logging
import os
import re
import string
import threading
import time

from oslo_config import cfg

from telemetry_lib.alarm import model
from telemetry_lib.exceptions import brief
from telemetry_lib.exceptions import ConfigError
from telemetry_lib import jsoncodec
from telemetry_lib.masking import redact
from telemetry_lib import ratelog
from telemetry_lib.sample import new_message_id
from telemetry_lib.timeutils import UTC
from telemetry_lib.url import TelemetryURL
from telemetry_lib import yamlfile

LOG = logging.getLogger(__name__)

GROUP = 'receiver'
OPTS = [
    cfg.StrOpt('routes_file', default='',
               help='Routes of Alertmanager alerts to actions (YAML). '
                    'Empty: no receiver.'),
    cfg.StrOpt('path', default='/alertmanager',
               help="Path of the webhook on the agent's endpoint."),
    cfg.ListOpt('bearer_tokens', default=[], secret=True,
                help='Tokens accepted as "Authorization: Bearer".'),
    cfg.StrOpt('username', help='User accepted with basic auth.'),
    cfg.StrOpt('password', secret=True,
               help='Password of that user.'),
    cfg.BoolOpt('allow_anonymous', default=False,
                help='Accept webhooks without credentials (a receiver on '
                     'loopback behind something that authenticates).'),
    cfg.IntOpt('max_body', default=1024 * 1024, min=1024,
               max=64 * 1024 * 1024, help='Largest webhook body, bytes.'),
    cfg.IntOpt('max_in_flight', default=10, min=1, max=100000,
               help='Actions waiting per target before more are refused.'),
    cfg.IntOpt('max_targets', default=100, min=1, max=100000,
               help='Action targets (URLs made from the routes and the '
                    "alerts' labels) held at once, each with its delivery "
                    'and spool. A new one past the bound replaces the '
                    'longest unused target with nothing waiting; when '
                    'there is none, its alert is refused and counted '
                    '(actions_refused_targets).'),
]

PATH = '/alertmanager'
_FIELD = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


def register_opts(conf):
    conf.register_opts(OPTS, group=GROUP)


class Route:
    """One validated route."""

    def __init__(self, data, path):
        line = getattr(data, 'line', None)
        if not isinstance(data, dict) or not isinstance(
                data.get('name'), str):
            raise ConfigError('each route is a mapping with a "name"',
                              path=path, line=line)
        self.name = data['name']
        where = 'route %r' % self.name

        def fail(field, message):
            raise ConfigError(message, path=path, line=line, where=where,
                              field=field)

        self.match = data.get('match') or {}
        self.match_re = {}
        for field in ('match', 'match_re'):
            value = data.get(field) or {}
            if not isinstance(value, dict) or any(
                    not isinstance(k, str) or not isinstance(v, str)
                    for k, v in value.items()):
                fail(field, 'must map label names to strings')
        for label, pattern in (data.get('match_re') or {}).items():
            try:
                # Anchored, as Alertmanager anchors its own.
                self.match_re[label] = re.compile('^(?:%s)$' % pattern)
            except re.error as exc:
                fail('match_re', '%r is not a regular expression: %s'
                     % (pattern, exc))
        action = data.get('action')
        if not isinstance(action, str) or not action:
            fail('action', 'must be an action URL (templated with '
                           '{label})')
        try:
            self.fields = [f for _, f, _, _ in string.Formatter().parse(
                action) if f is not None]
        except ValueError as exc:
            fail('action', 'bad template: %s' % exc)
        bad = [f for f in self.fields if not _FIELD.match(f)]
        if bad:
            fail('action', 'template fields must be label names, not %r'
                 % bad[0])
        self.action = action
        for field, default, maximum in (('repeat', 300, 86400),
                                        ('cooldown', 0, 86400)):
            value = data.get(field, default)
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not 0 <= value <= maximum:
                fail(field, 'must be seconds from 0 to %d, not %r'
                     % (maximum, value))
            setattr(self, field, float(value))
        self.resolved = data.get('resolved', False)
        if not isinstance(self.resolved, bool):
            fail('resolved', 'must be true or false')

    def matches(self, labels):
        return (all(labels.get(k) == v for k, v in self.match.items())
                and all(p.match(labels.get(k, ''))
                        for k, p in self.match_re.items()))

    def target(self, labels):
        """The action URL for these labels, or ``None`` when one is
        missing. Label values are quoted, so they cannot change the URL's
        shape.
        """
        from urllib.parse import quote
        try:
            url = self.action.format_map({
                f: quote(labels[f], safe='') for f in self.fields})
        except KeyError:
            return None
        parsed = TelemetryURL.parse(url)
        if not parsed.has_option('spool'):
            url += ('&' if '?' in url else '?') + 'spool=true'
        return url


def load_routes(path):
    data = yamlfile.load(path)
    if not isinstance(data, dict) or not isinstance(data.get('routes'),
                                                    list):
        raise ConfigError('the top level must be a mapping with a '
                          '"routes" list', path=path)
    routes = [Route(r, path) for r in data['routes']]
    names = [r.name for r in routes]
    if len(set(names)) != len(names):
        raise ConfigError('duplicated route names', path=path)
    return routes


class Receiver:
    """Takes Alertmanager webhooks, queues actions.

    :param actions: ``f(url text) -> Delivery`` (started), shared with the
        alarms (the agent's pool).
    :param clock: monotonic seconds (tests pass their own).
    :param store: an alarm :class:`~telemetry_lib.alarm.state.StateStore`
        keeping the decision on each alert (bounded), for
        ``telemetry-lib alarm webhooks``.
    """

    def __init__(self, conf, routes, actions, clock=time.monotonic,
                 targets_file=None, store=None, release=None):
        register_opts(conf)
        opts = conf[GROUP]
        self.routes = routes
        self._actions = actions
        self._clock = clock
        self._tokens = [t.encode() for t in opts.bearer_tokens if t]
        self._basic = None
        if opts.username and opts.password:
            self._basic = base64.b64encode(('%s:%s' % (
                opts.username, opts.password)).encode())
        self._anonymous = opts.allow_anonymous
        if not (self._tokens or self._basic or self._anonymous):
            raise ConfigError('the receiver needs bearer_tokens or a '
                              'username and password (or allow_anonymous)',
                              where='[%s]' % GROUP)
        self.max_in_flight = opts.max_in_flight
        self.max_targets = opts.max_targets
        self._release = release
        self._problems = ratelog.RateLimitedLog(LOG, 'receiver',
                                                clock=clock)
        self._used = {}                             # target -> time
        self._lock = threading.Lock()
        self._seen = collections.OrderedDict()      # dedupe key -> time
        self._last_sent = {}                        # target -> time
        self.counts = collections.Counter()
        # Targets are made from labels, so only webhooks name them: the
        # ones ever used are remembered, for their spools to be reopened
        # (and what a crash left there sent) at the next start.
        self._targets_file = targets_file
        self._known = set(self._read_targets())
        self.store = store

    # -- HTTP --------------------------------------------------------------

    def authorised(self, headers):
        given = (headers.get('Authorization') or '').encode()
        scheme, _, value = given.partition(b' ')
        ok = False
        # Every candidate is compared, in constant time each.
        for token in self._tokens:
            ok |= scheme.lower() == b'bearer' and hmac.compare_digest(
                value.strip(), token)
        if self._basic is not None:
            ok |= scheme.lower() == b'basic' and hmac.compare_digest(
                value.strip(), self._basic)
        return ok or self._anonymous

    def handle(self, headers, body):
        """``(status, content type, body)`` for one webhook call."""
        if not self.authorised(headers):
            return self._answer(401, 'unauthorised', 'rejected_auth')
        try:
            payload = jsoncodec.loads(body)
        except jsoncodec.DecodeError as exc:
            return self._answer(400, 'not JSON: %s' % exc, 'rejected_bad')
        if not isinstance(payload, dict) or not isinstance(
                payload.get('alerts'), list):
            return self._answer(400, 'not an Alertmanager webhook payload '
                                '(no "alerts" list)', 'rejected_bad')
        if str(payload.get('version', '4')) != '4':
            return self._answer(400, 'webhook version %r; version 4 is '
                                'understood' % payload.get('version'),
                                'rejected_bad')
        refused, decisions = [], []
        for alert in payload['alerts']:
            if not isinstance(alert, dict) or not isinstance(
                    alert.get('labels'), dict):
                self._count('alerts_malformed')
                decisions.append(('', '', 'alerts_malformed', ''))
                continue
            self._count('alerts_received')
            route, outcome, target, problem = self._alert(alert, payload)
            self._count(outcome)
            decisions.append((str(alert['labels'].get('alertname', '')),
                              route, outcome, redact(target or '')))
            if problem:
                refused.append(problem)
        self._journal(decisions)
        if refused:
            return self._answer(503, 'could not queue: %s'
                                % '; '.join(refused[:3]), None)
        return self._answer(200, 'ok', None)

    def _journal(self, decisions):
        if self.store is None or not decisions:
            return
        try:
            self.store.log_webhooks(datetime.datetime.now(UTC),
                                    decisions)
        except Exception as exc:
            # The history is for people; the action is already queued.
            LOG.warning('receiver history not saved: %s', brief(str(exc)))

    def _count(self, outcome):
        # Webhooks are served by several threads at once.
        with self._lock:
            self.counts[outcome] += 1

    def _answer(self, status, message, counter):
        if counter:
            self._count(counter)
        return status, 'application/json', jsoncodec.dumps(
            {'status': 'ok' if status == 200 else 'error',
             'message': message})

    # -- routing -----------------------------------------------------------

    def _alert(self, alert, payload):
        """``(route name, outcome, target, problem)``: ``outcome`` a
        counter's name, ``problem`` why it could not be queued (then the
        webhook is answered 503 and sent again).
        """
        labels = {str(k): str(v) for k, v in alert['labels'].items()}
        firing = alert.get('status', payload.get('status')) != 'resolved'
        route = next((r for r in self.routes if r.matches(labels)), None)
        if route is None:
            return '', 'alerts_unmatched', None, None
        if not firing and not route.resolved:
            return route.name, 'alerts_resolved_ignored', None, None
        try:
            target = route.target(labels)
        except ConfigError as exc:
            LOG.error('route %s: bad action URL: %s', route.name, exc)
            return route.name, 'actions_bad_url', None, None
        if target is None:
            LOG.warning('route %s: alert %s lacks a label of %s',
                        route.name, labels.get('alertname'), route.action)
            return route.name, 'alerts_unmatched', None, None
        self._count('alerts_matched')
        now = self._clock()
        group = str(payload.get('groupKey') or alert.get('fingerprint')
                    or repr(sorted(labels.items())))
        # startsAt tells an incident: Alertmanager re-sends one with the
        # same start, and an alert that resolved and fired again starts
        # anew -- a second load spike must scale again.
        key = (route.name, target, group, firing,
               str(alert.get('startsAt') or ''), labels.get('alertname'))
        with self._lock:
            self._expire(now)
            seen = self._seen.get(key)
            if seen is not None and now - seen < route.repeat:
                return route.name, 'alerts_deduplicated', target, None
            last = self._last_sent.get(target)
            if last is not None and now - last < route.cooldown:
                return route.name, 'alerts_cooldown', target, None
        if not self._make_room(target, now):
            self._problems.problem(
                'targets', 'route %s: %s refused: already %d action '
                'targets with actions waiting ([receiver] max_targets); '
                'more are counted as actions_refused_targets', route.name,
                redact(target), self.max_targets)
            return route.name, 'actions_refused_targets', target, None
        try:
            d = self._actions(target)
        except ConfigError as exc:
            LOG.error('route %s: bad action %s: %s', route.name, target,
                      exc)
            return route.name, 'actions_bad_url', target, None
        if d.stats().pending >= self.max_in_flight:
            return route.name, 'actions_refused', target, (
                '%s has %d actions waiting' % (d.name, self.max_in_flight))
        annotations = alert.get('annotations')
        summary = annotations.get('summary') if isinstance(
            annotations, dict) else None
        action = model.Action(new_message_id(), {
            'alarm_name': labels.get('alertname', route.name),
            'alarm_id': str(alert.get('fingerprint') or ''),
            'severity': labels.get('severity', ''),
            'previous': 'ok' if firing else 'alarm',
            'current': 'alarm' if firing else 'ok',
            'reason': 'Alertmanager: %s' % (
                summary or labels.get('alertname', '')),
            'reason_data': {'type': 'alertmanager', 'labels': labels,
                            'route': route.name},
            'timestamp': datetime.datetime.now(UTC).isoformat()})
        self._remember(target)
        if d.put([action]) != 1:
            return route.name, 'actions_refused', target, (
                'the queue of %s refused it' % d.name)
        with self._lock:
            self._seen[key] = now
            self._last_sent[target] = now
        return route.name, 'actions_queued', target, None

    def _make_room(self, target, now):
        """Whether ``target`` may have a delivery: it has one already,
        there is room, or the longest unused target with nothing waiting
        gives its place up (its delivery closed, its spool empty).
        """
        with self._lock:
            if target in self._known or len(self._known) < self.max_targets:
                self._used[target] = now
                return True
            candidates = sorted(self._known,
                                key=lambda t: self._used.get(t, 0.0))
        if self._release is None:
            return False
        for old in candidates:
            try:
                if self._actions(old).stats().pending:
                    continue
            except ConfigError:
                pass
            self._forget(old)
            self._release(old)
            self.counts['targets_evicted'] += 1
            with self._lock:
                self._used[target] = now
            return True
        return False

    def _forget(self, target):
        with self._lock:
            self._known.discard(target)
            self._last_sent.pop(target, None)
            self._used.pop(target, None)
            for key in [k for k in self._seen if k[1] == target]:
                del self._seen[key]
            known = sorted(self._known)
        self._save_targets(known)

    def _expire(self, now, horizon=86400):
        while self._seen:
            key, when = next(iter(self._seen.items()))
            if now - when < horizon and len(self._seen) < 100000:
                break
            self._seen.popitem(last=False)

    def _read_targets(self):
        if not self._targets_file:
            return []
        try:
            with open(self._targets_file, 'rb') as f:
                data = jsoncodec.loads(f.read())
            return [u for u in data if isinstance(u, str)]
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            LOG.error('cannot read %s: %s', self._targets_file, exc)
            return []

    def _remember(self, target):
        with self._lock:
            if target in self._known:
                return
            self._known.add(target)
            known = sorted(self._known)
        self._save_targets(known)

    def _save_targets(self, known):
        if not self._targets_file:
            return
        tmp = self._targets_file + '.tmp'
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self._targets_file)),
                        mode=0o700, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, 'wb') as f:
                f.write(jsoncodec.dumps(known))
            os.replace(tmp, self._targets_file)
        except OSError as exc:
            LOG.error('cannot save %s: %s', self._targets_file, exc)

    def recover(self):
        """Open the deliveries of every target used before (their spools
        hold what a crash left); return how many.
        """
        opened = 0
        for url in sorted(self._known):
            try:
                self._actions(url)
                opened += 1
            except ConfigError as exc:
                LOG.error('receiver target %s cannot be reopened: %s',
                          url, exc)
        return opened

    def inherit(self, old):
        """Take over the dedupe windows, cooldowns and counters of the
        receiver this one replaces.
        """
        with old._lock:
            self._seen = old._seen
            self._last_sent = old._last_sent
            self._used = old._used
            self.counts = old.counts
            self._known |= old._known

    def targets(self):
        """Action URLs already used (for the pool keys)."""
        with self._lock:
            return set(self._last_sent) | self._known
