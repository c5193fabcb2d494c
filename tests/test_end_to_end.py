"""The whole path a researcher takes: submit → scheduler → poll → parsed result.

Runs on SQLite + the local scheduler and on PostgreSQL + the real SLURM cluster.
Numbers are checked against the same calculation done here with ASE directly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import BACKENDS, EXAMPLES, use_backend
from tests.helpers import orion, orion_json, poll_until_final


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def emt_reference(path: Path, relax: bool) -> tuple[float, list[list[float]]]:
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(path)
    atoms.calc = EMT()
    if relax:
        BFGS(atoms, logfile=None).run(fmax=0.05, steps=200)
    return atoms.get_potential_energy(), atoms.get_forces().tolist()


def test_emt_jobs_and_failures_end_to_end(backend: str, tmp_path: Path) -> None:
    structure = tmp_path / "Cu-distorted.xyz"
    from ase.io import read, write

    atoms = read(EXAMPLES / "Cu.cif")
    atoms.positions[0] += (0.1, 0.05, 0.0)
    write(structure, atoms, format="extxyz")

    single = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt")["id"]
    relax = orion_json(
        "submit", str(structure), "--engine", "emt", "-p", "relax=true", "--name", "Cu relax"
    )["id"]
    broken = orion_json(
        "submit", str(structure), "--engine", "mock", "-p", "fail=true", "-p", "duration_s=0"
    )["id"]
    jobs = {j["id"]: j for j in poll_until_final([single, relax, broken])}

    for job_id, path, relaxed in ((single, EXAMPLES / "Cu.cif", False), (relax, structure, True)):
        job = jobs[job_id]
        assert job["status"] == "completed", job
        assert job["scheduler"] == backend and job["scheduler_job_id"]
        energy_ev, forces = emt_reference(path, relaxed)
        assert job["result"]["energy_ev"] == pytest.approx(energy_ev, abs=1e-6)
        stored = [c for row in job["result"]["forces_ev_per_a"] for c in row]
        assert stored == pytest.approx([c for row in forces for c in row], abs=1e-6)
        assert job["progress_pct"] == 100.0
        assert [e["to"] for e in job["events"]][-1] == "completed"
    assert jobs[relax]["result"]["final_structure"]
    assert jobs[relax]["result"]["extras"]["relax_steps"] > 0

    failed = jobs[broken]
    assert (failed["status"], failed["failure_reason"]) == ("failed", "engine_error")
    assert "fail=true" in failed["error_message"]
    listing = orion_json("ls")
    assert {row["id"]: row["status"] for row in listing} == {
        single: "completed",
        relax: "completed",
        broken: "failed",
    }


def test_cancel_a_running_job_stops_it_in_the_scheduler(backend: str) -> None:
    job_id = orion_json(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "-p", "duration_s=120"
    )["id"]
    orion("cancel", str(job_id))
    job = orion_json("show", str(job_id))
    assert job["status"] == "cancelled"
    assert [e["source"] for e in job["events"]][-1] == "user"
    orion("poll")  # the scheduler's CANCELLED does not move a finished row
    assert orion_json("show", str(job_id))["status"] == "cancelled"
    again = orion("cancel", str(job_id), expect=2)
    assert "already cancelled" in again.stderr


def test_submit_wait_prints_the_result(backend: str) -> None:
    result = orion(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "mock",
        "-p",
        "seed=7",
        "-p",
        "duration_s=0.2",
        "--wait",
    )
    assert "completed" in result.stdout and "energy_ev" in result.stdout
    assert "Finalizing" in result.stderr or "Done" in result.stderr


@pytest.mark.parametrize("scheduler", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
@pytest.mark.parametrize("odd", ["pct%j%%x", "back\\slash", "quote'n\"d #x"])
def test_work_root_with_pattern_characters(
    scheduler: str,
    odd: str,
    orion_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    """``%`` and ``\\`` are sbatch filename-pattern characters; the job still runs and logs."""
    if scheduler == "slurm":
        request.getfixturevalue("slurm")
    work_root = tmp_path / odd
    monkeypatch.setenv("ORION_WORK_ROOT", str(work_root))
    monkeypatch.setenv("ORION_SCHEDULER", scheduler)
    monkeypatch.setenv("ORION_WAIT_INTERVAL_S", "0.5")
    job = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt", "--wait")
    assert job["status"] == "completed", (job["error_message"], job["events"])
    workdir = Path(job["workdir"])
    assert workdir.is_relative_to(work_root)
    assert (workdir / "attempt-1.out").exists()
