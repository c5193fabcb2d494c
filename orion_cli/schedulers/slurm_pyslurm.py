"""SLURM through pyslurm's 22.5 API (libslurm RPCs instead of sbatch/squeue processes).

pyslurm is imported inside functions only (``orion --help`` must not load it). Everything the
22.5 API cannot address is inherited from :class:`SlurmCli`: array *task* ids (``123_4``) in
release/cancel (pyslurm's Job takes an integer id), :meth:`hold` and :meth:`set_nice` (see
below), :meth:`find_by_name`, :meth:`partitions` and :meth:`max_array_size`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orion_cli.errors import SchedulerError
from orion_cli.runner import job_environment
from orion_cli.schedulers import slurm_commands as c
from orion_cli.schedulers.base import JobInfo, SubmitOptions
from orion_cli.schedulers.slurm_cli import HINT_DOWN, HINT_IDS, SlurmCli, checked_ids
from orion_cli.schedulers.slurm_states import parse_slurm_time_s

log = logging.getLogger(__name__)
#: sbatch waits and retries while slurmctld says "Resource temporarily unavailable"; so do we
BUSY_RETRY_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0)


def import_pyslurm() -> Any:
    """Import pyslurm, or raise SchedulerError saying why it cannot be used."""
    try:
        import pyslurm
    except ImportError as error:
        raise SchedulerError(
            f"pyslurm cannot be imported: {error}",
            "no wheel matches Slurm 22.05: build pyslurm v22.5.x against libslurm-dev, "
            "or set slurm_backend = 'cli' (sbatch, squeue, sacct)",
        ) from error
    return pyslurm


# JobSubmitDescription attributes that 22.5 needs as int although #SBATCH gives text
_INT_OPTIONS = (
    "ntasks",
    "cpus_per_task",
    "ntasks_per_node",
    "ntasks_per_socket",
    "ntasks_per_core",
    "sockets_per_node",
    "cores_per_socket",
    "threads_per_core",
    "priority",
    "nice",
)


def _integer_options(desc: Any) -> None:
    """Turn numeric #SBATCH values into ints; time limits into whole minutes (rounded up)."""
    for attribute in _INT_OPTIONS:
        value = getattr(desc, attribute, None)
        if isinstance(value, str) and value.lstrip("-").isdigit():
            setattr(desc, attribute, int(value))
    for attribute in ("time_limit", "time_limit_min"):
        value = getattr(desc, attribute, None)
        seconds = parse_slurm_time_s(value) if isinstance(value, str) else None
        if seconds is not None:
            setattr(desc, attribute, -(-seconds // 60))
    signal = getattr(desc, "signal", None)
    if isinstance(signal, str):  # pyslurm 22.5 passes "B:USR1@300"'s 300 on as text, unread
        desc.signal = signal_option(signal)


def _wants_signal(script_path: Path) -> bool:
    """Tell whether the script asks for a warning signal (``#SBATCH --signal``).

    pyslurm 22.5.3 accepts the option but the job never gets the signal (seen on this
    cluster: the same script got USR1 19 s in through sbatch, and nothing through pyslurm),
    so such scripts, which orion writes for its soft time limit, are submitted with sbatch.
    """
    return any(
        line.startswith("#SBATCH --signal") for line in Path(script_path).read_text().splitlines()
    )


def signal_option(text: str) -> dict[str, Any]:
    """Parse sbatch's ``--signal=[{R|B}:]<sig>[@sig_time]`` into pyslurm's dict form.

    >>> signal_option("B:USR1@300")
    {'signal': 'USR1', 'time': 300, 'batch_only': True, 'allow_reservation_overlap': False}
    """
    flags, _, rest = text.rpartition(":")
    name, _, seconds = rest.partition("@")
    return {
        "signal": name,
        "time": int(seconds) if seconds else 60,
        "batch_only": "b" in flags.lower(),
        "allow_reservation_overlap": "r" in flags.lower(),
    }


def job_keys(job: Any) -> list[str]:
    """Return the orion ids of a pyslurm job record (one per array task it stands for)."""
    if job.array_id is None:
        return [str(job.id)]
    if job.array_task_id is not None:
        return [f"{job.array_id}_{job.array_task_id}"]
    waiting = re.sub(r"%\d+$", "", str(job.array_tasks_waiting or ""))
    if waiting:  # the array's record of its tasks not started yet
        return c.expand_array_tasks(f"{job.array_id}_[{waiting}]")
    if job.id == job.array_id:  # the array's own record, with no task left: also bare
        # (``scancel -u`` of never-started tasks leaves only this; see settle_collapsed_arrays)
        return [f"{job.array_id}_0", str(job.array_id)]
    return [f"{job.array_id}_0"]  # pyslurm 22.5 parses task index 0 as None (zero = "no value")


def job_info(job_id: str, job: Any) -> JobInfo:
    """Map one pyslurm job record (controller or accounting) onto a JobInfo."""
    exit_signal = (job.exit_code, getattr(job, "exit_code_signal", None))
    return c.make_job_info(
        job_id, str(job.state), str(job.state_reason or ""), job.name or "", exit_signal
    )


class SlurmPyslurm(SlurmCli):
    """The SLURM backend over pyslurm RPCs; falls back to the CLI where pyslurm cannot help."""

    name = "pyslurm"

    def _description(self, script_path: Path, options: SubmitOptions | None) -> Any:
        """Build a JobSubmitDescription like sbatch would from the script and ``options``."""
        ps = import_pyslurm()
        options = options or SubmitOptions()
        script_path = Path(script_path).resolve()
        desc = ps.JobSubmitDescription(
            script=str(script_path), working_directory=str(script_path.parent)
        )
        desc.load_sbatch_options()  # the #SBATCH header, as sbatch reads it
        desc.environment = job_environment(os.environ)  # never the database URL
        _integer_options(desc)
        if options.hold:
            desc.priority = 0
        if options.begin is not None:
            begin = options.begin.astimezone() if options.begin.tzinfo else options.begin
            desc.begin_time = begin.strftime("%Y-%m-%dT%H:%M:%S")
        return desc

    def _submit(self, desc: Any, script_path: Path) -> str:
        """Submit; a busy controller (EAGAIN) is asked again, as sbatch itself does."""
        import time

        ps = import_pyslurm()
        for pause_s in (*BUSY_RETRY_PAUSES_S, None):
            try:
                return str(desc.submit())
            except (ps.RPCError, ValueError) as error:
                if pause_s is not None and "temporarily unavailable" in str(error).lower():
                    log.info("slurmctld busy (%s); submitting again in %s s", error, pause_s)
                    time.sleep(pause_s)
                    continue
                raise SchedulerError(
                    f"pyslurm submit failed: {error}",
                    f"check the #SBATCH lines of {script_path} and `sinfo` for partitions and "
                    "limits",
                ) from error
        raise AssertionError("unreachable")

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Submit ``script_path`` with one RPC; return the job id."""
        if _wants_signal(script_path) or (options and options.after):
            return super().submit(script_path, options)
        return self._submit(self._description(script_path, options), script_path)

    def submit_array(
        self,
        script_path: Path,
        n_tasks: int,
        options: SubmitOptions | None = None,
        throttle: int | None = None,
    ) -> str:
        """Submit ``script_path`` as tasks ``0..n_tasks-1`` with one RPC; return the array id."""
        if _wants_signal(script_path) or (options and options.after):
            return super().submit_array(script_path, n_tasks, options, throttle)
        desc = self._description(script_path, options)
        desc.array = c.array_spec(n_tasks, throttle)
        return self._submit(desc, script_path)

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Ask the controller once (Jobs.load), then accounting once for the ids it lacks."""
        ids = checked_ids(job_ids)
        if not ids:
            return {}
        ps = import_pyslurm()
        wanted = set(ids) | {c.array_job_id(job_id) for job_id in ids}  # arrays' own records
        try:
            live = ps.Jobs.load()
        except ps.RPCError as error:
            raise SchedulerError(f"pyslurm: loading jobs failed: {error}", HINT_DOWN) from error
        jobs = _select(live.values(), wanted)
        reported = set(jobs) | {c.array_job_id(job_id) for job_id in jobs}
        missing = [job_id for job_id in ids if job_id not in reported]
        if missing:
            parents = sorted({int(c.array_job_id(job_id)) for job_id in missing})
            try:
                old = ps.db.Jobs.load(ps.db.JobFilter(ids=parents))
            except ps.RPCError as error:
                raise SchedulerError(
                    f"pyslurm: accounting query failed: {error}",
                    "is slurmdbd running? try `sacctmgr show cluster`",
                ) from error
            asked = set(missing) | {str(parent) for parent in parents}
            for job_id, info in _select(old.values(), asked).items():
                jobs.setdefault(job_id, info)
        c.settle_collapsed_arrays(ids, jobs)
        return c.only_asked(ids, jobs)

    def _each(
        self,
        job_ids: Sequence[str],
        action: Callable[[Any], None],
        fallback: Callable[[list[str]], None],
    ) -> None:
        """Apply ``action`` to each plain id's pyslurm Job; task ids go to ``fallback`` (CLI)."""
        ids = checked_ids(job_ids)
        tasks = [job_id for job_id in ids if "_" in job_id]
        if tasks:
            fallback(tasks)
        ps = import_pyslurm()
        errors = []
        for job_id in (job_id for job_id in ids if "_" not in job_id):
            try:
                action(ps.Job(int(job_id)))
            except ps.RPCError as error:
                errors.append(f"{job_id}: {error}")
        if errors:
            raise SchedulerError(f"pyslurm: {'; '.join(errors)}", HINT_IDS)

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel the jobs (SIGKILL RPC); finished or unknown jobs are no error."""
        self._each(job_ids, lambda job: job.cancel(), super().cancel)

    def release(self, job_ids: Sequence[str], nice: int | None = None) -> None:
        """Release held jobs; with a nice, one scontrol session releases and sets it."""
        if nice is not None:
            super().release(job_ids, nice)
            return
        self._each(job_ids, lambda job: job.release(), super().release)

    # hold and set_nice stay with SlurmCli (scontrol): pyslurm 22.5.3's Job.hold(mode="user")
    # writes through a NULL pointer and kills the interpreter (SIGSEGV), and Job.hold() makes
    # an admin hold that a normal user cannot release.

    def check(self) -> tuple[bool, str]:
        """Tell whether pyslurm imports, matches this Slurm, and the controller answers."""
        ok, why = pyslurm_status()
        if not ok:
            return False, f"pyslurm: {why}"
        try:
            import_pyslurm().Jobs.load()
        except Exception as error:  # noqa: BLE001 - any failure here means "not usable"
            return False, f"pyslurm: the controller does not answer: {error}"
        return True, f"pyslurm: {why}, controller answers"


def _select(records: Any, wanted: set[str]) -> dict[str, JobInfo]:
    """Keep the records (or array tasks) whose id or array id was asked for."""
    jobs: dict[str, JobInfo] = {}
    for job in records:
        for key in job_keys(job):
            if key in wanted or c.array_job_id(key) in wanted:
                jobs[key] = job_info(key, job)
    return jobs


def slurm_version() -> str | None:
    """Return the Slurm version of the local client tools (``22.05.8``), None without them."""
    from orion_cli.runner import run as run_command

    result = run_command(["sinfo", "--version"], timeout_s=10)
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", result.stdout) if result.ok else None
    return match.group(0) if match else None


def pyslurm_status() -> tuple[bool, str]:
    """Tell whether pyslurm can be used here, and why not (for ``orion doctor``)."""
    try:
        ps = import_pyslurm()
    except SchedulerError as error:
        return False, error.one_line()
    version = str(getattr(ps, "__version__", "?"))
    series = ".".join(version.split(".")[:2])
    slurm = slurm_version()
    if slurm is None:
        return False, f"pyslurm {version} imports, but no Slurm client tools were found"
    major, minor = slurm.split(".")[:2]
    if series != f"{int(major)}.{int(minor)}":
        return False, (
            f"pyslurm {version} is built for Slurm {series}, this is Slurm {slurm} "
            f"— build pyslurm v{int(major)}.{int(minor)}.x"
        )
    return True, f"pyslurm {version} matches Slurm {slurm}"
