"""The deterministic test scheduler (orion_cli.schedulers.scripted) behind the real services."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ase import Atoms
from ase.io import write
from sqlmodel import select

from orion_cli.config import Settings, load_settings
from orion_cli.db.models import Job, JobEvent, now_utc
from orion_cli.db.session import session_scope
from orion_cli.schedulers import scheduler_for
from orion_cli.schedulers.scripted import ScriptedScheduler
from orion_cli.services.lifecycle.poll import PollReport, poll
from orion_cli.services.submission.submit import SubmitRequest, Submitted, submit


class Clock:
    """The injected time: the poller and the test scheduler read it; tests move it."""

    def __init__(self) -> None:
        self.now = now_utc()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class Bench:
    """Submit with the real services, run with the test scheduler, poll at the injected time."""

    def __init__(self, settings: Settings, structures: Path) -> None:
        self.settings = settings
        self.structures = structures
        self.clock = Clock()
        self.scheduler: ScriptedScheduler = scheduler_for(settings, "test")  # type: ignore[assignment]
        self.scheduler.clock = self.clock

    def submit(self, n: int = 1, **fields: object) -> Submitted:
        files = []
        for i in range(n):
            path = self.structures / f"cu{i}.xyz"
            write(path, Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.0 + 0.01 * i]]))
            files.append(path)
        params = {"duration_s": 0, **fields.pop("params", {})}  # type: ignore[dict-item]
        request = SubmitRequest(
            structures=files, engine="mock", scheduler="test", params=params, **fields
        )
        result = submit(self.settings, request)
        assert not result.errors, result.errors
        return result

    def poll(self, later_s: float = 0) -> PollReport:
        return poll(self.settings, self.clock.advance(later_s))

    def jobs(self) -> list[Job]:
        with session_scope(self.settings.resolved_database_url) as session:
            jobs = list(session.exec(select(Job).order_by(Job.id)).all())
            session.expunge_all()
            return jobs

    def events(self, job_id: int) -> list[str]:
        with session_scope(self.settings.resolved_database_url) as session:
            rows = session.exec(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            ).all()
            return [f"{e.from_status}->{e.to_status}: {e.message or ''}" for e in rows]

    def statuses(self) -> list[tuple[str, str | None]]:
        return [(job.status, job.failure_reason) for job in self.jobs()]


@pytest.fixture
def bench(orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bench:
    monkeypatch.setenv("ORION_TEST_SCHEDULER", "1")
    monkeypatch.setenv("ORION_SCHEDULER", "test")
    structures = tmp_path / "structures"
    structures.mkdir()
    return Bench(load_settings(), structures)


BenchFactory = Callable[[], Bench]
