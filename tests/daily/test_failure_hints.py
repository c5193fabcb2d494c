"""Issue 26, help on failure: the usual remedy for pw.x's and LAMMPS's common errors, from
outputs of the real programs (tests/data/engine_errors: pw.x 6.7 and LAMMPS 29 Sep 2021 run
by hand on the deliberately bad inputs beside them); a plain retry of such a job asks first."""

from __future__ import annotations

from pathlib import Path

import pytest

from orion_cli.engines.hints import remedy
from orion_cli.engines.lammps import lammps_error
from orion_cli.engines.qe import pw_error
from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

DATA = Path(__file__).resolve().parent.parent / "data" / "engine_errors"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("pw-scf-not-converged.out", "mixing_beta=0.3"),
        ("pw-too-few-bands.out", "-p system.nbnd=N"),
    ],
)
def test_pw_errors_from_real_outputs_get_a_remedy(output: str, expected: str) -> None:
    error = pw_error((DATA / output).read_text())
    assert error is not None
    assert expected in (remedy("qe", error, 7) or "")
    assert "orion retry 7" in (remedy("qe", error, 7) or "")


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ("lammps-lost-atoms.log", "timestep_fs=0.5"),
        ("lammps-out-of-range.log", "timestep_fs=0.5"),
    ],
)
def test_lammps_errors_from_real_logs_get_a_remedy(log: str, expected: str) -> None:
    error = lammps_error((DATA / log).read_text(), "")
    assert error is not None and error.startswith("lmp: ERROR")
    assert expected in (remedy("lammps", error, 3) or "")


@pytest.mark.parametrize(
    ("error", "expected"),
    [  # pw.x's words as its sources print them (not produced here by a small input)
        ("pw.x: Error in routine checkallsym (2): not orthogonal operation", "nosym=true"),
        ("pw.x: Error in routine cdiaghg (12): S matrix not positive definite", "diagonalization"),
        ("pw.x: Error in routine cdiaghg (28): problems computing cholesky", "diagonalization"),
    ],
)
def test_pw_errors_named_in_the_issue_get_a_remedy(error: str, expected: str) -> None:
    assert expected in (remedy("qe", error) or "")


def test_show_hints_and_plain_retry_asks_first(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    job_id = int(
        orion_json(
            "submit",
            str(EXAMPLES / "Si.cif"),
            "--engine",
            "qe",
            "-p",
            "kpoints=2,2,2",
            "-p",
            "ecutwfc_ry=15",
            "-p",
            "smearing=none",
            "-p",
            "electron_maxstep=3",
            "--retries",
            "0",
        )["id"]
    )
    (job,) = poll_until_final([job_id], timeout_s=180)
    assert (job["status"], job["failure_reason"]) == ("failed", "engine_error")
    assert "convergence NOT achieved" in job["error_message"]
    assert f"orion retry {job_id} -p mixing_beta=0.3" in job["hint"]
    shown = " ".join(orion("show", str(job_id)).stdout.split())
    assert "hint the SCF did not converge: retry with a gentler mixing" in shown
    refused = orion("retry", str(job_id), expect=2)
    assert "will fail the same way" in refused.stderr and "--yes" in refused.stderr
    assert orion_json("show", str(job_id))["attempt"] == 1  # nothing submitted
    orion("retry", str(job_id), "-p", "electron_maxstep=100")  # a change: no question
    assert orion_json("show", str(job_id))["attempt"] == 2
    orion("cancel", str(job_id))
