"""The calculation key: what the job computes, nothing else.

Keys are read from ``orion submit --dry-run --json`` (the frozen record of the first job),
so each case goes through the same path as a real submit.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import orion_json

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
QE = ["--engine", "qe", "-p", "ecutwfc_ry=20", "-p", "kpoints=2,2,2", "-p", "smearing=none"]


def _key(*args: str) -> str:
    record = orion_json("submit", *args, "--dry-run")["frozen"]
    assert len(record["key"]) == 64
    return str(record["key"])


def _silicon():  # type: ignore[no-untyped-def]
    from ase.build import bulk

    return bulk("Si", "diamond", a=5.43)


@pytest.fixture
def pseudo(orion_home: Path, tmp_path: Path) -> Path:
    if not (PSEUDO_DIR / "Si.pz-vbc.UPF").is_file():
        pytest.skip("Debian's quantum-espresso-data is not installed")
    own = tmp_path / "pseudo"
    own.mkdir()
    shutil.copy(PSEUDO_DIR / "Si.pz-vbc.UPF", own / "Si.pz-vbc.UPF")
    return own / "Si.pz-vbc.UPF"


def test_one_structure_from_cif_poscar_extxyz_gives_one_key(pseudo: Path, tmp_path: Path) -> None:
    from ase.io import write

    atoms = _silicon()
    paths = []
    for name, fmt in (("Si.cif", "cif"), ("POSCAR", "vasp"), ("Si.extxyz", "extxyz")):
        write(tmp_path / name, atoms, format=fmt)
        paths.append(tmp_path / name)
    keys = {_key(str(p), *QE, "-p", f"pseudo.Si={pseudo}") for p in paths}
    assert len(keys) == 1, keys


def test_jitter_below_the_rounding_keeps_the_key_a_real_move_changes_it(
    pseudo: Path, tmp_path: Path
) -> None:
    from ase.io import write

    atoms = _silicon()
    jittered = atoms.copy()
    jittered.positions[1] += [1e-9, -1e-9, 1e-9]
    moved = atoms.copy()
    moved.positions[1] += [1e-3, 0, 0]
    keys = []
    for name, structure in (("a", atoms), ("b", jittered), ("c", moved)):
        write(tmp_path / f"{name}.extxyz", structure, format="extxyz")
        keys.append(_key(str(tmp_path / f"{name}.extxyz"), *QE, "-p", f"pseudo.Si={pseudo}"))
    assert keys[0] == keys[1] != keys[2]


def test_a_changed_pseudopotential_file_changes_the_key(pseudo: Path, tmp_path: Path) -> None:
    from ase.io import write

    write(tmp_path / "Si.extxyz", _silicon(), format="extxyz")
    args = (str(tmp_path / "Si.extxyz"), *QE, "-p", f"pseudo.Si={pseudo}")
    before = _key(*args)
    with pseudo.open("a") as handle:
        handle.write("<!-- edited -->\n")
    assert _key(*args) != before


def test_resources_names_and_tags_are_not_in_the_key(pseudo: Path, tmp_path: Path) -> None:
    from ase.io import write

    write(tmp_path / "Si.extxyz", _silicon(), format="extxyz")
    args = (str(tmp_path / "Si.extxyz"), *QE, "-p", f"pseudo.Si={pseudo}")
    plain = _key(*args)
    assert _key(*args, "--walltime", "3h", "--name", "other", "--tag", "x") == plain
    assert _key(*args, "-p", "ecutwfc_ry=25") != plain  # a parameter is


def test_a_spacing_and_the_mesh_it_gives_are_one_key(pseudo: Path, tmp_path: Path) -> None:
    """kspacing_per_a is stored as the mesh it gave: the same key as that mesh given."""
    import math

    from ase.io import write

    atoms = _silicon()
    write(tmp_path / "Si.extxyz", atoms, format="extxyz")
    base = [str(tmp_path / "Si.extxyz"), "--engine", "qe", "-p", "ecutwfc_ry=20"]
    base += ["-p", "smearing=none", "-p", f"pseudo.Si={pseudo}"]
    record = orion_json("submit", *base, "-p", "kspacing_per_a=0.3", "--dry-run")["frozen"]
    by_hand = [  # n_i = ceil(2π |b_i| / spacing), b_i without 2π (ASE's reciprocal cell)
        max(1, math.ceil(2 * math.pi * float((row @ row) ** 0.5) / 0.3))
        for row in atoms.cell.reciprocal()
    ]
    assert record["derived"]["kpoints"] == by_hand
    mesh = ",".join(map(str, by_hand))
    assert _key(*base, "-p", f"kpoints={mesh}") == record["key"]
