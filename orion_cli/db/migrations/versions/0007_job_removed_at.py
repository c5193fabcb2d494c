"""job.removed_at (`orion rm`) and job.exit_signal (the signal that killed a job)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00

The job row itself stays: ``job_event`` (the audit trail) refers to it and is append-only
for group members on PostgreSQL, so a removed job is marked and hidden, never deleted.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_job_removed_at'), ['removed_at'], unique=False)
        batch_op.add_column(sa.Column('exit_signal', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('exit_signal')
        batch_op.drop_index(batch_op.f('ix_job_removed_at'))
        batch_op.drop_column('removed_at')
