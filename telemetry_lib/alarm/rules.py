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
"""Alarm rules (entry points ``telemetry_lib.alarm.rule``).

A rule is built from its YAML mapping (validating it, no I/O) and
evaluated against storage drivers; it returns an
:class:`~telemetry_lib.alarm.model.Evaluation`. The semantics are Aodh's:

* **threshold**: the last ``evaluation_periods`` buckets of
  ``granularity`` seconds of a meter (one resource, or all aggregated),
  each compared with the threshold. All breach: ``alarm``; none: ``ok``;
  some: no change -- except from ``insufficient data``, where the latest
  bucket decides. Fewer buckets than periods: ``insufficient data``.
* **composite**: ``and``/``or`` of other rules, nested at will. ``and`` is
  ``alarm`` when all are, ``ok`` when one is; ``or`` is ``alarm`` when one
  is, ``ok`` when all are; otherwise ``insufficient data``.
* **promql**: a PromQL expression evaluated by a Prometheus server, each
  series a statistic: all breach ``alarm``, none ``ok``, some no change,
  no series ``insufficient data``.
"""

import abc
import datetime
import math
import operator

from telemetry_lib.alarm import model
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import StorageError
from telemetry_lib import plugins
from telemetry_lib.storage import base as storage_base
from telemetry_lib.timeutils import UTC

RULE_NAMESPACE = plugins.ALARM_RULE_NAMESPACE

COMPARISONS = {
    'gt': operator.gt, 'ge': operator.ge, 'lt': operator.lt,
    'le': operator.le, 'eq': operator.eq, 'ne': operator.ne,
}


class Rule(metaclass=abc.ABCMeta):
    """Base class of alarm rules.

    :param data: the rule's mapping from the alarms file.
    :param where: names the alarm in errors (``alarm 'cpu_high'``).
    :param path: the file, for errors.
    :raises ConfigError: for anything wrong in data, naming the field.
    """

    def __init__(self, data, where, path=None):
        if not isinstance(data, dict):
            raise ConfigError('the rule must be a mapping, not %r' % (data,),
                              path=path, line=getattr(data, 'line', None),
                              where=where, field='rule')
        self.data = data
        self.where = where
        self.path = path

    def fail(self, field, message):
        raise ConfigError(message, path=self.path,
                          line=getattr(self.data, 'line', None),
                          where=self.where, field='rule.%s' % field)

    def number(self, field, default=None, minimum=None, maximum=None,
               integer=False):
        value = self.data.get(field, default)
        if isinstance(value, bool) or not isinstance(
                value, int if integer else (int, float)) or (
                    isinstance(value, float) and not math.isfinite(value)):
            self.fail(field, 'must be %s, not %r' % (
                'an integer' if integer else 'a finite number', value))
        if minimum is not None and value < minimum:
            self.fail(field, 'must be at least %s, not %r' % (minimum, value))
        if maximum is not None and value > maximum:
            self.fail(field, 'must be at most %s, not %r' % (maximum, value))
        return value

    def text(self, field, default=None, choices=None):
        value = self.data.get(field, default)
        if not isinstance(value, str) or not value:
            self.fail(field, 'must be a non-empty string, not %r' % (value,))
        if choices is not None and value not in choices:
            self.fail(field, 'must be one of %s, not %r'
                      % (', '.join(choices), value))
        return value

    def storage_urls(self):
        """Storage URLs this rule reads (``None``: the default one)."""
        return (self.storage,) if 'storage' in vars(self) else ()

    def instant_queries(self):
        """``(storage URL, expression)`` of the instant queries one
        evaluation asks, so an evaluator can have the storage ask those of
        many alarms together (``StorageDriver.prefetched``). None by
        default.
        """
        return ()

    def _comparison_and_storage(self):
        """The fields every comparing rule has."""
        self.operator = self.text('comparison_operator', 'gt',
                                  choices=tuple(COMPARISONS))
        self.threshold = self.number('threshold')
        self.storage = self.data.get('storage')
        if self.storage is not None:
            self.text('storage')

    @abc.abstractmethod
    def evaluate(self, storages, now, current):
        """The :class:`~telemetry_lib.alarm.model.Evaluation` at ``now``.

        :param storages: ``f(url or None) -> StorageDriver``.
        :param current: the alarm's state now (some rules depend on it).
        """


class ThresholdRule(Rule):
    """A meter's aggregate compared with a threshold over periods."""

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.meter = self.text('meter')
        self.resource_id = data.get('resource_id')
        if self.resource_id is not None:
            self.text('resource_id')
        self.aggregation = self.text('aggregation', 'mean',
                                     choices=storage_base.AGGREGATIONS)
        self.granularity = self.number('granularity', 60, minimum=1,
                                       maximum=86400)
        self.periods = self.number('evaluation_periods', 1, minimum=1,
                                   maximum=1000, integer=True)
        self._comparison_and_storage()

    def window(self, now):
        """``(start, stop)``: whole buckets, the last one complete."""
        stop_ts = math.floor(now.timestamp() / self.granularity) * \
            self.granularity
        start_ts = stop_ts - self.periods * self.granularity
        return (datetime.datetime.fromtimestamp(start_ts, UTC),
                datetime.datetime.fromtimestamp(stop_ts, UTC))

    def statistics(self, storage, now):
        start, stop = self.window(now)
        points = storage.query(self.meter, resource_id=self.resource_id,
                               start=start, stop=stop,
                               granularity=self.granularity,
                               aggregation=self.aggregation)
        return [p for p in points if p.value is not None][-self.periods:]

    def evaluate(self, storages, now, current):
        try:
            points = self.statistics(storages(self.storage), now)
        except StorageError as exc:
            return model.Evaluation(None, 'cannot read %s: %s'
                                    % (self.meter, exc))
        values = [p.value for p in points]
        data = {'type': 'threshold', 'meter': self.meter,
                'aggregation': self.aggregation, 'threshold': self.threshold,
                'comparison_operator': self.operator, 'values': values,
                'resource_id': self.resource_id}
        if len(values) < self.periods:
            return model.Evaluation(
                model.INSUFFICIENT_DATA, '%d of %d period(s) of %ss have '
                'data' % (len(values), self.periods, self.granularity), data)
        compare = COMPARISONS[self.operator]
        breached = [compare(v, self.threshold) for v in values]
        shown = ', '.join('%g' % v for v in values)
        if all(breached):
            return model.Evaluation(model.ALARM, 'all %d %s value(s) %s %g: '
                                    '%s' % (len(values), self.aggregation,
                                            self.operator, self.threshold,
                                            shown), data)
        if not any(breached):
            return model.Evaluation(model.OK, 'no %s value %s %g: %s' % (
                self.aggregation, self.operator, self.threshold, shown), data)
        if current == model.INSUFFICIENT_DATA:
            # Aodh's "trending" state: leave insufficient data for what the
            # latest period says.
            state = model.ALARM if breached[-1] else model.OK
            return model.Evaluation(state, 'mixed values, the latest %s: %s'
                                    % ('breaches' if breached[-1]
                                       else 'does not', shown), data)
        return model.Evaluation(None, 'mixed values, state unchanged: %s'
                                % shown, data)


class CompositeRule(Rule):
    """``{and: [rule, ...]}`` or ``{or: [rule, ...]}``; a sub-rule has a
    ``type`` (``threshold`` by default) and its fields.
    """

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.op, self.rules = self._parse(data, 'rule', 0)

    def _parse(self, data, field, depth):
        if depth > 8:
            self.fail(field, 'nested more than 8 levels')
        if not isinstance(data, dict) or len(
                [k for k in data if k in ('and', 'or')]) != 1:
            self.fail(field, 'must be a mapping with "and" or "or"')
        op = 'and' if 'and' in data else 'or'
        subs = data[op]
        if not isinstance(subs, list) or len(subs) < 2:
            self.fail(field, '"%s" needs a list of at least two rules' % op)
        rules = []
        for i, sub in enumerate(subs):
            sub_field = '%s.%s[%d]' % (field, op, i)
            if isinstance(sub, dict) and ('and' in sub or 'or' in sub):
                rules.append(self._parse(sub, sub_field, depth + 1))
                continue
            if not isinstance(sub, dict):
                self.fail(sub_field, 'must be a mapping')
            kind = sub.get('type', 'threshold')
            if kind == 'composite' or not isinstance(kind, str):
                self.fail(sub_field + '.type', 'must name a rule type, not '
                          '%r' % (kind,))
            cls = load_rule_class(kind, '%s, %s' % (self.where, sub_field),
                                  self.path)
            rules.append(cls(sub, '%s, %s' % (self.where, sub_field),
                             self.path))
        return op, rules

    def leaves(self):
        """The sub-rules that are not ``and``/``or``, at any depth, in
        order.
        """
        def walk(node):
            for r in node[1]:
                if isinstance(r, tuple):
                    yield from walk(r)
                else:
                    yield r
        return list(walk((self.op, self.rules)))

    def storage_urls(self):
        return tuple(url for r in self.leaves() for url in r.storage_urls())

    def instant_queries(self):
        return tuple(q for r in self.leaves() for q in r.instant_queries())

    def evaluate(self, storages, now, current):
        # Aodh's composite evaluator, step by step: every leaf's state
        # (insufficient data, alarm, ok, or none with a trending state);
        # the alarm and ok expressions on those; if neither holds, the
        # trending leaves resolved as Aodh does and the expressions again;
        # else insufficient data.
        leaves = []
        tree = self._targets((self.op, self.rules), leaves)
        for leaf in leaves:
            leaf[2:] = _leaf_state(leaf[1], storages, now, current)
        state = _decide(tree)
        if state is None:
            for leaf in leaves:
                trending = leaf[3]
                if trending is None:
                    continue
                if current == model.INSUFFICIENT_DATA:
                    leaf[2] = trending
                else:
                    leaf[2] = model.OK if trending == model.ALARM \
                        else model.ALARM
            state = _decide(tree)
        if state is None:
            state = model.INSUFFICIENT_DATA
        form = _form(tree)
        causes = {leaf[0]: dict(leaf[1].data) for leaf in leaves
                  if leaf[2] == state}
        verb = 'transition to' if state != current else 'remaining as'
        reason = ('Composite rule alarm with composition form: %s %s %s, '
                  'due to rules: %s %s' % (form, verb, state, ', '.join(
                      sorted(causes)), _STATE_CHANGE[state]))
        data = {'type': 'composite', 'composition_form': form,
                'causative_rules': causes}
        if state == model.INSUFFICIENT_DATA and current == state:
            return model.Evaluation(None, reason, data)
        return model.Evaluation(state, reason, data)

    def _targets(self, node, leaves):
        op, subs = node
        out = []
        for sub in subs:
            if isinstance(sub, tuple):
                out.append(self._targets(sub, leaves))
            else:
                leaf = ['rule%d' % (len(leaves) + 1), sub, None, None]
                leaves.append(leaf)
                out.append(leaf)
        return op, out


_STATE_CHANGE = {model.ALARM: 'outside their threshold.',
                 model.OK: 'inside their threshold.',
                 model.INSUFFICIENT_DATA: 'state evaluated to unknown.'}


def _leaf_state(rule, storages, now, current):
    """``(state, trending)`` of a composite's leaf."""
    assess = getattr(rule, 'assess', None)
    if assess is not None:
        state, trending, _, _, _ = assess(storages, now)
        return state, trending
    verdict = rule.evaluate(storages, now, current)
    return (verdict.state if verdict.state is not None else current), None


def _holds(node, wanted):
    """Whether the ``wanted`` expression of ``node`` holds: Aodh's alarm
    expression (``and``: all alarm, ``or``: one) or its dual for ok.
    """
    if isinstance(node, list):
        return node[2] == wanted
    op, subs = node
    every = (op == 'and') == (wanted == model.ALARM)
    results = (_holds(s, wanted) for s in subs)
    return all(results) if every else any(results)


def _decide(tree):
    if _holds(tree, model.ALARM):
        return model.ALARM
    if _holds(tree, model.OK):
        return model.OK
    return None


def _form(node):
    if isinstance(node, list):
        return node[0]
    op, subs = node
    return '(' + (' %s ' % op).join(_form(s) for s in subs) + ')'


class PromQLRule(Rule):
    """A PromQL expression evaluated by a Prometheus server (the
    ``prometheus://`` storage driver's); each series is a statistic
    compared with the threshold. All breach: ``alarm``; none: ``ok``;
    some: no change; no series: ``insufficient data``.
    """

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.query = self.text('query')
        self._comparison_and_storage()

    def instant_queries(self):
        return ((self.storage, self.query),)

    def evaluate(self, storages, now, current):
        storage = storages(self.storage)
        if not hasattr(storage, 'instant_query'):
            return model.Evaluation(None, 'PromQL needs a prometheus:// '
                                    'storage, not %s' % storage.url)
        try:
            series = storage.instant_query(self.query, now)
        except StorageError as exc:
            return model.Evaluation(None, 'cannot evaluate %r: %s'
                                    % (self.query, exc))
        values = [v for _, v in series if not math.isnan(v)]
        data = {'type': 'promql', 'query': self.query,
                'threshold': self.threshold,
                'comparison_operator': self.operator, 'values': values,
                'series': [labels for labels, _ in series][:20]}
        if not values:
            return model.Evaluation(model.INSUFFICIENT_DATA,
                                    '%r returned no series' % self.query,
                                    data)
        compare = COMPARISONS[self.operator]
        breached = [compare(v, self.threshold) for v in values]
        if all(breached):
            return model.Evaluation(model.ALARM, 'all %d series %s %g'
                                    % (len(values), self.operator,
                                       self.threshold), data)
        if not any(breached):
            return model.Evaluation(model.OK, 'no series %s %g' % (
                self.operator, self.threshold), data)
        return model.Evaluation(None, '%d of %d series %s %g: state '
                                'unchanged' % (sum(breached), len(values),
                                               self.operator,
                                               self.threshold), data)


def load_rule_class(kind, where, path=None):
    """The rule class of ``kind`` (an entry point name)."""
    try:
        return plugins.load_class(RULE_NAMESPACE, kind, base=Rule)
    except ConfigError as exc:
        raise ConfigError(exc.reason, path=path, where=where,
                          field='type') from None
