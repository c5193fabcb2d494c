"""Everything an attempt touches changes through lifecycle, with an event; raw_state holds
only the scheduler's own words."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from orion_cli.config import load_settings
from orion_cli.db.models import Job, JobEvent
from orion_cli.db.session import session_scope
from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown
from orion_cli.schedulers.base import JobInfo
from orion_cli.schedulers.local import LocalScheduler
from orion_cli.states import FailureReason, JobStatus
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


def _rows() -> dict[int, tuple[Any, ...]]:
    with session_scope(load_settings().resolved_database_url) as session:
        return {
            job.id or 0: (job.raw_state, job.updated_at, job.status)
            for job in session.exec(select(Job))
        }


def _events(job_id: int) -> list[JobEvent]:
    with session_scope(load_settings().resolved_database_url) as session:
        return list(
            session.exec(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
        )  # type: ignore[arg-type]


def test_submit_stores_no_invented_state_and_the_first_poll_writes_nothing(
    orion_home: Path, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    frames = tmp_path / "many.xyz"
    frames.write_text("".join(f"1\nframe {i}\nCu 0 0 {i}\n" for i in range(30)))
    ids = orion_json("submit", str(frames), "-e", "mock", "--hold")["ids"]
    before = _rows()
    assert len(before) == 30 and all(raw is None for raw, _, _ in before.values())
    events_before = sum(len(_events(i)) for i in ids)
    report = orion_json("poll")
    after = _rows()
    assert after == before, "the first poll rewrote rows of jobs the scheduler holds pending"
    assert sum(len(_events(i)) for i in ids) == events_before
    assert report["checked"] == 30
    orion("cancel", *map(str, ids))


def _fail_first_attempt(monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    real_query = LocalScheduler.query

    def timed_out(self: LocalScheduler, ids: list[str]) -> dict[str, JobInfo]:
        infos = real_query(self, ids)
        if first in infos:
            infos[first] = JobInfo(first, "TIMEOUT", JobStatus.FAILED, FailureReason.TIMEOUT)
        return infos

    monkeypatch.setattr(LocalScheduler, "query", timed_out)


def test_an_unanswered_retry_is_marked_with_an_event_and_then_adopted(
    orion_home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    job_id = orion_json("submit", CU, "-e", "mock", "-p", "duration_s=60")["id"]
    first = orion_json("show", str(job_id))["scheduler_job_id"]
    _fail_first_attempt(monkeypatch, first)
    real_submit = LocalScheduler.submit
    sent: list[str] = []

    def no_answer(self: LocalScheduler, *args: Any, **kwargs: Any) -> str:
        sent.append(real_submit(self, *args, **kwargs))  # it reached the scheduler
        raise SubmitOutcomeUnknown("sbatch did not answer within its time limit")

    monkeypatch.setattr(LocalScheduler, "submit", no_answer)
    orion("poll")
    job = orion_json("show", str(job_id))
    assert (job["status"], job["failure_reason"], job["attempt"]) == ("failed", "timeout", 1)
    assert job["submit_unknown_since"] is not None
    assert job["raw_state"] == "TIMEOUT"  # the scheduler's word for the failed attempt
    note = _events(job_id)[-1]
    assert note.from_status == note.to_status == "failed"
    assert "submit outcome unknown" in (note.message or "") and note.source == "retry"

    monkeypatch.setattr(LocalScheduler, "submit", real_submit)
    orion("poll")
    job = orion_json("show", str(job_id))
    assert (job["status"], job["attempt"], job["scheduler_job_id"]) == ("queued", 2, sent[0])
    assert job["submit_unknown_since"] is None and job["raw_state"] is None
    last = _events(job_id)[-1]
    assert (last.from_status, last.to_status, last.source) == ("failed", "queued", "recovery")
    assert f"found local job {sent[0]}" in (last.message or "")
    orion("cancel", str(job_id))


def test_a_refused_retry_changes_the_reason_with_an_event(
    orion_home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = orion_json("submit", CU, "-e", "mock", "-p", "duration_s=60")["id"]
    first = orion_json("show", str(job_id))["scheduler_job_id"]
    _fail_first_attempt(monkeypatch, first)

    def refused(self: LocalScheduler, *args: Any, **kwargs: Any) -> str:
        raise SchedulerError("sbatch: error: Socket timed out on send/recv operation")

    monkeypatch.setattr(LocalScheduler, "submit", refused)
    orion("poll")
    job = orion_json("show", str(job_id))
    assert (job["status"], job["failure_reason"]) == ("failed", "submit_error")
    events = _events(job_id)
    failed = [e for e in events if e.to_status == "failed" and e.reason]
    assert [e.reason for e in failed] == ["timeout", "submit_error"]
    assert failed[-1].from_status == "failed"  # a note: the status stays, the reason changes
    assert "Socket timed out" in (failed[-1].message or "")
    due = [e.message or "" for e in events if (e.message or "").startswith("retry due at")]
    # the note says when the attempt can begin too (", begins after N s, at T") when it waits
    assert [text[text.index("(attempt") :].split(",")[0].rstrip(")") for text in due] == [
        "(attempt 2",
        "(attempt 3",
    ]
    next_at = datetime.fromisoformat(job["next_attempt_at"]).astimezone(UTC)
    assert due[-1].startswith(f"retry due at {next_at:%Y-%m-%d %H:%M:%S} UTC (attempt 3")
    orion("cancel", str(job_id))
    cancelled = orion_json("show", str(job_id))
    assert (cancelled["status"], cancelled["next_attempt_at"]) == ("cancelled", None)
