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
    soft_margin_for,
)
from orion_cli.config import Settings
from orion_cli.db.models import Job, add_tags, insert_jobs, now_utc
from orion_cli.db.roles import check_role
from orion_cli.db.session import instance_id, ready_engine, session_scope
from orion_cli.engines.passthrough import engine_params
from orion_cli.engines.registry import engine_names, get_engine
from orion_cli.errors import SchedulerError, UsageError
from orion_cli.frozen import freeze, unkeyed
from orion_cli.identity import current_user
from orion_cli.limits import check_bound, check_text
from orion_cli.queues import queue_table, resolve_resources
from orion_cli.resources import Resources
from orion_cli.reuse_mode import check_mode
from orion_cli.schedulers import (
    SCHEDULER_NAMES,
    default_scheduler_name,
    known_scheduler,
    scheduler_for,
)
from orion_cli.schedulers.base import Scheduler, SubmitOptions, partition_names
from orion_cli.services.lifecycle import dispatch
from orion_cli.services.lifecycle.dependencies import add_edges, check_links
from orion_cli.services.lifecycle.reuse import find_source, take
from orion_cli.services.lifecycle.scf_retry import checked_policy
from orion_cli.services.lifecycle.state import submitted
from orion_cli.services.submission.inputs import expand_inputs
from orion_cli.services.submission.packing import resolve_pack, spread_pack, write_packed
from orion_cli.services.submission.physical import MIN_DISTANCE_A
from orion_cli.services.submission.staging import StageTask, staging
from orion_cli.services.submission.structure_from import prepared_from
from orion_cli.site import SiteSetup, site_setup
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
    resolved: Resources = field(default_factory=Resources)  # set by resolve_request
    max_retries: int | None = None
    retry_delay_s: int | None = None
    hold: bool = False
    tag: str = ""  # one tag (eos); ``tags`` holds several (submit --tag a --tag b)
    tags: tuple[str, ...] = ()
    throttle: int | None = None
    dry_run: bool = False
    allow_close_atoms: bool = False
    pack: str = ""  # --pack: "", "auto" or a count (services/submission/packing.py)
    estimate_s: float | None = None  # --estimate: seconds per calculation, for --pack auto
    pack_size: int = 0  # resolved from pack: calculations per array task, 0 = not packed
    pack_tasks: int | None = None  # --pack-tasks: spread the pack over this many tasks
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
    #: --strict: a cutoff below the pseudopotentials' suggestion is an error, not a warning
    strict: bool = False
    #: --reuse: off, strict or loose ("" = the setting); services/lifecycle/reuse.py
    reuse: str = ""


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


#: request fields filled from settings when not given, with their flag; all are checked
_POLICY_FROM_SETTINGS = {"max_retries": "--retries", "retry_delay_s": "--retry-delay"}


def resolve_request(request: SubmitRequest, settings: Settings) -> SubmitRequest:
    """Fill unset request fields from the queue and settings; check every value.

    A value given as a flag is named by its flag; one from a setting by its origin
    (``ORION_ACCOUNT``, the path of ``orion.toml``), so that the error says what to fix.
    """

    r = request
    r.scheduler = r.scheduler or settings.scheduler
    if r.scheduler == "auto":
        r.scheduler = default_scheduler_name()
    if not known_scheduler(r.scheduler):
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

    r.reuse = check_mode(
        r.reuse or settings.reuse, "--reuse" if r.reuse else settings.sources.get("reuse", "reuse")
    )
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


def job_site(settings: Settings, engine: str, queue: str = "") -> SiteSetup:
    """The job's site set-up: global settings, the queue's, ``[engines.<engine>]`` (checked)."""

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
    site = job_site(settings, r.engine, r.queue)
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
    are read and staged (see :mod:`orion_cli.services.submission.staging`) while this process gets
    the scheduler and the database ready. ``structure_from`` starts the job from another
    job's final structure (:mod:`orion_cli.services.submission.structure_from`).
    """
    if request.structure_from is None:
        return _submit(settings, request, progress, None)

    with prepared_from(settings, request) as handoff:
        return _submit(settings, request, progress, handoff)


def _submit(
    settings: Settings, request: SubmitRequest, progress: ProgressFn | None, handoff: Handoff | None
) -> Submitted:

    report = progress or (lambda stage, done, total: None)
    r = resolve_request(request, settings)
    links = check_links(settings, r.after, r.after_any, r.scheduler)
    engine = get_engine(r.engine)
    engine_settings = settings.engine_settings(r.engine)
    params = engine.check(engine_params(r.params, r.engine, engine_names()), engine_settings)
    sets = [
        engine.check(engine_params({**r.params, **one}, r.engine, engine_names()), engine_settings)
        for one in r.param_sets
    ]
    r.scf_policy = checked_policy(engine, params, r.on_scf_fail, engine_settings)
    job_site(settings, r.engine, r.queue)  # a bad set-up line fails before any structure is read
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
        check_partition(scheduler, r.resolved.partition)
        chunk = scheduler.max_array_size() if len(paths) > 1 else 1
        if not r.dry_run:
            _prepare_database(settings)  # while the reader reads: imports, a server's connection
        staged = stager.collect()
    if sets:
        staged = _one_job_per_set(staged, sets, r.param_sets, dict(engine_settings))
    _from_parent(staged, r, handoff)
    if len(staged) > 1 and chunk == 1:
        chunk = scheduler.max_array_size()  # one multi-frame file: many jobs after all
    if r.name:
        for item in staged:
            item.name = r.name if len(staged) == 1 else f"{r.name}-{item.name}"
    _check_array_size(settings, len(staged))
    r.pack_size = _pack_size(settings, r, scheduler, len(staged))
    chunk *= max(r.pack_size, 1)  # max_array_size counts array tasks, not packed jobs
    notes = list(dict.fromkeys(item.note for item in staged if item.note))
    notes += _short_walltime_note(settings.soft_margin_s, r.resolved.walltime_s)
    frozen_notes = _frozen_notes(staged, r.strict)
    if r.dry_run:  # every check above ran, as for a real submit; nothing is written
        shown = _dry_run(settings, r, [item.name for item in staged], chunk)
        return _with_inputs(shown, staged[0], notes, frozen_notes)
    ready_database(settings)  # after every input was checked: a bad one leaves no file
    check_active_limit(settings, len(staged))
    result = Submitted([], [], [], notes=notes, frozen_notes=frozen_notes)
    reused: dict[int, int] = {}
    if r.reuse != "off":
        staged, reused = _reuse_matches(settings, r, params, staged, result, links)
    for start in range(0, len(staged), chunk):
        _submit_chunk(settings, r, params, staged[start : start + chunk], scheduler, result, links)
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


def _from_parent(staged: list[Staged], r: SubmitRequest, handoff: Handoff | None) -> None:
    """``--from``: the node takes (and, for EOS points, scales) the parent's final structure."""
    if handoff is None:
        return
    for item in staged:
        item.inputs.structure_from = handoff.result_path
        item.source = f"from:{handoff.parent_id}"
        # its structure is known only when it starts: no key, never reused
        item.inputs.frozen = unkeyed(item.inputs.frozen)
    if r.structure_scales:  # the node scales the parent's final cell
        for n, (item, scale) in enumerate(zip(staged, r.structure_scales, strict=True)):
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
    r: SubmitRequest,
    params: dict[str, Any],
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
            source = find_source(session, item.inputs.frozen or {}, r.reuse)
            if source is None:
                left.append(item)
                continue
            jobs, _ = record_jobs(session, settings, r, params, [item])
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


def _pack_size(settings: Settings, r: SubmitRequest, scheduler: Any, n_jobs: int) -> int:
    """Calculations per array task (``--pack``); 0 when not packed or only one job."""
    res = r.resolved
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

    with session_scope(settings.resolved_database_url) as session:
        jobs, script = record_jobs(session, settings, r, params, chunk)
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
    size = max(r.pack_size, 1)  # packed: jobs i*size.. run in task i
    n_tasks = -(-len(jobs) // size) if len(jobs) > 1 else 0
    answer = dispatch.send(scheduler, dispatch.Attempt(script, options, n_tasks, r.throttle))
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
        queued(session, jobs, ids, r.scheduler)
        result.ids.extend(job.id or 0 for job in jobs)
        result.scheduler_job_ids.extend(ids)


def _row(
    item: Staged, r: SubmitRequest, owner: str, site: Any, size: int, settings: Settings
) -> dict[str, Any]:
    """One job row's values (the same for all of a chunk but the structure and inputs)."""
    return dict(
        name=item.name,
        owner=owner,
        engine=r.engine,
        parameters=item.inputs.params,  # the same for all but a workflow's sweep
        frozen=item.inputs.frozen or None,
        calc_key=(item.inputs.frozen or {}).get("key") or None,
        loose_key=(item.inputs.frozen or {}).get("loose_key") or None,
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
        pack=r.pack_size if size > 1 else 0,
        study_id=r.study_id,
        structure_from_id=r.structure_from,
        on_scf_fail=r.scf_policy,
    )


def record_jobs(
    session: Session,
    settings: Settings,
    r: SubmitRequest,
    params: dict[str, Any],
    chunk: list[Staged],
) -> tuple[list[Job], Path]:
    """Write the rows, move the staged directories into place, write the batch script."""

    owner = current_user()
    check_role(session, owner)
    site = job_site(settings, r.engine, r.queue).to_json()
    rows = [_row(item, r, owner, site, len(chunk), settings) for item in chunk]
    jobs = insert_jobs(session, rows)
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
        n_tasks, packs_round = write_packed(array_dir, len(jobs), r.pack_size)[-1] + 1, 0
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
