"""`orion show` prints volume, pressure and the final cell, computed from the stored result.

References: ASE's EMT run by hand on the same structures (``get_volume``, ``get_stress``,
``ase.units.GPa``, a FrechetCellFilter relaxation with the same settings).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from ase.units import GPa

from tests.conftest import use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final


def by_hand(atoms, relax_pressure_gpa: float | None = None):  # type: ignore[no-untyped-def]
    atoms = atoms.copy()
    atoms.calc = EMT()
    if relax_pressure_gpa is not None:
        BFGS(FrechetCellFilter(atoms, scalar_pressure=relax_pressure_gpa * GPa), logfile=None).run(
            fmax=0.002, steps=200
        )
    pressure_gpa = -np.trace(atoms.get_stress(voigt=False)) / 3 / GPa
    return atoms.get_volume(), pressure_gpa, atoms.cell[:]


def test_show_prints_volume_pressure_and_cell(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_test_scheduler(monkeypatch)
    atoms = bulk("Cu", "fcc", a=3.5) * (2, 1, 1)  # compressed: a clear positive pressure
    atoms.rattle(0.02, seed=3)
    atoms.write(tmp_path / "Cu.extxyz", format="extxyz")
    single = orion_json("submit", str(tmp_path / "Cu.extxyz"), "--engine", "emt")["id"]
    relaxed = orion_json(
        "submit",
        str(tmp_path / "Cu.extxyz"),
        "--engine",
        "emt",
        "-p",
        "relax_cell=true",
        "-p",
        "pressure_gpa=5",
        "-p",
        "fmax_ev_per_a=0.002",
    )["id"]
    jobs = poll_until_final([single, relaxed])
    assert [job["status"] for job in jobs] == ["completed", "completed"]

    for job, reference in zip(jobs, (by_hand(atoms), by_hand(atoms, 5.0)), strict=True):
        volume_a3, pressure_gpa, cell_a = reference
        derived = job["result"]["derived"]
        assert derived["volume_a3"] == pytest.approx(volume_a3, rel=1e-7)
        assert derived["pressure_gpa"] == pytest.approx(pressure_gpa, abs=1e-4)
        np.testing.assert_allclose(derived["cell_a"], cell_a, atol=1e-6)
        text = orion("show", str(job["id"])).stdout
        assert f"volume          {volume_a3:.4f} Å³" in text
        assert f"pressure        {pressure_gpa:.4f} GPa" in text
        assert ("final cell (Å)" in text) == (job["id"] == relaxed)
        assert f"a  {cell_a[0][0]:11.6f}" in text
    assert by_hand(atoms)[1] > 10  # the single point is under pressure; the relaxed one is at 5
    assert jobs[1]["result"]["derived"]["pressure_gpa"] == pytest.approx(5.0, abs=0.1)
