"""LocalScheduler specifics the contract does not cover: ids, output files, LOST, begin."""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

from orion_cli.schedulers.base import SubmitOptions
from orion_cli.schedulers.local import LocalScheduler
from orion_cli.states import FailureReason, JobStatus


def wait_final(scheduler: LocalScheduler, job_id: str, timeout_s: float = 10) -> None:
    end = time.monotonic() + timeout_s
    while not scheduler.query([job_id])[job_id].status.is_final and time.monotonic() < end:
        time.sleep(0.05)


def test_ids_are_unique_across_concurrent_submitters(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")

    def submit(_: int) -> str:
        return LocalScheduler(tmp_path / "state").submit(script, SubmitOptions(hold=True))

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(40)))
    assert len(set(ids)) == 40


def test_default_output_file_and_environment(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho $ORION_SCHEDULER $PWD\necho oops >&2\n")
    job_id = scheduler.submit(script)
    wait_final(scheduler, job_id)
    assert (tmp_path / f"local-{job_id}.out").read_text() == f"local {tmp_path}\noops\n"


def test_sbatch_output_and_error_patterns(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH -J relax\n#SBATCH --output=%x-%j.out\n#SBATCH --error=err.txt\n"
        "echo out; echo err >&2\n"
    )
    job_id = scheduler.submit(script)
    wait_final(scheduler, job_id)
    assert (tmp_path / f"relax-{job_id}.out").read_text() == "out\n"
    assert (tmp_path / "err.txt").read_text() == "err\n"
    assert scheduler.query([job_id])[job_id].name == "relax"


def test_vanished_process_is_lost(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsleep 30\n")
    job_id = scheduler.submit(script)
    record = json.loads((tmp_path / "state" / "local-jobs" / job_id / "job.json").read_text())
    os.killpg(record["pgid"], signal.SIGKILL)  # no exit record, no cancel marker
    wait_final(scheduler, job_id)
    info = scheduler.query([job_id])[job_id]
    assert (info.status, info.reason, info.raw_state) == (
        JobStatus.FAILED,
        FailureReason.LOST,
        "LOST",
    )


def test_begin_keeps_the_job_queued_until_then(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    job_id = scheduler.submit(script, SubmitOptions(begin=datetime.now() + timedelta(hours=1)))
    info = scheduler.query([job_id])[job_id]
    assert (info.status, info.pending_reason) == (JobStatus.QUEUED, "BeginTime")
    scheduler.cancel([job_id])
    assert scheduler.query([job_id])[job_id].status is JobStatus.CANCELLED


def test_array_throttle_is_honoured_and_tasks_see_their_index(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n#SBATCH --output=%A_%a.out\n"
        'echo "$SLURM_ARRAY_JOB_ID $SLURM_ARRAY_TASK_ID"; ls ../slots 2>/dev/null; sleep 0.3\n'
    )
    array_id = scheduler.submit_array(script, 4, throttle=1)
    tasks = [f"{array_id}_{i}" for i in range(4)]
    end = time.monotonic() + 20
    most_running = 0
    while time.monotonic() < end:
        answer = scheduler.query([array_id])
        running = sum(info.status is JobStatus.RUNNING for info in answer.values())
        most_running = max(most_running, running)
        if all(info.status.is_final for info in answer.values()):
            break
        time.sleep(0.05)
    assert sorted(answer) == tasks and most_running == 1
    assert (tmp_path / f"{array_id}_3.out").read_text().split() == [array_id, "3"]


def test_held_array_released_as_a_whole_and_found_by_name(tmp_path: Path) -> None:
    scheduler = LocalScheduler(tmp_path / "state")
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -J orion-4-relax\ntrue\n")
    array_id = scheduler.submit_array(script, 2, SubmitOptions(hold=True))
    assert scheduler.find_by_name(["orion-4-", "orion-40-"]) == {"orion-4-": array_id}
    scheduler.set_nice([array_id], 5)
    task_dir = tmp_path / "state" / "local-jobs" / f"{array_id}_1"
    record = json.loads((task_dir / "job.json").read_text())
    assert record["nice"] == 5 and record["hold"] is True
    scheduler.release([array_id])
    for task in (f"{array_id}_0", f"{array_id}_1"):
        wait_final(scheduler, task)
        assert scheduler.query([task])[task].status is JobStatus.COMPLETED
