"""Health check: database, schema, scheduler, engines, job directory."""

from __future__ import annotations

import os
from dataclasses import dataclass

from orion_cli.config import Settings
from orion_cli.errors import OrionError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _database_checks(settings: Settings) -> list[Check]:
    from sqlalchemy.exc import SQLAlchemyError

    from orion_cli.db.session import SCHEMA_HEAD, current_revision, get_engine, redact

    url = settings.resolved_database_url
    try:
        engine = get_engine(url)
        if engine.dialect.name == "sqlite":
            from orion_cli.db.session import ready_engine

            ready_engine(url)  # the embedded database creates itself
        revision = current_revision(engine)
    except (SQLAlchemyError, OrionError) as exc:
        text = exc.one_line() if isinstance(exc, OrionError) else str(exc).splitlines()[0]
        return [Check("database", False, f"{redact(url)}: {text}")]
    checks = [Check("database", True, f"{redact(url)} ({engine.dialect.name})")]
    if revision == SCHEMA_HEAD:
        checks.append(Check("schema", True, f"at {revision}"))
    else:
        checks.append(Check("schema", False,
                            f"at {revision or 'nothing'}, needs {SCHEMA_HEAD}: "
                            "run `orion db upgrade`"))
    return checks


def run_checks(settings: Settings) -> list[Check]:
    from orion_cli.engines.registry import engine_names, get_engine
    from orion_cli.schedulers import default_scheduler_name, scheduler_for

    checks = _database_checks(settings)
    name = settings.scheduler if settings.scheduler != "auto" else default_scheduler_name()
    try:
        ok, detail = scheduler_for(settings, name).check()
    except OrionError as exc:
        ok, detail = False, exc.one_line()
    checks.append(Check(f"scheduler {name}", ok, detail))
    if name == "slurm":
        from orion_cli.schedulers import slurm_backend

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
    checks.append(Check("job directories", writable,
                        f"{work_root} {'writable' if writable else 'not writable'}"))
    for engine_name in engine_names():
        try:
            found, detail = get_engine(engine_name).binary_status(
                settings.engine_settings(engine_name))
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break doctor
            found, detail = False, f"cannot load: {exc}"
        # an engine whose program is absent is information, not a broken installation
        checks.append(Check(f"engine {engine_name}", True,
                            detail if found else f"not usable here: {detail}"))
    return checks
