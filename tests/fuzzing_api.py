"""The seeded fuzzer of the alarming API (issue 23): alarm bodies of every
type mutated, list filters, complex queries and state bodies, through the
WSGI application over an in-memory alarm database. Every answer is a JSON
document with a status Aodh gives -- never a 500, a traceback or an
unbounded message -- and what was accepted reads back. Judged as in
:mod:`tests.fuzzing`.
"""

import copy
import datetime
import json
import random
from urllib import parse

import webob

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.url import TelemetryURL
from tests.fuzzing import _check
from tests.fuzzing import _mutate
from tests.fuzzing import Report

BODIES = [
    {'name': 'cpu', 'type': 'prometheus', 'severity': 'moderate',
     'prometheus_rule': {'query': 'avg(cpu)', 'threshold': 80,
                         'comparison_operator': 'gt'},
     'alarm_actions': ['http://h/up'], 'ok_actions': ['https://h/ok'],
     'repeat_actions': True},
    {'name': 'group', 'type': 'gnocchi_aggregation_by_resources_threshold',
     'gnocchi_aggregation_by_resources_threshold_rule': {
         'metric': 'cpu', 'resource_type': 'instance',
         'query': '{"=": {"server_group": "g"}}', 'granularity': 300,
         'evaluation_periods': 2, 'aggregation_method': 'mean',
         'threshold': 50}, 'alarm_actions': ['http://h/up'],
     'time_constraints': [{'name': 'tc', 'start': '0 9 * * 1-5',
                           'duration': 3600, 'timezone': 'Europe/Paris'}]},
    {'name': 'event', 'type': 'event', 'repeat_actions': True,
     'event_rule': {'event_type': 'compute.instance.*', 'query': [
         {'field': 'traits.state', 'op': 'eq', 'value': 'error',
          'type': 'string'},
         {'field': 'traits.vcpus', 'op': 'ge', 'value': '4',
          'type': 'integer'}]}, 'alarm_actions': ['http://h/up']},
    {'name': 'both', 'type': 'composite', 'composite_rule': {'or': [
        {'type': 'prometheus', 'query': 'up', 'threshold': 1},
        {'and': [{'type': 'gnocchi_resources_threshold', 'metric': 'cpu',
                  'resource_id': 'r', 'threshold': 1,
                  'aggregation_method': 'max'},
                 {'type': 'prometheus', 'query': 'x', 'threshold': 2}]}]}},
]
QUERIES = ['q.field=%s&q.op=%s&q.value=%s', 'limit=%s', 'sort=%s',
           'marker=%s', 'q.field=%s']
WORDS = ['state', 'name', 'all_projects', 'eq', 'lt', 'true', '0', '-1',
         'x' * 5000, '%00', 'name:desc', 'rule:asc', '\u00e9', '', '1e9']
STATUSES = (200, 201, 204, 400, 401, 403, 404, 405)


def _call(api, method, path, body, who):
    req = webob.Request.blank(path, method=method)
    req.headers['X-User-Id'], req.headers['X-Project-Id'], \
        req.headers['X-Roles'] = who
    if body is not None:
        req.body = body
    resp = req.get_response(api)
    assert resp.status_int in STATUSES, (resp.status_int, resp.body[:500])
    data = json.loads(resp.body) if resp.body else None
    if resp.status_int >= 400:
        raise InvalidSample(data['error_message']['faultstring'])
    return data


EVENT = {'message_id': 'm1', 'event_type': 'compute.instance.update',
         'generated': '2026-01-05T12:00:00', 'raw': {},
         'traits': [['state', 1, 'error'], ['vcpus', 2, 8],
                    ['ratio', 3, 0.5], ['at', 4, '2026-01-05T12:00:00'],
                    ['project_id', 1, 'p']]}


def run_events(count, seed=0):
    """Events as the event alarms get them (Ceilometer's wire form),
    mutated: matched against an event rule, never an exception.
    """
    from telemetry_lib.alarm import event_rules
    rng = random.Random(seed)
    report = Report()
    rule = event_rules.EventRule(BODIES[2]['event_rule'], 'fuzz')
    for _ in range(count):
        event = copy.deepcopy(EVENT)
        for _ in range(rng.randrange(1, 4)):
            event = _mutate(event, rng)

        def call(event=event):
            if not isinstance(event, dict):
                raise InvalidSample('not an event')
            if not rule.matches(event):
                raise InvalidSample('no match')
            rule.fired(event)
            event_rules.event_project(event)
        _check(report, event, call, secrets=False)
    return report


def run_api(count, seed=0):
    from telemetry_lib.alarm.db import store
    from telemetry_lib.api import app
    rng = random.Random(seed)
    report = Report()
    db = store.AlarmDB('sqlite://').start()
    api = app.AlarmAPI(db)
    made = []
    try:
        for _ in range(count):
            who = rng.choice([('u', 'p', 'member'), ('a', 'q', 'admin'),
                              ('v', 'p', '')])
            choice = rng.random()
            if choice < 0.6:
                data = copy.deepcopy(rng.choice(BODIES))
                for _ in range(rng.randrange(0, 3)):
                    data = _mutate(data, rng)
                try:
                    body = json.dumps(data).encode()
                except (TypeError, ValueError):
                    body = repr(data).encode()
                if rng.random() < 0.05:
                    body = body[:rng.randrange(len(body) + 1)]
                method, path = 'POST', '/v2/alarms'
                if made and rng.random() < 0.3:
                    method, path = 'PUT', '/v2/alarms/' + rng.choice(made)
            elif choice < 0.75:
                method, body = 'GET', None
                path = '/v2/alarms?' + '&'.join(
                    q % tuple(parse.quote(rng.choice(WORDS))
                              for _ in range(q.count('%s')))
                    for q in rng.sample(QUERIES, rng.randrange(1, 4)))
            elif choice < 0.85:
                method, path = 'POST', '/v2/query/alarms'
                tree = _mutate({'and': [{'=': {'state': 'ok'}},
                                        {'in': {'name': ['a', 'b']}}]}, rng)
                body = json.dumps({'filter': json.dumps(tree, default=str),
                                   'limit': rng.choice([1, 0, None, 'x'])}
                                  ).encode()
            else:
                target = rng.choice(made) if made else 'nope'
                method, path, body = rng.choice([
                    ('PUT', '/v2/alarms/%s/state' % target,
                     json.dumps(rng.choice(['ok', 'alarm', 'bad', 1,
                                            None])).encode()),
                    ('GET', '/v2/alarms/%s/history' % target, None),
                    ('DELETE', '/v2/alarms/%s' % target, None),
                    ('GET', '/v2/alarms/%s' % target, None)])

            def call(method=method, path=path, body=body, who=who):
                answer = _call(api, method, path, body, who)
                if method == 'POST' and path == '/v2/alarms':
                    made.append(answer['alarm_id'])
                    again = _call(api, 'GET', '/v2/alarms/'
                                  + answer['alarm_id'], None, who)
                    assert again == answer, (again, answer)
            _check(report, (method, path[:200], (body or b'')[:300]), call,
                   secrets=False)
    finally:
        db.close()
    return report


def run_prometheus_batches(conf, count, seed=0):
    """Answers to a batch of instant queries, as a Prometheus (or whatever
    answers in its place) might send them, mutated: the batch is split or
    set aside, and each query then answers with its series or one
    StorageError line -- never an exception, never a series of another.
    """
    from telemetry_lib.clients import http
    from telemetry_lib.exceptions import StorageError
    from telemetry_lib.storage import prometheus
    rng = random.Random(seed)
    report = Report()
    at = datetime.datetime(2026, 12, 5, tzinfo=datetime.timezone.utc)
    expressions = ['q%d' % i for i in range(4)]
    for _ in range(count):
        answer = {'status': 'success', 'data': {
            'resultType': 'vector', 'result': [
                {'metric': {prometheus.BATCH_LABEL: str(i), 'n': 'q%d' % i},
                 'value': [at.timestamp(), str(i)]}
                for i in range(4)]}}
        for _ in range(rng.randrange(0, 3)):     # some whole
            answer = _mutate(answer, rng)
        status = rng.choice([200, 200, 200, 400, 422, 503])
        text = json.dumps(answer, default=str)
        if rng.random() < 0.1:
            text = text[:rng.randrange(len(text) + 1)]
        storage = prometheus.PrometheusStorage(
            conf, TelemetryURL.parse('prometheus://127.0.0.1:9'))
        singles = []
        # Some runs mangle the answers to queries asked on their own too.
        mangled = rng.random() < 0.3

        def answer(method, url, _s=status, _t=text, params=None,
                   _m=mangled, **kwargs):
            if method == 'POST':
                return http.Response(_s, {}, _t, False)
            singles.append(params['query'])     # one query on its own
            single = {'status': 'success', 'data': {
                'resultType': 'vector', 'result': [{
                    'metric': {'n': params['query']}, 'value': [0, '1']}]}}
            if _m:
                single = _mutate(single, rng)
            return http.Response(200, {}, json.dumps(single, default=str),
                                 False)
        storage._client.request = answer

        def call(storage=storage, singles=singles):
            with storage.prefetched(expressions, at):
                for e in expressions:
                    try:
                        got = storage.instant_query(e, at)
                    except StorageError:
                        continue
                    for labels, value in got:
                        if not isinstance(labels, dict) or not isinstance(
                                value, float):
                            raise AssertionError('not a series: %r'
                                                 % ((labels, value),))
                        if not mangled and labels.get('n', e) != e:
                            raise AssertionError('%s got the series of %s'
                                                 % (e, labels['n']))
            if storage._prefetched:
                raise AssertionError('answers kept after the turn')
            if singles:
                raise InvalidSample('%d asked on their own' % len(singles))
        _check(report, text, call, secrets=False)
    return report


def run_remote_write_answers(conf, count, seed=0):
    """What a remote write receiver (or a proxy before it) may answer --
    any status, ``Retry-After``, body -- request after request while a
    batch is being halved: the publisher ends with delivered, a retry or a
    drop naming only items of the batch, never an exception.
    """
    from telemetry_lib.clients import http
    from telemetry_lib.exceptions import PublishError
    from telemetry_lib.publisher import base as publisher_base
    from telemetry_lib import Sample
    rng = random.Random(seed)
    report = Report()
    now = datetime.datetime(2026, 12, 5, tzinfo=datetime.timezone.utc)
    statuses = [200, 204, 400, 400, 401, 404, 413, 422, 429, 500, 503, 302,
                100, 999, -1]
    for _ in range(count):
        pub = publisher_base.load_publisher(
            conf, 'remote-write+http://127.0.0.1:9/api/v1/write')
        batch = [Sample('cpu', 'gauge', '%', float(i), resource_id='r%d' % i,
                        timestamp=now) for i in range(rng.randrange(1, 40))]
        script = [(rng.choice(statuses), rng.choice(
            [{}, {'Retry-After': rng.choice(['1', '-5', 'nan', 'soon',
                                             '1e999', ''])}]),
            rng.choice(['', 'err', '\x00' * 3, 'x' * 500]))
            for _ in range(rng.randrange(1, 80))]

        def answer(method, url, data=None, _s=list(script), **kwargs):
            status, headers, text = _s.pop(0) if _s else (204, {}, '')
            if status == -1:
                raise http.Unanswered('connection refused')
            return http.Response(status, headers, text, False)
        pub._client.request = answer

        def call(pub=pub, batch=batch):
            try:
                pub.publish_samples(batch)
            except PublishError as exc:
                named = list(exc.items or ()) + list(
                    getattr(exc, 'permanent_items', ()))
                if any(not 0 <= i < len(batch) for i in named):
                    raise AssertionError('items out of the batch: %r'
                                         % named)
                raise
        _check(report, script, call, secrets=False)
    return report
