"""job_tag: several tags per job

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00

``job_tag`` holds every tag of a job (``submit --tag a --tag b``); ``job.tag`` keeps the
first, as before. Existing tags are copied over. On PostgreSQL the rows get the same
row-level security as ``job_dependencies``: everyone reads, a user adds or removes only
tags of their own jobs.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OWN_JOB = "EXISTS (SELECT 1 FROM job WHERE job.id = job_id AND job.owner = current_user)"
POLICIES = [
    ("orion_read", "SELECT", "USING (true)"),
    ("orion_insert_own", "INSERT", f"WITH CHECK ({OWN_JOB})"),
    ("orion_delete_own", "DELETE", f"USING ({OWN_JOB})"),
]


def upgrade() -> None:
    op.create_table(
        'job_tag',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('tag', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('job_id', 'tag'),
    )
    with op.batch_alter_table('job_tag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_tag_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_tag_tag'), ['tag'], unique=False)
    op.execute("INSERT INTO job_tag (job_id, tag) SELECT id, tag FROM job WHERE tag <> ''")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE job_tag ENABLE ROW LEVEL SECURITY")
    for name, command, clause in POLICIES:
        op.execute(f"CREATE POLICY {name} ON job_tag FOR {command} {clause}")


def downgrade() -> None:
    op.drop_table('job_tag')
