"""The qe engine: pw.x input written by ASE, real pw.x runs, numbers checked independently."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from orion_cli.engines.qe import QeEngine
from orion_cli.engines.qe_pseudo import choose
from orion_cli.errors import UsageError
from tests.conftest import EXAMPLES, need
from tests.engines.conftest import RunEngine
from tests.helpers import orion_json, poll_until_final

FAST_SI = {"ecutwfc_ry": 15, "kpoints": [2, 2, 2], "smearing": "none", "conv_thr_ry": 1e-8}


def silicon() -> Atoms:
    """Return 2-atom diamond Si."""
    return bulk("Si", "diamond", a=5.43)


def total_energies_ev(pw_out: Path) -> list[float]:
    """Grep pw.x's '!    total energy' lines and convert Ry to eV."""
    from ase.units import Ry

    text = pw_out.read_text()
    return [float(v) * Ry for v in re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", text, re.M)]


@pytest.mark.engines
def test_si_scf_matches_pw_output(tmp_path: Path, run_engine: RunEngine) -> None:
    import ase.io

    result = run_engine(QeEngine(), silicon(), FAST_SI, tmp_path)

    assert result.error is None and result.converged is True
    assert result.energy_ev == pytest.approx(total_energies_ev(tmp_path / "pw.out")[-1], abs=1e-6)
    reference = ase.io.read(tmp_path / "pw.out", format="espresso-out")
    assert np.allclose(result.forces_ev_per_a, reference.get_forces(), atol=1e-8)
    assert np.allclose(result.stress_ev_per_a3, reference.get_stress(), atol=1e-8)
    iterations = len(re.findall(r"iteration #", (tmp_path / "pw.out").read_text()))
    assert result.extras["scf_iterations"] == [iterations]
    assert result.extras["pseudopotentials"] == {"Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"}
    final = ase.io.read(__import__("io").StringIO(result.final_structure), format="extxyz")
    assert final.get_chemical_symbols() == ["Si", "Si"]
    assert np.allclose(final.cell, silicon().cell, atol=1e-6)


@pytest.mark.engines
def test_si_relax_moves_atoms_to_zero_force(tmp_path: Path, run_engine: RunEngine) -> None:
    atoms = silicon()
    atoms.positions[1] += [0.05, 0.0, 0.0]

    result = run_engine(QeEngine(), atoms, {**FAST_SI, "calculation": "relax"}, tmp_path)

    assert result.error is None and result.converged is True
    energies = total_energies_ev(tmp_path / "pw.out")
    assert result.extras["ionic_steps"] == len(energies) > 1
    assert result.energy_ev == pytest.approx(energies[-1], abs=1e-6)
    assert result.energy_ev < energies[0]
    assert np.abs(result.forces_ev_per_a).max() < 0.05


@pytest.mark.engines
def test_unconverged_scf_is_an_error(tmp_path: Path, run_engine: RunEngine) -> None:
    params = {**FAST_SI, "electron_maxstep": 1, "conv_thr_ry": 1e-12}

    result = run_engine(QeEngine(), silicon(), params, tmp_path)

    assert result.error is not None and "convergence NOT achieved" in result.error
    assert result.energy_ev is None


def test_missing_output_is_an_error(tmp_path: Path) -> None:
    assert "pw.out" in (QeEngine().parse(tmp_path, {}).error or "")


def test_truncated_output_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pw.out").write_text("     Program PWSCF v.6.7MaX starts on  1Jan2026\n")

    error = QeEngine().parse(tmp_path, {}).error or ""

    assert "JOB DONE" in error and "Program PWSCF" in error


def test_pw_error_box_is_reported(tmp_path: Path) -> None:
    (tmp_path / "pw.out").write_text(
        " %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n"
        "     Error in routine readpp (1):\n"
        "     file /nowhere/Si.UPF not found\n"
        " %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%\n"
    )

    error = QeEngine().parse(tmp_path, {}).error

    assert error == "pw.x: Error in routine readpp (1): file /nowhere/Si.UPF not found"


def test_missing_pseudopotential_names_element_and_fix(tmp_path: Path) -> None:
    (tmp_path / "Si.pbe-rrkj.UPF").write_text("")
    atoms = Atoms("SiC", positions=[[0, 0, 0], [1, 1, 1]], cell=[4, 4, 4], pbc=True)

    with pytest.raises(UsageError) as info:
        QeEngine().prepare(atoms, {}, tmp_path / "job", {"pseudo_dir": str(tmp_path)})

    assert "element C " in info.value.message and str(tmp_path) in info.value.message
    assert info.value.hint is not None and "-p pseudo.C=FILE" in info.value.hint


def test_pseudopotential_rule_prefers_functional_then_nonrelativistic(tmp_path: Path) -> None:
    for name in (
        "Si.pz-vbc.UPF",
        "Si.rel-pbe-rrkj.UPF",
        "Si.pbe-rrkj.UPF",
        "Si_r.upf",
        "Sn.pbe-dn.UPF",
        "S.pbe-n.UPF",
        "CorelUSPBE.RRKJ3.UPF",
        "C.pz-rrkjus.UPF",
    ):
        (tmp_path / name).write_text("")

    chosen = {el: choose(el, {}, {}, tmp_path) for el in ("C", "S", "Si")}
    configured = choose("Si", {}, {"pseudopotentials": {"Si": "Si_r.upf"}}, tmp_path)

    assert {el: c.path.name for el, c in chosen.items()} == {
        "C": "C.pz-rrkjus.UPF",
        "S": "S.pbe-n.UPF",
        "Si": "Si.pbe-rrkj.UPF",
    }
    assert {c.why for c in chosen.values()} == {"default rule"}
    assert (configured.path, configured.why) == (
        tmp_path / "Si_r.upf",
        "[engines.qe] pseudopotentials",
    )


def test_written_input_reads_back(tmp_path: Path) -> None:
    from ase.io.espresso import read_espresso_in, read_fortran_namelist

    atoms = silicon()
    params = {
        "calculation": "vc-relax",
        "ecutwfc_ry": 25,
        "ecutrho_ry": 200,
        "kspacing_per_a": 0.5,
        "spin": True,
        "press_kbar": 10.0,
    }
    pseudo_dir = tmp_path / "pseudo"
    pseudo_dir.mkdir()
    (pseudo_dir / "Si.pbe-rrkj.UPF").write_text("")

    spec = QeEngine().prepare(
        atoms, params, tmp_path, {"pseudo_dir": str(pseudo_dir), "binary": "pw.x -nk 2"}
    )

    assert spec.command == ("pw.x", "-nk", "2", "-in", "pw.in") and spec.mpi
    with open(tmp_path / "pw.in") as handle:
        back = read_espresso_in(handle)
    assert np.allclose(back.cell, atoms.cell) and np.allclose(back.positions, atoms.positions)
    with open(tmp_path / "pw.in") as handle:
        namelists, cards = read_fortran_namelist(handle)
    assert namelists["control"]["calculation"] == "vc-relax"
    assert namelists["system"]["ecutwfc"] == 25 and namelists["system"]["ecutrho"] == 200
    assert namelists["system"]["nspin"] == 2 and namelists["cell"]["press"] == 10.0
    reciprocal_lengths = 2 * np.pi * np.linalg.norm(np.linalg.inv(atoms.cell).T, axis=1)
    expected = " ".join(str(int(n)) for n in np.ceil(reciprocal_lengths / 0.5))
    assert f"{expected}  0 0 0" in "\n".join(cards)


def test_kpoints_and_kspacing_together_are_refused() -> None:
    with pytest.raises(UsageError, match="either kpoints or kspacing_per_a"):
        QeEngine().check({"kpoints": [2, 2, 2], "kspacing_per_a": 0.3}, {})
    with pytest.raises(UsageError, match="three positive integers"):
        QeEngine().check({"kpoints": [2, 2]}, {})
    assert QeEngine().check(QeEngine().check({"kpoints": [2, 2, 2]}, {}), {})["kpoints"] == [
        2,
        2,
        2,
    ]


@pytest.mark.engines
def test_single_rank_pw_x_has_its_own_open_mpi_session_directory(
    orion_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single-rank pw.x runs as an Open MPI singleton, which makes its session directory
    ``$TMPDIR/ompi.<host>.<uid>``, shared by every such process of the user on the node:
    array tasks starting together raced on it (`mkdir ... File exists`, engine_error for
    1 of 5 jobs of a cutoff sweep). Here a file stands where that directory would go, so
    that a job that uses the shared one fails every time instead of now and then."""
    import socket

    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    shared = tmp_path / "tmp"
    shared.mkdir()
    (shared / f"ompi.{socket.gethostname().split('.')[0]}.{os.getuid()}").write_text("")
    monkeypatch.setenv("TMPDIR", str(shared))
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job_id = orion_json(
        "submit",
        str(EXAMPLES / "Si.cif"),
        "--engine",
        "qe",
        "-p",
        "ecutwfc_ry=12",
        "-p",
        "kpoints=1,1,1",
        "-p",
        "smearing=none",
    )["id"]
    [job] = poll_until_final([job_id], timeout_s=120)
    assert job["status"] == "completed", (Path(job["workdir"]) / "pw.out").read_text()[:600]
    assert [p.name for p in shared.iterdir()] == [
        f"ompi.{socket.gethostname().split('.')[0]}.{os.getuid()}"
    ]  # cleaned up
