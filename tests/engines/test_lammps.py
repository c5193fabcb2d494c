"""The lammps engine: real lmp runs, checked against ASE's own evaluations of the results."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk

from orion_cli.engines.lammps import LammpsEngine, thermo_rows
from orion_cli.engines.lammps_input import input_script
from orion_cli.errors import UsageError
from tests.engines.conftest import RunEngine

POTENTIALS = Path("/usr/share/lammps/potentials")
CU_EAM = {
    "task": "minimize",
    "pair_style": "eam",
    "potential_file": "Cu_u3.eam",
    "relax_box": "iso",
}
AR_LJ = {"epsilon_ev": 0.0104, "sigma_a": 3.40, "cutoff_a": 8.5}


def read_structure(text: str | None) -> Atoms:
    """Parse orion's extended-XYZ final structure."""
    import ase.io

    assert text is not None
    atoms = ase.io.read(io.StringIO(text), format="extxyz")
    assert isinstance(atoms, Atoms)
    return atoms


def lammps_energy(
    atoms: Atoms,
    tmp_path: Path,
    pair_style: str,
    pair_coeff: list[str],
    files: tuple[str, ...] = (),
) -> tuple[float, np.ndarray, np.ndarray]:
    """Evaluate energy, forces, stress with ASE's own LAMMPS calculator (its own input/reader)."""
    from ase.calculators.lammpsrun import LAMMPS

    copy = atoms.copy()
    copy.calc = LAMMPS(
        command="lmp",
        pair_style=pair_style,
        pair_coeff=pair_coeff,
        files=list(files),
        specorder=sorted(set(atoms.get_chemical_symbols())),
        tmp_dir=str(tmp_path / "ase-lammpsrun"),
    )
    return copy.get_potential_energy(), copy.get_forces(), copy.get_stress()


@pytest.mark.engines
def test_cu_eam_box_relaxation(tmp_path: Path, run_engine: RunEngine) -> None:
    potential = str(POTENTIALS / "Cu_u3.eam")
    result = run_engine(
        LammpsEngine(), bulk("Cu", "fcc", a=3.70, cubic=True), CU_EAM, tmp_path / "job"
    )

    assert result.error is None and result.converged is True
    final = read_structure(result.final_structure)
    assert final.get_chemical_symbols() == ["Cu"] * 4
    energy, forces, stress = lammps_energy(
        final, tmp_path, "eam", [f"* * {potential}"], (potential,)
    )
    assert result.energy_ev == pytest.approx(energy, abs=1e-6)
    assert np.allclose(result.forces_ev_per_a, forces, atol=1e-6)
    assert np.allclose(result.stress_ev_per_a3, stress, atol=1e-6)
    assert np.abs(stress).max() < 1e-5  # relaxed cell: no pressure left
    for strain in (0.998, 1.002):  # the relaxed lattice is a minimum of ASE's evaluation
        strained = final.copy()
        strained.set_cell(final.cell * strain, scale_atoms=True)
        assert (
            lammps_energy(strained, tmp_path, "eam", [f"* * {potential}"], (potential,))[0]
            > result.energy_ev
        )


@pytest.mark.engines
def test_ar_lj_md(tmp_path: Path, run_engine: RunEngine) -> None:
    from ase.calculators.lj import LennardJones
    from ase.neighborlist import neighbor_list

    params = {
        **AR_LJ,
        "task": "md",
        "steps": 200,
        "timestep_fs": 2.0,
        "temperature_k": 40.0,
        "thermostat": "langevin",
    }
    result = run_engine(
        LammpsEngine(), bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2), params, tmp_path
    )

    assert result.error is None and result.extras["steps"] == 200
    final = read_structure(result.final_structure)
    assert set(final.get_chemical_symbols()) == {"Ar"}
    final.calc = LennardJones(epsilon=0.0104, sigma=3.40, rc=8.5)  # ASE shifts V(rc) to 0
    pairs = len(neighbor_list("i", final, 8.5)) / 2
    shift_ev = 4 * 0.0104 * ((3.40 / 8.5) ** 12 - (3.40 / 8.5) ** 6)
    assert result.energy_ev == pytest.approx(
        final.get_potential_energy() + pairs * shift_ev, abs=1e-8
    )
    assert np.allclose(result.forces_ev_per_a, final.get_forces(), atol=1e-8)
    kinetic_ev = final.get_kinetic_energy()
    # LAMMPS' metal mvv2e has 8 digits (1.0364269e-4), hence rel=1e-6 rather than 1e-12
    assert result.extras["kinetic_energy_ev"] == pytest.approx(kinetic_ev, rel=1e-6)
    dof = 3 * len(final) - 3  # LAMMPS' temp compute removes the centre-of-mass motion
    # LAMMPS' metal boltz is 8.617343e-5 eV/K, ASE's (CODATA 2014) 8.6173303e-5: rel 1.2e-6
    assert result.extras["temperature_k"] == pytest.approx(
        2 * kinetic_ev / (dof * units.kB), rel=1e-5
    )
    assert len(result.extras["thermo"]["rows"]) >= 200 // 10


@pytest.mark.engines
def test_two_species_triclinic_cell_keeps_elements_and_frame(
    tmp_path: Path, run_engine: RunEngine
) -> None:
    atoms = bulk("Ar", "fcc", a=5.3).repeat((2, 2, 2))  # rhombohedral cell: LAMMPS rotates it
    atoms.symbols[::3] = "Kr"
    atoms.rattle(0.05, seed=1)
    params = {"epsilon_ev": "Ar=0.0104,Kr=0.014", "sigma_a": "Ar=3.40,Kr=3.65", "cutoff_a": 8.0}

    result = run_engine(LammpsEngine(), atoms, params, tmp_path / "job")

    assert result.error is None
    final = read_structure(result.final_structure)
    assert final.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert np.allclose(final.cell, atoms.cell)
    shift = final.get_scaled_positions() - atoms.get_scaled_positions()
    assert np.allclose(shift - np.round(shift), 0, atol=1e-8)  # same atoms, wrapped into the cell
    coeffs = [
        "1 1 0.0104 3.40",
        "2 2 0.014 3.65",
        f"1 2 {np.sqrt(0.0104 * 0.014)} {(3.40 + 3.65) / 2}",
    ]  # Lorentz-Berthelot
    energy, forces, stress = lammps_energy(atoms, tmp_path, "lj/cut 8.0", coeffs)
    assert result.energy_ev == pytest.approx(energy, abs=1e-8)
    assert np.allclose(result.forces_ev_per_a, forces, atol=1e-7)
    assert np.allclose(result.stress_ev_per_a3, stress, atol=1e-8)


@pytest.mark.engines
def test_lammps_error_is_reported(tmp_path: Path, run_engine: RunEngine) -> None:
    squeezed = Atoms("Ar2", positions=[[0, 0, 0], [0.3, 0, 0]], cell=[6, 6, 6], pbc=True)
    params = {**AR_LJ, "task": "md", "steps": 50, "timestep_fs": 50.0, "thermo_every": 1}

    result = run_engine(LammpsEngine(), squeezed, params, tmp_path)

    assert result.error is not None and result.error.startswith("lmp: ERROR")
    assert result.energy_ev is None


def test_lj_needs_parameters_and_eam_needs_a_file() -> None:
    with pytest.raises(UsageError, match="lj/cut needs epsilon_ev"):
        LammpsEngine().check({}, {})
    with pytest.raises(UsageError, match="needs potential_file"):
        LammpsEngine().check({"pair_style": "eam/alloy"}, {})


def test_missing_potential_lists_candidates(tmp_path: Path) -> None:
    (tmp_path / "Cu_a.eam").write_text("")
    atoms = bulk("Cu", "fcc", a=3.6)

    with pytest.raises(UsageError) as info:
        LammpsEngine().prepare(
            atoms,
            {"pair_style": "eam", "potential_file": "Cu_b.eam"},
            tmp_path / "job",
            {"potentials_dir": str(tmp_path)},
        )

    assert "Cu_b.eam" in info.value.message and "Cu_a.eam" in (info.value.hint or "")


def test_eam_alloy_file_must_list_every_element(tmp_path: Path) -> None:
    (tmp_path / "CuNi.eam.alloy").write_text("c1\nc2\nc3\n    2  Ni  Cu\n")
    atoms = Atoms("CuAl", positions=[[0, 0, 0], [1.8, 1.8, 0]], cell=[3.6] * 3, pbc=True)

    with pytest.raises(UsageError, match="no parameters for Al"):
        LammpsEngine().prepare(
            atoms,
            {"pair_style": "eam/alloy", "potential_file": "CuNi.eam.alloy"},
            tmp_path / "job",
            {"potentials_dir": str(tmp_path)},
        )


def test_missing_pair_parameter_names_the_pair(tmp_path: Path) -> None:
    atoms = Atoms("ArKr", positions=[[0, 0, 0], [2, 2, 2]], cell=[6] * 3, pbc=True)

    with pytest.raises(UsageError, match="no epsilon_ev for the pair Ar-Kr"):
        LammpsEngine().prepare(atoms, {"epsilon_ev": "Ar=0.01", "sigma_a": 3.4}, tmp_path, {})


def test_script_for_md_with_nose_hoover() -> None:
    params = LammpsEngine().check(
        {**AR_LJ, "task": "md", "thermostat": "nose-hoover", "timestep_fs": 2.0, "steps": 10}, {}
    )

    script = input_script(params, ["Ar"], ["pair_style lj/cut 8.5"], [True] * 3, False)

    assert "units metal" in script and "timestep 0.002" in script
    assert "fix integrate all nvt temp 300 300 0.1" in script and "run 10" in script
    assert "element Ar" in script.splitlines()[-1]


def test_thermo_rows_skip_non_numeric_lines() -> None:
    log = (
        "Step Temp PotEng\n"  # a different thermo_style: wrong width, ignored
        "   Step Temp E_pair KinEng TotEng Press Pxx Pyy Pzz Pyz Pxz Pxy Volume\n"
        "0 1 2 3 4 5 6 7 8 9 10 11 12\n"
        "WARNING: something 1 2 3 4 5 6 7 8 9 10 11 12\n"
        "Loop time of 0.1 on 1 procs\n"
        "0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    )

    assert thermo_rows(log) == [[float(n) for n in range(13)]]
