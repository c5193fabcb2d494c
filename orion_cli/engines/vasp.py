"""VASP: INCAR / POSCAR / KPOINTS written with pymatgen, POTCAR assembled from potcar_dir.

Outputs are read from ``vasprun.xml`` with pymatgen's Vasprun. Energies follow ASE's
convention: the last electronic step's energy(sigma→0), without the PSTRESS·V term.
"""

from __future__ import annotations

import gzip
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orion_cli.engines import _command
from orion_cli.engines.base import EngineParam, ProgressFn, Result, RunSpec, check_known_params
from orion_cli.engines.passthrough import check_scalar, gather_table, refuse_named
from orion_cli.errors import UsageError

if TYPE_CHECKING:
    from ase import Atoms

STDOUT_NAME = "vasp.out"
VASPRUN_NAME = "vasprun.xml"
KILOBAR_TO_GPA = 0.1

SMEARING_TO_ISMEAR = {"gaussian": 0, "methfessel-paxton": 1, "fermi-dirac": -1, "tetrahedron": -5}
CALCULATION_TO_TAGS: dict[str, dict[str, int]] = {
    "scf": {"IBRION": -1, "NSW": 0},
    "relax": {"IBRION": 2, "ISIF": 2},
    "vc-relax": {"IBRION": 2, "ISIF": 3},
}

#: raw INCAR tags that duplicate a named parameter
NAMED_TAGS = {
    "ENCUT": "encut_ev",
    "EDIFF": "ediff_ev",
    "NELM": "electron_maxstep",
    "ISMEAR": "smearing",
    "SIGMA": "sigma_ev",
    "ISPIN": "spin",
    "NSW": "ion_steps",
    "EDIFFG": "force_conv_ev_per_a",
    "PSTRESS": "pressure_kbar",
    "PREC": "prec",
    "IBRION": "calculation",
    "ISIF": "calculation",
    "KSPACING": "kspacing_per_a",
}
RESERVED_TAGS = {"KGAMMA": "orion writes KPOINTS"}


class VaspEngine:
    """Write VASP inputs and read vasprun.xml; VASP itself is a licensed binary."""

    name: ClassVar[str] = "vasp"
    summary: ClassVar[str] = "VASP — plane-wave PAW DFT (scf, relax, vc-relax); needs potcar_dir"
    parameters: ClassVar[tuple[EngineParam, ...]] = (
        EngineParam("calculation", "scf", "what to run", choices=tuple(CALCULATION_TO_TAGS)),
        EngineParam("encut_ev", 520.0, "plane-wave cutoff (ENCUT)", unit="eV"),
        EngineParam("kpoints", None, "Gamma-centred grid [n1, n2, n3]; replaces kspacing_per_a"),
        EngineParam(
            "kspacing_per_a", 0.25, "largest k-point spacing, 2π included (as KSPACING)", unit="1/Å"
        ),
        EngineParam("smearing", "gaussian", "ISMEAR", choices=tuple(SMEARING_TO_ISMEAR)),
        EngineParam("sigma_ev", 0.05, "smearing width (SIGMA)", unit="eV"),
        EngineParam(
            "spin",
            False,
            "collinear spin polarisation (ISPIN=2); MAGMOM from the "
            "structure's initial moments, else VASP's default",
        ),
        EngineParam("ediff_ev", 1e-6, "electronic convergence (EDIFF)", unit="eV"),
        EngineParam("electron_maxstep", 100, "maximum electronic steps (NELM)"),
        EngineParam("ion_steps", 50, "maximum ionic steps (NSW; relax, vc-relax)"),
        EngineParam(
            "force_conv_ev_per_a",
            0.01,
            "ionic convergence on forces (EDIFFG = -value)",
            unit="eV/Å",
        ),
        EngineParam("pressure_kbar", 0.0, "target pressure (PSTRESS; vc-relax)", unit="kbar"),
        EngineParam("prec", "Accurate", "PREC", choices=("Normal", "Accurate")),
        EngineParam(
            "incar",
            None,
            "raw INCAR tags: -p incar.ISYM=0, or [vasp.incar] in --params; checked against "
            "pymatgen's list of INCAR tags",
        ),
    )

    def check(self, params: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``params`` completed with defaults; raise UsageError naming a bad one."""
        params = gather_table(self.name, params, "incar")
        merged = check_known_params(self.name, self.parameters, params)
        merged["incar"] = check_raw_incar(merged["incar"] or {}, settings)
        _command.check_kpoints(self.name, params, merged)
        _command.require_positive(
            self.name,
            merged,
            "encut_ev",
            "sigma_ev",
            "ediff_ev",
            "electron_maxstep",
            "ion_steps",
            "force_conv_ev_per_a",
        )
        return merged

    def binary_status(self, settings: Mapping[str, Any]) -> tuple[bool, str]:
        """Tell whether the VASP binary can run here, for ``orion engines``."""
        return _command.binary_status(self.name, settings, "vasp_std")

    def prepare(
        self,
        atoms: Atoms,
        params: Mapping[str, Any],
        workdir: Path,
        settings: Mapping[str, Any],
    ) -> RunSpec:
        """Write INCAR, POSCAR, KPOINTS and POTCAR into ``workdir``; return the VASP command."""
        from pymatgen.io.ase import AseAtomsAdaptor
        from pymatgen.io.vasp import Incar, Kpoints, Poscar

        params = self.check(params, settings)
        poscar = Poscar(AseAtomsAdaptor.get_structure(atoms), comment="written by orion")
        potcar_text = assemble_potcar(poscar.site_symbols, settings)
        grid = params["kpoints"] or _command.kpoint_grid(atoms, params["kspacing_per_a"])
        workdir.mkdir(parents=True, exist_ok=True)
        poscar.write_file(workdir / "POSCAR")
        Incar(incar_tags(params, atoms)).write_file(workdir / "INCAR")
        Kpoints.gamma_automatic(tuple(grid)).write_file(workdir / "KPOINTS")
        (workdir / "POTCAR").write_text(potcar_text)
        return RunSpec(
            command=_command.command_words(settings, "vasp_std"), stdout_name=STDOUT_NAME, mpi=True
        )

    def run(self, workdir: Path, params: Mapping[str, Any], report: ProgressFn) -> None:
        """Refuse: VASP runs as an external command."""
        raise NotImplementedError("vasp runs as a command; see prepare()")

    def parse(self, workdir: Path, params: Mapping[str, Any]) -> Result:
        """Read ``vasprun.xml``; a truncated run or unconverged SCF gives ``Result(error=...)``."""
        from pymatgen.io.vasp.outputs import UnconvergedVASPWarning, Vasprun

        path = workdir / VASPRUN_NAME
        if not path.is_file():
            return Result(error=f"VASP wrote no {VASPRUN_NAME}; {last_words(workdir)}")
        try:
            with warnings.catch_warnings():  # convergence is judged below, not warned about
                warnings.simplefilter("ignore", UnconvergedVASPWarning)
                vasprun = Vasprun(
                    str(path),
                    parse_dos=False,
                    parse_eigen=False,
                    parse_potcar_file=False,
                    exception_on_bad_xml=True,
                )
        except Exception as exc:  # noqa: BLE001 — a truncated file is a failed run
            return Result(
                error=f"cannot read {VASPRUN_NAME} ({type(exc).__name__}: {exc}); "
                f"{last_words(workdir)}"
            )
        return result_from_vasprun(vasprun)


def known_incar_tags() -> frozenset[str]:
    """INCAR tags pymatgen knows (its ``incar_parameters.json``)."""
    import json
    from importlib.resources import files

    text = files("pymatgen.io.vasp").joinpath("incar_parameters.json").read_text()
    return frozenset(json.loads(text))


def check_raw_incar(raw: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check raw INCAR tags; return them upper-case. Lists (MAGMOM, LDAUU) are allowed.

    An unknown tag is refused unless ``[engines.vasp] check_input_keys = false``.
    """
    checking = str(settings.get("check_input_keys", True)).lower() not in ("false", "0", "no")
    known = known_incar_tags() if checking and raw else frozenset()
    checked: dict[str, Any] = {}
    for key, value in raw.items():
        tag = str(key).upper()
        where = f"incar.{tag}"
        if isinstance(value, Mapping):
            raise UsageError(
                f"engine 'vasp': {where} is a table, not an INCAR value",
                "write e.g. -p incar.ISYM=0",
            )
        refuse_named("vasp", where, tag, NAMED_TAGS, RESERVED_TAGS)
        if checking and tag not in known:
            raise UsageError(
                f"engine 'vasp': '{tag}' is not an INCAR tag pymatgen knows",
                "check the spelling on the VASP wiki; if your VASP has it, set "
                "[engines.vasp] check_input_keys = false",
            )
        check_scalar("vasp", where, value, lists=True)
        checked[tag] = value
    return checked


def incar_tags(params: Mapping[str, Any], atoms: Atoms) -> dict[str, Any]:
    """Map orion parameters onto INCAR tags; raw ``incar`` tags are added last."""
    tags: dict[str, Any] = {
        "SYSTEM": atoms.get_chemical_formula(),
        "PREC": params["prec"],
        "ENCUT": float(params["encut_ev"]),
        "EDIFF": float(params["ediff_ev"]),
        "NELM": int(params["electron_maxstep"]),
        "ISMEAR": SMEARING_TO_ISMEAR[params["smearing"]],
        "SIGMA": float(params["sigma_ev"]),
        "LWAVE": False,
        "LCHARG": False,
        **CALCULATION_TO_TAGS[params["calculation"]],
    }
    if params["calculation"] != "scf":
        tags["NSW"] = int(params["ion_steps"])
        tags["EDIFFG"] = -float(params["force_conv_ev_per_a"])
    if params["calculation"] == "vc-relax":
        tags["PSTRESS"] = float(params["pressure_kbar"])
    if params["spin"]:
        tags["ISPIN"] = 2
        moments = atoms.get_initial_magnetic_moments()
        if moments.any():
            tags["MAGMOM"] = [float(m) for m in moments]
    tags.update(params.get("incar") or {})
    return tags


def assemble_potcar(site_symbols: list[str], settings: Mapping[str, Any]) -> str:
    """Concatenate ``<potcar_dir>/<variant>/POTCAR`` in POSCAR species order."""
    potcar_dir = _command.setting_path(settings, "potcar_dir", None)
    if potcar_dir is None or not potcar_dir.is_dir():
        where = f"{potcar_dir} does not exist" if potcar_dir else "potcar_dir is not configured"
        raise UsageError(
            f"vasp needs POTCAR files: {where}",
            "set [engines.vasp] potcar_dir in orion.toml (or ORION_VASP_POTCAR_DIR) to your "
            "licensed potpaw_PBE directory (one <element>/POTCAR per element)",
        )
    variants = _command.setting_mapping(settings, "vasp", "potcars")
    parts = []
    for element in site_symbols:
        variant = variants.get(element, element)
        parts.append(read_potcar(potcar_dir / variant, element))
    return "".join(part if part.endswith("\n") else part + "\n" for part in parts)


def read_potcar(folder: Path, element: str) -> str:
    """Return the text of ``folder/POTCAR`` (or ``POTCAR.gz``); UsageError when absent."""
    if (folder / "POTCAR").is_file():
        return (folder / "POTCAR").read_text()
    if (folder / "POTCAR.gz").is_file():
        return gzip.decompress((folder / "POTCAR.gz").read_bytes()).decode()
    raise UsageError(
        f"no POTCAR for {element}: {folder}/POTCAR does not exist",
        f"check [engines.vasp] potcar_dir, or choose a variant with "
        f'potcars = {{{element} = "{element}_pv"}} in orion.toml',
    )


def last_words(workdir: Path) -> str:
    """Describe the end of VASP's stdout (or OUTCAR) for error messages."""
    for name in (STDOUT_NAME, "OUTCAR"):
        text = _command.read_text(workdir / name)
        if text:
            return f"last line of {name}: {_command.last_line(text)}"
    return f"no {STDOUT_NAME} or OUTCAR either"


def result_from_vasprun(vasprun: Any) -> Result:
    """Build the Result of a finished VASP run (eV, eV/Å, eV/Å³; sign as ASE)."""
    import ase.units
    import numpy as np
    from pymatgen.io.ase import AseAtomsAdaptor

    last = vasprun.ionic_steps[-1]
    electronic = last["electronic_steps"]
    nelm = int(vasprun.parameters.get("NELM", 60))
    if not vasprun.converged_electronic:
        return Result(
            error=f"VASP: electronic SCF not converged within NELM={nelm} steps "
            f"(ionic step {len(vasprun.ionic_steps)})"
        )
    stress_kbar = np.asarray(last["stress"], dtype=float)
    stress = -stress_kbar * KILOBAR_TO_GPA * ase.units.GPa
    final = AseAtomsAdaptor.get_atoms(vasprun.final_structure)
    return Result(
        energy_ev=float(electronic[-1]["e_0_energy"]),
        forces_ev_per_a=_command.to_floats(np.asarray(last["forces"], dtype=float)),
        stress_ev_per_a3=_command.to_floats(stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]),
        final_structure=_command.atoms_to_extxyz(final),
        converged=bool(vasprun.converged_ionic),
        extras={
            "free_energy_ev": float(electronic[-1]["e_fr_energy"]),
            "energy_with_pv_ev": float(last["e_0_energy"]),
            "scf_iterations": [len(step["electronic_steps"]) for step in vasprun.ionic_steps],
            "ionic_steps": len(vasprun.ionic_steps),
            "fermi_energy_ev": vasprun.efermi,
            "vasp_version": vasprun.vasp_version,
            "potcars": list(vasprun.potcar_symbols),
        },
    )
