"""Recover jobs whose `orion submit` died between writing the row and recording sbatch's answer.

Such a job is still ``created``, with its job directory and script written. Its SLURM job
(if sbatch ran) is named ``orion-<id>-<instance>-…``: the poller looks that name up and adopts the
job instead of submitting it again; only a job the scheduler has never seen is submitted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session

from orion_cli.batch import SCRIPT_NAME, job_name_prefix
from orion_cli.db.models import Job
from orion_cli.db.session import instance_id
from orion_cli.errors import SchedulerError
from orion_cli.services.lifecycle import transition
from orion_cli.services.retry import schedule_retry
from orion_cli.states import FailureReason, JobStatus


def recover_unsubmitted(session: Session, jobs: list[Job], scheduler: Any, now: datetime,
                        grace_s: int) -> list[str]:
    """Adopt or submit ``created`` jobs older than ``grace_s``; return a line per job."""
    stale = [job for job in jobs if job.workdir and (Path(job.workdir) / SCRIPT_NAME).exists()
             and now - job.created_at >= timedelta(seconds=grace_s)]
    if not stale:
        return []
    instance = instance_id(session)

    def name_prefix(job_id: int) -> str:
        return job_name_prefix(job_id, instance)

    found = scheduler.find_by_name([name_prefix(job.id or 0) for job in stale])
    lines = []
    for job in stale:
        scheduler_job_id = found.get(name_prefix(job.id or 0))
        how = "found"
        if scheduler_job_id is None:
            try:
                scheduler_job_id = scheduler.submit(Path(job.workdir) / SCRIPT_NAME)
                how = "submitted"
            except SchedulerError as exc:
                transition(session, job, JobStatus.FAILED, source="recovery", at=now,
                           reason=FailureReason.SUBMIT_ERROR, message=exc.one_line())
                schedule_retry(job, now)
                lines.append(f"job {job.id}: {exc.one_line()}")
                continue
        job.scheduler_job_id = scheduler_job_id
        job.raw_state = "SUBMITTED"
        transition(session, job, JobStatus.QUEUED, source="recovery", at=now,
                   message=f"{how} {job.scheduler} job {scheduler_job_id} after an "
                           "interrupted submit")
        lines.append(f"job {job.id}: {how} {job.scheduler} job {scheduler_job_id}")
    return lines
