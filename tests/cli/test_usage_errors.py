"""Bad input: one line naming the problem and the fix, exit 2, no row, no file, no sbatch."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion


@pytest.fixture
def sbatch_spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm: None) -> Path:
    """Put a wrapper named sbatch first on PATH: it logs each call, then runs the real one."""
    real = shutil.which("sbatch")
    bin_dir = tmp_path / "spy-bin"
    bin_dir.mkdir()
    log = tmp_path / "sbatch-calls.log"
    spy = bin_dir / "sbatch"
    spy.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{real}" "$@"\n')
    spy.chmod(spy.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("ORION_SLURM_BACKEND", "cli")  # the spy watches the command line
    return log


CU = str(EXAMPLES / "Cu.cif")
BAD_INPUTS = [
    (["missing.cif", "--engine", "emt"], "does not exist"),
    (["{unreadable}", "--engine", "emt"], "cannot read a structure"),
    ([CU, "--engine", "nosuch"], "unknown engine 'nosuch'"),
    ([CU, "--engine", "emt", "--walltime", "-5m"], "walltime '-5m' is negative"),
    ([CU, "--engine", "emt", "--walltime", "soon"], "is not a duration"),
    ([CU, "--engine", "emt", "--priority", "21"], "priority 21 is out of range"),
    ([CU, "--engine", "emt", "--priority", "-1"], "priority -1 is out of range"),
    ([CU, "--engine", "emt", "--mem", "lots"], "memory 'lots' is not a size"),
    ([CU, "--engine", "emt", "-p", "relax"], "is not key=value"),
    ([CU, "--engine", "emt", "-p", "nosuch=1"], "has no parameter 'nosuch'"),
    ([CU, "--engine", "emt", "--partition", "gpu"], "partition 'gpu' does not exist"),
    ([CU, "--engine", "emt", "--scheduler", "pbs"], "unknown scheduler 'pbs'"),
    ([str(EXAMPLES / "Si.cif"), "--engine", "emt"], "emt has no parameters for Si"),
]


@pytest.mark.slurm
@pytest.mark.parametrize("args, needle", BAD_INPUTS, ids=[n for _, n in BAD_INPUTS])
def test_bad_submit_input(
    args: list[str],
    needle: str,
    orion_home: Path,
    tmp_path: Path,
    sbatch_spy: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    unreadable = tmp_path / "garbage.cif"
    unreadable.write_text("this is not a crystal\n")
    args = [str(unreadable) if a == "{unreadable}" else a for a in args]
    result = orion("submit", *args, expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert "Traceback" not in result.output
    assert not sbatch_spy.exists()
    assert not (orion_home / "jobs").exists() or not any((orion_home / "jobs").iterdir())
    assert orion("ls", "--json").stdout.strip() == "[]"


def test_bad_lookups_exit_2(orion_home: Path) -> None:
    for args, needle in (
        (["show", "99"], "no job with id 99"),
        (["cancel", "99"], "no job with id 99"),
        (["ls", "--status", "done"], "unknown status 'done'"),
    ):
        result = orion(*args, expect=2)
        assert needle in result.stderr


def test_bad_config_is_one_line(orion_home: Path, tmp_path: Path) -> None:
    (tmp_path / "orion.toml").write_text("walltime = 5\n")
    result = orion("ls", expect=2)
    assert result.stderr.count("\n") == 1 and "unknown setting 'walltime'" in result.stderr


@pytest.mark.slurm
def test_spy_sees_a_good_submit(
    orion_home: Path, sbatch_spy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: a valid submit does reach sbatch through the spy."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    job_id = orion("submit", CU, "--engine", "mock", "-p", "duration_s=0").stdout.strip()
    assert sbatch_spy.read_text().count("job.sh") == 1
    orion("cancel", job_id)
