"""Defect 7: a retry holds SQLite's write lock while sbatch runs (up to the runner's limit).

A concurrent submit, cancel or poll must wait that long rather than fail with "database is
locked": SQLite's busy timeout has to outlast the longest scheduler command.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from orion_cli.db.session import get_engine
from orion_cli.runner import COMMAND_TIMEOUT_S


def test_the_busy_timeout_outlasts_a_hanging_sbatch(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'orion.db'}")
    with engine.connect() as connection:
        busy_ms = connection.execute(text("PRAGMA busy_timeout")).scalar_one()
    assert busy_ms / 1000 > COMMAND_TIMEOUT_S


def test_a_writer_waits_for_the_lock_instead_of_failing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orion.db'}"
    holder, waiter = get_engine(url), get_engine(url)
    with holder.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    locked, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # the retry's claim, then a slow sbatch
        with holder.begin() as connection:
            connection.execute(text("INSERT INTO t VALUES (1)"))
            locked.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=hold_the_lock)
    thread.start()
    assert locked.wait(timeout=30)
    threading.Timer(1.0, release.set).start()
    with waiter.begin() as connection:  # waits about 1 s, then writes
        connection.execute(text("INSERT INTO t VALUES (2)"))
    thread.join(timeout=30)
    with waiter.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
