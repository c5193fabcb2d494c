"""`orion workflow submit | show | retry` driven as a user would, checked against ASE run by
hand; the one-transaction creation on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import (
    EXAMPLES,
    POSTGRES_LOCAL,
    POSTGRES_SLURM,
    SQLITE_TEST,
    use_backend,
)
from tests.helpers import orion, orion_json, poll_until_final
from tests.services.test_dependencies import run_times

STUDIES = Path(__file__).resolve().parents[2] / "examples" / "studies"
EV_PER_A3_IN_GPA = 160.21766208


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def _rattled_cu(tmp_path: Path) -> Path:
    from ase.io import read, write

    atoms = read(EXAMPLES / "Cu.cif")
    atoms.rattle(stdev=0.05, seed=7)  # forces to relax away
    path = tmp_path / "Cu-rattled.extxyz"
    write(path, atoms, format="extxyz")
    return path


def _submit(*args: str) -> list[dict]:
    result = orion("workflow", "submit", *args, "--json")
    return json.loads(result.stdout)


@pytest.mark.parametrize("backend", [SQLITE_TEST, POSTGRES_SLURM], indirect=True)
def test_example_study_relax_energy_and_eos_match_ase(backend: str, tmp_path: Path) -> None:
    """examples/studies/cu-relax-eos.toml: relax → energy from:relax, 5 scaled cells → fit."""
    from ase.calculators.emt import EMT
    from ase.eos import EquationOfState
    from ase.io import read
    from ase.optimize import BFGS

    structure = _rattled_cu(tmp_path)
    [study] = _submit(str(STUDIES / "cu-relax-eos.toml"), str(structure))
    steps = study["steps"]
    assert [len(steps[s]) for s in ("relax", "energy", "points", "fit")] == [1, 1, 5, 1]
    every = [i for ids in steps.values() for i in ids]
    assert study["study_id"] == min(every) == steps["relax"][0] and not study["errors"]
    jobs = {job["id"]: job for job in poll_until_final(every, timeout_s=600)}
    assert {job["status"] for job in jobs.values()} == {"completed"}, jobs
    assert {job["study_id"] for job in jobs.values()} == {study["study_id"]}

    reference = read(structure)  # the same study, by hand
    reference.calc = EMT()
    BFGS(reference, logfile=None).run(fmax=0.01, steps=200)
    relaxed_ev = reference.get_potential_energy()
    relax, energy = jobs[steps["relax"][0]], jobs[steps["energy"][0]]
    assert relax["result"]["energy_ev"] == pytest.approx(relaxed_ev, abs=1e-8)
    assert energy["result"]["energy_ev"] == pytest.approx(relaxed_ev, abs=1e-8)
    assert energy["structure_source"] == f"from:{relax['id']}"
    assert (energy["study_step"], jobs[steps["points"][1]]["sweep_point"]) == (
        "energy",
        {"scale": 0.97},
    )
    start = read(structure)
    start.calc = EMT()
    assert energy["result"]["energy_ev"] < start.get_potential_energy() - 1e-3  # moved

    volumes, energies = [], []
    for scale in (0.94, 0.97, 1.0, 1.03, 1.06):
        cell = read(structure)
        cell.set_cell(cell.cell * scale, scale_atoms=True)
        cell.calc = EMT()
        volumes.append(cell.get_volume())
        energies.append(cell.get_potential_energy())
    v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    fit = jobs[steps["fit"][0]]["result"]["extras"]
    assert fit["jobs_used"] == steps["points"]
    # the scaled cells travel as extended XYZ text (8 decimals): 1e-8 eV apart, not 1e-15
    assert fit["energies_ev"] == pytest.approx(energies, abs=1e-7)
    assert fit["v0_a3"] == pytest.approx(v0, rel=1e-7)
    assert fit["b_gpa"] == pytest.approx(b * EV_PER_A3_IN_GPA, rel=1e-6)

    rows = {
        r["id"]: r
        for r in json.loads(orion("results", "--study", str(every[0]), "-f", "json").stdout)
    }
    assert sorted(rows) == sorted(every)
    assert rows[energy["id"]]["volume_a3"] == pytest.approx(reference.get_volume(), rel=1e-9)

    graph = orion_json("workflow", "show", str(study["study_id"]))
    assert graph["status"] == "completed" and graph["counts"] == {"completed": 8}
    by_step = {s["step"]: s for s in graph["steps"]}
    assert list(by_step) == ["relax", "energy", "points", "fit"]
    assert by_step["energy"]["needs"] == ["relax"] and by_step["energy"]["from"] == "relax"
    assert by_step["fit"]["needs_any"] == ["points"] and by_step["fit"]["needs"] == []
    assert [j["sweep"] for j in by_step["points"]["jobs"]] == [
        {"scale": s} for s in (0.94, 0.97, 1.0, 1.03, 1.06)
    ]
    tree = orion("workflow", "show", str(steps["fit"][0])).stdout  # any job names its study
    for text in ("relax", "energy", "from:relax", "points", "scale=0.94", "fit", "any outcome"):
        assert text in tree
    if backend == "slurm":  # the sweep went as ONE array, the children waited in SLURM
        array_ids = {jobs[i]["scheduler_job_id"].split("_")[0] for i in steps["points"]}
        assert len(array_ids) == 1


FAILING = """
[steps.first]
engine = "mock"
params = { fail = true, duration_s = 0.2 }

[steps.middle]
engine = "mock"
needs = ["first"]
params = { duration_s = 0.2 }

[steps.last]
engine = "mock"
needs = ["middle", "side"]
params = { duration_s = 0.2 }

[steps.side]
engine = "mock"
params = { duration_s = 0.2 }
[steps.side.sweep]
seed = [1, 2]

[steps.other]
engine = "mock"
params = { fail = true, duration_s = 0.2 }

[steps.after_other]
engine = "mock"
needs = ["other"]
params = { duration_s = 0.2 }
"""


# the re-pointing of SLURM dependencies at new attempts is tested on the real cluster in
# tests/services/test_dependencies.py; here the test scheduler (SQLite) and the local backend
# (PostgreSQL) run the jobs (they wait the same)
@pytest.mark.parametrize("backend", [SQLITE_TEST, POSTGRES_LOCAL], indirect=True)
def test_retry_failed_reruns_only_the_failed_part(
    backend: str, orion_home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "failing.toml"
    path.write_text(FAILING)
    [study] = _submit(str(path), str(EXAMPLES / "Cu.cif"))
    steps = study["steps"]
    every = [i for ids in steps.values() for i in ids]
    jobs = {j["id"]: j for j in poll_until_final(every, timeout_s=600)}
    first, middle, last = steps["first"][0], steps["middle"][0], steps["last"][0]
    assert jobs[first]["status"] == "failed" and jobs[first]["failure_reason"] == "engine_error"
    for child in (middle, last):
        assert (jobs[child]["status"], jobs[child]["failure_reason"]) == (
            "cancelled",
            "dependency_failed",
        )
    assert [jobs[i]["status"] for i in steps["side"]] == ["completed", "completed"]

    graph = orion_json("workflow", "show", str(study["study_id"]))
    by_step = {s["step"]: s for s in graph["steps"]}
    assert (
        by_step["middle"]["jobs"][0]["reason"] == f"blocked: parent {first} failed (engine_error)"
    )
    assert by_step["last"]["jobs"][0]["reason"].startswith(f"blocked: parent {middle} cancelled")
    assert by_step["last"]["needs"] == ["middle", "side"]
    tree = orion("workflow", "show", str(study["study_id"])).stdout
    assert f"blocked: parent {first} failed" in tree

    bad = orion("workflow", "retry", str(study["study_id"]), "--failed", "-p", "colour=1", expect=2)
    assert "colour" in bad.stderr and orion_json("show", str(first))["attempt"] == 1

    nope = orion("workflow", "retry", str(study["study_id"]), "--failed", "--step", "x", expect=2)
    assert "--step x: no such step" in nope.stderr

    retry = ("workflow", "retry", str(study["study_id"]), "--failed", "-p", "fail=false")
    result = orion(*retry, "--step", "first")
    assert f"3 retried ({first}, {middle}, {last})" in result.stderr
    again = {j["id"]: j for j in poll_until_final(every, timeout_s=600)}
    other, after_other = steps["other"][0], steps["after_other"][0]
    assert [again[other]["status"], again[after_other]["status"]] == ["failed", "cancelled"]
    assert orion(*retry).stderr.strip().endswith(f"2 retried ({other}, {after_other})")
    again = {j["id"]: j for j in poll_until_final(every, timeout_s=600)}
    assert {j["status"] for j in again.values()} == {"completed"}, again
    assert [again[i]["attempt"] for i in (first, middle, last, other)] == [2, 2, 2, 2]
    assert [again[i]["attempt"] for i in steps["side"]] == [1, 1]  # completed: not rerun
    # re-wired: each rerun child started after its parent's NEW attempt ended, as the
    # scheduler itself recorded the times (the poller's finished_at may be when it looked)
    started, ended = {}, {}
    for job_id in (first, middle, last):
        started[job_id], ended[job_id] = run_times(
            backend, orion_home, again[job_id]["scheduler_job_id"]
        )
    assert started[middle] >= ended[first] and started[last] >= ended[middle]
    assert again[first]["parameters"]["fail"] is False
    assert again[middle]["parameters"] == jobs[middle]["parameters"]  # -p: the failed only
    nothing = orion("workflow", "retry", str(study["study_id"]), "--failed")
    assert "nothing retried" in nothing.stderr


def test_a_study_is_recorded_in_one_transaction(
    database_url: str, orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file system refuses the second step's array mid-way: no row, edge or directory of
    the study is left, on SQLite and PostgreSQL alike; the next submit works."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    held = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold")
    base = Path(orion_json("show", str(held["ids"][0]))["workdir"]).parent
    before = sorted(p.name for p in base.iterdir())
    (base / "arrays").write_text("in the way\n")  # mkdir arrays/<id> fails
    path = tmp_path / "two.toml"
    path.write_text(
        '[steps.a]\nengine = "mock"\n[steps.b]\nengine = "mock"\nneeds = ["a"]\n'
        "[steps.b.sweep]\nseed = [1, 2, 3]\n"
    )
    result = orion("workflow", "submit", str(path), str(EXAMPLES / "Cu.cif"), expect=1)
    assert "Traceback" not in result.output and "not recorded" in result.stderr
    assert [job["id"] for job in orion_json("ls")] == held["ids"]
    assert sorted(p.name for p in base.iterdir()) == sorted([*before, "arrays"])

    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job_dependencies")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM job")).scalar() == 1
    engine.dispose()
    (base / "arrays").unlink()
    [study] = _submit(str(path), str(EXAMPLES / "Cu.cif"), "--hold")
    assert len(study["steps"]["b"]) == 3 and not study["errors"]
    graph = orion_json("workflow", "show", str(study["study_id"]))
    assert [s["step"] for s in graph["steps"]] == ["a", "b"]
    assert graph["steps"][1]["needs"] == ["a"]
