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
from orion_cli.engines.eos_fit import EOS_KINDS
from orion_cli.errors import UsageError
from orion_cli.services.submission.inputs import read_frames
from orion_cli.services.submission.submit import Submitted, submit

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.submission.submit import SubmitRequest, Submitted

MAX_POINTS = 101


@dataclass
class EosSubmitted:
    study_id: int | None = None
    point_ids: list[int] = field(default_factory=list)
    fit_id: int | None = None
    relax_id: int | None = None
    scales: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


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
) -> EosSubmitted:
    """Submit the scaled cells as one array, then the fit step after them.

    ``relax_first``: a relaxation (cell and atoms) first; the points scale its final cell.
    """
    from ase.io import write

    scales = lattice_scales(points, strain)
    if relax_first:
        relax_params(base.engine, base.params)  # an engine that cannot relax: refused now
    if eos not in EOS_KINDS:
        raise UsageError(f"--eos {eos}: unknown form", f"use one of: {', '.join(EOS_KINDS)}")
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
    done = EosSubmitted(scales=scales)
    name = base.name or frames[0].name
    with tempfile.TemporaryDirectory(prefix="orion-eos-") as scratch:
        cells = []
        for scale in scales:
            cell = atoms.copy()
            cell.set_cell(atoms.cell * scale, scale_atoms=True)
            cells.append(cell)
        path = Path(scratch) / f"{name}-eos.extxyz"
        write(path, cells, format="extxyz")
        volumes = [float(cell.get_volume()) for cell in cells]
        if relax_first:
            submitted = _relax_then_points(settings, structure, base, path, name, scales, done)
        else:
            submitted = submit(settings, replace(base, structures=[path], name=""))
    done.errors += submitted.errors
    done.point_ids = submitted.ids
    if len(submitted.ids) != points:
        done.errors.append("not every point was submitted: the fit step was not submitted")
        return done
    done.study_id = done.relax_id or submitted.ids[0]
    set_study(
        settings, [*([done.relax_id] if done.relax_id else []), *submitted.ids], done.study_id
    )
    fit = submit(
        settings,
        replace(
            base,
            structures=[structure],
            engine="eos",
            name=f"{name}-eos-fit",
            params={"jobs": submitted.ids, "volumes_a3": volumes, "eos": eos},
            after=[],
            after_any=submitted.ids,
            study_id=done.study_id,
            hold=False,
            resources=analysis_resources(base),
            throttle=None,
        ),
    )
    done.errors += fit.errors
    done.fit_id = fit.ids[0] if fit.ids else None
    return done


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
