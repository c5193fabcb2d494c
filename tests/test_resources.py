"""One Resources type: new sbatch options, the --sbatch-arg escape hatch, named queues."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orion_cli.batch import SCRIPT_NAME, render_script
from orion_cli.errors import UsageError
from orion_cli.resources import RESOURCE_FIELDS, Resources, check_sbatch_arg
from orion_cli.schedulers.base import JobInfo
from orion_cli.schedulers.local import LocalScheduler
from orion_cli.states import FailureReason, JobStatus
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json
from tests.test_batch import spec

CU = str(EXAMPLES / "Cu.cif")
GOLDEN = Path(__file__).parent / "data" / "batch" / "job-resources.sh"
NEW_OPTIONS = (
    "--mem-per-cpu",
    "2G",
    "--gpus",
    "2",
    "--constraint",
    "avx512&ib",
    "--exclusive",
    "--sbatch-arg=--reservation=maint",
    "--sbatch-arg",
    "--comment=a b#c",
    "--sbatch-arg",
    "--requeue",
)


def test_script_with_every_new_option_matches_golden_file() -> None:
    text = render_script(
        spec(
            mem_mb=0,
            mem_per_cpu_mb=2048,
            gpus=2,
            constraints="avx512&ib",
            exclusive=True,
            sbatch_args=("--reservation=maint", "--comment=a b#c", "--requeue"),
        )
    )
    assert text == GOLDEN.read_text()


def test_resources_go_through_the_job_row_unchanged() -> None:
    from orion_cli.db.models import Job

    res = Resources(
        partition="p",
        gpus=3,
        exclusive=True,
        mem_per_cpu_mb=100,
        sbatch_args=("--comment=x",),
        constraints="a|b",
    )
    job = Job(name="x", owner="u", engine="mock", **res.row())
    assert Resources.of(job) == res
    assert set(RESOURCE_FIELDS) <= set(Job.model_fields)  # a new field needs its column


@pytest.mark.parametrize(
    "arg, needle",
    [
        ("--reservation=a\nb", "control character"),
        ("--comment=a\x1b[31m", "control character"),
        ("reservation=x", "not one long sbatch option"),
        ("-J x", "not one long sbatch option"),
        ("--reservation x", "not one long sbatch option"),
        ("--job-name=x", "orion sets --job-name"),
        ("--out=x", "orion sets --output"),  # sbatch takes a unique start for the whole
        ("--array=1-3", "orion sets --array"),
        ("--dependency=afterok:1", "orion sets --dependency"),
        ("--time=10", "use --walltime"),
        ("--gpus=1", "use --gpus"),
    ],
)
def test_bad_sbatch_args_are_refused(arg: str, needle: str) -> None:
    with pytest.raises(UsageError) as err:
        check_sbatch_arg(arg)
    assert needle in err.value.one_line() and "\n" not in err.value.one_line()


def test_a_bad_sbatch_arg_exits_2_and_writes_nothing(orion_home: Path) -> None:
    result = orion(
        "submit", CU, "-e", "mock", "--scheduler", "local", "--sbatch-arg=--output=/tmp/x", expect=2
    )
    assert "orion sets --output itself" in result.stderr and "Traceback" not in result.output
    assert not (orion_home / "orion.db").exists()


def test_dry_run_shows_the_new_options(orion_home: Path) -> None:
    out = orion(
        "submit", CU, "-e", "mock", "--scheduler", "local", "--dry-run", *NEW_OPTIONS
    ).stdout
    for line in (
        "#SBATCH --mem-per-cpu=2048M",
        "#SBATCH --gres=gpu:2",
        '#SBATCH --constraint="avx512&ib"',
        "#SBATCH --exclusive",
        "#SBATCH --reservation=maint",
        '#SBATCH --comment="a b#c"',
        "#SBATCH --requeue",
    ):
        assert line in out.splitlines()
    assert not (orion_home / "orion.db").exists()


def test_mem_and_mem_per_cpu_exclude_each_other(orion_home: Path) -> None:
    result = orion(
        "submit",
        CU,
        "-e",
        "mock",
        "--scheduler",
        "local",
        "--dry-run",
        "--mem",
        "1G",
        "--mem-per-cpu",
        "1G",
        expect=2,
    )
    assert "exclude each other" in result.stderr


def test_new_resources_are_stored_shown_and_kept_by_a_retry(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored with the job, shown by `orion show`, and the retry's script asks the same
    (an out-of-memory failure doubles the memory per CPU, nothing else changes)."""
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = orion_json("submit", CU, "-e", "mock", "-p", "duration_s=30", *NEW_OPTIONS)["id"]
    job = orion_json("show", str(job_id))
    assert (job["gpus"], job["constraints"], job["exclusive"], job["mem_per_cpu_mb"]) == (
        2,
        "avx512&ib",
        True,
        2048,
    )
    assert job["sbatch_args"] == ["--reservation=maint", "--comment=a b#c", "--requeue"]
    shown = orion("show", str(job_id)).stdout
    assert "--comment=a b#c" in shown and "gpus" in shown and "constraints" in shown
    first = job["scheduler_job_id"]
    real_query = LocalScheduler.query

    def out_of_memory(self: LocalScheduler, ids: list[str]) -> dict[str, JobInfo]:
        infos = real_query(self, ids)
        if first in infos:
            infos[first] = JobInfo(
                first, "OUT_OF_MEMORY", JobStatus.FAILED, FailureReason.OUT_OF_MEMORY
            )
        return infos

    monkeypatch.setattr(LocalScheduler, "query", out_of_memory)
    orion("poll")
    retried = orion_json("show", str(job_id))
    assert (retried["status"], retried["attempt"]) == ("queued", 2)
    script = (Path(retried["workdir"]) / SCRIPT_NAME).read_text().splitlines()
    assert "#SBATCH --mem-per-cpu=4096M" in script
    for line in (
        "#SBATCH --gres=gpu:2",
        '#SBATCH --constraint="avx512&ib"',
        "#SBATCH --exclusive",
        "#SBATCH --reservation=maint",
        '#SBATCH --comment="a b#c"',
        "#SBATCH --requeue",
    ):
        assert line in script
    assert retried["sbatch_args"] == job["sbatch_args"] and retried["gpus"] == 2
    orion("cancel", str(job_id))


QUEUES = """
walltime_s = 600
qos = "top"
account = "top-account"

[queues.short]
walltime_s = 1200
account = "queue-account"
priority = 5
sbatch_args = ["--comment=from-queue"]
setup = ["echo queue-setup-line"]

[queues.big]
mem_mb = 8000
exclusive = true
"""


def _project(tmp_path: Path, text: str = QUEUES) -> None:
    (tmp_path / "orion.toml").write_text(text)
    (tmp_path / "orion.toml").chmod(0o644)


def test_flags_override_the_queue_which_overrides_the_settings(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _project(tmp_path)
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = orion_json(
        "submit", CU, "-e", "mock", "--hold", "--queue", "short", "--account", "flag-account"
    )["id"]
    job = orion_json("show", str(job_id))
    assert (job["queue"], job["walltime_s"], job["qos"], job["account"], job["priority"]) == (
        "short",
        1200,
        "top",
        "flag-account",
        5,
    )
    assert job["sbatch_args"] == ["--comment=from-queue"]
    script = (Path(job["workdir"]) / SCRIPT_NAME).read_text()
    assert "echo queue-setup-line\n" in script and "#SBATCH --nice=500" in script
    # the queue's script line really runs: bash reads it as a command
    assert (
        "queue-setup-line"
        in subprocess.run(
            [
                "bash",
                "-c",
                "\n".join(line for line in script.splitlines() if line.startswith("echo")),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    orion("cancel", str(job_id))
    # --shared beats the queue's exclusive; --mem-per-cpu replaces its memory per node
    out = orion(
        "submit", CU, "-e", "mock", "--queue", "big", "--shared", "--mem-per-cpu", "1G", "--dry-run"
    ).stdout
    assert "--exclusive" not in out and "--mem=" not in out and "--mem-per-cpu=1024M" in out


def test_unknown_queue_exits_2_naming_the_known_ones(orion_home: Path, tmp_path: Path) -> None:
    _project(tmp_path)
    result = orion("submit", CU, "-e", "mock", "--scheduler", "local", "--queue", "gpu", expect=2)
    assert "unknown queue 'gpu' (known: big, short)" in result.stderr
    assert not (orion_home / "orion.db").exists()


@pytest.mark.parametrize(
    "table, needle",
    [
        ("[queues.x]\nwalltime = 5\n", "[queues.x]: unknown key 'walltime'"),
        ("[queues.x]\ngpus = 'many'\n", "'gpus' must be int"),
        ("[queues.x]\nsbatch_args = ['--job-name=y']\n", "orion sets --job-name"),
        ('[queues.x]\nsetup = ["a\\nb"]\n', "control character"),
    ],
)
def test_a_bad_queue_table_is_one_clear_error(
    orion_home: Path, tmp_path: Path, table: str, needle: str
) -> None:
    _project(tmp_path, table)
    args = ["submit", CU, "-e", "mock", "--scheduler", "local", "--dry-run"]
    result = orion(*(args + ["--queue", "x"] if "sbatch_args" in table else ["queues"]), expect=2)
    assert needle in result.stderr and "Traceback" not in result.output


def test_orion_queues_lists_them(orion_home: Path, tmp_path: Path) -> None:
    assert "no named queues" in orion("queues").stderr
    _project(tmp_path)
    data = {q["name"]: q for q in orion_json("queues")}
    assert set(data) == {"short", "big"}
    assert data["short"]["walltime_s"] == 1200 and data["big"]["exclusive"] is True
    text = orion("queues").stdout
    assert "short" in text and "00:20:00" in text and "mem_mb=8000" in text
