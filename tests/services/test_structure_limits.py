"""Hostile structure files (issue 23, B14): huge CIFs, NUL files, NaN coordinates."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from orion_cli.services.submission import cif, inputs
from orion_cli.services.submission.inputs import read_frames
from tests.helpers import orion

FM3M_CU = """data_Cu
_cell_length_a 3.6
_cell_length_b 3.6
_cell_length_c 3.6
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_space_group_name_H-M_alt 'F m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Cu1 Cu 0.0 0.0 0.0
"""


@pytest.fixture
def local(orion_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    return orion_home


def refused(path: Path, needle: str) -> str:
    """``orion submit path -e emt``: one error line with ``needle``, exit 2, no job recorded."""
    result = orion("submit", str(path), "-e", "emt", expect=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert orion("ls", "--json").stdout.strip() == "[]"
    return lines[0]


def supercell(repeat: int):  # type: ignore[no-untyped-def]
    from ase.build import bulk

    return bulk("Cu", "fcc", a=3.6, cubic=True).repeat((repeat, repeat, repeat))


def test_nan_coordinate_in_a_cif_says_position_not_finite(local: Path, tmp_path: Path) -> None:
    path = tmp_path / "nan.cif"
    path.write_text(FM3M_CU.replace("'F m -3 m'", "'P 1'") + "Cu2 Cu NaN 0.5 0.5\n")
    line = refused(path, "position of atom 1 (Cu2) is not finite")
    assert "nan.cif" in line and "ufunc" not in line


def test_a_file_of_nul_bytes_is_refused_before_it_is_read(local: Path, tmp_path: Path) -> None:
    path = tmp_path / "x.extxyz"
    path.write_bytes(b"\0" * 2**20)
    refused(path, "holds NUL bytes")


def test_a_file_over_the_size_limit_is_refused_unread(
    local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.xyz"
    path.write_text("2\n\nCu 0 0 0\nCu 2.5 0 0\n" * 100)
    monkeypatch.setattr(inputs, "MAX_STRUCTURE_FILE_BYTES", 1024)
    refused(path, "orion reads structure files of up to 0 MiB")


def test_a_large_p1_cif_reads_in_linear_time(tmp_path: Path) -> None:
    from ase.io import write

    atoms = supercell(14)  # 10,976 atoms: ASE's own CIF reader needs many minutes for this
    write(tmp_path / "big.cif", atoms)
    started = time.monotonic()
    (frame,) = read_frames(tmp_path / "big.cif")
    assert time.monotonic() - started < 120
    assert len(frame.atoms) == len(atoms) == 10_976
    assert np.allclose(frame.atoms.cell[:], atoms.cell[:], atol=1e-9)
    assert frame.atoms.pbc.all()
    expected = np.mod(atoms.get_scaled_positions(), 1.0)
    assert np.allclose(frame.atoms.get_scaled_positions(wrap=False), expected, atol=1e-9)


def test_the_p1_path_agrees_with_ases_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ase.io import read, write

    write(tmp_path / "Cu32.cif", supercell(2))
    reference = read(tmp_path / "Cu32.cif")  # ASE's reader, symmetry expansion and all
    monkeypatch.setattr(cif, "CIF_SYMMETRY_MAX_SITES", 4)
    (frame,) = read_frames(tmp_path / "Cu32.cif")
    assert list(frame.atoms.numbers) == list(reference.numbers)
    assert np.allclose(frame.atoms.positions, reference.positions, atol=1e-9)
    assert np.allclose(frame.atoms.cell[:], reference.cell[:])
    assert list(frame.atoms.pbc) == list(reference.pbc)


def test_a_large_cif_with_symmetry_is_refused(
    local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "Cu.cif"
    path.write_text(FM3M_CU)
    assert len(read_frames(path)[0].atoms) == 4  # small: ASE expands the symmetry as before
    monkeypatch.setattr(cif, "CIF_SYMMETRY_MAX_SITES", 0)
    refused(path, "has 1 atom sites and symmetry operations")
