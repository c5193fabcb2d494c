"""``--reuse``: never compute the same calculation twice.

A job's calculation key (orion_cli.frozen) names what it computes. With ``--reuse`` a
new job whose key matches:

- a **completed** job whose result is in the database (not invalidated, not removed)
  completes at once with a copy of that result: ``reused_from = ID``, an event, no
  scheduler job;
- else an identical job still **created, queued or running**: the new job waits, with no
  scheduler job of its own; the poller gives it the result when that job completes
  (:func:`settle_waiters`), or submits it on its own when that job fails or is cancelled.

Failed jobs are never reused. ``--reuse=loose`` matches the key without the engine's code
version (a pw.x upgrade), and says so in the event. ``orion reuse invalidate`` marks
results not to be reused, with an audit event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from orion_cli.db.models import Job, JobResult, now_utc
from orion_cli.engines.base import Result
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.jobdir import RESULT_FILE, write_json_atomic
from orion_cli.services.lifecycle.state import note_many, transition
from orion_cli.states import JobStatus

ACTIVE = (JobStatus.CREATED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True)
class Source:
    """The job a new one takes its result from, and whether it is still running."""

    job_id: int
    status: str
    loose: bool

    @property
    def done(self) -> bool:
        return self.status == JobStatus.COMPLETED.value


def find_source(session: Session, record: dict[str, Any], mode: str) -> Source | None:
    """The job whose result a job with frozen ``record`` may take under ``mode``, if any.

    A completed job with a stored result wins over an active one; among each, a job that
    computed (computes) itself over one that took (waits for) another's result. A study
    may call this per point to see which points are done.
    """
    if mode == "off" or not record.get("key"):
        return None
    loose = mode == "loose"
    key_column = col(Job.loose_key) if loose else col(Job.calc_key)
    key = record["loose_key"] if loose else record["key"]
    usable = (
        select(Job)
        .where(key_column == key)
        .where(col(Job.reuse_invalid).is_(False))
        .where(col(Job.removed_at).is_(None))
    )
    done = session.exec(
        usable.join(JobResult, col(JobResult.job_id) == col(Job.id))
        .where(col(Job.status) == JobStatus.COMPLETED.value)
        .where(col(JobResult.error).is_(None))
        .order_by(  # the job that computed it, not a copy; the newest
            col(Job.reused_from).is_not(None), col(Job.finished_at).desc(), col(Job.id).desc()
        )
    ).first()
    if done is not None:
        return Source(done.id or 0, done.status, loose)
    active = session.exec(
        usable.where(col(Job.status).in_(ACTIVE)).order_by(
            col(Job.reused_from).is_not(None), col(Job.id)
        )
    ).first()
    return Source(active.id or 0, active.status, loose) if active is not None else None


def take(session: Session, job: Job, source: Source, at: datetime | None = None) -> str:
    """Complete a just-recorded ``job`` with ``source``'s result, or make it wait for it."""
    at = at or now_utc()
    job.reused_from = source.job_id
    loose = "; loose: the engine's code version was not compared" if source.loose else ""
    key = (job.loose_key if source.loose else job.calc_key) or ""
    if not source.done:
        session.add(job)
        note_many(
            session,
            [
                (
                    job,
                    f"waits for identical job {source.job_id} ({source.status}, calculation "
                    f"key {key[:12]}…) and takes its result; no scheduler job{loose}",
                )
            ],
            source="reuse",
            at=at,
        )
        return f"job {job.id}: waits for identical job {source.job_id} ({source.status})"
    _copy_result(session, job, source.job_id)
    transition(
        session,
        job,
        JobStatus.COMPLETED,
        source="reuse",
        message=f"reused the result of job {source.job_id} (calculation key {key[:12]}…){loose}",
        at=at,
    )
    return f"job {job.id}: reused the result of job {source.job_id}"


def _copy_result(session: Session, job: Job, source_id: int) -> None:
    result = session.exec(select(JobResult).where(JobResult.job_id == source_id)).one()
    copy = JobResult(
        job_id=job.id or 0,
        attempt=job.attempt,
        energy_ev=result.energy_ev,
        forces_ev_per_a=result.forces_ev_per_a,
        stress_ev_per_a3=result.stress_ev_per_a3,
        final_structure=result.final_structure,
        converged=result.converged,
        extras={**(result.extras or {}), "reused_from": source_id},
        error=None,
    )
    session.add(copy)
    if job.workdir and Path(job.workdir).is_dir():  # a study's analysis reads result.json
        write_json_atomic(
            Path(job.workdir) / RESULT_FILE,
            Result(
                energy_ev=copy.energy_ev,
                forces_ev_per_a=copy.forces_ev_per_a,
                stress_ev_per_a3=copy.stress_ev_per_a3,
                final_structure=copy.final_structure,
                converged=copy.converged,
                extras=copy.extras,
            ).to_json(),
        )


def settle_waiters(session: Session, now: datetime) -> list[str]:
    """Give waiting jobs their source's result; a failed source lets them run themselves."""
    waiters = session.exec(
        select(Job)
        .where(col(Job.owner) == current_user())
        .where(col(Job.status) == JobStatus.CREATED.value)
        .where(col(Job.reused_from).is_not(None))
        .order_by(col(Job.id))
    ).all()
    notes = []
    for job in waiters:
        source = session.get(Job, job.reused_from)
        if source is not None and source.status in ACTIVE and not source.reuse_invalid:
            continue
        if source is not None and _has_result(session, source):
            loose = job.calc_key != source.calc_key
            notes.append(take(session, job, Source(source.id or 0, source.status, loose), now))
            continue
        why = source.status if source is not None else "removed"
        job.reused_from = None
        session.add(job)
        note_many(
            session,
            [(job, f"the identical job it waited for ended {why}: submitted on its own")],
            source="reuse",
            at=now,
        )
        notes.append(f"job {job.id}: identical job ended {why}; submitting it on its own")
    session.commit()
    return notes


def _has_result(session: Session, source: Job) -> bool:
    """Whether ``source`` completed with a result in the database that may be reused."""
    if source.status != JobStatus.COMPLETED.value or source.removed_at or source.reuse_invalid:
        return False
    result = session.exec(select(JobResult).where(JobResult.job_id == source.id)).first()
    return result is not None and result.error is None


def invalidate(
    session: Session, ids: Sequence[int] = (), engine: str = "", at: datetime | None = None
) -> list[int]:
    """Mark the results of jobs ``ids`` (or of every job of ``engine``) not to be reused."""
    query = select(Job).where(col(Job.reuse_invalid).is_(False))
    if ids:
        query = query.where(col(Job.id).in_(list(ids)))
    elif engine:
        query = query.where(col(Job.engine) == engine)
    else:
        raise UsageError("name jobs or an engine", "write orion reuse invalidate 12 or --engine qe")
    jobs = list(session.exec(query.order_by(col(Job.id))).all())
    for job in jobs:
        job.reuse_invalid = True
        session.add(job)
    note_many(
        session,
        [(job, "result not to be reused (orion reuse invalidate)") for job in jobs],
        source="user",
        at=at,
    )
    session.commit()
    return [job.id or 0 for job in jobs]
