"""Workflow studies that recover and chain as a DFT user expects (issue 21): `workflow retry
--failed` reruns the cancelled point a failed fit needs; `-p --step S` reaches S's
dependency_failed jobs; an EOS sweep `from:` a relaxed parent scales the relaxed cell. Each
answer checked against ASE run by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, STUDY_BACKENDS, use_backend, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"
EV_PER_A3_IN_GPA = 160.21766208
SCALES = (0.94, 0.97, 1.0, 1.03, 1.06)


@pytest.fixture(params=STUDY_BACKENDS)
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def _submit(*args: str) -> dict:
    [study] = json.loads(orion("workflow", "submit", *args, "--json").stdout)
    assert not study["errors"], study
    return study


def _eos_by_hand(cell: object) -> tuple[list[float], list[float]]:
    from ase.calculators.emt import EMT

    volumes, energies = [], []
    for scale in SCALES:
        atoms = cell.copy()  # type: ignore[attr-defined]
        atoms.set_cell(atoms.cell * scale, scale_atoms=True)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    return volumes, energies


def test_retry_failed_reruns_the_cancelled_point_the_fit_needs(backend: str) -> None:
    """Trial D2: a point cancelled by hand, the fit fails (4 of 5 points); one `workflow
    retry --failed` reruns the point and the fit, which then equals ASE's fit by hand."""
    from ase.eos import EquationOfState
    from ase.io import read

    study = _submit(str(STUDIES / "cu-relax-eos.toml"), str(EXAMPLES / "Cu.cif"), "--hold")
    steps, sid = study["steps"], str(study["study_id"])
    point, fit_id = steps["points"][2], steps["fit"][0]
    orion("cancel", str(point))
    orion("release", "--study", sid)
    every = [i for ids in steps.values() for i in ids]
    jobs = {j["id"]: j for j in poll_until_final(every, timeout_s=600)}
    assert jobs[fit_id]["status"] == "failed"
    assert f"only 4 of 5 points have an energy (failed: {point})" in jobs[fit_id]["error_message"]

    result = orion("workflow", "retry", sid, "--failed")
    assert f"2 retried ({point}, {fit_id})" in result.stderr
    jobs = {j["id"]: j for j in poll_until_final(every, timeout_s=600)}
    assert jobs[point]["status"] == jobs[fit_id]["status"] == "completed"
    assert jobs[steps["relax"][0]]["attempt"] == 1  # completed: not rerun

    volumes, energies = _eos_by_hand(read(EXAMPLES / "Cu.cif"))
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    extras = jobs[fit_id]["result"]["extras"]
    assert extras["jobs_used"] == steps["points"]
    assert extras["v0_a3"] == pytest.approx(v0, rel=1e-7)
    assert extras["b_gpa"] == pytest.approx(b * EV_PER_A3_IN_GPA, rel=1e-6)
    assert extras["b_prime"] == pytest.approx(eos.eos_parameters[2], rel=1e-5)
    assert extras["a0_a"] == pytest.approx(v0 ** (1 / 3), rel=1e-7)  # Cu.cif: cubic cell


CHAIN = """
[steps.relax]
engine = "mock"
params = { fail = true, duration_s = 0.2 }

[steps.scf]
engine = "mock"
needs = ["relax"]
params = { seed = 1, duration_s = 0.2 }

[steps.bands]
engine = "mock"
needs = ["scf"]
params = { duration_s = 0.2 }
"""


def test_retry_p_with_step_reaches_the_steps_dependency_failed_jobs(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trial (Ge, round 3): the scf was cancelled (dependency_failed) because the relax
    failed; `-p KEY=V --step scf` must change the scf that is rerun, and rerun the relax it
    needs (with its own parameters) and the bands below it."""
    use_test_scheduler(monkeypatch)
    path = tmp_path / "chain.toml"
    path.write_text(CHAIN)
    study = _submit(str(path), str(EXAMPLES / "Cu.cif"))
    steps, sid = study["steps"], str(study["study_id"])
    relax, scf, bands = steps["relax"][0], steps["scf"][0], steps["bands"][0]
    jobs = {j["id"]: j for j in poll_until_final([relax, scf, bands], timeout_s=300)}
    assert (jobs[scf]["status"], jobs[scf]["failure_reason"]) == ("cancelled", "dependency_failed")

    result = orion("workflow", "retry", sid, "--failed", "--step", "scf", "-p", "seed=7")
    assert f"3 retried ({relax}, {scf}, {bands})" in result.stderr
    after = {i: orion_json("show", str(i)) for i in (relax, scf, bands)}
    assert after[scf]["parameters"]["seed"] == 7  # the change reached the cancelled scf
    assert after[relax]["parameters"] == jobs[relax]["parameters"]  # not its step
    assert after[bands]["parameters"] == jobs[bands]["parameters"]
    assert [after[i]["attempt"] for i in (relax, scf, bands)] == [2, 2, 2]
    poll_until_final([relax, scf, bands], timeout_s=300)


RELAX_THEN_EOS = """
[steps.relax]
engine = "emt"
params = { relax = true, relax_cell = true, fmax_ev_per_a = 0.01 }

[steps.points]
engine = "emt"
needs = ["relax"]
structure = "from:relax"          # each point scales the RELAXED cell
sweep = { scale = [0.94, 0.97, 1.0, 1.03, 1.06] }

[steps.fit]
engine = "eos"
needs_any = ["points"]
"""


def test_an_eos_sweep_from_a_relaxed_parent(backend: str, tmp_path: Path) -> None:
    """relax (atoms and cell), then the EOS around the relaxed cell: the same relaxation
    and fit by hand with ASE agree, and V0 sits at the relaxed volume."""
    from ase.calculators.emt import EMT
    from ase.eos import EquationOfState
    from ase.filters import FrechetCellFilter
    from ase.io import read, write
    from ase.optimize import BFGS

    strained = read(EXAMPLES / "Cu.cif")
    strained.set_cell(strained.cell * 1.04, scale_atoms=True)
    write(tmp_path / "strained.xyz", strained, format="extxyz")
    path = tmp_path / "relax-eos.toml"
    path.write_text(RELAX_THEN_EOS)
    study = _submit(str(path), str(tmp_path / "strained.xyz"))
    steps = study["steps"]
    every = [i for ids in steps.values() for i in ids]
    jobs = {j["id"]: j for j in poll_until_final(every, timeout_s=600)}
    assert {j["status"] for j in jobs.values()} == {"completed"}, jobs
    points = [jobs[i] for i in steps["points"]]
    assert {p["structure_from_id"] for p in points} == {steps["relax"][0]}

    relaxed = strained.copy()  # by hand
    relaxed.calc = EMT()
    BFGS(FrechetCellFilter(relaxed), logfile=None).run(fmax=0.01, steps=200)
    volumes, energies = _eos_by_hand(relaxed)
    v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    extras = jobs[steps["fit"][0]]["result"]["extras"]
    assert extras["volumes_a3"] == pytest.approx(volumes, rel=1e-3)
    assert extras["energies_ev"] == pytest.approx(energies, abs=1e-3)
    assert extras["v0_a3"] == pytest.approx(v0, rel=1e-3)
    assert extras["v0_a3"] == pytest.approx(relaxed.get_volume(), rel=2e-3)
    assert extras["v0_a3"] < strained.get_volume() * 0.95  # not the strained input's EOS
