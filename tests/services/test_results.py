"""`orion results`: numbers checked against EMT run by hand with ASE, extxyz read back by ASE."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers import orion, orion_json, poll_until_final

EV_PER_A3_IN_GPA = 160.21766208


def by_hand(atoms):  # type: ignore[no-untyped-def]
    from ase.calculators.emt import EMT

    atoms = atoms.copy()
    atoms.calc = EMT()
    return atoms


@pytest.fixture
def study(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from ase.io import read, write

    monkeypatch.setenv("ORION_SCHEDULER", "local")
    strained = read(EXAMPLES / "Cu.cif")
    strained.set_cell(strained.cell * 1.02, scale_atoms=True)
    strained.positions[0] += (0.05, 0.0, 0.02)
    path = tmp_path / "Cu strained.xyz"
    write(path, strained, format="extxyz")
    ids = [
        orion_json("submit", str(EXAMPLES / "Cu.cif"), "--engine", "emt", "--tag", "s")["id"],
        orion_json("submit", str(path), "--engine", "emt", "-p", "fmax_ev_per_a=0.5", "--tag", "s")[
            "id"
        ],
    ]
    poll_until_final(ids)
    return ids, [read(EXAMPLES / "Cu.cif"), strained]


def test_csv_json_and_extxyz_match_emt_by_hand(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from ase.io import read

    ids, structures = study
    refs = [by_hand(atoms) for atoms in structures]
    orion("results", "--tag", "s", "--format", "csv", "-o", str(tmp_path / "r.csv"))
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert [int(r["id"]) for r in rows] == ids
    for row, ref in zip(rows, refs, strict=True):
        energy = ref.get_potential_energy()
        assert float(row["energy_ev"]) == pytest.approx(energy, abs=1e-8)
        assert float(row["energy_per_atom_ev"]) == pytest.approx(energy / len(ref), abs=1e-8)
        assert float(row["volume_a3"]) == pytest.approx(ref.get_volume(), rel=1e-9)
        fmax = max((f**2).sum() ** 0.5 for f in ref.get_forces())
        assert float(row["max_force_ev_per_a"]) == pytest.approx(fmax, abs=1e-8)
        pressure = -ref.get_stress()[:3].mean() * EV_PER_A3_IN_GPA
        assert float(row["pressure_gpa"]) == pytest.approx(pressure, abs=1e-6)
    assert [row["param.fmax_ev_per_a"] for row in rows] == ["0.05", "0.5"]  # the swept one
    assert "param.relax" not in rows[0]  # the same for both: not a column

    data = json.loads(orion("results", *map(str, ids), "--format", "json").stdout)
    assert [d["id"] for d in data] == ids and len(data[0]["stress_gpa"]) == 6

    orion("results", "--tag", "s", "--format", "extxyz", "-o", str(tmp_path / "r.xyz"))
    frames = read(tmp_path / "r.xyz", index=":")
    assert [f.info["orion_id"] for f in frames] == ids
    for frame, ref in zip(frames, refs, strict=True):
        assert frame.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        assert frame.get_forces() == pytest.approx(ref.get_forces(), abs=1e-8)
        assert frame.get_stress() == pytest.approx(ref.get_stress(), abs=1e-8)
        assert frame.positions == pytest.approx(ref.positions, abs=1e-8)


def test_results_bad_input_exit_2(study, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "no jobs selected" in orion("results", expect=2).stderr
    assert "no job with id 999" in orion("results", "999", expect=2).stderr
    assert "unknown format" in orion("results", "--tag", "s", "-f", "xls", expect=2).stderr
    assert (
        "is a directory"
        in orion("results", "--tag", "s", "-f", "csv", "-o", str(tmp_path), expect=2).stderr
    )
    assert not list(tmp_path.glob("*.part"))
