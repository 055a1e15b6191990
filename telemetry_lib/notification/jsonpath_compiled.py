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
"""jsonpath-rw-ext expressions as plain Python functions.

The library evaluates a path by wrapping every value it visits in a
context object; for a notification that is most of the conversion's time.
Here each node of a parsed expression becomes a function
``f(path, value, root) -> [(path, value), ...]`` that does what the node's
``find`` does -- same matches, same order, same paths (what ``bitfield``
reads) -- without the wrapping. ``path`` is ``None`` for a value with no
context (the root, or what an operation or string function made).
A node not listed here makes the caller fall back to the library; every
compiled expression of Ceilometer's files is tested against the library's
own evaluation.

This reads jsonpath-rw-ext's node classes (``_filter``, ``_arithmetic``
and ``_string`` are private modules): a release that moves one makes this
module fail to import, and :mod:`.fields` then lets the library evaluate
every expression; one that renames a node's attribute makes that node
:class:`Unsupported`. Never a failed conversion.
``tests/unit/test_seams.py`` names what is read.
"""

from jsonpath_rw import jsonpath
from jsonpath_rw_ext import _arithmetic
from jsonpath_rw_ext import _filter
from jsonpath_rw_ext import _string


class Unsupported(Exception):
    pass


def _join(path, segment):
    return segment if path is None else path + '.' + segment


def compile_node(tree):
    """The function of ``tree``.

    :raises Unsupported: for a node this module does not know, or one
        whose attributes are not what they were (the library's internals
        changed): the library evaluates it then.
    """
    make = _MAKERS.get(type(tree))
    if make is None:
        raise Unsupported(type(tree).__name__)
    try:
        return make(tree)
    except AttributeError as exc:
        raise Unsupported('%s: %s' % (type(tree).__name__, exc)) from None


def _root(node):
    def root(path, value, top):
        return [(None, top)]
    return root


def _this(node):
    def this(path, value, top):
        return [(path, value)]
    return this


def _fields(node):
    names = node.fields
    if '*' in names:
        def every(path, value, top):
            if not isinstance(value, dict):
                return []
            return [(_join(path, k), v) for k, v in value.items()]
        return every
    if len(names) == 1:
        name = names[0]

        def one(path, value, top):
            if type(value) is dict and name in value:
                return [(_join(path, name), value[name])]
            return []
        return one

    def several(path, value, top):
        if type(value) is not dict:
            return []
        return [(_join(path, n), value[n]) for n in names if n in value]
    return several


def _child(node):
    left, right = compile_node(node.left), compile_node(node.right)

    def child(path, value, top):
        return [m for lp, lv in left(path, value, top)
                for m in right(lp, lv, top)]
    return child


def _union(node):
    left, right = compile_node(node.left), compile_node(node.right)

    def union(path, value, top):
        return left(path, value, top) + right(path, value, top)
    return union


def _index(node):
    index = node.index
    segment = '[%i]' % index

    def at(path, value, top):
        if not value or isinstance(value, dict):
            return []
        try:
            if len(value) > index:
                return [(_join(path, segment), value[index])]
        except TypeError:           # a number: no length
            return []
        return []
    return at


def _slice(node):
    start, end, step = node.start, node.end, node.step
    whole = start is None and end is None and step is None

    def sliced(path, value, top):
        if not value:
            return []
        if isinstance(value, (dict, int, str)):
            # The library's rule: a single value is a list of one.
            value = [value]
        try:
            indexes = range(len(value))
        except TypeError:
            return []
        if not whole:
            indexes = indexes[start:end:step]
        return [(_join(path, '[%i]' % i), value[i]) for i in indexes]
    return sliced


def _filter_node(node):
    tests = [_expression(e) for e in node.expressions]
    if not tests:
        raise Unsupported('empty filter')

    def filtered(path, value, top):
        if not isinstance(value, list):
            return []
        return [(_join(path, '[%i]' % i), item)
                for i, item in enumerate(value)
                if all(t(item) for t in tests)]
    return filtered


def _expression(expr):
    target = compile_node(expr.target)
    op = expr.op
    if op is None:
        return lambda item: bool(target(None, item, item))
    compare = _filter.OPERATOR_MAP.get(op)
    if compare is None:
        raise Unsupported(op)
    wanted = expr.value
    as_int = isinstance(wanted, int)

    def test(item):
        for _, value in target(None, item, item):
            if value is None:
                continue
            if as_int:
                try:
                    value = int(value)
                except ValueError:
                    continue
            if compare(value, wanted):
                return True
        return False
    return test


def _operation(node):
    op = node.op
    left_path = isinstance(node.left, jsonpath.JSONPath)
    right_path = isinstance(node.right, jsonpath.JSONPath)
    left = compile_node(node.left) if left_path else node.left
    right = compile_node(node.right) if right_path else node.right

    def operation(path, value, top):
        try:
            if left_path and right_path:
                lv = left(path, value, top)
                rv = right(path, value, top)
                if not lv or len(lv) != len(rv):
                    return []
                return [(None, op(a[1], b[1])) for a, b in zip(lv, rv)]
            if left_path:
                return [(None, op(a[1], right))
                        for a in left(path, value, top)]
            if right_path:
                return [(None, op(left, b[1]))
                        for b in right(path, value, top)]
            return [(None, op(left, right))]
        except TypeError:
            return []
    return operation


def _split(node):
    char, segment, max_split = node.char, node.segment, node.max_split

    def split(path, value, top):
        try:
            return [(None, value.split(char, max_split)[segment])]
        except Exception:
            return []
    return split


def _sub(node):
    regex, repl = node.regex, node.repl

    def sub(path, value, top):
        if not isinstance(value, str):
            return []               # the library raises
        new = regex.sub(repl, value)
        return [] if new == value else [(None, new)]
    return sub


_MAKERS = {
    jsonpath.Root: _root,
    jsonpath.This: _this,
    jsonpath.Fields: _fields,
    jsonpath.Child: _child,
    jsonpath.Union: _union,
    jsonpath.Index: _index,
    jsonpath.Slice: _slice,
    _filter.Filter: _filter_node,
    _arithmetic.Operation: _operation,
    _string.Split: _split,
    _string.Sub: _sub,
}
