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
"""Prometheus text exposition (0.0.4) and OpenMetrics 1.0: pure functions.

Two naming schemes map a sample to a series:

``stf``
    Exactly the names, types and labels STF's Smart Gateway gives Ceilometer
    samples, so STF dashboards and alert rules keep working:
    ``ceilometer_<counter_name with . as _>``; cumulative is a counter
    *without* ``_total``, gauge a gauge, delta untyped; labels: the first
    name segment (valued by the third segment, or the resource id),
    ``publisher``, ``type``, ``counter``, ``project``, ``project_name``,
    ``user``, ``user_name``, ``unit``, ``resource``, ``vm_instance`` (from
    ``resource_metadata.host``), ``resource_name`` (``display_name:name``)
    and one per ``user_metadata`` key.
``ceilometer``
    Exactly the series of Ceilometer's own exporter (``[polling]
    enable_prometheus_exporter``, 27.0): the same names, every one a
    gauge, and its labels -- the ``stf`` ones with ``publisher`` always
    ``ceilometer``, then ``server_group`` (``none`` when unset),
    ``state`` (an alarm state), ``availability_zone`` (load balancers),
    ``binary``/``zone``/``status`` (``volume.service.health``),
    ``flavor_id`` and ``flavor_name``. Labels it leaves out are empty here
    (Prometheus stores neither). Only the newest polling cycle of a metric
    is served, as Ceilometer's exporter purges a pollster's metric each
    cycle.
``openmetrics``
    Prometheus conventions: the meter name with its unit as a suffix,
    ``_total`` on counters; labels ``resource``, ``project``, ``user``,
    ``host``.

A family's label set is fixed: a series that lacks a label has it empty
(Prometheus reads an empty label as absent), so metadata that differs
between resources never breaks a scrape.
"""

import math
import re

TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
OPENMETRICS_CONTENT_TYPE = ('application/openmetrics-text; version=1.0.0; '
                            'charset=utf-8')
SCHEMES = ('stf', 'ceilometer', 'openmetrics')

_INF = float('inf')
_BAD_NAME = re.compile(r'[^a-zA-Z0-9_:]')
_BAD_LABEL = re.compile(r'[^a-zA-Z0-9_]')
_TYPES = {'cumulative': 'counter', 'gauge': 'gauge', 'delta': 'untyped'}
_UNIT_SUFFIX = {'B': 'bytes', 's': 'seconds', 'ms': 'milliseconds',
                'ns': 'nanoseconds', '%': 'percent', 'MB': 'megabytes',
                'KB': 'kilobytes', 'GB': 'gigabytes', 'Hz': 'hertz',
                'W': 'watts', 'J': 'joules', 'C': 'celsius'}


def format_value(value):
    """A number as Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` writes it,
    as Prometheus does: ``1234``, ``12.5``, ``1.2345e+11``, ``1e-05``,
    ``NaN``, ``+Inf``, ``-Inf``.
    """
    f = float(value)
    if f != f:
        return 'NaN'
    if f == _INF:
        return '+Inf'
    if f == -_INF:
        return '-Inf'
    if f == 0:
        return '-0' if math.copysign(1.0, f) < 0 else '0'
    if -1e6 < f < 1e6 and f.is_integer():
        return str(int(f))      # the common case, Go's %f form
    text = repr(f)          # the shortest round-trip digits, as Go's
    sign = ''
    if text[0] == '-':
        sign, text = '-', text[1:]
    mantissa, _, exp = text.partition('e')
    whole, _, frac = mantissa.partition('.')
    raw = whole + frac
    stripped = raw.lstrip('0')
    point = len(whole) + int(exp or 0) - (len(raw) - len(stripped))
    digits = stripped.rstrip('0') or '0'
    x = point - 1
    if x < -4 or x >= 6:
        out = digits[0]
        if len(digits) > 1:
            out += '.' + digits[1:]
        return '%s%se%s%02d' % (sign, out, '-' if x < 0 else '+', abs(x))
    if point <= 0:
        return '%s0.%s%s' % (sign, '0' * -point, digits)
    if point >= len(digits):
        return sign + digits + '0' * (point - len(digits))
    return '%s%s.%s' % (sign, digits[:point], digits[point:])


def escape_help(text):
    return text.replace('\\', '\\\\').replace('\n', '\\n')


def escape_label_value(text):
    return text.replace('\\', '\\\\').replace('"', '\\"').replace(
        '\n', '\\n')


def metric_name(text):
    """A valid metric name: other characters become ``_``."""
    name = _BAD_NAME.sub('_', text)
    return '_' + name if name[:1].isdigit() else name


def label_name(text):
    name = _BAD_LABEL.sub('_', text)
    return '_' + name if not name or name[:1].isdigit() else name


def label_string(names, labels):
    """``a="1",b=""`` for ``names``, empty where ``labels`` lacks one."""
    get = labels.get
    return ','.join('%s="%s"' % (n, escape_label_value(get(n, '')))
                    for n in names)


def series_prefix(name, label_names, labels):
    """``name{labels} ``: the part of a line that a new value keeps."""
    if label_names:
        return '%s{%s} ' % (name, label_string(label_names, labels))
    return name + ' '


def series_line(name, label_names, labels, value, timestamp=None):
    """One exposition line (with its newline)."""
    line = series_prefix(name, label_names, labels) + format_value(value)
    if timestamp is not None:
        line += ' %s' % timestamp
    return line + '\n'


# -- naming schemes -----------------------------------------------------------

_STF_FIXED = ('publisher', 'type', 'counter', 'project', 'project_name',
              'user', 'user_name', 'unit', 'resource', 'vm_instance',
              'resource_name')


def _sg_series(sample, publisher, user_labels):
    shards = sample.name.split('.')
    md = sample.resource_metadata
    labels = {}
    user_md = md.get('user_metadata')
    if user_labels and isinstance(user_md, dict):
        for key, value in user_md.items():
            labels[label_name(str(key))] = str(value)
    first = label_name(shards[0])
    labels[first] = shards[2] if len(shards) > 2 else sample.resource_id
    name_parts = [x for x in (md.get('display_name'), md.get('name')) if x]
    labels.update({
        'publisher': publisher,
        'type': shards[1] if len(shards) > 1 else shards[0],
        'counter': sample.name,
        'project': sample.project_id or '',
        'project_name': sample.project_name or '',
        'user': sample.user_id or '',
        'user_name': sample.user_name or '',
        'unit': sample.unit,
        'resource': sample.resource_id,
        'vm_instance': str(md.get('host') or ''),
        'resource_name': ':'.join(str(x) for x in name_parts),
    })
    return metric_name('ceilometer_' + '_'.join(shards)), labels


def stf_series(sample, publisher_id):
    """``(name, type, labels)`` as STF's Smart Gateway names a sample."""
    name, labels = _sg_series(sample, publisher_id, True)
    return name, _TYPES[sample.type], labels


def ceilometer_series(sample, publisher_id=None):
    """``(name, type, labels)`` as Ceilometer 27's exporter makes them."""
    # Its _gen_labels is sg-core's, with a fixed publisher and, of
    # user_metadata, only server_group; the rest only when the metadata is
    # not empty.
    name, labels = _sg_series(sample, 'ceilometer', False)
    md = sample.resource_metadata
    if not md:
        return name, 'gauge', labels
    user_md = md.get('user_metadata')
    group = user_md.get('server_group') if isinstance(user_md, dict) \
        else None
    labels['server_group'] = str(group) if group else 'none'
    if md.get('alarm_state', '') != '':
        labels['state'] = str(md['alarm_state'])
    if sample.name.startswith('loadbalancer'):
        labels['availability_zone'] = str(md.get('availability_zone') or '')
    if sample.name == 'volume.service.health':
        for key in ('binary', 'zone', 'status'):
            labels[key] = str(md.get(key) or '')
    flavor = md.get('flavor')
    if isinstance(flavor, dict):
        if flavor.get('id'):
            labels['flavor_id'] = str(flavor['id'])
        if flavor.get('name'):
            labels['flavor_name'] = str(flavor['name'])
    return name, 'gauge', labels


def openmetrics_series(sample, publisher_id=None):
    """``(name, type, labels)`` by Prometheus conventions."""
    name = metric_name(sample.name.replace('.', '_'))
    suffix = _UNIT_SUFFIX.get(sample.unit) or (
        label_name(sample.unit.lower()) if sample.unit else '')
    if suffix and suffix != '_' and not name.endswith('_' + suffix):
        name += '_' + suffix
    type_ = _TYPES[sample.type]
    if type_ == 'counter':
        name += '_total'
    return name, type_, {
        'resource': sample.resource_id,
        'project': sample.project_id or '',
        'user': sample.user_id or '',
        'host': str(sample.resource_metadata.get('host') or ''),
    }


SERIES_OF = {'stf': stf_series, 'ceilometer': ceilometer_series,
             'openmetrics': openmetrics_series}


def stf_meter_name(meter):
    """The metric the ``stf`` scheme gives a meter."""
    return metric_name('ceilometer_' + '_'.join(meter.split('.')))


# -- rendering ----------------------------------------------------------------

class Family:
    """A metric family: fixed label names, series by label values.

    ``series`` maps a key to ``(labels, value, timestamp)``; the exporter
    keeps richer state, this is what rendering needs.
    """

    __slots__ = ('name', 'type', 'help', 'label_names', 'series')

    def __init__(self, name, type_, help_='', label_names=()):
        self.name = name
        self.type = type_
        self.help = help_
        self.label_names = list(label_names)
        self.series = {}


def render(families, openmetrics=False, timestamps=False):
    """Exposition text of ``families`` (an iterable of :class:`Family`).

    One HELP and TYPE per family, before its samples. Text format: counters
    keep their name (the ``stf`` scheme has no ``_total``; the
    ``openmetrics`` scheme's names carry it); OpenMetrics: a counter
    family's samples are ``<name>_total``, timestamps are in seconds and
    ``# EOF`` ends the body. Text-format timestamps are milliseconds.
    """
    out = []
    for fam in families:
        if not fam.series:
            continue
        name, type_ = fam.name, fam.type
        sample_name = name
        if openmetrics:
            if type_ == 'counter':
                name = name[:-6] if name.endswith('_total') else name
                sample_name = name + '_total'
            elif type_ == 'untyped':
                type_ = 'unknown'
        if fam.help:
            out.append('# HELP %s %s\n' % (name, escape_help(fam.help)))
        out.append('# TYPE %s %s\n' % (name, type_))
        for labels, value, ts in fam.series.values():
            if timestamps and ts is not None:
                ts = ('%.3f' % ts) if openmetrics else str(int(ts * 1000))
            else:
                ts = None
            out.append(series_line(sample_name, fam.label_names, labels,
                                   value, ts))
    if openmetrics:
        out.append('# EOF\n')
    return ''.join(out)


# -- families made at scrape time (the agent's own metrics) -------------------

class ScrapeFamily:
    """A family built at each scrape from live counters, with
    prometheus_client's ``*MetricFamily`` calls, rendered by
    :func:`render_scrape`: one renderer for the agent's metrics and its
    exporter's (test_format_prometheus checks the text against
    prometheus_client's parser).
    """

    type = 'untyped'

    def __init__(self, name, documentation, labels=()):
        self.name = name
        self.help = documentation
        self.label_names = tuple(labels or ())
        self.samples = []       # (name suffix, {label: value}, value)

    def _labels(self, values, **extra):
        labels = dict(zip(self.label_names, values))
        labels.update(extra)
        return labels


class CounterFamily(ScrapeFamily):
    type = 'counter'

    def add_metric(self, labels, value):
        self.samples.append(('_total', self._labels(labels), value))


class GaugeFamily(ScrapeFamily):
    type = 'gauge'

    def add_metric(self, labels, value):
        self.samples.append(('', self._labels(labels), value))


class HistogramFamily(ScrapeFamily):
    type = 'histogram'

    def add_metric(self, labels, buckets, sum_value):
        """``buckets``: ``[(le text, cumulative count)]``, ``+Inf`` last."""
        for le, count in buckets:
            self.samples.append(('_bucket', self._labels(labels, le=le),
                                 count))
        self.samples.append(('_count', self._labels(labels),
                             buckets[-1][1] if buckets else 0))
        self.samples.append(('_sum', self._labels(labels), sum_value))


class SummaryFamily(ScrapeFamily):
    type = 'summary'

    def add_metric(self, labels, count_value, sum_value):
        self.samples.append(('_count', self._labels(labels), count_value))
        self.samples.append(('_sum', self._labels(labels), sum_value))


def render_scrape(families):
    """Text 0.0.4 of :class:`ScrapeFamily` objects: HELP and TYPE for
    every family (one without samples too), a counter's under its
    ``_total`` name, as prometheus_client writes them.
    """
    out = []
    for fam in families:
        name = fam.name + '_total' if fam.type == 'counter' else fam.name
        out.append('# HELP %s %s\n# TYPE %s %s\n' % (
            name, escape_help(fam.help), name, fam.type))
        for suffix, labels, value in fam.samples:
            out.append(series_line(fam.name + suffix, list(labels), labels,
                                   value))
    return ''.join(out)
