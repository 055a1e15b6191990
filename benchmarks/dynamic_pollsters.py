"""Dynamic pollsters: one poll of a JSON API answering N entries, ours
beside Ceilometer 27's dynamic pollster, on the same definition and the
same local server.

The definition is a typical one from Ceilometer's documentation: entries
under a key, a value through ``value_mapping``, ids through operations
(``"user | value.split('$') | value[0]"``), six metadata fields, one of
them nested and one through an operation. The server answers from memory
(the same bytes every time) in a thread of this process; its share of
the CPU is the same for both. Printed: wall and CPU per poll and CPU per
sample, the mean of ``--polls`` polls after one warm-up.

Needs, for the peer, ``pip install --no-deps ceilometer==27.0.0`` (``tox
-e bench`` does it). Run: ``python benchmarks/dynamic_pollsters.py``.
"""

import argparse
import datetime
import http.server
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
import time

import yaml

UTC = datetime.timezone.utc
DEFINITION = {
    'name': 'dynamic.bench.server.status',
    'sample_type': 'gauge',
    'unit': 'server',
    'value_attribute': 'status',
    'url_path': None,                   # set to the local server's URL
    # Ceilometer imports the top-level name: a one-line module of ours
    # (written by main()) re-exports requests' basic auth.
    'module': 'telemetry_bench_auth',
    'authentication_object': 'BasicAuth',
    'authentication_parameters': 'user,secret',
    'response_entries_key': 'servers',
    'resource_id_attribute': 'id',
    'project_id_attribute': "tenant | value.split('$') | value[0]",
    'user_id_attribute': 'user_id',
    'metadata_fields': ['name', 'flavor.vcpus', 'flavor.ram',
                        "image | value or {'id': ''} | value['id']",
                        'OS-EXT-AZ:availability_zone', 'locked'],
    'metadata_mapping': {'name': 'display_name'},
    'value_mapping': {'ACTIVE': '1'},
    'default_value': 0,
}


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def serve(entries):
    body = json.dumps({'servers': [{
        'id': 'srv-%d' % i, 'status': 'ACTIVE' if i % 4 else 'SHUTOFF',
        'tenant': 'p%d$p%d' % (i % 50, i % 50), 'user_id': 'u%d' % (i % 9),
        'name': 'vm-%d' % i, 'flavor': {'vcpus': 2, 'ram': 2048},
        'image': None if i % 5 == 0 else {'id': 'img-%d' % (i % 3)},
        'OS-EXT-AZ:availability_zone': 'nova', 'locked': False}
        for i in range(entries)]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = 'HTTP/1.1'

        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, 'http://127.0.0.1:%d/servers' % server.server_address[1]


def measure(poll, polls):
    count = poll()
    c0, w0 = cpu(), time.perf_counter()
    for _ in range(polls):
        count = poll()
    n = float(polls)
    return (time.perf_counter() - w0) / n, (cpu() - c0) / n, count


def ours(definition):
    from oslo_config import cfg
    from telemetry_lib.pollsters.dynamic import pollster as dynamic
    tmp = tempfile.mkdtemp(prefix='telemetry-bench-dynamic-')
    with open(os.path.join(tmp, 'bench.yaml'), 'w') as f:
        yaml.safe_dump([definition], f)
    conf = cfg.ConfigOpts()
    dynamic.register_opts(conf)
    conf([])
    conf.set_override('pollsters_definitions_dirs', [tmp], group='polling')
    pollster = dynamic.load_all(conf)[definition['name']]
    shutil.rmtree(tmp)

    def poll():
        return len(pollster.poll(datetime.datetime.now(UTC)))
    return poll


def ceilometer(definition):
    try:
        from ceilometer.polling import dynamic_pollster
    except ImportError as exc:
        print('Ceilometer 27 is not installed (%s): no peer figures' % exc)
        return None
    logging.getLogger('ceilometer').setLevel(logging.ERROR)
    from oslo_config import cfg
    conf = cfg.ConfigOpts()
    conf([])
    pollster = dynamic_pollster.DynamicPollster(dict(definition), conf)

    class Manager:
        _keystone = None

    def poll():
        return sum(1 for s in pollster.get_samples(
            Manager(), {}, [definition['url_path']]) if s is not None)
    return poll


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--entries', type=int, default=5000)
    parser.add_argument('--polls', type=int, default=5)
    args = parser.parse_args()
    auth_dir = tempfile.mkdtemp(prefix='telemetry-bench-auth-')
    with open(os.path.join(auth_dir, 'telemetry_bench_auth.py'), 'w') as f:
        f.write('from requests.auth import HTTPBasicAuth as BasicAuth\n')
    sys.path.insert(0, auth_dir)
    server, url = serve(args.entries)
    definition = dict(DEFINITION, url_path=url)
    rows = [('telemetry_lib', measure(ours(definition), args.polls))]
    peer = ceilometer(definition)
    if peer is not None:
        rows.append(('Ceilometer 27', measure(peer, args.polls)))
    server.shutdown()
    shutil.rmtree(auth_dir)
    print('\ndynamic pollster, one poll of %d entries (mean of %d)'
          % (args.entries, args.polls))
    print('%-20s %9s %9s %9s %15s %13s' % (
        '', 'wall ms', 'CPU ms', 'samples', 'CPU us/sample',
        'samples/s'))
    for name, (wall, used, count) in rows:
        print('%-20s %9.1f %9.1f %9d %15.1f %13.0f' % (
            name, wall * 1e3, used * 1e3, count,
            used / max(count, 1) * 1e6, count / wall))
    if len(rows) == 2 and rows[0][1][2] != rows[1][1][2]:
        print('the two made different numbers of samples: %d and %d'
              % (rows[0][1][2], rows[1][1][2]))
        sys.exit(1)


if __name__ == '__main__':
    main()
