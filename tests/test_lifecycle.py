"""Retries, escalation, cancel, hold/release/priority, crash recovery, concurrent pollers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from orion_cli.batch import nice_for_priority
from orion_cli.config import load_settings
from orion_cli.db.models import now_utc
from orion_cli.schedulers.base import JobInfo
from orion_cli.schedulers.local import LocalScheduler
from orion_cli.services.lifecycle.poll import poll
from orion_cli.states import FailureReason, JobStatus
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final, slurm_nice

CU = str(EXAMPLES / "Cu.cif")


def submit(*args: str) -> int:
    return int(orion_json("submit", CU, *args)["id"])


def squeue_field(scheduler_job_id: str, field: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-j", scheduler_job_id, "-o", field],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_timeout_is_retried_with_double_walltime_after_backoff(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's TIMEOUT is injected here to keep this fast (a real one takes ~90 s and
    is produced in test_timeouts_slurm.py); the retry itself goes through the real local backend."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = submit("--engine", "mock", "-p", "duration_s=30", "--walltime", "1h")
    first = orion_json("show", str(job_id))["scheduler_job_id"]
    real_query = LocalScheduler.query

    def timed_out(self: LocalScheduler, ids: list[str]) -> dict[str, JobInfo]:
        infos = real_query(self, ids)
        if first in infos:
            infos[first] = JobInfo(first, "TIMEOUT", JobStatus.FAILED, FailureReason.TIMEOUT)
        return infos

    monkeypatch.setattr(LocalScheduler, "query", timed_out)
    orion("poll")
    job = orion_json("show", str(job_id))
    assert (job["status"], job["attempt"], job["walltime_s"]) == ("queued", 2, 7200)
    assert job["scheduler_job_id"] != first
    assert [(a["attempt"], a["status"], a["reason"], a["walltime_s"]) for a in job["attempts"]] == [
        (1, "failed", "timeout", 3600),
        (2, "queued", None, 7200),
    ]
    workdir = Path(job["workdir"])
    assert "#SBATCH --time=02:00:00" in (workdir / "job.sh").read_text()
    assert "begins after 60 s" in job["events"][-1]["message"]
    second = LocalScheduler(orion_home / "local-scheduler").query([job["scheduler_job_id"]])
    assert second[job["scheduler_job_id"]].status is JobStatus.QUEUED  # waiting for --begin
    orion("cancel", str(job_id))
    assert orion_json("show", str(job_id))["status"] == "cancelled"


def test_engine_error_is_not_retried_until_the_user_asks(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = submit("--engine", "mock", "-p", "fail=true", "-p", "duration_s=0")
    (job,) = poll_until_final([job_id])
    assert (job["status"], job["failure_reason"], job["attempt"]) == ("failed", "engine_error", 1)
    orion("poll")
    assert orion_json("show", str(job_id))["attempt"] == 1
    orion("retry", str(job_id), "--yes")
    (job,) = poll_until_final([job_id])
    assert (job["status"], job["attempt"], len(job["attempts"])) == ("failed", 2, 2)
    assert (Path(job["workdir"]) / "result-attempt-1.json").exists()


@pytest.mark.slurm
def _transient_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put an sbatch first on PATH that fails as a controller that cannot be reached does."""
    fake = tmp_path / "transient-bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/bash\necho 'sbatch: error: Batch job submission failed: "
        "Unable to contact slurm controller (connect failure)' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")


def test_refused_submission_backs_off_and_stops_after_the_budget(
    orion_home: Path, tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    _transient_sbatch(tmp_path, monkeypatch)  # a refusal that a later try might pass
    result = orion("submit", CU, "--engine", "mock", "--retries", "2", expect=1)
    assert "Unable to contact slurm controller" in result.stderr
    assert "orion poll retries after 60 s" in result.stderr
    (job,) = orion_json("ls")
    job_id = job["id"]
    settings = load_settings()
    start = now_utc()
    poll(settings, now=start + timedelta(seconds=30))  # not due yet
    assert orion_json("show", str(job_id))["attempt"] == 1
    poll(settings, now=start + timedelta(seconds=61))  # attempt 2, refused again
    shown = orion_json("show", str(job_id))
    assert (shown["attempt"], shown["status"], shown["failure_reason"]) == (
        2,
        "failed",
        "submit_error",
    )
    poll(settings, now=start + timedelta(seconds=61 + 119))
    assert orion_json("show", str(job_id))["attempt"] == 2  # back-off doubled to 120 s
    poll(settings, now=start + timedelta(seconds=61 + 121))
    poll(settings, now=start + timedelta(days=1))
    shown = orion_json("show", str(job_id))
    assert shown["attempt"] == 3 and shown["next_attempt_at"] is None  # 2 retries used
    assert [a["reason"] for a in shown["attempts"]] == ["submit_error"] * 3


@pytest.mark.slurm
def test_cancel_in_every_state(
    orion_home: Path, tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    held = submit("--engine", "mock", "--hold")
    with monkeypatch.context() as patch:
        _transient_sbatch(tmp_path, patch)
        refused = orion("submit", CU, "--engine", "mock", expect=1)
    assert "Unable to contact" in refused.stderr
    pending_retry = orion_json("ls")[0]["id"]
    running = submit("--engine", "mock", "-p", "duration_s=120")
    deadline = time.monotonic() + 60
    while orion_json("show", str(running))["status"] != "running":
        assert time.monotonic() < deadline
        orion("poll")
        time.sleep(0.5)
    slurm_ids = {j: orion_json("show", str(j))["scheduler_job_id"] for j in (held, running)}
    orion("cancel", str(held), str(pending_retry), str(running))
    for job_id in (held, pending_retry, running):
        assert orion_json("show", str(job_id))["status"] == "cancelled"
    deadline = time.monotonic() + 30  # slurmdbd records the cancel a moment later
    for scheduler_job_id in slurm_ids.values():
        while True:
            out = subprocess.run(
                ["sacct", "-n", "-X", "-P", "-o", "State", "-j", scheduler_job_id],
                capture_output=True,
                text=True,
            ).stdout
            state = squeue_field(scheduler_job_id, "%T")
            if "CANCELLED" in out or state in ("", "CANCELLED"):
                break
            assert time.monotonic() < deadline, (scheduler_job_id, out, state)
            time.sleep(0.2)
    poll(load_settings(), now=now_utc() + timedelta(days=1))
    assert orion_json("show", str(pending_retry))["attempt"] == 1  # no retry after cancel


@pytest.mark.slurm
def test_hold_release_and_priority(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    job_id = submit("--engine", "mock", "-p", "duration_s=0", "--hold", "--priority", "5")
    slurm_id = orion_json("show", str(job_id))["scheduler_job_id"]
    assert squeue_field(slurm_id, "%T|%r").startswith("PENDING|JobHeldUser")
    assert squeue_field(slurm_id, "%y") == "500"  # nice for priority 5
    orion("priority", "20", str(job_id))  # held: SLURM's nice waits for the release
    assert squeue_field(slurm_id, "%T|%r").startswith("PENDING|JobHeldUser")
    assert slurm_nice(slurm_id) == nice_for_priority(5)
    assert orion_json("show", str(job_id))["priority"] == 20
    orion("release", str(job_id))
    assert slurm_nice(slurm_id) == nice_for_priority(20)
    (job,) = poll_until_final([job_id])
    assert job["status"] == "completed"
    bad = orion("hold", str(job_id), expect=2)
    assert "only queued jobs" in bad.stderr


@pytest.mark.slurm
def test_external_scancel_is_recorded(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    job_id = submit("--engine", "mock", "--hold")
    subprocess.run(["scancel", orion_json("show", str(job_id))["scheduler_job_id"]], check=True)
    (job,) = poll_until_final([job_id])
    assert (job["status"], job["failure_reason"]) == ("cancelled", "cancelled_externally")


def _orion_process(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orion_cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def slurm_jobs_of(instance: str) -> dict[str, list[str]]:
    """orion job id → SLURM job ids, for every SLURM job named for this database."""
    out = subprocess.run(
        ["squeue", "-h", "--me", "-t", "all", "-o", "%j|%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found: dict[str, list[str]] = {}
    for line in out.split():
        name, _, slurm_id = line.partition("|")
        parts = name.split("-")
        if len(parts) > 3 and parts[0] == "orion" and parts[2] == instance:
            found.setdefault(parts[1], []).append(slurm_id)
    return found


@pytest.mark.slurm
def test_kill_9_during_submit_loses_and_duplicates_nothing(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few randomized kills here; reliability/faults.py runs hundreds."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    started = time.monotonic()
    _orion_process("submit", CU, "--engine", "mock", "--hold").wait()
    full_s = time.monotonic() - started
    rng = random.Random(4)
    for _ in range(8):
        proc = _orion_process("submit", CU, "--engine", "mock", "--hold")
        time.sleep(rng.uniform(0.5 * full_s, full_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    orion("poll")
    rows = orion_json("ls")
    assert rows and all(row["status"] == "queued" for row in rows), rows
    (instance,) = [p.name for p in (orion_home / "jobs").iterdir() if not p.name.startswith(".")]
    in_slurm = slurm_jobs_of(instance)
    assert sorted(in_slurm) == sorted(str(row["id"]) for row in rows)  # no job without a row
    for row in rows:
        assert in_slurm[str(row["id"])] == [row["scheduler_job_id"]]  # exactly one, ours
    orion("cancel", *[str(row["id"]) for row in rows])


@pytest.mark.slurm
@pytest.mark.postgres
def test_five_pollers_at_once(
    orion_home: Path, slurm: None, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("ORION_DATABASE_URL", postgres_url)
    orion("db", "upgrade")
    ids = [submit("--engine", "mock", "-p", "duration_s=0.5") for _ in range(4)]
    deadline = time.monotonic() + 90
    while True:
        procs = [_orion_process("poll") for _ in range(5)]
        codes = [p.wait() for p in procs]
        assert 0 in codes  # one of them did the work, the others said so and left
        jobs = [orion_json("show", str(i)) for i in ids]
        if all(j["status"] == "completed" for j in jobs):
            break
        assert time.monotonic() < deadline, [j["status"] for j in jobs]
    for job in jobs:
        transitions = [(e["from"], e["to"]) for e in job["events"]]
        assert len(transitions) == len(set(transitions)), transitions  # nothing twice
        assert transitions[-1][1] == "completed"


@pytest.mark.slurm
@pytest.mark.parametrize("reached_slurm", [True, False])
def test_unanswered_sbatch_is_looked_up_before_submitting_again(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch, reached_slurm: bool
) -> None:
    """sbatch timing out is ambiguous: the job may exist. The job stays `created` and the
    next poll adopts the SLURM job by name, or submits it when SLURM never got it."""
    from orion_cli.errors import SubmitOutcomeUnknown
    from orion_cli.schedulers.slurm_cli import SlurmCli

    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("ORION_SLURM_BACKEND", "cli")  # the fault is injected into SlurmCli
    real = SlurmCli.submit
    sent: list[str] = []

    def no_answer(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if reached_slurm:
            sent.append(real(self, *args, **kwargs))
        raise SubmitOutcomeUnknown("sbatch did not answer within its time limit")

    monkeypatch.setattr(SlurmCli, "submit", no_answer)
    result = orion("submit", CU, "--engine", "mock", "--hold", expect=1)
    assert "did not answer" in result.stderr
    monkeypatch.setattr(SlurmCli, "submit", real)
    (row,) = orion_json("ls")
    assert row["status"] == "created"
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    orion("poll")
    job = orion_json("show", str(row["id"]))
    assert job["status"] == "queued"
    (instance,) = [p.name for p in (orion_home / "jobs").iterdir() if not p.name.startswith(".")]
    assert slurm_jobs_of(instance)[str(row["id"])] == [job["scheduler_job_id"]]
    if reached_slurm:
        assert job["scheduler_job_id"] == sent[0]
    orion("cancel", str(row["id"]))


@pytest.mark.slurm
def test_a_banner_before_the_job_id_submits_once(
    orion_home: Path, tmp_path: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site wrapper that prints a line before sbatch's id: one SLURM job, completed."""
    import shutil

    wrapper = tmp_path / "bin" / "sbatch"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/bash\necho 'NOTE: your account has 1234 core-hours left'\n"
        f'exec {shutil.which("sbatch")} "$@"\n'
    )
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("ORION_RETRY_DELAY_S", "1")
    job_id = submit("--engine", "mock", "-p", "duration_s=0")
    (job,) = poll_until_final([job_id])
    assert job["status"] == "completed" and len(job["attempts"]) == 1, job["attempts"]
    (instance,) = [p.name for p in (orion_home / "jobs").iterdir() if not p.name.startswith(".")]
    assert len(slurm_jobs_of(instance)[str(job_id)]) == 1


@pytest.mark.slurm
def test_default_priority_competes_as_a_plain_sbatch_job(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Priority 10 is nice 0 in SLURM (it was nice 1000: every orion job behind the user's
    own plain sbatch jobs); lower priorities get a positive nice."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    plain, low = (
        submit("--engine", "mock", "--hold"),
        submit("--engine", "mock", "--hold", "--priority", "4"),
    )
    nices = {}
    for job_id in (plain, low):
        slurm_id = orion_json("show", str(job_id))["scheduler_job_id"]
        nices[job_id] = subprocess.run(
            ["squeue", "-h", "-j", slurm_id, "-o", "%y"], capture_output=True, text=True, check=True
        ).stdout.strip()
    orion("cancel", str(plain), str(low))
    assert nices == {plain: "0", low: "600"}


@pytest.mark.slurm
def test_a_requeued_job_goes_back_to_queued_in_the_same_attempt(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scontrol requeue` of a running job (what a node failure or a preemption with
    requeue does): orion moves it back to queued with an event, in the same attempt."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    job_id = submit("--engine", "mock", "-p", "duration_s=120")
    deadline = time.monotonic() + 60
    while orion_json("show", str(job_id))["status"] != "running":
        assert time.monotonic() < deadline, "never ran"
        orion("poll")
        time.sleep(0.5)
    slurm_id = orion_json("show", str(job_id))["scheduler_job_id"]
    try:
        subprocess.run(["scontrol", "requeue", slurm_id], check=True)
        deadline = time.monotonic() + 30
        while orion_json("show", str(job_id))["status"] == "running":
            assert time.monotonic() < deadline, "requeue not noticed"
            orion("poll")
            time.sleep(0.5)
        job = orion_json("show", str(job_id))
        assert job["status"] == "queued" and job["attempt"] == 1 and job["started_at"] is None
        last = job["events"][-1]
        assert (last["from"], last["to"]) == ("running", "queued")
        assert "requeued by the scheduler" in last["message"]
        assert [a["status"] for a in job["attempts"]] == ["queued"]
    finally:
        orion("cancel", str(job_id), expect=None)


@pytest.mark.slurm
def test_a_request_the_cluster_can_never_meet_fails_at_once(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sbatch's refusal of an impossible request is final: failed(submit_error) with
    sbatch's words and no retry (it was retried three times); a transient one is retried."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    done = orion("submit", CU, "--engine", "mock", "--ntasks", "100000", "--json", expect=1)
    assert "not retried" in done.stderr and "More processors requested" in done.stderr
    (job,) = orion_json("ls")
    shown = orion_json("show", str(job["id"]))
    assert (shown["status"], shown["failure_reason"]) == ("failed", "submit_error")
    assert shown["next_attempt_at"] is None


def test_a_transient_sbatch_failure_is_retried(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _transient_sbatch(tmp_path, monkeypatch)
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    done = orion("submit", CU, "--engine", "mock", "--hold", expect=1)
    assert "retries after" in done.stderr
    (job,) = orion_json("ls")
    assert orion_json("show", str(job["id"]))["next_attempt_at"] is not None
