"""Seeded fuzzers for what operators and peers hand the library: pipeline,
event pipeline and polling YAML, publisher URLs (delivery options
included) and samples (JSON for the CLI, keyword arguments for the Python
API).

Each ``run_*`` function makes ``count`` mutants from a seed and returns a
:class:`Report`: a mutant may be accepted or rejected with the library's
own error, in one bounded line, quickly, and never with a password in the
message; anything else (another exception, a slow or long answer, a
secret echoed, an accepted sample that cannot be encoded) is a finding.
``tests/unit/test_fuzz.py`` runs a small seeded batch in CI;
``tools/fuzz.py`` runs as many as you like.
"""

import copy
import dataclasses
import json
import os
import random
import re
import reprlib
import resource
import time
import traceback

import yaml

from telemetry_lib import delivery
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import jsoncodec
from telemetry_lib.formats import prometheus as prom
from telemetry_lib.formats import stf
from telemetry_lib import Sample

SECRET = 'S3cr3tPw'
#: Where the secret still reads as one (a password after a user name, a
#: token option): mutants that mangled it into a host or a path are not
#: passwords any more, and echoing them is fair.
_SECRET_INTACT = re.compile(r'(?:^|//|\s)[\w.-]+:%s@|[?&](?:token|password)'
                            r'=%s' % (SECRET, SECRET))
MAX_LINE = 1000
MAX_SECONDS = 5.0
MAX_RUN_MB = 200

PIPELINE = {
    'sources': [{'name': 'meter_source', 'meters': ['*', '!disk.*'],
                 'sinks': ['meter_sink', 'other']}],
    'sinks': [{'name': 'meter_sink', 'publishers': [
        'test://', 'amqp1://user:%s@127.0.0.1:5672/anycast/x' % SECRET]},
        {'name': 'other', 'publishers': [
            'http://u:%s@127.0.0.1:9/in?timeout=5' % SECRET,
            'gnocchi://?archive_policy=low&token=%s' % SECRET]}],
}
EVENTS = {
    'sources': [{'name': 'event_source', 'events': ['*'],
                 'sinks': ['event_sink']}],
    'sinks': [{'name': 'event_sink', 'publishers': ['test://']}],
}
POLLING = {'sources': [{'name': 'host', 'interval': 10,
                        'meters': ['host.*'], 'resources': ['a']}]}

ODD_VALUES = [
    None, 0, -1, 1, 10 ** 30, 1e309, float('nan'), -1e309, '', ' ',
    'x' * 5000, [], {}, [[1]], {'a': {'b': 1}}, True, '*', '!', '!*',
    'file:///nonexistent/dir/x.json', 'http://u:%s@h:99999/' % SECRET,
    'amqp1://u:%s/x@h:port/' % SECRET, 'test://?max_batch_size=nan',
    'test://?max_latency=inf', 'test://?retry_max_delay=1e308',
    'test://?block_timeout=inf&overflow=block', '\x00', 'é' * 3, '[', '{',
    ['a', None], [{'name': None}], {'name': []},
]

URL_SEEDS = [
    'test://', 'http://u:%s@127.0.0.1:8080/in?timeout=5' % SECRET,
    'amqp1://user:%s@127.0.0.1:5672,[::1]:5673/anycast/x?settle=presettled'
    % SECRET, 'gnocchi://127.0.0.1:8041?archive_policy=low&token=%s'
    % SECRET, 'prometheus://?port=0&max_series=10',
    'prometheus://127.0.0.1:9091/metrics/job/x/a@base64/eA==',
    'file:///tmp/x.json?max_bytes=10&backup_count=2',
    'notifier://u:%s@127.0.0.1:5672/?driver=rabbit' % SECRET,
    'test://?max_batch_size=10&max_latency=0.5&spool=false&overflow=block'
    '&block_timeout=1',
]
URL_PIECES = ['nan', 'inf', '-inf', '1e308', '-1', '0', '99999999999', '',
              '%', '%zz', '[', ']', '::1', '@', ':', '/', '?', '#', '&',
              '=', 'é', '\x00', 'max_latency=', 'spool_dir=', 'policy=',
              'max_retries=', 'timeout=', 'port=', 'settle=', 'format=']


@dataclasses.dataclass
class Report:
    runs: int = 0
    accepted: int = 0
    rejected: int = 0
    findings: list = dataclasses.field(default_factory=list)
    slowest: float = 0.0
    max_rss_mb: float = 0.0

    def finding(self, kind, what, detail):
        self.findings.append('%s: %s: %s' % (kind, repr(what)[:200],
                                             detail[:2000]))


def _check(report, what, func, secrets=True):
    """Run ``func``; judge how it ended."""
    report.runs += 1
    rss_before = _max_rss_mb()
    started = time.monotonic()
    try:
        func()
    except TelemetryError as exc:
        report.rejected += 1
        text = str(exc)
        lines = text.splitlines() or ['']
        if any(len(line) > MAX_LINE for line in lines):
            report.finding('long message', what, text[:300])
        if secrets and SECRET in text and _SECRET_INTACT.search(str(what)):
            report.finding('secret echoed', what, text)
    except Exception:
        report.finding('traceback', what, traceback.format_exc())
    else:
        report.accepted += 1
    took = time.monotonic() - started
    report.slowest = max(report.slowest, took)
    if took > MAX_SECONDS:
        report.finding('slow', what, '%.1fs' % took)
    rss = _max_rss_mb()
    report.max_rss_mb = max(report.max_rss_mb, rss)
    if rss - rss_before > MAX_RUN_MB:
        report.finding('memory', what, 'peak RSS grew by %.0f MB'
                       % (rss - rss_before))


def _max_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _mutate(data, rng, depth=0):
    """A copy of ``data`` with one node replaced, removed or duplicated."""
    if isinstance(data, dict) and data and rng.random() < 0.8:
        key = rng.choice(list(data))
        choice = rng.random()
        if choice < 0.2:
            del data[key]
        elif choice < 0.6 and depth < 6:
            data[key] = _mutate(data[key], rng, depth + 1)
        else:
            data[key] = copy.deepcopy(rng.choice(ODD_VALUES))
        return data
    if isinstance(data, list) and data and rng.random() < 0.8:
        i = rng.randrange(len(data))
        choice = rng.random()
        if choice < 0.2:
            del data[i]
        elif choice < 0.4:
            data.append(copy.deepcopy(data[i]))
        elif choice < 0.7 and depth < 6:
            data[i] = _mutate(data[i], rng, depth + 1)
        else:
            data[i] = copy.deepcopy(rng.choice(ODD_VALUES))
        return data
    return copy.deepcopy(rng.choice(ODD_VALUES))


def _text_mutants(text, rng):
    choice = rng.random()
    if choice < 0.3:
        cut = rng.randrange(len(text))
        return text[:cut]
    if choice < 0.6:
        i = rng.randrange(len(text))
        return text[:i] + rng.choice(':-[]{}&*!|>\'"%@`\t\n#') + text[i:]
    if choice < 0.8:
        return ('a: &a ["x","x","x","x","x","x","x","x","x"]\n' + ''.join(
            'b%d: &b%d [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n'
            % (i, i, *(('a' if i == 0 else 'b%d' % (i - 1)),) * 8)
            for i in range(rng.randrange(3, 12))))
    return '[' * rng.randrange(10, 5000)


def run_yaml(conf, tmpdir, count, seed=0):
    """Pipeline, event pipeline and polling files through ``pipeline
    validate``'s checks.
    """
    from telemetry_lib.cmd.commands import pipeline as validate
    rng = random.Random(seed)
    report = Report()
    path = '%s/fuzz.yaml' % tmpdir
    seeds = (('samples', PIPELINE), ('events', EVENTS),
             ('polling', POLLING))
    for i in range(count):
        kind, seed_data = seeds[i % 3]
        if rng.random() < 0.8:
            data = seed_data
            for _ in range(rng.randrange(1, 4)):
                data = _mutate(copy.deepcopy(data), rng)
            text = yaml.safe_dump(data, allow_unicode=True)
        else:
            text = _text_mutants(yaml.safe_dump(seed_data), rng)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        _check(report, text[:300],
               lambda: validate.PipelineValidate._validate(conf, path, kind))
    return report


def run_urls(conf, count, seed=0):
    """Publisher URLs, delivery options included, built as a sink does."""
    rng = random.Random(seed)
    report = Report()
    for _ in range(count):
        url = rng.choice(URL_SEEDS)
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(url) + 1)
            piece = rng.choice(URL_PIECES)
            url = url[:i] + piece + url[i:]
        if rng.random() < 0.3:
            url += rng.choice(('?', '&')) + rng.choice([
                'max_latency', 'max_batch_size', 'retry_max_delay',
                'block_timeout', 'max_queue_bytes', 'timeout', 'port',
                'send_timeout', 'max_retries', 'spool']) + '=' + rng.choice(
                    URL_PIECES)

        def build(url=url):
            d = delivery.build(conf, url)
            d.close(0)
        _check(report, url, build)
    return report


def _sample_seed(rng):
    return {'name': 'cpu', 'type': 'cumulative', 'unit': 'ns',
            'volume': 12, 'resource_id': 'r', 'user_id': 'u',
            'project_id': 'p', 'timestamp': '2024-05-01T12:00:00+00:00',
            'resource_metadata': {'host': 'h', 'flavor': {'vcpus': 2},
                                  'tags': ['a', 'b']}}


def _nested(depth):
    value = {}
    for _ in range(depth):
        value = [value]
    return value


SAMPLE_VALUES = ODD_VALUES + [
    '0001-01-01T00:00:00+01:00', '9999-12-31T23:59:59-01:00',
    '0001-01-01T00:00:00', '9999-12-31T23:59:59.999999',
    -1e20, 1e20, 253402300800, -62135596801, '2024-13-01', 'now',
    {1, 2}, b'bytes', {1: 'int key'}, {'k': {2, 3}}, object(),
    {'deep': _nested(40)},
    float('inf'), complex(1, 2), 10 ** 400,
]


def _encodable(sample):
    """Every wire form a publisher makes must accept an accepted sample."""
    jsoncodec.dumps(ceilometer.samples_to_wire([sample], 'k'))
    enc = stf.encode_samples([sample], 'p', 'k')
    assert not enc.oversize or True
    stf.encode_collectd([sample], 10)
    for scheme in prom.SCHEMES:
        prom.SERIES_OF[scheme](sample, 'p')


def run_samples(count, seed=0):
    """Samples as the CLI reads them (JSON) and as the Python API takes
    them (keyword arguments, JSON-impossible values included).
    """
    from telemetry_lib.cmd.commands import sample as sample_cmd
    rng = random.Random(seed)
    report = Report()
    for i in range(count):
        data = _sample_seed(rng)
        for _ in range(rng.randrange(1, 4)):
            key = rng.choice(list(data) + ['extra'])
            target = data
            if key == 'resource_metadata' and rng.random() < 0.5 and \
                    isinstance(data.get(key), dict):
                target, key = data[key], rng.choice(['host', 'x', 'flavor'])
            target[key] = rng.choice(SAMPLE_VALUES)

        def via_api(data=data):
            try:
                sample = Sample(**data)
            except TypeError as exc:
                raise InvalidSample(str(exc)) from None
            _encodable(sample)

        def via_cli(data=data):
            try:
                text = jsoncodec.dumps([data]).decode()
            except (TypeError, jsoncodec.EncodeError):
                return          # not JSON: the CLI can never receive it
            samples, problems = sample_cmd.read_samples(text)
            for sample in samples:
                _encodable(sample)
            for problem in problems:
                if len(problem) > MAX_LINE:
                    raise AssertionError('long problem: %s' % problem[:200])
        _check(report, data, via_api if i % 2 else via_cli, secrets=False)
    return report


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
    from telemetry_lib.collector.notification import converter as conv_mod
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


def run_dynamic(count, seed=0, tmpdir=None):
    """Dynamic pollster definitions (mutated fields) and their operations
    (built from pieces, hostile ones included), loaded as a file and run
    on sample entries: refused at load, or run within the bounds.
    """
    from telemetry_lib.collector.dynamic import definition
    from telemetry_lib.collector.dynamic import expression
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
        server.stop()
    # Bad requests are answered (4xx), so the run counts them here.
    report.rejected = sum(server.counts.values())
    return report


def _find_config_file(conf, name):
    from telemetry_lib.agent.service import find_config_file
    return find_config_file(conf, name)


__all__ = ['Report', 'run_yaml', 'run_urls', 'run_samples',
           'run_notifications', 'run_receiver', 'run_dynamic', 'run_http',
           'SECRET']
