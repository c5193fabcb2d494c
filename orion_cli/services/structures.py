"""Read structures (CIF, POSCAR, xyz, extxyz, ...) with ASE, with errors a person can act on."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms


def read_structure(path: Path) -> Atoms:
    """Read the first frame of ``path``; raise UsageError when it is missing or unreadable."""
    from ase.io import read

    if not path.exists():
        raise UsageError(f"structure file '{path}' does not exist", "check the path")
    if not path.is_file():
        raise UsageError(f"'{path}' is not a file", "give a structure file (CIF, POSCAR, xyz)")
    try:
        atoms = cast("Atoms", read(path, index=0))
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds for bad files
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot read a structure from '{path}': {detail}",
            "give a CIF, POSCAR/CONTCAR, xyz or extxyz file (the extension selects the format)",
        ) from None
    if len(atoms) == 0:
        raise UsageError(f"'{path}' holds no atoms", "check the file")
    return atoms
