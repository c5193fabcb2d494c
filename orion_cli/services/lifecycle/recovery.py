"""Recover jobs whose `orion submit` died between writing the row and recording sbatch's answer.

Such a job is still ``created``, with its job directory and script written. Its SLURM job
(if sbatch ran) is named ``orion-<id>-<instance>-…``: the poller looks that name up and adopts the
job instead of submitting it again; only a job the scheduler has never seen is submitted.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from orion_cli.batch import ARRAY_SCRIPT_NAME, SCRIPT_NAME, job_name_prefix
from orion_cli.db.models import Job
from orion_cli.db.session import instance_id
from orion_cli.errors import UsageError
from orion_cli.schedulers.base import Scheduler, SubmitOptions
from orion_cli.services.lifecycle import dispatch
from orion_cli.services.lifecycle.dependencies import waits_for
from orion_cli.services.lifecycle.state import submitted
from orion_cli.services.lifecycle.user_script import script_submission


def recover_unsubmitted(
    session: Session, jobs: list[Job], scheduler: Scheduler, now: datetime, grace_s: int
) -> list[str]:
    """Adopt or submit ``created`` jobs older than ``grace_s``; return a line per job/array."""
    stale = [
        job for job in jobs if job.workdir and now - job.created_at >= timedelta(seconds=grace_s)
    ]
    if not stale:
        return []
    instance = instance_id(session)
    groups: dict[str, list[Job]] = {}
    for job in stale:  # an array's jobs share its name; a single job has its own
        key = job.array_name or job_name_prefix(job.id or 0, instance)
        groups.setdefault(key, []).append(job)
    found = scheduler.find_by_name(list(groups))
    return [
        _recover_group(session, scheduler, name, group, found.get(name), now)
        for name, group in groups.items()
    ]


def _recover_group(
    session: Session,
    scheduler: Scheduler,
    name: str,
    group: list[Job],
    scheduler_job_id: str | None,
    now: datetime,
) -> str:
    first = group[0]
    is_array = first.array_name is not None
    script = (
        Path(first.workdir).parent / "arrays" / str(first.id) / ARRAY_SCRIPT_NAME
        if is_array
        else Path(first.workdir) / SCRIPT_NAME
    )
    how = "found"
    if scheduler_job_id is None:
        try:
            options = SubmitOptions(hold=first.held, after=waits_for(session, first))
        except UsageError as exc:
            return f"{name}*: {exc.one_line()}; submitted once its parents allow"
        if first.script:  # a user's own script: its copy, with orion's sbatch options
            script, options = script_submission(
                first, instance_id(session), hold=first.held, after=options.after
            )
        n_tasks = max(job.array_index or 0 for job in group) // max(first.pack, 1) + 1
        answer = dispatch.send(
            scheduler, dispatch.Attempt(script, options, n_tasks if is_array else 0)
        )
        if answer.unknown:
            return f"{name}*: {answer.line()}; looked up again next poll"
        if not answer.accepted:
            dispatch.record_refused(session, group, answer, now, source="recovery")
            return f"{name}*: {answer.line()}"
        scheduler_job_id, how = answer.scheduler_job_id, "submitted"
    tasks = [(job.array_index or 0) // max(job.pack, 1) for job in group]  # packed: i*pack..
    sids = [f"{scheduler_job_id}_{task}" if is_array else scheduler_job_id for task in tasks]
    submitted(
        session,
        group,
        sids,
        source="recovery",
        at=now,
        message=[f"{how} {first.scheduler} job {sid} after an interrupted submit" for sid in sids],
    )
    ids = f"jobs {first.id}-{group[-1].id}" if is_array else f"job {first.id}"
    return f"{ids}: {how} {first.scheduler} job {scheduler_job_id}"
