"""Numbers a person wants from a stored result: volume, pressure, the final cell.

Pure functions on what the database holds (no ASE: ``orion show`` stays quick). The cell
is the final structure's (extended XYZ ``Lattice="..."``), else the one the in-process
engines record in ``extras["cell_a"]``; the pressure is minus the mean of the stress's
diagonal (Voigt order xx yy zz yz xz xy, eV/Å³), as ``ase.units`` converts it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: 1 eV/Å³ in GPa (CODATA 2014, as ase.units: 1 / ase.units.GPa)
GPA_PER_EV_PER_A3 = 160.21766208
_LATTICE = re.compile(r'Lattice="([^"]*)"')

Cell = list[list[float]]


def extxyz_cell_a(text: str | None) -> Cell | None:
    """The cell (Å, rows a b c) of an extended-XYZ frame's comment line, or None.

    >>> extxyz_cell_a('1\\nLattice="2 0 0 0 3 0 0 0 4" pbc="T T T"\\nH 0 0 0\\n')
    [[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]]
    >>> extxyz_cell_a("1\\nno cell\\nH 0 0 0\\n") is None
    True
    """
    lines = (text or "").split("\n", 2)
    match = _LATTICE.search(lines[1]) if len(lines) > 1 else None
    if not match:
        return None
    try:
        numbers = [float(word) for word in match[1].split()]
    except ValueError:
        return None
    return _cell(numbers)


def _cell(numbers: Any) -> Cell | None:
    """Nine finite numbers (flat or 3×3) as a 3×3 cell, else None."""
    if (
        isinstance(numbers, list)
        and len(numbers) == 3
        and all(isinstance(row, list) for row in numbers)
    ):
        numbers = [x for row in numbers for x in row]
    if (
        not isinstance(numbers, list)
        or len(numbers) != 9
        or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in numbers
        )
    ):
        return None
    return [[float(x) for x in numbers[i : i + 3]] for i in (0, 3, 6)]


def volume_a3(cell: Cell) -> float:
    """The volume of ``cell`` (Å³): the absolute value of its determinant.

    >>> volume_a3([[2, 0, 0], [0, 3, 0], [1, 1, 4]])
    24.0
    """
    (a, b, c), (d, e, f), (g, h, i) = cell
    return float(abs(a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g)))


def pressure_gpa(stress_ev_per_a3: Any) -> float | None:
    """Hydrostatic pressure (GPa) of a Voigt stress (eV/Å³): ``-(xx + yy + zz) / 3``.

    >>> round(pressure_gpa([-0.01, -0.01, -0.01, 0, 0, 0]), 6)
    1.602177
    >>> pressure_gpa(None) is None
    True
    """
    if not isinstance(stress_ev_per_a3, list) or len(stress_ev_per_a3) not in (6, 9):
        return None
    values = stress_ev_per_a3
    diagonal = values[:3] if len(values) == 6 else [values[0], values[4], values[8]]
    if not all(isinstance(x, int | float) and math.isfinite(x) for x in diagonal):
        return None
    return -sum(diagonal) / 3 * GPA_PER_EV_PER_A3


def derived_quantities(result: Mapping[str, Any]) -> dict[str, Any]:
    """``volume_a3``, ``pressure_gpa`` and ``cell_a`` of a stored result, those it allows."""
    extras = result.get("extras") or {}
    cell = extxyz_cell_a(result.get("final_structure")) or _cell(extras.get("cell_a"))
    derived: dict[str, Any] = {}
    if cell is not None and volume_a3(cell) > 0:
        derived["volume_a3"] = volume_a3(cell)
    pressure = pressure_gpa(result.get("stress_ev_per_a3"))
    if pressure is not None:
        derived["pressure_gpa"] = pressure
    if cell is not None:
        derived["cell_a"] = cell
    return derived
