"""job: GPUs, constraint, exclusive, memory per CPU, extra sbatch options, queue; the
"submit outcome unknown" marker as its own column (no longer a word in raw_state)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mem_per_cpu_mb', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('gpus', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('constraints', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('exclusive', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('sbatch_args', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('queue', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=''))
        batch_op.add_column(sa.Column('submit_unknown_since', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))
    job = sa.table('job', sa.column('raw_state', sa.String()),
                   sa.column('submit_unknown_since', sqlmodel.sql.sqltypes.UTCDateTime()),
                   sa.column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime()))
    op.execute(job.update().where(job.c.raw_state == 'SUBMIT_UNKNOWN')
               .values(submit_unknown_since=job.c.updated_at, raw_state=None))


def downgrade() -> None:
    job = sa.table('job', sa.column('raw_state', sa.String()),
                   sa.column('submit_unknown_since', sqlmodel.sql.sqltypes.UTCDateTime()))
    op.execute(job.update().where(job.c.submit_unknown_since.isnot(None))
               .values(raw_state='SUBMIT_UNKNOWN'))
    with op.batch_alter_table('job', schema=None) as batch_op:
        for name in ('submit_unknown_since', 'queue', 'sbatch_args', 'exclusive', 'constraints',
                     'gpus', 'mem_per_cpu_mb'):
            batch_op.drop_column(name)
