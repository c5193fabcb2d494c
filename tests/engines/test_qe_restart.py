"""The soft time limit on real pw.x: it stops cleanly, and the retry continues and completes.

Each attempt is run the way the batch script runs it (``python -m orion_cli.jobrun``), with
SIGUSR1 sent as SLURM's ``--signal=B:USR1@margin`` would. The reference is the same pw.in
run uninterrupted with pw.x by hand.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ase.build import bulk

from orion_cli.engines.qe import QeEngine
from orion_cli.services.structures import extxyz_text
from orion_cli.taskfile import JobInputs, materialize
from tests.engines.conftest import require_binary

RELAX = {
    "calculation": "relax",
    "ecutwfc_ry": 25,
    "kpoints": [6, 6, 6],
    "smearing": "none",
    "conv_thr_ry": 1e-9,
    "force_conv_thr_ry_per_bohr": 1e-4,
}


def energies_ry(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.M)]


def run_attempt(workdir: Path, attempt: int, stop_after_ionic_steps: int = 0) -> int:
    """Run one attempt; with ``stop_after_ionic_steps`` send SIGUSR1 once that many are done.

    The attempt is set in ``job.json``, as orion's retry does: the runner reads it there.
    """
    job_file = workdir / "job.json"
    job_file.write_text(json.dumps({**json.loads(job_file.read_text()), "attempt": attempt}))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orion_cli.jobrun", str(workdir)], cwd=workdir, env=env
    )
    if stop_after_ionic_steps:
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            out = workdir / "pw.out"
            if out.is_file() and len(energies_ry(out.read_text())) >= stop_after_ionic_steps:
                process.send_signal(signal.SIGUSR1)
                break
            time.sleep(0.05)
    return process.wait(timeout=300)


@pytest.mark.engines
def test_soft_limit_then_retry_continues_and_completes(tmp_path: Path) -> None:
    require_binary("pw.x")
    atoms = bulk("Si", "diamond", a=5.43)
    atoms.positions[1] += [0.08, 0.03, 0.0]
    workdir = tmp_path / "job"
    materialize(
        workdir,
        JobInputs(engine="qe", params=QeEngine().check(RELAX, {}), structure=extxyz_text(atoms)),
    )
    reference_dir = tmp_path / "by-hand"
    reference_dir.mkdir()
    shutil.copy(workdir / "pw.in", reference_dir / "pw.in")

    # after two SCF energies at least one ionic move is in the restart files, however late
    # the stop lands (after only one, a loaded machine may stop before the first move)
    first = run_attempt(workdir, 1, stop_after_ionic_steps=2)
    first_result = json.loads((workdir / "result.json").read_text())
    second = run_attempt(workdir, 2)
    second_result = json.loads((workdir / "result.json").read_text())
    by_hand = subprocess.run(
        ["pw.x", "-in", "pw.in"],
        cwd=reference_dir,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=True,
    )

    assert first == 3 and first_result["extras"].get("soft_limit_reached") is True
    assert "stopped at orion's request" in first_result["error"]
    assert "IndexError" not in first_result["error"]
    assert second == 0, second_result["error"]
    assert second_result["converged"] is True
    assert not list(workdir.rglob("orion.EXIT"))  # no stop file left for a later attempt
    attempt_1 = (workdir / "pw-attempt-1.out").read_text()
    attempt_2 = (workdir / "pw.out").read_text()
    assert "Program stopped by user request" in attempt_1
    assert "restart_mode     = 'restart'" in (workdir / "pw.in").read_text()
    # attempt 2 continued: fewer ionic steps than the whole relaxation by hand
    assert len(energies_ry(attempt_2)) < len(energies_ry(by_hand.stdout))
    assert second_result["extras"]["energy_ry"] == pytest.approx(
        energies_ry(by_hand.stdout)[-1], abs=1e-6
    )
