"""`orion retry ID -p key=value`: the new attempt runs with changed parameters, recorded and
shown; a bad or empty change is one line, exit 2, and nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, use_test_scheduler
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_test_scheduler(monkeypatch)
    return orion_home


def test_retry_with_a_changed_parameter(database_url: str, local: Path) -> None:
    job_id = orion_json(
        "submit", CU, "-e", "mock", "-p", "fail=true", "-p", "duration_s=0", "--retries", "0"
    )["id"]
    (failed,) = poll_until_final([job_id])
    assert failed["status"] == "failed"
    for args, needle in (
        (["-p", "nope=1"], "nope"),
        (["-p", "fail=true"], "changes nothing"),
        (["-p", "duration_s=soon"], "duration_s"),
    ):
        bad = orion("retry", str(job_id), *args, expect=2)
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    unchanged = orion_json("show", str(job_id))
    assert (unchanged["status"], unchanged["attempt"]) == ("failed", 1)
    assert unchanged["parameters"]["fail"] is True
    orion("retry", str(job_id), "-p", "fail=false")
    (done,) = poll_until_final([job_id])
    assert (done["status"], done["attempt"]) == ("completed", 2)
    assert done["parameters"]["fail"] is False and done["parameters"]["duration_s"] == 0
    job_file = json.loads((Path(done["workdir"]) / "job.json").read_text())
    assert job_file["params"]["fail"] is False  # what the node ran with
    queued = [e for e in done["events"] if e["to"] == "queued" and e["attempt"] == 2]
    assert queued and "parameters: fail True → False" in queued[0]["message"]
    assert "parameters: fail True → False" in orion("show", str(job_id)).stdout


def test_retry_an_unconverged_relaxation_with_more_steps(local: Path, tmp_path: Path) -> None:
    """EMT relaxation stopped after 2 steps; retried with 300 it matches BFGS run by hand."""
    from ase.build import bulk
    from ase.calculators.emt import EMT
    from ase.io import write
    from ase.optimize import BFGS

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(stdev=0.08, seed=3)
    path = tmp_path / "rattled.extxyz"
    write(path, atoms, format="extxyz")
    job_id = orion_json(
        "submit", str(path), "-e", "emt", "-p", "relax=true", "-p", "max_steps=2", "--retries", "0"
    )["id"]
    (failed,) = poll_until_final([job_id], timeout_s=120)
    assert failed["status"] == "failed", failed["status"]
    orion("retry", str(job_id), "-p", "max_steps=300")
    (done,) = poll_until_final([job_id], timeout_s=180)
    assert done["status"] == "completed", done["error_message"]
    reference = atoms.copy()
    reference.calc = EMT()
    BFGS(reference, logfile=None).run(fmax=0.05, steps=300)
    assert done["result"]["energy_ev"] == pytest.approx(reference.get_potential_energy(), abs=5e-3)
    assert done["parameters"]["max_steps"] == 300
