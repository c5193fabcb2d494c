"""The one place an attempt is sent to the scheduler, and its answer recorded.

Every submission goes through :func:`send`: a first submit (one job or an array, packed or
not), a user's own script, a retry, a recovery of an interrupted submit and the requeue of a
packed task's unstarted jobs. The scheduler answers one of four things:

- **accepted**: the caller records the new scheduler job id with its own words
  (:func:`~orion_cli.services.lifecycle.state.submitted`, ``start_attempt``, ``requeue_many``);
- **refused** (:class:`~orion_cli.errors.SchedulerError`): :func:`record_refused` fails the jobs
  with ``submit_error``, retried by policy;
- **refused for good** (:class:`~orion_cli.errors.SubmitRefused`: the request cannot be met on
  this cluster): the same, with no retry;
- **outcome unknown** (:class:`~orion_cli.errors.SubmitOutcomeUnknown`: sbatch did not answer;
  the job may exist): nothing is submitted again before the job is looked up by name
  (:func:`record_unknown`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.errors import SchedulerError, SubmitOutcomeUnknown, SubmitRefused
from orion_cli.schedulers.base import SubmitOptions
from orion_cli.services.lifecycle.policy import schedule_retry
from orion_cli.services.lifecycle.state import submit_outcome_unknown, transition_many
from orion_cli.states import FailureReason, JobStatus

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.db.models import Job


@dataclass(frozen=True)
class Attempt:
    """What to send: a script with its options, as one job or as an array of ``n_tasks``."""

    script: Path
    options: SubmitOptions = SubmitOptions()
    n_tasks: int = 0  # 0: one job; n: an array of tasks 0..n-1
    throttle: int | None = None


@dataclass(frozen=True)
class Answer:
    """The scheduler's answer: its job id (the array's for an array), or the error it gave."""

    scheduler_job_id: str = ""
    error: SchedulerError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None

    @property
    def unknown(self) -> bool:
        """sbatch did not answer: the job may exist; look it up by name before resubmitting."""
        return isinstance(self.error, SubmitOutcomeUnknown)

    @property
    def final(self) -> bool:
        """Refused for good: the request cannot be met on this cluster (no retry)."""
        return isinstance(self.error, SubmitRefused)

    def line(self) -> str:
        return self.error.one_line() if self.error is not None else self.scheduler_job_id


def send(scheduler: Any, attempt: Attempt) -> Answer:
    """Submit ``attempt``; the scheduler's refusal or silence becomes the answer, not raised.

    >>> class Refusing:
    ...     def submit(self, script, options):
    ...         raise SubmitRefused("Invalid partition name specified")
    >>> answer = send(Refusing(), Attempt(Path("job.sh")))
    >>> answer.accepted, answer.final, answer.unknown
    (False, True, False)
    """
    try:
        if attempt.n_tasks:
            sid = scheduler.submit_array(
                attempt.script, attempt.n_tasks, attempt.options, attempt.throttle
            )
        else:
            sid = scheduler.submit(attempt.script, attempt.options)
    except SchedulerError as exc:
        return Answer(error=exc)
    return Answer(scheduler_job_id=sid)


def task_ids(array_id: str, tasks: Sequence[int]) -> list[str]:
    """The scheduler ids of an array's tasks.

    >>> task_ids("812", [0, 0, 1])
    ['812_0', '812_0', '812_1']
    """
    return [f"{array_id}_{task}" for task in tasks]


def which_jobs(jobs: Sequence[Job]) -> str:
    """``job 4`` or ``jobs 4-9``: how an answer's line names the jobs it concerns."""
    first, last = jobs[0].id, jobs[-1].id
    return f"job {first}" if len(jobs) == 1 else f"jobs {first}-{last}"


def record_refused(
    session: Session,
    jobs: Sequence[Job],
    answer: Answer,
    now: datetime,
    *,
    source: str,
    message: str = "",
) -> bool:
    """The scheduler said no: the jobs fail with ``submit_error``, retried by policy unless
    the refusal is final. Return whether a retry is due."""
    transition_many(
        session,
        list(jobs),
        JobStatus.FAILED,
        source=source,
        at=now,
        reason=FailureReason.SUBMIT_ERROR,
        message=message or answer.line(),
    )
    return schedule_retry(session, list(jobs), now, source=source, final=answer.final)[-1]


def record_unknown(
    session: Session,
    jobs: Sequence[Job],
    answer: Answer,
    now: datetime,
    grace_s: int,
    *,
    source: str,
) -> None:
    """sbatch did not answer: the jobs are looked up by name at ``now + grace_s`` before
    anything is submitted again; no attempt is counted."""
    for job in jobs:
        submit_outcome_unknown(
            session,
            job,
            now + timedelta(seconds=grace_s),
            source=source,
            message=answer.line(),
            at=now,
        )
