"""B10 (hostile-input probe 2026-12-06): sbatch takes any unambiguous prefix of a long option,
so `#SBATCH --arr=1-3` made a job array past orion's refusal of `--array`; the finished array
was then declared lost and run again (4 runs in all). orion reads options as sbatch does."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import orion, orion_json


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")


@pytest.mark.parametrize("line", ["--arr=1-3", "--arra 1-3", "--array=1-3", "-a 1-3"])
def test_an_abbreviated_array_option_is_refused(local: None, tmp_path: Path, line: str) -> None:
    script = tmp_path / "array3.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH {line}\n#SBATCH -t 1\necho\n")
    done = orion("submit", "--script", str(script), "--hold", expect=2)
    assert "array" in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert orion_json("ls") == []


def test_an_ambiguous_option_is_refused(local: None, tmp_path: Path) -> None:
    script = tmp_path / "amb.sh"
    script.write_text("#!/bin/bash\n#SBATCH --gpus-per=1\necho\n")
    done = orion("submit", "--script", str(script), expect=2)
    assert "'--gpus-per' is ambiguous in sbatch" in done.stderr


def test_the_local_backend_reads_abbreviations_as_sbatch_does() -> None:
    from orion_cli.schedulers.local_launch import read_sbatch_options

    text = "#!/bin/bash\n#SBATCH --out=o-%j.log\n#SBATCH --err=e.log\n#SBATCH --job=x\n"
    assert read_sbatch_options(text) == {"output": "o-%j.log", "error": "e.log", "job-name": "x"}
