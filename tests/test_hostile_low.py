"""Low items of the hostile-input probe of 2026-12-06 (B12, B13, B15, B23, B25, B29): each
gave a traceback, a hang or a wrong answer before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import orion


def _progress(*args: str, job_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orion_cli", "progress", *args],
        env={**os.environ, "ORION_JOB_DIR": str(job_dir), "ORION_ATTEMPT": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_b15_progress_in_an_unwritable_job_dir_is_one_line(tmp_path: Path) -> None:
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "events.jsonl").mkdir()  # appending fails with an OSError, even for root
    done = _progress("50", "step", job_dir=job_dir)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("warning: orion progress not recorded")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("word", ["1_0", "٥٠", "５0"])
def test_b29_progress_takes_only_plainly_written_numbers(tmp_path: Path, word: str) -> None:
    done = _progress(word, job_dir=tmp_path)
    assert done.returncode == 2 and "is not a percentage" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("flag", "value"), [("--walltime", "５m"), ("--mem", "４G"), ("--walltime", "1_0m")]
)
def test_b29_resources_take_only_ascii_digits(orion_home: Path, flag: str, value: str) -> None:
    from tests.conftest import EXAMPLES

    done = orion("submit", str(EXAMPLES / "Cu.cif"), "-e", "mock", flag, value, expect=2)
    assert "internal error" not in done.stderr


@pytest.mark.parametrize(
    "sweep",
    ["seed=-1e308:1e308:1", "duration_s=1e308:-1e308:-1", "seed=1:2:1e-300", "seed=1_0,20"],
)
def test_b12_b29_sweeps_are_refused_in_one_line(sweep: str) -> None:
    from orion_cli.errors import UsageError
    from orion_cli.services.studies.converge import parse_sweep

    with pytest.raises(UsageError) as caught:
        parse_sweep(sweep)
    assert len(caught.value.one_line()) < 200  # not a 300-digit count


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orion_cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,  # a FIFO made `orion ls` wait for ever before
    )


@pytest.mark.parametrize("args", [["ls"], ["ls", "--count"], ["poll"]])
def test_b13_a_fifo_database_file_is_refused(orion_home: Path, tmp_path: Path, args: list[str]):  # type: ignore[no-untyped-def]
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)
    done = _run(*args, ORION_DATABASE_URL=f"sqlite:///{fifo}")
    assert done.returncode == 2, done.stderr
    assert "is not a regular file" in done.stderr or "is a FIFO" in done.stderr


def test_b25_a_fifo_or_device_as_params_or_workflow_file(orion_home: Path, tmp_path: Path) -> None:
    from tests.conftest import EXAMPLES

    fifo = tmp_path / "params.toml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device")):
        done = _run("submit", str(EXAMPLES / "Cu.cif"), "-e", "mock", "--params", str(path))
        assert done.returncode == 2 and f"is {kind}, not a regular file" in done.stderr
        done = _run("workflow", "submit", str(path), str(EXAMPLES / "Cu.cif"))
        assert done.returncode == 2 and f"is {kind}, not a regular file" in done.stderr


def test_b12_a_long_chain_and_deep_toml_are_not_a_recursion_error(tmp_path: Path) -> None:
    from orion_cli.errors import UsageError
    from orion_cli.services.studies.workflow_file import read_workflow

    chain = tmp_path / "chain.toml"
    steps = [f'[steps.s{i}]\nengine = "mock"\nneeds = ["s{i - 1}"]\n' for i in range(1499, 0, -1)]
    chain.write_text("".join(steps) + '[steps.s0]\nengine = "mock"\n')
    flow = read_workflow(chain, ["mock"])
    assert [s.name for s in flow.steps][:3] == ["s0", "s1", "s2"] and len(flow.steps) == 1500
    deep = tmp_path / "deep.toml"
    deep.write_text(
        '[steps.a]\nengine = "mock"\nparams = { seed = ' + "[" * 5000 + "]" * 5000 + " }\n"
    )
    with pytest.raises(UsageError, match="nested too deeply"):
        read_workflow(deep, ["mock"])


def test_b20_the_cron_line_keeps_the_database_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orion_cli.config import Settings
    from orion_cli.services.lifecycle.freshness import cron_line

    monkeypatch.setenv("ORION_DATABASE_URL", "postgresql://ann:TopSecretZ@db.lab:5432/orion")
    line = cron_line(Settings())
    assert "ORION_DATABASE_URL=postgresql://ann@db.lab:5432/orion " in line
    assert "TopSecretZ" not in line


def test_b27_a_planted_project_file_is_skipped_with_a_warning(tmp_path: Path) -> None:
    import pwd

    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    nobody = pwd.getpwnam("nobody").pw_uid
    shared = tmp_path / "shared"
    project = shared / "project"
    project.mkdir(parents=True)
    planted = shared / "orion.toml"
    planted.write_text('scheduler = "slurm"\n')
    os.chown(planted, nobody, nobody)
    env = {"ORION_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "orion_cli", "ls"],
        env={**os.environ, **env},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr  # exit 2 for everyone below it before
    assert done.stderr.startswith(f"warning: config file {planted} belongs to nobody")
    planted.unlink()
    trusted_target = tmp_path / "root-owned.toml"
    trusted_target.write_text('scheduler = "slurm"\n')
    planted.symlink_to(trusted_target)
    os.lchown(planted, nobody, nobody)  # a link someone else made, to a root-owned file
    done = subprocess.run(
        [sys.executable, "-m", "orion_cli", "ls"],
        env={**os.environ, **env},
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "belongs to nobody" in done.stderr, done.stderr


def test_b28_array_task_directories_are_private(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import stat

    from tests.conftest import EXAMPLES
    from tests.helpers import orion_json, poll_until_final

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    previous = os.umask(0o022)  # a usual umask: directories would be 0755
    try:
        cu = str(EXAMPLES / "Cu.cif")
        jobs = orion_json("submit", cu, cu, "--engine", "mock", "-p", "duration_s=0")
        ids = [job["id"] for job in jobs] if isinstance(jobs, list) else jobs["ids"]
        finished = poll_until_final(ids)
    finally:
        os.umask(previous)
    for job in finished:
        assert job["status"] == "completed", job
        assert stat.S_IMODE(Path(job["workdir"]).stat().st_mode) == 0o700, job["workdir"]


def test_b16_a_poll_stamp_that_cannot_be_written_is_one_line(orion_home: Path) -> None:
    from orion_cli.config import load_settings
    from orion_cli.services.lifecycle.freshness import stamp_path

    orion("ls")  # makes the database
    stamp_path(load_settings()).mkdir(parents=True)  # the stamp cannot be written there
    done = orion("poll", expect=None)
    assert "internal error" not in done.stderr, done.stderr
    assert "poll stamp not written" in done.stderr and done.exit_code == 1
