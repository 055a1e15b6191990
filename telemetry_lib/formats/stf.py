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
"""What Red Hat's Service Telemetry Framework consumes: pure functions.

Ceilometer messages in the oslo.messaging 2.0 envelope (the body the old
AMQP 1.0 driver sent to a Qpid Dispatch Router); collectd value lists are
in :mod:`telemetry_lib.formats.collectd`.

The Smart Gateway is stricter than the format, so what it would drop is
never produced: each message is kept under ``max_bytes`` by splitting
batches; strings with a ``"`` (made ``'``) or a trailing ``\\`` (removed)
are made safe; ``user_metadata`` values are sent as strings; float event
traits are sent as text and null ones are omitted. Every such change is
counted in the returned ``Counter`` so the publisher can report it.
"""

import bisect
import collections
import datetime
import itertools
import operator
import typing

from telemetry_lib.formats import ceilometer
from telemetry_lib import jsoncodec
from telemetry_lib.sample import new_message_id
from telemetry_lib.sample import TraitType
from telemetry_lib.timeutils import UTC


#: Below the Smart Gateway's 16384-byte ring buffer, with room for AMQP
#: framing and properties.
DEFAULT_MAX_BYTES = 16000

_OUTER_HEAD = b'{"request":{"oslo.version":"2.0","oslo.message":'
_OUTER_TAIL = b'},"context":{}}'

#: Adjustment reasons.
QUOTE = 'quote_replaced'
BACKSLASH = 'trailing_backslash_removed'
USER_METADATA = 'user_metadata_stringified'
FLOAT_TRAIT = 'float_trait_as_text'
NULL_TRAIT = 'null_trait_omitted'


class Chunk(typing.NamedTuple):
    """One message: its body and the batch indexes it carries."""

    body: bytes
    indexes: typing.List[int]


class Encoded(typing.NamedTuple):
    chunks: typing.List[Chunk]
    #: indexes too large to fit in one message even alone.
    oversize: typing.List[int]
    #: what had to be changed, by reason.
    adjustments: collections.Counter


def envelope_address(topic):
    """``anycast/ceilometer/<topic>.sample``, as STF's routers expect."""
    return 'anycast/ceilometer/%s.sample' % topic


def oslo_timestamp(dt):
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, no zone (oslo's format)."""
    return dt.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')


# -- making strings safe --------------------------------------------------

def _safe_str(text, counts):
    if '"' in text:
        text = text.replace('"', "'")
        counts[QUOTE] += 1
    if text.endswith('\\'):
        text = text.rstrip('\\')
        counts[BACKSLASH] += 1
    return text


def _safe(value, counts):
    if isinstance(value, str):
        return _safe_str(value, counts)
    if isinstance(value, dict):
        return {_safe(k, counts): _safe(v, counts) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v, counts) for v in value]
    return value


def _fix_sample(msg, secret, counts):
    msg = _safe(msg, counts)
    md = msg.get('resource_metadata')
    user_md = md.get('user_metadata') if isinstance(md, dict) else None
    if isinstance(user_md, dict):
        for key, value in list(user_md.items()):
            if not isinstance(value, str):
                user_md[key] = _safe_str(
                    value if isinstance(value, str) else
                    jsoncodec.dumps(value).decode(), counts)
                counts[USER_METADATA] += 1
    # The signature covers what is sent, so it is computed again.
    msg['message_signature'] = ceilometer.compute_signature(msg, secret)
    return msg


def stringify_user_metadata(msg, secret, counts):
    """Make ``resource_metadata.user_metadata`` values strings in a metering
    message, re-signed -- what sg-core's msgpack decoder (``user_metadata``
    typed ``map[string]string``) would otherwise drop the sample for,
    without a word. Counted under :data:`USER_METADATA`.
    """
    md = msg.get('resource_metadata')
    user_md = md.get('user_metadata') if isinstance(md, dict) else None
    if not isinstance(user_md, dict) or all(
            isinstance(v, str) for v in user_md.values()):
        return msg
    msg = dict(msg, resource_metadata=dict(md, user_metadata={
        k: v if isinstance(v, str) else jsoncodec.dumps(v).decode()
        for k, v in user_md.items()}))
    counts[USER_METADATA] += 1
    # The signature covers what is sent, so it is computed again.
    msg['message_signature'] = ceilometer.compute_signature(msg, secret)
    return msg


# -- Ceilometer envelopes ---------------------------------------------------

def _embed(raw):
    """JSON text as the inside of a JSON string (escaped, unquoted)."""
    return jsoncodec.dumps(raw.decode('utf-8'))[1:-1]


#: An escaped quote inside a string of the message, seen in its embedded
#: form: a ``"`` in a string, or a trailing ``\\`` before the closing one.
_UNSAFE = b'\\\\\\"'


def _unembed(item):
    """The message an embedded item carries."""
    return jsoncodec.loads(jsoncodec.loads(b'"' + item + b'"'))


def _pack(items, event_type, publisher_id, max_bytes, now):
    """Greedy packing of payload items into envelopes of at most
    ``max_bytes``, in order, with nothing encoded twice: each item is its
    message's JSON already embedded as a string (:func:`_embed`), so a
    chunk's size is the sum of its items' lengths and commas, and a chunk
    is joined once. Items are made safe before (see :func:`_fix_sample`).
    """
    pub = jsoncodec.dumps(publisher_id)
    tail = _embed(b',"timestamp":"' + oslo_timestamp(now).encode() + b'"}')
    # The head around each message's own id, which has a fixed length.
    before_id = _OUTER_HEAD + b'"' + _embed(b'{"message_id":"')
    after_id = _embed(b''.join((
        b'","publisher_id":', pub, b',"event_type":"', event_type.encode(),
        b'","priority":"SAMPLE","payload":[')))
    after_items = b']' + tail + b'"' + _OUTER_TAIL
    budget = max_bytes - (len(before_id) + len(new_message_id())
                          + len(after_id) + len(after_items))
    chunks, oversize = [], []
    parts, first, size = [], 0, -1     # size: the items and their commas

    def close():
        # One join, one copy of the chunk: the items with commas between.
        pieces = [b','] * (2 * len(parts) + 3)
        pieces[0:3] = before_id, new_message_id().encode(), after_id
        pieces[3::2] = parts
        pieces[-1] = after_items
        chunks.append(Chunk(b''.join(pieces),
                            list(range(first, first + len(parts)))))

    lengths = list(map(len, items))
    if max(lengths, default=0) <= budget:
        # Nothing oversize (the usual case): the chunks' ends found by
        # bisection over the running sizes, without a Python step per item.
        ends = list(itertools.accumulate(map(operator.add, lengths,
                                             itertools.repeat(1))))
        start, base = 0, 0
        while start < len(items):
            end = bisect.bisect_right(ends, base + budget + 1, start)
            parts, first = items[start:end], start
            close()
            start, base = end, ends[end - 1]
        return chunks, oversize
    for i, item in enumerate(items):
        cost = len(item) + 1
        if size + cost > budget:
            if parts:
                close()
                parts = []
            if cost - 1 > budget:
                oversize.append(i)
                first, size = i + 1, -1
                continue
            first, size = i, -1
        parts.append(item)
        size += cost
    if parts:
        close()
    return chunks, oversize


def encode_samples(samples, publisher_id, secret=None,
                   max_bytes=DEFAULT_MAX_BYTES, now=None):
    """Samples as STF ``metering`` envelopes.

    :returns: :class:`Encoded`; chunk bodies are UTF-8 JSON text, to be
        sent as an AMQP string.
    """
    counts = collections.Counter()
    items, flagged = ceilometer.encode_json(
        samples, secret, embedded=True,
        flag=('user_metadata', None))
    # Rare: made safe from the message, re-signed, and encoded again.
    for i in flagged:
        items[i] = _embed(jsoncodec.dumps(_fix_sample(
            _unembed(items[i]), secret, counts)))
    chunks, oversize = _pack(items, 'metering', publisher_id, max_bytes,
                             now or datetime.datetime.now(UTC))
    return Encoded(chunks, oversize, counts)


def _event_message(event, secret, counts):
    traits = []
    for t in event.traits:
        if t.value is None:
            counts[NULL_TRAIT] += 1
            continue
        if t.dtype == TraitType.FLOAT:
            counts[FLOAT_TRAIT] += 1
            traits.append([t.name, int(TraitType.TEXT), repr(t.value)])
        elif t.dtype == TraitType.DATETIME:
            traits.append([t.name, t.dtype, t.value.isoformat()])
        else:
            traits.append([t.name, t.dtype, t.value])
    msg = {'message_id': event.message_id, 'event_type': event.event_type,
           'generated': event.generated.isoformat(), 'traits': traits,
           'raw': event.raw}
    msg['message_signature'] = ceilometer.compute_signature(msg, secret)
    return msg


def _fix_event(msg, secret, counts):
    msg = _safe(msg, counts)
    msg['message_signature'] = ceilometer.compute_signature(msg, secret)
    return msg


def encode_events(events, publisher_id, secret=None,
                  max_bytes=DEFAULT_MAX_BYTES, now=None):
    """Events as STF ``event`` envelopes (see :func:`encode_samples`)."""
    counts = collections.Counter()
    items = [_embed(jsoncodec.dumps(_event_message(e, secret, counts)))
             for e in events]
    for i, item in enumerate(items):
        if _UNSAFE in item:
            items[i] = _embed(jsoncodec.dumps(_fix_event(
                _unembed(item), secret, counts)))
    chunks, oversize = _pack(items, 'event', publisher_id, max_bytes,
                             now or datetime.datetime.now(UTC))
    return Encoded(chunks, oversize, counts)


def decode_envelope(body):
    """The inner message of an envelope (for tests and tools)."""
    outer = jsoncodec.loads(body)
    return jsoncodec.loads(outer['request']['oslo.message'])
