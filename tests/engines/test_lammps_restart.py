"""LAMMPS at the soft time limit: stopped by a real SIGUSR1, the retry continues the run.

End to end on the local backend, driven by ``orion poll``: the test sends the job's runner
SIGUSR1 as SLURM's ``--signal=B:USR1@margin`` would; LAMMPS stops, writes its restart file,
the poller retries, and attempt 2 continues from the step attempt 1 stopped at. The
reference is attempt 1's own script run uninterrupted with lmp by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from ase.io import read

from orion_cli.engines.lammps import thermo_rows
from tests.conftest import EXAMPLES, need
from tests.engines.test_ase_restart import runner_pid
from tests.helpers import orion_json, poll_until_final

MD = (
    "--engine",
    "lammps",
    "-p",
    "task=md",
    "-p",
    "pair_style=lj/cut",
    "-p",
    "epsilon_ev=0.0104",
    "-p",
    "sigma_a=3.4",
    "-p",
    "cutoff_a=8.5",
    "-p",
    "thermostat=nve",
    "-p",
    "temperature_k=40",
    "-p",
    "seed=4711",
    "-p",
    "steps=30000",
    "-p",
    "thermo_every=100",
    "-p",
    "dump_every=1000",
)


def steps_logged(log: Path) -> int:
    rows = thermo_rows(log.read_text()) if log.is_file() else []
    return int(rows[-1][0]) if rows else 0


@pytest.mark.engines
def test_soft_limit_stop_then_the_retry_continues_the_md(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("lmp") is not None, "lmp (Debian lammps)")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    atoms = read(EXAMPLES / "Ar.xyz") * (3, 3, 3)  # 864 atoms: ~4000 steps a second
    atoms.write(tmp_path / "Ar864.extxyz", format="extxyz")
    job_id = orion_json("submit", str(tmp_path / "Ar864.extxyz"), *MD, "--retry-delay", "1s")["id"]
    workdir = Path(orion_json("show", str(job_id))["workdir"])
    deadline = time.monotonic() + 60
    while steps_logged(workdir / "log.lammps") < 500:  # well into the run
        assert time.monotonic() < deadline, "the md did not start"
        time.sleep(0.1)
    pid = runner_pid(str(workdir))
    assert pid is not None
    os.kill(pid, signal.SIGUSR1)  # what SLURM sends soft_margin_s before the walltime

    [job] = poll_until_final([job_id], timeout_s=180)
    assert job["status"] == "completed", job["error_message"]
    assert [a["reason"] for a in job["attempts"]] == ["timeout", None]
    stopped = next(e for e in job["events"] if e["reason"] == "timeout")
    assert "stopped at orion's request" in stopped["message"]

    first = thermo_rows((workdir / "log-attempt-1.lammps").read_text())
    second = thermo_rows((workdir / "log.lammps").read_text())
    halted = re.findall(
        r"halt condition .* met on step (\d+)", (workdir / "log-attempt-1.lammps").read_text()
    )
    stop_step = int(halted[0])
    assert first[-1][0] <= stop_step < 30000  # stopped early; halted between thermo rows
    assert second[0][0] == stop_step  # attempt 2 starts where attempt 1 stopped
    assert second[-1][0] == 30000
    assert job["result"]["extras"]["continued_from"] == f"orion.restart@step {halted[0]}"
    assert (workdir / "lammps-attempt-1.out").is_file()
    assert (workdir / "traj-attempt-1.dump").is_file()
    assert "read_data" in (workdir / "in-attempt-1.lammps").read_text()
    assert "read_restart orion.restart" in (workdir / "in.lammps").read_text()
    assert not (workdir / "orion.STOP").exists()

    by_hand = tmp_path / "by-hand"  # attempt 1's script, uninterrupted
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
    reference = thermo_rows((by_hand / "log.lammps").read_text())
    assert reference[-1][0] == 30000
    # the same trajectory: every thermo row the two attempts wrote is the uninterrupted run's
    by_step = {row[0]: row for row in reference}
    for row in first + second[1:]:
        assert row[1:] == pytest.approx(by_step[row[0]][1:], rel=1e-9, abs=1e-9), row[0]
    assert job["result"]["energy_ev"] == pytest.approx(reference[-1][2], rel=1e-9)
    assert job["result"]["extras"]["total_energy_ev"] == pytest.approx(reference[-1][4], rel=1e-9)
