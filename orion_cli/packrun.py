"""The packed-task runner: many calculations, one after the other, in one process.

``python -m orion_cli.jobrun --pack <tasks.jsonl> <packs-K.jsonl> <i>`` runs the jobs that
line *i + 1* of the packs file lists. Python, ASE and the engines are imported once for
the whole task; each job still gets its own directory, events and ``result.json``, so that
the poller tracks each on its own.

An in-process engine with ``compute`` (emt, ase; see ``Engine`` in engines/base.py) takes
the fast path on a job's first attempt: the structure is parsed once from the task's line
and handed to the engine in memory, and the directory gets only ``events.jsonl`` and
``result.json`` (plus what the engine must keep, e.g. a relaxation's trajectory). Other
engines, retries and ``--from`` jobs are materialized and run as when they run alone.

When the soft time limit arrives (SIGUSR1), the running calculation stops as it would
alone (its result says so: the poller fails it with ``timeout`` and retries it by policy)
and no further calculation starts. The poller finds the jobs that never started (no
``started`` event) and submits them again as a new packed task, with no attempt spent.

With ``ORION_PACK_SLOTS=N`` (the array script of ``--gpus N`` sets it) the task runs N
slots side by side, each a process of its own with one GPU (``CUDA_VISIBLE_DEVICES``) and
every N-th calculation of the pack.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from orion_cli.batch import SLOTS_VARIABLE
from orion_cli.jobdir import JOB_FILE, RESULT_FILE, append_event, write_json_atomic
from orion_cli.jobrun import PackSignal, SoftLimitReached, made, run_job
from orion_cli.taskfile import CANCEL_MARKER, JobInputs, read_packs, read_tasks

SLOT_VARIABLE = "ORION_PACK_SLOT"


def run_pack(tasks: Path, packs: Path, task: int) -> int:
    """Run packed task ``task``; return 0 once every job ran or the soft limit stopped it.

    Each job's own outcome is in its own directory; the task's exit code only says whether
    the pack itself could be read (2 when not).
    """
    stop = PackSignal()
    signal.signal(signal.SIGUSR1, stop)
    try:
        indices = read_packs(packs)[task]
        slot, slots = slot_of(os.environ)
        if slots > 1 and slot is None:
            return run_slots(
                [sys.executable, "-m", "orion_cli.jobrun", "--pack"], tasks, packs, task, slots
            )
        if slot is not None:
            indices = indices[slot::slots]
        lines = read_tasks(tasks, indices)
    except (OSError, ValueError, IndexError) as exc:
        print(f"orion jobrun: cannot read packed task {task} of {packs}: {exc}", file=sys.stderr)
        return 2
    started_s = time.monotonic()
    with ExitStack() as stack:
        runner = InMemory(stack, stop, slot)
        ran = _run_all(indices, lines, tasks, stop, runner)
    left = len(indices) - ran
    name = f"packed task {task}" + (f" slot {slot}" if slot is not None else "")
    print(
        f"orion jobrun: {name}: ran {ran} of {len(indices)} calculations in "
        f"{time.monotonic() - started_s:.1f} s"
        + (
            f"; soft time limit reached, {left} left for orion poll to submit again"
            if stop.stopped and left
            else ""
        ),
        file=sys.stderr,
    )
    return 0


def _run_all(
    indices: list[int],
    lines: dict[int, tuple[Path, JobInputs]],
    tasks: Path,
    stop: PackSignal,
    runner: InMemory,
) -> int:
    """Run the jobs in order until the soft limit; return how many were started."""
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
        if runner.takes(workdir, inputs):
            runner.run(workdir, inputs)
        elif made(workdir, inputs) and (workdir / JOB_FILE).exists():
            os.chdir(workdir)
            run_job(workdir, stop)
    return ran


def slot_of(environ: Any) -> tuple[int | None, int]:
    """This process's slot (None: the task itself) and the number of slots of the task.

    >>> slot_of({}), slot_of({"ORION_PACK_SLOTS": "2"})
    ((None, 1), (None, 2))
    >>> slot_of({"ORION_PACK_SLOTS": "2", "ORION_PACK_SLOT": "1"})
    (1, 2)
    """
    slots_text = str(environ.get(SLOTS_VARIABLE) or "1")
    slots = int(slots_text) if slots_text.isdigit() and int(slots_text) > 0 else 1
    slot_text = str(environ.get(SLOT_VARIABLE) or "")
    slot = int(slot_text) if slot_text.isdigit() and int(slot_text) < slots else None
    return slot, slots


def slot_gpus(environ: Any, slots: int) -> list[str]:
    """The GPU each slot gets: the task's visible GPUs (as SLURM set them) in order.

    >>> slot_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}, 2), slot_gpus({}, 3)
    (['2', '5'], ['0', '1', '2'])
    """
    for name in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        ids = [word for word in str(environ.get(name) or "").split(",") if word.strip()]
        if len(ids) >= slots:
            return ids[:slots]
    return [str(slot) for slot in range(slots)]


def run_slots(command: list[str], tasks: Path, packs: Path, task: int, slots: int) -> int:
    """Run the task's slots side by side, one GPU each; pass on the soft limit signal."""
    gpus = slot_gpus(os.environ, slots)
    children = [
        subprocess.Popen(
            [*command, str(tasks), str(packs), str(task)],
            env={**os.environ, SLOT_VARIABLE: str(slot), "CUDA_VISIBLE_DEVICES": gpus[slot]},
        )
        for slot in range(slots)
    ]

    def forward(signum: int, frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGUSR1, forward)
    signal.signal(signal.SIGTERM, forward)
    codes = [child.wait() for child in children]
    return 2 if any(code == 2 for code in codes) else 0


class _Stop:
    """The running calculation's soft-limit handler: record it, interrupt the engine."""

    def __init__(self, workdir: Path, attempt: int) -> None:
        self.workdir, self.attempt = workdir, attempt
        self.reached = False
        self.computing = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.reached:
            return
        self.reached = True
        append_event(self.workdir, "soft_limit", attempt=self.attempt)
        if self.computing:
            raise SoftLimitReached("stopped at the soft time limit (SIGUSR1 from the scheduler)")


class InMemory:
    """The fast path: structure parsed once, engine run in memory, result written once."""

    def __init__(self, stack: ExitStack, stop: PackSignal, slot: int | None) -> None:
        self.stack, self.stop = stack, stop
        self.engines: dict[str, Any] = {}
        self.sessions: dict[str, Any] = {}
        self.host = socket.gethostname()
        self.where: dict[str, Any] = {"scheduler_job_id": os.environ.get("SLURM_JOB_ID")}
        if slot is not None:
            self.where.update(slot=slot, gpu=os.environ.get("CUDA_VISIBLE_DEVICES"))

    def engine(self, name: str) -> Any:
        from orion_cli.engines.registry import get_engine

        if name not in self.engines:
            self.engines[name] = get_engine(name)
        return self.engines[name]

    def takes(self, workdir: Path, inputs: JobInputs) -> bool:
        """A first attempt, not yet begun, of an engine that computes in memory."""
        try:
            engine = self.engine(inputs.engine)
        except Exception:  # noqa: BLE001 - the usual path reports an unknown engine
            return False
        return (
            hasattr(engine, "compute")
            and not inputs.structure_from
            and self.attempt(inputs) == 1
            and not workdir.exists()
        )

    @staticmethod
    def attempt(inputs: JobInputs) -> int:
        return int(os.environ.get("ORION_ATTEMPT") or inputs.attempt)

    def session(self, name: str, engine: Any) -> Any:
        """The engine's session for this task, entered at its first calculation."""
        if name not in self.sessions:
            opener = getattr(engine, "session", None)
            self.sessions[name] = None if opener is None else self.stack.enter_context(opener())
        return self.sessions[name]

    def run(self, workdir: Path, inputs: JobInputs) -> None:
        """Run one job on the fast path; its outcome goes to its events and result."""
        from orion_cli.engines.base import Result

        attempt = self.attempt(inputs)
        workdir.mkdir(parents=True, exist_ok=True)
        soft = _Stop(workdir, attempt)
        self.stop.current = soft  # type: ignore[assignment]
        if self.stop.stopped:
            return
        append_event(workdir, "started", attempt=attempt, host=self.host, **self.where)
        os.environ.update(ORION_JOB_DIR=str(workdir), ORION_ATTEMPT=str(attempt))
        try:
            engine = self.engine(inputs.engine)
            session = self.session(inputs.engine, engine)
            atoms = read_structure(inputs.structure)
            soft.computing = True
            report = _Progress(workdir, attempt)
            result = engine.compute(atoms, inputs.params, workdir, report, session)
        except SoftLimitReached as exc:
            result = Result(error=str(exc))
        except Exception as exc:  # noqa: BLE001 - any engine failure becomes the job's error
            result = Result(error=f"{type(exc).__name__}: {exc}")
            print(f"orion jobrun: job {workdir.name} failed:", file=sys.stderr)
            traceback.print_exc()  # into the task's output: what `orion logs` shows
        soft.computing = False
        self.stop.current = None
        finish(workdir, attempt, result, soft.reached)


class _Progress:
    """Progress events of a calculation, at most one a second and none in its first second
    (a single point of milliseconds is not worth an event line)."""

    def __init__(self, workdir: Path, attempt: int) -> None:
        self.workdir, self.attempt = workdir, attempt
        self.next_s = time.monotonic() + 1.0

    def __call__(self, step: str, progress_pct: float) -> None:
        now_s = time.monotonic()
        if now_s >= self.next_s:
            self.next_s = now_s + 1.0
            append_event(
                self.workdir,
                "progress",
                attempt=self.attempt,
                step=step,
                progress_pct=round(progress_pct, 1),
            )


def finish(workdir: Path, attempt: int, result: Any, soft_limit_reached: bool) -> None:
    """Write the result once, then the event that ends the attempt."""
    if soft_limit_reached:
        result.extras["soft_limit_reached"] = True
        if not result.error:  # finished in the margin: the result stands
            append_event(workdir, "soft_limit_ok", attempt=attempt)
    write_json_atomic(workdir / RESULT_FILE, {"attempt": attempt, **result.to_json()}, None)
    if result.error:
        append_event(workdir, "failed", attempt=attempt, error=result.error)
    else:
        append_event(workdir, "finished", attempt=attempt, energy_ev=result.energy_ev)


def read_structure(text: str) -> Any:
    """The structure of a task line (extended XYZ) as ASE atoms, parsed once."""
    import io

    from ase.io import read

    return read(io.StringIO(text), format="extxyz", index=0)
