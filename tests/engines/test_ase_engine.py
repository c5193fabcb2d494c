"""The generic ase engine, against the same ASE calculators run by hand."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.cluster import Octahedron

from orion_cli.engines.ase_calculator import AseEngine
from orion_cli.engines.base import Result
from orion_cli.errors import UsageError
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

LJ = "ase.calculators.lj.LennardJones"
LJ_ARGON = {"calc.sigma": 3.4, "calc.epsilon": 0.0104, "calc.rc": 8.5, "calc.smooth": True}
MORSE = "ase.calculators.morse.MorsePotential"


def run_ase(atoms: Atoms, params: dict[str, Any], workdir: Path) -> Result:
    engine = AseEngine()
    checked = engine.check(params, {})
    workdir.mkdir()
    engine.prepare(atoms, checked, workdir, {})
    engine.run(workdir, checked, lambda step, pct: None)
    return engine.parse(workdir, checked)


def relaxed_by_hand(atoms: Atoms, calc: Any, fmax: float, cell: bool) -> Atoms:
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms = atoms.copy()
    atoms.calc = calc
    BFGS(FrechetCellFilter(atoms) if cell else atoms, logfile=None).run(fmax=fmax, steps=200)
    return atoms


def final(result: Result) -> Atoms:
    import ase.io

    assert result.final_structure is not None
    return ase.io.read(io.StringIO(result.final_structure), format="extxyz")  # type: ignore


def argon() -> Atoms:
    atoms = bulk("Ar", "fcc", a=5.6, cubic=True)
    atoms.rattle(0.05, seed=3)
    return atoms


def test_lennard_jones_single_point_matches_ase(tmp_path: Path) -> None:
    from ase.calculators.lj import LennardJones

    reference = argon()
    reference.calc = LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True)

    result = run_ase(argon(), {"calculator": LJ, **LJ_ARGON}, tmp_path / "orion")

    assert result.error is None and result.final_structure is None
    assert result.energy_ev == pytest.approx(reference.get_potential_energy(), abs=1e-10)
    assert np.allclose(result.forces_ev_per_a, reference.get_forces(), atol=1e-8)
    assert np.allclose(result.stress_ev_per_a3, reference.get_stress(), atol=1e-10)
    assert result.extras["calculator"] == LJ


def test_lennard_jones_cell_relaxation_matches_ase(tmp_path: Path) -> None:
    from ase.calculators.lj import LennardJones

    reference = relaxed_by_hand(
        argon(), LennardJones(sigma=3.4, epsilon=0.0104, rc=8.5, smooth=True), 0.001, cell=True
    )

    result = run_ase(
        argon(),
        {"calculator": LJ, **LJ_ARGON, "relax_cell": True, "fmax_ev_per_a": 0.001},
        tmp_path / "orion",
    )

    assert result.error is None and result.converged is True
    assert result.energy_ev == pytest.approx(reference.get_potential_energy(), abs=1e-10)
    assert np.allclose(final(result).cell, reference.cell, atol=1e-8)
    assert result.extras["volume_a3"] == pytest.approx(reference.get_volume(), abs=1e-8)
    assert result.extras["volume_a3"] < argon().get_volume() - 1.0  # 5.6 Å is too wide


def test_morse_cluster_relaxation_matches_ase(tmp_path: Path) -> None:
    from ase.calculators.morse import MorsePotential

    cluster = Octahedron("Cu", 3)
    cluster.rattle(0.05, seed=2)
    keywords = {"epsilon": 0.34, "r0": 2.6, "rho0": 4.0, "rcut1": 4.5, "rcut2": 5.5}
    reference = relaxed_by_hand(cluster, MorsePotential(**keywords), 0.01, cell=False)

    result = run_ase(
        cluster,
        {"calculator": MORSE, "relax": True, "fmax_ev_per_a": 0.01, "calc": keywords},
        tmp_path / "orion",
    )

    assert result.error is None and result.converged is True
    assert result.stress_ev_per_a3 is None  # a cluster has no stress
    assert result.energy_ev == pytest.approx(reference.get_potential_energy(), abs=1e-10)
    assert np.allclose(final(result).positions, reference.positions, atol=1e-8)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"calculator": "ase.calculators.nowhere.Calc"}, ["cannot import ase.calculators.nowhere"]),
        ({"calculator": "ase.calculators.lj.LenardJones"}, ["no calculator class LenardJones"]),
        ({"calculator": "os.system; rm"}, ["not a dotted path"]),
        ({"calculator": LJ, "calc.sigam": 3.4}, ["takes no keyword 'sigam'"]),
        ({}, ["needs a calculator"]),
    ],
)
def test_bad_calculators_are_refused_at_check(params: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        AseEngine().check(params, {})
    for word in words:
        assert word in info.value.message


def test_ase_engine_through_orion(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """orion submit --engine ase on the local scheduler; a bad path is one line, exit 2."""
    from ase.calculators.emt import EMT
    from ase.io import read

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    bad = orion(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "ase",
        "-p",
        "calculator=ase.calculators.emtt.EMT",
        expect=2,
    )
    assert len(bad.output.strip().splitlines()) == 1 and "ase.calculators.emtt" in bad.output
    assert not (orion_home / "orion.db").exists()

    job_id = orion_json(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "ase",
        "-p",
        "calculator=ase.calculators.emt.EMT",
        "-p",
        "relax_cell=true",
        "-p",
        "fmax_ev_per_a=0.01",
    )["id"]
    (job,) = poll_until_final([job_id])

    reference = relaxed_by_hand(read(EXAMPLES / "Cu.cif"), EMT(), 0.01, cell=True)
    assert job["status"] == "completed", job["error_message"]
    assert job["parameters"]["calculator"] == "ase.calculators.emt.EMT"
    assert job["result"]["energy_ev"] == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    assert job["result"]["extras"]["volume_a3"] == pytest.approx(reference.get_volume(), abs=1e-6)
