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
"""``assets list|show|write``: the Prometheus rules and Grafana dashboards
shipped in the package (``telemetry_lib/data/operator``)."""

import os
import sys

from cliff import command
from cliff import lister

from telemetry_lib.exceptions import TelemetryError

_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'data', 'operator')

#: name -> (path under data/operator, what it is)
ASSETS = {
    'prometheus-rules': (
        'prometheus-rules.yaml',
        "Prometheus alerting rules on the agents' health and vm: recording "
        'rules on the instances (rule_files in prometheus.yml)'),
    'grafana-agent': (
        os.path.join('grafana', 'telemetry-agent.json'),
        "Grafana dashboard: the agents' health and their hosts"),
    'grafana-instances': (
        os.path.join('grafana', 'instances.json'),
        'Grafana dashboard: per instance, over the vm: recording rules'),
}


def path_of(name):
    """The installed file of asset ``name``."""
    try:
        return os.path.join(_ROOT, ASSETS[name][0])
    except KeyError:
        raise TelemetryError('no asset %r; there are: %s' % (
            name, ', '.join(sorted(ASSETS)))) from None


class AssetList(lister.Lister):
    """List the Prometheus rules and Grafana dashboards shipped here."""

    def take_action(self, args):
        return (('Name', 'File', 'What'),
                [(name, os.path.basename(f), what)
                 for name, (f, what) in sorted(ASSETS.items())])


class AssetShow(command.Command):
    """Print one asset (prometheus-rules, grafana-agent, ...)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('name', metavar='NAME',
                            help='One of "assets list".')
        return parser

    def take_action(self, args):
        with open(path_of(args.name), encoding='utf-8') as f:
            sys.stdout.write(f.read())


class AssetWrite(lister.Lister):
    """Write every asset into DIRECTORY (prometheus/ and grafana/)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('directory', metavar='DIRECTORY')
        parser.add_argument('--force', action='store_true',
                            help='Replace files that are there.')
        return parser

    def take_action(self, args):
        rows = []
        for name, (rel, _) in sorted(ASSETS.items()):
            sub = 'grafana' if rel.startswith('grafana') else 'prometheus'
            target = os.path.join(args.directory, sub,
                                  os.path.basename(rel))
            if os.path.exists(target) and not args.force:
                raise TelemetryError('%s exists; --force replaces it'
                                     % target)
            try:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(path_of(name), encoding='utf-8') as f:
                    text = f.read()
                with open(target, 'w', encoding='utf-8') as f:
                    f.write(text)
            except OSError as exc:
                raise TelemetryError('cannot write %s: %s' % (
                    target, exc.strerror or exc)) from None
            rows.append((name, target))
        return (('Name', 'Written to'), rows)
