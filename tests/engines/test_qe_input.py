"""Raw pw.x namelist keys: checked at submit, written into pw.in, and felt by real pw.x.

The reference is a pw.in written by hand here (plain text, not ASE or orion) and run with
pw.x directly.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from ase.build import bulk

from orion_cli.engines.passthrough import engine_params
from orion_cli.engines.qe import QeEngine
from orion_cli.errors import UsageError
from tests.engines.conftest import RunEngine, require_binary

FAST_SI = {"ecutwfc_ry": 15, "kpoints": [2, 2, 2], "smearing": "none", "conv_thr_ry": 1e-8}
PSEUDO = "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"


def hand_written_pw_in(extra_system: str) -> str:
    """Diamond Si (a = 5.43 Å) as FAST_SI, typed out by hand; ``extra_system`` goes in &SYSTEM."""
    return f"""&CONTROL
  calculation = 'scf', prefix = 'ref', outdir = './out',
  pseudo_dir = '/usr/share/espresso/pseudo', tprnfor = .true., tstress = .true.
/
&SYSTEM
  ibrav = 0, nat = 2, ntyp = 1, ecutwfc = 15.0, occupations = 'fixed'
  ecutrho = 120.0  ! 8 x ecutwfc: orion's dual for an ultrasoft pseudopotential
  {extra_system}
/
&ELECTRONS
  conv_thr = 1e-8, electron_maxstep = 100, mixing_beta = 0.7
/
ATOMIC_SPECIES
Si 28.0855 {PSEUDO}
CELL_PARAMETERS angstrom
0.0 2.715 2.715
2.715 0.0 2.715
2.715 2.715 0.0
ATOMIC_POSITIONS angstrom
Si 0.0 0.0 0.0
Si 1.3575 1.3575 1.3575
K_POINTS automatic
2 2 2 0 0 0
"""


def run_pw_by_hand(workdir: Path, text: str) -> str:
    require_binary("pw.x")
    workdir.mkdir()
    (workdir / "pw.in").write_text(text)
    out = subprocess.run(
        ["pw.x", "-in", "pw.in"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
        check=True,
    )
    return out.stdout


def energy_ry(pw_out: str) -> float:
    return float(re.findall(r"^!\s+total energy\s+=\s+(\S+) Ry", pw_out, re.M)[-1])


def kohn_sham_states(pw_out: str) -> int:
    return int(re.findall(r"number of Kohn-Sham states=\s+(\d+)", pw_out)[-1])


def test_dotted_keys_and_a_params_table_become_one_input_table() -> None:
    from_file = engine_params(
        {"qe": {"input": {"electrons": {"diagonalization": "cg"}}}, "vasp": {"incar": {"ISYM": 0}}},
        "qe",
        ["qe", "vasp"],
    )
    checked = QeEngine().check({**from_file, "system.nbnd": 16, "SYSTEM.Hubbard_U(1)": 4.0}, {})

    assert checked["input"] == {
        "electrons": {"diagonalization": "cg"},
        "system": {"nbnd": 16, "hubbard_u(1)": 4.0},
    }
    assert QeEngine().check(checked, {}) == checked  # stored form checks again unchanged


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"system.nbdn": 16}, ["'nbdn'", "&SYSTEM"]),
        ({"electrons.nbnd": 16}, ["'nbnd'", "&ELECTRONS"]),
        ({"system.ecutwfc": 40}, ["system.ecutwfc", "'ecutwfc_ry'"]),
        ({"system.smearing": "gaussian"}, ["'smearing'"]),
        ({"control.outdir": "/tmp"}, ["control.outdir", "set by orion"]),
        ({"system.nat": 3}, ["from the structure"]),
        ({"input": {"rism": {"nsolv": 1}}}, ["'rism'", "namelist"]),
        ({"system.input_dft": "pbe\n&control"}, ["control character"]),
        ({"system.nbnd": [1, 2]}, ["system.nbnd"]),
    ],
)
def test_bad_raw_keys_are_refused_by_name(params: dict[str, object], words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        QeEngine().check(params, {})
    for word in words:
        assert word in info.value.message


def test_key_check_can_be_switched_off_for_newer_pw_x() -> None:
    checked = QeEngine().check({"system.future_key": 1}, {"check_input_keys": "false"})
    assert checked["input"] == {"system": {"future_key": 1}}
    with pytest.raises(UsageError, match="ecutwfc_ry"):  # named parameters still win
        QeEngine().check({"system.ecutwfc": 1}, {"check_input_keys": "false"})


def test_raw_keys_reach_pw_in(tmp_path: Path) -> None:
    from ase.io.espresso import read_fortran_namelist

    params = {
        **FAST_SI,
        "system.nbnd": 16,
        "electrons.diagonalization": "cg",
        "system.input_dft": "pz",
    }
    QeEngine().prepare(bulk("Si", "diamond", a=5.43), params, tmp_path, {})

    with open(tmp_path / "pw.in") as handle:
        namelists, _ = read_fortran_namelist(handle)
    assert namelists["system"]["nbnd"] == 16 and namelists["system"]["input_dft"] == "pz"
    assert namelists["electrons"]["diagonalization"] == "cg"
    assert namelists["system"]["ecutwfc"] == 15  # orion's own keys are still there


@pytest.mark.engines
def test_nbnd_reaches_pw_x_and_matches_a_hand_run(tmp_path: Path, run_engine: RunEngine) -> None:
    plain = run_engine(QeEngine(), bulk("Si", "diamond", a=5.43), FAST_SI, tmp_path / "plain")
    result = run_engine(
        QeEngine(),
        bulk("Si", "diamond", a=5.43),
        {**FAST_SI, "system.nbnd": 16},
        tmp_path / "orion",
    )
    by_hand = run_pw_by_hand(tmp_path / "hand", hand_written_pw_in("nbnd = 16"))

    orion_out = (tmp_path / "orion" / "pw.out").read_text()
    assert result.error is None and plain.error is None
    assert kohn_sham_states(orion_out) == kohn_sham_states(by_hand) == 16
    assert kohn_sham_states((tmp_path / "plain" / "pw.out").read_text()) != 16
    assert result.extras["energy_ry"] == pytest.approx(energy_ry(by_hand), abs=1e-6)


@pytest.mark.engines
def test_input_dft_changes_the_energy_as_by_hand(tmp_path: Path, run_engine: RunEngine) -> None:
    plain = run_engine(QeEngine(), bulk("Si", "diamond", a=5.43), FAST_SI, tmp_path / "plain")
    result = run_engine(
        QeEngine(),
        bulk("Si", "diamond", a=5.43),
        {**FAST_SI, "system.input_dft": "pz"},
        tmp_path / "orion",
    )
    by_hand = run_pw_by_hand(tmp_path / "hand", hand_written_pw_in("input_dft = 'pz'"))

    assert result.error is None and plain.error is None
    assert result.extras["energy_ry"] == pytest.approx(energy_ry(by_hand), abs=1e-6)
    assert abs(result.extras["energy_ry"] - plain.extras["energy_ry"]) > 1e-3


@pytest.mark.engines
def test_dry_run_shows_the_engine_input_the_job_then_runs(
    orion_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--dry-run` prints pw.in after the batch script: the file the job then writes and runs
    (the new-user trial could not see the engine input before submitting)."""
    from tests.conftest import EXAMPLES
    from tests.helpers import orion, orion_json, poll_until_final

    require_binary("pw.x")
    monkeypatch.setenv("ORION_SCHEDULER", "local")
    args = ["submit", str(EXAMPLES / "Si.cif"), "-e", "qe", "-p", "system.nbnd=12"]
    args += ["-p", "kpoints=2,2,2", "-p", "ecutwfc_ry=12", "-p", "smearing=none"]
    shown = orion(*args, "--dry-run").stdout
    assert "#!/bin/bash" in shown
    assert "# --- pw.in (engine input of Si) ---" in shown, shown
    printed = shown.split("# --- pw.in (engine input of Si) ---\n", 1)[1]
    assert not list(orion_home.rglob("pw.in"))  # a dry run writes nothing
    job = orion_json(*args)["id"]
    (done,) = poll_until_final([job])
    assert done["status"] == "completed", done
    (written,) = orion_home.rglob("pw.in")
    assert printed.rstrip("\n") == written.read_text().rstrip("\n")
    assert "nbnd" in printed
