"""``tcp://``: samples per second to a local receiver that reads sg-core's
framing, ours beside Ceilometer 27's ``tcp`` publisher, same samples,
same receiver.

The receiver is a separate process that reads and counts frames (length
prefix, then skip the body), so its CPU is not ours. Ours is measured
twice: through the delivery core (queue, batches of 1,000, retries and
accounting: what an agent runs), and the publisher alone, called as
Ceilometer's ``publish_samples`` is, with the same batches. Printed:
samples/s and CPU per sample of this process. Target: at least 10 times
Ceilometer's rate.

Needs, for the peer, ``pip install --no-deps ceilometer==27.0.0`` (``tox
-e bench``). Run: ``python benchmarks/tcp_publisher.py``.
"""

import argparse
import gc
import multiprocessing
import resource
import socket
import time

from oslo_config import cfg

UTC_BASE = 1796200000


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def receiver(port_queue, counts):
    """Accepts connections; counts complete frames into ``counts``."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)
    port_queue.put(listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        buf = b''
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
            pos, n = 0, 0
            while len(buf) - pos >= 8:
                size = int.from_bytes(buf[pos:pos + 8], 'little')
                if len(buf) - pos < 8 + size:
                    break
                pos += 8 + size
                n += 1
            buf = buf[pos:]
            with counts.get_lock():
                counts.value += n
        conn.close()


def samples(n):
    from telemetry_lib import Sample
    return [Sample('cpu', 'cumulative', 'ns', 1000 + i, user_id='u',
                   project_id='p', resource_id='vm-%d' % (i % 100),
                   timestamp=UTC_BASE + i // 100,
                   resource_metadata={'display_name': 'vm-%d' % (i % 100),
                                      'host': 'compute-0',
                                      'flavor': {'name': 'm1.small'}})
            for i in range(n)]


def wait_for(counts, target, timeout=300):
    deadline = time.monotonic() + timeout
    while counts.value < target and time.monotonic() < deadline:
        time.sleep(0.001)


def ours(port, batch, counts):
    from telemetry_lib import delivery
    from telemetry_lib import opts
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([])
    d = delivery.build(conf, 'tcp://127.0.0.1:%d?max_latency=0&'
                       'overflow=block&block_timeout=300' % port).start()
    start = counts.value

    def run():
        for i in range(0, len(batch), 1000):
            d.put(batch[i:i + 1000])
        d.flush(300)
        wait_for(counts, start + len(batch))
    return run, lambda: d.close(5)


def ours_alone(port, batch, counts):
    """The publisher called as Ceilometer's is: no queue, no retries."""
    from telemetry_lib import opts
    from telemetry_lib.publisher import base
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([])
    pub = base.load_publisher(conf, 'tcp://127.0.0.1:%d' % port)
    pub.start()
    start = counts.value

    def run():
        for i in range(0, len(batch), 1000):
            pub.publish_samples(batch[i:i + 1000])
        wait_for(counts, start + len(batch))
    return run, lambda: pub.close(5)


def ceilometer(port, batch, counts):
    try:
        from ceilometer.publisher import tcp
        from ceilometer.publisher import utils
        from ceilometer import sample as ceilo_sample
        from oslo_utils import netutils
    except ImportError as exc:
        print('Ceilometer 27 is not installed (%s): no peer figures' % exc)
        return None, None
    conf = cfg.ConfigOpts()
    conf.register_opts(utils.OPTS, group='publisher')
    conf.register_opts([cfg.StrOpt('host', default='compute-0')])
    conf([])
    pub = tcp.TCPPublisher(conf, netutils.urlsplit('tcp://127.0.0.1:%d'
                                                   % port))
    theirs = [ceilo_sample.Sample(
        s.name, s.type, s.unit, s.volume, s.user_id, s.project_id,
        s.resource_id, s.timestamp.isoformat(), s.resource_metadata,
        id=s.id) for s in batch]
    start = counts.value

    def run():
        for i in range(0, len(theirs), 1000):
            pub.publish_samples(theirs[i:i + 1000])
        wait_for(counts, start + len(theirs))
    return run, lambda: pub.socket.close()


def measure(run):
    c0, w0 = cpu(), time.perf_counter()
    run()
    return time.perf_counter() - w0, cpu() - c0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=200000)
    args = parser.parse_args()
    ports = multiprocessing.Queue()
    counts = multiprocessing.Value('q', 0)
    proc = multiprocessing.Process(target=receiver, args=(ports, counts),
                                   daemon=True)
    proc.start()
    port = ports.get(timeout=30)
    batch = samples(args.samples)
    # The input, made up front, out of the garbage collector's way for
    # every path alike (see amqp1_throughput.py).
    gc.freeze()
    rows = []
    for name, make in (('telemetry_lib tcp://', ours),
                       ('  publisher alone', ours_alone),
                       ('Ceilometer 27 tcp', ceilometer)):
        run, close = make(port, batch, counts)
        if run is None:
            continue
        wall, used = measure(run)
        close()
        rows.append((name, wall, used))
    proc.terminate()
    print('\ntcp:// to a local receiver (sg-core framing), %d samples'
          % args.samples)
    print('%-24s %10s %10s %12s %15s' % ('', 'wall s', 'CPU s',
                                         'samples/s', 'CPU us/sample'))
    for name, wall, used in rows:
        print('%-24s %10.2f %10.2f %12.0f %15.1f' % (
            name, wall, used, args.samples / wall,
            used / args.samples * 1e6))
    if len(rows) == 3:
        for (name, wall, _) in rows[:2]:
            ratio = rows[2][1] / wall
            print('%s: %.1f times Ceilometer\'s rate (target: at least '
                  '10): %s' % (name.strip(), ratio,
                               'met' if ratio >= 10 else 'NOT met'))


if __name__ == '__main__':
    main()
