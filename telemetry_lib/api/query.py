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
"""Aodh's complex query (``POST /v2/query/alarms``, what ``aodh alarm list
--query`` sends): a JSON filter of ``=``, ``!=``, ``<``, ``<=`` (``=<``),
``>``, ``>=`` (``=>``), ``=~`` (a regular expression), ``in``, combined
with ``and``, ``or`` and ``not``; an ``orderby`` list of ``{field:
asc|desc}``; a ``limit``. Evaluated over the alarms the caller may see.
"""

import operator
import re

from telemetry_lib import jsoncodec

_OPS = {'=': operator.eq, '!=': operator.ne, '<': operator.lt,
        '<=': operator.le, '=<': operator.le, '>': operator.gt,
        '>=': operator.ge, '=>': operator.ge}
FIELDS = ('alarm_id', 'name', 'description', 'enabled', 'type', 'severity',
          'state', 'state_reason', 'repeat_actions', 'user_id', 'project_id',
          'timestamp', 'state_timestamp', 'evaluate_timestamp')
MAX_DEPTH = 16


class BadQuery(ValueError):
    """A filter or orderby Aodh would refuse (400)."""


def parse(body):
    """``(predicate over a rendered alarm, orderby pairs, limit)``.

    :raises BadQuery: with the reason.
    """
    if not isinstance(body, dict):
        raise BadQuery('the query must be a JSON object')
    text = body.get('filter')
    predicate = lambda alarm: True        # noqa: E731 - the empty filter
    if text:
        try:
            tree = jsoncodec.loads(text) if isinstance(text, str) else text
        except jsoncodec.DecodeError as exc:
            raise BadQuery('Filter expression not valid: %s' % exc) \
                from None
        predicate = _compile(tree, 0)
    orderby = []
    if body.get('orderby'):
        try:
            items = jsoncodec.loads(body['orderby']) if isinstance(
                body['orderby'], str) else body['orderby']
        except jsoncodec.DecodeError as exc:
            raise BadQuery('Order-by expression not valid: %s' % exc) \
                from None
        if not isinstance(items, list):
            raise BadQuery('Order-by expression not valid: a list of '
                           '{field: asc|desc}')
        for item in items:
            if not isinstance(item, dict) or len(item) != 1:
                raise BadQuery('Order-by expression not valid: %r' % item)
            (field, direction), = item.items()
            if field not in FIELDS or str(direction).lower() not in (
                    'asc', 'desc'):
                raise BadQuery('Order-by expression not valid: %r' % item)
            orderby.append((field, str(direction).lower()))
    limit = body.get('limit')
    if limit is not None and (isinstance(limit, bool) or not isinstance(
            limit, int) or limit < 1):
        raise BadQuery('Limit must be positive')
    return predicate, orderby, limit


def _compile(tree, depth):
    if depth > MAX_DEPTH:
        raise BadQuery('Filter expression nested too deep')
    if not isinstance(tree, dict) or len(tree) != 1:
        raise BadQuery('Filter expression not valid: each node is an '
                       'object of one operator')
    (op, arg), = tree.items()
    op = op.lower()
    if op in ('and', 'or'):
        if not isinstance(arg, list) or len(arg) < 1:
            raise BadQuery('Filter expression not valid: "%s" takes a list'
                           % op)
        parts = [_compile(t, depth + 1) for t in arg]
        join = all if op == 'and' else any
        return lambda alarm: join(p(alarm) for p in parts)
    if op == 'not':
        inner = _compile(arg, depth + 1)
        return lambda alarm: not inner(alarm)
    if not isinstance(arg, dict) or len(arg) != 1:
        raise BadQuery('Filter expression not valid: "%s" takes one field'
                       % op)
    (field, value), = arg.items()
    if field not in FIELDS:
        raise BadQuery('Filter expression not valid: %s is not a field of '
                       'alarms' % field)
    if op == 'in':
        if not isinstance(value, list):
            raise BadQuery('Filter expression not valid: "in" takes a list')
        return lambda alarm: alarm.get(field) in value
    if op == '=~':
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise BadQuery('Filter expression not valid: %s' % exc) \
                from None
        return lambda alarm: bool(pattern.search(str(alarm.get(field))))
    compare = _OPS.get(op)
    if compare is None:
        raise BadQuery('Filter expression not valid: unknown operator %s'
                       % op)

    def test(alarm):
        have = alarm.get(field)
        try:
            return have is not None and compare(have, value)
        except TypeError:
            return False
    return test


def sort(alarms, orderby):
    for field, direction in reversed(orderby):
        alarms.sort(key=lambda a: (a.get(field) is None,
                                   str(a.get(field))),
                    reverse=direction == 'desc')
    return alarms
