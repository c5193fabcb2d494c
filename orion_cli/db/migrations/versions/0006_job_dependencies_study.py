"""job dependencies, study id, structure hand-off

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00

``job_dependencies`` holds the edges child → parent (``afterok`` or ``afterany``); a job's
``study_id`` groups the jobs of one study (eos, workflow); ``structure_from_id`` names the
job whose final structure a job starts from. On PostgreSQL the edges get the same
row-level security as the other job tables: everyone reads, a user adds or removes only
edges of their own child jobs.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

OWN_CHILD = "EXISTS (SELECT 1 FROM job WHERE job.id = child_id AND job.owner = current_user)"
POLICIES = [
    ("orion_read", "SELECT", "USING (true)"),
    ("orion_insert_own", "INSERT", f"WITH CHECK ({OWN_CHILD})"),
    ("orion_delete_own", "DELETE", f"USING ({OWN_CHILD})"),
]


def upgrade() -> None:
    op.create_table(
        'job_dependencies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('child_id', sa.Integer(), nullable=False),
        sa.Column('parent_id', sa.Integer(), nullable=False),
        sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(['child_id'], ['job.id']),
        sa.ForeignKeyConstraint(['parent_id'], ['job.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('job_dependencies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_dependencies_child_id'), ['child_id'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_job_dependencies_parent_id'), ['parent_id'],
                              unique=False)
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('study_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('structure_from_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_job_study_id'), ['study_id'], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE job_dependencies ENABLE ROW LEVEL SECURITY")
    for name, command, clause in POLICIES:
        op.execute(f"CREATE POLICY {name} ON job_dependencies FOR {command} {clause}")


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_study_id'))
        batch_op.drop_column('structure_from_id')
        batch_op.drop_column('study_id')
    op.drop_table('job_dependencies')
