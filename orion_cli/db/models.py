"""All tables. Times are timezone-aware UTC. Schema changes go through an Alembic migration."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def now_utc() -> datetime:
    """Timezone-aware UTC 'now' (SQLModel's UTCDateTime columns keep the zone on both DBs)."""
    return datetime.now(UTC)


class OrionMeta(SQLModel, table=True):
    """Facts about this database; ``instance_id`` tells its jobs apart from another orion's."""

    __tablename__ = "orion_meta"

    key: str = Field(primary_key=True)
    value: str


class Job(SQLModel, table=True):
    __tablename__ = "job"

    id: int | None = Field(default=None, primary_key=True)
    name: str
    owner: str = Field(index=True)  # the Unix account that submitted it (identity.py)
    engine: str = Field(index=True)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    structure_source: str = ""
    formula: str = ""
    input_structure: str = Field(default="", sa_column=Column(Text))

    status: str = Field(default="created", index=True)
    failure_reason: str | None = None
    error_message: str | None = Field(default=None, sa_column=Column(Text))
    raw_state: str | None = None
    exit_code: int | None = None
    exit_signal: int | None = None  # the signal that killed the job or its engine (9: SIGKILL)

    scheduler: str = "local"
    scheduler_job_id: str | None = Field(default=None, index=True)
    partition: str = ""
    account: str = ""
    qos: str = ""
    priority: int = 10
    walltime_s: int = 3600
    mem_mb: int = 0
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    mem_per_cpu_mb: int = 0
    gpus: int = 0
    constraints: str = ""
    exclusive: bool = False
    #: extra sbatch options (``--sbatch-arg``), checked at submit: orion_cli.resources
    sbatch_args: list[str] | None = Field(default=None, sa_column=Column(JSON))
    #: the named queue ([queues.NAME]) the job was submitted with ("": none)
    queue: str = ""
    #: set when sbatch did not answer: the next retry first looks for the job by name
    submit_unknown_since: datetime | None = None

    progress_pct: float = 0.0
    current_step: str = ""
    workdir: str = ""
    attempt: int = 1
    max_retries: int = 3
    retry_delay_s: int = 60
    soft_margin_s: int = 300
    next_attempt_at: datetime | None = Field(default=None, index=True)
    held: bool = False
    events_offset: int = 0

    created_at: datetime = Field(default_factory=now_utc, index=True)
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime = Field(default_factory=now_utc)
    missing_since: datetime | None = None
    tag: str = Field(default="", index=True)
    array_name: str | None = None
    array_index: int | None = None
    #: calculations per array task when packed (``orion submit --pack``); 0: one per task
    pack: int = 0
    #: site set-up the batch script runs: {"python": ..., "setup": [rendered lines]}
    site: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    #: set by `orion rm`: the directory is gone and the job is hidden (its events stay)
    removed_at: datetime | None = Field(default=None, index=True)
    #: the study (eos, workflow) the job belongs to: the id of the study's first job
    study_id: int | None = Field(default=None, index=True)
    #: the workflow step (``orion workflow``) the job belongs to, and its values of the
    #: step's sweep ({"scale": 0.98}); None outside a workflow
    study_step: str | None = None
    sweep_point: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    #: start from this job's final structure, read on the node from its result.json
    structure_from_id: int | None = None
    #: ``--on-scf-fail``: {"change": {key: value}, "applied_at_attempt": N or None}; the one
    #: retry after an unconverged SCF runs with ``change`` (services/lifecycle/scf_retry.py)
    on_scf_fail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    #: a user's own batch script (``orion submit --script``, ``orion adopt``): its path,
    #: arguments, submit directory, ``#SBATCH`` options and what orion adds; None otherwise
    script: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    #: what the job is, resolved at submit (orion_cli.frozen): parameters, engine settings,
    #: derived values, each input file's sha256, code version, calculation key
    frozen: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    #: sha256 of the canonical frozen record (orion_cli.frozen.calculation_key)
    calc_key: str | None = Field(default=None, index=True)
    #: the key without the engine's code version (``--reuse=loose``)
    loose_key: str | None = Field(default=None, index=True)
    #: completed at once with the result of this job (``--reuse``)
    reused_from: int | None = None
    #: set by ``orion reuse invalidate``: this job's result is never reused
    reuse_invalid: bool = False


class JobResult(SQLModel, table=True):
    __tablename__ = "job_result"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", unique=True, index=True)
    attempt: int = 1
    energy_ev: float | None = None
    forces_ev_per_a: list[list[float]] | None = Field(default=None, sa_column=Column(JSON))
    stress_ev_per_a3: list[float] | None = Field(default=None, sa_column=Column(JSON))
    final_structure: str | None = Field(default=None, sa_column=Column(Text))
    converged: bool | None = None
    extras: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=now_utc)


class JobAttempt(SQLModel, table=True):
    """One submission of a job to the scheduler, with the resources it asked for."""

    __tablename__ = "job_attempt"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    attempt: int
    scheduler_job_id: str | None = None
    walltime_s: int
    mem_mb: int = 0
    #: everything the attempt asked (orion_cli.resources field names); None before 0016
    resources: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    status: str = "queued"
    reason: str | None = None
    raw_state: str | None = None
    message: str | None = Field(default=None, sa_column=Column(Text))
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobEvent(SQLModel, table=True):
    """One status change (or a note, from X to X): from, to, why, who, by what, when.

    ``actor`` is the Unix account whose orion process wrote it; ``source`` what it was doing
    (submit, poll, retry, user, recovery). Together they are the audit trail.
    """

    __tablename__ = "job_event"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    from_status: str | None = None
    to_status: str
    reason: str | None = None
    source: str = ""
    message: str | None = Field(default=None, sa_column=Column(Text))
    attempt: int = 1
    at: datetime = Field(default_factory=now_utc, index=True)
    actor: str = ""


class JobDependency(SQLModel, table=True):
    """An edge: ``child_id`` starts only after ``parent_id`` ended (``kind``).

    ``afterok``: only if the parent completed (a parent failed for good cancels the child,
    reason dependency_failed); ``afterany``: whatever the parent's outcome.
    """

    __tablename__ = "job_dependencies"

    id: int | None = Field(default=None, primary_key=True)
    child_id: int = Field(foreign_key="job.id", index=True)
    parent_id: int = Field(foreign_key="job.id", index=True)
    kind: str = "afterok"


class JobTag(SQLModel, table=True):
    """One of a job's tags (``submit --tag a --tag b``); ``job.tag`` keeps the first."""

    __tablename__ = "job_tag"
    __table_args__ = (UniqueConstraint("job_id", "tag"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    tag: str = Field(index=True)


def with_any_tag(tags: Sequence[str]) -> Any:
    """A WHERE clause: the job has at least one of ``tags``."""
    from sqlmodel import col, select

    return col(Job.id).in_(select(JobTag.job_id).where(col(JobTag.tag).in_(list(tags))))


def insert_jobs(session: Any, rows: list[dict[str, Any]]) -> list[Job]:
    """Insert many jobs with one multi-row INSERT and load them back, in the given order.

    Building SQLModel objects one by one validates every field and costs several times more
    than the insert itself; bulk submission of thousands of structures goes through here.
    The INSERT returns the ids only and one SELECT of their range loads the rows: SQLAlchemy
    compiles ``RETURNING`` of the whole 65-column entity in ~25 ms (once per process: every
    ``orion submit`` paid it), the id alone in ~5 ms.
    """
    from sqlalchemy import insert
    from sqlmodel import col, select

    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in Job.model_fields.items()
        if name != "id"
    }
    full = [{**defaults, **row} for row in rows]
    returning = insert(Job).returning(col(Job.id), sort_by_parameter_order=True)
    ids: list[int] = list(session.scalars(returning, full))
    if not ids:
        return []
    span = select(Job).where(col(Job.id) >= min(ids), col(Job.id) <= max(ids))
    loaded = {job.id: job for job in session.scalars(span)}  # others' rows in the span: unused
    return [loaded[job_id] for job_id in ids]


def add_tags(session: Any, jobs: list[Job], tags: Any) -> None:
    """Record each of ``tags`` on each of ``jobs`` (the ``job_tag`` rows filters match)."""
    from sqlalchemy import insert

    rows = [{"job_id": job.id, "tag": tag} for job in jobs for tag in tags if tag]
    if rows:
        session.execute(insert(JobTag), rows)
