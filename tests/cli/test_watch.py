"""`orion watch` on a fixed-size terminal (q quits) and as plain lines in a pipe."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final, run_in_pty

CU = str(EXAMPLES / "Cu.cif")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def _last_frame(out: str) -> str:
    screen = ANSI.sub("", out)
    return screen[screen.rindex("orion watch") :] if "orion watch" in screen else ""


def _all_shown(out: str) -> bool:
    """The frame shows all three jobs settled, the running one with a progress bar and a
    step: the moment to press q (the assertions below read this frame)."""
    last = _last_frame(out)
    return (
        "1 queued, 1 running, 1 failed" in last
        and "running → failed" in last
        and re.search(r"█*░+ +\d+% +\w", last) is not None
    )


def test_watch_live_view_on_a_100x30_terminal(local: Path) -> None:
    slow = orion_json("submit", CU, "-e", "mock", "-p", "duration_s=30", "--tag", "w")["id"]
    bad = orion_json(
        "submit",
        CU,
        "-e",
        "mock",
        "-p",
        "duration_s=0",
        "-p",
        "fail=true",
        "--retries",
        "0",
        "--tag",
        "w",
    )["id"]
    held = orion_json("submit", CU, "-e", "mock", "--hold", "--tag", "w")["id"]
    started = time.monotonic()
    code, out = run_in_pty(
        ["watch", "--tag", "w"], columns=100, rows=30, key_when=(_all_shown, b"q"), timeout_s=30
    )
    assert code == 0 and time.monotonic() - started < 15, out
    assert "Traceback" not in out
    last = _last_frame(out)
    shown = {i: orion_json("show", str(i)) for i in (slow, bad, held)}
    assert [shown[i]["status"] for i in (slow, bad, held)] == ["running", "failed", "queued"]
    reason = shown[bad]["failure_reason"]
    assert f"orion watch — 3 jobs: 1 queued, 1 running, 1 failed ({reason})" in last
    row = next(line for line in last.splitlines() if line.startswith(f"{slow} "))
    assert re.search(r"█*░+ +\d+%", row), row  # a progress bar for the running job
    assert shown[slow]["current_step"].split()[0] in row
    assert f"job {bad} running → failed ({reason})" in last
    assert "last successful poll" in last and "q quits" in last
    assert all(len(line) <= 100 for line in last.splitlines())
    orion("cancel", str(slow), str(held))


def test_watch_in_a_pipe_prints_lines_and_ends_with_the_jobs(local: Path) -> None:
    ids = orion_json("submit", CU, CU, "-e", "mock", "-p", "duration_s=1", "--tag", "p")["ids"]
    result = subprocess.run(
        [sys.executable, "-m", "orion_cli", "watch", "--tag", "p", "--interval", "0.3"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(re.fullmatch(r"\d\d:\d\d:\d\d 2 completed", line) for line in lines), lines
    for job_id in ids:
        assert any(f"job {job_id} running → completed" in line for line in lines), lines
    assert "\x1b" not in result.stdout  # plain text in a pipe
    assert [orion_json("show", str(i))["status"] for i in ids] == ["completed"] * 2


def test_retry_lines_say_when_the_next_attempt_is() -> None:
    from orion_cli.cli.watch import retry_lines
    from orion_cli.services.lifecycle.freshness import PollStamp
    from orion_cli.services.queries.watching import Snapshot

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    due = now + timedelta(seconds=90)
    snap = Snapshot(
        [
            {
                "id": 7,
                "status": "failed",
                "failure_reason": "timeout",
                "attempt": 1,
                "next_attempt_at": due,
            }
        ],
        [],
        PollStamp(),
    )
    assert retry_lines(snap, now) == ["job 7 (timeout): attempt 2 at 12:01:30 (in 1m)"]


def test_watch_with_nothing_to_watch(local: Path) -> None:
    assert "no jobs to watch" in orion("watch").stderr
    poll_until_final([])
