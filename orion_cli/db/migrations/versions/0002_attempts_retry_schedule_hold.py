"""attempts, retry schedule, hold

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 13:13:42.925041
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    meta = op.create_table(
        "orion_meta",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    # names this database's jobs in SLURM and on disk, so that two orion databases
    # (say SQLite for tests, PostgreSQL for production) never mistake each other's jobs
    op.bulk_insert(meta, [{"key": "instance_id", "value": uuid.uuid4().hex[:6]}])
    op.create_table('job_attempt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('scheduler_job_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('walltime_s', sa.Integer(), nullable=False),
    sa.Column('mem_mb', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('raw_state', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['job.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job_attempt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_attempt_job_id'), ['job_id'], unique=False)

    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_delay_s', sa.Integer(), nullable=False,
                                      server_default='60'))
        batch_op.add_column(sa.Column('soft_margin_s', sa.Integer(), nullable=False,
                                      server_default='300'))
        batch_op.add_column(sa.Column('next_attempt_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('held', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_job_next_attempt_at'), ['next_attempt_at'], unique=False)

    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_table("orion_meta")
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_next_attempt_at'))
        batch_op.drop_column('held')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('soft_margin_s')
        batch_op.drop_column('retry_delay_s')

    with op.batch_alter_table('job_attempt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_attempt_job_id'))

    op.drop_table('job_attempt')
    # ### end Alembic commands ###
