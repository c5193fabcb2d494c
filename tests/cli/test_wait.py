"""`orion wait` and `submit --wait`: exit codes, timeout, and the rate it asks SLURM at.

The CLI runs as a real subprocess, as in a script or an sbatch wrapper. The SLURM test
puts logging wrappers for squeue and sacct on PATH: the times they were really run are
the reference for "never one squeue per second", not orion's own counters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion_json

CU = str(EXAMPLES / "Cu.cif")


def run(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orion_cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env or dict(os.environ),
    )


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def test_wait_exit_codes_and_summary(database_url: str, local: Path) -> None:
    good = orion_json("submit", CU, "-e", "mock", "-p", "duration_s=0.5", "--tag", "w")["ids"]
    bad = orion_json(
        "submit",
        CU,
        "-e",
        "mock",
        "-p",
        "duration_s=0.5",
        "-p",
        "fail=true",
        "--retries",
        "0",
        "--tag",
        "w",
    )["ids"]
    other = orion_json("submit", CU, "-e", "mock", "--hold", "--tag", "other")["ids"]
    done = run("wait", "--tag", "w")
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    # the reference: what `show` says after the wait, not wait's own words
    shown = {i: orion_json("show", str(i)) for i in good + bad + other}
    assert shown[good[0]]["status"] == "completed"
    assert shown[bad[0]]["status"] == "failed" and shown[bad[0]]["next_attempt_at"] is None
    assert shown[other[0]]["status"] == "queued"  # another tag: not waited for
    reason = shown[bad[0]]["failure_reason"]
    assert done.stderr.strip().splitlines()[-1] == f"1 completed, 1 failed ({reason})"
    ok = run("wait", str(good[0]), "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["all_completed"] and [j["id"] for j in data["jobs"]] == good
    run("cancel", str(other[0]))


def test_wait_times_out_and_names_what_is_left(local: Path) -> None:
    held = orion_json("submit", CU, "-e", "mock", "--hold")["ids"]
    started = time.monotonic()
    result = run("wait", str(held[0]), "--timeout", "2s")
    elapsed_s = time.monotonic() - started
    assert result.returncode == 1
    assert 2 <= elapsed_s < 15, elapsed_s
    assert result.stderr.strip().splitlines()[-1] == (
        "timed out after 2s: 1 of 1 jobs have not ended (1 queued)"
    )
    assert orion_json("show", str(held[0]))["status"] == "queued"
    run("cancel", str(held[0]))


@pytest.mark.parametrize(
    "args, needle",
    [
        (["wait"], "no jobs named"),
        (["wait", "12_3"], "'12_3' is not an orion job id"),
        (["wait", "999"], "no job with id 999"),
        (["wait", "--timeout", "soon", "1"], "--timeout"),
    ],
)
def test_wait_bad_input_is_one_line(args: list[str], needle: str, local: Path) -> None:
    orion_json("submit", CU, "-e", "mock", "-p", "duration_s=0")
    result = run(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_wait_for_a_filter_that_matches_nothing(local: Path) -> None:
    result = run("wait", "--tag", "nothing-here")
    assert result.returncode == 0
    assert "nothing to wait for" in result.stderr


@pytest.mark.slurm
def test_wait_asks_slurm_at_most_once_per_interval(
    slurm: None, orion_home: Path, tmp_path: Path
) -> None:
    """Five jobs, min_query_interval_s = 3: the real squeue calls are ≥ 3 s apart."""
    shims = tmp_path / "bin"
    shims.mkdir()
    log = tmp_path / "calls.log"
    for name in ("squeue", "sacct"):
        real = shutil.which(name)
        assert real
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho {name} $(date +%s.%N) >> {log}\nexec {real} "$@"\n')
        shim.chmod(0o755)
    env = {
        **os.environ,
        "ORION_SCHEDULER": "slurm",
        "ORION_MIN_QUERY_INTERVAL_S": "3",
        "ORION_WAIT_INTERVAL_S": "1",
        "PATH": f"{shims}:{os.environ['PATH']}",
    }
    submitted = run("submit", *[CU] * 5, "-e", "mock", "-p", "duration_s=6", "--json", env=env)
    ids = json.loads(submitted.stdout)["ids"]
    started = time.monotonic()
    result = run("wait", *map(str, ids), "--json", env=env, timeout_s=300)
    elapsed_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["all_completed"]
    assert all(orion_json("show", str(i))["status"] == "completed" for i in ids)
    squeue_at = [
        float(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("squeue")
    ]
    assert len(squeue_at) >= 2, (squeue_at, elapsed_s)
    gaps = [b - a for a, b in zip(squeue_at, squeue_at[1:], strict=False)]
    assert min(gaps) >= 2.9, gaps  # one squeue per cycle, cycles ≥ 3 s apart
    assert len(squeue_at) <= elapsed_s / 3 + 2, (len(squeue_at), elapsed_s)
