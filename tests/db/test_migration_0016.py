"""Migration 0016 (job_attempt.resources): it applies and reverts on both databases, and an
attempt row written before it keeps its walltime and memory (its resources read NULL)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlmodel import Session

from orion_cli.db.models import Job
from orion_cli.db.session import MIGRATIONS_DIR, SCHEMA_HEAD, get_engine, upgrade
from tests.conftest import empty_schema


def _columns(engine) -> set[str]:  # type: ignore[no-untyped-def]
    return {column["name"] for column in inspect(engine).get_columns("job_attempt")}


def test_0016_applies_and_reverts(database_url: str) -> None:
    engine = get_engine(database_url)
    empty_schema(engine)
    assert upgrade(engine, "0015") == (None, "0015")
    assert "resources" not in _columns(engine)
    with Session(engine) as session:  # the job table is the same at 0015 and 0016
        job = Job(name="old", engine="mock", status="failed", owner="me")
        session.add(job)
        session.commit()
        job_id = job.id
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO job_attempt (job_id, attempt, walltime_s, mem_mb, status) "
                "VALUES (:j, 1, 600, 300, 'failed')"
            ),
            {"j": job_id},
        )
    assert upgrade(engine) == ("0015", SCHEMA_HEAD) and SCHEMA_HEAD == "0016"
    assert "resources" in _columns(engine)
    with engine.connect() as conn:
        row = conn.execute(text("SELECT walltime_s, mem_mb, resources FROM job_attempt")).one()
    assert tuple(row) == (600, 300, None)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0015")
        conn.commit()
    assert "resources" not in _columns(engine)
    assert upgrade(engine) == ("0015", SCHEMA_HEAD)  # and up again
