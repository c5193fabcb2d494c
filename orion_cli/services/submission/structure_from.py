"""``orion submit --from ID``: the submit side of the structure hand-off.

At submit time the child is checked and prepared from the parent's *input* structure
(engine checks, input files); its ``job.json`` names the parent's ``result.json``, from
which the runner takes the final structure on the node (:mod:`orion_cli.handoff`).
``--from`` implies ``--after``: the child starts only after the parent completed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from orion_cli.db.models import Job, JobResult, with_any_tag
from orion_cli.db.session import ready_engine, session_scope
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.jobdir import RESULT_FILE
from orion_cli.services.structures import extxyz_text, input_format, stored_atoms

if TYPE_CHECKING:
    from orion_cli.config import Settings
    from orion_cli.services.submission.plan import SubmitRequest


@dataclass(frozen=True)
class Handoff:
    parent_id: int
    parent_name: str
    result_path: str  # the parent's result.json, read on the node
    structure_text: str  # extended XYZ: what the child is checked and prepared with


def parent_structure(settings: Settings, parent_id: int) -> Handoff:
    """Check ``--from parent_id`` (exists; a completed parent has a final structure).

    Ownership, scheduler and status are checked with the ``--after`` edge it implies.
    """
    url = settings.resolved_database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise UsageError(f"--from: no job with id {parent_id}", "`orion ls` lists the jobs")
    from sqlmodel import select

    ready_engine(url)
    with session_scope(url) as session:
        parent = session.get(Job, parent_id)
        if parent is None:
            raise UsageError(f"--from: no job with id {parent_id}", "`orion ls` lists the jobs")
        result = session.exec(select(JobResult).where(JobResult.job_id == parent_id)).first()
        if parent.status == "completed" and (result is None or not result.final_structure):
            raise UsageError(
                f"--from: job {parent_id} completed without a final structure "
                f"({parent.engine} gives one only when it relaxes or moves atoms)",
                f"submit from its input instead: orion submit "
                f"{parent.structure_source or 'STRUCTURE'} ...",
            )
        text = result.final_structure if result is not None and result.final_structure else None
        atoms = stored_atoms(text) or stored_atoms(
            parent.input_structure, input_format(parent.structure_source)
        )
        if atoms is None or not parent.workdir:
            raise UsageError(
                f"--from: job {parent_id} has no structure orion can read",
                "submit the child from a structure file instead",
            )

        return Handoff(
            parent_id, parent.name, str(Path(parent.workdir) / RESULT_FILE), extxyz_text(atoms)
        )


@contextmanager
def prepared_from(
    settings: Settings, request: SubmitRequest
) -> Iterator[tuple[Handoff, SubmitRequest]]:
    """Turn ``--from ID`` into a submit of one structure file after job ID; yield the hand-off
    and that submit's request (a new one: ``request`` is not changed).

    The parent's structure goes to a temporary file for the usual checks and staging.
    """
    import tempfile

    assert request.structure_from is not None
    if request.structures:
        raise UsageError(
            "give either structure files or --from, not both",
            "--from ID starts the job from job ID's final structure",
        )
    handoff = parent_structure(settings, request.structure_from)
    after = request.after
    if handoff.parent_id not in request.after + request.after_any:
        after = [*request.after, handoff.parent_id]
    with tempfile.TemporaryDirectory(prefix="orion-from-") as scratch:
        path = Path(scratch) / f"from-{handoff.parent_id}.xyz"
        path.write_text(_scaled(handoff.structure_text, request.structure_scales))
        yield (
            handoff,
            replace(
                request, after=after, name=request.name or handoff.parent_name, structures=[path]
            ),
        )


def _scaled(text: str, scales: list[float]) -> str:
    """``text`` (one extended-XYZ frame) as it is, or once per lattice factor in ``scales``.

    The node scales the parent's *final* cell the same way (:mod:`orion_cli.handoff`); these
    frames are what the jobs are checked and prepared with at submit time.
    """
    if not scales:
        return text
    import io

    from ase.io import read, write

    atoms = read(io.StringIO(text), format="extxyz", index=0)
    assert not isinstance(atoms, list)
    frames = []
    for scale in scales:
        frame = atoms.copy()
        frame.set_cell(atoms.cell * scale, scale_atoms=True)
        frames.append(frame)
    out = io.StringIO()
    write(out, frames, format="extxyz")
    return out.getvalue()


def tagged_parents(settings: Settings, tag: str) -> list[int]:
    """``--from-tag T``: your completed jobs with tag ``T``, oldest first (none: UsageError)."""
    from sqlmodel import col, select

    with session_scope(settings.resolved_database_url) as session:
        ids = list(
            session.exec(
                select(Job.id)
                .where(col(Job.owner) == current_user(), col(Job.removed_at).is_(None))
                .where(col(Job.status) == "completed", with_any_tag((tag,)))
                .order_by(col(Job.id))
            )
        )
    if not ids:
        raise UsageError(
            f"--from-tag {tag}: none of your completed jobs has this tag",
            "`orion ls --tag TAG` lists them",
        )
    return [i for i in ids if i is not None]
