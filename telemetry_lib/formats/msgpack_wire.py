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
"""Ceilometer's metering messages as msgpack: the bodies its ``tcp://``
and ``udp://`` publishers write, and sg-core's socket transport reads.

The reference is msgpack's ``Packer(use_bin_type=True)`` over what
:func:`~telemetry_lib.formats.ceilometer.samples_to_wire` gives (and, for
sg-core, :func:`~telemetry_lib.formats.stf.stringify_user_metadata`); the
compiled ``_cwire.encode_msgpack`` writes the same bytes without a dict per
sample, and hands back what it cannot do, as the JSON path does.
"""

import collections
import struct

import msgpack

from telemetry_lib.formats import ceilometer
from telemetry_lib.formats import stf

_cwire = ceilometer._cwire
#: A TCP frame's length: 8 bytes, little-endian (Ceilometer's, sg-core's).
FRAME_LENGTH = struct.Struct('<q')


def _py_bodies(samples, secret, publisher_id, packer, sg_compat, counts,
               framed=False):
    messages = ceilometer.samples_to_wire(samples, secret, publisher_id)
    if sg_compat:
        messages = [stf.stringify_user_metadata(m, secret, counts)
                    for m in messages]
    bodies = [packer.pack(m) for m in messages]
    if framed:
        length = FRAME_LENGTH.pack
        bodies = [length(len(b)) + b for b in bodies]
    return bodies


def encode(samples, secret=None, publisher_id=None, sg_compat=False,
           packer=None, framed=False):
    """``(bodies, counts)``: each sample's metering message as msgpack
    ``bytes`` -- ``framed``, after its length as a TCP frame has it (8
    bytes, little-endian) -- and what was changed for sg-core
    (``sg_compat``: the ``user_metadata`` values that were not strings,
    counted under :data:`~telemetry_lib.formats.stf.USER_METADATA`).
    """
    packer = packer or msgpack.Packer(use_bin_type=True)
    counts = collections.Counter()
    if _cwire is None:
        return _py_bodies(samples, secret, publisher_id, packer, sg_compat,
                          counts, framed), counts
    key = secret.encode('utf-8') if isinstance(secret, str) else secret
    mac = ceilometer._Hmac(key) if key else None
    try:
        bodies, flagged = _cwire.encode_msgpack(
            samples, mac and mac.inner, mac and mac.outer, publisher_id,
            packer.pack, ceilometer._list_text,
            'user_metadata' if sg_compat else None, framed)
    except Exception as exc:
        # The Python path is the reference: when it raises too, the input
        # was bad; when it succeeds, the compiled path erred.
        done = _py_bodies(samples, secret, publisher_id, packer, sg_compat,
                          counts, framed)
        ceilometer._FALLBACKS.add(exc)
        return done, counts
    for i in flagged:
        # Rare: made safe for sg-core, re-signed, packed again.
        bodies[i] = _py_bodies([samples[i]], secret, publisher_id, packer,
                               True, counts, framed)[0]
    return bodies, counts
