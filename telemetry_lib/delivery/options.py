#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.
"""Delivery options: ``[delivery]`` defaults, overridable per publisher URL.

Each option may also be given in a publisher URL's query
(``http://collector/?max_batch_size=100&spool=true``); the URL wins. The
Ceilometer notifier options ``policy``, ``max_queue_length`` and
``max_retry`` are understood too, so existing pipeline files keep their
meaning.
"""

import dataclasses

from oslo_config import cfg

from telemetry_lib.exceptions import ConfigError
from telemetry_lib.exceptions import InvalidURL

GROUP = 'delivery'

OVERFLOW_POLICIES = ('drop_oldest', 'drop_newest', 'block')

OPTS = [
    cfg.IntOpt('max_queue_samples', default=100000, min=1,
               help='Most samples (or events) queued per publisher, in '
                    'flight included.'),
    cfg.IntOpt('max_queue_bytes', default=64 * 1024 * 1024, min=1024,
               help='Most bytes queued per publisher (estimated in memory, '
                    'exact in the spool).'),
    cfg.StrOpt('overflow', default='drop_oldest', choices=OVERFLOW_POLICIES,
               help='What a full queue does with new items: drop_oldest '
                    "evicts the oldest queued (collectd's behaviour), "
                    'drop_newest refuses the new ones, block makes the '
                    'producer wait up to block_timeout, then drops the new '
                    'ones. Every drop is counted.'),
    cfg.FloatOpt('block_timeout', default=1.0, min=0, max=3600,
                 help='Seconds a producer waits for room with overflow = '
                      'block.'),
    cfg.IntOpt('max_batch_size', default=1000, min=1,
               help='Most items handed to a publisher in one call.'),
    cfg.FloatOpt('max_latency', default=1.0, min=0, max=3600,
                 help='Seconds the oldest queued item may wait for a batch '
                      'to fill before the batch is sent anyway.'),
    cfg.IntOpt('max_retries', default=10, min=-1,
               help='Retries of a batch after retryable failures before it '
                    'is dropped and counted; -1 retries for ever (the '
                    'queue bound and overflow policy still apply).'),
    cfg.FloatOpt('retry_initial_delay', default=0.5, min=0, max=86400,
                 help='Seconds before the first retry; each next one waits '
                      'twice as long, with jitter, up to retry_max_delay.'),
    cfg.FloatOpt('retry_max_delay', default=30.0, min=0, max=86400,
                 help='Longest wait between two retries.'),
    cfg.BoolOpt('spool', default=False,
                help='Keep queued items in a durable on-disk spool: they '
                     'survive a crash or kill -9 of the process and leave '
                     'the spool only once their publisher confirmed them.'),
    cfg.StrOpt('spool_dir', default='$state_path/spool',
               help='Directory of the spool files, one per publisher URL.'),
    cfg.BoolOpt('spool_fsync', default=False,
                help='fsync the spool on every write. Off, the spool '
                     'survives a process crash; on, it also survives a '
                     'power failure, at a much higher cost per write.'),
]

STATE_OPTS = [
    cfg.StrOpt('state_path', default='/var/lib/telemetry_lib',
               help='Top directory for state kept between runs.'),
]


def register_opts(conf):
    conf.register_opts(STATE_OPTS)
    conf.register_opts(OPTS, group=GROUP)


#: What each numeric option may be: finite, and not absurd (a retry delay
#: of a day is the most that can mean anything).
_BOUNDS = {
    'max_queue_samples': (1, 10 ** 9),
    'max_queue_bytes': (1024, 2 ** 40),
    'block_timeout': (0, 3600),
    'max_batch_size': (1, 10 ** 7),
    'max_latency': (0, 3600),
    'max_retries': (-1, 10 ** 9),
    'retry_initial_delay': (0, 86400),
    'retry_max_delay': (0, 86400),
}


@dataclasses.dataclass(frozen=True)
class DeliveryOptions:
    """The settings of one delivery (one publisher)."""

    max_queue_samples: int = 100000
    max_queue_bytes: int = 64 * 1024 * 1024
    overflow: str = 'drop_oldest'
    block_timeout: float = 1.0
    max_batch_size: int = 1000
    max_latency: float = 1.0
    max_retries: int = 10
    retry_initial_delay: float = 0.5
    retry_max_delay: float = 30.0
    spool: bool = False
    spool_dir: str = ''
    spool_fsync: bool = False

    def __post_init__(self):
        for name, (low, high) in _BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not low <= value <= high:
                # NaN fails both comparisons, as it must.
                raise ValueError('%s must be a number from %s to %s, not %r'
                                 % (name, low, high, value))
        if self.overflow not in OVERFLOW_POLICIES:
            raise ValueError('overflow must be one of %s, not %r'
                             % (', '.join(OVERFLOW_POLICIES), self.overflow))
        for name in ('max_queue_samples', 'max_queue_bytes',
                     'max_batch_size'):
            if getattr(self, name) < 1:
                raise ValueError('%s must be at least 1' % name)
        if self.spool and not self.spool_dir:
            raise ValueError('spool needs a spool_dir')

    @classmethod
    def from_conf(cls, conf):
        register_opts(conf)
        group = conf[GROUP]
        try:
            return cls(**{f.name: group[f.name]
                          for f in dataclasses.fields(cls)})
        except ValueError as exc:
            # oslo.config lets "nan" through min/max checks.
            raise ConfigError(str(exc), where='[%s]' % GROUP) from None

    def with_url(self, url):
        """These options overridden by the ones in ``url``'s query.

        :raises InvalidURL: for a bad value, naming the option.
        """
        changes = {}
        policy = url.get_str('policy', None,
                             choices=('default', 'queue', 'drop'))
        if policy == 'drop':
            changes['max_retries'] = 0
            changes['overflow'] = 'drop_newest'
        elif policy == 'queue':
            changes['overflow'] = 'drop_oldest'
        if url.has_option('max_queue_length'):
            changes['max_queue_samples'] = url.get_int('max_queue_length',
                                                       minimum=1)
        if url.has_option('max_retry'):
            changes['max_retries'] = url.get_int('max_retry', minimum=-1)
        for field in dataclasses.fields(self):
            if not url.has_option(field.name):
                continue
            if field.type in (int, 'int'):
                changes[field.name] = url.get_int(
                    field.name, minimum=-1 if field.name == 'max_retries'
                    else 0)
            elif field.type in (float, 'float'):
                changes[field.name] = url.get_float(
                    field.name, minimum=_BOUNDS[field.name][0],
                    maximum=_BOUNDS[field.name][1])
            elif field.type in (bool, 'bool'):
                changes[field.name] = url.get_bool(field.name)
            elif field.name == 'overflow':
                changes[field.name] = url.get_str(field.name,
                                                  choices=OVERFLOW_POLICIES)
            else:
                changes[field.name] = url.get_str(field.name)
        try:
            return dataclasses.replace(self, **changes)
        except ValueError as exc:
            raise InvalidURL(str(exc), where=str(url)) from None


#: URL options that belong to the delivery core, not to the publisher.
URL_OPTIONS = frozenset(f.name for f in dataclasses.fields(DeliveryOptions)
                        ) | {'policy', 'max_queue_length', 'max_retry'}
