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
"""Ceilometer's wire dictionaries for samples and events, and their signature.

Pure functions, no I/O. The sample form is the ``counter_*`` dictionary that
Ceilometer's publishers send and its consumers (Gnocchi's dispatcher, STF's
Smart Gateway) read, with keys in Ceilometer's order. The signature is
Ceilometer's ``message_signature``: an HMAC-SHA256, keyed with the telemetry
secret, over every (name, value) pair of the message except the signature,
names sorted, nested mappings flattened into ``outer:inner`` names and each
pair fed as ``str(name)`` then ``str(value)``. A list value is fed as the
``str()`` of the list with its strings turned to UTF-8 bytes and its
mappings' items sorted -- a quirk of Ceilometer's own code that a verifier
repeats, so we repeat it too.
"""

import hashlib
import hmac
import itertools
import logging

from telemetry_lib.exceptions import InvalidSample
from telemetry_lib import jsoncodec
from telemetry_lib.sample import Event
from telemetry_lib.sample import Sample
from telemetry_lib.sample import Trait
from telemetry_lib.sample import TraitType

try:
    from telemetry_lib.formats import _cwire
except ImportError:     # built without a C compiler: the Python path only
    _cwire = None

LOG = logging.getLogger(__name__)


class _Fallbacks:
    """Batches the compiled encoder failed on and the Python path encoded
    (a bug of the compiled path: the Python one is the reference). The
    first is logged; ``next()`` on a count is atomic under the GIL.
    """

    def __init__(self):
        self._count = itertools.count(1)
        self.total = 0

    def add(self, exc):
        self.total = n = next(self._count)
        if n == 1:
            LOG.warning('the compiled wire encoder failed (%s: %s); the '
                        'Python path encodes instead, with the same bytes '
                        '(counted in telemetry_wire_compiled_fallbacks_total)',
                        type(exc).__name__, exc)


_FALLBACKS = _Fallbacks()


def compiled_fallbacks():
    """``telemetry_wire_compiled_fallbacks_total``: see :class:`_Fallbacks`."""
    return _FALLBACKS.total


#: The top-level keys of a sample message whose values are plain scalars, in
#: sorted order: the part of the signature whose shape never changes.
_SCALAR_KEYS_SORTED = (
    'counter_name', 'counter_type', 'counter_unit', 'counter_volume',
    'message_id', 'monotonic_time', 'project_id', 'project_name',
    'publisher_id', 'resource_id',
)
_SCALAR_KEYS_SORTED_TAIL = ('source', 'timestamp', 'user_id', 'user_name')
# The signed text of a sample around its metadata block, one ``%``
# formatting (str() of each value, as the parts list did) instead of a list
# built and joined per sample; with and without a publisher_id.
_HEAD_KEYS = {with_pub: tuple(k for k in _SCALAR_KEYS_SORTED
                              if with_pub or k != 'publisher_id')
              for with_pub in (True, False)}
_HEAD = {with_pub: ''.join('%s%%s' % k for k in keys)
         for with_pub, keys in _HEAD_KEYS.items()}
_TAIL = ''.join('%s%%s' % k for k in _SCALAR_KEYS_SORTED_TAIL)


class _Hmac:
    """HMAC-SHA256 with its keyed inner and outer states made once.

    ``hmac.HMAC.copy()`` is Python code building a new object; copying the
    two ``hashlib`` states is C: a signature costs half as much. The result
    is RFC 2104's, as ``hmac.new(key, msg, sha256)`` gives (tested).
    """

    __slots__ = ('inner', 'outer')
    _BLOCK = 64

    def __init__(self, key):
        if len(key) > self._BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(self._BLOCK, b'\0')
        #: the keyed states, never updated: copied for each message.
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, *parts):
        """The signature of the concatenation of ``parts`` (bytes)."""
        inner = self.inner.copy()
        for part in parts:
            inner.update(part)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _sig_list_form(value):
    # Mirrors the bytes-for-strings, sorted-mapping shape Ceilometer feeds
    # into str() for a list; see the module docstring.
    if isinstance(value, dict):
        return {_sig_list_form(k): _sig_list_form(v)
                for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_sig_list_form(v) for v in value]
    if isinstance(value, str):
        return value.encode('utf-8')
    if isinstance(value, bytes):
        return value.decode('utf-8')
    return value


def _list_text(value):
    return str(_sig_list_form(value))


def _flatten_into(parts, prefix, mapping):
    """Append the signature's (name, value) texts of a nested mapping.

    The hottest loop of signing: dispatch on the exact type so a string
    value (most of them) is appended as is, without a str() call.
    """
    for key in sorted(mapping):
        value = mapping[key]
        kind = type(value)
        name = prefix + key if type(key) is str else '%s%s' % (prefix, key)
        if kind is str:
            parts += (name, value)
        elif kind is dict:
            _flatten_into(parts, name + ':', value)
        elif kind is list or kind is tuple:
            parts += (name, _list_text(value))
        elif isinstance(value, dict):
            _flatten_into(parts, name + ':', value)
        else:
            parts += (name, str(value))


def compute_signature(message, secret):
    """Ceilometer's ``message_signature`` of a wire dictionary.

    :param message: a sample or event wire dictionary (any existing
        ``message_signature`` is ignored).
    :param secret: the telemetry secret (str or bytes); empty or ``None``
        gives ``''``, as Ceilometer does.
    """
    if not secret:
        return ''
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    parts = []
    _flatten_into(parts, '', {k: v for k, v in message.items()
                              if k != 'message_signature'})
    # One HMAC over the concatenation equals Ceilometer's many update()
    # calls, at a fraction of the cost.
    return hmac.new(secret, ''.join(parts).encode('utf-8'),
                    hashlib.sha256).hexdigest()


def verify_signature(message, secret):
    """True when ``message`` carries the signature ``secret`` gives it.

    With no secret configured every message verifies, as in Ceilometer.
    """
    if not secret:
        return True
    given = message.get('message_signature', '')
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(compute_signature(message, secret).encode(),
                               given.encode('utf-8', 'replace'))


def _metadata_block(metadata, blocks):
    """The signature text of ``metadata`` (UTF-8), flattened once per
    batch for the samples that share it.

    A poll's samples of one resource carry copies of one metadata dict
    (``Sample`` copies the mapping, not its values), so the values are the
    same objects: keyed by the keys and the identities of the values, a
    block is reused, never confused -- every sample of the batch, and so
    every value keyed here, is alive until the batch is signed.
    """
    try:
        key = (tuple(metadata), tuple(map(id, metadata.values())))
    except TypeError:
        key = None
    block = blocks.get(key) if key is not None else None
    if block is None:
        parts = []
        _flatten_into(parts, 'resource_metadata:', metadata)
        block = ''.join(parts).encode('utf-8')
        if key is not None:
            blocks[key] = block
    return block


def _sample_signature(msg, metadata, mac, blocks=None):
    # The sample message's shape is fixed, so the sorted walk is spelled out
    # here instead of sorting fourteen keys again for every sample.
    with_pub = 'publisher_id' in msg
    head = _HEAD[with_pub] % tuple(map(msg.__getitem__,
                                       _HEAD_KEYS[with_pub]))
    tail = _TAIL % (msg['source'], msg['timestamp'], msg['user_id'],
                    msg['user_name'])
    # Fed to the hash in three parts: the block (most of the bytes) is
    # neither copied into one string nor encoded again per sample.
    return mac.hexdigest(head.encode('utf-8'), _metadata_block(
        metadata, {} if blocks is None else blocks), tail.encode('utf-8'))


def samples_to_wire(samples, secret=None, publisher_id=None):
    """Ceilometer's metering messages for a batch of samples.

    The work that can be shared is done once per batch: the secret is
    encoded once and each distinct timestamp is formatted once (samples of
    one polling run share theirs).

    :returns: a list of dictionaries with keys in Ceilometer's order.
    """
    if isinstance(secret, str):
        secret = secret.encode('utf-8')
    mac = _Hmac(secret) if secret else None
    stamps = {}
    blocks = {}         # metadata signature texts of this batch
    out = []
    # Unpacked as a tuple: a third faster than the named fields, and this
    # runs once per sample for every socket, file and AMQP publisher.
    for (name, type_, unit, volume, user_id, project_id, resource_id, ts,
         metadata, source, id_, monotonic, user_name,
         project_name) in samples:
        stamp = stamps.get(ts)
        if stamp is None:
            stamp = stamps[ts] = ts.isoformat()
        msg = {
            'source': source,
            'counter_name': name,
            'counter_type': type_,
            'counter_unit': unit,
            'counter_volume': volume,
            'user_id': user_id,
            'user_name': user_name,
            'project_id': project_id,
            'project_name': project_name,
            'resource_id': resource_id,
            'timestamp': stamp,
            'resource_metadata': metadata,
            'message_id': id_,
            'monotonic_time': monotonic,
        }
        if publisher_id is not None:
            msg['publisher_id'] = publisher_id
        msg['message_signature'] = (
            _sample_signature(msg, metadata, mac, blocks) if mac else '')
        out.append(msg)
    return out


#: An escaped quote in JSON text: a ``"`` inside a string, or a backslash
#: ending one.
_ESCAPED_QUOTE = b'\\"'


def _py_encode_json(samples, secret=None, publisher_id=None,
                    embedded=False, flag=None):
    items = [jsoncodec.dumps(m)
             for m in samples_to_wire(samples, secret, publisher_id)]
    key, flag_metadata = flag or (None, None)
    if flag_metadata is None:
        def flag_metadata(metadata):
            return _has_non_str_value(metadata[key])
    flagged = [i for i, item in enumerate(items)
               if _ESCAPED_QUOTE in item or flag is not None
               and key in samples[i].resource_metadata
               and flag_metadata(samples[i].resource_metadata)]
    if embedded:
        items = [jsoncodec.dumps(i.decode('utf-8'))[1:-1] for i in items]
    return items, flagged


def _has_non_str_value(mapping):
    return type(mapping) is dict and any(
        type(v) is not str for v in mapping.values())


def encode_json(samples, secret=None, publisher_id=None, embedded=False,
                flag=None):
    """Each sample's metering message as JSON, and which to look at again.

    :param flag: optional ``(key, f)``: the samples whose metadata holds
        ``key`` and ``f(resource_metadata)`` is true for are flagged too.
        ``f`` is called once for the samples that share their metadata,
        and never for metadata without ``key``. ``f`` ``None``: flagged
        when ``resource_metadata[key]`` is a dict with a value that is not
        a str (checked in C by the compiled path, without a call).
    :returns: ``(messages, flagged)``: a list of ``bytes``, each
        ``jsoncodec.dumps`` of what :func:`samples_to_wire` gives for that
        sample -- or, ``embedded``, the inside of that text as a JSON string
        (what a double-encoded envelope carries) -- and the indexes of the
        messages with an escaped quote (a string holding ``"`` or ending in
        a backslash, which STF's Smart Gateway cannot parse) or flagged
        metadata.

    Publishers that send JSON skip the dictionaries this way: the compiled
    ``_cwire`` writes the JSON and signs it directly, taking each
    resource's metadata JSON and signature text once for the samples that
    share it. Without it, or for anything it hands back (an error), the
    pure-Python path runs -- same bytes, same exceptions (tested).
    """
    if _cwire is not None:
        key = secret.encode('utf-8') if isinstance(secret, str) else secret
        mac = _Hmac(key) if key else None
        try:
            return _cwire.encode_samples(
                samples, mac and mac.inner, mac and mac.outer, publisher_id,
                jsoncodec.dumps, _list_text, flag, embedded)
        except Exception as exc:
            # The Python path is the reference: when it raises too, the
            # input was bad; when it succeeds, the compiled path erred.
            done = _py_encode_json(samples, secret, publisher_id, embedded,
                                   flag)
            _FALLBACKS.add(exc)
            return done
    return _py_encode_json(samples, secret, publisher_id, embedded, flag)


def samples_to_json(samples, secret=None, publisher_id=None):
    """Each sample's metering message as JSON ``bytes``, in a list
    (:func:`encode_json`'s messages).
    """
    return encode_json(samples, secret, publisher_id)[0]


def sample_to_wire(sample, secret=None, publisher_id=None):
    """The metering message of one sample (see :func:`samples_to_wire`)."""
    return samples_to_wire((sample,), secret, publisher_id)[0]


_REQUIRED_SAMPLE_KEYS = ('counter_name', 'counter_type', 'counter_unit',
                         'counter_volume', 'resource_id')


def sample_from_wire(msg):
    """A :class:`Sample` from a metering message.

    A numeric string volume is converted, as Ceilometer's pipeline does.

    :raises InvalidSample: for a missing key or a bad value, naming it.
    """
    if not isinstance(msg, dict):
        raise InvalidSample('a metering message must be a JSON object, not '
                            '%s' % type(msg).__name__)
    get = msg.get
    try:
        name = msg['counter_name']
        volume = msg['counter_volume']
        kind, unit, rid = (msg['counter_type'], msg['counter_unit'],
                           msg['resource_id'])
    except KeyError:
        missing = [k for k in _REQUIRED_SAMPLE_KEYS if k not in msg]
        raise InvalidSample('metering message lacks %s'
                            % ', '.join(missing)) from None
    if volume.__class__ is str:
        try:
            volume = float(volume)
        except ValueError:
            raise InvalidSample('metering message %r: counter_volume %r is '
                                'not a number' % (name, volume)) from None
    return Sample(name, kind, unit, volume, get('user_id'),
                  get('project_id'), rid, get('timestamp'),
                  get('resource_metadata'), get('source') or 'openstack',
                  get('message_id'), get('monotonic_time'), get('user_name'),
                  get('project_name'))


def _trait_value_to_wire(trait):
    if trait.dtype == TraitType.DATETIME and trait.value is not None:
        return trait.value.isoformat()
    return trait.value


def event_to_wire(event, secret=None):
    """Ceilometer's serialised event, with its signature."""
    msg = {
        'message_id': event.message_id,
        'event_type': event.event_type,
        'generated': event.generated.isoformat(),
        'traits': [[t.name, t.dtype, _trait_value_to_wire(t)]
                   for t in event.traits],
        'raw': event.raw,
    }
    msg['message_signature'] = compute_signature(msg, secret)
    return msg


def events_to_wire(events, secret=None):
    """:func:`event_to_wire` over a batch."""
    return [event_to_wire(e, secret) for e in events]


def event_from_wire(msg):
    """An :class:`Event` from Ceilometer's serialised event.

    :raises InvalidSample: for a missing key or a bad trait.
    """
    if not isinstance(msg, dict):
        raise InvalidSample('an event message must be a JSON object, not %s'
                            % type(msg).__name__)
    if 'event_type' not in msg:
        raise InvalidSample('event message lacks event_type')
    traits = msg.get('traits') or ()
    if not isinstance(traits, (list, tuple)):
        raise InvalidSample('event %r: traits must be a list'
                            % msg['event_type'])
    return Event(message_id=msg.get('message_id'),
                 event_type=msg['event_type'],
                 generated=msg.get('generated'),
                 traits=[t if isinstance(t, Trait) else tuple(t)
                         if isinstance(t, (list, tuple)) else t
                         for t in traits],
                 raw=msg.get('raw') or {})


def from_plain_dict(data):
    """A :class:`Sample` from our own field names (``name``, ``type``, ...).

    Used where people write samples by hand (the CLI's ``sample publish``);
    a dictionary in the wire form (``counter_name`` ...) is accepted too.
    """
    if not isinstance(data, dict):
        raise InvalidSample('a sample must be a JSON object, not %s'
                            % type(data).__name__)
    if 'counter_name' in data:
        return sample_from_wire(data)
    unknown = set(data) - set(Sample._fields)
    if unknown:
        raise InvalidSample('unknown sample field(s): %s; expected some of '
                            '%s' % (', '.join(sorted(unknown)),
                                    ', '.join(Sample._fields)))
    try:
        return Sample(**data)
    except TypeError as exc:
        raise InvalidSample('sample lacks a required field: %s' % exc) \
            from None


__all__ = ['compute_signature', 'verify_signature', 'samples_to_wire',
           'samples_to_json', 'encode_json',
           'sample_to_wire', 'sample_from_wire', 'event_to_wire',
           'events_to_wire', 'event_from_wire', 'from_plain_dict']
