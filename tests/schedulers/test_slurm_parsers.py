"""Pure tests of the SLURM argv builders and parsers, on output captured from Slurm 22.05."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from orion_cli.errors import SchedulerError
from orion_cli.runner import CommandResult
from orion_cli.schedulers import slurm_cli as s
from orion_cli.schedulers.base import SubmitOptions
from orion_cli.states import FailureReason, JobStatus

DATA = Path(__file__).parents[1] / "data" / "slurm"
IDS: dict[str, str] = json.loads((DATA / "jobs.json").read_text())


def sample(name: str) -> str:
    """Read a captured sample without its comment lines."""
    lines = (DATA / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


def captured_result(name: str, argv: Sequence[str]) -> CommandResult:
    """Turn a ``rc=N`` + stderr sample into a CommandResult."""
    first, _, rest = (DATA / name).read_text().partition("\n")
    return CommandResult(tuple(argv), int(first.removeprefix("rc=")), "", rest, 0.0)


SQUEUE = s.parse_squeue(sample("squeue.txt"))
SACCT = s.parse_sacct(sample("sacct.txt"))

# sample, status, reason, exit code, signal (None where squeue/sacct do not say)
EXPECTED = [
    ("completed", JobStatus.COMPLETED, None, 0, 0),
    ("failed_exit3", JobStatus.FAILED, FailureReason.EXIT_CODE, 3, 0),
    ("killed_signal9", JobStatus.FAILED, FailureReason.EXIT_CODE, 0, 9),
    ("timeout", JobStatus.FAILED, FailureReason.TIMEOUT, 0, None),
    ("cancelled_running", JobStatus.CANCELLED, None, 0, None),
    ("held_then_cancelled", JobStatus.CANCELLED, None, 0, 0),
    ("held", JobStatus.QUEUED, None, None, None),
    ("begin_later", JobStatus.QUEUED, None, None, None),
    ("running", JobStatus.RUNNING, None, None, None),
]


@pytest.mark.parametrize("parsed", [SQUEUE, SACCT], ids=["squeue", "sacct"])
@pytest.mark.parametrize(("key", "status", "reason", "exit_code", "signal"), EXPECTED)
def test_captured_states_map(parsed, key, status, reason, exit_code, signal) -> None:
    info = parsed[IDS[key]]
    assert (info.status, info.reason) == (status, reason)
    if exit_code is not None:
        assert info.exit_code == exit_code
    if signal is not None and parsed is SACCT:
        assert info.signal == signal


def test_squeue_reports_signal_of_killed_and_cancelled_jobs() -> None:
    assert SQUEUE[IDS["killed_signal9"]].signal == 9
    assert SQUEUE[IDS["cancelled_running"]].signal == 15
    assert SQUEUE[IDS["timeout"]].raw_state == "TIMEOUT"


def test_sacct_keeps_cancelled_by_uid_as_raw_state() -> None:
    assert SACCT[IDS["cancelled_running"]].raw_state == "CANCELLED by 0"


def test_pending_reason_only_for_queued_jobs() -> None:
    assert SQUEUE[IDS["held"]].pending_reason == "JobHeldUser"
    assert SQUEUE[IDS["begin_later"]].pending_reason == "BeginTime"
    assert SACCT[IDS["begin_later"]].pending_reason == "BeginTime"
    assert SQUEUE[IDS["held_then_cancelled"]].pending_reason is None
    assert SQUEUE[IDS["completed"]].exit_code == 0
    assert SQUEUE[IDS["running"]].exit_code is None


def test_array_tasks_are_listed_one_by_one() -> None:
    parent = IDS["array"]
    tasks = {job_id: info for job_id, info in SQUEUE.items() if job_id.startswith(f"{parent}_")}
    assert sorted(tasks) == [f"{parent}_{n}" for n in range(4)]
    assert tasks[f"{parent}_2"].exit_code == 3
    assert SACCT[f"{parent}_2"].status is JobStatus.FAILED
    assert SQUEUE[f"{IDS['held_array']}_1"].status is JobStatus.QUEUED
    assert SACCT[f"{IDS['held_array']}_[0-2]"].pending_reason == "JobHeldUser"


def test_job_name_may_contain_the_separator() -> None:
    assert SQUEUE[IDS["name_with_pipe"]].name == "relax|Si 2x2"
    assert SACCT[IDS["name_with_pipe"]].name == "relax|Si 2x2"


@pytest.mark.parametrize("name", ["sacct_handwritten.txt", "squeue_handwritten.txt"])
def test_handwritten_failure_states(name: str) -> None:
    parse = s.parse_sacct if name.startswith("sacct") else s.parse_squeue
    jobs = parse(sample(name))
    assert jobs["101"].reason is FailureReason.NODE_FAIL
    assert jobs["102"].reason is FailureReason.OUT_OF_MEMORY
    assert all(jobs[i].status is JobStatus.FAILED for i in ("101", "102"))


def test_handwritten_other_states() -> None:
    jobs = s.parse_sacct(sample("sacct_handwritten.txt"))
    assert jobs["102"].exit_code == 0 and jobs["102"].signal == 125
    assert jobs["103"].reason is FailureReason.NODE_FAIL
    assert jobs["104"].reason is FailureReason.TIMEOUT
    assert jobs["105"].status is JobStatus.FAILED
    assert jobs["106"].status is jobs["107"].status is JobStatus.QUEUED
    assert jobs["108"].status is JobStatus.RUNNING


def test_state_map_covers_every_man_page_state() -> None:
    words = {
        line.split()[2]
        for line in Path(s.__file__).read_text().splitlines()
        if line.startswith("#   ") and line.split()[2].isupper()
    }
    assert words == set(s.STATE_MAP)


def test_unknown_state_is_treated_as_queued() -> None:
    assert s.map_state("FUTURE_STATE") == (JobStatus.QUEUED, None)


def test_parse_sbatch() -> None:
    assert s.parse_sbatch(sample("sbatch.txt")) == IDS["completed"]
    with pytest.raises(SchedulerError):
        s.parse_sbatch("")


def test_parse_partitions() -> None:
    assert s.parse_partitions(sample("sinfo_partitions.txt")) == {"debug": None, "long": 172800}


def test_sbatch_argv() -> None:
    options = SubmitOptions(hold=True, begin=datetime(2030, 1, 2, 3, 4, 5))
    argv = s.sbatch_argv(Path("/calc/job.sh"), options)
    assert argv == [
        "sbatch",
        "--parsable",
        "--chdir=/calc",
        "-H",
        "--begin=2030-01-02T03:04:05",
        "/calc/job.sh",
    ]
    assert "-Q" not in s.sbatch_argv(Path("job.sh"))


def test_query_argv_builders() -> None:
    assert s.squeue_argv(["1", "2_3"])[:7] == ["squeue", "-h", "-r", "-t", "all", "-j", "1,2_3"]
    assert s.sacct_argv(["5"]) == [
        "sacct",
        "-P",
        "-n",
        "-X",
        "-o",
        "JobID,State,ExitCode,Reason,JobName",
        "-j",
        "5",
    ]
    assert s.scancel_argv(["5", "6"]) == ["scancel", "5", "6"]


def test_squeue_errors_are_classified() -> None:
    unknown = captured_result("squeue_one_unknown.stderr", ["squeue"])
    down = captured_result("squeue_controller_down.stderr", ["squeue"])
    assert s.is_unknown_job_error(unknown)
    assert not s.is_unknown_job_error(down)
    many = (DATA / "squeue_many_unknown.txt").read_text()
    assert many.startswith("rc=0") and s.parse_squeue(many) == {}


def test_sbatch_error_keeps_slurms_words() -> None:
    result = captured_result("sbatch_bad_partition.stderr", ["sbatch"])
    assert "Batch job submission failed: Invalid partition name specified" in s.error_summary(
        result
    )


class ReplayRunner:
    """A Runner answering squeue/sacct from captured samples, recording every call."""

    def __init__(self, answers: dict[str, CommandResult]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv, *, input_text=None, timeout_s=60.0) -> CommandResult:
        self.calls.append(list(argv))
        return self.answers[argv[0]]


def ok(stdout: str) -> CommandResult:
    return CommandResult(("x",), 0, stdout, "", 0.0)


def test_query_asks_sacct_only_for_ids_squeue_no_longer_knows() -> None:
    purged = IDS["failed_exit3"] + "|"
    squeue_text = "".join(
        line for line in sample("squeue.txt").splitlines(True) if not line.startswith(purged)
    )
    sacct_text = "".join(
        line for line in sample("sacct.txt").splitlines(True) if line.startswith(purged)
    )
    runner = ReplayRunner({"squeue": ok(squeue_text), "sacct": ok(sacct_text)})
    wanted = [IDS["completed"], IDS["array"], IDS["failed_exit3"], "999999"]
    jobs = s.SlurmCli(runner).query(wanted)
    assert [call[0] for call in runner.calls] == ["squeue", "sacct"]
    assert runner.calls[1][-1] == f"{IDS['failed_exit3']},999999"  # not the array parent
    assert jobs[IDS["failed_exit3"]].exit_code == 3
    assert "999999" not in jobs and f"{IDS['array']}_2" in jobs


def test_query_with_one_purged_id_falls_back_to_sacct() -> None:
    unknown = captured_result("squeue_one_unknown.stderr", ["squeue"])
    runner = ReplayRunner({"squeue": unknown, "sacct": ok(sample("sacct.txt"))})
    jobs = s.SlurmCli(runner).query([IDS["failed_exit3"]])
    assert jobs[IDS["failed_exit3"]].status is JobStatus.FAILED


def test_query_when_controller_is_down_raises() -> None:
    down = captured_result("squeue_controller_down.stderr", ["squeue"])
    with pytest.raises(SchedulerError, match="Unable to contact slurm controller") as error:
        s.SlurmCli(ReplayRunner({"squeue": down})).query(["1", "2"])
    assert "scontrol ping" in error.value.one_line()


def test_query_without_accounting_returns_what_squeue_knows() -> None:
    disabled = CommandResult(("sacct",), 1, "", "Slurm accounting storage is disabled\n", 0.0)
    runner = ReplayRunner({"squeue": ok(""), "sacct": disabled})
    assert s.SlurmCli(runner).query(["1", "2"]) == {}


def test_query_rejects_malformed_ids_and_skips_empty() -> None:
    runner = ReplayRunner({})
    assert s.SlurmCli(runner).query([]) == {} and runner.calls == []
    with pytest.raises(SchedulerError, match="not a SLURM job id"):
        s.SlurmCli(runner).query(["1; rm -rf /"])


def test_submit_failure_raises_with_slurms_message() -> None:
    bad = captured_result("sbatch_bad_partition.stderr", ["sbatch"])
    with pytest.raises(SchedulerError, match="Invalid partition name specified"):
        s.SlurmCli(ReplayRunner({"sbatch": bad})).submit(Path("/calc/job.sh"))
