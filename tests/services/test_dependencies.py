"""Job dependencies end to end: --after chains, failure cascade, retried parents, bad input.

The order in which jobs really ran is read from the scheduler itself (the local backend's
``started``/``exit`` files, SLURM's accounting), never from orion's own rows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, EXAMPLES, use_backend
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    return use_backend(request, monkeypatch)


def submit(*args: str) -> int:
    return int(orion_json("submit", CU, *args)["id"])


def run_times(backend: str, home: Path, scheduler_job_id: str) -> tuple[float, float]:
    """When the scheduler started and ended a job, as it records it (epoch seconds)."""
    if backend == "local":
        job_dir = home / "local-scheduler" / "local-jobs" / scheduler_job_id
        return (job_dir / "started").stat().st_mtime, (job_dir / "exit").stat().st_mtime
    if backend == "test":
        from orion_cli.config import load_settings
        from orion_cli.schedulers import scheduler_for

        scheduler = scheduler_for(load_settings(), "test")
        ran = scheduler.jobs[scheduler_job_id].ran  # type: ignore[attr-defined]
        assert ran is not None, f"test job {scheduler_job_id} never ran"
        return ran[0].timestamp(), ran[1].timestamp()
    out = subprocess.run(
        ["sacct", "-j", scheduler_job_id, "-X", "-n", "-P", "-o", "Start,End"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[0]
    start, end = (datetime.fromisoformat(t).timestamp() for t in out.split("|"))
    return start, end


def test_after_chain_runs_in_order(backend: str, orion_home: Path) -> None:
    first = submit("--engine", "mock", "-p", "duration_s=1", "--name", "first")
    second = submit("--engine", "emt", "--after", str(first), "--name", "second")
    third = submit("--engine", "mock", "-p", "duration_s=0.2", "--after", f"{second},{first}")
    shown = orion_json("show", str(third))
    assert [p["id"] for p in shown["parents"]] == [first, second]
    assert shown["dependency"].startswith("waiting on")
    jobs = {job["id"]: job for job in poll_until_final([first, second, third], 180)}
    assert [jobs[i]["status"] for i in (first, second, third)] == ["completed"] * 3
    times = [
        run_times(backend, orion_home, jobs[i]["scheduler_job_id"]) for i in (first, second, third)
    ]
    assert times[0][1] <= times[1][0] and times[1][1] <= times[2][0], times
    assert [c["id"] for c in orion_json("show", str(first))["children"]] == [second, third]


def test_failed_parent_cancels_its_descendants(backend: str, orion_home: Path) -> None:
    parent = submit("--engine", "mock", "-p", "fail=true", "-p", "duration_s=1", "--name", "parent")
    child = submit("--engine", "emt", "--after", str(parent), "--name", "child")
    grandchild = submit("--engine", "emt", "--after", str(child), "--name", "grandchild")
    collect = submit("--engine", "mock", "-p", "duration_s=0", "--after-any", str(parent))
    jobs = {job["id"]: job for job in poll_until_final([parent, child, grandchild, collect], 180)}
    assert (jobs[parent]["status"], jobs[parent]["failure_reason"]) == ("failed", "engine_error")
    for job_id in (child, grandchild):
        assert (jobs[job_id]["status"], jobs[job_id]["failure_reason"]) == (
            "cancelled",
            "dependency_failed",
        )
    assert f"parent job {parent} failed" in jobs[child]["events"][-1]["message"]
    assert f"because job {parent} failed" in jobs[grandchild]["events"][-1]["message"]
    assert jobs[child]["dependency"] == f"blocked: parent {parent} failed (engine_error)"
    assert jobs[collect]["status"] == "completed"  # --after-any runs whatever the outcome
    ids = [jobs[i]["scheduler_job_id"] for i in (child, grandchild)]
    if backend == "slurm":  # gone from the queue: squeue (pending and running) lists neither
        out = subprocess.run(
            ["squeue", "-h", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True
        ).stdout
        assert out.strip() == ""
    else:
        for sid in ids:
            job_dir = orion_home / "local-scheduler" / "local-jobs" / sid
            assert (job_dir / "cancelled").exists() and not (job_dir / "started").exists()
    listing = {row["id"]: row for row in orion_json("ls")}
    assert (
        listing[grandchild]["dependency"] == f"blocked: parent {child} cancelled "
        "(dependency_failed)"
    )


def test_cancel_with_dependents(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    parent = submit("--engine", "mock", "-p", "duration_s=60")
    child = submit("--engine", "emt", "--after", str(parent))
    other = submit("--engine", "emt", "--after-any", str(child))
    plain = orion("cancel", str(child))
    assert f"jobs {other}" not in plain.stderr  # afterany children are not cascaded
    orion("cancel", str(parent), "--with-dependents")
    assert orion_json("show", str(parent))["status"] == "cancelled"
    assert orion_json("show", str(other))["status"] == "cancelled"
    assert orion_json("show", str(other))["failure_reason"] is None


def _kill_when_started(home: Path, sid: str, timeout_s: float = 30) -> None:
    job_dir = home / "local-scheduler" / "local-jobs" / sid
    deadline = time.monotonic() + timeout_s
    while not (job_dir / "started").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    import json

    os.killpg(json.loads((job_dir / "job.json").read_text())["pgid"], signal.SIGKILL)


def test_retried_parent_repoints_its_child_local(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parent killed under it (LOST, retried) keeps its child: the child waits for the retry."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    parent = submit("--engine", "mock", "-p", "duration_s=3", "--retry-delay", "1s")
    child = submit("--engine", "mock", "-p", "duration_s=0", "--after", str(parent))
    first_sid = orion_json("show", str(parent))["scheduler_job_id"]
    _kill_when_started(orion_home, first_sid)
    jobs = {job["id"]: job for job in poll_until_final([parent, child], 90)}
    assert jobs[parent]["status"] == "completed" and jobs[parent]["attempt"] == 2
    assert jobs[child]["status"] == "completed" and jobs[child]["attempt"] == 1
    new_sid = jobs[parent]["scheduler_job_id"]
    assert new_sid != first_sid
    assert any(f"attempt 2 of job {parent}" in (e["message"] or "") for e in jobs[child]["events"])
    parent_end = run_times("local", orion_home, new_sid)[1]
    assert run_times("local", orion_home, jobs[child]["scheduler_job_id"])[0] >= parent_end


def _job_count() -> int:
    return len(orion_json("ls", "--all-users"))


def test_bad_dependencies_exit_2_and_write_nothing(
    database_url: str, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    if database_url.startswith("sqlite"):  # no database yet: nothing is created
        assert (
            "no job with id 4"
            in orion("submit", CU, "--engine", "emt", "--after", "4", expect=2).stderr
        )
        assert not (orion_home / "orion.db").exists()
    parent = submit("--engine", "mock", "-p", "fail=true", "-p", "duration_s=0")
    poll_until_final([parent])
    running = submit("--engine", "mock", "-p", "duration_s=30")
    before = _job_count()
    cases = [
        (["--after", "999"], "no job with id 999"),
        (["--after", "1_0"], "'1_0' is not an orion job id"),
        (["--after", str(parent)], f"job {parent} failed (engine_error)"),
        (["--after", str(running), "--after-any", str(running)], "both --after and"),
        (["--after", str(running), "--scheduler", "slurm"], "runs on local"),
    ]
    for args, text in cases:
        result = orion("submit", CU, "--engine", "emt", *args, expect=2)
        assert text in result.stderr and "Traceback" not in result.output, args
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    with create_engine(database_url).begin() as conn:
        conn.execute(sql("UPDATE job SET owner = 'someone-else' WHERE id = :i"), {"i": running})
    result = orion("submit", CU, "--engine", "emt", "--after", str(running), expect=2)
    assert "belongs to someone-else" in result.stderr
    assert _job_count() == before
    orion("submit", CU, "--engine", "emt", "--after-any", str(parent))  # allowed: any outcome


def _squeue(*scheduler_job_ids: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", ",".join(scheduler_job_ids), "-o", "%i %T %r"],
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.mark.slurm
def test_parent_scancelled_outside_orion_cancels_its_child(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM leaves the child pending (DependencyNeverSatisfied); the poller cancels it."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    parent = submit("--engine", "mock", "-p", "duration_s=0", "--hold")
    child = submit("--engine", "mock", "-p", "duration_s=0", "--after", str(parent))
    parent_sid = orion_json("show", str(parent))["scheduler_job_id"]
    subprocess.run(["scancel", parent_sid], check=True)
    jobs = {job["id"]: job for job in poll_until_final([parent, child], 60)}
    assert (jobs[parent]["status"], jobs[parent]["failure_reason"]) == (
        "cancelled",
        "cancelled_externally",
    )
    assert (jobs[child]["status"], jobs[child]["failure_reason"]) == (
        "cancelled",
        "dependency_failed",
    )
    assert f"parent job {parent} cancelled" in jobs[child]["events"][-1]["message"]
    assert _squeue(jobs[child]["scheduler_job_id"]) == ""


def _sbatch(*args: str) -> str:
    return subprocess.run(
        ["sbatch", "--parsable", "--chdir=/tmp", "--output=/dev/null", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


@pytest.mark.slurm
def test_dependency_never_satisfied_outside_orion_is_cancelled_with_a_warning(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An adopted job waits for a job orion does not know, which is cancelled: SLURM says
    DependencyNeverSatisfied, so the poller cancels it, saying why, instead of waiting for ever."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    foreign = _sbatch("-H", "--wrap", "true")
    waiting = _sbatch(f"--dependency=afterok:{foreign}", "--wrap", "true")
    try:
        [line] = orion("adopt", waiting).stdout.splitlines()
        job_id = int(line.split(":")[0])
        subprocess.run(["scancel", foreign], check=True)
        deadline = time.monotonic() + 30
        while "DependencyNeverSatisfied" not in _squeue(waiting):  # SLURM's own verdict first
            assert time.monotonic() < deadline, _squeue(waiting)
            time.sleep(0.5)
        [job] = poll_until_final([job_id], 30)
    finally:
        subprocess.run(["scancel", foreign, waiting], capture_output=True)  # if it failed
    assert (job["status"], job["failure_reason"]) == ("cancelled", "dependency_failed")
    notes = [e["message"] for e in job["events"] if e["from"] == e["to"]]
    assert any(n.startswith("warning:") and "DependencyNeverSatisfied" in n for n in notes)
    assert "DependencyNeverSatisfied" in job["events"][-1]["message"]
    assert _squeue(waiting) == ""


@pytest.mark.slurm
def test_a_child_whose_parents_completed_is_let_run_when_slurm_says_never(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM's dependency of a child points at a job that failed, while its orion parent
    completed (what a superseded attempt or a failed packed task leaves): cleared, it runs."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    parent = submit("--engine", "mock", "-p", "duration_s=0", "--hold")
    child = submit("--engine", "mock", "-p", "duration_s=0", "--after", str(parent))
    foreign = _sbatch("-H", "--wrap", "true")
    try:
        child_sid = orion_json("show", str(child))["scheduler_job_id"]
        subprocess.run(
            ["scontrol", "update", f"JobId={child_sid}", f"Dependency=afterok:{foreign}"],
            check=True,
        )
        subprocess.run(["scancel", foreign], check=True)
        orion("release", str(parent))
        jobs = {job["id"]: job for job in poll_until_final([parent, child], 90)}
    finally:
        subprocess.run(["scancel", foreign], capture_output=True)
    assert jobs[parent]["status"] == "completed"
    assert jobs[child]["status"] == "completed", jobs[child]["events"]
    assert any("dependency cleared" in (e["message"] or "") for e in jobs[child]["events"])
