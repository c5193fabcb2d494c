"""A relaxation stopped at the soft time limit continues on retry (emt and ase engines).

End to end on the local backend: the job runs as a batch script would, the test sends the
runner SIGUSR1 as SLURM's ``--signal=B:USR1@margin`` would, ``orion poll`` records the
TIMEOUT and submits the retry, and the retry starts from the last frame the first attempt
wrote to its trajectory (read back with ASE's own Trajectory reader).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io.trajectory import Trajectory
from ase.optimize import BFGS

from tests.helpers import orion_json, poll_until_final

FMAX_EV_PER_A = 0.0002
RELAX = ("-p", "relax=true", "-p", f"fmax_ev_per_a={FMAX_EV_PER_A}", "-p", "max_steps=3000")


def runner_pid(workdir: str) -> int | None:
    """The process running ``python -m orion_cli.jobrun <workdir>`` (the job's runner)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"orion_cli.jobrun" in words and workdir.encode() in words:
            return int(entry.name)
    return None


def frames_written(path: Path) -> int:
    try:
        with Trajectory(str(path)) as trajectory:
            return len(trajectory)
    except Exception:  # noqa: BLE001 - not there yet, or being written
        return 0


@pytest.mark.parametrize(
    ("engine", "prefix"),
    [
        (("--engine", "emt"), "emt"),
        (("--engine", "ase", "-p", "calculator=ase.calculators.emt.EMT"), "ase"),
    ],
)
def test_soft_limit_stop_then_the_retry_continues_the_relaxation(
    orion_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: tuple[str, ...],
    prefix: str,
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True) * (3, 3, 3)  # ~50 BFGS steps of ~40 ms
    atoms.rattle(0.2, seed=1)
    atoms.write(tmp_path / "Cu108.extxyz", format="extxyz")
    job_id = orion_json(
        "submit", str(tmp_path / "Cu108.extxyz"), *engine, *RELAX, "--retry-delay", "1s"
    )["id"]
    workdir = orion_json("show", str(job_id))["workdir"]
    trajectory = Path(workdir) / f"{prefix}-relax.traj"
    deadline = time.monotonic() + 60
    while frames_written(trajectory) < 4:  # well into the relaxation
        assert time.monotonic() < deadline, "the relaxation did not start"
        time.sleep(0.1)
    pid = runner_pid(workdir)
    assert pid is not None
    os.kill(pid, signal.SIGUSR1)  # what SLURM sends soft_margin_s before the walltime

    [job] = poll_until_final([job_id], timeout_s=120)
    assert job["status"] == "completed", job["error_message"]
    assert [a["reason"] for a in job["attempts"]] == ["timeout", None]
    assert job["attempts"][1]["walltime_s"] == 2 * job["attempts"][0]["walltime_s"]

    first, second = (Path(workdir) / f"{prefix}-relax-attempt-1.traj", trajectory)
    assert (Path(workdir) / f"{prefix}-relax-attempt-1.log").is_file()  # each keeps its own
    with Trajectory(str(first)) as one, Trajectory(str(second)) as two:
        stopped_at, resumed = one[-1], two[0]
        assert len(one) >= 4
        np.testing.assert_allclose(resumed.positions, stopped_at.positions, atol=1e-10)
        assert not np.allclose(resumed.positions, atoms.positions, atol=1e-3)
        assert (
            job["result"]["extras"]["continued_from"]
            == f"{prefix}-relax-attempt-1.traj@{len(one) - 1}"
        )
        assert job["result"]["extras"]["relax_steps"] == len(two) - 1

    reference = atoms.copy()  # the same relaxation run through by hand, uninterrupted
    reference.calc = EMT()
    BFGS(reference, logfile=None).run(fmax=FMAX_EV_PER_A, steps=3000)
    assert job["result"]["energy_ev"] == pytest.approx(reference.get_potential_energy(), abs=1e-5)
    assert job["result"]["converged"] is True
