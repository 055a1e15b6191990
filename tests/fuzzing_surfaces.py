"""The seeded fuzzers of the surfaces added in the second hostile-input
round (issue 20): notifications through the converter and the CLI,
Alertmanager webhook bodies, dynamic pollster definitions and operations,
and raw HTTP requests. Judged as in :mod:`tests.fuzzing`, whose
:class:`~tests.fuzzing.Report` and checks they share.
"""

import copy
import dataclasses
import json
import os
import random
import re
import reprlib

import yaml

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib import jsoncodec
from tests.fuzzing import _check
from tests.fuzzing import _mutate
from tests.fuzzing import _nested
from tests.fuzzing import Report
from tests.fuzzing import SAMPLE_VALUES

NOTIFICATIONS = os.path.join(os.path.dirname(__file__), 'fixtures',
                             'notifications', 'openstack.json')
_DEEP_VALUES = [_nested(1000), {'a': _nested(990)}, {'x': _nested(300)}]
_DEEP = {id(v) for v in _DEEP_VALUES}
NOTIFICATION_VALUES = SAMPLE_VALUES + _DEEP_VALUES + [
    'x' * 1000000, float('nan'), [float('nan')] * 3,
    {'metadata': 'not a mapping'}, '\udcff\ud800',
]


def _run_cli(args, stdin=''):
    import contextlib
    import io

    from telemetry_lib.cmd import cli
    out, err = io.StringIO(), io.StringIO()
    app = cli.TelemetryApp()
    app.stdin = io.StringIO(stdin)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        app.stdout, app.stderr = out, err
        code = app.run(list(args))
    return code, out.getvalue(), err.getvalue()


def run_notifications(conf, tmpdir, count, seed=0):
    """Notifications (Ceilometer's test fixtures, mutated: types, missing
    keys, depth, sizes, NaN, non-UTF-8 bytes) through the converter the
    listener uses, and the file through ``notification convert``: each is
    converted or refused as poison (``InvalidSample``); the CLI answers
    with JSON and an exit code, or one line naming the file.
    """
    from telemetry_lib.cmd.commands import notification as cmd
    from telemetry_lib.notification import converter as conv_mod
    rng = random.Random(seed)
    report = Report()
    with open(NOTIFICATIONS, encoding='utf-8') as f:
        seeds = json.load(f)
    conv = conv_mod.Converter.from_conf(conf, _find_config_file)
    path = os.path.join(tmpdir, 'notification.json')
    for i in range(count):
        body = copy.deepcopy(rng.choice(seeds))
        for _ in range(rng.randrange(1, 4)):
            where = body
            keys = [None]
            while isinstance(where, dict) and where and rng.random() < 0.6:
                keys = list(where)
                key = rng.choice(keys)
                if not isinstance(where[key], dict):
                    break
                where = where[key]
            if isinstance(where, dict) and where:
                key = rng.choice(list(where) + ['extra'])
                if rng.random() < 0.15:
                    where.pop(key, None)
                else:
                    value = rng.choice(NOTIFICATION_VALUES)
                    # The deep ones are never changed: shared, not copied
                    # (deepcopy itself would recurse too deeply).
                    where[key] = value if id(value) in _DEEP else \
                        copy.deepcopy(value)
        if i % 3 == 0:
            # As it comes off the bus (flat), not as oslo hands it over.
            meta = body.get('metadata') if isinstance(
                body.get('metadata'), dict) else {}
            body = dict(body, **{k: v for k, v in meta.items()
                                 if isinstance(k, str)})
            body.pop('metadata', None)

        def convert(body=body):
            try:
                conv.convert(cmd._unwrap(body))
            except InvalidSample:
                raise InvalidSample('poison') from None

        def via_cli(body=body):
            try:
                text = json.dumps(body, allow_nan=True)
            except (TypeError, ValueError, RecursionError):
                return          # not JSON: never on the bus
            data = text.encode('utf-8', 'surrogatepass')
            if rng.random() < 0.2:
                cut = rng.randrange(len(data))
                data = data[:cut] + b'\xff\xfe' + data[cut:]
            with open(path, 'wb') as f:
                f.write(data)
            code, out, err = _run_cli(['notification', 'convert', path])
            if code == 0 or (code == 1 and out.startswith('[')):
                json.loads(out)
                return
            lines = err.strip().splitlines()
            if len(lines) != 1 or path not in lines[0]:
                raise AssertionError('CLI exit %d: %s' % (code, err[:300]))
            raise InvalidSample(lines[0])
        _check(report, reprlib.repr(body), via_cli if i % 2 else convert,
               secrets=False)
    return report


class _Actions:
    """Deliveries for the receiver fuzzer: accept everything, bounded."""

    class _D:
        def __init__(self, url):
            self.name = url
            self.count = 0

        def put(self, items):
            self.count += len(items)
            return len(items)

        def stats(self):
            return dataclasses.make_dataclass('St', [('pending', int)])(0)

    def __init__(self):
        self.made = {}

    def __call__(self, url):
        return self.made.setdefault(url, self._D(url))

    def release(self, url):
        self.made.pop(url, None)


WEBHOOK = {'version': '4', 'status': 'firing', 'receiver': 'telemetry',
           'groupKey': '{}:{alertname="HighCPU"}', 'alerts': [
               {'status': 'firing', 'startsAt': '2026-12-05T10:00:00Z',
                'fingerprint': 'f1', 'annotations': {'summary': 'hot'},
                'labels': {'alertname': 'HighCPU', 'severity': 'upscale',
                           'tenant_stack_name': 'web-1',
                           'tenant_stack_id': 'id-1'}}]}
ROUTES = """
routes:
  - name: up
    match: {severity: upscale}
    action: "heat://{tenant_stack_name}/{tenant_stack_id}/scale_up"
"""


def run_receiver(conf, tmpdir, count, seed=0):
    """Alertmanager webhook bodies: JSON mutants, sizes and label
    cardinality (hundreds of alerts naming as many targets). Every answer
    is a status and a JSON body, and the targets stay bounded.
    """
    from telemetry_lib.alarm import receiver
    rng = random.Random(seed)
    report = Report()
    path = os.path.join(tmpdir, 'routes.yaml')
    with open(path, 'w') as f:
        f.write(ROUTES)
    conf.set_override('bearer_tokens', ['tok'], group='receiver')
    conf.set_override('max_targets', 20, group='receiver')
    actions = _Actions()
    rcv = receiver.Receiver(conf, receiver.load_routes(path), actions,
                            release=actions.release)
    for i in range(count):
        choice = rng.random()
        if choice < 0.15:
            payload = copy.deepcopy(WEBHOOK)
            base_alert = payload['alerts'][0]
            payload['alerts'] = [
                dict(base_alert, labels=dict(
                    base_alert['labels'], tenant_stack_name='web-%d' % n,
                    **{'l%d' % j: 'v' * rng.randrange(100)
                       for j in range(rng.randrange(50))}))
                for n in range(rng.randrange(1, 400))]
        else:
            payload = copy.deepcopy(WEBHOOK)
            for _ in range(rng.randrange(1, 4)):
                payload = _mutate(payload, rng)
        try:
            body = jsoncodec.dumps(payload)
        except (TypeError, jsoncodec.EncodeError):
            body = repr(payload).encode()
        if rng.random() < 0.1:
            cut = rng.randrange(len(body) + 1)
            body = body[:cut] + rng.choice([b'\xff', b'\x00', b'{', b''])
        auth = rng.choice(['Bearer tok'] * 8 + ['', 'Bearer no', 'Basic x'])

        def call(body=body, auth=auth):
            status, ctype, text = rcv.handle({'Authorization': auth}, body)
            assert status in (200, 400, 401, 503), status
            assert ctype == 'application/json'
            answer = jsoncodec.loads(text)
            assert len(actions.made) <= 20, len(actions.made)
            if status != 200:
                raise InvalidSample(answer['message'])
        _check(report, body[:300], call, secrets=False)
    return report


DYNAMIC = {'name': 'dynamic.fuzz', 'sample_type': 'gauge', 'unit': 'B',
           'value_attribute': 'total.bytes | value * 2',
           'endpoint_type': 'compute', 'url_path': 'v2/usage',
           'response_entries_key': 'summary',
           'project_id_attribute': "user | value.split('$')[0]",
           'resource_id_attribute': "user | value.replace('$', '-')",
           'metadata_fields': ['name', "tags | ','.join(value)"]}
OP_PIECES = ['value', "'x'", '[0]', '1000000', '10 ** 5', '*', '+', '%',
             'str(', 'sum(', 'list(', 'map(lambda x: x * x, ', 'sorted(',
             ')', ']', '[', "value.split('$')", ".replace('a', 'aa')",
             '__class__', 'import os', 'lambda: 0', '.join(', "'|'",
             '(', '1e308', 'int(', "'9' * 4000", 'len(', '[value] * 1000']


def run_dynamic(count, seed, tmpdir):
    """Dynamic pollster definitions (mutated fields) and their operations
    (built from pieces, hostile ones included), loaded as a file and run
    on sample entries: refused at load, or run within the bounds.
    """
    from telemetry_lib.pollsters.dynamic import definition
    from telemetry_lib.pollsters.dynamic import expression
    rng = random.Random(seed)
    report = Report()
    path = os.path.join(tmpdir, 'pollster.yaml')
    entries = [{'user': 'p1$u1', 'total': {'bytes': 7}, 'name': 'a',
                'tags': ['x', 'y']},
               {'user': 3, 'total': None, 'tags': 'notalist'},
               {'user': 'a' * 100000, 'total': {'bytes': [[0] * 1000]}}]
    for i in range(count):
        data = copy.deepcopy(DYNAMIC)
        if rng.random() < 0.5:
            data = _mutate(data, rng)
        else:
            ops = ' '.join(rng.choice(OP_PIECES)
                           for _ in range(rng.randrange(1, 8)))
            data[rng.choice(['value_attribute', 'project_id_attribute',
                             'resource_id_attribute'])] = (
                'total.bytes | ' + ops)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(yaml.safe_dump([data], allow_unicode=True))

        def load_and_run():
            defs = definition.load_file(path)
            for d in defs:
                attrs = [getattr(d, name, None) for name in dir(d)
                         if isinstance(getattr(d, name, None),
                                       definition.Attribute)]
                attrs += list(d.ids.values()) + [a for _, a in d.metadata]
                for entry in entries:
                    for attr in attrs:
                        try:
                            attr(entry)
                        except expression.EvaluationError as exc:
                            if len(str(exc).splitlines()) != 1:
                                raise AssertionError('multi-line: %s'
                                                     % exc)
        _check(report, yaml.safe_dump(data)[:300], load_and_run,
               secrets=False)
    return report


HTTP_REQUESTS = [
    b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
    b'POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n'
    b'\r\n{}',
    b'HEAD /metrics HTTP/1.0\r\n\r\n',
    b'POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    b'POST /x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n',
    b'POST /x HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue'
    b'\r\n\r\nhello',
]
HTTP_PIECES = [b'\r\n', b'\r\n\r\n', b':', b' ', b'\x00', b'\xff',
               b'HTTP/1.1', b'Content-Length: -1\r\n',
               b'Content-Length: 1\r\nContent-Length: 2\r\n',
               b'X: ' + b'a' * 70000, b'GET', b'%00', b'/../../etc/passwd',
               b'Connection: close\r\n', b'Connection: keep-alive\r\n']


def run_http(count, seed=0):
    """Raw requests against the HTTP stack: mutated heads and bodies,
    pipelined requests, partial sends and half-closed sockets. Every
    connection gets well-formed answers or is closed, and ``/healthz``
    answers after each one.
    """
    import socket

    from telemetry_lib.httpserver import GetServer
    rng = random.Random(seed)
    report = Report()
    server = GetServer(
        '127.0.0.1', 0, lambda p, a: (200, 'text/plain', b'ok\n'),
        post=lambda p, h, b: (200, 'text/plain', b'%d\n' % len(b)),
        idle_timeout=0.5, request_timeout=0.3, threads=2,
        max_connections=16).start()
    answer = re.compile(rb'HTTP/1\.1 [1-5]\d\d [^\r\n]*\r\n')
    try:
        for _ in range(count):
            data = b''.join(rng.choice(HTTP_REQUESTS)
                            for _ in range(rng.randrange(1, 4)))
            for _ in range(rng.randrange(0, 3)):
                at = rng.randrange(len(data) + 1)
                data = data[:at] + rng.choice(HTTP_PIECES) + data[at:]
            if rng.random() < 0.3:
                data = data[:rng.randrange(len(data) + 1)]
            half_close = rng.random() < 0.5

            def exchange(data=data, half_close=half_close):
                with socket.create_connection((server.host, server.port),
                                              timeout=10) as s:
                    try:
                        s.sendall(data)
                        if half_close:
                            s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass        # the server may close first (431)
                    got = b''
                    try:
                        while True:
                            chunk = s.recv(65536)
                            if not chunk:
                                break
                            got += chunk
                    except ConnectionResetError:
                        pass
                    except socket.timeout:
                        raise AssertionError('no answer and not closed')
                if got and not answer.match(got):
                    raise AssertionError('not HTTP: %r' % got[:100])
                with socket.create_connection(
                        (server.host, server.port), timeout=10) as s:
                    s.sendall(HTTP_REQUESTS[0])
                    if not s.recv(4096).startswith(b'HTTP/1.1 200'):
                        raise AssertionError('/healthz did not answer')
            _check(report, data[:300], exchange, secrets=False)
    finally:
        server.close()
    # Bad requests are answered (4xx), so the run counts them here.
    report.rejected = sum(server.counts.values())
    return report


def _find_config_file(conf, name):
    from telemetry_lib.agent.service import find_config_file
    return find_config_file(conf, name)


__all__ = ['run_notifications', 'run_receiver', 'run_dynamic', 'run_http']
