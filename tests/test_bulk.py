"""Many structures at once: directories, globs, multi-frame files, job arrays, listing."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from orion_cli.config import load_settings
from orion_cli.db.session import get_engine
from orion_cli.errors import UsageError
from orion_cli.services.lifecycle.poll import poll
from orion_cli.services.submission.inputs import expand_inputs
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final


def strained_copper(directory: Path, count: int) -> list[Path]:
    from ase.build import bulk

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.55 + 0.01 * i, cubic=True)
        path = directory / f"cu-{i:03d}.xyz"
        atoms.write(path, format="extxyz")
        paths.append(path)
    return paths


def poll_recording_statements(settings: Any) -> tuple[Any, list[str]]:
    """Run one poll cycle; return its report and the first word of each SQL statement."""
    statements: list[str] = []
    engine = get_engine(settings.resolved_database_url)

    def record(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    try:
        return poll(settings), statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_inputs_expand_directories_globs_and_files(tmp_path: Path) -> None:
    made = strained_copper(tmp_path / "set", 3)
    (tmp_path / "set" / "notes.txt").write_text("not a structure")
    assert [i.path for i in expand_inputs([str(tmp_path / "set")])] == made
    assert [i.path for i in expand_inputs([str(tmp_path / "set" / "cu-00[01].xyz")])] == made[:2]
    with pytest.raises(UsageError, match="no file matches"):
        expand_inputs([str(tmp_path / "*.cif")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="holds no structure files"):
        expand_inputs([str(empty)])


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def scheduler(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "slurm":
        request.getfixturevalue("slurm")
    monkeypatch.setenv("ORION_SCHEDULER", request.param)
    return str(request.param)


def test_a_directory_and_a_trajectory_go_as_one_array(scheduler: str, tmp_path: Path) -> None:
    from ase.io import read, write

    strained_copper(tmp_path / "set", 4)
    frames = [read(EXAMPLES / "Cu.cif") for _ in range(3)]
    for i, atoms in enumerate(frames):
        atoms.positions[0, 0] += 0.05 * i
    write(tmp_path / "moves.extxyz", frames, format="extxyz")
    done = orion_json(
        "submit",
        str(tmp_path / "set"),
        str(tmp_path / "moves.extxyz"),
        "--engine",
        "emt",
        "--tag",
        "screen-1",
    )
    assert len(done["ids"]) == 7 and done["id"] is None
    array_ids = {sid.split("_")[0] for sid in done["scheduler_job_ids"]}
    assert len(array_ids) == 1  # one submission for seven jobs
    assert sorted(int(s.split("_")[1]) for s in done["scheduler_job_ids"]) == list(range(7))
    jobs = poll_until_final(done["ids"])
    assert all(job["status"] == "completed" for job in jobs), [j["events"] for j in jobs]
    by_name = {job["name"]: job for job in jobs}
    assert set(by_name) == {"cu-000", "cu-001", "cu-002", "cu-003", "moves-0", "moves-1", "moves-2"}

    from ase.calculators.emt import EMT

    for i, atoms in enumerate(frames):  # each task ran its own frame
        atoms.calc = EMT()
        assert by_name[f"moves-{i}"]["result"]["energy_ev"] == pytest.approx(
            atoms.get_potential_energy(), abs=1e-6
        )
    assert by_name["moves-1"]["structure_source"].endswith("moves.extxyz@1")
    listing = orion_json("ls", "--tag", "screen-1", "-n", "3")
    assert [row["id"] for row in listing] == sorted(done["ids"], reverse=True)[:3]
    assert orion_json("ls", "--tag", "other") == []
    page2 = orion_json("ls", "--tag", "screen-1", "-n", "3", "--page", "2")
    assert [row["id"] for row in page2] == sorted(done["ids"], reverse=True)[3:6]
    assert "jobs 1-3 of 7" in orion("ls", "--tag", "screen-1", "-n", "3").stdout


def test_dry_run_of_many_prints_array_scripts_and_writes_nothing(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    strained_copper(tmp_path / "set", 3)
    text = orion("submit", str(tmp_path / "set"), "--engine", "emt", "--dry-run").stdout
    assert text.count("#!/bin/bash") == 1 and "SLURM_ARRAY_TASK_ID" in text
    assert not (orion_home / "orion.db").exists() and not (orion_home / "jobs").exists()


@pytest.mark.slurm
def test_held_array_throttle_and_poll_writes_only_changes(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    strained_copper(tmp_path / "set", 30)
    done = orion_json(
        "submit", str(tmp_path / "set"), "--engine", "mock", "--hold", "--throttle", "2"
    )
    array_id = done["scheduler_job_ids"][0].split("_")[0]
    shown = subprocess.run(
        ["scontrol", "show", "job", array_id], capture_output=True, text=True
    ).stdout
    assert "ArrayTaskThrottle=2" in shown
    settings = load_settings()
    first = poll(settings)
    assert first.checked == 30 and first.scheduler_calls == 1 and not first.errors

    again, statements = poll_recording_statements(settings)
    assert again.checked == 30 and not again.changed
    assert "UPDATE" not in statements and "INSERT" not in statements
    orion("cancel", *map(str, done["ids"]))


@pytest.mark.slurm
def test_array_submitted_before_a_crash_is_adopted_not_duplicated(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orion_cli.schedulers.slurm_cli import SlurmCli

    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("ORION_SLURM_BACKEND", "cli")  # the fault is injected into SlurmCli
    strained_copper(tmp_path / "set", 5)
    real = SlurmCli.submit_array
    submitted: list[str] = []

    def submit_then_die(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        submitted.append(real(self, *args, **kwargs))
        raise SystemExit(137)  # orion killed right after sbatch answered

    monkeypatch.setattr(SlurmCli, "submit_array", submit_then_die)
    orion("submit", str(tmp_path / "set"), "--engine", "mock", "--hold", expect=137)
    monkeypatch.setattr(SlurmCli, "submit_array", real)
    assert {row["status"] for row in orion_json("ls")} == {"created"}
    monkeypatch.setenv("ORION_SUBMIT_GRACE_S", "0")
    orion("poll")
    rows = orion_json("ls")
    assert {row["status"] for row in rows} == {"queued"}
    assert sorted(row["scheduler_job_id"] for row in rows) == [
        f"{submitted[0]}_{i}" for i in range(5)
    ]
    orion("cancel", *[str(row["id"]) for row in rows])


def test_a_bad_file_among_many_stops_the_parallel_staging_and_leaves_nothing(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orion_cli.services.submission.staging import PARALLEL_MIN_INPUTS, worker_count

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    paths = strained_copper(tmp_path / "set", PARALLEL_MIN_INPUTS + 6)
    assert worker_count(len(paths)) >= 1  # this batch is staged by worker processes
    paths[-3].write_text("not a structure at all\n")
    result = orion("submit", str(tmp_path / "set"), "--engine", "mock", expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read a structure" in lines[0], lines
    assert paths[-3].name in lines[0] and "Traceback" not in result.output
    work = orion_home / "jobs"
    assert not work.exists() or not any(work.rglob("*")), list(work.rglob("*"))[:3]
    assert not (orion_home / "orion.db").exists()
    paths[-3].unlink()  # without it, all of them go in, in input order
    done = orion_json("submit", str(tmp_path / "set"), "--engine", "mock", "--hold")
    listing = orion_json("ls", "-n", "1000")
    names = {row["id"]: row["name"] for row in listing}
    assert [names[i] for i in done["ids"]] == [p.stem for p in paths if p.exists()]


@pytest.mark.slurm
def test_array_tasks_make_their_own_directories_and_an_unstarted_one_can_be_retried(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ase.calculators.emt import EMT
    from ase.io import read

    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    paths = strained_copper(tmp_path / "set", 3)
    done = orion_json("submit", str(tmp_path / "set"), "--engine", "emt", "--hold")
    first, second, third = done["ids"]
    workdirs = [Path(orion_json("show", str(i))["workdir"]) for i in done["ids"]]
    assert not any(w.exists() for w in workdirs)  # one tasks file, no directory per job
    orion("cancel", str(second))
    orion("retry", str(second))  # runs alone now: its directory is made before sbatch
    assert (workdirs[1] / "job.json").exists() and (workdirs[1] / "job.sh").exists()
    # first runs as array task 0 and makes its directory on the node; second was held (the
    # array was submitted --hold), so its retry is held too until released
    orion("release", str(first), str(second))
    jobs = poll_until_final([first, second])
    assert [job["status"] for job in jobs] == ["completed", "completed"], [
        job["events"] for job in jobs
    ]
    for job, path in zip(jobs, paths, strict=False):
        atoms = read(path)
        atoms.calc = EMT()
        assert job["result"]["energy_ev"] == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    assert jobs[1]["attempt"] == 2 and not workdirs[2].exists()
    orion("cancel", str(third))


@pytest.mark.slurm
def test_a_whole_array_ending_at_once_is_written_in_a_few_statements(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    strained_copper(tmp_path / "set", 40)
    done = orion_json("submit", str(tmp_path / "set"), "--engine", "mock", "--hold")
    subprocess.run(["scancel", done["scheduler_job_ids"][0].split("_")[0]], check=True)
    report, statements = poll_recording_statements(load_settings())
    assert set(report.changed.values()) == {"cancelled"} and len(report.changed) == 40
    writes = [s for s in statements if s in ("INSERT", "UPDATE")]
    assert len(writes) <= 6, writes  # jobs, attempts, events: one executemany each, not 40 × 3
    assert {row["status"] for row in orion_json("ls", "-n", "100")} == {"cancelled"}


@pytest.mark.slurm
def test_a_task_cancelled_outside_orion_before_it_started_ends_cancelled_not_lost(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM forgets a never-started task cancelled by ``scancel 12_1`` (no squeue/sacct record)."""
    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    monkeypatch.setenv("ORION_LOST_GRACE_S", "0")  # would be called lost at once otherwise
    strained_copper(tmp_path / "set", 3)
    done = orion_json("submit", str(tmp_path / "set"), "--engine", "mock", "--hold")
    subprocess.run(["scancel", done["scheduler_job_ids"][1]], check=True)
    orion("poll")  # first miss: noted, not acted on
    orion("poll")
    jobs = [orion_json("show", str(i)) for i in done["ids"]]
    assert [(j["status"], j["failure_reason"]) for j in jobs] == [
        ("queued", None),
        ("cancelled", "cancelled_externally"),
        ("queued", None),
    ]
    orion("poll")
    assert orion_json("show", str(done["ids"][1]))["attempt"] == 1  # not retried
    orion("cancel", str(done["ids"][0]), str(done["ids"][2]))


@pytest.mark.slurm
def test_an_error_found_while_the_reader_reads_stops_it_and_writes_nothing(
    orion_home: Path, slurm: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orion_cli.services.submission.staging import PARALLEL_MIN_INPUTS

    monkeypatch.setenv("ORION_SCHEDULER", "slurm")
    strained_copper(tmp_path / "set", PARALLEL_MIN_INPUTS + 6)
    result = orion(
        "submit", str(tmp_path / "set"), "--engine", "mock", "--partition", "gpu", expect=2
    )
    assert result.stderr.count("\n") == 1 and "partition 'gpu' does not exist" in result.stderr
    assert not (orion_home / "orion.db").exists()
    assert not any((orion_home / "jobs").rglob("*")) if (orion_home / "jobs").exists() else True


def test_a_killed_submit_leaves_no_reader_behind(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of `orion submit` while its reader reads: the reader and its helpers die too
    (else they would hold the terminal's pipes open, and a caller waiting for EOF hangs)."""
    import signal
    import sys
    import time

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    strained_copper(tmp_path / "set", 300)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orion_cli",
            "submit",
            str(tmp_path / "set"),
            "--engine",
            "mock",
            "--hold",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    children: list[str] = []
    while not children and time.monotonic() < deadline and proc.poll() is None:
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        time.sleep(0.01)
    assert children, "the submit never started its reader"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)  # EOF: no process of the submit holds its pipes any more

    def alive(pid: str) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)  # the kernel delivers the parent-death signal asynchronously
    assert not [pid for pid in children if alive(pid)]
