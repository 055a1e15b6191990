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
"""The operations of dynamic pollster attributes, evaluated without
``eval``.

Ceilometer evaluates ``"user | value.split('$') | value[0]"`` with
Python's ``eval``: any code in a YAML file runs in the agent. Here each
operation is parsed once, at load, into Python's syntax tree and checked
against what Ceilometer's documented examples use -- literals, ``value``
(and ``sample``, ``extra_metadata_captured`` where Ceilometer offers
them), indexing, comparisons, ``and``/``or``/``not``, ``x if c else y``,
``+ - * / // %``, one-expression ``lambda``, calls of ``str int float
bool len list dict sorted filter map min max sum any all abs round`` and
of the string, list and dict methods that read or build values (``split
strip replace lower upper join get keys values items startswith endswith
...``; not ``format``, whose fields reach attributes). Anything else
(attributes starting with ``_``, f-strings, imports, assignments, other
names, ``**``) is refused when the file is loaded, as
one line naming the file, the field and the operation. Evaluation is
bounded *before* each step runs, not after: a call whose arguments weigh
more than ``MAX_WEIGHT`` elements and characters (shared nested lists
counted each time), a repetition or concatenation past it, an integer
wider than ``MAX_INT_BITS``, ``sum()`` of anything but numbers and a
``replace`` that would grow past ``MAX_LENGTH`` are refused; lazy results
(``map``, ``filter``) are evaluated inside the bounds; and an evaluation
stops after ``MAX_CPU_SECONDS`` of CPU.
"""

import ast
import operator
import time

#: Longest string, list or mapping an operation may make.
MAX_LENGTH = 1_000_000
#: Most elements and characters (nested ones counted each time they are
#: referenced) a call may be given or a repetition may make.
MAX_WEIGHT = 1_000_000
#: Widest integer, in bits (about 1,200 decimal digits).
MAX_INT_BITS = 4096
#: CPU seconds one evaluation may take.
MAX_CPU_SECONDS = 1.0

_FUNCTIONS = {
    'str': str, 'int': int, 'float': float, 'bool': bool, 'len': len,
    'list': list, 'dict': dict, 'tuple': tuple, 'set': set,
    'sorted': sorted, 'filter': filter, 'map': map, 'min': min, 'max': max,
    'sum': sum, 'any': any, 'all': all, 'abs': abs, 'round': round,
    'reversed': reversed, 'enumerate': enumerate, 'zip': zip,
}
_CONSTANTS = {'None': None, 'True': True, 'False': False}
_METHODS = frozenset((
    # str
    'split', 'rsplit', 'strip', 'lstrip', 'rstrip', 'replace', 'lower',
    'upper', 'title', 'capitalize', 'startswith', 'endswith', 'join',
    'find', 'rfind', 'index', 'count', 'partition', 'rpartition',
    'isdigit', 'isalpha', 'isalnum', 'splitlines',
    'removeprefix', 'removesuffix', 'casefold',
    # dict
    'get', 'keys', 'values', 'items',
    # list (reading only)
    'copy',
))
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub,
           ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne,
            ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
            ast.NotIn: lambda a, b: a not in b,
            ast.Is: operator.is_, ast.IsNot: operator.is_not}
_UNARY = {ast.Not: operator.not_, ast.USub: operator.neg,
          ast.UAdd: operator.pos}


class UnsafeExpression(ValueError):
    """An operation this evaluator does not run."""


class EvaluationError(ValueError):
    """An operation that failed on the data it was given."""


def split_operations(text):
    """``"user | value.split('|')"`` -> ``['user', "value.split('|')"]``:
    split on the ``|`` outside strings and brackets.
    """
    parts, depth, quote, current = [], 0, None, []
    for ch in text:
        if quote:
            if ch == quote:
                quote = None
        elif ch in '\'"':
            quote = ch
        elif ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth -= 1
        elif ch == '|' and depth == 0:
            parts.append(''.join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append(''.join(current).strip())
    return parts


class Expression:
    """One operation, checked at construction.

    :param names: the variables it may read besides ``value``.
    :raises UnsafeExpression: for what it will not run.
    """

    def __init__(self, text, names=('value',)):
        self.text = text
        try:
            tree = ast.parse(text.strip(), mode='eval')
        except SyntaxError as exc:
            raise UnsafeExpression('%r is not an expression: %s'
                                   % (text, exc.msg)) from None
        self._names = frozenset(names)
        self._check(tree.body, frozenset())
        self._tree = tree.body

    # -- checking, once ------------------------------------------------------

    def _check(self, node, local):
        kind = type(node)
        if kind is ast.Constant:
            return
        if kind is ast.Name:
            if node.id not in local and node.id not in self._names and \
                    node.id not in _FUNCTIONS and node.id not in _CONSTANTS:
                raise UnsafeExpression('%r: unknown name %r' % (
                    self.text, node.id))
            return
        if kind is ast.Attribute:
            if node.attr.startswith('_') or node.attr not in _METHODS:
                raise UnsafeExpression('%r: %r is not an allowed method' % (
                    self.text, node.attr))
            return self._check(node.value, local)
        if kind is ast.Call:
            if node.keywords and any(k.arg is None for k in node.keywords):
                raise UnsafeExpression('%r: ** arguments' % self.text)
            if not isinstance(node.func, (ast.Name, ast.Attribute)):
                raise UnsafeExpression('%r: only functions and methods are '
                                       'called' % self.text)
            for child in [node.func] + node.args + [
                    k.value for k in node.keywords]:
                self._check(child, local)
            return
        if kind is ast.Lambda:
            args = node.args
            if args.vararg or args.kwarg or args.kwonlyargs or \
                    args.defaults or args.posonlyargs:
                raise UnsafeExpression('%r: lambda takes plain arguments '
                                       'only' % self.text)
            return self._check(node.body, local | {
                a.arg for a in args.args})
        if kind is ast.BinOp and type(node.op) not in _BINARY:
            raise UnsafeExpression('%r: operator %s' % (
                self.text, type(node.op).__name__))
        allowed = (ast.BinOp, ast.BoolOp, ast.Compare, ast.UnaryOp,
                   ast.IfExp, ast.Subscript, ast.Slice, ast.List, ast.Tuple,
                   ast.Dict)
        if kind not in allowed:
            raise UnsafeExpression('%r: %s is not allowed' % (
                self.text, kind.__name__))
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.operator, ast.boolop, ast.cmpop,
                                      ast.unaryop, ast.expr_context)):
                self._check(child, local)

    # -- evaluating, per sample ----------------------------------------------

    def __call__(self, **env):
        try:
            result = _Run().eval(self._tree, env)
            return _materialise(result)
        except (UnsafeExpression, EvaluationError) as exc:
            if exc.args and not str(exc).startswith(self.text):
                raise type(exc)('%s: %s' % (self.text, exc)) from None
            raise
        except Exception as exc:
            raise EvaluationError('%s: %s: %s' % (
                self.text, type(exc).__name__, str(exc)[:200])) from None


class _Run:
    """One evaluation, with its CPU deadline."""

    __slots__ = ('deadline', 'steps')

    def __init__(self):
        self.deadline = time.thread_time() + MAX_CPU_SECONDS
        self.steps = 0

    def eval(self, node, env):
        self.steps += 1
        if not self.steps & 255 and time.thread_time() > self.deadline:
            raise EvaluationError('took more than %ss of CPU'
                                  % MAX_CPU_SECONDS)
        ev = self.eval
        kind = type(node)
        if kind is ast.Constant:
            return node.value
        if kind is ast.Name:
            if node.id in env:
                return env[node.id]
            if node.id in _CONSTANTS:
                return _CONSTANTS[node.id]
            return _FUNCTIONS[node.id]
        if kind is ast.Attribute:
            target = ev(node.value, env)
            return getattr(target, node.attr)
        if kind is ast.Call:
            func = ev(node.func, env)
            args = [ev(a, env) for a in node.args]
            kwargs = {k.arg: ev(k.value, env) for k in node.keywords}
            _check_call(func, args, kwargs)
            return _bounded(func(*args, **kwargs))
        if kind is ast.Lambda:
            names = [a.arg for a in node.args.args]

            def function(*args):
                return ev(node.body, dict(env, **dict(zip(names, args))))
            return function
        if kind is ast.BinOp:
            left, right = ev(node.left, env), ev(node.right, env)
            _check_binary(node.op, left, right)
            return _bounded(_BINARY[type(node.op)](left, right))
        if kind is ast.BoolOp:
            result = None
            for value in node.values:
                result = ev(value, env)
                if isinstance(node.op, ast.And) and not result:
                    return result
                if isinstance(node.op, ast.Or) and result:
                    return result
            return result
        if kind is ast.Compare:
            left = ev(node.left, env)
            for op, comparator in zip(node.ops, node.comparators):
                right = ev(comparator, env)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if kind is ast.UnaryOp:
            return _UNARY[type(node.op)](ev(node.operand, env))
        if kind is ast.IfExp:
            return ev(node.body, env) if ev(node.test, env) else ev(
                node.orelse, env)
        if kind is ast.Subscript:
            return ev(node.value, env)[ev(node.slice, env)]
        if kind is ast.Slice:
            return slice(*(ev(p, env) if p is not None else None
                           for p in (node.lower, node.upper, node.step)))
        if kind is ast.List:
            return [ev(e, env) for e in node.elts]
        if kind is ast.Tuple:
            return tuple(ev(e, env) for e in node.elts)
        if kind is ast.Dict:
            return {ev(k, env): ev(v, env)
                    for k, v in zip(node.keys, node.values)}
        raise UnsafeExpression('%s is not allowed' % kind.__name__)


def weight(value, limit=MAX_WEIGHT):
    """How much work ``value`` is to copy, print or walk: the slots of its
    containers, nested ones counted each time they are referenced, the
    length of its strings and the width of its integers. Stops counting
    past ``limit`` (returns ``limit + 1``), so a list of 10**12 elements
    made of one shared list costs as little to weigh as a small one.
    """
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        kind = type(v)
        if kind is str or kind is bytes:
            total += len(v)
        elif kind is int:
            total += v.bit_length() >> 6
        elif kind in (list, tuple, set, frozenset):
            total += len(v)
            if total > limit:
                return limit + 1
            stack.extend(x for x in v if type(x) not in _SCALARS)
        elif kind is dict:
            total += 2 * len(v)
            if total > limit:
                return limit + 1
            stack.extend(v.keys())
            stack.extend(v.values())
        if total > limit:
            return limit + 1
    return total


_SCALARS = (float, bool, type(None))


def _too_heavy(what):
    raise EvaluationError('%s larger than %d elements and characters; '
                          'refused before it runs' % (what, MAX_WEIGHT))


def _check_call(func, args, kwargs):
    """Refuse, before it runs, a call whose input is too large to copy
    or print within the bounds, and what grows faster than its input.
    """
    values = list(args) + list(kwargs.values())
    owner = getattr(func, '__self__', None)
    if isinstance(owner, (str, bytes, list, tuple, dict, set)):
        values.append(owner)
    if sum(weight(v) for v in values) > MAX_WEIGHT:
        _too_heavy('a call on data')
    if func is sum and len(args) > 1 and not isinstance(
            args[1], (int, float)):
        # Concatenating lists or strings with sum() is quadratic.
        raise EvaluationError('sum() adds numbers only')
    name = getattr(func, '__name__', '')
    if name == 'replace' and isinstance(func.__self__, str) and \
            len(args) >= 2 and isinstance(args[0], str) and \
            isinstance(args[1], str):
        grows = len(args[1]) - len(args[0])
        if grows > 0 and len(func.__self__) + grows * func.__self__.count(
                args[0]) > MAX_LENGTH:
            raise EvaluationError('a result longer than %d' % MAX_LENGTH)


def _check_binary(op, left, right):
    if isinstance(op, ast.Mult):
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and \
                    isinstance(count, int) and \
                    max(weight(seq), 1) * max(count, 0) > MAX_WEIGHT:
                raise EvaluationError('a repetition larger than %d'
                                      % MAX_WEIGHT)
        if isinstance(left, int) and isinstance(right, int) and \
                left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise EvaluationError('an integer of more than %d bits'
                                  % MAX_INT_BITS)
    elif isinstance(left, (list, tuple, str)) and \
            isinstance(right, type(left)) and \
            weight([left, right]) > MAX_WEIGHT:
        _too_heavy('a concatenation')


_LAZY = (map, filter, zip, enumerate, reversed,
         type(iter(())), type(iter([])), type(iter('')))


def _materialise(result):
    """Lazy results (``map``, ``filter`` ...) evaluated now, inside the
    bounds, not later by whoever reads the value.
    """
    if isinstance(result, _LAZY):
        out = []
        for item in result:
            out.append(item)
            if len(out) > MAX_LENGTH:
                raise EvaluationError('a result longer than %d'
                                      % MAX_LENGTH)
        return out
    return result


def _bounded(result):
    result = _materialise(result)
    if isinstance(result, (str, list, tuple, dict, set)) and \
            len(result) > MAX_LENGTH:
        raise EvaluationError('a result longer than %d' % MAX_LENGTH)
    if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
        raise EvaluationError('an integer of more than %d bits'
                              % MAX_INT_BITS)
    return result
