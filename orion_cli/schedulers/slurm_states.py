"""SLURM's job states mapped onto orion's vocabulary, and its exit-code and time formats (pure)."""

from __future__ import annotations

import logging

from orion_cli.states import FailureReason, JobStatus
from orion_cli.units import clock_s

log = logging.getLogger(__name__)

# squeue(1), JOB STATE CODES (Slurm 22.05), abridged:
#   BF BOOT_FAIL      terminated due to launch failure (e.g. unable to boot the node)
#   CA CANCELLED      explicitly cancelled by the user or administrator
#                     (sacct says "CANCELLED by <uid>")
#   CD COMPLETED      terminated all processes on all nodes with an exit code of zero
#   CF CONFIGURING    allocated resources, waiting for them to become ready (e.g. booting)
#   CG COMPLETING     in the process of completing; some processes may still be active
#   DL DEADLINE       terminated on deadline
#   F  FAILED         terminated with non-zero exit code or other failure condition
#   NF NODE_FAIL      terminated due to failure of one or more allocated nodes
#   OOM OUT_OF_MEMORY experienced out of memory error
#   PD PENDING        awaiting resource allocation
#   PR PREEMPTED      terminated due to preemption
#   R  RUNNING        currently has an allocation
#   RD RESV_DEL_HOLD  held after requested reservation was deleted
#   RF REQUEUE_FED    requeued by a federation
#   RH REQUEUE_HOLD   held job is being requeued
#   RQ REQUEUED       completing job is being requeued
#   RS RESIZING       about to change size
#   RV REVOKED        sibling was removed from cluster due to other cluster starting the job
#   SI SIGNALING      being signaled
#   SE SPECIAL_EXIT   requeued in a special state (e.g. by EpilogSlurmctld on an exit value)
#   SO STAGE_OUT      staging out files
#   ST STOPPED        has an allocation, but execution has been stopped with SIGSTOP
#   S  SUSPENDED      has an allocation, but execution has been suspended, CPUs released
#   TO TIMEOUT        terminated upon reaching its time limit
_Q, _R, _F = JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED
STATE_MAP: dict[str, tuple[JobStatus, FailureReason | None]] = {
    "PENDING": (_Q, None),
    "REQUEUED": (_Q, None),
    "REQUEUE_HOLD": (_Q, None),
    "REQUEUE_FED": (_Q, None),
    "RESV_DEL_HOLD": (_Q, None),
    "SPECIAL_EXIT": (_Q, None),
    "SUSPENDED": (_Q, None),
    "CONFIGURING": (_Q, None),
    "RUNNING": (_R, None),
    "COMPLETING": (_R, None),
    "RESIZING": (_R, None),
    "SIGNALING": (_R, None),
    "STAGE_OUT": (_R, None),
    "STOPPED": (_R, None),
    "COMPLETED": (JobStatus.COMPLETED, None),
    "CANCELLED": (JobStatus.CANCELLED, None),
    "FAILED": (_F, FailureReason.EXIT_CODE),
    "TIMEOUT": (_F, FailureReason.TIMEOUT),
    "DEADLINE": (_F, FailureReason.TIMEOUT),
    "OUT_OF_MEMORY": (_F, FailureReason.OUT_OF_MEMORY),
    "NODE_FAIL": (_F, FailureReason.NODE_FAIL),
    "BOOT_FAIL": (_F, FailureReason.NODE_FAIL),
    "PREEMPTED": (_F, FailureReason.PREEMPTED),  # retried by policy, like NODE_FAIL
    "REVOKED": (_F, FailureReason.CANCELLED_EXTERNALLY),
}


def map_state(raw_state: str) -> tuple[JobStatus, FailureReason | None]:
    """Map a SLURM state word onto orion's status and failure reason.

    >>> map_state("CANCELLED by 0")
    (<JobStatus.CANCELLED: 'cancelled'>, None)
    >>> map_state("OUT_OF_MEMORY")[1]
    <FailureReason.OUT_OF_MEMORY: 'out_of_memory'>
    """
    word = raw_state.split()[0] if raw_state.strip() else ""
    word = word.rstrip("+")  # sacct abbreviates long words with a trailing "+"
    if word not in STATE_MAP:
        log.warning("unknown SLURM state %r: treating the job as queued", raw_state)
        return JobStatus.QUEUED, None
    return STATE_MAP[word]


def split_exit_code(text: str) -> tuple[int | None, int | None]:
    """Split sacct's ``exit:signal`` into integers.

    >>> split_exit_code("3:0")
    (3, 0)
    >>> split_exit_code("")
    (None, None)
    """
    code, _, signal = text.strip().partition(":")
    if not code.isdigit():
        return None, None
    return int(code), int(signal) if signal.isdigit() else None


def split_wait_status(text: str) -> tuple[int | None, int | None]:
    """Split squeue's raw wait status (``768`` is exit 3) into exit code and signal.

    >>> split_wait_status("768")
    (3, 0)
    >>> split_wait_status("9")
    (0, 9)
    """
    if not text.strip().isdigit():
        return None, None
    status = int(text)
    return (status >> 8) & 0xFF, status & 0x7F


def parse_slurm_time_s(text: str) -> int | None:
    """Convert a SLURM time limit (``[days-]hours:minutes:seconds`` etc.) to seconds.

    >>> parse_slurm_time_s("1-02:00:00")
    93600
    >>> parse_slurm_time_s("30:00"), parse_slurm_time_s("infinite")
    (1800, None)
    """
    return clock_s(text)  # "infinite", "UNLIMITED", "n/a": None
