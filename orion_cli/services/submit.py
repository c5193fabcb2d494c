"""Submit: validate everything, write the job row, prepare the job directory, call the scheduler.

Order matters for crash safety: all checks and the engine's input writing happen before
any row exists (inputs go to a staging directory); the row exists before the scheduler
is called; a scheduler refusal leaves the job failed(submit_error) with SLURM's message.
"""

from __future__ import annotations

import getpass
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion_cli.batch import SCRIPT_NAME, BatchSpec, render_script
from orion_cli.config import Settings
from orion_cli.errors import SchedulerError, UsageError
from orion_cli.jobdir import JOB_FILE, write_json_atomic
from orion_cli.schedulers import SCHEDULER_NAMES, default_scheduler_name, get_scheduler
from orion_cli.schedulers.base import Scheduler, SubmitOptions
from orion_cli.states import FailureReason, JobStatus

STRUCTURE_FILE = "structure.extxyz"


STRUCTURE_SUFFIXES = frozenset({".cif", ".xyz", ".extxyz", ".vasp", ".traj", ".json", ".pdb"})


def default_name(path: Path) -> str:
    """Name a job after its structure file, keeping names like ``POSCAR.Al`` whole.

    >>> default_name(Path("a/Si.cif")), default_name(Path("POSCAR.Al"))
    ('Si', 'POSCAR.Al')
    """
    return path.stem if path.suffix.lower() in STRUCTURE_SUFFIXES else path.name


@dataclass
class SubmitRequest:
    structures: list[Path]
    engine: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    scheduler: str = ""
    partition: str = ""
    walltime_s: int = 0
    nodes: int = 0
    ntasks: int = 0
    cpus_per_task: int = 0
    mem_mb: int = 0
    account: str = ""
    qos: str = ""
    priority: int | None = None
    max_retries: int | None = None
    retry_delay_s: int | None = None
    hold: bool = False
    dry_run: bool = False


@dataclass
class Submitted:
    ids: list[int]
    scheduler_job_ids: list[str]
    scripts: list[str]
    errors: list[str] = field(default_factory=list)


def _resolved(request: SubmitRequest, settings: Settings) -> SubmitRequest:
    """Fill unset request fields from settings and check ranges."""
    r = request
    r.scheduler = r.scheduler or settings.scheduler
    if r.scheduler == "auto":
        r.scheduler = default_scheduler_name()
    if r.scheduler not in SCHEDULER_NAMES:
        raise UsageError(f"unknown scheduler '{r.scheduler}'",
                         f"use one of: {', '.join(SCHEDULER_NAMES)}")
    r.partition = r.partition or settings.partition
    r.walltime_s = r.walltime_s or settings.walltime_s
    r.nodes = r.nodes or settings.nodes
    r.ntasks = r.ntasks or settings.ntasks
    r.cpus_per_task = r.cpus_per_task or settings.cpus_per_task
    r.mem_mb = r.mem_mb or settings.mem_mb
    r.account = r.account or settings.account
    r.qos = r.qos or settings.qos
    r.priority = settings.priority if r.priority is None else r.priority
    r.max_retries = settings.max_retries if r.max_retries is None else r.max_retries
    r.retry_delay_s = settings.retry_delay_s if r.retry_delay_s is None else r.retry_delay_s
    if r.max_retries < 0 or r.retry_delay_s < 0:
        raise UsageError("retries and retry delay cannot be negative", "use e.g. --retries 3")
    if not 0 <= r.priority <= 20:
        raise UsageError(f"priority {r.priority} is out of range", "use 0..20 (20 = most urgent)")
    for key in ("walltime_s", "nodes", "ntasks", "cpus_per_task"):
        if getattr(r, key) <= 0:
            raise UsageError(f"{key} must be positive, got {getattr(r, key)}")
    if not r.structures:
        raise UsageError("no structure given", "write e.g. orion submit Si.cif --engine qe")
    return r


def _check_partition(scheduler: Scheduler, partition: str) -> None:
    if not partition:
        return
    known = scheduler.partitions()
    if known and partition not in known:  # a backend without partitions ({}) takes any
        raise UsageError(
            f"partition '{partition}' does not exist on this cluster "
            f"(sinfo lists: {', '.join(sorted(known)) or 'none'})",
            "pick one of those with --partition or set partition in orion.toml",
        )


def _batch_spec(job_id: int, name: str, workdir: Path, r: SubmitRequest,
                settings: Settings, instance: str = "") -> BatchSpec:
    return BatchSpec(
        instance=instance,
        orion_id=job_id, name=name, workdir=workdir, python=sys.executable,
        walltime_s=r.walltime_s, partition=r.partition, nodes=r.nodes, ntasks=r.ntasks,
        cpus_per_task=r.cpus_per_task, mem_mb=r.mem_mb, account=r.account, qos=r.qos,
        priority=r.priority or 0, soft_margin_s=settings.soft_margin_s,
    )


def submit(settings: Settings, request: SubmitRequest) -> Submitted:
    """Validate and submit one job per structure; return their ids (or scripts for dry runs)."""
    from orion_cli.engines.registry import get_engine
    from orion_cli.services.structures import read_structure

    r = _resolved(request, settings)
    engine = get_engine(r.engine)
    engine_settings = settings.engine_settings(r.engine)
    params = engine.check(r.params, engine_settings)
    frames = [(path, read_structure(path)) for path in r.structures]
    scheduler = get_scheduler(r.scheduler, settings.home / "local-scheduler")
    _check_partition(scheduler, r.partition)

    if r.dry_run:
        scripts = []
        for path, _ in frames:
            name = r.name or default_name(path)
            spec = _batch_spec(0, name, settings.work_root_path / "<id>", r, settings)
            scripts.append(render_script(spec))
        return Submitted([], [], scripts)

    work_root = settings.work_root_path
    work_root.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Any, Path, dict[str, Any]]] = []
    try:
        for path, atoms in frames:
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=work_root))
            staged.append((path, atoms, staging, {}))
            atoms.write(staging / STRUCTURE_FILE, format="extxyz")
            run_spec = engine.prepare(atoms, params, staging, engine_settings)
            staged[-1][3]["run_spec"] = run_spec.to_json()
    except BaseException:
        for _, _, staging, _ in staged:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return _record_and_submit(settings, r, params, engine_settings, staged, scheduler)


def _record_and_submit(settings: Settings, r: SubmitRequest, params: dict[str, Any],
                       engine_settings: dict[str, Any],
                       staged: list[tuple[Path, Any, Path, dict[str, Any]]],
                       scheduler: Any) -> Submitted:
    from orion_cli.db.models import Job, now_utc
    from orion_cli.db.session import instance_id, session_scope
    from orion_cli.services.lifecycle import transition
    from orion_cli.services.retry import schedule_retry

    result = Submitted([], [], [])
    url = settings.resolved_database_url
    for path, atoms, staging, extra in staged:
        name = r.name or default_name(path)
        with session_scope(url) as session:
            job = Job(
                name=name, owner=getpass.getuser(), engine=r.engine, parameters=params,
                structure_source=str(path.resolve()), formula=atoms.get_chemical_formula(),
                input_structure=(staging / STRUCTURE_FILE).read_text(),
                scheduler=r.scheduler, partition=r.partition, account=r.account, qos=r.qos,
                priority=r.priority or 0, walltime_s=r.walltime_s, mem_mb=r.mem_mb,
                nodes=r.nodes, ntasks=r.ntasks, cpus_per_task=r.cpus_per_task,
                max_retries=r.max_retries or 0, retry_delay_s=r.retry_delay_s or 0,
                soft_margin_s=settings.soft_margin_s, held=r.hold,
            )
            session.add(job)
            session.flush()
            assert job.id is not None
            instance = instance_id(session)
            workdir = settings.work_root_path / instance / str(job.id)
            workdir.parent.mkdir(exist_ok=True)
            if workdir.exists():  # left by a submit that died before its row was committed
                shutil.rmtree(workdir)
            staging.rename(workdir)
            job.workdir = str(workdir)
            spec = _batch_spec(job.id, name, workdir, r, settings, instance)
            write_json_atomic(workdir / JOB_FILE, {
                "orion_id": job.id, "engine": r.engine, "params": params, "attempt": 1,
                "ntasks": r.ntasks,
                "launcher": engine_settings.get("launcher", settings.launcher), **extra,
            })
            (workdir / SCRIPT_NAME).write_text(render_script(spec))
        # the row is committed before the scheduler hears of the job
        with session_scope(url) as session:
            job = session.merge(job)
            try:
                scheduler_job_id = scheduler.submit(workdir / SCRIPT_NAME,
                                                    SubmitOptions(hold=r.hold))
            except SchedulerError as exc:
                now = now_utc()
                transition(session, job, JobStatus.FAILED, source="submit", at=now,
                           reason=FailureReason.SUBMIT_ERROR, message=exc.one_line())
                retry = (f"orion poll retries it after {job.retry_delay_s} s"
                         if schedule_retry(job, now) else "no retries configured")
                result.errors.append(f"job {job.id}: {exc.one_line()} ({retry}; "
                                     f"`orion cancel {job.id}` stops that)")
                continue
            job.scheduler_job_id = scheduler_job_id
            job.raw_state = "SUBMITTED"
            transition(session, job, JobStatus.QUEUED, source="submit",
                       message=f"{r.scheduler} job {scheduler_job_id}")
            result.ids.append(job.id or 0)
            result.scheduler_job_ids.append(scheduler_job_id)
    return result

