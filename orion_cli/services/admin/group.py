"""A PostgreSQL database shared by a research group: roles, grants, who may write what.

Row-level security (migration 0005) lets each PostgreSQL role change only the rows of jobs
whose ``owner`` is that role, so a group database names each user's role like their Unix
account. The admin who ran ``orion db upgrade`` owns the tables and is not bound by the
policies (nor is a superuser); ``grant`` gives a member what orion needs and no more.
"""

from __future__ import annotations

import re
from typing import Any

from orion_cli.db.session import ready_engine, translated_errors
from orion_cli.errors import UsageError

#: what a member may do per table; row-level security narrows it to their own jobs
MEMBER_GRANTS = {
    "job": "SELECT, INSERT, UPDATE, DELETE",
    "job_attempt": "SELECT, INSERT, UPDATE, DELETE",
    "job_result": "SELECT, INSERT, UPDATE, DELETE",
    "job_dependencies": "SELECT, INSERT, DELETE",
    "job_tag": "SELECT, INSERT, DELETE",
    "job_event": "SELECT, INSERT",  # the audit trail is append-only
    "orion_meta": "SELECT",
    "alembic_version": "SELECT",
}
ROLE_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,62}")


def grant_statements(role: str, database: str, quote: Any) -> list[str]:
    """SQL that lets ``role`` use orion on ``database`` (``quote`` quotes an identifier).

    >>> grant_statements("ann", "lab", lambda s: f'"{s}"')[:2]
    ['GRANT CONNECT ON DATABASE "lab" TO "ann"', 'GRANT USAGE ON SCHEMA public TO "ann"']
    """
    who = quote(role)
    return [
        f"GRANT CONNECT ON DATABASE {quote(database)} TO {who}",
        f"GRANT USAGE ON SCHEMA public TO {who}",
        *(f"GRANT {rights} ON {table} TO {who}" for table, rights in MEMBER_GRANTS.items()),
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
    ]


def grant(url: str, roles: list[str]) -> list[str]:
    """Create each missing login role and grant it orion's tables; one line per role."""
    from sqlalchemy import text

    for role in roles:
        if not ROLE_NAME.fullmatch(role):
            raise UsageError(
                f"'{role}' is not a user name orion can use as a role",
                "give the member's Unix account name (lower case)",
            )
    engine = ready_engine(url)
    if engine.dialect.name != "postgresql":
        raise UsageError(
            "orion db grant is for a PostgreSQL group database",
            "an SQLite file belongs to one user; share PostgreSQL instead",
        )
    quote = engine.dialect.identifier_preparer.quote
    lines = []
    with translated_errors(url), engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        me, owner, superuser = conn.execute(
            text(
                "SELECT current_user, pg_get_userbyid(c.relowner), r.rolsuper "
                "FROM pg_class c, pg_roles r WHERE c.relname = 'job' "
                "AND c.relnamespace = 'public'::regnamespace AND r.rolname = current_user"
            )
        ).one()
        if me != owner and not superuser:  # a member: PostgreSQL would grant nothing
            raise UsageError(
                f"only the admin who owns orion's tables ({owner}) can grant; you are {me}",
                f"ask {owner} to run `orion db grant {' '.join(roles)}`",
            )
        for role in roles:
            exists = conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
            ).first()
            if not exists:
                conn.exec_driver_sql(f"CREATE ROLE {quote(role)} LOGIN")
            for statement in grant_statements(role, database, quote):
                conn.exec_driver_sql(statement)
            lines.append(f"{role}: {'granted' if exists else 'role created and granted'}")
    return lines
