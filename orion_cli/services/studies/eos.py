"""``orion eos``: an equation-of-state study in one command.

The structure's cell is scaled to ``points`` lattice factors ``1 - strain … 1 + strain``
(atoms scaled with it); the scaled cells go to the scheduler as one job array, and a fit
step (engine ``eos``, :mod:`orion_cli.engines.eos_fit`) waits for all of them
(``--after-any``: a failed point is left out of the fit rather than cancelling it). All
jobs carry the study's id, the id of its first point: ``orion results --study ID``.

``--relax-first`` puts a relaxation of atoms and cell before the points (:data:`RELAX_FIRST`
says how, per engine); the points start from its final structure (``--from``), each scaling
that relaxed cell by its own factor on the compute node (:mod:`orion_cli.handoff`). The
study's id is then the relaxation's.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.db.models import Job
from orion_cli.db.session import session_scope
from orion_cli.engines.eos_fit import EOS_KINDS, cubic_lattice
from orion_cli.errors import UsageError
from orion_cli.services.studies.study_extend import prior_study, same_volume, supersede
from orion_cli.services.submission.inputs import read_frames
from orion_cli.services.submission.plan import checked_params
from orion_cli.services.submission.submit import Submitted, submit

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.submission.plan import SubmitRequest
    from orion_cli.services.submission.submit import Submitted

MAX_POINTS = 101


@dataclass
class EosSubmitted:
    study_id: int | None = None
    point_ids: list[int] = field(default_factory=list)
    fit_id: int | None = None
    relax_id: int | None = None
    scales: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: completed points of the extended study taken as they are (``--extend``)
    reused_ids: list[int] = field(default_factory=list)
    #: a dry run: the batch scripts that would be submitted, and what would run, in words
    scripts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def lattice_scales(points: int, strain: float) -> list[float]:
    """Lattice factors from ``1 - strain`` to ``1 + strain``, evenly spaced.

    >>> lattice_scales(5, 0.04)
    [0.96, 0.98, 1.0, 1.02, 1.04]
    """
    if not 5 <= points <= MAX_POINTS:
        raise UsageError(
            f"--points {points}: an EOS fit needs 5 to {MAX_POINTS} points", "use e.g. --points 7"
        )
    if not 0 < strain < 0.5:
        raise UsageError(
            f"--strain {strain}: must be between 0 and 0.5 (a fraction)",
            "use e.g. --strain 0.05 for ±5 %",
        )
    return [round(1 + strain * (2 * i / (points - 1) - 1), 12) for i in range(points)]


def submit_eos(
    settings: Settings,
    structure: Path,
    base: SubmitRequest,
    points: int,
    strain: float,
    eos: str = "birchmurnaghan",
    relax_first: bool = False,
    extend: int | None = None,
) -> EosSubmitted:
    """Submit the scaled cells as one array, then the fit step after them.

    ``relax_first``: a relaxation (cell and atoms) first; the points scale its final cell.
    ``extend``: a study to extend; only the volumes it has not completed are submitted, and
    the new fit covers its completed points and the new ones.
    """
    scales = lattice_scales(points, strain)
    _check_options(base, eos, relax_first, extend)
    frame = _one_periodic(structure)
    atoms = frame.atoms
    cells = [_scaled_cell(atoms, scale) for scale in scales]
    prior = _prior(settings, extend, base, atoms) if extend is not None else None
    done_volumes = [(i, v) for i, v in prior.done] if prior else []
    todo = _not_done(cells, [v for _, v in done_volumes])
    done = EosSubmitted(scales=[scales[n] for n in todo])
    name = base.name or frame.name
    submitted = _submit_points(settings, structure, base, name, cells, todo, relax_first, done)
    done.errors += submitted.errors
    done.point_ids = submitted.ids
    if base.dry_run:
        done.scripts = submitted.scripts
        done.notes = [_dry_run_note(base, done.scales, eos, relax_first)]
        return done
    if len(submitted.ids) != len(todo):
        done.errors.append("not every point was submitted: the fit step was not submitted")
        return done
    done.study_id = prior.study_id if prior else done.relax_id or submitted.ids[0]
    set_study(
        settings, [*([done.relax_id] if done.relax_id else []), *submitted.ids], done.study_id
    )
    new = [(i, float(cells[n].get_volume())) for i, n in zip(submitted.ids, todo, strict=True)]
    fit_points = sorted([*done_volumes, *new], key=lambda point: point[1])
    done.reused_ids = [i for i, _ in done_volumes]
    _submit_fit(settings, structure, base, name, atoms, eos, fit_points, submitted.ids, done)
    if prior and done.fit_id:
        supersede(settings, prior.analysis_id, done.fit_id, f"{len(todo)} new points")
    return done


def _check_options(base: SubmitRequest, eos: str, relax_first: bool, extend: int | None) -> None:
    if relax_first:
        relax_params(base.engine, base.params)  # an engine that cannot relax: refused now
        if extend is not None:
            raise UsageError(
                "--extend with --relax-first: the new points would scale another relaxed cell",
                "extend without --relax-first, giving the relaxed structure",
            )
    if eos not in EOS_KINDS:
        raise UsageError(f"--eos {eos}: unknown form", f"use one of: {', '.join(EOS_KINDS)}")


def _not_done(cells: list[Any], volumes_done: list[float]) -> list[int]:
    """Indices of the cells whose volume no completed point has."""
    return [
        n
        for n, cell in enumerate(cells)
        if not any(same_volume(cell.get_volume(), v) for v in volumes_done)
    ]


def _one_periodic(structure: Path) -> Any:
    """The file's one structure, periodic in three dimensions (UsageError otherwise)."""
    frames = read_frames(structure)
    if len(frames) != 1:
        raise UsageError(
            f"'{structure}' holds {len(frames)} structures; an EOS needs one",
            "give a file with a single structure",
        )
    atoms = frames[0].atoms
    if not all(atoms.pbc) or atoms.cell.rank != 3:
        raise UsageError(
            f"'{structure}' is not periodic in three dimensions",
            "an equation of state needs a cell with a volume",
        )
    return frames[0]


def _scaled_cell(atoms: Any, scale: float) -> Any:
    cell = atoms.copy()
    cell.set_cell(atoms.cell * scale, scale_atoms=True)
    return cell


def _prior(settings: Settings, extend: int, base: SubmitRequest, atoms: Any) -> Any:
    """The study to extend, checked to be the same calculation."""
    params = checked_params(settings, base.engine, base.params)
    return prior_study(settings, extend, "eos", base.engine, params, atoms)


def _submit_points(
    settings: Settings,
    structure: Path,
    base: SubmitRequest,
    name: str,
    cells: list[Any],
    todo: list[int],
    relax_first: bool,
    done: EosSubmitted,
) -> Submitted:
    """The points not done yet as one array (after a relaxation with ``relax_first``)."""
    from ase.io import write

    if not todo:
        return Submitted([], [], [])
    with tempfile.TemporaryDirectory(prefix="orion-eos-") as scratch:
        path = Path(scratch) / f"{name}-eos.extxyz"
        write(path, [cells[n] for n in todo], format="extxyz")
        if relax_first and not base.dry_run:
            return _relax_then_points(settings, structure, base, path, name, done.scales, done)
        points = submit(settings, replace(base, structures=[path], name=""))
    if not relax_first:
        return points
    params = relax_params(base.engine, base.params)
    relax = submit(settings, replace(base, structures=[structure], params=params))
    return replace(points, scripts=relax.scripts + points.scripts)


def _dry_run_note(base: SubmitRequest, scales: list[float], eos: str, relax_first: bool) -> str:
    """What an ``eos --dry-run`` would submit, in words."""
    if not scales:
        return "every point is done already; only a new fit would be submitted"
    relax = f"a relaxation ({base.engine}), then " if relax_first else ""
    return (
        f"{relax}{len(scales)} {base.engine} point(s), lattice x {min(scales)} to "
        f"{max(scales)}, then a fit ({eos}) after them"
    )


def _submit_fit(
    settings: Settings,
    structure: Path,
    base: SubmitRequest,
    name: str,
    atoms: Any,
    eos: str,
    fit_points: list[tuple[int, float]],
    new_ids: list[int],
    done: EosSubmitted,
) -> None:
    """The fit step over ``fit_points`` (job id, volume), after the new points end."""
    fit = submit(
        settings,
        replace(
            base,
            structures=[structure],
            engine="eos",
            name=f"{name}-eos-fit",
            params={
                "jobs": [i for i, _ in fit_points],
                "volumes_a3": [v for _, v in fit_points],
                "eos": eos,
                "n_atoms": len(atoms),
                **cubic_lattice(atoms),
            },
            after=[],
            after_any=new_ids,
            study_id=done.study_id,
            hold=False,
            on_scf_fail=[],  # the analysis has no SCF
            resources=analysis_resources(base),
            throttle=None,
        ),
    )
    done.errors += fit.errors
    done.fit_id = fit.ids[0] if fit.ids else None


#: what makes each engine relax atoms and cell (``--relax-first``); others are refused
RELAX_FIRST: dict[str, dict[str, Any]] = {
    "emt": {"relax": True, "relax_cell": True},
    "ase": {"relax": True, "relax_cell": True},
    "qe": {"calculation": "vc-relax"},
    "lammps": {"task": "minimize", "relax_box": "iso"},
}


def relax_params(engine: str, params: dict[str, Any]) -> dict[str, Any]:
    """The relaxation's parameters: the study's, with the engine's relax keys over them.

    >>> relax_params("qe", {"ecutwfc_ry": 30})
    {'ecutwfc_ry': 30, 'calculation': 'vc-relax'}
    >>> relax_params("lammps", {"relax_box": "aniso"})["relax_box"]
    'aniso'
    """
    if engine not in RELAX_FIRST:
        raise UsageError(
            f"--relax-first: engine '{engine}' has no relaxation orion can hand on",
            f"use {', '.join(RELAX_FIRST)}, or relax yourself and give orion eos the result",
        )
    relax = dict(RELAX_FIRST[engine])
    if engine == "lammps" and params.get("relax_box", "none") != "none":
        relax["relax_box"] = params["relax_box"]  # the user's choice of cell relaxation
    return {**params, **relax}


def _relax_then_points(
    settings: Settings,
    structure: Path,
    base: SubmitRequest,
    cells: Path,
    name: str,
    scales: list[float],
    done: EosSubmitted,
) -> Submitted:
    """Check the points (a dry run), submit the relaxation, then the points from it."""
    submit(settings, replace(base, structures=[cells], name="", dry_run=True))
    relax = submit(
        settings,
        replace(
            base,
            structures=[structure],
            name=f"{name}-relax",
            params=relax_params(base.engine, base.params),
        ),
    )
    if not relax.ids:
        return Submitted([], [], [], errors=[*relax.errors, "the relaxation was not submitted"])
    done.relax_id = relax.ids[0]
    points = submit(
        settings,
        replace(
            base,
            structures=[],
            name=f"{name}-eos",
            structure_from=done.relax_id,
            structure_scales=scales,
        ),
    )
    return replace(points, errors=relax.errors + points.errors)


def analysis_resources(base: SubmitRequest) -> dict[str, object]:
    """One task on one CPU for at most 15 minutes: a study's fit or analysis step."""
    return {
        **base.resources,
        "ntasks": 1,
        "nodes": 1,
        "cpus_per_task": 1,
        "walltime_s": min(base.resources.get("walltime_s") or 900, 900),
    }


def set_study(settings: Settings, ids: list[int], study_id: int) -> None:
    """Mark jobs ``ids`` as the study ``study_id``'s (its first job's id)."""
    from sqlalchemy import update
    from sqlmodel import col

    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(Job).where(col(Job.id).in_(ids)).values(study_id=study_id))
        session.commit()
