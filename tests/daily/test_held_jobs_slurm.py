"""Issue 26 defect 4: a held job says so in ls and show (squeue: PENDING JobHeldUser)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orion_cli.batch import nice_for_priority
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, slurm_nice

pytestmark = pytest.mark.slurm


def test_held_job_is_shown_held_until_released(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("COLUMNS", "200")
    job_id = int(orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold")["id"])
    orion("poll")
    sid = orion_json("show", str(job_id))["scheduler_job_id"]
    reason = subprocess.run(
        ["squeue", "-h", "-j", sid, "-o", "%T %r"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert reason == ["PENDING", "JobHeldUser"]
    row = next(line for line in orion("ls").stdout.splitlines() if f" {sid} " in line)
    assert "queued (held)" in row
    assert "held (`orion release" in orion("show", str(job_id)).stdout
    assert orion_json("ls")[0]["held"] is True
    orion("release", str(job_id))
    assert "held" not in next(
        line for line in orion("ls").stdout.splitlines() if f" {sid} " in line
    )
    orion("hold", str(job_id))
    orion("cancel", str(job_id))
    retried = orion("retry", str(job_id))  # a held job's next attempt is held too: it says so
    assert f"held, as the job was: orion release {job_id} starts it" in retried.stderr
    again = orion_json("show", str(job_id))
    assert (again["attempt"], again["held"]) == (2, True)
    reason = subprocess.run(
        ["squeue", "-h", "-j", again["scheduler_job_id"], "-o", "%T %r"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert reason == ["PENDING", "JobHeldUser"]
    orion("cancel", str(job_id))


def _squeue(sid: str, fields: str) -> list[str]:
    return subprocess.run(
        ["squeue", "-h", "-j", sid, "-o", fields], capture_output=True, text=True, check=True
    ).stdout.split()


def test_priority_of_a_held_job_waits_for_its_release(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slurm 22.05 releases a held job whose Nice changes (CI saw one finish before the
    re-hold of the same scontrol session): a held job's Nice is set when it is released."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    job_id = int(orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold")["id"])
    sid = orion_json("show", str(job_id))["scheduler_job_id"]
    done = orion("priority", "5", str(job_id))
    assert "applied when it is released" in done.stdout + done.stderr
    assert _squeue(sid, "%T %r") == ["PENDING", "JobHeldUser"]
    assert slurm_nice(sid) == nice_for_priority(10)  # as submitted: the default priority
    assert orion_json("show", str(job_id))["priority"] == 5
    orion("release", str(job_id))
    assert slurm_nice(sid) == nice_for_priority(5)
    orion("cancel", str(job_id))
