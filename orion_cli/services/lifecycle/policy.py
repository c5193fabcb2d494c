"""Retry policy: whether, when and with what resources a failed job comes back.

Pure decisions (:func:`backoff_s`, :func:`escalate`, :func:`retry_due`) and the one step that
records them (:func:`schedule_retry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from orion_cli.db.models import Job
from orion_cli.limits import MAX_MEM_MB, MAX_RETRY_DELAY_S, MAX_WALLTIME_S
from orion_cli.resources import Resources
from orion_cli.services.lifecycle.state import set_retry_due
from orion_cli.states import RETRYABLE_REASONS, FailureReason

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


def with_changes(escalation: Escalation, changes: dict[str, Any]) -> Escalation:
    """The user's resource changes (``orion retry --walltime 4h``) over the policy's.

    >>> with_changes(Escalation(Resources(walltime_s=60), "walltime 30 s → 60 s"),
    ...              {"walltime_s": 14400, "partition": "long"}).note
    'walltime 60 s → 14400 s, partition (default) → long (asked)'
    >>> with_changes(Escalation(Resources(), "same resources"), {}).note
    'same resources'
    """
    old = escalation.resources
    changed = {k: v for k, v in changes.items() if getattr(old, k) != v}
    if not changed:
        return escalation
    parts = []
    for key, value in changed.items():
        unit = " s" if key == "walltime_s" else " MB" if key.endswith("_mb") else ""
        name = key.removesuffix("_s").removesuffix("_mb").replace("_", " ")
        was = getattr(old, key)
        parts.append(
            f"{name} {was if was not in ('', 0) else '(default)'}{unit if was else ''}"
            f" → {value}{unit}"
        )
    policy = escalation.note
    kept = policy not in ("", "same resources") and not any(
        policy.startswith(part.split(" ")[0]) for part in parts
    )  # e.g. a timeout's doubled walltime stays when only the partition is changed
    return Escalation(
        replace(old, **changed), (f"{policy}, " if kept else "") + ", ".join(parts) + " (asked)"
    )


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
    holds = [
        0
        if s or job.failure_reason == FailureReason.SUBMIT_ERROR.value
        else backoff_s(job.retry_delay_s, job.attempt)
        for job, s in zip(jobs, scf, strict=True)
    ]  # what resubmit() gives sbatch --begin
    set_retry_due(session, plans, source=source, at=now, backoff_s=holds)
    return [due is not None for _, due in plans]
