"""The slow real-SLURM scenarios, grouped so they wait together (~95 s in all):
a real TIMEOUT (retried with doubled walltime), a soft-limit stop, a killed batch shell."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import FINAL, orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


def submit(monkeypatch: pytest.MonkeyPatch, soft_margin_s: int, *args: str) -> int:
    monkeypatch.setenv("ORION_SOFT_MARGIN_S", str(soft_margin_s))
    return int(orion_json("submit", CU, "--engine", "mock", *args)["id"])


@pytest.mark.slurm
def test_timeout_soft_limit_and_killed_shell(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    timeout = submit(monkeypatch, 0, "-p", "duration_s=400", "--walltime", "1m")
    soft = submit(monkeypatch, 45, "-p", "duration_s=400", "--walltime", "1m", "--retries", "0")
    killed = submit(monkeypatch, 0, "-p", "duration_s=400", "--walltime", "5m")
    jobs: dict[int, dict] = {}
    killed_shell = False
    deadline = time.monotonic() + 200
    while True:
        orion("poll", expect=None)
        jobs = {i: orion_json("show", str(i)) for i in (timeout, soft, killed)}
        if not killed_shell and jobs[killed]["status"] == "running":
            subprocess.run(
                ["scancel", "--signal=KILL", "--batch", jobs[killed]["scheduler_job_id"]],
                check=True,
            )
            killed_shell = True
        first_attempt_over = jobs[timeout]["attempt"] == 2
        if first_attempt_over and jobs[soft]["status"] in FINAL and jobs[killed]["status"] in FINAL:
            break
        assert time.monotonic() < deadline, {
            i: (j["status"], j["raw_state"]) for i, j in jobs.items()
        }
        time.sleep(2)

    retried = jobs[timeout]
    first = retried["attempts"][0]
    assert (first["status"], first["reason"], first["raw_state"]) == (
        "failed",
        "timeout",
        "TIMEOUT",
    )
    assert (retried["status"], retried["walltime_s"]) == ("queued", 120)
    assert "begins after 60 s" in retried["events"][-1]["message"]
    begin = subprocess.run(
        ["squeue", "-h", "-j", retried["scheduler_job_id"], "-o", "%r"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert begin == "BeginTime"

    stopped = jobs[soft]
    assert (stopped["status"], stopped["failure_reason"]) == ("failed", "timeout")
    assert "soft time limit" in stopped["error_message"]
    assert stopped["result"]["extras"]["soft_limit_reached"] is True
    assert stopped["raw_state"] != "TIMEOUT"  # it stopped itself before the hard limit

    shot = jobs[killed]
    assert (shot["status"], shot["failure_reason"], shot["attempt"]) == (
        "failed",
        "exit_code",
        1,
    )  # not retried: a crash is not a resource problem
    orion("cancel", str(timeout))
