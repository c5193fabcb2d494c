"""The poller: reconcile the scheduler's view and the job directories into the database.

``reconcile`` is a function of rows + what the scheduler said; ``poll`` wraps it with
one scheduler query per backend and a lock so that only one poller works at a time.
A failed scheduler query changes nothing for that backend's jobs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Row
from sqlalchemy import select as sa_select
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobResult, now_utc
from orion_cli.db.roles import check_role
from orion_cli.db.session import database_error, ready_engine, session_scope
from orion_cli.errors import OrionError
from orion_cli.identity import current_user
from orion_cli.ingest import (
    BadRecord,
    CheckedResult,
    EventRecord,
    check_events,
    check_result,
    clean_text,
)
from orion_cli.jobdir import (
    EVENTS_FILE,
    RESULT_EVENT,
    RESULT_FILE,
    JobFileError,
    claimed_attempt,
    read_events,
)
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.base import JobInfo
from orion_cli.services.lifecycle.dependencies import cascade_committed, settle_never_satisfied
from orion_cli.services.lifecycle.freshness import record_cycle
from orion_cli.services.lifecycle.policy import schedule_retry
from orion_cli.services.lifecycle.recovery import recover_unsubmitted
from orion_cli.services.lifecycle.requeue import requeue_packed
from orion_cli.services.lifecycle.retry import ANALYSIS_ENGINES, adopt_or_resubmit
from orion_cli.services.lifecycle.reuse import settle_waiters
from orion_cli.services.lifecycle.scf_retry import retry_due as scf_retry_due
from orion_cli.services.lifecycle.state import note_many, observe, record_times, transition_many
from orion_cli.states import FailureReason, JobStatus, can_transition
from orion_cli.taskfile import array_tasks_file
from orion_cli.taskstream import read_outcome, refresh, stream_records


@dataclass
class PollReport:
    checked: int = 0
    changed: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scheduler_calls: int = 0
    #: packed jobs whose task ended before they started: job id → why (resubmitted after)
    requeue: dict[int, str] = field(default_factory=dict)
    #: another poller held the lock: this one did nothing (normal under cron, not an error)
    overlapped: bool = False
    #: wall time of the cycle (lock to commit)
    duration_s: float = 0.0
    #: queued jobs the scheduler says can never start (DependencyNeverSatisfied), per backend
    never_satisfied: dict[str, list[int]] = field(default_factory=dict)


#: notes on one job per cycle beyond this are counted, not kept
MAX_NOTES_PER_JOB = 3


class JobNotes:
    """What one cycle learnt from the jobs' own files besides their status: warnings
    (recorded as one note event per job) and the times the jobs say they started/ended."""

    def __init__(self) -> None:
        self.by_job: dict[int, tuple[Job, list[str]]] = {}
        self.times: dict[int, tuple[Job, datetime | None, datetime | None]] = {}

    def saw_times(self, job: Job, events: list[EventRecord]) -> None:
        """Keep when the current attempt started and ended, as the job wrote it."""
        mine = [e for e in events if e.attempt == job.attempt and e.time is not None]
        started = next((e.time for e in mine if e.event == "started"), None)
        ended = next((e.time for e in reversed(mine) if e.event in ("finished", "failed")), None)
        if started or ended:
            _, old_started, old_ended = self.times.get(id(job), (job, None, None))
            self.times[id(job)] = (job, started or old_started, ended or old_ended)

    def apply_times(self, session: Session) -> None:
        """Set true start and end times on the jobs (and attempts) that reached those states."""
        record_times(session, list(self.times.values()))

    def by_job_id(self) -> dict[int, tuple[datetime | None, datetime | None]]:
        """The times seen, by job id (to be written with the jobs' moves)."""
        return {job.id or 0: (started, ended) for job, started, ended in self.times.values()}

    def add(self, job: Job, text: str) -> None:
        self.by_job.setdefault(id(job), (job, []))[1].append(text)

    def write(self, session: Session, at: datetime) -> None:
        notes = []
        for job, texts in self.by_job.values():
            more = len(texts) - MAX_NOTES_PER_JOB
            text = "warning: " + "; ".join(texts[:MAX_NOTES_PER_JOB])
            notes.append((job, text + (f"; and {more} more" if more > 0 else "")))
        note_many(session, notes, source="poll", at=at)


#: SLURM states of a job that ran and is waiting to run again (squeue(1)); SUSPENDED and
#: CONFIGURING are not requeues
REQUEUE_WORDS = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT"})


def _ingest_events(job: Job, notes: JobNotes) -> list[EventRecord]:
    """Apply new progress lines from the job directory; return the new, checked events.

    Whatever is wrong with the file or a line is noted on the job and skipped.
    """
    if not job.workdir:
        return []
    try:
        batch = read_events(Path(job.workdir), job.events_offset)
    except JobFileError as exc:
        notes.add(job, str(exc))
        return []
    except OSError as exc:
        notes.add(job, f"cannot read {exc.filename or 'events.jsonl'}: {exc.strerror}")
        return []
    events, warnings = check_events(batch.events)
    for text in batch.warnings + warnings:
        notes.add(job, text)
    if batch.offset != job.events_offset:
        job.events_offset = batch.offset
    for record in events:
        if record.event == "progress" and record.attempt == job.attempt:
            observe(job, progress_pct=record.progress_pct or 0.0, current_step=record.step or "")
    return events


def array_dir(job: Job | Row[Any]) -> Path | None:
    """The folder of a packed job's array (its tasks' streams are there); None otherwise."""
    if not (job.pack and job.array_name and job.workdir):
        return None
    return _array_folder(os.path.dirname(job.workdir), job.array_name)


@lru_cache(maxsize=4096)
def _array_folder(jobs_folder: str, array_name: str) -> Path:
    """One path per array, not one per job of it (10,000 jobs, a few arrays)."""
    return array_tasks_file(Path(jobs_folder, "job"), array_name).parent


def _streamed(job: Job) -> list[dict[str, Any]]:
    """The current attempt's records of a packed job in its task's stream (its events when
    it computed in memory); read whole each time: what they change is changed once."""
    where = array_dir(job)
    if where is None:
        return []
    records = stream_records(where).get(os.path.basename(job.workdir), ())
    return [r for r in records if claimed_attempt(r) == job.attempt]


def _stream_events(job: Job, notes: JobNotes) -> list[EventRecord]:
    """The checked stream events of the job's current attempt; progress applied."""
    events, warnings = check_events(_streamed(job))
    for text in warnings:
        notes.add(job, text)
    for record in events:
        if record.event == "progress":
            observe(job, progress_pct=record.progress_pct or 0.0, current_step=record.step or "")
    return events


class Moves:
    """Status changes decided in one cycle, applied together: one transition_many per
    (step, status, reason), so that 10,000 jobs ending at once cost a few statements, not
    10,000 flushes. A job's own moves keep their order (queued → running → completed)."""

    def __init__(self) -> None:
        self.plans: dict[
            int, tuple[Job, list[tuple[JobStatus, FailureReason | None, str | None]]]
        ] = {}
        self.requeued: dict[int, tuple[Job, str]] = {}

    def requeue(self, job: Job, why: str) -> None:
        """Plan to submit again a packed job that its task never started (no status change)."""
        self.requeued[id(job)] = (job, why)

    def move(
        self,
        job: Job,
        new: JobStatus,
        *,
        reason: FailureReason | None = None,
        message: str | None = None,
    ) -> None:
        """Plan ``new`` for ``job``; a move the table forbids from where it stands is dropped.

        The job may have moved since the poller read the scheduler (a user's cancel): the
        scheduler's later report of the same end is then nothing to do.
        """
        plan = self.plans.setdefault(id(job), (job, []))[1]
        current = plan[-1][0] if plan else JobStatus(job.status)
        if can_transition(current, new):
            plan.append((new, reason, message))

    def drop(self, job: Job) -> None:
        self.plans.pop(id(job), None)
        self.requeued.pop(id(job), None)

    def apply(
        self,
        session: Session,
        at: datetime,
        times: Mapping[int, tuple[datetime | None, datetime | None]] | None = None,
    ) -> None:
        depth = max((len(steps) for _, steps in self.plans.values()), default=0)
        for step in range(depth):
            groups: dict[tuple[JobStatus, FailureReason | None], list[tuple[Job, str | None]]] = (
                defaultdict(list)
            )
            for job, steps in self.plans.values():
                if step < len(steps):
                    new, reason, message = steps[step]
                    groups[(new, reason)].append((job, message))
            for (new, reason), items in groups.items():
                transition_many(
                    session,
                    [job for job, _ in items],
                    new,
                    source="poll",
                    reason=reason,
                    message=[m for _, m in items],
                    at=at,
                    times=times,
                )


def _read_checked_result(job: Job) -> CheckedResult | None:
    """The job's result for its current attempt: None while there is none.

    A result that cannot be used (not a regular file, too big, not JSON, a field of the
    wrong type or not finite) is returned as an error result naming the problem.
    """
    try:
        data = read_outcome(Path(job.workdir), job.attempt, array_dir(job), search=False)
    except JobFileError as exc:
        return CheckedResult(attempt=job.attempt, error=f"unusable result: {exc}")
    except OSError as exc:
        return CheckedResult(
            attempt=job.attempt, error=f"cannot read {RESULT_FILE}: {exc.strerror}"
        )
    if data is None:
        return None  # none yet, or only an earlier attempt's
    try:
        return check_result(data)
    except BadRecord as exc:
        return CheckedResult(
            attempt=job.attempt, error=f"unusable {RESULT_FILE}: {clean_text(str(exc), 400)}"
        )


_RESULT_COLUMNS = (
    "energy_ev",
    "forces_ev_per_a",
    "stress_ev_per_a3",
    "final_structure",
    "converged",
    "error",
    "extras",
)


def _store_result(
    session: Session,
    job: Job,
    existing: JobResult | None,
    checked: CheckedResult | None = None,
) -> JobResult | None:
    if checked is None:
        checked = _read_checked_result(job) if job.workdir else None
    if checked is None:
        return None
    row = existing or JobResult(job_id=job.id or 0)
    values = {key: getattr(checked, key) for key in _RESULT_COLUMNS}
    for key, value in {**values, "attempt": job.attempt}.items():  # the attempt it is of
        setattr(row, key, value)
    session.add(row)
    return row


def _finish(
    session: Session, moves: Moves, job: Job, info: JobInfo | None, existing: JobResult | None
) -> None:
    """Apply a final scheduler state, using the job's own result to tell why."""
    result = _store_result(session, job, existing)
    status = info.status if info else JobStatus.COMPLETED
    if info and info.exit_code is not None:
        observe(job, exit_code=info.exit_code)
    killed_by = (info.signal if info else None) or (
        result.extras.get("signal") if result is not None else None
    )
    if isinstance(killed_by, int) and killed_by > 0:
        observe(job, exit_signal=killed_by)
    if status is JobStatus.CANCELLED:
        moves.move(
            job,
            JobStatus.CANCELLED,
            reason=FailureReason.CANCELLED_EXTERNALLY,
            message=f"scheduler reports {info.raw_state if info else 'cancelled'}",
        )
        return
    if result is not None and result.error:
        reason = (
            info.reason
            if info and info.reason not in (None, FailureReason.EXIT_CODE)
            else FailureReason.ENGINE_ERROR
        )
        if result.extras.get("soft_limit_reached"):
            reason = FailureReason.TIMEOUT  # stopped cleanly at the soft limit: needs more time
        moves.move(job, JobStatus.FAILED, reason=reason, message=result.error)
    elif status is JobStatus.COMPLETED and (result is not None or job.script is not None):
        # a user's script writes no result: exit 0 says; a refreshed analysis says its answer
        moves.move(job, JobStatus.COMPLETED, message=refreshed_answer(job, result))
    elif status is JobStatus.COMPLETED:
        moves.move(
            job,
            JobStatus.FAILED,
            reason=FailureReason.ENGINE_ERROR,
            message="the job ended without writing result.json (see its output file)",
        )
    else:
        why = (info.reason if info else None) or FailureReason.EXIT_CODE
        detail = f"scheduler reports {info.raw_state}" if info else "job failed"
        if info and info.exit_code:
            detail += f", exit code {info.exit_code}"
        if job.exit_signal:
            detail += f", killed by signal {job.exit_signal}"
        moves.move(job, JobStatus.FAILED, reason=why, message=detail)


def refreshed_answer(job: Job, result: JobResult | None) -> str | None:
    """``answer updated: ...`` when a study's analysis step completes a rerun (refresh)."""
    answer = (result.extras or {}).get("answer") if result is not None else None
    if job.attempt > 1 and job.engine in ANALYSIS_ENGINES and isinstance(answer, str):
        return f"answer updated: {answer}"
    return None


def _finish_packed(
    session: Session,
    moves: Moves,
    job: Job,
    info: JobInfo,
    existing: JobResult | None,
    started: bool,
) -> None:
    """Settle one job of a packed task that ended, by what the job itself did.

    Its result decides, whatever became of the task (a later job may have been killed); the
    job that was running when the task ended fails as :func:`_finish` says; a job that
    never started is planned for resubmission in a new packed task, unless the task was
    cancelled (``scancel``): then it is cancelled too.
    """
    result = _store_result(session, job, existing)
    if result is not None and not result.error:
        moves.move(job, JobStatus.COMPLETED)
    elif (
        result is None
        and not started
        and job.status == JobStatus.QUEUED.value
        and info.status is not JobStatus.CANCELLED  # scancel: final, as for any array
    ):
        moves.requeue(
            job, f"packed task {job.scheduler_job_id} ended ({info.raw_state}) before it started"
        )
    else:
        _finish(session, moves, job, info, result)


def _seen(job: Job, info: JobInfo) -> None:
    """Record that the scheduler knows the job (no UPDATE when nothing changed)."""
    observe(job, raw_state=info.raw_state, missing_since=None)


def waiting_arrays(infos: Mapping[str, JobInfo]) -> set[str]:
    """Arrays of which the scheduler still holds tasks waiting to start.

    >>> from orion_cli.schedulers.base import JobInfo
    >>> waiting_arrays({"7_1": JobInfo("7_1", "PENDING", JobStatus.QUEUED),
    ...                 "8_0": JobInfo("8_0", "RUNNING", JobStatus.RUNNING)})
    {'7'}
    """
    return {
        job_id.split("_")[0]
        for job_id, info in infos.items()
        if "_" in job_id and info.status is JobStatus.QUEUED
    }


def _dropped_before_start(job: Job, waiting: set[str]) -> bool:
    """An array task that vanished while its array still waits, and never started.

    SLURM forgets a task cancelled before it started (``scancel 12_3``) at once: squeue and
    sacct have no record of it. A task that starts gets its own record, and makes its job
    directory; one without either, whose array is still queued, was cancelled.
    """
    sid = job.scheduler_job_id or ""
    return (
        "_" in sid
        and sid.split("_")[0] in waiting
        and bool(job.workdir)
        and not Path(job.workdir).exists()
        and not _streamed(job)
    )


def reconcile_job(
    session: Session,
    moves: Moves,
    job: Job,
    info: JobInfo | None,
    now: datetime,
    lost_grace_s: int,
    results: Mapping[int, JobResult] | None = None,
    waiting: set[str] | None = None,
    notes: JobNotes | None = None,
) -> None:
    """Decide what one active job's events and the scheduler's report change.

    Only what changed is written: a queued job that the scheduler still reports as
    pending is not touched at all (no file read, no row update). Status changes go to
    ``moves``; ``results`` holds the jobs' stored results, loaded for all of them at once.
    """
    existing = (results or {}).get(job.id or 0)
    if info is not None:
        _seen(job, info)
        if _not_begun(job, info):
            return
    notes = notes if notes is not None else JobNotes()
    events = _ingest_events(job, notes)  # new lines of its events.jsonl
    streamed = _stream_events(job, notes)  # all of its task's stream: each time
    notes.saw_times(job, events + streamed)
    started = any(e.event == "started" for e in events + streamed)
    if info is not None:
        if JobStatus(job.status) is JobStatus.QUEUED and (
            started or (info.status is JobStatus.RUNNING and not job.pack)
        ):  # a packed job runs when it says so, not when its task starts
            moves.move(job, JobStatus.RUNNING)
        elif (
            JobStatus(job.status) is JobStatus.RUNNING
            and not any(e.event == "started" for e in events)  # not started again since
            and info.raw_state.split()[0] in REQUEUE_WORDS
        ):
            moves.move(
                job, JobStatus.QUEUED, message=f"requeued by the scheduler ({info.raw_state})"
            )
        if info.status.is_final and job.pack:
            _finish_packed(session, moves, job, info, existing, started)
        elif info.status.is_final:
            _finish(session, moves, job, info, existing)
        return
    if job.missing_since is None:
        observe(job, missing_since=now)  # sacct agrees; lost only after the grace period
        return
    if _dropped_before_start(job, waiting or set()):  # seen missing twice: not a hiccup
        moves.move(
            job,
            JobStatus.CANCELLED,
            reason=FailureReason.CANCELLED_EXTERNALLY,
            message=f"task left array {job.scheduler_job_id} before it started "
            "(cancelled outside orion)",
        )
        return
    if now - job.missing_since < timedelta(seconds=lost_grace_s):
        return
    if _left_outcome(job):
        _finish(session, moves, job, None, existing)  # records purged; the job left its result
    else:
        moves.move(
            job,
            JobStatus.FAILED,
            reason=FailureReason.LOST,
            message=f"neither squeue nor sacct has known job {job.scheduler_job_id} "
            f"for {lost_grace_s} s",
        )


def _left_outcome(job: Job) -> bool:
    """Whether the job left a result of its current attempt (one it may not be able to use
    counts: :func:`_finish` says what is wrong with it)."""
    if os.path.lexists(Path(job.workdir) / RESULT_FILE):
        return True
    try:
        found = read_outcome(Path(job.workdir), job.attempt, array_dir(job), search=False)
        return found is not None
    except (JobFileError, OSError):
        return True


def _not_begun(job: Job, info: JobInfo) -> bool:
    """A queued job the scheduler still holds, or a queued packed job whose task still runs
    others before it (no directory yet): nothing to read, nothing to write (one look, not
    an open per job of a 10,000-job pack every cycle)."""
    if job.status != JobStatus.QUEUED.value:
        return False
    if info.status is JobStatus.QUEUED:
        return True
    return (
        bool(job.pack)
        and not info.status.is_final
        and bool(job.workdir)
        and not os.path.isdir(job.workdir)
        and not _streamed(job)
    )


def _stored_results(session: Session, jobs: list[Job]) -> dict[int, JobResult]:
    ids = [job.id for job in jobs if job.id is not None]
    found: dict[int, JobResult] = {}
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        for row in session.exec(select(JobResult).where(col(JobResult.job_id).in_(chunk))):
            found[row.job_id] = row
    return found


def reconcile(
    session: Session,
    jobs: list[Job],
    infos: Mapping[str, JobInfo],
    now: datetime,
    lost_grace_s: int,
    report: PollReport,
) -> dict[int, str]:
    """Decide and apply what changed for ``jobs``; return the new status of each changed job.

    A job whose files or values raise anything is noted on that job and left as it was;
    the others go on. Nothing is committed here.
    """
    before = {id(job): job.status for job in jobs}
    ending = [
        job
        for job in jobs
        if (info := infos.get(job.scheduler_job_id or "")) is None or info.status.is_final
    ]
    moves = Moves()
    notes = JobNotes()
    waiting = waiting_arrays(infos)
    with session.no_autoflush:
        results = _stored_results(session, ending)
        for job in jobs:
            try:
                reconcile_job(
                    session,
                    moves,
                    job,
                    infos.get(job.scheduler_job_id or ""),
                    now,
                    lost_grace_s,
                    results,
                    waiting,
                    notes,
                )
            except Exception as exc:  # noqa: BLE001 - one job never stops the cycle
                moves.drop(job)
                text = f"poll could not reconcile it: {type(exc).__name__}: {exc}"
                notes.add(job, clean_text(text, 400))
                report.errors.append(f"job {job.id}: {clean_text(text, 400)}")
    moves.apply(session, now)
    notes.apply_times(session)
    notes.write(session, now)
    report.requeue.update({job.id or 0: why for job, why in moves.requeued.values()})
    changed: dict[int, str] = {}
    for job in jobs:
        if job.status != before[id(job)]:
            changed[job.id or 0] = job.status
    failed = [job for job in jobs if job.id in changed and job.status == JobStatus.FAILED.value]
    scf = [bool(job.on_scf_fail) and scf_retry_due(session, job) for job in failed]
    schedule_retry(session, failed, now, source="poll", scf_retry=scf)
    return changed


POLL_LOCK_KEY = 0x0_5110_9011


@contextmanager
def poller_lock(engine: Engine, settings: Settings) -> Iterator[bool]:
    """Hold this user's poller lock: an advisory lock on PostgreSQL, a file lock on SQLite.

    One poller per user works at a time; pollers of different users sharing a database run
    side by side, each on its own jobs.

    The advisory lock lives on a connection of its own, held for the whole cycle, so that
    the commits of the work (which return their connections to the pool) cannot drop it.
    """
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.connect() as conn:
            key = f"{POLL_LOCK_KEY}, {os.getuid()}"  # (class, uid): one lock per user
            got = bool(conn.execute(text(f"SELECT pg_try_advisory_lock({key})")).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text(f"SELECT pg_advisory_unlock({key})"))
                    conn.commit()
        return
    from filelock import FileLock, Timeout

    settings.home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.home / f"poll-{os.getuid()}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def poll(settings: Settings, now: datetime | None = None, confirm_lost: bool = False) -> PollReport:
    """Run one reconcile cycle for this user's jobs that need the poller.

    Only the jobs of the Unix user running it: a poller never queries, ingests, retries or
    recovers another user's job, so it never runs another user's files as itself. On a
    group database every user runs their own poller (cron). ``confirm_lost``: local jobs
    that are all missing at once may be declared lost (see :func:`suspect_wrong_home`).
    """
    import time

    from sqlalchemy.exc import OperationalError

    report = PollReport()
    now = now or now_utc()
    url = settings.resolved_database_url
    started = time.monotonic()
    try:
        with poller_lock(ready_engine(url), settings) as got_lock:
            if not got_lock:
                report.overlapped = True
                return report
            with session_scope(url) as session:
                check_role(session, current_user())
                refresh()  # the packed tasks' streams as they are now, read once a cycle
                _poll_all(session, settings, now, report, confirm_lost)
            report.duration_s = time.monotonic() - started
            # still under the lock: the stamp says when the poller last succeeded
            try:
                record_cycle(
                    settings, now_utc(), report.duration_s, len(report.errors), report.checked
                )
            except OrionError as exc:  # the cycle's work is committed; say the stamp is not
                report.errors.append(f"poll stamp not written: {exc.one_line()}")
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


def _poll_all(
    session: Session, settings: Settings, now: datetime, report: PollReport, confirm_lost: bool
) -> None:
    from sqlalchemy.exc import OperationalError

    report.notes += settle_waiters(session, now)  # --reuse: jobs waiting for an identical one
    for name, all_rows in _jobs_by_scheduler(session, now).items():
        settled = _settle_packed_committed(session, all_rows, now, report)
        group = [row for row in all_rows if row.id not in settled]
        asked_s_ago = _query_allowed(settings, name)
        if asked_s_ago is not None:
            report.notes.append(
                f"{name}: asked {asked_s_ago:.0f} s ago; next query after "
                f"min_query_interval_s={settings.min_query_interval_s} s"
            )
            continue
        try:
            scheduler = scheduler_for(settings, name)
            _poll_group(session, settings, scheduler, group, now, report, confirm_lost)
        except OrionError as exc:
            session.rollback()
            report.errors.append(f"{name}: {exc.one_line()} — its jobs were left unchanged")
        except OperationalError:
            raise  # the database went away: nothing more can be recorded
        except Exception as exc:  # noqa: BLE001 - one scheduler group never stops the others
            session.rollback()
            report.errors.append(
                f"{name}: {type(exc).__name__}: {clean_text(str(exc), 400)}"
                " — its remaining jobs were left unchanged"
            )
    cascade_committed(session, settings, now, report)  # after retries: a retried parent waits
    settle_never_satisfied(session, settings, now, report)  # after the cascade: see there


WATCHED_COLUMNS = (
    col(Job.id),
    col(Job.status),
    col(Job.scheduler),
    col(Job.scheduler_job_id),
    col(Job.raw_state),
    col(Job.missing_since),
    col(Job.pack),
    col(Job.workdir),
    col(Job.array_name),
)
LOAD_CHUNK = 5000  # ids per IN (...) list: well inside SQLite's and PostgreSQL's limits


def _jobs_by_scheduler(session: Session, now: datetime) -> dict[str, list[Row[Any]]]:
    """Light rows of this user's jobs the poller must look at: active, unsubmitted, due a retry.

    Only these few columns are read for every job; whole rows are loaded only for jobs
    where something may have changed.
    """
    watched = [JobStatus.CREATED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value]
    rows = session.execute(
        sa_select(*WATCHED_COLUMNS)
        .where(col(Job.owner) == current_user())
        .where(  # never another user's job: see poll()
            col(Job.status).in_(watched)
            | ((col(Job.status) == JobStatus.FAILED.value) & (col(Job.next_attempt_at) <= now))
        )
        .where(  # a job waiting for an identical one (--reuse) has no scheduler job
            (col(Job.status) != JobStatus.CREATED.value) | col(Job.reused_from).is_(None)
        )
    ).all()
    groups: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        groups[row.scheduler].append(row)
    return groups


#: what a new scheduler job (raw_state not yet recorded) is expected to be: nothing to write
NEW_JOB_WORD = "PENDING"


def _unchanged(row: Row[Any], info: JobInfo | None) -> bool:
    """A queued job that the scheduler still reports pending, in the same words, needs nothing.

    A job just submitted has no raw state yet: the scheduler's ``PENDING`` is what it is
    expected to say, so the first poll after a big submit writes nothing either.
    """
    if row.status != JobStatus.QUEUED.value or info is None or row.missing_since is not None:
        return False
    same = info.raw_state == (row.raw_state or NEW_JOB_WORD)
    return info.status is JobStatus.QUEUED and same


def _never_satisfied(info: JobInfo | None) -> bool:
    """SLURM's pending reason for a job whose dependency failed: it will never start."""
    return info is not None and info.pending_reason == "DependencyNeverSatisfied"


def _poll_group(
    session: Session,
    settings: Settings,
    scheduler: Any,
    rows: list[Row[Any]],
    now: datetime,
    report: PollReport,
    confirm_lost: bool = False,
) -> None:
    """Recover, reconcile and retry one scheduler's jobs, committing each step.

    A failed scheduler query changes nothing. What one job raises is recorded on that job;
    the reconciliation of the others is committed all the same.
    """
    by_status: dict[str, list[Row[Any]]] = defaultdict(list)
    for row in rows:
        by_status[row.status].append(row)
    created = by_status[JobStatus.CREATED.value]
    if created:
        try:
            report.notes += recover_unsubmitted(
                session,
                _load_ids(session, [r.id for r in created]),
                scheduler,
                now,
                settings.submit_grace_s,
            )
            session.commit()
        except OrionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the queued and running jobs still go on
            session.rollback()
            report.errors.append(
                f"recovering interrupted submits: {type(exc).__name__}: {clean_text(str(exc), 400)}"
            )
    active = by_status[JobStatus.QUEUED.value] + by_status[JobStatus.RUNNING.value]
    due_ids = [row.id for row in by_status[JobStatus.FAILED.value]]
    if active:
        infos = scheduler.query([r.scheduler_job_id for r in active if r.scheduler_job_id])
        refresh()  # streams read after the scheduler's answer: a task it says ended wrote all
        report.scheduler_calls += 1
        report.checked += len(active)
        if not confirm_lost:
            active = suspect_wrong_home(scheduler, active, infos, report)
        closer = [r.id for r in active if not _unchanged(r, infos.get(r.scheduler_job_id or ""))]
        stuck = [r.id for r in active if _never_satisfied(infos.get(r.scheduler_job_id or ""))]
        if stuck:
            report.never_satisfied.setdefault(rows[0].scheduler, []).extend(stuck)
        _reconcile_committed(session, closer, infos, now, settings.lost_grace_s, report)
        looked_at = set(closer)
        _script_times_committed(
            session, scheduler, [i for i in report.changed if i in looked_at], report
        )
        due_ids += [
            job_id
            for job_id, status in report.changed.items()
            if job_id in looked_at and status == JobStatus.FAILED.value
        ]
    if report.requeue:
        _requeue_committed(session, settings, scheduler, now, report)
    for job_id in due_ids:  # retries that are due, including failures found just now
        _retry_committed(session, settings, scheduler, job_id, now, report)


#: this many local jobs or more all missing at once: the wrong ORION_HOME, not lost jobs
MASS_MISSING_MIN_JOBS = 2


def suspect_wrong_home(
    scheduler: Any, active: list[Row[Any]], infos: Mapping[str, JobInfo], report: PollReport
) -> list[Row[Any]]:
    """``active`` without its local jobs when every one of them is missing at once.

    The local scheduler keeps its jobs under ``ORION_HOME``: polled from another home, all
    of them look gone, and declaring them lost would run every one again (800 held jobs were
    once). So when all active local jobs (at least :data:`MASS_MISSING_MIN_JOBS`) are unknown
    to it, none is touched and the poll reports an error; ``orion poll --confirm-lost``
    lets them be declared lost after the grace period. One job missing among others is lost
    as usual.
    """
    tracked = [row for row in active if row.scheduler_job_id]
    if getattr(scheduler, "name", "") != "local" or len(tracked) < MASS_MISSING_MIN_JOBS:
        return active
    if any(row.scheduler_job_id in infos for row in tracked):
        return active
    where = getattr(scheduler, "jobs_dir", "its state directory")
    report.errors.append(
        f"local: none of the {len(tracked)} active local jobs is known in {where} — is "
        "ORION_HOME the one they were submitted from? They were left unchanged; if they "
        "really are gone, `orion poll --confirm-lost` declares them lost"
    )
    return [row for row in active if not row.scheduler_job_id]


def _script_times_committed(
    session: Session, scheduler: Any, changed_ids: list[int], report: PollReport
) -> None:
    """Give scripts and adopted jobs that started or ended this cycle the scheduler's own
    times (they write none themselves; the poll noticed later). An adopted job's first
    attempt also gets its real submit time. A failed lookup keeps the poll's times."""
    from sqlalchemy.exc import OperationalError

    try:
        jobs = [
            job
            for job in _load_ids(session, changed_ids)
            if job.script and job.scheduler_job_id and job.status != JobStatus.QUEUED.value
        ]
        if not jobs:
            return
        times = scheduler.times([job.scheduler_job_id for job in jobs])
        known = [
            (job, times[job.scheduler_job_id or ""])
            for job in jobs
            if job.scheduler_job_id in times
        ]
        for job, t in known:
            if (job.script or {}).get("adopted") and job.attempt == 1 and t.submitted_at:
                observe(job, submitted_at=t.submitted_at)  # SLURM's, not orion's
        record_times(session, [(job, t.started_at, t.finished_at) for job, t in known])
        session.commit()
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - the poll's own times stay
        session.rollback()
        report.notes.append(f"job times not looked up: {type(exc).__name__}: {exc}"[:400])


def _reconcile_committed(
    session: Session,
    ids: list[int],
    infos: Mapping[str, JobInfo],
    now: datetime,
    lost_grace_s: int,
    report: PollReport,
) -> None:
    """Reconcile the jobs ``ids`` and commit; if the batch cannot be written, one job at a time.

    The batch fails to commit when another orion process changed one of its jobs in the
    meantime (the write names the status it read: StaleDataError) or when the database
    refuses a value. Each job is then read again and reconciled on its own: a job a user
    cancelled meanwhile is no longer active and is left alone; a job the database refuses
    is recorded as an error on that job; every other job's change is committed.
    """
    from sqlalchemy.exc import OperationalError

    if not ids:
        return
    try:
        changed = reconcile(session, _load_ids(session, ids), infos, now, lost_grace_s, report)
        session.commit()
        report.changed.update(changed)
        return
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - retried job by job below
        session.rollback()
        report.notes.append(f"{len(ids)} jobs reconciled one at a time after {type(exc).__name__}")
    for job_id in ids:
        try:
            jobs = [job for job in _load_ids(session, [job_id]) if JobStatus(job.status).is_active]
            changed = reconcile(session, jobs, infos, now, lost_grace_s, report)
            session.commit()
            report.changed.update(changed)
        except OperationalError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded on the job; the others go on
            session.rollback()
            _record_error(session, job_id, exc, report)


def _requeue_committed(
    session: Session, settings: Settings, scheduler: Any, now: datetime, report: PollReport
) -> None:
    """Submit again, as new packed tasks, the jobs their packed tasks never started."""
    from sqlalchemy.exc import OperationalError

    why, report.requeue = report.requeue, {}
    try:
        jobs = [
            job
            for job in _load_ids(session, list(why))
            if job.status == JobStatus.QUEUED.value and job.pack
        ]
        if jobs:
            report.notes += requeue_packed(session, settings, scheduler, jobs, why, now)
            session.commit()
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - looked at again next cycle
        session.rollback()
        report.errors.append(
            f"resubmitting unstarted packed jobs: {type(exc).__name__}: {clean_text(str(exc), 400)}"
        )


def _retry_committed(
    session: Session,
    settings: Settings,
    scheduler: Any,
    job_id: int,
    now: datetime,
    report: PollReport,
) -> None:
    """Submit the next attempt of one job due a retry, and commit it on its own."""
    from sqlalchemy.exc import OperationalError

    try:
        job = session.get(Job, job_id)
        if (
            job is None
            or job.status != JobStatus.FAILED.value
            or job.next_attempt_at is None
            or _aware(job.next_attempt_at) > now
        ):
            return  # a user acted on it meanwhile, or it is not due
        report.notes.append(adopt_or_resubmit(session, settings, job, scheduler, now))
        session.commit()
        report.changed[job_id] = job.status
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the job; the others go on
        session.rollback()
        _record_error(session, job_id, exc, report)


def _aware(at: datetime) -> datetime:
    """SQLite returns naive datetimes for UTC columns; compare them as UTC."""
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _record_error(session: Session, job_id: int, exc: Exception, report: PollReport) -> None:
    """Note on the job what stopped the poller from handling it; go on whatever happens."""
    text = clean_text(f"{type(exc).__name__}: {exc}", 400)
    report.errors.append(f"job {job_id}: {text}")
    try:
        job = session.get(Job, job_id)
        if job is not None:
            note_many(session, [(job, f"poll could not handle it: {text}")], source="poll")
            session.commit()
    except Exception:  # noqa: BLE001 - the error is in the report either way
        session.rollback()


def _settle_packed_committed(
    session: Session, rows: list[Row[Any]], now: datetime, report: PollReport
) -> set[int]:
    """Complete the packed jobs that wrote a good result, without asking the scheduler.

    A packed job's own result decides its outcome whatever becomes of its task (see
    :func:`_finish_packed`), so a result the runner has written (``result.json`` appears
    whole, by rename; a result line is appended whole) is counted as soon as it is there,
    between two scheduler queries;
    a job without one, or with an error, waits for the scheduler's word. Returns the ids
    completed (committed).
    """
    from sqlalchemy.exc import OperationalError

    active = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    ids = [row.id for row in rows if row.pack and row.status in active and _may_have_ended(row)]
    if not ids:
        return set()
    try:
        done = _settle_packed(session, _load_ids(session, ids, settling=True), now)
        session.commit()
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - the scheduler's report settles them instead
        session.rollback()
        report.errors.append(f"packed results: {type(exc).__name__}: {clean_text(str(exc), 400)}")
        return set()
    report.changed.update(dict.fromkeys(done, JobStatus.COMPLETED.value))
    return done


def _may_have_ended(row: Row[Any]) -> bool:
    """Whether a packed job may have a result: a line of its end in its task's stream, or
    (run from its own directory) its events or ``result.json`` (see read_outcome)."""
    if not row.workdir:
        return False
    where = array_dir(row)
    if where is not None:
        records = stream_records(where).get(os.path.basename(row.workdir))
        if records and any(r.get("event") == RESULT_EVENT for r in records):
            return True
    return os.path.exists(os.path.join(row.workdir, EVENTS_FILE)) or os.path.exists(
        os.path.join(row.workdir, RESULT_FILE)
    )


def _settle_packed(session: Session, jobs: list[Job], now: datetime) -> set[int]:
    """Store and complete, in one batch, the jobs whose current attempt has a good result.

    A job still queued in the database goes straight to completed (it started and ended
    between two polls; its events give the times). New result rows go in as one bulk
    insert; a job that has a row already (an earlier attempt's) updates it.
    """
    from sqlalchemy import insert

    moves, notes = Moves(), JobNotes()
    results = _stored_results(session, jobs)
    rows: list[dict[str, Any]] = []
    done: set[int] = set()
    for job in jobs:
        if not JobStatus(job.status).is_active:
            continue  # changed since the rows were read (a cancel)
        checked = _read_checked_result(job)
        if checked is None or checked.error:
            continue
        notes.saw_times(job, _ingest_events(job, notes) + _stream_events(job, notes))
        if job.id in results:
            _store_result(session, job, results[job.id or 0], checked)
        else:
            rows.append(_result_row(job, checked, now))
        moves.move(job, JobStatus.COMPLETED)
        done.add(job.id or 0)
    with session.no_autoflush:  # the job rows are written once, with their true times
        moves.apply(session, now, notes.by_job_id())
        if rows:
            session.execute(insert(JobResult), rows)
    notes.write(session, now)
    return done


def _result_row(job: Job, checked: CheckedResult, now: datetime) -> dict[str, Any]:
    """A new ``job_result`` row for a bulk insert."""
    return {
        "job_id": job.id,
        "attempt": job.attempt,
        "energy_ev": checked.energy_ev,
        "forces_ev_per_a": checked.forces_ev_per_a,
        "stress_ev_per_a3": checked.stress_ev_per_a3,
        "final_structure": checked.final_structure,
        "converged": checked.converged,
        "extras": checked.extras,
        "error": checked.error,
        "created_at": now,
    }


#: what settling a packed result never reads: its JSON is not decoded for 10,000 rows
_NOT_FOR_SETTLING = ("frozen", "site", "sweep_point", "on_scf_fail")


def _load_ids(session: Session, ids: list[int], settling: bool = False) -> list[Job]:
    """Load jobs by id, fresh from the database (``settling``: without what
    :func:`_settle_packed` never reads)."""
    deferred = ("input_structure", "parameters") + (_NOT_FOR_SETTLING if settling else ())
    options = [defer(getattr(Job, name)) for name in deferred]
    jobs: list[Job] = []
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        jobs.extend(
            session.exec(
                select(Job)
                .where(col(Job.id).in_(chunk))
                .order_by(col(Job.id))
                .execution_options(populate_existing=True)
                .options(*options)
            ).all()
        )
    return jobs
