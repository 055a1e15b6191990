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
"""The alarm and alarm_change tables.

Revision ID: 0001
Revises:
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa

from telemetry_lib.alarm.db import schema

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'alarm',
        sa.Column('alarm_id', sa.String(128), primary_key=True),
        sa.Column('name', sa.Text, nullable=False),
        sa.Column('type', sa.String(50), nullable=False),
        sa.Column('description', sa.Text, nullable=False),
        sa.Column('enabled', sa.Boolean, nullable=False),
        sa.Column('severity', sa.String(50), nullable=False),
        sa.Column('user_id', sa.String(128), index=True),
        sa.Column('project_id', sa.String(128), index=True),
        sa.Column('timestamp', schema.timestamp(), nullable=False),
        sa.Column('state', sa.String(255), nullable=False),
        sa.Column('state_reason', sa.Text, nullable=False),
        sa.Column('state_timestamp', schema.timestamp(), nullable=False),
        sa.Column('evaluate_timestamp', schema.timestamp()),
        sa.Column('repeat_actions', sa.Boolean, nullable=False),
        sa.Column('ok_actions', schema.json_text(), nullable=False),
        sa.Column('alarm_actions', schema.json_text(), nullable=False),
        sa.Column('insufficient_data_actions', schema.json_text(),
                  nullable=False),
        sa.Column('time_constraints', schema.json_text(), nullable=False),
        sa.Column('rule', schema.json_text(), nullable=False),
    )
    op.create_table(
        'alarm_change',
        sa.Column('event_id', sa.String(128), primary_key=True),
        sa.Column('alarm_id', sa.String(128), nullable=False),
        sa.Column('type', sa.String(20), nullable=False),
        sa.Column('detail', schema.json_text(), nullable=False),
        sa.Column('user_id', sa.String(128)),
        sa.Column('project_id', sa.String(128)),
        sa.Column('on_behalf_of', sa.String(128)),
        sa.Column('severity', sa.String(50)),
        sa.Column('timestamp', schema.timestamp(), nullable=False),
    )
    op.create_index('alarm_change_alarm_time', 'alarm_change',
                    ['alarm_id', 'timestamp'])
