"""Where a job's output files are, for ``orion logs`` (any attempt, array tasks included).

The batch script sends the job's stdout and stderr to one file: ``attempt-N.out`` in the
job directory, or ``arrays/<first id>/task-<index>.out`` for an array's first attempt (the
array shares one script). The engine's own output (``pw.out``, ``log.lammps``, ``OUTCAR``)
is in the job directory and is rewritten by each attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.taskfile import array_tasks_file

#: the file each engine writes of its own (mock, emt and ase write none)
ENGINE_OUTPUT = {"qe": "pw.out", "lammps": "log.lammps", "vasp": "OUTCAR"}


@dataclass(frozen=True)
class LogTarget:
    job_id: int
    attempt: int
    path: Path
    status: str


def output_path(
    workdir: Path,
    attempt: int,
    array_name: str | None,
    array_index: int | None,
    ran_as_array_task: bool,
) -> Path:
    """The batch output file of ``attempt`` of a job.

    >>> output_path(Path("/w/i/14"), 1, "orion-array-12-i-", 2, True)
    PosixPath('/w/i/arrays/12/task-2.out')
    >>> output_path(Path("/w/i/14"), 2, "orion-array-12-i-", 2, False)
    PosixPath('/w/i/14/attempt-2.out')
    """
    if ran_as_array_task and array_name and array_index is not None:
        return array_tasks_file(workdir, array_name).parent / f"task-{array_index}.out"
    return workdir / f"attempt-{attempt}.out"


def log_target(
    settings: Settings, job_id: int, attempt: int | None, engine_output: bool
) -> LogTarget:
    """Find the file ``orion logs`` shows; refuse in one line when there is none."""
    from sqlmodel import select

    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise UsageError(f"no job with id {job_id}", "`orion ls` lists the jobs")
        wanted = job.attempt if attempt is None else attempt
        if not 1 <= wanted <= job.attempt:
            raise UsageError(
                f"job {job_id} has no attempt {wanted}",
                f"it has had {job.attempt} (use --attempt 1..{job.attempt})",
            )
        workdir = Path(job.workdir)
        if job.removed_at is not None:
            raise UsageError(f"job {job_id} was removed with orion rm", "its files are gone")
        if engine_output:
            name = ENGINE_OUTPUT.get(job.engine)
            if name is None:
                raise UsageError(
                    f"engine {job.engine} writes no output file of its own",
                    "`orion logs` without --engine-output shows the job's output",
                )
            if wanted != job.attempt:
                raise UsageError(
                    f"only the latest attempt's {name} is kept (attempt {job.attempt})",
                    "drop --attempt, or read attempt-N.out",
                )
            return LogTarget(job_id, wanted, workdir / name, job.status)
        first = session.exec(
            select(JobAttempt).where(JobAttempt.job_id == job_id).where(JobAttempt.attempt == 1)
        ).first()
        # an array's first attempt ran as an array task, unless it never got a scheduler id
        as_task = (
            wanted == 1
            and bool(job.array_name)
            and (first is None or first.scheduler_job_id is None or "_" in first.scheduler_job_id)
        )
        path = output_path(workdir, wanted, job.array_name, job.array_index, as_task)
        return LogTarget(job_id, wanted, path, job.status)


def job_status(settings: Settings, job_id: int) -> str:
    """The job's status now (``--follow`` stops once it is final)."""

    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        return job.status if job else "completed"
