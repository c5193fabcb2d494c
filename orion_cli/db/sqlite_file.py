"""Look at a SQLite file before orion writes to it: new, orion's own, foreign or corrupt.

Only the standard library's ``sqlite3`` is used, read-only (``mode=ro``), so that looking
never changes a byte of a file that turns out not to be orion's. Opening it through
SQLAlchemy would not do: orion's connections switch the file to WAL mode, which rewrites
its header.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from enum import Enum
from pathlib import Path
from urllib.parse import quote

from orion_cli.db import CORE_TABLES, KNOWN_REVISIONS
from orion_cli.errors import DatabaseError, ForeignDatabaseError

#: sqlite3 result codes that mean the file is damaged or is not a database at all
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
PRIVATE_FILE_MODE, PRIVATE_DIR_MODE = 0o600, 0o700


class FileState(Enum):
    MISSING = "missing"  # orion creates it
    EMPTY = "empty"  # no tables: orion builds its schema in it
    ORION = "orion"  # stamped with a revision orion knows, with orion's tables


def corrupt_error(path: Path) -> DatabaseError:
    return DatabaseError(
        f"database file {path} is corrupt or not SQLite",
        "restore it from a backup or point ORION_DATABASE_URL elsewhere",
    )


def is_corrupt(exc: BaseException) -> bool:
    """Tell whether a sqlite3 error (or SQLAlchemy's wrapper of one) means a damaged file."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(orig)
    return "malformed" in text or "not a database" in text


def read_only_connection(path: Path) -> sqlite3.Connection:
    """Open ``path`` read-only; the file is never created or changed (nor a FIFO waited on)."""
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError:
        regular = True  # missing or unreadable: sqlite3 says so
    if not regular:
        raise ForeignDatabaseError(
            f"database file {path} is not a regular file; orion does not open it",
            "point ORION_DATABASE_URL at a file (sqlite:///path/orion.db)",
        )
    return sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=ro", uri=True, timeout=30)


def inspect(path: Path) -> FileState:
    """Classify the SQLite file at ``path``; raise if orion must not touch it.

    A corrupt file (or one that is not SQLite) raises a DatabaseError (exit 1); another
    application's database, or one stamped by a newer orion, raises a ForeignDatabaseError
    (exit 2). Neither changes the file.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return FileState.MISSING
    except OSError as exc:
        raise DatabaseError(f"cannot read database file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):  # a FIFO would make the reader wait for ever
        raise ForeignDatabaseError(
            f"database file {path} is not a regular file; orion does not open it",
            "point ORION_DATABASE_URL at a file (sqlite:///path/orion.db)",
        )
    size = st.st_size
    if size == 0:
        return FileState.EMPTY
    if size < 100:  # shorter than SQLite's file header
        raise corrupt_error(path)
    # The file is read only through SQLite, never opened by Python itself: closing any other
    # descriptor of it would drop the locks this process's pooled connections hold on it
    # (POSIX), and another process closing its last connection would then delete the WAL
    # under them ("disk I/O error" in a long-lived `orion watch`, `wait` or notebook).
    try:
        conn = read_only_connection(path)
        try:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            revisions = (
                [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
                if "alembic_version" in tables
                else []
            )
        finally:
            conn.close()
    except sqlite3.Error as exc:
        if is_corrupt(exc):
            raise corrupt_error(path) from None
        raise DatabaseError(
            f"cannot read database file {path}: {exc}", "check its permissions, then `orion doctor`"
        ) from None
    return _classify(path, tables, revisions)


def _classify(path: Path, tables: set[str], revisions: list[str]) -> FileState:
    others = tables - {"alembic_version"}
    if not others and not revisions:
        return FileState.EMPTY
    if len(revisions) == 1 and revisions[0] in KNOWN_REVISIONS and CORE_TABLES <= tables:
        return FileState.ORION
    if revisions and revisions[0] not in KNOWN_REVISIONS:
        why = (
            f"it is stamped with schema revision '{revisions[0]}', which this orion does not "
            "know (another application's database, or a newer orion's)"
        )
    else:
        shown = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
        why = f"it has tables ({shown}) but no orion schema"
    raise ForeignDatabaseError(
        f"database file {path} is not an orion database: {why}; orion left it unchanged",
        "point ORION_DATABASE_URL at a new file (orion creates it) or at your orion database",
    )


def quick_check(path: Path) -> str:
    """Run ``PRAGMA quick_check`` read-only; return ``ok`` or SQLite's first complaint."""
    try:
        conn = read_only_connection(path)
        try:
            rows = [row[0] for row in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"corrupt or not SQLite ({exc})" if is_corrupt(exc) else str(exc)
    return (
        "ok"
        if rows == ["ok"]
        else f"corrupt: {rows[0]}"
        + (f" (and {len(rows) - 1} more problems)" if len(rows) > 1 else "")
    )


def writable_problem(path: Path) -> str | None:
    """Why orion could not write to the database at ``path`` (None when it can).

    SQLite writes the file and, beside it, its journal or WAL: both must be writable.
    """
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is read-only"
    directory = path.parent
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"its directory {directory} is read-only (SQLite writes its journal there)"
    return None


def make_private_dir(directory: Path) -> None:
    """Create ``directory`` (mode 0700 whatever the umask); an existing one keeps its mode."""
    if directory.is_dir():
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        return  # another orion made it first
    os.chmod(directory, PRIVATE_DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create an empty file at ``path`` readable and writable by its owner only (0600)."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
