"""Job dependencies: check them at submit, pass them to the scheduler, cascade failures.

A child waits for its parents in the scheduler itself (SLURM ``--dependency=afterok:…``,
the local backend's ``after`` file): no poll is needed between a parent's end and its
child's start. A parent that has already completed is not passed at all (SLURM forgets
finished jobs after MinJobAge, and a dependency on a purged id misbehaves).

What SLURM does not do well is left to the poller:

* a parent that failed or was cancelled **for good** (no retry left): its ``afterok``
  descendants are recorded ``cancelled(dependency_failed)`` naming the parent, then
  ``scancel``-led. SLURM would leave them pending for ever (``DependencyNeverSatisfied``);
  ``--kill-on-invalid-dep`` is not used (a known Slurm bug leaves run-away jobs).
* a parent that is **retried**: its pending children are *re-pointed* at the new attempt
  (``scontrol update Dependency=``) right after the new attempt is submitted. We re-point
  rather than hold and release because the child then starts as soon as the retry
  succeeds, without waiting for a poll, and a poller that stops never leaves children held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.db.models import Job, JobDependency
from orion_cli.db.models import Job as JobRow
from orion_cli.db.session import ready_engine, session_scope
from orion_cli.errors import OrionError, UsageError
from orion_cli.identity import current_user
from orion_cli.schedulers import scheduler_for
from orion_cli.services.lifecycle.depgraph import AFTER_ANY, AFTER_OK, ParentState, dependency_state
from orion_cli.services.lifecycle.state import note_many, transition_many
from orion_cli.states import FailureReason, JobStatus

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.config import Settings
    from orion_cli.db.models import Job


@dataclass(frozen=True)
class Links:
    """A new job's parents: edges to record, and what the scheduler must wait for."""

    edges: tuple[tuple[int, str], ...] = ()  # (parent orion id, kind)
    after: tuple[tuple[str, str], ...] = ()  # (kind, parent scheduler job id)


@dataclass
class Cascade:
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)


def _retry_pending(job: Job) -> bool:
    return job.status == JobStatus.FAILED.value and job.next_attempt_at is not None


def _parent_state(job: Job, kind: str) -> ParentState:
    return ParentState(job.id or 0, kind, job.status, job.failure_reason, _retry_pending(job))


def check_links(
    settings: Settings, after: Sequence[int], after_any: Sequence[int], scheduler_name: str
) -> Links:
    """Check a new job's ``--after``/``--after-any`` parents; write nothing.

    Every parent must be one of the user's own jobs on the same scheduler, known to the
    scheduler now (queued/running) or ended; an ``afterok`` parent must not have failed for
    good. Anything else is a UsageError naming the parent and the fix.
    """
    if not after and not after_any:
        return Links()
    both = sorted(set(after) & set(after_any))
    if both:
        raise UsageError(
            f"job {both[0]} is given to both --after and --after-any", "give each parent once"
        )
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        first = (list(after) + list(after_any))[0]
        raise UsageError(f"--after: no job with id {first}", "`orion ls` lists the jobs")

    ready_engine(url)
    me = current_user()
    edges: list[tuple[int, str]] = []
    waits: list[tuple[str, str]] = []
    with session_scope(url) as session:
        for kind, ids in ((AFTER_OK, after), (AFTER_ANY, after_any)):
            flag = "--after" if kind == AFTER_OK else "--after-any"
            for parent_id in ids:
                parent = session.get(Job, parent_id)
                _check_parent(parent, parent_id, kind, flag, me, scheduler_name)
                assert parent is not None
                edges.append((parent_id, kind))
                if JobStatus(parent.status).is_active and parent.scheduler_job_id:
                    waits.append((kind, parent.scheduler_job_id))
    return Links(tuple(edges), tuple(waits))


def _check_parent(
    parent: Job | None, parent_id: int, kind: str, flag: str, me: str, scheduler_name: str
) -> None:
    if parent is None:
        raise UsageError(f"{flag}: no job with id {parent_id}", "`orion ls` lists the jobs")
    if parent.owner != me:
        raise UsageError(
            f"{flag}: job {parent_id} belongs to {parent.owner}; a job can wait "
            "only for your own jobs",
            "submit the parent step yourself",
        )
    if parent.scheduler != scheduler_name:
        raise UsageError(
            f"{flag}: job {parent_id} runs on {parent.scheduler}, this job "
            f"would run on {scheduler_name}",
            f"submit with --scheduler {parent.scheduler}",
        )
    state = _parent_state(parent, kind)
    if parent.status == JobStatus.CREATED.value or state.retry_pending:
        raise UsageError(
            f"{flag}: job {parent_id} is {parent.status} and not yet known to "
            "its scheduler (its submit or retry is pending)",
            "run `orion poll`, then submit this job again",
        )
    if state.blocks:
        why = f" ({parent.failure_reason})" if parent.failure_reason else ""
        raise UsageError(
            f"--after: job {parent_id} {parent.status}{why}; a job after it would never run",
            f"retry it first (`orion retry {parent_id}`) or use --after-any",
        )


def add_edges(session: Session, children: Sequence[Job], links: Links) -> None:
    """Record the edges of newly inserted ``children`` (same transaction as their rows)."""
    from sqlalchemy import insert

    rows = [
        {"child_id": child.id, "parent_id": parent_id, "kind": kind}
        for child in children
        for parent_id, kind in links.edges
    ]
    if rows:
        session.execute(insert(JobDependency), rows)


def parent_states(session: Session, child_ids: Sequence[int]) -> dict[int, list[ParentState]]:
    """Each child's parents as :class:`ParentState`, in one query."""
    from sqlmodel import col, select

    found: dict[int, list[ParentState]] = {}
    if not child_ids:
        return found
    query = (
        select(JobDependency, Job)
        .join(Job, col(Job.id) == JobDependency.parent_id)
        .where(col(JobDependency.child_id).in_(list(child_ids)))
        .order_by(col(JobDependency.parent_id))
    )
    for edge, parent in session.exec(query).all():
        found.setdefault(edge.child_id, []).append(_parent_state(parent, edge.kind))
    return found


def waits_for(session: Session, job: Job) -> tuple[tuple[str, str], ...]:
    """What ``job`` must wait for in the scheduler now, from its parents' current attempts.

    Raises UsageError when a parent blocks it or has no attempt in the scheduler now.
    """

    waits: list[tuple[str, str]] = []
    for state in parent_states(session, [job.id or 0]).get(job.id or 0, []):
        if state.blocks:
            raise UsageError(
                f"job {job.id} waits for job {state.parent_id}, which {state.status}",
                f"retry job {state.parent_id} first",
            )
        if state.done:
            continue
        parent = session.get(JobRow, state.parent_id)
        if parent is None or not parent.scheduler_job_id or not JobStatus(parent.status).is_active:
            raise UsageError(
                f"job {job.id} waits for job {state.parent_id}, which is "
                f"{state.status} and not in the scheduler now",
                "run `orion poll`, then try again",
            )
        waits.append((state.kind, parent.scheduler_job_id))
    return tuple(waits)


def children_of(session: Session, parent_ids: Sequence[int]) -> list[tuple[int, int, str]]:
    """Edges (child, parent, kind) leaving ``parent_ids``."""
    from sqlmodel import col, select

    if not parent_ids:
        return []
    return [
        (e.child_id, e.parent_id, e.kind)
        for e in session.exec(
            select(JobDependency).where(col(JobDependency.parent_id).in_(list(parent_ids)))
        ).all()
    ]


def descendants(session: Session, roots: Sequence[int]) -> list[int]:
    """Every job that waits, directly or not, for one of ``roots`` (any kind), in BFS order."""
    seen: dict[int, None] = {}
    frontier = list(roots)
    while frontier:
        new = [
            child
            for child, _, _ in children_of(session, frontier)
            if child not in seen and child not in roots
        ]
        seen.update(dict.fromkeys(new))
        frontier = list(dict.fromkeys(new))
    return list(seen)


def repoint_children(session: Session, scheduler: Any, parent: Job) -> list[str]:
    """After ``parent``'s new attempt was submitted, make its pending children wait for it.

    Each queued child gets its whole dependency list again (its other parents too), from
    the parents' current attempts. A child that cannot be re-pointed is noted; the
    parent's retry stands either way.
    """

    notes: list[tuple[Job, str]] = []
    lines = []
    for child_id, _, _ in children_of(session, [parent.id or 0]):
        child = session.get(JobRow, child_id)
        if child is None or child.status != JobStatus.QUEUED.value or not child.scheduler_job_id:
            continue
        if child.owner != parent.owner:  # a planted edge: never act on another's job
            continue
        try:
            after = waits_for(session, child)
            scheduler.set_dependency([child.scheduler_job_id], after)
        except OrionError as exc:
            notes.append(
                (
                    child,
                    f"warning: could not wait for the new attempt of job "
                    f"{parent.id}: {exc.one_line()}",
                )
            )
            continue
        text = (
            f"now waits for attempt {parent.attempt} of job {parent.id} "
            f"({parent.scheduler} job {parent.scheduler_job_id})"
        )
        notes.append((child, text))
        lines.append(f"job {child.id}: {text}")
    note_many(session, notes, source="retry")
    return lines


def cascade_failures(session: Session, settings: Settings, owner: str, at: datetime) -> Cascade:
    """Cancel (dependency_failed) the user's jobs whose ``afterok`` parent ended for good.

    Runs to a fixed point, so grandchildren follow in the same call. The rows are changed
    first; the scheduler is then asked to cancel the ones it knows, one call per backend.
    """

    done = Cascade()
    root: dict[int, int] = {}  # child → the job whose failure started it
    to_cancel: dict[str, list[str]] = {}
    while True:
        blocked = _blocked_children(session, owner)
        if not blocked:
            break
        jobs, texts = [], []
        for child, parent in blocked:
            origin = root.get(parent.id or 0, parent.id or 0)
            root[child.id or 0] = origin
            why = f" ({parent.failure_reason})" if parent.failure_reason else ""
            text = f"parent job {parent.id} {parent.status}{why}"
            if origin != parent.id:
                text += f" because job {origin} failed"
            if JobStatus(child.status).is_active and child.scheduler_job_id:
                to_cancel.setdefault(child.scheduler, []).append(child.scheduler_job_id)
            jobs.append(child)
            texts.append(text)
            done.cancelled.append(child.id or 0)
            done.lines.append(f"job {child.id}: cancelled, {text}")
        transition_many(
            session,
            jobs,
            JobStatus.CANCELLED,
            source="poll",
            at=at,
            reason=FailureReason.DEPENDENCY_FAILED,
            message=texts,
        )
        session.flush()
    for name, ids in to_cancel.items():
        try:
            scheduler_for(settings, name).cancel(ids)
        except OrionError as exc:
            done.errors.append(
                f"cancelling {name} jobs {', '.join(ids)} after their parent "
                f"failed: {exc.one_line()} — cancel them by hand"
            )
    return done


def cascade_committed(session: Session, settings: Settings, at: datetime, report: Any) -> None:
    """The poller's hook: run :func:`cascade_failures` for this user and commit it.

    A failure is reported and rolled back; the rest of the poll's work is already committed.
    """
    from sqlalchemy.exc import OperationalError

    try:
        done = cascade_failures(session, settings, current_user(), at)
        session.commit()
    except OperationalError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported; the next poll tries again
        session.rollback()
        report.errors.append(
            f"cancelling dependents of failed jobs: {type(exc).__name__}: {exc}"[:400]
        )
        return
    report.notes.extend(done.lines)
    report.errors.extend(done.errors)
    for job_id in done.cancelled:
        report.changed[job_id] = JobStatus.CANCELLED.value


def settle_never_satisfied(session: Session, settings: Settings, at: datetime, report: Any) -> None:
    """Cancel the queued jobs the scheduler reports ``DependencyNeverSatisfied``, if orion
    cannot tell of a retry that would let them run; commit.

    Runs after the cascade, which has already cancelled (naming the parent) the jobs whose
    orion parent ended for good. A job with a parent still queued, running or due a retry
    is left alone: the retry re-points it. A job whose orion parents have all completed
    waits in the scheduler for something else (an attempt since superseded, a packed task
    that failed after the parent's own job): its dependency is cleared and it starts. A
    job with no orion parent waits for a job orion does not follow (an adopted job's own
    ``--dependency``): it gets a warning note and is cancelled(dependency_failed) saying
    so, not left pending for ever.
    """

    found, report.never_satisfied = report.never_satisfied, {}
    for name, ids in found.items():
        parents = parent_states(session, ids)
        jobs = [
            job
            for job in (session.get(JobRow, job_id) for job_id in ids)
            if job is not None
            and job.status == JobStatus.QUEUED.value
            and all(state.done for state in parents.get(job.id or 0, []))
        ]
        released = [job for job in jobs if parents.get(job.id or 0)]
        if released:
            _clear_dependencies(session, scheduler_for(settings, name), released, at, report)
        jobs = [job for job in jobs if not parents.get(job.id or 0)]
        if not jobs:
            continue
        text = (
            f"{name} reports DependencyNeverSatisfied: a job it waits for that orion does not "
            "follow ended without success"
        )
        try:
            note_many(session, [(job, f"warning: {text}") for job in jobs], source="poll", at=at)
            transition_many(
                session,
                jobs,
                JobStatus.CANCELLED,
                source="poll",
                at=at,
                reason=FailureReason.DEPENDENCY_FAILED,
                message=f"{text}; cancelled (`orion retry` submits it again)",
            )
            session.commit()
        except Exception as exc:  # noqa: BLE001 - reported; the next poll tries again
            session.rollback()
            report.errors.append(f"cancelling jobs that can never start: {exc}"[:400])
            continue
        for job in jobs:
            report.changed[job.id or 0] = JobStatus.CANCELLED.value
            report.notes.append(f"job {job.id}: cancelled, {text}")
        try:
            scheduler_for(settings, name).cancel([job.scheduler_job_id or "" for job in jobs])
        except OrionError as exc:
            report.errors.append(f"cancelling {name} jobs {ids}: {exc.one_line()} — cancel by hand")


def _clear_dependencies(
    session: Session, scheduler: Any, jobs: Sequence[Job], at: datetime, report: Any
) -> None:
    """Let jobs whose orion parents have all completed start: clear their scheduler
    dependency (which can never be met), with a note; commit."""

    notes = []
    for job in jobs:
        try:
            scheduler.set_dependency([job.scheduler_job_id or ""], ())
        except OrionError as exc:
            report.errors.append(f"job {job.id}: clearing its dependency: {exc.one_line()}")
            continue
        text = (
            f"its parents completed, yet {job.scheduler} reported DependencyNeverSatisfied "
            "(it waited for an earlier attempt or task): dependency cleared, it starts now"
        )
        notes.append((job, text))
        report.notes.append(f"job {job.id}: {text}")
    note_many(session, notes, source="poll", at=at)
    session.commit()


def _blocked_children(session: Session, owner: str) -> list[tuple[Job, Job]]:
    """The user's waiting jobs with an ``afterok`` parent that ended for good (one per child)."""
    from sqlalchemy.orm import aliased
    from sqlmodel import col, select

    parent = aliased(Job)
    waiting = col(Job.status).in_([JobStatus.CREATED.value, JobStatus.QUEUED.value]) | (
        (col(Job.status) == JobStatus.FAILED.value) & col(Job.next_attempt_at).is_not(None)
    )
    ended = (col(parent.status) == JobStatus.CANCELLED.value) | (
        (col(parent.status) == JobStatus.FAILED.value) & col(parent.next_attempt_at).is_(None)
    )
    query = (
        select(Job, parent)
        .join(JobDependency, col(JobDependency.child_id) == Job.id)
        .join(parent, col(parent.id) == JobDependency.parent_id)
        .where(col(Job.owner) == owner)
        .where(waiting)
        .where(ended)
        .where(col(JobDependency.kind) == AFTER_OK)
        .order_by(col(Job.id), col(parent.id))
    )
    found: dict[int, tuple[Job, Job]] = {}
    for child, blocking in session.exec(query).all():
        found.setdefault(child.id or 0, (child, blocking))
    return list(found.values())


def links_of(session: Session, job: Job) -> dict[str, Any]:
    """Parents and children of ``job`` with their statuses, and what it waits for (show)."""
    from sqlmodel import col, select

    def brief(other: Job, kind: str) -> dict[str, Any]:
        return {
            "id": other.id,
            "name": other.name,
            "status": other.status,
            "failure_reason": other.failure_reason,
            "kind": kind,
        }

    parents = session.exec(
        select(JobDependency, JobRow)
        .join(JobRow, col(JobRow.id) == JobDependency.parent_id)
        .where(JobDependency.child_id == job.id)
        .order_by(col(JobRow.id))
    ).all()
    children = session.exec(
        select(JobDependency, JobRow)
        .join(JobRow, col(JobRow.id) == JobDependency.child_id)
        .where(JobDependency.parent_id == job.id)
        .order_by(col(JobRow.id))
    ).all()
    states = [_parent_state(p, e.kind) for e, p in parents]
    return {
        "parents": [brief(p, e.kind) for e, p in parents],
        "children": [brief(c, e.kind) for e, c in children],
        "dependency": dependency_state(job.status, states),
    }
