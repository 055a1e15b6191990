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
"""``plugin list``."""

from cliff import lister

from telemetry_lib import plugins


class PluginList(lister.Lister):
    """List installed plugins, third-party ones included."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--namespace', choices=plugins.NAMESPACES,
                            help='Only this namespace.')
        return parser

    def take_action(self, args):
        rows = []
        for ns in [args.namespace] if args.namespace else plugins.NAMESPACES:
            for ep in plugins.entry_points(ns):
                dist = getattr(ep, 'dist', None)
                rows.append((ns, ep.name, ep.value,
                             dist.name if dist is not None else ''))
        return (('Namespace', 'Name', 'Object', 'Distribution'),
                sorted(rows))
