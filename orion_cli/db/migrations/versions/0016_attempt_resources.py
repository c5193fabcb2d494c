"""job_attempt.resources: everything an attempt asked of the scheduler

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 03:30:00

Only walltime and memory had columns on the attempt row; ``orion retry --partition long
--gpus 1`` changed the job row and left the attempt's partition and GPUs in an event only.
The attempt now keeps its whole resource set (orion_cli.resources field names) as JSON.
Rows written before stay NULL: their walltime_s and mem_mb columns still say what they
asked; nothing else was recorded for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job_attempt', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resources', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job_attempt', schema=None) as batch_op:
        batch_op.drop_column('resources')
