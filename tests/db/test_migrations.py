"""Migrations and models agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import orion_cli.db.models  # noqa: F401
from orion_cli.db.session import MIGRATIONS_DIR, SCHEMA_HEAD, current_revision, get_engine


def test_schema_head_constant_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_HEAD


def test_upgraded_database_matches_the_models(database_url: str) -> None:
    from tests.helpers import orion

    orion("db", "upgrade")
    engine = get_engine(database_url)
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
