"""The new resource options against the real cluster: sbatch takes them, or says no clearly."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


def scontrol_job(scheduler_job_id: str) -> dict[str, str]:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", scheduler_job_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


@pytest.mark.slurm
def test_sbatch_takes_extra_options_and_exclusive(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    comment = f"orion-test-{uuid.uuid4().hex[:8]}"
    job_id = orion_json(
        "submit",
        CU,
        "-e",
        "mock",
        "--hold",
        "--exclusive",
        f"--sbatch-arg=--comment={comment}",
        "--mem-per-cpu",
        "100M",
    )["id"]
    job = orion_json("show", str(job_id))
    try:
        seen = scontrol_job(job["scheduler_job_id"])
        assert seen["Comment"] == comment
        assert seen["OverSubscribe"] == "NO"  # what scontrol says of an --exclusive job
        assert seen["MinMemoryCPU"] == "100M"
    finally:
        orion("cancel", str(job_id))


@pytest.mark.slurm
@pytest.mark.parametrize(
    "option, sbatch_says",
    [
        (("--constraint", "no-such-feature"), "Invalid feature specification"),
        (("--gpus", "1"), "Invalid generic resource (gres) specification"),
    ],
)
def test_a_request_the_cluster_cannot_meet_fails_at_once(
    orion_home: Path,
    slurm: None,
    monkeypatch: pytest.MonkeyPatch,
    option: tuple[str, str],
    sbatch_says: str,
) -> None:
    """The test node has no features and no GPUs: sbatch refuses, orion says so, no retry."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    result = orion("submit", CU, "-e", "mock", *option, expect=1)
    assert sbatch_says in result.stderr
    (row,) = orion_json("ls")
    job = orion_json("show", str(row["id"]))
    assert (job["status"], job["failure_reason"]) == ("failed", "submit_error")
    assert sbatch_says in job["error_message"] and job["next_attempt_at"] is None
