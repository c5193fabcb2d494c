"""Issue 26, files back: a continued MD's trajectory (defect 10: attempt 1's part was
referenced nowhere), ``orion files --trajectory`` stitching the attempts with each step once,
``orion path``, ``orion results -f extxyz --trajectory``, and a per-project ``work_root``.

The MD is stopped by a real SIGUSR1 (what SLURM's ``--signal=B:USR1@margin`` sends) on the
local backend; the reference for the stitched steps is the dump of attempt 1's own script
run uninterrupted with lmp by hand."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ase.io import read

from orion_cli.services.queries.files import dump_steps
from tests.conftest import EXAMPLES, need
from tests.engines.test_ase_restart import runner_pid
from tests.engines.test_lammps_restart import MD, steps_logged
from tests.helpers import orion, orion_json, poll_until_final


@pytest.mark.engines
def test_continued_md_trajectory_is_whole_and_stitched(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("lmp") is not None, "lmp (Debian lammps)")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    atoms = read(EXAMPLES / "Ar.xyz") * (3, 3, 3)
    atoms.write(tmp_path / "Ar864.extxyz", format="extxyz")
    job_id = orion_json("submit", str(tmp_path / "Ar864.extxyz"), *MD, "--retry-delay", "1s")["id"]
    workdir = Path(orion_json("show", str(job_id))["workdir"])
    deadline = time.monotonic() + 60
    while steps_logged(workdir / "log.lammps") < 2500:  # past a few dumps
        assert time.monotonic() < deadline, "the md did not start"
        time.sleep(0.1)
    pid = runner_pid(str(workdir))
    assert pid is not None
    os.kill(pid, signal.SIGUSR1)
    [job] = poll_until_final([job_id], timeout_s=180)
    assert job["status"] == "completed", job["error_message"]
    assert job["result"]["extras"]["trajectory_files"] == ["traj-attempt-1.dump", "traj.dump"]

    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    for name in ("structure.data", "in-attempt-1.lammps"):
        shutil.copy(workdir / name, by_hand / name)
    subprocess.run(
        ["lmp", "-in", "in-attempt-1.lammps", "-log", "log.lammps"],
        cwd=by_hand,
        capture_output=True,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    reference_steps = dump_steps((by_hand / "traj.dump").read_text())
    assert reference_steps[0] == 0 and reference_steps[-1] == 30000

    assert orion("path", str(job_id)).stdout == f"{workdir}\n"
    listing = orion("files", str(job_id))
    assert "traj-attempt-1.dump + traj.dump" in listing.stderr
    out = tmp_path / "md.extxyz"
    wrote = orion("files", str(job_id), "--trajectory", "-o", str(out))
    frames = read(out, ":")
    steps = [a.info["timestep"] for a in frames]
    assert steps == sorted(set(steps))  # each step once, in order
    assert set(reference_steps) <= set(steps)  # every step the uninterrupted run dumped
    raw = dump_steps((workdir / "traj-attempt-1.dump").read_text()) + dump_steps(
        (workdir / "traj.dump").read_text()
    )
    assert len(steps) == len(set(raw))  # only the seam's repeats were dropped
    assert f"wrote {len(frames)} frames, steps 0–30000" in wrote.stderr
    assert all(len(a) == 864 for a in frames)

    together = tmp_path / "all.extxyz"
    orion("results", str(job_id), "-f", "extxyz", "--trajectory", "-o", str(together))
    again = read(together, ":")
    assert len(again) == len(frames) and {a.info["orion_id"] for a in again} == {job_id}


def test_files_of_a_job_without_trajectory_and_bad_options(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt")["id"]
    poll_until_final([job_id])
    listing = orion_json("files", str(job_id))
    assert "job.json" in [f["name"] for f in listing["files"]] and listing["trajectory"] == []
    none = orion("files", str(job_id), "--trajectory", expect=2)
    assert f"job {job_id} has no trajectory (engine emt)" in none.stderr
    assert "add --trajectory" in orion("files", str(job_id), "-o", "x.extxyz", expect=2).stderr
    assert not Path("x.extxyz").exists()
    assert "add -f extxyz" in orion("results", str(job_id), "--trajectory", expect=2).stderr
    assert "no job with id 999" in orion("path", "999", expect=2).stderr


def test_project_work_root_is_beside_its_orion_toml(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    project = tmp_path / "project"
    (project / "deep" / "er").mkdir(parents=True)
    (project / "orion.toml").write_text('work_root = "./runs"\n')
    (project / "orion.toml").chmod(0o600)
    monkeypatch.chdir(project / "deep" / "er")  # submitted from below the project file
    job_id = orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt")["id"]
    workdir = Path(orion("path", str(job_id)).stdout.strip())
    assert workdir.parent.parent == project / "runs"
    poll_until_final([job_id])
    assert (workdir / "job.json").is_file()
