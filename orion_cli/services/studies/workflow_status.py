"""``orion workflow show`` and ``orion workflow retry --failed``: a study as a graph of steps.

The graph is read back from the database: each job's step (``job.study_step``), the
dependency edges between jobs (``job_dependencies``) and hand-offs
(``job.structure_from_id``). A study made by ``orion eos`` has no step names: its jobs are
grouped by engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orion_cli.db.models import Job, JobDependency, with_any_tag
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.services.actions.apply import retry
from orion_cli.services.lifecycle.dependencies import descendants, parent_states
from orion_cli.services.lifecycle.depgraph import AFTER_ANY, dependency_state
from orion_cli.services.lifecycle.reparam import checked
from orion_cli.services.queries.selection import BulkReport, Selection
from orion_cli.services.queries.show import failure_hint
from orion_cli.states import FailureReason, JobStatus

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.config import Settings
    from orion_cli.db.models import Job
    from orion_cli.services.queries.selection import BulkReport

#: a step's status is the first of these that one of its jobs has
_STEP_STATUS_ORDER = ("failed", "cancelled", "running", "queued", "created", "completed")
#: jobs of a step listed one by one; above this, only the ones not completed
SHOWN_JOBS = 12


def study_jobs(session: Session, settings: Settings, ident: int) -> list[Job]:
    """The user's jobs of the study that ``ident`` (a study id or any of its jobs) names."""
    from sqlmodel import col, select

    me = current_user()
    job = session.get(Job, ident)
    if job is None or job.owner != me or job.removed_at is not None:
        raise UsageError(f"no job of yours with id {ident}", "`orion ls` lists your jobs")
    if job.study_id is None:
        raise UsageError(
            f"job {ident} is not part of a study",
            "give a study id (`orion workflow submit` and `orion eos` print it)",
        )
    return list(
        session.exec(
            select(Job)
            .where(Job.study_id == job.study_id)
            .where(col(Job.owner) == me)
            .where(col(Job.removed_at).is_(None))
            .order_by(col(Job.id))
        ).all()
    )


def _step_of(job: Job) -> str:
    return job.study_step or job.engine


def _reason(job: Job, parents: Sequence[Any]) -> str:
    """One line saying why the job is where it is ('' for a completed or running one)."""
    blocked = dependency_state(job.status, parents)
    if blocked:
        return blocked
    if job.status == JobStatus.FAILED.value and job.next_attempt_at is not None:
        return f"retry due at {job.next_attempt_at:%H:%M:%S} UTC (attempt {job.attempt + 1})"
    if job.status in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
        text = " ".join((job.error_message or "").split())
        why = job.failure_reason or ""
        return f"{why}: {text[:160]}" if why and text else why or text[:160]
    return ""


def study_graph(settings: Settings, ident: int) -> dict[str, Any]:
    """The study as steps (parents before children) with their jobs, statuses and reasons."""
    from sqlmodel import col, select

    with session_scope(settings.resolved_database_url) as session:
        jobs = study_jobs(session, settings, ident)
        ids = [job.id or 0 for job in jobs]
        states = parent_states(session, ids)
        edges = session.exec(
            select(JobDependency).where(col(JobDependency.child_id).in_(ids))
        ).all()
    step_of = {job.id: _step_of(job) for job in jobs}
    steps: dict[str, dict[str, Any]] = {}
    for job in jobs:
        step = steps.setdefault(
            _step_of(job),
            {"step": _step_of(job), "engine": job.engine, "needs": [], "needs_any": []},
        )
        step.setdefault("jobs", []).append(
            {
                "id": job.id,
                "name": job.name,
                "status": job.status,
                "failure_reason": job.failure_reason,
                "attempt": job.attempt,
                "scheduler_job_id": job.scheduler_job_id,
                "sweep": job.sweep_point or {},
                "reason": _reason(job, states.get(job.id or 0, [])),
                "hint": failure_hint(job),
            }
        )
        if job.structure_from_id in step_of:
            step["from"] = step_of[job.structure_from_id]
    for edge in edges:
        child, parent = step_of.get(edge.child_id), step_of.get(edge.parent_id)
        if child is None or parent is None or parent == child:
            continue  # a parent outside the study (submit --after) is shown by orion show
        key = "needs_any" if edge.kind == AFTER_ANY else "needs"
        if parent not in steps[child][key]:
            steps[child][key].append(parent)
    for step in steps.values():
        counts: dict[str, int] = {}
        for job in step["jobs"]:
            counts[job["status"]] = counts.get(job["status"], 0) + 1
        step["counts"] = counts
        step["status"] = next(s for s in _STEP_STATUS_ORDER if s in counts)
        step.setdefault("from", None)
    totals: dict[str, int] = {}
    for job in jobs:
        totals[job.status] = totals.get(job.status, 0) + 1
    first = jobs[0]
    return {
        "study_id": first.study_id,
        "structure": first.structure_source,
        "formula": first.formula,
        "status": next(s for s in _STEP_STATUS_ORDER if s in totals),
        "counts": totals,
        "steps": list(steps.values()),
    }


@dataclass(frozen=True)
class RetryPlan:
    """What ``workflow retry --failed`` reruns, and which of it takes the ``-p`` changes."""

    rerun: list[Job]  # parents before children (ids grow down the graph)
    changed: set[int]  # ids of the jobs that rerun with -p
    pending: list[Job]  # failed jobs whose automatic retry is already due


def _to_retry(session: Session, jobs: Sequence[Job], steps: Sequence[str]) -> RetryPlan:
    """The failed jobs (of ``steps``, or all), the cancelled or failed parents they need, and
    the jobs cancelled (dependency_failed) below any of those.

    With ``steps``, the step's own dependency_failed jobs are rerun too (with what they
    need above them), and ``-p`` applies to every rerun job of those steps; without, to the
    jobs that failed themselves. A job cancelled because a parent was cancelled by hand is
    not below a failure: it is left alone unless a rerun job needs it.
    """

    known = {_step_of(job) for job in jobs}
    for step in steps:
        if step not in known:
            raise UsageError(
                f"--step {step}: no such step in this study",
                f"its steps: {', '.join(sorted(known))}",
            )
    chosen = [job for job in jobs if not steps or _step_of(job) in steps]
    failed = [j for j in chosen if _ended_for_good(j) and j.status == JobStatus.FAILED.value]
    roots = failed + [j for j in chosen if steps and _dependency_failed(j)]
    by_id = {job.id: job for job in jobs}
    needed = _needed_parents(session, roots, by_id)
    under = set(descendants(session, [job.id or 0 for job in roots + needed]))
    below = [j for j in jobs if j.id in under and _dependency_failed(j)]
    rerun = sorted({j.id: j for j in roots + needed + below}.values(), key=lambda j: j.id or 0)
    changed = {j.id or 0 for j in rerun if (_step_of(j) in steps if steps else j in failed)}
    pending = [j for j in chosen if j.status == JobStatus.FAILED.value and j not in failed]
    return RetryPlan(rerun, changed, pending)


def _ended_for_good(job: Job) -> bool:
    """Failed with no retry due, or cancelled: nothing will run it again by itself."""
    return job.status == JobStatus.CANCELLED.value or (
        job.status == JobStatus.FAILED.value and job.next_attempt_at is None
    )


def _dependency_failed(job: Job) -> bool:
    return (
        job.status == JobStatus.CANCELLED.value
        and job.failure_reason == FailureReason.DEPENDENCY_FAILED.value
    )


def _needed_parents(session: Session, roots: Sequence[Job], by_id: Mapping[Any, Job]) -> list[Job]:
    """The parents, grandparents... of ``roots`` that ended for good (a cancelled EOS point
    its fit needs, a failed relaxation a dependency_failed scf needs), up to completed ones."""
    found: dict[int, Job] = {}
    frontier = [job.id or 0 for job in roots]
    while frontier:
        parents = [
            by_id[state.parent_id]
            for states in parent_states(session, frontier).values()
            for state in states
            if state.parent_id in by_id and state.parent_id not in found
        ]
        new = [job for job in parents if _ended_for_good(job) and job not in roots]
        found.update({job.id or 0: job for job in new})
        frontier = [job.id or 0 for job in new]
    return list(found.values())


def retry_failed(
    settings: Settings,
    ident: int,
    changes: Mapping[str, Any] | None = None,
    steps: Sequence[str] = (),
) -> BulkReport:
    """Rerun the study's failed jobs and those cancelled because of them; nothing else.

    Parents go first (ids grow down the graph), so each rerun child waits for its parents'
    new attempts; the cancelled or failed parents a rerun job needs are rerun too.
    ``changes`` (``-p``) apply to the jobs that failed themselves, or with ``steps`` to
    every rerun job of those steps; each is checked by its engine before anything is
    submitted. ``steps``: only the failures of these steps, their dependency_failed jobs,
    what those need and what they cancelled.
    """

    with session_scope(settings.resolved_database_url) as session:
        plan = _to_retry(session, study_jobs(session, settings, ident), steps)
        for job in plan.rerun if changes else ():  # every -p is checked before any submission
            if job.id not in plan.changed:
                continue
            try:
                checked(settings, job, job.parameters or {}, changes or {})
            except UsageError as exc:
                raise UsageError(f"job {job.id}: {exc.message}", exc.hint) from None
        own, pending = plan.changed, plan.pending
        order = [job.id or 0 for job in plan.rerun]
    report = BulkReport("retried", hint="nothing in this study failed")
    for job in pending:
        report.skip(
            job.id or 0,
            "retry already due",
            f"job {job.id} is retried by `orion poll` (attempt {job.attempt + 1})",
        )
    for job_id in order:
        one = retry(
            settings, Selection(ids=(job_id,)), dict(changes or {}) if job_id in own else None
        )
        report.done += one.done
        report.notes += one.notes
        report.trouble |= one.trouble
        for why, ids in one.skipped.items():
            report.skipped.setdefault(why, []).extend(ids)
        for why, ids in one.refused.items():
            report.refused.setdefault(why, []).extend(ids)
        report.sentences.update(one.sentences)
    return report


def tagged_studies(settings: Settings, tags: tuple[str, ...]) -> list[int]:
    """The studies (ids) of your jobs with any of ``tags``, oldest first; none: UsageError."""
    from sqlmodel import col, select

    with session_scope(settings.resolved_database_url) as session:
        found = session.exec(
            select(Job.study_id)
            .where(col(Job.owner) == current_user(), col(Job.removed_at).is_(None))
            .where(col(Job.study_id).is_not(None), with_any_tag(tags))
            .distinct()
        ).all()
    if not found:
        raise UsageError(
            f"no study has a job tagged {', '.join(tags)}", "`orion ls --tag T` lists the jobs"
        )
    return sorted(i for i in found if i is not None)
