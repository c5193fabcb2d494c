"""Capture real output about job arrays, job control and names (run on the dev cluster).

    scripts/slurm-up.sh && .venv/bin/python tests/data/slurm/capture_arrays.py

Takes ~6 minutes: it waits MinJobAge (300 s) so that finished array tasks leave squeue and only
sacct knows them. Rewrites the ``arrays_*`` / ``control_*`` / ``names_*`` / ``config`` files next
to this script; argv comes from orion_cli.schedulers.slurm_commands.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import tempfile
import time
from pathlib import Path

from orion_cli.schedulers import slurm_commands as c

HERE = Path(__file__).parent


def sh(argv: list[str], input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=input_text, capture_output=True, text=True, check=False)


def sbatch(work: Path, body: str, *extra: str) -> str:
    script = work / f"job{len(list(work.glob('*.sh')))}.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --output={work}/%A_%a.out\n{body}\n")
    result = sh(["sbatch", "--parsable", *extra, str(script)])
    assert result.returncode == 0, result.stderr
    return c.parse_sbatch(result.stdout)


def states(job_id: str) -> set[str]:
    return set(sh(["squeue", "-h", "-r", "-t", "all", "-j", job_id, "-o", "%T"]).stdout.split())


def wait_for(job_id: str, wanted: set[str], timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not states(job_id) <= wanted:
        assert time.monotonic() < end, f"job {job_id} stuck in {states(job_id)}"
        time.sleep(0.5)


def rc_file(name: str, result: subprocess.CompletedProcess[str]) -> None:
    (HERE / name).write_text(f"rc={result.returncode}\n{result.stderr}")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="orion-capture-arrays-"))
    ids: dict[str, str] = {}
    # done: exits 3 on task 1; running: task 0 sleeps while the others wait for the throttle
    ids["array_done"] = sbatch(
        work, "exit $(( SLURM_ARRAY_TASK_ID == 1 ? 3 : 0 ))", "--array=0-2", "-J", "orion-17-relax"
    )
    wait_for(ids["array_done"], {"COMPLETED", "FAILED"}, 60)
    ids["array_held"] = sbatch(work, "true", "-H", "--array=0-3%2", "-J", "orion-1-scf")
    ids["array_running"] = sbatch(work, "sleep 300", "--array=0-2%1", "-J", "orion-170-md")
    wait_for(f"{ids['array_running']}_0", {"RUNNING"}, 30)
    ids["held_cancelled_array"] = sbatch(work, "true", "-H", "--array=0-1", "-J", "orion-2-x")
    sh(["scancel", ids["held_cancelled_array"]])
    ids["nice_held"] = sbatch(work, "true", "-H", "-J", "orion-3-nice")
    done = sh(c.scontrol_argv("uhold", [ids["array_done"]]))
    rc_file("control_hold_finished.stderr", done)
    unknown = sh(c.scontrol_argv("release", ["999999"]))
    rc_file("control_release_unknown.stderr", unknown)
    time.sleep(2)

    all_ids = list(ids.values())
    (HERE / "arrays_jobs.json").write_text(json.dumps(ids, indent=1) + "\n")
    (HERE / "arrays_squeue.txt").write_text(sh(c.squeue_argv(all_ids)).stdout)
    (HERE / "arrays_squeue_one_task.txt").write_text(
        sh(c.squeue_argv([f"{ids['array_held']}_2"])).stdout
    )
    (HERE / "arrays_sacct.txt").write_text(sh(c.sacct_argv(all_ids)).stdout)
    config = sh(c.scontrol_config_argv()).stdout
    (HERE / "scontrol_config.txt").write_text(config)
    names = sh(c.squeue_names_argv()).stdout
    (HERE / "names_squeue.txt").write_text(
        "".join(line for line in names.splitlines(True) if line.split("|")[0] in all_ids)
    )
    print(json.dumps(ids, indent=1), flush=True)
    # a filter (-u, -n, ...) cancelling a never-started array leaves one bare record
    user_cancel = sbatch(work, "true", "-H", "--array=0-9", "-J", "orion-array-4-x-10")
    sh(["scancel", "-u", getpass.getuser(), "-n", "orion-array-4-x-10"])
    time.sleep(2)
    (HERE / "arrays_user_cancel_squeue.txt").write_text(
        sh(c.squeue_argv([f"{user_cancel}_3"])).stdout
    )
    (HERE / "arrays_user_cancel_sacct.txt").write_text(sh(c.sacct_argv([user_cancel])).stdout)
    sh(["scancel", ids["array_running"], ids["array_held"], ids["nice_held"]])
    min_job_age_s = int(c.parse_config(config)["MinJobAge"].split()[0])
    time.sleep(min_job_age_s + 40)  # slurmctld purges finished jobs every ~30 s after MinJobAge
    purged = sh(c.squeue_argv([f"{ids['array_done']}_1"]))
    (HERE / "arrays_purged_squeue.stderr").write_text(f"rc={purged.returncode}\n{purged.stderr}")
    (HERE / "arrays_purged_sacct.txt").write_text(
        sh(c.sacct_argv([ids["array_done"], ids["held_cancelled_array"]])).stdout
    )
    names = sh(c.sacct_names_argv(3600)).stdout
    (HERE / "names_sacct.txt").write_text(
        "".join(
            line for line in names.splitlines(True) if c.array_job_id(line.split("|")[0]) in all_ids
        )
    )


if __name__ == "__main__":
    main()
