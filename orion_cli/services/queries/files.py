"""A job's files back: ``orion path``, ``orion files [--trajectory]`` and
``orion results -f extxyz --trajectory``.

A continued MD (a soft stop, then a retry that read ``orion.restart``) writes its
trajectory in parts: the stopped attempt's ``traj-attempt-1.dump``, ..., and the last
attempt's ``traj.dump``. :func:`stitched_frames` reads them in order and drops, at each seam,
the frames of steps the previous part already holds, so a trajectory has each step once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion_cli.config import Settings
from orion_cli.db.models import Job
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.jobdir import attempt_parts
from orion_cli.services.queries.results import check_selection, selected_jobs

#: what each engine's trajectory is: (file name, ASE format)
TRAJECTORY = {"lammps": ("traj.dump", "lammps-dump-text"), "qe": ("pw.out", "espresso-out")}
_STEP = re.compile(r"^ITEM: TIMESTEP\s*\n\s*(\d+)", re.M)


@dataclass
class JobFiles:
    job_id: int
    engine: str
    status: str
    workdir: Path
    #: (name, size in bytes) of each file in the job directory, sorted by name
    files: list[tuple[str, int]] = field(default_factory=list)
    #: the trajectory's parts in order (attempt 1 first, the current one last)
    trajectory: list[str] = field(default_factory=list)


def job_files(settings: Settings, job_id: int) -> JobFiles:
    """Where a job's files are and which they are; one line when there are none."""

    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise UsageError(f"no job with id {job_id}", "`orion ls` lists the jobs")
        if job.removed_at is not None:
            raise UsageError(f"job {job_id} was removed with orion rm", "its files are gone")
        if not job.workdir:
            raise UsageError(f"job {job_id} has no directory yet", "it was never submitted")
        return files_of(job)


def files_of(job: Any) -> JobFiles:
    """The files in a job row's directory (UsageError when the directory is gone)."""
    found = JobFiles(job.id or 0, job.engine, job.status, Path(job.workdir))
    if not found.workdir.is_dir():
        raise UsageError(
            f"job {found.job_id}'s directory {found.workdir} does not exist",
            "it was removed outside orion, or the job never started",
        )
    entries = sorted(p for p in found.workdir.iterdir() if p.is_file() and not p.is_symlink())
    found.files = [(p.name, p.stat().st_size) for p in entries]
    name = TRAJECTORY.get(found.engine, ("", ""))[0]
    found.trajectory = attempt_parts([n for n, _ in found.files], name) if name else []
    return found


def write_trajectories(settings: Settings, selection: Any, out: Any) -> tuple[int, int, list[str]]:
    """``orion results -f extxyz --trajectory``: every selected job's stitched trajectory,
    each frame tagged ``orion_id``/``name``. Returns (frames, jobs, why others were skipped);
    a job without a trajectory is skipped, the others are written."""

    frames: list[Any] = []
    jobs, skipped = 0, []
    with session_scope(settings.resolved_database_url) as session:
        check_selection(session, selection)
        for job, _ in selected_jobs(session, selection):
            try:
                found = files_of(job)
                these = stitched_frames(found)
            except UsageError as exc:
                skipped.append(exc.message)
                continue
            for atoms in these:
                atoms.info.update(orion_id=found.job_id, name=job.name)
            frames += these
            jobs += 1
    write_frames(frames, out)
    return len(frames), jobs, skipped


def dump_steps(text: str) -> list[int]:
    """The timestep of each frame of a LAMMPS text dump.

    >>> dump_steps("ITEM: TIMESTEP\\n0\\nITEM: NUMBER OF ATOMS\\n1\\nITEM: TIMESTEP\\n500\\n")
    [0, 500]
    """
    return [int(step) for step in _STEP.findall(text)]


def stitched_frames(found: JobFiles) -> list[Any]:
    """Every frame of the job's trajectory, parts in order, each step once (seams cleaned).

    A LAMMPS frame keeps its step in ``atoms.info["timestep"]``; pw.x outputs (one per
    attempt, each from the start of its own run) are concatenated as they are.
    """
    from ase.io import read

    if not found.trajectory:
        what = TRAJECTORY.get(found.engine, ("", ""))[0]
        raise UsageError(
            f"job {found.job_id} has no trajectory"
            + (f" ({what} not in {found.workdir})" if what else f" (engine {found.engine})"),
            "LAMMPS md/minimize (dump_every) and pw.x relaxations write one",
        )
    fmt = TRAJECTORY[found.engine][1]
    frames: list[Any] = []
    last_step = -1
    for part in found.trajectory:
        path = found.workdir / part
        images = read(path, index=":", format=fmt)
        steps = dump_steps(path.read_text()) if fmt == "lammps-dump-text" else []
        for n, atoms in enumerate(images):
            if n < len(steps):
                if steps[n] <= last_step:
                    continue  # the previous part holds this step already
                atoms.info["timestep"] = last_step = steps[n]
            atoms.info["part"] = part
            frames.append(atoms)
    return frames


def write_frames(frames: list[Any], out: Any) -> None:
    """Write ``frames`` as extended XYZ to a stream, or to a path through a temporary file
    beside it (a failed write leaves no half-written file; a directory is refused)."""
    import os
    import tempfile

    from ase.io import write

    if not isinstance(out, Path):
        write(out, frames, format="extxyz")
        return
    if out.is_dir():
        raise UsageError(f"'{out}' is a directory", "give a file name with -o")
    if out.exists() and not out.is_file():  # a FIFO or a device: written directly
        write(str(out), frames, format="extxyz")
        return
    handle, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    try:
        os.fchmod(handle, 0o644)
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            write(stream, frames, format="extxyz")
        os.replace(partial, out)
    finally:
        Path(partial).unlink(missing_ok=True)
