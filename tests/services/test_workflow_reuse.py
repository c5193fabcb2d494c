"""``orion workflow submit --reuse``: a rerun of a workflow file computes only what changed.

A job whose structure comes ``from:`` a parent (or an EOS fit of its points) is keyed by its
parents' keys and its own inputs, so it is reused exactly when its parents were and its own
parameters are unchanged. The count of scheduler jobs is SLURM's own (sacct, by orion's
job-name prefixes); the energies are compared with ASE's EMT run by hand.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from orion_cli.batch import array_name_prefix, job_name_prefix
from tests.conftest import EXAMPLES, POSTGRES_SLURM, SQLITE_TEST, use_backend, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")
SCALES = (0.96, 0.98, 1.0, 1.02, 1.04)
SQLITE_SLURM = pytest.param(("sqlite", "slurm"), id="sqlite-slurm", marks=pytest.mark.slurm)

FLOW = """
[steps.relax]
engine = "emt"
params = {{ relax = true, fmax_ev_per_a = 0.01 }}

[steps.energy]
engine = "emt"
needs = ["relax"]
structure = "from:relax"

[steps.points]
engine = "emt"
needs = ["relax"]
structure = "from:relax"
params = {{ relax = true, fmax_ev_per_a = {points_fmax} }}
sweep = {{ scale = [0.96, 0.98, 1.0, 1.02, 1.04] }}

[steps.fit]
engine = "eos"
needs_any = ["points"]

[steps.alone]
engine = "emt"
{alone_reuse}
"""


@pytest.fixture(params=[SQLITE_TEST, SQLITE_SLURM, POSTGRES_SLURM])
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def _flow(tmp_path: Path, points_fmax: float, alone_reuse: str = "") -> str:
    path = tmp_path / "study.toml"
    path.write_text(FLOW.format(points_fmax=points_fmax, alone_reuse=alone_reuse))
    return str(path)


def _run(*args: str) -> dict:
    [study] = json.loads(orion("workflow", "submit", *args, "--json").stdout)
    assert not study["errors"], study
    return study


def _slurm_lines_once(ids: list[int], instance: str, count: int) -> list[str]:
    """``_slurm_lines`` once sacct lists ``count`` of them or 60 s passed (slurmdbd records
    a job a moment after it ends; orion may have its result first)."""
    deadline = time.monotonic() + 60.0
    while len(found := _slurm_lines(ids, instance)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def _slurm_lines(ids: list[int], instance: str) -> list[str]:
    """sacct's lines (one per job or array task) named after any of orion jobs ``ids``."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-2hours", "-o", "JobID,JobName%300"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    prefixes = tuple(
        p for i in ids for p in (job_name_prefix(i, instance), array_name_prefix(i, instance))
    )
    return [line for line in out.splitlines() if line.split("|", 1)[-1].startswith(prefixes)]


def test_a_rerun_after_one_step_changed_runs_only_that_step_and_its_dependents(
    backend: str, tmp_path: Path
) -> None:
    from ase.calculators.emt import EMT
    from ase.io import read

    first = _run(_flow(tmp_path, 0.05), CU, "--reuse")
    first_ids = [i for ids in first["steps"].values() for i in ids]
    done = {j["id"]: j for j in poll_until_final(first_ids, timeout_s=900)}
    assert {j["status"] for j in done.values()} == {"completed"}, done
    assert all(j["reused_from"] is None and j["calc_key"] for j in done.values())

    # the points' own parameter changed: the points and the fit that reads them run again
    second = _run(_flow(tmp_path, 0.02), CU, "--reuse")
    s1, s2 = first["steps"], second["steps"]
    jobs = {j["id"]: j for j in (orion_json("show", str(i)) for ids in s2.values() for i in ids)}
    for step in ("relax", "energy", "alone"):
        [old], [new] = s1[step], s2[step]
        assert (jobs[new]["status"], jobs[new]["reused_from"]) == ("completed", old), step
        assert jobs[new]["scheduler_job_id"] is None
        assert jobs[new]["result"]["energy_ev"] == done[old]["result"]["energy_ev"]
    ran = s2["points"] + s2["fit"]
    assert all(jobs[i]["reused_from"] is None for i in ran)
    final = {j["id"]: j for j in poll_until_final(ran, timeout_s=900)}
    assert {j["status"] for j in final.values()} == {"completed"}, final
    # the reused relax handed its structure to the points that ran: EMT by hand agrees
    relaxed = read(Path(done[s1["relax"][0]]["workdir"]) / "emt-output.extxyz")
    for point, scale in zip(s2["points"], SCALES, strict=True):
        cell = relaxed.copy()
        cell.set_cell(cell.cell * scale, scale_atoms=True)
        cell.calc = EMT()
        assert final[point]["result"]["energy_ev"] == pytest.approx(
            cell.get_potential_energy(), abs=1e-6
        )

    # unchanged: nothing runs at all; every job completes at once
    third = _run(_flow(tmp_path, 0.02), CU, "--reuse")
    third_ids = [i for ids in third["steps"].values() for i in ids]
    shown = [orion_json("show", str(i)) for i in third_ids]
    assert [(j["status"], j["scheduler_job_id"]) for j in shown] == [("completed", None)] * 9

    if backend == "slurm":
        instance = Path(done[first_ids[0]]["workdir"]).parent.name
        assert len(_slurm_lines_once(first_ids, instance, 9)) == 9  # 5 points are array tasks
        second_ids = [i for ids in s2.values() for i in ids]
        assert len(_slurm_lines_once(second_ids, instance, 6)) == 6  # 5 points + the fit
        assert _slurm_lines(third_ids, instance) == []
    else:
        assert sum(1 for j in jobs.values() if j["scheduler_job_id"]) == 6


def test_a_step_may_ask_for_reuse_in_the_workflow_file(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``reuse = "strict"`` on one step: only that step is reused on a rerun without the flag."""
    use_test_scheduler(monkeypatch)
    flow = _flow(tmp_path, 0.05, alone_reuse='reuse = "strict"')
    first = _run(flow, CU, "--scheduler", "test")
    ids = [i for step in first["steps"].values() for i in step]
    poll_until_final(ids, timeout_s=300)
    second = _run(flow, CU, "--scheduler", "test")
    reused = {
        step: [orion_json("show", str(i))["reused_from"] for i in job_ids]
        for step, job_ids in second["steps"].items()
    }
    assert reused == {
        "relax": [None],
        "energy": [None],
        "points": [None] * 5,
        "fit": [None],
        "alone": first["steps"]["alone"],
    }


def test_a_bad_reuse_value_in_a_step_names_the_step(orion_home: Path, tmp_path: Path) -> None:
    flow = _flow(tmp_path, 0.05, alone_reuse='reuse = "sometimes"')
    result = orion("workflow", "submit", flow, CU, expect=2)
    assert "study.toml:alone:reuse" in result.output and "sometimes" in result.output
    assert not (orion_home / "orion.db").exists()


def _emt_relaxed(structure: str, fmax: float) -> float:
    from ase.calculators.emt import EMT
    from ase.io import read
    from ase.optimize import BFGS

    atoms = read(structure)
    atoms.calc = EMT()
    BFGS(atoms, logfile=None).run(fmax=fmax, steps=200)
    return float(atoms.get_potential_energy())


def _ran(jobs: list[dict]) -> list[int]:
    """The jobs that ran in the scheduler (not reused)."""
    return [j["id"] for j in jobs if j["reused_from"] is None and j["scheduler_job_id"]]


def test_converge_with_reuse_runs_only_the_values_not_computed(
    backend: str, tmp_path: Path
) -> None:
    from ase.io import read, write

    atoms = read(CU)
    atoms.positions[0] += (0.2, 0.1, 0.0)
    structure = str(tmp_path / "d.xyz")
    write(structure, atoms, format="extxyz")
    common = ["converge", structure, "-e", "emt", "-p", "relax=true", "--tol", "100"]
    first = orion_json(*common, "--sweep", "fmax_ev_per_a=0.5,0.3", "--wait", "--reuse")
    out = orion_json(*common, "--sweep", "fmax_ev_per_a=0.5,0.3,0.1", "--wait", "--reuse")
    points = [orion_json("show", str(i)) for i in out["jobs"]]
    assert [j["reused_from"] for j in points] == [*first["jobs"], None]
    assert _ran(points) == [out["jobs"][2]]
    energies = [_emt_relaxed(structure, fmax) for fmax in (0.5, 0.3, 0.1)]  # by hand
    assert out["result"]["extras"]["energies_ev"] == pytest.approx(energies, abs=1e-8)


def test_eos_with_reuse_runs_only_the_new_volumes(backend: str) -> None:
    common = ["eos", CU, "-e", "emt", "--strain", "0.04", "--wait", "--reuse"]
    first = orion_json(*common, "--points", "5")
    out = orion_json(*common, "--points", "9")
    points = [orion_json("show", str(i)) for i in out["points"]]
    assert [j["reused_from"] for j in points[::2]] == first["points"]  # 0.96, 0.98, ... 1.04
    assert len(_ran(points)) == 4 and _ran(points) == out["points"][1::2]
    fit = orion_json("show", str(out["fit"]))
    assert fit["status"] == "completed" and len(fit["result"]["extras"]["jobs_used"]) == 9
