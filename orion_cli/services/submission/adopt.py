"""``orion adopt JOBID...``: record SLURM jobs submitted without orion, so that the poller
reconciles them from then on (status, exit code, lost-job detection, cancel, show).

Each id is checked on its own: a malformed id, a job SLURM does not know, another user's
job, an array, or a job orion already tracks is refused with one line and the others go on.
What SLURM reports (``scontrol show job``, else ``sacct``) is recorded as the job's
resources; the script SLURM kept, if any, is copied into the job directory. An adopted job
is not retried unless ``--retries`` says so (a retry resubmits that copy with the recorded
resources, as ``orion submit --script`` would).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orion_cli.batch import sbatch_options
from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt, add_tags, insert_jobs
from orion_cli.db.roles import check_role
from orion_cli.db.session import instance_id, ready_engine, session_scope
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.jobdir import SCRIPT_COPY
from orion_cli.queues import settings_layer
from orion_cli.resources import Resources, resolve
from orion_cli.runner import Runner, run
from orion_cli.sbatch_header import expand_output, parse_header
from orion_cli.schedulers import slurm_adopt as a
from orion_cli.schedulers.slurm_commands import JOB_ID
from orion_cli.services.lifecycle.state import transition_many
from orion_cli.states import JobStatus
from orion_cli.workroot import job_base

#: the resources a retry passes to sbatch with the kept script (time and memory: per attempt)
_RESENT = ("partition", "account", "qos", "nodes", "ntasks", "cpus_per_task")


@dataclass
class Adopted:
    ids: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def look_up(job_id: str, runner: Runner = run) -> tuple[a.ForeignJob, str]:
    """What SLURM says of ``job_id`` and the script it kept (""); UsageError if nothing."""
    if not JOB_ID.match(job_id) or "_" in job_id:
        raise UsageError(
            f"'{job_id}' is not a SLURM job id",
            "give plain job ids like 1234 (array tasks cannot be adopted yet)",
        )
    found = a.parse_scontrol_job(runner(a.scontrol_job_argv(job_id)).stdout)
    if found is None:
        result = runner(a.sacct_job_argv(job_id))
        found = a.parse_sacct_job(result.stdout, job_id) if result.ok else None
    if found is None:
        raise UsageError(
            f"SLURM knows no job {job_id}", "check the id with `sacct -j ID` or `squeue --me`"
        )
    script = ""
    if found.script_path or found.state in ("PENDING", "RUNNING"):
        kept = runner(a.batch_script_argv(job_id))
        script = kept.stdout if kept.ok else ""
    return found, script


def _refusal(session: Any, found: a.ForeignJob, me: str) -> str | None:
    """Why ``found`` cannot be adopted by ``me`` (None: it can)."""
    from sqlmodel import col, select

    sid = found.scheduler_job_id
    if found.user and found.user != me:
        return f"job {sid} belongs to {found.user}, not to you ({me})"
    if found.array:
        return f"job {sid} is a job array; arrays cannot be adopted yet"
    tracked = (
        session.exec(
            select(Job.id)
            .where(col(Job.scheduler) == "slurm")
            .where(col(Job.scheduler_job_id) == sid)
        ).first()
        or session.exec(
            select(JobAttempt.job_id).where(col(JobAttempt.scheduler_job_id) == sid)
        ).first()
    )
    if tracked is not None:
        return f"job {sid} is already tracked as orion job {tracked}"
    if found.name.startswith("orion-"):
        return f"job {sid} ({found.name}) was submitted by orion (another database?)"
    return None


def adopted_resources(settings: Settings, found: a.ForeignJob) -> Resources:
    """The resources of ``found``: SLURM's answer over orion's default walltime, checked."""
    return resolve(found.resources, settings_layer(settings, "walltime_s"))


def _row(
    settings: Settings,
    found: a.ForeignJob,
    resources: Resources,
    script: str,
    retries: int,
    tag: str,
) -> dict[str, Any]:
    """The job row of ``found``: its resources from SLURM's answer (``resources``)."""
    try:
        header = parse_header(script).options if script else {}
    except UsageError:
        header = {}  # SLURM ran it: orion records its resources from SLURM, not the lines
    # a retry resubmits the kept script with what SLURM granted, as sbatch options
    resent = resources.asked().only(*_RESENT)
    return dict(
        name=found.name or f"slurm-{found.scheduler_job_id}",
        owner=current_user(),
        engine="script",
        tag=tag,
        structure_source=found.script_path,
        scheduler="slurm",
        scheduler_job_id=found.scheduler_job_id,
        raw_state=found.state.split()[0],
        **{name: getattr(resources, name) for name in (*_RESENT, "walltime_s", "mem_mb")},
        max_retries=retries if script else 0,
        retry_delay_s=settings.retry_delay_s,
        soft_margin_s=0,
        script={
            "path": found.script_path,
            "args": [],
            "submit_dir": found.workdir,
            "header": header,
            "options": sbatch_options(resent),
            "own_time": None,
            "own_mem_mb": None,
            "own_output": True,
            "own_chdir": False,
            "export": header.get("export"),
            "adopted": True,
            "kept": bool(script),
            "stdout": found.stdout_path or str(_stdout(found, header.get("output"))),
        },
    )


def _stdout(found: a.ForeignJob, pattern: str | None) -> Path:
    """Where the job writes its output when SLURM did not say (sacct): the script's
    ``--output``, else SLURM's default ``slurm-%j.out``, in its working directory."""
    return expand_output(
        pattern or "slurm-%j.out",
        found.scheduler_job_id,
        found.name,
        found.user,
        Path(found.workdir or "."),
    )


def adopt(
    settings: Settings, job_ids: list[str], retries: int = 0, tag: str = "", runner: Runner = run
) -> Adopted:
    """Record each SLURM job of ``job_ids``; refusals go to ``errors``, one line each."""

    done = Adopted()
    ready_engine(settings.resolved_database_url)
    me = current_user()
    for job_id in dict.fromkeys(job_ids):
        try:
            found, script = look_up(job_id.strip(), runner)
            resources = adopted_resources(settings, found)
        except UsageError as exc:
            done.errors.append(exc.one_line())
            continue
        with session_scope(settings.resolved_database_url) as session:
            check_role(session, me)
            why = _refusal(session, found, me)
            if why:
                done.errors.append(f"{why} — nothing recorded")
                continue
            job = insert_jobs(session, [_row(settings, found, resources, script, retries, tag)])[0]
            add_tags(session, [job], (tag,))
            base = job_base(
                settings.work_root_path, instance_id(session), settings.job_dir_mode_bits
            )
            workdir = base / str(job.id)
            workdir.mkdir(parents=True, exist_ok=True)
            os.chmod(workdir, settings.job_dir_mode_bits)
            if script:
                (workdir / SCRIPT_COPY).write_text(script)
            job.workdir = str(workdir)
            transition_many(
                session,
                [job],
                JobStatus.QUEUED,
                source="adopt",
                message=f"adopted slurm job {found.scheduler_job_id} ({found.state.split()[0]})",
            )
            session.commit()
            done.ids.append(job.id or 0)
            kept = "script kept" if script else "SLURM kept no script"
            done.lines.append(
                f"{job.id}: slurm job {found.scheduler_job_id} '{job.name}' "
                f"({found.state.split()[0]}, {kept})"
            )
    return done
