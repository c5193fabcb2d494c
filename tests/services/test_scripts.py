"""`orion submit --script` and `orion progress` on the local scheduler (same scripts as SLURM)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import orion, orion_json, poll_until_final

PROGRESS = f"{sys.executable} -m orion_cli progress"


def write_script(path: Path, body: str, header: str = "#SBATCH --time=00:05:00\n") -> Path:
    path.write_text(f"#!/bin/bash\n#SBATCH --job-name=mine\n{header}{body}")
    return path


@pytest.fixture
def local(orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    project = tmp_path / "project dir"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


def test_script_runs_unchanged_with_its_args_and_reports_progress(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    script = write_script(
        project / "run.sbatch",
        (
            'printf "%s|" "$@" > args.txt\n'
            f'{PROGRESS} 40 "SCF step 12"\n'
            f"{PROGRESS} --result energy_ev=-12.3 converged=true kpoints=4\n"
            f'{PROGRESS} 75 "done with SCF"\n'
        ),
    )
    original = script.read_bytes()
    job_id = int(
        orion("submit", "--script", str(script), "--tag", "t1", "--", "a b", "--flag", "").stdout
    )
    script.write_text("#!/bin/bash\nexit 9\n")  # a later edit changes neither record nor run
    [job] = poll_until_final([job_id])
    assert job["status"] == "completed", job
    assert job["engine"] == "script" and job["name"] == "mine" and job["tag"] == "t1"
    assert job["exit_code"] == 0 and job["walltime_s"] == 300
    # the script ran in the directory orion submit ran in, with its arguments, unchanged
    assert (project / "args.txt").read_text() == "a b|--flag||"
    copy = Path(job["workdir"]) / "submitted.sbatch"
    assert copy.read_bytes() == original
    assert job["script"]["path"] == str(script)
    assert job["script"]["args"] == ["a b", "--flag", ""]
    assert job["result"]["energy_ev"] == -12.3 and job["result"]["converged"] is True
    assert job["result"]["extras"] == {"kpoints": 4}
    assert job["current_step"] == "done with SCF"
    shown = "".join(orion("show", str(job_id)).stdout.split())  # rich wraps long paths
    assert str(script) in shown and str(copy) in shown and "kpoints" in shown


def test_exit_code_fails_and_retry_resubmits_the_copy(local: Path) -> None:
    script = write_script(
        local / "fail.sbatch", "echo attempt $ORION_ATTEMPT >> tries.txt\nexit 3\n"
    )
    job_id = int(orion("submit", "--script", str(script), "--retries", "0").stdout)
    [job] = poll_until_final([job_id])
    assert (job["status"], job["failure_reason"], job["exit_code"]) == ("failed", "exit_code", 3)
    orion("retry", str(job_id))
    [job] = poll_until_final([job_id])
    assert job["attempt"] == 2 and job["exit_code"] == 3
    assert (local / "tries.txt").read_text() == "attempt 1\nattempt 2\n"
    assert (Path(job["workdir"]) / "attempt-2.out").exists()


def test_own_chdir_and_output_are_kept(local: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = write_script(
        local / "own.sbatch",
        "pwd > where.txt\necho to-my-file\n",
        f"#SBATCH --chdir={elsewhere}\n#SBATCH --output=mine-%j.log\n",
    )
    job_id = int(orion("submit", "--script", str(script)).stdout)
    [job] = poll_until_final([job_id])
    assert job["status"] == "completed"
    assert (elsewhere / "where.txt").read_text().strip() == str(elsewhere)
    assert (elsewhere / f"mine-{job['scheduler_job_id']}.log").read_text() == "to-my-file\n"
    assert not (Path(job["workdir"]) / "attempt-1.out").exists()


def test_cancel_hold_release_of_a_script_job(local: Path) -> None:
    script = write_script(local / "slow.sbatch", "sleep 30\n")
    job_id = int(orion("submit", "--script", str(script), "--hold").stdout)
    assert orion_json("show", str(job_id))["held"] is True
    orion("release", str(job_id))
    orion("cancel", str(job_id))
    [job] = poll_until_final([job_id])
    assert job["status"] == "cancelled"


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda d: d / "missing.sbatch", "does not exist"),
        (lambda d: d, "is not a file"),
        (lambda d: _written(d / "bin.sbatch", b"\x7fELF\x00\x01"), "binary"),
        (lambda d: _written(d / "q.sbatch", b"#!/bin/bash\n#SBATCH --job-name='x\n"), "malformed"),
        (lambda d: _written(d / "w.sbatch", b"#!/bin/bash\n#SBATCH time=5\n"), "not an sbatch"),
        (lambda d: _written(d / "t.sbatch", b"#!/bin/bash\n#SBATCH --time=soon\n"), "SLURM time"),
        (lambda d: _written(d / "a.sbatch", b"#!/bin/bash\n#SBATCH --array=0-3\n"), "array"),
    ],
)
def test_bad_scripts_exit_2_with_one_line_and_write_nothing(
    local: Path, orion_home: Path, make, says: str
) -> None:  # noqa: ANN001
    result = orion("submit", "--script", str(make(local)), expect=2)
    assert says in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(orion_home.rglob("*.db")) and not (orion_home / "jobs").exists()


def test_engine_options_do_not_go_with_a_script(local: Path) -> None:
    script = write_script(local / "mine.sbatch", "true\n")
    out = orion("submit", "--script", str(script), "--engine", "qe", expect=2).output
    assert "--engine does not go with --script" in out
    assert "no engine given" in orion("submit", str(script), expect=2).output


def test_unreadable_script_is_refused(local: Path) -> None:
    script = write_script(local / "secret.sbatch", "true\n")
    script.chmod(0)
    if os.access(script, os.R_OK):
        pytest.skip("running as root: every file is readable")
    assert "not readable" in orion("submit", "--script", str(script), expect=2).output


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_progress_outside_a_job_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORION_")}
    out = subprocess.run(
        [sys.executable, "-m", "orion_cli", "progress", "40", "x"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "not inside an orion job" in out.stderr


def test_progress_checks_its_input_and_writes_what_the_poller_reads(tmp_path: Path) -> None:
    from orion_cli.ingest import check_events, check_result
    from orion_cli.jobdir import read_events, read_result

    env = {**os.environ, "ORION_JOB_DIR": str(tmp_path), "ORION_ATTEMPT": "2"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orion_cli", "progress", *args],
            capture_output=True,
            text=True,
            env=env,
        )

    assert run("140").returncode == 2 and run("--result", "energy_ev").returncode == 2
    assert "not key=value" in run("--result", "energy_ev").stderr
    assert "energy_ev" in run("--result", "energy_ev=abc").stderr  # not a number: refused
    assert run("12.5", "SCF", "step", "3").returncode == 0
    assert run("--result", "energy_ev=-1.5", "n=3").returncode == 0
    assert run("--result", "n=4", "label=Si bulk").returncode == 0
    events, warnings = check_events(read_events(tmp_path, 0).events)
    assert warnings == [] and [(e.event, e.attempt, e.progress_pct, e.step) for e in events] == [
        ("progress", 2, 12.5, "SCF step 3")
    ]
    result = check_result(read_result(tmp_path / "result.json"))
    assert (result.attempt, result.energy_ev, result.extras) == (
        2,
        -1.5,
        {"n": 4, "label": "Si bulk"},
    )


def test_what_orion_adds_to_sbatch_and_nothing_else(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from orion_cli.schedulers.slurm_commands import sbatch_argv
    from orion_cli.services.submission.scripts import script_submission

    job = SimpleNamespace(
        id=7,
        name="relax Si",
        workdir=str(tmp_path / "7"),
        walltime_s=600,
        mem_mb=0,
        attempt=2,
        script={
            "args": ["-x", "a b"],
            "submit_dir": "/home/ann/run",
            "options": ["--signal=B:USR1@60"],
            "own_time": 600,
            "own_mem_mb": None,
            "own_output": False,
            "own_chdir": False,
            "export": None,
        },
    )
    script, options = script_submission(job, "ab12cd", after=(("afterok", "41"),))
    assert sbatch_argv(script, options) == [
        "sbatch",
        "--parsable",
        "--chdir=/home/ann/run",
        "--dependency=afterok:41",
        "--job-name=orion-7-ab12cd-relax_Si",
        "--signal=B:USR1@60",
        f"--output={tmp_path}/7/attempt-2.out",
        f"--export=ALL,ORION_JOB_ID=7,ORION_ATTEMPT=2,ORION_JOB_DIR={tmp_path}/7",
        f"{tmp_path}/7/submitted.sbatch",
        "-x",
        "a b",
    ]
    # a retry with more time and memory; the script's own output, chdir and export kept
    job.walltime_s, job.mem_mb = 1200, 4096
    job.script.update(own_output=True, own_chdir=True, export="NONE", options=[])
    _, options = script_submission(job, "ab12cd")
    argv = sbatch_argv(script, options)
    assert not any(a.startswith(("--chdir", "--output")) for a in argv)
    assert "--time=00:20:00" in argv and "--mem=4096M" in argv
    assert f"--export=ORION_JOB_ID=7,ORION_ATTEMPT=2,ORION_JOB_DIR={tmp_path}/7" in argv


def test_script_jobs_wait_for_their_parents(local: Path) -> None:
    first = write_script(local / "first.sbatch", "sleep 1; echo first >> order.txt\n")
    second = write_script(local / "second.sbatch", "echo second >> order.txt\n")
    parent = int(orion("submit", "--script", str(first)).stdout)
    child = int(orion("submit", "--script", str(second), "--after", str(parent)).stdout)
    jobs = poll_until_final([parent, child])
    assert [j["status"] for j in jobs] == ["completed", "completed"]
    assert (local / "order.txt").read_text() == "first\nsecond\n"


def test_an_interrupted_submit_is_recovered_with_the_script(
    local: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orion_cli.errors import SubmitOutcomeUnknown
    from orion_cli.schedulers.local import LocalScheduler

    script = write_script(local / "run.sbatch", 'echo "$1 $ORION_JOB_ID" > ran.txt\n')
    real_submit = LocalScheduler.submit
    monkeypatch.setattr(
        LocalScheduler,
        "submit",
        lambda *a, **k: (_ for _ in ()).throw(SubmitOutcomeUnknown("sbatch did not answer")),
    )
    out = orion("submit", "--script", str(script), "--", "hello", expect=1)
    assert "did not answer" in out.output
    monkeypatch.setattr(LocalScheduler, "submit", real_submit)
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    [job] = poll_until_final([1])
    assert job["status"] == "completed" and job["name"] == "mine"
    assert (local / "ran.txt").read_text() == "hello 1\n"


def test_dry_run_prints_the_sbatch_command_and_writes_nothing(
    local: Path, orion_home: Path
) -> None:
    import shlex

    script = write_script(local / "run.sbatch", "true\n")
    out = orion(
        "submit", "--script", str(script), "--soft-limit", "2m", "--dry-run", "--", "x y"
    ).stdout
    argv = shlex.split(out)
    assert argv[0] == "sbatch" and argv[-2:] == [
        str(orion_home / "jobs" / "<id>" / "submitted.sbatch"),
        "x y",
    ]
    assert "--signal=B:USR1@120" in argv and f"--chdir={local}" in argv
    assert not any(a.startswith("--time") for a in argv)  # the script's own 5 minutes stand
    assert not orion_home.exists() or not any(orion_home.iterdir())


def test_flags_go_to_sbatch_in_a_fixed_order_over_the_scripts_lines(
    local: Path, orion_home: Path
) -> None:
    import shlex

    header = "#SBATCH --time=00:05:00\n#SBATCH -p debug --mem=1G -N 1\n"
    script = write_script(local / "run.sbatch", "true\n", header=header)
    flags = ("--partition", "long", "--nodes", "2", "--priority", "8", "--mem", "2G")
    argv = shlex.split(orion("submit", "--script", str(script), *flags, "--dry-run").stdout)
    wanted = ("--partition", "--nodes", "--nice", "--time", "--mem")
    # the flags win over the script's lines; its own --time=00:05:00 stands, so none is added
    assert [a for a in argv if a.startswith(wanted)] == [
        "--partition=long",
        "--nodes=2",
        "--nice=200",
        "--mem=2048M",
    ]
