"""Retries by policy: which failures come back, with what resources, and when.

A failed attempt with a retryable reason (timeout, out of memory, node failure, lost,
submit error) is due for a retry (:func:`schedule_retry`, written by
:func:`~orion_cli.services.lifecycle.set_retry_due`); the poller then submits the next attempt with
``sbatch --begin`` carrying the exponential back-off (60 s, 120 s, 240 s by default), so
nothing sleeps. TIMEOUT doubles the walltime (capped by the partition's MaxTime),
OUT_OF_MEMORY doubles the memory; NODE_FAIL and LOST keep the resources.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from orion_cli.batch import SCRIPT_NAME, BatchSpec, job_name_prefix, render_script
from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt
from orion_cli.db.session import instance_id
from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown, SubmitRefused
from orion_cli.jobdir import JOB_FILE, RESULT_FILE, read_json, write_json_atomic
from orion_cli.limits import MAX_MEM_MB, MAX_RETRY_DELAY_S, MAX_WALLTIME_S
from orion_cli.resources import Resources
from orion_cli.schedulers.base import SubmitOptions
from orion_cli.services.lifecycle import (
    attempt_refused,
    claim,
    set_retry_due,
    start_attempt,
    submit_outcome_settled,
    submit_outcome_unknown,
)
from orion_cli.states import RETRYABLE_REASONS, FailureReason
from orion_cli.taskfile import ensure_made

DEFAULT_BASE_MEM_MB = 2048


def backoff_s(base_s: int, failed_attempt: int) -> int:
    """Delay before the attempt after ``failed_attempt``: base, 2×base, 4×base, ... ≤ 30 days.

    The cap keeps ``now + delay`` a valid date however many retries are allowed.

    >>> [backoff_s(60, n) for n in (1, 2, 3)], backoff_s(60, 100) == MAX_RETRY_DELAY_S
    ([60, 120, 240], True)
    """
    return min(base_s * 2 ** max(0, failed_attempt - 1), MAX_RETRY_DELAY_S)


@dataclass(frozen=True)
class Escalation:
    """The resources of the next attempt, and a note saying what changed."""

    resources: Resources
    note: str = ""


def escalate(
    resources: Resources, reason: FailureReason | None, max_walltime_s: int | None
) -> Escalation:
    """Resources for the next attempt after a failure with ``reason``.

    Everything else the job asked for (GPUs, constraint, extra sbatch options...) is kept.

    >>> escalate(Resources(walltime_s=3600), FailureReason.TIMEOUT, None).note
    'walltime 3600 s → 7200 s'
    >>> escalate(Resources(walltime_s=3600), FailureReason.TIMEOUT, 5000).resources.walltime_s
    5000
    >>> escalate(Resources(mem_mb=1000), FailureReason.OUT_OF_MEMORY, None).resources.mem_mb
    2000
    >>> escalate(Resources(mem_per_cpu_mb=500), FailureReason.OUT_OF_MEMORY, None).note
    'memory per CPU 500 MB → 1000 MB'
    >>> escalate(Resources(), FailureReason.NODE_FAIL, None).note
    'same resources'
    """
    if reason is FailureReason.TIMEOUT:
        walltime_s = resources.walltime_s
        new = min(walltime_s * 2, max_walltime_s or MAX_WALLTIME_S, MAX_WALLTIME_S)
        note = f"walltime {walltime_s} s → {new} s"
        if new == walltime_s:
            note += " (already at the partition's MaxTime)"
        return Escalation(replace(resources, walltime_s=new), note)
    if reason is FailureReason.OUT_OF_MEMORY and resources.mem_per_cpu_mb:
        old_mb = resources.mem_per_cpu_mb
        new_mb = min(2 * old_mb, MAX_MEM_MB)
        return Escalation(
            replace(resources, mem_per_cpu_mb=new_mb), f"memory per CPU {old_mb} MB → {new_mb} MB"
        )
    if reason is FailureReason.OUT_OF_MEMORY:
        mem_mb = resources.mem_mb
        new_mb = min(2 * (mem_mb or DEFAULT_BASE_MEM_MB), MAX_MEM_MB)
        return Escalation(
            replace(resources, mem_mb=new_mb), f"memory {mem_mb or 'default'} MB → {new_mb} MB"
        )
    return Escalation(resources, "same resources")


def _escalated(job: Job, scheduler: Any) -> Escalation:
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    return escalate(Resources.of(job), reason, _partition_max_s(scheduler, job.partition))


def retry_due(
    job: Job, now: datetime, final: bool = False, scf_retry: bool = False
) -> datetime | None:
    """When a just-failed job's next attempt is due, or None if it is not retried.

    ``final``: the scheduler refused the job for good (SubmitRefused): never retried.
    ``scf_retry``: its SCF did not converge and ``--on-scf-fail`` asks for one retry, now.
    """
    if scf_retry and not final:
        return now
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    if final or reason not in RETRYABLE_REASONS or job.attempt > job.max_retries:
        return None
    wait_s = (
        backoff_s(job.retry_delay_s, job.attempt) if reason is FailureReason.SUBMIT_ERROR else 0
    )  # the scheduler holds the next attempt back with --begin
    return now + timedelta(seconds=wait_s)


def schedule_retry(
    session: Session,
    jobs: Sequence[Job],
    now: datetime,
    *,
    source: str,
    final: bool = False,
    scf_retry: Sequence[bool] = (),
) -> list[bool]:
    """Decide for just-failed ``jobs`` whether and when they are retried, and record it.

    ``scf_retry``: per job, whether ``--on-scf-fail`` asks for its retry. Returns, per
    job, whether a retry is due.
    """
    scf = list(scf_retry) or [False] * len(jobs)
    plans = [(job, retry_due(job, now, final, s)) for job, s in zip(jobs, scf, strict=True)]
    set_retry_due(session, plans, source=source, at=now)
    return [due is not None for _, due in plans]


def _partition_max_s(scheduler: Any, partition: str) -> int | None:
    limits: dict[str, int | None] = scheduler.partitions()
    if partition in limits:
        return limits[partition]
    values = list(limits.values())
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


def resubmit(
    session: Session,
    settings: Settings,
    job: Job,
    scheduler: Any,
    now: datetime,
    *,
    manual: bool = False,
    params: dict[str, Any] | None = None,
) -> str:
    """Submit the next attempt of a failed or cancelled job; return a line saying what happened.

    ``params``: the attempt runs with these (checked) engine parameters (retry -p).
    """
    from orion_cli.services.dependencies import repoint_children, waits_for
    from orion_cli.services.scf_retry import apply_change

    claim(session, job, now)  # nobody else submits this attempt while we do
    after = waits_for(session, job)  # its parents' current attempts (UsageError: blocked)
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    delay_s = (
        0
        if manual or reason is FailureReason.SUBMIT_ERROR
        else backoff_s(job.retry_delay_s, job.attempt)
    )
    res = _escalated(job, scheduler)
    workdir = Path(job.workdir)
    try:
        ensure_made(workdir, job.array_name, job.array_index)  # an array task that never ran
    except Exception as exc:  # noqa: BLE001 - recorded on the attempt; the poll goes on
        return _resubmit_failed(
            session,
            job,
            SchedulerError(f"cannot make job directory {workdir}: {type(exc).__name__}: {exc}"),
            now,
        )
    changed = ""
    if params is not None:
        from orion_cli.services.reparam import rewrite_inputs

        changed = f"; parameters: {rewrite_inputs(settings, job, params)}"
    old_result = workdir / RESULT_FILE
    if old_result.exists():
        old_result.replace(workdir / f"result-attempt-{job.attempt}.json")
    attempt = job.attempt + 1
    scf_note = (
        apply_change(session, job, workdir, attempt)
        if reason is FailureReason.ENGINE_ERROR
        else None
    )
    if scf_note:
        delay_s, res = 0, Escalation(Resources.of(job), scf_note)  # same resources
    site = job.site or {}  # what the first attempt ran (jobs from before 0004: none)
    spec = BatchSpec(
        orion_id=job.id or 0,
        name=job.name,
        workdir=workdir,
        python=str(site.get("python") or sys.executable),
        setup_lines=tuple(site.get("setup") or ()),
        resources=res.resources,
        attempt=attempt,
        soft_margin_s=job.soft_margin_s,
        instance=instance_id(session),
    )
    if not job.script:  # a user's own script (services/scripts.py) is submitted as it was
        (workdir / SCRIPT_NAME).write_text(render_script(spec))
        job_file = read_json(workdir / JOB_FILE) or {}
        write_json_atomic(workdir / JOB_FILE, {**job_file, "attempt": attempt})
    begin = now + timedelta(seconds=delay_s) if delay_s else None
    # a held job stays held: its next attempt waits for `orion release` like the first
    script = workdir / SCRIPT_NAME
    options = SubmitOptions(hold=job.held, begin=begin, after=after)
    if job.script:
        from orion_cli.services.scripts import script_submission

        script, options = script_submission(
            job,
            spec.instance,
            hold=job.held,
            begin=begin,
            after=after,
            attempt=attempt,
            resources=res.resources,
        )
    try:
        scheduler_job_id = scheduler.submit(script, options)
    except SubmitOutcomeUnknown as exc:  # the attempt is not counted: looked up first
        submit_outcome_unknown(
            session,
            job,
            now + timedelta(seconds=settings.submit_grace_s),
            source="retry",
            message=exc.one_line(),
            at=now,
        )
        return f"job {job.id}: attempt {attempt}: {exc.one_line()}"
    except SchedulerError as exc:
        return _resubmit_failed(session, job, exc, now, attempt, res.resources)
    when = f", begins after {delay_s} s" if delay_s else ""
    which = (
        f"attempt {attempt} (orion retry)"
        if manual  # outside the automatic budget
        else f"attempt {attempt} (--on-scf-fail)"
        if scf_note
        else f"attempt {attempt} of {job.max_retries + 1}"
    )
    message = (
        f"{which} after {reason or 'request'}: "
        f"{res.note}{when}{changed}; {job.scheduler} job {scheduler_job_id}"
    )
    start_attempt(
        session,
        job,
        attempt,
        res.resources,
        scheduler_job_id,
        source="user" if manual else "retry",
        message=message,
        at=now,
    )
    repointed = repoint_children(session, scheduler, job)
    return f"job {job.id}: {message}" + "".join(f"; {line}" for line in repointed)


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
