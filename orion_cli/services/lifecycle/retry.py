"""Retries by policy: which failures come back, with what resources, and when.

A failed attempt with a retryable reason (timeout, out of memory, node failure, lost,
submit error) is due for a retry (:func:`schedule_retry`, written by
:func:`~orion_cli.services.lifecycle.state.set_retry_due`); the poller then submits the next
attempt with ``sbatch --begin`` carrying the exponential back-off (60 s, 120 s, 240 s by
default), so nothing sleeps. TIMEOUT doubles the walltime (capped by the partition's MaxTime),
OUT_OF_MEMORY doubles the memory; NODE_FAIL and LOST keep the resources.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from orion_cli.batch import SCRIPT_NAME, BatchSpec, job_name_prefix, render_script
from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt
from orion_cli.db.session import instance_id
from orion_cli.errors import OrionError, SchedulerError, SubmitRefused
from orion_cli.jobdir import JOB_FILE, RESULT_FILE, read_json, write_json_atomic
from orion_cli.resources import Resources
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.base import DEFAULT_PARTITION, SubmitOptions, partition_names
from orion_cli.services.lifecycle import dispatch
from orion_cli.services.lifecycle.dependencies import children_of, repoint_children, waits_for
from orion_cli.services.lifecycle.policy import (
    Escalation,
    backoff_s,
    escalate,
    schedule_retry,
    with_changes,
)
from orion_cli.services.lifecycle.reparam import rewrite_inputs
from orion_cli.services.lifecycle.scf_retry import apply_change
from orion_cli.services.lifecycle.state import (
    attempt_refused,
    claim,
    note_many,
    start_attempt,
    submit_outcome_settled,
)
from orion_cli.services.lifecycle.user_script import script_submission
from orion_cli.states import FailureReason, JobStatus
from orion_cli.taskfile import ensure_made


def _escalated(job: Job, scheduler: Any) -> Escalation:
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    limit_s = (
        _partition_max_s(scheduler, job.partition) if reason is FailureReason.TIMEOUT else None
    )
    return escalate(Resources.of(job), reason, limit_s)


def _partition_max_s(scheduler: Any, partition: str) -> int | None:
    """The longest walltime the job's partition allows (no partition named: the default's).

    Without the default's limit (a backend that cannot tell) the longest of all partitions.
    """
    limits: dict[str, int | None] = scheduler.partitions()
    if (partition or DEFAULT_PARTITION) in limits:
        return limits[partition or DEFAULT_PARTITION]
    values = [limits[name] for name in partition_names(limits)]
    return None if not values or None in values else max(v for v in values if v is not None)


def adopt_or_resubmit(
    session: Session, settings: Settings, job: Job, scheduler: Any, now: datetime
) -> str:
    """Resubmit a job due for a retry; after an unanswered sbatch, first look for its job."""
    if job.submit_unknown_since is not None:
        known = {
            a.scheduler_job_id
            for a in session.exec(select(JobAttempt).where(JobAttempt.job_id == job.id)).all()
        }
        prefix = job_name_prefix(job.id or 0, instance_id(session))
        found = scheduler.find_by_name([prefix]).get(prefix)
        if found and found not in known:
            start_attempt(
                session,
                job,
                job.attempt + 1,
                _escalated(job, scheduler).resources,
                found,
                source="recovery",
                at=now,
                message=f"found {job.scheduler} job {found} after an unanswered sbatch",
            )
            return f"job {job.id}: found {job.scheduler} job {found}"
        submit_outcome_settled(
            session,
            job,
            source="recovery",
            at=now,
            message="no job of the unanswered sbatch found: submitting again",
        )
    return resubmit(session, settings, job, scheduler, now)


@dataclass(frozen=True)
class NextAttempt:
    """What the next attempt of a job runs with, decided once before it is sent."""

    number: int
    escalation: Escalation
    delay_s: int
    scf_note: str | None = None
    changed: str = ""  # retry -p: the parameters changed


def resubmit(
    session: Session,
    settings: Settings,
    job: Job,
    scheduler: Any,
    now: datetime,
    *,
    manual: bool = False,
    params: dict[str, Any] | None = None,
    refresh: str = "",
    resources: dict[str, Any] | None = None,
) -> str:
    """Submit the next attempt of a failed or cancelled job; return a line saying what happened.

    ``params``: the attempt runs with these (checked) engine parameters (retry -p).
    ``refresh``: why a completed analysis step (eos fit, converge) runs again.
    After the attempt is submitted, the job's completed analysis steps are rerun after it
    (:func:`refresh_analyses`), so that a study's answer includes the retried point.
    ``resources``: Resources fields the user changed (retry --walltime ...), over the escalation.
    """
    claim(session, job, now)  # nobody else submits this attempt while we do
    after = waits_for(session, job)  # its parents' current attempts (UsageError: blocked)
    unusable = _unusable_directory(job)
    if unusable is not None:
        return _resubmit_failed(session, job, unusable, now)
    nxt = _next_attempt(session, settings, job, scheduler, manual, params, resources)
    begin = now + timedelta(seconds=nxt.delay_s) if nxt.delay_s else None
    answer = dispatch.send(scheduler, _attempt(session, job, nxt, begin, after))
    if answer.unknown:  # the attempt is not counted: looked up by name first
        grace_s = settings.submit_grace_s
        dispatch.record_unknown(session, [job], answer, now, grace_s, source="retry")
        return f"job {job.id}: attempt {nxt.number}: {answer.line()}"
    if answer.error is not None:
        used = nxt.escalation.resources
        return _resubmit_failed(session, job, answer.error, now, nxt.number, used)
    message = _started_message(job, nxt, manual, answer.scheduler_job_id, refresh)
    start_attempt(
        session,
        job,
        nxt.number,
        nxt.escalation.resources,
        answer.scheduler_job_id,
        source="user" if manual else "retry",
        message=message,
        at=now,
    )
    repointed = repoint_children(session, scheduler, job)
    repointed += refresh_analyses(session, settings, scheduler, job, now)
    return f"job {job.id}: {message}" + "".join(f"; {line}" for line in repointed)


def _unusable_directory(job: Job) -> SchedulerError | None:
    """Why the job's directory cannot hold another attempt (None: it can)."""
    workdir = Path(job.workdir)
    if not workdir.parent.is_dir() or (not workdir.is_dir() and not job.array_name):
        return SubmitRefused(  # a scratch clean-up: no later attempt can find the inputs
            f"job directory {workdir} is gone", "submit the structure again (orion submit)"
        )
    try:
        ensure_made(workdir, job.array_name, job.array_index)  # an array task that never ran
    except Exception as exc:  # noqa: BLE001 - recorded on the attempt; the poll goes on
        return SchedulerError(f"cannot make job directory {workdir}: {type(exc).__name__}: {exc}")
    return None


def _next_attempt(
    session: Session,
    settings: Settings,
    job: Job,
    scheduler: Any,
    manual: bool,
    params: dict[str, Any] | None,
    resources: dict[str, Any] | None = None,
) -> NextAttempt:
    """Decide the next attempt and prepare its inputs: parameters, SCF change, old result."""
    workdir = Path(job.workdir)
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    immediate = manual or reason is FailureReason.SUBMIT_ERROR
    delay_s = 0 if immediate else backoff_s(job.retry_delay_s, job.attempt)
    changed = ""
    if params is not None:
        changed = f"; parameters: {rewrite_inputs(settings, job, params)}"
    old_result = workdir / RESULT_FILE
    if old_result.exists():
        old_result.replace(workdir / f"result-attempt-{job.attempt}.json")
    number = job.attempt + 1
    scf_note = None
    if reason is FailureReason.ENGINE_ERROR:
        scf_note = apply_change(session, job, workdir, number)
    if scf_note:  # the same resources, at once
        return NextAttempt(number, Escalation(Resources.of(job), scf_note), 0, scf_note, changed)
    escalation = with_changes(_escalated(job, scheduler), resources or {})
    return NextAttempt(number, escalation, delay_s, None, changed)


def _attempt(
    session: Session,
    job: Job,
    nxt: NextAttempt,
    begin: datetime | None,
    after: tuple[tuple[str, str], ...],
) -> dispatch.Attempt:
    """What to send: orion's job.sh (rewritten for this attempt) or the user's script copy."""
    workdir, instance = Path(job.workdir), instance_id(session)
    if job.script:  # a user's own script is submitted as it was, with orion's options
        script, options = script_submission(
            job,
            instance,
            hold=job.held,  # a held job stays held: its next attempt waits for `orion release`
            begin=begin,
            after=after,
            attempt=nxt.number,
            resources=nxt.escalation.resources,
        )
        return dispatch.Attempt(script, options)
    site = job.site or {}  # what the first attempt ran (jobs from before 0004: none)
    spec = BatchSpec(
        orion_id=job.id or 0,
        name=job.name,
        workdir=workdir,
        python=str(site.get("python") or sys.executable),
        setup_lines=tuple(site.get("setup") or ()),
        resources=nxt.escalation.resources,
        attempt=nxt.number,
        soft_margin_s=job.soft_margin_s,
        instance=instance,
    )
    (workdir / SCRIPT_NAME).write_text(render_script(spec))
    job_file = read_json(workdir / JOB_FILE) or {}
    write_json_atomic(workdir / JOB_FILE, {**job_file, "attempt": nxt.number})
    options = SubmitOptions(hold=job.held, begin=begin, after=after)  # held stays held
    return dispatch.Attempt(workdir / SCRIPT_NAME, options)


def _started_message(
    job: Job, nxt: NextAttempt, manual: bool, scheduler_job_id: str, refresh: str = ""
) -> str:
    reason = job.failure_reason or ("the job was cancelled" if job.status == "cancelled" else "")
    when = f", begins after {nxt.delay_s} s" if nxt.delay_s else ""
    if refresh:
        job_line = f"{job.scheduler} job {scheduler_job_id}"
        return f"attempt {nxt.number} (refresh: {refresh}){when}; {job_line}"
    which = (
        f"attempt {nxt.number} (orion retry)"
        if manual  # outside the automatic budget
        else f"attempt {nxt.number} (--on-scf-fail)"
        if nxt.scf_note
        else f"attempt {nxt.number} of {job.max_retries + 1}"
    )
    held = f" (held, as the job was: orion release {job.id} starts it)" if job.held else ""
    return (
        f"{which}{' after ' + reason if reason else ''}: {nxt.escalation.note}{when}{nxt.changed}; "
        f"{job.scheduler} job {scheduler_job_id}{held}"
    )


#: engines that analyse other jobs of a study (their parents): rerun when a parent is retried
ANALYSIS_ENGINES = ("eos", "converge")


def refresh_analyses(
    session: Session, settings: Settings, scheduler: Any, point: Job, now: datetime
) -> list[str]:
    """Rerun the completed analysis steps that read ``point``, after its new attempt.

    Each waits (afterany) for the point's new scheduler job and reads every point again, so
    the study's stored answer is recomputed when the point ends. One that cannot be rerun
    is noted on it; the point's retry stands either way.
    """
    lines = []
    for child_id, _, _ in children_of(session, [point.id or 0]):
        child = session.get(Job, child_id)
        if (
            child is None
            or child.engine not in ANALYSIS_ENGINES
            or child.status != JobStatus.COMPLETED.value
        ):
            continue
        why = f"job {point.id} retried (attempt {point.attempt})"
        try:
            lines.append(
                resubmit(
                    session,
                    settings,
                    child,
                    scheduler_for_job(settings, child, scheduler),
                    now,
                    manual=True,
                    refresh=why,
                )
            )
        except OrionError as exc:
            note_many(
                session,
                [(child, f"warning: not rerun after {why}: {exc.one_line()}")],
                source="retry",
                at=now,
            )
    return lines


def scheduler_for_job(settings: Settings, job: Job, scheduler: Any) -> Any:
    """The scheduler backend of ``job``: ``scheduler`` when it is that backend."""
    if getattr(scheduler, "name", None) == job.scheduler:
        return scheduler
    return scheduler_for(settings, job.scheduler)


def _resubmit_failed(
    session: Session,
    job: Job,
    exc: SchedulerError,
    now: datetime,
    attempt: int | None = None,
    resources: Resources | None = None,
) -> str:
    """Record an attempt that the scheduler refused; the job stays failed(submit_error).

    Without ``attempt`` (the attempt could not even be prepared) the current one is recorded.
    """
    text = exc.one_line()
    attempt_refused(
        session,
        job,
        attempt or job.attempt,
        resources or Resources.of(job),
        text,
        source="retry",
        at=now,
    )
    [scheduled] = schedule_retry(
        session, [job], now, source="retry", final=isinstance(exc, SubmitRefused)
    )
    tail = f"; next try at {job.next_attempt_at:%H:%M:%S}" if scheduled else "; no retries left"
    return f"job {job.id}: attempt {job.attempt} not submitted: {text}{tail}"
