"""The job runner: what a batch script executes on the compute node.

``python -m orion_cli.jobrun <workdir>`` reads ``job.json``, runs the engine, writes
events and ``result.json`` into the job directory, and exits 0 (result stored) or
3 (the engine failed). It never connects to the database.

Packed tasks: many calculations, one after the other, in one process.

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
A job that already has its attempt's result (SLURM requeued the task) is not run again.

With ``ORION_PACK_SLOTS=N`` (the array script of ``--gpus N`` sets it) the task runs N
slots side by side, each a process of its own with one GPU (``CUDA_VISIBLE_DEVICES``) and
every N-th calculation of the pack.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from orion_cli.batch import SLOTS_VARIABLE
from orion_cli.engines.base import ProgressFn, Result, RunSpec
from orion_cli.engines.progress import tracker_for
from orion_cli.engines.registry import get_engine
from orion_cli.handoff import take_parent_structure
from orion_cli.jobdir import (
    JOB_FILE,
    RESULT_FILE,
    JobFileError,
    append_event,
    append_lines,
    event_record,
    read_json,
    result_record,
    write_json_atomic,
)
from orion_cli.taskfile import (
    CANCEL_MARKER,
    JobInputs,
    bare_atoms,
    materialize,
    read_packs,
    read_task,
    read_tasks,
)
from orion_cli.taskstream import TaskStream, read_outcome, stream_path
from orion_cli.workroot import check_job_dir

EXIT_ENGINE_FAILED = 3
SLOT_VARIABLE = "ORION_PACK_SLOT"


def launch_prefix(launcher: str, ntasks: int, is_root: bool, have_mpirun: bool) -> list[str]:
    """Return the MPI launcher words to put before an engine's command.

    ``auto`` uses nothing for one task, else ``mpirun -np N`` where mpirun exists (Open MPI
    inside a SLURM allocation starts its ranks through SLURM, and needs no PMIx in slurmd),
    else ``srun``. ``srun``, ``mpirun`` and ``none`` force a choice; anything else is used
    as written (e.g. ``"mpiexec -n 4"``).

    >>> launch_prefix("auto", 1, False, True)
    []
    >>> launch_prefix("auto", 4, True, True)
    ['mpirun', '-np', '4', '--allow-run-as-root']
    >>> launch_prefix("auto", 4, False, False)
    ['srun']
    >>> launch_prefix("srun", 2, False, True), launch_prefix("mpiexec -n 2", 2, False, True)
    (['srun'], ['mpiexec', '-n', '2'])
    """
    if launcher == "none" or (launcher == "auto" and ntasks <= 1):
        return []
    if launcher == "srun" or (launcher == "auto" and not have_mpirun):
        return ["srun"]
    if launcher in ("auto", "mpirun"):
        words = ["mpirun", "-np", str(ntasks)]
        return [*words, "--allow-run-as-root"] if is_root else words
    return launcher.split()


class Sink:
    """Where one calculation's records go: its ``events.jsonl``, or (a packed task's fast
    path) the task's stream (:mod:`orion_cli.taskstream`)."""

    def __init__(self, workdir: Path, stream: TaskStream | None = None) -> None:
        self.workdir, self.stream = workdir, stream

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append ``records`` with one write."""
        if self.stream is not None:
            self.stream.write(self.workdir.name, records)
        else:
            append_lines(self.workdir, [json.dumps(r, separators=(",", ":")) for r in records])

    def event(self, event: str, **fields: Any) -> None:
        self.write([event_record(event, **fields)])


class SoftLimitReached(Exception):
    """Raised inside an in-process engine when the soft time limit signal arrives."""


class _SoftLimit:
    """Handle the soft time limit signal (SLURM's ``--signal=B:USR1@margin``).

    It records the event, then asks the engine to stop: an in-process engine is interrupted
    with :class:`SoftLimitReached`; a command engine gets ``request_stop(workdir)`` (e.g.
    pw.x's ``<prefix>.EXIT`` file) and finishes on its own terms.
    """

    def __init__(self, workdir: Path, attempt: int, sink: Sink | None = None) -> None:
        self.workdir = workdir
        self.attempt = attempt
        self.sink = sink or Sink(workdir)
        self.reached = False
        self.engine: Any = None
        self.in_process = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.reached:
            return
        self.reached = True
        self.sink.event("soft_limit", attempt=self.attempt)
        self._stop()

    def _stop(self) -> None:
        if self.in_process:
            raise SoftLimitReached("stopped at the soft time limit (SIGUSR1 from the scheduler)")
        stop = getattr(self.engine, "request_stop", None)
        if stop is not None:
            stop(self.workdir)

    def begin(self, engine: Any, in_process: bool) -> None:
        """The calculation starts now. A signal that came since the ``started`` event (while
        the engine was set up, or a pack imported ``ase.io``) was recorded with nothing to
        stop yet: it stops the calculation here, before it runs to the hard limit."""
        self.engine, self.in_process = engine, in_process
        if self.reached:
            self._stop()


class PackSignal:
    """The soft-limit handler of a packed task: stop after the running calculation.

    It marks the pack stopped (no further calculation starts) and passes the signal on to
    the running calculation's :class:`_SoftLimit`, which stops it as it would alone.
    """

    def __init__(self) -> None:
        self.stopped = False
        self.current: _SoftLimit | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stopped = True
        if self.current is not None:
            self.current(signum, frame)


def _run_command(
    workdir: Path, job: Mapping[str, Any], spec: Any, report: Callable[[str, float], None]
) -> int:
    """Run the engine's command; report its progress from its own output while it runs.

    Returns the exit code, or minus the signal number when a signal killed it.
    """

    prefix = launch_prefix(
        job.get("launcher", "auto"),
        int(job.get("ntasks", 1)),
        os.geteuid() == 0,
        shutil.which("mpirun") is not None,
    )
    argv = [*prefix, *spec.command]
    if shutil.which(argv[0]) is None:
        raise FileNotFoundError(f"{argv[0]} not found on this node's PATH")
    env = {**os.environ, **spec.env}
    out_path = workdir / (spec.stdout_name or "engine.out")
    tracker = tracker_for(str(job.get("engine", "")), job.get("params") or {})
    interval_s = float(os.environ.get("ORION_PROGRESS_INTERVAL_S") or PROGRESS_INTERVAL_S)
    with _own_mpi_session_dir(env, spec.mpi and not prefix), out_path.open("wb") as out:
        follow = None if tracker is None else _Follow(workdir / tracker.file_name, tracker, report)
        process = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)
        if follow is None:
            return process.wait()
        while True:
            try:
                code = process.wait(timeout=interval_s)
            except subprocess.TimeoutExpired:
                follow.read()
                continue
            follow.read()
            return code


@contextmanager
def _own_mpi_session_dir(env: dict[str, str], singleton: bool) -> Iterator[None]:
    """Give a single-rank MPI program (an Open MPI singleton) a session directory of its own.

    Open MPI 4 makes ``$TMPDIR/ompi.<host>.<uid>`` for every singleton of a user on a node
    and removes it when the last one ends; singletons starting together (an array's tasks
    on one node) race on it and one dies in MPI_Init ("mkdir ... File exists"). Each run
    gets a private base directory instead, removed afterwards; a base set by the user wins.
    Other MPI libraries ignore the variable.
    """
    if not singleton or "OMPI_MCA_orte_tmpdir_base" in env:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="orion-mpi-") as base:
        env["OMPI_MCA_orte_tmpdir_base"] = base
        yield


PROGRESS_INTERVAL_S = 2.0  # how often the runner reads the engine's output while it runs
PROGRESS_READ_BYTES = 1 << 20  # at most this much new output read per look


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


class _Follow:
    """Read what an output file gained since the last look; report a changed step.

    A file already there before the engine starts (an earlier attempt's OSZICAR) is not
    read until the engine has rewritten it.
    """

    def __init__(self, path: Path, tracker: Any, report: Callable[[str, float], None]) -> None:
        self.path, self.tracker, self.report = path, tracker, report
        self.offset = 0
        self.last_step = ""
        self.stale = _file_stamp(path)

    def read(self) -> None:
        if self.stale is not None:
            if _file_stamp(self.path) == self.stale:
                return
            self.stale = None
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read(PROGRESS_READ_BYTES)
        except OSError:
            return
        self.offset += len(chunk)
        state = self.tracker.feed(chunk.decode(errors="replace")) if chunk else None
        if state is not None and state[1] != self.last_step:
            self.last_step = state[1]
            self.report(state[1], state[0])


def exit_text(program: str, returncode: int) -> str:
    """Say how a command ended, naming the signal that killed it.

    >>> exit_text("pw.x", 3), exit_text("pw.x", -9)
    ('pw.x exited with code 3', 'pw.x was killed by signal 9 (SIGKILL)')
    """
    if returncode >= 0:
        return f"{program} exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "unknown signal"
    return f"{program} was killed by signal {-returncode} ({name})"


def attempt_of(job: Any) -> int:
    """The attempt a job directory is prepared for: its ``job.json`` says, nothing else.

    A packed or array task serves jobs at different attempts (a retried job can land in a
    requeued pack), so no task-wide variable may decide it.

    >>> attempt_of({"attempt": 2}), attempt_of({}), attempt_of(None)
    (2, 1, 1)
    """
    value = job.get("attempt", 1) if isinstance(job, dict) else 1
    return value if isinstance(value, int) and value >= 1 else 1


def finished(workdir: Path, line_attempt: int = 1) -> bool:
    """Whether the job already has the result of the attempt ``job.json`` asks for
    (the task line's ``line_attempt`` when there is no ``job.json``: the packed fast path
    writes none).

    A packed task that SLURM requeues (preemption, node failure) runs its line again: the
    jobs it finished keep their result instead of running a second time.
    """
    job = read_json(workdir / JOB_FILE)
    wanted = attempt_of(job) if isinstance(job, dict) else line_attempt
    try:
        return isinstance(read_outcome(workdir, wanted), dict)
    except JobFileError:
        return False


def run_job(workdir: Path, pack: PackSignal | None = None) -> int:
    """Run the job prepared in ``workdir``; return the process exit code.

    In a packed task, ``pack`` holds the soft-limit handler, installed once for the task.
    The engine and whatever it starts see ``ORION_JOB_DIR`` and ``ORION_ATTEMPT`` (so a
    user's tool can call ``orion progress``), for this job only.
    """
    names = ("ORION_JOB_DIR", "ORION_ATTEMPT")
    saved = {name: os.environ.get(name) for name in names}
    attempt = attempt_of(read_json(workdir / JOB_FILE))
    os.environ.update(ORION_JOB_DIR=str(workdir), ORION_ATTEMPT=str(attempt))
    try:
        return _run_job(workdir, pack)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _run_job(workdir: Path, pack: PackSignal | None = None) -> int:
    refused = check_job_dir(workdir, workdir / JOB_FILE)
    if refused:  # a planted job.json would run its command as this user
        print(f"orion jobrun: not run: {refused}", file=sys.stderr)
        return 2
    job = read_json(workdir / JOB_FILE)
    if not isinstance(job, dict):
        print(f"orion jobrun: {workdir / JOB_FILE} is missing or unreadable", file=sys.stderr)
        return 2
    attempt = attempt_of(job)
    soft = _SoftLimit(workdir, attempt)
    if pack is None:
        signal.signal(signal.SIGUSR1, soft)
    else:
        pack.current = soft
        if pack.stopped:
            return 0  # the signal came as this job was being read: it never started
    append_event(
        workdir,
        "started",
        attempt=attempt,
        host=socket.gethostname(),
        scheduler_job_id=os.environ.get("SLURM_JOB_ID"),
    )

    def report(step: str, progress_pct: float) -> None:
        append_event(
            workdir, "progress", attempt=attempt, step=step, progress_pct=round(progress_pct, 1)
        )

    try:
        result = _engine_result(workdir, job, attempt, soft, report)
    except SoftLimitReached as exc:
        result = Result(error=str(exc))
    except Exception as exc:  # noqa: BLE001 - any engine failure becomes the job's error
        result = Result(error=f"{type(exc).__name__}: {exc}")
    soft.in_process = False
    if pack is not None:
        pack.current = None  # a signal from now on stops the pack, not this finished job
    return _record_outcome(workdir, attempt, result, soft.reached, report)


def _engine_result(
    workdir: Path, job: dict[str, Any], attempt: int, soft: _SoftLimit, report: ProgressFn
) -> Result:
    """Run the engine (its program, or in this process) and parse what it left."""
    params = job.get("params", {})
    if job.get("structure_from"):  # --from: the parent's final structure, from its files
        job = take_parent_structure(workdir, job)
    engine = get_engine(job["engine"])
    spec = RunSpec.from_json(job.get("run_spec") or {})
    prepare_attempt = getattr(engine, "prepare_attempt", None)
    if prepare_attempt is not None:  # qe: stop and restart files; emt/ase: trajectory
        prepare_attempt(workdir, attempt)
    soft.begin(engine, in_process=not spec.command)
    if not spec.command:
        engine.run(workdir, params, report)
        return engine.parse(workdir, params)
    report("Running " + spec.command[0], 5.0)
    returncode = _run_command(workdir, job, spec, report)
    result = engine.parse(workdir, params)
    if returncode < 0:  # killed (the OOM killer, kill -9): say so even if parsed
        result.extras["signal"] = -returncode
        killed = exit_text(spec.command[0], returncode)
        result.error = f"{killed}; {result.error}" if result.error else killed
    elif returncode != 0 and not result.error:
        result.error = exit_text(spec.command[0], returncode)
    return result


def _record_outcome(
    workdir: Path, attempt: int, result: Result, soft_reached: bool, report: ProgressFn
) -> int:
    """Write ``result.json`` and the last event; return the runner's exit code."""
    if soft_reached:
        result.extras["soft_limit_reached"] = True
        if not result.error:  # finished in the margin: the result stands
            append_event(workdir, "soft_limit_ok", attempt=attempt)
    write_json_atomic(workdir / RESULT_FILE, {"attempt": attempt, **result.to_json()})
    if result.error:
        append_event(workdir, "failed", attempt=attempt, error=result.error)
        return EXIT_ENGINE_FAILED
    report("Done", 100.0)
    append_event(workdir, "finished", attempt=attempt, energy_ev=result.energy_ev)
    return 0


def run_task(tasks: Path, index: int) -> int:
    """Run array task ``index``: make its job directory from its line of ``tasks``, then run."""
    found = read_task(tasks, index)
    if found is None:
        print(f"orion jobrun: {tasks} has no line for task {index}", file=sys.stderr)
        return 2
    workdir, inputs = found
    if not made(workdir, inputs):
        return EXIT_ENGINE_FAILED
    os.chdir(workdir)
    return run_job(workdir)


def made(workdir: Path, inputs: Any) -> bool:
    """Make an array job's directory from its line; a failure becomes the job's result."""
    try:
        materialize(workdir, inputs)
    except Exception as exc:  # noqa: BLE001 - becomes the job's error, seen by the poller
        attempt = int(inputs.attempt)
        error = f"preparing the inputs failed: {type(exc).__name__}: {exc}"
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json_atomic(
            workdir / RESULT_FILE, {"attempt": attempt, **Result(error=error).to_json()}
        )
        append_event(workdir, "failed", attempt=attempt, error=error)
        return False
    return True


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
        stream = TaskStream(stream_path(packs, task, slot))
        stack.callback(stream.close)
        runner = InMemory(stack, stop, slot, stream)
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
    """Run the jobs in order until the soft limit; return how many were started.

    A job whose result is already there (a requeued task runs its line again) is not run
    a second time.
    """
    ran = 0
    for index in indices:
        if stop.stopped:
            break
        found = lines.get(index)
        if found is None:
            print(f"orion jobrun: {tasks} has no line {index}", file=sys.stderr)
            continue
        workdir, inputs = found
        fresh = not workdir.exists()  # one look: nothing of it yet, no mark, no result
        if not fresh and (workdir / CANCEL_MARKER).exists():
            continue  # cancelled with orion cancel while it waited in the pack
        ran += 1
        if runner.ended(workdir, inputs) or (not fresh and finished(workdir, int(inputs.attempt))):
            print(f"orion jobrun: {workdir} has its result already: not run again", file=sys.stderr)
        elif fresh and runner.takes(inputs):
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


class InMemory:
    """The fast path: structure parsed once, engine run in memory, result written once."""

    def __init__(
        self, stack: ExitStack, stop: PackSignal, slot: int | None, stream: TaskStream
    ) -> None:
        self.stack, self.stop, self.stream = stack, stop, stream
        self.engines: dict[str, Any] = {}
        self.sessions: dict[str, Any] = {}
        self.host = socket.gethostname()
        self.where: dict[str, Any] = {"scheduler_job_id": os.environ.get("SLURM_JOB_ID")}
        if slot is not None:
            self.where.update(slot=slot, gpu=os.environ.get("CUDA_VISIBLE_DEVICES"))

    def engine(self, name: str) -> Any:
        if name not in self.engines:
            self.engines[name] = get_engine(name)
        return self.engines[name]

    def takes(self, inputs: JobInputs) -> bool:
        """A first attempt (its directory not yet made) of an engine that computes in memory.

        The attempt is the task line's own (no task-wide variable decides it).
        """
        try:
            engine = self.engine(inputs.engine)
        except Exception:  # noqa: BLE001 - the usual path reports an unknown engine
            return False
        return hasattr(engine, "compute") and not inputs.structure_from and int(inputs.attempt) == 1

    def ended(self, workdir: Path, inputs: JobInputs) -> bool:
        """Whether this task's stream holds the end of this attempt already (a requeued
        task runs its line again)."""
        return (workdir.name, int(inputs.attempt)) in self.stream.ended

    def session(self, name: str, engine: Any) -> Any:
        """The engine's session for this task, entered at its first calculation."""
        if name not in self.sessions:
            opener = getattr(engine, "session", None)
            self.sessions[name] = None if opener is None else self.stack.enter_context(opener())
        return self.sessions[name]

    def run(self, workdir: Path, inputs: JobInputs) -> None:
        """Run one job on the fast path; its records and result go to the task's stream.

        Its directory is made (private, as materialize's) only when the engine writes files
        (a relaxation's trajectory and log, an ML potential's output)."""
        attempt = int(inputs.attempt)
        engine = self.engine(inputs.engine)
        if writes_files(engine, inputs.params):
            workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        sink = Sink(workdir, self.stream)
        soft = _SoftLimit(workdir, attempt, sink)
        self.stop.current = soft
        if self.stop.stopped:
            return
        sink.event("started", attempt=attempt, host=self.host, **self.where)
        os.environ.update(ORION_JOB_DIR=str(workdir), ORION_ATTEMPT=str(attempt))
        try:
            session = self.session(inputs.engine, engine)
            atoms = read_structure(inputs.structure)
            soft.begin(engine, in_process=True)
            report = _Progress(sink, attempt)
            result = engine.compute(atoms, inputs.params, workdir, report, session)
        except SoftLimitReached as exc:
            result = Result(error=str(exc))
        except Exception as exc:  # noqa: BLE001 - any engine failure becomes the job's error
            result = Result(error=f"{type(exc).__name__}: {exc}")
            print(f"orion jobrun: job {workdir.name} failed:", file=sys.stderr)
            traceback.print_exc()  # into the task's output: what `orion logs` shows
        soft.in_process = False
        self.stop.current = None
        finish(workdir, attempt, result, soft.reached, sink)


def writes_files(engine: Any, params: Any) -> bool:
    """Whether the engine's in-memory calculation writes files (it needs its directory);
    an engine that does not say is given one."""
    says = getattr(engine, "writes_files", None)
    return True if says is None else bool(says(params))


class _Progress:
    """Progress events of a calculation, at most one a second and none in its first second
    (a single point of milliseconds is not worth an event line)."""

    def __init__(self, sink: Sink, attempt: int) -> None:
        self.sink, self.attempt = sink, attempt
        self.next_s = time.monotonic() + 1.0

    def __call__(self, step: str, progress_pct: float) -> None:
        now_s = time.monotonic()
        if now_s >= self.next_s:
            self.next_s = now_s + 1.0
            self.sink.event(
                "progress", attempt=self.attempt, step=step, progress_pct=round(progress_pct, 1)
            )


def finish(
    workdir: Path, attempt: int, result: Any, soft_limit_reached: bool, sink: Sink | None = None
) -> None:
    """Write the result once, with the event that ends the attempt: one append of a
    ``result`` line and the ``finished``/``failed`` line (to ``events.jsonl``, or the
    task's stream: no ``result.json``, a file and a rename fewer per calculation, see
    :func:`~orion_cli.taskstream.read_outcome`); a result that does not fit a line goes to
    ``result.json`` in the job's directory first."""
    sink = sink or Sink(workdir)
    records = []
    if soft_limit_reached:
        result.extras["soft_limit_reached"] = True
        if not result.error:  # finished in the margin: the result stands
            records.append(event_record("soft_limit_ok", attempt=attempt))
    outcome = {"attempt": attempt, **result.to_json()}
    carried = result_record(outcome)
    if carried is None:
        workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_json_atomic(workdir / RESULT_FILE, outcome, None)
    else:
        records.append(carried)
    if result.error:
        records.append(event_record("failed", attempt=attempt, error=result.error))
    else:
        records.append(event_record("finished", attempt=attempt, energy_ev=result.energy_ev))
    sink.write(records)


def read_structure(text: str) -> Any:
    """The structure of a task line (extended XYZ) as ASE atoms, parsed once: a bare frame
    without ``ase.io`` (see :func:`~orion_cli.taskfile.bare_atoms`), any other by ASE."""
    atoms = bare_atoms(text)
    if atoms is not None:
        return atoms
    from ase.io import read

    return read(io.StringIO(text), format="extxyz", index=0)


USAGE = (
    "usage: python -m orion_cli.jobrun <job directory>\n"
    "       python -m orion_cli.jobrun --task <tasks.jsonl> <array task index>\n"
    "       python -m orion_cli.jobrun --pack <tasks.jsonl> <packs.jsonl> <task index>"
)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 4 and args[0] == "--pack" and args[3].isdigit():
        return run_pack(Path(args[1]), Path(args[2]), int(args[3]))
    if len(args) == 3 and args[0] == "--task" and args[2].isdigit():
        return run_task(Path(args[1]), int(args[2]))
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    return run_job(Path(args[0]))


if __name__ == "__main__":
    raise SystemExit(main())
