"""Prometheus metrics of this user's jobs, in the text format node_exporter's textfile
collector reads (``--collector.textfile.directory``).

No per-job labels (a label per job id would be a new series per job): jobs by status and
engine, transitions and retries by reason, queue wait and run time histograms, core-hours,
and the poller's own health (last successful cycle, its duration and errors). Every series
has a ``user`` label so that several users' files can sit in one directory. The file is
written to a temporary name beside it and renamed, as node_exporter asks.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from orion_cli.config import Settings
from orion_cli.db.models import Job, JobAttempt, JobEvent
from orion_cli.db.session import session_scope
from orion_cli.errors import UsageError
from orion_cli.identity import current_user
from orion_cli.services.lifecycle.freshness import read_stamp, write_atomically

#: seconds: 10 s, 1 min, 5 min, 15 min, 1 h, 4 h, 12 h, 1 d, 3 d
BUCKETS_S = (10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 43200.0, 86400.0, 259200.0)


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(BUCKETS_S))
    total: int = 0
    sum_s: float = 0.0

    def observe(self, value_s: float) -> None:
        for i, bound in enumerate(BUCKETS_S):
            if value_s <= bound:
                self.counts[i] += 1
        self.total += 1
        self.sum_s += value_s


@dataclass
class Metrics:
    user: str
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, engine)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (to, reason)
    retries: Counter[str] = field(default_factory=Counter)  # reason of the retried attempt
    queue_wait: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    run_time: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))
    core_hours: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    last_poll_ok: float | None = None
    poll_duration_s: float | None = None
    poll_errors: int | None = None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return max(0.0, (end - start).total_seconds())


def collect(settings: Settings) -> Metrics:
    """Read this user's jobs, events and attempts (three queries) and the poller's stamp."""
    from sqlalchemy import select as sa_select
    from sqlmodel import col, select

    me = current_user()
    data = Metrics(user=me)
    with session_scope(settings.resolved_database_url) as session:
        jobs = session.execute(
            sa_select(
                col(Job.id),
                col(Job.status),
                col(Job.engine),
                col(Job.submitted_at),
                col(Job.started_at),
                col(Job.finished_at),
                col(Job.ntasks),
                col(Job.cpus_per_task),
                col(Job.removed_at),
            ).where(col(Job.owner) == me)
        ).all()
        mine = select(Job.id).where(Job.owner == me)
        events = session.exec(
            select(JobEvent.to_status, JobEvent.reason).where(
                col(JobEvent.job_id).in_(mine),
                col(JobEvent.from_status).is_not(None),
                JobEvent.from_status != JobEvent.to_status,
            )
        ).all()
        attempts = session.exec(
            select(JobAttempt.job_id, JobAttempt.attempt, JobAttempt.reason).where(
                col(JobAttempt.job_id).in_(mine)
            )
        ).all()
    engine_of = {}
    for job_id, status, engine, submitted, started, finished, ntasks, cpus, removed in jobs:
        engine_of[job_id] = engine
        if removed is None:
            data.jobs[(status, engine)] += 1
        wait_s = _seconds(submitted, started)
        if wait_s is not None:
            data.queue_wait[engine].observe(wait_s)
        run_s = _seconds(started, finished)
        if run_s is not None:
            data.run_time[engine].observe(run_s)
            data.core_hours[engine] += run_s * (ntasks or 1) * (cpus or 1) / 3600.0
    for to_status, reason in events:
        data.transitions[(to_status, reason or "")] += 1
    present = {(job_id, attempt) for job_id, attempt, _ in attempts}
    for job_id, attempt, reason in attempts:
        if (job_id, attempt + 1) in present:  # a later attempt exists: this one was retried
            data.retries[reason or "request"] += 1
    stamp = read_stamp(settings)
    if stamp.last_ok_at:
        data.last_poll_ok = datetime.fromisoformat(stamp.last_ok_at).timestamp()
    if stamp.last_cycle_at:
        data.poll_duration_s, data.poll_errors = stamp.last_duration_s, stamp.last_errors
    return data


def _label(value: str) -> str:
    r"""Escape a label value for the text format (backslash, quote, newline).

    >>> _label('a"b\\c\nd')
    'a\\"b\\\\c\\nd'
    """
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in pairs.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[str, Mapping[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{sample}{_labels(labels)} {_number(value)}" for sample, labels, value in samples]
    return lines


def _histograms(
    name: str, help_text: str, user: str, by_engine: Mapping[str, Histogram]
) -> list[str]:
    samples: list[tuple[str, Mapping[str, str], float]] = []
    for engine, hist in sorted(by_engine.items()):
        base = {"user": user, "engine": engine}
        for bound, count in zip(BUCKETS_S, hist.counts, strict=True):
            samples.append((f"{name}_bucket", {**base, "le": repr(bound)}, count))
        samples.append((f"{name}_bucket", {**base, "le": "+Inf"}, hist.total))
        samples.append((f"{name}_sum", base, hist.sum_s))
        samples.append((f"{name}_count", base, hist.total))
    return _family(name, "histogram", help_text, samples)


def render(data: Metrics) -> str:
    """The metrics in Prometheus' text exposition format (0.0.4)."""
    lines = _job_families(data) + _poll_families(data)
    return "\n".join(lines) + "\n"


def _job_families(data: Metrics) -> list[str]:
    """Jobs, transitions, retries, queue waits, run times and core-hours."""
    u = data.user
    lines = _family(
        "orion_jobs",
        "gauge",
        "Jobs by status and engine (removed jobs left out).",
        [
            ("orion_jobs", {"user": u, "status": s, "engine": e}, n)
            for (s, e), n in sorted(data.jobs.items())
        ],
    )
    lines += _family(
        "orion_job_transitions_total",
        "counter",
        "Status changes by new status and failure reason.",
        [
            ("orion_job_transitions_total", {"user": u, "to": to, "reason": r}, n)
            for (to, r), n in sorted(data.transitions.items())
        ],
    )
    lines += _family(
        "orion_job_retries_total",
        "counter",
        "Attempts that were followed by another, by the attempt's failure reason.",
        [
            ("orion_job_retries_total", {"user": u, "reason": r}, n)
            for r, n in sorted(data.retries.items())
        ],
    )
    lines += _histograms(
        "orion_queue_wait_seconds", "From submission to start, per job.", u, data.queue_wait
    )
    lines += _histograms(
        "orion_run_seconds", "From start to end, per finished job.", u, data.run_time
    )
    return lines + _family(
        "orion_core_hours_total",
        "counter",
        "Run time × tasks × CPUs per task, in hours.",
        [
            ("orion_core_hours_total", {"user": u, "engine": e}, round(h, 6))
            for e, h in sorted(data.core_hours.items())
        ],
    )


def _poll_families(data: Metrics) -> list[str]:
    """The last poll: when it succeeded, how long it took, its errors (when known)."""
    u, lines = data.user, []
    if data.last_poll_ok is not None:
        lines += _family(
            "orion_last_successful_poll_timestamp_seconds",
            "gauge",
            "When orion poll last finished a cycle without errors (Unix time).",
            [("orion_last_successful_poll_timestamp_seconds", {"user": u}, data.last_poll_ok)],
        )
    if data.poll_duration_s is not None:
        lines += _family(
            "orion_poll_duration_seconds",
            "gauge",
            "Wall time of the last poll cycle.",
            [("orion_poll_duration_seconds", {"user": u}, data.poll_duration_s)],
        )
        lines += _family(
            "orion_poll_errors",
            "gauge",
            "Errors (scheduler, database) in the last poll cycle.",
            [("orion_poll_errors", {"user": u}, data.poll_errors or 0)],
        )
    return lines


def write_textfile(settings: Settings, path: Path) -> Metrics:
    """Collect and write the metrics to ``path`` atomically (mode 0644, for node_exporter)."""
    if path.suffix != ".prom":
        raise UsageError(
            f"metrics file '{path}' does not end in .prom",
            "node_exporter's textfile collector reads only *.prom files",
        )
    if not path.parent.is_dir():
        raise UsageError(
            f"directory '{path.parent}' does not exist",
            "give node_exporter's --collector.textfile.directory",
        )
    data = collect(settings)
    write_atomically(path, render(data), 0o644)  # fchmod on the new file, never by path
    return data


def textfile_in(directory: Path, user: str) -> Path:
    """``orion poll --metrics DIR`` writes ``DIR/orion-<user>.prom``."""
    return directory / f"orion-{user}.prom"
