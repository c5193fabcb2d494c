"""Queries and user actions on existing jobs: list, show, cancel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlmodel import Session, col, select

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt, JobEvent, JobResult, now_utc
from orion_cli.errors import RaceLost, UsageError
from orion_cli.identity import current_user
from orion_cli.schedulers import scheduler_for
from orion_cli.services.group import check_role
from orion_cli.services.lifecycle import note_many, transition
from orion_cli.states import JobStatus

T = TypeVar("T")


def _get(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise UsageError(f"no job with id {job_id}", "`orion ls` lists the jobs")
    return job


def _get_own(session: Session, job_id: int, verb: str) -> Job:
    """The job ``job_id`` if it belongs to the user running orion; else a usage error."""
    job = _get(session, job_id)
    me = current_user()
    if job.owner != me:
        raise UsageError(f"job {job_id} belongs to {job.owner}; you ({me}) cannot {verb} it",
                         f"ask {job.owner}, or leave it: `orion ls` shows your own jobs")
    check_role(session, me)
    return job


def show_job(settings: Settings, job_id: int) -> dict[str, Any]:
    from orion_cli.db.session import session_scope

    with session_scope(settings.resolved_database_url) as session:
        job = _get(session, job_id)
        data = job.model_dump(exclude={"input_structure", "events_offset"})
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat()
        result = session.exec(select(JobResult).where(JobResult.job_id == job_id)).first()
        from orion_cli.services.dependencies import links_of

        data.update(links_of(session, job))
        data["result"] = None
        if result is not None:
            data["result"] = result.model_dump(exclude={"id", "job_id", "created_at"})
        events = session.exec(
            select(JobEvent).where(JobEvent.job_id == job_id).order_by(col(JobEvent.id))
        ).all()
        attempts = session.exec(
            select(JobAttempt).where(JobAttempt.job_id == job_id).order_by(col(JobAttempt.attempt))
        ).all()
        data["attempts"] = [
            {"attempt": a.attempt, "scheduler_job_id": a.scheduler_job_id, "status": a.status,
             "reason": a.reason, "walltime_s": a.walltime_s, "mem_mb": a.mem_mb,
             "raw_state": a.raw_state, "message": a.message,
             "submitted_at": a.submitted_at.isoformat() if a.submitted_at else None,
             "finished_at": a.finished_at.isoformat() if a.finished_at else None}
            for a in attempts
        ]
        data["events"] = [
            {"at": e.at.isoformat(), "from": e.from_status, "to": e.to_status,
             "reason": e.reason, "source": e.source, "message": e.message,
             "attempt": e.attempt, "actor": e.actor}
            for e in events
        ]
        return data


def audit_events(settings: Settings, user: str = "", since_s: int | None = None,
                 limit: int = 100) -> list[dict[str, Any]]:
    """The newest recorded actions on any job of the database, newest first.

    ``user`` keeps the actions whose actor or job owner is that user.
    """
    from datetime import timedelta

    from orion_cli.db.session import session_scope

    query = select(JobEvent, Job.name, Job.owner).join(Job, col(Job.id) == JobEvent.job_id)
    if user:
        query = query.where((col(JobEvent.actor) == user) | (col(Job.owner) == user))
    if since_s is not None:
        query = query.where(col(JobEvent.at) >= now_utc() - timedelta(seconds=since_s))
    query = query.order_by(col(JobEvent.id).desc()).limit(limit)
    with session_scope(settings.resolved_database_url) as session:
        return [{"at": e.at.isoformat(), "job_id": e.job_id, "job_name": name, "owner": owner,
                 "actor": e.actor, "source": e.source, "from": e.from_status,
                 "to": e.to_status, "reason": e.reason, "message": e.message}
                for e, name, owner in session.exec(query).all()]


def _cancellable(job: Job) -> bool:
    status = JobStatus(job.status)
    return not status.is_final or (status is JobStatus.FAILED and job.next_attempt_at is not None)


def again_on_race(work: Callable[[], T], tries: int = 3) -> T:
    """Run ``work`` (one whole transaction) again when another process changed its jobs.

    A poll that read a job before the user acted loses: its own write fails, and the
    user's action is applied to the job as it now stands.
    """
    for attempt in range(1, tries + 1):
        try:
            return work()
        except RaceLost:
            if attempt == tries:
                raise
    raise AssertionError("unreachable")


def cancel_jobs(settings: Settings, job_ids: list[int],
                with_dependents: bool = False) -> list[str]:
    """Cancel each job that has not ended (or whose retry is pending); one line per job.

    ``with_dependents`` cancels every job waiting for them too (those not ended yet).
    """
    return again_on_race(lambda: _cancel_jobs(settings, job_ids, with_dependents))


def _cancel_jobs(settings: Settings, job_ids: list[int], with_dependents: bool) -> list[str]:
    from orion_cli.db.session import session_scope
    from orion_cli.services.dependencies import children_of, descendants

    lines = []
    with session_scope(settings.resolved_database_url) as session:
        jobs = [_get_own(session, job_id, "cancel") for job_id in job_ids]
        for job in jobs:
            if not _cancellable(job):
                raise UsageError(f"job {job.id} is already {job.status}", "nothing to cancel")
        if with_dependents:
            jobs += [job for job in (_get_own(session, child, "cancel") for child in
                                     descendants(session, job_ids)) if _cancellable(job)]
        else:
            waiting = {child for child, _, kind in children_of(session, job_ids)
                       if kind == "afterok" and child not in job_ids
                       and _cancellable(_get(session, child))}
            if waiting:
                which = ", ".join(map(str, sorted(waiting)))
                lines.append(f"jobs {which} wait for these: the next `orion poll` cancels "
                             "them (dependency_failed); --with-dependents cancels them now")
        for job in jobs:
            active = JobStatus(job.status).is_active and job.scheduler_job_id
            job.next_attempt_at = None
            # recorded first: the write locks the row until the commit, so a poll that sees
            # the scheduler's CANCELLED meanwhile waits, then finds the job cancelled here
            transition(session, job, JobStatus.CANCELLED, source="user",
                       message="cancelled with orion cancel")
            session.flush()
            if active:
                scheduler_for(settings, job.scheduler).cancel([job.scheduler_job_id or ""])
            lines.append(f"cancelled job {job.id}")
    return lines


def retry_jobs(settings: Settings, job_ids: list[int]) -> list[str]:
    """Submit a new attempt of failed or cancelled jobs now, whatever the reason.

    Each job is submitted and recorded in a transaction of its own, so that a job that
    races with a poller never takes the record of another job's submission with it.
    """
    from orion_cli.db.session import session_scope

    with session_scope(settings.resolved_database_url) as session:
        for job in [_get_own(session, job_id, "retry") for job_id in job_ids]:
            _check_retryable(job)
    return [again_on_race(lambda job_id=job_id: _retry_one(settings, job_id))  # type: ignore[misc]
            for job_id in job_ids]


def _check_retryable(job: Job) -> None:
    if job.status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
        raise UsageError(f"job {job.id} is {job.status}",
                         "only failed or cancelled jobs can be retried")


def _retry_one(settings: Settings, job_id: int) -> str:
    from orion_cli.db.session import session_scope
    from orion_cli.services.retry import resubmit

    with session_scope(settings.resolved_database_url) as session:
        job = _get_own(session, job_id, "retry")
        _check_retryable(job)
        scheduler = scheduler_for(settings, job.scheduler)
        return resubmit(session, settings, job, scheduler, now_utc(), manual=True)


def control_jobs(settings: Settings, job_ids: list[int], action: str,
                 priority: int | None = None) -> list[str]:
    """Hold, release or re-prioritise queued jobs (``action``: hold | release | priority)."""
    from orion_cli.batch import nice_for_priority
    from orion_cli.db.session import session_scope

    if priority is not None and not 0 <= priority <= 20:
        raise UsageError(f"priority {priority} is out of range", "use 0..20 (20 = most urgent)")
    with session_scope(settings.resolved_database_url) as session:
        verb = "change the priority of" if action == "priority" else action
        jobs = [_get_own(session, job_id, verb) for job_id in job_ids]
        for job in jobs:
            if job.status != JobStatus.QUEUED.value or not job.scheduler_job_id:
                raise UsageError(f"job {job.id} is {job.status}",
                                 f"only queued jobs can be given {action}")
        by_scheduler: dict[str, list[Job]] = {}
        for job in jobs:
            by_scheduler.setdefault(job.scheduler, []).append(job)
        for name, group in by_scheduler.items():
            scheduler = scheduler_for(settings, name)
            ids = [job.scheduler_job_id or "" for job in group]
            if action == "hold":
                scheduler.hold(ids)
            elif action == "release":
                scheduler.release(ids)
            else:
                scheduler.set_nice(ids, nice_for_priority(priority or 0))
            for job in group:
                if action == "priority":
                    job.priority = priority or 0
                else:
                    job.held = action == "hold"
                session.add(job)
        note_many(session, [(job, f"orion {action}" + (f" {priority}" if priority is not None
                                                        else "")) for job in jobs],
                  source="user")
        return [f"job {job.id}: {action}" + (f" {priority}" if priority is not None else "")
                for job in jobs]
