"""`orion adopt` with SLURM's answers replayed from captured real output."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from orion_cli.config import load_settings
from orion_cli.runner import CommandResult
from orion_cli.schedulers.slurm_adopt import parse_scontrol_job
from orion_cli.services.submission.adopt import adopt

DATA = Path(__file__).parent.parent / "data"

PLAIN = (DATA / "slurm" / "scontrol_show_job_plain.txt").read_text()
ARRAY = (DATA / "slurm" / "scontrol_show_job_array.txt").read_text()
SCRIPT = "#!/bin/bash\n#SBATCH --job-name=plain\n#SBATCH --time=00:02:00\n"


def replay(scontrol: str, user: str | None = None):  # noqa: ANN201
    if user:
        scontrol = scontrol.replace("UserId=root(0)", f"UserId={user}(1000)")

    def runner(
        argv: Sequence[str], *, input_text: str | None = None, timeout_s: float = 60.0
    ) -> CommandResult:
        out = {"show": scontrol, "write": SCRIPT}.get(argv[1], "")
        return CommandResult(tuple(argv), 0, out, "", 0.0)

    return runner


def test_captured_scontrol_line_is_read() -> None:
    job = parse_scontrol_job(PLAIN)
    assert job is not None
    assert (job.scheduler_job_id, job.name, job.user, job.state) == (
        "1783",
        "plain",
        "root",
        "COMPLETED",
    )
    assert dict(job.resources.values) == {
        "walltime_s": 120,
        "mem_mb": 200,
        "nodes": 1,
        "ntasks": 1,
        "cpus_per_task": 1,
        "partition": "debug",
        "account": "root",
        "qos": "normal",
    }
    assert job.script_path == "/tmp/sc-adopt/plain.sbatch" and not job.array
    array = parse_scontrol_job(ARRAY)
    assert array is not None and array.array


def test_adopt_records_once_and_refuses_the_rest(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orion_cli.services.submission.adopt.current_user", lambda: "root")
    monkeypatch.setattr(
        "orion_cli.services.admin.group.current_user", lambda: "root", raising=False
    )
    settings = load_settings()
    done = adopt(settings, ["1783"], runner=replay(PLAIN))
    assert len(done.ids) == 1 and done.errors == []
    again = adopt(settings, ["1783", "1783"], runner=replay(PLAIN))
    assert again.ids == [] and again.errors == [
        "job 1783 is already tracked as orion job 1 — nothing recorded"
    ]
    other = adopt(settings, ["1783"], runner=replay(PLAIN.replace("1783", "1790"), "alice"))
    assert other.errors == ["job 1790 belongs to alice, not to you (root) — nothing recorded"]
    array = adopt(settings, ["1796"], runner=replay(ARRAY))
    assert "job array" in array.errors[0]
    bad = adopt(settings, ["12_3", "x"], runner=replay(""))
    assert len(bad.errors) == 2 and all("not a SLURM job id" in e for e in bad.errors)
    from orion_cli.services.queries.show import show_job

    job = show_job(settings, done.ids[0])
    assert (job["status"], job["scheduler_job_id"], job["walltime_s"], job["mem_mb"]) == (
        "queued",
        "1783",
        120,
        200,
    )
    assert (Path(job["workdir"]) / "submitted.sbatch").read_text() == SCRIPT
    assert job["script"]["adopted"] is True and job["max_retries"] == 0
