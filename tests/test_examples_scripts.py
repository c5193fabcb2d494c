"""The example batch scripts in examples/scripts: valid bash, valid #SBATCH lines, and the
pw.x scan's result reaches `orion show` as pw.x itself prints it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orion_cli.sbatch_header import header_resources, parse_header
from tests.helpers import orion, poll_until_final

SCRIPTS = Path(__file__).parent.parent / "examples" / "scripts"
RY_EV = 13.605693122994  # CODATA 2018


@pytest.mark.parametrize("name", ["si-scf.sbatch", "si-ecut-scan.sbatch"])
def test_example_scripts_are_valid(name: str) -> None:
    text = (SCRIPTS / name).read_text()
    subprocess.run(["bash", "-n", str(SCRIPTS / name)], check=True)
    assert header_resources(parse_header(text)).get("walltime_s") in (600, 1200)


def test_ecut_scan_reports_the_energy_pw_prints(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("pw.x") is None:
        pytest.skip("pw.x is not installed")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    bin_dir = Path(sys.executable).parent  # the job calls `orion`: the one of this venv
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    job_id = int(
        orion("submit", "--script", str(SCRIPTS / "si-ecut-scan.sbatch"), "--", "15").stdout
    )
    [job] = poll_until_final([job_id], timeout_s=120)
    assert job["status"] == "completed", job
    by_hand = subprocess.run(
        ["pw.x", "-in", str(tmp_path / "si-15.in")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    ry = float(re.search(r"^!\s+total energy\s+=\s+(\S+) Ry", by_hand, re.M).group(1))
    assert job["result"]["energy_ev"] == pytest.approx(ry * RY_EV, abs=1e-5)
    assert job["result"]["extras"] == {"ecutwfc_ry": 15, "cutoffs": 1}
    assert job["current_step"] == "done: 1 cut-offs"
