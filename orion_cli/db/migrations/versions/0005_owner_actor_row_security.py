"""owner index, event actor, row-level security on PostgreSQL

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:00:00

On PostgreSQL each table gets row-level security: every user reads the group's rows, and
changes only rows of their own jobs (``owner = current_user``, the PostgreSQL role, which a
group database names like the Unix user). ``job_event`` is append-only for everyone. The
table owner (the admin who runs ``orion db upgrade``) and superusers are not bound by the
policies (PostgreSQL's rule); ``orion db grant USER`` gives a user what orion needs.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OWN_JOB = "EXISTS (SELECT 1 FROM job WHERE job.id = job_id AND job.owner = current_user)"
POLICIES = {
    "job": [
        ("orion_read", "SELECT", "USING (true)"),
        ("orion_insert_own", "INSERT", "WITH CHECK (owner = current_user)"),
        ("orion_update_own", "UPDATE",
         "USING (owner = current_user) WITH CHECK (owner = current_user)"),
        ("orion_delete_own", "DELETE", "USING (owner = current_user)"),
    ],
    "job_attempt": [
        ("orion_read", "SELECT", "USING (true)"),
        ("orion_insert_own", "INSERT", f"WITH CHECK ({OWN_JOB})"),
        ("orion_update_own", "UPDATE", f"USING ({OWN_JOB}) WITH CHECK ({OWN_JOB})"),
        ("orion_delete_own", "DELETE", f"USING ({OWN_JOB})"),
    ],
    "job_result": [
        ("orion_read", "SELECT", "USING (true)"),
        ("orion_insert_own", "INSERT", f"WITH CHECK ({OWN_JOB})"),
        ("orion_update_own", "UPDATE", f"USING ({OWN_JOB}) WITH CHECK ({OWN_JOB})"),
        ("orion_delete_own", "DELETE", f"USING ({OWN_JOB})"),
    ],
    "job_event": [  # the audit trail: appended to, never changed
        ("orion_read", "SELECT", "USING (true)"),
        ("orion_insert_own", "INSERT", f"WITH CHECK (actor = current_user AND {OWN_JOB})"),
    ],
    "orion_meta": [("orion_read", "SELECT", "USING (true)")],
}


def upgrade() -> None:
    with op.batch_alter_table('job_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default=''))
        batch_op.create_index(batch_op.f('ix_job_event_at'), ['at'], unique=False)
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_owner'), ['owner'], unique=False)
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, policies in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        for name, command, clause in policies:
            op.execute(f"CREATE POLICY {name} ON {table} FOR {command} {clause}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, policies in POLICIES.items():
            for name, _, _ in policies:
                op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_owner'))
    with op.batch_alter_table('job_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_event_at'))
        batch_op.drop_column('actor')
