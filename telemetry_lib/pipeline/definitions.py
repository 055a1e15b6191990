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
"""Ceilometer's ``pipeline.yaml``, ``event_pipeline.yaml`` and
``polling.yaml``, loaded into validated definitions.

Ceilometer's own files load unchanged and mean the same. Every problem is a
:class:`~telemetry_lib.exceptions.ConfigError` naming the file, the line,
the source or sink and the field, raised at load time; nothing here touches
the network or builds a publisher.
"""

import difflib
import fnmatch
import logging
import re

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import ConfigErrors
from telemetry_lib import plugins
from telemetry_lib.url import redact
from telemetry_lib.url import TelemetryURL
from telemetry_lib import yamlfile

LOG = logging.getLogger(__name__)


def load_yaml(path):
    """Parse a YAML file with the library's one bounded loader."""
    return yamlfile.load(path)


class NameFilter:
    """Ceilometer's meter (or event type) selection.

    ``*`` selects all, ``name`` or a glob includes, ``!name`` excludes; a
    list of excludes alone means "all but these". The precedence is
    Ceilometer's: an exclude wins over an include.
    """

    def __init__(self, patterns):
        self.patterns = tuple(patterns)
        excludes = [p[1:] for p in self.patterns if p.startswith('!')]
        includes = [p for p in self.patterns if not p.startswith('!')]
        self._exclude = _compile(excludes)
        self._include = _compile(includes)
        self._default = not includes

    def __call__(self, name):
        if self._exclude is not None and self._exclude(name):
            return False
        if self._include is not None and self._include(name):
            return True
        return self._default

    def matches_any(self, names):
        return any(self(n) for n in names)

    def __repr__(self):
        return 'NameFilter(%r)' % (list(self.patterns),)


def _compile(globs):
    """A matcher of names against ``globs``: plain names in a set, only
    real globs in one regular expression (a source naming 100,000 meters
    would otherwise compile a 100,000-way alternation).
    """
    if not globs:
        return None
    names = frozenset(g for g in globs if not _GLOB.search(g))
    patterns = [g for g in globs if _GLOB.search(g)]
    if not patterns:
        return names.__contains__
    match = re.compile('|'.join(fnmatch.translate(g) for g in patterns)
                       ).match
    if not names:
        return match
    return lambda name: name in names or match(name) is not None


_GLOB = re.compile(r'[*?\[]')


def check_filter(patterns, label):
    """Ceilometer's rules for a meter or event list; return an error text
    or ``None``.
    """
    if not isinstance(patterns, list) or not patterns:
        return 'must be a non-empty list of %s names or globs' % label
    bad = [p for p in patterns if not isinstance(p, str) or not p]
    if bad:
        return 'entries must be non-empty strings, not %r' % (bad[0],)
    includes = [p for p in patterns if p[0] not in '!*']
    if includes and any(p[0] == '!' for p in patterns):
        return 'both included and excluded %s given; use one or the other' \
            % label
    if '*' in patterns and includes:
        return 'included %s given with the "*" wildcard' % label
    return None


class SourceDefinition:
    """A pipeline source: which meters (or events) go to which sinks."""

    def __init__(self, name, patterns, sinks, line=None):
        self.name = name
        self.filter = NameFilter(patterns)
        self.sinks = tuple(sinks)
        self.line = line

    def __repr__(self):
        return '<source %s %r -> %s>' % (self.name, self.filter.patterns,
                                         ', '.join(self.sinks))


class SinkDefinition:
    """A pipeline sink: publisher URLs."""

    def __init__(self, name, publishers, line=None):
        self.name = name
        self.publishers = tuple(publishers)
        self.line = line


class PipelineDefinition:
    """A validated ``pipeline.yaml`` (``kind='samples'``) or
    ``event_pipeline.yaml`` (``kind='events'``).
    """

    def __init__(self, kind, sources, sinks, path=None):
        self.kind = kind
        self.sources = tuple(sources)
        self.sinks = {s.name: s for s in sinks}
        self.path = path

    @classmethod
    def load(cls, path, kind='samples', check_url=None):
        """Load and validate a file.

        :param check_url: ``f(TelemetryURL)`` called for each publisher URL,
            raising ``ConfigError`` for a bad one (e.g.
            :func:`publisher_installed`); its problems are reported with the
            others, on the sink's line.
        """
        return cls.from_data(load_yaml(path), kind, path, check_url)

    @classmethod
    def from_data(cls, data, kind='samples', path=None, check_url=None):
        field = 'meters' if kind == 'samples' else 'events'
        err = _Errors(path)
        if not isinstance(data, dict):
            err.fail('the top level must be a mapping with "sources" and '
                     '"sinks"', data)
        for key in ('sources', 'sinks'):
            if not isinstance(data.get(key), list) or not data[key]:
                err.fail('"%s" must be a non-empty list' % key, data,
                         field=key)
        sinks = err.each(data['sinks'], _sink, err, check_url)
        _check_unique(sinks, 'sink', err)
        names = {s.get('name') for s in data['sinks']
                 if isinstance(s, dict) and isinstance(s.get('name'), str)}
        sources = err.each(data['sources'], _source, field, names, err)
        _check_unique(sources, 'source', err)
        err.done()
        return cls(kind, sources, sinks, path)


def _source(data, field, sink_names, err):
    where = _where('source', data, err)
    name = data['name']
    problem = check_filter(data.get(field), field[:-1])
    if problem:
        err.fail(problem, data, where, field)
    sinks = data.get('sinks')
    if not isinstance(sinks, list) or not sinks:
        err.fail('must be a non-empty list of sink names', data, where,
                 'sinks')
    for sink in sinks:
        if not isinstance(sink, str):
            err.fail('must list sink names, not %r' % (sink,), data, where,
                     'sinks')
        if sink not in sink_names:
            err.fail('sink %r is not defined (defined: %s)'
                     % (sink, ', '.join(sorted(sink_names)) or 'none'),
                     data, where, 'sinks')
    if len(set(sinks)) != len(sinks):
        err.fail('a sink is listed twice', data, where, 'sinks')
    return SourceDefinition(name, data[field], sinks, _line(data))


def publisher_installed(url):
    """A ``check_url`` that only asks whether the scheme is installed."""
    plugins.require(plugins.PUBLISHER_NAMESPACE, url.scheme)


def _sink(data, err, check_url=None):
    where = _where('sink', data, err)
    publishers = data.get('publishers')
    if not isinstance(publishers, list) or not publishers:
        err.fail('must be a non-empty list of publisher URLs', data, where,
                 'publishers')
    problems = []
    for text in publishers:
        try:
            url = TelemetryURL.parse(text)
            if check_url is not None:
                check_url(url)
        except ConfigError as exc:
            problems.append(ConfigError(
                '%r: %s' % (redact(text), exc.reason), path=err.path,
                line=_line(data), where=where, field='publishers'))
    if problems:
        err.problems.extend(problems[:-1])
        raise problems[-1]
    if data.get('transformers'):
        LOG.warning('%s: transformers were removed from Ceilometer and are '
                    'not supported; they are ignored', where)
    return SinkDefinition(data['name'], publishers, _line(data))


#: Polling intervals allowed, in seconds (a month at most).
MIN_INTERVAL = 0.01
MAX_INTERVAL = 30 * 86400


class PollingSourceDefinition:
    """A ``polling.yaml`` source: meters polled every ``interval`` s."""

    def __init__(self, name, interval, meters, resources=(), discovery=(),
                 line=None):
        self.name = name
        self.interval = interval
        self.filter = NameFilter(meters)
        self.resources = tuple(resources)
        self.discovery = tuple(discovery)
        self.line = line


class PollingDefinition:
    """A validated ``polling.yaml``."""

    def __init__(self, sources, path=None):
        self.sources = tuple(sources)
        self.path = path

    @classmethod
    def load(cls, path):
        return cls.from_data(load_yaml(path), path)

    def unmatched(self, meters):
        """The meter names and globs of the sources that no meter in
        ``meters`` (what the installed pollsters produce) matches -- a typo
        such as ``cpuu`` would otherwise poll nothing, silently. One text
        each, naming the file, the source and the closest meters.
        """
        meters = sorted(set(meters))
        problems = []
        for source in self.sources:
            for pattern in source.filter.patterns:
                if pattern.startswith('!') or pattern == '*':
                    continue
                if NameFilter([pattern]).matches_any(meters):
                    continue
                close = difflib.get_close_matches(pattern, meters, n=3)
                problems.append(
                    '%s:%s: source %r, meter %r: no installed pollster '
                    'produces it%s' % (
                        self.path, source.line or '', source.name, pattern,
                        ' (did you mean %s?)' % ', '.join(close)
                        if close else ''))
        return problems

    @classmethod
    def from_data(cls, data, path=None):
        err = _Errors(path)
        if not isinstance(data, dict) or not isinstance(
                data.get('sources'), list) or not data['sources']:
            err.fail('"sources" must be a non-empty list', data,
                     field='sources')
        sources = err.each(data['sources'], _polling_source, err)
        _check_unique(sources, 'source', err)
        err.done()
        return cls(sources, path)


def _polling_source(s, err):
    where = _where('source', s, err)
    interval = s.get('interval')
    if isinstance(interval, bool) or not isinstance(
            interval, (int, float)) or not (
                MIN_INTERVAL <= interval <= MAX_INTERVAL):
        # NaN fails both comparisons: it would busy-loop the scheduler.
        err.fail('must be a number of seconds from %s to %d, not %r'
                 % (MIN_INTERVAL, MAX_INTERVAL, interval), s, where,
                 'interval')
    problem = check_filter(s.get('meters'), 'meter')
    if problem:
        err.fail(problem, s, where, 'meters')
    for key in ('resources', 'discovery'):
        if s.get(key) is not None and (not isinstance(s[key], list) or any(
                not isinstance(r, str) for r in s[key])):
            err.fail('must be a list of strings', s, where, key)
    return PollingSourceDefinition(
        s['name'], interval, s['meters'], s.get('resources') or (),
        s.get('discovery') or (), _line(s))


class _Errors:
    """Collects the problems of a file: each source or sink is checked on
    its own, so one load reports them all.
    """

    def __init__(self, path):
        self.path = path
        self.problems = []

    def fail(self, message, node=None, where=None, field=None):
        raise ConfigError(message, path=self.path, line=_line(node),
                          where=where, field=field)

    def each(self, items, check, *args):
        """``check(item, *args)`` for each item; the results of those that
        passed, the problems of the others kept.
        """
        results = []
        for item in items:
            try:
                results.append(check(item, *args))
            except ConfigError as exc:
                self.problems.append(exc)
        return results

    def done(self):
        if len(self.problems) == 1:
            raise self.problems[0]
        if self.problems:
            raise ConfigErrors(self.problems)


def _line(node):
    return getattr(node, 'line', None)


def _where(kind, data, err):
    if not isinstance(data, dict):
        err.fail('each %s must be a mapping, not %r' % (kind, data))
    name = data.get('name')
    if not isinstance(name, str) or not name:
        err.fail('each %s needs a "name"' % kind, data, field='name')
    return '%s %r' % (kind, name)


def _check_unique(items, kind, err):
    seen = set()
    for item in items:
        if item.name in seen:
            err.problems.append(ConfigError(
                'duplicated %s name %r' % (kind, item.name), path=err.path,
                line=item.line))
        seen.add(item.name)
