"""Issue 26: a poller without cron (``orion poll --loop``, stopped cleanly by SIGTERM and
Ctrl-C) and ``orion logs --follow`` that ends with its job when nothing else polls."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def until(condition, timeout_s: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_poll_loop_finishes_jobs_and_stops_cleanly(local: Path, stop: signal.Signals) -> None:
    job_id = int(orion_json("submit", CU, "--engine", "mock", "-p", "duration_s=1")["id"])
    loop = subprocess.Popen(
        [sys.executable, "-m", "orion_cli", "poll", "--loop", "1"],
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        until(lambda: orion_json("show", str(job_id))["status"] == "completed")
        assert loop.poll() is None  # still looping
        held = orion("poll")  # cron's poller and the loop share the lock; neither breaks
        assert held.exit_code == 0
        loop.send_signal(stop)
        _, err = loop.communicate(timeout=60)
    finally:
        if loop.poll() is None:
            loop.kill()
    assert loop.returncode == 0, err
    assert "polling every 1 s" in err
    assert f"stopped by {stop.name} after" in err
    assert f"job {job_id} completed" in err
    assert "Traceback" not in err


def test_poll_loop_default_interval_and_bad_interval(local: Path) -> None:
    bad = orion("poll", "--loop", "soon", expect=2)
    assert "--loop interval 'soon' is not a duration" in bad.stderr
    assert "[INTERVAL]" in orion("poll", "--help").stdout


def test_logs_follow_ends_with_the_job_without_a_poller(local: Path) -> None:
    job_id = int(orion_json("submit", CU, "--engine", "mock", "-p", "duration_s=1")["id"])
    started = time.monotonic()
    follow = subprocess.run(
        [sys.executable, "-m", "orion_cli", "logs", str(job_id), "--follow"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert follow.returncode == 0, follow.stderr
    assert time.monotonic() - started < 60
    assert orion_json("show", str(job_id))["status"] == "completed"


def test_logs_warns_when_the_poller_is_stale(local: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = int(orion_json("submit", CU, "--engine", "mock", "-p", "duration_s=60")["id"])
    monkeypatch.setenv("ORION_POLL_STALE_S", "1")
    out = orion("logs", str(job_id))
    assert "warning: the statuses shown may be out of date" in out.stderr
    assert "orion poll --loop" in out.stderr
    orion("cancel", str(job_id))
