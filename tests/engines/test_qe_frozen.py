"""Explicit pseudopotentials, families, the ecutrho dual and shifted k-meshes for pw.x.

References are independent of orion: the UPF files' own headers (read with a regular
expression here) and pw.x run by hand on a hand-written input.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import need
from tests.engines.test_qe_input import run_pw_by_hand
from tests.helpers import orion, orion_json, poll_until_final

PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
HAND_INPUT = """&CONTROL
  calculation = 'scf', prefix = 'ref', outdir = './out',
  pseudo_dir = '/usr/share/espresso/pseudo', tprnfor = .true., tstress = .true.
/
&SYSTEM
  ibrav = 0, nat = 2, ntyp = 1, ecutwfc = 15.0, ecutrho = 60.0, occupations = 'fixed'
/
&ELECTRONS
  conv_thr = 1e-8, electron_maxstep = 100, mixing_beta = 0.7
/
ATOMIC_SPECIES
Si 28.0855 Si.pz-vbc.UPF
CELL_PARAMETERS angstrom
0.0 2.715 2.715
2.715 0.0 2.715
2.715 2.715 0.0
ATOMIC_POSITIONS angstrom
Si 0.0 0.0 0.0
Si 1.3575 1.3575 1.3575
K_POINTS automatic
{mesh}
"""
N_KPOINTS = re.compile(r"number of k points=\s*(\d+)")
TOTAL_RY = re.compile(r"^!\s+total energy\s+=\s+(-?\d+\.\d+)\s+Ry", re.M)


@pytest.fixture
def silicon(orion_home: Path, tmp_path: Path) -> str:
    from ase.build import bulk
    from ase.io import write

    need((PSEUDO_DIR / "Si.pz-vbc.UPF").is_file(), "Debian's quantum-espresso-data")
    path = tmp_path / "Si.extxyz"
    write(path, bulk("Si", "diamond", a=5.43), format="extxyz")
    return str(path)


def _pw_in(*args: str) -> tuple[str, list[str]]:
    result = orion("submit", *args, "--dry-run", "--engine", "qe")
    text = result.stdout.split("# --- pw.in", 1)[1]
    notes = [line for line in result.stderr.splitlines() if line]
    return text, notes


def _upf_type(name: str) -> str:
    found = re.search(r'pseudo_type="([^"]+)"', (PSEUDO_DIR / name).read_text(errors="replace"))
    assert found
    return found.group(1)


@pytest.mark.parametrize(
    ("pseudo", "dual"),
    [("Si.pz-vbc.UPF", 4), ("Si.pbe-nl-rrkjus_psl.1.0.0.UPF", 8), ("Si.pbe-rrkj.UPF", 4)],
)
def test_ecutrho_is_the_dual_the_pseudopotential_type_needs(
    silicon: str, pseudo: str, dual: int
) -> None:
    assert (_upf_type(pseudo) in ("US", "USPP", "PAW")) == (dual == 8)  # the file says so
    text, notes = _pw_in(silicon, "-p", "ecutwfc_ry=20", "-p", f"pseudo.Si={pseudo}")
    assert re.search(rf"ecutrho\s*=\s*{20 * dual}\.0\b", text), text
    assert f"Si {28.085:g}" in text and pseudo in text
    sha = __import__("hashlib").sha256((PSEUDO_DIR / pseudo).read_bytes()).hexdigest()
    assert any(f"note: pseudopotential Si: {pseudo} sha256 {sha[:12]}" in n for n in notes)
    given, _ = _pw_in(
        silicon, "-p", "ecutwfc_ry=20", "-p", "ecutrho_ry=100", "-p", f"pseudo.Si={pseudo}"
    )
    assert re.search(r"ecutrho\s*=\s*100\.0\b", given)


def test_family_and_default_rule_are_named(silicon: str) -> None:
    text, notes = _pw_in(silicon, "-p", "pseudo_family=debian-lda", "-p", "ecutwfc_ry=20")
    assert "Si.pz-vbc.UPF" in text
    assert any("(family debian-lda; NC" in n for n in notes), notes
    _, ruled = _pw_in(silicon, "-p", "ecutwfc_ry=50")
    assert any("default rule" in n and "-p pseudo.Si=FILE" in n for n in ruled), ruled
    bad = orion("submit", silicon, "--engine", "qe", "-p", "pseudo_family=nope", expect=2)
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "no pseudopotential family 'nope'" in lines[0], lines


def test_cutoff_below_the_family_is_a_warning_and_with_strict_an_error(
    silicon: str, orion_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "orion.toml").write_text(
        "[engines.qe.families.mine]\n"
        f'dir = "{PSEUDO_DIR}"\n'
        'files = {Si = "Si.pbe-rrkj.UPF"}\n'
        "cutoffs_ry = {Si = [30, 120]}\n"
    )
    args = (silicon, "--engine", "qe", "-p", "pseudo_family=mine", "-p", "ecutwfc_ry=20")
    _, notes = _pw_in(*args[:1], *args[3:])
    assert "warning: ecutwfc_ry=20 is below the 30 Ry that family mine recommends" in "\n".join(
        notes
    )
    strict = orion("submit", *args, "--strict", expect=2)
    assert strict.stderr.startswith("error: ecutwfc_ry=20 is below the 30 Ry")
    assert not (orion_home / "jobs").exists()  # nothing written


@pytest.mark.engines
def test_shifted_mesh_is_what_pw_x_ran(
    silicon: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need(shutil.which("pw.x") is not None, "pw.x (Debian quantum-espresso)")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    common = ["--engine", "qe", "-p", "ecutwfc_ry=15", "-p", "smearing=none"]
    common += ["-p", "pseudo.Si=Si.pz-vbc.UPF"]
    shifted = orion_json("submit", silicon, *common, "-p", "kpoints=4,4,4,1,1,1")["id"]
    plain = orion_json("submit", silicon, *common, "-p", "kpoints=4,4,4")["id"]
    by_flag = orion_json(
        "submit", silicon, *common, "-p", "kpoints=4,4,4", "-p", "kpoints_shift=1,1,1"
    )
    jobs = poll_until_final([shifted, plain, by_flag["id"]], timeout_s=300)
    outs = [(Path(j["workdir"]) / "pw.out").read_text() for j in jobs]
    assert all(j["status"] == "completed" for j in jobs), [j["error_message"] for j in jobs]
    hand_shifted = run_pw_by_hand(tmp_path / "shifted", HAND_INPUT.format(mesh="4 4 4 1 1 1"))
    hand_plain = run_pw_by_hand(tmp_path / "plain", HAND_INPUT.format(mesh="4 4 4 0 0 0"))
    counts = [int(N_KPOINTS.search(text).group(1)) for text in outs]  # type: ignore[union-attr]
    hand = [int(N_KPOINTS.search(t).group(1)) for t in (hand_shifted, hand_plain)]  # type: ignore[union-attr]
    assert counts == [hand[0], hand[1], hand[0]] and hand[0] != hand[1], (counts, hand)
    energies = [float(TOTAL_RY.findall(text)[-1]) for text in outs]
    assert energies[0] == pytest.approx(float(TOTAL_RY.findall(hand_shifted)[-1]), abs=1e-6)
    assert energies[1] == pytest.approx(float(TOTAL_RY.findall(hand_plain)[-1]), abs=1e-6)
    assert jobs[0]["frozen"]["derived"]["kpoints_shift"] == [1, 1, 1]
    assert jobs[0]["calc_key"] == jobs[2]["calc_key"] != jobs[1]["calc_key"]
