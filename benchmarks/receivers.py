"""Receiving what Ceilometer's agents send: samples per second and CPU
per sample of ours beside Ceilometer 27's notification agent, on the same
samples.

* ``telemetry.polling`` (the polling IPC): our converter on the
  notification bodies oslo.messaging hands a listener, beside Ceilometer
  27's ``TelemetryIpc.build_sample`` on the same bodies -- the part of the
  path each owns (the bus decoding before it is oslo.messaging's in both).
  Ours also with signatures verified (Ceilometer does not verify).
* the whole IPC path: notification bodies to a ``test://`` publisher
  through each side's endpoint and pipeline (one pipeline.yaml for both):
  Ceilometer 27's ``TelemetryIpc`` into its ``SamplePipelineManager``,
  ours through the IPC conversion, our ``PipelineManager`` and the
  delivery core (its thread's CPU counted).
* ``tcp://`` and ``udp://``: our receivers in this process into the same
  pipeline, fed over loopback by a sender process with pre-encoded frames /
  datagrams, so the sender's CPU is not ours. Ceilometer 27 has no receiver
  of its socket publishers any more (its collector is gone); the peer
  printed is its whole IPC path.

Target: ours at least 5 times Ceilometer's rate, in CPU per sample.
Needs, for the peer, ``pip install --no-deps ceilometer==27.0.0`` (``tox
-e bench``). Run: ``python benchmarks/receivers.py``.
"""

import argparse
import datetime
import gc
import multiprocessing
import resource
import socket
import struct
import tempfile
import threading
import time

import msgpack
from oslo_config import cfg

UTC = datetime.timezone.utc


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def wire_samples(n, secret):
    from telemetry_lib.formats import ceilometer
    from telemetry_lib import Sample
    now = datetime.datetime.now(UTC)
    return ceilometer.samples_to_wire([Sample(
        'cpu', 'cumulative', 'ns', i * 1000, resource_id='instance-%d'
        % (i % 30), user_id='u', project_id='p',
        timestamp=now - datetime.timedelta(milliseconds=i),
        resource_metadata={'host': 'compute-1', 'flavor': {'vcpus': 2},
                           'display_name': 'vm-%d' % (i % 30),
                           'instance_type': 'm1.small'})
        for i in range(n)], secret)


def bodies(messages, per=100):
    return [{'event_type': 'telemetry.polling',
             'publisher_id': 'ceilometer.polling', 'ctxt': {},
             'payload': {'samples': messages[i:i + per]},
             'metadata': {'message_id': 'm%d' % i,
                          'timestamp': '2026-12-05 10:00:00.000000'}}
            for i in range(0, len(messages), per)]


def measure(label, n, func):
    gc.collect()
    c0, t0 = cpu(), time.perf_counter()
    func()
    c1, t1 = cpu(), time.perf_counter()
    us = (c1 - c0) / n * 1e6
    print('%-52s %9.0f samples/s %7.2f CPU us/sample'
          % (label, n / (t1 - t0), us))
    return us


def ipc(n, secret):
    from telemetry_lib.notification import converter
    messages = wire_samples(n, secret)
    notes = bodies(messages)
    conv_plain = converter.Converter([], [], secret=None)
    conv_signed = converter.Converter([], [], secret=secret)
    out = {}

    def ours(conv):
        def run():
            got = 0
            for b in notes:
                got += len(conv.convert(b, 'sample').samples)
            assert got == n, got
        return run
    out['ours'] = measure('ipc: ours (telemetry.polling -> samples)', n,
                          ours(conv_plain))
    out['ours_signed'] = measure('ipc: ours, signatures verified', n,
                                 ours(conv_signed))
    try:
        from ceilometer.telemetry import notifications as c_notes
    except ImportError:
        print('ipc: Ceilometer 27 not installed (pip install --no-deps '
              'ceilometer==27.0.0): no peer')
        return out

    def theirs():
        got = 0
        for b in notes:
            got += sum(1 for _ in c_notes.TelemetryIpc.build_sample(None, b))
        assert got == n
    out['ceilometer'] = measure('ipc: Ceilometer 27 TelemetryIpc.build_sample',
                                n, theirs)
    return out


PIPELINE = """---
sources:
  - name: everything
    meters: ["*"]
    sinks: [bench]
sinks:
  - name: bench
    publishers: ["test://?max_queue_samples=10000000&max_latency=0"]
"""


def ipc_whole_path(n, secret, tmp):
    """Notification bodies to a ``test://`` publisher through each side's
    own endpoint and pipeline (the same pipeline.yaml): Ceilometer 27's
    ``TelemetryIpc`` endpoint into its ``SamplePipelineManager``, beside
    our IPC conversion into our ``PipelineManager`` and delivery core
    (whose publishing thread's CPU is counted too).
    """
    import os
    from telemetry_lib.notification import ipc as ipc_mod
    from telemetry_lib import opts
    from telemetry_lib.pipeline import PipelineManager
    path = os.path.join(tmp, 'pipeline.yaml')
    with open(path, 'w') as f:
        f.write(PIPELINE)
    notes = bodies(wire_samples(n, secret))
    out = {}

    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    for label, key, sec in (('ours', 'ours', None),
                            ('ours, signatures verified', 'ours_signed',
                             secret)):
        mgr = PipelineManager.from_file(conf, path).start()

        def run():
            for b in notes:
                samples, _ = ipc_mod.samples_of(b, sec)
                mgr.publish(samples)
            assert mgr.flush(120)
        out[key] = measure('ipc whole path: %s' % label, n, run)
        (d,) = mgr.deliveries.values()
        assert d.stats().published == n, d.stats()
        mgr.close(10)
    try:
        from ceilometer.pipeline import base as c_base
        from ceilometer.pipeline import sample as c_sample
        from ceilometer.telemetry import notifications as c_notes
    except ImportError:
        return out
    cconf = cfg.ConfigOpts()
    cconf.register_opts(c_base.OPTS)
    cconf([], project='ceilometer', default_config_files=[])
    cconf.set_override('pipeline_cfg_file', path)
    pm = c_sample.SamplePipelineManager(cconf)
    endpoint = c_notes.TelemetryIpc(cconf, pm.publisher())
    (pipe,) = pm.pipelines
    (pub,) = pipe.sink.publishers

    def theirs():
        endpoint.sample(notes)
        assert len(pub.samples) == n
    out['ceilometer'] = measure(
        'ipc whole path: Ceilometer 27 TelemetryIpc + pipeline', n, theirs)
    return out


def sender(kind, port, payloads, done):
    if kind == 'tcp':
        with socket.create_connection(('127.0.0.1', port)) as s:
            for chunk in payloads:
                s.sendall(chunk)
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i, d in enumerate(payloads):
            s.sendto(d, ('127.0.0.1', port))
            if i % 100 == 99:
                # Paced so that the receiver's buffer is not overrun: a
                # datagram the kernel drops is not the receiver's cost.
                deadline = time.monotonic() + 5
                while done.value < i - 300 and time.monotonic() < deadline:
                    time.sleep(0.0002)
        s.close()


def sockets_bench(kind, n, secret, pipeline_file):
    from telemetry_lib.collector import sockets
    from telemetry_lib import opts
    from telemetry_lib.pipeline import PipelineManager
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib')
    conf.set_override('%s_listen' % kind, '127.0.0.1:0', group='collector')
    if secret:
        conf.set_override('telemetry_secret', secret, group='publisher')
    encoded = [msgpack.packb(m, use_bin_type=True)
               for m in wire_samples(n, secret)]
    got = multiprocessing.Value('l', 0)
    finished = threading.Event()
    mgr = PipelineManager.from_file(conf, pipeline_file).start()

    def deliver(samples, events):
        ok, queued = mgr.offer(samples)
        if ok:
            with got.get_lock():
                got.value += len(samples)
            if got.value >= n:
                finished.set()
        return ok, queued
    r = (sockets.TCPReceiver if kind == 'tcp' else sockets.UDPReceiver)(
        conf, deliver)
    r.start()
    if kind == 'tcp':
        frames = b''.join(struct.pack('<Q', len(e)) + e for e in encoded)
        payloads = [frames[i:i + 65536] for i in range(0, len(frames),
                                                       65536)]
    else:
        payloads = encoded
    proc = multiprocessing.Process(target=sender, args=(
        kind, r.address[1], payloads, got))

    def run():
        proc.start()
        finished.wait(300)
        proc.join(60)
        mgr.flush(120)
    us = measure('%s: ours, receiver -> pipeline -> test://%s' % (
        kind, ', signed' if secret else ''), n, run)
    r.close(5)
    mgr.close(10)
    counts = r.snapshot()
    if counts.get('samples', 0) < n:
        print('  (%s: %d of %d taken: %s)' % (kind, counts.get('samples', 0),
                                              n, counts))
    return us


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=100000)
    args = parser.parse_args()
    secret = 'bench-secret'
    ipc(args.samples, secret)
    with tempfile.TemporaryDirectory() as tmp:
        whole = ipc_whole_path(args.samples, secret, tmp)
        pipeline_file = tmp + '/pipeline.yaml'
        tcp = sockets_bench('tcp', args.samples, None, pipeline_file)
        tcp_signed = sockets_bench('tcp', args.samples, secret,
                                   pipeline_file)
        udp = sockets_bench('udp', min(args.samples, 50000), None,
                            pipeline_file)
    peer = whole.get('ceilometer')
    if not peer:
        return
    print('\nwhole paths, CPU per sample, beside Ceilometer 27 TelemetryIpc '
          '+ its pipeline (%.2f us; without the bus decoding before it, '
          'which ours includes for tcp and udp):' % peer)
    for label, us in (('ipc', whole['ours']),
                      ('ipc, signatures verified', whole['ours_signed']),
                      ('tcp receiver', tcp),
                      ('tcp receiver, signed', tcp_signed),
                      ('udp receiver', udp)):
        print('  %-26s %7.2f us  %5.2fx%s' % (
            label, us, peer / us, '' if peer / us >= 5 else
            '  (target 5x: not met)'))


if __name__ == '__main__':
    main()
