"""A long-lived orion process (`orion watch`, `orion wait`, a notebook) keeps a pooled SQLite
connection while other orion processes (cron's `orion poll`, a `cancel` in another shell)
open the same file, write and exit. Reading the file outside SQLite and closing it dropped
this process's POSIX locks, so an exiting process took itself for the last one and removed
the WAL under the pool: its writes were lost ([7, 10, 10] here) or the next statement failed
with "disk I/O error"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json

CU = str(EXAMPLES / "Cu.cif")


def test_a_pooled_connection_survives_another_process_exiting(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    ids = orion_json("submit", CU, CU, CU, "-e", "mock", "--hold")["ids"]
    for job_id in ids:  # this process writes; another writes and exits; and again
        other = subprocess.run(
            [sys.executable, "-m", "orion_cli", "priority", "7", str(job_id)],
            capture_output=True,
            text=True,
            env=dict(os.environ),
        )
        assert other.returncode == 0, other.stderr
        orion("cancel", str(job_id))
        assert orion_json("show", str(job_id))["status"] == "cancelled"
    assert [orion_json("show", str(i))["priority"] for i in ids] == [7, 7, 7]
