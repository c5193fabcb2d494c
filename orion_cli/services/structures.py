"""Structures as orion stores them: the ASE format of an input, its text, reading it back.

Shared by submission (inputs, ``--from``), the lifecycle (``retry -p`` rewrites inputs) and
queries (results): it sits below all of them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ase import Atoms

#: ASE formats of the structure files orion reads by suffix
ASE_FORMAT = {".xyz": "extxyz", ".extxyz": "extxyz", ".traj": "traj", ".cif": "cif"}


def stored_atoms(text: str | None, fmt: str | None = "extxyz") -> Any:
    """Read one structure from its stored text; None when there is none or it is unreadable."""
    if not text or fmt is None:
        return None
    from ase.io import read

    try:
        return read(io.StringIO(text), format=fmt)
    except Exception:  # noqa: BLE001 - a row without a structure, not a failed export
        return None


def input_format(source: str) -> str | None:
    """The ASE format of a job's stored input text, from where it came from.

    >>> input_format("/x/Cu.cif"), input_format("/x/frames.xyz@3"), input_format("POSCAR.Al")
    ('cif', 'extxyz', 'vasp')
    >>> input_format("/x/Cu.cif@scale=0.98"), input_format("from:12")  # scaled; hand-off
    ('extxyz', 'extxyz')
    """

    if source.startswith("from:"):  # submit --from, a workflow's from:STEP
        return "extxyz"  # the parent's structure, stored as extended XYZ at submit
    path, _, frame = source.rpartition("@")
    if path and (frame.isdigit() or frame.startswith("scale=")):
        return "extxyz"  # one frame of a multi-frame file, a scaled cell: extended XYZ
    name = Path(source).name
    if name.upper().startswith(("POSCAR", "CONTCAR")) or name.lower().endswith(".vasp"):
        return "vasp"
    return ASE_FORMAT.get(Path(source).suffix.lower())


def extxyz_text(atoms: Atoms) -> str:
    """Write ``atoms`` as extended-XYZ text (how job inputs carry a structure)."""
    from ase.io import write

    buffer = io.StringIO()
    write(buffer, atoms, format="extxyz")
    return buffer.getvalue()
