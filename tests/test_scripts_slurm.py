"""`orion submit --script` on the real cluster: the script's own #SBATCH lines in force,
exit codes, a TIMEOUT retried with doubled time, and `orion progress` from inside the job."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FINAL, orion, orion_json, poll_until_final

PROGRESS = f"{sys.executable} -m orion_cli progress"


def sacct(job_id: str, fields: str) -> list[str]:
    out = subprocess.run(
        ["sacct", "-j", job_id, "-X", "-n", "-P", "-o", fields],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.strip().split("|")


@pytest.mark.slurm
def test_own_sbatch_lines_exit_codes_timeout_and_progress(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.chdir(tmp_path)
    ok = tmp_path / "ok.sbatch"
    ok.write_text(
        "#!/bin/bash\n#SBATCH --job-name=theirs\n#SBATCH --time=00:03:00\n"
        "#SBATCH --mem=300M\n#SBATCH --ntasks=1\n"
        f'{PROGRESS} 40 "SCF step 12"\n'
        f"{PROGRESS} --result energy_ev=-12.3 steps=12\n"
        'echo "ran in $PWD with $1"\n'
    )
    bad = tmp_path / "bad.sbatch"
    bad.write_text("#!/bin/bash\n#SBATCH --time=2\necho failing\nexit 3\n")
    slow = tmp_path / "slow.sbatch"
    slow.write_text("#!/bin/bash\n#SBATCH --time=1\nsleep 300\n")
    ids = {
        "ok": int(orion("submit", "--script", str(ok), "--", "arg1").stdout),
        "bad": int(orion("submit", "--script", str(bad)).stdout),
        "slow": int(
            orion("submit", "--script", str(slow), "--retries", "1", "--retry-delay", "1").stdout
        ),
    }
    first_slurm_ids = {
        key: orion_json("show", str(i))["scheduler_job_id"] for key, i in ids.items()
    }
    script_slurm_kept = subprocess.run(
        ["scontrol", "write", "batch_script", first_slurm_ids["ok"], "-"],
        capture_output=True,
        text=True,
    ).stdout
    deadline = time.monotonic() + 220
    while True:
        orion("poll", expect=None)
        jobs = {key: orion_json("show", str(i)) for key, i in ids.items()}
        if (
            jobs["ok"]["status"] in FINAL
            and jobs["bad"]["status"] in FINAL
            and jobs["slow"]["attempt"] == 2
        ):
            break
        assert time.monotonic() < deadline, {
            k: (j["status"], j["raw_state"]) for k, j in jobs.items()
        }
        time.sleep(2)

    assert script_slurm_kept == ok.read_text()  # SLURM got the script unchanged
    done = jobs["ok"]
    assert (done["status"], done["exit_code"], done["name"]) == ("completed", 0, "theirs")
    assert (done["walltime_s"], done["mem_mb"], done["ntasks"]) == (180, 300, 1)
    name, limit, mem, tasks = sacct(first_slurm_ids["ok"], "JobName,Timelimit,ReqMem,NTasks")
    assert name.startswith(f"orion-{ids['ok']}-") and name.endswith("-theirs")
    assert (limit, mem) == ("00:03:00", "300M")
    assert tasks in ("1", "")  # some sacct versions leave NTasks empty on the job's line
    out = (Path(done["workdir"]) / "attempt-1.out").read_text()
    assert out == f"ran in {tmp_path} with arg1\n"
    assert (done["current_step"], done["result"]["energy_ev"]) == ("SCF step 12", -12.3)
    assert done["result"]["extras"] == {"steps": 12}

    failed = jobs["bad"]
    assert (failed["status"], failed["failure_reason"], failed["exit_code"]) == (
        "failed",
        "exit_code",
        3,
    )
    assert sacct(first_slurm_ids["bad"], "State,ExitCode") == ["FAILED", "3:0"]

    retried = jobs["slow"]
    first = retried["attempts"][0]
    assert (first["reason"], first["raw_state"], first["walltime_s"]) == ("timeout", "TIMEOUT", 60)
    assert retried["walltime_s"] == 120
    second = retried["scheduler_job_id"]
    shown = subprocess.run(
        ["scontrol", "show", "job", second], capture_output=True, text=True, check=True
    ).stdout  # pending: sacct may not know it yet
    assert "TimeLimit=00:02:00" in shown.split()  # the script says 1 min; orion's --time wins
    orion("cancel", str(ids["slow"]))


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
