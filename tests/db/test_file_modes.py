"""A new SQLite database is private: orion.db 0600, a directory made for it 0700, any umask.

Reproduction of the hostile-input review (2026-11-30, section 11): with umask 022 the
database was 0644 in a 0755 data directory, so any local user could read every job.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run(args: list[str], umask: int, **env: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "orion_cli", *args],
        env={**os.environ, "ORION_SCHEDULER": "local", **env},
        preexec_fn=lambda: os.umask(umask),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
@pytest.mark.parametrize(
    "first", [["ls"], ["submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold"]]
)
def test_default_database_and_data_directory_are_private(
    umask: int, first: list[str], orion_home: Path
) -> None:
    run(first, umask)
    run(["ls"], umask)  # a second process opens it (WAL and shared-memory files appear)
    assert mode(orion_home) == 0o700
    assert mode(orion_home / "orion.db") == 0o600
    for sibling in orion_home.glob("orion.db-*"):
        assert mode(sibling) == 0o600, sibling


def test_an_existing_directory_keeps_its_mode(tmp_path: Path, orion_home: Path) -> None:
    shared = tmp_path / "group-share"
    shared.mkdir()
    shared.chmod(0o2770)
    run(["ls"], 0o022, ORION_DATABASE_URL=f"sqlite:///{shared / 'orion.db'}")
    assert mode(shared) == 0o2770 and mode(shared / "orion.db") == 0o600
    nested = tmp_path / "a" / "b" / "orion.db"
    run(["ls"], 0o000, ORION_DATABASE_URL=f"sqlite:///{nested}")
    assert mode(nested.parent) == 0o700 and mode(nested) == 0o600
