"""B8 (hostile-input probe 2026-12-06): `orion logs` followed a symbolic link (root printed
/etc/shadow), waited for ever on a FIFO and read /dev/zero into memory. It now reads only a
regular file, a MiB at a time, and refuses the rest in one line."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion_json

SECRET = "root:$6$secret-hash:20228:0:99999:7:::"


@pytest.fixture
def output_file(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "mock", "--hold")
    return Path(orion_json("show", str(job["id"]))["workdir"]) / "attempt-1.out"


def _logs() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orion_cli", "logs", "1"],
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO made the command wait for ever before
    )


def _refused(done: subprocess.CompletedProcess[str], says: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert SECRET not in done.stdout


def test_a_link_to_a_secret_is_not_followed(output_file: Path, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    output_file.symlink_to(secret)
    _refused(_logs(), "is a symbolic link")


def test_a_fifo_is_refused_not_waited_on(output_file: Path) -> None:
    os.mkfifo(output_file)
    _refused(_logs(), "is a FIFO")


def test_a_device_is_refused(output_file: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    os.mknod(output_file, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # a private /dev/zero
    _refused(_logs(), "is a device")


def test_a_large_output_is_printed_whole(output_file: Path) -> None:
    lines = [f"line {i} " + "x" * 100 for i in range(30_000)]  # 3.3 MB: several chunks
    output_file.write_text("\n".join(lines) + "\n")
    done = _logs()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == lines
