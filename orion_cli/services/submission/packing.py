"""Packed arrays: many short calculations per array task (``orion submit --pack``).

Submit writes, beside the array's ``tasks.jsonl`` (a line per job, as for any array),
``packs-0.jsonl``: a line per array task listing the jobs it runs one after the other
(:func:`orion_cli.jobrun.run_pack`). Every job keeps its own row, directory, events and result;
its ``scheduler_job_id`` is its task's (``<array>_<task>``), shared with its pack.

When a packed task ends, the poller settles each of its jobs on its own: a job with a
result is completed (or failed by its result); the job that was running fails with the
scheduler's reason (timeout, node failure...) and is retried by policy; a job that never
started is no failure: :func:`orion_cli.services.lifecycle.requeue.requeue_packed` submits
it again in a new packed task (``packs-<round>.jsonl``), its attempt unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.batch import packs_file_name
from orion_cli.errors import UsageError
from orion_cli.taskfile import pack_groups, read_packs, write_packs
from orion_cli.units import parse_walltime_s

if TYPE_CHECKING:
    pass

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

    groups = pack_groups(n_jobs, size)
    write_packs(array_dir / packs_file_name(0), groups)
    return [task for task, group in enumerate(groups) for _ in group]


def packed_tasks(array_dir: Path, round_: int = 0) -> dict[int, int]:
    """Map each job's line index to its task in packs round ``round_`` of an array."""

    groups = read_packs(array_dir / packs_file_name(round_))
    return {index: task for task, group in enumerate(groups) for index in group}
