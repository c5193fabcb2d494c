"""Rows already holding an unreadable time (PostgreSQL's 'infinity') do not crash the readers
(issue 23, B6): ``audit``, ``stats --all-users`` and ``show`` clamp it and say so."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import orion, orion_json


def admin_sql(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # no trigger rewrites the time
        conn.execute(statement)


@pytest.mark.postgres
@pytest.mark.parametrize("when", ["infinity", "-infinity"])
def test_infinite_event_and_job_times_are_read(
    when: str,
    postgres_url: str,
    orion_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORION_DATABASE_URL", postgres_url)
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    orion("db", "upgrade")
    structure = tmp_path / "Cu.xyz"
    structure.write_text("2\n\nCu 0 0 0\nCu 2.5 0 0\n")
    job_id = orion_json("submit", str(structure), "-e", "mock", "--hold")["id"]
    admin_sql(
        postgres_url,
        "INSERT INTO job_event (job_id, from_status, to_status, source, attempt, at, actor)"
        f" SELECT id, 'queued', 'queued', 'user', 1, '{when}', owner FROM job WHERE id = {job_id}",
    )
    admin_sql(postgres_url, f"UPDATE job SET submitted_at = '{when}' WHERE id = {job_id}")
    for args in (["audit"], ["stats", "--all-users"], ["show", str(job_id)], ["ls"]):
        result = orion(*args, expect=None)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert "Traceback" not in result.output
    assert "infinity (unreadable time)" in orion("show", str(job_id)).output
    assert "infinity (unreadable time)" in orion("audit").output
    shown = orion_json("show", str(job_id))
    assert shown["submitted_at"].endswith("(unreadable time)") and shown["queue_wait_s"] is None
