"""Packed arrays (``orion submit --pack``) end to end on the local backend: the same batch
scripts as SLURM, run as background processes. The real-SLURM failure cases (a real TIMEOUT,
scancel, kill -9 of the runner) are in test_timeouts_slurm.py."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import job_lines, job_result, orion, orion_json, poll_until_final


def _structures(path: Path, n: int, element: str = "Cu") -> list[object]:
    from ase.build import bulk
    from ase.io import write

    frames = []
    for seed in range(n):
        atoms = bulk(element, cubic=True)
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


def _runner_pid(home: Path, timeout_s: float = 30) -> int:
    """The pid of this test's packed-task runner (its command line names this ORION_HOME)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["pgrep", "-f", f"jobrun --pack {home}"], capture_output=True, text=True
        ).stdout.split()
        if found:
            return int(found[0])
        time.sleep(0.1)
    raise AssertionError("the packed task never started")


def _wait_started(job_id: int, timeout_s: float = 60) -> None:
    """Until the runner's ``started`` event of the job is written: read from its directory
    (not through a poll), so that the signal sent next lands while that job runs."""
    workdir = Path(orion_json("show", str(job_id))["workdir"])  # its lines: the task's stream
    deadline = time.monotonic() + timeout_s
    while not any(line.get("event") == "started" for line in job_lines(workdir)):
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _wait_asleep(pid: int, timeout_s: float = 60) -> None:
    """Until process ``pid`` sleeps (state S in /proc): after a calculation's ``started``
    event the runner only sleeps inside the engine, so a signal sent now lands during the
    calculation and not in the instant between the event and its start."""
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "S":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_packed_emt_results_match_ase(database_url: str, tmp_path: Path) -> None:
    from ase.calculators.emt import EMT

    frames = _structures(tmp_path / "many.extxyz", 7)
    out = orion_json(
        "submit", str(tmp_path / "many.extxyz"), "-e", "emt", "--pack", "3", "--scheduler", "local"
    )
    jobs = poll_until_final(out["ids"])
    assert len({job["scheduler_job_id"] for job in jobs}) == 3  # 3 + 3 + 1
    for job, atoms in zip(jobs, frames, strict=True):
        atoms.calc = EMT()
        assert (job["status"], job["pack"], job["attempt"]) == ("completed", 3, 1)
        assert job["result"]["energy_ev"] == pytest.approx(
            atoms.get_potential_energy(), abs=1e-6
        )  # extxyz digits
        assert job_result(job["workdir"])["error"] is None  # its line in its task's stream
    assert "pack              3 calculations per array task" in orion("show", "1").stdout


def test_killed_runner_keeps_finished_and_resubmits_unstarted(
    orion_home: Path, tmp_path: Path
) -> None:
    _structures(tmp_path / "many.extxyz", 6)
    ids = orion_json(
        "submit",
        str(tmp_path / "many.extxyz"),
        "-e",
        "mock",
        "--pack",
        "6",
        "-p",
        "duration_s=1",
        "--scheduler",
        "local",
    )["ids"]
    pid = _runner_pid(orion_home)
    _wait_started(ids[1])
    os.kill(pid, signal.SIGKILL)
    jobs = poll_until_final(ids)
    assert jobs[0]["status"] == "completed"
    shot = jobs[1]
    assert (shot["status"], shot["failure_reason"], shot["attempt"]) == ("failed", "exit_code", 1)
    for job in jobs[2:]:  # never started: submitted again, not failed, no attempt spent
        assert (job["status"], job["attempt"]) == ("completed", 1), job["events"]
        assert job["scheduler_job_id"] != shot["scheduler_job_id"]
        assert any("no attempt spent" in (e["message"] or "") for e in job["events"])
        assert [a["scheduler_job_id"] for a in job["attempts"]] == [job["scheduler_job_id"]]


def test_soft_limit_stops_the_pack_after_the_running_job(orion_home: Path, tmp_path: Path) -> None:
    _structures(tmp_path / "many.extxyz", 5)
    ids = orion_json(
        "submit",
        str(tmp_path / "many.extxyz"),
        "-e",
        "mock",
        "--pack",
        "5",
        "-p",
        "duration_s=1.5",
        "--retry-delay",
        "1s",
        "--scheduler",
        "local",
    )["ids"]
    pid = _runner_pid(orion_home)
    _wait_started(ids[1])
    _wait_asleep(pid)  # in the mock's sleep: inside the calculation, not before it
    os.kill(pid, signal.SIGUSR1)  # what sbatch --signal=B:USR1@margin sends
    jobs = poll_until_final(ids[2:])
    deadline = time.monotonic() + 60
    while (stopped := orion_json("show", str(ids[1])))["status"] != "completed":
        assert time.monotonic() < deadline, stopped["status"]
        orion("poll", expect=None)
        time.sleep(0.5)
    assert orion_json("show", str(ids[0]))["status"] == "completed"
    first = stopped["attempts"][0]
    assert (first["status"], first["reason"]) == ("failed", "timeout")  # retried by policy
    assert stopped["attempt"] == 2 and stopped["walltime_s"] == 7200
    for job in jobs:
        assert (job["status"], job["attempt"]) == ("completed", 1)


def test_cancel_one_packed_job_leaves_the_others(orion_home: Path, tmp_path: Path) -> None:
    _structures(tmp_path / "many.extxyz", 4)
    ids = orion_json(
        "submit",
        str(tmp_path / "many.extxyz"),
        "-e",
        "mock",
        "--pack",
        "4",
        "-p",
        "duration_s=0.5",
        "--scheduler",
        "local",
    )["ids"]
    assert "runs on for the other jobs" in orion("cancel", str(ids[3])).output
    jobs = poll_until_final(ids)
    assert [job["status"] for job in jobs] == ["completed"] * 3 + ["cancelled"]
    assert job_result(jobs[3]["workdir"]) is None


def test_pack_auto_fits_the_walltime(orion_home: Path, tmp_path: Path) -> None:
    _structures(tmp_path / "many.extxyz", 10)
    script = orion(
        "submit",
        str(tmp_path / "many.extxyz"),
        "-e",
        "emt",
        "--pack",
        "auto",
        "--estimate",
        "10s",
        "--walltime",
        "25s",
        "--scheduler",
        "local",
        "--dry-run",
    ).stdout
    assert "one array of 5 tasks (packed)" in script  # 25 s fit 2 of 10 s: 10 in 5 tasks
    assert "jobrun --pack" in script and "packs-0.jsonl" in script
    assert (
        "--pack"
        not in orion(
            "submit",
            str(tmp_path / "many.extxyz"),
            "-e",
            "emt",
            "--scheduler",
            "local",
            "--dry-run",
        ).stdout
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--pack", "0"], "--pack '0' is not a number"),
        (["--pack", "lots"], "--pack 'lots' is not a number"),
        (["--pack", "4", "--nodes", "2", "--ntasks", "1"], "leave 1 idle"),
        (["--pack", "auto", "-e", "qe"], "add --estimate"),
    ],
)
def test_pack_usage_errors(orion_home: Path, tmp_path: Path, args: list[str], words: str) -> None:
    _structures(tmp_path / "many.extxyz", 3, "Si" if "qe" in args else "Cu")
    engine = [] if "-e" in args else ["-e", "emt"]
    result = orion(
        "submit", str(tmp_path / "many.extxyz"), *engine, *args, "--scheduler", "local", expect=2
    )
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert not (orion_home / "orion.db").exists()  # nothing written


def test_interrupted_packed_submit_is_recovered_as_packed(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orion_cli.schedulers.local import LocalScheduler

    _structures(tmp_path / "many.extxyz", 5)

    def die(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise SystemExit(137)  # orion killed after the rows were committed, before sbatch

    real = LocalScheduler.submit_array
    monkeypatch.setattr(LocalScheduler, "submit_array", die)
    orion(
        "submit",
        str(tmp_path / "many.extxyz"),
        "-e",
        "mock",
        "-p",
        "duration_s=0.1",
        "--pack",
        "2",
        "--scheduler",
        "local",
        expect=137,
    )
    monkeypatch.setattr(LocalScheduler, "submit_array", real)
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    orion("poll")
    jobs = poll_until_final([1, 2, 3, 4, 5])
    tasks = [job["scheduler_job_id"].split("_")[1] for job in jobs]
    assert tasks == ["0", "0", "1", "1", "2"]  # recovered as 3 packed tasks, not 5
    assert [job["status"] for job in jobs] == ["completed"] * 5
