"""Ceilometer 27's own notification converters, beside ours, on the same
definition files and notifications -- and one comparable form for both.

Imported only where Ceilometer is installed (the functional and bench
environments install it without its dependency set).
"""

import datetime
import json
import os

from oslo_config import cfg

from telemetry_lib.notification import converter

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), 'fixtures', 'notifications',
                        'openstack.json')
DATA = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'telemetry_lib',
                    'data')
METERS_DIR = os.path.join(DATA, 'meters.d')
EVENTS_FILE = os.path.join(DATA, 'event_definitions.yaml')
UTC = datetime.timezone.utc


def notifications():
    with open(FIXTURES) as f:
        return json.load(f)


def ceilometer(meters_dir=METERS_DIR, events_file=EVENTS_FILE):
    """``(build_samples(body), to_event(priority, body))`` of Ceilometer."""
    import warnings
    warnings.simplefilter('ignore')     # eventlet's deprecation, on import
    from ceilometer.event import converter as c_converter
    from ceilometer.meter import notifications as c_meters
    from ceilometer import sample as c_sample
    from stevedore import extension
    conf = cfg.ConfigOpts()
    conf.register_opts(c_meters.OPTS, group='meter')
    conf.register_opts([cfg.BoolOpt('identity_name_discovery',
                                    default=False)], group='polling')
    conf.register_opts(c_converter.OPTS, group='event')
    conf.register_opts(c_sample.OPTS)
    conf([], project='ceilometer')
    conf.set_override('meter_definitions_dirs', [meters_dir], group='meter')
    conf.set_override('definitions_cfg_file', events_file, group='event')
    meters = c_meters.ProcessMeterNotifications(conf, None)
    events = c_converter.setup_events(conf, extension.ExtensionManager(
        'ceilometer.event.trait_plugin'))
    return (lambda body: list(meters.build_sample(body)),
            events.to_event)


def ours(meters_dir=METERS_DIR, events_file=EVENTS_FILE):
    conf = cfg.ConfigOpts()
    converter.register_opts(conf)
    conf([], project='telemetry_lib')
    conf.set_override('meter_definitions_dirs', [meters_dir],
                      group='notification')
    conf.set_override('event_definitions_file', events_file,
                      group='notification')
    return converter.Converter.from_conf(conf)


def _when(value):
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace('Z',
                                                              '+00:00'))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _volume(value):
    return float(value) if isinstance(value, (int, float, str)) else value


def sample_form(s):
    """A Ceilometer or telemetry_lib sample as a comparable dict."""
    return {'name': s.name, 'type': s.type, 'unit': s.unit,
            'volume': _volume(s.volume), 'user_id': s.user_id,
            'project_id': s.project_id, 'resource_id': s.resource_id,
            'timestamp': _when(s.timestamp),
            'resource_metadata': s.resource_metadata}


def event_form(e):
    """A Ceilometer or telemetry_lib event as a comparable dict."""
    traits = sorted(
        (t.name, int(t.dtype), _when(t.value) if int(t.dtype) == 4
         else t.value) for t in e.traits)
    return {'message_id': e.message_id, 'event_type': e.event_type,
            'generated': _when(e.generated), 'traits': traits,
            'raw': e.raw}


def _key(form):
    return json.dumps(form, sort_keys=True, default=str)


def compare(bodies, ceilo=None, mine=None):
    """Differences between the two on ``bodies``: a list of strings,
    empty when every sample and event is the same.
    """
    c_samples, c_event = ceilo or ceilometer()
    mine = mine or ours()
    problems = []
    for body in bodies:
        priority = body.get('priority', 'INFO').lower()
        result = mine.convert(body, priority)
        theirs = sorted(map(_key, map(sample_form, c_samples(body))))
        got = sorted(map(_key, map(sample_form, result.samples)))
        if theirs != got:
            problems.append('%s samples: ceilometer %s, ours %s' % (
                body['event_type'], theirs, got))
        ev = c_event(priority, body)
        theirs = [_key(event_form(ev))] if ev is not None else []
        got = [_key(event_form(e)) for e in result.events]
        if theirs != got:
            problems.append('%s event: ceilometer %s, ours %s' % (
                body['event_type'], theirs, got))
    return problems
