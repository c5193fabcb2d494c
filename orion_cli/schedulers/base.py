"""What every scheduler backend offers orion, and what it reports about a job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from orion_cli.states import FailureReason, JobStatus


@dataclass(frozen=True)
class JobInfo:
    """One job as the scheduler sees it, already mapped onto orion's vocabulary.

    ``raw_state`` is the scheduler's own word (``"CANCELLED by 0"``, ``"OUT_OF_MEMORY"``),
    kept for ``orion show``; ``status``/``reason`` are what orion makes of it.
    """

    scheduler_job_id: str
    raw_state: str
    status: JobStatus
    reason: FailureReason | None = None
    exit_code: int | None = None
    signal: int | None = None
    pending_reason: str | None = None
    comment: str | None = None
    name: str | None = None


#: the key of :meth:`Scheduler.partitions` holding the default partition's limit
DEFAULT_PARTITION = "*"


def partition_names(limits: dict[str, int | None]) -> list[str]:
    """The partitions' names, without the default's key.

    >>> partition_names({"debug": 3600, "long": None, DEFAULT_PARTITION: 3600})
    ['debug', 'long']
    """
    return sorted(name for name in limits if name != DEFAULT_PARTITION)


@dataclass(frozen=True)
class JobTimes:
    """When the scheduler says a job was submitted, started and ended (UTC; None: not
    (yet) so). For jobs that write no times of their own (``--script``, adopted)."""

    submitted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class SubmitOptions:
    """Things decided at submit time that are not lines of the batch script."""

    hold: bool = False
    begin: datetime | None = None
    #: start only after these jobs: (kind, scheduler job id), kind ``afterok`` or ``afterany``
    after: tuple[tuple[str, str], ...] = ()
    #: the job's working directory: None = the script's directory, "" = leave it to the
    #: script's own ``#SBATCH --chdir`` (``orion submit --script``)
    chdir: str | None = None
    #: more sbatch options, ``--key=value``, after orion's own (they override the script's
    #: ``#SBATCH`` lines); the local backend honours job-name, output, error, export, chdir
    extra_args: tuple[str, ...] = ()
    #: arguments passed to the script itself (``sbatch script ARGS...``)
    script_args: tuple[str, ...] = ()


class Scheduler(Protocol):
    """A batch system: submit a script (or an array), ask about many jobs in one call, cancel,
    hold/release, reprioritise, and find jobs by name after a crash.

    Methods taking ``job_ids`` accept task ids (``123_4``) and array ids (``123``: every task).
    """

    name: str

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Submit ``script_path``; return the scheduler's job id. Raise SchedulerError."""
        ...

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Report every job of ``job_ids`` the scheduler still knows, in as few calls as it can.

        A job missing from the answer is unknown to the scheduler (not "done").
        Raise SchedulerError when the scheduler cannot be asked: the caller then changes nothing.
        """
        ...

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel the jobs; jobs already finished are not an error."""
        ...

    def check(self) -> tuple[bool, str]:
        """Tell whether the backend can be used here, with a one-line explanation (doctor)."""
        ...

    def submit_array(
        self,
        script_path: Path,
        n_tasks: int,
        options: SubmitOptions | None = None,
        throttle: int | None = None,
    ) -> str:
        """Submit ``script_path`` as tasks ``0..n_tasks-1`` (at most ``throttle`` running at once).

        Return the array's job id ``<id>``; its tasks are queried as ``<id>_<i>`` and see
        ``SLURM_ARRAY_JOB_ID`` and ``SLURM_ARRAY_TASK_ID``. Raise SchedulerError.
        """
        ...

    def max_array_size(self) -> int:
        """Return the most tasks :meth:`submit_array` accepts in one array."""
        ...

    def hold(self, job_ids: Sequence[str]) -> None:
        """Keep pending jobs from starting until :meth:`release`; running jobs are left alone.

        An unknown or finished job raises SchedulerError (the other jobs are still held).
        """
        ...

    def release(self, job_ids: Sequence[str], nice: int | None = None) -> None:
        """Let held jobs start, with ``nice`` when given (the priority set while they were
        held); jobs not held are left alone. Errors as for :meth:`hold`."""
        ...

    def set_nice(self, job_ids: Sequence[str], nice: int) -> None:
        """Set the jobs' nice value (higher = starts later among the user's jobs).

        Held jobs are left untouched (their nice is given to :meth:`release`): Slurm 22.05
        releases a held job whose nice changes. Errors as for :meth:`hold`.
        """
        ...

    def times(self, job_ids: Sequence[str]) -> dict[str, JobTimes]:
        """Map job id to when it really started and ended (UTC; None: not yet / not known).

        For jobs that write no times of their own (``--script``, adopted). A job the
        scheduler does not know is left out; an empty answer is never an error.
        """
        ...

    def set_partition(self, job_ids: Sequence[str], partition: str) -> None:
        """Move pending jobs to another partition, keeping their ids (``orion move``).

        A job that is no longer pending is refused (SchedulerError): nothing runs twice.
        """
        ...

    def set_dependency(self, job_ids: Sequence[str], after: Sequence[tuple[str, str]]) -> None:
        """Replace the dependencies of pending jobs by ``after`` (empty: none).

        Used when a parent is retried: its children now wait for the new attempt.
        Errors as for :meth:`hold`.
        """
        ...

    def find_by_name(self, names: Sequence[str]) -> dict[str, str]:
        """Map each entry of ``names`` to the id of the newest of the user's jobs it matches.

        An entry ending in ``-`` is a prefix (``orion-17-`` matches ``orion-17-relax`` but not
        ``orion-170-md``); any other entry must equal the job name. Keys are the entries as
        given, values job ids (an array's id, never one task's); names matching no job the
        scheduler still knows are left out. Newest = highest job id.
        """
        ...

    def partitions(self) -> dict[str, int | None]:
        """Map partition name to its maximum walltime in s (None: unlimited).

        The key :data:`DEFAULT_PARTITION` (``*``, as sinfo marks it), when present, holds the
        limit of the partition a job that names none runs in.

        Empty when the backend has no partitions (then any partition request is ignored).
        """
        ...
