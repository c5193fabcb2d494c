"""job.frozen, job.calc_key, job.loose_key, job.reused_from, job.reuse_invalid: a job is its frozen inputs

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 02:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('frozen', sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column('calc_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index(batch_op.f('ix_job_calc_key'), ['calc_key'], unique=False)
        batch_op.add_column(
            sa.Column('loose_key', sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_index(batch_op.f('ix_job_loose_key'), ['loose_key'], unique=False)
        batch_op.add_column(sa.Column('reused_from', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('reuse_invalid', sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('reuse_invalid')
        batch_op.drop_column('reused_from')
        batch_op.drop_index(batch_op.f('ix_job_loose_key'))
        batch_op.drop_column('loose_key')
        batch_op.drop_index(batch_op.f('ix_job_calc_key'))
        batch_op.drop_column('calc_key')
        batch_op.drop_column('frozen')
