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
"""OTLP metrics: samples as an ``ExportMetricsServiceRequest`` of the
official ``opentelemetry-proto`` package, in protobuf or OTLP/JSON.

==============  =====================================================
sample type     OTLP
==============  =====================================================
``gauge``       ``Gauge``
``cumulative``  ``Sum``, cumulative temporality, monotonic
``delta``       ``Sum``, delta temporality, not monotonic
==============  =====================================================

A metric is named after the meter (``cpu``, ``disk.device.read.bytes``:
OTel names keep their dots) with the sample's unit; each data point is a
double with the sample's time in nanoseconds since the epoch. Samples are
grouped by the OpenStack resource they describe, which becomes the OTLP
*resource*: ``service.name`` (``telemetry_lib``), ``host.name`` (the
compute node in the sample's metadata, else this agent's host),
``cloud.provider`` (``openstack``), ``cloud.region`` and
``cloud.availability_zone`` when known, and ``openstack.resource.id``,
``openstack.project.id``/``.name``, ``openstack.user.id``/``.name``,
``openstack.instance.name`` (the display name), ``openstack.flavor.name``.
The scope is ``telemetry_lib`` and its version.
"""

import datetime
import functools
import importlib.metadata

from google.protobuf import json_format

CONTENT_TYPES = {'protobuf': 'application/x-protobuf',
                 'json': 'application/json'}
SCOPE = 'telemetry_lib'
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_NS = datetime.timedelta(microseconds=1)


@functools.lru_cache(maxsize=None)
def _modules():
    # Imported when first needed: the generated modules register their
    # descriptors in protobuf's default pool as they load.
    from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
    from opentelemetry.proto.metrics.v1 import metrics_pb2
    return metrics_service_pb2, metrics_pb2


@functools.lru_cache(maxsize=None)
def scope_version():
    try:
        return importlib.metadata.version('telemetry_lib')
    except importlib.metadata.PackageNotFoundError:
        return ''


def nanoseconds(timestamp):
    """Nanoseconds since the epoch of an aware datetime, exactly."""
    return ((timestamp - _EPOCH) // _NS) * 1000


def resource_attributes(sample, host, region=None):
    """``{key: string value}`` of the OTLP resource of a sample."""
    md = sample.resource_metadata
    flavor = md.get('flavor')
    found = {
        'service.name': SCOPE,
        'host.name': str(md.get('host') or host or ''),
        'cloud.provider': 'openstack',
        'cloud.region': region or '',
        'cloud.availability_zone': str(md.get('availability_zone') or ''),
        'openstack.resource.id': sample.resource_id,
        'openstack.project.id': sample.project_id or '',
        'openstack.project.name': sample.project_name or '',
        'openstack.user.id': sample.user_id or '',
        'openstack.user.name': sample.user_name or '',
        'openstack.instance.name': str(md.get('display_name') or ''),
        'openstack.flavor.name': str(flavor.get('name') or '')
        if isinstance(flavor, dict) else '',
    }
    return {k: v for k, v in found.items() if v}


def export_request(samples, host='', region=None):
    """The ``ExportMetricsServiceRequest`` message of ``samples``.

    :raises ValueError: for a sample that cannot be sent (its timestamp or
        value): the delivery core then finds it alone.
    """
    service, metrics = _modules()
    request = service.ExportMetricsServiceRequest()
    by_resource = {}
    for s in samples:
        attrs = resource_attributes(s, host, region)
        key = tuple(sorted(attrs.items()))
        by_resource.setdefault(key, []).append(s)
    for key, group in by_resource.items():
        rm = request.resource_metrics.add()
        for k, v in key:
            rm.resource.attributes.add(key=k).value.string_value = v
        sm = rm.scope_metrics.add()
        sm.scope.name = SCOPE
        sm.scope.version = scope_version()
        by_metric = {}
        for s in group:
            metric = by_metric.get((s.name, s.type, s.unit))
            if metric is None:
                metric = by_metric[(s.name, s.type, s.unit)] = \
                    sm.metrics.add(name=s.name, unit=s.unit)
                if s.type != 'gauge':
                    metric.sum.aggregation_temporality = (
                        metrics.AGGREGATION_TEMPORALITY_CUMULATIVE
                        if s.type == 'cumulative'
                        else metrics.AGGREGATION_TEMPORALITY_DELTA)
                    metric.sum.is_monotonic = s.type == 'cumulative'
            data = metric.gauge if s.type == 'gauge' else metric.sum
            data.data_points.add(time_unix_nano=nanoseconds(s.timestamp),
                                 as_double=float(s.volume))
    return request


def encode(request, encoding='protobuf'):
    """The bytes of a request in ``encoding`` (``protobuf`` or ``json``:
    OTLP/JSON -- lowerCamelCase keys, enums as numbers, 64-bit integers
    as strings).
    """
    if encoding == 'json':
        return json_format.MessageToJson(
            request, use_integers_for_enums=True, indent=None).encode()
    return request.SerializeToString()


def partial_success(body, encoding='protobuf'):
    """``(rejected data points, message)`` of an export response, or
    ``(0, '')`` for an empty or unreadable one.
    """
    if not body:
        return 0, ''
    service, _ = _modules()
    response = service.ExportMetricsServiceResponse()
    try:
        if encoding == 'json':
            json_format.Parse(body, response, ignore_unknown_fields=True)
        else:
            response.ParseFromString(body)
    except Exception:           # protobuf's and json_format's errors
        return 0, ''
    return (response.partial_success.rejected_data_points,
            response.partial_success.error_message)
