"""What ``orion watch`` shows: the jobs' states, their newest events, retries pending.

One snapshot is three queries (states, newest events, the poller's stamp); it never asks
the scheduler. The watch loop runs a poll cycle only every ``min_query_interval_s`` (and
the cycle itself keeps that gap for SLURM, whoever polls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobEvent
from orion_cli.db.session import session_scope
from orion_cli.identity import current_user
from orion_cli.services.lifecycle.freshness import PollStamp, read_stamp
from orion_cli.services.queries.waiting import has_ended, read_states

#: jobs watched when none are named: the user's newest
DEFAULT_JOBS = 500
NEWEST_EVENTS = 8


@dataclass
class Snapshot:
    states: list[dict[str, Any]]
    events: list[dict[str, Any]]
    stamp: PollStamp

    @property
    def all_ended(self) -> bool:
        return all(has_ended(state) for state in self.states)


def default_ids(settings: Settings) -> list[int]:
    """The user's newest jobs (not removed), oldest first."""
    from sqlmodel import col, select

    with session_scope(settings.resolved_database_url) as session:
        ids = session.exec(
            select(Job.id)
            .where(Job.owner == current_user(), col(Job.removed_at).is_(None))
            .order_by(col(Job.id).desc())
            .limit(DEFAULT_JOBS)
        ).all()
    return sorted(i for i in ids if i is not None)


def newest_events(
    settings: Settings, ids: list[int], limit: int = NEWEST_EVENTS
) -> list[dict[str, Any]]:
    """The newest status changes and notes of these jobs, newest first."""
    from sqlmodel import col, select

    if not ids:
        return []
    with session_scope(settings.resolved_database_url) as session:
        rows = session.exec(
            select(JobEvent)
            .where(col(JobEvent.job_id).in_(ids[-5000:]))
            .order_by(col(JobEvent.id).desc())
            .limit(limit)
        ).all()
        return [
            {
                "job_id": e.job_id,
                "at": e.at,
                "from": e.from_status,
                "to": e.to_status,
                "reason": e.reason,
                "message": e.message or "",
                "source": e.source,
            }
            for e in rows
        ]


def snapshot(settings: Settings, ids: list[int]) -> Snapshot:
    return Snapshot(read_states(settings, ids), newest_events(settings, ids), read_stamp(settings))
