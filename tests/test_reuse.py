"""``--reuse``: an identical calculation is computed once.

The count of scheduler jobs is SLURM's own (sacct, by orion's job-name prefix); the
energy reference is ASE's EMT run by hand.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from orion_cli.batch import job_name_prefix
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


def _slurm_jobs_listed(prefix: str, count: int, timeout_s: float = 60.0) -> list[str]:
    """sacct's lines for ``prefix`` once it lists ``count`` of them (slurmdbd records a job a
    moment after it ends; orion may have its result first)."""
    deadline = time.monotonic() + timeout_s
    while len(found := _slurm_jobs_named(prefix)) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def _slurm_jobs_named(prefix: str) -> list[str]:
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", "now-2hours", "-o", "JobID,JobName%300"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if line.split("|", 1)[-1].startswith(prefix)]


def _instance(workdir: str) -> str:
    return Path(workdir).parent.name  # job directories are <work_root>/<instance>/<id>


@pytest.mark.slurm
def test_two_identical_submissions_make_one_slurm_job(
    database_url: str, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ase.calculators.emt import EMT
    from ase.io import read

    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    first = orion_json("submit", CU, "-e", "emt", "--reuse")["id"]
    second = orion_json("submit", CU, "-e", "emt", "--reuse")["id"]
    a, b = poll_until_final([first, second], timeout_s=900)
    assert (a["status"], b["status"]) == ("completed", "completed"), b["events"]
    assert b["reused_from"] == first and b["scheduler_job_id"] is None
    assert [x["scheduler_job_id"] for x in b["attempts"]] == [None]
    assert a["calc_key"] == b["calc_key"]
    instance = _instance(a["workdir"])
    assert len(_slurm_jobs_listed(job_name_prefix(first, instance), 1)) == 1
    assert _slurm_jobs_named(job_name_prefix(second, instance)) == []
    reference = read(CU)
    reference.calc = EMT()
    assert b["result"]["energy_ev"] == pytest.approx(reference.get_potential_energy(), abs=1e-9)
    assert b["result"]["energy_ev"] == a["result"]["energy_ev"]
    copied = json.loads((Path(b["workdir"]) / "result.json").read_text())  # studies read it
    assert (
        copied["energy_ev"] == a["result"]["energy_ev"] and copied["extras"]["reused_from"] == first
    )
    # once completed, a third is completed at once: no poll, no scheduler job
    third = orion_json("submit", CU, "-e", "emt", "--reuse")["id"]
    c = orion_json("show", str(third))
    assert (c["status"], c["reused_from"], c["scheduler_job_id"]) == ("completed", first, None)
    assert any(e["source"] == "reuse" and f"job {first}" in e["message"] for e in c["events"])
    # invalidated results are not handed out again: the next one is computed
    orion("reuse", "invalidate", str(first), str(second), str(third))
    fourth = orion_json("submit", CU, "-e", "emt", "--reuse")["id"]
    d = orion_json("show", str(fourth))
    assert d["reused_from"] is None and d["scheduler_job_id"], d
    poll_until_final([fourth], timeout_s=900)
    events = orion_json("show", str(first))["events"]
    assert any("not to be reused" in (e["message"] or "") for e in events)


def test_failed_jobs_are_never_reused(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    args = ("submit", CU, "-e", "mock", "-p", "fail=true", "-p", "duration_s=0", "--retries", "0")
    failed = orion_json(*args)["id"]
    (job,) = poll_until_final([failed])
    assert job["status"] == "failed"
    again = orion_json(*args, "--reuse")["id"]
    shown = orion_json("show", str(again))
    assert shown["reused_from"] is None and shown["scheduler_job_id"], shown
    assert shown["calc_key"] == job["calc_key"]  # the same calculation, all the same
