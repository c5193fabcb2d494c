"""`--from ID`: a child starts from its parent's final structure, read on the node."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final


def test_emt_relax_then_single_point(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ase.calculators.emt import EMT
    from ase.io import read, write
    from ase.optimize import BFGS

    use_test_scheduler(monkeypatch)
    distorted = read(EXAMPLES / "Cu.cif")
    distorted.positions[0] += (0.15, 0.05, 0.0)
    write(tmp_path / "d.xyz", distorted, format="extxyz")
    relax = orion_json(
        "submit",
        str(tmp_path / "d.xyz"),
        "--engine",
        "emt",
        "-p",
        "relax=true",
        "-p",
        "fmax_ev_per_a=0.01",
        "--name",
        "relax",
    )["id"]
    scf = orion_json("submit", "--engine", "emt", "--from", str(relax))["id"]
    jobs = {j["id"]: j for j in poll_until_final([relax, scf])}
    assert jobs[scf]["status"] == "completed", jobs[scf]
    assert jobs[scf]["structure_from_id"] == relax and jobs[scf]["parents"][0]["id"] == relax
    assert jobs[scf]["name"] == "relax"  # named after its parent unless --name

    reference = distorted.copy()  # the same relaxation, by hand
    reference.calc = EMT()
    BFGS(reference, logfile=None).run(fmax=0.01, steps=200)
    child_input = read(Path(jobs[scf]["workdir"]) / "structure-from-parent.xyz")
    assert child_input.positions == pytest.approx(reference.positions, abs=2e-3)
    single = read(io.StringIO(jobs[relax]["result"]["final_structure"]), format="extxyz")
    single.calc = EMT()
    assert jobs[scf]["result"]["energy_ev"] == pytest.approx(
        single.get_potential_energy(), abs=1e-9
    )
    unrelaxed = distorted.copy()
    unrelaxed.calc = EMT()
    assert jobs[scf]["result"]["energy_ev"] < unrelaxed.get_potential_energy() - 1e-3


def test_from_needs_a_final_structure(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_test_scheduler(monkeypatch)
    assert "no job with id 5" in orion("submit", "--engine", "emt", "--from", "5", expect=2).stderr
    single = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt")["id"]
    poll_until_final([single])
    result = orion("submit", "--engine", "emt", "--from", str(single), expect=2)
    assert "completed without a final structure" in result.stderr
    both = orion(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt", "--from", str(single), expect=2
    )
    assert "either structure files or --from" in both.stderr
    assert len(orion_json("ls")) == 1


@pytest.mark.engines
def test_qe_relax_then_scf(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real pw.x: the scf child's pw.in holds the positions pw.x itself printed last."""
    from ase.io import read, write

    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    use_test_scheduler(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    distorted = read(EXAMPLES / "Si.cif")
    distorted.positions[0] += (0.12, 0.05, -0.04)
    write(tmp_path / "si.xyz", distorted, format="extxyz")
    fixed = ["-p", "ecutwfc_ry=16", "-p", "kpoints=2,2,2", "-p", "smearing=none"]
    relax = orion_json(
        "submit", str(tmp_path / "si.xyz"), "--engine", "qe", "-p", "calculation=relax", *fixed
    )["id"]
    scf = orion_json("submit", "--engine", "qe", "--from", str(relax), *fixed)["id"]
    jobs = {j["id"]: j for j in poll_until_final([relax, scf], timeout_s=180)}
    assert jobs[relax]["status"] == "completed", jobs[relax]["error_message"]
    assert jobs[scf]["status"] == "completed", jobs[scf]["error_message"]

    by_pw = read(Path(jobs[relax]["workdir"]) / "pw.out", format="espresso-out", index=-1)
    child = read(Path(jobs[scf]["workdir"]) / "pw.in", format="espresso-in")
    assert child.positions == pytest.approx(by_pw.positions, abs=1e-5)
    assert child.cell.array == pytest.approx(by_pw.cell.array, abs=1e-6)
    assert abs(child.positions - distorted.positions).max() > 0.01  # it did move
    assert jobs[scf]["result"]["energy_ev"] == pytest.approx(by_pw.get_potential_energy(), abs=2e-3)
