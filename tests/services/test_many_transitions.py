"""Many jobs moved in one transition: the same rows and the same race check on both
databases, whether the rows go as an executemany or (PostgreSQL, 50 rows or more of one
column set) as one UPDATE with array parameters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from orion_cli.db.models import Job, JobAttempt, now_utc
from orion_cli.db.session import session_scope
from orion_cli.errors import RaceLost
from orion_cli.identity import current_user
from orion_cli.services.lifecycle.state import BULK_MIN_ROWS, transition_many
from orion_cli.states import JobStatus


def _queued(url: str, n: int) -> list[int]:
    with session_scope(url) as session:
        jobs = [
            Job(name=f"j{i}", owner=current_user(), engine="mock", scheduler="test")
            for i in range(n)
        ]
        session.add_all(jobs)
        session.flush()
        transition_many(session, jobs, JobStatus.QUEUED, source="test")
        return [job.id or 0 for job in jobs]


#: few rows (an executemany) and enough for PostgreSQL's one UPDATE with array parameters
SIZES = [3, BULK_MIN_ROWS + 70]


@pytest.mark.parametrize("n", SIZES)
def test_many_jobs_move_together_with_their_own_times(database_url: str, n: int) -> None:
    ids = _queued(database_url, n)
    start = now_utc()
    with session_scope(database_url) as session:
        jobs = list(session.exec(select(Job).where(col(Job.id).in_(ids))).all())
        times = {job.id or 0: (start + timedelta(seconds=job.id or 0), None) for job in jobs}
        transition_many(session, jobs, JobStatus.RUNNING, source="test", at=start, times=times)
    with session_scope(database_url) as session:
        rows = session.exec(select(Job).where(col(Job.id).in_(ids)).order_by(col(Job.id))).all()
        assert [row.status for row in rows] == ["running"] * n
        assert [row.started_at for row in rows] == [times[i][0] for i in ids]
        attempts = session.exec(select(JobAttempt).where(col(JobAttempt.job_id).in_(ids))).all()
        assert sorted(a.started_at for a in attempts if a.started_at) == [times[i][0] for i in ids]


@pytest.mark.parametrize("n", SIZES)
def test_a_job_another_process_moved_is_a_race_and_nothing_is_written(
    database_url: str, n: int
) -> None:
    ids = _queued(database_url, n)
    with session_scope(database_url) as session:
        jobs = list(session.exec(select(Job).where(col(Job.id).in_(ids))).all())
        with session_scope(database_url) as other:  # a user's cancel meanwhile
            moved = other.get(Job, ids[-1])
            assert moved is not None
            transition_many(other, [moved], JobStatus.CANCELLED, source="test")
        with pytest.raises(RaceLost, match=f"1 of {n} jobs changed status"):
            transition_many(session, jobs, JobStatus.RUNNING, source="test")
        session.rollback()
    with session_scope(database_url) as session:
        rows = session.exec(select(Job).where(col(Job.id).in_(ids)).order_by(col(Job.id))).all()
        assert [row.status for row in rows] == ["queued"] * (n - 1) + ["cancelled"]
