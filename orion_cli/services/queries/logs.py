"""Where a job's output files are, for ``orion logs`` (any attempt, array tasks included).

The batch script sends the job's stdout and stderr to one file: ``attempt-N.out`` in the
job directory, or ``arrays/<first id>/task-<index>.out`` for an array's first attempt (the
array shares one script). The engine's own output (``pw.out``, ``log.lammps``, ``OUTCAR``)
is in the job directory and is rewritten by each attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orion_cli.batch import BatchSpec, slurm_job_name
from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt, JobEvent
from orion_cli.db.session import instance_id, session_scope
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.sbatch_header import expand_output
from orion_cli.services.lifecycle.poll import poll
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
    from sqlmodel import col, select

    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise UsageError(f"no job with id {job_id}", "`orion ls` lists the jobs")
        if job.owner != current_user():  # its files are its owner's, read with their rights
            raise UsageError(
                f"job {job_id} belongs to {job.owner}; orion logs shows only your own jobs",
                "`orion show` tells its status and result",
            )
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
        if as_task and job.pack:
            sid = job.scheduler_job_id or ""
            moved = session.exec(
                select(JobEvent.id)
                .where(JobEvent.job_id == job_id)
                .where(col(JobEvent.message).contains(f"again in packed task {sid}"))
            ).first()
            path = packed_output_path(path.parent, sid, path, later_round=moved is not None)
        if (job.script or {}).get("own_output"):
            path = script_output(
                job, wanted, _attempt_job_id(session, job, wanted), instance_id(session)
            )
        return LogTarget(job_id, wanted, path, job.status)


def packed_output_path(
    array_dir: Path, scheduler_job_id: str, default: Path, later_round: bool = False
) -> Path:
    """The output of the packed task that ran a job: ``task-<task>.out`` (its pack's task,
    not its line), or, for a job resubmitted in a later round, the newest
    ``task-<round>-<task>.out``.

    >>> packed_output_path(Path("/w/arrays/1"), "77_3", Path("/w/arrays/1/task-40.out"))
    PosixPath('/w/arrays/1/task-3.out')
    """
    task = scheduler_job_id.rpartition("_")[2]
    if not task.isdigit():
        return default
    if not later_round:
        return array_dir / f"task-{task}.out"
    later = sorted(
        array_dir.glob(f"task-*-{task}.out"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    return later[0] if later else array_dir / f"task-{task}.out"


def _attempt_job_id(session: Any, job: Any, attempt: int) -> str:
    """The scheduler's id of ``attempt`` of ``job`` (its current one when not recorded)."""
    from sqlmodel import select

    row = session.exec(
        select(JobAttempt).where(JobAttempt.job_id == job.id).where(JobAttempt.attempt == attempt)
    ).first()
    return (row.scheduler_job_id if row else None) or job.scheduler_job_id or ""


def script_output(job: Any, attempt: int, scheduler_job_id: str, instance: str) -> Path:
    """Where a script's own ``#SBATCH --output`` sends an attempt's output: for an adopted
    job's first attempt the path SLURM reported, else the pattern expanded as SLURM does
    (``%j`` = that attempt's job id, ``%x`` = the job name it was given) in its directory."""
    script = job.script or {}
    if script.get("adopted") and attempt == 1 and script.get("stdout"):
        return Path(script["stdout"])
    header = script.get("header") or {}
    name = (
        job.name
        if script.get("adopted") and attempt == 1
        else slurm_job_name(
            BatchSpec(job.id or 0, job.name, Path(job.workdir), "", instance=instance)
        )
    )
    return expand_output(
        header.get("output") or "slurm-%j.out",
        scheduler_job_id,
        name,
        job.owner,
        Path(header.get("chdir") or script.get("submit_dir") or job.workdir),
    )


def job_status(settings: Settings, job_id: int, poll_first: bool = False) -> str:
    """The job's status now (``--follow`` stops once it is final).

    ``poll_first``: run a poll cycle first, as ``orion wait`` does (the scheduler is asked
    at most once per ``min_query_interval_s``, whoever polls), so that ``--follow`` ends
    when the job does, with or without cron.
    """
    if poll_first:
        poll(settings)

    with session_scope(settings.resolved_database_url) as session:
        job = session.get(Job, job_id)
        return job.status if job else "completed"
