"""A job that writes more than a cycle's worth of events (issue 23, B26): the poller still
takes its start, end and newest step from what the job wrote, not the poll's own time."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from orion_cli.jobdir import EVENTS_FILE, MAX_EVENT_BYTES_PER_CYCLE
from tests.services.lifecycle.conftest import Bench


def stretch(events_file: Path, steps: int) -> tuple[datetime, datetime, str]:
    """Put ``steps`` progress lines between the job's first and last lines; the last lines
    are dated 8 s after the first. Returns (first time, last time, the newest step)."""
    lines = [json.loads(line) for line in events_file.read_text().splitlines()]
    first = datetime.fromisoformat(lines[0]["time"])
    last = first + timedelta(seconds=8)
    middle = [
        {
            "time": (first + timedelta(seconds=8 * i / steps)).isoformat(),
            "event": "progress",
            "attempt": 1,
            "progress_pct": 100 * i / steps,
            "step": f"step {i} of {steps}",
        }
        for i in range(1, steps + 1)
    ]
    for record in lines[1:]:
        record["time"] = last.isoformat()
    records = [lines[0], *middle, *lines[1:]]
    text = "".join(json.dumps(r) + "\n" for r in records)
    events_file.write_text(text)
    assert len(text) > 2 * MAX_EVENT_BYTES_PER_CYCLE
    newest = [r["step"] for r in records if r["event"] == "progress"][-1]
    return first, last, newest


def test_more_than_a_cycle_of_events_keeps_true_times_and_the_newest_step(bench: Bench) -> None:
    bench.submit()
    [sid] = bench.scheduler.pending()
    assert bench.scheduler.kick(sid) == 0
    [job] = bench.jobs()
    first, last, newest = stretch(Path(job.workdir) / EVENTS_FILE, steps=30_000)
    bench.poll(later_s=3600)  # an hour after the job ended
    [job] = bench.jobs()
    assert job.status == "completed"
    assert job.started_at is not None and job.finished_at is not None
    assert job.started_at.replace(tzinfo=None) == first.replace(tzinfo=None)
    assert job.finished_at.replace(tzinfo=None) == last.replace(tzinfo=None)
    assert job.current_step == newest and job.progress_pct == 100.0
    assert any("skipped the" in line for line in bench.events(job.id or 0))
