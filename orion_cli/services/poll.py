"""The poller: reconcile the scheduler's view and the job directories into the database.

``reconcile`` is a function of rows + what the scheduler said; ``poll`` wraps it with
one scheduler query per backend and a lock so that only one poller works at a time.
A failed scheduler query changes nothing for that backend's jobs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy import select as sa_select
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobResult, now_utc
from orion_cli.errors import OrionError
from orion_cli.jobdir import RESULT_FILE, read_events, read_json
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.base import JobInfo
from orion_cli.services.lifecycle import transition_many
from orion_cli.services.recovery import recover_unsubmitted
from orion_cli.services.retry import adopt_or_resubmit, schedule_retry
from orion_cli.states import FailureReason, JobStatus


@dataclass
class PollReport:
    checked: int = 0
    changed: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scheduler_calls: int = 0


def _ingest_events(job: Job) -> list[dict[str, Any]]:
    """Apply new progress lines from the job directory; return the new events."""
    if not job.workdir:
        return []
    batch = read_events(Path(job.workdir), job.events_offset)
    if not batch.events:
        return []
    job.events_offset = batch.offset
    for record in batch.events:
        if record.get("event") == "progress" and int(record.get("attempt", 1)) == job.attempt:
            job.progress_pct = float(record.get("progress_pct", job.progress_pct))
            job.current_step = str(record.get("step", job.current_step))
    return batch.events


class Moves:
    """Status changes decided in one cycle, applied together: one transition_many per
    (step, status, reason), so that 10,000 jobs ending at once cost a few statements, not
    10,000 flushes. A job's own moves keep their order (queued → running → completed)."""

    def __init__(self) -> None:
        self.plans: dict[int, tuple[Job, list[tuple[JobStatus, FailureReason | None,
                                                    str | None]]]] = {}

    def move(self, job: Job, new: JobStatus, *, reason: FailureReason | None = None,
             message: str | None = None) -> None:
        self.plans.setdefault(id(job), (job, []))[1].append((new, reason, message))

    def apply(self, session: Session, at: datetime) -> None:
        depth = max((len(steps) for _, steps in self.plans.values()), default=0)
        for step in range(depth):
            groups: dict[tuple[JobStatus, FailureReason | None],
                         list[tuple[Job, str | None]]] = defaultdict(list)
            for job, steps in self.plans.values():
                if step < len(steps):
                    new, reason, message = steps[step]
                    groups[(new, reason)].append((job, message))
            for (new, reason), items in groups.items():
                transition_many(session, [job for job, _ in items], new, source="poll",
                                reason=reason, message=[m for _, m in items], at=at)


def _store_result(session: Session, job: Job, existing: JobResult | None) -> JobResult | None:
    data = read_json(Path(job.workdir) / RESULT_FILE) if job.workdir else None
    if not isinstance(data, dict) or int(data.get("attempt", 1)) != job.attempt:
        return None
    row = existing or JobResult(job_id=job.id or 0)
    for key in ("energy_ev", "forces_ev_per_a", "stress_ev_per_a3", "final_structure",
                "converged", "error"):
        setattr(row, key, data.get(key))
    row.extras = dict(data.get("extras") or {})
    row.attempt = int(data.get("attempt", job.attempt))
    session.add(row)
    return row


def _finish(session: Session, moves: Moves, job: Job, info: JobInfo | None,
            existing: JobResult | None) -> None:
    """Apply a final scheduler state, using the job's own result to tell why."""
    result = _store_result(session, job, existing)
    status = info.status if info else JobStatus.COMPLETED
    if info and info.exit_code is not None:
        job.exit_code = info.exit_code
    if status is JobStatus.CANCELLED:
        moves.move(job, JobStatus.CANCELLED, reason=FailureReason.CANCELLED_EXTERNALLY,
                   message=f"scheduler reports {info.raw_state if info else 'cancelled'}")
        return
    if result is not None and result.error:
        reason = info.reason if info and info.reason not in (None, FailureReason.EXIT_CODE) \
            else FailureReason.ENGINE_ERROR
        if result.extras.get("soft_limit_reached"):
            reason = FailureReason.TIMEOUT  # stopped cleanly at the soft limit: needs more time
        moves.move(job, JobStatus.FAILED, reason=reason, message=result.error)
    elif status is JobStatus.COMPLETED and result is not None:
        moves.move(job, JobStatus.COMPLETED)
    elif status is JobStatus.COMPLETED:
        moves.move(job, JobStatus.FAILED, reason=FailureReason.ENGINE_ERROR,
                   message="the job ended without writing result.json (see its output file)")
    else:
        why = (info.reason if info else None) or FailureReason.EXIT_CODE
        detail = f"scheduler reports {info.raw_state}" if info else "job failed"
        if info and info.exit_code:
            detail += f", exit code {info.exit_code}"
        moves.move(job, JobStatus.FAILED, reason=why, message=detail)


def _seen(job: Job, info: JobInfo) -> None:
    """Record that the scheduler knows the job; assign only values that differ (no UPDATE)."""
    if job.raw_state != info.raw_state:
        job.raw_state = info.raw_state
    if job.missing_since is not None:
        job.missing_since = None


def waiting_arrays(infos: Mapping[str, JobInfo]) -> set[str]:
    """Arrays of which the scheduler still holds tasks waiting to start.

    >>> from orion_cli.schedulers.base import JobInfo
    >>> waiting_arrays({"7_1": JobInfo("7_1", "PENDING", JobStatus.QUEUED),
    ...                 "8_0": JobInfo("8_0", "RUNNING", JobStatus.RUNNING)})
    {'7'}
    """
    return {job_id.split("_")[0] for job_id, info in infos.items()
            if "_" in job_id and info.status is JobStatus.QUEUED}


def _dropped_before_start(job: Job, waiting: set[str]) -> bool:
    """An array task that vanished while its array still waits, and never started.

    SLURM forgets a task cancelled before it started (``scancel 12_3``) at once: squeue and
    sacct have no record of it. A task that starts gets its own record, and makes its job
    directory; one without either, whose array is still queued, was cancelled.
    """
    sid = job.scheduler_job_id or ""
    return "_" in sid and sid.split("_")[0] in waiting and bool(job.workdir) \
        and not Path(job.workdir).exists()


def reconcile_job(session: Session, moves: Moves, job: Job, info: JobInfo | None,
                  now: datetime, lost_grace_s: int,
                  results: Mapping[int, JobResult] | None = None,
                  waiting: set[str] | None = None) -> None:
    """Decide what one active job's events and the scheduler's report change.

    Only what changed is written: a queued job that the scheduler still reports as
    pending is not touched at all (no file read, no row update). Status changes go to
    ``moves``; ``results`` holds the jobs' stored results, loaded for all of them at once.
    """
    existing = (results or {}).get(job.id or 0)
    if info is not None:
        _seen(job, info)
        if info.status is JobStatus.QUEUED and job.status == JobStatus.QUEUED.value:
            return
    events = _ingest_events(job)
    started = any(e.get("event") == "started" for e in events)
    if info is not None:
        if JobStatus(job.status) is JobStatus.QUEUED and (
            started or info.status is JobStatus.RUNNING
        ):
            moves.move(job, JobStatus.RUNNING)
        if info.status.is_final:
            _finish(session, moves, job, info, existing)
        return
    if job.missing_since is None:
        job.missing_since = now  # confirmed by sacct too; lost only after the grace period
        return
    if _dropped_before_start(job, waiting or set()):  # seen missing twice: not a hiccup
        moves.move(job, JobStatus.CANCELLED, reason=FailureReason.CANCELLED_EXTERNALLY,
                   message=f"task left array {job.scheduler_job_id} before it started "
                           "(cancelled outside orion)")
        return
    if now - job.missing_since < timedelta(seconds=lost_grace_s):
        return
    if (Path(job.workdir) / RESULT_FILE).exists():
        _finish(session, moves, job, None, existing)  # records purged; the job left its result
    else:
        moves.move(job, JobStatus.FAILED, reason=FailureReason.LOST,
                   message=f"neither squeue nor sacct has known job {job.scheduler_job_id} "
                           f"for {lost_grace_s} s")


def _stored_results(session: Session, jobs: list[Job]) -> dict[int, JobResult]:
    ids = [job.id for job in jobs if job.id is not None]
    found: dict[int, JobResult] = {}
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start:start + LOAD_CHUNK]
        for row in session.exec(select(JobResult).where(col(JobResult.job_id).in_(chunk))):
            found[row.job_id] = row
    return found


def reconcile(session: Session, jobs: list[Job], infos: Mapping[str, JobInfo], now: datetime,
              lost_grace_s: int, report: PollReport) -> None:
    before = {id(job): job.status for job in jobs}
    ending = [job for job in jobs if (info := infos.get(job.scheduler_job_id or "")) is None
              or info.status.is_final]
    moves = Moves()
    waiting = waiting_arrays(infos)
    with session.no_autoflush:
        results = _stored_results(session, ending)
        for job in jobs:
            reconcile_job(session, moves, job, infos.get(job.scheduler_job_id or ""), now,
                          lost_grace_s, results, waiting)
    moves.apply(session, now)
    for job in jobs:
        if job.status != before[id(job)]:
            report.changed[job.id or 0] = job.status
            if job.status == JobStatus.FAILED.value:
                schedule_retry(job, now)


POLL_LOCK_KEY = 0x0_5110_9011


@contextmanager
def poller_lock(engine: Engine, settings: Settings) -> Iterator[bool]:
    """Hold the single-poller lock: an advisory lock on PostgreSQL, a file lock on SQLite.

    The advisory lock lives on a connection of its own, held for the whole cycle, so that
    the commits of the work (which return their connections to the pool) cannot drop it.
    """
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.connect() as conn:
            got = bool(conn.execute(text(f"SELECT pg_try_advisory_lock({POLL_LOCK_KEY})"))
                       .scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text(f"SELECT pg_advisory_unlock({POLL_LOCK_KEY})"))
                    conn.commit()
        return
    from filelock import FileLock, Timeout

    settings.home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.home / "poll.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def poll(settings: Settings, now: datetime | None = None) -> PollReport:
    """Run one reconcile cycle for all jobs that need the poller."""
    from sqlalchemy.exc import OperationalError

    from orion_cli.db.session import database_error, ready_engine, session_scope

    report = PollReport()
    now = now or now_utc()
    url = settings.resolved_database_url
    try:
        with poller_lock(ready_engine(url), settings) as got_lock:
            if not got_lock:
                report.errors.append("another orion poll is running; this one did nothing")
                return report
            with session_scope(url) as session:
                _poll_all(session, settings, now, report)
    except OperationalError as exc:  # the database went away mid-cycle
        raise database_error(url, exc) from None
    return report


def _query_allowed(settings: Settings, scheduler_name: str) -> float | None:
    """Seconds since this scheduler was last asked, or None when it may be asked now.

    SLURM sites ask users not to poll slurmctld in tight loops; orion keeps at least
    ``min_query_interval_s`` between two polls of the same scheduler, whoever runs them.
    """
    import time

    if scheduler_name == "local":
        return None  # no controller to spare
    stamp = settings.home / f"last-query-{scheduler_name}"
    try:
        age_s = time.time() - stamp.stat().st_mtime
    except FileNotFoundError:
        age_s = float("inf")
    if 0 <= age_s < settings.min_query_interval_s:
        return age_s
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    return None


def _poll_all(session: Session, settings: Settings, now: datetime, report: PollReport) -> None:
    for name, group in _jobs_by_scheduler(session, now).items():
        asked_s_ago = _query_allowed(settings, name)
        if asked_s_ago is not None:
            report.notes.append(
                f"{name}: asked {asked_s_ago:.0f} s ago; next query after "
                f"min_query_interval_s={settings.min_query_interval_s} s")
            continue
        try:
            scheduler = scheduler_for(settings, name)
            _poll_group(session, settings, scheduler, group, now, report)
            session.commit()
        except OrionError as exc:
            session.rollback()
            report.errors.append(f"{name}: {exc.one_line()} — its jobs were left unchanged")


WATCHED_COLUMNS = (col(Job.id), col(Job.status), col(Job.scheduler), col(Job.scheduler_job_id),
                   col(Job.raw_state), col(Job.missing_since))
LOAD_CHUNK = 5000  # ids per IN (...) list: well inside SQLite's and PostgreSQL's limits


def _jobs_by_scheduler(session: Session, now: datetime) -> dict[str, list[Row[Any]]]:
    """Light rows of the jobs the poller must look at: active, never submitted, due a retry.

    Only these few columns are read for every job; whole rows are loaded only for jobs
    where something may have changed.
    """
    watched = [JobStatus.CREATED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value]
    rows = session.execute(sa_select(*WATCHED_COLUMNS).where(
        col(Job.status).in_(watched)
        | ((col(Job.status) == JobStatus.FAILED.value) & (col(Job.next_attempt_at) <= now))
    )).all()
    groups: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        groups[row.scheduler].append(row)
    return groups


def _unchanged(row: Row[Any], info: JobInfo | None) -> bool:
    """A queued job that the scheduler still reports pending, in the same words, needs nothing."""
    return (row.status == JobStatus.QUEUED.value and info is not None
            and info.status is JobStatus.QUEUED and info.raw_state == row.raw_state
            and row.missing_since is None)


def _load(session: Session, rows: list[Row[Any]]) -> list[Job]:
    """Load whole jobs for ``rows`` (big text and JSON columns left for when they are read)."""
    jobs: list[Job] = []
    ids = [row.id for row in rows]
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start:start + LOAD_CHUNK]
        jobs.extend(session.exec(
            select(Job).where(col(Job.id).in_(chunk)).order_by(col(Job.id))
            .options(defer(Job.input_structure), defer(Job.parameters))  # type: ignore[arg-type]
        ).all())
    return jobs


def _poll_group(session: Session, settings: Settings, scheduler: Any, rows: list[Row[Any]],
                now: datetime, report: PollReport) -> None:
    """Recover, reconcile and retry one scheduler's jobs; a scheduler error rolls back all."""
    by_status: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        by_status[row.status].append(row)
    created = by_status[JobStatus.CREATED.value]
    if created:
        report.notes += recover_unsubmitted(session, _load(session, created), scheduler,
                                            now, settings.submit_grace_s)
    active = by_status[JobStatus.QUEUED.value] + by_status[JobStatus.RUNNING.value]
    due = _load(session, by_status[JobStatus.FAILED.value])
    if active:
        infos = scheduler.query([r.scheduler_job_id for r in active if r.scheduler_job_id])
        report.scheduler_calls += 1
        report.checked += len(active)
        closer = _load(session, [r for r in active
                                 if not _unchanged(r, infos.get(r.scheduler_job_id or ""))])
        reconcile(session, closer, infos, now, settings.lost_grace_s, report)
        due += [job for job in closer if job.status == JobStatus.FAILED.value
                and job.next_attempt_at is not None and job.next_attempt_at <= now]
    for job in due:  # retries that are due, including failures found just now
        report.notes.append(adopt_or_resubmit(session, settings, job, scheduler, now))
        report.changed[job.id or 0] = job.status
