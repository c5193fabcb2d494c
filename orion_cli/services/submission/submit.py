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
    soft_margin_for,
)
from orion_cli.config import Settings
from orion_cli.db.models import Job, add_tags, insert_jobs, now_utc
from orion_cli.db.roles import check_role
from orion_cli.db.session import instance_id, ready_engine, session_scope
from orion_cli.engines.registry import get_engine
from orion_cli.errors import SchedulerError, UsageError
from orion_cli.frozen import freeze, unkeyed
from orion_cli.identity import current_user
from orion_cli.resources import Resources
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.base import Scheduler, SubmitOptions, partition_names
from orion_cli.services.lifecycle import dispatch
from orion_cli.services.lifecycle.dependencies import add_edges, check_links
from orion_cli.services.lifecycle.reuse import find_source, take
from orion_cli.services.lifecycle.state import submitted
from orion_cli.services.submission.inputs import expand_inputs
from orion_cli.services.submission.packing import resolve_pack, spread_pack, write_packed
from orion_cli.services.submission.physical import MIN_DISTANCE_A
from orion_cli.services.submission.plan import (
    SubmitPlan,
    SubmitRequest,
    check_params,
    job_site,
    resolve_request,
)
from orion_cli.services.submission.staging import StageTask, staging
from orion_cli.services.submission.structure_from import prepared_from
from orion_cli.states import JobStatus
from orion_cli.taskfile import TASKS_FILE, materialize, prepare, task_line
from orion_cli.workroot import job_base

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.db.models import Job
    from orion_cli.services.lifecycle.dependencies import Links
    from orion_cli.services.submission.staging import Staged
    from orion_cli.services.submission.structure_from import Handoff


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
    #: what freezing the inputs said (pseudopotentials chosen, cutoff warnings), each once
    frozen_notes: list[str] = field(default_factory=list)
    #: the first job's frozen record (shown by --dry-run)
    frozen: dict[str, Any] = field(default_factory=dict)


def check_partition(scheduler: Scheduler, partition: str) -> None:
    if not partition:
        return
    known = scheduler.partitions()
    names = partition_names(known)
    if names and partition not in names:  # a backend without partitions ({}) takes any
        raise UsageError(
            f"partition '{partition}' does not exist on this cluster "
            f"(sinfo lists: {', '.join(names)})",
            "pick one of those with --partition or set partition in orion.toml",
        )


def _batch_spec(
    job_id: int, name: str, workdir: Path, plan: SubmitPlan, settings: Settings, instance: str = ""
) -> BatchSpec:
    site = job_site(settings, plan.request.engine, plan.request.queue)
    return BatchSpec(
        instance=instance,
        setup_lines=site.lines,
        orion_id=job_id,
        name=name,
        workdir=workdir,
        python=site.python,
        resources=plan.resources,
        soft_margin_s=settings.soft_margin_s,
    )


ProgressFn = Callable[[str, int, int], None]


def submit(
    settings: Settings, request: SubmitRequest, progress: ProgressFn | None = None
) -> Submitted:
    """Validate and submit one job per structure frame; many go as job arrays.

    ``progress(stage, done, total)`` is called while preparing, for big batches. Structures
    are read and staged (see :mod:`orion_cli.services.submission.staging`) while this process gets
    the scheduler and the database ready. ``structure_from`` starts the job from another
    job's final structure (:mod:`orion_cli.services.submission.structure_from`). ``request``
    is not changed: it is planned (:mod:`orion_cli.services.submission.plan`), and the plan
    travels down.
    """
    if request.structure_from is None:
        return _submit(settings, request, progress, None)

    with prepared_from(settings, request) as (handoff, from_parent):
        return _submit(settings, from_parent, progress, handoff)


def _submit(
    settings: Settings, request: SubmitRequest, progress: ProgressFn | None, handoff: Handoff | None
) -> Submitted:

    report = progress or (lambda stage, done, total: None)
    plan = resolve_request(request, settings)
    links = check_links(settings, request.after, request.after_any, plan.scheduler)
    plan = check_params(plan, settings)  # the parents first, as their errors always came
    engine_settings = settings.engine_settings(request.engine)
    paths = expand_inputs(request.structures)

    task = StageTask(
        engine=request.engine,
        params=plan.params,
        engine_settings=dict(engine_settings),
        launcher=engine_settings.get("launcher", settings.launcher),
        ntasks=plan.resources.ntasks,
        min_distance_a=None if request.allow_close_atoms else MIN_DISTANCE_A,
    )
    with staging(task, paths, report) as stager:
        scheduler = scheduler_for(settings, plan.scheduler)
        check_partition(scheduler, plan.resources.partition)
        chunk = scheduler.max_array_size() if len(paths) > 1 else 1
        if not request.dry_run:
            _prepare_database(settings)  # while the reader reads: imports, a server's connection
        staged = stager.collect()
    if plan.param_sets:
        sets = list(plan.param_sets)
        staged = _one_job_per_set(staged, sets, request.param_sets, dict(engine_settings))
    _from_parent(staged, plan, handoff)
    if len(staged) > 1 and chunk == 1:
        chunk = scheduler.max_array_size()  # one multi-frame file: many jobs after all
    if request.name:
        for item in staged:
            item.name = request.name if len(staged) == 1 else f"{request.name}-{item.name}"
    _check_array_size(settings, len(staged))
    plan = replace(plan, pack_size=_pack_size(settings, plan, scheduler, len(staged)))
    chunk *= max(plan.pack_size, 1)  # max_array_size counts array tasks, not packed jobs
    notes = list(dict.fromkeys(item.note for item in staged if item.note))
    notes += _short_walltime_note(settings.soft_margin_s, plan.resources.walltime_s)
    frozen_notes = _frozen_notes(staged, request.strict)
    if request.dry_run:  # every check above ran, as for a real submit; nothing is written
        shown = _dry_run(settings, plan, [item.name for item in staged], chunk)
        return _with_inputs(shown, staged[0], notes, frozen_notes)
    ready_database(settings)  # after every input was checked: a bad one leaves no file
    check_active_limit(settings, len(staged))
    result = Submitted([], [], [], notes=notes, frozen_notes=frozen_notes)
    reused: dict[int, int] = {}
    if plan.reuse != "off":
        staged, reused = _reuse_matches(settings, plan, staged, result, links)
    for start in range(0, len(staged), chunk):
        _submit_chunk(settings, plan, staged[start : start + chunk], scheduler, result, links)
    result.ids = in_staged_order(reused, result.ids, len(staged))
    return result


def in_staged_order(reused: dict[int, int], sent: list[int], n_left: int) -> list[int]:
    """The ids in the order of the structures (a study pairs ids with its points); when
    not every job left was accepted, the reused ones first.

    >>> in_staged_order({1: 7}, [8, 9], 2), in_staged_order({1: 7}, [8], 2)
    ([8, 7, 9], [7, 8])
    """
    if len(sent) != n_left:
        return [*reused.values(), *sent]
    rest = iter(sent)
    return [reused[n] if n in reused else next(rest) for n in range(len(reused) + n_left)]


def _short_walltime_note(margin_s: int, walltime_s: int) -> list[str]:
    """Say so when the soft stop's margin is scaled down for a short walltime."""
    scaled_s = soft_margin_for(margin_s, walltime_s)
    if scaled_s == margin_s or margin_s <= 0:
        return []
    when = f"{scaled_s} s before the limit" if scaled_s else "never (the walltime is too short)"
    return [
        f"the walltime ({walltime_s} s) is not longer than the soft-stop margin "
        f"(soft_margin_s = {margin_s} s): the clean-stop signal comes {when}"
    ]


def _from_parent(staged: list[Staged], plan: SubmitPlan, handoff: Handoff | None) -> None:
    """``--from``: the node takes (and, for EOS points, scales) the parent's final structure."""
    if handoff is None:
        return
    for item in staged:
        item.inputs.structure_from = handoff.result_path
        item.source = f"from:{handoff.parent_id}"
        # its structure is known only when it starts: no key, never reused
        item.inputs.frozen = unkeyed(item.inputs.frozen)
    scales = plan.request.structure_scales
    if scales:  # the node scales the parent's final cell
        for n, (item, scale) in enumerate(zip(staged, scales, strict=True)):
            item.inputs.structure_scale = scale
            item.name = str(n)  # named NAME-0, NAME-1, ... below, as orion eos names points


def _with_inputs(
    shown: Submitted, first: Staged, notes: list[str], frozen_notes: list[str]
) -> Submitted:
    """A dry run's answer: the scripts, and the first job's engine inputs and frozen record."""
    return replace(
        shown,
        notes=notes,
        frozen_notes=frozen_notes,
        inputs=_engine_inputs(first),
        inputs_of=first.name,
        frozen=first.inputs.frozen,
    )


def _reuse_matches(
    settings: Settings,
    plan: SubmitPlan,
    staged: list[Staged],
    result: Submitted,
    links: Links,
) -> tuple[list[Staged], dict[int, int]]:
    """Record the jobs ``--reuse`` serves from an identical one; return those left to submit
    and the reused jobs' ids by their place among ``staged``."""

    left = []
    reused = {}
    with session_scope(settings.resolved_database_url) as session:
        for n, item in enumerate(staged):
            source = find_source(session, item.inputs.frozen or {}, plan.reuse)
            if source is None:
                left.append(item)
                continue
            jobs, _ = record_jobs(session, settings, plan, [item])
            add_edges(session, jobs, links)
            session.commit()  # the row exists before its result or wait is recorded
            result.frozen_notes.append(take(session, jobs[0], source))
            session.commit()
            reused[n] = jobs[0].id or 0
    return left, reused


def _one_job_per_set(
    staged: list[Staged],
    sets: list[dict[str, Any]],
    given: list[dict[str, Any]],
    settings: dict[str, Any],
) -> list[Staged]:
    """The one staged structure once per (checked) parameter set, named after what was given.

    Each set is prepared in a scratch directory, as staging did for the structure.
    """
    import io
    import tempfile

    from ase.io import read

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
            frozen = freeze(engine, atoms, params, settings, Path(scratch))
            inputs = replace(
                item.inputs,
                params=frozen.params,
                engine_settings=frozen.settings,
                frozen=frozen.record(),
            )
            out.append(
                replace(
                    item,
                    name=f"{item.name}-{set_label(one)}",
                    inputs=inputs,
                    notes=frozen.notes,
                    warnings=frozen.warnings,
                )
            )
    return out


def _frozen_notes(staged: list[Staged], strict: bool) -> list[str]:
    """What freezing said (each line once): choices, then warnings; ``--strict`` refuses."""
    warnings = list(dict.fromkeys(w for item in staged for w in item.warnings))
    if strict and warnings:
        raise UsageError(
            f"{warnings[0]}" + (f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""),
            "raise the cutoff, or submit without --strict to run it anyway",
        )
    notes = list(dict.fromkeys(n for item in staged for n in item.notes))
    return notes + [f"warning: {w}" for w in warnings]


def set_label(params: dict[str, Any]) -> str:
    """A job-name suffix for a parameter set.

    >>> set_label({"ecutwfc_ry": 30}), set_label({"kpoints": [4, 4, 2]})
    ('ecutwfc_ry-30', 'kpoints-4x4x2')
    """
    return "-".join(
        f"{key}-" + ("x".join(map(str, value)) if isinstance(value, list) else str(value))
        for key, value in params.items()
    )


def _pack_size(settings: Settings, plan: SubmitPlan, scheduler: Any, n_jobs: int) -> int:
    """Calculations per array task (``--pack``); 0 when not packed or only one job."""
    r, res = plan.request, plan.resources
    pack = r.pack or ("auto" if r.pack_tasks else "")
    if r.pack_tasks and pack != "auto":
        raise UsageError(
            f"--pack {pack} and --pack-tasks {r.pack_tasks} both say how to split the jobs",
            "give one of them (--pack-tasks K packs into K tasks)",
        )
    size = resolve_pack(
        pack,
        r.estimate_s,
        get_engine(r.engine),
        res.walltime_s,
        settings.soft_margin_s,
        res.nodes,
        res.ntasks,
        n_jobs,
    )
    if size and n_jobs > 1 and pack == "auto":
        size = spread_pack(size, n_jobs, r.pack_tasks or _idle_slots(scheduler, res))
    return size if n_jobs > 1 else 0


def _idle_slots(scheduler: Any, res: Resources) -> int:
    """How many packed tasks the idle CPUs take now (1 when the scheduler cannot say)."""
    idle_cpus = getattr(scheduler, "idle_cpus", None)
    try:
        idle = int(idle_cpus(res.partition)) if idle_cpus is not None else 1
    except SchedulerError:
        idle = 1
    return max(1, idle // max(res.cpus_per_task * res.ntasks, 1))


def _check_array_size(settings: Settings, n_jobs: int) -> None:
    """Refuse a submit of more jobs than ``max_array_size`` before anything is written."""
    limit = settings.max_array_size
    if limit and n_jobs > limit:
        raise UsageError(
            f"this submit makes {n_jobs} jobs; max_array_size allows {limit} per submit",
            f"submit them in parts of at most {limit} (set in "
            f"{settings.sources.get('max_array_size', 'the configuration')})",
        )


def check_active_limit(settings: Settings, n_jobs: int) -> None:
    """Refuse a submit that would take the user past ``max_active_jobs_per_user``."""
    from sqlmodel import col, func, select

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

    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        ready_engine(url)


def ready_database(settings: Settings) -> None:
    """Open the database (a new SQLite file gets the current schema) before any row."""

    ready_engine(settings.resolved_database_url)


def _dry_run(settings: Settings, plan: SubmitPlan, names: list[str], chunk: int) -> Submitted:
    """Render the scripts a submit of the checked jobs ``names`` would write, and no more."""
    spec = _batch_spec(0, names[0], settings.work_root_path / "<id>", plan, settings)
    if len(names) == 1:
        return Submitted([], [], [render_script(spec)])
    size = max(plan.pack_size, 1)
    scripts = [
        render_array_script(
            spec,
            settings.work_root_path / "arrays" / "<id>",
            -(-min(chunk, len(names) - start) // size),
            0 if plan.pack_size else None,
        )
        for start in range(0, len(names), chunk)
    ]
    return Submitted([], [], scripts)


def _engine_inputs(first: Staged, max_bytes: int = 64 * 1024) -> dict[str, str]:
    """The text files the engine writes for ``first`` (pw.in, in.lammps, INCAR...), made in a
    scratch directory exactly as the job will make them; binary or large files are left out.
    A structure handed over from a parent is not known yet: nothing is shown for it."""
    import tempfile

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
    plan: SubmitPlan,
    chunk: list[Staged],
    scheduler: Scheduler,
    result: Submitted,
    links: Links,
) -> None:
    """Record the chunk's rows in one transaction, then submit it (one job or one array)."""

    with session_scope(settings.resolved_database_url) as session:
        jobs, script = record_jobs(session, settings, plan, chunk)
        add_edges(session, jobs, links)
        session.commit()  # the rows exist before the scheduler hears of the jobs
        send(
            session,
            plan,
            jobs,
            script,
            scheduler,
            SubmitOptions(hold=plan.request.hold, after=links.after),
            result,
        )


def send(
    session: Session,
    plan: SubmitPlan,
    jobs: list[Job],
    script: Path,
    scheduler: Scheduler,
    options: SubmitOptions,
    result: Submitted,
) -> None:
    """Submit recorded (committed) ``jobs``, one job or one array, and record the outcome."""
    size = max(plan.pack_size, 1)  # packed: jobs i*size.. run in task i
    n_tasks = -(-len(jobs) // size) if len(jobs) > 1 else 0
    attempt = dispatch.Attempt(script, options, n_tasks, plan.request.throttle)
    answer = dispatch.send(scheduler, attempt)
    if answer.unknown:  # left `created`: recovery adopts or submits them, never both
        result.errors.append(f"{dispatch.which_jobs(jobs)}: {answer.line()}")
    elif not answer.accepted:
        refused(session, jobs, answer, result)
    else:
        ids = (
            dispatch.task_ids(answer.scheduler_job_id, [(j.array_index or 0) // size for j in jobs])
            if n_tasks
            else [answer.scheduler_job_id]
        )
        queued(session, jobs, ids, plan.scheduler)
        result.ids.extend(job.id or 0 for job in jobs)
        result.scheduler_job_ids.extend(ids)


def _row(
    item: Staged, plan: SubmitPlan, owner: str, site: Any, size: int, settings: Settings
) -> dict[str, Any]:
    """One job row's values (the same for all of a chunk but the structure and inputs)."""
    r = plan.request
    return dict(
        name=item.name,
        owner=owner,
        engine=r.engine,
        parameters=item.inputs.params,  # the same for all but a workflow's sweep
        frozen=item.inputs.frozen or None,
        calc_key=(item.inputs.frozen or {}).get("key") or None,
        loose_key=(item.inputs.frozen or {}).get("loose_key") or None,
        tag=plan.tag,
        structure_source=item.source,
        formula=item.formula,
        input_structure=item.text,
        scheduler=plan.scheduler,
        queue=r.queue,
        **plan.resources.row(),
        max_retries=plan.max_retries or 0,
        retry_delay_s=plan.retry_delay_s or 0,
        soft_margin_s=settings.soft_margin_s,
        held=r.hold,
        site=site,
        pack=plan.pack_size if size > 1 else 0,
        study_id=plan.study_id,
        structure_from_id=plan.structure_from,
        on_scf_fail=plan.scf_policy,
    )


def record_jobs(
    session: Session,
    settings: Settings,
    plan: SubmitPlan,
    chunk: list[Staged],
) -> tuple[list[Job], Path]:
    """Write the rows, move the staged directories into place, write the batch script."""

    owner = current_user()
    check_role(session, owner)
    site = job_site(settings, plan.request.engine, plan.request.queue).to_json()
    rows = [_row(item, plan, owner, site, len(chunk), settings) for item in chunk]
    jobs = insert_jobs(session, rows)
    add_tags(session, jobs, plan.tags)
    instance = instance_id(session)
    base = job_base(settings.work_root_path, instance, settings.job_dir_mode_bits)
    spec = _batch_spec(jobs[0].id or 0, jobs[0].name, base, plan, settings, instance)
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
    if plan.pack_size:
        n_tasks, packs_round = write_packed(array_dir, len(jobs), plan.pack_size)[-1] + 1, 0
    script.write_text(
        render_array_script(replace(spec, name="array"), array_dir, n_tasks, packs_round)
    )
    return jobs, script


def queued(
    session: Session, jobs: list[Job], scheduler_job_ids: list[str], scheduler_name: str
) -> None:
    """Record a first submit the scheduler accepted."""
    submitted(
        session,
        jobs,
        scheduler_job_ids,
        source="submit",
        message=[f"{scheduler_name} job {sid}" for sid in scheduler_job_ids],
    )


def refused(session: Session, jobs: list[Job], answer: dispatch.Answer, result: Submitted) -> None:
    """The scheduler said no to a first submit: say whether and when it is retried."""
    retrying = dispatch.record_refused(session, jobs, answer, now_utc(), source="submit")
    which = dispatch.which_jobs(jobs)
    if answer.final:  # the hint already says it is not retried
        result.errors.append(f"{which}: {answer.line()}")
        return
    retry = (
        f"orion poll retries after {jobs[0].retry_delay_s} s"
        if retrying
        else "no retries configured"
    )
    result.errors.append(f"{which}: {answer.line()} ({retry}; `orion cancel` stops that)")
