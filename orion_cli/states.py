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
    PREEMPTED = "preempted"
    #: a parent it waited for (``--after``) failed or was cancelled for good
    DEPENDENCY_FAILED = "dependency_failed"


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

_S = JobStatus
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # --reuse: a job identical to a completed one completes with its result, never submitted
    _S.CREATED: frozenset({_S.QUEUED, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    # a short job can finish between two polls: queued → completed/failed directly
    _S.QUEUED: frozenset({_S.RUNNING, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    # the scheduler requeued it (node failure, preemption with requeue, scontrol requeue)
    _S.RUNNING: frozenset({_S.QUEUED, _S.COMPLETED, _S.FAILED, _S.CANCELLED}),
    # a study's analysis step (eos fit, converge) rerun because one of its points was retried
    _S.COMPLETED: frozenset({_S.QUEUED}),
    # a retry (automatic or `orion retry`) submits a new attempt of the same job
    _S.FAILED: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.CANCELLED: frozenset({_S.QUEUED}),
}

#: failures that the poller retries by itself (with more resources where that helps)
RETRYABLE_REASONS = frozenset(
    {
        FailureReason.TIMEOUT,
        FailureReason.OUT_OF_MEMORY,
        FailureReason.NODE_FAIL,
        FailureReason.LOST,
        FailureReason.SUBMIT_ERROR,
        FailureReason.PREEMPTED,
    }
)


def transition_table() -> str:
    """The whole lifecycle as a table: each status, where it may go, and why.

    >>> print(transition_table())
    from       to                                   when
    created    queued, completed, failed, cancelled sbatch answered / reused (--reuse) /
                                                    refused / orion cancel
    queued     running, completed, failed,          started / ended between two polls /
               cancelled                            scheduler or engine failure / cancelled
    running    queued, completed, failed, cancelled requeued by the scheduler / ended /
                                                    failure (reason below) / cancelled
    completed  queued                               a study's analysis rerun after a point
                                                    was retried (refresh)
    failed     queued, cancelled                    a retry (automatic or orion retry) /
                                                    orion cancel of a pending retry
    cancelled  queued                               orion retry
    <BLANKLINE>
    failure reasons: timeout, out_of_memory, node_fail, exit_code, engine_error, lost,
    submit_error, cancelled_externally, preempted, dependency_failed; retried by policy: lost,
    node_fail, out_of_memory, preempted, submit_error, timeout
    """
    rows = [("from", "to", "when")]
    for status, targets in TRANSITIONS.items():
        rows.append(
            (
                status.value,
                ", ".join(t.value for t in sorted(targets, key=list(JobStatus).index)) or "-",
                _WHEN[status],
            )
        )
    lines = []
    for first, second, third in rows:
        second_lines = _wrap(second, 36)
        third_lines = _wrap(third, 40)
        for i in range(max(len(second_lines), len(third_lines))):
            lines.append(
                f"{first if i == 0 else '':10} "
                f"{second_lines[i] if i < len(second_lines) else '':36} "
                f"{third_lines[i] if i < len(third_lines) else ''}".rstrip()
            )
    reasons = ", ".join(r.value for r in FailureReason)
    retried = ", ".join(sorted(r.value for r in RETRYABLE_REASONS))
    lines += ["", *_wrap(f"failure reasons: {reasons}; retried by policy: {retried}", 92)]
    return "\n".join(lines)


_WHEN = {
    JobStatus.CREATED: "sbatch answered / reused (--reuse) / refused / orion cancel",
    JobStatus.QUEUED: "started / ended between two polls / scheduler or engine failure / cancelled",
    JobStatus.RUNNING: "requeued by the scheduler / ended / failure (reason below) / cancelled",
    JobStatus.COMPLETED: "a study's analysis rerun after a point was retried (refresh)",
    JobStatus.FAILED: "a retry (automatic or orion retry) / orion cancel of a pending retry",
    JobStatus.CANCELLED: "orion retry",
}


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]


def can_transition(old: JobStatus, new: JobStatus) -> bool:
    """Tell whether the table allows ``old`` → ``new``."""
    return new in TRANSITIONS[old]
