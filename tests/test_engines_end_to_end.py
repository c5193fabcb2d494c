"""Real pw.x and lmp calculations through orion, on the local scheduler and on real SLURM.

Each stored number is compared with the same input run directly here, outside orion.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, need
from tests.helpers import orion, orion_json, poll_until_final

PARAMS = EXAMPLES.parent / "params"
CASES = {
    "qe": (EXAMPLES / "Si.cif", PARAMS / "si-scf.toml", ["pw.x", "-in", "pw.in"], "pw.out"),
    "lammps-eam": (
        EXAMPLES / "Cu.cif",
        PARAMS / "cu-eam-relax.toml",
        ["lmp", "-in", "in.lammps", "-log", "log.lammps"],
        "lammps.out",
    ),
    "lammps-lj": (
        EXAMPLES / "Ar.xyz",
        PARAMS / "ar-lj-md.toml",
        ["lmp", "-in", "in.lammps", "-log", "log.lammps"],
        "lammps.out",
    ),
}


@pytest.fixture(params=["local", pytest.param("slurm", marks=pytest.mark.slurm)])
def scheduler(
    request: pytest.FixtureRequest, orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    if request.param == "slurm":
        request.getfixturevalue("slurm")
    need(
        shutil.which("pw.x") is not None and shutil.which("lmp") is not None,
        "pw.x and lmp (Debian quantum-espresso, lammps)",
    )
    monkeypatch.setenv("ORION_SCHEDULER", request.param)
    return str(request.param)


def direct_energy_ev(case: str, workdir: Path, tmp_path: Path) -> float:
    """Run the job's own input files again with the plain binary and read the energy."""
    _, params, command, stdout_name = CASES[case]
    rerun = tmp_path / f"direct-{case}"
    inputs = [
        p
        for p in workdir.iterdir()
        if p.is_file() and not re.match(r"(events|result|job|attempt-).*|.*\.out$|log\.", p.name)
    ]
    rerun.mkdir()
    for path in inputs:
        shutil.copy(path, rerun / path.name)
    with (rerun / stdout_name).open("w") as out:
        subprocess.run(command, cwd=rerun, stdout=out, stderr=subprocess.STDOUT, check=True)
    if case == "qe":
        from ase.units import Ry

        lines = [ln for ln in (rerun / "pw.out").read_text().splitlines() if ln.startswith("!")]
        return float(lines[-1].split("=")[1].split()[0]) * Ry
    import tomllib

    from orion_cli.engines.lammps import LammpsEngine

    engine = LammpsEngine()
    checked = engine.check(tomllib.loads(params.read_text()), {})
    result = engine.parse(rerun, checked)
    assert result.energy_ev is not None and result.error is None
    return result.energy_ev


@pytest.mark.engines
def test_real_engines_through_orion(scheduler: str, tmp_path: Path) -> None:
    ids = {}
    for case, (structure, params, _, _) in CASES.items():
        engine = case.split("-")[0]
        ids[case] = orion_json(
            "submit", str(structure), "--engine", engine, "--params", str(params), "--name", case
        )["id"]
    # the same SCF on two MPI ranks (mpirun inside the allocation) must give the same energy
    ids["qe-mpi"] = orion_json(
        "submit",
        str(CASES["qe"][0]),
        "--engine",
        "qe",
        "--ntasks",
        "2",
        "--params",
        str(CASES["qe"][1]),
        "--name",
        "qe-mpi",
    )["id"]
    jobs = {job["name"]: job for job in poll_until_final(list(ids.values()), timeout_s=180)}
    assert jobs["qe-mpi"]["status"] == "completed", jobs["qe-mpi"]["error_message"]
    assert jobs["qe-mpi"]["result"]["energy_ev"] == pytest.approx(
        jobs["qe"]["result"]["energy_ev"], abs=1e-5
    )
    assert "running on     2 processors" in (Path(jobs["qe-mpi"]["workdir"]) / "pw.out").read_text()
    for case in CASES:
        job = jobs[case]
        assert job["status"] == "completed", (case, job["error_message"], job["events"])
        stored = job["result"]["energy_ev"]
        assert stored == pytest.approx(
            direct_energy_ev(case, Path(job["workdir"]), tmp_path), abs=1e-6
        ), case
    assert jobs["qe"]["result"]["extras"]  # raw Ry energy, SCF steps
    assert jobs["lammps-eam"]["result"]["final_structure"].count("Cu") >= 4
    orion("ls")
