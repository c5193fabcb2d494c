"""The emt engine's cell relaxation, against ASE's FrechetCellFilter + BFGS run by hand."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from orion_cli.engines.base import Result
from orion_cli.engines.emt import EmtEngine
from orion_cli.errors import UsageError


def run_emt(atoms: Atoms, params: dict[str, Any], workdir: Path) -> Result:
    engine = EmtEngine()
    checked = engine.check(params, {})
    workdir.mkdir()
    engine.prepare(atoms, checked, workdir, {})
    engine.run(workdir, checked, lambda step, pct: None)
    return engine.parse(workdir, checked)


def by_hand(atoms: Atoms, fmax: float, pressure_gpa: float = 0.0) -> Atoms:
    from ase.calculators.emt import EMT
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS
    from ase.units import GPa

    atoms = atoms.copy()
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms, scalar_pressure=pressure_gpa * GPa), logfile=None).run(
        fmax=fmax, steps=200
    )
    return atoms


def final(result: Result) -> Atoms:
    import ase.io

    assert result.final_structure is not None
    return ase.io.read(io.StringIO(result.final_structure), format="extxyz")  # type: ignore


@pytest.mark.parametrize("pressure_gpa", [0.0, 5.0])
def test_cell_relaxation_matches_ase_by_hand(tmp_path: Path, pressure_gpa: float) -> None:
    start = bulk("Cu", "fcc", a=3.75, cubic=True)
    start.rattle(0.02, seed=1)
    params = {"relax_cell": True, "fmax_ev_per_a": 0.005, "pressure_gpa": pressure_gpa}

    result = run_emt(start, params, tmp_path / "orion")
    reference = by_hand(start, 0.005, pressure_gpa)

    assert result.error is None and result.converged is True
    assert result.energy_ev == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    assert np.allclose(final(result).cell, reference.cell, atol=1e-8)
    assert np.allclose(final(result).positions, reference.positions, atol=1e-8)
    assert result.extras["volume_a3"] == pytest.approx(reference.get_volume(), abs=1e-8)
    assert abs(result.extras["volume_a3"] - start.get_volume()) > 1.0  # the cell did move
    assert result.stress_ev_per_a3 is not None
    assert np.allclose(result.stress_ev_per_a3, reference.get_stress(), atol=1e-10)


def test_relax_without_cell_keeps_the_cell(tmp_path: Path) -> None:
    start = bulk("Cu", "fcc", a=3.75, cubic=True)
    start.rattle(0.02, seed=1)
    result = run_emt(start, {"relax": True}, tmp_path / "orion")
    assert np.allclose(final(result).cell, start.cell)


def test_cell_relaxation_needs_a_crystal_and_pressure_needs_it(tmp_path: Path) -> None:
    molecule = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0, 0]])
    with pytest.raises(UsageError, match="periodic"):
        EmtEngine().prepare(molecule, EmtEngine().check({"relax_cell": True}, {}), tmp_path, {})
    with pytest.raises(UsageError, match="relax_cell=true"):
        EmtEngine().check({"pressure_gpa": 1.0}, {})
