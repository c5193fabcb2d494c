"""The packed-task runner: many calculations, one after the other, in one process.

``python -m orion_cli.jobrun --pack <tasks.jsonl> <packs-K.jsonl> <i>`` runs the jobs that
line *i + 1* of the packs file lists. Python, ASE and the engines are imported once for
the whole task; each job still gets its own directory, events and ``result.json``, exactly
as when it runs alone, so that the poller tracks each on its own.

When the soft time limit arrives (SIGUSR1), the running calculation stops as it would
alone (its result says so: the poller fails it with ``timeout`` and retries it by policy)
and no further calculation starts. The poller finds the jobs that never started (no
``started`` event) and submits them again as a new packed task, with no attempt spent.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from orion_cli.jobdir import JOB_FILE
from orion_cli.jobrun import PackSignal, made, run_job


def run_pack(tasks: Path, packs: Path, task: int) -> int:
    """Run packed task ``task``; return 0 once every job ran or the soft limit stopped it.

    Each job's own outcome is in its own directory; the task's exit code only says whether
    the pack itself could be read (2 when not).
    """
    from orion_cli.taskfile import CANCEL_MARKER, read_packs, read_tasks

    stop = PackSignal()
    signal.signal(signal.SIGUSR1, stop)
    try:
        groups = read_packs(packs)
        indices = groups[task]
        lines = read_tasks(tasks, indices)
    except (OSError, ValueError, IndexError) as exc:
        print(f"orion jobrun: cannot read packed task {task} of {packs}: {exc}", file=sys.stderr)
        return 2
    started_s = time.monotonic()
    ran = 0
    for index in indices:
        if stop.stopped:
            break
        found = lines.get(index)
        if found is None:
            print(f"orion jobrun: {tasks} has no line {index}", file=sys.stderr)
            continue
        workdir, inputs = found
        if (workdir / CANCEL_MARKER).exists():
            continue  # cancelled with orion cancel while it waited in the pack
        ran += 1
        if made(workdir, inputs) and (workdir / JOB_FILE).exists():
            os.chdir(workdir)
            run_job(workdir, stop)
    left = len(indices) - ran
    print(
        f"orion jobrun: packed task {task}: ran {ran} of {len(indices)} calculations in "
        f"{time.monotonic() - started_s:.1f} s"
        + (
            f"; soft time limit reached, {left} left for orion poll to submit again"
            if stop.stopped and left
            else ""
        ),
        file=sys.stderr,
    )
    return 0
