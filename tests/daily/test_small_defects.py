"""Issue 26, the small defects: the API's hint, setup.sh's last line, the retry note's time,
plurals, the --queue help, a cancelled job's retry reason, a failed job's progress column."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from orion_cli.schedulers.base import JobInfo
from orion_cli.schedulers.local import LocalScheduler
from orion_cli.states import FailureReason, JobStatus
from tests.conftest import EXAMPLES, REPO
from tests.helpers import orion, orion_json, poll_until_final

CU = str(EXAMPLES / "Cu.cif")


def test_api_error_text_carries_the_cli_hint(orion_home: Path) -> None:
    from ase.build import bulk

    import orion_cli.api as api
    from orion_cli.errors import UsageError

    with pytest.raises(UsageError) as caught:
        api.submit(bulk("Cu", cubic=True), engine="emt", fmax=0.01)
    assert "engine 'emt' has no parameter 'fmax'" in str(caught.value)
    assert "known: " in str(caught.value) and "fmax_ev_per_a" in str(caught.value)


def test_setup_ends_with_the_scheduler_a_submit_will_use(
    orion_home: Path, slurm: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orion_cli.config import load_settings
    from orion_cli.services.admin.doctor import defaults_line

    assert defaults_line(load_settings()).startswith("SQLite + SLURM (sbatch is on PATH)")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    assert (
        defaults_line(load_settings()) == "SQLite + the local scheduler (jobs run on this machine)"
    )
    script = (REPO / "scripts" / "setup.sh").read_text()
    assert "(SQLite + local scheduler)" not in script and "defaults_line" in script


def test_retry_note_says_when_the_attempt_can_begin(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TIMEOUT injected (a real one is in test_timeouts_slurm.py): the note's time and the
    retry event's back-off must agree."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = int(orion_json("submit", CU, "--engine", "mock", "-p", "duration_s=30")["id"])
    first = orion_json("show", str(job_id))["scheduler_job_id"]
    real_query = LocalScheduler.query

    def timed_out(self: LocalScheduler, ids: list[str]) -> dict[str, JobInfo]:
        infos = real_query(self, ids)
        if first in infos:
            infos[first] = JobInfo(first, "TIMEOUT", JobStatus.FAILED, FailureReason.TIMEOUT)
        return infos

    monkeypatch.setattr(LocalScheduler, "query", timed_out)
    orion("poll")
    events = orion_json("show", str(job_id))["events"]
    note = next(e["message"] for e in events if (e["message"] or "").startswith("retry due at"))
    due, begins = re.search(
        r"retry due at (\S+ \S+) UTC \(attempt 2, begins after 60 s, at (\S+) UTC", note
    ).groups()  # noqa: E501
    due_at = datetime.fromisoformat(due)
    assert (due_at + timedelta(seconds=60)).strftime("%H:%M:%S") == begins
    assert "after timeout" in events[-1]["message"] and "begins after 60 s" in events[-1]["message"]
    orion("cancel", str(job_id))


def test_cancelled_job_retry_says_why_and_plural_is_right(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = int(
        orion_json("submit", CU, "--engine", "mock", "-p", "duration_s=60", "--hold")["id"]
    )
    orion("cancel", str(job_id))
    orion("retry", str(job_id), "--yes")
    last = orion_json("show", str(job_id))["events"][-1]["message"]
    assert "after the job was cancelled" in last and "after request" not in last
    listing = orion("ls").stdout
    assert "1 job:" in listing and "1 jobs" not in listing
    assert orion("results", str(job_id)).stdout.splitlines()[0] == "1 job"
    orion("cancel", str(job_id))


def test_queue_help_names_the_config_table() -> None:
    out = orion("submit", "--help").stdout
    assert "[queues.NAME]" in " ".join(out.split())


def test_failed_job_progress_column_is_not_a_running_step(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("COLUMNS", "200")
    job_id = int(orion_json("submit", CU, "--engine", "mock", "-p", "fail=true")["id"])
    (job,) = poll_until_final([job_id])
    assert job["status"] == "failed" and job["current_step"]  # the step it failed in is kept
    row = next(
        line for line in orion("ls").stdout.splitlines() if line.strip().startswith(str(job_id))
    )
    assert job["current_step"] not in row


def test_short_walltime_keeps_a_scaled_soft_stop_and_says_so(orion_home: Path) -> None:
    out = orion(
        "submit", CU, "--engine", "emt", "--walltime", "2m", "--scheduler", "slurm", "--dry-run"
    )
    assert "#SBATCH --signal=B:USR1@30" in out.stdout
    assert "soft-stop margin (soft_margin_s = 300 s)" in out.stderr
    assert "30 s before the limit" in out.stderr
    long = orion(
        "submit", CU, "--engine", "emt", "--walltime", "1h", "--scheduler", "slurm", "--dry-run"
    )
    assert "#SBATCH --signal=B:USR1@300" in long.stdout and "soft-stop" not in long.stderr
