"""The user's actions on existing jobs: cancel, retry, hold, release, priority (in bulk).

Each takes a :class:`Selection` and returns a :class:`BulkReport`: the jobs where the action
makes sense are acted on, the others are reported with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session

from orion_cli.batch import nice_for_priority
from orion_cli.config import Settings
from orion_cli.db.models import Job, now_utc
from orion_cli.db.session import session_scope
from orion_cli.errors import OrionError, SchedulerError, UsageError
from orion_cli.identity import current_user
from orion_cli.limits import check_text
from orion_cli.schedulers import scheduler_for
from orion_cli.services.lifecycle.dependencies import children_of, descendants
from orion_cli.services.lifecycle.reparam import checked
from orion_cli.services.lifecycle.retry import resubmit
from orion_cli.services.lifecycle.state import note_many, set_held, transition_many
from orion_cli.services.queries.selection import (
    BulkReport,
    Selection,
    again_on_race,
    id_list,
    resolve,
)
from orion_cli.states import FailureReason, JobStatus
from orion_cli.taskfile import CANCEL_MARKER


def _cancellable(job: Job) -> bool:
    status = JobStatus(job.status)
    return not status.is_final or (status is JobStatus.FAILED and job.next_attempt_at is not None)


def cancel(settings: Settings, selection: Selection, with_dependents: bool = False) -> BulkReport:
    """Cancel the named jobs that have not ended (or whose retry is pending).

    ``with_dependents`` cancels every job waiting for them too (those not ended yet);
    without it, the jobs waiting (afterok) are named: the next poll cancels them.
    """
    selection.check()
    return again_on_race(lambda: _cancel(settings, selection, with_dependents))


def _cancel(settings: Settings, selection: Selection, with_dependents: bool) -> BulkReport:

    report = BulkReport("cancelled", hint="nothing to cancel")
    with session_scope(settings.resolved_database_url) as session:
        jobs = []
        for job in resolve(session, selection, report, "cancel"):
            if _cancellable(job):
                jobs.append(job)
            else:
                why = (
                    "already cancelled"
                    if job.status == JobStatus.CANCELLED.value
                    else "already finished"
                )
                report.skip(job.id or 0, why, f"job {job.id} is already {job.status}")
        jobs += _dependents(session, jobs, with_dependents, report)
        active = [job for job in jobs if JobStatus(job.status).is_active and job.scheduler_job_id]
        # recorded first: the write locks the rows until the commit, so a poll that sees the
        # scheduler's CANCELLED meanwhile waits, then finds the jobs cancelled here
        if jobs:
            transition_many(
                session,
                jobs,
                JobStatus.CANCELLED,
                source="user",
                message="cancelled with orion cancel",
            )
            session.flush()
        cancelling = {job.id for job in jobs}
        in_pack = [job for job in active if job.pack and _pack_runs_on(session, job, cancelling)]
        for job in in_pack:  # its task goes on for the other jobs of the pack: it skips this
            _cancel_in_pack(job)
            report.notes.append(
                f"job {job.id}: its packed task {job.scheduler_job_id} runs on "
                "for the other jobs and skips this one"
            )
        for name, group in _by_scheduler([j for j in active if j not in in_pack]).items():
            scheduler_for(settings, name).cancel([job.scheduler_job_id or "" for job in group])
        report.done = [job.id or 0 for job in jobs]
    return report


def _dependents(
    session: Session, jobs: list[Job], with_dependents: bool, report: BulkReport
) -> list[Job]:
    """The user's not-ended jobs waiting for ``jobs`` (to cancel too), or a note naming them."""

    ids = [job.id or 0 for job in jobs]
    if not ids:
        return []
    if with_dependents:
        below = [session.get(Job, child) for child in descendants(session, ids)]
        return [
            job
            for job in below
            if job is not None
            and job.id not in ids
            and job.owner == current_user()
            and _cancellable(job)
        ]
    waiting = sorted(
        {
            child
            for child, _, kind in children_of(session, ids)
            if kind == "afterok"
            and child not in ids
            and (child_job := session.get(Job, child)) is not None
            and _cancellable(child_job)
        }
    )
    if waiting:
        report.notes.append(
            f"jobs {', '.join(map(str, waiting))} wait for these: the next "
            "`orion poll` cancels them (dependency_failed); --with-dependents "
            "cancels them now"
        )
    return []


def _pack_runs_on(session: Session, job: Job, cancelling: set[int | None]) -> bool:
    """Whether jobs not being cancelled still wait or run in ``job``'s packed task."""
    from sqlmodel import col, select

    active = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
    others = session.exec(
        select(Job.id)
        .where(Job.scheduler_job_id == job.scheduler_job_id)
        .where(Job.owner == job.owner)  # another member's row may claim any scheduler id
        .where(col(Job.status).in_(active))
    ).all()
    return any(other not in cancelling for other in others)


def _cancel_in_pack(job: Job) -> None:
    """Cancel one job of a packed task that goes on for the others: its task skips it."""
    from pathlib import Path

    workdir = Path(job.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / CANCEL_MARKER).touch()


def _by_scheduler(jobs: list[Job]) -> dict[str, list[Job]]:
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.scheduler, []).append(job)
    return groups


def would_fail_again(settings: Settings, selection: Selection) -> list[tuple[int, str]]:
    """The selected jobs that failed in the engine itself (id, its error): deterministic, so
    a retry with the same parameters fails the same way."""

    selection.check()
    with session_scope(settings.resolved_database_url) as session:
        return [
            (job.id or 0, job.error_message or "")
            for job in resolve(session, selection, BulkReport("checked"), "retry")
            if job.status == JobStatus.FAILED.value
            and job.failure_reason == FailureReason.ENGINE_ERROR.value
        ]


def retry(
    settings: Settings,
    selection: Selection,
    changes: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
) -> BulkReport:
    """Submit a new attempt of each named failed or cancelled job now, whatever the reason.

    Each job is submitted and recorded in a transaction of its own, so that a job that races
    with a poller never takes the record of another job's submission with it, and one job the
    scheduler refuses does not stop the others.
    """

    selection.check()

    report = BulkReport("retried", hint="only failed or cancelled jobs can be retried")
    new_params: dict[int, dict[str, Any]] = {}
    with session_scope(settings.resolved_database_url) as session:
        ids = []
        for job in resolve(session, selection, report, "retry"):
            if job.status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
                report.skip(
                    job.id or 0, f"not retryable ({job.status})", f"job {job.id} is {job.status}"
                )
            elif not job.array_name and not Path(job.workdir).is_dir():
                report.skip(
                    job.id or 0,
                    "directory removed",
                    f"job {job.id}'s directory {job.workdir} was removed",
                )
            elif changes:  # -p: checked now, for every job, before anything is submitted
                try:
                    new_params[job.id or 0] = checked(settings, job, job.parameters or {}, changes)
                    ids.append(job.id or 0)
                except UsageError as exc:
                    report.refuse(job.id or 0, exc.one_line(), f"job {job.id}: {exc.one_line()}")
            else:
                ids.append(job.id or 0)
    if changes and report.refused and not ids:
        raise UsageError(
            next(iter(report.sentences.values()))
            if report.named == 1
            else f"nothing retried: {report.summary()}"
        )
    for job_id in ids:
        try:
            report.notes.append(
                again_on_race(
                    lambda job_id=job_id: _retry_one(  # type: ignore[misc]
                        settings, job_id, new_params.get(job_id), resources
                    )
                )
            )
            report.done.append(job_id)
        except OrionError as exc:
            report.trouble |= isinstance(exc, SchedulerError)
            report.refuse(job_id, exc.message, f"job {job_id}: {exc.message}")
    return report


def _retry_one(
    settings: Settings,
    job_id: int,
    params: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
) -> str:

    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        if job is None or job.status not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
            raise UsageError(f"job {job_id} changed meanwhile", "see `orion show`")
        scheduler = scheduler_for(settings, job.scheduler)
        check_partition(scheduler, (resources or {}).get("partition", ""))
        return resubmit(
            session,
            settings,
            job,
            scheduler,
            now_utc(),
            manual=True,
            params=params,
            resources=resources,
        )


def check_partition(scheduler: Any, partition: str) -> None:
    """Refuse a partition the cluster does not have (a backend without partitions takes any)."""
    known = scheduler.partitions() if partition else {}
    if known and partition not in known:
        raise UsageError(
            f"partition '{partition}' does not exist on this cluster "
            f"(sinfo lists: {', '.join(sorted(known))})",
            "pick one of those with --partition",
        )


PAST = {"hold": "held", "release": "released", "priority": "re-prioritised"}


def control(
    settings: Settings, selection: Selection, action: str, priority: int | None = None
) -> BulkReport:
    """Hold, release or re-prioritise the named queued jobs (``action``: hold | release |
    priority); jobs not queued are reported, a scheduler's refusal is reported per group."""

    selection.check()
    if priority is not None and not 0 <= priority <= 20:
        raise UsageError(f"priority {priority} is out of range", "use 0..20 (20 = most urgent)")
    report = BulkReport(PAST[action], hint=f"only queued jobs can be given {action}")
    verb = "change the priority of" if action == "priority" else action
    with session_scope(settings.resolved_database_url) as session:
        jobs, ended = [], []
        for job in resolve(session, selection, report, verb):
            if job.status == JobStatus.QUEUED.value and job.scheduler_job_id:
                jobs.append(job)
                continue
            report.skip(job.id or 0, f"not queued ({job.status})", f"job {job.id} is {job.status}")
            if action == "release" and job.held and JobStatus(job.status).is_final:
                ended.append(job)  # a retry of it would be held: released, it is not
        _release_ended(session, ended)
        done = []
        for name, group in _by_scheduler(jobs).items():
            try:
                _control_group(settings, name, group, action, priority)
            except SchedulerError as exc:
                report.trouble = True
                for job in group:
                    report.refuse(job.id or 0, exc.one_line(), f"job {job.id}: {exc.message}")
                continue
            done.extend(group)
        _record(session, done, action, priority)
        report.done = [job.id or 0 for job in done]
        held = [job.id or 0 for job in done if job.held]
        if action == "priority" and held:
            who = f"job {held[0]} is" if len(held) == 1 else f"jobs {id_list(held)} are"
            it = "it is" if len(held) == 1 else "they are"
            report.notes.append(f"{who} held: the priority is applied when {it} released")
    return report


def move(settings: Settings, selection: Selection, partition: str) -> BulkReport:
    """Move queued jobs to ``partition`` in place: same scheduler job, no attempt spent.

    The scheduler refuses a job that started meanwhile; its row is then left as it was.
    Jobs packed into one array task move together (the task is what the scheduler moves).
    """

    selection.check()
    check_text(partition, "--partition")
    report = BulkReport("moved", hint="only queued jobs can be moved")
    with session_scope(settings.resolved_database_url) as session:
        jobs = []
        for job in resolve(session, selection, report, "move"):
            if job.status == JobStatus.QUEUED.value and job.scheduler_job_id:
                jobs.append(job)
            else:
                report.skip(
                    job.id or 0, f"not queued ({job.status})", f"job {job.id} is {job.status}"
                )
        done = []
        for name, group in _by_scheduler(jobs).items():
            scheduler = scheduler_for(settings, name)
            try:
                check_partition(scheduler, partition)
                scheduler.set_partition([job.scheduler_job_id or "" for job in group], partition)
            except (SchedulerError, UsageError) as exc:
                report.trouble |= isinstance(exc, SchedulerError)
                for job in group:
                    report.refuse(job.id or 0, exc.one_line(), f"job {job.id}: {exc.message}")
                continue
            done.extend(group)
        notes = []
        for job in done:
            notes.append(
                (job, f"orion move: partition {job.partition or '(default)'} → {partition}")
            )
            job.partition = partition
            session.add(job)
        note_many(session, notes, source="user")
        report.done = [job.id or 0 for job in done]
    return report


def _release_ended(session: Session, jobs: list[Job]) -> None:
    """``orion release`` of an ended job that was held: its next attempt is not held."""
    set_held(session, jobs, False)
    text = "orion release: not held any more (a retry starts at once)"
    note_many(session, [(job, text) for job in jobs], source="user")


def _control_group(
    settings: Settings, name: str, group: list[Job], action: str, priority: int | None
) -> None:

    scheduler = scheduler_for(settings, name)
    ids = [job.scheduler_job_id or "" for job in group]
    if action == "hold":
        scheduler.hold(ids)
    elif action == "release":  # a held job gets the priority given while it was held
        by_nice: dict[int | None, list[str]] = {}
        for job in group:
            nice = nice_for_priority(job.priority) if job.held else None
            by_nice.setdefault(nice, []).append(job.scheduler_job_id or "")
        for nice, some in by_nice.items():
            scheduler.release(some, nice)
    else:
        scheduler.set_nice(ids, nice_for_priority(priority or 0))


def _record(session: Session, jobs: list[Job], action: str, priority: int | None) -> None:
    if action == "priority":
        for job in jobs:
            job.priority = priority or 0
            session.add(job)
    else:
        set_held(session, jobs, action == "hold")
    text = f"orion {action}" + (f" {priority}" if priority is not None else "")
    note_many(session, [(job, text) for job in jobs], source="user")
