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
"""The alarm database's tables, as Aodh lays them out (an alarm row holds
its definition and its state; ``alarm_change`` its history), so an
operator who knows Aodh's schema reads ours.

Times are naive UTC (microseconds kept on MariaDB too); JSON fields are
text written by :mod:`telemetry_lib.jsoncodec`, the same on every
backend.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData()


def timestamp():
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mysql',
                                      'mariadb')


def json_text():
    # MEDIUMTEXT on MariaDB: a composite rule may pass TEXT's 64 KiB.
    return sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mysql', 'mariadb')


alarm = sa.Table(
    'alarm', metadata,
    sa.Column('alarm_id', sa.String(128), primary_key=True),
    sa.Column('name', sa.Text, nullable=False),
    sa.Column('type', sa.String(50), nullable=False),
    sa.Column('description', sa.Text, nullable=False, default=''),
    sa.Column('enabled', sa.Boolean, nullable=False, default=True),
    sa.Column('severity', sa.String(50), nullable=False, default='low'),
    sa.Column('user_id', sa.String(128), index=True),
    sa.Column('project_id', sa.String(128), index=True),
    sa.Column('timestamp', timestamp(), nullable=False),
    sa.Column('state', sa.String(255), nullable=False),
    sa.Column('state_reason', sa.Text, nullable=False),
    sa.Column('state_timestamp', timestamp(), nullable=False),
    sa.Column('evaluate_timestamp', timestamp()),
    sa.Column('repeat_actions', sa.Boolean, nullable=False, default=False),
    sa.Column('ok_actions', json_text(), nullable=False),
    sa.Column('alarm_actions', json_text(), nullable=False),
    sa.Column('insufficient_data_actions', json_text(), nullable=False),
    sa.Column('time_constraints', json_text(), nullable=False),
    sa.Column('rule', json_text(), nullable=False),
)

alarm_change = sa.Table(
    'alarm_change', metadata,
    sa.Column('event_id', sa.String(128), primary_key=True),
    sa.Column('alarm_id', sa.String(128), nullable=False),
    sa.Column('type', sa.String(20), nullable=False),
    sa.Column('detail', json_text(), nullable=False),
    sa.Column('user_id', sa.String(128)),
    sa.Column('project_id', sa.String(128)),
    sa.Column('on_behalf_of', sa.String(128)),
    sa.Column('severity', sa.String(50)),
    sa.Column('timestamp', timestamp(), nullable=False),
    sa.Index('alarm_change_alarm_time', 'alarm_id', 'timestamp'),
)

#: The JSON columns of ``alarm``.
JSON_FIELDS = ('ok_actions', 'alarm_actions', 'insufficient_data_actions',
               'time_constraints', 'rule')
