"""Packed arrays: many short calculations per array task (``orion submit --pack``).

Submit writes, beside the array's ``tasks.jsonl`` (a line per job, as for any array),
``packs-0.jsonl``: a line per array task listing the jobs it runs one after the other
(:mod:`orion_cli.packrun`). Every job keeps its own row, directory, events and result;
its ``scheduler_job_id`` is its task's (``<array>_<task>``), shared with its pack.

When a packed task ends, the poller settles each of its jobs on its own: a job with a
result is completed (or failed by its result); the job that was running fails with the
scheduler's reason (timeout, node failure...) and is retried by policy; a job that never
started is no failure: :func:`requeue_packed` submits it again in a new packed task
(``packs-<round>.jsonl``), its attempt unchanged.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.batch import packs_file_name
from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown, UsageError

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.config import Settings
    from orion_cli.db.models import Job

#: most calculations one packed task may run (a pack file line stays small)
MAX_PACK = 100_000


def parse_pack(text: str) -> int | None:
    """Read ``--pack``: a count of calculations per task, or ``auto`` (None).

    >>> parse_pack("8"), parse_pack("auto")
    (8, None)
    """
    if text == "auto":
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_PACK:
        raise UsageError(
            f"--pack '{text}' is not a number of calculations per task",
            f"write --pack N with N from 1 to {MAX_PACK}, or --pack auto",
        )
    return int(text)


def parse_estimate_s(text: str) -> float:
    """Read ``--estimate``: a duration as for ``--walltime``, or a fraction of a second.

    >>> parse_estimate_s("10s"), parse_estimate_s("0.05s"), parse_estimate_s("50ms")
    (10.0, 0.05, 0.05)
    """
    import re

    from orion_cli.units import parse_walltime_s

    match = re.fullmatch(r"(\d*\.\d+|\d+)\s*(ms|s)?", text.strip())
    if match:
        value = float(match[1]) / (1000 if match[2] == "ms" else 1)
        if value > 0:
            return value
    return float(parse_walltime_s(text, "--estimate"))


def auto_pack(estimate_s: float, walltime_s: int, soft_margin_s: int, n_jobs: int) -> int:
    """Calculations per task that fit the walltime less the soft margin, in balanced packs.

    >>> auto_pack(10, 3600, 300, 1000)  # 330 fit; 1000 jobs → 4 tasks of 250
    250
    >>> auto_pack(10, 3600, 300, 20), auto_pack(5000, 3600, 300, 20)
    (20, 1)
    """
    usable_s = walltime_s - soft_margin_s if 0 < soft_margin_s < walltime_s else walltime_s
    fit = max(1, int(usable_s // max(estimate_s, 1e-3)))
    n_tasks = math.ceil(n_jobs / fit)
    return max(1, math.ceil(n_jobs / n_tasks))


def spread_pack(size: int, n_jobs: int, n_tasks: int) -> int:
    """Calculations per task: at most ``size``, over at least ``n_tasks`` tasks if there
    are jobs enough (``--pack auto`` fills the idle cores; ``--pack-tasks K``).

    >>> spread_pack(1000, 1000, 2), spread_pack(250, 1000, 2), spread_pack(1000, 3, 8)
    (500, 250, 1)
    """
    return max(1, min(size, math.ceil(n_jobs / max(1, min(n_tasks, n_jobs)))))


def parse_pack_tasks(value: int | None) -> int | None:
    """Check ``--pack-tasks``: a positive number of array tasks."""
    if value is not None and not 1 <= value <= MAX_PACK:
        raise UsageError(
            f"--pack-tasks {value} is not a number of array tasks",
            f"write --pack-tasks K with K from 1 to {MAX_PACK}",
        )
    return value


def resolve_pack(
    pack: str,
    estimate_s: float | None,
    engine: Any,
    walltime_s: int,
    soft_margin_s: int,
    nodes: int,
    ntasks: int,
    n_jobs: int,
) -> int:
    """Calculations per array task for a submit of ``n_jobs``; 0 when not packed.

    A multi-node pack makes sense only for an MPI calculation spanning the nodes
    (``--ntasks`` at least ``--nodes``); anything else would leave nodes idle.
    """
    if not pack:
        return 0
    size = parse_pack(pack)
    if nodes > 1 and ntasks < nodes:
        raise UsageError(
            f"--pack with --nodes {nodes} and --ntasks {ntasks} would run each calculation "
            f"on one node and leave {nodes - 1} idle",
            "pack on one node (--nodes 1), or give an MPI engine --ntasks ≥ --nodes",
        )
    if size is None:
        estimate = estimate_s if estimate_s is not None else getattr(engine, "estimate_s", None)
        if not estimate:
            raise UsageError(
                f"--pack auto needs to know how long one calculation of engine "
                f"'{engine.name}' takes",
                "add --estimate (e.g. --estimate 10s)",
            )
        size = auto_pack(float(estimate), walltime_s, soft_margin_s, n_jobs)
    return min(size, max(n_jobs, 1))


def write_packed(array_dir: Path, n_jobs: int, size: int) -> list[int]:
    """Write ``packs-0.jsonl`` for an array of ``n_jobs``; return each job's task index."""
    from orion_cli.taskfile import pack_groups, write_packs

    groups = pack_groups(n_jobs, size)
    write_packs(array_dir / packs_file_name(0), groups)
    return [task for task, group in enumerate(groups) for _ in group]


def packed_tasks(array_dir: Path, round_: int = 0) -> dict[int, int]:
    """Map each job's line index to its task in packs round ``round_`` of an array."""
    from orion_cli.taskfile import read_packs

    groups = read_packs(array_dir / packs_file_name(round_))
    return {index: task for task, group in enumerate(groups) for index in group}


def _next_round(array_dir: Path) -> int:
    rounds = [
        int(p.stem.split("-")[1])
        for p in array_dir.glob("packs-*.jsonl")
        if p.stem.split("-")[1].isdigit()
    ]
    return max(rounds, default=-1) + 1


def requeue_packed(
    session: Session,
    settings: Settings,
    scheduler: Any,
    jobs: list[Job],
    why: dict[int, str],
    now: datetime,
) -> list[str]:
    """Submit again, as new packed tasks, jobs whose packed task ended before they started.

    One new array per original array; the jobs stay queued with the same attempt and
    get their new task's id. A refusal fails them with submit_error (retried by policy).
    """
    by_array: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_array[job.array_name or ""].append(job)
    return [
        _requeue_array(session, settings, scheduler, group, why, now) for group in by_array.values()
    ]


def _requeue_array(
    session: Session,
    settings: Settings,
    scheduler: Any,
    jobs: list[Job],
    why: dict[int, str],
    now: datetime,
) -> str:
    from orion_cli.batch import BatchSpec, render_array_script
    from orion_cli.db.session import instance_id
    from orion_cli.resources import Resources
    from orion_cli.schedulers.base import SubmitOptions
    from orion_cli.services.lifecycle import requeue_many, transition_many
    from orion_cli.services.retry import schedule_retry
    from orion_cli.states import FailureReason, JobStatus
    from orion_cli.taskfile import array_tasks_file, pack_groups, write_packs

    jobs = sorted(jobs, key=lambda job: job.array_index or 0)
    first = jobs[0]
    array_dir = array_tasks_file(Path(first.workdir), first.array_name or "").parent
    round_ = _next_round(array_dir)
    groups = [
        [jobs[i].array_index or 0 for i in group]
        for group in pack_groups(len(jobs), max(first.pack, 1))
    ]
    write_packs(array_dir / packs_file_name(round_), groups)
    site = first.site or {}
    spec = BatchSpec(
        orion_id=_array_first_id(first),
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
    try:
        array_id = scheduler.submit_array(script, len(groups), SubmitOptions())
    except (SchedulerError, SubmitOutcomeUnknown) as exc:
        transition_many(
            session,
            jobs,
            JobStatus.FAILED,
            source="poll",
            at=now,
            reason=FailureReason.SUBMIT_ERROR,
            message=f"not started in its packed task; resubmitting it failed: {exc.one_line()}",
        )
        schedule_retry(session, jobs, now, source="poll")
        return f"jobs {first.id}..: resubmitting the unstarted failed: {exc.one_line()}"
    task_of = {index: task for task, group in enumerate(groups) for index in group}
    new_ids = [f"{array_id}_{task_of[job.array_index or 0]}" for job in jobs]
    messages = [
        f"not started: {why.get(job.id or 0, 'its packed task ended')}; submitted "
        f"again in packed task {sid} (no attempt spent)"
        for job, sid in zip(jobs, new_ids, strict=True)
    ]
    requeue_many(session, jobs, new_ids, source="poll", message=messages, at=now)
    return (
        f"jobs {', '.join(str(job.id) for job in jobs[:5])}{'...' if len(jobs) > 5 else ''}"
        f": not started in their packed task, submitted again as array {array_id}"
    )


def _array_first_id(job: Job) -> int:
    from orion_cli.batch import array_first_id

    return array_first_id(job.array_name or "") if job.array_name else job.id or 0
