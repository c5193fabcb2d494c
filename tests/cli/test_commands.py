"""`orion engines` and `orion doctor` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json


def test_engines_lists_every_engine_with_parameters(orion_home: Path) -> None:
    engines = {e["name"]: e for e in orion_json("engines")}
    assert {"mock", "emt", "qe", "lammps", "vasp"} <= set(engines)
    assert engines["qe"]["available"] == (shutil.which("pw.x") is not None)
    assert engines["vasp"]["available"] == (shutil.which("vasp_std") is not None)
    qe_params = {p["name"]: p for p in engines["qe"]["parameters"]}
    assert qe_params["ecutwfc_ry"]["unit"] == "Ry"
    assert "relax" in {p["name"] for p in engines["emt"]["parameters"]}
    text = orion("engines").stdout
    assert "ecutwfc_ry" in text and "emt" in text
    # a parameter with a fixed set of values lists them (the new-user trial had to guess)
    from orion_cli.engines.lammps import LammpsEngine

    task = next(p for p in LammpsEngine.parameters if p.name == "task")
    lammps = text[text.index(" lammps ") :]  # chgnet and sevennet have a task parameter too
    line = next(x for x in lammps.splitlines() if x.split()[:1] == ["task"])
    assert line.endswith(f"(one of: {', '.join(task.choices)})"), line


def test_doctor_reports_and_fails_on_a_broken_database(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    checks = {c["name"]: c for c in orion_json("doctor")}
    assert checks["database"]["ok"] and checks["schema"]["ok"]
    assert checks["scheduler local"]["ok"]
    monkeypatch.setenv("ORION_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    result = orion("doctor", expect=1)
    assert "FAIL database" in result.stdout


@pytest.mark.postgres
def test_postgres_schema_must_be_upgraded_explicitly(
    orion_home: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_DATABASE_URL", postgres_url)
    result = orion("ls", expect=1)
    assert "orion db upgrade" in result.stderr and result.stderr.count("\n") == 1
    assert orion_json("db", "upgrade")["to"]
    assert orion_json("ls") == []


def test_database_down_is_one_line(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORION_DATABASE_URL", "postgresql://postgres:secret@127.0.0.1:1/orion")
    result = orion("poll", expect=1)
    assert result.stderr.startswith("error: cannot use database") and "secret" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_per_species_values_pass_through_param(orion_home: Path, tmp_path: Path) -> None:
    """`-p epsilon_ev=Ar=0.0104,Kr=0.014` reaches the engine as the table it is."""
    from ase.build import bulk
    from ase.io import write

    atoms = bulk("Ar", "fcc", a=5.3).repeat((2, 2, 2))
    atoms.symbols[::3] = "Kr"
    write(tmp_path / "ArKr.xyz", atoms, format="extxyz")
    done = orion(
        "submit",
        str(tmp_path / "ArKr.xyz"),
        "--engine",
        "lammps",
        "--dry-run",
        "-p",
        "epsilon_ev=Ar=0.0104,Kr=0.014",
        "-p",
        "sigma_a=Ar=3.40,Kr=3.65",
        "-p",
        "cutoff_a=8.0",
        "--scheduler",
        "local",
    )
    assert "pair_coeff" not in done.stderr and done.exit_code == 0


def test_json_mode_prints_one_json_document_for_an_error_too(orion_home: Path) -> None:
    """README: every command with --json prints one JSON document on stdout (it printed
    nothing on an error); the one-line message still goes to stderr."""
    done = orion("show", "424242", "--json", expect=2)
    document = json.loads(done.stdout)
    assert document["error"] == "no job with id 424242" and document["exit_code"] == 2
    assert done.stderr.startswith("error: no job with id 424242")


def test_engine_errors_in_a_batch_name_the_input(orion_home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("Cu.cif", "Si.cif"):
        shutil.copy(EXAMPLES / name, folder / name)
    done = orion("submit", str(folder), "--engine", "emt", "--scheduler", "local", expect=2)
    assert done.stderr.startswith(f"error: {folder / 'Si.cif'}: emt has no parameters for Si")


def test_a_manual_retry_past_the_budget_does_not_count_beyond_it(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("ORION_WAIT_INTERVAL_S", "0.3")
    waited = orion(
        "submit",
        str(EXAMPLES / "Cu.cif"),
        "--engine",
        "mock",
        "-p",
        "duration_s=0",
        "-p",
        "fail=true",
        "--retries",
        "1",
        "--wait",
        "--json",
        expect=1,  # --wait exits 1 when a job did not complete, with --json too
    )
    job_id = json.loads(waited.stdout)["id"]
    assert orion_json("show", str(job_id))["status"] == "failed"
    orion("retry", str(job_id), "--yes")
    last = orion_json("show", str(job_id))["events"][-1]["message"]
    assert last.startswith("attempt 2 (orion retry)"), last  # was "attempt 2 of 2"
