"""`orion converge`: a cutoff sweep of Si on real pw.x through real SLURM, checked against
pw.x run by hand on the same inputs; and every bad sweep refused in one line, nothing written."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final

CUTOFFS_RY = [12, 16, 20, 24]


def by_hand_energy_ev(workdir: Path, scratch: Path) -> float:
    """pw.x run here on the job's own pw.in; the last energy it prints, Ry in eV.

    ase.units.Ry (CODATA 2014), as orion documents; ASE's espresso-out reader uses CODATA
    2006, 8e-8 relative (2e-5 eV here) away.
    """
    from ase.units import Ry

    scratch.mkdir()
    shutil.copy(workdir / "pw.in", scratch / "pw.in")
    with (scratch / "pw.out").open("w") as out:
        subprocess.run(["pw.x", "-in", "pw.in"], cwd=scratch, stdout=out, check=True)
    energies = re.findall(
        r"^!\s+total energy\s+=\s+(\S+) Ry", (scratch / "pw.out").read_text(), re.M
    )
    return float(energies[-1]) * Ry


@pytest.mark.slurm
@pytest.mark.engines
def test_qe_cutoff_convergence_of_si(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm: None
) -> None:
    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tol = 20.0  # this pseudopotential converges slowly: 14 meV/atom at 20 Ry
    out = orion_json(
        "converge",
        str(EXAMPLES / "Si.cif"),
        "--engine",
        "qe",
        "--sweep",
        "ecutwfc_ry=12:24:4",
        "-p",
        "kpoints=2,2,2",
        "-p",
        "smearing=none",
        "--tol",
        str(tol),
        "--walltime",
        "5m",
    )
    assert out["values"] == CUTOFFS_RY and out["errors"] == []
    jobs = poll_until_final([*out["jobs"], out["analysis"]], timeout_s=240)
    *sweep, analysis = jobs
    assert all(j["status"] == "completed" for j in jobs), [(j["id"], j["status"]) for j in jobs]
    assert len({j["scheduler_job_id"].split("_")[0] for j in sweep}) == 1  # one array
    assert {j["study_id"] for j in jobs} == {out["study_id"]} == {out["jobs"][0]}

    energies = []  # pw.x by hand on each job's own input, which holds its own cutoff
    for cutoff, job in zip(CUTOFFS_RY, sweep, strict=True):
        pw_in = (Path(job["workdir"]) / "pw.in").read_text()
        assert re.search(rf"^\s*ecutwfc\s*=\s*{cutoff}(\.0*)?\s*$", pw_in, re.M), pw_in
        energies.append(by_hand_energy_ev(Path(job["workdir"]), tmp_path / str(cutoff)))
    per_atom = [e / 2 for e in energies]
    differences = [1000 * (e - per_atom[-1]) for e in per_atom]
    expected = next(
        c for n, c in enumerate(CUTOFFS_RY[:-1]) if all(abs(d) <= tol for d in differences[n:])
    )
    extras = analysis["result"]["extras"]
    assert extras["energies_ev"] == pytest.approx(energies, abs=1e-6)
    assert extras["differences_mev_per_atom"] == pytest.approx(differences, abs=1e-3)
    assert extras["converged_value"] == expected
    assert expected != CUTOFFS_RY[0]  # a sweep that says something
    assert analysis["result"]["converged"] is True
    assert Path(analysis["workdir"], "convergence.png").stat().st_size > 1000

    answer = f"ecutwfc_ry converged at {expected}"
    assert answer in orion("show", str(analysis["id"])).stdout
    study = orion("results", "--study", str(out["study_id"])).stdout
    assert answer in study and "param.ecutwfc_ry" in study and "param.jobs" not in study


def test_emt_relaxation_threshold_sweep_given_as_a_param_range(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form `-p KEY=start:stop:step` with a decreasing float range, on EMT, on each
    database: each value's energy is the one ASE's BFGS gives by hand with that force
    threshold, and `orion results --study` says the answer."""
    from ase.calculators.emt import EMT
    from ase.io import read, write
    from ase.optimize import BFGS

    use_test_scheduler(monkeypatch)
    distorted = read(EXAMPLES / "Cu.cif")
    distorted.positions[0] += (0.2, 0.1, 0.0)
    write(tmp_path / "d.xyz", distorted, format="extxyz")
    out = orion_json(
        "converge",
        str(tmp_path / "d.xyz"),
        "-e",
        "emt",
        "-p",
        "relax=true",
        "-p",
        "fmax_ev_per_a=0.5:0.01:-0.07",
        "--tol",
        "0.5",
        "--wait",
    )
    values = [0.5, 0.43, 0.36, 0.29, 0.22, 0.15, 0.08, 0.01]
    assert out["parameter"] == "fmax_ev_per_a" and out["values"] == pytest.approx(values)
    energies = []
    for fmax in out["values"]:
        atoms = distorted.copy()
        atoms.calc = EMT()
        BFGS(atoms, logfile=None).run(fmax=fmax, steps=200)
        energies.append(atoms.get_potential_energy())
    extras = out["result"]["extras"]
    assert extras["energies_ev"] == pytest.approx(energies, abs=1e-8)
    within = [abs(1000 * (e - energies[-1]) / 4) <= 0.5 for e in energies]
    first = next(n for n in range(len(values)) if all(within[n:]))
    assert extras["converged_value"] == pytest.approx(values[first])
    assert 0 < first < len(values) - 1  # neither the first value nor none
    study = orion("results", "--study", str(out["study_id"])).stdout
    assert f"job {out['analysis']}: fmax_ev_per_a converged at {values[first]}" in study


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--sweep", "ecutwfc_ry=30"], "gives one value"),
        (["--sweep", "ecutwfc_ry=20:abc:10"], "'abc' is not a number"),
        (["--sweep", "ecutwfc_ry=20:60:0"], "step 0 does not go from 20 to 60"),
        (["--sweep", "ecutwfc_ry=60:20:10"], "step 10 does not go from 60 to 20"),
        (["--sweep", "ecutwfc_ry=1:100:1"], "gives more than 30 values"),
        (["--sweep", "kpoints=2x2,4x4x4"], "'2x2' is not a k-point mesh"),
        (["--sweep", "cutoff=20,30"], "engine 'qe' has no parameter 'cutoff'"),
        (["--sweep", "ecutwfc_ry=20,30", "-p", "ecutwfc_ry=40"], "both swept and fixed"),
        (["--sweep", "ecutwfc_ry=20,30", "--tol", "0"], "--tol 0.0: must be positive"),
        ([], "no swept parameter given"),
    ],
)
def test_converge_bad_input(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], text: str
) -> None:
    use_test_scheduler(monkeypatch)
    result = orion("converge", str(EXAMPLES / "Si.cif"), "--engine", "qe", *args, expect=2)
    assert text in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the problem and its fix, no traceback
    assert not (orion_home / "orion.db").exists()
