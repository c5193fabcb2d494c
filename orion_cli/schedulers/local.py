"""Run batch scripts as detached background processes, for machines without SLURM.

Each job owns a directory ``<state_dir>/local-jobs/<id>/`` holding small files that any orion
process can read: ``job.json`` (written at submit), ``started`` (the script began),
``exit`` (its exit status, written by a wrapper shell when the script ends) and ``cancelled``.
A job whose process is gone without an ``exit`` record and without ``cancelled`` is reported
FAILED with reason LOST (raw state ``LOST``): the machine rebooted, or someone killed it.

An array ``L5`` of n tasks has ``L5/job.json`` (``"array": n``) and one directory per task,
``L5_0`` ... ``L5_<n-1>``, each an ordinary job run with ``SLURM_ARRAY_JOB_ID=L5`` and
``SLURM_ARRAY_TASK_ID=<i>``. A throttle is honoured loosely: every task process starts at once
and waits for one of ``throttle`` slot directories; a task killed with SIGKILL keeps its slot.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from orion_cli.errors import SchedulerError
from orion_cli.schedulers.base import JobInfo, JobTimes, SubmitOptions
from orion_cli.schedulers.local_launch import (
    alive,
    expand_filename,
    launch,
    read_sbatch_options,
)
from orion_cli.states import FailureReason, JobStatus

__all__ = ["LocalScheduler", "expand_filename", "read_sbatch_options"]
MAX_ARRAY_SIZE = 100_000
_HINT_IDS = "local job ids look like L12 or L12_3 (array task); see `orion ls`"


class LocalScheduler:
    """Run each batch script with ``bash`` in a new session, detached from orion."""

    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.jobs_dir = Path(state_dir) / "local-jobs"

    def _job_dir(self, job_id: str) -> Path:
        if not re.fullmatch(r"L\d+(_\d+)?", job_id):
            raise SchedulerError(f"not a local job id: {job_id!r}", _HINT_IDS)
        return self.jobs_dir / job_id

    def _record(self, job_id: str) -> dict[str, Any] | None:
        """Read a job's ``job.json`` (None: unknown job)."""
        path = self._job_dir(job_id) / "job.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _write(self, job_id: str, record: dict[str, Any]) -> None:
        path = self._job_dir(job_id) / "job.json"
        path.with_suffix(".tmp").write_text(json.dumps(record))
        path.with_suffix(".tmp").replace(path)

    @contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        """Hold the job's lock, so that concurrent hold/release never start a job twice."""
        with open(self._job_dir(job_id) / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _new_id(self) -> str:
        """Allocate the next id under a file lock, so concurrent orion processes never clash."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        with open(self.jobs_dir / "counter", "a+") as counter:
            fcntl.flock(counter, fcntl.LOCK_EX)
            counter.seek(0)
            number = int(counter.read().strip() or 0) + 1
            counter.seek(0)
            counter.truncate()
            counter.write(f"{number}\n")
            counter.flush()
            os.fsync(counter.fileno())
        job_id = f"L{number}"
        (self.jobs_dir / job_id).mkdir()
        return job_id

    def _expand(self, job_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Map each id to its record, an array's id to its tasks' (None: unknown job)."""
        records: dict[str, dict[str, Any] | None] = {}
        for job_id in dict.fromkeys(job_ids):
            record = self._record(job_id)
            if record is not None and record.get("array"):
                for task in range(record["array"]):
                    records[f"{job_id}_{task}"] = self._record(f"{job_id}_{task}")
            else:
                records[job_id] = record
        return records

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Start ``script_path`` in the background (or keep it held); return its id."""
        script_path, header = _read_script(script_path)
        job_id = self._new_id()
        options = options or SubmitOptions()
        record = _new_record(script_path, header, options)
        self._write(job_id, record)
        self._write_after(job_id, options.after)
        if not record["hold"]:
            with self._locked(job_id):
                self._start(job_id, record)
        return job_id

    def submit_array(
        self,
        script_path: Path,
        n_tasks: int,
        options: SubmitOptions | None = None,
        throttle: int | None = None,
    ) -> str:
        """Start one process per task ``L<n>_<i>`` (throttle honoured loosely); return ``L<n>``."""
        if not 1 <= n_tasks <= MAX_ARRAY_SIZE:
            raise SchedulerError(f"a local array has 1..{MAX_ARRAY_SIZE} tasks, got {n_tasks}")
        if throttle is not None and throttle < 1:
            raise SchedulerError(f"array throttle must be at least 1, got {throttle}")
        script_path, header = _read_script(script_path)
        array_id = self._new_id()
        options = options or SubmitOptions()
        record = _new_record(script_path, header, options)
        self._write(array_id, {**record, "array": n_tasks, "throttle": throttle})
        for task in range(n_tasks):
            task_id = f"{array_id}_{task}"
            self._job_dir(task_id).mkdir()
            task_record = {**record, "array_id": array_id, "task": task, "throttle": throttle}
            self._write(task_id, task_record)
            self._write_after(task_id, options.after)
            if not record["hold"]:
                with self._locked(task_id):
                    self._start(task_id, task_record)
        return array_id

    def _write_after(self, job_id: str, after: Sequence[tuple[str, str]]) -> None:
        """Write the job's ``after`` file, which its waiting wrapper reads (see local_launch)."""
        for kind, parent in after:
            if kind not in ("afterok", "afterany"):
                raise SchedulerError(f"not a dependency kind: {kind!r}")
            self._job_dir(parent)  # checks the id's form: it becomes a path
        path = self._job_dir(job_id) / "after"
        path.with_suffix(".tmp").write_text("".join(f"{k} {p}\n" for k, p in after))
        path.with_suffix(".tmp").replace(path)

    def _dependency_reason(self, job_id: str) -> str | None:
        """SLURM's pending reason for a job still waiting for its parents, or None."""
        path = self._job_dir(job_id) / "after"
        if not path.exists():
            return None
        reason = None
        for line in path.read_text().splitlines():
            kind, parent = line.split()
            parent_dir = self.jobs_dir / parent
            exit_file = parent_dir / "exit"
            if not exit_file.exists() and not (parent_dir / "cancelled").exists():
                reason = reason or "Dependency"
            elif kind == "afterok" and (
                not exit_file.exists() or exit_file.read_text().strip() != "0"
            ):
                return "DependencyNeverSatisfied"
        return reason

    def set_dependency(self, job_ids: Sequence[str], after: Sequence[tuple[str, str]]) -> None:
        """Replace the parents pending jobs wait for (their wrappers read the file again)."""
        self._control(job_ids, lambda job_id, record: self._write_after(job_id, after))

    def max_array_size(self) -> int:
        """Return the most tasks one local array may have."""
        return MAX_ARRAY_SIZE

    def _start(self, job_id: str, record: dict[str, Any]) -> None:
        """Launch the job's wrapper shell and store its pid in ``record``/``job.json``."""
        script = Path(record["script"])
        header = {**read_sbatch_options(script.read_text()), **record.get("extra", {})}
        array_id, task = record.get("array_id", ""), record.get("task")
        names = (job_id, record["name"], array_id, str(task) if array_id else "4294967294")
        cwd = script.parent / header.get("chdir", record.get("chdir") or "")
        out = header.get("output", f"local-{job_id}.out")
        paths = (
            cwd / expand_filename(out, *names),
            cwd / expand_filename(header.get("error", out), *names),
        )
        delay_s = 0
        if record.get("begin"):
            begin = datetime.fromisoformat(record["begin"])
            delay_s = max(0, int((begin - datetime.now().astimezone()).total_seconds()))
        env = {"ORION_SCHEDULER": "local", "ORION_LOCAL_JOB_ID": job_id}
        if array_id:
            env.update(SLURM_ARRAY_JOB_ID=array_id, SLURM_ARRAY_TASK_ID=str(task))
        throttle = record.get("throttle")
        slots = (self.jobs_dir / array_id, throttle) if array_id and throttle else None
        env.update(_exported(header.get("export", "")))
        record.update(
            launch(
                script,
                self._job_dir(job_id),
                paths,
                delay_s,
                env,
                slots,
                cwd,
                tuple(record.get("args", ())),
            )
        )
        record["hold"] = False
        self._write(job_id, record)

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Report every known job of ``job_ids`` (an array: each of its tasks) from its files."""
        return {
            job_id: self._info(job_id, self._job_dir(job_id), record)
            for job_id, record in self._expand(job_ids).items()
            if record is not None
        }

    def _info(self, job_id: str, job_dir: Path, record: dict[str, Any]) -> JobInfo:
        """Derive one job's state from its files and its process."""
        name = record.get("name")
        exit_file = job_dir / "exit"
        if exit_file.exists():
            exit_code = int(exit_file.read_text().strip())
            if exit_code == 0:
                return JobInfo(job_id, "COMPLETED", JobStatus.COMPLETED, exit_code=0, name=name)
            reason = FailureReason.EXIT_CODE
            return JobInfo(job_id, "FAILED", JobStatus.FAILED, reason, exit_code, name=name)
        if (job_dir / "cancelled").exists():
            return JobInfo(job_id, "CANCELLED", JobStatus.CANCELLED, name=name)
        if record["pid"] is None:
            return JobInfo(
                job_id, "PENDING", JobStatus.QUEUED, pending_reason="JobHeldUser", name=name
            )
        if alive(record["pid"]):
            if (job_dir / "started").exists():
                return JobInfo(job_id, "RUNNING", JobStatus.RUNNING, name=name)
            waiting = (
                "BeginTime"
                if _before_begin(record)
                else self._dependency_reason(job_id) or "JobArrayTaskLimit"
            )
            return JobInfo(job_id, "PENDING", JobStatus.QUEUED, pending_reason=waiting, name=name)
        if exit_file.exists():  # it finished between the two checks
            return self._info(job_id, job_dir, record)
        return JobInfo(job_id, "LOST", JobStatus.FAILED, FailureReason.LOST, name=name)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Mark the jobs cancelled and kill their process groups; finished jobs are left alone."""
        for job_id, record in self._expand(job_ids).items():
            job_dir = self._job_dir(job_id)
            if record is None or (job_dir / "exit").exists():
                continue
            (job_dir / "cancelled").touch()
            _kill(record, started=(job_dir / "started").exists())

    def _control(self, job_ids: Sequence[str], change: Any) -> None:
        """Apply ``change(job_id, record)`` to each pending job, SLURM's errors for the others."""
        errors = []
        for job_id, record in self._expand(job_ids).items():
            job_dir = self._job_dir(job_id)
            if record is None:
                errors.append(f"Invalid job id specified for job {job_id}")
            elif (job_dir / "exit").exists() or (job_dir / "cancelled").exists():
                errors.append(f"{job_id}: Job has already finished")
            elif not (job_dir / "started").exists():
                with self._locked(job_id):
                    change(job_id, self._record(job_id))
        if errors:
            raise SchedulerError("; ".join(errors), _HINT_IDS)

    def hold(self, job_ids: Sequence[str]) -> None:
        """Keep pending jobs from starting (a waiting process is stopped); see Scheduler.hold."""

        def hold_one(job_id: str, record: dict[str, Any]) -> None:
            if record["pid"] is not None and not (self._job_dir(job_id) / "started").exists():
                _kill(record, started=False)
            self._write(job_id, {**record, "pid": None, "pgid": None, "hold": True})

        self._control(job_ids, hold_one)

    def release(self, job_ids: Sequence[str], nice: int | None = None) -> None:
        """Start held jobs now (or wait for their begin time); see Scheduler.release."""

        def release_one(job_id: str, record: dict[str, Any]) -> None:
            if nice is not None:
                record = {**record, "nice": nice}
                self._write(job_id, record)
            if record["pid"] is None:
                self._start(job_id, record)

        self._control(job_ids, release_one)

    def times(self, job_ids: Sequence[str]) -> dict[str, JobTimes]:
        """Nothing beyond what the jobs write: the local backend keeps no start/end record."""
        return {}

    def set_partition(self, job_ids: Sequence[str], partition: str) -> None:
        """Nothing to move: the local backend has no partitions (it ignores them at submit)."""
        self._control(job_ids, lambda job_id, record: None)

    def set_nice(self, job_ids: Sequence[str], nice: int) -> None:
        """Record the nice value (the local backend starts jobs at once: it changes nothing)."""
        self._control(job_ids, lambda job_id, record: self._write(job_id, {**record, "nice": nice}))

    def find_by_name(self, names: Sequence[str]) -> dict[str, str]:
        """Map each name or ``-``-ended prefix to the newest local job with it (see Scheduler)."""
        wanted = list(dict.fromkeys(names))
        found: dict[str, tuple[int, str]] = {}
        dirs = self.jobs_dir.glob("L*") if wanted and self.jobs_dir.exists() else []
        for job_dir in dirs:
            if not re.fullmatch(r"L\d+", job_dir.name) or not (job_dir / "job.json").exists():
                continue
            name = json.loads((job_dir / "job.json").read_text())["name"]
            number = int(job_dir.name[1:])
            for key in wanted:
                hit = name.startswith(key) if key.endswith("-") else name == key
                if hit and number > found.get(key, (0, ""))[0]:
                    found[key] = (number, job_dir.name)
        return {key: found[key][1] for key in wanted if key in found}

    def partitions(self) -> dict[str, int | None]:
        """The local backend has no partitions: an empty dict."""
        return {}

    def idle_cpus(self, partition: str = "") -> int:
        """The machine's CPUs: the local backend starts every job at once."""
        return os.cpu_count() or 1

    def check(self) -> tuple[bool, str]:
        """Tell whether bash is available to run batch scripts."""
        if shutil.which("bash") is None:
            return False, "local: bash is not on PATH"
        return True, f"local: runs batch scripts with bash in the background ({self.jobs_dir})"


def _read_script(script_path: Path) -> tuple[Path, dict[str, str]]:
    """Resolve the script's path and read its ``#SBATCH`` header."""
    script_path = Path(script_path).resolve()
    try:
        return script_path, read_sbatch_options(script_path.read_text())
    except OSError as error:
        raise SchedulerError(f"cannot read batch script {script_path}: {error}") from error


def _new_record(script: Path, header: dict[str, str], options: SubmitOptions) -> dict[str, Any]:
    """Build the ``job.json`` content of a job not started yet."""
    begin = options.begin
    if begin is not None and begin.tzinfo is None:
        begin = begin.astimezone()
    extra = dict(option.removeprefix("--").partition("=")[::2] for option in options.extra_args)
    return {
        "script": str(script),
        "name": extra.get("job-name", header.get("job-name", script.name)),
        "extra": extra,
        "chdir": options.chdir or "",  # "" (None too): the script's own, or its directory
        "args": list(options.script_args),
        "hold": options.hold,
        "pid": None,
        "pgid": None,
        "begin": begin.isoformat() if begin else None,
        "nice": 0,
    }


def _exported(export: str) -> dict[str, str]:
    """The ``NAME=value`` items of an sbatch ``--export`` list (the job sees all the rest).

    >>> _exported("ALL,ORION_JOB_ID=7,HOME")
    {'ORION_JOB_ID': '7'}
    """
    return dict(item.partition("=")[::2] for item in export.split(",") if "=" in item)


def _before_begin(record: dict[str, Any]) -> bool:
    begin = record.get("begin")
    return isinstance(begin, str) and datetime.fromisoformat(begin) > datetime.now().astimezone()


def _kill(record: dict[str, Any], started: bool = True) -> None:
    """Terminate the job's process group, if it still runs.

    A job that has not started gets SIGKILL: its waiting wrapper may be between installing
    its TERM trap and forking ``sleep``, where a TERM would only act once the sleep ends.
    """
    if record.get("pgid") and record.get("pid") and alive(record["pid"]):
        try:
            os.killpg(record["pgid"], signal.SIGTERM if started else signal.SIGKILL)
        except ProcessLookupError:
            pass
