"""The floors of DESIGN.md run one way: a module never imports from a
floor above its own (checked on the source, so a new upward import fails
here rather than in review).
"""

import ast
import os

from tests import base

PACKAGE = os.path.join(os.path.dirname(__file__), '..', '..',
                       'telemetry_lib')

#: Lowest first. A module's floor is that of its longest matching prefix.
FLOORS = [
    ('telemetry_lib.__init__', 0), ('telemetry_lib.sample', 0),
    ('telemetry_lib.url', 0), ('telemetry_lib.exceptions', 0),
    ('telemetry_lib.ratelog', 0), ('telemetry_lib.yamlfile', 0),
    ('telemetry_lib.masking', 0),
    ('telemetry_lib.jsoncodec', 0), ('telemetry_lib.timeutils', 0),
    ('telemetry_lib.plugins', 0), ('telemetry_lib.httpserver', 0),
    ('telemetry_lib.wakeup', 0), ('telemetry_lib.lifecycle', 0),
    ('telemetry_lib.http11', 0),
    ('telemetry_lib.clients', 1), ('telemetry_lib.formats', 1),
    ('telemetry_lib.publisher', 2), ('telemetry_lib.storage', 2),
    ('telemetry_lib.collector', 2), ('telemetry_lib.pollsters', 2),
    ('telemetry_lib.notification', 2),
    ('telemetry_lib.delivery', 3),
    ('telemetry_lib.pipeline', 4), ('telemetry_lib.alarm', 4),
    ('telemetry_lib.agent', 5), ('telemetry_lib.cmd', 5),
    ('telemetry_lib.opts', 5), ('telemetry_lib.api', 5),
]


def floor_of(module):
    best = None
    for prefix, floor in FLOORS:
        if module == prefix or module.startswith(prefix + '.'):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, floor)
    return None if best is None else best[1]


def _is_module(package, name):
    base = os.path.join(os.path.dirname(PACKAGE), *package.split('.'))
    return (os.path.exists(os.path.join(base, name + '.py'))
            or os.path.isdir(os.path.join(base, name)))


def modules():
    for root, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith('.py'):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE))
                yield path, rel[:-3].replace(os.sep, '.').replace(
                    '.__init__', '') or 'telemetry_lib'


class TestFloors(base.TestCase):

    def test_no_import_runs_up_a_floor(self):
        upward = []
        for path, module in modules():
            own = floor_of(module if module != 'telemetry_lib'
                           else 'telemetry_lib.__init__')
            assert own is not None, 'no floor for %s' % module
            with open(path, encoding='utf-8') as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                names = []
                if isinstance(node, ast.ImportFrom) and node.module:
                    # "from pkg import module" is judged by the module
                    # (a package's __init__ holds nothing here).
                    names = ['%s.%s' % (node.module, a.name)
                             if _is_module(node.module, a.name)
                             else node.module for a in node.names]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                for name in names:
                    if not name.startswith('telemetry_lib'):
                        continue
                    theirs = floor_of(name)
                    if theirs is not None and theirs > own:
                        upward.append('%s (%d) imports %s (%d)'
                                      % (module, own, name, theirs))
        assert not upward, '\n'.join(sorted(set(upward)))


def imports_of(path):
    """The telemetry_lib modules a module imports (anywhere in it)."""
    package = None
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                if _is_module(node.module, a.name):
                    found.add('%s.%s' % (node.module, a.name))
                else:
                    found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.startswith('telemetry_lib')} - {package}


class TestShape(base.TestCase):
    """What issue 22 asked of the layout, kept."""

    def test_no_circles(self):
        graph = {module: imports_of(path) for path, module in modules()}
        cycles = []

        def visit(node, stack, on_stack, done):
            on_stack.add(node)
            stack.append(node)
            for nxt in sorted(graph.get(node, ())):
                if nxt not in graph:
                    continue
                if nxt in on_stack:
                    cycles.append(stack[stack.index(nxt):] + [nxt])
                elif nxt not in done:
                    visit(nxt, stack, on_stack, done)
            stack.pop()
            on_stack.discard(node)
            done.add(node)
        done = set()
        for module in sorted(graph):
            if module not in done:
                visit(module, [], set(), done)
        # A package's __init__ importing its own modules is no circle.
        cycles = [c for c in cycles
                  if not any(c[i + 1].startswith(c[i] + '.')
                             for i in range(len(c) - 1))]
        assert not cycles, '\n'.join(' -> '.join(c) for c in cycles)

    def test_no_module_over_500_lines(self):
        long = []
        for path, module in modules():
            with open(path, encoding='utf-8') as f:
                n = sum(1 for _ in f)
            if n > 500:
                long.append('%s: %d lines' % (module, n))
        assert not long, long

    def test_utc_is_defined_once(self):
        where = []
        for path, module in modules():
            with open(path, encoding='utf-8') as f:
                tree = ast.parse(f.read())
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == 'UTC'
                        for t in node.targets):
                    where.append(module)
        assert where == ['telemetry_lib.timeutils'], where

    def test_one_place_makes_http_sessions(self):
        where = []
        for path, module in modules():
            with open(path, encoding='utf-8') as f:
                text = f.read()
            if 'requests.Session(' in text or 'Session()' in text:
                where.append(module)
        assert where == ['telemetry_lib.clients.http'], where
