"""Retries by policy: which failures come back, with what resources, and when.

A failed attempt with a retryable reason (timeout, out of memory, node failure, lost,
submit error) gets ``next_attempt_at``; the poller then submits the next attempt with
``sbatch --begin`` carrying the exponential back-off (60 s, 120 s, 240 s by default), so
nothing sleeps. TIMEOUT doubles the walltime (capped by the partition's MaxTime),
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
from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown, SubmitRefused
from orion_cli.jobdir import JOB_FILE, RESULT_FILE, read_json, write_json_atomic
from orion_cli.limits import MAX_MEM_MB, MAX_RETRY_DELAY_S, MAX_WALLTIME_S
from orion_cli.schedulers.base import SubmitOptions
from orion_cli.services.lifecycle import claim, transition
from orion_cli.states import RETRYABLE_REASONS, FailureReason, JobStatus
from orion_cli.taskfile import ensure_made

DEFAULT_BASE_MEM_MB = 2048
UNKNOWN_SUBMIT = "SUBMIT_UNKNOWN"


def backoff_s(base_s: int, failed_attempt: int) -> int:
    """Delay before the attempt after ``failed_attempt``: base, 2×base, 4×base, ... ≤ 30 days.

    The cap keeps ``now + delay`` a valid date however many retries are allowed.

    >>> [backoff_s(60, n) for n in (1, 2, 3)], backoff_s(60, 100) == MAX_RETRY_DELAY_S
    ([60, 120, 240], True)
    """
    return min(base_s * 2 ** max(0, failed_attempt - 1), MAX_RETRY_DELAY_S)


@dataclass(frozen=True)
class Resources:
    walltime_s: int
    mem_mb: int
    note: str = ""


def escalate(walltime_s: int, mem_mb: int, reason: FailureReason | None,
             max_walltime_s: int | None) -> Resources:
    """Resources for the next attempt after a failure with ``reason``.

    >>> escalate(3600, 0, FailureReason.TIMEOUT, None)
    Resources(walltime_s=7200, mem_mb=0, note='walltime 3600 s → 7200 s')
    >>> escalate(3600, 0, FailureReason.TIMEOUT, 5000).walltime_s
    5000
    >>> escalate(3600, 1000, FailureReason.OUT_OF_MEMORY, None).mem_mb
    2000
    >>> escalate(3600, 1000, FailureReason.NODE_FAIL, None).note
    'same resources'
    """
    if reason is FailureReason.TIMEOUT:
        new = min(walltime_s * 2, max_walltime_s or MAX_WALLTIME_S, MAX_WALLTIME_S)
        note = f"walltime {walltime_s} s → {new} s"
        if new == walltime_s:
            note += " (already at the partition's MaxTime)"
        return Resources(new, mem_mb, note)
    if reason is FailureReason.OUT_OF_MEMORY:
        new_mb = min(2 * (mem_mb or DEFAULT_BASE_MEM_MB), MAX_MEM_MB)
        return Resources(walltime_s, new_mb, f"memory {mem_mb or 'default'} MB → {new_mb} MB")
    return Resources(walltime_s, mem_mb, "same resources")


def schedule_retry(job: Job, now: datetime, final: bool = False) -> bool:
    """Mark a just-failed job for an automatic retry if its reason and budget allow.

    ``final``: the scheduler refused the job for good (SubmitRefused): never retried.
    """
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    if final or reason not in RETRYABLE_REASONS or job.attempt > job.max_retries:
        job.next_attempt_at = None
        return False
    wait_s = backoff_s(job.retry_delay_s, job.attempt) if reason is FailureReason.SUBMIT_ERROR \
        else 0  # the scheduler holds the next attempt back with --begin
    job.next_attempt_at = now + timedelta(seconds=wait_s)
    return True


def _partition_max_s(scheduler: Any, partition: str) -> int | None:
    limits: dict[str, int | None] = scheduler.partitions()
    if partition in limits:
        return limits[partition]
    values = list(limits.values())
    return None if not values or None in values else max(v for v in values if v is not None)


def adopt_or_resubmit(session: Session, settings: Settings, job: Job, scheduler: Any,
                      now: datetime) -> str:
    """Resubmit a job due for a retry; after an unanswered sbatch, first look for its job."""
    if job.raw_state == UNKNOWN_SUBMIT:
        known = {a.scheduler_job_id for a in session.exec(
            select(JobAttempt).where(JobAttempt.job_id == job.id)).all()}
        prefix = job_name_prefix(job.id or 0, instance_id(session))
        found = scheduler.find_by_name([prefix]).get(prefix)
        if found and found not in known:
            reason = FailureReason(job.failure_reason) if job.failure_reason else None
            res = escalate(job.walltime_s, job.mem_mb, reason,
                           _partition_max_s(scheduler, job.partition))
            job.attempt, job.walltime_s, job.mem_mb = job.attempt + 1, res.walltime_s, res.mem_mb
            job.scheduler_job_id, job.raw_state = found, "PENDING"
            transition(session, job, JobStatus.QUEUED, source="recovery", at=now,
                       message=f"found {job.scheduler} job {found} after an unanswered sbatch")
            return f"job {job.id}: found {job.scheduler} job {found}"
    return resubmit(session, settings, job, scheduler, now)


def resubmit(session: Session, settings: Settings, job: Job, scheduler: Any, now: datetime,
             *, manual: bool = False) -> str:
    """Submit the next attempt of a failed or cancelled job; return a line saying what happened."""
    from orion_cli.services.dependencies import repoint_children, waits_for

    claim(session, job, now)  # nobody else submits this attempt while we do
    after = waits_for(session, job)  # its parents' current attempts (UsageError: blocked)
    reason = FailureReason(job.failure_reason) if job.failure_reason else None
    delay_s = 0 if manual or reason is FailureReason.SUBMIT_ERROR \
        else backoff_s(job.retry_delay_s, job.attempt)
    res = escalate(job.walltime_s, job.mem_mb, reason, _partition_max_s(scheduler, job.partition))
    workdir = Path(job.workdir)
    try:
        ensure_made(workdir, job.array_name, job.array_index)  # an array task that never ran
    except Exception as exc:  # noqa: BLE001 - recorded on the attempt; the poll goes on
        return _resubmit_failed(session, job, SchedulerError(
            f"cannot make job directory {workdir}: {type(exc).__name__}: {exc}"), now)
    old_result = workdir / RESULT_FILE
    if old_result.exists():
        old_result.replace(workdir / f"result-attempt-{job.attempt}.json")
    attempt = job.attempt + 1
    site = job.site or {}  # what the first attempt ran (jobs from before 0004: none)
    spec = BatchSpec(
        orion_id=job.id or 0, name=job.name, workdir=workdir,
        python=str(site.get("python") or sys.executable),
        setup_lines=tuple(site.get("setup") or ()),
        walltime_s=res.walltime_s, attempt=attempt, partition=job.partition, nodes=job.nodes,
        ntasks=job.ntasks, cpus_per_task=job.cpus_per_task, mem_mb=res.mem_mb,
        account=job.account, qos=job.qos, priority=job.priority, soft_margin_s=job.soft_margin_s,
        instance=instance_id(session),
    )
    if not job.script:  # a user's own script (services/scripts.py) is submitted as it was
        (workdir / SCRIPT_NAME).write_text(render_script(spec))
        job_file = read_json(workdir / JOB_FILE) or {}
        write_json_atomic(workdir / JOB_FILE, {**job_file, "attempt": attempt})
    begin = now + timedelta(seconds=delay_s) if delay_s else None
    previous = (job.attempt, job.walltime_s, job.mem_mb)
    job.attempt, job.walltime_s, job.mem_mb = attempt, res.walltime_s, res.mem_mb
    script, options = workdir / SCRIPT_NAME, SubmitOptions(begin=begin, after=after)
    if job.script:
        from orion_cli.services.scripts import script_submission

        script, options = script_submission(job, spec.instance, begin=begin, after=after)
    try:
        job.scheduler_job_id = scheduler.submit(script, options)
    except SubmitOutcomeUnknown as exc:
        job.attempt, job.walltime_s, job.mem_mb = previous  # as if not tried: looked up first
        job.raw_state = UNKNOWN_SUBMIT
        job.next_attempt_at = now + timedelta(seconds=settings.submit_grace_s)
        session.add(job)
        return f"job {job.id}: attempt {attempt}: {exc.one_line()}"
    except SchedulerError as exc:
        return _resubmit_failed(session, job, exc, now)
    job.raw_state = "PENDING"
    when = f", begins after {delay_s} s" if delay_s else ""
    message = (f"attempt {attempt} of {job.max_retries + 1} after {reason or 'request'}: "
               f"{res.note}{when}; {job.scheduler} job {job.scheduler_job_id}")
    transition(session, job, JobStatus.QUEUED, source="user" if manual else "retry",
               message=message, at=now)
    repointed = repoint_children(session, scheduler, job)
    return f"job {job.id}: {message}" + "".join(f"; {line}" for line in repointed)


def _resubmit_failed(session: Session, job: Job, exc: SchedulerError, now: datetime) -> str:
    """Record an attempt that the scheduler refused; the job stays failed(submit_error)."""
    text = exc.one_line()
    session.add(JobAttempt(job_id=job.id or 0, attempt=job.attempt, walltime_s=job.walltime_s,
                           mem_mb=job.mem_mb, status=JobStatus.FAILED.value,
                           reason=FailureReason.SUBMIT_ERROR.value, message=text,
                           finished_at=now))
    job.failure_reason = FailureReason.SUBMIT_ERROR.value
    job.error_message = text
    job.scheduler_job_id = None
    scheduled = schedule_retry(job, now, final=isinstance(exc, SubmitRefused))
    session.add(job)
    tail = f"; next try at {job.next_attempt_at:%H:%M:%S}" if scheduled else "; no retries left"
    return f"job {job.id}: attempt {job.attempt} not submitted: {text}{tail}"
