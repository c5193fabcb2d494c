"""Shared fixtures: an isolated ORION_HOME, databases (SQLite and real PostgreSQL), the CLI."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.testing
from typer.testing import CliRunner

# Typer's CliRunner builds the whole Click command tree on every invoke (~40 ms for orion's
# 33 commands, half of a CLI test's own CPU time); the tree never changes within a run, so
# it is built once per app (figures: CONTRIBUTING, "Test speed").
typer.testing._get_command = functools.cache(typer.testing._get_command)  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "structures"
PG_ADMIN_URL = os.environ.get(
    "ORION_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


#: the files whose tests take longest without the SLURM node (``--durations``), handed to
#: the workers first: a long file picked up last keeps one worker busy after the others have
#: finished. Not tests/test_timeouts_slurm.py: its real time limits hold the test cluster's
#: two CPUs for minutes, and SLURM tests started meanwhile (these files have some) queue
#: behind them.
LONGEST_FIRST = (
    "tests/test_examples_studies.py",
    "tests/engines/test_ase_restart.py",
    "tests/test_docs_examples.py",
    "tests/test_poison.py",
    "tests/test_packing.py",
    "tests/test_packing_fast.py",
    "tests/daily/test_poll_loop_and_follow.py",
    "tests/services/test_dependencies.py",
    "tests/db/test_file_modes.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files of ``LONGEST_FIRST`` first, in that order; the rest as collected (a
    stable sort: the tests of a file keep their order)."""
    assert all((REPO / name).is_file() for name in LONGEST_FIRST), "LONGEST_FIRST: a file moved"
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


def need(condition: bool, what: str) -> None:
    """Skip when a real component is missing on a developer machine; fail in CI."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (.ci/run sets it up)")
    pytest.skip(f"{what} not available here")


@pytest.fixture
def orion_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point orion at a fresh home (SQLite file, job dirs, local scheduler state)."""
    for key in list(os.environ):
        if key.startswith("ORION_") and key != "ORION_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)
    home = tmp_path / "orion-home"
    monkeypatch.setenv("ORION_HOME", str(home))
    monkeypatch.setenv("ORION_MIN_QUERY_INTERVAL_S", "0")  # tests poll in quick succession
    monkeypatch.setenv("ORION_WAIT_INTERVAL_S", "0.2")  # and wait in short steps
    monkeypatch.chdir(tmp_path)
    return home


def _pg_admin():  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        with _pg_admin():
            pass
    except Exception as exc:  # noqa: BLE001
        need(False, f"PostgreSQL at {PG_ADMIN_URL} ({type(exc).__name__})")
    return PG_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"orion_test_{uuid.uuid4().hex[:10]}"
    with _pg_admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base = postgres_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    from orion_cli.db.session import get_engine

    get_engine(f"{base}/{name}").dispose()
    get_engine.cache_clear()
    with _pg_admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Each database orion supports, selected the way a user does: ORION_DATABASE_URL."""
    if request.param == "sqlite":
        url = f"sqlite:///{orion_home / 'orion.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        from orion_cli.db.session import upgrade_url

        upgrade_url(url)
    monkeypatch.setenv("ORION_DATABASE_URL", url)
    return url


@pytest.fixture
def slurm() -> None:
    need(shutil.which("sbatch") is not None, "SLURM (scripts/slurm-up.sh)")


SQLITE_LOCAL = pytest.param(("sqlite", "local"), id="sqlite-local")
#: the deterministic scheduler running every job it may start, in the test's process
SQLITE_TEST = pytest.param(("sqlite", "test"), id="sqlite-test")
POSTGRES_LOCAL = pytest.param(
    ("postgres", "local"), id="postgres-local", marks=pytest.mark.postgres
)
POSTGRES_SLURM = pytest.param(
    ("postgres", "slurm"), id="postgres-slurm", marks=[pytest.mark.postgres, pytest.mark.slurm]
)
#: the two ends of what orion supports: a laptop, and a cluster's group database
BACKENDS = [SQLITE_LOCAL, POSTGRES_SLURM]
#: studies: their logic on the fast deterministic scheduler, the real path on SLURM
STUDY_BACKENDS = [SQLITE_TEST, POSTGRES_SLURM]


def use_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point orion at ``request.param`` = (database, scheduler), as a user does: a fresh
    PostgreSQL database (upgraded) or the home's SQLite file; the local scheduler or the real
    cluster. Returns the scheduler's name. For a module's ``backend`` fixture with
    ``params=BACKENDS``, or ``indirect`` parametrization."""
    from tests.helpers import orion

    database, scheduler = request.param
    if database == "postgres":
        monkeypatch.setenv("ORION_DATABASE_URL", request.getfixturevalue("postgres_url"))
        orion("db", "upgrade")
    if scheduler == "slurm":
        request.getfixturevalue("slurm")
    if scheduler == "test":
        use_test_scheduler(monkeypatch)
    monkeypatch.setenv("ORION_SCHEDULER", scheduler)
    return str(scheduler)


def use_test_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run jobs with the deterministic scheduler in auto mode: each query first runs, in this
    process, every job that may start (orion_cli/schedulers/scripted.py)."""
    from orion_cli.schedulers import TEST_SCHEDULER, TEST_SCHEDULER_VARIABLE

    monkeypatch.setenv(TEST_SCHEDULER_VARIABLE, "auto")
    monkeypatch.setenv("ORION_SCHEDULER", TEST_SCHEDULER)


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


def empty_schema(engine) -> None:  # type: ignore[no-untyped-def]
    """Drop every orion table and Alembic's stamp, whatever a fixture made: start from nothing.

    The tables come from the models, so a new table needs no edit here.
    """
    from sqlalchemy import text
    from sqlmodel import SQLModel

    import orion_cli.db.models  # noqa: F401  (registers the tables)

    SQLModel.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
