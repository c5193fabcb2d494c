"""Migration 0010: the "submit outcome unknown" word leaves raw_state for its own column."""

from __future__ import annotations

from sqlalchemy import text

from orion_cli.db.session import SCHEMA_HEAD, get_engine, upgrade
from tests.conftest import empty_schema


def test_submit_unknown_word_becomes_a_column(database_url: str) -> None:
    engine = get_engine(database_url)
    empty_schema(engine)  # start from nothing, even where a fixture made a schema
    upgrade(engine, "0008")
    with engine.begin() as conn:
        for name, raw in (("unknown", "SUBMIT_UNKNOWN"), ("timed-out", "TIMEOUT")):
            conn.execute(
                text(
                    "INSERT INTO job (name, owner, engine, structure_source, formula, status,"
                    " scheduler, partition, account, qos, priority, walltime_s, mem_mb, nodes,"
                    " ntasks, cpus_per_task, progress_pct, current_step, workdir, attempt,"
                    " max_retries, events_offset, created_at, updated_at, raw_state)"
                    " VALUES (:name, 'me', 'emt', '', 'Cu', 'failed', 'slurm', '', '', '', 10,"
                    " 3600, 0, 1, 1, 1, 0, '', '', 1, 3, 0, '2026-01-01 00:00:00',"
                    " '2026-01-02 00:00:00', :raw)"
                ),
                {"name": name, "raw": raw},
            )
    assert upgrade(engine) == ("0008", SCHEMA_HEAD)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT name, raw_state, submit_unknown_since IS NOT NULL, gpus, exclusive,"
                " constraints, queue, mem_per_cpu_mb FROM job ORDER BY name"
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("timed-out", "TIMEOUT", False, 0, False, "", "", 0),
        ("unknown", None, True, 0, False, "", "", 0),
    ]
