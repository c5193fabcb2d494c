"""``orion converge|eos --extend STUDY``: add points to a study without computing any twice.

The study's latest analysis step (engine ``converge`` or ``eos``) names its points (``jobs``)
and what each computed (a swept value, a volume). A point that completed is taken as it is;
only the values or volumes not done yet are submitted, into the same study. A new analysis
step then covers all of them, and the old one gets an event saying which step superseded it.

Extending is refused (one line, nothing written) when the new request is not the same
calculation as the study's: another engine, other fixed parameters, another structure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orion_cli.db.models import Job, JobResult
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.services.lifecycle.state import note_many
from orion_cli.services.structures import input_format, stored_atoms
from orion_cli.services.studies.workflow_status import study_jobs
from orion_cli.states import JobStatus

if TYPE_CHECKING:
    from ase import Atoms

    from orion_cli.config import Settings

#: two volumes closer than this (relative) are the same EOS point
SAME_VOLUME_REL = 1e-6


@dataclass(frozen=True)
class Prior:
    """What a study computed already: its analysis step and each completed point."""

    study_id: int
    analysis_id: int
    analysis_params: dict[str, Any]
    #: completed points: (job id, what it computed: the swept value or the volume in Å³)
    done: list[tuple[int, Any]]


def prior_study(
    settings: Settings,
    study: int,
    analysis_engine: str,
    engine: str,
    new_params: Mapping[str, Any],
    atoms: Atoms,
    swept: str = "",
) -> Prior:
    """The study's completed points, after checking that the new request extends it.

    ``new_params``: the new request's parameters, checked by the engine; ``swept``: the
    parameter that may differ (converge).
    """
    with session_scope(settings.resolved_database_url) as session:
        jobs = {job.id: job for job in study_jobs(session, settings, study)}
        analyses = [job for job in jobs.values() if job.engine == analysis_engine]
        if not analyses:
            raise UsageError(
                f"--extend {study}: the study has no {analysis_engine} step",
                f"give the study id `orion {analysis_engine}` printed",
            )
        analysis = analyses[-1]
        params = dict(analysis.parameters or {})
        keys = params["values"] if analysis_engine == "converge" else params["volumes_a3"]
        points = [(jobs.get(i), key) for i, key in zip(params["jobs"], keys, strict=True)]
        done = [
            (job.id or 0, key)
            for job, key in points
            if job is not None and job.status == JobStatus.COMPLETED.value
        ]
        if analysis_engine == "converge" and params["parameter"] != swept:
            raise UsageError(
                f"--extend {study}: the study swept {params['parameter']}, not {swept}",
                f"write --sweep {params['parameter']}=...",
            )
        for job, _ in points[:1]:
            if job is not None:
                _check_same(study, job, engine, new_params, atoms, swept)
        return Prior(analysis.study_id or study, analysis.id or 0, params, done)


def _check_same(
    study: int, job: Any, engine: str, new_params: Mapping[str, Any], atoms: Atoms, swept: str
) -> None:
    """Refuse to extend with another engine, other fixed parameters or another structure."""
    if job.structure_from_id is not None:
        raise UsageError(
            f"--extend {study}: its points start from job {job.structure_from_id}'s structure "
            "(--relax-first)",
            "extend a study of a fixed structure, or run a new one",
        )
    if job.engine != engine:
        raise UsageError(
            f"--extend {study}: the study ran engine {job.engine}, not {engine}",
            f"write --engine {job.engine}",
        )
    old = {k: v for k, v in (job.parameters or {}).items() if k != swept}
    new = {k: v for k, v in new_params.items() if k != swept}
    differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differ:
        key = differ[0]
        raise UsageError(
            f"--extend {study}: {key} = {new.get(key)!r} here but {old.get(key)!r} in the study "
            f"(job {job.id})",
            "give the study's own parameters (`orion show " + str(job.id) + "` lists them)",
        )
    before = stored_atoms(job.input_structure, input_format(job.structure_source))
    if before is None or not _same_structure(before, atoms):
        raise UsageError(
            f"--extend {study}: the structure differs from the study's ({job.structure_source})",
            "give the structure file the study started from",
        )


def _same_structure(before: Atoms, atoms: Atoms) -> bool:
    """Same species, and the same cell and positions up to a point's own lattice factor."""
    import numpy as np

    if list(before.numbers) != list(atoms.numbers):
        return False
    ratio = (before.get_volume() / atoms.get_volume()) ** (1 / 3)
    shift = before.get_scaled_positions() - atoms.get_scaled_positions()
    return bool(
        np.allclose(before.cell.array, atoms.cell.array * ratio, atol=1e-5)
        and np.allclose(shift - np.round(shift), 0, atol=1e-6)
    )


def supersede(settings: Settings, old_analysis_id: int, new_analysis_id: int, what: str) -> None:
    """Note on the old analysis step that ``new_analysis_id`` now answers for the study;
    its stored answer says so too (``orion results`` prints it beside the answer)."""
    from sqlmodel import select

    with session_scope(settings.resolved_database_url) as session:
        old = session.get(Job, old_analysis_id)
        if old is None:
            return
        result = session.exec(select(JobResult).where(JobResult.job_id == old.id)).first()
        if result is not None:
            result.extras = {**(result.extras or {}), "superseded_by": new_analysis_id}
            session.add(result)
        note_many(
            session,
            [(old, f"superseded by analysis job {new_analysis_id} (--extend: {what})")],
            source="user",
        )
        session.commit()


def same_volume(a: float, b: float) -> bool:
    """Whether two EOS volumes are one point.

    >>> same_volume(40.0, 40.0 + 1e-9), same_volume(40.0, 40.01)
    (True, False)
    """
    return abs(a - b) <= SAME_VOLUME_REL * max(abs(a), abs(b))
