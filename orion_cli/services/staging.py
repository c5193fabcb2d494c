"""Read every structure and check that the engine can prepare it, before anything is written.

Reading structures (ASE) is the slow part of a big submit, so for many inputs it runs in
worker processes, one per CPU, while the submitting process gets the database and the
scheduler ready: ``import ase.io`` and the database stack are then paid side by side.
Each frame is checked by letting the engine prepare it in a scratch directory (a bad
element, a missing pseudopotential fail here, naming the file); what is kept is a
:class:`~orion_cli.taskfile.JobInputs` per frame, from which the job directory is made later.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orion_cli.taskfile import JobInputs

#: fewer inputs than this are staged in the submitting process (a worker costs ~20 ms)
PARALLEL_MIN_INPUTS = 64
MAX_WORKERS = 8


@dataclass
class Staged:
    """One checked frame: where it came from, its job name, its formula, text and inputs."""

    source: str
    name: str
    formula: str
    text: str
    inputs: JobInputs


@dataclass(frozen=True)
class StageTask:
    """What every job of one submit shares: engine, parameters and the job.json fields."""

    engine: str
    params: dict[str, Any]
    engine_settings: dict[str, Any]
    launcher: str
    ntasks: int


def stage_paths(task: StageTask, paths: list[Path]) -> list[Staged]:
    """Read ``paths`` (every frame), check each frame with the engine, keep the inputs.

    Nothing outside a scratch directory is written; a bad file raises a UsageError naming it.
    """
    from orion_cli.engines.registry import get_engine
    from orion_cli.services.inputs import extxyz_text, read_frames

    engine = get_engine(task.engine)
    staged: list[Staged] = []
    with tempfile.TemporaryDirectory(prefix="orion-check-") as scratch:
        for path in paths:
            for frame in read_frames(path):
                inputs = JobInputs(
                    engine=task.engine, params=task.params, launcher=task.launcher,
                    ntasks=task.ntasks, engine_settings=task.engine_settings,
                    structure=frame.text if frame.is_extxyz else extxyz_text(frame.atoms))
                # what makes the job directory later, on these atoms (read back from
                # ``structure`` there): a bad element or a missing pseudopotential fails now
                engine.prepare(frame.atoms, task.params, Path(scratch), task.engine_settings)
                staged.append(Staged(frame.source, frame.name,
                                     frame.atoms.get_chemical_formula(), frame.text, inputs))
    return staged


def worker_count(n_inputs: int) -> int:
    """How many worker processes to stage ``n_inputs`` inputs with (0: stage in-process).

    >>> worker_count(10), worker_count(1000) >= 1
    (0, True)
    """
    if n_inputs < PARALLEL_MIN_INPUTS:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_WORKERS))


def chunks(paths: list[Path], n_chunks: int) -> list[list[Path]]:
    """Split ``paths`` into at most ``n_chunks`` consecutive, nearly equal chunks.

    >>> [len(c) for c in chunks([Path(str(i)) for i in range(10)], 4)]
    [3, 3, 2, 2]
    """
    n_chunks = max(1, min(n_chunks, len(paths)))
    size, extra = divmod(len(paths), n_chunks)
    out, start = [], 0
    for index in range(n_chunks):
        end = start + size + (1 if index < extra else 0)
        out.append(paths[start:end])
        start = end
    return out


ProgressFn = Callable[[str, int, int], None]


class Stager:
    """Stage in the background; ``collect`` waits and returns the jobs in input order."""

    def __init__(self, task: StageTask, paths: list[Path], report: ProgressFn) -> None:
        self.task, self.paths, self.report = task, paths, report
        self.workers = worker_count(len(paths))
        self.futures: list[Future[list[Staged]]] = []
        self.pool: Any = None
        self.done: list[Staged] = []
        self.sizes: list[int] = []
        if self.workers:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # fork: the workers inherit the parsed settings and the engine registry, and
            # start before this process has opened any database connection
            self.pool = ProcessPoolExecutor(self.workers,
                                            mp_context=multiprocessing.get_context("fork"))
            parts = chunks(paths, self.workers * 4)
            self.sizes = [len(part) for part in parts]
            self.futures = [self.pool.submit(stage_paths, task, part) for part in parts]

    def collect(self) -> list[Staged]:
        if not self.workers:
            for done, path in enumerate(self.paths, 1):
                self.done.extend(stage_paths(self.task, [path]))
                self.report("preparing", done, len(self.paths))
            return self.done
        finished = 0
        for future, size in zip(self.futures, self.sizes, strict=True):
            self.done.extend(future.result())
            finished += size
            self.report("preparing", finished, len(self.paths))
        return self.done

    def abandon(self) -> None:
        """Stop the workers (an error happened; they wrote nothing that must be removed)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


@contextmanager
def staging(task: StageTask, paths: list[Path], report: ProgressFn) -> Iterator[Stager]:
    """Start staging ``paths``; on an error inside the block, stop the workers."""
    stager = Stager(task, paths, report)
    try:
        yield stager
    except BaseException:
        stager.abandon()
        raise
    stager.close()
