"""A deterministic scheduler for tests (``scheduler = "test"``), after MyQueue's test scheduler.

Nothing runs by itself: a test says what the scheduler does, and when. Jobs are kept in
memory, one :class:`ScriptedScheduler` per state directory, so that every
:func:`~orion_cli.schedulers.scheduler_for` call of one test process (submit, poll, retry)
sees the same jobs. States are SLURM's own words, mapped as the SLURM backends map them:

- :meth:`ScriptedScheduler.kick` runs a job's runner (``orion_cli.jobrun``, as its batch
  script says) in this process, then ends it COMPLETED or FAILED by its exit code;
- :meth:`ScriptedScheduler.start` and :meth:`ScriptedScheduler.end` set RUNNING or any final
  state (``TIMEOUT``, ``NODE_FAIL``, ``OUT_OF_MEMORY``, ``CANCELLED by 0``...) without
  running anything; :meth:`ScriptedScheduler.forget` drops a job from both squeue and sacct;
- :meth:`ScriptedScheduler.answer_next` scripts the next submissions' answers: refused
  (:class:`~orion_cli.errors.SchedulerError`), refused for good
  (:class:`~orion_cli.errors.SubmitRefused`), or the outcome unknown
  (:class:`~orion_cli.errors.SubmitOutcomeUnknown`, the job created or not);
- ``clock``: the injected time; a job submitted with ``--begin`` cannot be kicked before it.

With ``auto`` set (``ORION_TEST_SCHEDULER=auto``), every query first kicks each job that may
start (not held, its ``--begin`` passed, its parents done as ``afterok``/``afterany`` ask), in
submission order, until none is left: a cluster with free nodes, run in this process. A job
whose ``afterok`` parent did not complete stays pending with SLURM's reason
``DependencyNeverSatisfied``. Tests of whole studies use it instead of the local scheduler's
processes (each ~0.7 s of imports).

Enabled only where ``ORION_TEST_SCHEDULER`` is ``1`` or ``auto`` (tests); users never see it.
"""

from __future__ import annotations

import os
import shlex
import signal
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orion_cli import jobrun
from orion_cli.errors import SchedulerError
from orion_cli.schedulers import test_scheduler_auto, test_scheduler_enabled
from orion_cli.schedulers.base import JobInfo, JobTimes, SubmitOptions
from orion_cli.schedulers.slurm_commands import make_job_info, match_names
from orion_cli.schedulers.slurm_states import map_state

NAME = "test"


@dataclass
class ScriptedJob:
    """One job (or one array task) as the scripted scheduler holds it."""

    job_id: str
    script: Path
    options: SubmitOptions
    name: str
    state: str = "PENDING"
    task: int | None = None
    exit_code: int = 0
    held: bool = False
    nice: int = 0
    after: tuple[tuple[str, str], ...] = ()
    partition: str = ""  # set by `orion move` (the submit's own is in options)
    #: when :meth:`ScriptedScheduler.kick` started and ended it (the scheduler's clock)
    ran: tuple[datetime, datetime] | None = None


@dataclass
class Scripted:
    """A scripted answer to a submission: raise ``error``; ``created``: the job exists anyway."""

    error: SchedulerError
    created: bool = False


@dataclass
class ScriptedScheduler:
    """The test scheduler; see the module's documentation."""

    name: str = NAME
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    partition_limits: dict[str, int | None] = field(default_factory=dict)
    jobs: dict[str, ScriptedJob] = field(default_factory=dict)
    answers: list[Scripted] = field(default_factory=list)
    #: how often each method was called (a test of "one sinfo per poll")
    calls: Counter[str] = field(default_factory=Counter)
    next_id: int = 100
    #: run every job that may start at each query (see the module's documentation)
    auto: bool = False

    # ---- what a test scripts ------------------------------------------------------------

    def answer_next(self, *answers: Scripted) -> None:
        """The next submissions get these answers, in order (then they are accepted)."""
        self.answers.extend(answers)

    def start(self, job_id: str) -> None:
        self._job(job_id).state = "RUNNING"

    def end(self, job_id: str, state: str, exit_code: int = 0) -> None:
        """End a job (or every task of an array) in ``state`` without running it."""
        for job in self._each(job_id):
            job.state, job.exit_code = state, exit_code

    def forget(self, job_id: str) -> None:
        """Drop a job from squeue and sacct alike (purged records, a lost job)."""
        for job in self._each(job_id):
            del self.jobs[job.job_id]

    def kick(self, job_id: str) -> int:
        """Run the job's runner in this process, as its batch script would; return its code."""
        job = self._job(job_id)
        begin = job.options.begin
        if job.held or job.state != "PENDING" or (begin is not None and begin > self.clock()):
            raise SchedulerError(f"test job {job_id} cannot start now ({job.state})")
        job.state, started = "RUNNING", self.clock()
        code = _run_in_process(job)
        job.exit_code, job.ran = code, (started, self.clock())
        job.state = "COMPLETED" if code == 0 else "FAILED"
        return code

    def pending(self) -> list[str]:
        """Ids of the jobs (tasks) waiting to start, oldest first."""
        return [job.job_id for job in self.jobs.values() if job.state == "PENDING"]

    # ---- the Scheduler protocol -----------------------------------------------------------

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        self.calls["submit"] += 1
        return self._accept(script_path, options or SubmitOptions(), None)

    def submit_array(
        self,
        script_path: Path,
        n_tasks: int,
        options: SubmitOptions | None = None,
        throttle: int | None = None,
    ) -> str:
        self.calls["submit_array"] += 1
        return self._accept(script_path, options or SubmitOptions(), n_tasks)

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        self.calls["query"] += 1
        if self.auto:
            self.run_startable()
        found: dict[str, JobInfo] = {}
        for wanted in job_ids:
            for job in self._each(wanted, missing_ok=True):
                exit_signal = (job.exit_code, 0)
                reason = self._waiting_for(job) or ""
                found[job.job_id] = make_job_info(
                    job.job_id, job.state, reason, job.name, exit_signal
                )
        return found

    def run_startable(self) -> list[str]:
        """Kick every job that may start, in submission order, until none is left."""
        ran: list[str] = []
        while True:
            ready = [
                job.job_id
                for job in self.jobs.values()
                if job.state == "PENDING"
                and not job.held
                and self._waiting_for(job) is None
                and (job.options.begin is None or job.options.begin <= self.clock())
            ]
            if not ready:
                return ran
            for job_id in ready:
                self.kick(job_id)
            ran += ready

    def cancel(self, job_ids: Sequence[str]) -> None:
        self.calls["cancel"] += 1
        for wanted in job_ids:
            for job in self._each(wanted, missing_ok=True):
                if not map_state(job.state)[0].is_final:
                    job.state = "CANCELLED by 0"

    def check(self) -> tuple[bool, str]:
        return True, "the deterministic test scheduler"

    def max_array_size(self) -> int:
        return 1000

    def hold(self, job_ids: Sequence[str]) -> None:
        self._set(job_ids, held=True)

    def release(self, job_ids: Sequence[str], nice: int | None = None) -> None:
        self._set(job_ids, held=False, **({} if nice is None else {"nice": nice}))

    def set_nice(self, job_ids: Sequence[str], nice: int) -> None:
        """As Slurm through orion: a held job's nice waits for its release."""
        free = [w for w in job_ids if not any(j.held for j in self._each(w, missing_ok=True))]
        if free:
            self._set(free, nice=nice)

    def set_dependency(self, job_ids: Sequence[str], after: Sequence[tuple[str, str]]) -> None:
        self._set(job_ids, after=tuple(after))

    def set_partition(self, job_ids: Sequence[str], partition: str) -> None:
        """As ``scontrol update``: a job that is no longer pending is refused."""
        started = [j.job_id for w in job_ids for j in self._each(w) if j.state != "PENDING"]
        if started:
            raise SchedulerError(f"job {started[0]} is no longer pending: not moved")
        self._set(job_ids, partition=partition)

    def times(self, job_ids: Sequence[str]) -> dict[str, JobTimes]:
        """No start/end record beyond what the jobs write (as the local backend)."""
        return {}

    def find_by_name(self, names: Sequence[str]) -> dict[str, str]:
        self.calls["find_by_name"] += 1
        records = [(job.job_id.split("_")[0].lstrip("T"), job.name) for job in self.jobs.values()]
        return {key: f"T{value}" for key, value in match_names(records, names).items()}

    def partitions(self) -> dict[str, int | None]:
        self.calls["partitions"] += 1
        return dict(self.partition_limits)

    # ---- inside ---------------------------------------------------------------------------

    def _accept(self, script: Path, options: SubmitOptions, n_tasks: int | None) -> str:
        scripted = self.answers.pop(0) if self.answers else None
        if scripted is not None and not scripted.created:
            raise scripted.error
        self.next_id += 1
        job_id = f"T{self.next_id}"
        name = _job_name(script, options)
        tasks = [None] if n_tasks is None else list(range(n_tasks))
        for task in tasks:
            tid = job_id if task is None else f"{job_id}_{task}"
            self.jobs[tid] = ScriptedJob(
                tid, script, options, name, task=task, held=options.hold, after=tuple(options.after)
            )
        if scripted is not None:
            raise scripted.error  # created, yet sbatch's answer was lost
        return job_id

    def _waiting_for(self, job: ScriptedJob) -> str | None:
        """SLURM's pending reason of a job whose parents are not done (None: free to start)."""
        if job.state != "PENDING":
            return None
        reason = None
        for kind, parent in job.after:
            states = [p.state for p in self._each(parent, missing_ok=True)]
            if not all(map_state(state)[0].is_final for state in states):
                reason = "Dependency"
            elif kind == "afterok" and any(state != "COMPLETED" for state in states):
                return "DependencyNeverSatisfied"
        return reason

    def _job(self, job_id: str) -> ScriptedJob:
        if job_id not in self.jobs:
            raise SchedulerError(f"unknown test job {job_id}")
        return self.jobs[job_id]

    def _each(self, job_id: str, missing_ok: bool = False) -> list[ScriptedJob]:
        if job_id in self.jobs:
            return [self.jobs[job_id]]
        tasks = [job for key, job in self.jobs.items() if key.startswith(f"{job_id}_")]
        if not tasks and not missing_ok:
            raise SchedulerError(f"unknown test job {job_id}")
        return tasks

    def _set(self, job_ids: Sequence[str], **values: object) -> None:
        self.calls["scontrol"] += 1
        for wanted in job_ids:
            for job in self._each(wanted):
                for key, value in values.items():
                    setattr(job, key, value)


def _job_name(script: Path, options: SubmitOptions) -> str:
    for arg in options.extra_args:
        if arg.startswith("--job-name="):
            return arg.split("=", 1)[1]
    for line in script.read_text().splitlines():
        if line.startswith("#SBATCH --job-name="):
            return line.split("=", 1)[1].strip()
    return script.name


def _runner_args(job: ScriptedJob) -> list[str]:
    """The arguments the batch script passes to ``python -m orion_cli.jobrun``."""
    for line in job.script.read_text().splitlines():
        words = shlex.split(line.replace('"$SLURM_ARRAY_TASK_ID"', str(job.task)))
        if "orion_cli.jobrun" in words:
            return words[words.index("orion_cli.jobrun") + 1 :]
    raise SchedulerError(f"{job.script} does not run orion_cli.jobrun")


def _exports(script: Path) -> dict[str, str]:
    """The variables the batch script exports (``export NAME=value`` lines)."""
    found = {}
    for line in script.read_text().splitlines():
        if line.startswith("export ") and "=" in line and "$" not in line:
            name, _, value = shlex.split(line[len("export ") :])[0].partition("=")
            found[name] = value
    return found


def _run_in_process(job: ScriptedJob) -> int:
    """Run the job's runner here, restoring the directory, signal handler and environment."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    saved_handler = signal.getsignal(signal.SIGUSR1)
    os.environ.update(_exports(job.script), SLURM_JOB_ID=job.job_id)
    if job.task is not None:
        os.environ.update(
            SLURM_ARRAY_JOB_ID=job.job_id.split("_")[0], SLURM_ARRAY_TASK_ID=str(job.task)
        )
    try:
        return jobrun.main(_runner_args(job))
    finally:
        os.chdir(saved_cwd)
        signal.signal(signal.SIGUSR1, saved_handler)
        os.environ.clear()
        os.environ.update(saved_env)


_INSTANCES: dict[Path, ScriptedScheduler] = {}


def scripted_scheduler(state_dir: Path) -> ScriptedScheduler:
    """The one test scheduler of ``state_dir`` (made on first use)."""
    if not test_scheduler_enabled():
        raise SchedulerError(
            f"scheduler '{NAME}' is for orion's own tests", "use --scheduler slurm or local"
        )
    scheduler = _INSTANCES.setdefault(Path(state_dir).resolve(), ScriptedScheduler())
    scheduler.auto = scheduler.auto or test_scheduler_auto()
    return scheduler
