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
"""Trait plugins: what a definition's ``plugin:`` does with its matches.

Found through the ``telemetry_lib.trait_plugin`` entry points, by the names
Ceilometer's files use (``split``, ``bitfield``, ``timedelta``, ``map``),
so a file written for Ceilometer means the same here. A third party adds
one by subclassing :class:`TraitPlugin`.
"""

import abc

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib import sample as sample_mod


class TraitPlugin(metaclass=abc.ABCMeta):
    """Turns a field's matches into values.

    Built once per definition field with the ``parameters`` of the file
    (keyword arguments; a wrong one is a ``TypeError`` or ``ValueError``,
    reported with the file and line). :meth:`trait_values` is called for
    every notification, from several threads at once: it must not keep
    state between calls.
    """

    #: Whether the plugin may yield several values (one per match), which
    #: a ``lookup`` meter definition needs.
    support_return_all_values = False

    @abc.abstractmethod
    def trait_values(self, match_list):
        """``[(path, value), ...]`` (maybe empty) → a list of values;
        ``None`` values are left out by the caller.
        """


class SplitPlugin(TraitPlugin):
    """One segment of each value split on ``separator``."""

    support_return_all_values = True

    def __init__(self, separator='.', segment=0, max_split=None):
        if not isinstance(separator, str) or not separator:
            raise ValueError('separator must be a non-empty string')
        self.separator = separator
        self.segment = int(segment)
        self.max_split = -1 if max_split is None else int(max_split)

    def trait_values(self, match_list):
        out = []
        for _, value in match_list:
            parts = str(value).split(self.separator, self.max_split)
            try:
                out.append(parts[self.segment])
            except IndexError:
                out.append(None)
        return out


class BitfieldPlugin(TraitPlugin):
    """An integer whose bits say which paths matched (with which values).

    :param flags: ``[{path, bit, value?}, ...]``: set ``bit`` when ``path``
        matched (and, if given, its value equals ``value``).
    """

    def __init__(self, initial_bitfield=0, flags=None):
        self.initial = int(initial_bitfield)
        self.flags = []
        for flag in flags or ():
            if not isinstance(flag, dict) or 'path' not in flag \
                    or 'bit' not in flag:
                raise ValueError('each flag needs a path and a bit, not %r'
                                 % (flag,))
            self.flags.append((flag['path'], 1 << int(flag['bit']),
                               'value' in flag, flag.get('value')))

    def trait_values(self, match_list):
        matches = dict(match_list)
        bits = self.initial
        for path, bit, has_value, value in self.flags:
            if path in matches and (not has_value or matches[path] == value):
                bits |= bit
        return [bits]


class TimedeltaPlugin(TraitPlugin):
    """Seconds between two timestamps (absolute), from exactly two
    matches; anything else yields nothing.
    """

    def trait_values(self, match_list):
        if len(match_list) != 2:
            return [None]
        try:
            start, end = (sample_mod.to_utc_datetime(v) for _, v in
                          match_list if isinstance(v, str))
        except (InvalidSample, ValueError):
            return [None]
        return [abs((end - start).total_seconds())]


class MapPlugin(TraitPlugin):
    """Each value looked up in ``values``; ``default`` when not there."""

    def __init__(self, values=None, default=None, case_sensitive=True):
        if not values or not isinstance(values, dict):
            raise ValueError("'values' must be a non-empty mapping")
        self.case_sensitive = bool(case_sensitive)
        self.values = {self._fold(k): v for k, v in values.items()}
        self.default = default

    def _fold(self, key):
        if not self.case_sensitive and isinstance(key, str):
            return key.casefold()
        return key

    def trait_values(self, match_list):
        out = []
        for _, value in match_list:
            try:
                out.append(self.values.get(self._fold(value), self.default))
            except TypeError:       # an unhashable value (a list, a dict)
                out.append(self.default)
        return out
