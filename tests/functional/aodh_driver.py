"""Runs Aodh's own evaluators (in tools/aodh.sh's virtualenv, not ours) on
cases read as JSON from stdin, against the real Prometheus and Gnocchi the
tests use; prints, per case, what Aodh's ``_refresh`` was told (state,
reason, reason_data) or ``null`` when Aodh left the alarm alone.

Aodh's evaluators build their clients from Keystone's catalog; here the
clients are built for the test services directly (observabilityclient's
Prometheus client, gnocchiclient with Gnocchi's basic auth), and the
evaluation itself -- query, statistics, thresholds, trending, composite
logic, reasons -- is Aodh's code, unchanged.
"""

import json
import sys
import types


def main():
    from gnocchiclient import auth as gnocchi_auth
    from gnocchiclient.v1 import client as gnocchi_v1
    from keystoneauth1 import session as ka_session
    from observabilityclient import prometheus_client
    from oslo_config import cfg

    from aodh.evaluator import composite
    from aodh.evaluator import event as event_evaluator
    from aodh.evaluator import gnocchi
    from aodh.evaluator import prometheus
    from aodh.evaluator import threshold
    from aodh import opts

    spec = json.load(sys.stdin)
    conf = cfg.ConfigOpts()
    for group, options in opts.list_opts():
        conf.register_opts(list(options),
                           group=None if group == 'DEFAULT' else group)
    conf([], project='aodh', default_config_files=[])
    prom = prometheus_client.PrometheusAPIClient(spec['prometheus'])
    gsession = ka_session.Session(auth=gnocchi_auth.GnocchiBasicPlugin(
        user='admin', endpoint=spec['gnocchi']))
    gclient = gnocchi_v1.Client(session=gsession)

    def make(cls):
        # Not cls(conf): that builds Keystone-catalog clients this test
        # does not need; the rest of the object is Aodh's.
        ev = object.__new__(cls)
        ev.conf = conf
        ev._gnocchi_client = gclient
        ev._prom = None
        ev._get_metric_data = prom.query
        ev.refreshed = []
        # Aodh counts evaluation results in its database: none here.
        ev._increment_evaluation_result = lambda *args: None
        ev._refresh = (lambda alarm, state, reason, reason_data,
                       always_record=False, ev=ev:
                       ev.refreshed.append([state, reason, reason_data]))
        return ev

    kinds = {
        'prometheus': prometheus.PrometheusEvaluator,
        'gnocchi_resources_threshold':
            gnocchi.GnocchiResourceThresholdEvaluator,
        'gnocchi_aggregation_by_metrics_threshold':
            gnocchi.GnocchiAggregationMetricsThresholdEvaluator,
        'gnocchi_aggregation_by_resources_threshold':
            gnocchi.GnocchiAggregationResourcesThresholdEvaluator,
    }
    if spec.get('bench'):
        return bench(spec, make, kinds)
    results = []
    for case in spec['cases']:
        alarm = types.SimpleNamespace(
            alarm_id=case['id'], state=case['state'], rule=case['rule'],
            repeat_actions=case.get('repeat_actions', False),
            time_constraints=[], type=case['type'], severity='low',
            state_reason='', project_id='parity', user_id='parity')
        if case['type'] == 'event':
            ev = make(event_evaluator.EventAlarmEvaluator)
            ev.caches = {}
            ev._evaluate_alarm(event_evaluator.Alarm(alarm),
                               event_evaluator.Event(case['event']))
            results.append(ev.refreshed[-1] if ev.refreshed else None)
            continue
        if case['type'] == 'composite':
            ev = make(composite.CompositeEvaluator)
            ev.rule_targets, ev.rule_name_prefix, ev.rule_num = [], 'rule', 0
            ev._threshold_evaluators = {
                name: types.SimpleNamespace(obj=make(cls))
                for name, cls in kinds.items()}
        else:
            ev = make(kinds[case['type']])
        try:
            ev.evaluate(alarm)
        except threshold.InsufficientDataError as exc:
            ev.refreshed.append(['error', str(exc), None])
        results.append(ev.refreshed[-1] if ev.refreshed else None)
    json.dump(results, sys.stdout)


def bench(spec, make, kinds):
    """Evaluate every case once (warm-up: the states settle), then
    again timed; print the CPU seconds of the timed pass.
    """
    import time
    evaluators = {}
    alarms = []
    for case in spec['cases']:
        ev = evaluators.get(case['type'])
        if ev is None:
            ev = evaluators[case['type']] = make(kinds[case['type']])
            ev._refresh = (lambda alarm, state, reason, reason_data,
                           always_record=False:
                           setattr(alarm, 'state', state))
        alarms.append((ev, types.SimpleNamespace(
            alarm_id=case['id'], state=case['state'], rule=case['rule'],
            repeat_actions=False, time_constraints=[], type=case['type'],
            severity='low', state_reason='', project_id='b',
            user_id='b')))
    for ev, alarm in alarms:
        ev.evaluate(alarm)
    cpu, wall = time.process_time(), time.monotonic()
    for ev, alarm in alarms:
        ev.evaluate(alarm)
    json.dump({'cpu': time.process_time() - cpu,
               'wall': time.monotonic() - wall,
               'states': sorted({a.state for _, a in alarms})}, sys.stdout)


if __name__ == '__main__':
    main()
