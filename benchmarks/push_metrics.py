"""Samples/s and CPU us per sample: Prometheus remote write and OTLP/HTTP,
beside Ceilometer 27's OpenTelemetry publisher on the same samples.

* Ours: ``remote-write+http://`` through the delivery core (batches of
  1,000: one snappy protobuf request each), to a real Prometheus 2.42
  remote write receiver started here, and to a sink that reads each
  request and answers 204 (so only the client's cost differs); ``otlp+
  http://`` (protobuf and gzip; OTLP/JSON) to the same sink.
* Ceilometer 27: ``OpentelemetryHttpPublisher.publish_samples`` (OTLP/JSON,
  one POST a sample, as it sends them) to the same sink.

The samples: compute-like meters (cpu, memory.usage, disk and network
counters) of 200 instances with Nova's metadata, timestamps one second
apart. CPU is this process' own (the receivers run in others).

Needs Prometheus (tools/remote_write.sh) and, for the peer, Ceilometer 27
(``tox -e bench`` installs it).
Run: ``python benchmarks/push_metrics.py [--samples 20000]``.
"""

import argparse
import datetime
import http.server
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from oslo_config import cfg  # noqa: E402

from telemetry_lib import delivery  # noqa: E402
from telemetry_lib import opts  # noqa: E402
from telemetry_lib import Sample  # noqa: E402

METERS = (('cpu', 'cumulative', 'ns'), ('memory.usage', 'gauge', 'MB'),
          ('disk.device.read.bytes', 'cumulative', 'B'),
          ('network.incoming.bytes', 'cumulative', 'B'),
          ('vcpus', 'gauge', 'vcpu'))


def samples(n):
    t0 = datetime.datetime.now(datetime.timezone.utc) - \
        datetime.timedelta(seconds=n // 1000 + 60)
    out = []
    for i in range(n):
        name, type_, unit = METERS[i % len(METERS)]
        vm = 'instance-%04d' % ((i // len(METERS)) % 200)
        out.append(Sample(
            name, type_, unit, float(i), resource_id=vm, project_id='proj',
            user_id='user', timestamp=t0 + datetime.timedelta(
                seconds=i // 1000, milliseconds=i % 1000),
            resource_metadata={'host': 'compute-0', 'display_name': vm,
                               'flavor': {'id': '1', 'name': 'm1.small'},
                               'user_metadata': {'server_group': 'g1'}}))
    return out


def _sink(port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get('Content-Length', 0)))
            self.send_response(204)
            self.send_header('Content-Length', '0')
            self.end_headers()
    http.server.ThreadingHTTPServer(('127.0.0.1', port),
                                    Handler).serve_forever()


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def measure(label, n, run):
    cpu, wall = time.process_time(), time.monotonic()
    run()
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    us = 1e6 * cpu / n
    print('  %-52s %8.0f samples/s  %6.1f us CPU/sample'
          % (label, n / wall, us))
    return us


def ours(url, batch):
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib')
    sep = '&' if '?' in url else '?'
    d = delivery.build(conf, url + sep + 'max_latency=0.05&'
                       'max_batch_size=1000&max_queue_samples=1000000')
    d.start()

    def run():
        for i in range(0, len(batch), 1000):
            d.put(batch[i:i + 1000])
        assert d.flush(600), d.stats()
        st = d.stats()
        assert st.published == len(batch) and st.balanced, st
    return run, d


def ceilometer(url, batch):
    from ceilometer.publisher import opentelemetry_http
    from ceilometer import sample as ceilo_sample
    from oslo_utils import netutils
    conf = cfg.ConfigOpts()
    # The one option of Ceilometer's own its HTTP publisher reads.
    conf.register_opts([cfg.IntOpt('max_parallel_requests', default=64)])
    conf([])
    pub = opentelemetry_http.OpentelemetryHttpPublisher(
        conf, netutils.urlsplit(url))
    theirs = [ceilo_sample.Sample(
        name=s.name, type=s.type, unit=s.unit, volume=s.volume,
        user_id=s.user_id, project_id=s.project_id,
        resource_id=s.resource_id, timestamp=s.timestamp.isoformat(),
        resource_metadata=s.resource_metadata) for s in batch]

    def run():
        pub.publish_samples(theirs)
    return run


def prometheus_receiver(tmp):
    port = free_port()
    proc = subprocess.Popen(
        ['prometheus', '--config.file=' + os.path.join(tmp, 'p.yml'),
         '--storage.tsdb.path=' + os.path.join(tmp, 'data'),
         '--web.listen-address=127.0.0.1:%d' % port,
         '--web.enable-remote-write-receiver'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if requests.get('http://127.0.0.1:%d/-/ready' % port,
                            timeout=1).ok:
                return proc, port
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit('prometheus did not start')


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--samples', type=int, default=20000)
    parser.add_argument('--ceilometer-samples', type=int, default=2000,
                        help='Fewer: one POST a sample.')
    args = parser.parse_args()
    sink = free_port()
    multiprocessing.Process(target=_sink, args=(sink,), daemon=True).start()
    time.sleep(0.5)
    tmp = tempfile.mkdtemp(prefix='telemetry-rw-bench-')
    with open(os.path.join(tmp, 'p.yml'), 'w') as f:
        f.write('global: {scrape_interval: 1h}\n')
    proc, prom = prometheus_receiver(tmp)
    try:
        batch = samples(args.samples)
        print('Remote write and OTLP, %d samples (%d series):' % (
            args.samples, 200 * len(METERS)))
        run, d = ours('remote-write+http://127.0.0.1:%d/api/v1/write'
                      % prom, batch)
        mine = measure('telemetry_lib remote write -> Prometheus 2.42',
                       len(batch), run)
        d.close(10)
        run, d = ours('remote-write+http://127.0.0.1:%d/write' % sink, batch)
        measure('telemetry_lib remote write -> null sink', len(batch), run)
        d.close(10)
        run, d = ours('otlp+http://127.0.0.1:%d/v1/metrics' % sink, batch)
        otlp = measure('telemetry_lib OTLP protobuf+gzip -> null sink',
                       len(batch), run)
        d.close(10)
        run, d = ours('otlp+http://127.0.0.1:%d/v1/metrics?encoding=json&'
                      'compression=none' % sink, batch)
        measure('telemetry_lib OTLP/JSON -> null sink', len(batch), run)
        d.close(10)
        few = batch[:args.ceilometer_samples]
        try:
            run = ceilometer('http://127.0.0.1:%d/v1/metrics' % sink, few)
        except ImportError as exc:
            print('  Ceilometer 27 not installed: %s' % exc)
            return
        theirs = measure('Ceilometer 27 OpentelemetryHttpPublisher -> sink',
                         len(few), run)
        print('  -> ours %.0fx (remote write), %.0fx (OTLP) less CPU per '
              'sample (target: 10x)' % (theirs / mine, theirs / otlp))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
