"""Run batch scripts as detached background processes, for machines without SLURM.

Each job owns a directory ``<state_dir>/local-jobs/<id>/`` holding small files that any orion
process can read: ``job.json`` (written at submit), ``started`` (the script began),
``exit`` (its exit status, written by a wrapper shell when the script ends) and ``cancelled``.
A job whose process is gone without an ``exit`` record and without ``cancelled`` is reported
FAILED with reason LOST (raw state ``LOST``): the machine rebooted, or someone killed it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from orion_cli.errors import SchedulerError
from orion_cli.schedulers.base import JobInfo, SubmitOptions
from orion_cli.states import FailureReason, JobStatus

# $0 = script, $1 = job dir, $2 = seconds to wait before starting (for SubmitOptions.begin)
_WRAPPER = (
    'sleep "$2"; : > "$1/started"; bash "$0"; rc=$?; '
    'printf "%s\\n" "$rc" > "$1/exit.tmp"; mv "$1/exit.tmp" "$1/exit"'
)
_SBATCH_LINE = re.compile(r"^#SBATCH\s+(?:--(output|error|job-name)=|-([oeJ])\s*)(\S+)")
_SHORT_OPTION = {"o": "output", "e": "error", "J": "job-name"}


def read_sbatch_options(script_text: str) -> dict[str, str]:
    """Read ``--output``, ``--error`` and ``--job-name`` from the ``#SBATCH`` header.

    >>> read_sbatch_options("#!/bin/bash\\n#SBATCH --output=run-%j.out\\n#SBATCH -J relax\\n")
    {'output': 'run-%j.out', 'job-name': 'relax'}
    """
    options: dict[str, str] = {}
    for line in script_text.splitlines():
        if line and not line.startswith("#"):
            break  # sbatch stops reading #SBATCH lines at the first command
        match = _SBATCH_LINE.match(line)
        if match:
            key = match.group(1) or _SHORT_OPTION[match.group(2)]
            options[key] = shlex.split(match.group(3))[0] if match.group(3) else ""
    return options


def expand_filename(pattern: str, job_id: str, job_name: str) -> str:
    """Replace the ``%j``, ``%x`` and ``%%`` patterns that sbatch knows.

    >>> expand_filename("out-%x-%j.log", "L7", "relax")
    'out-relax-L7.log'
    """
    replacements = {"%%": "%", "%j": job_id, "%x": job_name}
    return re.sub(r"%[%jx]", lambda m: replacements[m.group(0)], pattern)


def _alive(pid: int) -> bool:
    """Tell whether process ``pid`` exists (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)


class LocalScheduler:
    """Run each batch script with ``bash`` in a new session, detached from orion."""

    name = "local"

    def __init__(self, state_dir: Path) -> None:
        self.jobs_dir = Path(state_dir) / "local-jobs"

    def _job_dir(self, job_id: str) -> Path:
        if not re.fullmatch(r"L\d+", job_id):
            raise SchedulerError(f"not a local job id: {job_id!r}", "local job ids look like L12")
        return self.jobs_dir / job_id

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

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Start ``script_path`` in the background (or keep it held); return its id."""
        options = options or SubmitOptions()
        script_path = Path(script_path).resolve()
        try:
            header = read_sbatch_options(script_path.read_text())
        except OSError as error:
            raise SchedulerError(f"cannot read batch script {script_path}: {error}") from error
        job_id = self._new_id()
        job_dir = self.jobs_dir / job_id
        name = header.get("job-name", script_path.name)
        record = {"script": str(script_path), "name": name, "hold": options.hold, "pid": None}
        if not options.hold:
            record.update(self._start(script_path, job_dir, job_id, header, options))
        (job_dir / "job.json").write_text(json.dumps(record))
        return job_id

    def _start(
        self,
        script: Path,
        job_dir: Path,
        job_id: str,
        header: dict[str, str],
        options: SubmitOptions,
    ) -> dict[str, int]:
        """Launch the wrapper shell detached (double fork: no zombie); return pid and pgid."""
        name = header.get("job-name", script.name)
        out = header.get("output", f"local-{job_id}.out")
        stdout_path = script.parent / expand_filename(out, job_id, name)
        stderr_path = script.parent / expand_filename(header.get("error", out), job_id, name)
        delay_s = 0
        if options.begin is not None:
            begin = options.begin if options.begin.tzinfo else options.begin.astimezone()
            delay_s = max(0, int((begin - datetime.now().astimezone()).total_seconds()))
        env = {**os.environ, "ORION_SCHEDULER": "local", "ORION_LOCAL_JOB_ID": job_id}
        # the launcher backgrounds the wrapper and exits at once: the wrapper is re-parented
        # to init (no zombie), and its process group (= launcher pid) survives for cancel
        launcher = 'o=$1 e=$2; shift 2; sh -c "$0" "$@" </dev/null >>"$o" 2>>"$e" & echo $!'
        argv = [
            "sh",
            "-c",
            launcher,
            _WRAPPER,
            str(stdout_path),
            str(stderr_path),
            str(script),
            str(job_dir),
            str(delay_s),
        ]
        proc = subprocess.Popen(
            argv,
            cwd=script.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the launcher leads a new process group: pgid = its pid
        )
        pid_text, error_text = proc.communicate()
        if proc.returncode != 0 or not pid_text.strip().isdigit():
            raise SchedulerError(
                f"cannot start {script}: {error_text.strip() or 'no pid'}",
                f"check that {stdout_path.parent} is writable",
            )
        return {"pid": int(pid_text), "pgid": proc.pid}

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Report every known job of ``job_ids`` from its directory."""
        jobs: dict[str, JobInfo] = {}
        for job_id in dict.fromkeys(job_ids):
            job_dir = self._job_dir(job_id)
            if (job_dir / "job.json").exists():
                jobs[job_id] = self._info(job_id, job_dir)
        return jobs

    def _info(self, job_id: str, job_dir: Path) -> JobInfo:
        """Derive one job's state from its files and its process."""
        record = json.loads((job_dir / "job.json").read_text())
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
        if _alive(record["pid"]):
            if (job_dir / "started").exists():
                return JobInfo(job_id, "RUNNING", JobStatus.RUNNING, name=name)
            return JobInfo(
                job_id, "PENDING", JobStatus.QUEUED, pending_reason="BeginTime", name=name
            )
        if exit_file.exists():  # it finished between the two checks
            return self._info(job_id, job_dir)
        return JobInfo(job_id, "LOST", JobStatus.FAILED, FailureReason.LOST, name=name)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Mark the jobs cancelled and kill their process groups; finished jobs are left alone."""
        for job_id in dict.fromkeys(job_ids):
            job_dir = self._job_dir(job_id)
            if not (job_dir / "job.json").exists() or (job_dir / "exit").exists():
                continue
            (job_dir / "cancelled").touch()
            record = json.loads((job_dir / "job.json").read_text())
            if record.get("pgid") and _alive(record["pid"]):
                try:
                    os.killpg(record["pgid"], signal.SIGTERM)
                except ProcessLookupError:
                    pass

    def check(self) -> tuple[bool, str]:
        """Tell whether bash is available to run batch scripts."""
        if shutil.which("bash") is None:
            return False, "local: bash is not on PATH"
        return True, f"local: runs batch scripts with bash in the background ({self.jobs_dir})"
