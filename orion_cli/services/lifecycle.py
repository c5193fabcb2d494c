"""The one function that changes a job's status, and writes the event that says so."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from orion_cli.db.models import Job, JobAttempt, JobEvent, now_utc
from orion_cli.errors import IllegalTransition
from orion_cli.states import FailureReason, JobStatus, can_transition


def transition(
    session: Session,
    job: Job,
    new: JobStatus,
    *,
    source: str,
    reason: FailureReason | None = None,
    message: str | None = None,
    at: datetime | None = None,
) -> JobEvent:
    """Move ``job`` to ``new`` (checked against the transition table) and record the event."""
    at = at or now_utc()
    old = JobStatus(job.status)
    if not can_transition(old, new):
        raise IllegalTransition(
            f"job {job.id}: {old} → {new} is not allowed",
            "this is a bug or a race between two orion processes; run `orion poll` again",
        )
    job.status = new.value
    job.failure_reason = reason.value if reason else None
    if message and new is JobStatus.FAILED:
        job.error_message = message
    if new is JobStatus.QUEUED:
        job.submitted_at = at
        job.finished_at = None
        job.next_attempt_at = None
        if old is not JobStatus.CREATED:  # a new attempt starts from scratch
            job.error_message = None
            job.exit_code = None
            job.progress_pct = 0.0
            job.current_step = ""
    elif new is JobStatus.RUNNING:
        job.started_at = job.started_at or at
    elif new.is_final:
        job.finished_at = at
        if new is JobStatus.COMPLETED:
            job.progress_pct = 100.0
    job.updated_at = at
    event = JobEvent(
        job_id=job.id or 0,
        from_status=old.value,
        to_status=new.value,
        reason=reason.value if reason else None,
        source=source,
        message=message,
        attempt=job.attempt,
        at=at,
    )
    _track_attempt(session, job, old, new, reason, message, at)
    session.add(job)
    session.add(event)
    return event


def _track_attempt(session: Session, job: Job, old: JobStatus, new: JobStatus,
                   reason: FailureReason | None, message: str | None, at: datetime) -> None:
    """Keep the job's attempt history in step with its status."""
    if old is JobStatus.FAILED and new is JobStatus.CANCELLED:
        return  # cancelling a pending retry: the failed attempt's record stands
    row = None
    if old is not JobStatus.CREATED:  # a job being created has no attempt yet: no query
        row = session.exec(select(JobAttempt).where(
            JobAttempt.job_id == job.id, JobAttempt.attempt == job.attempt)).first()
    if row is None:
        if new is JobStatus.CANCELLED and old is JobStatus.CREATED:
            return  # never submitted, nothing was attempted
        row = JobAttempt(job_id=job.id or 0, attempt=job.attempt, walltime_s=job.walltime_s,
                         mem_mb=job.mem_mb)
    if new is JobStatus.QUEUED:
        row.scheduler_job_id = job.scheduler_job_id
        row.submitted_at = at
    elif new is JobStatus.RUNNING:
        row.started_at = at
    row.status = new.value
    row.raw_state = job.raw_state
    if new.is_final:
        row.reason = reason.value if reason else None
        row.message = message
        row.finished_at = at
    session.add(row)
