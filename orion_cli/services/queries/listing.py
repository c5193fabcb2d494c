"""`orion ls` without SQLAlchemy: one plain SQL query through the database's own driver.

Listing is the command researchers run most; importing SQLAlchemy and SQLModel costs more
than the query itself, so this path uses ``sqlite3`` or ``psycopg`` directly and reads only
the columns the table shows. When the schema is not current it falls back to the full
path, which upgrades SQLite or explains what to do for PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orion_cli.config import Settings
from orion_cli.db import SCHEMA_HEAD
from orion_cli.db.session import database_error, ready_engine
from orion_cli.db.sqlite_file import read_only_connection
from orion_cli.db.urls import check_url
from orion_cli.errors import DatabaseError, UsageError
from orion_cli.jobids import name_pattern
from orion_cli.services.lifecycle.depgraph import ParentState, dependency_state
from orion_cli.states import JobStatus

COLUMNS = (
    "id",
    "name",
    "owner",
    "engine",
    "status",
    "failure_reason",
    "progress_pct",
    "current_step",
    "scheduler",
    "scheduler_job_id",
    "tag",
    "attempt",
    "created_at",
    "formula",
    "held",
)


@dataclass(frozen=True)
class JobFilter:
    statuses: tuple[str, ...] = ()
    engine: str = ""
    #: jobs with any of these tags
    tags: tuple[str, ...] = ()
    since_s: int | None = None
    limit: int = 50
    offset: int = 0
    #: only this user's jobs; None lists every user's (``--all-users``)
    owner: str | None = None
    #: only the jobs of this study (``orion eos``: the id of its first job)
    study_id: int | None = None
    #: only jobs of any of these studies, and named like any of these (``*`` wildcards)
    study_ids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()


@dataclass
class Listing:
    rows: list[dict[str, Any]]
    total: int
    #: jobs matching the filter by status (all pages)
    counts: dict[str, int] = field(default_factory=dict)


def build_query(flt: JobFilter, placeholder: str, now: datetime) -> tuple[str, str, list[Any]]:
    """Return (select, count, params) for ``flt``; ``placeholder`` is ``?`` or ``%s``.

    >>> sel, cnt, params = build_query(JobFilter(("failed",), limit=5, owner="ann"), "?",
    ...                                datetime(2026, 1, 1, tzinfo=UTC))
    >>> sel.split("WHERE")[1].strip()
    'removed_at IS NULL AND owner = ? AND status IN (?) ORDER BY id DESC LIMIT 5 OFFSET 0'
    >>> params
    ['ann', 'failed']
    """
    where: list[str] = ["removed_at IS NULL"]  # `orion rm` hides a job; `show` still finds it
    params: list[Any] = []
    if flt.owner is not None:
        where.append(f"owner = {placeholder}")
        params.append(flt.owner)
    if flt.statuses:
        where.append(f"status IN ({', '.join([placeholder] * len(flt.statuses))})")
        params.extend(flt.statuses)
    if flt.engine:
        where.append(f"engine = {placeholder}")
        params.append(flt.engine)
    if flt.study_id is not None:
        where.append(f"study_id = {placeholder}")
        params.append(flt.study_id)
    if flt.study_ids:
        where.append(f"study_id IN ({', '.join([placeholder] * len(flt.study_ids))})")
        params.extend(flt.study_ids)
    if flt.names:
        likes = " OR ".join([f"name LIKE {placeholder} ESCAPE '\\'"] * len(flt.names))
        where.append(f"({likes})")
        params.extend(name_pattern(name) for name in flt.names)
    if flt.tags:
        where.append(
            f"id IN (SELECT job_id FROM job_tag WHERE tag IN "
            f"({', '.join([placeholder] * len(flt.tags))}))"
        )
        params.extend(flt.tags)
    if flt.since_s is not None:
        where.append(f"created_at >= {placeholder}")
        cutoff = (now - timedelta(seconds=flt.since_s)).astimezone(UTC)
        params.append(cutoff if placeholder == "%s" else cutoff.strftime("%Y-%m-%d %H:%M:%S.%f"))
    clause = f" WHERE {' AND '.join(where)}"
    select = (
        f"SELECT {', '.join(COLUMNS)} FROM job{clause} ORDER BY id DESC "
        f"LIMIT {int(flt.limit)} OFFSET {int(flt.offset)}"
    )
    return select, f"SELECT count(*) FROM job{clause}", params


def _as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _connect(url: str) -> tuple[Any, str]:
    if url.startswith("sqlite:///"):
        from pathlib import Path

        return read_only_connection(Path(url[len("sqlite:///") :])), "?"
    import psycopg

    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url[len(prefix) :]
    return psycopg.connect(url, connect_timeout=10), "%s"


def list_jobs(settings: Settings, flt: JobFilter, fall_back: bool = True) -> Listing:
    """List jobs, newest first, one page of them, and count all that match.

    Anything unexpected on the quick path (no schema yet, an old one, a foreign or damaged
    database, a server down) is left to the full path, which creates or upgrades SQLite and
    explains everything else in one line.
    """
    for status in flt.statuses:
        if status not in JobStatus.__members__.values():
            raise UsageError(
                f"unknown status '{status}'", f"use one of: {', '.join(s.value for s in JobStatus)}"
            )
    url = settings.resolved_database_url
    check_url(url, parse=False)  # a raw '@' in a password: no DNS lookup of its tail
    try:
        conn, placeholder = _connect(url)
    except Exception as exc:  # noqa: BLE001 - missing file, server down: the full path explains
        return _prepare_then_list(settings, flt, exc, fall_back)
    try:
        with conn:
            listing = _query(conn, placeholder, flt)
    except Exception as exc:  # noqa: BLE001
        return _prepare_then_list(settings, flt, exc, fall_back)
    finally:
        conn.close()
    if listing is None:
        return _prepare_then_list(settings, flt, None, fall_back)
    return listing


def _query(conn: Any, placeholder: str, flt: JobFilter) -> Listing | None:
    """Run the listing query, or return None when the schema is not the one orion needs."""

    cursor = conn.cursor()
    try:
        cursor.execute("SELECT version_num FROM alembic_version")
        revision = cursor.fetchone()
    except Exception:  # noqa: BLE001 - no schema yet
        revision = None
    if not revision or revision[0] != SCHEMA_HEAD:
        conn.rollback()
        return None
    select, count, params = build_query(flt, placeholder, datetime.now(UTC))
    by_status = count.replace("SELECT count(*)", "SELECT status, count(*)") + " GROUP BY status"
    cursor.execute(by_status, params)
    counts = {status: int(n) for status, n in cursor.fetchall()}
    total = sum(counts.values())
    if flt.limit == 0:  # counts only (`orion ls --count`)
        return Listing([], total, counts)
    cursor.execute(select, params)
    rows = [dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["held"] = bool(row["held"])  # SQLite stores 0/1
    for row in rows:
        row["created_at"] = _as_utc(row["created_at"]).isoformat()
    _add_dependency_states(cursor, placeholder, rows)
    _add_energies(cursor, placeholder, rows)
    return Listing(rows, total, counts)


def atoms_in_formula(formula: str) -> int | None:
    """Count the atoms in a chemical formula as ASE writes it (``Cu4``, ``H2O``, ``SiO2``).

    >>> atoms_in_formula("Cu4"), atoms_in_formula("H2O"), atoms_in_formula("Si8O16")
    (4, 3, 24)
    >>> atoms_in_formula(""), atoms_in_formula("(H2O)2")
    (None, None)
    """
    import re

    if not formula or not re.fullmatch(r"([A-Z][a-z]?\d*)+", formula):
        return None
    return sum(int(n or 1) for _, n in re.findall(r"([A-Z][a-z]?)(\d*)", formula))


def _add_energies(cursor: Any, placeholder: str, rows: list[dict[str, Any]]) -> None:
    """Give completed rows their energy per atom (eV/atom) from the stored result."""
    done = [row["id"] for row in rows if row["status"] == "completed"]
    for row in rows:
        row["energy_per_atom_ev"] = None
    if not done:
        return
    cursor.execute(
        f"SELECT job_id, energy_ev FROM job_result WHERE job_id IN "
        f"({', '.join([placeholder] * len(done))})",
        done,
    )
    energies = dict(cursor.fetchall())
    for row in rows:
        natoms = atoms_in_formula(row["formula"])
        energy = energies.get(row["id"])
        if energy is not None and natoms and row["status"] == "completed":
            row["energy_per_atom_ev"] = energy / natoms


def _add_dependency_states(cursor: Any, placeholder: str, rows: list[dict[str, Any]]) -> None:
    """Say for each row what it waits for (``waiting on 2 parents``), with one more query."""

    if not rows:
        return
    ids = [row["id"] for row in rows]
    cursor.execute(
        "SELECT d.child_id, d.parent_id, d.kind, p.status, p.failure_reason, "
        "p.next_attempt_at IS NOT NULL FROM job_dependencies d JOIN job p ON p.id = d.parent_id "
        f"WHERE d.child_id IN ({', '.join([placeholder] * len(ids))}) ORDER BY d.parent_id",
        ids,
    )
    parents: dict[int, list[ParentState]] = {}
    for child, parent, kind, status, reason, pending in cursor.fetchall():
        parents.setdefault(child, []).append(
            ParentState(parent, kind, status, reason, bool(pending))
        )
    for row in rows:
        row["dependency"] = dependency_state(row["status"], parents.get(row["id"], []))


def _prepare_then_list(
    settings: Settings, flt: JobFilter, error: Exception | None, fall_back: bool
) -> Listing:

    url = settings.resolved_database_url
    if not fall_back:  # the full path found the database ready, yet the quick one failed
        raise (
            database_error(url, error)
            if error
            else DatabaseError(
                "cannot read the job list: the schema changed while orion read it", "try again"
            )
        )
    ready_engine(url)  # creates or upgrades SQLite, refuses a foreign or corrupt database
    return list_jobs(settings, flt, fall_back=False)
