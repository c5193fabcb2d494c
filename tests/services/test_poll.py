"""reconcile() as a function of rows + what the scheduler said, on both databases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from orion_cli.config import load_settings
from orion_cli.db.models import Job, JobEvent, now_utc
from orion_cli.db.session import session_scope
from orion_cli.errors import IllegalTransition, SchedulerError
from orion_cli.identity import current_user
from orion_cli.jobdir import RESULT_FILE, append_event, write_json_atomic
from orion_cli.schedulers.base import JobInfo
from orion_cli.services.lifecycle import poll as poll_module
from orion_cli.services.lifecycle.poll import PollReport, reconcile
from orion_cli.services.lifecycle.state import transition
from orion_cli.states import FailureReason, JobStatus


def make_job(url: str, workdir: Path, status: JobStatus = JobStatus.QUEUED) -> int:
    workdir.mkdir(parents=True, exist_ok=True)
    with session_scope(url) as session:
        job = Job(
            name="t",
            owner=current_user(),
            engine="mock",
            scheduler="slurm",
            scheduler_job_id="501",
            workdir=str(workdir),
            submitted_at=now_utc(),
        )
        session.add(job)
        session.flush()
        if status is not JobStatus.CREATED:
            transition(session, job, JobStatus.QUEUED, source="test")
        return job.id or 0


def run(url: str, job_id: int, info: JobInfo | None, *, later_s: float = 0) -> Job:
    with session_scope(url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        reconcile(
            session,
            [job],
            {"501": info} if info else {},
            now_utc() + timedelta(seconds=later_s),
            600,
            PollReport(),
        )
    with session_scope(url) as session:
        fresh = session.get(Job, job_id)
        assert fresh is not None
        return fresh


def test_progress_events_then_completion(database_url: str, tmp_path: Path) -> None:
    job_id = make_job(database_url, tmp_path / "j")
    append_event(tmp_path / "j", "started", attempt=1)
    append_event(tmp_path / "j", "progress", attempt=1, step="Processing", progress_pct=25.0)
    job = run(database_url, job_id, JobInfo("501", "RUNNING", JobStatus.RUNNING))
    assert (job.status, job.current_step, job.progress_pct) == ("running", "Processing", 25.0)
    write_json_atomic(tmp_path / "j" / RESULT_FILE, {"energy_ev": -1.5, "attempt": 1})
    job = run(database_url, job_id, JobInfo("501", "COMPLETED", JobStatus.COMPLETED, exit_code=0))
    assert (job.status, job.failure_reason) == ("completed", None)
    with session_scope(database_url) as session:
        events = session.exec(select(JobEvent).where(JobEvent.job_id == job_id)).all()
        assert [(e.from_status, e.to_status) for e in events] == [
            ("created", "queued"),
            ("queued", "running"),
            ("running", "completed"),
        ]


@pytest.mark.parametrize(
    "info, reason",
    [
        (JobInfo("501", "TIMEOUT", JobStatus.FAILED, FailureReason.TIMEOUT), "timeout"),
        (
            JobInfo("501", "OUT_OF_MEMORY", JobStatus.FAILED, FailureReason.OUT_OF_MEMORY),
            "out_of_memory",
        ),
        (JobInfo("501", "NODE_FAIL", JobStatus.FAILED, FailureReason.NODE_FAIL), "node_fail"),
        (JobInfo("501", "PREEMPTED", JobStatus.FAILED, FailureReason.PREEMPTED), "preempted"),
        (
            JobInfo("501", "FAILED", JobStatus.FAILED, FailureReason.EXIT_CODE, exit_code=9),
            "exit_code",
        ),
        (JobInfo("501", "COMPLETED", JobStatus.COMPLETED, exit_code=0), "engine_error"),
    ],
)
def test_failure_reasons(database_url: str, tmp_path: Path, info: JobInfo, reason: str) -> None:
    job = run(database_url, make_job(database_url, tmp_path / "j"), info)
    assert (job.status, job.failure_reason) == ("failed", reason)


def test_engine_error_from_result_wins_over_exit_code(database_url: str, tmp_path: Path) -> None:
    job_id = make_job(database_url, tmp_path / "j")
    write_json_atomic(tmp_path / "j" / RESULT_FILE, {"error": "SCF not converged"})
    job = run(
        database_url,
        job_id,
        JobInfo("501", "FAILED", JobStatus.FAILED, FailureReason.EXIT_CODE, exit_code=3),
    )
    assert (job.failure_reason, job.error_message) == ("engine_error", "SCF not converged")


def test_missing_job_is_lost_only_after_grace(database_url: str, tmp_path: Path) -> None:
    job_id = make_job(database_url, tmp_path / "j")
    assert run(database_url, job_id, None).status == "queued"  # first missing: grace starts
    assert run(database_url, job_id, None, later_s=599).status == "queued"
    job = run(database_url, job_id, None, later_s=601)
    assert (job.status, job.failure_reason) == ("failed", "lost")


def test_job_seen_again_restarts_the_grace_period(database_url: str, tmp_path: Path) -> None:
    job_id = make_job(database_url, tmp_path / "j")
    run(database_url, job_id, None)
    run(database_url, job_id, JobInfo("501", "PENDING", JobStatus.QUEUED), later_s=300)
    assert run(database_url, job_id, None, later_s=700).status == "queued"


def test_failed_scheduler_query_changes_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = make_job(database_url, tmp_path / "j")
    append_event(tmp_path / "j", "started", attempt=1)

    class Down:
        name = "slurm"

        def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
            raise SchedulerError("squeue failed: Unable to contact slurm controller")

    monkeypatch.setattr(poll_module, "scheduler_for", lambda settings, name: Down())
    report = poll_module.poll(load_settings(), now=now_utc() + timedelta(days=1))
    assert report.errors and "Unable to contact" in report.errors[0]
    with session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.status, job.events_offset) == ("queued", 0)


def test_illegal_transition_raises_and_writes_nothing(database_url: str, tmp_path: Path) -> None:
    job_id = make_job(database_url, tmp_path / "j")
    with pytest.raises(IllegalTransition), session_scope(database_url) as session:
        job = session.get(Job, job_id)
        assert job is not None
        transition(session, job, JobStatus.CANCELLED, source="test")
        transition(session, job, JobStatus.RUNNING, source="test")
    with session_scope(database_url) as session:
        assert session.get(Job, job_id).status == "queued"  # type: ignore[union-attr]


class _AllRunning:
    name = "slurm"

    def query(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        return {i: JobInfo(i, "RUNNING", JobStatus.RUNNING) for i in ids}


def _three_jobs(url: str, tmp_path: Path) -> list[int]:
    ids = []
    for i in range(3):
        job_id = make_job(url, tmp_path / f"j{i}")
        with session_scope(url) as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.scheduler_job_id = f"60{i}"
        append_event(tmp_path / f"j{i}", "started", attempt=1)
        ids.append(job_id)
    return ids


@pytest.mark.parametrize("fault", ["raises", "database refuses"])
def test_one_job_failing_never_undoes_the_others(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """A job whose handling raises (a bug), or whose row the database refuses (an integer
    too big for its column, on both databases), is recorded as an error on that job; the
    other jobs' changes are committed and the report says exit 1."""
    ids = _three_jobs(database_url, tmp_path)
    bad = ids[1]
    real = poll_module.reconcile_job

    def faulty(session, moves, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(session, moves, job, *args, **kwargs)
        if job.id == bad and fault == "raises":
            raise RuntimeError("a bug met on this job only")
        if job.id == bad:
            job.walltime_s = 2**70

    monkeypatch.setattr(poll_module, "reconcile_job", faulty)
    monkeypatch.setattr(poll_module, "scheduler_for", lambda settings, name: _AllRunning())
    report = poll_module.poll(load_settings())
    assert len(report.errors) == 1 and report.errors[0].startswith(f"job {bad}:"), report.errors
    with session_scope(database_url) as session:
        statuses = {i: session.get(Job, i).status for i in ids}  # type: ignore[union-attr]
        notes = session.exec(
            select(JobEvent)
            .where(JobEvent.job_id == bad)
            .where(JobEvent.from_status == JobEvent.to_status)
        ).all()
    assert statuses == {ids[0]: "running", bad: "queued", ids[2]: "running"}
    assert len(notes) == 1 and "poll could not" in (notes[0].message or "")


def test_a_preempted_job_is_retried_by_policy(database_url: str, tmp_path: Path) -> None:
    from orion_cli.schedulers.slurm_states import map_state

    status, reason = map_state("PREEMPTED")
    job = run(
        database_url,
        make_job(database_url, tmp_path / "j"),
        JobInfo("501", "PREEMPTED", status, reason),
    )
    assert (job.status, job.failure_reason) == ("failed", "preempted")
    assert job.next_attempt_at is not None  # like node_fail: the poller submits it again
