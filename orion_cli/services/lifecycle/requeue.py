"""Submit again, as new packed tasks, the jobs a packed task ended before starting.

When a packed task ends (soft time limit, timeout, node failure, preemption) its jobs that
never started are no failure: they go into a new packed task (``packs-<round>.jsonl``) with
their attempt unchanged, held if they were held and after the jobs they wait for. A task
cancelled with ``scancel`` is not requeued: its unstarted jobs end cancelled, as the jobs
of an unpacked array do (see ``poll._finish_packed``).

The new array goes through the one dispatch (:mod:`orion_cli.services.lifecycle.dispatch`):
a refusal fails the jobs with ``submit_error`` (retried by policy); when sbatch does not
answer, the jobs stay queued and, once the grace period is over, the array is looked up by
its name before anything is submitted again.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session

from orion_cli.batch import BatchSpec, array_first_id, packs_file_name, render_array_script
from orion_cli.config import Settings
from orion_cli.db.models import Job
from orion_cli.db.session import instance_id
from orion_cli.errors import UsageError
from orion_cli.resources import Resources
from orion_cli.schedulers.base import Scheduler, SubmitOptions
from orion_cli.services.lifecycle import dispatch
from orion_cli.services.lifecycle.dependencies import waits_for
from orion_cli.services.lifecycle.state import requeue_many
from orion_cli.taskfile import array_tasks_file, pack_groups, read_packs, write_packs


def requeue_packed(
    session: Session,
    settings: Settings,
    scheduler: Scheduler,
    jobs: list[Job],
    why: dict[int, str],
    now: datetime,
) -> list[str]:
    """Submit again, as new packed tasks, jobs whose packed task ended before they started.

    One new array per original array; the jobs stay queued with the same attempt and
    get their new task's id. Return a line per array saying what happened.
    """
    by_array: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_array[job.array_name or ""].append(job)
    lines = []
    for group in by_array.values():
        group.sort(key=lambda job: job.array_index or 0)
        line = _after_unanswered(session, scheduler, group, why, now)
        lines.append(line or _requeue_array(session, settings, scheduler, group, why, now))
    return [line for line in lines if line]


def _after_unanswered(
    session: Session, scheduler: Scheduler, jobs: list[Job], why: dict[int, str], now: datetime
) -> str | None:
    """After an unanswered sbatch: wait out the grace period, then adopt the array if it
    exists. None: nothing was unanswered, or nothing was found (submit again)."""
    first = jobs[0]
    if first.submit_unknown_since is None:
        return None
    due = first.next_attempt_at
    if due is not None and (due if due.tzinfo else due.replace(tzinfo=UTC)) > now:
        return ""  # looked up once the grace period is over
    name = first.array_name or ""
    found = scheduler.find_by_name([name]).get(name)
    known = {(job.scheduler_job_id or "").split("_")[0] for job in jobs}
    if found is None or found in known:
        return None
    array_dir = _array_dir(first)
    groups = read_packs(array_dir / packs_file_name(_next_round(array_dir) - 1))
    _requeued(session, jobs, groups, found, why, now, how="found")
    return f"jobs {_ids(jobs)}: found array {found} of an unanswered sbatch"


def _requeue_array(
    session: Session,
    settings: Settings,
    scheduler: Scheduler,
    jobs: list[Job],
    why: dict[int, str],
    now: datetime,
) -> str:
    first = jobs[0]
    array_dir = _array_dir(first)
    round_ = _next_round(array_dir)
    groups = [
        [jobs[i].array_index or 0 for i in group]
        for group in pack_groups(len(jobs), max(first.pack, 1))
    ]
    write_packs(array_dir / packs_file_name(round_), groups)
    site = first.site or {}
    spec = BatchSpec(
        orion_id=array_first_id(first.array_name) if first.array_name else first.id or 0,
        name="array",
        workdir=array_dir,
        python=str(site.get("python") or "python3"),
        setup_lines=tuple(site.get("setup") or ()),
        resources=Resources.of(first),
        soft_margin_s=first.soft_margin_s,
        instance=instance_id(session),
    )
    script = array_dir / f"array-{round_}.sh"
    script.write_text(render_array_script(spec, array_dir, len(groups), round_))
    answer = dispatch.send(
        scheduler, dispatch.Attempt(script, _options(session, first), len(groups))
    )
    if answer.unknown:
        grace_s = settings.submit_grace_s
        dispatch.record_unknown(session, jobs, answer, now, grace_s, source="poll")
        return f"jobs {_ids(jobs)}: resubmitting the unstarted: {answer.line()}"
    if not answer.accepted:
        message = f"not started in its packed task; resubmitting it failed: {answer.line()}"
        dispatch.record_refused(session, jobs, answer, now, source="poll", message=message)
        return f"jobs {_ids(jobs)}: resubmitting the unstarted failed: {answer.line()}"
    _requeued(session, jobs, groups, answer.scheduler_job_id, why, now, how="submitted again")
    return (
        f"jobs {_ids(jobs)}: not started in their packed task, submitted again as array "
        f"{answer.scheduler_job_id}"
    )


def _options(session: Session, first: Job) -> SubmitOptions:
    """The options the jobs were submitted with that still hold: --hold, their parents."""
    try:
        after = waits_for(session, first)
    except UsageError:
        after = ()
    return SubmitOptions(hold=first.held, after=after)


def _requeued(
    session: Session,
    jobs: list[Job],
    groups: list[list[int]],
    array_id: str,
    why: dict[int, str],
    now: datetime,
    *,
    how: str,
) -> None:
    task_of = {index: task for task, group in enumerate(groups) for index in group}
    new_ids = dispatch.task_ids(array_id, [task_of[job.array_index or 0] for job in jobs])
    messages = [
        f"not started: {why.get(job.id or 0, 'its packed task ended')}; {how} "
        f"in packed task {sid} (no attempt spent)"
        for job, sid in zip(jobs, new_ids, strict=True)
    ]
    requeue_many(session, jobs, new_ids, source="poll", message=messages, at=now)


def _array_dir(job: Job) -> Path:
    return array_tasks_file(Path(job.workdir), job.array_name or "").parent


def _next_round(array_dir: Path) -> int:
    rounds = [
        int(p.stem.split("-")[1])
        for p in array_dir.glob("packs-*.jsonl")
        if p.stem.split("-")[1].isdigit()
    ]
    return max(rounds, default=-1) + 1


def _ids(jobs: list[Job]) -> str:
    return ", ".join(str(job.id) for job in jobs[:5]) + ("..." if len(jobs) > 5 else "")
