"""SLURM through its command-line tools: sbatch, squeue, sacct, scancel, sinfo.

Every command is a pure argv builder plus a pure parser; :class:`SlurmCli` only runs them
through the injected :class:`~orion_cli.runner.Runner`. The parsers are tested on output
captured from a real Slurm 22.05 cluster (``tests/data/slurm/``).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from orion_cli.errors import SchedulerError
from orion_cli.runner import CommandResult, Runner, run
from orion_cli.schedulers.base import JobInfo, SubmitOptions
from orion_cli.states import FailureReason, JobStatus

log = logging.getLogger(__name__)

# squeue(1), JOB STATE CODES (Slurm 22.05), abridged:
#   BF BOOT_FAIL      terminated due to launch failure (e.g. unable to boot the node)
#   CA CANCELLED      explicitly cancelled by the user or administrator
#                     (sacct says "CANCELLED by <uid>")
#   CD COMPLETED      terminated all processes on all nodes with an exit code of zero
#   CF CONFIGURING    allocated resources, waiting for them to become ready (e.g. booting)
#   CG COMPLETING     in the process of completing; some processes may still be active
#   DL DEADLINE       terminated on deadline
#   F  FAILED         terminated with non-zero exit code or other failure condition
#   NF NODE_FAIL      terminated due to failure of one or more allocated nodes
#   OOM OUT_OF_MEMORY experienced out of memory error
#   PD PENDING        awaiting resource allocation
#   PR PREEMPTED      terminated due to preemption
#   R  RUNNING        currently has an allocation
#   RD RESV_DEL_HOLD  held after requested reservation was deleted
#   RF REQUEUE_FED    requeued by a federation
#   RH REQUEUE_HOLD   held job is being requeued
#   RQ REQUEUED       completing job is being requeued
#   RS RESIZING       about to change size
#   RV REVOKED        sibling was removed from cluster due to other cluster starting the job
#   SI SIGNALING      being signaled
#   SE SPECIAL_EXIT   requeued in a special state (e.g. by EpilogSlurmctld on an exit value)
#   SO STAGE_OUT      staging out files
#   ST STOPPED        has an allocation, but execution has been stopped with SIGSTOP
#   S  SUSPENDED      has an allocation, but execution has been suspended, CPUs released
#   TO TIMEOUT        terminated upon reaching its time limit
_Q, _R, _F = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED
STATE_MAP: dict[str, tuple[JobStatus, FailureReason | None]] = {
    "PENDING": (_Q, None),
    "REQUEUED": (_Q, None),
    "REQUEUE_HOLD": (_Q, None),
    "REQUEUE_FED": (_Q, None),
    "RESV_DEL_HOLD": (_Q, None),
    "SPECIAL_EXIT": (_Q, None),
    "SUSPENDED": (_Q, None),
    "CONFIGURING": (_Q, None),
    "RUNNING": (_R, None),
    "COMPLETING": (_R, None),
    "RESIZING": (_R, None),
    "SIGNALING": (_R, None),
    "STAGE_OUT": (_R, None),
    "STOPPED": (_R, None),
    "COMPLETED": (JobStatus.COMPLETED, None),
    "CANCELLED": (JobStatus.CANCELLED, None),
    "FAILED": (_F, FailureReason.EXIT_CODE),
    "TIMEOUT": (_F, FailureReason.TIMEOUT),
    "DEADLINE": (_F, FailureReason.TIMEOUT),
    "OUT_OF_MEMORY": (_F, FailureReason.OUT_OF_MEMORY),
    "NODE_FAIL": (_F, FailureReason.NODE_FAIL),
    "BOOT_FAIL": (_F, FailureReason.NODE_FAIL),
    "PREEMPTED": (_F, FailureReason.CANCELLED_EXTERNALLY),
    "REVOKED": (_F, FailureReason.CANCELLED_EXTERNALLY),
}

# One field per column, job name last because it may itself contain the separator.
SQUEUE_FIELDS = ("JobArrayID", "State", "Reason", "exit_code", "Name")
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Reason", "JobName")
_JOB_ID = re.compile(r"^\d+(_\d+)?$")
_HINT_DOWN = "is slurmctld running? try `scontrol ping` (dev cluster: scripts/slurm-up.sh)"


def map_state(raw_state: str) -> tuple[JobStatus, FailureReason | None]:
    """Map a SLURM state word onto orion's status and failure reason.

    >>> map_state("CANCELLED by 0")
    (<JobStatus.CANCELLED: 'cancelled'>, None)
    >>> map_state("OUT_OF_MEMORY")[1]
    <FailureReason.OUT_OF_MEMORY: 'out_of_memory'>
    """
    word = raw_state.split()[0] if raw_state.strip() else ""
    word = word.rstrip("+")  # sacct abbreviates long words with a trailing "+"
    if word not in STATE_MAP:
        log.warning("unknown SLURM state %r: treating the job as queued", raw_state)
        return JobStatus.QUEUED, None
    return STATE_MAP[word]


def split_exit_code(text: str) -> tuple[int | None, int | None]:
    """Split sacct's ``exit:signal`` into integers.

    >>> split_exit_code("3:0")
    (3, 0)
    >>> split_exit_code("")
    (None, None)
    """
    code, _, signal = text.strip().partition(":")
    if not code.isdigit():
        return None, None
    return int(code), int(signal) if signal.isdigit() else None


def split_wait_status(text: str) -> tuple[int | None, int | None]:
    """Split squeue's raw wait status (``768`` is exit 3) into exit code and signal.

    >>> split_wait_status("768")
    (3, 0)
    >>> split_wait_status("9")
    (0, 9)
    """
    if not text.strip().isdigit():
        return None, None
    status = int(text)
    return (status >> 8) & 0xFF, status & 0x7F


def parse_slurm_time_s(text: str) -> int | None:
    """Convert a SLURM time limit (``[days-]hours:minutes:seconds`` etc.) to seconds.

    >>> parse_slurm_time_s("1-02:00:00")
    93600
    >>> parse_slurm_time_s("30:00"), parse_slurm_time_s("infinite")
    (1800, None)
    """
    text = text.strip()
    if not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", text):
        return None  # "infinite", "UNLIMITED", "n/a"
    days_text, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days_text:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:  # minutes | minutes:seconds | hours:minutes:seconds
        padded = {1: [0, *parts, 0], 2: [0, *parts]}.get(len(parts), parts)
        hours, minutes, seconds = padded
    return ((int(days_text or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def _job_info(
    job_id: str, raw_state: str, reason: str, name: str, exit_signal: tuple[int | None, int | None]
) -> JobInfo:
    """Build one JobInfo; exit code only for finished jobs, pending reason only for queued."""
    status, failure = map_state(raw_state)
    exit_code, signal = exit_signal if status.is_final else (None, None)
    reason = reason.strip()
    pending = reason if status is JobStatus.QUEUED and reason not in ("", "None") else None
    return JobInfo(
        scheduler_job_id=job_id,
        raw_state=raw_state.strip(),
        status=status,
        reason=failure,
        exit_code=exit_code,
        signal=signal,
        pending_reason=pending,
        name=name or None,
    )


# ---------- argv builders (pure) -----------------------------------------------------------


def sbatch_argv(script_path: Path, options: SubmitOptions | None = None) -> list[str]:
    """Build the sbatch command: run ``script_path`` in its own directory, print the id."""
    options = options or SubmitOptions()
    argv = ["sbatch", "--parsable", f"--chdir={script_path.parent}"]
    if options.hold:
        argv.append("-H")
    if options.begin is not None:
        begin = options.begin.astimezone() if options.begin.tzinfo else options.begin
        argv.append(f"--begin={begin.strftime('%Y-%m-%dT%H:%M:%S')}")
    argv.append(str(script_path))
    return argv


def squeue_argv(job_ids: Sequence[str]) -> list[str]:
    """Build one squeue call for ``job_ids``: all states, one line per array task."""
    fields = ",".join(f"{name}:|" for name in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:"
    return ["squeue", "-h", "-r", "-t", "all", "-j", ",".join(job_ids), "-O", fields]


def sacct_argv(job_ids: Sequence[str]) -> list[str]:
    """Build one sacct call for ``job_ids``: allocations only, ``|``-separated."""
    return ["sacct", "-P", "-n", "-X", "-o", ",".join(SACCT_FIELDS), "-j", ",".join(job_ids)]


def scancel_argv(job_ids: Sequence[str]) -> list[str]:
    """Build the scancel command for ``job_ids``."""
    return ["scancel", *job_ids]


def sinfo_partitions_argv() -> list[str]:
    """Build the sinfo command listing every partition with its time limit."""
    return ["sinfo", "-h", "-a", "-o", "%R|%l"]


# ---------- parsers (pure) -----------------------------------------------------------------


def parse_sbatch(stdout: str) -> str:
    """Read the job id from ``sbatch --parsable`` (``123`` or ``123;cluster``).

    >>> parse_sbatch("4711;orion\\n")
    '4711'
    """
    first = stdout.strip().splitlines()[0] if stdout.strip() else ""
    job_id = first.split(";")[0].strip()
    if not job_id.isdigit():
        raise SchedulerError(
            f"sbatch printed no job id (output: {stdout.strip()!r})",
            "check the #SBATCH lines of the script; never combine --parsable with -Q",
        )
    return job_id


def parse_squeue(stdout: str) -> dict[str, JobInfo]:
    """Parse ``squeue -O JobArrayID:|,State:|,Reason:|,exit_code:|,Name:`` lines."""
    jobs: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        fields = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(fields) < len(SQUEUE_FIELDS):
            continue
        job_id, state, reason, wait_status, name = (f.strip() for f in fields)
        jobs[job_id] = _job_info(job_id, state, reason, name, split_wait_status(wait_status))
    return jobs


def parse_sacct(stdout: str) -> dict[str, JobInfo]:
    """Parse ``sacct -P -n -X -o JobID,State,ExitCode,Reason,JobName`` lines."""
    jobs: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        fields = line.split("|", len(SACCT_FIELDS) - 1)
        if len(fields) < len(SACCT_FIELDS):
            continue
        job_id, state, exit_code, reason, name = (f.strip() for f in fields)
        jobs[job_id] = _job_info(job_id, state, reason, name, split_exit_code(exit_code))
    return jobs


def parse_partitions(stdout: str) -> dict[str, int | None]:
    """Parse ``sinfo -o '%R|%l'`` into partition name → max walltime in s (None: unlimited)."""
    partitions: dict[str, int | None] = {}
    for line in stdout.splitlines():
        name, sep, limit = line.strip().partition("|")
        if sep and name:
            partitions[name] = parse_slurm_time_s(limit)
    return partitions


def error_summary(result: CommandResult) -> str:
    """Join SLURM's error lines into one, most specific last, without the ``x: error:`` prefix.

    >>> from orion_cli.runner import CommandResult
    >>> lines = "sbatch: error: bad\\nsbatch: error: worse\\n"
    >>> error_summary(CommandResult(("sbatch",), 1, "", lines, 0))
    'bad; worse'
    """
    lines = [re.sub(r"^\w+: error: ", "", line.strip()) for line in result.stderr.splitlines()]
    lines = [line for line in lines if line]
    return "; ".join(lines) if lines else result.error_text()


def is_unknown_job_error(result: CommandResult) -> bool:
    """Tell whether squeue failed only because the (single) job id is not known any more."""
    return result.returncode == 1 and "Invalid job id specified" in result.stderr


def is_accounting_disabled(result: CommandResult) -> bool:
    """Tell whether sacct failed because the cluster keeps no accounting."""
    return not result.ok and "accounting storage is disabled" in result.stderr.lower()


# ---------- the backend ---------------------------------------------------------------------


class SlurmCli:
    """The SLURM backend, driving sbatch/squeue/sacct/scancel through ``runner``."""

    name = "slurm"

    def __init__(self, runner: Runner = run) -> None:
        self.runner = runner

    def _run(self, argv: Sequence[str], hint: str = _HINT_DOWN) -> CommandResult:
        """Run ``argv``; raise SchedulerError with SLURM's own first line when it fails."""
        result = self.runner(argv)
        if not result.ok:
            raise SchedulerError(f"{argv[0]} failed: {error_summary(result)}", hint)
        return result

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Submit ``script_path`` with sbatch; return the job id."""
        hint = f"check the #SBATCH lines of {script_path} and `sinfo` for partitions and limits"
        result = self._run(sbatch_argv(script_path, options), hint)
        return parse_sbatch(result.stdout)

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Ask squeue once for all ids, then sacct once for those squeue no longer knows."""
        ids = _checked_ids(job_ids)
        if not ids:
            return {}
        result = self.runner(squeue_argv(ids))
        if not result.ok and not is_unknown_job_error(result):
            raise SchedulerError(f"squeue failed: {error_summary(result)}", _HINT_DOWN)
        jobs = parse_squeue(result.stdout) if result.ok else {}
        reported = set(jobs) | {job_id.split("_")[0] for job_id in jobs}  # array parents
        missing = [job_id for job_id in ids if job_id not in reported]
        if missing:
            for job_id, info in self._sacct(missing).items():
                jobs.setdefault(job_id, info)
        return jobs

    def _sacct(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Ask the accounting database about ``job_ids`` (empty when there is none)."""
        result = self.runner(sacct_argv(job_ids))
        if is_accounting_disabled(result):
            log.warning("sacct: no accounting on this cluster; finished jobs cannot be looked up")
            return {}
        if not result.ok:
            raise SchedulerError(
                f"sacct failed: {error_summary(result)}",
                "is slurmdbd running? try `sacctmgr show cluster` (dev: scripts/slurm-up.sh)",
            )
        return parse_sacct(result.stdout)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel ``job_ids`` with one scancel call; finished or unknown jobs are no error."""
        ids = _checked_ids(job_ids)
        if ids:
            self._run(scancel_argv(ids))

    def partitions(self) -> dict[str, int | None]:
        """List partitions with their maximum walltime in seconds (None: unlimited)."""
        return parse_partitions(self._run(sinfo_partitions_argv()).stdout)

    def check(self) -> tuple[bool, str]:
        """Tell whether sbatch exists and the controller answers, in one line."""
        if shutil.which("sbatch") is None:
            return False, "slurm: sbatch is not on PATH"
        try:
            names = sorted(self.partitions())
        except SchedulerError as error:
            return False, f"slurm: {error.one_line()}"
        return True, f"slurm: controller answers, partitions: {', '.join(names) or 'none'}"


def _checked_ids(job_ids: Sequence[str]) -> list[str]:
    """Return the ids in order without duplicates; raise SchedulerError on a malformed one."""
    ids = list(dict.fromkeys(str(job_id).strip() for job_id in job_ids))
    bad = [job_id for job_id in ids if not _JOB_ID.match(job_id)]
    if bad:
        raise SchedulerError(
            f"not a SLURM job id: {bad[0]!r}", "SLURM job ids look like 123 or 123_4"
        )
    return ids
