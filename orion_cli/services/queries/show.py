"""Queries on existing jobs: show one, the audit trail (actions live in actions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt, JobEvent, JobResult, JobTag, now_utc
from orion_cli.db.pg_times import is_unreadable, shown_time
from orion_cli.db.session import session_scope
from orion_cli.engines.hints import remedy
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.services.lifecycle.dependencies import links_of
from orion_cli.services.queries.derived import derived_quantities


def _get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise UsageError(f"no job with id {job_id}", "`orion ls` lists the jobs")
    return job


def job_id_for(settings: Settings, scheduler_job_id: str) -> int:
    """The orion id of the job the scheduler knows as ``scheduler_job_id`` (``103_29``).

    The caller's own job comes first: on a group database another member may write a row
    claiming any scheduler id.
    """

    me = current_user()
    with session_scope(settings.resolved_database_url) as session:
        job = session.exec(
            select(Job)
            .where(Job.scheduler_job_id == scheduler_job_id)
            .order_by((Job.owner == me).desc(), col(Job.id).desc())  # type: ignore[attr-defined]
        ).first()
        if job is None or job.id is None:
            raise UsageError(
                f"no job has scheduler id {scheduler_job_id}",
                "`orion ls` shows each job's scheduler id",
            )
        return job.id


def show_job(settings: Settings, job_id: int) -> dict[str, Any]:

    with session_scope(settings.resolved_database_url) as session:
        job = _get(session, job_id)
        dumped = job.model_dump(exclude={"input_structure", "events_offset"})
        # the columns in the model's order (a row's dump follows the order its attributes
        # were loaded in, which depends on what else this process did with it)
        data = {name: dumped[name] for name in Job.model_fields if name in dumped}
        data["hint"] = failure_hint(job)
        data["queue_wait_s"] = seconds_between(job.submitted_at, job.started_at)
        data["run_s"] = seconds_between(job.started_at, job.finished_at)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = shown_time(value)
        data["tags"] = list(
            session.exec(select(JobTag.tag).where(JobTag.job_id == job_id).order_by(col(JobTag.id)))
        )
        result = session.exec(select(JobResult).where(JobResult.job_id == job_id)).first()

        data.update(links_of(session, job))
        data["result"] = None
        if result is not None:
            data["result"] = result.model_dump(exclude={"id", "job_id", "created_at"})
            # computed from the stored result: volume, pressure, final cell
            data["result"]["derived"] = derived_quantities(data["result"])
        events = session.exec(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
        ).all()
        attempts = session.exec(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(col(JobAttempt.attempt))
        ).all()
        data["attempts"] = [
            {
                "attempt": a.attempt,
                "scheduler_job_id": a.scheduler_job_id,
                "status": a.status,
                "reason": a.reason,
                "walltime_s": a.walltime_s,
                "mem_mb": a.mem_mb,
                "resources": a.resources,
                "raw_state": a.raw_state,
                "message": a.message,
                "submitted_at": shown_time(a.submitted_at),
                "started_at": shown_time(a.started_at),
                "finished_at": shown_time(a.finished_at),
            }
            for a in attempts
        ]
        data["events"] = [
            {
                "at": shown_time(e.at),
                "from": e.from_status,
                "to": e.to_status,
                "reason": e.reason,
                "source": e.source,
                "message": e.message,
                "attempt": e.attempt,
                "actor": e.actor,
            }
            for e in events
        ]
        return data


def failure_hint(job: Any) -> str | None:
    """The usual remedy for a job that failed in its engine (None: none known, or not failed)."""
    if job.status != "failed" or job.failure_reason != "engine_error":
        return None
    return remedy(job.engine, job.error_message, job.id or "ID")


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from ``start`` to ``end`` (SQLite returns naive UTC), None if either is unknown.

    Never negative: ``submitted_at`` is the login node's clock, ``started_at`` the compute
    node's; when they disagree by more than the wait, the wait is 0.

    >>> from datetime import UTC
    >>> seconds_between(datetime(2026, 1, 1, 10), datetime(2026, 1, 1, 10, 1, tzinfo=UTC))
    60.0
    >>> seconds_between(datetime(2026, 1, 1, 10, 0, 2), datetime(2026, 1, 1, 10))
    0.0
    >>> from orion_cli.db.pg_times import UNREADABLE_AFTER  # what 'infinity' is read as
    >>> seconds_between(datetime(2026, 1, 1, 10), UNREADABLE_AFTER) is None
    True
    """
    if start is None or end is None or is_unreadable(start) or is_unreadable(end):
        return None
    aware = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end)]
    return max(0.0, round((aware[1] - aware[0]).total_seconds(), 3))


def audit_events(
    settings: Settings, user: str = "", since_s: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest recorded actions on any job of the database, newest first.

    ``user`` keeps the actions whose actor or job owner is that user.
    """
    from datetime import timedelta

    query = select(JobEvent, Job.name, Job.owner).join(Job, col(Job.id) == JobEvent.job_id)
    if user:
        query = query.where((col(JobEvent.actor) == user) | (col(Job.owner) == user))
    if since_s is not None:
        query = query.where(col(JobEvent.at) >= now_utc() - timedelta(seconds=since_s))
    query = query.order_by(col(JobEvent.id).desc()).limit(limit)
    with session_scope(settings.resolved_database_url) as session:
        return [
            {
                "at": shown_time(e.at),
                "job_id": e.job_id,
                "job_name": name,
                "owner": owner,
                "actor": e.actor,
                "source": e.source,
                "from": e.from_status,
                "to": e.to_status,
                "reason": e.reason,
                "message": e.message,
            }
            for e, name, owner in session.exec(query).all()
        ]
