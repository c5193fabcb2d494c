"""Whether the database role orion connects as may write this Unix user's jobs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from orion_cli.errors import UsageError


def check_role(session: Any, unix_user: str) -> None:
    """On PostgreSQL, refuse to write as a role that row-level security would not let write.

    A role bound by the policies writes only rows whose owner is the role's own name; the
    jobs orion writes carry the Unix account's name. Superusers and the tables' owner are
    not bound.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    row = session.execute(
        text(
            "SELECT current_user, r.rolsuper OR r.rolbypassrls, "
            "pg_get_userbyid(c.relowner) = current_user, c.relrowsecurity "
            "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.relname = 'job' "
            "AND c.relnamespace = 'public'::regnamespace"
        )
    ).first()
    if row is None:
        return
    role, exempt, owns, secured = row
    if secured and not exempt and not owns and role != unix_user:
        raise UsageError(
            f"you connect to the group database as role '{role}' but run as Unix user "
            f"'{unix_user}': row-level security lets a role write only its own jobs",
            f"connect as role '{unix_user}' (the admin runs `orion db grant {unix_user}`)",
        )
