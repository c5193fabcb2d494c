"""How your jobs went: success rate, failure reasons, queue wait and run time percentiles,
core-hours, overall and by engine, partition, tag or user (``orion stats``, ``orion_cli.api``).

The jobs are those ``orion ls`` lists with the same filters (yours unless every user's is
asked for; removed jobs left out). The numbers are computed from the job rows exactly as
``orion show`` computes a job's own: queue wait is ``submitted_at`` → ``started_at``, run
time ``started_at`` → ``finished_at`` (each in seconds, to the millisecond), core-hours
run time × tasks × CPUs per task, as ``orion metrics`` counts them.

The success rate is over the jobs that ended: completed / (completed + failed with no retry
left). Cancelled jobs, jobs still active and failed jobs whose retry is pending are left
out of it. Percentiles interpolate linearly between the two nearest values (numpy's
default), so a p50 of an even number of values is the mean of the middle two.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt, JobTag, with_any_tag
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.jobids import name_pattern
from orion_cli.services.queries.show import seconds_between

GROUPINGS = ("engine", "partition", "tag", "user")
#: the group of jobs without a tag (``--by tag``) or partition (``--by partition``)
NONE_GROUP = "-"
ACTIVE = ("created", "queued", "running")


@dataclass(frozen=True)
class StatsFilter:
    """Which jobs: as ``orion ls`` filters them (``owner`` None: every user's)."""

    owner: str | None
    tags: tuple[str, ...] = ()
    study_id: int | None = None
    engine: str = ""
    since_s: int | None = None
    #: jobs named like any of these (``*`` wildcards) and in any of these statuses
    names: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


@dataclass(slots=True)  # not frozen: built 100,000 times, frozen's __init__ is 3x slower
class JobFacts:
    """What the statistics need of one job."""

    id: int
    status: str
    failure_reason: str | None
    engine: str
    partition: str
    tags: tuple[str, ...]
    queue_wait_s: float | None
    run_s: float | None
    cores: int
    retry_pending: bool = False
    owner: str = ""


@dataclass(frozen=True)
class Durations:
    """Percentiles of some durations (seconds); None when there are none."""

    count: int
    p50_s: float | None
    p90_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Durations:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None)
        return cls(
            len(ordered), percentile(ordered, 50), percentile(ordered, 90), float(ordered[-1])
        )


@dataclass
class GroupStats:
    """The statistics of one group of jobs (or of all of them)."""

    key: str
    jobs: int
    counts: dict[str, int]
    #: jobs that ended: completed, or failed with no retry left
    ended: int
    success_rate: float | None
    failure_reasons: dict[str, int]
    retry_pending: int
    queue_wait: Durations
    run: Durations
    core_hours: float
    #: every finished job's run time (seconds), for the plot; not in as_dict
    run_values_s: list[float] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "jobs": self.jobs,
            "counts": self.counts,
            "ended": self.ended,
            "success_rate": self.success_rate,
            "failure_reasons": self.failure_reasons,
            "retry_pending": self.retry_pending,
            "queue_wait_s": _durations(self.queue_wait),
            "run_s": _durations(self.run),
            "core_hours": round(self.core_hours, 6),
        }


@dataclass
class Stats:
    by: str
    total: GroupStats
    groups: list[GroupStats]
    #: attempts that were followed by another one, by their failure reason
    retried_attempts: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.total.as_dict(),
            "retried_attempts": self.retried_attempts,
            "by": self.by,
            "groups": [group.as_dict() for group in self.groups],
        }


def _durations(d: Durations) -> dict[str, Any]:
    """Seconds to the millisecond, as ``orion show`` gives each job's."""
    return {
        "count": d.count,
        **{
            name: None if value is None else round(value, 3)
            for name, value in (("p50", d.p50_s), ("p90", d.p90_s), ("max", d.max_s))
        },
    }


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted values, interpolated linearly (numpy's default).

    >>> percentile([1, 2, 3, 4], 50), percentile([1, 2, 3, 4], 90), percentile([7], 90)
    (2.5, 3.7, 7.0)
    >>> percentile([0, 10], 25)
    2.5
    """
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))


def summarize(facts: Sequence[JobFacts], key: str) -> GroupStats:
    """The statistics of ``facts`` (pure).

    >>> f = [JobFacts(1, "completed", None, "emt", "", (), 2.0, 10.0, 2),
    ...      JobFacts(2, "failed", "timeout", "emt", "", (), 4.0, 30.0, 2),
    ...      JobFacts(3, "cancelled", None, "emt", "", (), None, None, 1)]
    >>> g = summarize(f, "all")
    >>> g.success_rate, g.failure_reasons, g.run.p50_s, round(g.core_hours, 6)
    (0.5, {'timeout': 1}, 20.0, 0.022222)
    """
    counts = Counter(f.status for f in facts)
    completed = counts.get("completed", 0)
    failed_for_good = sum(f.status == "failed" and not f.retry_pending for f in facts)
    ended = completed + failed_for_good
    runs = [f.run_s for f in facts if f.run_s is not None]
    reasons = Counter(f.failure_reason or "unknown" for f in facts if f.status == "failed")
    return GroupStats(
        key=key,
        jobs=len(facts),
        counts=dict(counts),
        ended=ended,
        success_rate=completed / ended if ended else None,
        failure_reasons=dict(reasons.most_common()),
        retry_pending=sum(f.retry_pending for f in facts),
        queue_wait=Durations.of(f.queue_wait_s for f in facts if f.queue_wait_s is not None),
        run=Durations.of(runs),
        core_hours=sum((f.run_s or 0.0) * f.cores for f in facts) / 3600.0,
        run_values_s=runs,
    )


def group_keys(job: JobFacts, by: str) -> tuple[str, ...]:
    """The groups a job counts in: its engine, partition or owner, or each of its tags.

    >>> group_keys(JobFacts(1, "queued", None, "emt", "", ("a", "b"), None, None, 1), "tag")
    ('a', 'b')
    >>> group_keys(JobFacts(1, "queued", None, "emt", "", (), None, None, 1), "partition")
    ('-',)
    """
    if by == "engine":
        return (job.engine,)
    if by == "partition":
        return (job.partition or NONE_GROUP,)
    if by == "user":
        return (job.owner,)
    return job.tags or (NONE_GROUP,)


def compute(facts: Sequence[JobFacts], by: str, retried: dict[str, int]) -> Stats:
    """All jobs' statistics and each group's (largest group first, jobs of none last)."""
    check_by(by)
    members: dict[str, list[JobFacts]] = {}
    for job in facts:
        for key in group_keys(job, by):
            members.setdefault(key, []).append(job)
    groups = [
        summarize(jobs, key)
        for key, jobs in sorted(
            members.items(), key=lambda kv: (kv[0] == NONE_GROUP, -len(kv[1]), kv[0])
        )
    ]
    return Stats(by, summarize(facts, "all"), groups, retried)


def check_by(by: str) -> None:
    if by not in GROUPINGS:
        raise UsageError(f"cannot group by '{by}'", f"use --by {' | '.join(GROUPINGS)}")


def _conditions(flt: StatsFilter) -> list[Any]:
    """The WHERE conditions of ``flt`` on the jobs table (removed jobs left out)."""
    from sqlalchemy import or_
    from sqlmodel import col

    where: list[Any] = [col(Job.removed_at).is_(None)]
    if flt.owner is not None:
        where.append(col(Job.owner) == flt.owner)
    if flt.engine:
        where.append(col(Job.engine) == flt.engine)
    if flt.study_id is not None:
        where.append(col(Job.study_id) == flt.study_id)
    if flt.tags:
        where.append(with_any_tag(flt.tags))
    if flt.since_s is not None:
        where.append(col(Job.created_at) >= datetime.now(UTC) - timedelta(seconds=flt.since_s))
    if flt.names:
        where.append(or_(*(col(Job.name).like(name_pattern(n), escape="\\") for n in flt.names)))
    if flt.statuses:
        where.append(col(Job.status).in_(flt.statuses))
    return where


_FACT_COLUMNS = (
    "id", "status", "failure_reason", "engine", "partition", "submitted_at", "started_at",
    "finished_at", "ntasks", "cpus_per_task", "next_attempt_at", "owner",
)  # fmt: skip


def collect(settings: Settings, flt: StatsFilter, by: str = "engine") -> Stats:
    """Read the filtered jobs, their tags and attempts (three queries), and compute."""
    from sqlalchemy import select as sa_select
    from sqlmodel import col, select

    check_by(by)
    where = _conditions(flt)
    chosen = select(Job.id).where(*where)
    columns = [col(getattr(Job, name)) for name in _FACT_COLUMNS]
    with session_scope(settings.resolved_database_url) as session:
        rows = session.execute(sa_select(*columns).where(*where).order_by(col(Job.id))).all()
        tags: dict[int, list[str]] = {}
        for job_id, tag in session.exec(
            select(JobTag.job_id, JobTag.tag)
            .where(col(JobTag.job_id).in_(chosen))
            .order_by(col(JobTag.id))
        ):
            tags.setdefault(job_id, []).append(tag)
        attempts = session.exec(
            select(JobAttempt.job_id, JobAttempt.attempt, JobAttempt.reason).where(
                col(JobAttempt.job_id).in_(chosen)
            )
        ).all()
    facts = [_facts(dict(zip(_FACT_COLUMNS, row, strict=True)), tags) for row in rows]
    return compute(facts, by, retried_by_reason(attempts))


def _facts(row: dict[str, Any], tags: dict[int, list[str]]) -> JobFacts:
    return JobFacts(
        id=row["id"],
        status=row["status"],
        failure_reason=row["failure_reason"],
        engine=row["engine"],
        partition=row["partition"] or "",
        tags=tuple(tags.get(row["id"], ())),
        queue_wait_s=seconds_between(row["submitted_at"], row["started_at"]),
        run_s=seconds_between(row["started_at"], row["finished_at"]),
        cores=(row["ntasks"] or 1) * (row["cpus_per_task"] or 1),
        retry_pending=row["status"] == "failed" and row["next_attempt_at"] is not None,
        owner=row["owner"],
    )


def retried_by_reason(attempts: Iterable[tuple[int, int, str | None]]) -> dict[str, int]:
    """How many attempts were followed by another, by the reason they ended (most first).

    >>> retried_by_reason([(1, 1, "timeout"), (1, 2, None), (2, 1, "oom"), (3, 1, None),
    ...                    (3, 2, None)])
    {'timeout': 1, 'request': 1}
    """
    attempts = list(attempts)
    present = {(job_id, attempt) for job_id, attempt, _ in attempts}
    retried = Counter(
        reason or "request"
        for job_id, attempt, reason in attempts
        if (job_id, attempt + 1) in present
    )
    return dict(retried.most_common())
