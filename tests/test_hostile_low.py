"""Low items of the hostile-input probe of 2026-12-06 (B12, B13, B15, B23, B25, B29): each
gave a traceback, a hang or a wrong answer before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import orion


def _progress(*args: str, job_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orion_cli", "progress", *args],
        env={**os.environ, "ORION_JOB_DIR": str(job_dir), "ORION_ATTEMPT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_b15_progress_in_an_unwritable_job_dir_is_one_line(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "events.jsonl").mkdir()  # appending fails with an OSError, even for root
    done = _progress("50", "step", job_dir=job_dir)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("warning: orion progress not recorded")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("word", ["1_0", "٥٠", "５0"])
def test_b29_progress_takes_only_plainly_written_numbers(tmp_path: Path, word: str) -> None:
    done = _progress(word, job_dir=tmp_path)
    assert done.returncode == 2 and "is not a percentage" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("flag", "value"), [("--walltime", "５m"), ("--mem", "４G"), ("--walltime", "1_0m")]
)
def test_b29_resources_take_only_ascii_digits(orion_home: Path, flag: str, value: str) -> None:
    from tests.conftest import EXAMPLES

    done = orion("submit", str(EXAMPLES / "Cu.cif"), "-e", "mock", flag, value, expect=2)
    assert "internal error" not in done.stderr


@pytest.mark.parametrize(
    "sweep",
    ["seed=-1e308:1e308:1", "duration_s=1e308:-1e308:-1", "seed=1:2:1e-300", "seed=1_0,20"],
)
def test_b12_b29_sweeps_are_refused_in_one_line(sweep: str) -> None:
    from orion_cli.errors import UsageError
    from orion_cli.services.converge import parse_sweep

    with pytest.raises(UsageError) as caught:
        parse_sweep(sweep)
    assert len(caught.value.one_line()) < 200  # not a 300-digit count
