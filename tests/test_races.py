"""A user's action and a poll racing each other, as real concurrent processes.

The test holds the database's write lock (SQLite) or the job's row lock (PostgreSQL) while
an `orion poll` and an `orion cancel` both read the running job and block on their write;
then it lets them go. Whichever writes first, the outcome is one: the job ends cancelled
by the user, each transition is recorded once, and neither process fails.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json


@contextmanager
def write_lock(url: str, job_id: int) -> Iterator[None]:
    """Keep every other process from writing ``job_id`` until the block ends."""
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SELECT id FROM job WHERE id = %s FOR UPDATE", (job_id,))
        yield
        conn.rollback()


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orion_cli", *args],
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _fds(proc: subprocess.Popen[str]) -> list[str]:
    """What the open file descriptors of ``proc`` point to (those that stay open to be read)."""
    links = []
    for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            links.append(os.readlink(fd))
    return links


def _wait_blocked(proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    """Wait until ``proc`` sits blocked on the database: it has a connection open (the
    SQLite file, or a socket to PostgreSQL) and has slept without using CPU for 0.3 s."""
    deadline = time.monotonic() + timeout_s
    last, idle_since = "", time.monotonic()
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the process never blocked on the database"
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        state, cpu = fields[0], fields[11] + "/" + fields[12]  # state, utime/stime
        connected = any(link.endswith(".db") or link.startswith("socket:") for link in _fds(proc))
        if state != "S" or cpu != last or not connected:
            last, idle_since = cpu, time.monotonic()
        elif time.monotonic() - idle_since >= 0.3:
            return
        time.sleep(0.05)


def _wait_started(workdir: Path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while '"started"' not in (
        (workdir / "events.jsonl").read_text() if (workdir / "events.jsonl").exists() else ""
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)


@pytest.mark.parametrize("first", ["poll", "cancel"])
def test_cancel_racing_a_poll_ends_cancelled_once(
    database_url: str, first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = orion_json(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "-p", "duration_s=120"
    )["id"]
    _wait_started(Path(orion_json("show", str(job_id))["workdir"]))
    with write_lock(database_url, job_id):  # both read the job queued, then wait to write
        commands = {"poll": ("poll",), "cancel": ("cancel", str(job_id))}
        one = _start(*commands[first])
        _wait_blocked(one)
        two = _start(*commands["cancel" if first == "poll" else "poll"])
        _wait_blocked(two)
        assert one.poll() is None  # both blocked on the lock
    outs = {
        name: (proc.wait(60), *proc.communicate())
        for name, proc in (("first", one), ("second", two))
    }
    assert all(code == 0 for code, _, _ in outs.values()), outs
    assert not any("not allowed" in err or "Traceback" in err for _, _, err in outs.values())

    orion("poll")  # a later poll sees the process gone and must change nothing
    job = orion_json("show", str(job_id))
    assert (job["status"], job["failure_reason"]) == ("cancelled", None), job["events"]
    moves = [(e["from"], e["to"], e["source"]) for e in job["events"] if e["from"] != e["to"]]
    assert moves in (
        [("created", "queued", "submit"), ("queued", "cancelled", "user")],
        [
            ("created", "queued", "submit"),
            ("queued", "running", "poll"),
            ("running", "cancelled", "user"),
        ],
    ), moves
