"""``orion rm``: delete finished jobs' directories, and hide their records.

The job row is never deleted. Its events are the audit trail: on a PostgreSQL group
database ``job_event`` is append-only for members (row-level security, migration 0005) and
refers to the job, so a member could not delete the row anyway. Instead ``rm`` deletes the
job directory (inputs, outputs, large scratch such as QE's ``out/``), deletes the stored
result, sets ``removed_at`` (``ls``, bulk filters and ``wait`` leave the job out; ``show``
still finds it) and records who did it. ``--keep-results`` deletes only the directory: the
job stays listed with its energy, forces and structure.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import delete

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobResult, now_utc
from orion_cli.db.session import session_scope
from orion_cli.services.lifecycle.state import note_many
from orion_cli.services.queries.selection import BulkReport, Selection, resolve
from orion_cli.states import JobStatus


@dataclass
class RemovePlan:
    """What ``rm`` would do: the jobs it would remove and the bytes it would free."""

    report: BulkReport
    job_ids: list[int]
    size_bytes: int


def _finished(job: Job) -> bool:
    return JobStatus(job.status).is_final and job.next_attempt_at is None


def plan(settings: Settings, selection: Selection, keep_results: bool) -> RemovePlan:
    """Pick the finished jobs of ``selection``; report the others (nothing is changed)."""

    selection.check()
    report = BulkReport("removed", hint="only finished jobs can be removed (cancel them first)")
    ids, size = [], 0
    with session_scope(settings.resolved_database_url) as session:
        for job in resolve(session, selection, report, "remove"):
            if not _finished(job):
                why = "retry pending" if job.next_attempt_at else f"not finished ({job.status})"
                report.skip(
                    job.id or 0,
                    why,
                    f"job {job.id} is {job.status}"
                    + (" with a retry pending" if job.next_attempt_at else ""),
                )
                continue
            ids.append(job.id or 0)
            size += tree_size_bytes(Path(job.workdir)) if job.workdir else 0
    return RemovePlan(report, ids, size)


def human_size(size_bytes: int) -> str:
    """Format a size for people.

    >>> human_size(512), human_size(3 * 1024**2), human_size(5 * 1024**3 + 1)
    ('512 B', '3.0 MiB', '5.0 GiB')
    """
    value, unit = float(size_bytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def tree_size_bytes(path: Path) -> int:
    """Bytes in the regular files under ``path`` (symbolic links not followed)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def remove(settings: Settings, to_remove: RemovePlan, keep_results: bool) -> BulkReport:
    """Delete the planned jobs' directories and, unless ``keep_results``, hide their records.

    A job whose directory cannot be deleted (outside orion's job root, a symbolic link, not
    yours, an I/O error) is reported and its record left alone; the others go on.
    """

    report = to_remove.report
    root = settings.work_root_path.resolve()
    with session_scope(settings.resolved_database_url) as session:
        done, notes = [], []
        for job_id in to_remove.job_ids:
            job = session.get(Job, job_id)
            if job is None or not _finished(job) or job.removed_at is not None:
                report.skip(job_id, "changed meanwhile", f"job {job_id} changed meanwhile")
                continue
            problem = _delete_dir(Path(job.workdir), root) if job.workdir else None
            if problem:
                report.trouble = True
                report.refuse(job_id, problem, f"job {job_id}: {problem}")
                continue
            done.append(job)
            if keep_results:
                notes.append(
                    (job, f"job directory {job.workdir} deleted with orion rm --keep-results")
                )
            else:
                job.removed_at = now_utc()
                session.add(job)
                notes.append((job, f"removed with orion rm (directory {job.workdir} deleted)"))
        if not keep_results and done:
            session.execute(delete(JobResult).where(JobResult.job_id.in_([job.id for job in done])))  # type: ignore[attr-defined]
        note_many(session, notes, source="user")
        report.done = [job.id or 0 for job in done]
    return report


def _delete_dir(workdir: Path, root: Path) -> str | None:
    """Delete one job directory under ``root``; return the problem, or None when done."""
    try:
        info = os.lstat(workdir)
    except FileNotFoundError:
        return None  # never made (an array task that never ran) or already deleted
    except OSError as exc:
        return f"cannot inspect {workdir}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{workdir} is not a directory (left alone)"
    if root not in workdir.resolve().parents:
        return f"{workdir} is outside orion's job directory {root} (left alone)"
    if info.st_uid != os.getuid():
        return f"{workdir} belongs to another user (left alone)"
    errors: list[str] = []
    shutil.rmtree(workdir, onerror=lambda _f, path, exc: errors.append(f"{path}: {exc[1]}"))
    return f"cannot delete all of {workdir}: {errors[0]}" if errors else None
