"""The delivery core's own cost: CPU per sample from ``put`` to a publisher
that keeps nothing, through the queue, the worker thread, batching and the
accounting -- what every publisher pays before its own encoding.

Two kinds of samples: each with a metadata dict of its own (what
notifications and host pollsters make), and ten samples per resource
sharing one dict (a compute poll). Batches of 1,000 and of 100 are put
from this thread; the worker's CPU is counted (the whole process's CPU).
Target (issue: performance round three): at most 0.5 CPU us per sample.

Run: ``python benchmarks/delivery_core.py``.
"""

import argparse
import gc
import resource
import threading
import time

from oslo_config import cfg

TARGET_US = 0.5


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_samples(n, shared):
    from telemetry_lib import Sample
    metas = {}
    out = []
    for i in range(n):
        res = 'vm-%d' % (i // 10 if shared else i % 1000)
        meta = metas.get(res) if shared else None
        if meta is None:
            meta = {'display_name': res, 'host': 'compute-0',
                    'flavor': {'name': 'm1.small', 'vcpus': 2},
                    'instance_type': 'm1.small', 'state': 'active'}
            metas[res] = meta
        out.append(Sample('cpu', 'cumulative', 'ns', 1000 + i, user_id='u',
                          project_id='p', resource_id=res,
                          timestamp=1796200000 + i // 100,
                          resource_metadata=meta))
    return out


def null_delivery(conf):
    """A delivery whose publisher counts and keeps nothing."""
    from telemetry_lib import delivery
    from telemetry_lib.publisher import base

    class Null(base.Publisher):
        count = 0
        done = threading.Event()
        target = 0

        def publish_samples(self, samples):
            Null.count += len(samples)
            if Null.count >= Null.target:
                Null.done.set()
    pub = Null(conf, delivery.TelemetryURL.parse('test://'))
    opts = delivery.DeliveryOptions.from_conf(conf).with_url(
        delivery.TelemetryURL.parse(
            'test://?max_latency=0.05&max_batch_size=1000&'
            'max_queue_samples=10000000&max_queue_bytes=100000000000'))
    return delivery.Delivery(pub, options=opts).start(), Null


def run_one(conf, samples, per_put):
    d, null = null_delivery(conf)
    null.target = len(samples)
    batches = [samples[i:i + per_put]
               for i in range(0, len(samples), per_put)]
    gc.collect()
    c0, w0 = cpu(), time.perf_counter()
    for b in batches:
        d.put(b)
    null.done.wait(300)
    c1, w1 = cpu(), time.perf_counter()
    st = d.stats()
    assert st.published == len(samples) and st.balanced, st
    d.close(5)
    return (c1 - c0) / len(samples) * 1e6, len(samples) / (w1 - w0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=500000)
    args = parser.parse_args()
    from telemetry_lib import opts
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib', default_config_files=[])
    print('delivery core, put -> queue -> worker -> a publisher that keeps '
          'nothing, %d samples' % args.samples)
    print('%-44s %12s %15s' % ('', 'samples/s', 'CPU us/sample'))
    worst = 0.0
    for label, shared in (('metadata per sample', False),
                          ('metadata shared by 10 samples', True)):
        samples = make_samples(args.samples, shared)
        gc.freeze()
        for per_put in (1000, 100):
            us, rate = run_one(conf, samples, per_put)
            worst = max(worst, us)
            print('%-44s %12.0f %15.2f' % (
                '%s, puts of %d' % (label, per_put), rate, us))
        del samples
        gc.unfreeze()
    print('delivery core: %.2f CPU us/sample at worst (target: at most '
          '%.1f): %s' % (worst, TARGET_US,
                         'met' if worst <= TARGET_US else 'NOT met'))


if __name__ == '__main__':
    main()
