"""The vasp engine: VASP cannot run here, so inputs are read back and a real vasprun.xml parsed.

The vasprun.xml is ASE's test file ``ase/test/testdata/vasp/vasprun_pstress.xml`` (VASP 6.3.0,
2-atom diamond C, PSTRESS = 1 kbar), shipped in the installed ase package; it is read in place,
not copied into this repository. ASE's own ``vasp-xml`` reader is the independent reference.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from orion_cli.engines.vasp import VaspEngine
from orion_cli.errors import UsageError


def ase_vasprun() -> Path:
    """Return the path of ASE's shipped vasprun_pstress.xml (fail loudly when ASE dropped it)."""
    import ase

    path = Path(ase.__file__).parent / "test" / "testdata" / "vasp" / "vasprun_pstress.xml"
    if not path.is_file():
        pytest.fail(f"{path} is gone from this ase version; pick another real vasprun.xml")
    return path


def fake_potcar_dir(root: Path, *names: str) -> Path:
    """Write stand-in POTCARs (one TITEL line each); real ones are licensed."""
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "POTCAR").write_text(
            f"  PAW_PBE {name} 01Jan2000\n   TITEL  = PAW_PBE {name} 01Jan2000\n End of Dataset\n"
        )
    return root


def test_inputs_read_back_with_pymatgen_and_ase(tmp_path: Path) -> None:
    import ase.io
    from pymatgen.io.vasp import Incar, Kpoints, Poscar

    atoms = bulk("NaCl", "rocksalt", a=5.64).repeat((1, 1, 2))  # Na Cl Na Cl: two groups each
    settings = {
        "potcar_dir": str(fake_potcar_dir(tmp_path / "potpaw", "Na_pv", "Cl")),
        "potcars": {"Na": "Na_pv"},
        "binary": "mpi-vasp_std",
    }
    params = {
        "calculation": "vc-relax",
        "encut_ev": 450,
        "kspacing_per_a": 0.3,
        "pressure_kbar": 5.0,
        "spin": True,
    }

    spec = VaspEngine().prepare(atoms, params, tmp_path / "job", settings)

    job = tmp_path / "job"
    assert spec.command == ("mpi-vasp_std",) and spec.stdout_name == "vasp.out" and spec.mpi
    back = ase.io.read(job / "POSCAR", format="vasp")
    assert back.get_chemical_symbols() == atoms.get_chemical_symbols()
    assert np.allclose(back.cell, atoms.cell) and np.allclose(back.positions, atoms.positions)
    symbols = Poscar.from_file(job / "POSCAR").site_symbols
    titles = re.findall(r"TITEL\s*=\s*PAW_PBE (\S+)", (job / "POTCAR").read_text())
    assert symbols == ["Na", "Cl", "Na", "Cl"] and titles == ["Na_pv", "Cl", "Na_pv", "Cl"]
    incar = Incar.from_file(job / "INCAR")
    assert (incar["ENCUT"], incar["IBRION"], incar["ISIF"], incar["PSTRESS"], incar["ISPIN"]) == (
        450,
        2,
        3,
        5.0,
        2,
    )
    assert incar["EDIFFG"] == -0.01 and incar["NSW"] == 50
    reciprocal_lengths = 2 * np.pi * np.linalg.norm(np.linalg.inv(atoms.cell).T, axis=1)
    kpoints = Kpoints.from_file(job / "KPOINTS")
    assert list(kpoints.kpts[0]) == [int(n) for n in np.ceil(reciprocal_lengths / 0.3)]
    assert kpoints.style.name == "Gamma"


def test_missing_potcar_dir_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="potcar_dir is not configured") as info:
        VaspEngine().prepare(bulk("Si"), {}, tmp_path, {})
    assert "ORION_VASP_POTCAR_DIR" in (info.value.hint or "")


def test_missing_element_potcar_names_the_element(tmp_path: Path) -> None:
    settings = {"potcar_dir": str(fake_potcar_dir(tmp_path / "potpaw", "Si"))}
    atoms = Atoms("SiC", positions=[[0, 0, 0], [1, 1, 1]], cell=[4, 4, 4], pbc=True)

    with pytest.raises(UsageError, match="no POTCAR for C"):
        VaspEngine().prepare(atoms, {}, tmp_path / "job", settings)


def test_parse_matches_ase_reader(tmp_path: Path) -> None:
    import ase.io

    shutil.copyfile(ase_vasprun(), tmp_path / "vasprun.xml")
    reference = ase.io.read(tmp_path / "vasprun.xml", format="vasp-xml")

    result = VaspEngine().parse(tmp_path, {})

    assert result.error is None and result.converged is True
    assert result.energy_ev == pytest.approx(reference.get_potential_energy(), abs=1e-8)
    assert result.extras["free_energy_ev"] == pytest.approx(
        reference.get_potential_energy(force_consistent=True), abs=1e-8
    )
    assert np.allclose(result.forces_ev_per_a, reference.get_forces(), atol=1e-10)
    assert np.allclose(result.stress_ev_per_a3, reference.get_stress(), atol=1e-10)
    final = ase.io.read(io.StringIO(result.final_structure or ""), format="extxyz")
    assert final.get_chemical_symbols() == reference.get_chemical_symbols()
    assert np.allclose(final.cell, reference.cell) and np.allclose(
        final.positions, reference.positions
    )
    assert result.extras["energy_with_pv_ev"] > result.energy_ev  # PSTRESS·V > 0 is excluded


def test_unconverged_electronic_steps_are_an_error(tmp_path: Path) -> None:
    text = ase_vasprun().read_text(encoding="iso-8859-1")
    last_calculation = text[text.rindex("<calculation>") :]
    steps = last_calculation.count("<scstep>")
    text, count = re.subn(r'(<i type="int" name="NELM">)\s*\d+', rf"\g<1>{steps:6d}", text)
    assert count == 1
    (tmp_path / "vasprun.xml").write_text(text, encoding="iso-8859-1")

    result = VaspEngine().parse(tmp_path, {})

    assert (
        result.error == f"VASP: electronic SCF not converged within NELM={steps} steps "
        "(ionic step 1)"
    )


def test_truncated_vasprun_reports_stdout_tail(tmp_path: Path) -> None:
    text = ase_vasprun().read_text(encoding="iso-8859-1")
    (tmp_path / "vasprun.xml").write_text(text[: len(text) // 2], encoding="iso-8859-1")
    (tmp_path / "vasp.out").write_text("DAV:   3  -0.2E+02\nkilled by signal 9\n")

    error = VaspEngine().parse(tmp_path, {}).error or ""

    assert error.startswith("cannot read vasprun.xml") and "killed by signal 9" in error


def test_missing_vasprun_is_an_error(tmp_path: Path) -> None:
    assert "no vasprun.xml" in (VaspEngine().parse(tmp_path, {}).error or "")


def test_raw_incar_tags_reach_the_incar(tmp_path: Path) -> None:
    from pymatgen.io.vasp import Incar

    settings = {"potcar_dir": str(fake_potcar_dir(tmp_path / "potpaw", "Si"))}
    params = {
        "incar.ISYM": 0,
        "incar.ncore": 4,
        "incar": {"LDAUU": [2.0, 0.0]},
        "incar.LREAL": "Auto",
    }

    checked = VaspEngine().check(params, settings)
    VaspEngine().prepare(bulk("Si", "diamond", a=5.43), checked, tmp_path / "job", settings)

    incar = Incar.from_file(tmp_path / "job" / "INCAR")
    assert checked["incar"] == {"LDAUU": [2.0, 0.0], "ISYM": 0, "NCORE": 4, "LREAL": "Auto"}
    assert incar["ISYM"] == 0 and incar["NCORE"] == 4 and incar["LREAL"] == "Auto"
    assert list(incar["LDAUU"]) == [2.0, 0.0]
    assert incar["ENCUT"] == 520.0  # orion's named parameters are still written


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"incar.ENCUT": 400}, ["incar.ENCUT", "'encut_ev'"]),
        ({"incar.ibrion": 2}, ["'calculation'"]),
        ({"incar.ISYMM": 0}, ["'ISYMM'", "INCAR tag"]),
        ({"incar.SYSTEM": "a\nENCUT = 1"}, ["control character"]),
    ],
)
def test_bad_incar_tags_are_refused_by_name(params: dict[str, object], words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        VaspEngine().check(params, {})
    for word in words:
        assert word in info.value.message
