"""A process that queues samples for an HTTP publisher with a spool.

``spool_child.py URL SPOOL_DIR COUNT [--flush]``: puts COUNT samples (ids
``k-0`` ...), prints ``ACCEPTED n`` once ``put`` returned (the samples are in
the spool then), and, with ``--flush``, delivers what the spool holds and
prints ``RECOVERED n`` and ``PENDING n``; without it, it waits to be killed.
"""

import sys
import time

from oslo_config import cfg

from telemetry_lib import delivery
from telemetry_lib import opts
from telemetry_lib import Sample


def main():
    url, spool_dir, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib')
    conf.set_override('spool_dir', spool_dir, group='delivery')
    d = delivery.build(conf, url).start()
    if count:
        accepted = d.put([Sample('net.bytes', 'cumulative', 'B', i,
                                 resource_id='vm-%d' % i, id='k-%d' % i)
                          for i in range(count)])
        print('ACCEPTED %d' % accepted, flush=True)
    if '--flush' not in sys.argv:
        time.sleep(600)
        return 1
    outcome = d.flush(30)
    st = d.stats()
    print('RECOVERED %d' % st.recovered)
    print('PENDING %d' % outcome.pending)
    d.close(5)
    return 0


if __name__ == '__main__':
    sys.exit(main())
