"""Submit: validate everything, write the job rows, their inputs, then call the scheduler.

Order matters for crash safety: every check happens before any row exists (the engine
prepares each structure in a scratch directory); in the rows' transaction, a single job's
directory or an array's ``tasks.jsonl`` is written; the rows are committed before the
scheduler is called; a scheduler refusal leaves the jobs failed(submit_error) with SLURM's
message. A crash between commit and submission is recovered by the next poll.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.batch import (
    ARRAY_SCRIPT_NAME,
    SCRIPT_NAME,
    BatchSpec,
    array_name_prefix,
    render_array_script,
    render_script,
)
from orion_cli.config import Settings
from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown, SubmitRefused, UsageError
from orion_cli.identity import current_user
from orion_cli.limits import check_bound, check_text
from orion_cli.resources import Resources
from orion_cli.schedulers import SCHEDULER_NAMES, default_scheduler_name, scheduler_for
from orion_cli.schedulers.base import Scheduler, SubmitOptions
from orion_cli.services.group import check_role
from orion_cli.site import SiteSetup, site_setup
from orion_cli.states import FailureReason, JobStatus
from orion_cli.workroot import job_base

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.db.models import Job
    from orion_cli.services.dependencies import Links
    from orion_cli.services.staging import Staged
    from orion_cli.services.structure_from import Handoff


@dataclass
class SubmitRequest:
    structures: list[Path]
    engine: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    scheduler: str = ""
    #: resources given on the command line (orion_cli.resources field names; absent: not
    #: given); a named queue's values and the settings fill the rest
    resources: dict[str, Any] = field(default_factory=dict)
    queue: str = ""  # --queue: a [queues.NAME] table
    resolved: Resources = field(default_factory=Resources)  # set by _resolved
    max_retries: int | None = None
    retry_delay_s: int | None = None
    hold: bool = False
    tag: str = ""  # one tag (eos); ``tags`` holds several (submit --tag a --tag b)
    tags: tuple[str, ...] = ()
    throttle: int | None = None
    dry_run: bool = False
    allow_close_atoms: bool = False
    pack: str = ""  # --pack: "", "auto" or a count (services/packing.py)
    estimate_s: float | None = None  # --estimate: seconds per calculation, for --pack auto
    pack_size: int = 0  # resolved from pack: calculations per array task, 0 = not packed
    after: list[int] = field(default_factory=list)  # parents: start after they completed
    after_any: list[int] = field(default_factory=list)  # parents: start after they ended
    study_id: int | None = None
    on_scf_fail: list[str] = field(default_factory=list)  # --on-scf-fail key=value words
    scf_policy: dict[str, Any] | None = None  # resolved from on_scf_fail (services/scf_retry)
    structure_from: int | None = None  # start from this job's final structure (--from)
    #: one job per set on the one structure, each set's parameters over ``params`` (converge)
    param_sets: list[dict[str, Any]] = field(default_factory=list)
    #: with ``structure_from``: one job per lattice factor of the parent's final cell (eos)
    structure_scales: list[float] = field(default_factory=list)


@dataclass
class Submitted:
    ids: list[int]
    scheduler_job_ids: list[str]
    scripts: list[str]
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. which frame of an output was taken
    #: a dry run: the engine's input files of the first job (file name -> text)
    inputs: dict[str, str] = field(default_factory=dict)
    inputs_of: str = ""


#: request fields filled from settings when not given, with their flag; all are checked
_POLICY_FROM_SETTINGS = {"max_retries": "--retries", "retry_delay_s": "--retry-delay"}


def _resolved(request: SubmitRequest, settings: Settings) -> SubmitRequest:
    """Fill unset request fields from the queue and settings; check every value.

    A value given as a flag is named by its flag; one from a setting by its origin
    (``ORION_ACCOUNT``, the path of ``orion.toml``), so that the error says what to fix.
    """
    from orion_cli.services.queues import resolve_resources

    r = request
    r.scheduler = r.scheduler or settings.scheduler
    if r.scheduler == "auto":
        r.scheduler = default_scheduler_name()
    if r.scheduler not in SCHEDULER_NAMES:
        raise UsageError(
            f"unknown scheduler '{r.scheduler}'", f"use one of: {', '.join(SCHEDULER_NAMES)}"
        )
    r.resolved = resolve_resources(settings, r.queue, r.resources)
    for key in _POLICY_FROM_SETTINGS:
        if getattr(r, key) is None:
            setattr(r, key, getattr(settings, key))
            check_bound(key, getattr(r, key), settings.sources.get(key, "the defaults"))
        else:
            check_bound(key, getattr(r, key))
    if r.throttle is not None:
        check_bound("throttle", r.throttle)
    check_bound(
        "soft_margin_s",
        settings.soft_margin_s,
        settings.sources.get("soft_margin_s", "the settings"),
    )
    check_text(r.name, "--name")
    # several tags, in order, each once; an empty --tag "" means none, as it always did
    r.tags = tuple(dict.fromkeys(t for t in (r.tags or (r.tag,)) if t))
    r.tag = r.tags[0] if r.tags else ""
    for tag in r.tags:
        check_text(tag, "--tag")
    check_text(
        settings.work_root, "", settings.sources.get("work_root", ""), "work_root", max_chars=4096
    )
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


def _site(settings: Settings, engine: str, queue: str = "") -> SiteSetup:
    """The job's site set-up: global settings, the queue's, ``[engines.<engine>]`` (checked)."""
    from orion_cli.services.queues import queue_table

    setup = [*settings.setup, *queue_table(settings, queue).get("setup", [])]
    return site_setup(
        {"python": settings.python, "setup": setup, "env": settings.env},
        engine,
        settings.engine_settings(engine),
        sys.executable,
    )


def _batch_spec(
    job_id: int, name: str, workdir: Path, r: SubmitRequest, settings: Settings, instance: str = ""
) -> BatchSpec:
    site = _site(settings, r.engine, r.queue)
    return BatchSpec(
        instance=instance,
        setup_lines=site.lines,
        orion_id=job_id,
        name=name,
        workdir=workdir,
        python=site.python,
        resources=r.resolved,
        soft_margin_s=settings.soft_margin_s,
    )


ProgressFn = Callable[[str, int, int], None]


def submit(
    settings: Settings, request: SubmitRequest, progress: ProgressFn | None = None
) -> Submitted:
    """Validate and submit one job per structure frame; many go as job arrays.

    ``progress(stage, done, total)`` is called while preparing, for big batches. Structures
    are read and staged (see :mod:`orion_cli.services.staging`) while this process gets
    the scheduler and the database ready. ``structure_from`` starts the job from another
    job's final structure (:mod:`orion_cli.services.structure_from`).
    """
    if request.structure_from is None:
        return _submit(settings, request, progress, None)
    from orion_cli.services.structure_from import prepared_from

    with prepared_from(settings, request) as handoff:
        return _submit(settings, request, progress, handoff)


def _submit(
    settings: Settings, request: SubmitRequest, progress: ProgressFn | None, handoff: Handoff | None
) -> Submitted:
    from orion_cli.engines.passthrough import engine_params
    from orion_cli.engines.registry import engine_names, get_engine
    from orion_cli.services.dependencies import check_links
    from orion_cli.services.inputs import expand_inputs
    from orion_cli.services.physical import MIN_DISTANCE_A
    from orion_cli.services.scf_retry import checked_policy
    from orion_cli.services.staging import StageTask, staging

    report = progress or (lambda stage, done, total: None)
    r = _resolved(request, settings)
    links = check_links(settings, r.after, r.after_any, r.scheduler)
    engine = get_engine(r.engine)
    engine_settings = settings.engine_settings(r.engine)
    params = engine.check(engine_params(r.params, r.engine, engine_names()), engine_settings)
    sets = [
        engine.check(engine_params({**r.params, **one}, r.engine, engine_names()), engine_settings)
        for one in r.param_sets
    ]
    r.scf_policy = checked_policy(engine, params, r.on_scf_fail, engine_settings)
    _site(settings, r.engine, r.queue)  # a bad set-up line fails before any structure is read
    paths = expand_inputs(r.structures)

    task = StageTask(
        engine=r.engine,
        params=params,
        engine_settings=dict(engine_settings),
        launcher=engine_settings.get("launcher", settings.launcher),
        ntasks=r.resolved.ntasks,
        min_distance_a=None if r.allow_close_atoms else MIN_DISTANCE_A,
    )
    with staging(task, paths, report) as stager:
        scheduler = scheduler_for(settings, r.scheduler)
        _check_partition(scheduler, r.resolved.partition)
        chunk = scheduler.max_array_size() if len(paths) > 1 else 1
        if not r.dry_run:
            _prepare_database(settings)  # while the reader reads: imports, a server's connection
        staged = stager.collect()
    if sets:
        staged = _one_job_per_set(staged, sets, r.param_sets)
    for item in staged if handoff else ():  # the node takes the parent's final structure
        item.inputs.structure_from = handoff.result_path  # type: ignore[union-attr]
        item.source = f"from:{handoff.parent_id}"  # type: ignore[union-attr]
    if handoff and r.structure_scales:  # the node scales the parent's final cell
        for n, (item, scale) in enumerate(zip(staged, r.structure_scales, strict=True)):
            item.inputs.structure_scale = scale
            item.name = str(n)  # named NAME-0, NAME-1, ... below, as orion eos names points
    if len(staged) > 1 and chunk == 1:
        chunk = scheduler.max_array_size()  # one multi-frame file: many jobs after all
    if r.name:
        for item in staged:
            item.name = r.name if len(staged) == 1 else f"{r.name}-{item.name}"
    _check_array_size(settings, len(staged))
    r.pack_size = _pack_size(settings, r, len(staged))
    chunk *= max(r.pack_size, 1)  # max_array_size counts array tasks, not packed jobs
    notes = list(dict.fromkeys(item.note for item in staged if item.note))
    if r.dry_run:  # every check above ran, as for a real submit; nothing is written
        shown = _dry_run(settings, r, [item.name for item in staged], chunk)
        inputs = _engine_inputs(staged[0])
        return replace(shown, notes=notes, inputs=inputs, inputs_of=staged[0].name)
    _ready_database(settings)  # after every input was checked: a bad one leaves no file
    _check_active_limit(settings, len(staged))
    result = Submitted([], [], [], notes=notes)
    for start in range(0, len(staged), chunk):
        _submit_chunk(settings, r, params, staged[start : start + chunk], scheduler, result, links)
    return result


def _one_job_per_set(
    staged: list[Staged], sets: list[dict[str, Any]], given: list[dict[str, Any]]
) -> list[Staged]:
    """The one staged structure once per (checked) parameter set, named after what was given.

    Each set is prepared in a scratch directory, as staging did for the structure.
    """
    import io
    import tempfile

    from ase.io import read

    from orion_cli.engines.registry import get_engine

    if len(staged) != 1:
        raise UsageError(
            f"a parameter sweep takes one structure; this input holds {len(staged)}",
            "give a file with a single structure",
        )
    [item] = staged
    atoms = read(io.StringIO(item.inputs.structure), format="extxyz", index=0)
    assert not isinstance(atoms, list)
    engine = get_engine(item.inputs.engine)
    out = []
    with tempfile.TemporaryDirectory(prefix="orion-sweep-") as scratch:
        for params, one in zip(sets, given, strict=True):
            engine.prepare(atoms, params, Path(scratch), item.inputs.engine_settings)
            inputs = replace(item.inputs, params=params)
            out.append(replace(item, name=f"{item.name}-{set_label(one)}", inputs=inputs))
    return out


def set_label(params: dict[str, Any]) -> str:
    """A job-name suffix for a parameter set.

    >>> set_label({"ecutwfc_ry": 30}), set_label({"kpoints": [4, 4, 2]})
    ('ecutwfc_ry-30', 'kpoints-4x4x2')
    """
    return "-".join(
        f"{key}-" + ("x".join(map(str, value)) if isinstance(value, list) else str(value))
        for key, value in params.items()
    )


def _pack_size(settings: Settings, r: SubmitRequest, n_jobs: int) -> int:
    """Calculations per array task (``--pack``); 0 when not packed or only one job."""
    from orion_cli.engines.registry import get_engine
    from orion_cli.services.packing import resolve_pack

    res = r.resolved
    size = resolve_pack(
        r.pack,
        r.estimate_s,
        get_engine(r.engine),
        res.walltime_s,
        settings.soft_margin_s,
        res.nodes,
        res.ntasks,
        n_jobs,
    )
    return size if n_jobs > 1 else 0


def _check_array_size(settings: Settings, n_jobs: int) -> None:
    """Refuse a submit of more jobs than ``max_array_size`` before anything is written."""
    limit = settings.max_array_size
    if limit and n_jobs > limit:
        raise UsageError(
            f"this submit makes {n_jobs} jobs; max_array_size allows {limit} per submit",
            f"submit them in parts of at most {limit} (set in "
            f"{settings.sources.get('max_array_size', 'the configuration')})",
        )


def _check_active_limit(settings: Settings, n_jobs: int) -> None:
    """Refuse a submit that would take the user past ``max_active_jobs_per_user``."""
    from sqlmodel import col, func, select

    from orion_cli.db.models import Job
    from orion_cli.db.session import session_scope

    limit = settings.max_active_jobs_per_user
    if not limit:
        return
    active = [JobStatus.CREATED.value, JobStatus.QUEUED.value, JobStatus.RUNNING.value]
    with session_scope(settings.resolved_database_url) as session:
        count = session.exec(
            select(func.count())
            .select_from(Job)
            .where(col(Job.owner) == current_user())
            .where(col(Job.status).in_(active))
        ).one()
    if count + n_jobs > limit:
        raise UsageError(
            f"you have {count} active jobs; {n_jobs} more would pass "
            f"max_active_jobs_per_user={limit}",
            "wait for some to end (orion ls -s queued -s running) or submit fewer",
        )


def _prepare_database(settings: Settings) -> None:
    """Import the database layer and, for a server, connect and check its schema.

    A SQLite file is not touched here: it is created only once every input has passed.
    """
    import orion_cli.db.models  # noqa: F401
    from orion_cli.db.session import ready_engine

    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        ready_engine(url)


def _ready_database(settings: Settings) -> None:
    """Open the database (a new SQLite file gets the current schema) before any row."""
    from orion_cli.db.session import ready_engine

    ready_engine(settings.resolved_database_url)


def _dry_run(settings: Settings, r: SubmitRequest, names: list[str], chunk: int) -> Submitted:
    """Render the scripts a submit of the checked jobs ``names`` would write, and no more."""
    spec = _batch_spec(0, names[0], settings.work_root_path / "<id>", r, settings)
    if len(names) == 1:
        return Submitted([], [], [render_script(spec)])
    size = max(r.pack_size, 1)
    scripts = [
        render_array_script(
            spec,
            settings.work_root_path / "arrays" / "<id>",
            -(-min(chunk, len(names) - start) // size),
            0 if r.pack_size else None,
        )
        for start in range(0, len(names), chunk)
    ]
    return Submitted([], [], scripts)


def _engine_inputs(first: Staged, max_bytes: int = 64 * 1024) -> dict[str, str]:
    """The text files the engine writes for ``first`` (pw.in, in.lammps, INCAR...), made in a
    scratch directory exactly as the job will make them; binary or large files are left out.
    A structure handed over from a parent is not known yet: nothing is shown for it."""
    import tempfile

    from orion_cli.taskfile import prepare

    if first.inputs.structure_from:
        return {}
    with tempfile.TemporaryDirectory(prefix="orion-dry-run-") as scratch:
        prepare(Path(scratch), first.inputs)
        shown = {}
        for path in sorted(Path(scratch).rglob("*")):
            if not path.is_file() or path.is_symlink() or path.stat().st_size > max_bytes:
                continue
            try:
                shown[str(path.relative_to(scratch))] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
        return shown


def _submit_chunk(
    settings: Settings,
    r: SubmitRequest,
    params: dict[str, Any],
    chunk: list[Staged],
    scheduler: Scheduler,
    result: Submitted,
    links: Links,
) -> None:
    """Record the chunk's rows in one transaction, then submit it (one job or one array)."""
    from orion_cli.db.session import session_scope
    from orion_cli.services.dependencies import add_edges

    with session_scope(settings.resolved_database_url) as session:
        jobs, script = _record(session, settings, r, params, chunk)
        add_edges(session, jobs, links)
        session.commit()  # the rows exist before the scheduler hears of the jobs
        send(
            session,
            r,
            jobs,
            script,
            scheduler,
            SubmitOptions(hold=r.hold, after=links.after),
            result,
        )


def send(
    session: Session,
    r: SubmitRequest,
    jobs: list[Job],
    script: Path,
    scheduler: Scheduler,
    options: SubmitOptions,
    result: Submitted,
) -> None:
    """Submit recorded (committed) ``jobs``, one job or one array, and record the outcome."""
    try:
        if len(jobs) == 1:
            ids = [scheduler.submit(script, options)]
        else:
            size = max(r.pack_size, 1)  # packed: jobs i*size.. run in task i
            array_id = scheduler.submit_array(script, -(-len(jobs) // size), options, r.throttle)
            ids = [f"{array_id}_{(job.array_index or 0) // size}" for job in jobs]
    except SubmitOutcomeUnknown as exc:
        which = f"jobs {jobs[0].id}-{jobs[-1].id}" if len(jobs) > 1 else f"job {jobs[0].id}"
        result.errors.append(f"{which}: {exc.one_line()}")
        return  # left `created`: recovery adopts or submits them, never both
    except SchedulerError as exc:
        _refused(session, jobs, exc, result)
        return
    _queued(session, jobs, ids, r.scheduler)
    result.ids.extend(job.id or 0 for job in jobs)
    result.scheduler_job_ids.extend(ids)


def _record(
    session: Session,
    settings: Settings,
    r: SubmitRequest,
    params: dict[str, Any],
    chunk: list[Staged],
) -> tuple[list[Job], Path]:
    """Write the rows, move the staged directories into place, write the batch script."""
    from orion_cli.db.models import add_tags, insert_jobs
    from orion_cli.db.session import instance_id
    from orion_cli.taskfile import TASKS_FILE, materialize, task_line

    owner = current_user()
    check_role(session, owner)
    site = _site(settings, r.engine, r.queue).to_json()
    jobs = insert_jobs(
        session,
        [
            dict(
                name=item.name,
                owner=owner,
                engine=r.engine,
                parameters=item.inputs.params,  # the same for all but a workflow's sweep
                tag=r.tag,
                structure_source=item.source,
                formula=item.formula,
                input_structure=item.text,
                scheduler=r.scheduler,
                queue=r.queue,
                **r.resolved.row(),
                max_retries=r.max_retries or 0,
                retry_delay_s=r.retry_delay_s or 0,
                soft_margin_s=settings.soft_margin_s,
                held=r.hold,
                site=site,
                pack=r.pack_size if len(chunk) > 1 else 0,
                study_id=r.study_id,
                structure_from_id=r.structure_from,
                on_scf_fail=r.scf_policy,
            )
            for item in chunk
        ],
    )
    add_tags(session, jobs, r.tags)
    instance = instance_id(session)
    base = job_base(settings.work_root_path, instance, settings.job_dir_mode_bits)
    spec = _batch_spec(jobs[0].id or 0, jobs[0].name, base, r, settings, instance)
    for job in jobs:
        job.workdir = str(base / str(job.id))
    if len(jobs) == 1:  # made now, on the login node: its inputs can be looked at at once
        workdir = Path(jobs[0].workdir)
        if workdir.exists():  # left by a submit that died before its row was committed
            shutil.rmtree(workdir)
        materialize(workdir, chunk[0].inputs)
        os.chmod(workdir, settings.job_dir_mode_bits)
        script = workdir / SCRIPT_NAME
        script.write_text(render_script(replace(spec, workdir=workdir)))
        return jobs, script
    # an array: one tasks file; each task makes its own directory when it starts
    array_dir = base / "arrays" / str(jobs[0].id)
    array_dir.mkdir(parents=True, exist_ok=True)
    for index, job in enumerate(jobs):
        job.array_name = array_name_prefix(jobs[0].id or 0, instance)
        job.array_index = index
    (array_dir / TASKS_FILE).write_text(
        "".join(
            task_line(Path(job.workdir), item.inputs) for job, item in zip(jobs, chunk, strict=True)
        )
    )
    script = array_dir / ARRAY_SCRIPT_NAME
    n_tasks, packs_round = len(jobs), None
    if r.pack_size:
        from orion_cli.services.packing import write_packed

        n_tasks, packs_round = write_packed(array_dir, len(jobs), r.pack_size)[-1] + 1, 0
    script.write_text(
        render_array_script(replace(spec, name="array"), array_dir, n_tasks, packs_round)
    )
    return jobs, script


def _queued(
    session: Session, jobs: list[Job], scheduler_job_ids: list[str], scheduler_name: str
) -> None:
    from orion_cli.services.lifecycle import submitted

    submitted(
        session,
        jobs,
        scheduler_job_ids,
        source="submit",
        message=[f"{scheduler_name} job {sid}" for sid in scheduler_job_ids],
    )


def _refused(session: Session, jobs: list[Job], exc: SchedulerError, result: Submitted) -> None:
    """The scheduler said no: the jobs fail with submit_error, retried by policy unless the
    refusal is final (the request cannot be met on this cluster)."""
    from orion_cli.db.models import now_utc
    from orion_cli.services.lifecycle import transition_many
    from orion_cli.services.retry import schedule_retry

    now = now_utc()
    transition_many(
        session,
        jobs,
        JobStatus.FAILED,
        source="submit",
        at=now,
        reason=FailureReason.SUBMIT_ERROR,
        message=exc.one_line(),
    )
    final = isinstance(exc, SubmitRefused)
    retrying = schedule_retry(session, jobs, now, source="submit", final=final)[-1]
    first, last = jobs[0].id, jobs[-1].id
    which = f"job {first}" if len(jobs) == 1 else f"jobs {first}-{last}"
    if final:  # the hint already says it is not retried
        result.errors.append(f"{which}: {exc.one_line()}")
        return
    retry = (
        f"orion poll retries after {jobs[0].retry_delay_s} s"
        if retrying
        else "no retries configured"
    )
    result.errors.append(f"{which}: {exc.one_line()} ({retry}; `orion cancel` stops that)")
