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
"""Aodh's alarm types, with Aodh's semantics, as rule plugins
(``telemetry_lib.alarm.rule``): what Heat's ``OS::Aodh::*`` resources and
``aodhclient`` create through the API, usable in the alarms file too.

* ``prometheus``: ``query`` evaluated by Prometheus (the ``prometheus://``
  storage); every series' value is a statistic.
* ``gnocchi_resources_threshold``: one resource's ``metric``, measures of
  ``aggregation_method`` at ``granularity``.
* ``gnocchi_aggregation_by_metrics_threshold``: ``metrics`` (ids)
  aggregated.
* ``gnocchi_aggregation_by_resources_threshold``: ``metric`` of the
  ``resource_type`` resources a ``query`` (Gnocchi's search, as JSON
  text) finds, aggregated -- Heat's autoscaling guide's alarm.

All compare statistics with ``threshold`` as Aodh's threshold evaluator
does: every statistic breaches -> ``alarm``, none -> ``ok``; mixed: from
``insufficient data`` the latest decides (Aodh's "trending" state),
otherwise no change; fewer than ``evaluation_periods`` statistics (no
series, for ``prometheus``) -> ``insufficient data``. The Gnocchi window
is Aodh's: ``granularity * (evaluation_periods + 1)`` seconds back from
now, only the measures of ``granularity``. Reasons and ``reason_data``
are Aodh's words (``Transition to alarm due to 3 samples outside
threshold, most recent: 91.0``), so a webhook that parses them keeps
working.
"""

import dataclasses
import datetime
import math

from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules
from telemetry_lib.exceptions import NotFound
from telemetry_lib.exceptions import StorageError
from telemetry_lib import jsoncodec

#: Aodh's default for ``comparison_operator``.
DEFAULT_OPERATOR = 'eq'


class InsufficientData(Exception):
    def __init__(self, reason, statistics=()):
        super().__init__(reason)
        self.reason = reason
        self.statistics = list(statistics)


class AodhThresholdRule(rules.Rule):
    """Base of Aodh's comparing types: ``threshold`` (a number),
    ``comparison_operator`` (``eq`` by default, as Aodh's), and a
    :meth:`statistics` of the subclass.
    """

    #: What the alarm reads, for the default storage of API alarms.
    storage_kind = None

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.operator = self.text('comparison_operator', DEFAULT_OPERATOR,
                                  choices=tuple(rules.COMPARISONS))
        self.threshold = self.number('threshold')
        self.storage = data.get('storage')
        if self.storage is not None:
            self.text('storage')

    def storage_urls(self):
        return (self.storage,)

    def statistics(self, storage, now):
        """The values to compare, oldest first.

        :raises InsufficientData: with Aodh's reason.
        """
        raise NotImplementedError

    def assess(self, storages, now):
        """Aodh's ``evaluate_rule``: ``(state, trending, statistics,
        outside, reason)`` -- ``state`` ``alarm``/``ok``, ``insufficient
        data`` (with ``reason``), or ``None`` with the ``trending`` state
        of mixed statistics. What a composite alarm combines.
        """
        try:
            stats = self.statistics(storages(self.storage), now)
        except InsufficientData as exc:
            return (model.INSUFFICIENT_DATA, None, exc.statistics, 0,
                    exc.reason)
        except StorageError as exc:
            # Aodh turns a failed query into insufficient data too.
            return (model.INSUFFICIENT_DATA, None, [], 0,
                    'alarm statistics retrieval failed: %s' % exc)
        compare = rules.COMPARISONS[self.operator]
        compared = [compare(v, self.threshold) for v in stats]
        outside = sum(compared)
        if all(compared) or not any(compared):
            return (model.ALARM if all(compared) else model.OK, None, stats,
                    outside, None)
        return (None, model.ALARM if compared[-1] else model.OK, stats,
                outside, None)

    def evaluate(self, storages, now, current):
        state, trending, stats, outside, reason = self.assess(storages, now)
        if state == model.INSUFFICIENT_DATA:
            verdict = self._unknown(current, reason, stats)
            if verdict.state is not None:
                return verdict
            # Still unknown: with repeat_actions Aodh says it again, in the
            # words of its other verdicts.
            return dataclasses.replace(verdict, repeat=self._verdict(
                state, current, stats, outside))
        if state is not None:
            return self._verdict(state, current, stats, outside)
        if current == model.INSUFFICIENT_DATA:
            return self._verdict(trending, current, stats, outside)
        # Mixed: no change; with repeat_actions, the state re-announced.
        return model.Evaluation(None, 'mixed statistics, state unchanged',
                                self._data('outside', outside, stats),
                                repeat=self._verdict(current, current,
                                                     stats, outside))

    def _unknown_count(self, stats):
        """The ``count`` of an unknown verdict's reason data: Aodh's
        Gnocchi evaluators say the periods expected.
        """
        return getattr(self, 'periods', 1)

    def _unknown(self, current, reason, stats):
        return model.Evaluation(
            None if current == model.INSUFFICIENT_DATA
            else model.INSUFFICIENT_DATA, reason,
            self._data('unknown', self._unknown_count(stats), stats))

    def _verdict(self, state, current, stats, outside):
        disposition = 'outside'
        if state == model.OK:
            disposition, outside = 'inside', len(stats) - outside
        data = self._data(disposition, outside, stats)
        verb = ('Transition to %s' if state != current
                else 'Remaining as %s') % state
        return model.Evaluation(state, '%s due to %d samples %s threshold, '
                                'most recent: %s' % (
                                    verb, outside, disposition,
                                    data['most_recent']), data)

    @staticmethod
    def _data(disposition, count, stats):
        return {'type': 'threshold', 'disposition': disposition,
                'count': count,
                'most_recent': stats[-1] if stats else None}


class PrometheusRule(AodhThresholdRule):
    """Aodh's ``prometheus`` type: ``query``, ``threshold``,
    ``comparison_operator``.
    """

    storage_kind = 'prometheus'

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.query = self.text('query')

    def _unknown_count(self, stats):
        # Aodh's Prometheus evaluator says the statistics it got.
        return len(stats)

    def instant_queries(self):
        return ((self.storage, self.query),)

    def statistics(self, storage, now):
        if not hasattr(storage, 'instant_query'):
            raise InsufficientData('the prometheus type needs a '
                                   'prometheus:// storage, not %s'
                                   % storage.url)
        # NaN is kept, as Aodh keeps it: it breaches no comparison.
        stats = [v for _, v in storage.instant_query(self.query, now)]
        if not stats:
            raise InsufficientData('datapoints are unknown')
        return stats


class GnocchiRule(AodhThresholdRule):
    """The fields of Aodh's three Gnocchi types."""

    storage_kind = 'gnocchi'

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.aggregation = self.text('aggregation_method')
        self.granularity = self.number('granularity', 60, minimum=1,
                                       maximum=3600 * 24 * 365,
                                       integer=True)
        self.periods = self.number('evaluation_periods', 1, minimum=1,
                                   maximum=100, integer=True)

    def window(self, now):
        start = now - datetime.timedelta(
            seconds=self.granularity * (self.periods + 1))
        return start, now

    def _fetch(self, storage, now):
        raise NotImplementedError

    def statistics(self, storage, now):
        if not hasattr(storage, 'aggregates'):
            raise InsufficientData('the %s type needs a gnocchi:// '
                                   'storage, not %s' % (self.type_name,
                                                        storage.url))
        rows = self._fetch(storage, now)
        stats = [v for _, g, v in rows if g == self.granularity
                 and v is not None and not (isinstance(v, float)
                                            and math.isnan(v))]
        if not stats:
            raise InsufficientData('No datapoint for granularity %s'
                                   % self.granularity)
        stats = stats[-self.periods:]
        if len(stats) < self.periods:
            raise InsufficientData('%d datapoints are unknown'
                                   % self.periods, stats)
        return stats

    def _operations(self, metrics):
        method = self.aggregation
        plain = method[len('rate:'):] if method.startswith('rate:') \
            else method
        if len(metrics) == 1:
            return ['aggregate', method, ['metric', metrics[0], plain]]
        # Aodh sends one "metric" operand per metric, which Gnocchi 4.7
        # refuses ("'aggregate' operation invalid", HTTP 400: the alarm
        # never leaves insufficient data); Gnocchi's syntax for several is
        # one operand listing them.
        return ['aggregate', method, ['metric'] + [[m, plain]
                                                   for m in metrics]]


class GnocchiResourcesRule(GnocchiRule):
    """``gnocchi_resources_threshold``: ``metric`` of ``resource_id``."""

    type_name = 'gnocchi_resources_threshold'

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.metric = self.text('metric')
        self.resource_id = self.text('resource_id')
        self.resource_type = self.text('resource_type', 'generic')

    def _fetch(self, storage, now):
        start, stop = self.window(now)
        try:
            return storage.measures(self.metric, self.resource_id,
                                    self.aggregation, self.granularity,
                                    start, stop)
        except NotFound as exc:
            # Aodh's words, per what Gnocchi did not find.
            raise InsufficientData({
                'resource': 'resource %s does not exists' % self.resource_id,
                'metric': 'metric %s for resource %s does not exists' % (
                    self.metric, self.resource_id),
            }.get(exc.kind, 'aggregation %s does not exist for metric %s '
                  'of resource %s' % (self.aggregation, self.metric,
                                      self.resource_id))) from None


class GnocchiMetricsRule(GnocchiRule):
    """``gnocchi_aggregation_by_metrics_threshold``: ``metrics`` (ids)."""

    type_name = 'gnocchi_aggregation_by_metrics_threshold'

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        metrics = data.get('metrics')
        if not isinstance(metrics, list) or not metrics or any(
                not isinstance(m, str) or not m for m in metrics):
            self.fail('metrics', 'must be a list of metric ids')
        self.metrics = metrics

    def _fetch(self, storage, now):
        start, stop = self.window(now)
        rows = storage.aggregates(self._operations(self.metrics),
                                  granularity=self.granularity,
                                  start=start, stop=stop)
        if rows is None:
            raise InsufficientData('At least of metrics in %s does not '
                                   'exist' % self.metrics)
        return rows


class GnocchiResourcesAggregationRule(GnocchiRule):
    """``gnocchi_aggregation_by_resources_threshold``: ``metric`` over
    the ``resource_type`` resources ``query`` finds.
    """

    type_name = 'gnocchi_aggregation_by_resources_threshold'

    def __init__(self, data, where, path=None):
        super().__init__(data, where, path)
        self.metric = self.text('metric')
        self.resource_type = self.text('resource_type')
        query = self.text('query')
        try:
            self.search = jsoncodec.loads(query)
        except jsoncodec.DecodeError:
            self.fail('query', 'must be JSON text (a Gnocchi search)')
        if not isinstance(self.search, dict):
            self.fail('query', 'must be a JSON object (a Gnocchi search)')

    def _fetch(self, storage, now):
        start, stop = self.window(now)
        rows = storage.aggregates(self._operations([self.metric]),
                                  search=self.search,
                                  resource_type=self.resource_type,
                                  granularity=self.granularity,
                                  start=start, stop=stop)
        if rows is None:
            raise InsufficientData('metric %s does not exists'
                                   % self.metric)
        return rows
