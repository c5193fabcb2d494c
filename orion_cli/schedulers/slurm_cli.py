"""SLURM through its command-line tools: sbatch, squeue, sacct, scancel, scontrol, sinfo.

The commands are pure argv builders and parsers in :mod:`.slurm_commands`; :class:`SlurmCli`
only runs them through the injected :class:`~orion_cli.runner.Runner`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown, SubmitRefused
from orion_cli.runner import TIMEOUT_RC, CommandResult, Runner, run
from orion_cli.schedulers import slurm_commands as c
from orion_cli.schedulers.base import JobInfo, JobTimes, SubmitOptions, partition_names

log = logging.getLogger(__name__)

HINT_DOWN = "is slurmctld running? try `scontrol ping` (dev cluster: scripts/slurm-up.sh)"
HINT_DENIED = "SLURM lets you act only on your own jobs (`squeue -j ID -o %u` shows its owner)"


def _hint(result: CommandResult, hint: str) -> str:
    """SLURM's "Access/permission denied" is not an outage: say whose job it is to ask.

    >>> _hint(CommandResult(("scancel", "7"), 1, "", "error: Kill job error on job id 7: "
    ...     "Access/permission denied", 0.0), HINT_DOWN) == HINT_DENIED
    True
    """
    return HINT_DENIED if "permission denied" in result.stderr.lower() else hint


HINT_IDS = "check the ids with `squeue --me -t all`; finished jobs cannot be held or changed"


class SlurmCli:
    """The SLURM backend, driving sbatch/squeue/sacct/scancel/scontrol through ``runner``.

    ``find_window_s`` is how far back :meth:`find_by_name` asks sacct (default: 7 days).
    """

    name = "slurm"

    def __init__(self, runner: Runner = run, find_window_s: int = 7 * 24 * 3600) -> None:
        self.runner = runner
        self.find_window_s = find_window_s
        self._max_array_size: int | None = None
        self._partitions: dict[str, int | None] | None = None

    def _run(
        self, argv: Sequence[str], hint: str = HINT_DOWN, input_text: str | None = None
    ) -> CommandResult:
        """Run ``argv``; raise SchedulerError with SLURM's own words when it fails."""
        result = self.runner(argv, input_text=input_text)
        if result.returncode == TIMEOUT_RC and argv[0] == "sbatch":
            raise SubmitOutcomeUnknown(
                f"sbatch did not answer within its time limit ({c.error_summary(result)})",
                "`orion poll` will adopt the job if SLURM has it, or submit it if not",
            )
        if argv[0] == "sbatch" and c.is_final_refusal(result):
            raise SubmitRefused(
                f"sbatch refused the job: {c.error_summary(result)}",
                f"{hint}; not retried: the request cannot be met here",
            )
        if not result.ok:
            raise SchedulerError(
                f"{argv[0]} failed: {c.error_summary(result)}", _hint(result, hint)
            )
        return result

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Submit ``script_path`` with sbatch; return the job id."""
        hint = f"check the #SBATCH lines of {script_path} and `sinfo` for partitions and limits"
        result = self._run(c.sbatch_argv(script_path, options), hint)
        return c.parse_sbatch(result.stdout)

    def submit_array(
        self,
        script_path: Path,
        n_tasks: int,
        options: SubmitOptions | None = None,
        throttle: int | None = None,
    ) -> str:
        """Submit ``script_path`` as tasks ``0..n_tasks-1`` (``sbatch --array``); return its id."""
        hint = f"at most {self.max_array_size()} tasks per array here (MaxArraySize)"
        result = self._run(c.sbatch_array_argv(script_path, n_tasks, options, throttle), hint)
        return c.parse_sbatch(result.stdout)

    def max_array_size(self) -> int:
        """Return the most tasks one array may have (MaxArraySize), asked once per instance."""
        if self._max_array_size is None:
            config = c.parse_config(self._run(c.scontrol_config_argv()).stdout)
            self._max_array_size = int(config.get("MaxArraySize", "1001"))
        return self._max_array_size

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Ask squeue once for all ids, then sacct once for those squeue no longer knows.

        Array tasks are reported one by one (``123_4``); asking for ``123`` reports its tasks.
        sacct is asked about whole arrays, so its answer may be longer than the question.
        """
        ids = checked_ids(job_ids)
        if not ids:
            return {}
        jobs = self._squeue(ids)
        reported = set(jobs) | {c.array_job_id(job_id) for job_id in jobs}  # array parents
        missing = [job_id for job_id in ids if job_id not in reported]
        if missing:
            # a task that never started is known to sacct only inside its array's grouped
            # record (``-j 12_3`` finds nothing, ``-j 12`` lists ``12_[0-5]``): ask for arrays
            asked = set(missing)
            arrays = list(dict.fromkeys(c.array_job_id(job_id) for job_id in missing))
            for job_id, info in c.parse_sacct(self._sacct(c.sacct_argv(arrays))).items():
                if "[" not in job_id and (
                    job_id in asked or c.array_job_id(job_id) in asked or job_id in arrays
                ):
                    jobs.setdefault(job_id, info)
        c.settle_collapsed_arrays(ids, jobs)
        return c.only_asked(ids, jobs)

    def times(self, job_ids: Sequence[str]) -> dict[str, JobTimes]:
        """When the jobs really started and ended: squeue (the controller's record), then
        sacct for the jobs it has forgotten; a job neither knows is left out."""
        ids = checked_ids(job_ids)
        if not ids:
            return {}
        result = self.runner(c.squeue_times_argv(ids))
        found = c.parse_times(result.stdout) if result.ok else {}
        missing = [job_id for job_id in ids if job_id not in found]
        if missing:
            found.update(c.parse_times(self._sacct(c.sacct_times_argv(missing))))
        return {job_id: found[job_id] for job_id in ids if job_id in found}

    def _squeue(self, ids: Sequence[str]) -> dict[str, JobInfo]:
        """Ask squeue about ``ids`` (empty when it knows none of them)."""
        result = self.runner(c.squeue_argv(ids))
        if not result.ok and not c.is_unknown_job_error(result):
            raise SchedulerError(f"squeue failed: {c.error_summary(result)}", HINT_DOWN)
        return c.parse_squeue(result.stdout) if result.ok else {}

    def _sacct(self, argv: Sequence[str]) -> str:
        """Run sacct, return its output; empty where the cluster keeps no accounting."""
        result = self.runner(argv)
        if c.is_accounting_disabled(result):
            log.warning("sacct: no accounting on this cluster; finished jobs cannot be looked up")
            return ""
        if not result.ok:
            raise SchedulerError(
                f"sacct failed: {c.error_summary(result)}",
                "is slurmdbd running? try `sacctmgr show cluster` (dev: scripts/slurm-up.sh)",
            )
        return result.stdout

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel ``job_ids`` with one scancel call; finished or unknown jobs are no error."""
        ids = checked_ids(job_ids)
        if ids:
            self._run(c.scancel_argv(ids))

    def hold(self, job_ids: Sequence[str]) -> None:
        """Keep pending jobs from starting (``scontrol uhold``: the user may release them).

        Running jobs are left alone; an unknown or finished job raises SchedulerError with
        SLURM's message (the other ids of the call are still held).
        """
        ids = checked_ids(job_ids)
        if ids:
            self._run(c.scontrol_argv("uhold", ids), HINT_IDS)

    def release(self, job_ids: Sequence[str], nice: int | None = None) -> None:
        """Let held jobs start (``scontrol release``, then their Nice in the same session);
        errors as for :meth:`hold`."""
        ids = checked_ids(job_ids)
        if not ids:
            return
        if nice is None:
            self._run(c.scontrol_argv("release", ids), HINT_IDS)
        else:
            self._run(["scontrol"], HINT_IDS, input_text=c.release_input(ids, nice))

    def set_dependency(self, job_ids: Sequence[str], after: Sequence[tuple[str, str]]) -> None:
        """Replace the dependencies of pending jobs (``scontrol update Dependency=``).

        An array task's id stands for its whole array (every task has the same dependency).
        """
        ids = list(dict.fromkeys(c.array_job_id(job_id) for job_id in checked_ids(job_ids)))
        if ids:
            self._run(c.set_dependency_argv(ids, after), HINT_IDS)

    def set_partition(self, job_ids: Sequence[str], partition: str) -> None:
        """Move pending jobs to ``partition`` (``scontrol update``); the job keeps its id and
        its place in the user's history. A job that started meanwhile is refused by SLURM
        ("Job is no longer pending execution"): nothing runs twice."""
        ids = checked_ids(job_ids)
        if ids:
            self._run(c.set_partition_argv(ids, partition), HINT_IDS)

    def set_nice(self, job_ids: Sequence[str], nice: int) -> None:
        """Set the Nice of the jobs that are not held (one squeue call finds the held ones).

        Slurm 22.05 releases a held job whose Nice changes, and a re-hold in the same
        scontrol session came too late once (the job had run): held jobs are left alone and
        get their Nice from :meth:`release`. Negative values need an operator.
        """
        ids = checked_ids(job_ids)
        if not ids:
            return
        held = {  # a task's id and its array's: an array with a held task stays untouched
            name
            for job_id, info in self._squeue(ids).items()
            if info.pending_reason in c.HELD_REASONS
            for name in (job_id, c.array_job_id(job_id))
        }
        free = [job_id for job_id in ids if job_id not in held]
        if free:
            self._run(c.set_nice_argv(free, nice), HINT_IDS)

    def find_by_name(self, names: Sequence[str]) -> dict[str, str]:
        """Map each name (or ``orion-<id>-`` prefix) to the newest of the user's jobs with it.

        squeue (all states) is asked first; sacct (last ``find_window_s``) only for names
        squeue does not know. See :func:`.slurm_commands.match_names` for the matching rules.
        The value is the job id; for an array, the array job id (``123``, not ``123_4``).
        """
        wanted = list(dict.fromkeys(names))
        if not wanted:
            return {}
        records = c.parse_name_records(self._run(c.squeue_names_argv()).stdout)
        found = c.match_names(records, wanted)
        missing = [name for name in wanted if name not in found]
        if missing:
            records = c.parse_name_records(self._sacct(c.sacct_names_argv(self.find_window_s)))
            found.update(c.match_names(records, missing))
        return {name: found[name] for name in wanted if name in found}

    def partitions(self) -> dict[str, int | None]:
        """List partitions with their maximum walltime in seconds (None: unlimited).

        Asked once per instance (one poll, one command): 1,000 timed-out jobs cost one sinfo.
        """
        if self._partitions is None:
            self._partitions = c.parse_partitions(self._run(c.sinfo_partitions_argv()).stdout)
        return dict(self._partitions)

    def idle_cpus(self, partition: str = "") -> int:
        """CPUs idle now on the partition's nodes (``--pack auto`` spreads over them)."""
        return c.parse_idle_cpus(self._run(c.sinfo_idle_cpus_argv(partition)).stdout)

    def check(self) -> tuple[bool, str]:
        """Tell whether sbatch exists and the controller answers, in one line."""
        if shutil.which("sbatch") is None:
            return False, "slurm: sbatch is not on PATH"
        try:
            names = partition_names(self.partitions())
        except SchedulerError as error:
            return False, f"slurm: {error.one_line()}"
        return True, f"slurm: controller answers, partitions: {', '.join(names) or 'none'}"


def checked_ids(job_ids: Sequence[str]) -> list[str]:
    """Return the ids in order without duplicates; raise SchedulerError on a malformed one."""
    ids = list(dict.fromkeys(str(job_id).strip() for job_id in job_ids))
    bad = [job_id for job_id in ids if not c.JOB_ID.match(job_id)]
    if bad:
        raise SchedulerError(
            f"not a SLURM job id: {bad[0]!r}", "SLURM job ids look like 123 or 123_4"
        )
    return ids
