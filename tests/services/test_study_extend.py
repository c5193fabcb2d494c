"""Studies that extend and refresh (issue 21): `--extend STUDY` computes only the points not
done (scheduler jobs counted); a retried point reruns the study's completed analysis, whose
answer then equals ASE run by hand on every point; `converge` exits 1 when not converged and
names the range to try next. On SQLite with the local scheduler and on PostgreSQL with the
real SLURM cluster."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, STUDY_BACKENDS, need, use_backend
from tests.helpers import orion, orion_json, poll_until_final

EV_PER_A3_IN_GPA = 160.21766208


@pytest.fixture(params=STUDY_BACKENDS)
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def _distorted_cu(tmp_path: Path) -> Path:
    from ase.io import read, write

    atoms = read(EXAMPLES / "Cu.cif")
    atoms.positions[0] += (0.2, 0.1, 0.0)
    path = tmp_path / "d.xyz"
    write(path, atoms, format="extxyz")
    return path


def _relaxed_energy(structure: Path, fmax: float) -> float:
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(structure)
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=200)
    return float(atoms.get_potential_energy())


def _scheduler_tasks(backend: str, jobs: list[dict]) -> set[str]:
    """The scheduler jobs (array tasks) that ran ``jobs``; on SLURM, each one sacct knows.

    slurmctld hands records to slurmdbd asynchronously (CI once saw a finished task missing
    from sacct): sacct is asked again until it knows them all or 30 s have passed."""
    ids = {job["scheduler_job_id"] for job in jobs}
    if backend == "slurm":
        arrays = sorted({i.split("_")[0] for i in ids})
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run(
                ["sacct", "-n", "-X", "-P", "-o", "JobID", "-j", ",".join(arrays)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            if set(out) >= ids or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert set(out) == ids, (out, ids)  # SLURM ran exactly these tasks, no others
    return ids


def test_extending_a_converge_range_runs_only_the_new_values(backend: str, tmp_path: Path) -> None:
    structure = _distorted_cu(tmp_path)
    common = ["converge", str(structure), "-e", "emt", "-p", "relax=true", "--tol", "0.5"]
    first = orion(*common, "--sweep", "fmax_ev_per_a=0.5:0.29:-0.07", "--wait", expect=1)
    assert "not converged: try next" in first.stderr
    study = orion_json("ls")[-1]["id"]
    suggested = first.stderr.split("--sweep ")[-1].split("`")[0]
    assert suggested == "fmax_ev_per_a=0.22:0.08:-0.07"  # on by the same step, above 0
    before = orion_json("ls")
    out = orion_json(
        *common, "--extend", str(study), "--sweep", "fmax_ev_per_a=0.29:0.01:-0.07", "--wait"
    )
    values = [0.5, 0.43, 0.36, 0.29, 0.22, 0.15, 0.08, 0.01]
    assert out["values"] == pytest.approx(values) and out["study_id"] == study
    new = sorted(set(out["jobs"]) - {job["id"] for job in before})
    assert len(new) == 4 and out["reused"] == [job["id"] for job in before[::-1][:4]]
    new_jobs = [orion_json("show", str(i)) for i in new]
    assert [j["parameters"]["fmax_ev_per_a"] for j in new_jobs] == pytest.approx(values[4:])
    assert len(_scheduler_tasks(backend, new_jobs)) == 4  # 0.29 was not computed again
    assert {j["study_id"] for j in new_jobs} == {study}

    energies = [_relaxed_energy(structure, fmax) for fmax in values]  # by hand
    extras = out["result"]["extras"]
    assert extras["energies_ev"] == pytest.approx(energies, abs=1e-8)
    within = [abs(1000 * (e - energies[-1]) / 4) <= 0.5 for e in energies]
    first_ok = next(n for n in range(len(values)) if all(within[n:]))
    assert extras["converged_value"] == pytest.approx(values[first_ok])
    old_analysis = [j for j in before if j["engine"] == "converge"][0]["id"]
    events = " ".join(orion("show", str(old_analysis)).stdout.split())  # unwrapped
    assert f"superseded by analysis job {out['analysis']}" in events
    answers = orion("results", "--study", str(study)).stdout
    assert f"job {old_analysis}: fmax_ev_per_a not converged" in answers
    assert f"(superseded by job {out['analysis']})" in answers
    assert f"job {out['analysis']}: fmax_ev_per_a converged at" in answers


def test_extend_refuses_another_calculation(orion_home: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    structure = _distorted_cu(tmp_path)
    common = ["converge", str(structure), "-e", "emt", "--tol", "0.5"]
    orion(*common, "-p", "relax=true", "--sweep", "fmax_ev_per_a=0.5,0.3")
    count = len(orion_json("ls"))
    for args, text in [
        (["-p", "relax=false", "--sweep", "fmax_ev_per_a=0.1,0.05"], "relax = False here"),
        (["-p", "relax=true", "--sweep", "max_steps=10,20"], "swept fmax_ev_per_a, not"),
        (["-p", "relax=true", "--sweep", "fmax_ev_per_a=0.1,0.05", "--extend", "99"], "no job"),
    ]:
        extend = [] if "--extend" in args else ["--extend", "1"]
        result = orion(*common, *args, *extend, expect=2)
        assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    other = tmp_path / "Cu.cif"
    shutil.copy(EXAMPLES / "Cu.cif", other)  # undistorted: another structure
    result = orion(
        "converge", str(other), "-e", "emt", "-p", "relax=true", "--sweep",
        "fmax_ev_per_a=0.1,0.05", "--extend", "1", expect=2,
    )  # fmt: skip
    assert "the structure differs from the study's" in result.stderr
    assert len(orion_json("ls")) == count  # nothing written


def _by_hand_eos(scales: list[float]) -> tuple[list[float], list[float]]:
    from ase.calculators.emt import EMT
    from ase.io import read

    cu = read(EXAMPLES / "Cu.cif")
    volumes, energies = [], []
    for scale in scales:
        atoms = cu.copy()
        atoms.set_cell(cu.cell * scale, scale_atoms=True)
        atoms.calc = EMT()
        volumes.append(atoms.get_volume())
        energies.append(atoms.get_potential_energy())
    return volumes, energies


def _assert_fit_is_ase(extras: dict, scales: list[float]) -> None:
    from ase.eos import EquationOfState

    volumes, energies = _by_hand_eos(scales)
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    v0, e0, b = eos.fit()
    assert extras["volumes_a3"] == pytest.approx(sorted(volumes), rel=1e-9)
    assert extras["v0_a3"] == pytest.approx(v0, rel=1e-9)
    assert extras["e0_ev"] == pytest.approx(e0, abs=1e-9)
    assert extras["b_gpa"] == pytest.approx(b * EV_PER_A3_IN_GPA, rel=1e-9)
    assert extras["b_prime"] == pytest.approx(eos.eos_parameters[2], rel=1e-6)
    assert extras["v0_per_atom_a3"] == pytest.approx(v0 / 4, rel=1e-9)
    assert extras["a0_a"] == pytest.approx(v0 ** (1 / 3), rel=1e-9)  # conventional fcc cell


def test_extending_an_eos_adds_only_the_new_volumes(backend: str) -> None:
    cu = str(EXAMPLES / "Cu.cif")
    first = orion_json("eos", cu, "-e", "emt", "--points", "5", "--strain", "0.04", "--wait")
    out = orion_json(
        "eos", cu, "-e", "emt", "--points", "9", "--strain", "0.04",
        "--extend", str(first["study_id"]), "--wait",
    )  # fmt: skip
    assert out["scales"] == pytest.approx([0.97, 0.99, 1.01, 1.03])  # the 4 not done
    assert sorted(out["reused"]) == first["points"] and len(out["points"]) == 4
    new_jobs = [orion_json("show", str(i)) for i in out["points"]]
    assert len(_scheduler_tasks(backend, new_jobs)) == 4
    fit = orion_json("show", str(out["fit"]))
    assert fit["status"] == "completed" and len(fit["result"]["extras"]["jobs_used"]) == 9
    _assert_fit_is_ase(fit["result"]["extras"], [0.96 + 0.01 * n for n in range(9)])


def test_a_retried_point_refreshes_the_completed_fit(backend: str) -> None:
    """Issue 21 / trial D3: a point cancelled, the fit completes on 6; `orion retry` of the
    point reruns the fit after it (completed → queued, with an event), and the stored answer
    is then ASE's fit of all 7 points."""
    out = orion_json("eos", str(EXAMPLES / "Cu.cif"), "-e", "emt", "--hold")
    point, fit_id, study = out["points"][2], out["fit"], out["study_id"]
    orion("cancel", str(point))
    orion("release", "--study", str(study))
    [fit] = poll_until_final([fit_id], timeout_s=300)
    assert fit["status"] == "completed"
    assert fit["result"]["extras"]["jobs_missing"] == [point]
    retried = " ".join(orion("retry", str(point)).stderr.split())
    assert f"job {fit_id}: attempt 2 (refresh: job {point} retried (attempt 2))" in retried
    orion("release", str(point))  # cancelled while held (submitted --hold): its retry is held
    point_job, fit = poll_until_final([point, fit_id], timeout_s=300)
    assert point_job["status"] == fit["status"] == "completed" and fit["attempt"] == 2
    extras = fit["result"]["extras"]
    assert extras["jobs_missing"] == [] and len(extras["jobs_used"]) == 7
    _assert_fit_is_ase(extras, out["scales"])
    shown = " ".join(orion("show", str(fit_id)).stdout.split())
    assert "completed → queued" in shown and "refresh" in shown
    assert re.search(r"→ completed \[poll, [^]]+\] answer updated: V0 = ", shown), shown
    study_rows = orion("results", "--study", str(study)).stdout
    assert f"V0 = {extras['v0_a3']:.4f} Å³" in study_rows and "(7 points)" in study_rows
    rows = {
        row["id"]: row
        for row in json.loads(orion("results", "--study", str(study), "-f", "json").stdout)
    }
    assert rows[fit_id]["volume_a3"] == pytest.approx(extras["v0_a3"])  # issue 26 #11: V0
    assert rows[point]["volume_a3"] == pytest.approx(_by_hand_eos([out["scales"][2]])[0][0])


@pytest.mark.slurm
@pytest.mark.engines
def test_extending_a_qe_cutoff_sweep_on_slurm(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm: None
) -> None:
    """Si with pw.x: 12 and 16 Ry, then --extend to 12:24:4: SLURM runs 20 and 24 Ry only
    (sacct lists two tasks), and the analysis' energies are pw.x's own, run by hand."""
    from tests.services.test_converge import by_hand_energy_ev

    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = ["converge", str(EXAMPLES / "Si.cif"), "-e", "qe", "-p", "kpoints=2,2,2"]
    common += ["-p", "smearing=none", "--tol", "20", "--walltime", "5m"]
    # 12 and 16 Ry differ by more than 20 meV/atom: not converged, exit 1, which --extend is for
    shown = orion(*common, "--sweep", "ecutwfc_ry=12,16", "--wait", "--json", expect=1)
    first = json.loads(shown.stdout)
    out = orion_json(
        *common, "--sweep", "ecutwfc_ry=12:24:4", "--extend", str(first["study_id"]), "--wait"
    )
    assert out["values"] == [12, 16, 20, 24] and out["reused"] == first["jobs"]
    new_jobs = [orion_json("show", str(i)) for i in out["jobs"][2:]]
    assert len(_scheduler_tasks("slurm", new_jobs)) == 2
    energies = [
        by_hand_energy_ev(Path(orion_json("show", str(i))["workdir"]), tmp_path / str(i))
        for i in out["jobs"]
    ]
    assert out["result"]["extras"]["energies_ev"] == pytest.approx(energies, abs=1e-6)
