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
"""The data model: samples, events and traits.

All three are immutable named tuples: cheap to build (a collector may make
hundreds of thousands a second), safe to share between the pipeline and every
publisher's queue, and validated once, on construction, so a bad type or a
non-numeric volume fails where it is made rather than inside a publisher.
Use :meth:`Sample.replace` (not ``_replace``) to derive a changed copy: it
validates again.
"""

import datetime
import decimal
import enum
import math
import numbers
import os
import typing

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib import jsoncodec
from telemetry_lib.timeutils import to_utc_datetime
from telemetry_lib.timeutils import UTC


class SampleType:
    """The three kinds of meter, as Ceilometer names them."""

    GAUGE = 'gauge'
    DELTA = 'delta'
    CUMULATIVE = 'cumulative'
    ALL = (GAUGE, DELTA, CUMULATIVE)


class TraitType(enum.IntEnum):
    """Ceilometer's trait dtypes; the numbers are what the wire carries."""

    NONE = 0
    TEXT = 1
    INT = 2
    FLOAT = 3
    DATETIME = 4


def new_message_id():
    """A random (version 4) UUID string, for a sample's or event's id.

    Made straight from ``os.urandom`` because ``str(uuid.uuid4())`` costs
    about three times as much, and every sample needs one.
    """
    h = os.urandom(16).hex()
    variant = '89ab'[int(h[16], 16) & 3]
    return '%s-%s-4%s-%s%s-%s' % (h[:8], h[8:12], h[13:16], variant,
                                  h[17:20], h[20:])


#: What JSON encoders (and Gnocchi, Prometheus, sg-core) carry as an
#: integer: a wider one cannot be sent anywhere.
_INT_MIN, _INT_MAX = -2 ** 63, 2 ** 64 - 1


def _check_volume(volume, name):
    kind = type(volume)
    if kind is float:
        if math.isfinite(volume):
            return volume
    elif kind is int:
        if _INT_MIN <= volume <= _INT_MAX:
            return volume
        raise InvalidSample('sample %r: volume %d does not fit 64 bits'
                            % (name, volume))
    elif (isinstance(volume, (numbers.Real, decimal.Decimal))
          and kind is not bool):
        return _check_volume(float(volume), name)
    else:
        raise InvalidSample('sample %r: volume must be a number, not %s (%r)'
                            % (name, kind.__name__, volume))
    raise InvalidSample('sample %r: volume must be finite, not %r'
                        % (name, volume))


def _check_str(value, field, owner, optional=True):
    if value is None and optional:
        return None
    if isinstance(value, str) and (optional or value):
        return value
    raise InvalidSample('%s: %s must be a %sstring, not %r'
                        % (owner, field,
                           '' if optional else 'non-empty ', value))


_OPT_STR = frozenset((str, type(None)))


def _explain(name, type_, unit, resource_id, source, user_id, project_id,
             user_name, project_name, id_):
    """Raise the :class:`InvalidSample` that says which field is wrong
    (a str subclass is accepted: the fast test only knows ``str``).
    """
    if not isinstance(name, str) or not name:
        raise InvalidSample('sample name must be a non-empty string, '
                            'not %r' % (name,))
    if type_ not in SampleType.ALL:
        raise InvalidSample('sample %r: type must be one of %s, not %r'
                            % (name, ', '.join(SampleType.ALL), type_))
    if not isinstance(unit, str):
        raise InvalidSample('sample %r: unit must be a string, not %r'
                            % (name, unit))
    owner = 'sample %r' % name
    _check_str(resource_id, 'resource_id', owner, optional=False)
    _check_str(user_id, 'user_id', owner)
    _check_str(project_id, 'project_id', owner)
    _check_str(user_name, 'user_name', owner)
    _check_str(project_name, 'project_name', owner)
    _check_str(source, 'source', owner, optional=False)
    if id_ is not None and not isinstance(id_, str):
        raise InvalidSample('%s: id must be a string' % owner)


def _parse_timestamp(text):
    """An ISO 8601 string as an aware UTC datetime: the common form
    (what ``isoformat()`` writes, in UTC) without the general path.
    """
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return to_utc_datetime(text)
    if parsed.tzinfo is UTC:
        return parsed
    return to_utc_datetime(parsed)


class _SampleFields(typing.NamedTuple):
    name: str
    type: str
    unit: str
    volume: typing.Union[int, float]
    user_id: typing.Optional[str]
    project_id: typing.Optional[str]
    resource_id: str
    timestamp: datetime.datetime
    resource_metadata: dict
    source: str
    id: str
    monotonic_time: typing.Optional[float]
    user_name: typing.Optional[str]
    project_name: typing.Optional[str]


class Sample(_SampleFields):
    """One measurement of one meter for one resource.

    The positional order of the first seven arguments is Ceilometer's, so
    code written for ``ceilometer.sample.Sample`` reads the same.

    :param timestamp: when it was measured; an aware or naive-UTC datetime,
        an ISO 8601 string or POSIX seconds; stored as an aware UTC
        datetime. Defaults to now.
    :param id: the message id; a new random UUID when not given.
    :raises InvalidSample: for a bad type, a non-numeric or non-finite
        volume, an empty name or resource id, or metadata that is not a
        mapping.
    """

    __slots__ = ()

    def __new__(cls, name, type, unit, volume, user_id=None, project_id=None,
                resource_id=None, timestamp=None, resource_metadata=None,
                source='openstack', id=None, monotonic_time=None,
                user_name=None, project_name=None):
        # The common case -- every field of the right type -- is checked
        # in one expression; only a sample that fails it pays for the
        # checks that say what is wrong.
        if not (name.__class__ is str and name
                and type in SampleType.ALL
                and unit.__class__ is str
                and resource_id.__class__ is str and resource_id
                and source.__class__ is str and source
                and user_id.__class__ in _OPT_STR
                and project_id.__class__ in _OPT_STR
                and user_name.__class__ in _OPT_STR
                and project_name.__class__ in _OPT_STR
                and id.__class__ in _OPT_STR):
            _explain(name, type, unit, resource_id, source, user_id,
                     project_id, user_name, project_name, id)
        volume = _check_volume(volume, name)
        if timestamp is None:
            timestamp = datetime.datetime.now(UTC)
        elif timestamp.__class__ is str:
            timestamp = _parse_timestamp(timestamp)
        else:
            timestamp = to_utc_datetime(timestamp)
        if resource_metadata is None:
            resource_metadata = {}
        elif isinstance(resource_metadata, dict):
            # A shallow copy, so the caller reusing its dict cannot change
            # a sample already queued for delivery.
            resource_metadata = dict(resource_metadata)
            if resource_metadata:
                _check_metadata(resource_metadata, name)
        else:
            raise InvalidSample('sample %r: resource_metadata must be a '
                                'mapping, not %s'
                                % (name, _type_name(resource_metadata)))
        if id is None:
            id = new_message_id()
        if monotonic_time is not None and (
                not isinstance(monotonic_time, (int, float))
                or isinstance(monotonic_time, bool)
                or not math.isfinite(monotonic_time)):
            raise InvalidSample('sample %r: monotonic_time must be a finite '
                                'number of seconds, not %r'
                                % (name, monotonic_time))
        return tuple.__new__(cls, (
            name, type, unit, volume, user_id, project_id, resource_id,
            timestamp, resource_metadata, source, id, monotonic_time,
            user_name, project_name))

    def replace(self, **changes):
        """A validated copy with some fields changed."""
        fields = self._asdict()
        fields.update(changes)
        return Sample(**fields)

    def __repr__(self):
        return ('<Sample %s=%r %s resource=%s at %s>'
                % (self.name, self.volume, self.type, self.resource_id,
                   self.timestamp.isoformat()))


def _type_name(value):
    return type(value).__name__


def _check_metadata(metadata, name):
    """Refuse at the door what no publisher could send: keys that are not
    strings, values JSON cannot carry (sets, bytes, arbitrary objects,
    integers wider than 64 bits), nesting past what encoders allow.

    Checked by encoding it once, in C: cheaper than walking it in Python
    (0.7 us for 40 values), and exactly what every publisher will do. NaN
    and infinity are carried as ``null``.
    """
    try:
        jsoncodec.dumps(metadata)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidSample('sample %r: resource_metadata cannot be sent: '
                            '%s (JSON carries strings, numbers, booleans, '
                            'null, lists and mappings with string keys)'
                            % (name, exc)) from None


class _TraitFields(typing.NamedTuple):
    name: str
    dtype: int
    value: typing.Any


class Trait(_TraitFields):
    """A typed name/value pair of an event.

    The value is converted to the dtype's Python type (text → str,
    int → int, float → float, datetime → aware UTC datetime); a value that
    cannot be converted is an :class:`InvalidSample` error.
    """

    __slots__ = ()

    def __new__(cls, name, dtype, value):
        if not isinstance(name, str) or not name:
            raise InvalidSample('trait name must be a non-empty string, not '
                                '%r' % (name,))
        try:
            dtype = TraitType(dtype if dtype is not None else 0)
        except ValueError:
            raise InvalidSample('trait %r: dtype must be one of %s, not %r'
                                % (name, [int(t) for t in TraitType], dtype)
                                ) from None
        if value is not None:
            value = _convert_trait(name, dtype, value)
        return tuple.__new__(cls, (name, int(dtype), value))

    @classmethod
    def text(cls, name, value):
        """A text trait from a name already checked and a ``str`` value:
        what a converter makes by the thousand, without the checks.
        """
        return tuple.__new__(cls, (name, 1, value))


def _convert_trait(name, dtype, value):
    try:
        if dtype == TraitType.TEXT:
            return value if isinstance(value, str) else str(value)
        if dtype == TraitType.INT:
            if isinstance(value, bool):
                raise ValueError('a boolean is not an integer')
            return int(value)
        if dtype == TraitType.FLOAT:
            if isinstance(value, bool):
                raise ValueError('a boolean is not a float')
            return float(value)
        if dtype == TraitType.DATETIME:
            return to_utc_datetime(value, 'trait %r' % name)
    except (TypeError, ValueError) as exc:
        raise InvalidSample('trait %r: value %r does not fit dtype %s: %s'
                            % (name, value, dtype.name.lower(), exc)) \
            from None
    return value


class _EventFields(typing.NamedTuple):
    message_id: str
    event_type: str
    generated: datetime.datetime
    traits: tuple
    raw: dict


class Event(_EventFields):
    """Something that happened to a resource, with its traits.

    :param traits: an iterable of :class:`Trait` (or ``(name, dtype, value)``
        triples, converted).
    """

    __slots__ = ()

    def __new__(cls, message_id=None, event_type=None, generated=None,
                traits=(), raw=None):
        if not isinstance(event_type, str) or not event_type:
            raise InvalidSample('event_type must be a non-empty string, not '
                                '%r' % (event_type,))
        if message_id is None:
            message_id = new_message_id()
        elif not isinstance(message_id, str):
            raise InvalidSample('event %r: message_id must be a string'
                                % event_type)
        generated = (datetime.datetime.now(UTC) if generated is None
                     else to_utc_datetime(generated, 'generated'))
        traits = tuple(t if isinstance(t, Trait) else _trait_from(t,
                                                                  event_type)
                       for t in traits)
        if raw is None:
            raw = {}
        elif not isinstance(raw, dict):
            raise InvalidSample('event %r: raw must be a mapping' %
                                event_type)
        return tuple.__new__(cls, (message_id, event_type, generated, traits,
                                   raw))

    def trait(self, name, default=None):
        """The value of the trait called ``name``."""
        for t in self.traits:
            if t.name == name:
                return t.value
        return default


def _trait_from(triple, event_type):
    try:
        name, dtype, value = triple
    except (TypeError, ValueError):
        raise InvalidSample('event %r: a trait must be a Trait or a '
                            '(name, dtype, value) triple, not %r'
                            % (event_type, triple)) from None
    return Trait(name, dtype, value)
