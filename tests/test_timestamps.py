"""True start and end times come from the job's own events, not from the poll.

A job that ran for seconds and was noticed by one poll afterwards showed started and
finished at the same instant (the poll's); the reference is the runner's own event lines.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import job_lines, job_result, orion, orion_json


def test_a_job_noticed_late_keeps_its_own_start_and_end(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = orion_json(
        "submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "-p", "duration_s=0.5"
    )["id"]
    workdir = Path(orion_json("show", str(job_id))["workdir"])
    deadline = time.monotonic() + 60
    while job_result(workdir) is None:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)  # the poll comes well after the end (microsecond stamps)
    orion("poll")
    job = orion_json("show", str(job_id))
    assert job["status"] == "completed"
    events = [json.loads(line) for line in (workdir / "events.jsonl").read_text().splitlines()]
    started = next(e["time"] for e in events if e["event"] == "started")
    finished = next(e["time"] for e in events if e["event"] == "finished")
    stamp = datetime.fromisoformat
    assert stamp(job["started_at"]) == stamp(started)
    assert stamp(job["finished_at"]) == stamp(finished)
    [attempt] = job["attempts"]  # the attempt's record has the same true times
    assert (stamp(attempt["started_at"]), stamp(attempt["finished_at"])) == (
        stamp(started),
        stamp(finished),
    )
    assert job["run_s"] == pytest.approx(
        (stamp(finished) - stamp(started)).total_seconds(), abs=1e-3
    )
    assert job["run_s"] >= 0.45 and job["queue_wait_s"] >= 0
    polled = [e["at"] for e in job["events"] if e["to"] == "completed"][0]
    assert (stamp(polled) - stamp(finished)).total_seconds() >= 0.45  # noticed later


def test_packed_jobs_counted_from_their_results_keep_their_own_times(
    database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The poll that completes packed jobs from their result files (no scheduler asked)
    writes each job's and attempt's start and end as the runner wrote them."""
    from ase.build import bulk
    from ase.io import write

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    write(tmp_path / "three.extxyz", [bulk("Cu", cubic=True)] * 3, format="extxyz")
    ids = orion_json(
        "submit", str(tmp_path / "three.extxyz"), "-e", "mock", "-p", "duration_s=0.3",
        "--pack", "3",
    )["ids"]  # fmt: skip
    workdirs = [Path(orion_json("show", str(job_id))["workdir"]) for job_id in ids]
    deadline = time.monotonic() + 60
    while any(job_result(w) is None for w in workdirs):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.3)  # the poll comes after the ends
    orion("poll")
    stamp = datetime.fromisoformat
    for job_id, workdir in zip(ids, workdirs, strict=True):
        job = orion_json("show", str(job_id))
        events = job_lines(workdir)  # its packed task's stream: computed in memory
        started = stamp(next(e["time"] for e in events if e["event"] == "started"))
        finished = stamp(next(e["time"] for e in events if e["event"] == "finished"))
        [attempt] = job["attempts"]
        assert (job["status"], stamp(job["started_at"]), stamp(job["finished_at"])) == (
            "completed",
            started,
            finished,
        )
        assert (stamp(attempt["started_at"]), stamp(attempt["finished_at"])) == (started, finished)
        assert job["run_s"] >= 0.25
