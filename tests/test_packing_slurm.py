"""Packed arrays on the real SLURM cluster, when a packed task ends early, all at once (~2 min):
a real TIMEOUT (no soft margin), ``scancel`` of the task mid-pack, ``kill -9`` of the runner.

In every case: the jobs finished before stay completed, the one running fails with the
scheduler's reason (retried by policy), the ones never started are submitted again in a
new packed task with no attempt spent, and then complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import FINAL, orion, orion_json
from tests.test_packing import _structures


def _submit(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    n: int,
    soft_margin_s: int,
    *args: str,
) -> list[int]:
    monkeypatch.setenv("ORION_SOFT_MARGIN_S", str(soft_margin_s))
    _structures(tmp_path / f"{name}.extxyz", n)
    return list(
        orion_json(
            "submit",
            str(tmp_path / f"{name}.extxyz"),
            "-e",
            "mock",
            "--pack",
            str(n),
            "--scheduler",
            "slurm",
            *args,
        )["ids"]
    )


def _runner_pid(home: Path, first_id: int) -> int | None:
    found = subprocess.run(
        ["pgrep", "-f", f"jobrun --pack {home}.*/arrays/{first_id}/"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return int(found[0]) if found else None


@pytest.mark.slurm
def test_packed_task_ends_early_on_slurm(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timed = _submit(monkeypatch, tmp_path, "timed", 8, 0, "-p", "duration_s=20", "--walltime", "1m")
    cancelled = _submit(
        monkeypatch, tmp_path, "cancelled", 4, 0, "-p", "duration_s=6", "--walltime", "5m"
    )
    killed = _submit(
        monkeypatch, tmp_path, "killed", 4, 0, "-p", "duration_s=6", "--walltime", "5m"
    )
    done = {"scancel": False, "kill": False}
    deadline = time.monotonic() + 420
    while True:
        orion("poll", expect=None)
        jobs = {i: orion_json("show", str(i)) for i in timed + cancelled + killed}
        if not done["scancel"] and jobs[cancelled[1]]["status"] == "running":
            subprocess.run(["scancel", jobs[cancelled[1]]["scheduler_job_id"]], check=True)
            done["scancel"] = True
        pid = _runner_pid(orion_home, killed[0])
        if not done["kill"] and jobs[killed[1]]["status"] == "running" and pid:
            os.kill(pid, signal.SIGKILL)
            done["kill"] = True
        timed_settled = any(jobs[i]["attempt"] == 2 for i in timed)
        rest = [jobs[i]["status"] in FINAL for i in cancelled + killed]
        if timed_settled and all(rest):
            break
        assert time.monotonic() < deadline, {
            i: (j["status"], j["raw_state"]) for i, j in jobs.items()
        }
        time.sleep(2)

    # a real TIMEOUT: a prefix completed, the running one failed(timeout) and is retried,
    # the ones after it were submitted again with their attempt unchanged
    statuses = [jobs[i]["status"] for i in timed]
    hit = next(n for n, i in enumerate(timed) if jobs[i]["attempt"] == 2)
    assert statuses[:hit] == ["completed"] * hit
    first = jobs[timed[hit]]["attempts"][0]
    assert (first["status"], first["reason"], first["raw_state"]) == (
        "failed",
        "timeout",
        "TIMEOUT",
    )
    assert jobs[timed[hit]]["walltime_s"] == 120  # retried with doubled walltime
    task = first["scheduler_job_id"]
    for i in timed[hit + 1 :]:
        assert jobs[i]["attempt"] == 1 and jobs[i]["scheduler_job_id"] != task
        assert any("no attempt spent" in (e["message"] or "") for e in jobs[i]["events"])

    for ids, reason in ((cancelled, "cancelled_externally"), (killed, "exit_code")):
        assert jobs[ids[0]]["status"] == "completed"
        shot = jobs[ids[1]]
        assert shot["failure_reason"] == reason and shot["attempt"] == 1, shot["events"]
        for i in ids[2:]:
            assert (jobs[i]["status"], jobs[i]["attempt"]) == ("completed", 1)
            assert jobs[i]["scheduler_job_id"] != shot["scheduler_job_id"]
    orion("cancel", *[str(i) for i in timed if jobs[i]["status"] not in FINAL], expect=None)
