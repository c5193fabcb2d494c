"""Engines and sessions for SQLite (default) and PostgreSQL; schema checks and upgrades."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import Session

from orion_cli.db import SCHEMA_HEAD
from orion_cli.errors import ConfigError, DatabaseError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def normalize_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs written without a driver.

    >>> normalize_url("postgresql://u@h/db"), normalize_url("postgres://u@h/db")
    ('postgresql+psycopg://u@h/db', 'postgresql+psycopg://u@h/db')
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def redact(url: str) -> str:
    """Hide the password of a database URL.

    >>> redact("postgresql://u:secret@h/db")
    'postgresql://u:***@h/db'
    """
    head, sep, tail = url.partition("://")
    if "@" not in tail:
        return url
    creds, _, rest = tail.partition("@")
    user = creds.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{rest}" if ":" in creds else url


@cache
def get_engine(url: str) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if url.startswith("postgresql"):
        # psycopg parses each distinct statement text once; pages of 100 rows repeat the
        # same text, where one page of 1,000 rows costs ~0.1 s of parsing per bulk insert
        return create_engine(url, pool_pre_ping=True, insertmanyvalues_page_size=100)
    raise ConfigError(
        f"database URL '{redact(url)}' is neither sqlite nor postgresql",
        "set ORION_DATABASE_URL to sqlite:///path/orion.db or postgresql://user@host/db",
    )


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" in str(exc):
            return None
        raise


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``target`` (default: the newest revision); return (before, after)."""
    from alembic import command
    from alembic.config import Config

    before = current_revision(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:  # batch migrations copy tables; foreign keys would refuse the DROP
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        config.attributes["connection"] = conn
        command.upgrade(config, target)
        conn.commit()
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
    return before, current_revision(engine) or ""


def database_error(url: str, exc: Exception) -> DatabaseError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DatabaseError(
        f"cannot use database {redact(url)}: {first}",
        "check that it is running and ORION_DATABASE_URL is right, then `orion doctor`",
    )


def upgrade_url(url: str) -> tuple[str | None, str]:
    """Upgrade the schema of the database at ``url``; unreachable is a DatabaseError."""
    try:
        return upgrade(get_engine(url))
    except OperationalError as exc:
        raise database_error(url, exc) from None


def _sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for memory databases and other dialects).

    >>> _sqlite_path("sqlite:////tmp/o.db"), _sqlite_path("sqlite://")
    (PosixPath('/tmp/o.db'), None)
    """
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1] if "///" in url else ""
    return Path(path) if path and path != ":memory:" else None


def create_sqlite(path: Path) -> bool:
    """Create a new SQLite database at ``path`` from the models, stamped at the newest migration.

    The file is built beside ``path`` and linked into place, which fails if ``path`` exists:
    two first runs at once make one database, and a crash leaves no half-made one. Running
    the migrations one by one would give the same schema (a test checks) but takes longer
    than the rest of a first ``orion submit``. Returns False when someone else was first.
    """
    import os
    import uuid

    from sqlmodel import SQLModel

    import orion_cli.db.models  # noqa: F401  (registers the tables)

    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    engine = create_engine(f"sqlite:///{scratch}")
    try:
        with engine.begin() as conn:
            SQLModel.metadata.create_all(conn)
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                              "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
            conn.execute(text("INSERT INTO alembic_version VALUES (:head)"), {"head": SCHEMA_HEAD})
            conn.execute(text("INSERT INTO orion_meta (key, value) VALUES ('instance_id', :v)"),
                         {"v": uuid.uuid4().hex[:6]})
        engine.dispose()
        try:
            os.link(scratch, path)
        except FileExistsError:
            return False
        return True
    finally:
        engine.dispose()
        scratch.unlink(missing_ok=True)


def ready_engine(url: str) -> Engine:
    """Return an engine whose schema is current: SQLite upgrades itself, PostgreSQL asks."""
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        create_sqlite(path)
    engine = get_engine(url)
    try:
        revision = current_revision(engine)
        if revision == SCHEMA_HEAD:
            return engine
        if engine.dialect.name == "sqlite":
            upgrade(engine)
            return engine
    except OperationalError as exc:
        raise database_error(url, exc) from None
    raise DatabaseError(
        f"database schema is at {revision or 'nothing'}, orion needs {SCHEMA_HEAD}",
        "run `orion db upgrade`",
    )


def instance_id(session: Session) -> str:
    """Return this database's short random id (written by migration 0002)."""
    from orion_cli.db.models import OrionMeta

    row = session.get(OrionMeta, "instance_id")
    if row is None:
        raise DatabaseError("database has no instance_id", "run `orion db upgrade`")
    return row.value


@contextlib.contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """Open a session on a ready database; commit on success, roll back on error."""
    engine = ready_engine(url)
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except OperationalError as exc:
        session.rollback()
        raise database_error(url, exc) from None
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
