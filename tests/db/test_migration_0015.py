"""Migration 0015 (member guards, PostgreSQL only): it applies and reverts on both
databases, and on PostgreSQL installs the triggers and the own-parent edge policy. What the
guards stop is shown with two real members in tests/test_group_hostile.py."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from orion_cli.db.session import MIGRATIONS_DIR, SCHEMA_HEAD, get_engine, upgrade
from tests.conftest import empty_schema


def _triggers(engine) -> set[str]:  # type: ignore[no-untyped-def]
    if engine.dialect.name != "postgresql":
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT tgrelid::regclass || ':' || tgname FROM pg_trigger "
                "WHERE tgname LIKE 'orion_%'"
            )
        )
        return {row[0] for row in rows}


def test_0015_applies_and_reverts(database_url: str) -> None:
    engine = get_engine(database_url)
    empty_schema(engine)
    assert upgrade(engine, "0014") == (None, "0014")
    assert _triggers(engine) == set()
    assert upgrade(engine) == ("0014", SCHEMA_HEAD)
    if engine.dialect.name == "postgresql":
        assert "job_event:orion_event_check" in _triggers(engine)
        assert "job:orion_server_id" in _triggers(engine) and len(_triggers(engine)) == 8
        with engine.connect() as conn:
            check = conn.execute(
                text(
                    "SELECT with_check FROM pg_policies WHERE tablename = 'job_dependencies' "
                    "AND policyname = 'orion_insert_own'"
                )
            ).scalar_one()
        assert "parent_id" in check
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0014")
        conn.commit()
    assert _triggers(engine) == set()
    assert upgrade(engine) == ("0014", SCHEMA_HEAD)  # and up again
