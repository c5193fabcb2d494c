"""Issue 26, rerun with changed resources, on the real cluster: ``orion retry --walltime
--mem --partition`` (what sacct says the new attempt asked for), and ``orion move`` of a
queued job (the same SLURM job moved, no attempt spent, it runs once)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

pytestmark = pytest.mark.slurm
CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def on_slurm(orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")


def sacct(job_id: str, fields: str) -> str:
    return subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def scontrol(job_id: str) -> dict[str, str]:
    from orion_cli.schedulers.slurm_adopt import key_values

    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    )
    return key_values(out.stdout.strip())


def squeue(job_id: str, fmt: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", fmt], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_retry_with_new_resources_is_what_slurm_runs(on_slurm: None) -> None:
    job_id = int(
        orion_json(
            "submit", CU, "--engine", "mock", "--hold", "--partition", "debug", "--walltime", "10m"
        )["id"]
    )
    orion("cancel", str(job_id))
    out = orion("retry", str(job_id), "--walltime", "4h", "--mem", "300M", "--partition", "long")
    assert "walltime 600 s → 14400 s" in out.stderr and "partition debug → long" in out.stderr
    job = orion_json("show", str(job_id))
    assert (job["attempt"], job["partition"], job["walltime_s"], job["mem_mb"]) == (
        2,
        "long",
        14400,
        300,
    )
    attempts = [(a["attempt"], a["walltime_s"], a["mem_mb"]) for a in job["attempts"]]
    assert attempts[0][:2] == (1, 600) and attempts[1] == (2, 14400, 300)
    assert [a["resources"]["partition"] for a in job["attempts"]] == ["debug", "long"]
    assert "partition long" in orion("show", str(job_id)).stdout
    asked = scontrol(job["scheduler_job_id"])
    assert (asked["Partition"], asked["TimeLimit"], asked["MinMemoryNode"]) == (
        "long",
        "04:00:00",
        "300M",
    )
    assert "JobHeldUser" in squeue(job["scheduler_job_id"], "%r")  # its retry is held too
    # (not run to the end: on the one-node test cluster a 4 h job may wait minutes behind
    # the time-limit tests; a released job running is shown by tests/test_lifecycle.py)
    orion("cancel", str(job_id))
    assert orion_json("show", str(job_id))["status"] == "cancelled"


def test_retry_to_a_partition_the_cluster_lacks_is_refused(on_slurm: None) -> None:
    job_id = int(orion_json("submit", CU, "--engine", "mock", "--hold")["id"])
    orion("cancel", str(job_id))
    bad = orion("retry", str(job_id), "--partition", "nosuch", expect=2)
    assert "partition 'nosuch' does not exist on this cluster" in bad.stderr
    assert orion_json("show", str(job_id))["attempt"] == 1


def test_move_a_queued_job_keeps_its_slurm_job_and_runs_once(on_slurm: None) -> None:
    job_id = int(
        orion_json("submit", CU, "--engine", "mock", "--hold", "--partition", "debug")["id"]
    )
    before = orion_json("show", str(job_id))
    sid = before["scheduler_job_id"]
    assert squeue(sid, "%P") == "debug"
    out = orion("move", str(job_id), "--partition", "long")
    assert "1 moved" in out.stderr
    assert squeue(sid, "%P") == "long"
    after = orion_json("show", str(job_id))
    assert (after["scheduler_job_id"], after["attempt"], after["partition"]) == (sid, 1, "long")
    assert after["events"][-1]["message"] == "orion move: partition debug → long"
    orion("release", str(job_id))
    (done,) = poll_until_final([job_id], timeout_s=900)
    assert (done["status"], done["attempt"], len(done["attempts"])) == ("completed", 1, 1)
    # the partition it ran in, from the controller (it keeps a finished job for MinJobAge,
    # 300 s): on a loaded CI machine slurmdbd once listed the moved job with no partition
    assert scontrol(sid)["Partition"] == "long"
    assert sacct(sid, "State") == "COMPLETED"  # one allocation: it ran once
    again = orion("move", str(job_id), "--partition", "debug", expect=None)
    assert (again.exit_code, again.stderr.strip()) == (
        2,
        f"error: job {job_id} is completed — only queued jobs can be moved",
    )
