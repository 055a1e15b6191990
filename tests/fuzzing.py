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
``tools/fuzz.py`` runs as many as you like. The surfaces of the second
round are in :mod:`tests.fuzzing_surfaces`.
"""

import copy
import dataclasses
import random
import re
import resource
import time
import traceback

import yaml

from telemetry_lib import delivery
from telemetry_lib.exceptions import InvalidSample
from telemetry_lib.exceptions import TelemetryError
from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import collectd
from telemetry_lib.formats import prometheus as prom
from telemetry_lib.formats import stf
from telemetry_lib import jsoncodec
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
    'remote-write+https://u:%s@127.0.0.1:9/api/v1/write?header=X-Scope-'
    'OrgID:t&scheme=ceilometer&token=%s' % (SECRET, SECRET),
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
    collectd.encode([sample], 10)
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


__all__ = ['Report', 'run_yaml', 'run_urls', 'run_samples', 'SECRET']
