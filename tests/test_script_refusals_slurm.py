"""``--script`` jobs sbatch can never accept are refused at submit (issue 23, B22).

The reference is sbatch itself: ``sbatch --test-only`` on the real cluster refuses each
script (nothing is queued), and ``orion submit --script`` refuses it in one line, exit 2,
without recording a job; the boundary case both accept.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import orion

BAD = {
    "crlf.sh": ("#!/bin/bash\r\n#SBATCH -t 1\r\necho hi\r\n", "DOS line breaks"),
    "noshebang.sh": ("#SBATCH -t 1\necho hi\n", "does not start with '#!'"),
    "comment.sh": (
        "#!/bin/bash\n#SBATCH --comment=" + "x" * (1024 * 1024 - 40) + "\necho hi\n",
        "#SBATCH --comment is 1,048,536 characters; SLURM accepts at most 1,024",
    ),
    "name.sh": ("#!/bin/bash\n#SBATCH -J " + "n" * 1025 + "\necho hi\n", "--job-name is 1,025"),
    "out.sh": ("#!/bin/bash\n#SBATCH -o /tmp/" + "o" * 4092 + "\necho hi\n", "at most 4,096"),
}
#: at the limits: sbatch accepts these
GOOD = "#!/bin/bash\n#SBATCH -t 1\n#SBATCH --comment=" + "c" * 1024 + "\n#SBATCH -o /tmp/x\ntrue\n"


def sbatch_test_only(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sbatch", "--test-only", str(path)], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slurm
@pytest.mark.parametrize("name", sorted(BAD))
def test_a_script_sbatch_always_refuses_is_refused_at_submit(
    name: str, orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    text, needle = BAD[name]
    path = tmp_path / name
    path.write_text(text, newline="")
    sbatch = sbatch_test_only(path)
    assert sbatch.returncode != 0 and "to start at" not in sbatch.stderr, sbatch.stderr
    result = orion("submit", "--script", str(path), expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines
    assert orion("ls", "--json").stdout.strip() == "[]"


@pytest.mark.slurm
def test_values_at_the_limits_pass_both(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    path = tmp_path / "good.sh"
    path.write_text(GOOD)
    sbatch = sbatch_test_only(path)
    assert sbatch.returncode == 0 and "to start at" in sbatch.stderr, sbatch.stderr
    assert orion("submit", "--script", str(path), "--dry-run").stdout.startswith("sbatch ")
