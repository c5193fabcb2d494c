"""SLURM's commands as pure argv builders and pure parsers (sbatch, squeue, sacct, scontrol, ...).

:class:`~orion_cli.schedulers.slurm_cli.SlurmCli` only runs them through the injected runner.
The parsers are tested on output captured from a real Slurm 22.05 cluster (``tests/data/slurm/``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown
from orion_cli.runner import CommandResult
from orion_cli.schedulers.base import DEFAULT_PARTITION, JobInfo, JobTimes, SubmitOptions
from orion_cli.schedulers.slurm_states import (
    map_state,
    parse_slurm_time_s,
    split_exit_code,
    split_wait_status,
)
from orion_cli.states import JobStatus

# One field per column, job name last because it may itself contain the separator.
SQUEUE_FIELDS = ("JobArrayID", "State", "Reason", "exit_code", "Name")
SACCT_FIELDS = ("JobID", "State", "ExitCode", "Reason", "JobName")
JOB_ID = re.compile(r"^\d+(_\d+)?$")
# sacct -s: every state, so that jobs never eligible (held, then cancelled) are listed too
SACCT_ALL_STATES = "PD,R,S,CD,CA,F,TO,OOM,NF,BF,DL,PR,RQ,RV"
HELD_REASONS = frozenset({"JobHeldUser", "JobHeldAdmin"})


def make_job_info(
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
    argv = ["sbatch", "--parsable"]
    if options.chdir is None or options.chdir:
        argv.append(f"--chdir={options.chdir or script_path.parent}")
    if options.hold:
        argv.append("-H")
    if options.begin is not None:
        begin = options.begin.astimezone() if options.begin.tzinfo else options.begin
        argv.append(f"--begin={begin.strftime('%Y-%m-%dT%H:%M:%S')}")
    if options.after:
        argv.append(f"--dependency={dependency_spec(options.after)}")
    argv.extend(options.extra_args)
    argv.append(str(script_path))
    argv.extend(options.script_args)
    return argv


def dependency_spec(after: Sequence[tuple[str, str]]) -> str:
    """Build SLURM's dependency list: every condition must hold (``,`` = and).

    >>> dependency_spec([("afterok", "12"), ("afterok", "13_2"), ("afterany", "14")])
    'afterok:12:13_2,afterany:14'
    >>> dependency_spec([])
    ''
    """
    by_kind: dict[str, list[str]] = {}
    for kind, job_id in after:
        if kind not in ("afterok", "afterany") or not JOB_ID.match(job_id):
            raise SchedulerError(f"not a dependency: {kind}:{job_id}")
        by_kind.setdefault(kind, []).append(job_id)
    return ",".join(f"{kind}:{':'.join(ids)}" for kind, ids in by_kind.items())


def set_dependency_argv(job_ids: Sequence[str], after: Sequence[tuple[str, str]]) -> list[str]:
    """Build ``scontrol update JobId=<ids> Dependency=<spec>`` (an empty spec clears it).

    >>> set_dependency_argv(["20"], [("afterok", "31")])
    ['scontrol', 'update', 'JobId=20', 'Dependency=afterok:31']
    """
    return [
        "scontrol",
        "update",
        f"JobId={','.join(job_ids)}",
        f"Dependency={dependency_spec(after)}",
    ]


def squeue_argv(job_ids: Sequence[str]) -> list[str]:
    """Build one squeue call for ``job_ids``: all states, one line per array task.

    Array tasks are asked for by their array (``12_3``, ``12_4`` → ``12``): squeue filters
    a list of 10,000 task ids in about a second, and 10 array ids in milliseconds; it then
    reports every task of those arrays.

    >>> squeue_argv(["7", "12_3", "12_4"])[6]
    '7,12'
    """
    fields = ",".join(f"{name}:|" for name in SQUEUE_FIELDS[:-1]) + f",{SQUEUE_FIELDS[-1]}:"
    asked = ",".join(dict.fromkeys(array_job_id(job_id) for job_id in job_ids))
    return ["squeue", "-h", "-r", "-t", "all", "-j", asked, "-O", fields]


def sacct_argv(job_ids: Sequence[str]) -> list[str]:
    """Build one sacct call for ``job_ids``: allocations only, ``|``-separated."""
    return ["sacct", "-P", "-n", "-X", "-o", ",".join(SACCT_FIELDS), "-j", ",".join(job_ids)]


def scancel_argv(job_ids: Sequence[str]) -> list[str]:
    """Build the scancel command for ``job_ids``."""
    return ["scancel", *job_ids]


def array_spec(n_tasks: int, throttle: int | None = None) -> str:
    """Build sbatch's ``--array`` value for tasks ``0..n_tasks-1``, at most ``throttle`` at once.

    >>> array_spec(100), array_spec(5, throttle=2)
    ('0-99', '0-4%2')
    """
    if n_tasks < 1:
        raise SchedulerError(f"a job array needs at least one task, got {n_tasks}")
    if throttle is not None and throttle < 1:
        raise SchedulerError(f"array throttle must be at least 1, got {throttle}")
    return f"0-{n_tasks - 1}" + (f"%{throttle}" if throttle else "")


def sbatch_array_argv(
    script_path: Path,
    n_tasks: int,
    options: SubmitOptions | None = None,
    throttle: int | None = None,
) -> list[str]:
    """Build the sbatch command for a job array of ``n_tasks`` tasks (ids ``<id>_<i>``)."""
    argv = sbatch_argv(script_path, options)
    argv.insert(argv.index(str(script_path)), f"--array={array_spec(n_tasks, throttle)}")
    return argv


def scontrol_argv(action: str, job_ids: Sequence[str]) -> list[str]:
    """Build ``scontrol uhold|hold|release <ids>`` (one call, comma-separated ids)."""
    return ["scontrol", action, ",".join(job_ids)]


def set_partition_argv(job_ids: Sequence[str], partition: str) -> list[str]:
    """Build ``scontrol update JobId=<ids> Partition=<p>``: SLURM moves pending jobs only.

    >>> set_partition_argv(["20", "21_3"], "long")
    ['scontrol', 'update', 'JobId=20,21_3', 'Partition=long']
    """
    return ["scontrol", "update", f"JobId={','.join(job_ids)}", f"Partition={partition}"]


def set_nice_argv(job_ids: Sequence[str], nice: int) -> list[str]:
    """Build ``scontrol update JobId=<ids> Nice=<n>`` (only for jobs that are not held).

    >>> set_nice_argv(["5", "6_1"], 100)
    ['scontrol', 'update', 'JobId=5,6_1', 'Nice=100']
    """
    return ["scontrol", "update", f"JobId={','.join(job_ids)}", f"Nice={nice}"]


def release_input(job_ids: Sequence[str], nice: int) -> str:
    """Build the stdin of one ``scontrol`` session: release, then set the Nice chosen while
    the jobs were held (a held job's Nice is never changed: Slurm 22.05 would release it).

    >>> print(release_input(["5", "6"], 100), end="")
    release 5,6
    update JobId=5,6 Nice=100
    """
    ids = ",".join(job_ids)
    return f"release {ids}\nupdate JobId={ids} Nice={nice}\n"


def scontrol_config_argv() -> list[str]:
    """Build ``scontrol show config`` (for MaxArraySize)."""
    return ["scontrol", "show", "config"]


def squeue_names_argv() -> list[str]:
    """Build one squeue call listing the user's jobs (all states) by array job id and name."""
    return ["squeue", "-h", "-t", "all", "--me", "-O", "ArrayJobID:|,Name:"]


def sacct_names_argv(window_s: int) -> list[str]:
    """Build one sacct call listing the user's jobs of the last ``window_s`` seconds, any state."""
    return [
        "sacct",
        "-P",
        "-n",
        "-X",
        "-o",
        "JobID,JobName",
        "-s",
        SACCT_ALL_STATES,
        "-S",
        f"now-{window_s}",
        "-E",
        "now",
    ]


def sinfo_partitions_argv() -> list[str]:
    """Build the sinfo command listing every partition with its time limit.

    ``%P``, not ``%R``: only ``%P`` marks the default partition (``debug*``).
    """
    return ["sinfo", "-h", "-a", "-o", "%P|%l"]


# ---------- parsers (pure) -----------------------------------------------------------------


def parse_sbatch(stdout: str) -> str:
    """Read the job id from ``sbatch --parsable`` (``123`` or ``123;cluster``).

    Site wrappers and job-submit plugins may print lines of their own before it: the id
    is the last line that is one. No such line raises SubmitOutcomeUnknown: sbatch said it
    succeeded, so the job may exist, and it is looked up by name before any new submit.

    >>> parse_sbatch("4711;orion\\n")
    '4711'
    >>> parse_sbatch("NOTE: you have 12 core-hours left\\n4712\\n")
    '4712'
    """
    for line in reversed(stdout.strip().splitlines()):
        job_id = line.split(";")[0].strip()
        if job_id.isascii() and job_id.isdigit():
            return job_id
    raise SubmitOutcomeUnknown(
        f"sbatch succeeded but printed no job id (output: {stdout.strip()[:200]!r})",
        "`orion poll` looks the job up by name and adopts it, or submits it if SLURM has none",
    )


def parse_squeue(stdout: str) -> dict[str, JobInfo]:
    """Parse ``squeue -O JobArrayID:|,State:|,Reason:|,exit_code:|,Name:`` lines."""
    jobs: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        fields = line.split("|", len(SQUEUE_FIELDS) - 1)
        if len(fields) < len(SQUEUE_FIELDS):
            continue
        job_id, state, reason, wait_status, name = (f.strip() for f in fields)
        jobs[job_id] = make_job_info(job_id, state, reason, name, split_wait_status(wait_status))
    return jobs


def parse_sacct(stdout: str) -> dict[str, JobInfo]:
    """Parse ``sacct -P -n -X -o JobID,State,ExitCode,Reason,JobName`` lines.

    A grouped record of array tasks that never started (``13_[0-2]``) is kept under its own
    id and also reported once per task (``13_0``, ...), so a task id asked for is found.
    """
    jobs: dict[str, JobInfo] = {}
    for line in stdout.splitlines():
        fields = line.split("|", len(SACCT_FIELDS) - 1)
        if len(fields) < len(SACCT_FIELDS):
            continue
        job_id, state, exit_code, reason, name = (f.strip() for f in fields)
        jobs[job_id] = make_job_info(job_id, state, reason, name, split_exit_code(exit_code))
        if "[" in job_id:  # explicit task lines win over the grouped record, in any order
            for task_id in expand_array_tasks(job_id):
                jobs.setdefault(task_id, replace(jobs[job_id], scheduler_job_id=task_id))
    return jobs


def settle_collapsed_arrays(job_ids: Sequence[str], jobs: dict[str, JobInfo]) -> None:
    """Give asked array tasks without a record of their own the final state of their array.

    ``scancel -u <user>`` (any filter) on an array whose tasks never started leaves one bare,
    final record ``12`` in squeue and sacct: the task ids are gone. That record speaks for
    every task of the array that has no record of its own; without this, such tasks would
    look lost and be retried although the user cancelled them.

    >>> jobs = {"12": make_job_info("12", "CANCELLED", "JobHeldUser", "x", (0, 0))}
    >>> settle_collapsed_arrays(["12_0", "12_5", "13_0"], jobs)
    >>> sorted(jobs), jobs["12_5"].status.value
    (['12', '12_0', '12_5'], 'cancelled')
    """
    for job_id in job_ids:
        parent = array_job_id(job_id)
        whole = jobs.get(parent)
        if job_id not in jobs and parent != job_id and whole is not None and whole.status.is_final:
            jobs[job_id] = replace(whole, scheduler_job_id=job_id)


def only_asked(job_ids: Sequence[str], jobs: dict[str, JobInfo]) -> dict[str, JobInfo]:
    """Keep the answers about ``job_ids``: the ids themselves, and the tasks of asked arrays.

    Arrays are asked for whole (squeue_argv), so the raw answer may hold more tasks.

    >>> info = make_job_info("x", "PENDING", "", "x", (0, 0))
    >>> sorted(only_asked(["12_1", "13"], {"12_0": info, "12_1": info, "13_4": info}))
    ['12_1', '13_4']
    """
    asked = set(job_ids)
    return {
        job_id: info
        for job_id, info in jobs.items()
        if job_id in asked or array_job_id(job_id) in asked
    }


def expand_array_tasks(job_id: str) -> list[str]:
    """Expand sacct's/squeue's grouped array record into task ids (others are returned as is).

    >>> expand_array_tasks("13_[0-2,5%2]")
    ['13_0', '13_1', '13_2', '13_5']
    >>> expand_array_tasks("13_4"), expand_array_tasks("7")
    (['13_4'], ['7'])
    """
    match = re.fullmatch(r"(\d+)_\[([\d,\-]+)(?:%\d+)?\]", job_id)
    if not match:
        return [job_id]
    tasks: list[str] = []
    for part in match.group(2).split(","):
        first, _, last = part.partition("-")
        tasks += [f"{match.group(1)}_{i}" for i in range(int(first), int(last or first) + 1)]
    return tasks


def array_job_id(job_id: str) -> str:
    """Return the job id without its array task part (``123_4``, ``123_[0-9]`` → ``123``).

    >>> array_job_id("123_[0-9%2]"), array_job_id("77")
    ('123', '77')
    """
    return job_id.split("_", 1)[0]


def parse_config(stdout: str) -> dict[str, str]:
    """Parse ``scontrol show config`` lines ``Key = Value`` into a dict.

    >>> parse_config("Configuration data as of x\\nMaxArraySize            = 1001\\n")
    {'MaxArraySize': '1001'}
    """
    config: dict[str, str] = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and " " not in key.strip():
            config[key.strip()] = value.strip()
    return config


def parse_name_records(stdout: str) -> list[tuple[str, str]]:
    """Parse ``<job id>|<name>`` lines (squeue_names_argv, sacct_names_argv) into pairs.

    The job id is reduced to the array job id, so every task of an array names the array.
    """
    records = []
    for line in stdout.splitlines():
        job_id, sep, name = line.partition("|")
        if sep and job_id.strip():
            records.append((array_job_id(job_id.strip()), name.strip()))
    return records


def match_names(records: Iterable[tuple[str, str]], wanted: Sequence[str]) -> dict[str, str]:
    """Map each entry of ``wanted`` to the newest job id whose name matches it.

    An entry ending in ``-`` is a prefix (``orion-17-`` matches ``orion-17-relax``, never
    ``orion-170-x``); any other entry must equal the name. Newest = highest numeric job id.

    >>> recs = [("5", "orion-17-a"), ("9", "orion-17-b"), ("7", "orion-170-c"), ("8", "x")]
    >>> match_names(recs, ["orion-17-", "orion-1-", "x", "orion-170-c"])
    {'orion-17-': '9', 'x': '8', 'orion-170-c': '7'}
    """
    found: dict[str, str] = {}
    for job_id, name in records:
        for key in wanted:
            hit = name.startswith(key) if key.endswith("-") else name == key
            if hit and (key not in found or int(job_id) > int(found[key])):
                found[key] = job_id
    return {key: found[key] for key in wanted if key in found}


def sinfo_idle_cpus_argv(partition: str = "") -> list[str]:
    """Build the sinfo command listing every node's CPUs (allocated/idle/other/total)."""
    return ["sinfo", "-h", "-N", "-o", "%N|%C", *(["-p", partition] if partition else [])]


def parse_idle_cpus(stdout: str) -> int:
    """Sum the idle CPUs of ``sinfo -N -o '%N|%C'``; a node in two partitions counts once.

    >>> parse_idle_cpus("vm|1/1/0/2\\nvm|1/1/0/2\\nn2|0/4/0/4\\n")
    5
    """
    idle: dict[str, int] = {}
    for line in stdout.splitlines():
        node, sep, cpus = line.strip().partition("|")
        fields = cpus.split("/")
        if sep and node and len(fields) == 4 and fields[1].isdigit():
            idle[node] = int(fields[1])
    return sum(idle.values())


def parse_partitions(stdout: str) -> dict[str, int | None]:
    """Parse ``sinfo -o '%P|%l'`` into partition name → max walltime in s (None: unlimited).

    The default partition (``debug*``) is also given under :data:`DEFAULT_PARTITION`.

    >>> parse_partitions("debug*|1:00:00\\nlong|2-00:00:00\\n")
    {'debug': 3600, '*': 3600, 'long': 172800}
    """
    partitions: dict[str, int | None] = {}
    for line in stdout.splitlines():
        name, sep, limit = line.strip().partition("|")
        if sep and name:
            limit_s = parse_slurm_time_s(limit)
            partitions[name.rstrip("*")] = limit_s
            if name.endswith("*"):
                partitions[DEFAULT_PARTITION] = limit_s
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


#: sbatch refusals that a later try cannot pass (the request itself is impossible here);
#: any other failure (controller busy or down, time-outs, submit limits) is retried
FINAL_SBATCH_REFUSALS = (
    "Requested node configuration is not available",
    "Memory specification can not be satisfied",
    "CPU count per node can not be satisfied",
    "More processors requested than permitted",
    "Invalid account or account/partition combination",
    "Invalid qos specification",
    "Invalid partition name specified",
    "Requested time limit is invalid",
    "Node count specification invalid",
    "Invalid generic resource (gres) specification",
    "Invalid feature specification",
    "Requested reservation is invalid",
    "Task count specification invalid",
)


def is_final_refusal(result: CommandResult) -> bool:
    """Tell whether sbatch refused the job for good (see FINAL_SBATCH_REFUSALS).

    >>> from orion_cli.runner import CommandResult
    >>> is_final_refusal(CommandResult(("sbatch",), 1, "", "sbatch: error: Batch job "
    ...     "submission failed: Requested node configuration is not available\\n", 0))
    True
    >>> is_final_refusal(CommandResult(("sbatch",), 1, "", "sbatch: error: Batch job "
    ...     "submission failed: Unable to contact slurm controller (connect failure)\\n", 0))
    False
    """
    return result.returncode not in (0, 124, 127) and any(
        phrase.lower() in result.stderr.lower() for phrase in FINAL_SBATCH_REFUSALS
    )


def is_unknown_job_error(result: CommandResult) -> bool:
    """Tell whether squeue failed only because the (single) job id is not known any more."""
    return result.returncode == 1 and "Invalid job id specified" in result.stderr


def is_accounting_disabled(result: CommandResult) -> bool:
    """Tell whether sacct failed because the cluster keeps no accounting."""
    return not result.ok and "accounting storage is disabled" in result.stderr.lower()


# ---------- true submit, start and end times (scripts and adopted jobs) ---------------------

#: squeue: id, state, submit, start, end (sacct: JobID,State,Submit,Start,End)
TIMES_FORMAT = "%i|%T|%V|%S|%e"


def squeue_times_argv(job_ids: Sequence[str]) -> list[str]:
    """Build squeue's question for the jobs' times (the controller's own record)."""
    return ["squeue", "-h", "-t", "all", "-j", ",".join(job_ids), "-o", TIMES_FORMAT]


def sacct_times_argv(job_ids: Sequence[str]) -> list[str]:
    """Build sacct's question for the same, for jobs the controller has forgotten."""
    fields = "JobID,State,Submit,Start,End"
    return ["sacct", "-X", "-n", "-P", "-o", fields, "-j", ",".join(job_ids)]


def _slurm_time(text: str) -> datetime | None:
    """A SLURM timestamp (the controller's local time) in UTC; None for N/A, Unknown, None.

    >>> _slurm_time("2026-12-07T01:52:19").tzinfo is not None, _slurm_time("Unknown")
    (True, None)
    """
    try:
        return datetime.fromisoformat(text.strip()).astimezone(UTC)
    except ValueError:
        return None


def parse_times(stdout: str) -> dict[str, JobTimes]:
    """Map job id to its :class:`JobTimes` from :data:`TIMES_FORMAT` lines (squeue or sacct).

    A start counts once the job runs or ended, an end once it ended: a pending job's
    start and a running job's end are SLURM's forecasts. A job cancelled before it
    started has no start (squeue gives the cancel time, sacct ``None``).

    >>> times = parse_times("84|PENDING|2026-12-07T01:52:28|2026-12-07T03:03:00|"
    ...                     "2026-12-07T03:05:00\\n")
    >>> times["84"].submitted_at.minute, times["84"].started_at, times["84"].finished_at
    (52, None, None)
    """
    found: dict[str, JobTimes] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) != 5 or not JOB_ID.match(fields[0]):
            continue
        status, _ = map_state(fields[1])
        submitted, start, end = (_slurm_time(text) for text in fields[2:])
        if not (status is JobStatus.RUNNING or status.is_final) or (
            status is JobStatus.CANCELLED and start == end
        ):
            start = None
        found[fields[0]] = JobTimes(submitted, start, end if status.is_final else None)
    return found
