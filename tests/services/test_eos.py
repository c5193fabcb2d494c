"""`orion eos` on EMT Cu: the fit agrees with ASE's EquationOfState run by hand on the same
energies, and the lattice constant with EMT's own minimum."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, use_test_scheduler
from tests.helpers import orion, orion_json

EV_PER_A3_IN_GPA = 160.21766208


def test_eos_of_cu_with_emt(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.eos import EquationOfState
    from ase.io import read
    from scipy.optimize import minimize_scalar

    use_test_scheduler(monkeypatch)
    out = orion_json(
        "eos",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "emt",
        "--points",
        "7",
        "--strain",
        "0.05",
        "--wait",
    )
    assert len(out["points"]) == 7 and out["study_id"] == out["points"][0]
    fit = orion_json("show", str(out["fit"]))
    assert fit["status"] == "completed" and fit["parents"][0]["kind"] == "afterany"
    extras = fit["result"]["extras"]
    assert Path(fit["workdir"], "eos.png").stat().st_size > 1000

    volumes, energies = [], []  # the same study, by hand
    cu = read(EXAMPLES / "Cu.cif")
    for i in range(7):
        atoms = cu.copy()
        atoms.set_cell(cu.cell * (1 + 0.05 * (2 * i / 6 - 1)), scale_atoms=True)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    assert extras["volumes_a3"] == pytest.approx(volumes, rel=1e-9)
    assert extras["energies_ev"] == pytest.approx(energies, abs=1e-9)
    assert extras["v0_a3"] == pytest.approx(v0, rel=1e-9)
    assert extras["e0_ev"] == pytest.approx(e0, abs=1e-9)
    assert extras["b_gpa"] == pytest.approx(b * EV_PER_A3_IN_GPA, rel=1e-9)

    def energy(a: float) -> float:  # EMT's own lattice constant, without any fit
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    a0 = minimize_scalar(energy, bounds=(3.4, 3.8), method="bounded").x
    assert extras["v0_a3"] ** (1 / 3) == pytest.approx(a0, abs=2e-3)
    rows = orion_json("ls")
    assert len(rows) == 8
    study = orion("results", "--study", str(out["study_id"]), "-f", "csv").stdout
    assert len(study.strip().splitlines()) == 1 + 8


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--points", "3"], "needs 5 to 101 points"),
        (["--strain", "0.7"], "between 0 and 0.5"),
        (["--eos", "quadratic"], "unknown form"),
        (["--engine", "nope"], "unknown engine"),
    ],
)
def test_eos_bad_input(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], text: str
) -> None:
    use_test_scheduler(monkeypatch)
    engine = [] if "--engine" in args else ["--engine", "emt"]
    result = orion("eos", str(EXAMPLES / "Cu.cif"), *engine, *args, expect=2)
    assert text in result.stderr
    assert not (orion_home / "orion.db").exists()


def test_eos_refuses_a_molecule(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ase.build import molecule
    from ase.io import write

    use_test_scheduler(monkeypatch)
    write(tmp_path / "h2o.xyz", molecule("H2O"), format="extxyz")
    result = orion("eos", str(tmp_path / "h2o.xyz"), "--engine", "emt", expect=2)
    assert "not periodic" in result.stderr


def test_eos_relax_first_scales_the_relaxed_cell(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A strained, distorted Cu cell: relaxed (atoms and cell) first, then the EOS around the
    relaxed cell; the same relaxation and fit done by hand with ASE agree."""
    from ase.calculators.emt import EMT
    from ase.eos import EquationOfState
    from ase.filters import FrechetCellFilter
    from ase.io import read, write
    from ase.optimize import BFGS

    use_test_scheduler(monkeypatch)
    strained = read(EXAMPLES / "Cu.cif")
    strained.set_cell(strained.cell * 1.04, scale_atoms=True)
    strained.positions[0] += (0.08, 0.03, 0.0)
    write(tmp_path / "strained.xyz", strained, format="extxyz")
    args = ["eos", str(tmp_path / "strained.xyz"), "--engine", "emt", "--points", "5"]
    out = orion_json(*args, "-p", "fmax_ev_per_a=0.01", "--relax-first", "--wait")
    assert out["study_id"] == out["relax"] and len(out["points"]) == 5
    relax = orion_json("show", str(out["relax"]))
    assert relax["status"] == "completed" and relax["parameters"]["relax_cell"] is True
    points = [orion_json("show", str(i)) for i in out["points"]]
    assert all(p["structure_from_id"] == out["relax"] for p in points)
    assert all(p["study_id"] == out["relax"] for p in points)
    assert [p["name"] for p in points] == [f"strained-eos-{n}" for n in range(5)]

    relaxed = strained.copy()  # the same relaxation and study, by hand
    relaxed.calc = EMT()
    BFGS(FrechetCellFilter(relaxed), logfile=None).run(fmax=0.01, steps=200)
    volumes, energies = [], []
    for point, scale in zip(points, out["scales"], strict=True):
        cell = relaxed.copy()
        cell.set_cell(relaxed.cell * scale, scale_atoms=True)
        cell.calc = EMT()
        volumes.append(cell.get_volume())
        energies.append(cell.get_potential_energy())
        ran = read(Path(point["workdir"]) / "structure-from-parent.xyz")
        assert ran.cell.array == pytest.approx(cell.cell.array, abs=2e-3)
    extras = orion_json("show", str(out["fit"]))["result"]["extras"]
    assert extras["volumes_a3"] == pytest.approx(volumes, rel=1e-3)
    assert extras["energies_ev"] == pytest.approx(energies, abs=1e-3)
    v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    assert extras["v0_a3"] == pytest.approx(v0, rel=1e-3)
    assert extras["b_gpa"] == pytest.approx(b * EV_PER_A3_IN_GPA, rel=1e-2)
    assert extras["v0_a3"] == pytest.approx(relaxed.get_volume(), rel=2e-3)  # at the minimum
    assert extras["v0_a3"] < strained.get_volume() * 0.95  # not the strained cell's EOS
    study = orion("results", "--study", str(out["study_id"])).stdout
    assert f"job {out['fit']}: V0 = {extras['v0_a3']:.4f}" in study


@pytest.mark.parametrize("engine", ["mock", "vasp"])
def test_eos_relax_first_refuses_engines_that_cannot_relax(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    use_test_scheduler(monkeypatch)
    result = orion("eos", str(EXAMPLES / "Cu.cif"), "--engine", engine, "--relax-first", expect=2)
    assert f"--relax-first: engine '{engine}' has no relaxation" in result.stderr
    assert "use emt, ase, qe, lammps" in result.stderr
    assert not (orion_home / "orion.db").exists()
