"""Structure hand-off on the compute node: start from a parent job's final structure.

``orion submit --from 12`` records in the child's ``job.json`` where job 12's
``result.json`` is. When the child starts (after job 12 completed: ``--from`` implies
``--after``), the runner reads that file — never the database — checks it as untrusted
input, and lets the engine write its input files again from the final structure (scaled
by ``structure_scale`` when ``orion eos --relax-first`` asked for a lattice factor).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from orion_cli.engines.registry import get_engine
from orion_cli.ingest import BadRecord, check_result
from orion_cli.jobdir import JOB_FILE, write_json_atomic
from orion_cli.taskstream import read_outcome

HANDOFF_FILE = "structure-from-parent.xyz"


class HandoffError(Exception):
    """The parent's result cannot give a structure; the message says why."""


def take_parent_structure(workdir: Path, job: dict[str, Any]) -> dict[str, Any]:
    """Re-prepare the job in ``workdir`` from the parent's final structure; return job.json."""
    from ase.io import read, write

    path = Path(job["structure_from"])
    try:
        data = read_outcome(path.parent)  # result.json, or the result its events carry
        checked = check_result(data) if data is not None else None
    except (OSError, BadRecord, ValueError) as exc:
        raise HandoffError(f"cannot use the parent's {path}: {exc}") from None
    if checked is None:
        raise HandoffError(f"the parent's {path} does not exist (did it run here?)")
    if checked.error or not checked.final_structure:
        why = checked.error or "it has no final structure (a relaxation gives one)"
        raise HandoffError(f"the parent's {path} cannot be used: {why}")
    atoms = read(io.StringIO(checked.final_structure), format="extxyz", index=-1)
    assert not isinstance(atoms, list)
    scale = float(job.get("structure_scale", 1.0))
    if scale != 1.0:  # orion eos --relax-first: a scaled copy of the relaxed cell
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
    write(workdir / HANDOFF_FILE, atoms, format="extxyz")
    spec = get_engine(job["engine"]).prepare(
        atoms, job.get("params", {}), workdir, job.get("engine_settings", {})
    )
    job = {**job, "run_spec": spec.to_json()}
    write_json_atomic(workdir / JOB_FILE, job)
    return job
