"""Read CIF files without ASE's quadratic symmetry expansion; refuse unreadable coordinates.

ASE's CIF reader expands every atom site over the space group with
``Spacegroup.equivalent_sites``, which compares each new site with every kept one in Python:
a 4,000-atom P1 cell took minutes (profiled: all the time in ``equivalent_sites``), 100,800
atoms never finished. Parsing the file itself is linear. So: files of at most
:data:`CIF_SYMMETRY_MAX_SITES` sites go through ASE's reader as before; larger P1 files (the
only symmetry operation is x, y, z — what every program writes for a supercell) are built from
their sites directly, wrapped into the cell as ASE would; larger files with symmetry are refused.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

#: above this many atom sites, orion reads only P1 CIFs (ASE's symmetry expansion is O(sites²))
CIF_SYMMETRY_MAX_SITES = 2_000
_COORDINATE_KEYS = (
    ("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z"),
    ("_atom_site_cartn_x", "_atom_site_cartn_y", "_atom_site_cartn_z"),
)


def read_large_cif(text: str, path: Path) -> list[Atoms] | None:
    """The frames of a CIF with more than :data:`CIF_SYMMETRY_MAX_SITES` sites, else None.

    None means "small enough for ASE's reader". Raises UsageError naming the file for a
    coordinate that is not a finite number (ASE answers that with a numpy message) and for a
    large file with symmetry operations.
    """
    from ase.io.cif import parse_cif

    blocks = [block for block in parse_cif(io.StringIO(text)) if block.has_structure()]
    for block in blocks:
        check_coordinates(block, path)
    sites = sum(len(block.get_symbols()) for block in blocks)
    if sites <= CIF_SYMMETRY_MAX_SITES:
        return None
    if not all(_is_p1(block) for block in blocks):
        raise UsageError(
            f"'{path}' has {sites:,} atom sites and symmetry operations; orion expands "
            f"symmetry for up to {CIF_SYMMETRY_MAX_SITES:,} sites",
            "write the expanded cell as P1 CIF or extxyz (e.g. with VESTA or ase convert)",
        )
    return [_p1_atoms(block) for block in blocks]


def check_coordinates(block: Any, path: Path) -> None:
    """Raise UsageError if a site coordinate of ``block`` is not a finite number."""
    present = [keys for keys in _COORDINATE_KEYS if block.get(keys[0]) is not None]
    keys = present[0] if present else None
    if keys is None:
        return
    labels = block.get("_atom_site_label") or block.get("_atom_site_type_symbol") or []
    for axis in keys:
        for index, value in enumerate(block.get(axis)):
            if not isinstance(value, float | int) or not math.isfinite(value):
                label = f" ({labels[index]})" if index < len(labels) else ""
                raise UsageError(
                    f"'{path}': position of atom {index}{label} is not finite "
                    f"({axis} is {str(value)[:40]!r}, not a number)",
                    "fix the structure file",
                )


def _is_p1(block: Any) -> bool:
    spacegroup = block.get_spacegroup(True)
    return bool(spacegroup.no == 1 and spacegroup.nsymop == 1)


def _p1_atoms(block: Any) -> Atoms:
    """The sites of a P1 block as periodic Atoms, scaled positions wrapped into [0, 1)."""
    import numpy as np

    atoms = block.get_unsymmetrized_structure()
    atoms.pbc = True
    if block.get(_COORDINATE_KEYS[0][0]) is not None:
        atoms.set_scaled_positions(np.mod(atoms.get_scaled_positions(wrap=False), 1.0))
    return atoms
