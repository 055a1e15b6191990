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
"""Prometheus remote write 1.0 bodies: a ``prometheus.WriteRequest``
(protobuf), compressed with snappy's block format, as the specification
(prometheus.io/docs/specs/remote_write_spec) asks.

Samples become series by the exporter's naming schemes
(:data:`telemetry_lib.formats.prometheus.SERIES_OF`: ``stf``, as sg-core
names them, ``ceilometer``, as Ceilometer's exporter does, ``openmetrics``)
-- ``__name__`` first, then the labels sorted, empty ones left out (an
empty label is no label to Prometheus, and some receivers refuse it). A
sample's timestamp (milliseconds) travels with its value; several samples
of one series in a batch go in one time series, oldest first, as the
specification requires. Metadata (type, unit, help) goes along once per
metric family.

The message classes come from ``protobuf`` (the maintained runtime), built
from a descriptor of the specification's ``types.proto`` the first time
they are needed; the compression from ``cramjam``'s snappy.
"""

import functools

import cramjam
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

from telemetry_lib.formats import prometheus as fmt

CONTENT_TYPE = 'application/x-protobuf'
ENCODING = 'snappy'
VERSION = '0.1.0'
#: The headers every remote write request carries.
HEADERS = {'Content-Type': CONTENT_TYPE, 'Content-Encoding': ENCODING,
           'X-Prometheus-Remote-Write-Version': VERSION}

#: prometheus.MetricMetadata.MetricType by the exporter's types.
_METADATA_TYPES = {'counter': 1, 'gauge': 2, 'untyped': 0}

_FIELD = descriptor_pb2.FieldDescriptorProto


@functools.lru_cache(maxsize=None)
def messages():
    """``(WriteRequest, TimeSeries)`` classes, made once."""
    proto = descriptor_pb2.FileDescriptorProto(
        name='telemetry_lib/remote_write.proto', package='prometheus',
        syntax='proto3')

    def message(name, *fields):
        m = proto.message_type.add(name=name)
        for number, (fname, ftype, label, type_name) in enumerate(fields):
            f = m.field.add(name=fname, number=number + 1, type=ftype,
                            label=label)
            if type_name:
                f.type_name = type_name
        return m
    opt, rep = _FIELD.LABEL_OPTIONAL, _FIELD.LABEL_REPEATED
    message('Label', ('name', _FIELD.TYPE_STRING, opt, None),
            ('value', _FIELD.TYPE_STRING, opt, None))
    message('Sample', ('value', _FIELD.TYPE_DOUBLE, opt, None),
            ('timestamp', _FIELD.TYPE_INT64, opt, None))
    message('TimeSeries',
            ('labels', _FIELD.TYPE_MESSAGE, rep, '.prometheus.Label'),
            ('samples', _FIELD.TYPE_MESSAGE, rep, '.prometheus.Sample'))
    meta = proto.message_type.add(name='MetricMetadata')
    for number, fname, ftype in ((1, 'type', _FIELD.TYPE_INT32),
                                 (2, 'metric_family_name',
                                  _FIELD.TYPE_STRING),
                                 (4, 'help', _FIELD.TYPE_STRING),
                                 (5, 'unit', _FIELD.TYPE_STRING)):
        meta.field.add(name=fname, number=number, type=ftype,
                       label=_FIELD.LABEL_OPTIONAL)
    request = proto.message_type.add(name='WriteRequest')
    request.field.add(name='timeseries', number=1, label=rep,
                      type=_FIELD.TYPE_MESSAGE,
                      type_name='.prometheus.TimeSeries')
    request.field.add(name='metadata', number=3, label=rep,
                      type=_FIELD.TYPE_MESSAGE,
                      type_name='.prometheus.MetricMetadata')
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return tuple(message_factory.GetMessageClass(
        pool.FindMessageTypeByName('prometheus.%s' % name))
        for name in ('WriteRequest', 'TimeSeries'))


def series_key(sample, scheme, publisher_id):
    """``(sorted label pairs, type)`` of a sample's series: the pairs begin
    with ``__name__`` and hold no empty value.
    """
    name, type_, labels = fmt.SERIES_OF[scheme](sample, publisher_id)
    pairs = sorted((fmt.label_name(k), v) for k, v in labels.items() if v)
    return (('__name__', name),) + tuple(pairs), type_


def write_request(samples, scheme='stf', publisher_id='telemetry',
                  metadata=True):
    """The uncompressed WriteRequest bytes of ``samples``.

    :raises ValueError: for a sample no series can hold (its timestamp or
        value cannot be sent): the delivery core then finds it alone.
    """
    request_cls, _ = messages()
    request = request_cls()
    by_series = {}
    families = {}
    for s in samples:
        key, type_ = series_key(s, scheme, publisher_id)
        by_series.setdefault(key, []).append(
            (int(s.timestamp.timestamp() * 1000), float(s.volume)))
        if metadata:
            families.setdefault(key[0][1], (type_, s.unit))
    for key, points in by_series.items():
        ts = request.timeseries.add()
        for name, value in key:
            ts.labels.add(name=name, value=value)
        points.sort()
        for timestamp, value in points:
            ts.samples.add(value=value, timestamp=timestamp)
    for family, (type_, unit) in families.items():
        request.metadata.add(type=_METADATA_TYPES.get(type_, 0),
                             metric_family_name=family, unit=unit or '',
                             help='Ceilometer meter, unit %s' % (unit or '-'))
    return request.SerializeToString()


def compress(body):
    """Snappy's block format, which remote write uses (not the framed)."""
    return bytes(cramjam.snappy.compress_raw(body))


def decompress(body):
    return bytes(cramjam.snappy.decompress_raw(body))


def parse(body):
    """A WriteRequest message from compressed bytes (tests, receivers).

    :raises ValueError: when they are not one.
    """
    request_cls, _ = messages()
    request = request_cls()
    try:
        request.ParseFromString(decompress(body))
    except Exception as exc:
        raise ValueError('not a snappy-compressed WriteRequest: %s'
                         % exc) from None
    return request
