"""orion from Python (notebooks, scripts): the same services the ``orion`` command uses.

Every function reads the configuration as the command line does (``ORION_*`` variables,
``orion.toml`` from the current directory upwards, the user config) and raises an
:class:`orion_cli.errors.OrionError` (``UsageError`` for a mistake in the input) instead of
printing and exiting. Importing this module is cheap: ASE, SQLAlchemy and matplotlib are
imported by the functions that need them.

>>> import orion_cli.api as orion
>>> from ase.build import bulk
>>> ids = orion.submit([bulk("Cu", a=a) for a in (3.5, 3.6)], engine="emt",
...                    walltime="10m", tag="cu-scan")                  # doctest: +SKIP
>>> orion.wait(ids, timeout_s=600)                                     # doctest: +SKIP
True
>>> [round(a.get_potential_energy(), 4) for a in orion.results(ids)]  # doctest: +SKIP
[0.0226, -0.0067]
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from orion_cli.errors import OrionError, UsageError
from orion_cli.outfile import open_output

if TYPE_CHECKING:
    from ase import Atoms

    from orion_cli.config import Settings
    from orion_cli.services.lifecycle.poll import PollReport
    from orion_cli.services.queries.stats import Stats
    from orion_cli.services.submission.plan import SubmitRequest

__all__ = [
    "JobRow",
    "cancel",
    "converge",
    "eos",
    "jobs",
    "poll",
    "result_rows",
    "results",
    "retry",
    "show",
    "stats",
    "submit",
    "wait",
    "workflow",
]

#: where ``submit`` keeps the structures given as ``Atoms`` (under ``work_root``)
API_INPUTS_DIR = "api-inputs"
_PAGE = 1000


F = TypeVar("F", bound=Callable[..., Any])


def _hinted(func: F) -> F:
    """Make an error's text the CLI's one line (message — hint): ``str(exc)`` shows the fix."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except OrionError as exc:
            exc.args = (exc.one_line(),)
            raise

    return cast(F, wrapper)


def _settings() -> Settings:
    from orion_cli.config import load_settings

    return load_settings()


def _ids(ids: int | Iterable[int] | None, what: str = "ids") -> tuple[int, ...]:
    """Job ids as a tuple of ints; a string or a float is refused (no silent ``int("5_8")``).

    >>> _ids(3), _ids([1, 2]), _ids(None)
    ((3,), (1, 2), ())
    >>> _ids(["7"])
    Traceback (most recent call last):
    ...
    orion_cli.errors.UsageError: ids: '7' is not an orion job id (an int)
    """
    if ids is None:
        return ()
    items = [ids] if isinstance(ids, int) else list(ids)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            raise UsageError(f"{what}: {item!r} is not an orion job id (an int)")
    return tuple(items)


def _tags(tag: str | Iterable[str] | None) -> tuple[str, ...]:
    if tag is None:
        return ()
    return tuple(t for t in ([tag] if isinstance(tag, str) else tag) if t)


def _seconds(value: str | float | None, what: str) -> int | None:
    """``"10m"``, ``"1:30:00"`` or a number of seconds, as the command line reads them."""
    from orion_cli.units import parse_walltime_s

    if value is None:
        return None
    if isinstance(value, bool):
        raise UsageError(f"{what}={value!r} is not a duration", "write e.g. '10m' or 600")
    if isinstance(value, int | float):
        value = str(value)
    return parse_walltime_s(str(value), what)


def _mem_mb(value: str | int | None) -> int | None:
    """``"4G"``, ``"500M"``, or a number of megabytes, as ``--mem`` reads them."""
    from orion_cli.units import parse_mem_mb

    return None if value is None else parse_mem_mb(str(value))


def _write_atoms(settings: Settings, frames: list[Atoms]) -> Path:
    """Write the ``Atoms`` given to ``submit`` as one extended-XYZ file (one job a frame).

    Each frame gets a job name: its ``info["name"]`` (or ``"label"``), else its formula,
    numbered when several were given. The file is kept beside the job directories
    (``<work_root>/api-inputs/``) as the jobs' ``structure_source``.
    """
    from ase.io import write

    directory = settings.work_root_path / API_INPUTS_DIR
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    copies = []
    for index, atoms in enumerate(frames):
        copy = atoms.copy()  # the caller's Atoms are left as they were
        copy.calc = None
        name = next(
            (str(atoms.info[k]) for k in ("name", "label") if str(atoms.info.get(k, "")).strip()),
            atoms.get_chemical_formula() + (f"-{index}" if len(frames) > 1 else ""),
        )
        copy.info = {"name": name}
        copies.append(copy)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = directory / f"atoms-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}.extxyz"
    try:
        with open_output(path) as out:  # the one safe writer: no planted link followed
            write(out, copies, format="extxyz")
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds (a constraint, a type)
        raise UsageError(
            f"cannot write the Atoms as extended XYZ: {type(exc).__name__}: {exc}",
            "give plain ase.Atoms (positions, cell, pbc), or write them to a file yourself",
        ) from None
    return path


def _resource_values(**given: Any) -> dict[str, Any]:
    """The resources a caller set (None: not given, the settings decide)."""
    return {key: value for key, value in given.items() if value is not None}


@_hinted
def submit(
    structures: Any,
    engine: str,
    *,
    params: dict[str, Any] | None = None,
    name: str = "",
    tag: str | Sequence[str] | None = None,
    walltime: str | float | None = None,
    partition: str | None = None,
    nodes: int | None = None,
    ntasks: int | None = None,
    cpus_per_task: int | None = None,
    mem: str | int | None = None,
    mem_per_cpu: str | int | None = None,
    gpus: int | None = None,
    constraint: str | None = None,
    exclusive: bool | None = None,
    sbatch_args: Sequence[str] | None = None,
    account: str | None = None,
    qos: str | None = None,
    priority: int | None = None,
    queue: str = "",
    scheduler: str = "",
    hold: bool = False,
    retries: int | None = None,
    retry_delay: str | float | None = None,
    throttle: int | None = None,
    pack: int | str = "",
    estimate: str | float | None = None,
    after: int | Sequence[int] | None = None,
    after_any: int | Sequence[int] | None = None,
    from_job: int | None = None,
    on_scf_fail: dict[str, Any] | None = None,
    allow_close_atoms: bool = False,
    **engine_params: Any,
) -> list[int]:
    """Submit one job per structure, as ``orion submit`` does; return the new jobs' ids.

    ``structures``: an ``ase.Atoms``, a path (``str`` or ``Path``: files, directories,
    globs, ``FILE@INDEX``, as on the command line), or a list mixing both. Many structures
    go to SLURM as one job array. Engine parameters are keyword arguments
    (``relax=True, fmax_ev_per_a=0.02``) or ``params={...}`` for keys that are not Python
    names (``{"electrons.mixing_beta": 0.3}``). Resources and policies have the command
    line's names and units: ``walltime="2h"`` (or seconds), ``mem="4G"`` (or MB),
    ``ntasks=2``, ``tag="screen-1"`` (or a list), ``after=[12, 13]``, ``from_job=12``,
    ``on_scf_fail={"mixing_beta": 0.3}``, ``hold=True``... ``submit(None, "qe",
    from_job=12)`` starts from job 12's final structure, after it.

    Everything is checked before anything is written; a bad value raises ``UsageError``.
    When the scheduler refuses the submission the jobs are recorded as failed
    (``submit_error``) and :class:`orion_cli.errors.SubmitFailed` is raised, its ``ids``
    holding the jobs that were submitted all the same.

    >>> ids = submit(bulk("Cu", cubic=True), engine="emt", walltime="10m")   # doctest: +SKIP
    >>> ids = submit(["Si.cif", "runs/*/pw.out"], "qe", ecutwfc_ry=40, ntasks=4)  # doctest: +SKIP
    """
    from orion_cli.services.submission.packing import parse_estimate_s
    from orion_cli.services.submission.plan import SubmitRequest

    settings = _settings()
    paths: list[Path] = []
    frames: list[Atoms] = []
    none_given = structures is None or (isinstance(structures, list | tuple) and not structures)
    if from_job is None or not none_given:  # from_job alone: the parent's final structure
        paths, frames = _split_structures(structures)
    all_params = {**(params or {}), **engine_params}
    after_ids = list(dict.fromkeys(_ids(after, "after")))
    after_any_ids = list(dict.fromkeys(_ids(after_any, "after_any")))
    resources = _resource_values(
        partition=partition,
        account=account,
        qos=qos,
        priority=priority,
        nodes=nodes,
        ntasks=ntasks,
        cpus_per_task=cpus_per_task,
        walltime_s=_seconds(walltime, "walltime"),
        mem_mb=_mem_mb(mem),
        mem_per_cpu_mb=_mem_mb(mem_per_cpu),
        gpus=gpus,
        constraints=constraint,
        exclusive=exclusive,
        sbatch_args=tuple(sbatch_args) if sbatch_args is not None else None,
    )
    request = SubmitRequest(
        structures=[],
        engine=engine,
        params=all_params,
        name=name,
        scheduler=scheduler,
        queue=queue,
        resources=resources,
        hold=hold,
        tags=_tags(tag),
        throttle=throttle,
        allow_close_atoms=allow_close_atoms,
        max_retries=retries,
        retry_delay_s=_seconds(retry_delay, "retry_delay"),
        pack=str(pack) if pack else "",
        estimate_s=parse_estimate_s(str(estimate)) if estimate is not None else None,
        after=after_ids,
        after_any=after_any_ids,
        structure_from=from_job,
        on_scf_fail=[f"{k}={_word(v)}" for k, v in (on_scf_fail or {}).items()],
    )
    return _submitted_ids(settings, request, paths, frames)


def _submitted_ids(
    settings: Settings, request: SubmitRequest, paths: list[Path], frames: list[Atoms]
) -> list[int]:
    """Submit ``request`` for ``paths`` and the in-memory ``frames`` (written to one file,
    removed again when nothing was submitted); the ids, or SubmitFailed; notes as warnings."""
    from orion_cli.errors import SubmitFailed
    from orion_cli.services.submission.submit import submit as submit_jobs

    written = _write_atoms(settings, frames) if frames else None
    request = replace(request, structures=[*paths, *([written] if written else [])])
    try:
        done = submit_jobs(settings, request)
    except BaseException:
        if written is not None:  # nothing was submitted: keep no file either
            written.unlink(missing_ok=True)
        raise
    if done.errors:
        raise SubmitFailed("; ".join(done.errors), done.ids)
    for note in done.notes:
        warnings.warn(note, stacklevel=2)  # stack: the caller of orion_cli.api.submit
    return done.ids


def _word(value: Any) -> str:
    """A parameter value as ``-p key=value`` writes it.

    >>> _word(True), _word(0.3), _word([4, 4, 4]), _word("cg")
    ('true', '0.3', '4,4,4', 'cg')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _split_structures(structures: Any) -> tuple[list[Path], list[Atoms]]:
    """Paths and ``Atoms`` out of what ``submit`` was given (one or a list of either)."""
    from ase import Atoms

    if isinstance(structures, str | Path | Atoms):
        structures = [structures]
    try:
        items = list(structures)
    except TypeError:
        raise UsageError(
            f"cannot submit a {type(structures).__name__}",
            "give ase.Atoms, a path, or a list of them",
        ) from None
    paths: list[Path] = []
    frames: list[Atoms] = []
    for item in items:
        if isinstance(item, Atoms):
            frames.append(item)
        elif isinstance(item, str | Path):
            paths.append(Path(item))
        else:
            raise UsageError(
                f"cannot submit a {type(item).__name__}",
                "give ase.Atoms, a path, or a list of them",
            )
    if not items:
        raise UsageError("no structure given", "give ase.Atoms, a path, or a list of them")
    return paths, frames


@dataclass(frozen=True)
class JobRow:
    """One job as ``orion ls`` lists it (``pandas.DataFrame(jobs())`` makes a table)."""

    id: int
    name: str
    owner: str
    engine: str
    status: str
    failure_reason: str | None
    progress_pct: float
    current_step: str
    scheduler: str
    scheduler_job_id: str | None
    tag: str
    attempt: int
    created_at: datetime
    formula: str
    energy_per_atom_ev: float | None
    #: what a waiting job waits for ("waiting on 2 parents"), "" otherwise
    dependency: str


@_hinted
def jobs(
    *,
    tag: str | Sequence[str] | None = None,
    status: str | Sequence[str] | None = None,
    study: int | None = None,
    engine: str = "",
    since: str | float | None = None,
    all_users: bool = False,
) -> list[JobRow]:
    """Your jobs (every user's with ``all_users``), oldest first, filtered as ``orion ls``.

    >>> [(j.id, j.status) for j in jobs(tag="cu-scan")]                # doctest: +SKIP
    [(1, 'completed'), (2, 'running')]
    """
    from orion_cli.identity import current_user
    from orion_cli.services.queries.listing import JobFilter, list_jobs

    statuses = (status,) if isinstance(status, str) else tuple(status or ())
    settings = _settings()
    base = JobFilter(
        statuses=statuses,
        engine=engine,
        tags=_tags(tag),
        since_s=_seconds(since, "since"),
        limit=_PAGE,
        owner=None if all_users else current_user(),
        study_id=study,
    )
    rows: list[dict[str, Any]] = []
    while True:
        page = list_jobs(settings, replace(base, offset=len(rows))).rows
        rows.extend(page)
        if len(page) < _PAGE:
            break
    return [
        JobRow(
            **{
                **{k: row[k] for k in JobRow.__dataclass_fields__ if k in row},
                "created_at": datetime.fromisoformat(row["created_at"]),
                "dependency": row.get("dependency") or "",
            }
        )
        for row in reversed(rows)
    ]


@_hinted
def show(job_id: int) -> dict[str, Any]:
    """Everything about one job, as ``orion show --json`` prints it (result, events...)."""
    from orion_cli.services.queries.show import show_job

    return show_job(_settings(), _ids(job_id, "job_id")[0])


def _selected(
    ids: int | Iterable[int] | None, tag: str | Sequence[str] | None, study: int | None
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    chosen, tags = _ids(ids), _tags(tag)
    if not chosen and not tags and study is None:
        raise UsageError("no jobs selected", "give ids, tag=... or study=...")
    return chosen, tags


@_hinted
def wait(
    ids: int | Iterable[int] | None = None,
    *,
    tag: str | Sequence[str] | None = None,
    timeout_s: float | None = None,
) -> bool:
    """Block until the jobs have ended (as ``orion wait``); True if all of them completed.

    Each round runs one poll cycle, so no cron is needed while you wait; the scheduler is
    asked no more often than ``min_query_interval_s``. False when one failed, was
    cancelled, or ``timeout_s`` passed first.
    """
    from orion_cli.services.queries.selection import Selection
    from orion_cli.services.queries.waiting import select_ids, wait_for

    chosen, tags = _selected(ids, tag, None)
    settings = _settings()
    job_ids = select_ids(settings, Selection(ids=chosen, tags=tags))
    if not job_ids:
        return True  # a tag of no job: nothing to wait for
    return wait_for(settings, job_ids, timeout_s).all_completed


@_hinted
def results(
    ids: int | Iterable[int] | None = None,
    *,
    tag: str | Sequence[str] | None = None,
    study: int | None = None,
    all_jobs: bool = False,
) -> list[Atoms]:
    """The jobs' structures with their results, as ``ase.Atoms`` (in id order).

    Energy, forces and stress are attached as a SinglePointCalculator
    (``atoms.get_potential_energy()``); ``atoms.info`` holds ``orion_id``, ``name``,
    ``status``, ``engine``, ``params`` and ``tag``. Completed jobs only, unless
    ``all_jobs=True`` (the others then come without a calculator). The structure is the
    final one of a relaxation, else the input.
    """
    from orion_cli.identity import current_user
    from orion_cli.services.queries.results import Selection, result_atoms

    chosen, tags = _selected(ids, tag, study)
    selection = Selection(chosen, tags, study, current_user())
    return result_atoms(_settings(), selection, all_jobs)


@_hinted
def result_rows(
    ids: int | Iterable[int] | None = None,
    *,
    tag: str | Sequence[str] | None = None,
    study: int | None = None,
) -> list[dict[str, Any]]:
    """One dict per job, as ``orion results -f json`` prints them: id, name, formula,
    status, engine, natoms, energy_ev, energy_per_atom_ev, max_force_ev_per_a,
    pressure_gpa, volume_a3, stress_gpa and the swept parameters (``param.<key>``).

    >>> import pandas as pd                                            # doctest: +SKIP
    >>> pd.DataFrame(result_rows(tag="cu-scan"))[["id", "energy_ev"]]  # doctest: +SKIP
    """
    from orion_cli.identity import current_user
    from orion_cli.services.queries.results import Selection
    from orion_cli.services.queries.results import result_rows as rows_of

    chosen, tags = _selected(ids, tag, study)
    return rows_of(_settings(), Selection(chosen, tags, study, current_user()))


@_hinted
def poll() -> PollReport:
    """Run one poll cycle, as ``orion poll`` (cron) does; return what it did.

    The report has ``checked`` (jobs looked at), ``changed`` ({job id: new status}),
    ``errors`` and ``overlapped`` (another poller was running: nothing done).
    """
    from orion_cli.services.lifecycle.poll import poll as run_poll

    return run_poll(_settings())


@_hinted
def cancel(
    ids: int | Iterable[int] | None = None,
    *,
    tag: str | Sequence[str] | None = None,
    with_dependents: bool = False,
) -> list[int]:
    """Cancel jobs that have not ended (as ``orion cancel``); return the ids cancelled.

    Jobs that already ended are left alone. An id that is not a job of yours raises
    ``UsageError`` when nothing could be cancelled, else gives a warning.
    """
    from orion_cli.services.actions.apply import cancel as run_cancel
    from orion_cli.services.queries.selection import Selection

    chosen, tags = _selected(ids, tag, None)
    report = run_cancel(_settings(), Selection(ids=chosen, tags=tags), with_dependents)
    if report.refused or report.trouble:
        if not report.done:
            raise report.failure()
        warnings.warn(report.summary(), stacklevel=2)
    return list(report.done)


@_hinted
def stats(
    *,
    tag: str | Sequence[str] | None = None,
    study: int | None = None,
    engine: str = "",
    since: str | float | None = None,
    by: str = "engine",
    all_users: bool = False,
) -> Stats:
    """How the jobs went, as ``orion stats``: ``.total`` and ``.groups`` (by engine,
    partition or tag) with success rate, failure reasons, queue wait and run time
    percentiles and core-hours; ``.as_dict()`` is what ``orion stats --json`` prints."""
    from orion_cli.identity import current_user
    from orion_cli.services.queries.stats import StatsFilter, collect

    flt = StatsFilter(
        owner=None if all_users else current_user(),
        tags=_tags(tag),
        study_id=study,
        engine=engine,
        since_s=_seconds(since, "since"),
    )
    return collect(_settings(), flt, by)


@_hinted
def retry(
    ids: int | Iterable[int] | None = None,
    *,
    tag: str | Sequence[str] | None = None,
    study: int | None = None,
    params: dict[str, Any] | None = None,
    walltime: str | float | None = None,
    mem: str | int | None = None,
    partition: str | None = None,
    gpus: int | None = None,
    **engine_params: Any,
) -> list[int]:
    """Submit a new attempt of failed or cancelled jobs (as ``orion retry``); return the ids.

    Engine parameters change as keywords or ``params={...}`` (``orion retry -p``); the
    resources as on the command line (``walltime="4h"``, ``mem="8G"``). A job that failed in
    its engine, retried with nothing changed, fails the same way: a warning says so.
    """
    from orion_cli.services.actions.apply import retry as run_retry
    from orion_cli.services.actions.apply import would_fail_again
    from orion_cli.services.queries.selection import Selection

    chosen, tags = _selected(ids, tag, study)
    selection = Selection(ids=chosen, tags=tags, studies=(study,) if study is not None else ())
    settings = _settings()
    changes = {**(params or {}), **engine_params}
    resources = {
        key: value
        for key, value in {
            "walltime_s": _seconds(walltime, "walltime"),
            "mem_mb": _mem_mb(mem),
            "partition": partition,
            "gpus": gpus,
        }.items()
        if value is not None
    }
    if not changes and not resources:
        for job_id, error in would_fail_again(settings, selection):
            warnings.warn(
                f"job {job_id} failed in its engine ({error[:120]}); retried "
                "unchanged it will fail the same way",
                stacklevel=3,
            )
    report = run_retry(settings, selection, changes or None, resources)
    if report.refused or report.trouble or not report.done:
        if not report.done:
            raise report.failure()
        warnings.warn(report.summary(), stacklevel=3)
    return list(report.done)


def _study_base(
    engine: str,
    params: dict[str, Any],
    name: str,
    tag: str | Sequence[str] | None,
    scheduler: str,
    hold: bool,
    resources: dict[str, Any],
) -> Any:
    """The request every job of a study (eos, converge) starts from, as the CLI builds it."""
    from orion_cli.services.submission.plan import SubmitRequest

    return SubmitRequest(
        structures=[],
        engine=engine,
        params=params,
        name=name,
        scheduler=scheduler,
        resources={
            "walltime_s": _seconds(resources.get("walltime"), "walltime"),
            "mem_mb": _mem_mb(resources.get("mem")),
            **{k: resources[k] for k in ("partition", "ntasks") if resources.get(k) is not None},
        },
        hold=hold,
        tags=_tags(tag),
    )


def _one_structure(settings: Settings, structure: Any) -> Path:
    """A study's one structure: a path as it is, an ``Atoms`` written as the API keeps them."""
    if isinstance(structure, str | Path):
        return Path(structure)
    paths, frames = _split_structures(structure)
    if len(paths) + len(frames) != 1:
        raise UsageError("a study takes one structure", "give one Atoms or one path")
    return paths[0] if paths else _write_atoms(settings, frames)


@_hinted
def eos(
    structure: Any,
    engine: str,
    *,
    points: int = 7,
    strain: float = 0.05,
    form: str = "birchmurnaghan",
    relax_first: bool = False,
    params: dict[str, Any] | None = None,
    name: str = "",
    tag: str | Sequence[str] | None = None,
    scheduler: str = "",
    hold: bool = False,
    walltime: str | float | None = None,
    mem: str | int | None = None,
    partition: str | None = None,
    ntasks: int | None = None,
    **engine_params: Any,
) -> Any:
    """Submit an equation of state (as ``orion eos``); return its ``study_id``,
    ``point_ids``, ``fit_id`` (``wait([fit_id])`` then ``show(fit_id)["result"]``)."""
    from orion_cli.services.studies.eos import submit_eos

    settings = _settings()
    base = _study_base(
        engine,
        {**(params or {}), **engine_params},
        name,
        tag,
        scheduler,
        hold,
        {"walltime": walltime, "mem": mem, "partition": partition, "ntasks": ntasks},
    )
    path = _one_structure(settings, structure)
    return submit_eos(settings, path, base, points, strain, form, relax_first)


@_hinted
def converge(
    structure: Any,
    engine: str,
    sweep: str,
    *,
    tol_mev_per_atom: float = 1.0,
    params: dict[str, Any] | None = None,
    name: str = "",
    tag: str | Sequence[str] | None = None,
    scheduler: str = "",
    hold: bool = False,
    walltime: str | float | None = None,
    mem: str | int | None = None,
    partition: str | None = None,
    ntasks: int | None = None,
    **engine_params: Any,
) -> Any:
    """Submit a convergence sweep (as ``orion converge``, ``sweep="ecutwfc_ry=30:60:10"``);
    return its ``study_id``, ``job_ids``, ``analysis_id``."""
    from orion_cli.services.studies.converge import submit_converge

    settings = _settings()
    base = _study_base(
        engine,
        {**(params or {}), **engine_params},
        name,
        tag,
        scheduler,
        hold,
        {"walltime": walltime, "mem": mem, "partition": partition, "ntasks": ntasks},
    )
    path = _one_structure(settings, structure)
    return submit_converge(settings, path, base, sweep, tol_mev_per_atom)


@_hinted
def workflow(
    path: str | Path,
    structures: Any,
    *,
    tag: str | Sequence[str] | None = None,
    scheduler: str = "",
    hold: bool = False,
) -> list[Any]:
    """Submit a workflow file for each structure (as ``orion workflow submit``); return one
    ``StudySubmitted`` per structure (``study_id``, ``steps``: step name → job ids)."""
    from orion_cli.services.studies.workflow import WorkflowRequest, submit_workflow

    settings = _settings()
    paths, frames = _split_structures(structures)
    written = [str(_write_atoms(settings, [atoms])) for atoms in frames]
    request = WorkflowRequest(Path(path), [*map(str, paths), *written], scheduler, _tags(tag), hold)
    return submit_workflow(settings, request)
