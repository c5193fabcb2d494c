"""LAMMPS escape hatches on real lmp: any pair style with its files, extra commands, dumps.

References: ASE's own LAMMPS calculator (its own input writer and reader) for the pair
style, ASE's LennardJones for a before-run ``pair_modify shift yes``, ASE's dump reader for
the trajectory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from orion_cli.engines.lammps import LammpsEngine
from orion_cli.errors import UsageError
from tests.engines.conftest import RunEngine
from tests.engines.test_lammps import AR_LJ, POTENTIALS, lammps_energy

SI_SW = {"pair_style": "sw", "pair_coeff": "* * Si.sw {elements}", "potential_files": ["Si.sw"]}


@pytest.mark.engines
def test_stillinger_weber_matches_ase_lammps_calculator(
    tmp_path: Path, run_engine: RunEngine
) -> None:
    atoms = bulk("Si", "diamond", a=5.40, cubic=True)
    atoms.rattle(0.03, seed=4)

    result = run_engine(LammpsEngine(), atoms, SI_SW, tmp_path / "job")
    energy, forces, stress = lammps_energy(
        atoms, tmp_path, "sw", [f"* * {POTENTIALS / 'Si.sw'} Si"], (str(POTENTIALS / "Si.sw"),)
    )

    assert result.error is None
    assert (tmp_path / "job" / "Si.sw").read_bytes() == (POTENTIALS / "Si.sw").read_bytes()
    assert "pair_coeff * * Si.sw Si" in (tmp_path / "job" / "in.lammps").read_text()
    assert result.energy_ev == pytest.approx(energy, abs=1e-6)
    assert np.allclose(result.forces_ev_per_a, forces, atol=1e-6)
    assert np.allclose(result.stress_ev_per_a3, stress, atol=1e-6)


@pytest.mark.engines
def test_before_run_commands_take_effect(tmp_path: Path, run_engine: RunEngine) -> None:
    """pair_modify shift yes makes LAMMPS' LJ energy the shifted one ASE computes."""
    from ase.calculators.lj import LennardJones

    atoms = bulk("Ar", "fcc", a=5.30, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=5)
    plain = run_engine(LammpsEngine(), atoms, AR_LJ, tmp_path / "plain")
    shifted = run_engine(
        LammpsEngine(),
        atoms,
        {**AR_LJ, "before_run": ["pair_modify shift yes"], "after_run": ["write_data after.data"]},
        tmp_path / "shifted",
    )
    reference = atoms.copy()
    reference.calc = LennardJones(epsilon=0.0104, sigma=3.40, rc=8.5)  # V(rc) shifted to 0

    assert shifted.error is None and plain.error is None
    assert shifted.energy_ev == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    assert abs(plain.energy_ev - shifted.energy_ev) > 1e-3  # type: ignore[operator]
    assert (tmp_path / "shifted" / "after.data").is_file()


@pytest.mark.engines
def test_md_trajectory_is_kept_and_listed(tmp_path: Path, run_engine: RunEngine) -> None:
    import ase.io

    params = {
        **AR_LJ,
        "task": "md",
        "steps": 100,
        "timestep_fs": 2.0,
        "temperature_k": 40.0,
        "thermostat": "langevin",
        "dump_every": 10,
    }
    atoms = bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)

    result = run_engine(LammpsEngine(), atoms, params, tmp_path)

    frames = ase.io.read(tmp_path / "traj.dump", index=":", format="lammps-dump-text")
    assert result.error is None and result.converged is None  # MD is not "converged"
    assert result.extras["trajectory_files"] == ["traj.dump"]
    assert len(frames) == 100 // 10 + 1
    assert all(f.get_chemical_symbols() == atoms.get_chemical_symbols() for f in frames)
    thermo = result.extras["thermo"]
    assert [row[0] for row in thermo["rows"]][:11] == [float(n) for n in range(0, 101, 10)]


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"pair_style": "sw"}, ["needs pair_coeff"]),
        ({**AR_LJ, "pair_coeff": "1 1 1 1"}, ["orion writes pair_coeff"]),
        ({**SI_SW, "before_run": ["thermo_style one"]}, ["'thermo_style'"]),
        ({**SI_SW, "after_run": ["run 10\nshell rm -rf ~"]}, ["control character"]),
        ({**SI_SW, "dump_every": 10}, ["task md or minimize"]),
        ({"pair_style": "sw; shell x", "pair_coeff": "* *"}, ["not a LAMMPS pair style"]),
    ],
)
def test_bad_custom_inputs_are_refused(params: dict[str, object], words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        LammpsEngine().check(params, {})
    for word in words:
        assert word in info.value.message


def test_missing_potential_file_is_refused_at_prepare(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        LammpsEngine().prepare(
            bulk("Si", "diamond", a=5.43), {**SI_SW, "potential_files": ["Nope.sw"]}, tmp_path, {}
        )
