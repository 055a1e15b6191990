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
"""``telemetry-lib``: the command line (cliff; ``-f table|json|value|csv``).

Commands are entry points in ``telemetry_lib.cli``, so a plugin distribution
can add its own.
"""

import logging
import sys

from cliff import app
from cliff import commandmanager
from oslo_config import cfg

from telemetry_lib import opts

VERSION = '0'


class TelemetryApp(app.App):

    def __init__(self):
        super().__init__(
            description='Look at and drive telemetry_lib: plugins, '
                        'pipelines, samples and stored measures.',
            version=VERSION,
            command_manager=commandmanager.CommandManager(
                'telemetry_lib.cli'),
            deferred_help=True)
        self.conf = None

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument('--config-file', action='append', default=[],
                            metavar='PATH',
                            help='oslo.config file (repeatable).')
        parser.add_argument('--config-dir', action='append', default=[],
                            metavar='DIR', help='oslo.config directory.')
        parser.add_argument('--storage', metavar='URL',
                            help='Storage to read measures from (default: '
                                 '[storage] url, sqlite://).')
        return parser

    def initialize_app(self, argv):
        # proton says "Connecting to Url(...)" at INFO for every try; our
        # own lines say what matters.
        logging.getLogger('proton').setLevel(logging.WARNING)
        self.conf = cfg.ConfigOpts()
        opts.register_all(self.conf)
        args = []
        for path in self.options.config_file:
            args += ['--config-file', path]
        for path in self.options.config_dir:
            args += ['--config-dir', path]
        self.conf(args, project='telemetry_lib', prog='telemetry-lib',
                  default_config_files=[] if args else None)
        if self.options.storage:
            self.conf.set_override('url', self.options.storage,
                                   group='storage')


def main(argv=None):
    return TelemetryApp().run(sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    sys.exit(main())
