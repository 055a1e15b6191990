#!/usr/bin/env python3
"""Run the fuzzers of tests/fuzzing.py longer than CI does, and print the
counts (runs, accepted, rejected, findings, slowest run, peak RSS).

    python tools/fuzz.py --count 10000 --seed 7

Exit 1 if anything was found; each finding is printed with its input.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

from oslo_config import cfg  # noqa: E402

from telemetry_lib import opts  # noqa: E402
from tests import fuzzing  # noqa: E402
from tests import fuzzing_api  # noqa: E402
from tests import fuzzing_surfaces as surfaces  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--count', type=int, default=3000)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    conf = cfg.ConfigOpts()
    opts.register_all(conf)
    conf([], project='telemetry_lib')
    tmp = tempfile.mkdtemp(prefix='telemetry-fuzz-')
    conf.set_override('state_path', tmp)
    found = 0
    print('%-8s %7s %9s %9s %9s %9s %9s' % (
        'target', 'runs', 'accepted', 'rejected', 'findings', 'slowest',
        'peak RSS'))
    for name, report in (
            ('yaml', fuzzing.run_yaml(conf, tmp, args.count, args.seed)),
            ('urls', fuzzing.run_urls(conf, args.count, args.seed)),
            ('samples', fuzzing.run_samples(args.count, args.seed)),
            ('notifs', surfaces.run_notifications(conf, tmp, args.count,
                                                  args.seed)),
            ('webhooks', surfaces.run_receiver(conf, tmp, args.count,
                                               args.seed)),
            ('dynamic', surfaces.run_dynamic(args.count, args.seed, tmp)),
            ('http', surfaces.run_http(args.count, args.seed)),
            ('api', fuzzing_api.run_api(args.count, args.seed)),
            ('events', fuzzing_api.run_events(args.count, args.seed)),
            ('promql', fuzzing_api.run_prometheus_batches(conf, args.count,
                                                          args.seed)),
            ('rw', fuzzing_api.run_remote_write_answers(conf, args.count,
                                                        args.seed))):
        print('%-8s %7d %9d %9d %9d %8.2fs %7.0fMB' % (
            name, report.runs, report.accepted, report.rejected,
            len(report.findings), report.slowest, report.max_rss_mb))
        for finding in report.findings:
            print('  ' + finding.replace('\n', '\n    '))
        found += len(report.findings)
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
