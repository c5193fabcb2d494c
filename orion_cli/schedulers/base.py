"""What every scheduler backend offers orion, and what it reports about a job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from orion_cli.states import FailureReason, JobStatus


@dataclass(frozen=True)
class JobInfo:
    """One job as the scheduler sees it, already mapped onto orion's vocabulary.

    ``raw_state`` is the scheduler's own word (``"CANCELLED by 0"``, ``"OUT_OF_MEMORY"``),
    kept for ``orion show``; ``status``/``reason`` are what orion makes of it.
    """

    scheduler_job_id: str
    raw_state: str
    status: JobStatus
    reason: FailureReason | None = None
    exit_code: int | None = None
    signal: int | None = None
    pending_reason: str | None = None
    comment: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class SubmitOptions:
    """Things decided at submit time that are not lines of the batch script."""

    hold: bool = False
    begin: datetime | None = None


class Scheduler(Protocol):
    """A batch system: submit a script, ask about many jobs in one call, cancel."""

    name: str

    def submit(self, script_path: Path, options: SubmitOptions | None = None) -> str:
        """Submit ``script_path``; return the scheduler's job id. Raise SchedulerError."""
        ...

    def query(self, job_ids: Sequence[str]) -> dict[str, JobInfo]:
        """Report every job of ``job_ids`` the scheduler still knows, in as few calls as it can.

        A job missing from the answer is unknown to the scheduler (not "done").
        Raise SchedulerError when the scheduler cannot be asked: the caller then changes nothing.
        """
        ...

    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel the jobs; jobs already finished are not an error."""
        ...

    def check(self) -> tuple[bool, str]:
        """Tell whether the backend can be used here, with a one-line explanation (doctor)."""
        ...
