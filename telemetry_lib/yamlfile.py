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
"""The one YAML loader of the library: safe, bounded, and precise.

Every definition file (pipeline, polling, Gnocchi resources, and those to
come) is read here. Safe: PyYAML's SafeLoader, no Python objects. Bounded:
a file larger than :data:`MAX_BYTES`, nested deeper than
:data:`MAX_DEPTH`, or whose aliases expand to more than :data:`MAX_NODES`
nodes ("billion laughs") is refused before anything is built, so a small
hostile file cannot exhaust memory. Precise: mappings remember the line
they start on (``.line``), and every problem is one
:class:`~telemetry_lib.exceptions.ConfigError` naming the file and line.
"""

import collections.abc
import os

import yaml

from telemetry_lib.exceptions import ConfigError

#: Largest file read, in bytes (Ceilometer's largest shipped definition
#: file is about 40 kB).
MAX_BYTES = 4 * 1024 * 1024
#: Most nodes the document may expand to, aliases counted each time used.
MAX_NODES = 200000
#: Deepest nesting of mappings and sequences.
MAX_DEPTH = 64


class Mapping(dict):
    """A YAML mapping that remembers the line it started on."""

    __slots__ = ('line',)


# libyaml's parser when PyYAML has it: the same safe constructors, ten
# times faster on a large file (a pipeline naming 100,000 meters).
class _Loader(getattr(yaml, 'CSafeLoader', yaml.SafeLoader)):
    pass


def _construct_mapping(loader, node):
    loader.flatten_mapping(node)
    pairs = loader.construct_pairs(node, deep=True)
    for (key_node, _), (key, _) in zip(node.value, pairs):
        if not isinstance(key, collections.abc.Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, 'a %s used as a mapping key'
                % ('mapping' if isinstance(key, dict) else 'list'),
                key_node.start_mark)
    mapping = Mapping(pairs)
    mapping.line = node.start_mark.line + 1
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                        _construct_mapping)


def _check_size(node, path):
    """Walk the composed graph as the built document would be: an alias is
    counted each time it is used. Stops at the first bound passed.
    """
    count = 0
    stack = [(node, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError('expands to more than %d values (aliases '
                              'used too often?); refused' % MAX_NODES,
                              path=path, line=node.start_mark.line + 1)
        if depth > MAX_DEPTH:
            raise ConfigError('nested deeper than %d levels; refused'
                              % MAX_DEPTH, path=path,
                              line=node.start_mark.line + 1)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))


def _reader_error(exc, path, text):
    """A character the reader refused (libyaml reports it while parsing,
    PyYAML's own reader while the loader is built): one line.
    """
    if isinstance(exc.character, int):
        reason = 'character #x%04x is not allowed in YAML' % exc.character
    else:
        reason = str(exc.reason).split('\n')[0]
    return ConfigError('invalid YAML: %s' % reason, path=path,
                       line=text.count('\n', 0, exc.position) + 1)


def _yaml_error(exc, path):
    mark = getattr(exc, 'problem_mark', None)
    problem = getattr(exc, 'problem', None) or str(exc)
    context = getattr(exc, 'context', None)
    context_mark = getattr(exc, 'context_mark', None)
    reason = 'invalid YAML: %s' % problem
    if context:
        reason += ' (%s%s)' % (context, ' that starts on line %d'
                               % (context_mark.line + 1)
                               if context_mark else '')
    return ConfigError(reason[:300], path=path,
                       line=mark.line + 1 if mark else None)


def loads(text, path=None):
    """Parse YAML ``text`` (``path`` names it in errors)."""
    if len(text) > MAX_BYTES:
        raise ConfigError('larger than %d bytes; refused' % MAX_BYTES,
                          path=path)
    try:
        # The reader checks every character as it is built: a NUL byte or
        # another unprintable one raises here.
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, path, text) from None
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError('nested too deeply; refused', path=path) \
                from None
        if node is None:
            return None
        _check_size(node, path)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, path, text) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, path) from None
    except ValueError as exc:
        # int() past Python's digit limit, a date out of range, ...
        reason = str(exc).split(';')[0].split('\n')[0][:200]
        raise ConfigError('a value that cannot be read: %s' % reason,
                          path=path) from None
    finally:
        loader.dispose()


def load(path):
    """Parse a YAML file; mappings in it know their line (``.line``)."""
    try:
        size = os.path.getsize(path)
        if size > MAX_BYTES:
            raise ConfigError('%d bytes, larger than %d; refused'
                              % (size, MAX_BYTES), path=path)
        with open(path, 'rb') as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError('cannot read: %s' % (exc.strerror or exc),
                          path=path) from None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise ConfigError('not UTF-8 text: byte %d' % exc.start,
                          path=path) from None
    return loads(text, path)
