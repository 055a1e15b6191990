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
"""``pipeline validate``."""

import sys

from cliff import command

from telemetry_lib.delivery import options as delivery_options
from telemetry_lib.exceptions import ConfigError
from telemetry_lib.pipeline import definitions
from telemetry_lib.pollsters import loader as pollster_loader
from telemetry_lib.publisher import base as publisher_base


def guess_kind(path):
    """``polling``, ``events`` or ``samples``, from the file's content."""
    data = definitions.load_yaml(path)
    if isinstance(data, dict):
        sources = data.get('sources')
        if 'sinks' not in data and isinstance(sources, list):
            return 'polling'
        if isinstance(sources, list) and any(
                isinstance(s, dict) and 'events' in s for s in sources):
            return 'events'
    return 'samples'


class PipelineValidate(command.Command):
    """Check pipeline.yaml, event_pipeline.yaml or polling.yaml files.

    Every problem is printed on one line naming the file, line, source or
    sink and field; the exit code is 1 if there is any. Publisher URLs are
    checked as far as building the publisher, without sending anything.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('files', nargs='+', metavar='FILE',
                            help='Files to check; nothing is contacted, '
                                 'bound or created.')
        parser.add_argument('--kind', default='auto',
                            choices=('auto', 'samples', 'events', 'polling'),
                            help='What the files define (default: guessed '
                                 'from their content).')
        return parser

    def take_action(self, args):
        conf = self.app.conf
        failed = False
        for path in args.files:
            try:
                kind = args.kind if args.kind != 'auto' else guess_kind(path)
                self._validate(conf, path, kind)
            except ConfigError as exc:
                failed = True
                for line in str(exc).splitlines():
                    print(line, file=sys.stderr)
            else:
                print('%s: valid (%s)' % (path, kind))
        return 1 if failed else 0

    @staticmethod
    def _validate(conf, path, kind):
        if kind == 'polling':
            polling = definitions.PollingDefinition.load(path)
            meters = [m for p in pollster_loader.load_pollsters(conf).values()
                      for m in p.meters]
            # Warnings, not errors: Ceilometer's own polling.yaml names
            # meters of pollsters this library does not have (volume.size).
            for problem in polling.unmatched(meters):
                print('warning: %s; it polls nothing' % problem,
                      file=sys.stderr)
            return

        def build_publisher(url):
            # As far as the agent would go, without sending anything.
            delivery_options.DeliveryOptions.from_conf(conf).with_url(url)
            publisher_base.load_publisher(
                conf, url.without(delivery_options.URL_OPTIONS)).close()

        definitions.PipelineDefinition.load(path, kind,
                                            check_url=build_publisher)
