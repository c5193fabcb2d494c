"""Issue 26 defects 1 and 2 on the real cluster: an adopted job's ``orion logs`` reads the
file its ``#SBATCH --output`` names, and scripts and adopted jobs carry SLURM's own submit,
start and end times (checked against sacct), not the times a poll noticed them."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orion_cli.schedulers.slurm_commands import parse_times
from tests.helpers import orion, orion_json, poll_until_final

DATA = Path(__file__).resolve().parent.parent / "data" / "slurm"
SCRIPT = (
    "#!/bin/bash\n#SBATCH --job-name=plain-{tag}\n#SBATCH --output={output}\n"
    "#SBATCH --time=00:02:00\nsleep 4\necho hello from {tag}\n"
)


def test_captured_squeue_and_sacct_times_are_read() -> None:
    squeue = parse_times((DATA / "times_squeue.txt").read_text())
    sacct = parse_times((DATA / "times_sacct.txt").read_text())
    done = (
        datetime(2026, 12, 7, 1, 52, 19, tzinfo=UTC),
        datetime(2026, 12, 7, 1, 52, 23, tzinfo=UTC),
    )
    for answer in (squeue, sacct):  # the machine's time zone is UTC, as the capture's
        assert (answer["79"].started_at, answer["79"].finished_at) == done
        assert answer["79"].submitted_at == datetime(2026, 12, 7, 1, 51, 48, tzinfo=UTC)
        assert answer["83"].started_at is None  # cancelled while pending: never started
        assert answer["83"].finished_at == datetime(2026, 12, 7, 1, 53, 32, tzinfo=UTC)


def sacct_times(job_id: str) -> tuple[str, str, str]:
    """sacct's Submit, Start, End of a finished job (waiting for accounting to have End)."""
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "Submit,Start,End", "-j", job_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if out and "Unknown" not in out:
            submit, start, end = out.splitlines()[0].split("|")
            return submit, start, end
        assert time.monotonic() < deadline, out
        time.sleep(0.5)


def local_second(iso: str) -> str:
    """orion's UTC ISO time as SLURM prints it (local time, whole seconds)."""
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.slurm
def test_adopted_job_logs_its_own_output_and_keeps_slurm_times(
    orion_home: Path, tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    (tmp_path / "plain.sbatch").write_text(SCRIPT.format(tag="adopted", output="plain-%j.out"))
    sid = subprocess.run(
        ["sbatch", "--parsable", "plain.sbatch"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deadline = time.monotonic() + 900  # a shared cluster's queue can be long
    while (
        subprocess.run(
            ["squeue", "-h", "-j", sid, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()
        == "PENDING"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    orion("adopt", sid)
    job_id = int(orion_json("show", "--slurm-id", sid)["id"])
    (job,) = poll_until_final([job_id], timeout_s=900)
    assert job["status"] == "completed"
    logs = orion("logs", str(job_id))
    assert f"==> {tmp_path / f'plain-{sid}.out'} (job {job_id}" in logs.stderr
    assert "hello from adopted" in logs.stdout
    submit, start, end = sacct_times(sid)
    assert (local_second(job["started_at"]), local_second(job["finished_at"])) == (start, end)
    assert local_second(job["submitted_at"]) == submit
    waited = (datetime.fromisoformat(start) - datetime.fromisoformat(submit)).total_seconds()
    assert abs(job["queue_wait_s"] - waited) < 1.0


@pytest.mark.slurm
def test_script_job_times_are_slurms_own(
    orion_home: Path, tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.sbatch").write_text(SCRIPT.format(tag="script", output="mine-%j.out"))
    job_id = int(orion("submit", "--script", "mine.sbatch").stdout)
    (job,) = poll_until_final([job_id], timeout_s=900)
    assert job["status"] == "completed"
    sid = job["scheduler_job_id"]
    _, start, end = sacct_times(sid)
    assert (local_second(job["started_at"]), local_second(job["finished_at"])) == (start, end)
    logs = orion("logs", str(job_id))
    assert f"==> {tmp_path / f'mine-{sid}.out'}" in logs.stderr
    assert "hello from script" in logs.stdout
