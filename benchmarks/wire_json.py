"""Samples/s from sample objects to Ceilometer wire JSON.

Side by side in one run, on the same data:

* Ceilometer 27: ``meter_message_from_counter`` (+ its ``compute_signature``)
  for each ``ceilometer.sample.Sample``, then ``json.dumps`` of the batch --
  what its notifier and HTTP publishers do before sending.
* telemetry_lib: ``samples_to_wire`` then ``jsoncodec.dumps`` (the dict
  path, for publishers that hand dicts on), and ``samples_to_json``, which
  writes each message's JSON directly (compiled ``_cwire`` when built).
* The limit: ``json.dumps`` (and ``orjson.dumps``) of dictionaries prepared
  in advance, i.e. encoding alone.

And the full STF wire path, to the double-encoded oslo 2.0 envelope:
Ceilometer's metering messages in a notification serialised twice with
``oslo_serialization.jsonutils`` (what oslo.messaging's drivers do), beside
``telemetry_lib.formats.stf.encode_samples`` (which also splits the batch
into messages of at most 16,000 bytes).

Run with ``tox -e bench`` (which installs Ceilometer 27 without its
dependency set) or ``python benchmarks/wire_json.py [--samples N]``.
"""

import argparse
import datetime
import json
import platform
import resource
import sys
import time
import uuid

import orjson

from telemetry_lib.formats import ceilometer as wire
from telemetry_lib.formats import stf
from telemetry_lib import jsoncodec
from telemetry_lib import Sample

SECRET = 'change this for valid signing'   # Ceilometer's default secret


def metadata(i):
    """Resource metadata the size of a Ceilometer instance pollster's."""
    return {
        'display_name': 'vm-%d' % i, 'name': 'instance-%08x' % i,
        'host': 'compute-%d' % (i % 8), 'instance_id': 'inst-%d' % i,
        'instance_type': 'm1.small', 'image_ref': 'img-1',
        'status': 'active', 'state': 'running', 'task_state': '',
        'flavor': {'id': '2', 'name': 'm1.small', 'vcpus': 1, 'ram': 2048,
                   'disk': 20, 'ephemeral': 0, 'swap': 0},
        'image': {'id': 'img-1'}, 'os_type': 'linux',
        'architecture': 'x86_64', 'vcpus': 1, 'memory_mb': 2048,
        'disk_gb': 20, 'root_gb': 20, 'ephemeral_gb': 0,
        'user_metadata': {'stack': 'web', 'role': 'frontend'},
    }


def rows(n, per_resource=1):
    """``per_resource`` samples share one resource's metadata dict, as a
    pollster's samples of one instance do (a compute poll: ~30).
    """
    now = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
    md = None
    for i in range(n):
        r = i // per_resource
        if i % per_resource == 0:
            md = metadata(r)
        yield dict(name='cpu', type='cumulative', unit='ns',
                   volume=123456789 + i, user_id='user-%d' % (r % 50),
                   project_id='project-%d' % (r % 20),
                   resource_id='inst-%d' % r, timestamp=now,
                   resource_metadata=md,
                   user_name='alice', project_name='demo')


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best_rate(func, count, repeat):
    """``(samples/s, CPU us per sample)`` of the best of ``repeat`` runs."""
    best = best_cpu = float('inf')
    for _ in range(repeat):
        started, used = time.perf_counter(), _cpu()
        func()
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, _cpu() - used)
    return count / best, best_cpu / count * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=20000)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--per-resource', type=int, default=1,
                        help='samples sharing one metadata dict (1: every '
                             'sample its own; a compute poll: ~30)')
    args = parser.parse_args()
    n, repeat = args.samples, args.repeat
    data = list(rows(n, args.per_resource))
    ours = [Sample(**r) for r in data]

    results = []
    try:
        from ceilometer.publisher import utils as ceilo_utils
        from ceilometer import sample as ceilo_sample
    except ImportError as exc:
        print('Ceilometer is not installed (%s); its rows are skipped. '
              '`tox -e bench` installs it.' % exc, file=sys.stderr)
        ceilo_utils = None
    if ceilo_utils is not None:
        theirs = [ceilo_sample.Sample(
            name=r['name'], type=r['type'], unit=r['unit'],
            volume=r['volume'], user_id=r['user_id'],
            project_id=r['project_id'], resource_id=r['resource_id'],
            timestamp=r['timestamp'].isoformat(),
            resource_metadata=r['resource_metadata'],
            user_name=r['user_name'], project_name=r['project_name'])
            for r in data]
        for label, secret in (('signed', SECRET), ('unsigned', '')):
            results.append((
                'Ceilometer 27 meter_message_from_counter + json', label,
                best_rate(lambda: json.dumps([
                    ceilo_utils.meter_message_from_counter(s, secret)
                    for s in theirs]), n, repeat)))
        # Ceilometer's verify on our output: the proof it is compatible.
        ok = all(ceilo_utils.verify_signature(m, SECRET) for m in json.loads(
            jsoncodec.dumps(wire.samples_to_wire(ours[:1000], SECRET))))
        print('Ceilometer 27 verify_signature accepts our signatures: %s'
              % ok)
        if not ok:
            return 1

    for label, secret in (('signed', SECRET), ('unsigned', '')):
        results.append(('telemetry_lib samples_to_wire + orjson', label,
                        best_rate(lambda: jsoncodec.dumps(
                            wire.samples_to_wire(ours, secret)), n, repeat)))
    # The same array written without dictionaries (the file and spool
    # publishers' path, and the STF one's); identical bytes, checked here.
    for label, secret in (('signed', SECRET), ('unsigned', '')):
        def array(secret=secret):
            # The brackets go on the end items, so the array is copied
            # once, as orjson writes its own once.
            items = wire.samples_to_json(ours, secret)
            items[0] = b'[' + items[0]
            items[-1] += b']'
            return b','.join(items)
        if array() != jsoncodec.dumps(wire.samples_to_wire(ours, secret)):
            print('samples_to_json differs from samples_to_wire + orjson')
            return 1
        results.append(('telemetry_lib samples_to_json (%s)' % (
            'compiled' if wire._cwire else 'pure Python'), label,
            best_rate(array, n, repeat)))
    if ceilo_utils is not None:
        from oslo_serialization import jsonutils

        def ceilometer_envelope(secret):
            msg = {'message_id': str(uuid.uuid4()),
                   'publisher_id': 'telemetry.publisher.bench',
                   'event_type': 'metering', 'priority': 'SAMPLE',
                   'payload': [ceilo_utils.meter_message_from_counter(
                       s, secret) for s in theirs],
                   'timestamp': '2024-05-01 12:00:00.000000'}
            return jsonutils.dumps({'oslo.version': '2.0',
                                    'oslo.message': jsonutils.dumps(msg)})
        for label, secret in (('signed', SECRET), ('unsigned', '')):
            results.append((
                'STF envelope: Ceilometer 27 + oslo jsonutils', label,
                best_rate(lambda: ceilometer_envelope(secret), n, repeat)))
    for label, secret in (('signed', SECRET), ('unsigned', '')):
        results.append(('STF envelope: telemetry_lib formats.stf', label,
                        best_rate(lambda: stf.encode_samples(
                            ours, 'telemetry.publisher.bench', secret),
                            n, repeat)))
    prepared = wire.samples_to_wire(ours, '')
    results.append(('limit: json.dumps of prepared dicts', 'unsigned',
                    best_rate(lambda: json.dumps(prepared), n, repeat)))
    results.append(('limit: orjson.dumps of prepared dicts', 'unsigned',
                    best_rate(lambda: orjson.dumps(prepared), n, repeat)))

    ceilo = {label: rate for path, label, (rate, _) in results
             if path.startswith('Ceilometer')}
    envelope = {label: rate for path, label, (rate, _) in results
                if path.startswith('STF envelope: Ceilometer')}
    print('\nSample objects -> Ceilometer wire JSON, %d samples (%d per '
          'resource metadata), best of %d (Python %s, %s)\n'
          % (n, args.per_resource, repeat, platform.python_version(),
             platform.machine()))
    header = '%-52s %-9s %12s %9s %14s %16s' % (
        'path', 'signing', 'samples/s', 'CPU us', 'vs Ceilometer',
        'vs Ceilometer')
    print(header)
    print('%-52s %-9s %12s %9s %14s %16s' % (
        '', '', '', '/sample', '(same signing)', '(its default)'))
    print('-' * len(header))
    for path, label, (rate, us) in results:
        # Envelope rows compare with Ceilometer's envelope path, the others
        # with its plain one.
        peer = envelope if path.startswith('STF') else ceilo
        same = ('%13.1fx' % (rate / peer[label]) if label in peer
                else '%14s' % '-')
        default = ('%15.1fx' % (rate / peer['signed']) if peer
                   else '%16s' % '-')
        print('%-52s %-9s %12s %9.2f %s %s' % (
            path, label, '{:,.0f}'.format(rate), us, same, default))
    print('\nCeilometer signs by default (telemetry_secret has a default); '
          'telemetry_lib signs only when a secret is configured.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
