"""Migrations and models agree, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import orion_cli.db.models  # noqa: F401
from orion_cli.db import KNOWN_REVISIONS, ORION_TABLES
from orion_cli.db.session import MIGRATIONS_DIR, SCHEMA_HEAD, current_revision, get_engine
from tests.conftest import empty_schema


def test_schema_head_constant_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_current_head() == SCHEMA_HEAD
    assert tuple(s.revision for s in reversed(list(scripts.walk_revisions()))) == KNOWN_REVISIONS
    assert set(SQLModel.metadata.tables) == ORION_TABLES


def test_upgraded_database_matches_the_models(database_url: str) -> None:
    from tests.helpers import orion

    orion("db", "upgrade")
    engine = get_engine(database_url)
    assert current_revision(engine) == SCHEMA_HEAD
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_upgrade_keeps_existing_jobs(database_url: str) -> None:
    """A database created by an older orion, with jobs in it, upgrades in place."""
    from sqlalchemy import text

    from orion_cli.db.session import upgrade

    engine = get_engine(database_url)
    empty_schema(engine)  # start from nothing, even where a fixture made a schema
    upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO job (name, owner, engine, structure_source, formula, status,"
                " scheduler, partition, account, qos, priority, walltime_s, mem_mb, nodes, ntasks,"
                " cpus_per_task, progress_pct, current_step, workdir, attempt, max_retries,"
                " events_offset, created_at, updated_at) VALUES ('old', 'me', 'emt', '', 'Cu',"
                " 'completed', 'local', '', '', '', 10, 3600, 0, 1, 1, 1, 100, '', '', 1, 3, 0,"
                " '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO job_event (job_id, from_status, to_status, source,"
                " attempt, at) VALUES (1, 'running', 'completed', 'poll', 1,"
                " '2026-01-01 00:00:00')"
            )
        )
    before, after = upgrade(engine)
    assert (before, after) == ("0001", SCHEMA_HEAD)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name, retry_delay_s FROM job")).one() == ("old", 60)
        assert conn.execute(text("SELECT count(*) FROM job_event")).scalar() == 1


def test_a_new_sqlite_file_is_made_from_the_models_and_stamped(tmp_path: Path) -> None:
    """The first run builds the schema in one go; it must equal what the migrations build."""
    from sqlalchemy import text

    from orion_cli.db.session import create_sqlite, upgrade

    made, migrated = tmp_path / "made.db", tmp_path / "migrated.db"
    assert create_sqlite(made) is True
    assert create_sqlite(made) is False  # a second first run finds it there and keeps it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["made.db"]  # no scratch file left
    upgrade(get_engine(f"sqlite:///{migrated}"))

    def schema(path: Path) -> dict[str, list[tuple[str, str, int]]]:
        with get_engine(f"sqlite:///{path}").connect() as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    text("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")
                )
            ]
            indexes = [
                r[0]
                for r in conn.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type='index' AND name NOT LIKE "
                        "'sqlite_autoindex%' ORDER BY name"
                    )
                )
            ]
            return {
                "indexes": indexes,
                **{
                    t: sorted(
                        (r[1], r[2].upper(), r[3])
                        for r in conn.execute(text(f"PRAGMA table_info({t})"))
                    )
                    for t in tables
                },
            }

    assert schema(made) == schema(migrated)
    engine = get_engine(f"sqlite:///{made}")
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
        instance = conn.execute(text("SELECT value FROM orion_meta")).scalar_one()
    assert len(instance) == 6
    assert upgrade(engine) == (SCHEMA_HEAD, SCHEMA_HEAD)  # stamped: nothing left to run
