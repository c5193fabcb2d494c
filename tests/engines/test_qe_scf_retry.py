"""``--on-scf-fail``: one retry with a documented change after pw.x's SCF did not converge.

Real pw.x on the local scheduler, driven by ``orion poll``: a tiny Si SCF with
``electron_maxstep=2`` fails ("convergence NOT achieved"), the retry rewrites pw.in with the
change and completes. The reference is attempt 1's own pw.in, edited by hand here and run
with pw.x directly.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ase.units import Ry

from tests.conftest import EXAMPLES, need
from tests.helpers import orion, orion_json, poll_until_final

SI = str(EXAMPLES / "Si.cif")
TINY = ["--engine", "qe", "-p", "ecutwfc_ry=20", "-p", "kpoints=2,2,2", "-p", "electron_maxstep=2"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (["foo=1"], "engine 'qe' has no parameter 'foo'"),
        (["kpoints=4,4,4"], "'kpoints' cannot change on a retry"),
        (["electron_maxstep=2"], "changes nothing in pw.in"),
        (["electrons.mixing_modee=plain"], "no key 'mixing_modee' in namelist &ELECTRONS"),
        (["electrons.electron_maxstep=100"], "duplicates orion's parameter 'electron_maxstep'"),
        (["mixing_beta=-1"], "must be a positive number"),
        (["mixing_beta"], "is not key=value"),
    ],
)
def test_bad_change_is_refused_at_submit(orion_home: Path, change: list[str], problem: str) -> None:
    args = [arg for pair in change for arg in ("--on-scf-fail", pair)]
    result = orion("submit", SI, *TINY, *args, expect=2)
    assert problem in result.output
    assert "Traceback" not in result.output
    assert not (orion_home / "jobs").exists()  # nothing written


def test_engine_without_scf_is_refused(orion_home: Path) -> None:
    result = orion("submit", SI, "--engine", "emt", "--on-scf-fail", "mixing_beta=0.3", expect=2)
    assert "engine 'emt' has none" in result.output


@pytest.mark.engines
def test_unconverged_scf_is_retried_once_with_the_change(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    asked = orion_json(
        "submit",
        SI,
        *TINY,
        "--name",
        "asked",
        "--on-scf-fail",
        "electron_maxstep=100",
        "--on-scf-fail",
        "mixing_beta=0.5",
    )["id"]
    plain = orion_json("submit", SI, *TINY, "--name", "plain")["id"]
    # a retry that still does not converge is not retried a second time
    twice = orion_json(
        "submit", SI, *TINY, "--name", "twice", "--on-scf-fail", "electron_maxstep=3"
    )["id"]
    jobs = {job["name"]: job for job in poll_until_final([asked, plain, twice], 240)}

    job = jobs["asked"]
    assert job["status"] == "completed", job["error_message"]
    assert job["attempt"] == 2
    assert job["on_scf_fail"]["applied_at_attempt"] == 2
    assert job["parameters"]["electron_maxstep"] == 100
    retried = next(e for e in job["events"] if e["source"] == "retry")
    assert "electrons.electron_maxstep 2 → 100" in retried["message"]
    assert "electrons.mixing_beta 0.7 → 0.5" in retried["message"]
    shown = orion("show", str(asked)).stdout
    assert "electron_maxstep=100 mixing_beta=0.5 (applied to attempt 2)" in shown
    assert "electrons.electron_maxstep 2 → 100" in " ".join(shown.split())

    workdir = Path(job["workdir"])
    assert "convergence NOT achieved" in (workdir / "pw-attempt-1.out").read_text()
    first_input = (workdir / "pw-attempt-1.in").read_text()
    assert re.search(r"electron_maxstep\s*=\s*2\b", first_input)
    # the reference: attempt 1's input with the two values changed by hand, run by pw.x
    by_hand = tmp_path / "by-hand"
    by_hand.mkdir()
    text = re.sub(r"electron_maxstep\s*=\s*2\b", "electron_maxstep = 100", first_input)
    text = re.sub(r"mixing_beta\s*=\s*0\.7\b", "mixing_beta = 0.5", text)
    (by_hand / "pw.in").write_text(text)
    out = subprocess.run(
        ["pw.x", "-in", "pw.in"], cwd=by_hand, capture_output=True, text=True, check=True
    ).stdout
    energy_ry = float(re.findall(r"^!\s+total energy\s+=\s+(-?\d+\.\d+)", out, re.M)[-1])
    assert job["result"]["energy_ev"] == pytest.approx(energy_ry * Ry, abs=1e-6)

    job = jobs["plain"]  # engine errors are not retried without --on-scf-fail
    assert (job["status"], job["failure_reason"], job["attempt"]) == ("failed", "engine_error", 1)
    assert job["next_attempt_at"] is None
    assert "convergence NOT achieved" in job["error_message"]

    job = jobs["twice"]
    assert (job["status"], job["failure_reason"], job["attempt"]) == ("failed", "engine_error", 2)
    assert job["next_attempt_at"] is None
