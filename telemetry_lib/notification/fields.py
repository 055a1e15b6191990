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
"""Field specifications of Ceilometer's definition files, compiled once.

A field is a JSONPath (``$.payload.size``, ``payload.tenant_id``,
``$.payload.metrics[?(@.name='cpu.percent')].value * 100``), a list of
them tried in order, or a constant. Its meaning is jsonpath-rw-ext's, the
dialect Ceilometer's files are written in: every path is parsed by it, so
anything a Ceilometer file says parses here or fails the same way. Most
paths are plain chains of keys, and those are evaluated by walking the
dictionaries directly -- the library's generic matching costs tens of
microseconds per path, a dictionary walk a fraction of one. The two give
the same matches (tested against each other on Ceilometer's own files).
"""

import contextlib
import io

from jsonpath_rw import jsonpath
from jsonpath_rw import parser as rw_parser
from jsonpath_rw_ext import parser as jsonpath_parser
import ply.yacc

try:
    from telemetry_lib.notification import jsonpath_compiled
except ImportError:     # jsonpath-rw-ext moved its internals: the library
    jsonpath_compiled = None

_MISSING = object()


class FieldError(ValueError):
    """A field specification that does not parse or cannot be used."""


class _Parser(jsonpath_parser.ExtentedJsonPathParser):
    """jsonpath-rw-ext's parser, with its parsing tables built once.

    The library builds them again for every expression (12 ms each: six
    seconds for Ceilometer's files, at every start and reload); the
    grammar does not change between expressions, so one table serves all.
    """

    _tables = None

    def parse_token_stream(self, token_iterator, start_symbol='jsonpath'):
        if self._tables is None:
            self._tables = ply.yacc.yacc(
                module=self, debug=False, write_tables=False,
                start=start_symbol, errorlog=ply.yacc.NullLogger())
        return self._tables.parse(
            lexer=rw_parser.IteratorToTokenStream(token_iterator))


class Compiler:
    """Parses JSONPath expressions, each distinct one once.

    Not shared between threads while it parses (ply's parser keeps state);
    the getters it returns are pure and thread-safe.
    """

    def __init__(self):
        self._parser = None
        self._cache = {}

    def getter(self, expression):
        """A function ``body -> [(path, value), ...]`` for ``expression``.

        :raises FieldError: when it does not parse.
        """
        found = self._cache.get(expression)
        if found is None:
            found = self._cache[expression] = self._compile(expression)
        return found

    def _parser_tree(self, expression):
        if self._parser is None:
            self._parser = _Parser()
        try:
            # jsonpath-rw-ext prints every `sub()` it parses: not on the
            # output of a command that prints samples.
            with contextlib.redirect_stdout(io.StringIO()):
                return self._parser.parse(expression)
        except Exception as exc:
            # ply and jsonpath-rw raise bare Exception for syntax errors.
            raise FieldError('JSONPath %r does not parse: %s'
                             % (expression, exc)) from None

    def _compile(self, expression):
        tree = self._parser_tree(expression)
        chains = _key_chains(tree)
        if chains is not None:
            return _walker(chains)
        return _compiled(tree) or _generic(tree)


def _key_chains(tree):
    """The key chains of a path made only of plain keys (or a union of
    such paths), else ``None``.
    """
    if isinstance(tree, jsonpath.Union):
        left, right = _key_chains(tree.left), _key_chains(tree.right)
        if left is None or right is None:
            return None
        return left + right
    keys = []
    node = tree
    while isinstance(node, jsonpath.Child):
        if not _single_key(node.right):
            return None
        keys.append(node.right.fields[0])
        node = node.left
    if isinstance(node, jsonpath.Root):
        pass
    elif _single_key(node):
        keys.append(node.fields[0])
    else:
        return None
    keys.reverse()
    return [tuple(keys)] if keys else None


def _single_key(node):
    return (type(node) is jsonpath.Fields and len(node.fields) == 1
            and node.fields[0] != '*')


def _walker(chains):
    # One chain is nearly every field: keep its loop free of the outer one.
    if len(chains) == 1:
        keys = chains[0]
        path = '.'.join(keys)

        def get(body):
            value = body
            for key in keys:
                if type(value) is not dict:
                    return []
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    return []
            return [(path, value)]

        def first(body):
            value = body
            for key in keys:
                if type(value) is not dict:
                    return None
                value = value.get(key)
            return value
        get.first = first
        return get

    getters = [_walker([chain]) for chain in chains]

    def get_any(body):
        found = []
        for g in getters:
            found.extend(g(body))
        return found
    return get_any


def _path_of(match):
    parts = []
    while match is not None and match.context is not None:
        parts.append(str(match.path))
        match = match.context
    parts.reverse()
    return '.'.join(parts)


def _generic(tree):
    find = tree.find

    def get(body):
        return [(_path_of(m), m.value) for m in find(body)]
    return get


def _compiled(tree):
    """``tree`` as plain functions, or ``None`` when it uses a node this
    does not know (then the library evaluates it).
    """
    if jsonpath_compiled is None:
        return None
    try:
        f = jsonpath_compiled.compile_node(tree)
    except jsonpath_compiled.Unsupported:
        return None

    def get(body):
        return [('' if p is None else p, v) for p, v in f(None, body, body)]
    return get


class Field:
    """One field of a definition: what a notification body yields for it.

    :param name: for messages.
    :param spec: a JSONPath string, a list of them (tried in order, as a
        union), or a number (a constant).
    :param compiler: the :class:`Compiler` of the file being loaded.
    :param plugin: a trait plugin turning ``[(path, value), ...]`` into
        values, or ``None``.
    :raises FieldError: for a path that does not parse or an empty list.
    """

    __slots__ = ('name', 'spec', 'plugin', '_get', '_first', 'constant')

    def __init__(self, name, spec, compiler, plugin=None):
        self.name = name
        self.spec = spec
        self.plugin = plugin
        self.constant = _MISSING
        self._get = self._first = None
        if isinstance(spec, bool) or spec is None:
            raise FieldError('a JSONPath, a list of them or a number is '
                             'expected, not %r' % (spec,))
        if isinstance(spec, (int, float)):
            self.constant = spec
            return
        if isinstance(spec, list):
            if not spec or not all(isinstance(s, str) for s in spec):
                raise FieldError('a list of fields must hold JSONPath '
                                 'strings, not %r' % (spec,))
            # Ceilometer's reading of a list: one union of its paths.
            spec = (spec[0] if len(spec) == 1
                    else '|'.join('(%s)' % s for s in spec))
        elif not isinstance(spec, str):
            raise FieldError('a JSONPath, a list of them or a number is '
                             'expected, not %r' % (spec,))
        self._get = compiler.getter(spec)
        # A plain chain of keys knows its first value without a list.
        self._first = getattr(self._get, 'first', None)

    def matches(self, body):
        """Every ``(path, value)`` the spec matches, ``None`` values too."""
        return self._get(body)

    def values(self, body, keep_none=False):
        """Every value, through the plugin if any.

        :param keep_none: keep the matches whose value is null (what a
            ``lookup`` definition does, so its lists stay aligned); a
            plugin's ``None`` results are always left out.
        """
        if self.constant is not _MISSING:
            return [self.constant]
        found = self._get(body)
        if not keep_none:
            found = [m for m in found if m[1] is not None]
        if self.plugin is not None:
            return [v for v in self.plugin.trait_values(found)
                    if v is not None]
        return [v for _, v in found]

    def first(self, body, memo=None):
        """The first non-null value, through the plugin if any, or
        ``None``.

        :param memo: a dict kept for one notification: a path that is not
            a plain chain of keys is evaluated once for all the
            definitions that use it.
        """
        if self.constant is not _MISSING:
            return self.constant
        if self.plugin is not None:
            found = self.values(body)
            return found[0] if found else None
        if self._first is not None:
            return self._first(body)
        get = self._get
        if memo is not None and get in memo:
            return memo[get]
        value = None
        for _, v in get(body):
            if v is not None:
                value = v
                break
        if memo is not None:
            memo[get] = value
        return value
