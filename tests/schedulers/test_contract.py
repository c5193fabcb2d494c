"""One contract for every backend: submit tiny real scripts, query, cancel (SLURM: real cluster)."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from orion_cli.errors import SchedulerError
from orion_cli.schedulers.base import JobInfo, Scheduler, SubmitOptions
from orion_cli.states import FailureReason, JobStatus


def slurm_or_skip() -> None:
    """Skip without sbatch on a laptop; in CI (env CI set) a missing sbatch is a failure."""
    if shutil.which("sbatch"):
        return
    if os.environ.get("CI"):
        pytest.fail("sbatch not found but CI is set: run scripts/slurm-up.sh first")
    pytest.skip("sbatch not found (run scripts/slurm-up.sh as root)")


def make_scheduler(name: str, state_dir: Path) -> Scheduler:
    """Build the backend called ``name``."""
    if name == "slurm":
        slurm_or_skip()
        from orion_cli.schedulers.slurm_cli import SlurmCli

        return SlurmCli()
    from orion_cli.schedulers.local import LocalScheduler

    return LocalScheduler(state_dir)


BACKENDS = [pytest.param("local"), pytest.param("slurm", marks=pytest.mark.slurm)]


UNKNOWN_ID = {"local": "L999999", "slurm": "999999"}


@dataclass
class Run:
    """What one backend did with the contract's jobs."""

    scheduler: Scheduler
    backend: str
    ids: dict[str, str]
    final: dict[str, JobInfo]
    workdir: Path


def write_script(workdir: Path, name: str, body: str) -> Path:
    """Write a batch script whose output goes to ``<name>.out``."""
    script = workdir / f"{name}.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={name}.out\n#SBATCH -t 1\n{body}\n")
    return script


def poll(scheduler: Scheduler, ids: list[str], until, timeout_s: float = 60) -> dict[str, JobInfo]:
    """Query all ``ids`` together until ``until(answer)`` holds."""
    end = time.monotonic() + timeout_s
    while True:
        answer = scheduler.query(ids)
        if until(answer) or time.monotonic() > end:
            return answer
        time.sleep(0.3)


@pytest.fixture(scope="module", params=BACKENDS)
def run(request, tmp_path_factory) -> Run:
    """Submit all contract jobs at once, cancel the sleeper once running, wait for the rest."""
    workdir = tmp_path_factory.mktemp(request.param)
    scheduler = make_scheduler(request.param, workdir / "state")
    ids = {
        "ok": scheduler.submit(write_script(workdir, "ok", "echo hello")),
        "exit3": scheduler.submit(write_script(workdir, "exit3", "exit 3")),
        "sleeper": scheduler.submit(write_script(workdir, "sleeper", "sleep 120")),
        "held": scheduler.submit(write_script(workdir, "held", "true"), SubmitOptions(hold=True)),
    }
    running = poll(
        scheduler, [ids["sleeper"]], lambda a: a[ids["sleeper"]].status is JobStatus.RUNNING
    )
    assert running[ids["sleeper"]].status is JobStatus.RUNNING
    scheduler.cancel([ids["sleeper"]])
    finishing = [ids["ok"], ids["exit3"], ids["sleeper"]]
    final = poll(
        scheduler,
        list(ids.values()),
        lambda a: all(a[i].status.is_final for i in finishing if i in a),
    )
    yield Run(scheduler, request.param, ids, final, workdir)
    scheduler.cancel(list(ids.values()))


def test_exit_0_completes(run: Run) -> None:
    info = run.final[run.ids["ok"]]
    assert (info.status, info.reason, info.exit_code) == (JobStatus.COMPLETED, None, 0)
    assert (run.workdir / "ok.out").read_text() == "hello\n"


def test_exit_3_fails_with_exit_code(run: Run) -> None:
    info = run.final[run.ids["exit3"]]
    assert (info.status, info.reason, info.exit_code) == (
        JobStatus.FAILED,
        FailureReason.EXIT_CODE,
        3,
    )


def test_cancelled_job_is_cancelled(run: Run) -> None:
    assert run.final[run.ids["sleeper"]].status is JobStatus.CANCELLED


def test_held_job_stays_queued_until_cancelled(run: Run) -> None:
    held = run.ids["held"]
    assert run.final[held].status is JobStatus.QUEUED
    assert run.final[held].pending_reason == "JobHeldUser"
    run.scheduler.cancel([held])
    after = poll(run.scheduler, [held], lambda a: a[held].status.is_final, timeout_s=10)
    assert after[held].status is JobStatus.CANCELLED


def test_unknown_ids_are_left_out_not_an_error(run: Run) -> None:
    unknown = UNKNOWN_ID[run.backend]
    assert run.scheduler.query([unknown]) == {}
    answer = run.scheduler.query([run.ids["ok"], unknown])
    assert set(answer) == {run.ids["ok"]}


def test_cancel_of_finished_or_unknown_jobs_is_no_error(run: Run) -> None:
    run.scheduler.cancel([run.ids["ok"], UNKNOWN_ID[run.backend]])
    assert run.scheduler.query([run.ids["ok"]])[run.ids["ok"]].status is JobStatus.COMPLETED


def test_check_says_ok(run: Run) -> None:
    ok, message = run.scheduler.check()
    assert ok and message.startswith(run.backend)


@pytest.mark.slurm
def test_slurm_submit_to_missing_partition_reports_slurms_message(tmp_path: Path) -> None:
    scheduler = make_scheduler("slurm", tmp_path)
    script = tmp_path / "bad.sh"
    script.write_text("#!/bin/bash\n#SBATCH -p nosuch\ntrue\n")
    with pytest.raises(SchedulerError, match="Invalid partition name specified"):
        scheduler.submit(script)


@pytest.mark.slurm
def test_slurm_partitions_lists_debug() -> None:
    scheduler = make_scheduler("slurm", Path("."))
    assert "debug" in scheduler.partitions()  # type: ignore[attr-defined]
