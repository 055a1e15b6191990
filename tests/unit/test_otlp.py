"""OTLP/HTTP metrics: what arrives at a receiver in this process, decoded
with the official ``opentelemetry-proto`` messages (gzip, protobuf and
OTLP/JSON), and the publisher's outcomes (retries, partial success).
"""

import datetime
import gzip
import json

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms
from opentelemetry.proto.metrics.v1 import metrics_pb2

from telemetry_lib import delivery
from telemetry_lib import Sample
from tests import base
from tests.post_receiver import PostReceiver

UTC = datetime.timezone.utc
T0 = datetime.datetime(2026, 12, 5, 12, 0, 0, 123456, tzinfo=UTC)
T0_NS = 1796472000123456000


def samples():
    md = {'host': 'compute-0', 'display_name': 'web-1',
          'availability_zone': 'az1', 'flavor': {'name': 'm1.small'}}
    return [
        Sample('cpu', 'cumulative', 'ns', 5e9, resource_id='vm1',
               project_id='p1', project_name='demo', user_id='u1',
               user_name='alice', timestamp=T0, resource_metadata=md),
        Sample('memory.usage', 'gauge', 'MB', 512.0, resource_id='vm1',
               project_id='p1', project_name='demo', user_id='u1',
               user_name='alice', timestamp=T0, resource_metadata=md),
        Sample('network.incoming.bytes.delta', 'delta', 'B', 42.0,
               resource_id='vm1-tap0', project_id='p1', timestamp=T0),
    ]


class Receiver(PostReceiver):
    """Decodes what arrives as a collector does; answers as told."""

    def __init__(self):
        self.requests = []          # (headers, ExportMetricsServiceRequest)
        self.status, self.reply, self.retry_after = 200, b'', None
        super().__init__(self.respond)

    def respond(self, headers, body):
        if headers.get('content-encoding') == 'gzip':
            body = gzip.decompress(body)
        request = ms.ExportMetricsServiceRequest()
        if headers['content-type'] == 'application/json':
            json_format.Parse(body, request)
        else:
            request.ParseFromString(body)
        self.requests.append((headers, request))
        extra = {'Content-Type': headers['content-type']}
        if self.retry_after is not None:
            extra['Retry-After'] = self.retry_after
        return self.status, extra, self.reply


class TestOTLP(base.TestCase):

    def setUp(self):
        super().setUp()
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)

    def deliver(self, query=''):
        d = delivery.build(self.conf, 'otlp+http://127.0.0.1:%d/v1/metrics'
                           '?max_latency=0&retry_initial_delay=0.01&'
                           'region=RegionOne%s' % (self.receiver.port, query))
        d.start()
        self.addCleanup(d.close, 5)
        return d

    def metrics(self):
        """``{metric name: (Metric, resource attributes)}``."""
        out = {}
        for _, request in self.receiver.requests:
            for rm in request.resource_metrics:
                attrs = {a.key: a.value.string_value
                         for a in rm.resource.attributes}
                for sm in rm.scope_metrics:
                    assert sm.scope.name == 'telemetry_lib'
                    for m in sm.metrics:
                        out[m.name] = (m, attrs)
        return out

    def check_mapping(self):
        got = self.metrics()
        cpu, attrs = got['cpu']
        assert cpu.unit == 'ns' and cpu.WhichOneof('data') == 'sum'
        assert cpu.sum.aggregation_temporality == \
            metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        assert cpu.sum.is_monotonic
        (point,) = cpu.sum.data_points
        assert point.as_double == 5e9 and point.time_unix_nano == T0_NS
        assert attrs == {
            'service.name': 'telemetry_lib', 'host.name': 'compute-0',
            'cloud.provider': 'openstack', 'cloud.region': 'RegionOne',
            'cloud.availability_zone': 'az1',
            'openstack.resource.id': 'vm1', 'openstack.project.id': 'p1',
            'openstack.project.name': 'demo', 'openstack.user.id': 'u1',
            'openstack.user.name': 'alice',
            'openstack.instance.name': 'web-1',
            'openstack.flavor.name': 'm1.small'}
        memory, mem_attrs = got['memory.usage']
        assert memory.WhichOneof('data') == 'gauge'
        assert memory.gauge.data_points[0].as_double == 512.0
        assert mem_attrs == attrs       # one resource, one ResourceMetrics
        delta, delta_attrs = got['network.incoming.bytes.delta']
        assert delta.sum.aggregation_temporality == \
            metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        assert not delta.sum.is_monotonic
        assert delta_attrs['openstack.resource.id'] == 'vm1-tap0'

    def test_protobuf_gzip_mapping(self):
        d = self.deliver()
        d.put(samples())
        assert d.flush(10)
        (headers, request), = self.receiver.requests
        assert headers['content-type'] == 'application/x-protobuf'
        assert headers['content-encoding'] == 'gzip'
        assert len(request.resource_metrics) == 2
        self.check_mapping()
        st = d.stats()
        assert st.published == 3 and st.balanced

    def test_json_without_compression(self):
        d = self.deliver('&encoding=json&compression=none')
        d.put(samples())
        assert d.flush(10)
        (headers, _), = self.receiver.requests
        assert headers['content-type'] == 'application/json'
        assert 'content-encoding' not in headers
        self.check_mapping()

    def test_retry_rules_and_partial_success(self):
        d = self.deliver('&max_retries=-1')
        self.receiver.status, self.receiver.retry_after = 503, '0'
        d.put(samples()[:1])
        assert base.wait_until(lambda: d.stats().errors >= 2, 10)
        self.receiver.status = 200
        response = ms.ExportMetricsServiceResponse()
        response.partial_success.rejected_data_points = 1
        response.partial_success.error_message = 'bad point'
        self.receiver.reply = response.SerializeToString()
        assert d.flush(10)
        assert d.publisher.adjustments() == {'otlp_rejected': 1}
        self.receiver.reply = b''
        self.receiver.status = 400
        d.put(samples())
        assert d.flush(10)
        st = d.stats()
        assert st.published == 1 and st.dropped == {'permanent': 3}
        assert st.balanced

    def test_json_partial_success(self):
        d = self.deliver('&encoding=json')
        self.receiver.reply = json.dumps({'partialSuccess': {
            'rejectedDataPoints': '2', 'errorMessage': 'x'}}).encode()
        d.put(samples())
        assert d.flush(10)
        assert d.publisher.adjustments() == {'otlp_rejected': 2}
