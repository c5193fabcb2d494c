"""Engines and sessions for SQLite (default) and PostgreSQL; schema checks and upgrades."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlmodel import Session

from orion_cli.db import KNOWN_REVISIONS, ORION_TABLES, SCHEMA_HEAD
from orion_cli.db import sqlite_file as files
from orion_cli.db.pg_times import clamp_infinite_times
from orion_cli.db.urls import check_url, normalize_url, redact, scrub
from orion_cli.errors import DatabaseError, ForeignDatabaseError, OrionError
from orion_cli.runner import COMMAND_TIMEOUT_S

__all__ = ["normalize_url", "redact"]  # re-exported: callers print URLs through this module

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: how long a writer waits for SQLite's write lock: longer than a scheduler command, since a
#: retry holds the lock from its claim until sbatch answers (and a cancel across scancel)
SQLITE_BUSY_TIMEOUT_S = COMMAND_TIMEOUT_S + 30


@cache
def get_engine(url: str) -> Engine:
    check_url(url)
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            _check_regular_file(path)
            files.make_private_dir(path.parent)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S},
            json_deserializer=json_from_database,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # psycopg parses each distinct statement text once; pages of 100 rows repeat the
    # same text, where one page of 1,000 rows costs ~0.1 s of parsing per bulk insert
    engine = create_engine(
        url,
        pool_pre_ping=True,
        insertmanyvalues_page_size=100,
        json_deserializer=json_from_database,
    )
    event.listen(engine, "connect", clamp_infinite_times)  # a member's 'infinity' rows
    return engine


def _check_regular_file(path: Path) -> None:
    """A FIFO or device as the database file: refuse (``orion ls`` waited on a FIFO for ever)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing (created later) or unreadable (said when it is opened)
    if not stat.S_ISREG(mode):
        kind = (
            "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device"
        )
        raise ForeignDatabaseError(
            f"database file {path} is {kind}, not a regular file; orion does not open it",
            "point ORION_DATABASE_URL at a file (sqlite:///path/orion.db)",
        )


#: what a JSON value that cannot be read becomes (a group member wrote it in their own row)
UNREADABLE_JSON = {"unreadable": "nested too deeply; orion does not read it"}


def json_from_database(text: str) -> object:
    """Decode a JSON column; one nested too deeply for Python is replaced, not a crash.

    >>> json_from_database('{"a": 1}'), json_from_database("[" * 5000 + "]" * 5000)
    ({'a': 1}, {'unreadable': 'nested too deeply; orion does not read it'})
    """
    try:
        return json.loads(text)
    except RecursionError:
        return dict(UNREADABLE_JSON)


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


def database_error(url: str, exc: Exception) -> OrionError:
    """Turn a driver error into one line: a corrupt SQLite file, or the database unreachable."""
    path = sqlite_path(url)
    if path is not None and files.is_corrupt(exc):
        return files.corrupt_error(path)
    text = scrub(str(exc).strip(), url)
    first = text.splitlines()[0] if text else type(exc).__name__
    return DatabaseError(
        f"cannot use database {redact(url)}: {first}",
        "check that it is running and ORION_DATABASE_URL is right, then `orion doctor`",
    )


@contextlib.contextmanager
def translated_errors(url: str) -> Iterator[None]:
    """Turn an unreachable database or a damaged SQLite file into one line (an OrionError)."""
    try:
        yield
    except OperationalError as exc:
        raise database_error(url, exc) from None
    except DBAPIError as exc:
        if files.is_corrupt(exc):
            raise database_error(url, exc) from None
        raise


def _other_tables(engine: Engine) -> set[str]:
    """Tables of the current schema besides alembic's (PostgreSQL; SQLite is looked at first)."""
    with engine.connect() as conn:
        return {
            row[0]
            for row in conn.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                )
            )
        } - {"alembic_version"}


def check_server_schema(
    url: str, engine: Engine, revision: str | None, alongside_other_tables: bool = False
) -> None:
    """Refuse a PostgreSQL database that is another application's; say how to proceed."""
    if revision is not None and revision not in KNOWN_REVISIONS:
        raise ForeignDatabaseError(
            f"database {redact(url)} is stamped with schema revision '{revision}', which this "
            "orion does not know (another application's database, or a newer orion's)",
            "point ORION_DATABASE_URL at orion's database, or upgrade orion",
        )
    if revision is not None:
        return
    others = _other_tables(engine)
    if not others:
        return
    shown = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
    clashing = sorted(others & ORION_TABLES)
    if clashing:
        raise ForeignDatabaseError(
            f"database {redact(url)} has tables named like orion's ({', '.join(clashing)}) "
            "but no orion schema; orion left it unchanged",
            "point ORION_DATABASE_URL at an empty database (or another schema)",
        )
    if not alongside_other_tables:
        raise ForeignDatabaseError(
            f"database {redact(url)} has other tables ({shown}) and no orion schema; "
            "orion left it unchanged",
            "`orion db upgrade --alongside-other-tables` adds orion's tables beside them, or "
            "point ORION_DATABASE_URL at an empty database",
        )


def upgrade_url(url: str, alongside_other_tables: bool = False) -> tuple[str | None, str]:
    """Upgrade the schema of the database at ``url``; refuse a foreign one, change nothing.

    A new or empty SQLite file gets orion's schema; a PostgreSQL database with other
    applications' tables only with ``alongside_other_tables`` (and never one with a table
    named like orion's).
    """
    path = sqlite_path(url)
    with translated_errors(url):
        if path is not None:
            if files.inspect(path) is files.FileState.MISSING:
                create_sqlite(path)
            return upgrade(get_engine(url))
        engine = get_engine(url)
        check_server_schema(url, engine, current_revision(engine), alongside_other_tables)
        return upgrade(engine)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for memory databases and other dialects).

    >>> sqlite_path("sqlite:////tmp/o.db"), sqlite_path("sqlite://")
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
    than the rest of a first ``orion submit``. The file is private (0600) and so is a
    directory made for it (0700), whatever the umask. Returns False when someone else was
    first.
    """
    import os
    import uuid

    from sqlmodel import SQLModel

    import orion_cli.db.models  # noqa: F401  (registers the tables)

    files.make_private_dir(path.parent)
    scratch = path.with_name(f".{path.name}.new-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    files.create_private_file(scratch)  # SQLite gives its journal and WAL the same mode
    engine = _transactional_ddl(create_engine(f"sqlite:///{scratch}"))
    try:
        with engine.begin() as conn:
            SQLModel.metadata.create_all(conn)
            conn.execute(
                text(
                    "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                )
            )
            conn.execute(text("INSERT INTO alembic_version VALUES (:head)"), {"head": SCHEMA_HEAD})
            conn.execute(
                text("INSERT INTO orion_meta (key, value) VALUES ('instance_id', :v)"),
                {"v": uuid.uuid4().hex[:6]},
            )
        engine.dispose()
        try:
            os.link(scratch, path)
        except FileExistsError:
            return False
        return True
    finally:
        engine.dispose()
        scratch.unlink(missing_ok=True)


def _transactional_ddl(engine: Engine) -> Engine:
    """Make ``engine`` run DDL inside its transaction (Python's sqlite3 commits each
    ``CREATE`` on its own, one journal and sync per statement): a new database's schema is
    then written at once, 29 → 6 ms here (SQLAlchemy's pysqlite "transactional DDL" recipe)."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine


def ready_engine(url: str) -> Engine:
    """Return an engine whose schema is current: SQLite upgrades itself, PostgreSQL asks.

    A SQLite file is looked at read-only first: a missing one is created, an empty one gets
    the schema, a corrupt or foreign one is refused unchanged. On PostgreSQL nothing is
    ever created here (``orion db upgrade`` does that).
    """
    check_url(url)  # before any file is made for it (a URL option is no file name)
    path = sqlite_path(url)
    with translated_errors(url):
        if path is not None and files.inspect(path) is files.FileState.MISSING:
            try:
                create_sqlite(path)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create database file {path}: {exc.strerror or exc}",
                    "make its directory writable or point ORION_DATABASE_URL elsewhere",
                ) from None
        engine = get_engine(url)
        revision = current_revision(engine)
        if revision == SCHEMA_HEAD:
            return engine
        if path is not None:
            upgrade(engine)
            return engine
        check_server_schema(url, engine, revision)
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
        with translated_errors(url):
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
    finally:
        session.close()
