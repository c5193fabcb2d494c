"""Capture real squeue/sacct/sbatch/sinfo output for the parser tests (run on the dev cluster).

    scripts/slurm-up.sh && .venv/bin/python tests/data/slurm/capture.py

Takes ~2 minutes (one job must reach its 1-minute TIMEOUT) and rewrites the files next to this
script. The argv comes from orion_cli.schedulers.slurm_commands, so samples match what orion runs.
Samples named *handwritten* are not produced here (see their first lines).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from orion_cli.schedulers import slurm_commands as s

HERE = Path(__file__).parent


def sh(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def sbatch(work: Path, body: str, *extra: str) -> str:
    script = work / f"job{len(list(work.glob('*.sh')))}.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={work}/%j.out\n{body}\n")
    result = sh(["sbatch", "--parsable", *extra, str(script)])
    assert result.returncode == 0, result.stderr
    return s.parse_sbatch(result.stdout)


def state(job_id: str) -> str:
    return sh(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"]).stdout.strip()


def wait_for(job_id: str, wanted: set[str], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while state(job_id) not in wanted:
        assert time.monotonic() < end, f"job {job_id} stuck in {state(job_id)}"
        time.sleep(0.5)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="orion-capture-"))
    ids: dict[str, str] = {}
    ids["timeout"] = sbatch(work, "sleep 300", "-t", "1")
    ids["completed"] = sbatch(work, "exit 0")
    ids["failed_exit3"] = sbatch(work, "exit 3")
    ids["killed_signal9"] = sbatch(work, "kill -9 $$")
    ids["array"] = sbatch(work, "exit $(( SLURM_ARRAY_TASK_ID == 2 ? 3 : 0 ))", "--array=0-3")
    ids["name_with_pipe"] = sbatch(work, "exit 0", "--job-name=relax|Si 2x2")
    ids["held"] = sbatch(work, "exit 0", "-H")
    ids["held_array"] = sbatch(work, "exit 0", "-H", "--array=0-2")
    ids["begin_later"] = sbatch(work, "exit 0", "--begin=now+3600")
    ids["held_then_cancelled"] = sbatch(work, "exit 0", "-H")
    sh(["scancel", ids["held_then_cancelled"]])
    ids["cancelled_running"] = sbatch(work, "sleep 300")
    wait_for(ids["cancelled_running"], {"RUNNING"}, 30)
    sh(["scancel", ids["cancelled_running"]])
    wait_for(ids["cancelled_running"], {"CANCELLED"}, 30)
    ids["running"] = sbatch(work, "sleep 300")
    wait_for(ids["running"], {"RUNNING"}, 30)
    ids["pending_resources"] = sbatch(work, "sleep 300")
    wait_for(ids["timeout"], {"TIMEOUT"}, 150)
    time.sleep(3)  # let slurmdbd catch up

    all_ids = list(ids.values())
    (HERE / "jobs.json").write_text(json.dumps(ids, indent=1) + "\n")
    (HERE / "squeue.txt").write_text(sh(s.squeue_argv(all_ids)).stdout)
    (HERE / "sacct.txt").write_text(sh(s.sacct_argv(all_ids)).stdout)
    one = sh(s.squeue_argv(["999999"]))
    (HERE / "squeue_one_unknown.stderr").write_text(f"rc={one.returncode}\n{one.stderr}")
    many = sh(s.squeue_argv(["999998", "999999"]))
    (HERE / "squeue_many_unknown.txt").write_text(f"rc={many.returncode}\n{many.stdout}")
    bad = sh(["sbatch", "--parsable", "-p", "nosuch", "--wrap", "true"])
    (HERE / "sbatch_bad_partition.stderr").write_text(f"rc={bad.returncode}\n{bad.stderr}")
    (HERE / "sbatch.txt").write_text(f"{ids['completed']}\n")
    sh(["scontrol", "update", "PartitionName=long", "MaxTime=2-00:00:00"])
    (HERE / "sinfo_partitions.txt").write_text(sh(s.sinfo_partitions_argv()).stdout)
    sh(["scontrol", "update", "PartitionName=long", "MaxTime=INFINITE"])
    sh(["scancel", *all_ids])
    print(json.dumps(ids, indent=1))


if __name__ == "__main__":
    main()
