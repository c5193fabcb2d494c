"""The one function that changes a job's status, and writes the event that says so."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from orion_cli.db.models import Job, JobEvent, now_utc
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
    session.add(job)
    session.add(event)
    return event
