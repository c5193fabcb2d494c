"""``orion workflow submit``: one study per structure from a workflow file.

Everything is checked first, for every structure and step (the file, each engine's
parameters, each structure prepared by each engine in a scratch directory, resources):
a problem is one line naming ``file:step:key`` and nothing is written. Then each study's
jobs are recorded in ONE transaction (rows, dependency edges, job directories or array
task files, batch scripts), parents before children; only after the commit are the steps
submitted in dependency order, each child waiting for its parents' scheduler jobs. A step
whose parent the scheduler refused stays ``created``: ``orion poll`` submits it once the
parent's retry is queued, or cancels it (dependency_failed) when the parent fails for good.

The rows go through the submit service's own public pieces
(:func:`~orion_cli.services.submission.submit.record_jobs`,
:func:`~orion_cli.services.submission.submit.send`), so a workflow's job is the same job
``orion submit`` makes. All jobs carry the study's id (its first job's) and their step.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.db.session import session_scope
from orion_cli.engines.eos_fit import cubic_lattice
from orion_cli.engines.passthrough import engine_params
from orion_cli.engines.registry import engine_names, get_engine
from orion_cli.errors import ConfigError, UsageError
from orion_cli.frozen import chained, freeze
from orion_cli.jobdir import RESULT_FILE
from orion_cli.queues import check_queue_table
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.base import SubmitOptions
from orion_cli.services.lifecycle.dependencies import Links, add_edges, waits_for
from orion_cli.services.lifecycle.depgraph import AFTER_ANY, AFTER_OK
from orion_cli.services.lifecycle.reuse import find_source, take
from orion_cli.services.structures import extxyz_text
from orion_cli.services.studies.workflow_file import SCALE, Step, Workflow, read_workflow
from orion_cli.services.submission.inputs import expand_inputs, read_frames
from orion_cli.services.submission.plan import (
    SubmitPlan,
    SubmitRequest,
    job_site,
    resolve_request,
    with_scf_policy,
)
from orion_cli.services.submission.staging import Staged
from orion_cli.services.submission.submit import (
    Submitted,
    check_active_limit,
    check_partition,
    ready_database,
    record_jobs,
    send,
)
from orion_cli.taskfile import JobInputs
from orion_cli.units import parse_mem_mb, parse_walltime_s

if TYPE_CHECKING:
    from ase import Atoms
    from sqlmodel import Session

    from orion_cli.config import Settings
    from orion_cli.db.models import Job
    from orion_cli.schedulers.base import Scheduler
    from orion_cli.services.submission.inputs import Frame
    from orion_cli.services.submission.staging import Staged

#: the analysis engine that fits the energies of a parent step's scale sweep
EOS_ENGINE = "eos"


@dataclass(frozen=True)
class WorkflowRequest:
    path: Path
    structures: list[str]
    scheduler: str = ""
    tags: tuple[str, ...] = ()
    hold: bool = False
    #: check everything and say what would be submitted; write nothing
    dry_run: bool = False
    #: --reuse: off, strict or loose ("": the config's); a step's own ``reuse`` key wins
    reuse: str = ""
    #: the command line's defaults for every step that does not set its own: resources
    #: (orion_cli.resources field names), a named queue, retries, --on-scf-fail words
    resources: dict[str, Any] = field(default_factory=dict)
    queue: str = ""
    retries: int | None = None
    on_scf_fail: tuple[str, ...] = ()


@dataclass
class StudySubmitted:
    """One structure's study: its id, its jobs by step, what went wrong at the scheduler."""

    structure: str
    name: str
    study_id: int | None = None
    steps: dict[str, list[int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Planned:
    """One step of one study, checked and staged, waiting to be recorded."""

    step: Step
    plan: SubmitPlan  # a new plan once the study's id and the hand-off's parent are known
    items: list[Staged]
    points: list[dict[str, Any]]
    atoms: list[Atoms]
    jobs: list[Job] = field(default_factory=list)  # every job of the step, in point order
    sent: list[Job] = field(default_factory=list)  # those the scheduler runs (not reused)
    script: Path | None = None


def submit_workflow(settings: Settings, request: WorkflowRequest) -> list[StudySubmitted]:
    """Check everything, then record and submit one study per structure frame."""

    flow = read_workflow(request.path, engine_names())
    _check_on_scf_fail(flow, request.on_scf_fail)
    if not request.structures:
        raise UsageError(
            "no structure given",
            f"write e.g. orion workflow submit {request.path} Cu.cif (one study per structure)",
        )
    frames = [frame for given in expand_inputs(request.structures) for frame in read_frames(given)]
    plans = [_plan_study(settings, flow, frame, request) for frame in frames]
    first = next(iter(plans[0].values())).plan
    scheduler = scheduler_for(settings, first.scheduler)
    largest = scheduler.max_array_size()
    for planned in plans[0].values():
        try:
            check_partition(scheduler, planned.plan.resources.partition)
        except UsageError as exc:
            raise UsageError(f"{_where(flow, planned.step)}: {exc.message}", exc.hint) from None
        if len(planned.items) > largest:
            raise UsageError(
                f"{flow.path}:{planned.step.name}:sweep: {len(planned.items)} jobs; "
                f"this scheduler takes at most {largest} in one array",
                "sweep fewer values",
            )
    if request.dry_run:
        return [_described(frame, plan) for frame, plan in zip(frames, plans, strict=True)]
    ready_database(settings)  # after every check: a bad file leaves no database file
    check_active_limit(settings, sum(len(p.items) for plan in plans for p in plan.values()))
    studies = []
    for frame, plan in zip(frames, plans, strict=True):
        try:
            studies.append(_record_and_send(settings, plan, scheduler, frame))
        except OSError as exc:  # a file system refusal stops this study, not the next one
            studies.append(
                StudySubmitted(
                    frame.source,
                    frame.name,
                    errors=[f"not recorded (nothing of it was kept): {type(exc).__name__}: {exc}"],
                )
            )
    return studies


def has_scf(engine: str) -> bool:
    """Tell whether ``engine`` takes ``--on-scf-fail`` (it has an SCF to retry)."""
    return getattr(get_engine(engine), "scf_retry_params", None) is not None


def _check_on_scf_fail(flow: Workflow, pairs: tuple[str, ...]) -> None:
    """``--on-scf-fail`` applies to the steps with an SCF; a file without one refuses it."""
    if pairs and not any(has_scf(step.engine) for step in flow.steps):
        engines = ", ".join(dict.fromkeys(step.engine for step in flow.steps))
        raise UsageError(
            f"--on-scf-fail is for engines with an SCF; no step of {flow.path} has one "
            f"(engines: {engines})",
            "drop --on-scf-fail, or use it with a qe step",
        )


def _described(frame: Frame, plan: dict[str, _Planned]) -> StudySubmitted:
    """What a dry run would submit for one structure: each step's jobs, in words."""
    done = StudySubmitted(frame.source, frame.name)
    for name, planned in plan.items():
        step = planned.step
        waits = [*step.needs, *(f"{n} (any outcome)" for n in step.needs_any)]
        done.notes.append(
            f"step {name}: {len(planned.items)} {step.engine} job(s)"
            + (f" after {', '.join(waits)}" if waits else "")
            + (f", from {step.structure_from}'s final structure" if step.structure_from else "")
            + f", walltime {planned.plan.resources.walltime_s} s"
            + (f", {', '.join(item.name for item in planned.items[:6])}" if planned.items else "")
        )
    return done


def _plan_study(
    settings: Settings, flow: Workflow, frame: Frame, request: WorkflowRequest
) -> dict[str, _Planned]:
    plan: dict[str, _Planned] = {}
    for step in flow.steps:
        plan[step.name] = _plan_step(settings, flow, step, frame, request, plan)
    return plan


def _where(flow: Workflow, step: Step, key: str = "") -> str:
    return f"{flow.path}:{step.name}" + (f":{key}" if key else "")


def _plan_step(
    settings: Settings,
    flow: Workflow,
    step: Step,
    frame: Frame,
    request: WorkflowRequest,
    earlier: dict[str, _Planned],
) -> _Planned:
    """Check one step for one structure; stage its jobs' inputs (nothing written outside /tmp)."""

    r = SubmitRequest(
        structures=[Path(frame.source)],
        engine=step.engine,
        scheduler=request.scheduler,
        resources={**request.resources, **_resources(flow, step)},
        queue=step.queue or request.queue,
        max_retries=request.retries if step.retries is None else step.retries,
        on_scf_fail=list(request.on_scf_fail) if has_scf(step.engine) else [],
        hold=request.hold,
        tags=request.tags,
        name=f"{frame.name}-{step.name}",
        reuse=step.reuse or request.reuse,
    )
    try:
        plan = resolve_request(r, settings)
        job_site(settings, r.engine, r.queue)
        plan = with_scf_policy(plan, step.params, settings)  # each job's params: _staged
    except (UsageError, ConfigError) as exc:
        raise UsageError(f"{_where(flow, step)}: {exc.message}", exc.hint) from None
    base = frame.atoms
    if step.structure_from:
        parent = earlier[step.structure_from]
        if len(parent.items) != 1:
            raise UsageError(
                f"{_where(flow, step, 'structure')}: from:{step.structure_from} makes "
                f"{len(parent.items)} jobs (a sweep); a hand-off takes one job's structure",
                "start from a step without a sweep",
            )
        base = parent.atoms[0]
    points = step.points()
    atoms_list = [_scaled(base, point.get(SCALE)) for point in points]
    params_list = [_point_params(flow, step, point, earlier) for point in points]
    items = _staged(settings, flow, step, frame, plan, points, atoms_list, params_list)
    return _Planned(step, plan, items, points, atoms_list)


def _resources(flow: Workflow, step: Step) -> dict[str, Any]:
    """The step's resources, checked as a queue's are (names and types)."""

    try:
        values = check_queue_table(step.name, step.resources, _where(flow, step))
    except ConfigError as exc:
        raise UsageError(exc.message, exc.hint) from None
    if step.walltime:
        values["walltime_s"] = parse_walltime_s(step.walltime, _where(flow, step, "walltime"))
    if step.mem:
        try:
            values["mem_mb"] = parse_mem_mb(step.mem)
        except UsageError as exc:
            raise UsageError(f"{_where(flow, step, 'mem')}: {exc.message}", exc.hint) from None
    return values


def _scaled(atoms: Atoms, scale: float | None) -> Atoms:
    if scale is None:
        return atoms
    cell = atoms.copy()
    cell.set_cell(atoms.cell * scale, scale_atoms=True)
    return cell


def _point_params(
    flow: Workflow, step: Step, point: dict[str, Any], earlier: dict[str, _Planned]
) -> dict[str, Any]:
    params = {**step.params, **{k: v for k, v in point.items() if k != SCALE}}
    if step.engine != EOS_ENGINE:
        return params
    swept = [name for name in step.parents if any(SCALE in p for p in earlier[name].points)]
    if len(swept) != 1:
        raise UsageError(
            f"{_where(flow, step, 'needs_any')}: an eos step fits the energies of ONE parent "
            f"step with a scale sweep ({len(swept)} found)",
            'write needs_any = ["points"] where [steps.points.sweep] has scale = [...]',
        )
    points = earlier[swept[0]]
    # the ids are known once the points are recorded; placeholders let the engine check now
    return {
        **params,
        "jobs": list(range(1, len(points.items) + 1)),
        "volumes_a3": [float(a.get_volume()) for a in points.atoms],
        "n_atoms": len(points.atoms[0]),
        **cubic_lattice(points.atoms[0]),
    }


def _staged(
    settings: Settings,
    flow: Workflow,
    step: Step,
    frame: Frame,
    plan: SubmitPlan,
    points: list[dict[str, Any]],
    atoms_list: list[Atoms],
    params_list: list[dict[str, Any]],
) -> list[Staged]:
    """Check each job's parameters with the engine and let it prepare the job in scratch."""

    engine = get_engine(step.engine)
    engine_settings = dict(settings.engine_settings(step.engine))
    items = []
    with tempfile.TemporaryDirectory(prefix="orion-workflow-") as scratch:
        for point, atoms, raw in zip(points, atoms_list, params_list, strict=True):
            try:
                params = engine.check(
                    engine_params(raw, step.engine, engine_names()), engine_settings
                )
                frozen = freeze(engine, atoms, params, engine_settings, Path(scratch))
            except UsageError as exc:
                raise UsageError(f"{_where(flow, step)}: {exc.message}", exc.hint) from None
            plain = not point.get(SCALE) and not step.structure_from
            text = frame.text if plain else extxyz_text(atoms)
            structure = frame.text if plain and frame.is_extxyz else extxyz_text(atoms)
            source = frame.source if plain else f"{frame.source}@{SCALE}={point.get(SCALE)}"
            suffix = "".join(f"-{key}={value}" for key, value in point.items())
            items.append(
                Staged(
                    source,
                    f"{plan.request.name}{suffix}",
                    atoms.get_chemical_formula(),
                    text,
                    JobInputs(
                        engine=step.engine,
                        params=frozen.params,
                        structure=structure,
                        launcher=engine_settings.get("launcher", settings.launcher),
                        ntasks=plan.resources.ntasks,
                        engine_settings=frozen.settings,
                        frozen=frozen.record(),
                    ),
                    notes=frozen.notes,
                    warnings=frozen.warnings,
                )
            )
    return items


def _record_and_send(
    settings: Settings, plan: dict[str, _Planned], scheduler: Scheduler, frame: Frame
) -> StudySubmitted:
    """Record the study in one transaction, then submit its steps, parents first."""

    done = StudySubmitted(frame.source, frame.name)
    with session_scope(settings.resolved_database_url) as session:
        try:
            _record_study(session, settings, plan)
            session.commit()  # every row of the study exists before the scheduler hears of one
        except BaseException:
            _remove_made(plan)  # the rows are rolled back: so are their directories
            raise
        done.study_id = next(iter(plan.values())).jobs[0].id
        for name, planned in plan.items():
            done.steps[name] = [job.id or 0 for job in planned.jobs]
            if not planned.sent:  # every job reused (completed or waiting for its twin)
                continue
            try:
                after = waits_for(session, planned.sent[0])
            except UsageError as exc:  # a parent the scheduler refused: poll submits it later
                done.notes.append(
                    f"step {name}: not submitted yet ({exc.message}); `orion poll` submits "
                    "it once its parents are queued"
                )
                continue
            sent = Submitted([], [], [])
            options = SubmitOptions(hold=planned.plan.request.hold, after=after)
            assert planned.script is not None
            try:
                send(session, planned.plan, planned.sent, planned.script, scheduler, options, sent)
            except OSError as exc:  # the rows are committed: say so, never "nothing kept"
                session.rollback()
                done.errors.append(
                    f"step {name}: recorded as study {done.study_id}, not submitted yet "
                    f"({type(exc).__name__}: {exc}); `orion poll` submits it"
                )
                continue
            session.commit()
            done.errors += [f"step {name}: {line}" for line in sent.errors]
    return done


def _record_step(session: Session, settings: Settings, planned: _Planned) -> None:
    """Record one step's jobs: those ``reuse`` serves one by one, the rest as one submit."""
    plan = planned.plan
    sources = [
        find_source(session, item.inputs.frozen or {}, plan.reuse) if plan.reuse != "off" else None
        for item in planned.items
    ]
    rest = [item for item, source in zip(planned.items, sources, strict=True) if source is None]
    by_item: dict[int, Job] = {}
    for n, (item, source) in enumerate(zip(planned.items, sources, strict=True)):
        if source is not None:
            [by_item[n]], _ = record_jobs(session, settings, plan, [item])
            session.flush()
            take(session, by_item[n], source)
    if rest:
        planned.sent, planned.script = record_jobs(session, settings, plan, rest)
    sent = iter(planned.sent)
    planned.jobs = [by_item[n] if n in by_item else next(sent) for n in range(len(sources))]


def _remove_made(plan: dict[str, _Planned]) -> None:
    """Remove the job directories and array task files written for a study not recorded."""
    import shutil

    for planned in plan.values():
        if planned.script is not None:
            shutil.rmtree(planned.script.parent, ignore_errors=True)
        planned.jobs, planned.sent, planned.script = [], [], None


def _record_study(session: Session, settings: Settings, plan: dict[str, _Planned]) -> None:
    """Insert every step's jobs and edges (no commit): the caller's one transaction."""

    study_id: int | None = None
    for planned in plan.values():
        step = planned.step
        if step.structure_from:
            parent = plan[step.structure_from].jobs[0]
            planned.plan = replace(planned.plan, structure_from=parent.id)
            for item, point in zip(planned.items, planned.points, strict=True):
                item.inputs.structure_from = str(Path(parent.workdir) / RESULT_FILE)
                item.source = f"from:{parent.id}"
                if point.get(SCALE) is not None:  # the node scales the parent's final cell
                    item.inputs.structure_scale = float(point[SCALE])
                    item.source += f"@{SCALE}={point[SCALE]}"
                # its structure is the parent's result: keyed by the parent's key
                item.inputs.frozen = chained(item.inputs.frozen, [parent.frozen or {}])
        if step.engine == EOS_ENGINE:
            swept = next(n for n in step.parents if any(SCALE in p for p in plan[n].points))
            ids = [job.id for job in plan[swept].jobs]
            points = [job.frozen or {} for job in plan[swept].jobs]
            for item in planned.items:
                item.inputs.params = {**item.inputs.params, "jobs": ids}
                item.inputs.frozen = chained(item.inputs.frozen, points)  # inputs are results
        planned.plan = replace(planned.plan, study_id=study_id)
        _record_step(session, settings, planned)
        jobs = planned.jobs
        study_id = study_id or jobs[0].id
        for job, point in zip(jobs, planned.points, strict=True):
            job.study_id = study_id
            job.study_step = step.name
            job.sweep_point = point or None
        edges = [(job.id or 0, AFTER_OK) for name in step.needs for job in plan[name].jobs]
        edges += [(job.id or 0, AFTER_ANY) for name in step.needs_any for job in plan[name].jobs]
        add_edges(session, jobs, Links(tuple(edges)))
    session.flush()
