"""One threshold alarm over one set of samples, for every storage driver:
each must give the transitions the embedded SQLite storage gives.
"""

import datetime

from telemetry_lib.alarm import model
from telemetry_lib.alarm import rules

UTC = datetime.timezone.utc
MEANS = [10, 20, 90, 95, 91]            # per minute
# Aodh's rules for these means over 3 periods: too few periods (twice),
# then mixed (from insufficient data the latest decides), mixed again
# (unchanged), then all breaching.
EXPECTED = [model.INSUFFICIENT_DATA, model.INSUFFICIENT_DATA, model.ALARM,
            None, model.ALARM]


def window(now):
    """``(start, end)``: five whole minutes that ended a minute ago."""
    end = (int(now) // 60 - 1) * 60
    return end - 5 * 60, end


def samples(start, make):
    """Six samples a minute around each mean; ``make(volume, ts)``."""
    return [make(MEANS[m] + (k % 3) - 1, start + 60 * m + 10 * k)
            for m in range(5) for k in range(6)]


def rule(resource_id):
    return rules.ThresholdRule({
        'meter': 'memory.usage', 'resource_id': resource_id,
        'granularity': 60, 'evaluation_periods': 3,
        'comparison_operator': 'gt', 'threshold': 80}, "alarm 'parity'")


def at(ts):
    return datetime.datetime.fromtimestamp(ts, UTC)


def transitions(alarm_rule, storage, start):
    """``[(state or None, values)]`` of one evaluation a minute."""
    current, seen = model.INSUFFICIENT_DATA, []
    for minute in range(1, 6):
        verdict = alarm_rule.evaluate(lambda url: storage,
                                      at(start + 60 * minute + 5), current)
        seen.append((verdict.state, verdict.reason_data.get('values')))
        current = verdict.state or current
    return seen
