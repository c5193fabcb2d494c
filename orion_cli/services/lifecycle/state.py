"""The one place where a job's lifecycle changes, with the events that say so.

Whatever an attempt touches changes here: the status (:func:`transition_many`, checked
against the table in :mod:`orion_cli.states`), the attempt number, row, resources and
scheduler job id (:func:`submitted`, :func:`start_attempt`, :func:`attempt_refused`), a
changed failure reason, "submit outcome unknown" and "retry due at T"
(:func:`set_retry_due`), whether the job is held (:func:`set_held`), and what the scheduler
or the job's own files say of it besides its status: exit code and signal, the scheduler's
raw state, since when it is missing, progress (:func:`observe`). The functions take many
jobs at once where a poll or a bulk submit needs it, so that their events go in with one
multi-row INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypedDict, Unpack

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key
from sqlmodel import Session

from orion_cli.db.models import Job, JobAttempt, JobEvent, now_utc
from orion_cli.errors import IllegalTransition, RaceLost
from orion_cli.identity import current_user
from orion_cli.resources import Resources
from orion_cli.states import FailureReason, JobStatus, can_transition

#: when an attempt really started and ended, as the job wrote it (None: not known)
Times = tuple[datetime | None, datetime | None]
NO_TIMES: Times = (None, None)


class Facts(TypedDict, total=False):
    """What the scheduler or the job's own files say of a job, besides its status."""

    exit_code: int | None
    exit_signal: int | None
    raw_state: str | None
    missing_since: datetime | None
    progress_pct: float
    current_step: str
    submitted_at: datetime  # an adopted job's: when SLURM took it, not when orion did


def observe(job: Job, **facts: Unpack[Facts]) -> None:
    """Record ``facts`` on ``job``; a value equal to the stored one is not assigned, so an
    unchanged job issues no UPDATE at the next flush (a poll over 10,000 quiet jobs writes
    nothing).

    >>> job = Job(name="x", engine="emt", structure_path="x", workdir="x")
    >>> observe(job, raw_state="RUNNING", progress_pct=40.0)
    >>> (job.raw_state, job.progress_pct)
    ('RUNNING', 40.0)
    """
    for name, value in facts.items():
        if getattr(job, name) != value:
            setattr(job, name, value)


def set_held(session: Session, jobs: Sequence[Job], held: bool) -> None:
    """Record that ``jobs`` are held (``orion hold``, ``submit --hold``) or not any more."""
    for job in jobs:
        if job.held != held:
            job.held = held
            session.add(job)


def transition(
    session: Session,
    job: Job,
    new: JobStatus,
    *,
    source: str,
    reason: FailureReason | None = None,
    message: str | None = None,
    at: datetime | None = None,
) -> None:
    """Move one job to ``new``; see :func:`transition_many`."""
    transition_many(session, [job], new, source=source, reason=reason, message=message, at=at)


def transition_many(
    session: Session,
    jobs: Sequence[Job],
    new: JobStatus,
    *,
    source: str,
    reason: FailureReason | None = None,
    message: str | Sequence[str | None] | None = None,
    at: datetime | None = None,
    times: Mapping[int, Times] | None = None,
) -> None:
    """Move ``jobs`` to ``new`` (checked against the transition table), recording events.

    ``message`` is one text for all jobs or one per job. The status write is a
    compare-and-set: it names the status each job was read with, and raises RaceLost when
    another orion process changed one of them meanwhile (the caller reads again).
    ``times``: by job id, when its current attempt really started and ended (as the job
    wrote it), written with the move instead of the poll's time (see :func:`record_times`).
    """
    at = at or now_utc()
    actor = current_user()
    olds = [JobStatus(job.status) for job in jobs]
    for job, old in zip(jobs, olds, strict=True):
        if not can_transition(old, new):
            raise IllegalTransition(
                f"job {job.id}: {old} → {new} is not allowed",
                "this is a bug or a race between two orion processes; run `orion poll` again",
            )
    texts = [message] * len(jobs) if message is None or isinstance(message, str) else message
    with session.no_autoflush:
        known = times or {}
        changes = [
            _changes(job, old, new, reason, text, at, known.get(job.id or 0, NO_TIMES))
            for job, old, text in zip(jobs, olds, texts, strict=True)
        ]
        _compare_and_set(session, jobs, olds, changes)
        current = _current_attempts(
            session,
            [job for job, old in zip(jobs, olds, strict=True) if _updates_attempt(old, new)],
        )
        events: list[dict[str, Any]] = []
        new_attempts: list[dict[str, Any]] = []
        attempt_rows: list[tuple[int, dict[str, Any]]] = []
        for job, old, text in zip(jobs, olds, texts, strict=True):
            events.append(
                {
                    "job_id": job.id,
                    "from_status": old.value,
                    "to_status": new.value,
                    "reason": reason.value if reason else None,
                    "source": source,
                    "message": text,
                    "attempt": job.attempt,
                    "at": at,
                    "actor": actor,
                }
            )
            row = _track_attempt(
                current, job, old, new, reason, text, at, known.get(job.id or 0, NO_TIMES)
            )
            if isinstance(row, tuple):
                attempt_rows.append(row)
            elif row is not None:
                new_attempts.append(row)
        session.execute(insert(JobEvent), events)
        if new_attempts:
            session.execute(insert(JobAttempt), new_attempts)
        _write_rows(session, JobAttempt, attempt_rows)


def _compare_and_set(
    session: Session,
    jobs: Sequence[Job],
    olds: Sequence[JobStatus],
    changes: Sequence[dict[str, Any]],
) -> None:
    """Write each job's ``changes`` (its new status among them) only where the row still has
    the status it was read with; then the objects hold the written values as committed.

    The rows are written with Core statements, one per set of changed columns, not by the
    ORM's flush: 10,000 jobs ending at once cost a few statements, not 170,000 attribute
    events. A job not yet in the database (no id) gets its values as attributes.
    """
    stored = [(job, old, values) for job, old, values in zip(jobs, olds, changes, strict=True)]
    for job, _, values in stored:
        if job.id is None:
            for name, value in values.items():
                setattr(job, name, value)
            session.add(job)
    rows = [(job.id, values) for job, _, values in stored if job.id is not None]
    if not rows:
        return
    olds_by_id = [old.value for job, old, _ in stored if job.id is not None]
    matched = _write_rows(session, Job, rows, olds_by_id)
    if matched != len(rows):
        raise RaceLost(
            f"{len(rows) - matched} of {len(rows)} jobs changed status in another orion "
            "process meanwhile",
            "run the command again: it reads the jobs anew",
        )
    for job, _, values in stored:
        if job.id is not None:
            for name, value in values.items():
                set_committed_value(job, name, value)


def _write_rows(
    session: Session,
    model: type[Job] | type[JobAttempt],
    rows: Sequence[tuple[int, dict[str, Any]]],
    old_statuses: Sequence[str] | None = None,
) -> int:
    """UPDATE rows of ``model`` by id (``old_statuses``: only where the status is still
    that), one executemany per set of columns; return how many rows matched. An object of
    such a row already in the session gets the values as committed."""
    table = model.__table__  # type: ignore[union-attr]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for index, (row_id, values) in enumerate(rows):
        params: dict[str, Any] = {f"v_{name}": value for name, value in values.items()}
        params["b_id"] = row_id
        if old_statuses is not None:
            params["b_old"] = old_statuses[index]
        groups.setdefault(tuple(sorted(values)), []).append(params)
    matched = 0
    for names, group in groups.items():
        if len(group) >= BULK_MIN_ROWS and _bulk_capable(session, table, names, group):
            matched += _update_from_arrays(session, table, names, group, old_statuses is not None)
            continue
        statement = update(table).where(table.c.id == bindparam("b_id"))
        if old_statuses is not None:
            statement = statement.where(table.c.status == bindparam("b_old"))
        statement = statement.values({name: bindparam(f"v_{name}") for name in names})
        matched += session.execute(statement, group).rowcount  # type: ignore[attr-defined]
    if model is JobAttempt:
        for row_id, values in rows:
            loaded = session.identity_map.get(identity_key(JobAttempt, row_id))
            for name, value in values.items() if loaded is not None else ():
                set_committed_value(loaded, name, value)
    return matched


#: rows of one column set from which PostgreSQL gets one UPDATE with array parameters
BULK_MIN_ROWS = 50
#: values an array parameter carries as it is (a JSON value takes the executemany)
_SCALARS = (str, int, float, bool, datetime, type(None))


def _bulk_capable(
    session: Session, table: Any, names: tuple[str, ...], group: list[dict[str, Any]]
) -> bool:
    """PostgreSQL, and only plain values (no JSON), in every column to be written."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    return all(isinstance(value, _SCALARS) for params in group for value in params.values())


def _update_from_arrays(
    session: Session,
    table: Any,
    names: tuple[str, ...],
    group: list[dict[str, Any]],
    compare: bool,
) -> int:
    """One ``UPDATE ... FROM unnest(arrays)`` for rows of one column set (PostgreSQL).

    psycopg runs an executemany row by row (10,000 rows, 10,000 statements on the server);
    here each column's values travel as one typed array: one statement, its text the same
    whatever the number of rows."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()
    columns = ["id", *(["status"] if compare else []), *names]
    keys = ["b_id", *(["b_old"] if compare else []), *(f"v_{name}" for name in names)]
    types = [table.c[name].type.compile(dialect=dialect) for name in columns]
    arrays = ", ".join(f"CAST(:a{i} AS {kind}[])" for i, kind in enumerate(types))
    given = ", ".join(f"c{i}" for i in range(len(columns)))
    sets = ", ".join(f"{name} = v.c{i + len(columns) - len(names)}" for i, name in enumerate(names))
    where = "job_table.id = v.c0" + (" AND job_table.status = v.c1" if compare else "")
    statement = (
        f"UPDATE {table.name} AS job_table SET {sets} "
        f"FROM unnest({arrays}) AS v({given}) WHERE {where}"
    )
    params = {f"a{i}": [row[key] for row in group] for i, key in enumerate(keys)}
    return int(session.execute(text(statement), params).rowcount)  # type: ignore[attr-defined]


def claim(session: Session, job: Job, at: datetime | None = None) -> None:
    """Lock ``job`` for this transaction if it still has the status it was read with.

    Called before an action with effects outside the database (sbatch): a second process
    trying the same job waits for this transaction, then finds the status changed and
    stops (RaceLost) instead of submitting the job a second time.
    """
    at = at or now_utc()
    table = Job.__table__  # type: ignore[attr-defined]
    matched = session.execute(
        update(table)
        .where(table.c.id == job.id)
        .where(table.c.status == job.status)
        .values(updated_at=at)
    ).rowcount  # type: ignore[attr-defined]
    if matched != 1:
        raise RaceLost(
            f"job {job.id} changed in another orion process meanwhile",
            "run the command again: it reads the job anew",
        )


def note_many(
    session: Session, notes: Sequence[tuple[Job, str]], *, source: str, at: datetime | None = None
) -> None:
    """Record a note on each job without changing its status (an event from X to X).

    The poller notes what it skipped in a job's files or an error it met on that job; a
    user's hold, release or priority change is noted for the audit trail.
    """
    if not notes:
        return
    at = at or now_utc()
    session.execute(
        insert(JobEvent),
        [
            {
                "job_id": job.id,
                "from_status": job.status,
                "to_status": job.status,
                "reason": None,
                "source": source,
                "message": text,
                "attempt": job.attempt,
                "at": at,
                "actor": current_user(),
            }
            for job, text in notes
        ],
    )


def change_reason(
    session: Session,
    job: Job,
    reason: FailureReason,
    message: str,
    *,
    source: str,
    at: datetime | None = None,
) -> None:
    """Give a failed job a new failure reason (and message), with an event saying so.

    A retry that sbatch refused: the job stays failed, now for ``submit_error``.
    """
    at = at or now_utc()
    if job.failure_reason == reason.value and job.error_message == message:
        return
    job.failure_reason, job.error_message, job.updated_at = reason.value, message, at
    session.add(job)
    session.execute(insert(JobEvent), [_note_row(job, source, message, at, reason)])


def submit_outcome_unknown(
    session: Session,
    job: Job,
    retry_at: datetime,
    *,
    source: str,
    message: str,
    at: datetime | None = None,
) -> None:
    """Record that sbatch did not answer for the job's next attempt.

    The scheduler may or may not have the job: the retry at ``retry_at`` first looks for
    it by name (:func:`orion_cli.services.lifecycle.retry.adopt_or_resubmit`). The job keeps its
    status; an event says what happened.
    """
    at = at or now_utc()
    job.submit_unknown_since = job.submit_unknown_since or at
    job.next_attempt_at, job.updated_at = retry_at, at
    session.add(job)
    session.execute(
        insert(JobEvent),
        [
            _note_row(
                job,
                source,
                f"submit outcome unknown: {message}; looked for by name at the next try",
                at,
            )
        ],
    )


def submit_outcome_settled(
    session: Session, job: Job, *, source: str, message: str, at: datetime | None = None
) -> None:
    """Clear the "submit outcome unknown" mark: the scheduler has no job from that sbatch."""
    at = at or now_utc()
    job.submit_unknown_since, job.updated_at = None, at
    session.add(job)
    session.execute(insert(JobEvent), [_note_row(job, source, message, at)])


def set_retry_due(
    session: Session,
    plans: Sequence[tuple[Job, datetime | None]],
    *,
    source: str,
    at: datetime | None = None,
    backoff_s: Sequence[int] = (),
) -> None:
    """Schedule (a time) or clear (None) the next attempt of failed jobs.

    Each change gets a note event saying when the retry is due, or that the one that was
    due is no longer pending; a job whose due time does not change is not touched.
    ``backoff_s``: per plan, how long the scheduler then holds the attempt back (--begin),
    so that the note says when it can begin, not only when it is submitted.
    """
    at = at or now_utc()
    rows = []
    holds = list(backoff_s) or [0] * len(plans)
    for (job, due), hold_s in zip(plans, holds, strict=True):
        old = job.next_attempt_at
        if (old and _as_utc(old)) == (due and _as_utc(due)):
            continue
        job.next_attempt_at, job.updated_at = due, at
        session.add(job)
        when = _as_utc(due or old)  # type: ignore[arg-type]  # not both None: compared above
        begins = (
            f", begins after {hold_s} s, at {when + timedelta(seconds=hold_s):%H:%M:%S} UTC"
            if hold_s
            else ""
        )
        text = (
            f"retry due at {when:%Y-%m-%d %H:%M:%S} UTC (attempt {job.attempt + 1}{begins})"
            if due is not None
            else f"the retry due at {when:%Y-%m-%d %H:%M:%S} UTC is not pending any more"
        )
        rows.append(_note_row(job, source, text, at))
    if rows:
        session.execute(insert(JobEvent), rows)


def _as_utc(at: datetime) -> datetime:
    """SQLite gives naive datetimes back for UTC columns; read them as UTC."""
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)


def submitted(
    session: Session,
    jobs: Sequence[Job],
    scheduler_job_ids: Sequence[str],
    *,
    source: str,
    message: str | Sequence[str | None] | None = None,
    at: datetime | None = None,
) -> None:
    """Record that the scheduler took the jobs' current attempt: their scheduler job ids,
    queued, with an event and the attempt row (the scheduler's state stays unset until it
    reports one)."""
    for job, scheduler_job_id in zip(jobs, scheduler_job_ids, strict=True):
        job.scheduler_job_id = scheduler_job_id
    transition_many(session, jobs, JobStatus.QUEUED, source=source, message=message, at=at)


def start_attempt(
    session: Session,
    job: Job,
    attempt: int,
    resources: Resources,
    scheduler_job_id: str,
    *,
    source: str,
    message: str,
    at: datetime | None = None,
) -> None:
    """Record a failed or cancelled job's next attempt, which the scheduler took: its
    number and resources, then :func:`submitted` (its pending retry is cleared)."""
    job.attempt = attempt
    _set_resources(job, resources)
    submitted(session, [job], [scheduler_job_id], source=source, message=message, at=at)


def attempt_refused(
    session: Session,
    job: Job,
    attempt: int,
    resources: Resources,
    message: str,
    *,
    source: str,
    at: datetime | None = None,
) -> None:
    """Record an attempt the scheduler refused: it counts (number, resources, its own
    attempt row failed with submit_error); the job stays failed, now for submit_error."""
    at = at or now_utc()
    job.attempt = attempt
    _set_resources(job, resources)
    session.add(
        JobAttempt(
            job_id=job.id or 0,
            attempt=attempt,
            walltime_s=job.walltime_s,
            mem_mb=job.mem_mb,
            resources=resources.row(),
            status=JobStatus.FAILED.value,
            reason=FailureReason.SUBMIT_ERROR.value,
            message=message,
            finished_at=at,
        )
    )
    job.scheduler_job_id = None
    change_reason(session, job, FailureReason.SUBMIT_ERROR, message, source=source, at=at)


def _set_resources(job: Job, resources: Resources) -> None:
    """Write ``resources`` into the job row, assigning only what differs (no needless UPDATE)."""
    for name, value in resources.row().items():
        if getattr(job, name) != value:
            setattr(job, name, value)


def record_times(
    session: Session, times: Sequence[tuple[Job, datetime | None, datetime | None]]
) -> None:
    """Set when the jobs' current attempts really started and ended (as the jobs wrote it),
    on the job rows and on their attempt rows; the poll that noticed came later.

    A start is set on a running or ended job, an end on an ended one only.
    """
    items = []
    for job, started, ended in times:
        status = JobStatus(job.status)
        start = started if status is JobStatus.RUNNING or status.is_final else None
        end = ended if status.is_final else None
        if start or end:
            items.append((job, start, end))
    with session.no_autoflush:  # written at once, with Core statements (see _compare_and_set)
        current = _current_attempts(session, [job for job, _, _ in items]) if items else {}
        job_rows, attempt_rows = [], []
        for job, start, end in items:
            values = {
                name: value
                for name, value in (("started_at", start), ("finished_at", end))
                if value
            }
            attempt_id = current.get((job.id or 0, job.attempt))
            if attempt_id is not None:
                attempt_rows.append((attempt_id, values))
            if job.id is None:
                for name, value in values.items():
                    setattr(job, name, value)
                continue
            job_rows.append((job.id, values))
            for name, value in values.items():
                set_committed_value(job, name, value)
        _write_rows(session, Job, job_rows)
        _write_rows(session, JobAttempt, attempt_rows)


def _note_row(
    job: Job, source: str, message: str, at: datetime, reason: FailureReason | None = None
) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "from_status": job.status,
        "to_status": job.status,
        "reason": reason.value if reason else None,
        "source": source,
        "message": message,
        "attempt": job.attempt,
        "at": at,
        "actor": current_user(),
    }


def requeue_many(
    session: Session,
    jobs: Sequence[Job],
    scheduler_job_ids: Sequence[str],
    *,
    source: str,
    message: Sequence[str],
    at: datetime | None = None,
) -> None:
    """Give queued jobs that never started a new scheduler job, in the same attempt.

    A packed task that ended before it started some of its jobs: they are submitted again
    (no failure, no attempt spent). The attempt row follows the new scheduler job id; a
    note event says why. The write is a compare-and-set on the queued status.
    """
    at = at or now_utc()
    with session.no_autoflush:
        changes = [
            {
                "status": JobStatus.QUEUED.value,
                "scheduler_job_id": sid,
                "raw_state": None,
                "missing_since": None,
                "submit_unknown_since": None,  # answered, or found
                "next_attempt_at": None,
                "updated_at": at,
            }
            for sid in scheduler_job_ids
        ]
        _compare_and_set(session, jobs, [JobStatus.QUEUED] * len(jobs), changes)
        current = _current_attempts(session, jobs)
        rows = [
            (current[(job.id or 0, job.attempt)], {"scheduler_job_id": sid})
            for job, sid in zip(jobs, scheduler_job_ids, strict=True)
            if (job.id or 0, job.attempt) in current
        ]
        _write_rows(session, JobAttempt, rows)
    note_many(session, list(zip(jobs, message, strict=True)), source=source, at=at)


def _changes(
    job: Job,
    old: JobStatus,
    new: JobStatus,
    reason: FailureReason | None,
    message: str | None,
    at: datetime,
    times: Times = (None, None),
) -> dict[str, Any]:
    """The job's own fields for the move ``old`` → ``new`` (column name → new value);
    ``times``: the attempt's true start and end, where the job wrote them."""
    start, end = times
    values: dict[str, Any] = {
        "status": new.value,
        "failure_reason": reason.value if reason else None,
    }
    if job.next_attempt_at is not None:  # any move ends a pending retry (set_retry_due)
        values["next_attempt_at"] = None
    if message and new is JobStatus.FAILED:
        values["error_message"] = message
    if new is JobStatus.QUEUED and old is JobStatus.RUNNING:  # requeued: same attempt, again
        values.update(started_at=None, progress_pct=0.0, current_step="")
    elif new is JobStatus.QUEUED:  # a new scheduler job: nothing heard from it yet
        values.update(submitted_at=at, raw_state=None, submit_unknown_since=None)
        if old is not JobStatus.CREATED:  # a new attempt starts from scratch
            values.update(  # else queue wait = the old start - the new submit < 0
                started_at=None,
                finished_at=None,
                error_message=None,
                exit_code=None,
                exit_signal=None,
                progress_pct=0.0,
                current_step="",
            )
    elif new is JobStatus.RUNNING:
        values["started_at"] = start or job.started_at or at
    elif new.is_final:
        values["finished_at"] = end or at
        if start:
            values["started_at"] = start
        if new is JobStatus.COMPLETED:
            values["progress_pct"] = 100.0
    values["updated_at"] = at
    return values


ATTEMPT_CHUNK = 5000  # job ids per IN (...) list


def _updates_attempt(old: JobStatus, new: JobStatus) -> bool:
    """Whether the move ``old`` → ``new`` changes an existing attempt row.

    >>> _updates_attempt(JobStatus.RUNNING, JobStatus.QUEUED)  # a requeue: same attempt
    True
    >>> _updates_attempt(JobStatus.FAILED, JobStatus.QUEUED)  # a retry: a new attempt row
    False
    """
    if old is JobStatus.RUNNING and new is JobStatus.QUEUED:
        return True
    return not (old is JobStatus.FAILED and new is JobStatus.CANCELLED) and not (
        old is JobStatus.CREATED or new is JobStatus.QUEUED
    )


def _current_attempts(session: Session, jobs: Sequence[Job]) -> dict[tuple[int, int], int]:
    """The ids of the current attempt rows of ``jobs``, one query per few thousand jobs."""
    wanted = {(job.id or 0, job.attempt) for job in jobs}
    ids = sorted({job_id for job_id, _ in wanted})
    rows: dict[tuple[int, int], int] = {}
    table = JobAttempt.__table__  # type: ignore[attr-defined]
    for start in range(0, len(ids), ATTEMPT_CHUNK):
        chunk = ids[start : start + ATTEMPT_CHUNK]
        query = sa_select(table.c.id, table.c.job_id, table.c.attempt).where(
            table.c.job_id.in_(chunk)
        )
        for row_id, job_id, attempt in session.execute(query):
            if (job_id, attempt) in wanted:
                rows[(job_id, attempt)] = row_id
    return rows


def _track_attempt(
    current: dict[tuple[int, int], int],
    job: Job,
    old: JobStatus,
    new: JobStatus,
    reason: FailureReason | None,
    message: str | None,
    at: datetime,
    times: Times = (None, None),
) -> dict[str, Any] | tuple[int, dict[str, Any]] | None:
    """The job's attempt row for the move: a new row's values where there is none, else
    (its id, the values it changes)."""
    if old is JobStatus.FAILED and new is JobStatus.CANCELLED:
        return None  # cancelling a pending retry: the failed attempt's record stands
    final = new.is_final
    start, end = times
    started = (start or at) if new is JobStatus.RUNNING else (start if final else None)
    values = {
        "job_id": job.id,
        "attempt": job.attempt,
        "walltime_s": job.walltime_s,
        "mem_mb": job.mem_mb,
        "resources": Resources.of(job).row(),
        "status": new.value,
        "raw_state": job.raw_state,
        "scheduler_job_id": job.scheduler_job_id if new is JobStatus.QUEUED else None,
        "submitted_at": at if new is JobStatus.QUEUED else None,
        "started_at": started,
        "reason": reason.value if final and reason else None,
        "message": message if final else None,
        "finished_at": (end or at) if final else None,
    }
    if not _updates_attempt(old, new):  # created, or a new attempt queued: no row yet
        return None if new is JobStatus.CANCELLED and old is JobStatus.CREATED else values
    row_id = current.get((job.id or 0, job.attempt))
    if row_id is None:
        return values
    changed: dict[str, Any] = {"status": new.value, "raw_state": job.raw_state}
    if new is JobStatus.RUNNING or (final and start):
        changed["started_at"] = started
    if new is JobStatus.QUEUED:  # requeued by the scheduler
        changed["started_at"] = None
    if final:
        changed.update(
            reason=reason.value if reason else None, message=message, finished_at=end or at
        )
    return row_id, changed
