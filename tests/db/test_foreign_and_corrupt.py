"""Databases that are not orion's are refused unchanged; damaged SQLite files get one line.

Reproductions of the hostile-input review (2026-11-30, section 10): before, `orion ls` on
another application's SQLite file created orion's tables in it, a clashing `job` table left
an empty `alembic_version` behind, an unknown revision was an internal error, and a damaged
file printed SQL.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

READ_AND_WRITE = [
    ["ls"],
    ["ls", "--json"],
    ["poll"],
    ["show", "1"],
    ["db", "upgrade"],
    ["submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--scheduler", "local"],
]


def snapshot(directory: Path) -> dict[str, str]:
    """Every file in ``directory`` with its checksum (a new journal or WAL file shows too)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def make_sqlite(path: Path, *statements: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path


FOREIGN = {
    "another app's tables": (
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO users (name) VALUES ('ada')",
    ),
    "a clashing job table": (
        "CREATE TABLE job (id INTEGER PRIMARY KEY, owner TEXT)",
        "INSERT INTO job (owner) VALUES ('payroll')",
    ),
    "an unknown alembic revision": (
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('ae1027a6acf')",
        "CREATE TABLE widgets (id INTEGER PRIMARY KEY)",
    ),
    "a known revision without orion's tables": (
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('0001')",
        "CREATE TABLE invoices (id INTEGER PRIMARY KEY)",
    ),
    "an empty alembic_version beside other tables": (
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "CREATE TABLE users (id INTEGER PRIMARY KEY)",
    ),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_a_foreign_sqlite_file_is_refused_and_left_byte_identical(
    case: str, orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_sqlite(tmp_path / "other" / "app.db", *FOREIGN[case])
    before = snapshot(db.parent)
    monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{db}")
    for args in READ_AND_WRITE:
        result = orion(*args, expect=2)
        assert result.stderr.count("\n") == 1, (args, result.stderr)
        assert str(db) in result.stderr and "not an orion database" in result.stderr
        assert "ORION_DATABASE_URL" in result.stderr and "Traceback" not in result.output
    result = orion("doctor", expect=1)
    assert "not an orion database" in result.stdout
    assert snapshot(db.parent) == before


def test_an_unknown_revision_is_named(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_sqlite(tmp_path / "app.db", *FOREIGN["an unknown alembic revision"])
    monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{db}")
    assert "revision 'ae1027a6acf'" in orion("ls", expect=2).stderr


def test_missing_and_empty_files_still_become_orion_databases(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    no_tables = make_sqlite(tmp_path / "no-tables.db", "PRAGMA user_version = 0")
    for db in (tmp_path / "missing" / "new.db", empty, no_tables):
        monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{db}")
        assert orion_json("ls") == []
        assert db.stat().st_size > 0


def _orion_db(path: Path) -> Path:
    from orion_cli.db.session import create_sqlite

    assert create_sqlite(path)
    return path


def _scribble(path: Path, offset: int, size: int | None = None) -> None:
    """Overwrite ``size`` bytes (default: to the end) from ``offset`` with random bytes."""
    data = bytearray(path.read_bytes())
    end = len(data) if size is None else offset + size
    data[offset:end] = os.urandom(end - offset)
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "random bytes": lambda p: p.write_bytes(os.urandom(20_000)),
    "bad header": lambda p: _scribble(_orion_db(p), 0, 16),
    "scribbled pages": lambda p: _scribble(_orion_db(p), 4096),  # all but the first page
    "truncated to a header": lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_sqlite_file_is_one_line_and_exit_1(
    case: str, orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "orion.db"
    CORRUPTIONS[case](db)
    monkeypatch.setenv("ORION_DATABASE_URL", f"sqlite:///{db}")
    expected = (
        f"error: database file {db} is corrupt or not SQLite — restore it from a "
        "backup or point ORION_DATABASE_URL elsewhere\n"
    )
    for args in READ_AND_WRITE:
        result = orion(*args, expect=1)
        assert result.stderr == expected, (args, result.stderr)
    checks = {c["name"]: c for c in orion_json_doctor()}
    assert not checks["database integrity"]["ok"]


def orion_json_doctor() -> list[dict[str, object]]:
    import json

    return json.loads(orion("doctor", "--json", expect=1).stdout)


def test_corrupt_file_from_a_real_process_prints_no_sql(orion_home: Path, tmp_path: Path) -> None:
    """The console script as users run it: one line on stderr, nothing of the SQL."""
    db = tmp_path / "orion.db"
    CORRUPTIONS["scribbled pages"](db)
    env = {**os.environ, "ORION_DATABASE_URL": f"sqlite:///{db}"}
    for args in (["ls"], ["poll"], ["show", "1"]):
        out = subprocess.run(
            [sys.executable, "-m", "orion_cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
        assert "corrupt or not SQLite" in out.stderr and "SELECT" not in out.stderr


def _pg_tables(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        return {
            n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]  # type: ignore[index]
            for n in sorted(names)
        }


def _pg_run(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.mark.postgres
def test_postgres_with_other_tables_is_changed_only_when_asked(
    orion_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pg_run(
        postgres_url,
        "CREATE TABLE users (id serial PRIMARY KEY, name text)",
        "INSERT INTO users (name) VALUES ('ada')",
    )
    monkeypatch.setenv("ORION_DATABASE_URL", postgres_url)
    before = _pg_tables(postgres_url)
    for args in (["ls"], ["poll"], ["show", "1"], ["db", "upgrade"]):
        result = orion(*args, expect=2)
        assert "other tables (users)" in result.stderr and result.stderr.count("\n") == 1
        assert "--alongside-other-tables" in result.stderr
    assert "other tables (users)" in orion("doctor", expect=1).stdout
    assert _pg_tables(postgres_url) == before
    orion("db", "upgrade", "--alongside-other-tables")
    assert orion_json("ls") == []
    after = _pg_tables(postgres_url)
    assert after["users"] == 1 and {"job", "job_event", "alembic_version"} <= set(after)


@pytest.mark.postgres
def test_postgres_clashing_table_or_unknown_revision_is_refused(
    orion_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_DATABASE_URL", postgres_url)
    _pg_run(postgres_url, "CREATE TABLE job (id serial PRIMARY KEY, owner text)")
    before = _pg_tables(postgres_url)
    result = orion("db", "upgrade", "--alongside-other-tables", expect=2)
    assert "tables named like orion's (job)" in result.stderr
    assert _pg_tables(postgres_url) == before
    _pg_run(
        postgres_url,
        "DROP TABLE job",
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)",
        "INSERT INTO alembic_version VALUES ('ae1027a6acf')",
    )
    for args in (["ls"], ["db", "upgrade"], ["db", "upgrade", "--alongside-other-tables"]):
        result = orion(*args, expect=2)
        assert "revision 'ae1027a6acf'" in result.stderr, (args, result.stderr)
