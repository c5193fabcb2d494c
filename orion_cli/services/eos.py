"""``orion eos``: an equation-of-state study in one command.

The structure's cell is scaled to ``points`` lattice factors ``1 - strain … 1 + strain``
(atoms scaled with it); the scaled cells go to the scheduler as one job array, and a fit
step (engine ``eos``, :mod:`orion_cli.engines.eos_fit`) waits for all of them
(``--after-any``: a failed point is left out of the fit rather than cancelling it). All
jobs carry the study's id, the id of its first point: ``orion results --study ID``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.submit import SubmitRequest

MAX_POINTS = 101


@dataclass
class EosSubmitted:
    study_id: int | None = None
    point_ids: list[int] = field(default_factory=list)
    fit_id: int | None = None
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
) -> EosSubmitted:
    """Submit the scaled cells as one array, then the fit step after them."""
    from ase.io import write

    from orion_cli.engines.eos_fit import EOS_KINDS
    from orion_cli.services.inputs import read_frames
    from orion_cli.services.submit import submit

    scales = lattice_scales(points, strain)
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
        submitted = submit(settings, replace(base, structures=[path], name=""))
    done.errors += submitted.errors
    done.point_ids = submitted.ids
    if len(submitted.ids) != points:
        done.errors.append("not every point was submitted: the fit step was not submitted")
        return done
    done.study_id = submitted.ids[0]
    _set_study(settings, submitted.ids, done.study_id)
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
            resources={
                **base.resources,
                "ntasks": 1,
                "nodes": 1,
                "cpus_per_task": 1,
                "walltime_s": min(base.resources.get("walltime_s") or 900, 900),
            },
            throttle=None,
        ),
    )
    done.errors += fit.errors
    done.fit_id = fit.ids[0] if fit.ids else None
    return done


def _set_study(settings: Settings, ids: list[int], study_id: int) -> None:
    from sqlalchemy import update
    from sqlmodel import col

    from orion_cli.db.models import Job
    from orion_cli.db.session import session_scope

    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(Job).where(col(Job.id).in_(ids)).values(study_id=study_id))
        session.commit()
