"""Real progress from pw.x and lmp while they run, `orion logs`, and a job killed by signal 9.

References are read here from the engines' own output files with independent regexes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need
from tests.helpers import orion, orion_json, poll_until_final

PARAMS = EXAMPLES.parent / "params"


@pytest.fixture
def local_engines(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    need(
        shutil.which("pw.x") is not None and shutil.which("lmp") is not None,
        "pw.x and lmp (Debian quantum-espresso, lammps)",
    )
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_PROGRESS_INTERVAL_S", "0.2")
    return orion_home


def progress_events(workdir: Path) -> list[dict[str, object]]:
    lines = (workdir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e.get("event") == "progress"]


@pytest.mark.engines
def test_qe_progress_follows_pw_out(local_engines: Path) -> None:
    job_id = orion_json(
        "submit",
        str(EXAMPLES / "Si.cif"),
        "--engine",
        "qe",
        "--params",
        str(PARAMS / "si-scf.toml"),
    )["id"]
    (job,) = poll_until_final([job_id], timeout_s=180)
    assert job["status"] == "completed", job["error_message"]
    workdir = Path(job["workdir"])
    pw_out = (workdir / "pw.out").read_text()
    accuracies = [float(v) for v in re.findall(r"estimated scf accuracy\s+<\s+(\S+) Ry", pw_out)]
    (iterations,) = re.findall(r"convergence has been achieved in\s+(\d+) iterations", pw_out)
    steps = [str(e["step"]) for e in progress_events(workdir)]
    scf_steps = [s for s in steps if s.startswith("SCF iteration")]
    assert scf_steps, steps
    for step in scf_steps:  # each reported iteration and accuracy is one pw.x printed
        found = re.fullmatch(r"SCF iteration (\d+)(, accuracy (\S+) Ry( after (\d+))?)?", step)
        assert found and 1 <= int(found[1]) <= int(iterations), step
        if found[3]:  # printed as %.1e: within 5 % of the one pw.x printed for that iteration
            reference = accuracies[int(found[5] or found[1]) - 1]
            assert abs(float(found[3]) - reference) <= 0.051 * reference, (step, accuracies)
    assert any(", accuracy" in s for s in scf_steps)
    assert f"SCF converged in {iterations} iterations" in steps
    pcts = [float(e["progress_pct"]) for e in progress_events(workdir)]  # type: ignore[arg-type]
    assert pcts == sorted(pcts) and pcts[-1] == 100.0
    # orion logs: the engine's own output is pw.out, byte for byte; the job's output file too
    shown = orion("logs", str(job_id), "--engine-output")
    assert shown.stdout == pw_out and "pw.out (job" in shown.stderr
    batch = orion("logs", str(job_id))
    assert batch.stdout == (workdir / "attempt-1.out").read_text()


def _lmp_pid(workdir: Path) -> int | None:
    """The pid of the lmp process this test's job started (its working directory)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "lmp" and Path(
                os.readlink(entry / "cwd")
            ) == workdir:
                return int(entry.name)
        except OSError:
            continue
    return None


@pytest.mark.engines
def test_lammps_progress_live_then_killed_by_signal_9(local_engines: Path, tmp_path: Path) -> None:
    params = tmp_path / "long-md.toml"
    params.write_text(
        (PARAMS / "ar-lj-md.toml").read_text().replace("steps = 1000", "steps = 400000")
        + "thermo_every = 500\n"
    )
    job_id = orion_json(
        "submit", str(EXAMPLES / "Ar.xyz"), "--engine", "lammps", "--params", str(params)
    )["id"]
    deadline = time.monotonic() + 120
    while True:  # the step shows up in `orion show` while lmp runs
        orion("poll")
        job = orion_json("show", str(job_id))
        match = re.fullmatch(r"step (\d+) of 400000", job["current_step"])
        if job["status"] == "running" and match and int(match[1]) > 0:
            break
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.3)
    assert 5.0 < job["progress_pct"] < 95.0
    workdir = Path(job["workdir"])
    log_steps = re.findall(r"^\s+(\d+)\s+-?\d", (workdir / "log.lammps").read_text(), re.M)
    assert match[1] in log_steps  # a step lmp really printed
    assert job["progress_pct"] == pytest.approx(5 + 90 * int(match[1]) / 400000, abs=0.1)
    pid = _lmp_pid(workdir)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    (job,) = poll_until_final([job_id], timeout_s=60)
    assert job["status"] == "failed" and job["exit_signal"] == 9
    assert "lmp was killed by signal 9 (SIGKILL)" in job["error_message"]
    shown = orion("show", str(job_id)).stdout
    assert re.search(r"exit_signal\s+9", shown)


def test_logs_of_array_tasks_and_attempts(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_bulk import strained_copper

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    paths = strained_copper(tmp_path / "cu", 2)
    ids = orion_json(
        "submit", *map(str, paths), "--engine", "mock", "-p", "fail=true", "--retries", "0"
    )["ids"]
    jobs = poll_until_final(ids)
    task_out = Path(jobs[1]["workdir"]).parent / "arrays" / str(ids[0]) / "task-1.out"
    first = orion("logs", str(ids[1]))
    assert f"==> {task_out} (job {ids[1]}, attempt 1, failed) <==" in first.stderr
    assert first.stdout == task_out.read_text()
    orion("retry", str(ids[1]), "--yes")
    poll_until_final([ids[1]])
    second = orion("logs", str(ids[1]))
    attempt_out = Path(jobs[1]["workdir"]) / "attempt-2.out"
    assert f"==> {attempt_out} (job {ids[1]}, attempt 2" in second.stderr
    assert second.stdout == attempt_out.read_text()
    assert str(task_out) in orion("logs", str(ids[1]), "--attempt", "1").stderr
    bad = orion("logs", str(ids[1]), "--attempt", "3", expect=2)
    assert bad.stderr.strip() == (
        f"error: job {ids[1]} has no attempt 3 — it has had 2 (use --attempt 1..2)"
    )
    assert "'1_1' is not an orion job id" in orion("logs", "1_1", expect=2).stderr
