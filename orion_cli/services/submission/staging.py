"""Read every structure and check that the engine can prepare it, before anything is written.

Reading structures (ASE) is the slow part of a big submit, so for many inputs it runs in a
reader process (which forks helpers, one per further CPU, once ASE is imported) while the
submitting process gets the database and the scheduler ready: ``import ase.io`` and the
database stack are then paid side by side.
Each frame is checked by letting the engine prepare it in a scratch directory (a bad
element, a missing pseudopotential fail here, naming the file); what is kept is a
:class:`~orion_cli.taskfile.JobInputs` per frame, from which the job directory is made later.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from orion_cli.engines.registry import get_engine
from orion_cli.errors import UsageError
from orion_cli.frozen import freeze
from orion_cli.services.structures import ASE_FORMAT, extxyz_text
from orion_cli.services.submission.inputs import read_frames, split_frames
from orion_cli.services.submission.physical import MIN_DISTANCE_A
from orion_cli.taskfile import JobInputs

if TYPE_CHECKING:
    from orion_cli.services.submission.inputs import StructureInput

Item = TypeVar("Item")

#: fewer inputs than this are staged in the submitting process (a worker costs ~20 ms)
PARALLEL_MIN_INPUTS = 64
MAX_WORKERS = 8
#: scratch directories are ``orion-check-<pid of their maker>-<random>``
SCRATCH_PREFIX = "orion-check-"


@dataclass
class Staged:
    """One checked frame: where it came from, its job name, its formula, text and inputs.

    ``note`` tells the researcher which frame was taken, where that was orion's choice.
    """

    source: str
    name: str
    formula: str
    text: str
    inputs: JobInputs
    note: str = ""
    #: what freezing the inputs said: the pseudopotentials chosen, cutoffs below a suggestion
    notes: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageTask:
    """What every job of one submit shares: engine, parameters and the job.json fields."""

    engine: str
    params: dict[str, Any]
    engine_settings: dict[str, Any]
    launcher: str
    ntasks: int
    min_distance_a: float | None = MIN_DISTANCE_A  # None: --allow-close-atoms


def stage_paths(
    task: StageTask, paths: list[StructureInput], on_path: Callable[[], None] | None = None
) -> list[Staged]:
    """Read ``paths`` (the frames each selects), check each frame with the engine, keep inputs.

    Nothing outside a scratch directory is written; a bad file raises a UsageError naming it.
    ``on_path()`` is called after each path.
    """

    engine = get_engine(task.engine)
    staged: list[Staged] = []
    prefix = f"{SCRATCH_PREFIX}{os.getpid()}-"  # whose it is, for remove_stale_scratch
    with tempfile.TemporaryDirectory(prefix=prefix, dir=_scratch_root()) as scratch:
        for path in paths:
            for frame in read_frames(path, task.min_distance_a):
                # what makes the job directory later, on these atoms (read back from
                # ``structure`` there): a bad element or a missing pseudopotential fails now
                try:
                    frozen = freeze(
                        engine, frame.atoms, task.params, task.engine_settings, Path(scratch)
                    )
                except UsageError as exc:  # name the input: a batch has many
                    raise UsageError(f"{frame.source}: {exc.message}", exc.hint) from None
                inputs = JobInputs(
                    engine=task.engine,
                    params=frozen.params,
                    launcher=task.launcher,
                    ntasks=task.ntasks,
                    engine_settings=frozen.settings,
                    structure=frame.text if frame.is_extxyz else extxyz_text(frame.atoms),
                    frozen=frozen.record(),
                )
                staged.append(
                    Staged(
                        frame.source,
                        frame.name,
                        frame.atoms.get_chemical_formula(),
                        frame.text,
                        inputs,
                        frame.note,
                        frozen.notes,
                        frozen.warnings,
                    )
                )
            if on_path is not None:
                on_path()
    return staged


def _scratch_root() -> str | None:
    """Where engines write their check inputs: memory (/dev/shm) where there is one."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True  # no /proc: trust kill()


def remove_stale_scratch(root: str | None = None) -> int:
    """Remove the scratch directories of this user's orion processes that have died.

    A killed ``orion submit`` takes its reader and helpers with it (PR_SET_PDEATHSIG: they
    get SIGKILL), so their ``TemporaryDirectory`` in /dev/shm (memory) is never removed.
    Each directory is named after the process that made it; the next submit removes those
    whose process is gone. (Where several PID namespaces share one /dev/shm, a process of
    another container may look dead: such a directory is only the check inputs of one
    structure, and its owner then fails cleanly on its next write.)
    """
    import re
    import shutil
    import stat

    root = root or _scratch_root()
    if root is None:
        return 0
    name = re.compile(rf"{SCRATCH_PREFIX}(\d+)-[A-Za-z0-9_]+")
    removed = 0
    try:
        entries = list(os.scandir(root))
    except OSError:
        return 0
    for entry in entries:
        match = name.fullmatch(entry.name)
        if not match:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not _alive(int(match[1])):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


def worker_count(n_inputs: int) -> int:
    """How many worker processes to stage ``n_inputs`` inputs with (0: stage in-process).

    >>> worker_count(10), worker_count(1000) >= 1
    (0, True)
    """
    if n_inputs < PARALLEL_MIN_INPUTS or not sys.platform.startswith("linux"):
        return 0  # the reader forks; elsewhere (macOS) fork is not safe: read in-process
    return max(1, min(len(os.sched_getaffinity(0)), MAX_WORKERS))


#: a many-frame file is read in this many parts per core (progress moves part by part)
PARTS_PER_WORKER = 4


def split_inputs(paths: list[StructureInput]) -> list[StructureInput]:
    """A few many-frame extended-XYZ files become parts of frames, staged side by side
    like separate files; many files are spread file by file as they are."""
    workers = worker_count(PARALLEL_MIN_INPUTS)
    if len(paths) >= PARALLEL_MIN_INPUTS or workers < 2:
        return paths
    return [part for given in paths for part in split_frames(given, PARTS_PER_WORKER * workers)]


def chunks(paths: list[Item], n_chunks: int) -> list[list[Item]]:
    """Split ``paths`` into at most ``n_chunks`` consecutive, nearly equal chunks.

    >>> [len(c) for c in chunks([Path(str(i)) for i in range(10)], 4)]
    [3, 3, 2, 2]
    """
    n_chunks = max(1, min(n_chunks, len(paths)))
    size, extra = divmod(len(paths), n_chunks)
    out: list[list[Item]] = []
    start = 0
    for index in range(n_chunks):
        end = start + size + (1 if index < extra else 0)
        out.append(paths[start:end])
        start = end
    return out


ProgressFn = Callable[[str, int, int], None]

#: paths staged so far, shared (by fork) between the reader process, its helpers and the parent
_done_paths: Any = None


def _count_path() -> None:
    with _done_paths.get_lock():
        _done_paths.value += 1


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux PR_SET_PDEATHSIG).

    A killed ``orion submit`` must not leave its reader or helpers behind, holding the
    terminal's pipes open; they have written nothing, so dying is all they need to do.
    """
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # no prctl: a dead parent still breaks the result pipe
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _child_main(
    conn: Any, parent_end: Any, parent_pid: int, work: Callable[[], list[Staged]]
) -> None:
    """A reader or helper process: send back ("ok", staged) or ("error", exception)."""
    _die_with_parent(parent_pid)
    parent_end.close()  # only the parent reads: a dead parent then breaks this pipe
    try:
        result: tuple[str, Any] = ("ok", work())
    except BaseException as exc:  # noqa: BLE001 - the parent raises it
        result = ("error", exc)
    try:
        conn.send(result)
    except BrokenPipeError:
        pass  # the parent is gone; nothing to report to
    except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
        conn.send(("error", RuntimeError(f"{type(result[1]).__name__}: {result[1]} ({exc})")))
    finally:
        conn.close()


class Child:
    """A forked process that runs ``work()`` and sends back its result (or its exception)."""

    def __init__(self, name: str, work: Callable[[], list[Staged]]) -> None:
        import multiprocessing

        context = multiprocessing.get_context("fork")
        self.conn, child_end = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_child_main, name=name, args=(child_end, self.conn, os.getpid(), work)
        )
        self.process.start()
        child_end.close()

    def ready(self, timeout_s: float) -> bool:
        return bool(self.conn.poll(timeout_s))

    def result(self) -> list[Staged]:
        try:
            kind, value = self.conn.recv()
        except EOFError:
            self.process.join()
            raise RuntimeError(
                f"{self.process.name} ended without an answer (exit code {self.process.exitcode})"
            ) from None
        self.process.join()
        if kind == "error":
            raise value
        return list(value)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()


def _read_all(task: StageTask, paths: list[StructureInput], helpers: int) -> list[Staged]:
    """In the reader process: import ASE once, then fork ``helpers`` that share the import.

    ``import ase.io`` costs about a third of a second; paid once before forking, not once
    per worker — unless every input is extended XYZ, whose bare frames are read and written
    without it (a frame of another shape imports it where it is read). The reader stages
    the first share itself; results come back in input order.
    """
    import signal

    if any(ASE_FORMAT.get(given.path.suffix.lower()) != "extxyz" for given in paths):
        import ase.io  # noqa: F401

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(1)  # terminate() from the parent: stop the helpers too (finally)

    signal.signal(signal.SIGTERM, stop)
    parts = chunks(paths, helpers + 1)
    children: list[Child] = []
    try:
        for number, part in enumerate(parts[1:], 1):
            children.append(
                Child(f"orion-helper-{number}", partial(stage_paths, task, part, _count_path))
            )
        staged = stage_paths(task, parts[0], _count_path)
        for child in children:
            staged.extend(child.result())
        return staged
    finally:
        for child in children:
            child.stop()


class Stager:
    """Stage in the background; ``collect`` waits and returns the jobs in input order."""

    def __init__(self, task: StageTask, paths: list[StructureInput], report: ProgressFn) -> None:
        global _done_paths
        remove_stale_scratch()  # what earlier, killed submits left in memory
        self.task, self.report = task, report
        self.paths = split_inputs(paths)  # a many-frame file: parts staged side by side
        self.workers = worker_count(sum(given.frames for given in self.paths))
        self.reader: Child | None = None
        if self.workers:
            import multiprocessing

            # fork: the reader inherits the parsed settings and the engine registry, and
            # starts before this process has opened any database connection
            _done_paths = multiprocessing.get_context("fork").Value("i", 0)
            self.reader = Child(
                "orion-reader", partial(_read_all, task, self.paths, self.workers - 1)
            )

    def collect(self) -> list[Staged]:
        total = len(self.paths)
        if self.reader is None:
            done = 0

            def step() -> None:
                nonlocal done
                done += 1
                self.report("preparing", done, total)

            return stage_paths(self.task, self.paths, step)
        while not self.reader.ready(0.1):
            self.report("preparing", _done_paths.value, total)
        staged = self.reader.result()
        self.report("preparing", total, total)
        return staged

    def stop(self) -> None:
        """Stop the reader (at once after an error; it wrote nothing that must be removed)."""
        if self.reader is not None:
            self.reader.stop()


@contextmanager
def staging(task: StageTask, paths: list[StructureInput], report: ProgressFn) -> Iterator[Stager]:
    """Start staging ``paths``; leaving the block, by an error too, stops the reader."""
    stager = Stager(task, paths, report)
    try:
        yield stager
    finally:
        stager.stop()
