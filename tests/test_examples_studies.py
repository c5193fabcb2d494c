"""The study examples in examples/studies run as a researcher would run them (`sh FILE`, the
venv's `orion` on PATH, the local scheduler) and end with the answer they promise."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

STUDIES = Path(__file__).parent.parent / "examples" / "studies"
CU_U3_LATTICE_A = 3.615  # fcc Cu of the Foiles-Baskes-Daw u3 EAM potential (and experiment)


def run_example(name: str, orion_home: Path, tmp_path: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "ORION_SCHEDULER": "local",
        "ORION_WAIT_INTERVAL_S": "0.2",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        ["sh", str(STUDIES / name)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, (name, done.stdout, done.stderr)
    return done.stdout + done.stderr


def test_every_study_example_is_tested() -> None:
    tested = {"eos-cu-emt.sh", "relax-then-scf.sh"} | set(ENGINE_EXAMPLES)
    assert {p.name for p in STUDIES.glob("*.sh")} == tested


def test_emt_examples(orion_home: Path, tmp_path: Path) -> None:
    out = run_example("eos-cu-emt.sh", orion_home, tmp_path)
    assert "V0 = " in out and "B0 = " in out and "B′ = " in out and "a0 = " in out
    assert len(list(csv.DictReader((tmp_path / "eos-cu.csv").open()))) == 8
    out = run_example("relax-then-scf.sh", orion_home, tmp_path)
    assert "structure_from_id" in out or "parents" in out


ENGINE_EXAMPLES = ("si-converge-qe.sh", "eos-cu-lammps.sh", "relax-then-scf-qe.sh")


@pytest.mark.engines
@pytest.mark.parametrize("name", ENGINE_EXAMPLES)
def test_engine_examples(name: str, orion_home: Path, tmp_path: Path) -> None:
    need(shutil.which("pw.x") and shutil.which("lmp"), "pw.x and lmp")
    out = run_example(name, orion_home, tmp_path)
    if name == "si-converge-qe.sh":  # the answer printed, from the energies of the csv
        *sweep, _ = csv.DictReader((tmp_path / "si-ecut.csv").open())
        cutoffs = [int(r["param.ecutwfc_ry"]) for r in sweep]
        per_atom = [float(r["energy_per_atom_ev"]) for r in sweep]
        within = [abs(1000 * (e - per_atom[-1])) <= 2 for e in per_atom]
        first = next(n for n in range(len(within)) if all(within[n:]))
        assert cutoffs == [20, 30, 40, 50] and first < len(cutoffs) - 1
        assert f"ecutwfc_ry converged at {cutoffs[first]}:" in out, out
    elif name == "eos-cu-lammps.sh":
        v0 = float(out.split("V0 = ")[1].split()[0])
        assert v0 ** (1 / 3) == pytest.approx(CU_U3_LATTICE_A, abs=0.005)
    else:
        assert "completed" in out and "energy_ev" in out, out
