"""Script jobs and adopted jobs on the real cluster (the script scenario with a real TIMEOUT
is in test_timeouts_slurm.py, where it waits together with the other time-outs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import orion, poll_until_final


def sbatch(*args: str) -> str:
    return (
        subprocess.run(["sbatch", "--parsable", *args], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split(";")[0]
    )


@pytest.mark.slurm
def test_adopted_plain_sbatch_jobs_end_in_the_right_state(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    script = tmp_path / "plain.sbatch"
    script.write_text(
        "#!/bin/bash\n#SBATCH --time=00:02:00\n#SBATCH --mem=200M\nsleep 2\nexit ${1:-0}\n"
    )
    ok = sbatch(f"--chdir={tmp_path}", str(script))
    bad = sbatch(f"--chdir={tmp_path}", "--job-name=fails", str(script), "3")
    out = orion("adopt", ok, bad).stdout
    assert f"slurm job {ok} 'plain.sbatch'" in out and f"slurm job {bad} 'fails'" in out
    twice = orion("adopt", ok, expect=2)
    assert twice.output.count("\n") == 1 and "already tracked" in twice.output
    theirs = subprocess.run(
        ["sbatch", "--parsable", "--uid=nobody", "--chdir=/tmp", "--wrap", "true"],
        capture_output=True,
        text=True,
    )
    if theirs.returncode == 0:  # root may submit as another user: the refusal is checked
        refused = orion("adopt", theirs.stdout.strip(), expect=2).output
        assert "belongs to nobody" in refused and refused.count("\n") == 1
    ids = [int(line.split(":")[0]) for line in out.splitlines()]
    jobs = poll_until_final(ids, timeout_s=120)
    assert [(j["status"], j["exit_code"]) for j in jobs] == [("completed", 0), ("failed", 3)]
    assert jobs[0]["mem_mb"] == 200 and jobs[0]["walltime_s"] == 120
    assert (Path(jobs[0]["workdir"]) / "submitted.sbatch").read_text() == script.read_text()


@pytest.mark.slurm
def test_a_partition_the_cluster_lacks_is_refused_before_anything_is_written(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    script = tmp_path / "gpu.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --partition=nosuchgpu\ntrue\n")
    out = orion("submit", "--script", str(script), expect=2).output
    assert "partition 'nosuchgpu' does not exist" in out and out.count("\n") == 1
    assert not list(orion_home.rglob("*.db"))
