"""``--on-scf-fail``: one retry, with a documented change, after an unconverged SCF.

Engine errors are not retried by default. A job submitted with ``--on-scf-fail
mixing_beta=0.3`` stores the policy (``job.on_scf_fail``: the change, the checked parameters
it leads to, and the attempt it was applied to). When an attempt fails because pw.x said
"convergence NOT achieved" (its result's ``extras.scf_converged`` is false), the poller
schedules one retry at once; the resubmission rewrites ``pw.in`` with the change (the failed
attempt's kept as ``pw-attempt-N.in``) and says what changed in the attempt's event.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orion_cli.db.models import JobResult
from orion_cli.engines.registry import get_engine
from orion_cli.errors import UsageError
from orion_cli.jobdir import JOB_FILE, read_json, write_json_atomic
from orion_cli.states import FailureReason
from orion_cli.units import parse_param_value

if TYPE_CHECKING:
    from sqlmodel import Session

    from orion_cli.db.models import Job

FLAG = "--on-scf-fail"


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """Read ``key=value`` words as ``-p`` does.

    >>> parse_pairs(["mixing_beta=0.3", "electrons.mixing_mode=local-TF"])
    {'mixing_beta': 0.3, 'electrons.mixing_mode': 'local-TF'}
    """

    change: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(
                f"{FLAG} '{pair}' is not key=value", f"write e.g. {FLAG} mixing_beta=0.3"
            )
        change[key.strip()] = parse_param_value(value)
    return change


def checked_policy(
    engine: Any, params: Mapping[str, Any], pairs: list[str], settings: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The policy stored with the job, or None without ``--on-scf-fail`` (UsageError if bad)."""
    if not pairs:
        return None
    retry_params = getattr(engine, "scf_retry_params", None)
    if retry_params is None:
        raise UsageError(
            f"{FLAG} is for engines with an SCF; engine '{engine.name}' has none",
            f"use {FLAG} with --engine qe, or drop it",
        )
    change = parse_pairs(pairs)
    return {
        "change": change,
        "params": retry_params(params, change, settings),
        "applied_at_attempt": None,
    }


def retry_due(session: Session, job: Job) -> bool:
    """Tell whether ``job`` just failed of an unconverged SCF and has its one retry left."""
    from sqlmodel import select

    policy = job.on_scf_fail
    if (
        not policy
        or policy.get("applied_at_attempt")
        or job.failure_reason != FailureReason.ENGINE_ERROR.value
    ):
        return False
    row = session.exec(select(JobResult).where(JobResult.job_id == job.id)).first()
    return (
        row is not None
        and row.attempt == job.attempt
        and (row.extras or {}).get("scf_converged") is False
    )


def apply_change(session: Session, job: Job, workdir: Path, attempt: int) -> str | None:
    """Before submitting ``attempt``: apply the policy's change if due; say what changed."""

    if not retry_due(session, job):
        return None
    policy = dict(job.on_scf_fail or {})
    old, new = dict(job.parameters), dict(policy["params"])
    engine: Any = get_engine(job.engine)  # an engine with an SCF: checked at submit
    what = str(engine.apply_scf_retry(workdir, old, new, job.attempt))
    job_file = read_json(workdir / JOB_FILE) or {}
    write_json_atomic(workdir / JOB_FILE, {**job_file, "params": new})
    job.parameters = new
    job.on_scf_fail = {**policy, "applied_at_attempt": attempt}
    return (
        f"SCF not converged; retry with {what} "
        f"(pw.in rewritten; attempt {job.attempt}'s kept as pw-attempt-{job.attempt}.in)"
    )
