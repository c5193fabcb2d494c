"""Health check: config files, database (schema, integrity, writability), scheduler, engines."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orion_cli.config import Settings, config_files
from orion_cli.db.session import (
    SCHEMA_HEAD,
    check_server_schema,
    current_revision,
    get_engine,
    ready_engine,
    sqlite_path,
)
from orion_cli.db.sqlite_file import quick_check, writable_problem
from orion_cli.db.urls import redact, scrub
from orion_cli.engines import registry
from orion_cli.errors import OrionError
from orion_cli.schedulers import default_scheduler_name, scheduler_for, slurm_backend


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _database_checks(settings: Settings) -> list[Check]:
    from sqlalchemy.exc import SQLAlchemyError

    url = settings.resolved_database_url
    shown = redact(url)
    path = sqlite_path(url)
    checks = []
    try:
        # the embedded database creates itself; a server is only read
        engine = ready_engine(url) if path is not None else _server_engine(url)
        revision = current_revision(engine)
    except (SQLAlchemyError, OrionError, OSError) as exc:
        text = exc.one_line() if isinstance(exc, OrionError) else str(exc).strip()
        checks.append(Check("database", False, f"{shown}: {scrub(text.splitlines()[0], url)}"))
        engine = None
    if engine is not None:
        checks.append(Check("database", True, f"{shown} ({engine.dialect.name})"))
        if revision == SCHEMA_HEAD:
            checks.append(Check("schema", True, f"at {revision}"))
        else:
            checks.append(Check("schema", False, _schema_problem(url, engine, revision)))
    if path is not None:
        checks += _sqlite_file_checks(path)
    elif engine is not None and revision == SCHEMA_HEAD:
        checks.append(_server_writable(engine))
    return checks


def _schema_problem(url: str, engine: Any, revision: str | None) -> str:

    try:
        check_server_schema(url, engine, revision)  # another application's database?
    except OrionError as exc:
        return exc.one_line()
    return f"at {revision or 'nothing'}, needs {SCHEMA_HEAD}: run `orion db upgrade`"


def _server_engine(url: str) -> Any:
    """An engine on a database server, its schema not checked (doctor reports on it)."""

    return get_engine(url)


def _sqlite_file_checks(path: Path) -> list[Check]:

    checks = []
    if path.is_file() and path.stat().st_size:
        verdict = quick_check(path)
        checks.append(
            Check("database integrity", verdict == "ok", f"PRAGMA quick_check: {verdict}")
        )
    problem = writable_problem(path)
    checks.append(
        Check(
            "database writable",
            problem is None,
            problem or f"{path} and its directory are writable",
        )
    )
    return checks


def _server_writable(engine: Any) -> Check:
    """Whether this connection may change jobs (not a read-only replica, has the grants)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            read_only, insert, update = conn.execute(
                text(
                    "SELECT current_setting('transaction_read_only'), "
                    "has_table_privilege('job', 'INSERT'), has_table_privilege('job', 'UPDATE')"
                )
            ).one()
    except SQLAlchemyError as exc:
        return Check("database writable", False, str(exc).strip().splitlines()[0])
    if read_only == "on":
        return Check("database writable", False, "the server is read-only (a standby?)")
    if not (insert and update):
        return Check(
            "database writable",
            False,
            "this user may not insert or update jobs: GRANT INSERT, UPDATE",
        )
    return Check("database writable", True, "this user may insert and update jobs")


def _config_check() -> Check:

    paths = [str(p) for p in config_files()]
    env = sorted(k for k in os.environ if k.startswith("ORION_"))
    parts = [f"files: {', '.join(paths)}" if paths else "no config file"]
    if env:  # names only: values may hold passwords
        parts.append(f"environment: {', '.join(env)}")
    return Check("config", True, "; ".join(parts))


def _scheduler_name(settings: Settings, checks: list[Check]) -> str | None:

    if settings.scheduler != "auto":
        return settings.scheduler
    try:
        return default_scheduler_name()
    except OrionError as exc:
        checks.append(Check("scheduler auto", False, exc.one_line()))
        return None


def run_checks(settings: Settings) -> list[Check]:
    checks = [_config_check(), *_database_checks(settings)]
    name = _scheduler_name(settings, checks)
    if name is not None:
        try:
            ok, detail = scheduler_for(settings, name).check()
        except OrionError as exc:
            ok, detail = False, exc.one_line()
        checks.append(Check(f"scheduler {name}", ok, detail))
    if name == "slurm":
        try:
            backend, why = slurm_backend(settings.slurm_backend)
            checks.append(Check("slurm backend", True, f"{backend}: {why}"))
        except OrionError as exc:
            checks.append(Check("slurm backend", False, exc.one_line()))
    work_root = settings.work_root_path
    try:
        work_root.mkdir(parents=True, exist_ok=True)
        writable = os.access(work_root, os.W_OK)
    except OSError:
        writable = False
    checks.append(
        Check(
            "job directories", writable, f"{work_root} {'writable' if writable else 'not writable'}"
        )
    )
    for engine_name in registry.engine_names():
        try:
            found, detail = registry.get_engine(engine_name).binary_status(
                settings.engine_settings(engine_name)
            )
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break doctor
            found, detail = False, f"cannot load: {exc}"
        # an engine whose program is absent is information, not a broken installation
        checks.append(
            Check(f"engine {engine_name}", True, detail if found else f"not usable here: {detail}")
        )
    return checks


def defaults_line(settings: Settings) -> str:
    """The database and scheduler a plain ``orion submit`` uses here (``setup.sh`` ends with it).

    ``scheduler = auto`` is resolved as submit resolves it: SLURM where ``sbatch`` is on PATH.
    """
    url = settings.resolved_database_url
    database = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
    try:
        name = default_scheduler_name() if settings.scheduler == "auto" else settings.scheduler
    except OrionError as exc:
        return f"{database}; no scheduler usable: {exc.one_line()}"
    how = {
        "slurm": "SLURM (sbatch is on PATH)",
        "pyslurm": "SLURM through pyslurm",
        "local": "the local scheduler (jobs run on this machine)",
    }.get(name, name)
    if name == "local":
        return f"{database} + {how}"
    return f"{database} + {how}; ORION_SCHEDULER=local runs jobs on this machine instead"
