"""Pure tests of the SLURM argv builders and parsers, on output captured from Slurm 22.05."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from orion_cli.errors import SchedulerError
from orion_cli.runner import CommandResult
from orion_cli.schedulers import slurm_commands as s
from orion_cli.schedulers import slurm_states
from orion_cli.schedulers.base import SubmitOptions
from orion_cli.schedulers.slurm_cli import SlurmCli
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
        for line in Path(slurm_states.__file__).read_text().splitlines()
        if line.startswith("#   ") and line.split()[2].isupper()
    }
    assert words == set(slurm_states.STATE_MAP)


def test_unknown_state_is_treated_as_queued() -> None:
    assert slurm_states.map_state("FUTURE_STATE") == (JobStatus.QUEUED, None)


def test_parse_sbatch() -> None:
    assert s.parse_sbatch(sample("sbatch.txt")) == IDS["completed"]
    with pytest.raises(SchedulerError):
        s.parse_sbatch("")


def test_sbatch_id_after_a_site_banner_is_found() -> None:
    """Real sbatch output behind a wrapper that prints a line first (captured here)."""
    text = sample("sbatch_banner.txt")
    assert text.splitlines()[0].startswith("NOTE:")
    assert s.parse_sbatch(text) == text.split()[-1]


def test_sbatch_success_without_an_id_is_an_unknown_outcome_not_a_refusal() -> None:
    from orion_cli.errors import SubmitOutcomeUnknown

    with pytest.raises(SubmitOutcomeUnknown):
        s.parse_sbatch("Submitted to the queue, have a nice day\n")


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
    assert s.squeue_argv(["1", "2_3"])[:7] == ["squeue", "-h", "-r", "-t", "all", "-j", "1,2"]
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
        self.inputs: list[str | None] = []

    def __call__(self, argv, *, input_text=None, timeout_s=60.0) -> CommandResult:
        self.calls.append(list(argv))
        self.inputs.append(input_text)
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
    jobs = SlurmCli(runner).query(wanted)
    assert [call[0] for call in runner.calls] == ["squeue", "sacct"]
    assert runner.calls[1][-1] == f"{IDS['failed_exit3']},999999"  # not the array parent
    assert jobs[IDS["failed_exit3"]].exit_code == 3
    assert "999999" not in jobs and f"{IDS['array']}_2" in jobs


def test_query_with_one_purged_id_falls_back_to_sacct() -> None:
    unknown = captured_result("squeue_one_unknown.stderr", ["squeue"])
    runner = ReplayRunner({"squeue": unknown, "sacct": ok(sample("sacct.txt"))})
    jobs = SlurmCli(runner).query([IDS["failed_exit3"]])
    assert jobs[IDS["failed_exit3"]].status is JobStatus.FAILED


def test_query_when_controller_is_down_raises() -> None:
    down = captured_result("squeue_controller_down.stderr", ["squeue"])
    with pytest.raises(SchedulerError, match="Unable to contact slurm controller") as error:
        SlurmCli(ReplayRunner({"squeue": down})).query(["1", "2"])
    assert "scontrol ping" in error.value.one_line()


def test_query_without_accounting_returns_what_squeue_knows() -> None:
    disabled = CommandResult(("sacct",), 1, "", "Slurm accounting storage is disabled\n", 0.0)
    runner = ReplayRunner({"squeue": ok(""), "sacct": disabled})
    assert SlurmCli(runner).query(["1", "2"]) == {}


def test_query_rejects_malformed_ids_and_skips_empty() -> None:
    runner = ReplayRunner({})
    assert SlurmCli(runner).query([]) == {} and runner.calls == []
    with pytest.raises(SchedulerError, match="not a SLURM job id"):
        SlurmCli(runner).query(["1; rm -rf /"])


def test_submit_failure_raises_with_slurms_message() -> None:
    bad = captured_result("sbatch_bad_partition.stderr", ["sbatch"])
    with pytest.raises(SchedulerError, match="Invalid partition name specified"):
        SlurmCli(ReplayRunner({"sbatch": bad})).submit(Path("/calc/job.sh"))


# ---------- arrays, job control, names (tests/data/slurm/capture_arrays.py) ---------------

ARRAY_IDS: dict[str, str] = json.loads((DATA / "arrays_jobs.json").read_text())
A_SQUEUE = s.parse_squeue(sample("arrays_squeue.txt"))
A_SACCT = s.parse_sacct(sample("arrays_sacct.txt"))


def test_pending_array_tasks_are_expanded_by_squeue() -> None:
    held, running = ARRAY_IDS["array_held"], ARRAY_IDS["array_running"]
    assert [f"{held}_{i}" in A_SQUEUE for i in range(4)] == [True] * 4
    assert A_SQUEUE[f"{held}_3"].pending_reason == "JobHeldUser"
    assert A_SQUEUE[f"{running}_0"].status is JobStatus.RUNNING
    assert A_SQUEUE[f"{running}_2"].pending_reason == "JobArrayTaskLimit"
    assert A_SQUEUE[f"{ARRAY_IDS['array_done']}_1"].exit_code == 3
    one_task = s.parse_squeue(sample("arrays_squeue_one_task.txt"))
    assert list(one_task) == [f"{held}_2"]


def test_sacct_grouped_array_records_are_reported_per_task() -> None:
    held, running = ARRAY_IDS["array_held"], ARRAY_IDS["array_running"]
    assert A_SACCT[f"{held}_3"].pending_reason == "JobHeldUser"
    assert A_SACCT[f"{running}_0"].status is JobStatus.RUNNING
    assert A_SACCT[f"{running}_2"].status is JobStatus.QUEUED
    cancelled = ARRAY_IDS["held_cancelled_array"]
    assert A_SACCT[f"{cancelled}_1"].status is JobStatus.CANCELLED
    assert A_SACCT[f"{ARRAY_IDS['array_done']}_1"].reason is FailureReason.EXIT_CODE


def test_purged_array_task_is_found_by_sacct() -> None:
    purged = captured_result("arrays_purged_squeue.stderr", ["squeue"])
    runner = ReplayRunner({"squeue": purged, "sacct": ok(sample("arrays_purged_sacct.txt"))})
    task = f"{ARRAY_IDS['array_done']}_1"
    never_ran = f"{ARRAY_IDS['held_cancelled_array']}_1"
    jobs = SlurmCli(runner).query([task, never_ran])
    assert jobs[task].exit_code == 3 and jobs[never_ran].status is JobStatus.CANCELLED
    assert runner.calls[1][-1] == f"{ARRAY_IDS['array_done']},{ARRAY_IDS['held_cancelled_array']}"
    assert f"{ARRAY_IDS['array_done']}_0" not in jobs  # sacct's extra lines are not reported


def test_array_cancelled_by_a_user_filter_is_one_bare_record_for_all_tasks() -> None:
    """Captured after ``scancel -u <user> -n <name>`` of a held array that never started."""
    array_id = sample("arrays_user_cancel_squeue.txt").split("|")[0]
    runner = ReplayRunner(
        {
            "squeue": ok(sample("arrays_user_cancel_squeue.txt")),
            "sacct": ok(sample("arrays_user_cancel_sacct.txt")),
        }
    )
    tasks = [f"{array_id}_{i}" for i in range(3)]
    jobs = SlurmCli(runner).query(tasks)
    assert sorted(jobs) == tasks and {j.status for j in jobs.values()} == {JobStatus.CANCELLED}
    assert runner.calls[0][6] == array_id  # squeue is asked about the array, not each task


def test_expand_array_tasks_and_array_spec() -> None:
    assert s.expand_array_tasks("5_[1-2,7%3]") == ["5_1", "5_2", "5_7"]
    assert s.array_spec(1) == "0-0"
    for bad in ((0, None), (3, 0)):
        with pytest.raises(SchedulerError):
            s.array_spec(*bad)


def test_array_and_control_argv() -> None:
    argv = s.sbatch_array_argv(Path("/calc/a.sh"), 10, SubmitOptions(hold=True), throttle=2)
    assert argv == ["sbatch", "--parsable", "--chdir=/calc", "-H", "--array=0-9%2", "/calc/a.sh"]
    assert s.scontrol_argv("uhold", ["1", "2_3"]) == ["scontrol", "uhold", "1,2_3"]
    assert s.set_nice_argv(["1"], -5) == ["scontrol", "update", "JobId=1", "Nice=-5"]


def test_max_array_size_is_read_once_from_scontrol_config() -> None:
    runner = ReplayRunner({"scontrol": ok(sample("scontrol_config.txt"))})
    scheduler = SlurmCli(runner)
    assert scheduler.max_array_size() == scheduler.max_array_size() == 1001
    assert runner.calls == [["scontrol", "show", "config"]]


@pytest.mark.parametrize(
    ("name", "verb"),
    [("control_hold_finished.stderr", "hold"), ("control_release_unknown.stderr", "release")],
)
def test_job_control_errors_keep_slurms_words(name: str, verb: str) -> None:
    result = captured_result(name, ["scontrol"])
    scheduler = SlurmCli(ReplayRunner({"scontrol": result}))
    words = "Job has already finished" if verb == "hold" else "Invalid job id specified"
    with pytest.raises(SchedulerError, match=words):
        getattr(scheduler, verb)(["1"])


def test_set_nice_leaves_held_jobs_alone() -> None:
    runner = ReplayRunner({"squeue": ok(sample("arrays_squeue.txt")), "scontrol": ok("")})
    nice_held, done = ARRAY_IDS["nice_held"], ARRAY_IDS["array_done"]
    assert A_SQUEUE[nice_held].pending_reason == "JobHeldUser"
    SlurmCli(runner).set_nice([nice_held, done], 5)
    assert runner.calls[1] == ["scontrol", "update", f"JobId={done}", "Nice=5"]
    assert len(runner.calls) == 2


def test_set_nice_of_only_held_jobs_sends_nothing_to_scontrol() -> None:
    runner = ReplayRunner({"squeue": ok(sample("arrays_squeue.txt")), "scontrol": ok("")})
    SlurmCli(runner).set_nice([ARRAY_IDS["nice_held"]], 5)
    assert [call[0] for call in runner.calls] == ["squeue"]


def test_release_sets_the_nice_in_the_same_scontrol_session() -> None:
    runner = ReplayRunner({"scontrol": ok("")})
    SlurmCli(runner).release(["7", "8_2"], nice=300)
    assert runner.calls == [["scontrol"]]
    assert runner.inputs[0] == "release 7,8_2\nupdate JobId=7,8_2 Nice=300\n"


def test_find_by_name_prefixes_are_exact_on_the_orion_id() -> None:
    records = s.parse_name_records(sample("names_squeue.txt"))
    found = s.match_names(records, ["orion-17-", "orion-1-", "orion-170-md", "orion-99-"])
    assert found == {
        "orion-17-": ARRAY_IDS["array_done"],
        "orion-1-": ARRAY_IDS["array_held"],
        "orion-170-md": ARRAY_IDS["array_running"],
    }


def test_find_by_name_asks_sacct_only_for_names_squeue_lacks() -> None:
    runner = ReplayRunner({"squeue": ok("5|orion-1-a\n"), "sacct": ok(sample("names_sacct.txt"))})
    found = SlurmCli(runner, find_window_s=3600).find_by_name(["orion-1-", "orion-17-", "nope"])
    assert found == {"orion-1-": "5", "orion-17-": ARRAY_IDS["array_done"]}
    assert [call[0] for call in runner.calls] == ["squeue", "sacct"]
    assert runner.calls[1][-4:] == ["-S", "now-3600", "-E", "now"]
    runner.calls.clear()
    assert SlurmCli(runner).find_by_name(["orion-1-"]) == {"orion-1-": "5"}
    assert [call[0] for call in runner.calls] == ["squeue"]


def test_parse_partitions_marks_the_default() -> None:
    """Defect 6: ``%P`` shows the default partition (``debug*``, real sinfo output)."""
    assert sinfo_partitions_argv_field() == "%P|%l"
    assert s.parse_partitions(sample("sinfo_partitions_default.txt")) == {
        "debug": None,
        "*": None,
        "long": None,
    }


def sinfo_partitions_argv_field() -> str:
    return s.sinfo_partitions_argv()[-1]


def test_partitions_are_asked_once_per_scheduler_instance() -> None:
    """Defect 5: a poll retrying many timed-out jobs runs one sinfo, not one per job."""
    runner = ReplayRunner({"sinfo": ok("debug*|1:00:00\nlong|2-00:00:00\n")})
    scheduler = SlurmCli(runner)
    for _ in range(5):
        assert scheduler.partitions()["*"] == 3600
    assert [call[0] for call in runner.calls] == ["sinfo"]
