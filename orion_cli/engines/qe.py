"""Quantum ESPRESSO (pw.x): plane-wave DFT, scf / relax / vc-relax.

Input is written by ASE's ``espresso-in`` writer, output read by ASE's ``espresso-out``
reader; the raw Ry energy, SCF iteration counts and pw.x's own error text come from
``pw.out`` directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines import _command
from orion_cli.engines.base import EngineParam, ProgressFn, Result, RunSpec, check_known_params
from orion_cli.engines.passthrough import check_scalar, gather_table, refuse_named
from orion_cli.engines.qe_input import INPUT_NAME as INPUT_NAME
from orion_cli.engines.qe_input import pw_input_data as pw_input_data
from orion_cli.engines.qe_plan import check_pseudo_table, frozen_inputs, plan_inputs, pw_version
from orion_cli.engines.qe_retry import checked_change, describe, rewrite_input
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

DEFAULT_PSEUDO_DIR = "/usr/share/espresso/pseudo"
OUTPUT_NAME = "pw.out"
STOP_FILE = "orion.EXIT"  # <prefix>.EXIT

#: the namelists whose keys pass through (``-p system.nbnd=16``), in pw.x's order
NAMELISTS = ("control", "system", "electrons", "ions", "cell")
#: raw keys that duplicate a named parameter: (namelist, key) → parameter
NAMED_KEYS = {
    ("control", "calculation"): "calculation",
    ("control", "nstep"): "ion_steps",
    ("control", "forc_conv_thr"): "force_conv_thr_ry_per_bohr",
    ("system", "ecutwfc"): "ecutwfc_ry",
    ("system", "ecutrho"): "ecutrho_ry",
    ("system", "occupations"): "smearing",
    ("system", "smearing"): "smearing",
    ("system", "degauss"): "degauss_ry",
    ("system", "nspin"): "spin",
    ("electrons", "conv_thr"): "conv_thr_ry",
    ("electrons", "electron_maxstep"): "electron_maxstep",
    ("electrons", "mixing_beta"): "mixing_beta",
    ("cell", "press"): "press_kbar",
}
#: raw keys orion sets itself
RESERVED_KEYS = {
    **{("control", k): "the job directory layout" for k in ("prefix", "outdir", "pseudo_dir")},
    **{
        ("system", k): "from the structure"
        for k in ("ibrav", "celldm", "a", "b", "c", "cosab", "cosac", "cosbc", "nat", "ntyp")
    },
}
#: keys pw.x ≤ 7.1 reads in &system that ASE's list (from QE 7.2+) no longer has: DFT+U
#: moved to a HUBBARD card in 7.2; Debian's pw.x is 6.7.
OLDER_SYSTEM_KEYS = (
    "lda_plus_u",
    "lda_plus_u_kind",
    "hubbard_u",
    "hubbard_j0",
    "hubbard_j",
    "hubbard_v",
    "hubbard_u_back",
    "lback",
    "l1back",
    "backall",
    "u_projection_type",
)
_INDEXED = re.compile(r"^([a-z_][a-z0-9_]*)(\(\s*\d+\s*(,\s*\d+\s*)*\))?$")

SMEARINGS = ("none", "gaussian", "methfessel-paxton", "marzari-vanderbilt", "fermi-dirac")

_TOTAL_ENERGY_RY = re.compile(r"^!\s+total energy\s+=\s+(-?\d+\.\d+)\s+Ry", re.M)
_SCF_DONE = re.compile(r"convergence has been achieved in\s+(\d+) iterations")
_SCF_FAILED = re.compile(r"^\s*(convergence NOT achieved.*)$", re.M)
_ROUTINE_ERROR = re.compile(r"^\s*Error in routine (.+?)\s*:?\s*\n\s*(.+?)\s*$", re.M)
_STOPPED = re.compile(r"Program stopped by user request")
_STOPPED_WHERE = re.compile(r"^\s*(Calculation stopped in .+?)\s*$", re.M)
_VERSION = re.compile(r"Program PWSCF (v\.\S+)")
_PSEUDO_FILE = re.compile(r"PseudoPot\. #\s*\d+ for\s+(\S+)\s+read from file:\s*\n\s*(\S+)")


class QeEngine:
    """Run pw.x through ASE's Quantum ESPRESSO reader and writer."""

    name: ClassVar[str] = "qe"
    summary: ClassVar[str] = "Quantum ESPRESSO pw.x — plane-wave DFT (scf, relax, vc-relax)"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("calculation", "scf", "pw.x calculation", choices=("scf", "relax", "vc-relax")),
        EngineParam("ecutwfc_ry", 30.0, "plane-wave cutoff for wavefunctions", unit="Ry"),
        EngineParam(
            "ecutrho_ry",
            None,
            "charge-density cutoff (default: 8 × ecutwfc_ry with an ultrasoft or PAW "
            "pseudopotential, else 4 ×; read from the UPF headers)",
            unit="Ry",
        ),
        EngineParam(
            "kpoints",
            None,
            "Monkhorst-Pack grid [n1, n2, n3], or [n1, n2, n3, s1, s2, s3] with a shift; "
            "replaces kspacing_per_a",
        ),
        EngineParam("kpoints_shift", None, "shift of the grid per axis, 0 or 1: [1, 1, 1]"),
        EngineParam(
            "pseudo",
            None,
            "pseudopotential file per element: -p pseudo.Si=Si.pz-vbc.UPF (a name in "
            "pseudo_dir, or a path)",
        ),
        EngineParam(
            "pseudo_family",
            None,
            "named pseudopotential family: debian-pbe, debian-lda, or [engines.qe.families.NAME]",
        ),
        EngineParam(
            "kspacing_per_a",
            0.25,
            "largest k-point spacing, 2π included (as VASP KSPACING)",
            unit="1/Å",
        ),
        EngineParam(
            "smearing",
            "marzari-vanderbilt",
            "occupation smearing ('none' = fixed)",
            choices=SMEARINGS,
        ),
        EngineParam("degauss_ry", 0.01, "smearing width", unit="Ry"),
        EngineParam(
            "spin",
            False,
            "collinear spin polarisation (nspin=2); starting moments from the structure, else 0.5",
        ),
        EngineParam("conv_thr_ry", 1e-8, "SCF convergence threshold on the energy", unit="Ry"),
        EngineParam("electron_maxstep", 100, "maximum SCF iterations per ionic step"),
        EngineParam("mixing_beta", 0.7, "SCF density mixing factor"),
        EngineParam("ion_steps", 50, "maximum ionic steps (relax, vc-relax)"),
        EngineParam(
            "force_conv_thr_ry_per_bohr",
            1e-3,
            "ionic convergence threshold on forces",
            unit="Ry/bohr",
        ),
        EngineParam("press_kbar", 0.0, "target pressure (vc-relax)", unit="kbar"),
        EngineParam(
            "input",
            None,
            "raw pw.x namelist keys: -p system.nbnd=16, or [qe.input.system] in --params; "
            "checked against pw.x's namelists",
        ),
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` completed with defaults; raise UsageError naming a bad one."""
        params = gather_table(
            self.name, gather_table(self.name, params, "pseudo"), "input", NAMELISTS
        )
        merged = check_known_params(self.name, self.parameters, params)
        merged["input"] = check_raw_input(merged["input"] or {}, settings)
        merged["pseudo"] = check_pseudo_table(merged["pseudo"])
        _command.check_kpoints(self.name, params, merged, shifts=True)
        _command.require_positive(
            self.name,
            merged,
            "ecutwfc_ry",
            "ecutrho_ry",
            "degauss_ry",
            "conv_thr_ry",
            "electron_maxstep",
            "mixing_beta",
            "ion_steps",
            "force_conv_thr_ry_per_bohr",
        )
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        """Tell whether pw.x can run here, for ``orion engines``."""
        return _command.binary_status(self.name, settings, "pw.x")

    def freeze(
        self, atoms: Atoms, params: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Resolve at submit what the job's answer depends on (see :mod:`orion_cli.frozen`)."""

        return frozen_inputs(atoms, self.check(params, settings), settings)

    def code_version(self, settings: Mapping[str, Any]) -> str:
        """pw.x's banner version (``v.6.7MaX``), read once per process."""

        return pw_version(_command.command_words(settings, "pw.x")[0])

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        """Write ``pw.in`` into ``workdir``; return the pw.x command line."""
        import ase.io

        params = self.check(params, settings)
        plan = plan_inputs(atoms, params, settings)
        structure = atoms.copy()
        if params["spin"] and not structure.get_initial_magnetic_moments().any():
            structure.set_initial_magnetic_moments([0.5] * len(structure))
        workdir.mkdir(parents=True, exist_ok=True)
        ase.io.write(
            workdir / INPUT_NAME,
            structure,
            format="espresso-in",
            input_data=pw_input_data(
                {**params, "ecutrho_ry": plan.ecutrho_ry}, plan.pseudo_dir(workdir)
            ),
            pseudopotentials={el: path.name for el, path in plan.pseudos.items()},
            kpts=tuple(plan.kpoints),
            koffset=tuple(plan.kpoints_shift),
        )
        return RunSpec(
            command=(*_command.command_words(settings, "pw.x"), "-in", INPUT_NAME),
            stdout_name=OUTPUT_NAME,
            mpi=True,
        )

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        """Refuse: pw.x runs as an external command."""
        raise NotImplementedError("qe runs pw.x as a command; see prepare()")

    def request_stop(self, workdir: Path) -> None:
        """Ask a running pw.x to stop cleanly: it polls for ``<prefix>.EXIT``.

        pw.x looks in its working directory (the job directory) and in ``outdir`` and
        deletes the one it finds: one file only, or the other would stop the next attempt.
        """
        (workdir / STOP_FILE).touch()

    def prepare_attempt(self, workdir: Path, attempt: int) -> None:
        """Before pw.x starts: clear stale stop files; a later attempt keeps the earlier output.

        When the previous attempt stopped at orion's request and left its restart files,
        this attempt continues from them (``restart_mode = 'restart'``).
        """
        for stale in (workdir / STOP_FILE, workdir / "out" / STOP_FILE):
            stale.unlink(missing_ok=True)
        previous = workdir / OUTPUT_NAME
        if attempt <= 1 or not previous.is_file():
            return
        text = _command.read_text(previous) or ""
        previous.replace(workdir / f"pw-attempt-{attempt - 1}.out")
        if _STOPPED.search(text) and (workdir / "out" / "orion.save").is_dir():
            script = workdir / INPUT_NAME
            script.write_text(with_restart_mode(script.read_text()))

    def scf_retry_params(
        self, params: Mapping[str, Any], change: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``--on-scf-fail``: the parameters of the retry after an unconverged SCF (checked)."""
        return checked_change(self, params, change, settings)

    def apply_scf_retry(
        self, workdir: Path, old: Mapping[str, Any], new: Mapping[str, Any], failed_attempt: int
    ) -> str:
        """Rewrite pw.in for the retry (the failed one kept); say what changed."""
        rewrite_input(workdir, old, new, failed_attempt)
        return describe(old, new)

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        """Read ``pw.out``; a pw.x error or an unconverged SCF gives ``Result(error=...)``."""
        text = _command.read_text(workdir / OUTPUT_NAME)
        if text is None:
            return Result(error=f"pw.x wrote no {OUTPUT_NAME} in {workdir}")
        error = pw_error(text)
        if error:  # an unconverged SCF says so: --on-scf-fail retries it (qe_retry.py)
            scf_failed = bool(_SCF_FAILED.search(text)) and not _STOPPED.search(text)
            return Result(error=error, extras={"scf_converged": False} if scf_failed else {})
        return result_from_output(workdir / OUTPUT_NAME, text, params)


def known_namelist_keys() -> dict[str, frozenset[str]]:
    """pw.x's namelist keys, as ASE lists them (from QE's INPUT_PW), plus older &system keys."""
    from ase.io.espresso_namelist.keys import pw_keys

    known = {name: frozenset(pw_keys[name]) for name in NAMELISTS}
    known["system"] |= frozenset(OLDER_SYSTEM_KEYS)
    return known


def check_raw_input(raw: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check raw namelist keys; return them with lower-case names (pw.x is case-blind).

    An unknown namelist is always refused; an unknown key unless the site sets
    ``[engines.qe] check_input_keys = false`` (a newer pw.x than ASE knows).
    """
    checking = str(settings.get("check_input_keys", True)).lower() not in ("false", "0", "no")
    known = known_namelist_keys() if checking and raw else {}
    checked: dict[str, Any] = {}
    for namelist, keys in raw.items():
        if namelist.lower() not in NAMELISTS or not isinstance(keys, Mapping):
            raise UsageError(
                f"engine 'qe': '{namelist}' is not a pw.x namelist orion passes through",
                f"use one of: {', '.join(NAMELISTS)} (e.g. -p system.nbnd=16)",
            )
        section = checked.setdefault(namelist.lower(), {})
        for key, value in keys.items():
            name = str(key).lower().replace(" ", "")
            where = f"{namelist.lower()}.{name}"
            match = _INDEXED.match(name)
            if match is None:
                raise UsageError(
                    f"engine 'qe': '{where}' is not a namelist key name",
                    "write e.g. -p system.nbnd=16 or system.hubbard_u(1)=4.0",
                )
            base = match.group(1)
            refuse_named(
                "qe",
                where,
                base,
                {k: v for (n, k), v in NAMED_KEYS.items() if n == namelist.lower()},
                {k: v for (n, k), v in RESERVED_KEYS.items() if n == namelist.lower()},
            )
            if checking and base not in known[namelist.lower()]:
                raise UsageError(
                    f"engine 'qe': pw.x has no key '{base}' in namelist &{namelist.upper()}",
                    "check the spelling in pw.x's INPUT_PW; if your pw.x is newer, set "
                    "[engines.qe] check_input_keys = false",
                )
            check_scalar("qe", where, value)
            section[name] = value
    return checked


def with_restart_mode(pw_in: str) -> str:
    """Make pw.x continue from its restart files, unless the input already says how.

    >>> with_restart_mode("&CONTROL\\n   calculation = 'scf'\\n/\\n").splitlines()[1]
    "   restart_mode     = 'restart'"
    """
    if re.search(r"^\s*restart_mode\s*=", pw_in, re.M | re.I):
        return pw_in
    return re.sub(
        r"^(\s*&CONTROL\s*)$",
        r"\1\n   restart_mode     = 'restart'",
        pw_in,
        count=1,
        flags=re.M | re.I,
    )


def pw_error(text: str) -> str | None:
    """Return pw.x's own failure message, or None when the run finished normally."""
    routine = _ROUTINE_ERROR.search(text)
    if routine:
        return f"pw.x: Error in routine {routine.group(1)}: {routine.group(2)}"
    if _STOPPED.search(text):
        where = "; ".join(_STOPPED_WHERE.findall(text)) or "before finishing"
        return (
            f"pw.x stopped at orion's request (soft time limit): {where}; a retry "
            "continues from its restart files"
        )
    failed = _SCF_FAILED.search(text)
    if failed:
        return f"pw.x: {failed.group(1).strip()}"
    if "JOB DONE" not in text:
        return (
            f"pw.x did not finish (no 'JOB DONE' in {OUTPUT_NAME}); last line: "
            f"{_command.last_line(text)}"
        )
    return None


def result_from_output(path: Path, text: str, params: Mapping[str, Any]) -> Result:
    """Build the Result of a finished pw.x run from ASE's reader and the raw text."""
    import ase.io
    import ase.units

    try:
        images = ase.io.read(path, index=":", format="espresso-out")
    except Exception as exc:  # noqa: BLE001 — any reader failure is a parse failure
        return Result(error=f"cannot read {path.name} with ASE: {type(exc).__name__}: {exc}")
    assert isinstance(images, list)
    final = images[-1]
    calc = final.calc
    relaxing = params.get("calculation", "scf") != "scf"
    converged = ("bfgs converged" in text) if relaxing else True
    energies_ry = [float(v) for v in _TOTAL_ENERGY_RY.findall(text)]
    version = _VERSION.search(text)
    extras: dict[str, Any] = {
        "energy_ry": energies_ry[-1] if energies_ry else None,
        "scf_iterations": [int(n) for n in _SCF_DONE.findall(text)],
        "ionic_steps": len(energies_ry),
        "pw_version": version.group(1) if version else None,
        "pseudopotentials": {el: Path(f).name for el, f in _PSEUDO_FILE.findall(text)},
    }
    if relaxing and not converged:
        extras["warning"] = "ionic relaxation not converged (pw.x: bfgs did not converge)"
    # ASE's espresso reader converts with CODATA-2006 constants; the energy is converted from
    # pw.x's own Ry number with ase.units.Ry (CODATA 2014) — they differ by 8e-8 relative.
    energy_ev = energies_ry[-1] * ase.units.Ry if energies_ry else final.get_potential_energy()
    return Result(
        energy_ev=float(energy_ev),
        forces_ev_per_a=_command.to_floats(calc.get_forces()) if "forces" in calc.results else None,
        stress_ev_per_a3=_command.to_floats(calc.get_stress())
        if "stress" in calc.results
        else None,
        final_structure=_command.atoms_to_extxyz(final),
        converged=converged,
        extras=extras,
    )
