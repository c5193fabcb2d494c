"""Wait for jobs to end: poll cycles at the allowed rate, then read the jobs' states.

One loop for ``orion wait``, ``orion submit --wait`` and ``orion watch``: each round runs
one poll cycle (which itself asks SLURM at most once per ``min_query_interval_s``, whoever
else polls) and reads the jobs' states with one query. The pause between rounds grows from
1 s to ``wait_interval_s`` and is never shorter than ``min_query_interval_s`` while a job is
on a scheduler with a controller to spare: waiting on 1,000 jobs asks squeue as often as
waiting on one, and never once a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orion_cli.config import Settings
from orion_cli.db.models import Job
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.services.lifecycle.poll import array_dir, poll
from orion_cli.services.queries.selection import BulkReport, Selection, resolve
from orion_cli.taskstream import outcome_written, refresh

#: columns of a job's state the waiting loop reads (one query per round for all jobs)
STATE_COLUMNS = (
    "id",
    "name",
    "engine",
    "status",
    "failure_reason",
    "progress_pct",
    "current_step",
    "next_attempt_at",
    "attempt",
    "scheduler",
    "error_message",
    "updated_at",
    "pack",
)
CHUNK = 5000
#: seconds between the rounds of a wait on packed jobs (a round reads files, not squeue)
PACKED_PAUSE_S = 0.5
#: while packed tasks run, the waiter pauses this many times as long as its last round took
#: (a round over 10,000 jobs takes a good part of a second of CPU the tasks would use);
#: during the pause it looks for the last results every PACKED_PAUSE_S (see rest)
PACKED_PAUSE_PER_ROUND = 4.0
PACKED_MAX_PAUSE_S = 5.0
MIN_PAUSE_S = 0.1  # the shortest pause a wait_interval_s may ask for


def has_ended(state: dict[str, Any]) -> bool:
    """A job has ended when it completed, was cancelled, or failed with no retry pending.

    >>> has_ended({"status": "failed", "next_attempt_at": None})
    True
    >>> has_ended({"status": "failed", "next_attempt_at": "2026-01-01T00:00:00+00:00"})
    False
    """
    if state["status"] == "failed":
        return state["next_attempt_at"] is None
    return state["status"] in ("completed", "cancelled")


@dataclass
class WaitOutcome:
    states: list[dict[str, Any]]
    timed_out: bool = False
    rounds: int = 0
    #: scheduler queries the poll cycles made (each at most once per min_query_interval_s)
    scheduler_calls: int = 0
    poll_errors: list[str] = field(default_factory=list)

    @property
    def all_completed(self) -> bool:
        return not self.timed_out and all(s["status"] == "completed" for s in self.states)


def select_ids(settings: Settings, selection: Selection) -> list[int]:
    """The ids of the user's jobs a selection names; an unknown or foreign id is exit 2."""

    selection.check()
    report = BulkReport("waited for")
    with session_scope(settings.resolved_database_url) as session:
        jobs = resolve(session, selection, report, "wait for")
    if report.refused:
        problem, ids = next(iter(report.refused.items()))
        raise UsageError(
            report.sentences[ids[0]]
            if len(ids) == 1
            else f"jobs {', '.join(map(str, ids))}: {problem}",
            "`orion ls` lists your jobs",
        )
    return [job.id for job in jobs if job.id is not None]


def read_states(settings: Settings, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The current state of each job in ``ids`` (in that order), one query per 5,000 ids."""
    from sqlmodel import col, select

    columns = [getattr(Job, name) for name in STATE_COLUMNS]
    by_id: dict[int, dict[str, Any]] = {}
    with session_scope(settings.resolved_database_url) as session:
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start : start + CHUNK])
            for row in session.exec(select(*columns).where(col(Job.id).in_(chunk))):
                by_id[row[0]] = dict(zip(STATE_COLUMNS, row, strict=True))
    return [by_id[job_id] for job_id in ids if job_id in by_id]


def pause_s(
    previous_s: float, settings: Settings, states: list[dict[str, Any]], round_s: float = 0.0
) -> float:
    """The next pause: doubling from 1 s up to wait_interval_s, never under the query limit.

    While only packed jobs are left, the pause is :data:`PACKED_PAUSE_S`, or four times the
    last round's ``round_s`` when that is longer (up to :data:`PACKED_MAX_PAUSE_S`): a poll
    cycle then counts the results their runners wrote without asking the scheduler (it
    still asks at most once per ``min_query_interval_s``), and the waiter takes at most a
    fifth of a core from the tasks; :func:`rest` ends the pause once every result is there.

    >>> from orion_cli.config import Settings
    >>> s = Settings(min_query_interval_s=10, wait_interval_s=30)
    >>> q = {"status": "queued", "next_attempt_at": None, "pack": 0}
    >>> pause_s(1, s, [{**q, "scheduler": "slurm"}]), pause_s(1, s, [{**q, "scheduler": "local"}])
    (10, 2)
    >>> pause_s(20, s, [{**q, "scheduler": "slurm"}])
    30
    >>> packed = [{**q, "scheduler": "slurm", "status": "running", "pack": 500}]
    >>> pause_s(4, s, packed), pause_s(4, s, packed, round_s=0.6), pause_s(4, s, packed, 9.0)
    (0.5, 2.4, 5.0)
    """
    pause = min(previous_s * 2, max(settings.wait_interval_s, MIN_PAUSE_S))
    active = [s for s in states if not has_ended(s)]
    if active and all(s["pack"] for s in active):  # results counted from their files
        paced_s = min(PACKED_PAUSE_PER_ROUND * round_s, PACKED_MAX_PAUSE_S)
        return max(min(pause, PACKED_PAUSE_S), paced_s)
    if any(s["scheduler"] != "local" for s in states):
        pause = max(pause, settings.min_query_interval_s)
    return pause


class ResultFiles:
    """Where the active packed jobs of a wait leave their results: their directories and
    their arrays' folders, which hold the tasks' streams (read from the database once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workdirs: dict[int, tuple[str, str | None]] = {}

    def waiting(self, states: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
        """(directory, array folder) of the packed jobs not yet ended."""
        ids = [s["id"] for s in states if s["pack"] and not has_ended(s)]
        unknown = [job_id for job_id in ids if job_id not in self.workdirs]
        if unknown:
            from sqlalchemy import select
            from sqlmodel import col

            columns = (col(Job.id), col(Job.workdir), col(Job.pack), col(Job.array_name))
            with session_scope(self.settings.resolved_database_url) as session:
                for start in range(0, len(unknown), CHUNK):
                    chunk = unknown[start : start + CHUNK]
                    query = select(*columns).where(col(Job.id).in_(chunk))
                    for row in session.execute(query):
                        where = array_dir(row)
                        self.workdirs[row.id or 0] = (row.workdir, str(where) if where else None)
        return [self.workdirs[i] for i in ids if self.workdirs.get(i, ("", None))[0]]


def rest(
    pause_s: float,
    workdirs: list[tuple[str, str | None]],
    sleep: Callable[[float], None],
    ended: Callable[[str, str | None], bool] = outcome_written,
) -> None:
    """Sleep ``pause_s``; while packed jobs are left, look every :data:`PACKED_PAUSE_S`
    whether all of them have written their result (their tasks are done) and end the
    rest then: a long pause between rounds never delays the last one.

    A result, once there, stays: each look goes on from the first job the last one missed
    (one check while the tasks run, each job checked once when it has ended).
    """
    if not workdirs or pause_s <= PACKED_PAUSE_S:
        sleep(pause_s)
        return
    left, seen = pause_s, 0
    while left > 0:
        step = min(PACKED_PAUSE_S, left)
        sleep(step)
        left -= step
        refresh()  # what the tasks appended to their streams since the last look
        while seen < len(workdirs) and ended(*workdirs[seen]):
            seen += 1
        if seen == len(workdirs):
            return


def wait_for(
    settings: Settings,
    ids: Sequence[int],
    timeout_s: float | None = None,
    on_round: Callable[[list[dict[str, Any]]], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Poll and read the jobs' states until all have ended or ``timeout_s`` has passed."""

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    outcome = WaitOutcome(states=[])
    pause = 0.5
    results = ResultFiles(settings)
    while True:
        round_start_s = time.monotonic()
        report = poll(settings)
        outcome.rounds += 1
        outcome.scheduler_calls += report.scheduler_calls
        outcome.poll_errors = report.errors
        outcome.states = read_states(settings, ids)
        if on_round is not None:
            on_round(outcome.states)
        if all(has_ended(state) for state in outcome.states):
            return outcome
        pause = pause_s(pause, settings, outcome.states, time.monotonic() - round_start_s)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                outcome.timed_out = True
                return outcome
            pause = min(pause, left)
        rest(pause, results.waiting(outcome.states), sleep)


def iso(value: Any) -> Any:
    """Datetimes as ISO text (UTC) for printing and JSON."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value
