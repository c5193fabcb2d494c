"""Job statuses, failure reasons and the one table of allowed transitions.

A job moves created → queued → running → completed | failed | cancelled.
Why a job failed is a :class:`FailureReason` stored beside the status, never a
status of its own.

>>> can_transition(JobStatus.QUEUED, JobStatus.RUNNING)
True
>>> can_transition(JobStatus.COMPLETED, JobStatus.RUNNING)
False
>>> JobStatus.RUNNING.is_final
False
>>> can_transition(JobStatus.FAILED, JobStatus.QUEUED)  # a retry
True
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Queued or running: the scheduler knows the job and the poller watches it."""
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


class FailureReason(StrEnum):
    TIMEOUT = "timeout"
    OUT_OF_MEMORY = "out_of_memory"
    NODE_FAIL = "node_fail"
    EXIT_CODE = "exit_code"
    ENGINE_ERROR = "engine_error"
    LOST = "lost"
    SUBMIT_ERROR = "submit_error"
    CANCELLED_EXTERNALLY = "cancelled_externally"
    #: a parent it waited for (``--after``) failed or was cancelled for good
    DEPENDENCY_FAILED = "dependency_failed"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

_S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    _S.CREATED: frozenset({_S.QUEUED, _S.FAILED, _S.CANCELLED}),
    # a short job can finish between two polls: queued → completed/failed directly
    _S.QUEUED: frozenset({_S.RUNNING, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    _S.RUNNING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    # a retry (automatic or `orion retry`) submits a new attempt of the same job
    _S.FAILED: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.CANCELLED: frozenset({_S.QUEUED}),
}

#: failures that the poller retries by itself (with more resources where that helps)
RETRYABLE_REASONS = frozenset({
    FailureReason.TIMEOUT, FailureReason.OUT_OF_MEMORY, FailureReason.NODE_FAIL,
    FailureReason.LOST, FailureReason.SUBMIT_ERROR,
})


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    """Tell whether the table allows ``old`` → ``new``."""
    return new in TRANSITIONS[old]
